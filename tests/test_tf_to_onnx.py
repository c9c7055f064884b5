"""tf-to-onnx, converter by converter: each case builds a small TF graph holding the op (and the branch of
its converter) under test, converts it, checks the ONNX model with onnx.checker (full_check) and compares
what ONNX Runtime computes with what TensorFlow computes on the same inputs."""
import numpy as np
import onnx
import pytest
import tensorflow as tf

import graphir
from conftest import build, run_cli
from graphir.backends.onnx import to_model
from graphir.runtime_check.check import check_graphs
from graphir.transforms.tf_to_onnx import ExportError

RTOL, ATOL = 1e-4, 1e-5
F32, I32, I64, BOOL = tf.float32, tf.int32, tf.int64, tf.bool
RNG = np.random.default_rng(0)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def converted(g, opset=17):
    res = graphir.compile(g, passes=f"tf-to-onnx{{opset={opset}}}")
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    assert all(n.domain == "onnx" for n in res.ir.nodes())
    return res.ir


def check(g, opset=17, feeds=None, rtol=RTOL, atol=ATOL, dim=5):
    """Convert ``g``; ORT on the result must match TF on ``g`` (random inputs unless ``feeds``)."""
    ir = converted(g, opset)
    rep = check_graphs(g, ir, feeds_list=None if feeds is None else [feeds], samples=1, dim=dim,
                       rtol=rtol, atol=atol)
    assert rep.ok, rep.format()
    return ir


def case(fn, *shapes, dtypes=None, opset=17, feeds=None, id=None, marks=()):
    return pytest.param(fn, list(shapes), dtypes, opset, feeds, id=id, marks=marks)


def run_case(fn, shapes, dtypes, opset, feeds):
    g = build(fn, shapes, dtypes, prune=True)
    if feeds is not None:
        feeds = {f"x{i}": a for i, a in enumerate(feeds)}
    return check(g, opset, feeds)


# ------------------------------------------------------------------------------------------ convolution
W = {k: rand(*k, scale=0.3) for k in [(3, 3, 3, 4), (3, 2, 3, 4), (1, 1, 3, 4), (5, 5, 3, 2), (3, 3, 2, 4),
                                      (3, 3, 3, 1), (3, 3, 3, 2), (3, 3, 4, 3), (2, 2, 4, 3)]}


def conv(k, strides=1, padding="SAME", dilations=1):
    return lambda x: tf.nn.conv2d(x, W[k], strides, padding, dilations=dilations)


CONV = [
    case(conv((3, 3, 3, 4)), [None, 7, 9, 3], id="conv-same-dynamic-batch"),
    case(conv((3, 3, 3, 4), 2), [2, 7, 9, 3], id="conv-same-stride2-odd"),
    case(conv((3, 2, 3, 4), [2, 3]), [1, 8, 9, 3], id="conv-same-stride23-rect-kernel"),
    case(conv((3, 3, 3, 4), 1, "VALID"), [None, 7, 9, 3], id="conv-valid"),
    case(conv((3, 3, 3, 4), 2, "VALID"), [1, 8, 9, 3], id="conv-valid-stride2"),
    case(conv((5, 5, 3, 2), 1, "SAME", 2), [1, 9, 10, 3], id="conv-same-dilated"),
    case(conv((3, 3, 3, 4), 1, "VALID", [2, 3]), [1, 9, 10, 3], id="conv-valid-dilated"),
    case(conv((3, 3, 3, 4), 2, [[0, 0], [1, 2], [0, 3], [0, 0]]), [None, 7, 8, 3], id="conv-explicit"),
    case(conv((1, 1, 3, 4)), [None, None, None, 3], id="conv-1x1-dynamic-spatial"),
    case(conv((3, 3, 3, 4), 2), [None, None, None, 3], id="conv-same-dynamic-spatial"),
    case(conv((5, 5, 3, 2), 1, "SAME", 2), [None, None, None, 3], id="conv-same-dilated-dynamic-spatial"),
    case(conv((3, 3, 2, 4)), [1, 6, 6, 4], id="conv-grouped"),
    case(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), [1, 6, 6, 3], [3, 3, 3, 2], id="conv-filter-input"),
]


def depthwise(k, strides=1, padding="SAME", dilations=None):
    return lambda x: tf.nn.depthwise_conv2d(x, W[k], [1, strides, strides, 1], padding, dilations=dilations)


DEPTHWISE = [
    case(depthwise((3, 3, 3, 1)), [None, 7, 9, 3], id="depthwise-m1"),
    case(depthwise((3, 3, 3, 2), 2), [1, 7, 9, 3], id="depthwise-m2-stride2"),
    case(depthwise((3, 3, 3, 2), 1, "VALID"), [1, 7, 9, 3], id="depthwise-m2-valid"),
    case(depthwise((3, 3, 3, 1), 1, "SAME", [2, 2]), [1, 9, 9, 3], id="depthwise-dilated"),
    case(depthwise((3, 3, 3, 2), 1, "VALID", [2, 3]), [None, 10, 11, 3], id="depthwise-dilated-dynamic-batch"),
    case(lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"), [1, 6, 6, 3], [3, 3, 3, 2],
         id="depthwise-filter-input"),
]


def conv_transpose(k, out, strides, padding):
    def fn(x):
        shape = tf.stack([tf.shape(x)[0], *out, k[2]]) if x.shape[0] is None else [x.shape[0], *out, k[2]]
        return tf.nn.conv2d_transpose(x, W[k], shape, strides, padding)
    return fn


CONV_TRANSPOSE = [
    case(conv_transpose((3, 3, 4, 3), [8, 10], 2, "SAME"), [1, 4, 5, 3], id="convT-same-even"),
    case(conv_transpose((3, 3, 4, 3), [7, 9], 2, "SAME"), [1, 4, 5, 3], id="convT-same-odd"),
    case(conv_transpose((3, 3, 4, 3), [9, 11], 2, "VALID"), [1, 4, 5, 3], id="convT-valid"),
    case(conv_transpose((3, 3, 4, 3), [10, 12], 2, "VALID"), [1, 4, 5, 3], id="convT-valid-extra"),
    case(conv_transpose((2, 2, 4, 3), [8, 10], 2, "SAME"), [None, 4, 5, 3], id="convT-dynamic-batch"),
    case(conv_transpose((3, 3, 4, 3), [5, 6], 1, "SAME"), [2, 5, 6, 3], id="convT-stride1"),
    case(conv_transpose((3, 3, 4, 3), [7, 9], 2, "SAME"), [1, None, None, 3], feeds=[rand(1, 4, 5, 3)],
         id="convT-same-dynamic-spatial"),
    case(conv_transpose((3, 3, 4, 3), [9, 11], 2, "VALID"), [1, None, None, 3], feeds=[rand(1, 4, 5, 3)],
         id="convT-valid-dynamic-spatial"),
]

