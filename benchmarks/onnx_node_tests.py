"""The onnx package's own backend node tests through graphir: round trip, then the ONNX fp32 pipeline.

Usage: python benchmarks/onnx_node_tests.py [--filter SUBSTRING] [--limit N] [--failures-only]

Each case of ``onnx.backend.test.loader.load_model_tests(kind="node")`` (shipped with the onnx package, no
download) counts when its original model runs on ONNX Runtime (CPU) and matches the expected outputs the
package ships (``Runner.assert_similar_outputs`` with the case's tolerances); cases below op set 13 are
refused by graphir by design and counted apart. For each counted case:

- round trip: ``graphir.load(model)`` then the backend's ``to_model``; the result must pass
  ``onnx.checker.check_model(full_check=True)``, run on ORT and match the expected outputs. Whether it is
  byte-identical to the original (deterministic serialization) is counted too.
- pipeline: the same after the ONNX fp32 pipeline (``default_pipeline`` for an onnx graph), verified after
  every pass.

Prints the counts and every failure by name with its reason; exits 1 when fewer than 99 % of the counted
cases pass both.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@dataclass
class Result:
    name: str
    status: str            # excluded | refused | ok | roundtrip | pipeline
    reason: str = ""
    lossless: bool = False
    changed: bool = False  # the pipeline rewrote the graph


def _expected_ok(case, outputs) -> None:
    from onnx.backend.test.runner import Runner

    for inputs, expected in case.data_sets:
        Runner.assert_similar_outputs([_feed(e) for e in expected], outputs(inputs), rtol=case.rtol,
                                      atol=case.atol)


def _feed(x):
    """A test input as ORT takes it: the cases give some as TensorProto or numpy scalars."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, list):
        return [_feed(e) for e in x]
    return x


def _runs(model):
    """``inputs -> outputs`` for ``model`` on ORT (CPU), fed by the model's graph input names."""
    from graphir.runtime_check.ort_runner import session

    sess = session(model, intra_op_threads=1)
    names = [i.name for i in model.graph.input]
    outs = [o.name for o in model.graph.output]
    return lambda inputs: sess.run(outs, {n: _feed(x) for n, x in zip(names, inputs)})


def _short(e: BaseException) -> str:
    from graphir.errors import describe

    return describe(e, 200)


def run_case(case) -> Result:
    import onnx

    import graphir
    from graphir.backends.onnx import to_model
    from graphir.compiler import CompileOptions
    from graphir.transforms.pass_manager import PassManager, default_pipeline

    model = case.model
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    try:
        _expected_ok(case, _runs(model))
    except Exception as e:
        return Result(case.name, "excluded", "original on ORT: " + _short(e))
    if opsets.get("ai.onnx", 0) < 13:
        return Result(case.name, "refused", f"op set {opsets.get('ai.onnx')} < 13")
    stage = "roundtrip"
    try:
        graph = graphir.load(model)
        rt = to_model(graph)
        lossless = rt.SerializeToString(deterministic=True) == model.SerializeToString(deterministic=True)
        onnx.checker.check_model(rt, full_check=True)
        _expected_ok(case, _runs(rt))
        stage = "pipeline"
        pm = PassManager.from_pipeline(default_pipeline(CompileOptions(), {}, graph), verify=True)
        changed = any(r.result.changed for r in pm.run(graph))
        opt = to_model(graph)
        onnx.checker.check_model(opt, full_check=True)
        _expected_ok(case, _runs(opt))
    except Exception as e:
        return Result(case.name, stage, _short(e))
    return Result(case.name, "ok", lossless=lossless, changed=changed)


def load_cases(filter_: str = ""):
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader's own numpy overflow warnings
        cases = load_model_tests(kind="node")
    return [c for c in cases if filter_ in c.name]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--limit", type=int, default=0, help="at most this many cases")
    ap.add_argument("--failures-only", action="store_true", help="do not list excluded cases")
    a = ap.parse_args(argv)
    import numpy as np

    np.seterr(all="ignore")
    cases = load_cases(a.filter)
    if a.limit:
        cases = cases[:a.limit]
    results = []
    for i, c in enumerate(cases):
        results.append(run_case(c))
        if (i + 1) % 200 == 0:
            print(f"... {i + 1}/{len(cases)}", file=sys.stderr)
    by = {}
    for r in results:
        by.setdefault(r.status, []).append(r)
    counted = [r for r in results if r.status not in ("excluded", "refused")]
    ok = by.get("ok", [])
    lossless = sum(r.lossless for r in ok)
    print(f"cases: {len(results)}")
    print(f"excluded (original fails or mismatches on ORT): {len(by.get('excluded', []))}")
    print(f"refused by design (op set < 13, runs on ORT): {len(by.get('refused', []))}")
    print(f"counted: {len(counted)}")
    print(f"  pass (round trip and pipeline): {len(ok)} ({100.0 * len(ok) / max(1, len(counted)):.2f} %)")
    print(f"  byte-identical round trip among the passes: {lossless}")
    print(f"  changed by the pipeline (and still passing): {sum(r.changed for r in ok)}")
    print(f"  fail in round trip: {len(by.get('roundtrip', []))}")
    print(f"  fail in pipeline: {len(by.get('pipeline', []))}")
    for status in ("roundtrip", "pipeline") + (() if a.failures_only else ("excluded",)):
        for r in by.get(status, []):
            print(f"{status:9s} {r.name}: {r.reason}")
    return 0 if len(ok) >= 0.99 * len(counted) else 1


if __name__ == "__main__":
    sys.exit(main())
