"""canonicalize-layer-norm: Keras 3 and Keras 2 LayerNormalization subgraphs as one _MklLayerNorm."""
import numpy as np
import pytest
import tensorflow as tf

import graphir
from conftest import apply, build, ops
from graphir.dialects.tf_canonical import mkl_layer_norm_available
from graphir.ir.types import DType, bf16, f32
from graphir.runtime_check.runner import Runner
from graphir.transforms.canonicalize_layer_norm import CanonicalizeLayerNorm
from graphir.transforms.pass_manager import PassManager
from keras3util import assert_bf16_close, filecheck, load, rel_err


def prepared(g):
    g = g.copy()
    PassManager("strip-unused,remove-training-nodes,fold-constants,simplify-arithmetic").run(g)
    return g


def keras_ln_model():
    import keras
    from keras import layers

    seq = keras.Input((5, 8), name="seq")
    grid = keras.Input((3, 4, 8), name="grid")
    free = keras.Input((None, None, 8), name="free")
    return keras.Model([seq, grid, free], [
        layers.LayerNormalization(epsilon=1e-5, name="ln3")(seq * 3.0 + 1.0),
        layers.LayerNormalization(scale=False, name="ln3_no_scale")(seq),
        layers.LayerNormalization(name="ln4")(grid),
        layers.LayerNormalization(center=False, name="ln4_free")(free),
    ], name="net")


@pytest.fixture(scope="module")
def keras_graph():
    return prepared(load(keras_ln_model()))


def feeds(g, seed=0, batch=3, free=(2, 5)):
    rng = np.random.default_rng(seed)
    sizes = {"seq": (batch, 5, 8), "grid": (batch, 3, 4, 8), "free": (batch,) + free + (8,)}
    return {p.name: (rng.standard_normal(sizes[p.name]) * 2 + 0.5).astype(np.float32) for p in g.inputs}


def test_available_per_tf_registry():
    assert mkl_layer_norm_available(f32) and mkl_layer_norm_available(bf16)
    assert not mkl_layer_norm_available(DType.get("f64"))


def test_keras3_layer_norms(keras_graph):
    g = keras_graph
    out, res = apply(CanonicalizeLayerNorm(), g)
    assert res.counts == {"layer_norms": 4, "reshaped": 2}
    for op in ("Mean", "Rsqrt", "SquaredDifference", "Neg"):
        assert op not in ops(out), op
    lns = [n for n in out.nodes() if n.op_type == "_MklLayerNorm"]
    assert sorted(n.inputs[0].shape.rank for n in lns) == [3, 3, 3, 3]
    assert sorted(n.attrs["epsilon"] for n in lns) == pytest.approx([1e-5, 1e-3, 1e-3, 1e-3])
    for f in (feeds(g), feeds(g, seed=1, batch=1, free=(4, 1))):
        for a, b in zip(Runner(g)(f), Runner(out)(f)):
            assert a.shape == b.shape and rel_err(a, b) <= 1e-5
    text = out.text()
    filecheck(text, """
        CHECK: %net_1/ln4_1/add_2/layer_norm/input = tf.Reshape(%grid, %net_1/ln4_1/add_2/layer_norm/shape) {{.*}} -> tensor<?x4x8xf32>
        CHECK: %net_1/ln4_1/add_2/layer_norm = tf._MklLayerNorm(%net_1/ln4_1/add_2/layer_norm/input,
        CHECK: %net_1/ln4_1/add_2 = tf.Reshape(%net_1/ln4_1/add_2/layer_norm, %net_1/ln4_1/add_2/layer_norm/output_shape) {{.*}} -> tensor<?x3x4x8xf32>
    """)
    filecheck(text, """
        CHECK: %net_1/ln4_free_1/add_1/layer_norm/output_shape = tf.Shape(%free)
        CHECK: %net_1/ln4_free_1/add_1 = tf.Reshape(%net_1/ln4_free_1/add_1/layer_norm, %net_1/ln4_free_1/add_1/layer_norm/output_shape)
    """)
    filecheck(text, """
        CHECK: %net_1/ln3_1/add_2 = tf._MklLayerNorm(%net_1/Add, %net_1/ln3_1/add_2/layer_norm/scale, %net_1/ln3_1/add_2/layer_norm/offset) {T = f32, epsilon = 1e-05} : (tensor<?x5x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x5x8xf32>
        CHECK-NOT: tf.Mean
    """)
    consts = {n.name: n.const_value().numpy() for n in out.nodes() if n.op_type == "Const"}
    np.testing.assert_array_equal(consts["net_1/ln3_no_scale_1/add_2/layer_norm/scale"], np.ones(8))
    np.testing.assert_array_equal(consts["net_1/ln4_free_1/add_1/layer_norm/offset"], np.zeros(8))


def test_bf16(keras_graph):
    out, _ = apply(CanonicalizeLayerNorm(), keras_graph)
    f = feeds(keras_graph)
    assert_bf16_close(keras_graph, out, feeds=f)
    # The layer norm itself in bf16: TF's oneDNN kernel has one.
    om = graphir.compile(out, precisions="bf16", target="amx_bf16", bf16_ops="_MklLayerNorm",
                         measure_profitability=False)
    lns = [n for n in om.ir.nodes() if n.op_type == "_MklLayerNorm"]
    assert len(lns) == 4 and all(n.attrs["T"] is bf16 for n in lns)
    for a, b in zip(Runner(keras_graph)(f), Runner(om.ir)(f)):
        assert rel_err(a, b) <= 5e-2


def _vec(seed, offset=0.0):
    return tf.constant((np.random.default_rng(seed).standard_normal(8) * 0.5 + offset).astype(np.float32))


