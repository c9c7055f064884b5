"""fold-batch-norms: inference BNs and per-channel affine chains go into conv/matmul weights + one BiasAdd."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, const, lines_with, ops
from graphir.transforms.fold_batch_norms import FoldBatchNorms

raw = tf.raw_ops
C = 6


def _bn_params(seed=1):
    return (const([C], seed, 0.3, 1.0), const([C], seed + 1, 0.5), const([C], seed + 2, 0.5),
            tf.abs(const([C], seed + 3, 0.5, 1.0)))  # gamma, beta, mean, var


def _fused_bn(y, is_training=False, fmt="NHWC", name="bn"):
    g, b, m, v = _bn_params()
    return raw.FusedBatchNormV3(x=y, scale=g, offset=b, mean=m, variance=v, epsilon=1e-3,
                                is_training=is_training, data_format=fmt, name=name)[0]


def _decomposed_bn(y, shape):
    g, b, m, v = _bn_params()
    inv = tf.math.rsqrt(tf.reshape(v, shape) + 1e-3) * tf.reshape(g, shape)
    return y * inv + (tf.reshape(b, shape) - tf.reshape(m, shape) * inv)


def _check_folded(g, out, conv_op):
    assert not {"FusedBatchNormV3", "Rsqrt", "Mul", "Sub"} & set(ops(out))
    assert ops(out).count("BiasAdd") == 1 and ops(out).count(conv_op) == 1
    conv = next(n for n in out.nodes() if n.op_type == conv_op)
    assert conv.inputs[1].node.name.endswith("/folded_weights")
    (user,) = out.users(conv)
    assert user.op_type == "BiasAdd"
    assert_same_outputs(g, out, rtol=1e-4, atol=1e-5)


def test_fused_bn_after_conv_nhwc():
    g = build(lambda x: tf.nn.relu(_fused_bn(tf.nn.conv2d(x, const([3, 3, 4, C]), 1, "SAME", name="conv"))),
              [[2, 8, 8, 4]])
    assert "FusedBatchNormV3" in ops(g)
    out, res = apply(FoldBatchNorms(), g)
    assert res.counts == {"folded": 1, "batch_norms": 1}
    _check_folded(g, out, "Conv2D")
    # the BiasAdd takes the BN's name, so readers and names stay stable
    assert "%Relu = tf.Relu(%bn)" in out.text() and lines_with(out, "%bn = tf.BiasAdd(%conv")


def test_fused_bn_nchw():
    def fn(x):
        y = tf.nn.conv2d(x, const([3, 3, 4, C]), 1, "SAME", data_format="NCHW", name="conv")
        return _fused_bn(y, fmt="NCHW")
    g = build(fn, [[2, 4, 8, 8]])
    out, _ = apply(FoldBatchNorms(), g)
    assert lines_with(out, 'data_format = "NCHW"') and "FusedBatchNormV3" not in ops(out)
    try:
        assert_same_outputs(g, g)
    except tf.errors.OpError:
        pytest.skip("this TF build has no CPU kernel for NCHW Conv2D")
    _check_folded(g, out, "Conv2D")


def test_bias_then_decomposed_bn_depthwise():
    def fn(x):
        y = tf.nn.depthwise_conv2d(x, const([3, 3, 3, 2]), [1, 1, 1, 1], "SAME", name="dw")
        y = tf.nn.bias_add(y, const([C], 9), name="bias")
        return _decomposed_bn(y, [1, 1, 1, C])
    g = build(fn, [[2, 8, 8, 3]])
    assert "Rsqrt" in ops(g)
    out, res = apply(FoldBatchNorms(), g)  # folds the Rsqrt/Sub constants itself first
    assert res.counts["folded"] == 1
    _check_folded(g, out, "DepthwiseConv2dNative")


def test_matmul_decomposed_bn_with_squeeze():
    def fn(x):
        y = tf.matmul(x, const([5, C]), name="mm")
        g_, b, m, v = _bn_params()
        inv = tf.squeeze(tf.reshape(tf.math.rsqrt(v + 1e-3) * g_, [1, C]))
        return y * inv + (b - m * inv)
    g = build(fn, [[3, 5]])
    out, _ = apply(FoldBatchNorms(), g)
    _check_folded(g, out, "MatMul")


def test_training_mode_bn_is_not_folded():
    def fn(x):
        y = tf.nn.conv2d(x, const([1, 1, 4, C]), 1, "SAME", name="conv")
        g_, b, _, _ = _bn_params()
        return raw.FusedBatchNormV3(x=y, scale=g_, offset=b, mean=tf.zeros([0]), variance=tf.zeros([0]),
                                    is_training=True, name="bn")[0]
    g = build(fn, [[2, 4, 4, 4]])
    out, res = apply(FoldBatchNorms(), g)
    assert not res.counts["folded"] and "FusedBatchNormV3" in ops(out)
    assert_same_outputs(g, out)


def test_conv_with_second_reader_is_not_folded():
    def fn(x):
        y = tf.nn.conv2d(x, const([1, 1, 4, C]), 1, "SAME", name="conv")
        return [_fused_bn(y), tf.nn.relu(y)]   # the raw conv output is needed too
    g = build(fn, [[2, 4, 4, 4]])
    out, res = apply(FoldBatchNorms(), g)
    assert not res.counts["folded"] and "FusedBatchNormV3" in ops(out)


def test_non_channel_scale_is_not_folded():
    def fn(x):
        y = tf.nn.conv2d(x, const([1, 1, 4, C]), 1, "SAME", name="conv")
        return y * const([1, 4, 1, 1], 5)          # varies along H, not channels
    g = build(fn, [[2, 4, 4, 4]])
    out, res = apply(FoldBatchNorms(), g)
    assert not res.counts["folded"] and "Mul" in ops(out)


def test_batch_norm_with_global_normalization():
    """The old op only loads from GraphDefs older than version 9, so the graph is written by hand."""
    from tensorflow.core.framework import graph_pb2

    from graphir.frontends.tf import from_graph_def

    rng = np.random.default_rng(0)
    gd = graph_pb2.GraphDef()
    gd.versions.producer = 8

    def node(name, op, inputs=(), **attrs):
        nd = gd.node.add(name=name, op=op)
        nd.input.extend(inputs)
        for k, v in attrs.items():
            av = nd.attr[k]
            if isinstance(v, np.ndarray):
                av.tensor.CopyFrom(tf.make_tensor_proto(v.astype(np.float32)))
            elif isinstance(v, tf.DType):
                av.type = v.as_datatype_enum
            elif isinstance(v, bool):
                av.b = v
            elif isinstance(v, float):
                av.f = v
            elif isinstance(v, str):
                av.s = v.encode()
            elif isinstance(v, list):
                av.list.i.extend(v)
            else:
                av.shape.CopyFrom(tf.TensorShape(v[1]).as_proto())

    f32 = tf.float32
    node("x", "Placeholder", dtype=f32, shape=("shape", [2, 5, 5, 3]))
    node("w", "Const", dtype=f32, value=rng.standard_normal((3, 3, 3, C)))
    node("conv", "Conv2D", ["x", "w"], T=f32, strides=[1, 1, 1, 1], padding="SAME")
    for name, a in [("m", rng.standard_normal(C)), ("v", np.abs(rng.standard_normal(C)) + 0.5),
                    ("beta", rng.standard_normal(C)), ("gamma", rng.standard_normal(C))]:
        node(name, "Const", dtype=f32, value=a)
    node("bn", "BatchNormWithGlobalNormalization", ["conv", "m", "v", "beta", "gamma"], T=f32,
         variance_epsilon=0.001, scale_after_normalization=True)
    node("out0", "Identity", ["bn"], T=f32)
    g = from_graph_def(gd)
    out, res = apply(FoldBatchNorms(), g)
    assert res.counts == {"folded": 1, "batch_norms": 1}
    assert "BatchNormWithGlobalNormalization" not in ops(out) and lines_with(out, "%bn = tf.BiasAdd(%conv")
    assert_same_outputs(g, out, rtol=1e-4, atol=1e-5)
