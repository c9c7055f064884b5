"""``make demo``: compile the bundled digits CNN and check its accuracy is unchanged.

Loads ``examples/digits/digits_cnn.pb``, compiles it with the default fp32 pipeline (and bf16,fp32 when the
CPU has bf16 instructions), writes ``out/digits_opt.pb``, prints what changed, and evaluates the original
and compiled graphs on ``examples/digits/digits_test.npz``. Then an ONNX round: exports the model to
``out/digits.onnx``, optimizes that file as an ONNX model (``out/digits_opt.onnx``) and scores both on ONNX
Runtime. Exits 1 if an fp32 accuracy differs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "digits")


def histogram_delta(before: dict, after: dict) -> list[str]:
    rows = []
    for op in sorted(set(before) | set(after)):
        b, a = before.get(op, 0), after.get(op, 0)
        if a != b:
            rows.append(f"    {op:<16} {b:>4} -> {a:<4} ({a - b:+d})")
    return rows or ["    (no change)"]


def accuracy(graph, x, y) -> float:
    """Top-1 accuracy, scored as the tuner scores a ``topk`` metric (one batch of all of ``x``)."""
    from .compiler import OptimizedModel
    from .data import evaluate
    from .metrics import TopK

    return evaluate(OptimizedModel(graph), [(x, y)], TopK(1))


def onnx_round(a, original, x, y, base_acc: float) -> bool:
    """Export to ONNX, optimize the ONNX file, and score both on ONNX Runtime."""
    import onnx

    import graphir

    ok = True
    exported = os.path.join(a.out_dir, "digits.onnx")
    optimized = os.path.join(a.out_dir, "digits_opt.onnx")
    steps = [("export to ONNX (op set 17)", original, exported, dict(export="onnx")),
             ("optimize the ONNX model", exported, optimized, {})]
    for what, src, out, kw in steps:
        t0 = time.perf_counter()
        result = graphir.compile(src, **kw)
        result.save(out)
        dt = time.perf_counter() - t0
        onnx.checker.check_model(out, full_check=True)
        acc = accuracy(result.ir, x, y)  # an onnx graph runs on ONNX Runtime
        print(f"\n{what}: {result.report['nodes_before']} -> {len(result.ir)} nodes in {dt:.2f} s, wrote {out} "
              f"({os.path.getsize(out)} bytes, passes onnx.checker full_check)")
        print(f"  ops: {', '.join(f'{k} {v}' for k, v in sorted(result.ir.op_histogram().items()))}")
        same = acc == base_acc
        print(f"  accuracy on ONNX Runtime {acc:.4f} (original on TF {base_acc:.4f}): "
              f"{'same' if same else 'DIFFERENT'}")
        ok = ok and same
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m graphir.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(EXAMPLE, "digits_cnn.pb"))
    ap.add_argument("--data", default=os.path.join(EXAMPLE, "digits_test.npz"))
    ap.add_argument("--out-dir", default="out")
    a = ap.parse_args(argv)

    from .quiet import import_tf_quietly

    import_tf_quietly()
    import graphir
    from .runtime_check.target import cpu_bf16_features

    data = np.load(a.data)
    x, y = data["x"], data["y"]
    original = graphir.load(a.model)
    print(f"model    {a.model}: {len(original)} nodes, inputs {[p.name for p in original.inputs]}, "
          f"outputs {[p.name for p in original.outputs]}")
    base_acc = accuracy(original, x, y)
    print(f"original accuracy on {len(y)} held-out digits: {base_acc:.4f}")

    runs = [("fp32", "digits_opt.pb")]
    feats = cpu_bf16_features()
    if feats:
        runs.append(("bf16,fp32", "digits_opt_bf16.pb"))
    else:
        print("this CPU has no bf16 instructions (avx512_bf16/amx_bf16): skipping the bf16 compile")
    os.makedirs(a.out_dir, exist_ok=True)
    ok = True
    for precisions, fname in runs:
        t0 = time.perf_counter()
        result = graphir.compile(original, precisions=precisions)
        out = os.path.join(a.out_dir, fname)
        result.save(out)
        dt = time.perf_counter() - t0
        acc = accuracy(result.ir, x, y)
        print(f"\ncompile --precisions {precisions}: {len(original)} -> {len(result.ir)} nodes in {dt:.2f} s, "
              f"wrote {out} ({os.path.getsize(out)} bytes)")
        print("  op histogram change:")
        print("\n".join(histogram_delta(original.op_histogram(), result.ir.op_histogram())))
        if "bf16" in precisions:
            why = "; ".join(u.get("reason", "") for u in result.report.get("precision_unprofitable", []))
            print(f"  bf16 nodes: {result.report.get('bf16_nodes', 0)}"
                  + (f"; kept in fp32 where bf16 would not pay off ({why})" if why else ""))
        for w in result.report.get("warnings", []):
            print(f"  warning: {w}")
        same = acc == base_acc
        print(f"  accuracy {acc:.4f} (original {base_acc:.4f}): {'same' if same else 'DIFFERENT'}")
        if precisions == "fp32" and not same:
            ok = False
    ok = onnx_round(a, original, x, y, base_acc) and ok
    print("\ndemo " + ("passed" if ok else "FAILED: an fp32 compiled model's accuracy differs from the original's"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
