"""bf16 compiles of real models: digits accuracy, transformer and ResNet50 numerics, boundaries, casts."""
import os

import numpy as np
import pytest

import graphir
from conftest import run_both
from graphir.dialects.tf_onednn import KERNELS
from graphir.frontends.tf import from_graph_def
from graphir.ir.types import bf16
from graphir.runtime_check.runner import random_inputs
from graphir.transforms.auto_mixed_precision import format_explain, format_precision_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def bf16_cpu(monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16")


# lower-onednn turns bf16 convs and matmuls into fused kernels; count those as their base op.
BASE_OF = {k.op: k.base for k in KERNELS}


def bf16_ops(g):
    return {BASE_OF.get(n.op_type, n.op_type) for n in g.nodes() if any(v.dtype is bf16 for v in n.outputs)}


def check_boundaries(orig, ir):
    assert [(p.name, p.value.dtype) for p in ir.inputs] == [(p.name, p.value.dtype) for p in orig.inputs]
    assert [(p.name, p.value.dtype) for p in ir.outputs] == [(p.name, p.value.dtype) for p in orig.outputs]


def test_digits_cost_model_keeps_fp32_and_forced_bf16_keeps_accuracy(digits_gd):
    g = from_graph_def(digits_gd)
    om = graphir.compile(g, precisions="bf16,fp32", measure_profitability=False)
    assert not bf16_ops(om.ir)  # 0.6 MFLOP per image: casts and bf16 overhead cannot pay
    assert "not profitable" in format_explain(om.report)
    assert "kept fp32 (not profitable)" in format_precision_stats(om.report)

    forced = graphir.compile(g, precisions="bf16,fp32", bf16_ops="Conv2D,MatMul", measure_profitability=False)
    assert {"Conv2D", "MatMul"} <= bf16_ops(forced.ir)
    check_boundaries(g, forced.ir)
    data = np.load(os.path.join(ROOT, "examples", "digits", "digits_test.npz"))
    x, y = data["x"], data["y"]
    p32, p16 = (outs[0] for outs in run_both(g, forced.ir, feeds={g.inputs[0].name: x}))
    assert p16.dtype == np.float32
    top32, top16 = p32.argmax(1), p16.argmax(1)
    assert (top32 == top16).mean() >= 0.99
    assert abs((top32 == y).mean() - (top16 == y).mean()) <= 0.01


def test_transformer_bf16_numerics(transformer_gd):
    g = from_graph_def(transformer_gd)
    om = graphir.compile(g, precisions="bf16,fp32", bf16_ops="Einsum,MatMul,BatchMatMulV2",
                         measure_profitability=False)
    ops = bf16_ops(om.ir)
    assert {"BatchMatMulV2", "Softmax"} <= ops  # einsum-to-matmul turned the attention einsums into these
    check_boundaries(g, om.ir)
    assert sum(1 for n in om.ir.nodes() if n.op_type == "Cast") <= 2
    feeds = random_inputs(g, dim=2)
    a, b = (outs[0] for outs in run_both(g, om.ir, feeds=feeds))
    assert b.dtype == a.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=0.15, rtol=0.05)
    assert np.abs(b - a).mean() < 0.02


@pytest.mark.slow
def test_resnet50_all_convs_bf16_two_casts(resnet50_gd):
    g = from_graph_def(resnet50_gd)
    om = graphir.compile(g, precisions="bf16,fp32", measure_profitability=False)
    st = om.report["precision_stats"]
    convs = [st["ops"][op] for op in ("Conv2D", "_MklNativeFusedConv2D") if op in st["ops"]]
    assert sum(c[1] for c in convs) == sum(c[0] for c in convs) > 50
    assert st["casts_after"] == 2  # the input and the output: nothing inside the network
    assert st["weight_bytes_after"] * 2 == pytest.approx(st["weight_bytes_before"], rel=0.01)
    check_boundaries(g, om.ir)
    feeds = random_inputs(g, dim=2)
    a, b = (outs[0] for outs in run_both(g, om.ir, feeds=feeds))
    assert b.dtype == np.float32
    # weights=None gives a nearly flat softmax (logits spread ~0.1), where top-1 flips on ties and any
    # softmax sums to 1; compare the logits it implies instead (log-probs up to a per-row constant). bf16
    # is off by ~4% of the spread here; another input moves them by ~12%, a broken graph by far more.
    la, lb = (np.log(p.astype(np.float64)) for p in (a, b))
    la, lb = la - la.mean(1, keepdims=True), lb - lb.mean(1, keepdims=True)
    assert np.abs(la - lb).max() < 0.1 * la.std()


def test_bf16_alone_converts_even_where_the_cost_model_would_not(digits_gd):
    """``--precisions bf16`` asks for bf16 wherever TF can run it; only ``bf16,fp32`` weighs profit."""
    g = from_graph_def(digits_gd)
    om = graphir.compile(g, precisions="bf16", target="avx512_bf16")
    assert {"Conv2D", "MatMul"} <= bf16_ops(om.ir)
    check_boundaries(g, om.ir)
    data = np.load(os.path.join(ROOT, "examples", "digits", "digits_test.npz"))
    p32, p16 = (outs[0] for outs in run_both(g, om.ir, feeds={"input": data["x"]}))
    agree = np.mean(p16.argmax(-1) == p32.argmax(-1))
    assert agree >= 0.99


def test_statistics_describe_the_written_graph(digits_gd):
    """Passes after the bf16 pass (lower-onednn) change op types; the table must follow them."""
    g = from_graph_def(digits_gd)
    om = graphir.compile(g, precisions="bf16,fp32", measure_profitability=False)  # stays fp32: fuses
    written = {n.op_type for n in om.ir.nodes() if n.op_type != "Cast" and n.const_value() is None}
    listed = set(om.report["precision_stats"]["ops"])
    assert "_FusedConv2D" in written and listed <= written and "_FusedConv2D" in listed
    assert om.report["precision_stats"]["casts_after"] == sum(n.op_type == "Cast" for n in om.ir.nodes())
