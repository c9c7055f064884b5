"""prune-switch-merge: a TF1 cond on a constant (or a non-input PlaceholderWithDefault) loses its dead side."""
import numpy as np
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.prune_switch_merge import PruneSwitchMerge
from models import control_flow_v1


def _cond_graph(pred_fn):
    def fn(x):
        with control_flow_v1():
            p = pred_fn()
            y = tf.compat.v1.cond(p, lambda: tf.nn.relu(x) * 3.0, lambda: tf.tanh(x) - 1.0, name="cond")
            return y + 1.0
    return build(fn, [[4]])


def test_constant_predicate_prunes_dead_branch():
    g = _cond_graph(lambda: tf.constant(False, name="phase"))
    assert {"Switch", "Merge"} <= set(ops(g))
    out, res = apply(PruneSwitchMerge(), g)
    assert res.counts["switches_pruned"] >= 1
    assert not {"Switch", "Merge", "Relu"} & set(ops(out)) and "Tanh" in ops(out)
    assert_same_outputs(g, out)


def test_learning_phase_placeholder_with_default_that_is_not_an_input():
    g = _cond_graph(lambda: tf.compat.v1.placeholder_with_default(True, [], name="keras_learning_phase"))
    out, res = apply(PruneSwitchMerge(), g)
    assert res.counts["defaults_resolved"] == 1
    assert not {"Switch", "Merge", "PlaceholderWithDefault", "Tanh"} & set(ops(out)) and "Relu" in ops(out)
    assert_same_outputs(g, out)


def test_predicate_that_is_an_input_is_kept():
    def fn(x, p):
        with control_flow_v1():
            return tf.compat.v1.cond(p, lambda: x * 2.0, lambda: x - 2.0)
    g = build(fn, [[3], []], [tf.float32, tf.bool])
    out, res = apply(PruneSwitchMerge(), g)
    assert not res.changed and "Merge" in ops(out)
    for p in (True, False):
        assert_same_outputs(g, out, feeds={"x0": np.ones(3, np.float32), "x1": p})


def test_empty_branch_pivot_is_not_a_model_output():
    # Keras-style dropout under a learning-phase cond: the false branch is the identity, so TF's pivot
    # cond/switch_f has no consumer. It must not be mistaken for a model output (and survive as one).
    from graphir.frontends.tf import from_graph_def

    g = tf.Graph()
    with g.as_default(), control_flow_v1():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        lp = tf.compat.v1.placeholder_with_default(False, [], name="keras_learning_phase")
        y = tf.compat.v1.cond(lp, lambda: tf.nn.dropout(x, rate=0.5), lambda: tf.identity(x), name="cond")
        tf.identity(y * 2.0, name="y")
    ir = from_graph_def(g.as_graph_def())
    assert [p.name for p in ir.outputs] == ["y"]
    out, _ = apply(PruneSwitchMerge(), ir)
    assert not {"Switch", "Merge", "PlaceholderWithDefault"} & set(ops(out))
    assert_same_outputs(ir, out, feeds={"x": np.arange(8, dtype=np.float32).reshape(2, 4)})


def test_default_with_control_inputs_is_kept():
    # Its readers run after its control inputs; replacing it by the default would drop that order.
    def fn(x):
        default = tf.constant([1.0, 2.0, 3.0])
        chk = tf.raw_ops.Assert(condition=tf.reduce_all(x > -100.0), data=[x], name="chk")
        with tf.control_dependencies([chk]):
            d = tf.raw_ops.PlaceholderWithDefault(input=default, shape=[3], name="dflt")
        return x * d
    g = build(fn, [[3]])
    assert g.node("dflt").control_inputs == (g.node("chk"),)
    out, res = apply(PruneSwitchMerge(), g)
    assert res.counts["defaults_resolved"] == 0 and "PlaceholderWithDefault" in ops(out)
    assert_same_outputs(g, out)
