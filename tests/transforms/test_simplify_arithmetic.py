"""simplify-arithmetic: identities, shape no-ops, transpose/reshape pairs, constant chains."""
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, lines_with, ops
from graphir.transforms.simplify_arithmetic import RULES, SimplifyArithmetic

raw = tf.raw_ops


def run(fn, shapes):
    g = build(fn, shapes)
    out, res = apply(SimplifyArithmetic(), g)
    assert_same_outputs(g, out)
    return g, out, res


def test_rules_are_data():
    assert {r.name for r in RULES.rules} >= {"neutral_operand", "constant_chain", "transpose_of_transpose"}
    assert (RULES + RULES).by_op[("tf", "Mul")]


def test_neutral_operands():
    def fn(x):
        a = tf.multiply(x, tf.ones([2, 3]), name="times_one")
        b = tf.add(tf.zeros([3]), a, name="plus_zero")
        c = tf.subtract(b, 0.0, name="minus_zero")
        return tf.nn.relu(c, name="r")
    _, out, res = run(fn, [[2, 3]])
    assert res.counts["neutral_operand"] == 3
    assert "%r = tf.Relu(%x0)" in out.text()


def test_neutral_operand_that_broadcasts_is_kept():
    def fn(x):
        return tf.add(x, tf.zeros([4, 3]), name="widen")  # [3] + [4,3] -> [4,3]: not a no-op
    g, out, res = run(fn, [[3]])
    assert not res.changed and lines_with(out, "%widen = tf.AddV2")


def test_shape_noops_and_pairs():
    def fn(x):
        a = tf.reshape(x, [2, 3], name="same_shape")
        b = tf.reshape(tf.reshape(a, [6], name="flat"), [3, 2], name="r2")
        t = tf.transpose(tf.transpose(b, [1, 0], name="t1"), [1, 0], name="t2")
        c = raw.Cast(x=t, DstT=tf.float32, name="cast_same")
        s = tf.squeeze(tf.expand_dims(c, 0, name="ed"), [0], name="sq")
        return tf.nn.relu(s, name="r")
    _, out, res = run(fn, [[2, 3]])
    for op in ("Transpose", "Cast", "Squeeze", "ExpandDims"):
        assert op not in ops(out)
    assert ops(out).count("Reshape") == 1 and "%r2 = tf.Reshape(%x0" in out.text()


def test_transpose_composition():
    def fn(x):
        return tf.transpose(tf.transpose(x, [1, 2, 0], name="t1"), [1, 2, 0], name="t2")
    _, out, res = run(fn, [[2, 3, 4]])
    assert ops(out).count("Transpose") == 1
    (line,) = [ln for ln in lines_with(out, "= tf.Const()") if "%t2/perm" in ln]
    assert "dense<[2, 0, 1]>" in line


def test_constant_chains():
    def fn(x):
        m = tf.multiply(tf.multiply(x, 2.0, name="m1"), tf.constant([1.0, 2.0, 3.0]), name="m2")
        a = tf.add(tf.add(m, 1.0, name="a1"), 4.0, name="a2")
        return a
    _, out, res = run(fn, [[2, 3]])
    assert res.counts["constant_chain"] == 2
    assert ops(out).count("Mul") == 1 and ops(out).count("AddV2") == 1
    assert "%m2 = tf.Mul(%x0, %m2/folded)" in out.text()


def test_chain_with_second_reader_is_kept():
    def fn(x):
        m1 = tf.multiply(x, 2.0, name="m1")
        return [tf.multiply(m1, 3.0, name="m2"), m1]
    g, out, res = run(fn, [[3]])
    assert not res.changed
