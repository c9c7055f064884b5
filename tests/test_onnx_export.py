"""TF -> ONNX export end to end: the CLI and the API write ONNX models that pass the checker and compute
TF's outputs on ONNX Runtime; op sets change what is emitted; bad requests exit 2 and write nothing.
(Per-op conversions are tested in test_tf_to_onnx.py.)"""
import os

import numpy as np
import onnx
import pytest

import graphir
import models
from conftest import run_cli
from graphir.backends.onnx import to_model
from graphir.runtime_check.check import check_graphs

DIGITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "digits",
                      "digits_cnn.pb")


def exported(model, **kw):
    """Export ``model``; the result passes onnx.checker and matches TF on ORT within rtol 1e-4."""
    res = graphir.compile(model, export="onnx", **kw)
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    rep = check_graphs(graphir.load(model), res.ir, samples=2, rtol=1e-4, atol=1e-5)
    assert rep.ok, rep.format()
    assert all(n.domain == "onnx" for n in res.ir.nodes())
    return res.ir


def test_cli_exports_digits_and_check_compares_with_tf(tmp_path):
    out = tmp_path / "digits.onnx"
    r = run_cli("compile", DIGITS, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "verified on" in r.stderr
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    # TF's input and output names survive.
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["probs"]
    # The dynamic batch is a named dim, which ONNX Runtime propagates (anonymous dims cost it in-place reuse).
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "input_dim0"
    r = run_cli("check", DIGITS, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout


def test_digits_accuracy_is_kept_on_ort():
    data = np.load(os.path.join(os.path.dirname(DIGITS), "digits_test.npz"))
    g = exported(DIGITS)
    probs_tf = graphir.compile(DIGITS)(data["x"])
    probs_onnx = graphir.compiler.OptimizedModel(g)(data["x"])
    assert (probs_onnx.argmax(1) == probs_tf.argmax(1)).mean() == 1.0
    np.testing.assert_allclose(probs_onnx, probs_tf, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_transformer_at_op_sets(transformer_gd, opset):
    g = exported(transformer_gd, opset=opset)
    assert g.opset_imports["onnx"] == opset
    ops = g.op_histogram()
    # LayerNormalization exists from op set 17; below, it is spelled out.
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert "Erf" in ops  # the exact GELU of the feed-forward layers


def _small_cnn():
    """A Keras CNN with the inference ops of the usual applications: conv + BN + relu6, depthwise and
    separable convs, a residual add, squeeze-excitation with swish, pooling, bilinear upsampling, concat,
    zero padding, dense softmax head. Trained-like statistics."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    x = inp = keras.Input((32, 32, 3), name="image")
    x = layers.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = layers.Conv2D(16, 3, strides=2, padding="valid")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("swish")(y)
    se = layers.GlobalAveragePooling2D(keepdims=True)(y)
    se = layers.Conv2D(4, 1, activation="swish")(se)
    se = layers.Conv2D(16, 1, activation="sigmoid")(se)
    y = layers.Multiply()([y, se])
    x = layers.Add()([x, y])
    s = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(x)
    p = layers.AveragePooling2D(2, padding="same")(x)
    p = layers.UpSampling2D(2, interpolation="bilinear")(p)
    x = layers.Concatenate()([s, p[:, :16, :16, :]])
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.Conv2D(12, 3, dilation_rate=2, padding="same", activation="elu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10, activation="softmax")(x)
    return models.freeze_keras(models.randomize_statistics(keras.Model(inp, x)))


def test_keras_cnn_ops():
    g = exported(_small_cnn())
    ops = g.op_histogram()
    for op in ("Conv", "Resize", "AveragePool", "MaxPool", "Concat", "Sigmoid"):
        assert op in ops, ops
    # The depthwise conv is a grouped Conv.
    assert any(n.op_type == "Conv" and n.attrs.get("group", 1) > 1 for n in g.nodes())


@pytest.mark.slow
def test_mobilenet_v2_export(mobilenet_v2_gd):
    g = exported(mobilenet_v2_gd)
    assert "BatchNormalization" not in g.op_histogram()


def test_bad_export_requests_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    for args, msg in ((["--precisions", "bf16,fp32"], "bf16 is not supported for ONNX"),
                      (["--opset", "12"], "supports op sets 13 to")):
        r = run_cli("compile", DIGITS, "-o", out, *args)
        assert r.returncode == 2, r.stderr
        assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()
    onnx_in = tmp_path / "in.onnx"
    assert run_cli("compile", DIGITS, "-o", onnx_in).returncode == 0
    r = run_cli("compile", onnx_in, "-o", out, "--opset", "18")
    assert r.returncode == 2 and "--opset applies to exporting" in r.stderr, r.stderr
    assert not out.exists()
