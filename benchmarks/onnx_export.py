"""TF -> ONNX export against tf2onnx: conversion time, node count, agreement with TF, ONNX Runtime latency.

For each model (built by benchmarks/trained_models.py with trained-like statistics, frozen to a .pb):
- graphir: ``graphir.compile(pb, export="onnx")`` and save, timed from load to the written file (what
  ``graphir compile model.pb -o model.onnx --no-verify`` does after TF's start-up);
- tf2onnx 1.17 (its own venv, .venv-tf2onnx, ``make .venv-tf2onnx/.installed``): ``tf2onnx.convert.
  from_graph_def`` on the same GraphDef at the same op set, timed in its process after imports;
- both ONNX models run on ONNX Runtime against TF's outputs of the original (max relative error over random
  inputs), and their latency is timed interleaved on ORT (batch --batch, 2 threads, median).

    python benchmarks/onnx_export.py [--models resnet50,...] [--opset 17] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
TF2ONNX_PY = os.path.join(ROOT, ".venv-tf2onnx", "bin", "python")
DEFAULT_MODELS = "resnet50,mobilenet_v2,efficientnetv2b0,convnext_tiny,encoder,vit,digits"

# Runs in .venv-tf2onnx: convert a frozen GraphDef, report seconds (after imports) or the error line.
TF2ONNX_DRIVER = r"""
import json, sys, time
import tensorflow as tf
import tf2onnx
pb, out, opset = sys.argv[1], sys.argv[2], int(sys.argv[3])
ins, outs = sys.argv[4].split(","), sys.argv[5].split(",")
gd = tf.compat.v1.GraphDef()
with open(pb, "rb") as f:
    gd.ParseFromString(f.read())
t0 = time.perf_counter()
try:
    tf2onnx.convert.from_graph_def(gd, input_names=ins, output_names=outs, opset=opset, output_path=out)
except Exception as e:
    print(json.dumps({"error": (type(e).__name__ + ": " + str(e)).splitlines()[0][:200]}))
    sys.exit(0)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def tensor_names(graph, ports) -> list[str]:
    return [f"{p.value.node.name}:{p.value.index}" for p in ports]


def run_tf2onnx(pb: str, out: str, opset: int, ins, outs) -> dict:
    if not os.path.exists(TF2ONNX_PY):
        return {"error": "tf2onnx venv missing (make .venv-tf2onnx/.installed)"}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([TF2ONNX_PY, "-c", TF2ONNX_DRIVER, pb, out, str(opset), ",".join(ins), ",".join(outs)],
                       capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1])


def ort_latency(paths: list[str], feeds: dict, runs: int) -> list[float]:
    """Median ms per model, runs interleaved round-robin."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"]) for p in paths]
    named = []
    for s in sessions:
        names = [i.name for i in s.get_inputs()]
        named.append(dict(zip(names, feeds.values())))
    for s, f in zip(sessions, named):
        for _ in range(3):
            s.run(None, f)
    times = [[] for _ in sessions]
    for _ in range(runs):
        for i, (s, f) in enumerate(zip(sessions, named)):
            t0 = time.perf_counter()
            s.run(None, f)
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "graphir_onnx_export"))
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)

    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    import onnx

    import graphir
    import trained_models
    from graphir.backends.atomic import atomic_write_bytes
    from graphir.errors import GraphirError, one_line
    from graphir.runtime_check.check import check_graphs
    from graphir.runtime_check.runner import random_inputs

    os.makedirs(a.work, exist_ok=True)
    rows = []
    for name in a.models.split(","):
        pb = os.path.join(a.work, f"{name}.pb")
        if not os.path.exists(pb):
            atomic_write_bytes(pb, trained_models.load(name).SerializeToString())
        original = graphir.load(pb)
        ours, theirs = os.path.join(a.work, f"{name}.graphir.onnx"), os.path.join(a.work, f"{name}.tf2onnx.onnx")
        t0 = time.perf_counter()
        res = graphir.compile(pb, export="onnx", opset=a.opset)
        res.save(ours)
        g_s = time.perf_counter() - t0
        g_nodes = len(onnx.load(ours, load_external_data=False).graph.node)
        g_err = check_graphs(original, graphir.load(ours), samples=2, rtol=1e-4, atol=1e-5)
        t = run_tf2onnx(pb, theirs, a.opset, tensor_names(original, original.inputs),
                        tensor_names(original, original.outputs))
        row = {"model": name, "tf_nodes": len(original), "graphir_nodes": g_nodes, "graphir_s": g_s,
               "graphir_abs_err": max(o.max_abs for o in g_err.outputs), "graphir_ok": g_err.ok}
        paths = [ours]
        if "error" in t:
            row["tf2onnx"] = t["error"]
        else:
            row.update(tf2onnx_s=t["seconds"], tf2onnx_nodes=len(onnx.load(theirs, load_external_data=False).graph.node))
            try:
                t_graph = graphir.load(theirs)  # checks the model like any ONNX input
            except GraphirError as e:
                row["tf2onnx"] = f"writes an invalid model ({one_line(e).split(': ', 1)[-1][:120]})"
            else:
                t_err = check_graphs(original, t_graph, samples=2, rtol=1e-4, atol=1e-5)
                row.update(tf2onnx_abs_err=max(o.max_abs for o in t_err.outputs), tf2onnx_ok=t_err.ok)
                paths.append(theirs)
        feeds = random_inputs(original, batch_size=a.batch, seed=0)
        lat = ort_latency(paths, feeds, a.runs)
        row["graphir_ms"] = lat[0]
        if len(lat) > 1:
            row["tf2onnx_ms"] = lat[1]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(table(rows, a) if a.markdown else json.dumps(rows, indent=1))
    return 0


def table(rows, a) -> str:
    head = ("| model | TF nodes | graphir nodes | tf2onnx nodes | graphir convert s | tf2onnx convert s | "
            "graphir max abs err vs TF | tf2onnx max abs err vs TF | ORT ms graphir | ORT ms tf2onnx |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "tf2onnx" in r:
            t = (f"{r.get('tf2onnx_nodes', '')} ({r['tf2onnx']})", f"{r['tf2onnx_s']:.2f}" if "tf2onnx_s" in r else "",
                 "", "")
        else:
            t = (str(r["tf2onnx_nodes"]), f"{r['tf2onnx_s']:.2f}", _err(r, "tf2onnx"),
                 f"{r['tf2onnx_ms']:.2f}")
        out.append(f"| {r['model']} | {r['tf_nodes']} | {r['graphir_nodes']} | {t[0]} | {r['graphir_s']:.2f} | "
                   f"{t[1]} | {_err(r, 'graphir')} | {t[2]} | {r['graphir_ms']:.2f} | {t[3]} |")
    out.append(f"\nop set {a.opset}; ORT latency at batch {a.batch}, 2 intra-op threads, median of {a.runs} "
               f"interleaved runs; errors: max |ORT - TF| over 2 random batches, \"ok\" when every element is within "
               f"rtol 1e-4 + atol 1e-5.")
    return "\n".join(out)


def _err(r: dict, who: str) -> str:
    return f"{r[who + '_abs_err']:.1e} ({'ok' if r[who + '_ok'] else 'MISMATCH'})"


if __name__ == "__main__":
    sys.exit(main())
