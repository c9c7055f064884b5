"""lower-onednn: contraction + bias + residual Add + activation chains -> TF's fused oneDNN kernels.

Each test builds a small TF graph in f32 or bf16 (the dtypes precision assignment leaves), lowers it, and runs
both graphs in TF: the outputs must agree and the fused node must be the one the kernel table names.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import apply, build, lines_with, ops
from graphir.dialects import tf_onednn as K
from graphir.errors import ConfigError
from graphir.runtime_check.runner import Runner, random_inputs
from graphir.runtime_check.target import onednn_enabled
from graphir.transforms.fold_constants import FoldConstants
from graphir.transforms.lower_onednn import LowerOneDNN

pytestmark = pytest.mark.skipif(not onednn_enabled(), reason="TF has oneDNN off")
DT = {"f32": tf.float32, "bf16": tf.bfloat16}
BOTH = pytest.mark.parametrize("dt", ["f32", "bf16"])


def c(shape, seed=0, dt="f32", scale=0.5):
    return tf.constant((np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32), DT[dt])


def lower(fn, shapes, dt="f32", target="native"):
    """Build ``fn``, fold its constants (as the pipeline does before lowering) and lower a copy."""
    g = build(fn, shapes, [DT[dt]] * len(shapes))
    FoldConstants().run(g)
    out, res = apply(LowerOneDNN(target=target), g)
    return g, out, res


def assert_same(before, after, dt):
    feeds = random_inputs(before, dim=3, seed=0)
    a, b = Runner(before)(feeds), Runner(after)(feeds)
    for x, y in zip(a, b):
        x, y = x.astype(np.float32), y.astype(np.float32)
        tol = 3e-2 * max(1.0, float(np.max(np.abs(x)))) if dt == "bf16" else 1e-5
        np.testing.assert_allclose(y, x, rtol=0 if dt == "bf16" else 1e-5, atol=tol)


def fused(graph, name):
    """(op type, fused_ops) of node ``name``."""
    n = graph.node(name)
    return n.op_type, tuple(n.attrs.get("fused_ops", ()))


def executed_ops(graph):
    _, md = Runner(graph).run_with_metadata(random_inputs(graph, dim=2))
    return {n.op for pg in md.partition_graphs for n in pg.node}


# ---------------------------------------------------------------------------------------------- convolutions
@BOTH
def test_conv_bias_relu(dt):
    g, out, res = lower(lambda x: tf.nn.relu(tf.nn.bias_add(
        tf.nn.conv2d(x, c([3, 3, 4, 8], dt=dt), 1, "SAME", name="conv"), c([8], 1, dt))), [[2, 6, 6, 4]], dt)
    assert res.counts == {"fused_conv": 1, "with_activation": 1}
    n = out.node("conv")
    if dt == "f32":
        assert n.op_type == "_FusedConv2D" and "_kernel" not in n.attrs
    else:
        assert n.op_type == "_MklNativeFusedConv2D"
        assert n.attrs["_kernel"] == K.ONEDNN_LABEL and n.attrs["is_filter_const"] is True
    assert n.attrs["fused_ops"] == ["BiasAdd", "Relu"] and n.attrs["num_args"] == 1
    assert {"Conv2D", "BiasAdd", "Relu"}.isdisjoint(ops(out))
    assert_same(g, out, dt)
    ran = executed_ops(out)
    assert "_MklNativeFusedConv2D" in ran and "Relu" not in ran


@BOTH
def test_conv_without_bias_gets_a_zero_bias(dt):
    g, out, res = lower(lambda x: tf.nn.relu(tf.nn.conv2d(x, c([3, 3, 4, 8], dt=dt), 2, "VALID", name="conv")),
                        [[2, 7, 7, 4]], dt)
    assert res.counts["zero_bias"] == 1
    assert fused(out, "conv")[1] == ("BiasAdd", "Relu")
    (bias,) = [v for v in out.node("conv").inputs[2:]]
    np.testing.assert_array_equal(bias.node.const_value().numpy().astype(np.float32), np.zeros(8, np.float32))
    assert_same(g, out, dt)


@BOTH
def test_add_of_a_per_channel_constant_is_the_bias(dt):
    g, out, _ = lower(lambda x: tf.nn.relu6(tf.nn.conv2d(x, c([1, 1, 4, 8], dt=dt), 1, "SAME", name="conv")
                                            + c([1, 1, 1, 8], 3, dt)), [[2, 5, 5, 4]], dt)
    assert fused(out, "conv")[1] == ("BiasAdd", "Relu6")
    assert_same(g, out, dt)


@BOTH
def test_residual_add_then_relu_and_without_activation(dt):
    def fn(x):
        y = tf.nn.bias_add(tf.nn.conv2d(x, c([1, 1, 4, 4], dt=dt), 1, "SAME", name="c1"), c([4], 1, dt))
        r = tf.nn.relu(y + x)
        z = tf.nn.bias_add(tf.nn.conv2d(r, c([3, 3, 4, 4], 2, dt), 1, "SAME", name="c2"), c([4], 3, dt))
        return z + r
    g, out, res = lower(fn, [[2, 5, 5, 4]], dt)
    assert fused(out, "c1")[1] == ("BiasAdd", "Add", "Relu")
    assert fused(out, "c2")[1] == ("BiasAdd", "Add")
    assert res.counts["with_add"] == 2 and not {"AddV2", "Add"} & set(ops(out))
    assert_same(g, out, dt)


@BOTH
@pytest.mark.parametrize("act, want", [
    (lambda z: z * tf.sigmoid(z), "_MklSwish"),
    (lambda z: z * tf.nn.relu6(z + 3.0) * (1.0 / 6.0), "_FusedHardSwish"),
    (lambda z: z * tf.tanh(tf.math.softplus(z)), "Mish"),
], ids=["swish", "hard_swish", "mish"])
def test_composite_activations_after_conv(dt, act, want):
    g, out, res = lower(lambda x: tf.identity(act(tf.nn.bias_add(
        tf.nn.conv2d(x, c([3, 3, 4, 8], dt=dt), 1, "SAME"), c([8], 1, dt))), name="y"), [[2, 6, 6, 4]], dt)
    (n,) = [n for n in out.nodes() if n.op_type.endswith("FusedConv2D")]
    assert tuple(n.attrs["fused_ops"]) == ("BiasAdd", want)
    assert not {"Sigmoid", "Relu6", "Softplus", "Mul"} & set(ops(out))
    assert_same(g, out, dt)


@BOTH
def test_explicit_pad_before_a_valid_conv_runs_inside_the_kernel(dt):
    """TF's layout pass folds the Pad into the ops it rewrites (f32 _FusedConv2D); the bf16 op comes here
    already rewritten, so the pass folds it into padding=EXPLICIT itself."""
    g, out, res = lower(lambda x: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(
        tf.pad(x, [[0, 0], [1, 1], [2, 1], [0, 0]]), c([3, 3, 4, 8], dt=dt), 2, "VALID", name="conv"),
        c([8], 1, dt))), [[2, 7, 7, 4]], dt)
    n = out.node("conv")
    if dt == "bf16":
        assert n.op_type == "_MklNativeFusedConv2D" and "Pad" not in ops(out)
        assert n.attrs["padding"] == "EXPLICIT" and n.attrs["explicit_paddings"] == [0, 0, 1, 1, 2, 1, 0, 0]
    else:
        assert n.op_type == "_FusedConv2D" and "Pad" in ops(out)
    assert_same(g, out, dt)
    assert "Pad" not in executed_ops(out)


def test_unsupported_activation_after_conv_stays_separate():
    g, out, _ = lower(lambda x: tf.sigmoid(tf.nn.bias_add(tf.nn.conv2d(x, c([3, 3, 4, 8]), 1, "SAME"), c([8], 1)),
                                           name="s"), [[2, 6, 6, 4]])
    assert "Sigmoid" in ops(out)
    (n,) = [n for n in out.nodes() if n.op_type == "_FusedConv2D"]
    assert n.attrs["fused_ops"] == ["BiasAdd"]
    assert_same(g, out, "f32")


def test_scaled_swish_fuses_the_swish_and_keeps_the_scale():
    g, out, _ = lower(lambda x: tf.identity((lambda z: z * tf.sigmoid(z) * 2.5)(
        tf.nn.conv2d(x, c([1, 1, 4, 8]), 1, "SAME")), name="y"), [[2, 4, 4, 4]])
    (n,) = [n for n in out.nodes() if n.op_type == "_FusedConv2D"]
    assert n.attrs["fused_ops"] == ["BiasAdd", "_MklSwish"]
    assert ops(out).count("Mul") == 1
    assert_same(g, out, "f32")


def test_a_near_swish_is_not_taken_for_a_swish():
    g, out, _ = lower(lambda x: tf.identity((lambda z: z * tf.sigmoid(1.1 * z))(
        tf.nn.conv2d(x, c([1, 1, 4, 8]), 1, "SAME")), name="y"), [[2, 4, 4, 4]])
    assert "Conv2D" in ops(out) and "Sigmoid" in ops(out)


def test_dilated_conv():
    g, out, _ = lower(lambda x: tf.nn.relu(tf.nn.conv2d(x, c([3, 3, 4, 8]), 1, "SAME", dilations=2, name="conv")),
                      [[1, 9, 9, 4]])
    assert fused(out, "conv") == ("_FusedConv2D", ("BiasAdd", "Relu"))
    assert_same(g, out, "f32")


# ---------------------------------------------------------------------------------------------- depthwise
@BOTH
def test_depthwise_bias_relu6_but_no_residual(dt):
    def fn(x):
        d = tf.nn.relu6(tf.nn.bias_add(tf.raw_ops.DepthwiseConv2dNative(
            input=x, filter=c([3, 3, 4, 1], dt=dt), strides=[1, 1, 1, 1], padding="SAME", name="d"), c([4], 1, dt)))
        e = tf.nn.bias_add(tf.raw_ops.DepthwiseConv2dNative(
            input=d, filter=c([3, 3, 4, 1], 2, dt), strides=[1, 1, 1, 1], padding="SAME", name="e"), c([4], 3, dt))
        return tf.add(e, x, name="res")
    g, out, _ = lower(fn, [[2, 6, 6, 4]], dt)
    assert fused(out, "d") == ("_FusedDepthwiseConv2dNative", ("BiasAdd", "Relu6"))
    assert fused(out, "e") == ("_FusedDepthwiseConv2dNative", ("BiasAdd",))
    assert out.node("res").op_type == "AddV2"
    assert_same(g, out, dt)


# ---------------------------------------------------------------------------------------------- matmul
ACTS = {
    "Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Elu": tf.nn.elu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh,
    "LeakyRelu": lambda z: tf.nn.leaky_relu(z, 0.3),
    "GeluExact": lambda z: tf.nn.gelu(z, approximate=False),
    "GeluApproximate": lambda z: tf.nn.gelu(z, approximate=True),
}


@BOTH
@pytest.mark.parametrize("act", sorted(ACTS))
def test_matmul_bias_activation(dt, act):
    g, out, _ = lower(lambda x: tf.identity(ACTS[act](tf.matmul(x, c([16, 8], dt=dt)) + c([8], 1, dt)), name="y"),
                      [[4, 16]], dt)
    (n,) = [n for n in out.nodes() if n.op_type == "_FusedMatMul"]
    assert tuple(n.attrs["fused_ops"]) == ("BiasAdd", act)
    if act == "LeakyRelu":
        assert n.attrs["leakyrelu_alpha"] == pytest.approx(0.3)
    assert_same(g, out, dt)


@BOTH
def test_matmul_residual_add(dt):
    g, out, _ = lower(lambda x: tf.nn.bias_add(tf.matmul(x, c([16, 16], dt=dt), name="mm"), c([16], 1, dt)) + x,
                      [[4, 16]], dt)
    assert fused(out, "mm") == ("_FusedMatMul", ("BiasAdd", "Add"))
    assert_same(g, out, dt)


@BOTH
def test_matmul_through_a_reshape_that_keeps_the_last_dim(dt):
    """Keras's Dense on a rank-3 input: MatMul, Reshape back to rank 3, then bias, residual, activation."""
    def fn(x, r):
        y = tf.reshape(tf.matmul(x, c([16, 8], dt=dt), name="mm1"), [2, 3, 8], name="rs1") + c([8], 1, dt)
        y = tf.nn.gelu(y, approximate=False)
        z = tf.reshape(tf.matmul(tf.reshape(y, [6, 8]), c([8, 8], 2, dt), name="mm2"), [2, 3, 8], name="rs2")
        w = tf.reshape(tf.matmul(x, c([16, 24], 3, dt), name="mm3"), [2, 3, 24], name="rs3")
        return [tf.nn.bias_add(z, c([8], 4, dt)) + r, tf.nn.relu(w + c([24], 5, dt))]
    g = build(fn, [[6, 16], [2, 3, 8]], [DT[dt]] * 2)
    FoldConstants().run(g)
    out, res = apply(LowerOneDNN(), g)
    assert fused(out, "mm1") == ("_FusedMatMul", ("BiasAdd", "GeluExact"))
    assert fused(out, "mm2") == ("_FusedMatMul", ("BiasAdd", "Add"))
    assert fused(out, "mm3") == ("_FusedMatMul", ("BiasAdd", "Relu"))
    for rs, mm in (("rs1", "mm1"), ("rs2", "mm2"), ("rs3", "mm3")):
        assert out.node(rs).op_type == "Reshape" and out.node(rs).inputs[0].node.name == mm
    assert not {"BiasAdd", "AddV2", "Relu", "Erf", "Erfc"} & set(ops(out))
    assert_same(g, out, dt)


