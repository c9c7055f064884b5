"""auto-mixed-precision: min-cut optimality against brute force and a greedy painter, numerics per
precision class, graph boundaries, user overrides."""
import itertools
import random

import numpy as np
import pytest
import tensorflow as tf

import graphir
from conftest import build as shared_build
from conftest import run_both
from graphir.errors import ConfigError
from graphir.ir.types import bf16, f32
from graphir.runtime_check.runner import random_inputs
from graphir.transforms.auto_mixed_precision import (
    R_CUT, AutoMixedPrecision, cut_cost, format_explain, format_precision_stats, min_cut_assignment, node_plan)

raw = tf.raw_ops


def build(fn, shapes):
    return shared_build(fn, shapes, prune=True)


def w(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.2)


def amp(graph, **kw):
    """The bf16 pass as a pipeline runs it (followed by cast-cleanup); its report lands in ``meta``."""
    from graphir.transforms.pass_manager import PassManager

    g = graph.copy()
    kw.setdefault("min_region_flops", 0)
    kw.setdefault("flops_per_cast_byte", 0)
    kw = {k: tuple(v) if isinstance(v, (list, set)) else v for k, v in kw.items()}
    records = PassManager([AutoMixedPrecision(**kw)]).run(g)
    from graphir.transforms.precision_report import finalize_precision_stats

    g.meta["precision_report"] = records[0].result.report
    finalize_precision_stats(g, g.meta["precision_report"])
    g.meta["warnings"] = [w for r in records for w in r.result.warnings]
    return g


def fixed_of(graph):
    """The nodes the pass pins: compute nodes to bf16, the rest of the non-free ones to fp32."""
    bf, reasons, _ = AutoMixedPrecision(min_region_flops=0, flops_per_cast_byte=0).solve(graph)
    return {n: r for n, r in reasons.items() if r != R_CUT} | {
        n: "bf16" for n in bf if graph.node(n).info.precision == "compute"}


def brute_force(graph):
    plans = {n.name: p for n in graph.nodes() if (p := node_plan(n)) is not None}
    fixed = fixed_of(graph)
    free = [n for n in plans if n not in fixed]
    assert len(free) <= 14
    base = {n for n, s in fixed.items() if s == "bf16"}
    best = min(cut_cost(graph, plans, base | {f for f, on in zip(free, bits) if on})
               for bits in itertools.product((0, 1), repeat=len(free)))
    return plans, fixed, free, best


def greedy(graph, plans, fixed):
    """Local painting: a free node runs in bf16 when any of its float producers does."""
    bf = {n for n, s in fixed.items() if s == "bf16"}
    for node in graph.topo_order():
        if node.name in plans and node.name not in fixed:
            if any(v.node.name in bf for s, v in enumerate(node.inputs) if s in plans[node.name].ins):
                bf.add(node.name)
    return bf


def n_casts(g):
    return sum(1 for n in g.nodes() if n.op_type == "Cast")


def mixed_inputs():
    # Add(bf16 matmul, fp32 exp) -> fp32 consumer: greedy casts both the exp input and the sum.
    def fn(x, y):
        m = tf.matmul(x, w(64, 64))
        e = tf.exp(y)
        a = tf.add(m, e)
        return [tf.exp(a)]
    return build(fn, [(8, 64), (8, 64)])


def fanout():
    # relu of a bf16 matmul read by three fp32 ops and one matmul: one shared cast after relu is optimal;
    # counting casts per edge instead of per value would wrongly keep relu in fp32.
    def fn(x):
        r = tf.nn.relu(tf.matmul(x, w(32, 32)))
        return [tf.exp(r), tf.math.log(tf.abs(r) + 1), tf.reduce_sum(r, 1), tf.matmul(r, w(32, 32, seed=1))]
    return build(fn, [(4, 32)])


def narrowing():
    # A wide fp32 tensor feeding a bf16 region through a shrinking chain: cast after the Slice, not before.
    def fn(x):
        s = tf.slice(tf.tanh(tf.exp(x)), [0, 0], [4, 16])
        r = tf.nn.relu(tf.reshape(s, [4, 16]))
        return [tf.matmul(r, w(16, 16))]
    return build(fn, [(4, 1024)])