W3 = rand(3, 2, 3, 4, 5, scale=0.3)
POOL = [
    case(lambda x: tf.nn.conv3d(x, W3, [1, 2, 1, 2, 1], "SAME"), [None, 5, 6, 7, 4], id="conv3d-same"),
    case(lambda x: tf.nn.conv3d(x, W3, [1, 1, 1, 1, 1], "VALID", dilations=[1, 2, 1, 1, 1]), [1, 5, 6, 7, 4],
         id="conv3d-valid-dilated"),
    case(lambda x: tf.nn.max_pool3d(x, 3, 2, "SAME"), [None, 5, 6, 7, 2], id="maxpool3d-same"),
    case(lambda x: tf.nn.avg_pool3d(x, [2, 3, 2], [1, 2, 2], "SAME"), [1, 5, 6, 7, 2], id="avgpool3d-same"),
    case(lambda x: tf.nn.avg_pool3d(x, 2, 2, "VALID"), [1, 5, 6, 7, 2], id="avgpool3d-valid"),
    case(lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), [None, 7, 8, 3], id="maxpool-same"),
    case(lambda x: tf.nn.max_pool2d(x, 3, 2, "VALID"), [1, 7, 8, 3], id="maxpool-valid"),
    case(lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME"), [None, 7, 8, 3], id="avgpool-same"),
    case(lambda x: tf.nn.avg_pool2d(x, [2, 3], [1, 2], "VALID"), [1, 7, 8, 3], id="avgpool-valid"),
    case(lambda x: tf.nn.avg_pool2d(x, 3, 1, "SAME"), [1, None, None, 3], id="avgpool-dynamic-spatial"),
]


def batch_norm(x):
    c = x.shape[-1]
    y, *_ = tf.raw_ops.FusedBatchNormV3(x=x, scale=rand(c) + 1, offset=rand(c), mean=rand(c),
                                         variance=np.abs(rand(c)) + 0.5, epsilon=1e-3, is_training=False)
    return y


NORM = [
    case(lambda x: tf.raw_ops.FusedBatchNorm(x=x, scale=rand(4) + 1, offset=rand(4), mean=rand(4),
                                             variance=np.abs(rand(4)) + .5, is_training=False)[0], [2, 3, 3, 4],
         id="fused-batch-norm-v1"),
    case(lambda x: tf.raw_ops.FusedBatchNormV2(x=x, scale=rand(4) + 1, offset=rand(4), mean=rand(4),
                                               variance=np.abs(rand(4)) + .5, is_training=False)[0], [2, 3, 3, 4],
         id="fused-batch-norm-v2"),
    case(batch_norm, [None, 5, 6, 4], id="fused-batch-norm"),
    case(lambda x, s, o, m, v: tf.raw_ops.FusedBatchNormV3(x=x, scale=s, offset=o, mean=m, variance=tf.abs(v),
                                                            is_training=False)[0],
         [2, 3, 3, 4], [4], [4], [4], [4], id="fused-batch-norm-inputs"),
]

ACT = [case(lambda x, f=f: f(x), [2, 3, 4], id=name) for name, f in [
    ("relu", tf.nn.relu), ("relu6", lambda x: tf.nn.relu6(x * 5)), ("elu", tf.nn.elu), ("selu", tf.nn.selu),
    ("softplus", tf.nn.softplus), ("softsign", tf.nn.softsign), ("sigmoid", tf.sigmoid), ("tanh", tf.tanh),
    ("leaky-relu", lambda x: tf.nn.leaky_relu(x, 0.3)), ("softmax", tf.nn.softmax),
    ("log-softmax", tf.nn.log_softmax), ("softplus-large", lambda x: tf.nn.softplus(x * 100)),
    ("sigmoid-large", lambda x: tf.sigmoid(x * 100)), ("elu-large", lambda x: tf.nn.elu(x * 100)),
    ("erf", tf.math.erf), ("erfc", tf.math.erfc)]]


def resize(method, size, align, half):
    op = {"bilinear": tf.raw_ops.ResizeBilinear, "nearest": tf.raw_ops.ResizeNearestNeighbor,
          "bicubic": tf.raw_ops.ResizeBicubic}[method]
    return lambda x: op(images=x, size=size, align_corners=align, half_pixel_centers=half)


RESIZE = [case(lambda x, y: tf.image.resize(x, tf.shape(y)[1:3]), [None, 5, 7, 2], [1, 8, 9],
               id="resize-dynamic-size")]
RESIZE += [case(resize(m, size, a, h), [None, 5, 7, 2], id=f"resize-{m}-{size[0]}x{size[1]}-{tag}")
          for m in ("bilinear", "nearest") for size in ([10, 14], [7, 3], [1, 1], [5, 7])
          for a, h, tag in ((False, False, "asymmetric"), (True, False, "align"), (False, True, "half"))]


@pytest.mark.parametrize("size", [[10, 14], [7, 3], [1, 1]])
@pytest.mark.parametrize("align,half", [(False, False), (True, False), (False, True)])
def test_resize_bicubic(size, align, half):
    """TF's bicubic kernel reads its weights from a table of 1024 positions per pixel, so outputs off those
    positions differ from the exact cubic by up to ~1e-3 (a wrong coordinate mode or coefficient is ~1e-1)."""
    g = build(resize("bicubic", size, align, half), [[None, 5, 7, 2]], prune=True)
    check(g, rtol=3e-3, atol=3e-3)


def test_export_pipeline_slices_by_a_dynamic_length():
    """The export pipeline folds the spec TF packs from constants; the end stays a tensor."""
    g = build(lambda x, y: x[:, :tf.shape(y)[1]] * 2.0, [[2, 6, 3], [2, None]], prune=True)
    res = graphir.compile(g, export="onnx", opset=17)
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    assert "Slice" in res.ir.op_histogram()
    rep = check_graphs(g, res.ir, samples=1, dim=4, rtol=RTOL, atol=ATOL)
    assert rep.ok, rep.format()


@pytest.mark.parametrize("fn,shapes,dtypes,opset,feeds", CONV + DEPTHWISE + CONV_TRANSPOSE + POOL + NORM + ACT
                         + RESIZE)
def test_nn(fn, shapes, dtypes, opset, feeds):
    run_case(fn, shapes, dtypes, opset, feeds)


def test_layout_is_transposed_around_the_conv_only():
    g = build(conv((3, 3, 3, 4)), [[None, 7, 9, 3]], prune=True)
    ir = check(g)
    assert ir.op_histogram() == {"Transpose": 2, "Conv": 1, "Identity": 1}
    (c,) = [n for n in ir.nodes() if n.op_type == "Conv"]
    assert c.attrs["pads"] == [1, 1, 1, 1]