def test_a_reshape_that_moves_the_last_dim_stops_the_chain():
    g, out, res = lower(lambda x: tf.nn.relu(tf.reshape(tf.matmul(x, c([16, 8])), [2, 3, 2, 4]) + c([4], 1)),
                        [[6, 16]])
    assert not res.changed


def test_transposed_lhs_is_left_alone():
    g, out, res = lower(lambda x: tf.nn.relu(tf.matmul(x, c([4, 8]), transpose_a=True) + c([8], 1)), [[4, 6]])
    assert not res.changed and "MatMul" in ops(out)


# ---------------------------------------------------------------------------------------------- batch matmul
@BOTH
@pytest.mark.parametrize("scale, mask", [(True, True), (True, False), (False, True)])
def test_batch_matmul_scale_and_mask(dt, scale, mask):
    def fn(q, m):
        s = tf.raw_ops.BatchMatMulV2(x=q, y=c([2, 3, 8, 5], dt=dt))
        if scale:
            s = s * tf.constant(0.25, DT[dt])
        if mask:
            s = s + m
        return tf.identity(s, name="y")
    g = build(fn, [[2, 3, 4, 8], [2, 1, 1, 5]], [DT[dt]] * 2)
    out, res = apply(LowerOneDNN(), g)
    (n,) = [n for n in out.nodes() if n.op_type == "_MklFusedBatchMatMulV2"]
    assert n.attrs["fused_ops"] == ["Mul", "Add"] and res.counts == {"fused_batch_matmul": 1}
    assert_same(g, out, dt)