@pytest.mark.parametrize("make", [mixed_inputs, fanout, narrowing])
def test_min_cut_reaches_brute_force_optimum(make):
    g = make()
    plans, fixed, free, best = brute_force(g)
    got = min_cut_assignment(g, plans, fixed)
    assert cut_cost(g, plans, got) == best


def test_greedy_painting_is_worse_than_min_cut():
    for make in (mixed_inputs, fanout):
        g = make()
        plans, fixed, free, best = brute_force(g)
        gr = cut_cost(g, plans, greedy(g, plans, fixed))
        assert gr > best, make.__name__
    g = mixed_inputs()
    out = amp(g)
    assert n_casts(out) == 2  # x to bf16, the matmul result back to fp32 (greedy: 3)


def test_random_graphs_match_brute_force():
    rng = random.Random(7)
    unary = [tf.nn.relu, tf.tanh, tf.exp, tf.sigmoid, tf.identity]
    for trial in range(12):
        def fn(x, y):
            vals = [x, y]
            for i in range(rng.randint(5, 10)):
                k = rng.random()
                a = rng.choice(vals)
                if k < 0.25:
                    v = tf.matmul(a, w(16, 16, seed=i))
                elif k < 0.6:
                    v = rng.choice(unary)(a)
                else:
                    v = tf.add(a, rng.choice(vals))
                vals.append(v)
            return [vals[-1], vals[rng.randint(2, len(vals) - 1)]]
        g = build(fn, [(2, 16), (2, 16)])
        plans, fixed, free, best = brute_force(g)
        got = min_cut_assignment(g, plans, fixed)
        assert cut_cost(g, plans, got) == best, trial


def all_classes(x, img):
    c = tf.nn.conv2d(img, w(3, 3, 4, 8), 1, "SAME")                       # compute
    c = tf.nn.bias_add(c, w(8, seed=2))                                    # follow
    c = raw.FusedBatchNormV3(x=c, scale=w(8, seed=3) + 1, offset=w(8, seed=4), mean=w(8, seed=5),
                             variance=tf.abs(w(8, seed=6)) + 1, is_training=False)[0]
    c = tf.nn.relu6(tf.nn.max_pool2d(c, 2, 2, "SAME"))
    c = tf.nn.avg_pool2d(c, 2, 2, "SAME")
    c = tf.pad(c, [[0, 0], [1, 1], [1, 1], [0, 0]])                        # clear
    c = tf.transpose(c, [0, 3, 1, 2])
    c = tf.reshape(c, [-1, 8 * 4 * 4])
    m = tf.matmul(x, w(16, 128, seed=7))                                   # compute
    m = tf.concat([m, c], axis=1)                                          # clear
    m = tf.gather(m, [0, 3, 5, 7], axis=1) * 0.5 + tf.slice(m, [0, 0], [-1, 4])
    s = tf.matmul(tf.nn.softmax(tf.tanh(m) * tf.sigmoid(m)), w(4, 4, seed=8))
    e = tf.exp(tf.reduce_sum(m, axis=1))                                   # fp32-only
    return [s, tf.reduce_mean(m, axis=1) + e]


def test_numerics_every_precision_class():
    g = build(all_classes, [(2, 16), (2, 8, 8, 4)])
    out = amp(g)
    kinds = {}
    for n in out.nodes():
        if any(v.dtype is bf16 for v in n.outputs) and n.op_type != "Cast":
            kinds.setdefault(n.info.precision, set()).add(n.op_type)
    assert {"Conv2D", "MatMul"} <= kinds["compute"]
    assert {"BiasAdd", "FusedBatchNormV3", "MaxPool", "AvgPool", "Softmax"} <= kinds["follow"]
    assert {"Pad", "Transpose", "Reshape", "ConcatV2"} <= kinds["clear"]
    assert out.node("Exp").attrs["T"] is f32 and out.node("Sum").attrs["T"] is f32
    bn = next(n for n in out.nodes() if n.op_type == "FusedBatchNormV3")
    assert bn.attrs["T"] is bf16 and bn.attrs["U"] is f32
    feeds = random_inputs(g)
    want, got = run_both(g, out, feeds=feeds)
    for a, b in zip(want, got):
        assert b.dtype == a.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=3e-2, atol=3e-2)