# ------------------------------------------------------------------------------------------ fused TF ops
def fused_graph(op, fused_ops, *, depthwise=False, matmul=False, batch=None, **attrs):
    """A GraphDef with one ``op`` node (TF's fused kernels have no Python wrapper) fed by a placeholder,
    constants for the filter and the fused arguments, and for an ``Add`` a second placeholder."""
    from graphir.frontends.tf import from_graph_def

    g = tf.Graph()
    with g.as_default():
        if matmul:
            tf.compat.v1.placeholder(F32, [batch, 6], name="x0")
            tf.constant(rand(6, 5), name="w")
            cout = 5
        else:
            tf.compat.v1.placeholder(F32, [batch, 7, 8, 3], name="x0")
            tf.constant(rand(3, 3, 3, 2 if depthwise else 4, scale=0.3), name="w")
            cout = 6 if depthwise else 4
        args = []
        for f in fused_ops:
            if f == "BiasAdd":
                args.append(tf.constant(rand(cout), name="bias"))
            elif f == "FusedBatchNorm":
                args += [tf.constant(rand(cout) + 1, name="scale"), tf.constant(rand(cout), name="offset"),
                         tf.constant(rand(cout), name="mean"), tf.constant(np.abs(rand(cout)) + .5, name="var")]
            elif f == "Add":
                out_shape = [batch, 5] if matmul else [batch, 4 if attrs.get("strides") else 7,
                                                     4 if attrs.get("strides") else 8, cout]
                args.append(tf.compat.v1.placeholder(F32, out_shape, name="x1"))
    gd = g.as_graph_def()
    nd = gd.node.add()
    nd.name, nd.op = "fused", op
    nd.input.extend(["x0", "w"] + [a.op.name for a in args])
    nd.attr["T"].type = tf.float32.as_datatype_enum
    nd.attr["num_args"].i = len(args)
    nd.attr["TArgs"].list.type.extend([tf.float32.as_datatype_enum] * len(args))
    nd.attr["fused_ops"].list.s.extend(f.encode() for f in fused_ops)
    if not matmul:
        strides = attrs.pop("strides", 1)
        nd.attr["strides"].list.i.extend([1, strides, strides, 1])
        nd.attr["padding"].s = attrs.pop("padding", "SAME").encode()
        nd.attr["data_format"].s = b"NHWC"
        nd.attr["dilations"].list.i.extend([1, 1, 1, 1])
    for k, v in attrs.items():
        if isinstance(v, bool):
            nd.attr[k].b = v
        else:
            nd.attr[k].f = v
    out = gd.node.add()
    out.name, out.op = "out0", "Identity"
    out.input.append("fused")
    out.attr["T"].type = tf.float32.as_datatype_enum
    ins = ["x0"] + (["x1"] if "Add" in fused_ops else [])
    return from_graph_def(gd, inputs=ins, outputs=["out0"])


ACTS = ["Relu", "Relu6", "Elu", "LeakyRelu"]
FUSED = (
    [pytest.param("_FusedConv2D", ops, {}, id="conv-" + "+".join(ops)) for ops in
     [["BiasAdd"]] + [["BiasAdd", a] for a in ACTS + ["_MklSwish", "Mish", "_FusedHardSwish"]]
     + [["BiasAdd", "Add"]] + [["BiasAdd", "Add", a] for a in ACTS]
     + [["FusedBatchNorm"]] + [["FusedBatchNorm", a] for a in ACTS]]
    + [pytest.param("_FusedConv2D", ["BiasAdd", "Relu"], {"strides": 2, "padding": "VALID"}, id="conv-valid-s2"),
       pytest.param("_FusedConv2D", ["BiasAdd", "Add", "Relu"], {"strides": 2}, id="conv-add-s2")]
    + [pytest.param("_FusedDepthwiseConv2dNative", ops, {"depthwise": True}, id="depthwise-" + "+".join(ops))
       for ops in [["BiasAdd"]] + [["BiasAdd", a] for a in ["Relu", "Relu6", "Elu", "_FusedHardSwish"]]]
    + [pytest.param("_FusedMatMul", ops, {"matmul": True}, id="matmul-" + "+".join(ops)) for ops in
       [["BiasAdd"]] + [["BiasAdd", a] for a in ACTS + ["Sigmoid", "Tanh", "GeluExact", "GeluApproximate"]]
       + [["BiasAdd", "Add"]]]
    + [pytest.param("_FusedMatMul", ["BiasAdd", "GeluApproximate"], {"matmul": True, "opset": 20},
                    id="matmul-gelu-opset20"),
       pytest.param("_FusedMatMul", ["BiasAdd", "GeluExact"], {"matmul": True, "opset": 20},
                    id="matmul-gelu-exact-opset20")]
    + [pytest.param("_FusedConv2D", ["BiasAdd", a], {"opset": 13}, id=f"conv-{a}-opset13")
       for a in ("_FusedHardSwish", "_MklSwish", "Mish", "Relu6")]
    + [pytest.param("_FusedMatMul", ["BiasAdd", a], {"matmul": True, "opset": 13}, id=f"matmul-{a}-opset13")
       for a in ("GeluExact", "GeluApproximate")]
)


@pytest.mark.parametrize("op,fused_ops,kw", FUSED)
def test_fused(op, fused_ops, kw):
    kw = dict(kw)
    opset = kw.pop("opset", 17)
    if "LeakyRelu" in fused_ops:
        kw["leakyrelu_alpha"] = 0.25
    if "FusedBatchNorm" in fused_ops:
        kw["epsilon"] = 1e-3
    check(fused_graph(op, fused_ops, batch=None, **kw), opset)


def _fused_node(make_inputs, op: str, inputs: list):
    """A GraphDef of what ``make_inputs()`` builds plus a float32 node ``out0`` of ``op`` (a fused op no
    public TF API emits) reading ``inputs``; returns the GraphDef and that NodeDef to set attributes on."""
    g = tf.Graph()
    with g.as_default():
        make_inputs()
    gd = g.as_graph_def()
    nd = gd.node.add()
    nd.name, nd.op = "out0", op
    nd.input.extend(inputs)
    nd.attr["T"].type = tf.float32.as_datatype_enum
    return gd, nd


def test_fused_matmul_transposed_weights():
    from graphir.frontends.tf import from_graph_def

    def inputs():
        tf.compat.v1.placeholder(F32, [None, 6], name="x0")
        tf.constant(rand(5, 6), name="w")
        tf.constant(rand(5), name="b")

    gd, nd = _fused_node(inputs, "_FusedMatMul", ["x0", "w", "b"])
    nd.attr["num_args"].i = 1
    nd.attr["TArgs"].list.type.append(tf.float32.as_datatype_enum)
    nd.attr["transpose_b"].b = True
    nd.attr["fused_ops"].list.s.extend([b"BiasAdd", b"Relu"])
    check(from_graph_def(gd, inputs=["x0"], outputs=["out0"]))


