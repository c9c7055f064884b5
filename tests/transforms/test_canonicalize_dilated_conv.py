"""canonicalize-dilated-conv: Keras 3's space-to-batch dilated convolutions become dilated convolutions."""
import pytest

from conftest import apply, assert_same_outputs, ops
from graphir.transforms.canonicalize_dilated_conv import CanonicalizeDilatedConv
from keras3util import load


def keras_model():
    import keras
    from keras import layers

    x = inp = keras.Input((13, 11, 4), name="image")
    a = layers.Conv2D(6, 3, dilation_rate=2, padding="same", name="same")(x)
    b = layers.Conv2D(6, (3, 2), dilation_rate=(3, 2), padding="valid", name="valid")(x)
    c = layers.DepthwiseConv2D(3, dilation_rate=(2, 3), padding="same", name="dw")(x)
    d = layers.Conv2D(6, 3, dilation_rate=2, padding="same", name="odd")(layers.Cropping2D(((0, 1), (0, 0)))(x))
    return keras.Model(inp, [a, b, c, d], name="net")


@pytest.fixture(scope="module")
def keras_graph():
    return load(keras_model())


def test_every_space_to_batch_conv_becomes_a_dilated_conv(keras_graph):
    g = keras_graph
    assert ops(g).count("SpaceToBatchND") == 4
    out, res = apply(CanonicalizeDilatedConv(), g)
    assert res.counts == {"dilated_conv": 4}
    o = ops(out)
    assert "SpaceToBatchND" not in o and "BatchToSpaceND" not in o
    dil = sorted(tuple(n.attrs["dilations"]) for n in out.nodes() if n.op_type in ("Conv2D", "DepthwiseConv2dNative"))
    assert dil == [(1, 2, 2, 1), (1, 2, 2, 1), (1, 2, 3, 1), (1, 3, 2, 1)]
    assert_same_outputs(g, out, rtol=1e-5, atol=1e-6)


def test_strided_conv_inside_is_left_alone(keras_graph):
    """Only a stride-1 VALID inner conv is a dilation; change one and the chain must stay."""
    g = keras_graph.copy()
    conv = next(n for n in g.nodes() if n.op_type == "Conv2D" and n.inputs[0].node.op_type == "SpaceToBatchND")
    g.set_attr(conv, "padding", "SAME")
    out, res = apply(CanonicalizeDilatedConv(), g)
    assert res.counts == {"dilated_conv": 3}
    assert ops(out).count("SpaceToBatchND") == 1
