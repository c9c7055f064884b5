"""A fixed sample of the onnx package's backend node tests through graphir (round trip, then the ONNX fp32
pipeline); the whole set runs in benchmarks/onnx_node_tests.py."""
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = 100


def _bench():
    spec = importlib.util.spec_from_file_location("onnx_node_tests", os.path.join(ROOT, "benchmarks",
                                                                                   "onnx_node_tests.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks itself up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_node_test_sample():
    bench = _bench()
    cases = sorted(bench.load_cases(), key=lambda c: c.name)
    step = max(1, len(cases) // SAMPLE)
    sample = cases[::step][:SAMPLE]
    results = [bench.run_case(c) for c in sample]
    counted = [r for r in results if r.status not in ("excluded", "refused")]
    failed = [f"{r.name}: {r.status}: {r.reason}" for r in counted if r.status != "ok"]
    assert len(counted) >= SAMPLE // 2, [r.reason for r in results if r.status == "excluded"][:5]
    assert len(failed) <= len(counted) // 100, failed
    assert all(r.lossless for r in counted if r.status == "ok")