def test_lowered_graph_converts():
    """What lower-onednn emits (target native) converts, and computes what the unlowered graph did."""
    def fn(x):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, W[(3, 3, 3, 4)], 1, "SAME"), rand(4)))
        y = tf.reshape(tf.reduce_mean(y, [1, 2]), [-1, 4])
        return tf.tanh(tf.matmul(y, rand(4, 3)) + rand(3))
    g = build(fn, [[None, 6, 6, 3]], prune=True)
    low = graphir.compile(g, target="native").ir
    assert {"_FusedConv2D", "_FusedMatMul"} <= {n.op_type for n in low.nodes()}
    ir = converted(low)
    rep = check_graphs(g, ir, samples=2, rtol=RTOL, atol=ATOL)
    assert rep.ok, rep.format()


def test_fused_batch_matmul():
    """oneDNN's _MklFusedBatchMatMulV2 (attention scores: scaled and masked), as lower-onednn emits it."""
    from graphir.frontends.tf import from_graph_def

    def inputs():
        tf.compat.v1.placeholder(F32, [None, 2, 3, 4], name="x0")
        tf.compat.v1.placeholder(F32, [None, 2, 5, 4], name="x1")
        tf.constant(np.float32(0.5), name="scale")
        tf.compat.v1.placeholder(F32, [None, 1, 1, 5], name="x2")

    gd, nd = _fused_node(inputs, "_MklFusedBatchMatMulV2", ["x0", "x1", "scale", "x2"])
    nd.attr["adj_y"].b = True
    nd.attr["num_args"].i = 2
    nd.attr["fused_ops"].list.s.extend([b"Mul", b"Add"])
    check(from_graph_def(gd, inputs=["x0", "x1", "x2"], outputs=["out0"]))


def test_layer_norm():
    from graphir.frontends.tf import from_graph_def

    def inputs():
        tf.compat.v1.placeholder(F32, [None, 3, 8], name="x0")
        tf.constant(rand(8) + 1, name="s")
        tf.constant(rand(8), name="o")

    gd, nd = _fused_node(inputs, "_MklLayerNorm", ["x0", "s", "o"])
    nd.attr["epsilon"].f = 1e-3
    ln = from_graph_def(gd, inputs=["x0"], outputs=["out0"])
    for opset in (13, 17):
        check(ln, opset)


# ------------------------------------------------------------------------------------------ math
B = rand(4, 5)


def ints(*shape, lo=-7, hi=8):
    a = RNG.integers(lo, hi, shape).astype(np.int32)
    return a


def nonzero_ints(*shape):
    a = ints(*shape)
    a[a == 0] = 3
    return a


BINARY = [case(lambda x, y, f=f: f(x, y), [2, 3, 4], [3, 4], id=name) for name, f in [
    ("add", tf.add), ("sub", tf.subtract), ("mul", tf.multiply), ("realdiv", tf.math.truediv),
    ("maximum", tf.maximum), ("minimum", tf.minimum), ("squared-difference", tf.math.squared_difference),
    ("pow", lambda x, y: tf.pow(tf.abs(x) + 0.5, y)), ("equal", lambda x, y: tf.equal(tf.round(x), tf.round(y))),
    ("not-equal", lambda x, y: tf.not_equal(tf.round(x), tf.round(y))), ("greater", tf.greater),
    ("greater-equal", tf.greater_equal), ("less", tf.less), ("less-equal", tf.less_equal),
    ("logical", lambda x, y: tf.logical_or(tf.logical_and(x > 0, y > 0), tf.logical_not(x > y))),
    ("div-no-nan", lambda x, y: tf.math.divide_no_nan(x, y * tf.cast(x > 0, F32))),
    ("mul-no-nan", lambda x, y: tf.math.multiply_no_nan(x / y * tf.cast(y > 0, F32), y * tf.cast(x > 0, F32))),
    ("floordiv-float", tf.math.floordiv), ("floormod-float", tf.math.floormod),
    ("floormod-large", lambda x, y: tf.math.floormod(x * 1000, y)),
    ("mod-float", lambda x, y: tf.raw_ops.Mod(x=x, y=y)),
    ("div-float", lambda x, y: tf.raw_ops.Div(x=x, y=y)), ("clip", lambda x, y: tf.clip_by_value(x, -0.5, 0.5)),
    ("clip-tensors", lambda x, y: tf.clip_by_value(x, -tf.abs(y), tf.abs(y)))]]

INT_BINARY = [case(lambda x, y, f=f: f(x, y), [4, 5], [4, 5], dtypes=[I32, I32],
                   feeds=[ints(4, 5), nonzero_ints(4, 5)], id=name) for name, f in [
    ("floordiv-int", tf.math.floordiv), ("floormod-int", tf.math.floormod),
    ("div-int", lambda x, y: tf.raw_ops.Div(x=x, y=y)), ("truncatediv-int", tf.truncatediv),
    ("truncatemod-int", tf.truncatemod), ("mod-int", lambda x, y: tf.raw_ops.Mod(x=x, y=y)), ("add-int", tf.add),
    ("maximum-int", tf.maximum)]]

BITWISE = [case(lambda x, y, f=f: f(x, y), [4], [4], dtypes=[I32, I32], opset=18,
                feeds=[ints(4), ints(4)], id=name) for name, f in [
    ("bitwise-and", tf.bitwise.bitwise_and), ("bitwise-or", tf.bitwise.bitwise_or),
    ("bitwise-xor", tf.bitwise.bitwise_xor), ("invert", lambda x, y: tf.bitwise.invert(x))]]