def test_rank3_batch_matmul_is_left_alone():
    g, out, res = lower(lambda q: tf.raw_ops.BatchMatMulV2(x=q, y=c([3, 8, 5])) * 0.5, [[3, 4, 8]])
    assert not res.changed


@BOTH
def test_batch_matmul_by_a_matrix_lowers_as_a_matmul_on_rows(dt):
    """Keras's EinsumDense: a rank-3 tensor times a weight matrix, then bias, residual Add or activation."""
    def fn(x):
        y = tf.raw_ops.BatchMatMulV2(x=x, y=c([16, 16], dt=dt), name="proj") + c([16], 1, dt)
        y = y + x
        z = tf.raw_ops.BatchMatMulV2(x=y, y=c([8, 16], 2, dt), adj_y=True, name="ff")
        return tf.nn.gelu(tf.nn.bias_add(z, c([8], 3, dt)), approximate=True)
    g, out, res = lower(fn, [[None, 5, 16]], dt)
    assert fused(out, "proj") == ("_FusedMatMul", ("BiasAdd", "Add"))
    assert fused(out, "ff") == ("_FusedMatMul", ("BiasAdd", "GeluApproximate"))
    assert out.node("ff").attrs["transpose_b"] is True and res.counts["from_batch_matmul"] == 2
    assert "BatchMatMulV2" not in ops(out) and ops(out).count("Reshape") == 5  # rows in x2, back x2, addend
    assert [p.value.shape.dims for p in out.outputs] == [(None, 5, 8)]
    assert_same(g, out, dt)


