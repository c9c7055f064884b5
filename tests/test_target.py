"""Target detection and resolution, and the bf16/fp32 fallback through graphir.compile."""
import os

import numpy as np
import pytest
import tensorflow as tf

import graphir
from conftest import run_both, run_cli
from graphir.compiler import parse_precisions
from graphir.errors import ConfigError
from graphir.frontends.tf import from_graph_def
from graphir.ir.types import bf16
from graphir.runtime_check import target
from graphir.runtime_check.runner import random_inputs


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "fpu sse2 avx2 avx512f")


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16")


def test_detection_reads_real_flags(monkeypatch):
    monkeypatch.delenv("GRAPHIR_CPU_FLAGS", raising=False)
    with open("/proc/cpuinfo") as f:
        real = "avx512_bf16" in f.read()
    assert ("avx512_bf16" in target.cpu_bf16_features()) == real
    text = target.describe()
    assert f"tensorflow: {tf.__version__}" in text and "oneDNN:" in text and "cpu bf16:" in text


def test_env_override(no_bf16_cpu):
    assert target.cpu_bf16_features() == [] and target.native_target() == "generic"
    assert "cpu bf16: none" in target.describe()


def test_resolve_rules(no_bf16_cpu):
    assert target.resolve("native", ["bf16", "fp32"]) == (["fp32"], [target.NO_BF16_WARNING])
    assert "AVX512_BF16" in target.NO_BF16_WARNING and "--target avx512_bf16" in target.NO_BF16_WARNING
    with pytest.raises(ConfigError, match="bf16 would only be emulated"):
        target.resolve("native", ["bf16"])
    p, w = target.resolve("generic", ["bf16", "fp32"])
    assert p == ["fp32"] and w
    assert target.resolve("avx512_bf16", ["bf16"]) == (["bf16"], [])
    assert target.resolve("amx_bf16", ["bf16", "fp32"]) == (["bf16", "fp32"], [])
    assert target.resolve("native", ["fp32"]) == (["fp32"], [])
    with pytest.raises(ConfigError, match="unknown target 'tpu'"):
        target.resolve("tpu", ["bf16"])


def test_resolve_native_with_bf16(bf16_cpu):
    assert target.resolve("native", ["bf16"]) == (["bf16"], [])


def test_bad_precisions():
    with pytest.raises(ConfigError, match="'int8' is not one of"):
        parse_precisions("int8")


def _model():
    g = tf.Graph()
    with g.as_default():
        # 3 x 33 MFLOP: above the cost model's cut-off for tiny regions.
        x = tf.compat.v1.placeholder(tf.float32, [64, 512], name="x")
        w = tf.constant(np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32) * 0.05)
        h = x
        for _ in range(3):
            h = tf.nn.relu(tf.matmul(h, w))
        tf.identity(h, name="y")
    return from_graph_def(g.as_graph_def(), inputs=["x"], outputs=["y"])


def _n_bf16(graph):
    return sum(1 for n in graph.nodes() if any(v.dtype is bf16 for v in n.outputs))


def _compile(**kw):
    return graphir.compile(_model(), measure_profitability=False, **kw)


def test_generic_target_emits_fp32_with_warning(bf16_cpu):
    om = _compile(precisions="bf16,fp32", target="generic")
    assert _n_bf16(om.ir) == 0 and om.report["precisions"] == ["fp32"]
    assert any("emitting fp32" in w for w in om.report["warnings"])


def test_native_without_bf16_warns(no_bf16_cpu):
    om = _compile(precisions="bf16,fp32")
    assert _n_bf16(om.ir) == 0 and om.report["warnings"] == [target.NO_BF16_WARNING]
    with pytest.raises(ConfigError):
        _compile(precisions="bf16")


def test_explicit_target_forces_bf16(no_bf16_cpu):
    # measured profitability stays off for an explicit target: this CPU's timing says nothing about it
    om = graphir.compile(_model(), precisions="bf16", target="avx512_bf16")
    assert om.report["bf16_measured_speedup"] is None
    assert _n_bf16(om.ir) > 0 and not om.report["warnings"]
    g = _model()
    feeds = random_inputs(g)
    a, b = (outs[0] for outs in run_both(g, om.ir, feeds=feeds))
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=5e-2, atol=5e-2)


def test_unknown_fp32_op_is_config_error(bf16_cpu):
    with pytest.raises(ConfigError, match="--fp32-ops: 'Conv9D' is neither an op type nor a node"):
        _compile(precisions="bf16,fp32", fp32_ops="Conv9D")


@pytest.mark.parametrize("args,msg", [
    (["--fp32-ops", "Conv9D"], "Conv9D"),
    (["--target", "tpu"], "tpu"),
    (["--precisions", "int8"], "int8"),
])
def test_cli_bad_input_exit_2(tmp_path, args, msg):
    model = tmp_path / "m.pb"
    from graphir.backends.tf import to_graph_def

    model.write_bytes(to_graph_def(_model()).SerializeToString())
    r = run_cli("compile", model, "-o", tmp_path / "out.pb", "--precisions", "bf16,fp32", *args,
                env=dict(os.environ, GRAPHIR_CPU_FLAGS="avx512_bf16"), timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    last = [l for l in r.stderr.splitlines() if l.startswith("graphir: error:")]
    assert last and msg in last[-1]
