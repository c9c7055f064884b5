"""The oneDNN kernel table (graphir/dialects/tf_onednn.py) against the installed TensorFlow.

Every (fused op, dtype, fused_ops list) the table lists is built as a raw NodeDef, run in a session and
compared with the same computation spelled as unfused TF ops (grappler's remapper off, so the reference
really is unfused). The executed partition graph must hold the fused kernel: TF accepted the node.
"""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from graphir.dialects import tf_onednn as K
from graphir.runtime_check.target import onednn_enabled

SHAPES = {  # input, weight, output
    "Conv2D": ((2, 7, 7, 4), (3, 3, 4, 8), (2, 7, 7, 8)),
    "DepthwiseConv2dNative": ((2, 7, 7, 4), (3, 3, 4, 1), (2, 7, 7, 4)),
    "MatMul": ((5, 16), (16, 8), (5, 8)),
    "BatchMatMulV2": ((2, 3, 4, 16), (2, 3, 16, 8), (2, 3, 4, 8)),
}
TF_DTYPES = {"f32": tf.float32, "bf16": tf.bfloat16}
ALPHA = 0.3

ACTIVATIONS = {
    "Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Elu": tf.nn.elu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh,
    "LeakyRelu": lambda z: tf.nn.leaky_relu(z, ALPHA),
    "_MklSwish": lambda z: z * tf.sigmoid(z),
    "Mish": lambda z: z * tf.tanh(tf.math.softplus(z)),
    "GeluExact": lambda z: tf.nn.gelu(z, approximate=False),
    "GeluApproximate": lambda z: tf.nn.gelu(z, approximate=True),
    "_FusedHardSwish": lambda z: z * tf.nn.relu6(z + 3.0) / 6.0,
}


def _contract(base, x, w):
    if base == "Conv2D":
        return tf.nn.conv2d(x, w, 1, "SAME")
    if base == "DepthwiseConv2dNative":
        return tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME")
    if base == "MatMul":
        return tf.matmul(x, w)
    return tf.raw_ops.BatchMatMulV2(x=x, y=w)


def _arrays(base):
    xs, ws, os_ = SHAPES[base]
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal(xs).astype(np.float32),
            "w": (rng.standard_normal(ws) * 0.3).astype(np.float32),
            "BiasAdd": rng.standard_normal(os_[-1]).astype(np.float32),
            "Add": rng.standard_normal(os_).astype(np.float32),
            "Mul": np.float32(0.7)}


PADDINGS = [[0, 0], [1, 1], [2, 0], [0, 0]]  # asymmetric; a 3x3 VALID conv keeps 7x7


def build(base, dtype, fused_ops, kernel=None, label=True, pad=False):
    """GraphDef computing ``base`` then ``fused_ops``: unfused TF ops, or (``kernel``) one fused node ``out``.
    With ``pad`` the reference pads the input with a Pad op before a VALID convolution, and the fused node
    pads it itself (``padding=EXPLICIT``)."""
    a = _arrays(base)
    T = TF_DTYPES[dtype]
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(T, a["x"].shape, name="x")
        w = tf.constant(a["w"], T, name="w")
        args = [tf.constant(a[o], T, name=f"arg_{o}") for o in fused_ops if o in a]
        paddings = tf.constant(PADDINGS, tf.int32, name="paddings")
        if kernel is None:
            y = tf.nn.conv2d(tf.pad(x, paddings), w, 1, "VALID") if pad else _contract(base, x, w)
            for o, arg in zip([o for o in fused_ops if o in a], args):
                y = tf.nn.bias_add(y, arg) if o == "BiasAdd" else y + arg if o == "Add" else y * arg
            for o in fused_ops:
                if o in ACTIVATIONS:
                    y = ACTIVATIONS[o](y)
            tf.identity(y, name="out")
    gd = g.as_graph_def()
    if kernel is not None:
        nd = gd.node.add(name="out", op=kernel.op)
        nd.input.extend(["x", "w"] + [t.op.name for t in args])
        nd.attr["T"].type = T.as_datatype_enum
        nd.attr["num_args"].i = len(args)
        nd.attr["fused_ops"].list.s.extend(o.encode() for o in fused_ops)
        nd.attr["leakyrelu_alpha"].f = ALPHA
        if kernel.op in ("_FusedConv2D", "_MklNativeFusedConv2D"):
            nd.attr["TArgs"].list.type.extend([T.as_datatype_enum] * len(args))
            nd.attr["num_host_args"].i = 0
        if "Conv" in kernel.op:
            nd.attr["strides"].list.i.extend([1, 1, 1, 1])
            nd.attr["padding"].s = b"EXPLICIT" if pad else b"SAME"
        if pad:
            nd.attr["explicit_paddings"].list.i.extend(np.array(PADDINGS).reshape(-1).tolist())
        if kernel.filter_const_attr:
            nd.attr["is_filter_const"].b = True
        if kernel.label and label:
            nd.attr["_kernel"].s = kernel.label.encode()
    return gd, a["x"].astype(T.as_numpy_dtype)


def run(gd, x, *, remap=True):
    """(output as f32, {name: NodeDef} of the nodes TF executed)."""
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    config = tf.compat.v1.ConfigProto()
    if not remap:
        config.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    with tf.compat.v1.Session(graph=g, config=config) as sess:
        md = tf.compat.v1.RunMetadata()
        out = sess.run("out:0", {"x:0": x}, options=tf.compat.v1.RunOptions(output_partition_graphs=True),
                       run_metadata=md)
    return out.astype(np.float32), {n.name: n for pg in md.partition_graphs for n in pg.node}