# ---------------------------------------------------------------------------------------------- targets, safety
def _mixed(x):
    y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, c([3, 3, 4, 4]), 1, "SAME"), c([4], 1)))
    y = tf.nn.relu(y + tf.nn.bias_add(tf.nn.conv2d(y, c([1, 1, 4, 4], 2), 1, "SAME"), c([4], 3)))
    y = tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(y, c([3, 3, 4, 1], 4), [1, 1, 1, 1], "SAME"), c([4], 5)))
    z = tf.nn.gelu(tf.matmul(tf.reshape(y, [-1, 64]), c([64, 8], 6)) + c([8], 7))
    return tf.tanh(tf.matmul(z, c([8, 8], 8)) + c([8], 9))


def test_generic_target_emits_no_private_kernel():
    g, out, res = lower(_mixed, [[2, 4, 4, 4]], target="generic")
    lowered = [n for n in out.nodes() if n.attrs.get("fused_ops")]
    assert {n.op_type for n in lowered} == {"_FusedConv2D", "_FusedMatMul"}
    for n in lowered:
        base = {"_FusedConv2D": "Conv2D", "_FusedMatMul": "MatMul"}[n.op_type]
        assert K.lookup(base, "f32", n.attrs["fused_ops"], private=False) is not None
        assert "_kernel" not in n.attrs
    assert {"DepthwiseConv2dNative", "AddV2"} <= set(ops(out))
    assert not any(n.attrs.get("fused_ops") == ["BiasAdd", "GeluExact"] for n in lowered)
    assert_same(g, out, "f32")