UNARY = [case(lambda x, f=f: f(x), [3, 4], id=name) for name, f in [
    ("abs", tf.abs), ("neg", tf.negative), ("exp", tf.exp), ("log", lambda x: tf.math.log(tf.abs(x) + .1)),
    ("sqrt", lambda x: tf.sqrt(tf.abs(x))), ("rsqrt", lambda x: tf.math.rsqrt(tf.abs(x) + .1)),
    ("reciprocal", lambda x: tf.math.reciprocal(x + 3.)), ("square", tf.square), ("floor", tf.floor),
    ("ceil", tf.math.ceil), ("round", lambda x: tf.round(x * 4)), ("sign", tf.sign),
    ("sin", tf.sin), ("cos", tf.cos), ("tan", tf.tan), ("asin", lambda x: tf.asin(tf.tanh(x))),
    ("acos", lambda x: tf.acos(tf.tanh(x))), ("atan", tf.atan), ("sinh", tf.sinh), ("cosh", tf.cosh),
    ("asinh", tf.asinh), ("acosh", lambda x: tf.acosh(tf.abs(x) + 1)), ("atanh", lambda x: tf.atanh(tf.tanh(x))),
    ("log1p", lambda x: tf.math.log1p(tf.abs(x))), ("expm1", tf.math.expm1),
    ("is-nan", lambda x: tf.math.is_nan(tf.sqrt(x))), ("is-inf", lambda x: tf.math.is_inf(1 / tf.round(x))),
    ("is-finite", lambda x: tf.math.is_finite(tf.math.log(x))),
    ("identity", lambda x: tf.stop_gradient(tf.identity(x))), ("add-n", lambda x: tf.add_n([x, x * 2, x])),
    ("bias-add", lambda x: tf.nn.bias_add(x, rand(4))),
    ("bias-add-nchw", lambda x: tf.nn.bias_add(tf.reshape(x, [1, 3, 2, 2]), rand(3), data_format="NCHW")),
    ("cast-from-bool", lambda x: tf.cast(x > 0, F32)), ("inv", lambda x: tf.raw_ops.Inv(x=x + 3.)),
    ("identity-n", lambda x: tf.identity_n([x, x * 2])),
    ("pass-through", lambda x: tf.raw_ops.Snapshot(input=tf.raw_ops.PreventGradient(input=tf.raw_ops.CheckNumerics(
        tensor=tf.raw_ops.EnsureShape(input=x, shape=[3, 4]), message="m")))),
    ("placeholder-with-default", lambda x: x + tf.raw_ops.PlaceholderWithDefault(input=rand(3, 4), shape=[3, 4])),
    ("raw-add", lambda x: tf.raw_ops.Add(x=x, y=x)),
    ("bias-add-v1", lambda x: tf.raw_ops.BiasAddV1(value=x, bias=rand(4))),
    ("clip-by-value", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=0.5)),
    ("clip-by-value-tensors", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=-tf.abs(tf.reverse(x, [0])),
                                                               clip_value_max=tf.abs(tf.reverse(x, [1])))),
    ("cast-int", lambda x: tf.cast(x * 3, I32)),
    ("cast-bool", lambda x: tf.cast(tf.round(x), BOOL)), ("cast-f16", lambda x: tf.cast(x, tf.float16)),
    ("atan2", lambda x: tf.atan2(x, x[::-1])),
    ("select-vector", lambda x: tf.raw_ops.Select(condition=x[:, 0] > 0, x=x, y=-x)),
    ("select-same", lambda x: tf.raw_ops.Select(condition=x > 0, x=x, y=x * 2)),
    ("selectv2-broadcast", lambda x: tf.where(x[:1] > 0, x, 0.5)),
    ("cumsum", lambda x: tf.cumsum(x, 1)), ("cumsum-exclusive-reverse", lambda x: tf.cumsum(x, -1, True, True)),
    ("argmax", lambda x: tf.argmax(x, 1)), ("argmin-i32", lambda x: tf.argmin(x, 0, output_type=I32))]]

MATMUL = [
    case(lambda x, y: tf.matmul(x, y), [3, 4], [4, 5], id="matmul"),
    case(lambda x, y: tf.matmul(x, y, transpose_a=True), [4, 3], [4, 5], id="matmul-ta"),
    case(lambda x, y: tf.matmul(x, y, transpose_b=True), [3, 4], [5, 4], id="matmul-tb"),
    case(lambda x, y: tf.matmul(x, y, transpose_a=True, transpose_b=True), [4, 3], [5, 4], id="matmul-ta-tb"),
    case(lambda x: tf.matmul(x, B), [None, 4], id="matmul-const"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y), [2, 3, 4], [2, 4, 5], id="bmm"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y, adj_x=True), [2, 4, 3], [2, 4, 5], id="bmm-adj-x"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y, adj_y=True), [2, 3, 4], [2, 5, 4], id="bmm-adj-y"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y, adj_x=True, adj_y=True), [2, 4, 3], [5, 4],
         id="bmm-adj-both-broadcast"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y), [2, 1, 3, 4], [5, 4, 6], id="bmm-broadcast"),
    case(lambda x, y: tf.raw_ops.BatchMatMulV3(x=x, y=y, Tout=F32), [None, 3, 4], [4, 5], id="bmm-v3"),
    case(lambda x, y: tf.einsum("bij,bjk->bik", x, y), [2, 3, 4], [2, 4, 5], id="einsum"),
    case(lambda x: tf.einsum("bhqd,dk->bhqk", x, B), [2, 2, 3, 4], id="einsum-const"),
    case(lambda x, y: tf.einsum("...ij,...jk->...ik", x, y), [2, 3, 4], [2, 4, 5], id="einsum-ellipsis"),
    case(lambda x, y: tf.raw_ops.BatchMatMul(x=x, y=y, adj_y=True), [2, 3, 4], [2, 5, 4], id="bmm-v1"),
]


def l2_norm(x, axes, keepdims):
    return tf.raw_ops.EuclideanNorm(input=x, axis=axes, keep_dims=keepdims)


def reduction(f, axes, keep):
    return lambda x: f(x, axes, keepdims=keep)


REDUCE = [case(reduction(f, axes, keep), [2, 3, 4], opset=opset, id=f"{name}-{axes}-keep{int(keep)}-op{opset}")
          for name, f in [("sum", tf.reduce_sum), ("mean", tf.reduce_mean), ("max", tf.reduce_max),
                          ("min", tf.reduce_min), ("prod", tf.reduce_prod), ("l2", l2_norm)]
          for axes, keep, opset in [([1], False, 13), ([-1, 0], True, 13), ([1], True, 18), ([0, 2], False, 18)]]
REDUCE += [case(lambda x, f=f, keep=keep: f(x > 0, [1], keepdims=keep), [2, 3, 4], opset=opset,
                id=f"{f.__name__}-keep{int(keep)}-op{opset}")
           for f in (tf.reduce_all, tf.reduce_any) for keep in (False, True) for opset in (13, 18)]
REDUCE += [case(lambda x: tf.reduce_sum(x, []), [2, 3], id="sum-no-axes"),
           case(lambda x: tf.reduce_sum(tf.cast(x > 0, I32), [0, 1]), [2, 3], id="sum-int"),
           case(lambda x: tf.reduce_mean(x, [1, 2]), [None, 5, 6, 3], id="mean-spatial")]


@pytest.mark.parametrize("fn,shapes,dtypes,opset,feeds", BINARY + INT_BINARY + BITWISE + UNARY + MATMUL + REDUCE)
def test_math(fn, shapes, dtypes, opset, feeds):
    run_case(fn, shapes, dtypes, opset, feeds)