@pytest.mark.parametrize("fn", [
    # Keras 2 (tf.nn.moments + tf.nn.batch_normalization): beta - mean * inv with Sub.
    lambda x: tf.nn.batch_normalization(x, *tf.nn.moments(x, [-1], keepdims=True), _vec(1), _vec(2, 1.0), 1e-3),
    # Written out, with Square(Sub) for the variance and a division by sqrt.
    lambda x: (x - tf.reduce_mean(x, -1, keepdims=True)) * tf.math.rsqrt(
        tf.reduce_mean(tf.square(x - tf.reduce_mean(x, -1, keepdims=True)), -1, keepdims=True) + 1e-6) * _vec(3, 1.0)
    + _vec(4),
])
def test_other_forms(fn):
    g = prepared(build(lambda x: tf.nn.relu(fn(x), name="after"), [[None, 6, 8]]))
    out, res = apply(CanonicalizeLayerNorm(), g)
    assert res.counts["layer_norms"] == 1 and "Rsqrt" not in ops(out)
    (ln,) = [n for n in out.nodes() if n.op_type == "_MklLayerNorm"]
    assert out.node("after").inputs[0].node is ln
    f = {g.inputs[0].name: np.random.default_rng(0).standard_normal((2, 6, 8)).astype(np.float32) * 3}
    assert rel_err(Runner(g)(f)[0], Runner(out)(f)[0]) <= 1e-5


@pytest.mark.parametrize("fn", [
    # Moments over another axis.
    lambda x: tf.nn.batch_normalization(x, *tf.nn.moments(x, [1], keepdims=True), None, None, 1e-3),
    # Not the variance: mean of squares.
    lambda x: (x - tf.reduce_mean(x, -1, keepdims=True)) * tf.math.rsqrt(
        tf.reduce_mean(tf.square(x), -1, keepdims=True) + 1e-3),
    # The mean subtracted with the wrong scale.
    lambda x: (x - 0.5 * tf.reduce_mean(x, -1, keepdims=True)) * tf.math.rsqrt(
        tf.reduce_mean(tf.math.squared_difference(x, tf.reduce_mean(x, -1, keepdims=True)), -1,
                       keepdims=True) + 1e-3),
])
def test_near_misses_stay(fn):
    g = prepared(build(lambda x: tf.identity(fn(x), name="y"), [[None, 6, 8]]))
    out, res = apply(CanonicalizeLayerNorm(), g)
    assert not res.changed and out.text() == g.text()


def _tf_keras_fused_layer_norm(x, gamma, beta, eps=1e-3):
    """What tf.keras (Keras 2) traces for LayerNormalization over the last axis when it takes its fused
    path: a reshape to [1, rows, C, 1], a training-mode NCHW FusedBatchNormV3 with unit scale and zero
    offset, a reshape back, then gamma and beta."""
    shape = tf.shape(x)
    rows = tf.reduce_prod(shape[:-1])
    squeezed = tf.reshape(x, tf.stack([1, rows, shape[-1], 1]))
    ones = tf.ones(tf.reshape(rows, [1]))
    zeros = tf.zeros(tf.reshape(rows, [1]))
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(squeezed, ones, zeros, epsilon=eps, data_format="NCHW")
    return tf.reshape(y, shape) * gamma + beta


@pytest.mark.parametrize("shape", [[2, 5, 8], [None, 5, 8], [2, 3, 4, 8]])
def test_tf_keras_fused_form(shape):
    if not mkl_layer_norm_available(f32):
        pytest.skip("this TF has no _MklLayerNorm kernel")
    rng = np.random.default_rng(3)
    gamma = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    beta = rng.normal(0.0, 0.3, 8).astype(np.float32)
    g = prepared(build(lambda x: [_tf_keras_fused_layer_norm(x, tf.constant(gamma), tf.constant(beta))], [shape]))
    assert any(n.op_type == "FusedBatchNormV3" for n in g.nodes())
    out, res = apply(CanonicalizeLayerNorm(), g)
    assert res.counts.get("fused_layer_norms") == 1
    assert "FusedBatchNormV3" not in ops(out) and ops(out).count("_MklLayerNorm") == 1
    x = (np.random.default_rng(0).standard_normal([3 if d is None else d for d in shape]) * 2 + 0.5)
    f = {g.inputs[0].name: x.astype(np.float32)}
    (a,), (b,) = Runner(g)(f), Runner(out)(f)
    assert rel_err(a, b) <= 1e-5
    # In the bf16 pipeline, fed by a bf16 matmul, the layer norm runs in bf16 too.
    w = rng.standard_normal((8, 8)).astype(np.float32) * 0.3
    g2 = prepared(build(lambda x: [_tf_keras_fused_layer_norm(
        tf.einsum("...c,cd->...d", x, tf.constant(w)), tf.constant(gamma), tf.constant(beta))], [shape]))
    om = graphir.compile(g2, precisions="bf16", target="amx_bf16")
    (ln,) = [n for n in om.ir.nodes() if n.op_type == "_MklLayerNorm"]
    assert ln.attrs["T"] is bf16
    assert rel_err(Runner(g2)(f)[0], Runner(om.ir)(f)[0]) <= 5e-2


def test_tf_keras_fused_form_needs_unit_scale():
    # A real training batch norm (scale not 1) is not a layer norm: nothing changes.
    g = prepared(build(lambda x: [tf.compat.v1.nn.fused_batch_norm(
        tf.reshape(x, [1, 10, 8, 1]), tf.fill([10], 2.0), tf.zeros([10]), data_format="NCHW")[0]], [[2, 5, 8]]))
    out, res = apply(CanonicalizeLayerNorm(), g)
    assert not res.changed and "_MklLayerNorm" not in ops(out)
