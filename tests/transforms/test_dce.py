"""dce: unused pure nodes go; side-effecting nodes stay; control edges from pure constants are dropped."""
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.dce import DCE


def test_removes_dead_pure_nodes_keeps_side_effects():
    def fn(x):
        tf.sin(x, name="dead_sin")
        tf.raw_ops.Assert(condition=tf.reduce_all(x > -100.0), data=[x], name="live_assert")
        return x * 2.0
    g = build(fn, [[4]])
    out, res = apply(DCE(), g)
    assert res.counts["nodes_removed"] == 1
    assert "dead_sin" not in out and "Assert" in ops(out)
    assert_same_outputs(g, out)


def test_drops_control_edges_from_pure_constants():
    def fn(x):
        c = tf.constant(1.0, name="c")
        with tf.control_dependencies([c]):
            return tf.identity(x + 1.0, name="y")
    g = build(fn, [[4]])
    assert "^c" in g.text()
    out, res = apply(DCE(), g)
    assert res.counts["controls_removed"] == 1
    assert "^c" not in out.text() and "%c = " not in out.text()
    assert_same_outputs(g, out)


def test_keeps_control_edge_from_side_effect():
    def fn(x):
        chk = tf.raw_ops.Assert(condition=tf.reduce_all(x > -100.0), data=[x], name="chk")
        with tf.control_dependencies([chk]):
            return tf.identity(x + 1.0, name="y")
    g = build(fn, [[4]])
    out, res = apply(DCE(), g)
    assert not res.changed and "^chk" in out.text()
