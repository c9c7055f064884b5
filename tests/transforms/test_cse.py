"""cse: value numbering with commutativity and constant contents; never merges stateful ops."""
import numpy as np
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.cse import CSE


def test_merges_duplicates_commutative_and_constants():
    def fn(x, y):
        a = tf.add(x, y, name="a")
        b = tf.add(y, x, name="b")                      # commutative twin of a
        c1 = tf.constant([1.0, 2.0, 3.0], name="c1")
        c2 = tf.constant([1.0, 2.0, 3.0], name="c2")    # same content, other node
        m1 = tf.multiply(a, c1, name="m1")
        m2 = tf.multiply(b, c2, name="m2")              # equal once a~b and c1~c2
        return [m1 * 2.0, m2 * 2.0, tf.subtract(x, y, name="s1") - tf.subtract(y, x, name="s2")]
    g = build(fn, [[3], [3]])
    out, res = apply(CSE(), g)
    assert res.counts["nodes_merged"] >= 5 and res.counts["constants_merged"] >= 2
    text = out.text()
    assert "%b = " not in text and "%c2 = " not in text and "%m2 = " not in text
    assert "%s1 = " in text and "%s2 = " in text        # Sub is not commutative
    assert ops(out).count("Mul") == 2                    # m1, and m1*2 == m2*2
    assert ops(out).count("Identity") == 3               # output nodes are never merged away
    assert_same_outputs(g, out)


def test_does_not_merge_stateful_ops():
    def fn(x):
        r1 = tf.random.uniform([3], seed=1, name="r1")
        r2 = tf.random.uniform([3], seed=1, name="r2")
        return [x + r1, x + r2]
    g = build(fn, [[3]])
    out, res = apply(CSE(), g)
    assert ops(out).count("RandomUniform") == 2
    assert ops(out).count("AddV2") == 2


def test_control_inputs_are_part_of_the_key():
    def fn(x):
        c = tf.raw_ops.Assert(condition=tf.reduce_all(x > -100.0), data=[x], name="chk")
        a = tf.exp(x, name="e1")
        with tf.control_dependencies([c]):
            b = tf.exp(x, name="e2")
        return [a, b]
    g = build(fn, [[3]])
    out, res = apply(CSE(), g)
    assert "e1" in out and "e2" in out
    assert_same_outputs(g, out, feeds={"x0": np.ones(3, np.float32)})
