"""The random-graph fuzzer (tests/fuzz_graphs.py) on a fixed set of seeds: about 30 s.

``make fuzz N=2000`` (benchmarks/fuzz.py) runs many more. A failure names the seed and prints the
minimal ``.gir`` it shrank to. Seeds that hit a known, reported bug are listed in KNOWN with the text
their failures show: they are expected failures (any other failure on them still fails the test), and a
fixed bug makes them fail until they are dropped from KNOWN.
"""
import numpy as np
import pytest

from fuzz_graphs import check_graph, fuzz, make_graph

SEEDS = range(40)
# seed -> (what its failures say, the bug). The text tests in tests/passes/ hold minimal reproducers.
# Seeds that found a bug, kept as xfail until it is fixed: (substring of the failure, what it is).
KNOWN: dict = {}


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_seed(seed):
    known = KNOWN.get(seed)
    if known is None:
        report = fuzz(seed)
        assert report is None, report
        return
    failures = check_graph(make_graph(seed), seed=seed)
    assert failures, f"seed {seed} no longer fails ({known[1]}): drop it from KNOWN"
    unexpected = [f for f in failures if known[0] not in f.message]
    assert not unexpected, fuzz(seed)
    pytest.xfail(known[1])


def test_generator_is_deterministic_and_varied():
    a, b = make_graph(3), make_graph(3)
    assert a.text(full_constants=True) == b.text(full_constants=True)
    ops = set()
    for seed in range(12):
        ops |= {n.op_type for n in make_graph(seed).nodes()}
    # The op families the issue asks for all show up in a dozen seeds.
    assert {"MatMul", "Conv2D", "Reshape", "Transpose", "ConcatV2", "Const", "Switch", "Merge"} <= ops, ops
    assert ops & {"Mean", "Sum", "Max", "Min", "Softmax"} and ops & {"FusedBatchNormV3", "BiasAdd"}, ops


# ----------------------------------------------------------------------- the fuzzer can fail
def _scale_first_output(graph, factor):
    from graphir.ir import Tensor, TensorType

    v = graph.outputs[0].value
    t = Tensor.from_array(np.full((), factor, v.dtype.np))
    c = graph.add_node("Const", (), {"dtype": v.dtype, "value": t}, [TensorType(v.dtype, t.shape)], name="k", domain="tf")
    m = graph.add_node("Mul", [v, c.outputs[0]], {"T": v.dtype}, [v.type], name="scaled", domain="tf")
    graph.outputs[0].value = m.outputs[0]


@pytest.fixture
def broken_passes(monkeypatch):
    """Two wrong passes, registered for one test: one changes a result, one is not idempotent."""
    from dataclasses import dataclass

    from graphir.transforms.base import PASSES, Pass, PassResult
    from graphir.transforms.pass_manager import known_passes

    known_passes()  # load the real ones first

    @dataclass(frozen=True)
    class Doubles(Pass):
        name = "test-doubles-output"

        def run(self, graph):
            _scale_first_output(graph, 2.0)
            return PassResult.of(broken=1)

    @dataclass(frozen=True)
    class Grows(Pass):
        name = "test-grows"

        def run(self, graph):
            _scale_first_output(graph, 1.0)
            return PassResult.of(grown=1)

    monkeypatch.setitem(PASSES, Doubles.name, Doubles)
    monkeypatch.setitem(PASSES, Grows.name, Grows)


def test_a_wrong_pass_is_caught_and_shrunk(broken_passes):
    from fuzz_graphs import minimize

    g = make_graph(5)
    failures = check_graph(g, seed=5, only="pass:test-doubles-output")
    assert [(f.check, f.kind) for f in failures] == [("pass:test-doubles-output", "mismatch")]
    small = minimize(g, failures[0], seed=5)
    assert len(small) <= 2 < len(g), small.text()  # the input and the output: the bug needs nothing else
    assert check_graph(g, seed=5, only="pass:test-grows")[0].kind == "not-idempotent"


def test_compare_rules():
    from fuzz_graphs import FP32_TOL, compare

    a = np.array([1.0, np.nan, np.inf, -np.inf, 200.0], np.float32)
    assert compare([a], [a.copy()], FP32_TOL) is None            # NaN and inf in the same places are equal
    for i, v in [(1, 0.0), (3, np.inf), (4, 200.01)]:
        b = a.copy()
        b[i] = v
        assert f"flat index {i}" in compare([a], [b], FP32_TOL)
    b = a.copy()
    b[4] = 200.001                                                  # within 1e-5 of the output's scale
    assert compare([a], [b], FP32_TOL) is None
    assert "float64" in compare([a], [a.astype(np.float64)], FP32_TOL)
    assert "outputs" in compare([a], [a, a], FP32_TOL)