def test_boundaries_keep_dtypes_and_constants_become_bf16():
    g = build(all_classes, [(2, 16), (2, 8, 8, 4)])
    out = amp(g)
    assert [p.value.dtype for p in out.inputs] == [p.value.dtype for p in g.inputs]
    assert [p.value.dtype for p in out.outputs] == [p.value.dtype for p in g.outputs]
    assert [p.value.node.name for p in out.outputs] == [p.value.node.name for p in g.outputs]
    for n in out.nodes():  # no runtime cast of a constant
        if n.op_type == "Cast":
            assert n.inputs[0].node.const_value() is None, n.name
    st = out.meta["precision_report"]["precision_stats"]
    assert st["weight_bytes_after"] < st["weight_bytes_before"]
    assert "Conv2D" in format_precision_stats(out.meta["precision_report"])
    # one Cast per (value, dtype); shape, perm, axis, paddings and indices inputs are never cast
    seen = set()
    for n in out.nodes():
        if n.op_type == "Cast":
            assert {n.attrs["SrcT"], n.attrs["DstT"]} == {f32, bf16}, n.name
            key = (n.inputs[0].name, n.attrs["DstT"])
            assert key not in seen
            seen.add(key)


def test_overrides_and_explain():
    g = build(all_classes, [(2, 16), (2, 8, 8, 4)])
    out = amp(g, fp32_ops=["Conv2D"], bf16_ops=["Exp"])
    assert out.node("Conv2D").attrs["T"] is f32
    assert out.node("Exp").attrs["T"] is bf16
    text = format_explain(out.meta["precision_report"])
    assert "Conv2D" in text and "user override" in text and "graph input/output" in text
    with pytest.raises(ConfigError, match="'Conv9D' is neither an op type nor a node"):
        amp(g, fp32_ops=["Conv9D"])


def test_cost_model_keeps_tiny_regions_fp32():
    g = build(lambda x: [tf.nn.relu(tf.matmul(x, w(4, 4)))], [(1, 4)])
    out = g.copy()
    rep = AutoMixedPrecision().run(out).report
    assert n_casts(out) == 0 and all(v.dtype is not bf16 for n in out.nodes() for v in n.outputs)
    assert rep["precision_unprofitable"] and ("MatMul", "MatMul", "not profitable") in rep["precision_explain"]


def test_op_without_bf16_kernel_stays_fp32():
    def fn(img):
        c = tf.nn.conv2d(img, w(3, 3, 4, 8), 1, "SAME")
        c = raw.FusedBatchNorm(x=c, scale=w(8, seed=3) + 1, offset=w(8, seed=4), mean=w(8, seed=5),
                               variance=tf.abs(w(8, seed=6)) + 1, is_training=False)[0]
        return [tf.nn.conv2d(c, w(3, 3, 8, 8, seed=9), 1, "SAME")]
    g = build(fn, [(2, 8, 8, 4)])
    out = amp(g)
    bn = next(n for n in out.nodes() if n.op_type == "FusedBatchNorm")
    assert bn.attrs["T"] is f32 and out.node("Conv2D").attrs["T"] is bf16
    assert (bn.name, "FusedBatchNorm", "no bf16 kernel in this TF") in out.meta["precision_report"]["precision_explain"]
    feeds = random_inputs(g)
    want, got = run_both(g, out, feeds=feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=5e-2, atol=5e-2)


def _matmul_chain(x):
    # ~34 MFLOP per sample of matmul: above the static cut-off, below the size where measuring is skipped.
    h = x
    for i in range(2):
        h = tf.tanh(tf.matmul(h, w(256, 256, seed=i)))
    return [h]


class _FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def stub_timer(monkeypatch):
    """A stubbed timer: each fp32 run of the graph "takes" ``fp32_ms``, each bf16 run ``bf16_ms`` (the graphs
    still run for real, so the measured code path is the real one)."""
    from graphir.dialects import TF
    from graphir.transforms import profitability

    clock = _FakeClock()
    cost = {"fp32_ms": 10.0, "bf16_ms": 10.0}
    real = TF._runner

    def runner(graph, **kw):
        inner = real(graph, **kw)
        is_bf16 = any(v.dtype is bf16 for n in graph.nodes() for v in n.outputs)

        class Timed:
            def __call__(self, feeds):
                out = inner(feeds)
                clock.t += cost["bf16_ms" if is_bf16 else "fp32_ms"] / 1000
                return out

            def close(self):
                inner.close()
        return Timed()

    monkeypatch.setattr(TF, "_runner", runner)
    monkeypatch.setattr(profitability, "CLOCK", clock)
    return cost


