"""remove-training-nodes: identity-like and debug ops go; outputs and user-kept nodes stay."""
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.remove_training_nodes import RemoveTrainingNodes

raw = tf.raw_ops


def _training_graph():
    def fn(x):
        y = tf.identity(tf.identity(x, name="id1"), name="id2")
        y = tf.debugging.check_numerics(y * 2.0, "bad", name="check")
        y = tf.stop_gradient(y, name="stop")
        y = raw.Snapshot(input=y, name="snap")
        y = raw.PreventGradient(input=y, name="prevent")
        return tf.nn.relu(y, name="relu")
    return build(fn, [[2, 3]])


def test_removes_identity_like_ops():
    g = _training_graph()
    before = set(ops(g))
    assert {"CheckNumerics", "StopGradient", "Snapshot", "PreventGradient"} <= before
    out, res = apply(RemoveTrainingNodes(), g)
    assert res.counts["identities_removed"] == 6
    assert set(ops(out)) == {"Placeholder", "Const", "Mul", "Relu", "Identity"}
    # the graph output (an Identity) stays, and now reads the Relu directly
    assert "%out0 = tf.Identity(%relu)" in out.text()
    assert "%relu = tf.Relu(%mul)" in out.text()
    assert_same_outputs(g, out)


def test_keep_option_and_outputs():
    g = _training_graph()
    out, _ = apply(RemoveTrainingNodes(keep=("stop",)), g)
    assert "StopGradient" in ops(out) and "CheckNumerics" not in ops(out)
    assert_same_outputs(g, out)


def test_removes_assert_only_feeding_control_edges():
    def fn(x):
        chk = raw.Assert(condition=tf.reduce_all(x > -100.0), data=[x], name="chk")
        with tf.control_dependencies([chk]):
            return tf.identity(x * 3.0, name="y")
    g = build(fn, [[4]])
    out, res = apply(RemoveTrainingNodes(), g)
    assert res.counts["debug_ops_removed"] == 1
    assert "Assert" not in ops(out) and "All" not in ops(out) and "^chk" not in out.text()
    assert_same_outputs(g, out)


def test_identity_feeding_control_edge_from_switch_is_kept():
    from models import control_flow_v1

    def fn(x, p):
        with control_flow_v1():
            return tf.compat.v1.cond(p, lambda: x + 1.0, lambda: x - 1.0)
    g = build(fn, [[3], []], [tf.float32, tf.bool])
    # TF's cond guards branch constants with ^switch_t/^switch_f (Identity of a Switch output)
    guards = [n.name for n in g.nodes() if n.op_type == "Identity" and g.control_users(n)
              and n.inputs[0].node.op_type == "Switch"]
    assert guards
    out, _ = apply(RemoveTrainingNodes(), g)
    assert all(name in out for name in guards)
    for p in (True, False):
        assert_same_outputs(g, out, feeds={"x0": [1.0, 2.0, 3.0], "x1": p})

