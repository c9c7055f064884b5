"""strip-unused: only ancestors of the outputs (and the inputs) survive."""
import tensorflow as tf

from conftest import apply, assert_same_outputs, ops
from graphir.frontends.tf import from_graph_def
from graphir.transforms.strip_unused import StripUnused


def _graph():
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x0")
        tf.exp(x, name="unused_exp")
        tf.constant(3.0, name="unused_const")
        tf.identity(tf.nn.relu(x * 2.0, name="kept"), name="out0")
    ir = from_graph_def(g.as_graph_def())  # every sink is an output ...
    ir.outputs = [p for p in ir.outputs if p.name == "out0"]  # ... until we pick one
    return ir


def test_strips_unused_branch():
    g = _graph()
    assert "unused_exp" in g.text()
    out, res = apply(StripUnused(), g)
    assert res.changed and res.counts["nodes_removed"] == 2
    text = out.text()
    assert "unused_exp" not in text and "unused_const" not in text
    assert "%kept = tf.Relu" in text
    assert_same_outputs(g, out)


def test_keeps_control_ancestors_and_inputs():
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        tf.compat.v1.placeholder(tf.float32, [3], name="x2")  # an input nothing reads
        chk = tf.raw_ops.Assert(condition=tf.reduce_all(x > 0), data=[x], name="chk")
        with tf.control_dependencies([chk]):
            tf.identity(x * 3.0, name="out0")
    ir = from_graph_def(g.as_graph_def(), inputs=["x", "x2"], outputs=["out0"])
    out, res = apply(StripUnused(), ir)
    assert not res.changed
    assert "Assert" in ops(out) and "x2" in out