# ------------------------------------------------------------------------------------------ array
ARRAY = [
    case(lambda x: tf.reshape(x, [-1, 6]), [None, 2, 3], id="reshape"),
    case(lambda x: tf.reshape(x, tf.concat([tf.shape(x)[2:], [-1]], 0)), [2, 3, 4], id="reshape-dynamic"),
    case(lambda x: tf.reshape(x, tf.stack([tf.shape(x)[0], -1])), [None, 3, 4], id="reshape-dynamic-batch"),
    case(lambda x: tf.transpose(x, [2, 0, 1]), [2, 3, 4], id="transpose"),
    case(lambda x, y: tf.concat([x, y, x], -1), [2, 3], [2, 1], id="concat-negative-axis"),
    case(lambda x: tf.concat([x], 0), [2, 3], id="concat-one"),
    case(lambda x, y: tf.raw_ops.Concat(concat_dim=1, values=[x, y]), [2, 3], [2, 2], id="concat-v1"),
    case(lambda x, y: tf.stack([x, y], -1), [2, 3], [2, 3], id="pack-last"),
    case(lambda x, y: tf.stack([x, y], 0), [2, 3], [2, 3], id="pack-first"),
    case(lambda x: tf.stack([x], 1), [2, 3], id="pack-one"),
    case(lambda x: tf.stack([tf.reduce_sum(x), tf.reduce_max(x)]), [2, 3], id="pack-scalars"),
    case(lambda x: tf.unstack(x, axis=1), [2, 3, 4], id="unpack"),
    case(lambda x: tf.unstack(x, axis=-1), [2, 3, 2], id="unpack-last"),
    case(lambda x: tf.unstack(x, axis=0), [1, 3], id="unpack-one"),
    case(lambda x: tf.expand_dims(x, -1), [2, 3], id="expand-dims-last"),
    case(lambda x: tf.expand_dims(x, 1), [None, 3], id="expand-dims"),
    case(lambda x: tf.squeeze(x, [1, -1]), [2, 1, 3, 1], id="squeeze-axes"),
    case(lambda x: tf.squeeze(x), [2, 1, 3, 1], id="squeeze-all"),
    case(lambda x: tf.slice(x, [0, 1, 1], [-1, -1, 2]), [None, 3, 4], id="slice-minus-one"),
    case(lambda x: tf.slice(x, [1, 0, 2], [1, 2, -1]), [2, 3, 4], id="slice"),
    case(lambda x, b: tf.slice(x, b, [-1, 2]), [4, 5], [2], dtypes=[F32, I32],
         feeds=[rand(4, 5), np.array([1, 2], np.int32)], id="slice-dynamic"),
    case(lambda x: x[1:, ::2, -3:-1], [3, 5, 6], id="ss-basic"),
    case(lambda x: x[::-1, 3:0:-2], [3, 5], id="ss-negative-stride"),
    case(lambda x: x[:, -1], [3, 5], id="ss-shrink-last"),
    case(lambda x: x[1, :, 2], [3, 5, 4], id="ss-shrink-two"),
    case(lambda x: x[..., 1:3], [2, 3, 5], id="ss-ellipsis"),
    case(lambda x: x[1, ..., ::-1], [2, 3, 5], id="ss-ellipsis-shrink-reverse"),
    case(lambda x: x[:, tf.newaxis, 1:], [2, 3], id="ss-new-axis"),
    case(lambda x: x[tf.newaxis, ..., tf.newaxis, 0], [2, 3], id="ss-new-axis-ellipsis-shrink"),
    case(lambda x: x[:-1], [None, 4], id="ss-dynamic-batch"),
    case(lambda x: x[-2::-1, 1::-1], [4, 5], id="ss-negative-begin-stride"),
    case(lambda x: tf.strided_slice(x, [1, 0], [0, 5], [1, 1], begin_mask=1, end_mask=1), [4, 5],
         id="ss-masks-override"),
    case(lambda x: tf.strided_slice(x, [2, 1], [0, 0], [1, 1], begin_mask=1, shrink_axis_mask=3), [4, 5],
         id="ss-begin-mask-ignored-on-shrunk-dims"),
    case(lambda x, y: tf.strided_slice(x, [0, 0], tf.stack([0, tf.shape(y)[1]]), [1, 1], begin_mask=3, end_mask=1),
         [2, 6, 3], [2, None], id="ss-dynamic-end"),
    case(lambda x, y: tf.strided_slice(x, tf.stack([tf.shape(y)[0] - 4, 1]), [0, 2], [1, 1], end_mask=1,
                                       shrink_axis_mask=2), [5, 6], [None], id="ss-dynamic-begin"),
    case(lambda x, i: x[i[0]], [4, 3], [1], dtypes=[F32, I32], feeds=[rand(4, 3), np.array([-1], np.int32)],
         id="ss-dynamic-shrink-minus-one"),
    case(lambda x, i: x[:, i[0]], [4, 3], [1], dtypes=[F32, I32], feeds=[rand(4, 3), np.array([1], np.int32)],
         id="ss-dynamic-shrink"),
    case(lambda x: tf.nn.relu(conv((3, 3, 3, 4))(x))[..., 1:3], [None, 5, 6, 3], id="ss-ellipsis-after-conv"),
    case(lambda x: tf.gather(x, [2, 0, 1, 2], axis=1), [2, 3, 4], id="gather-axis1"),
    case(lambda x, i: tf.gather(x, i), [4, 3], [2, 5], dtypes=[F32, I32], id="gather-indices"),
    case(lambda x, i: tf.raw_ops.Gather(params=x, indices=i), [4, 3], [5], dtypes=[F32, I32], id="gather-v1"),
    case(lambda x: tf.gather(x, -1 + tf.zeros([2], I32) + 2, axis=-1), [2, 3], id="gather-negative-axis"),
    case(lambda x: tf.gather_nd(x, [[0, 1], [1, 2]]), [2, 3, 4], id="gather-nd"),
    case(lambda x, i: tf.gather(x, i, batch_dims=1, axis=1), [2, 5, 3], [2, 4], dtypes=[F32, I32],
         id="gather-batch-dims"),
    case(lambda x, i: tf.gather(x, i, batch_dims=-1), [2, 5], [2, 3], dtypes=[F32, I32], id="gather-batch-dims-last"),
    case(lambda x: tf.reverse(x, [0, -1]), [2, 3, 4], id="reverse"),
    case(lambda x: tf.roll(x, [1, -7, 2], [0, 2, 0]), [4, 3, 5], id="roll"),
    case(lambda x: tf.roll(x, 3, 1), [None, 3], id="roll-full-turn"),
    case(lambda x: tf.pad(x, [[0, 1], [2, 0], [1, 1]]), [2, 3, 4], id="pad"),
    case(lambda x: tf.pad(x, [[0, 1], [2, 0]], constant_values=1.5), [2, 3], id="padv2"),
    case(lambda x: tf.pad(x, [[1, 1], [2, 1]], "REFLECT"), [3, 4], id="mirror-pad-reflect"),
    case(lambda x: tf.pad(x, [[1, 1], [2, 0], [0, 1]], "SYMMETRIC"), [3, 4, 2], id="mirror-pad-symmetric"),
    case(lambda x, p: tf.pad(x, p), [2, 3], [2, 2], dtypes=[F32, I32],
         feeds=[rand(2, 3), np.array([[1, 0], [2, 1]], np.int32)], id="pad-dynamic"),
    case(lambda x: tf.cast(tf.shape(x), F32), [None, 3, 4], id="shape"),
    case(lambda x: tf.cast(tf.shape(x, out_type=I64), F32), [None, 3, 4], id="shape-i64"),
    case(lambda x, y: [tf.cast(s, F32) for s in tf.raw_ops.ShapeN(input=[x, y])], [None, 3], [2, 2, 2],
         id="shape-n"),
    case(lambda x: tf.size(x), [None, 3, 4], id="size"),
    case(lambda x: tf.raw_ops.Rank(input=x), [None, 3], id="rank"),
    case(lambda x: tf.fill(tf.shape(x), 2.5), [None, 3], id="fill"),
    case(lambda x: tf.fill([2, 3], tf.reduce_sum(x)), [None, 3], id="fill-value-input"),
    case(lambda x: tf.zeros_like(x) + tf.ones_like(x) * 2, [None, 3], id="zeros-ones-like"),
    case(lambda x: tf.tile(x, [2, 1, 3]), [2, 3, 1], id="tile"),
    case(lambda x: tf.broadcast_to(x, [2, 3, 4]), [3, 1], id="broadcast-to"),
    case(lambda x: tf.range(tf.shape(x)[0]), [None, 3], id="range-int"),
    case(lambda x: tf.range(0.5, tf.cast(tf.shape(x)[0], F32), 0.5), [None, 3], id="range-float"),
    case(lambda x: tf.split(x, 3, axis=1), [2, 6], id="split"),
    case(lambda x: tf.split(x, 2, axis=-1), [2, 3, 4], id="split-negative-axis"),
    case(lambda x: tf.split(x, [1, -1, 2], axis=1), [2, 6], id="splitv-minus-one"),
    case(lambda x: tf.split(x, [1, 2], axis=0), [3, 2], id="splitv"),
    case(lambda x: tf.split(x, 2, axis=1), [2, None], feeds=[rand(2, 6)], id="split-dynamic-op13", opset=13),
    case(lambda x: tf.split(x, 2, axis=1), [2, None], feeds=[rand(2, 6)], id="split-dynamic-op18", opset=18),
    case(lambda i: tf.one_hot(i, 4), [5], dtypes=[I32], feeds=[np.array([0, 3, -1, 2, 5], np.int32)],
         id="one-hot-out-of-range"),
    case(lambda i: tf.one_hot(i, 3, on_value=2.0, off_value=-1.0, axis=0), [2, 2], dtypes=[I32], id="one-hot-axis0"),
    case(lambda i: tf.one_hot(i, 4, axis=1), [2, 3], dtypes=[I64], feeds=[np.array([[0, 3, 9], [-2, 1, 2]])],
         id="one-hot-axis1-i64"),
    case(lambda i: tf.one_hot(i, 3, on_value=True, off_value=False), [4], dtypes=[I32], id="one-hot-bool"),
    case(lambda x: tf.math.top_k(x, 3), [2, 6], id="top-k"),
    case(lambda x: tf.cast(tf.where(x > 0), I32), [3, 4], id="where"),
    case(lambda x: tf.linalg.band_part(x, -1, 0), [2, 4, 5], id="band-part-lower"),
    case(lambda x: tf.linalg.band_part(x, 1, 2), [4, 5], id="band-part-band"),
    case(lambda x: tf.linalg.band_part(x, 0, -1), [None, None], id="band-part-dynamic"),
    case(lambda x: tf.linalg.band_part(x > 0, -1, 0), [3, 4], id="band-part-bool"),
    case(lambda x: tf.linalg.band_part(x > 0, 0, -1), [None, None], id="band-part-bool-dynamic"),
    case(lambda x: tf.where(x[:1] > 0, x > 0.5, x < -0.5), [3, 4], id="select-bool"),
    case(lambda x, n: tf.linalg.band_part(x, n[0], n[1]), [3, 4], [2], dtypes=[F32, I64],
         feeds=[rand(3, 4), np.array([1, -1], np.int64)], id="band-part-dynamic-band"),
    case(lambda u: tf.scatter_nd([[1], [3], [1]], u, [5, 2]), [3, 2], id="scatter-nd-duplicates"),
    case(lambda x, u: tf.tensor_scatter_nd_update(x, [[0, 1], [2, 2]], u), [3, 4], [2], id="tensor-scatter-update"),
    case(lambda x, u: tf.tensor_scatter_nd_add(x, [[0], [2], [0]], u), [3, 4], [3, 4], id="tensor-scatter-add"),
    case(lambda x, u: tf.tensor_scatter_nd_max(x, [[0], [2]], u), [3, 4], [2, 4], opset=18, id="tensor-scatter-max"),
    case(lambda x, u: tf.tensor_scatter_nd_min(x, [[0], [2]], u), [3, 4], [2, 4], opset=18, id="tensor-scatter-min"),
    case(lambda x: tf.nn.depth_to_space(x, 2), [None, 2, 3, 8], id="depth-to-space"),
    case(lambda x: tf.nn.space_to_depth(x, 2), [None, 4, 6, 3], id="space-to-depth"),
    case(lambda x: tf.nn.local_response_normalization(x, 2, 1.5, 0.3, 0.75), [1, 3, 4, 8], id="lrn"),
    case(lambda x: tf.space_to_batch_nd(x, [2, 2], [[1, 1], [2, 0]]), [1, 4, 4, 3], id="space-to-batch"),
    case(lambda x: tf.batch_to_space(x, [2, 2], [[0, 1], [1, 0]]), [4, 3, 3, 2], id="batch-to-space"),
]


