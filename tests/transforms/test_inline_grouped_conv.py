"""inline-grouped-conv: Keras 3 grouped convolutions leave their XLA function calls."""
import numpy as np
import pytest
import tensorflow as tf

import graphir
from conftest import apply, assert_same_outputs, ops
from graphir.dialects import tf_functions
from graphir.dialects.tf_canonical import has_cpu_kernel, runs_without_xla
from graphir.runtime_check.runner import Runner
from graphir.transforms.inline_grouped_conv import InlineGroupedConv
from keras3util import assert_bf16_close, feeds_for, filecheck, load

TOL = dict(rtol=1e-4, atol=1e-5)  # XLA and TF's kernels sum in different orders


def keras_model(strides_dw=1):
    import keras
    from keras import layers

    x = inp = keras.Input((9, 9, 4), name="image")
    x = layers.Conv2D(8, 3, padding="same", groups=4, strides=strides_dw, activation="relu", name="dw_m2")(x)
    x = layers.Conv2D(6, 3, strides=2, padding="valid", groups=2, name="g2")(x)
    x = layers.Conv2D(6, 3, padding="same", groups=6, dilation_rate=2, name="dw_dilated")(x)
    return keras.Model(inp, x, name="net")


@pytest.fixture(scope="module")
def keras_graph():
    return load(keras_model())


def calls(g):
    return [n for n in g.nodes() if tf_functions.callee(n)]


def test_keras_grouped_convs_are_inlined(keras_graph):
    g = keras_graph
    assert len(calls(g)) == 3 and all(tf_functions.must_compile(g, n) for n in calls(g))
    out, res = apply(InlineGroupedConv(onednn="true"), g)
    assert res.counts == {"inlined": 3, "depthwise": 2, "split": 1, "grouped_conv2d": 0, "xla_calls_left": 0,
                          "functions_dropped": 3}
    assert not calls(out) and "tf.library" not in out.attrs
    o = ops(out)
    assert o.count("DepthwiseConv2dNative") == 2 and o.count("Conv2D") == 2 and o.count("ConcatV2") == 1
    # Every remaining Conv2D is an ordinary one: filter depth == input depth.
    for n in out.nodes():
        if n.op_type == "Conv2D":
            assert n.inputs[1].shape.dims[2] == n.inputs[0].shape.dims[3]
    assert_same_outputs(g, out, **TOL)
    filecheck(out.text(), """
        CHECK: %net_1/dw_m2_1/StatefulPartitionedCall/convolution/depthwise_filter = tf.Const() {{.*}}tensor<3x3x4x2xf32>
        CHECK: %net_1/dw_m2_1/StatefulPartitionedCall/convolution = tf.DepthwiseConv2dNative(%image, %net_1/dw_m2_1/StatefulPartitionedCall/convolution/depthwise_filter) {{.*}}padding = "SAME", strides = [1, 1, 1, 1]} : (tensor<?x9x9x4xf32>, tensor<3x3x4x2xf32>) -> tensor<?x9x9x8xf32>
        CHECK: %net_1/dw_m2_1/BiasAdd = tf.BiasAdd(%net_1/dw_m2_1/StatefulPartitionedCall/convolution,
        CHECK: %net_1/g2_1/StatefulPartitionedCall/convolution/split = tf.Split(%net_1/g2_1/StatefulPartitionedCall/convolution/axis, %net_1/dw_m2_1/Relu) {T = f32, num_split = 2}
        CHECK: = tf.Conv2D(%net_1/g2_1/StatefulPartitionedCall/convolution/split, {{.*}}padding = "VALID", strides = [1, 2, 2, 1]{{.*}} -> tensor<?x4x4x3xf32>
        CHECK: = tf.Conv2D(%net_1/g2_1/StatefulPartitionedCall/convolution/split:1,
        CHECK: %net_1/g2_1/StatefulPartitionedCall/convolution = tf.ConcatV2({{.*}}) {N = 2, T = f32, Tidx = i32} : {{.*}} -> tensor<?x4x4x6xf32>
        CHECK: tf.SpaceToBatchND
        CHECK: tf.DepthwiseConv2dNative({{.*}}tensor<3x3x6x1xf32>
        CHECK: tf.BatchToSpaceND
        CHECK-NOT: StatefulPartitionedCall(
    """)


def test_bf16(keras_graph):
    out, _ = apply(InlineGroupedConv(onednn="true"), keras_graph)
    om = assert_bf16_close(keras_graph, out)
    # Both depthwise convs (the dilated one too, once its space-to-batch form is canonicalized) run in bf16.
    dw = [n for n in om.ir.nodes() if "DepthwiseConv2dNative" in n.op_type]
    assert len(dw) == 2 and all(n.attrs["T"].name == "bf16" for n in dw)
    assert "SpaceToBatchND" not in om.ir.op_histogram()


def test_depthwise_the_eigen_kernel_cannot_run_becomes_groups():
    import keras

    keras.utils.set_random_seed(1)
    x = inp = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(3, 3, strides=(2, 1), padding="same", groups=3)(x)
    g = load(keras.Model(inp, x), seed=1)
    eigen, res = apply(InlineGroupedConv(onednn="false"), g)
    assert res.counts["split"] == 1 and ops(eigen).count("Conv2D") == 3
    assert_same_outputs(g, eigen, **TOL)
    onednn, res = apply(InlineGroupedConv(onednn="true"), g)
    assert res.counts["depthwise"] == 1 and "Conv2D" not in ops(onednn)
    assert_same_outputs(g, onednn, **TOL)