def test_generic_target_leaves_bf16_convolutions_alone():
    g, out, res = lower(lambda x: tf.nn.relu(tf.nn.conv2d(x, c([3, 3, 4, 8], dt="bf16"), 1, "SAME")),
                        [[1, 5, 5, 4]], "bf16", target="generic")
    assert not res.changed


def test_native_target_lowers_the_whole_mixed_graph():
    g, out, res = lower(_mixed, [[2, 4, 4, 4]])
    assert res.counts == {"fused_conv": 2, "fused_depthwise": 1, "fused_matmul": 2, "with_activation": 5,
                          "with_add": 1}
    assert_same(g, out, "f32")


def test_unknown_target_is_a_config_error():
    with pytest.raises(ConfigError):
        LowerOneDNN(target="tpu").run(build(lambda x: x + 1.0, [[1]]))


def test_not_fused_when_a_chain_value_has_another_reader():
    g, out, res = lower(lambda x: (lambda y: [tf.nn.relu(y), y * 2.0])(
        tf.nn.bias_add(tf.nn.conv2d(x, c([1, 1, 4, 4]), 1, "SAME"), c([4], 1))), [[1, 3, 3, 4]])
    assert fused(out, next(n.name for n in out.nodes() if n.op_type == "_FusedConv2D"))[1] == ("BiasAdd",)
    assert "Relu" in ops(out)
    assert_same(g, out, "f32")


def test_graph_output_keeps_its_name_other_chains_the_contraction_name():
    g = build(lambda x: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, c([1, 1, 4, 4]), 1, "SAME"), c([4], 1)),
                                   name="act"), [[1, 3, 3, 4]])
    g.outputs = [p for p in g.outputs]
    g.outputs[0].value = g.node("act").outputs[0]
    out, _ = apply(LowerOneDNN(), g)
    assert out.outputs[0].value.node.name == "act" and out.node("act").op_type == "_FusedConv2D"
    assert lines_with(out, "%act = tf._FusedConv2D(")
    g2 = build(lambda x: tf.nn.relu(tf.nn.conv2d(x, c([1, 1, 4, 4]), 1, "SAME", name="conv"), name="act"),
               [[1, 3, 3, 4]])
    out2, _ = apply(LowerOneDNN(), g2)
    assert out2.node("conv").op_type == "_FusedConv2D" and "act" not in out2


