"""canonicalize-swish: Keras 3 silu/swish without its gradient wrapper, in one operand order."""
import pytest
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.activation_patterns import is_canonical_swish
from graphir.transforms.canonicalize_swish import CanonicalizeSwish
from graphir.transforms.pass_manager import PassManager
from keras3util import assert_bf16_close, filecheck, load


def prepared(g):
    g = g.copy()
    PassManager("strip-unused,remove-training-nodes,fold-constants,simplify-arithmetic").run(g)
    return g


def test_keras3_silu_before_simplification():
    """Keras 3's silu is x * sigmoid(beta * x) with beta = 1, matched before simplify-arithmetic drops the
    multiplication by one."""
    import keras

    x = keras.Input((8,), name="x")
    g = load(keras.Model(x, keras.layers.Activation("silu")(x), name="net"))
    PassManager("strip-unused,remove-training-nodes,fold-constants").run(g)
    out, res = apply(CanonicalizeSwish(), g)
    assert res.counts == {"swish": 1, "wrappers_dropped": 1}
    assert sorted(ops(out)) == ["Identity", "Mul", "Placeholder", "Sigmoid"]
    assert_same_outputs(g, out, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def keras_graph():
    import keras
    from keras import layers

    x = keras.Input((8,), name="x")
    return prepared(load(keras.Model(x, [layers.Dense(6, activation="silu", name="silu")(x),
                                         layers.Activation("swish", name="swish")(layers.Dense(6, name="d")(x))],
                                         name="net")))


def test_keras3_silu(keras_graph):
    g = keras_graph
    assert ops(g).count("IdentityN") == 2
    out, res = apply(CanonicalizeSwish(), g)
    assert res.counts == {"swish": 2, "wrappers_dropped": 2}
    assert "IdentityN" not in ops(out)
    muls = [n for n in out.nodes() if n.op_type == "Mul"]
    assert len(muls) == 2 and all(is_canonical_swish(out, n.outputs[0]) for n in muls)
    assert_same_outputs(g, out, rtol=1e-6, atol=1e-6)
    again, res2 = apply(CanonicalizeSwish(), out)
    assert not res2.changed
    filecheck(out.text(), """
        CHECK: %net_1/silu_1/BiasAdd = tf.BiasAdd(
        CHECK: %net_1/silu_1/mul_1/canonical/sigmoid = tf.Sigmoid(%net_1/silu_1/BiasAdd)
        CHECK: %net_1/silu_1/mul_1 = tf.Mul(%net_1/silu_1/mul_1/canonical/sigmoid, %net_1/silu_1/BiasAdd)
        CHECK: %Identity = tf.Identity(%net_1/silu_1/mul_1,
    """)


def test_bf16(keras_graph):
    out, _ = apply(CanonicalizeSwish(), keras_graph)
    assert_bf16_close(keras_graph, out)


def test_other_scales_stay():
    g = prepared(build(lambda x: [x * tf.sigmoid(2.0 * x), tf.sigmoid(x) * x], [[4]]))
    out, res = apply(CanonicalizeSwish(), g)
    assert res.counts == {"swish": 0, "wrappers_dropped": 0} and out.text() == g.text()
