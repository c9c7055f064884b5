"""fold-constants: TF evaluates constant sub-graphs; stateful ops, inputs and oversized results stay."""
import numpy as np
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, lines_with, ops
from graphir.transforms.fold_constants import FoldConstants


def test_folds_constant_subgraph_keeping_names():
    def fn(x):
        c = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3) / 7.0)
        d = tf.add(tf.exp(c), tf.constant(1.5), name="d")
        e = tf.reshape(tf.transpose(d), [2, 3], name="e")
        return x * e
    g = build(fn, [[2, 3]])
    out, res = apply(FoldConstants(), g)
    assert res.counts["folded"] == 1 and res.counts["nodes_removed"] >= 6
    assert not {"Exp", "AddV2", "Transpose", "Reshape"} & set(ops(out))
    # the folded value keeps the name of the node it replaces
    assert lines_with(out, "%e = tf.Const()")
    assert "%mul = tf.Mul(%x0, %e)" in out.text()
    assert_same_outputs(g, out)


def test_folds_shape_of_static_tensor_but_not_dynamic():
    def fn(x, y):
        s = tf.raw_ops.Shape(input=tf.nn.relu(x), name="static_shape")
        r = tf.raw_ops.Rank(input=x, name="rank")
        n = tf.raw_ops.Shape(input=y, name="dynamic_shape")
        return [tf.cast(s, tf.float32) * tf.cast(r, tf.float32), tf.cast(n, tf.float32)]
    g = build(fn, [[2, 5], [None, 3]])
    out, res = apply(FoldConstants(), g)
    assert res.counts["shapes_folded"] == 2
    # the shapes became constants, and then everything computed from them folded too
    assert ops(out).count("Shape") == 1 and lines_with(out, "%dynamic_shape = tf.Shape(")
    assert "Rank" not in ops(out) and lines_with(out, "%out0 = tf.Const()")
    assert_same_outputs(g, out)


def test_never_folds_stateful_or_inputs():
    def fn(x):
        r = tf.random.stateless_uniform([3], seed=[1, 2]) + tf.random.uniform([3], seed=3, name="rnd")
        d = tf.raw_ops.PlaceholderWithDefault(input=tf.constant([1.0, 2.0, 3.0]), shape=[3], name="dflt")
        return [x + r, x * d]
    g = build(fn, [[3]])
    out, _ = apply(FoldConstants(), g)
    assert "RandomUniform" in ops(out) and "PlaceholderWithDefault" in ops(out)
    # the stateless part did fold
    assert "StatelessRandomUniformV2" not in ops(out)


def test_size_cap_keeps_large_expansions_symbolic():
    def fn(x):
        big = tf.fill([256, 256], 2.0, name="big")       # 256 KiB
        small = tf.fill([4, 4], 3.0, name="small")
        return [tf.reduce_sum(big) * x, tf.reduce_sum(small) * x]
    g = build(fn, [[1]])
    out, _ = apply(FoldConstants(max_bytes=64 * 1024), g)
    assert lines_with(out, "%big = tf.Fill(") and "small" not in out.text()
    assert ops(out).count("Fill") == 1 and ops(out).count("Sum") == 1  # only the big one stays
    assert_same_outputs(g, out)
    out2, _ = apply(FoldConstants(), g)
    assert "Fill" not in ops(out2)                        # under the default cap both fold
    assert_same_outputs(g, out2)


def test_eager_and_session_evaluation_agree():
    """Folding runs kernels eagerly, with a one-session fallback; both must give TF's values."""
    from graphir.runtime_check import tf_eval

    def fn(x):
        c = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
        a, b = tf.split(tf.nn.softmax(c), 2, axis=1, name="split")
        s = tf.strings.join([tf.constant(["a", "b"]), tf.constant("!")], name="strs")
        i = tf.cast(tf.argmax(tf.concat([a, b * 2.0], 0), axis=1), tf.float32, name="idx")
        return [x * tf.reduce_sum(a + b), tf.strings.length(s), i]
    g = build(fn, [[1]])
    order = g.topo_order()
    fetch = [n.outputs[i] for n in order if n.name in ("split", "strs", "idx") for i in range(len(n.outputs))]
    needed = g.ancestors({v.node for v in fetch})
    nodes = [n for n in order if n.name in needed]
    eager = tf_eval._evaluate_eager(nodes, fetch)
    session = tf_eval._evaluate_session(g, nodes, fetch)
    assert len(eager) == len(session) == 4
    for a, b in zip(eager, session):
        np.testing.assert_array_equal(a, b)
    out, _ = apply(FoldConstants(), g)
    assert set(ops(out)) <= {"Placeholder", "Const", "Mul", "Identity"}
    assert_same_outputs(g, out)


def test_every_shape_n_output_folds_its_readers_in_one_run():
    def fn(x):
        s = tf.raw_ops.ShapeN(input=[tf.nn.relu(x), tf.zeros([4, 7])], name="shapes")
        k = tf.cast(s[1] * 2, tf.float32, name="k")  # reads ShapeN:1
        return x * tf.reduce_sum(k)
    g = build(fn, [[2, 5]])
    out, res = apply(FoldConstants(), g)
    assert res.counts["shapes_folded"] == 1
    assert not {"ShapeN", "Cast", "Sum"} & set(ops(out)) and ops(out).count("Mul") == 1, ops(out)
    assert_same_outputs(g, out)