def test_grouped_conv2d_form(keras_graph):
    out, res = apply(InlineGroupedConv(grouped="conv2d", onednn="true"), keras_graph)
    assert res.counts["grouped_conv2d"] == 1 and "Split" not in ops(out)
    (conv,) = [n for n in out.nodes() if n.op_type == "Conv2D"]
    assert conv.inputs[1].shape.dims[2] * 2 == conv.inputs[0].shape.dims[3]
    assert_same_outputs(keras_graph, out, **TOL)


def test_non_constant_filter(keras_graph):
    """A filter fed at run time is reshaped / split by nodes instead of sliced as constants."""
    g = keras_graph.copy()
    feeds = feeds_for(g)
    for call in calls(g):
        (slot, w), = [(i, v) for i, v in enumerate(call.inputs) if v.shape.rank == 4 and v.node.const_value()]
        ph = graphir.ir.dialect.dialect_of(call).make_placeholder(g, f"{call.name}_filter", w.type)
        feeds[ph.name] = w.node.const_value().numpy()
        g.set_input(call, slot, ph)
        g.set_graph_inputs(list(g.inputs) + [(ph.name, ph)])
    out, res = apply(InlineGroupedConv(onednn="true"), g)
    assert res.counts["inlined"] == 3
    assert ops(out).count("Reshape") >= 2 and ops(out).count("Split") == 2
    a, b = Runner(keras_graph)(feeds_for(keras_graph)), Runner(out)(feeds)
    np.testing.assert_allclose(b[0], a[0], **TOL)


def _xla_graph():
    """A tf.function graph with two XLA calls: a grouped conv with explicit padding, bias and ReLU in its
    body, and a MatMul (no grouped conv: stays)."""
    rng = np.random.default_rng(2)
    w = tf.constant(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
    b = tf.constant(rng.standard_normal(4).astype(np.float32))
    m = tf.constant(rng.standard_normal((4, 5)).astype(np.float32))

    @tf.function(jit_compile=True)
    def gconv(x):
        y = tf.nn.conv2d(x, w, strides=[1, 2, 2, 1], padding=[[0, 0], [1, 2], [2, 0], [0, 0]])
        return tf.nn.relu(tf.nn.bias_add(y, b))

    @tf.function(jit_compile=True)
    def project(x):
        return tf.matmul(x, m)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 4], tf.float32, name="x")])
    def outer(x):
        return project(tf.reduce_mean(gconv(x), axis=[1, 2])) + 1.0

    return graphir.load(outer)


def test_explicit_padding_body_ops_and_other_xla_calls_stay():
    g = _xla_graph()
    assert sorted(n.op_type for n in calls(g)) == ["PartitionedCall", "PartitionedCall"]
    out, res = apply(InlineGroupedConv(), g)
    assert res.counts["inlined"] == 1 and res.counts["xla_calls_left"] == 1 and res.counts["functions_dropped"] == 1
    (left,) = calls(out)
    fname = tf_functions.callee(left)
    assert fname.startswith("__inference_project")
    assert res.warnings == [f"XLA function {fname!r} (called by {left.name!r}) left as it is: "
                            f"its body holds no grouped Conv2D"]
    # The library keeps the function still called, and only that one.
    from tensorflow.core.framework import function_pb2

    lib = function_pb2.FunctionDefLibrary.FromString(out.attrs["tf.library"])
    assert [f.signature.name for f in lib.function] == [fname]
    o = ops(out)
    assert o.count("Conv2D") == 2 and o.count("BiasAdd") == 1 and o.count("Relu") == 1
    pads = {tuple(n.attrs["explicit_paddings"]) for n in out.nodes() if n.op_type == "Conv2D"}
    assert pads == {(0, 0, 1, 2, 2, 0, 0, 0)}
    assert_same_outputs(g, out, **TOL)


def test_no_xla_calls_is_a_no_op():
    import keras

    x = inp = keras.Input((5, 5, 2))
    g = load(keras.Model(inp, keras.layers.Conv2D(3, 3)(x)))
    out, res = apply(InlineGroupedConv(), g)
    assert not res.changed and out.text() == g.text()


def test_op_data_matches_tf():
    assert has_cpu_kernel("DepthwiseConv2dNative", graphir.ir.types.bf16)
    assert not has_cpu_kernel("NoSuchOp")
    assert not has_cpu_kernel("_MklLayerNorm", graphir.ir.types.DType.get("f64"))
    assert has_cpu_kernel("XlaConvV2") and not runs_without_xla("XlaConvV2")  # its CPU kernel is XLA


def test_explain_names_the_xla_call_left_in_place(tmp_path, capsys):
    from graphir.cli import main

    g = _xla_graph()
    g.save(str(tmp_path / "m.pb"))
    assert main(["compile", str(tmp_path / "m.pb"), "-o", str(tmp_path / "o.pb"), "--explain", "--no-verify"]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("left in place:")]
    assert "XLA function '__inference_project" in line and "its body holds no grouped Conv2D" in line