def executed_ops(nodes: dict) -> set:
    return {n.op for n in nodes.values()}


def _inferred_shape(gd):
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    return g.get_tensor_by_name("out:0").shape.as_list()


def _cases():
    for k in K.KERNELS:
        for pad in (False, True) if k.explicit_padding else (False,):
            for dt in k.dtypes:
                for lst in k.fused_ops:
                    yield pytest.param(k, dt, lst, pad, id=f"{k.op}-{dt}-{'+'.join(lst)}{'-padded' if pad else ''}")


def test_table_agrees_with_opdefs_and_kernel_registry():
    assert K.check_kernels() == []


@pytest.mark.parametrize("kernel, dtype, fused_ops, pad", list(_cases()))
def test_fused_kernel_runs_and_matches_unfused_graph(kernel, dtype, fused_ops, pad):
    if kernel.private and not onednn_enabled():
        pytest.skip("private oneDNN kernel; TF has oneDNN off")
    want, _ = run(*build(kernel.base, dtype, fused_ops, pad=pad), remap=False)
    gd, x = build(kernel.base, dtype, fused_ops, kernel, pad=pad)
    got, nodes = run(gd, x)
    executed = executed_ops(nodes)
    assert tuple(_inferred_shape(gd)[1:]) == got.shape[1:]  # TF's shape function agrees with the kernel
    fused_ran = {op for op in executed if op == kernel.op or op.startswith("_MklNativeFused")
                 or op.startswith("_MklFused")}
    assert "Pad" not in executed
    assert fused_ran, executed
    scale = float(np.max(np.abs(want)))
    # bf16 rounds after every unfused op and once in the fused kernel: a few bf16 ulps of the largest value.
    tol = 3e-2 if dtype == "bf16" else 2e-6
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@pytest.mark.skipif(not onednn_enabled(), reason="TF has oneDNN off")
@pytest.mark.parametrize("kernel, dtype", [pytest.param(k, dt, id=f"{k.op}-{dt}") for k in K.KERNELS
                                           for dt in k.dtypes if k.base != "BatchMatMulV2"])
def test_executed_contraction_caches_its_constant_filter(kernel, dtype):
    """oneDNN reorders a filter into its blocked layout once, and keeps it, only when the executed node says
    the filter is constant (``is_filter_const``, the one such attr TF 2.21's OpDefs have: no
    ``is_weight_const`` / ``is_bias_const``). TF's layout pass sets it on the public ops it rewrites; the
    private op the table emits directly must carry it itself."""
    from tensorflow.python.framework import op_def_registry

    _, nodes = run(*build(kernel.base, dtype, kernel.fused_ops[0], kernel))
    nd = nodes["out"]
    assert nd.op.startswith("_MklNative")
    assert "is_filter_const" in {a.name for a in op_def_registry.get(nd.op).attr}
    assert nd.attr["is_filter_const"].b


@pytest.mark.skipif(not onednn_enabled(), reason="TF has oneDNN off")
def test_mkl_native_conv_needs_its_kernel_label():
    k = K.lookup("Conv2D", "bf16", ("BiasAdd", "Relu"), private=True)
    assert k.op == "_MklNativeFusedConv2D" and k.label == K.ONEDNN_LABEL
    with pytest.raises(tf.errors.OpError):
        run(*build("Conv2D", "bf16", ("BiasAdd", "Relu"), k, label=False))


@pytest.mark.skipif(not onednn_enabled(), reason="TF has oneDNN off")
def test_public_fused_conv_executes_as_the_mkl_op_in_f32():
    k = K.lookup("Conv2D", "f32", ("BiasAdd", "Relu"), private=True)
    assert k.op == "_FusedConv2D" and not k.private
    _, nodes = run(*build("Conv2D", "f32", ("BiasAdd", "Relu"), k))
    assert "_MklNativeFusedConv2D" in executed_ops(nodes) and "_FusedConv2D" not in executed_ops(nodes)


def test_lookup_prefers_portable_kernels_and_respects_private():
    assert K.lookup("Conv2D", "f32", ("BiasAdd", "Add", "Relu"), private=False) is None
    assert K.lookup("Conv2D", "f32", ("BiasAdd", "Add", "Relu"), private=True).private
    assert K.lookup("Conv2D", "bf16", ("BiasAdd",), private=False) is None
    assert K.lookup("DepthwiseConv2dNative", "f32", ("BiasAdd",), private=False) is None
    assert not K.lookup("MatMul", "bf16", ("BiasAdd", "Tanh"), private=False).private
    assert K.lookup("MatMul", "f32", ("BiasAdd", "GeluExact"), private=False) is None
    assert K.lookup("Conv2D", "f32", ("BiasAdd", "Sigmoid"), private=True) is None


def test_describe_lists_only_portable_kernels_without_private_ops():
    text = K.describe_kernels(private=False)
    assert "Conv2D f32: _FusedConv2D: BiasAdd[+Relu|Relu6|Elu|LeakyRelu]" in text.splitlines()
    assert "_Mkl" not in text and "Depthwise" not in text and "Conv2D bf16" not in text
    assert "_MklNativeFusedConv2D" in K.describe_kernels(private=True)


@pytest.mark.parametrize("name", sorted(K.COMPOSITE_ACTIVATIONS) + sorted(K.SINGLE_OP_ACTIVATIONS))
def test_reference_activations_match_the_tf_spelling_used_here(name):
    x = np.linspace(-6, 6, 101)
    want = ACTIVATIONS[name](tf.constant(x)).numpy()
    np.testing.assert_allclose(K.reference_activation(name, x, alpha=ALPHA), want, rtol=1e-12, atol=1e-12)
