"""The FP32 figures on real models: Keras ResNet50 / MobileNetV2 (weights=None, frozen)."""
import numpy as np
import pytest

import graphir
from conftest import run_both
from graphir.frontends.tf import from_graph_def
from graphir.runtime_check.runner import random_inputs

CONV_LIKE = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "_FusedConv2D", "_FusedDepthwiseConv2dNative",
             "_FusedMatMul"}


def _check_model(gd, max_nodes):
    g = from_graph_def(gd)
    m = graphir.compile(g)
    ir = m.ir
    assert len(ir) <= max_nodes, (len(g), len(ir), ir.op_histogram())
    hist = ir.op_histogram()
    assert "Rsqrt" not in hist and "FusedBatchNormV3" not in hist and "Identity" in hist
    for n in ir.nodes():
        if n.op_type in CONV_LIKE:
            for u in ir.users(n):
                assert not (u.op_type == "Mul" and any(v.node.const_value() is not None for v in u.inputs)), u
    assert [p.name for p in ir.outputs] == [p.name for p in g.outputs]
    assert [p.value.node.name for p in ir.outputs] == [p.value.node.name for p in g.outputs]

    # Softmax of a weights=None network is nearly flat, so also compare the logits feeding it.
    softmax = next(n for n in g.nodes() if n.op_type == "Softmax")
    g2 = from_graph_def(gd, outputs=[softmax.inputs[0].name, g.outputs[0].value.name])
    m2 = graphir.compile(g2)
    feeds = random_inputs(g2, dim=2, seed=1)
    for a, b in zip(*run_both(g2, m2.ir, feeds=feeds)):
        rel = np.abs(a - b).max() / np.abs(a).max()
        assert rel <= 1e-5, rel
    return len(g), len(ir)


@pytest.mark.slow
def test_resnet50(resnet50_gd):
    before, after = _check_model(resnet50_gd, 200)
    assert before > 1800


@pytest.mark.slow
def test_mobilenet_v2(mobilenet_v2_gd):
    before, after = _check_model(mobilenet_v2_gd, 190)
    assert before > 1000


@pytest.mark.parametrize("model_gd", ["tf1_while", "tf2_functional", "transformer", "digits"], indirect=True)
def test_corpus_compiles_and_matches(model_gd):
    """The default pipeline on loops, functional control flow and attention: same outputs, valid IR."""
    g = from_graph_def(model_gd)
    m = graphir.compile(g)
    m.ir.verify()
    assert len(m.ir) <= len(g)
    feeds = random_inputs(g, dim=3, seed=2)
    for name, dt in ((p.name, p.value.dtype) for p in g.inputs):
        if dt.name.startswith("i"):
            feeds[name] = np.full_like(feeds[name], 3)   # loop counts and the like: keep them small
    for a, b in zip(*run_both(g, m.ir, feeds=feeds)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