def test_measured_check_falls_back_when_bf16_is_not_fast_enough(stub_timer, monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16 amx_bf16")
    stub_timer.update(fp32_ms=10.0, bf16_ms=10.1)  # bf16 1% slower: below the 1.02x bar
    g = build(_matmul_chain, [(256, 256)])
    om = graphir.compile(g, precisions="bf16,fp32", measure_batch=4)
    assert om.report["bf16_measured_speedup"] == pytest.approx(10.0 / 10.1)
    assert n_casts(om.ir) == 0 and all(v.dtype is not bf16 for n in om.ir.nodes() for v in n.outputs)
    assert any("not profitable" in x and "batch 4" in x for x in om.report["warnings"])
    assert all(r == "not profitable" for _, op, r in om.report["precision_explain"] if op == "MatMul")
    assert "kept fp32 (not profitable)" in format_precision_stats(om.report)


def test_measured_check_keeps_bf16_when_fast_enough(stub_timer, monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16 amx_bf16")
    stub_timer.update(fp32_ms=10.0, bf16_ms=5.0)
    g = build(_matmul_chain, [(256, 256)])
    om = graphir.compile(g, precisions="bf16,fp32")
    assert om.report["bf16_measured_speedup"] == pytest.approx(2.0)
    assert not any("not profitable" in x for x in om.report["warnings"])
    assert any(v.dtype is bf16 for n in om.ir.nodes() for v in n.outputs)


def test_user_forced_bf16_is_not_second_guessed_by_measurement(stub_timer, monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16 amx_bf16")
    stub_timer.update(fp32_ms=1.0, bf16_ms=100.0)
    g = build(_matmul_chain, [(256, 256)])
    om = graphir.compile(g, precisions="bf16,fp32", bf16_ops="MatMul")
    assert om.report.get("bf16_measured_speedup") is None
    assert all(om.ir.node(n).attrs["T"] is bf16 for n in ("MatMul", "MatMul_1") if n in om.ir)
    feeds = random_inputs(g)
    want, got = (outs[0] for outs in run_both(g, om.ir, feeds=feeds))
    assert got.dtype == want.dtype and np.linalg.norm(got - want) / np.linalg.norm(want) < 2e-2


def test_tiny_model_gets_bf16_on_amx_when_measured_faster(stub_timer, monkeypatch):
    # 33 kFLOP per sample: the static model's 10 MFLOP floor would keep it fp32; on AMX the measurement decides.
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16 amx_bf16")
    stub_timer.update(fp32_ms=2.0, bf16_ms=1.0)
    g = build(lambda x: [tf.nn.relu(tf.matmul(x, w(64, 256)))], [(1, 64)])
    om = graphir.compile(g, precisions="bf16,fp32")
    assert any(v.dtype is bf16 for n in om.ir.nodes() for v in n.outputs)
    # Without AMX (and no measurement for another target), the static cost model keeps it fp32.
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16")
    om = graphir.compile(g, precisions="bf16,fp32", target="avx512_bf16")
    assert not any(v.dtype is bf16 for n in om.ir.nodes() for v in n.outputs)




def test_measurement_that_cannot_run_leaves_the_cost_models_choice(monkeypatch):
    """A graph TF rejects on random inputs (e.g. sizes a fully convolutional model refuses) cannot be
    timed: compile goes on with the cost model's choice instead of failing."""
    from graphir.dialects import TF

    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16 amx_bf16")
    real = TF._runner

    def runner(graph, **kw):
        inner = real(graph, **kw)

        class Rejecting:
            def __call__(self, feeds):
                raise tf.errors.InvalidArgumentError(None, None, "Computed output size would be negative")

            def close(self):
                inner.close()
        return Rejecting()

    monkeypatch.setattr(TF, "_runner", runner)
    g = build(_matmul_chain, [(256, 256)])
    om = graphir.compile(g, precisions="bf16,fp32")
    assert om.report["bf16_measured_speedup"] is None
    assert any(v.dtype is bf16 for n in om.ir.nodes() for v in n.outputs)