def test_control_users_of_the_last_node_wait_for_the_fused_node():
    def fn(x):
        r = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, c([1, 1, 4, 4]), 1, "SAME", name="conv"), c([4], 1)))
        with tf.control_dependencies([r]):
            return [r, tf.identity(x, name="after")]
    g = build(fn, [[1, 3, 3, 4]])
    out, _ = apply(LowerOneDNN(), g)
    assert [n.name for n in out.node("after").control_inputs] == ["conv"]
    assert out.node("conv").op_type == "_FusedConv2D"


def test_a_conv_with_control_users_is_left_alone():
    def fn(x):
        conv = tf.nn.conv2d(x, c([1, 1, 4, 4]), 1, "SAME", name="conv")
        with tf.control_dependencies([conv]):
            after = tf.identity(x, name="after")
        return [tf.nn.relu(conv), after]
    g = build(fn, [[1, 3, 3, 4]])
    out, res = apply(LowerOneDNN(), g)
    assert not res.changed


# ---------------------------------------------------------------------------------------------- end to end
def _keras_residual_cnn():
    """A small Keras CNN: conv/BN/ReLU stem, two residual blocks (one with a projection shortcut), a
    depthwise block, a GELU dense layer; BN statistics and biases randomized like a trained model's."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)

    def conv_bn(x, f, k=3, s=1, act=True):
        x = layers.Conv2D(f, k, s, padding="same")(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if act else x

    x = inp = keras.Input((16, 16, 3))
    x = conv_bn(x, 16)
    y = conv_bn(conv_bn(x, 16), 16, act=False)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = conv_bn(conv_bn(x, 32, s=2), 32, act=False)
    x = layers.ReLU()(layers.Add()([conv_bn(x, 32, 1, 2, act=False), y]))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(24, activation="gelu")(x)
    out = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.6, 1.4, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.6, 1.4, c)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape))
    return model


@pytest.mark.parametrize("precisions", ["fp32", "bf16"])
def test_compiled_keras_cnn_runs_lowered_in_tf(precisions):
    import graphir
    from graphir.frontends.tf import load

    g = load(_keras_residual_cnn())
    om = graphir.compile(g, precisions=precisions, target="avx512_bf16", measure_profitability=False)
    (rec,) = [r for r in om.report["passes"] if r.name == "lower-onednn"]
    assert rec.result.counts["fused_conv"] == 6 and rec.result.counts["with_add"] == 2
    assert rec.result.counts["fused_depthwise"] == 1 and rec.result.counts["fused_matmul"] == 2
    conv_op = "_MklNativeFusedConv2D" if precisions == "bf16" else "_FusedConv2D"
    assert sum(n.op_type == conv_op for n in om.ir.nodes()) == 6
    feeds = {p.name: np.random.default_rng(5).uniform(0, 1, (4, 16, 16, 3)).astype(np.float32) for p in g.inputs}
    want = Runner(g)(feeds)[0]
    runner = Runner(om.ir)
    got, md = runner.run_with_metadata(feeds)
    ran = {n.op for pg in md.partition_graphs for n in pg.node}
    contractions = {"_MklNativeFusedConv2D", "_MklNativeFusedDepthwiseConv2dNative", "_MklNativeFusedMatMul"}
    assert contractions <= ran
    # Every filter is a Const: each kernel must be told so, or oneDNN reorders the filter on every run.
    assert all(n.attr["is_filter_const"].b for pg in md.partition_graphs for n in pg.node if n.op in contractions)
    assert not {"Relu", "Relu6", "AddV2", "BiasAdd", "Erfc", "Erf"} & ran
    tol = 3e-2 if precisions == "bf16" else 1e-5
    np.testing.assert_allclose(got[0], want, rtol=tol, atol=tol * float(np.max(want)))