# Integer and boolean tensors through ops whose ONNX Runtime kernels cover only some types.
ARRAY += [case(lambda i, f=f: f(i), [3, 4], dtypes=[I32], feeds=[ints(3, 4)], id=name) for name, f in [
    ("int-cumsum", lambda i: tf.cumsum(i, 1)), ("int-top-k", lambda i: tf.math.top_k(i, 2)),
    ("int-select", lambda i: tf.where(i > 0, i, -i)), ("int-argmax", lambda i: tf.argmax(i, 1)),
    ("int-pad-tile", lambda i: tf.tile(tf.pad(i, [[1, 0], [0, 2]], constant_values=5), [2, 1])),
    ("int-reductions", lambda i: [tf.reduce_max(i, 1), tf.reduce_min(i, 0), tf.reduce_prod(i, 1),
                                  tf.reduce_mean(i, 0)]),
    ("int-clip", lambda i: tf.clip_by_value(i, -2, 3)), ("int-abs-neg-sign", lambda i: tf.sign(-tf.abs(i))),
    ("int-matmul", lambda i: tf.matmul(i, tf.transpose(i))), ("int-square", tf.square),
    ("bool-tensors", lambda i: tf.math.logical_xor(tf.tile(tf.concat([i > 0, i < 0], 0), [1, 2]),
                                              tf.gather(tf.pad(i > 1, [[0, 3], [0, 4]]), [0, 1, 2, 3, 4, 5]))),
    ("bool-reshape-transpose", lambda i: tf.transpose(tf.reshape(i > 0, [2, 6])) | tf.ones([6, 2], BOOL)),
    ("int-one-hot-range", lambda i: tf.one_hot(i[0] % 4, 4, dtype=I32) + tf.range(4)),
    ("int-equal", lambda i: tf.cast(tf.equal(i, tf.reverse(i, [1])), I32)),
]]


