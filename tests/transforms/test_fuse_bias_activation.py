"""fuse-bias-activation: conv/matmul + BiasAdd (+ residual Add) + activation -> TF's fused CPU ops."""
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, const, lines_with, ops
from graphir.transforms.fuse_bias_activation import FuseBiasActivation, onednn_enabled


def test_conv_bias_relu_and_depthwise_and_matmul():
    def fn(x):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, const([3, 3, 4, 8]), 1, "SAME"), const([8], 1)), name="r1")
        y = tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(y, const([3, 3, 8, 1], 2), [1, 1, 1, 1], "SAME"),
                                       const([8], 3)), name="r2")
        z = tf.reshape(y, [-1, 8 * 6 * 6])
        return tf.nn.bias_add(tf.matmul(z, const([288, 5], 4)), const([5], 5), name="logits")
    g = build(fn, [[2, 6, 6, 4]])
    out, res = apply(FuseBiasActivation(), g)
    assert res.counts["fused"] == 3
    assert not {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BiasAdd", "Relu", "Relu6"} & set(ops(out))
    (line,) = lines_with(out, "%r1 = tf._FusedConv2D(")
    assert 'fused_ops = ["BiasAdd", "Relu"]' in line
    assert lines_with(out, "%r2 = tf._FusedDepthwiseConv2dNative(")
    assert lines_with(out, "%logits = tf._FusedMatMul(")
    assert_same_outputs(g, out, rtol=1e-5, atol=1e-5)


def test_residual_add_relu():
    def fn(x):
        y = tf.nn.bias_add(tf.nn.conv2d(x, const([1, 1, 4, 4]), 1, "SAME"), const([4], 1))
        return tf.nn.relu(y + x, name="out_relu")
    g = build(fn, [[2, 5, 5, 4]])
    out, res = apply(FuseBiasActivation(), g)
    (line,) = lines_with(out, "%out_relu = tf._FusedConv2D(")
    want = '["BiasAdd", "Add", "Relu"]' if onednn_enabled() else '["BiasAdd"]'
    assert want in line
    assert_same_outputs(g, out, rtol=1e-5, atol=1e-5)


def test_not_fused_when_conv_output_has_other_readers():
    def fn(x):
        c = tf.nn.conv2d(x, const([1, 1, 4, 4]), 1, "SAME", name="conv")
        return [tf.nn.relu(tf.nn.bias_add(c, const([4], 1))), c * 2.0]
    g = build(fn, [[1, 3, 3, 4]])
    out, res = apply(FuseBiasActivation(), g)
    assert not res.changed and "Conv2D" in ops(out)