@pytest.mark.parametrize("fn,shapes,dtypes,opset,feeds", ARRAY)
def test_array(fn, shapes, dtypes, opset, feeds):
    run_case(fn, shapes, dtypes, opset, feeds)


def strip_default_attrs(g):
    """Drop every attribute that has its OpDef default value, as SavedModels are written."""
    from graphir.dialects.tf_opdefs import _op_def
    from graphir.frontends.tf.attrs import convert_attr

    n_stripped = 0
    for n in g.nodes():
        od = _op_def(n.op_type)
        for a in od.attr if od is not None else ():
            if a.HasField("default_value") and a.name in n.attrs and n.attrs[a.name] == convert_attr(a.default_value):
                del n.attrs[a.name]
                n_stripped += 1
    assert n_stripped
    return g


STRIPPED = [
    case(lambda x: tf.raw_ops.FusedBatchNormV3(x=x, scale=rand(4) + 1, offset=rand(4), mean=rand(4),
                                               variance=np.abs(rand(4)) * 1e-3, epsilon=1e-4,
                                               is_training=False)[0], [2, 3, 3, 4], id="batch-norm-epsilon"),
    case(lambda x: tf.nn.leaky_relu(x, 0.2), [3, 4], id="leaky-relu-alpha"),
    case(lambda x: tf.nn.max_pool2d(tf.nn.conv2d(x, W[(3, 3, 3, 4)], 1, "SAME"), 2, 2, "VALID"), [1, 6, 6, 3],
         id="conv-pool"),
    case(depthwise((3, 3, 3, 2), 2), [1, 7, 9, 3], id="depthwise"),
    case(resize("bilinear", [10, 14], False, False), [1, 5, 7, 2], id="resize"),
    case(lambda x, y: tf.matmul(x, y), [3, 4], [4, 5], id="matmul"),
    case(lambda x: x[1:, ::2], [3, 5], id="strided-slice"),
    case(lambda x: [tf.squeeze(x[:, :1]), tf.cumsum(x, 1), tf.argmax(x, 1)], [3, 4], id="squeeze-cumsum-argmax"),
    case(lambda i: tf.one_hot(i, 4), [5], dtypes=[I32], id="one-hot"),
    case(lambda x: tf.unstack(x) + [tf.stack([x, x])], [2, 3], id="pack-unpack"),
]


@pytest.mark.parametrize("fn,shapes,dtypes,opset,feeds", STRIPPED)
def test_default_attributes_come_from_the_op_def(fn, shapes, dtypes, opset, feeds):
    check(strip_default_attrs(build(fn, shapes, dtypes, prune=True)), opset)


def test_every_converter_has_a_case():
    """Each converter function is reached by some case above (an op type sharing a tested converter, like
    the _Mkl* spellings of the fused ops, counts): a converter added without a case fails here."""
    from graphir.transforms.tf_to_onnx.context import CONVERTERS

    seen = {p.values[0] for p in FUSED} | {"_MklLayerNorm", "_MklFusedBatchMatMulV2"}
    for p in CONV + DEPTHWISE + CONV_TRANSPOSE + POOL + NORM + ACT + RESIZE + BINARY + INT_BINARY + BITWISE \
            + UNARY + MATMUL + REDUCE + ARRAY:
        fn, shapes, dtypes = p.values[:3]
        seen |= set(build(fn, shapes, dtypes, prune=True).op_histogram())
    covered = {CONVERTERS[op] for op in seen if op in CONVERTERS}
    assert sorted(op for op, fn in CONVERTERS.items() if fn not in covered) == []


# ------------------------------------------------------------------------------------------ Keras layers
def test_keras_layers_export():
    """Layers whose TF graphs need several converters together: a dilated depthwise conv (SpaceToBatchND
    around the conv), Conv2DTranspose (its output size packed from the dynamic batch), bilinear upsampling,
    a causal Conv1D, and attention with a causal mask (MatrixBandPart on booleans), through the export
    pipeline."""
    import keras

    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, dilation_rate=2, padding="same")(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="swish")(x)
    x = L.Cropping2D(((1, 0), (0, 1)))(L.ZeroPadding2D(((1, 0), (0, 1)))(x))
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
    x = L.MaxPooling2D()(L.UpSampling2D(interpolation="bilinear")(x))
    x = L.Conv2D(4, 3, strides=2, activation="gelu")(L.BatchNormalization()(x))
    x = L.Conv1D(8, 3, padding="causal", dilation_rate=2)(L.Reshape((-1, 4))(x))
    x = L.MultiHeadAttention(2, 4)(L.LayerNormalization()(x), x, use_causal_mask=True)
    m = keras.Model(inp, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(x)))
    rng = np.random.default_rng(0)
    for w in m.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.3 + (1.0 if "variance" in w.path else 0.0))
    fn = tf.function(lambda t: m(t, training=False)).get_concrete_function(tf.TensorSpec([None, 12, 12, 3]))
    g = graphir.load(fn)
    assert {"SpaceToBatchND", "Conv2DBackpropInput", "MatrixBandPart", "ResizeBilinear"} <= set(g.op_histogram())
    res = graphir.compile(g, export="onnx", opset=17)
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    rep = check_graphs(g, res.ir, samples=2, rtol=RTOL, atol=ATOL)
    assert rep.ok, rep.format()


# ------------------------------------------------------------------------------------------ errors
def test_unconvertible_ops_are_named_in_one_error():
    g = build(lambda x: tf.raw_ops.Dilation2D(input=tf.math.lgamma(x), filter=rand(2, 2, 2), strides=[1] * 4,
                                              rates=[1] * 4, padding="SAME"), [[1, 3, 3, 2]], prune=True)
    with pytest.raises(ExportError, match=r"no conversion for TensorFlow ops Dilation2D, Lgamma$"):
        graphir.compile(g, passes="tf-to-onnx")


@pytest.mark.slow  # a TF import in a subprocess
def test_unconvertible_ops_through_the_cli(tmp_path):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(F32, [2, 3], name="x")
        tf.identity(tf.math.lgamma(tf.math.digamma(x)), name="y")
    pb = tmp_path / "m.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    out = tmp_path / "m.onnx"
    r = run_cli("compile", pb, "-o", out)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "no conversion for TensorFlow ops Digamma, Lgamma" in err[0], r.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.pb"]


@pytest.mark.parametrize("opset", [12, 99])
def test_opset_out_of_range(opset):
    g = build(tf.nn.relu, [[2, 3]], prune=True)
    with pytest.raises(ExportError, match=f"--opset {opset}: ONNX export supports op sets 13 to"):
        graphir.compile(g, passes=f"tf-to-onnx{{opset={opset}}}")
