"""Where a small model's step goes: each oneDNN primitive's execution time, and each executed TF op's.

For a model of benchmarks/trained_models.py (default: the digits CNN at batch 8), graphir fp32, graphir
bf16 (``--precisions bf16,fp32`` with the profitability guard off, so the bf16 graph is what is timed) and
TF's grappler-AMP run interleaved in one worker process per thread count. The worker has
``ONEDNN_VERBOSE=1``, so oneDNN reports every primitive it executes with its time; they are grouped by
graph, primitive kind, source dtype, shape and implementation (median, 10th percentile and minimum over
``--runs`` steps). Then, from RunMetadata step stats (a traced run, so a little slower), every executed TF
op's own compute time, which also shows the ops oneDNN does not run (Casts, the shape arithmetic of a
dynamic Reshape), and the session's step wall time. Prints markdown tables.

    python benchmarks/onednn_kernels.py [--models digits] [--threads 1,2] [--runs 400] [--batch 8]

Why: on a 5 MFLOP step the precision of the contractions hardly matters; per-op overhead and how a
primitive's work is spread over the intra-op threads do, and this shows both, kernel by kernel. On the
digits CNN at batch 8 (a loaded machine, so medians are high): with 1 thread bf16 cuts the primitives from
84 to 48 us (the 16->32 conv 46 -> 15 us), but each oneDNN op costs 25-70 us more in TF around its
primitive, and an empty session.run already takes 110 us at best: the step gains ~6-12%. With 2 threads
every multi-threaded primitive waits for the second thread (an 8x10 softmax: 1-3 us with one thread,
~85 us median with two), and the AMX convolution of the 1-channel input takes 150 us against f32's 104.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
sys.path[:0] = [ROOT, HERE, os.path.join(ROOT, "tests")]

GRAPHS = ("graphir-fp32", "graphir-bf16", "grappler-amp")
MARK = "@@onednn_kernels"


def _stats(v) -> dict:
    v = sorted(v)
    return {"n": len(v), "med": statistics.median(v), "p10": v[len(v) // 10], "min": v[0]}


# ---------------------------------------------------------------------------------------- worker
def worker(a) -> None:
    """``--worker DIR``: runs DIR's graphs (ONEDNN_VERBOSE is set by the parent); prints marks, then JSON."""
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    import numpy as np
    import tensorflow as tf

    from bf16_latency import amp_rewriter_config
    from graphir.frontends.tf import load
    from graphir.runtime_check.runner import Runner, random_inputs

    with open(os.path.join(a.worker, "ports.json")) as f:
        ports = json.load(f)
    runners = {}
    for name in GRAPHS:
        pb = os.path.join(a.worker, ("original" if name == "grappler-amp" else name) + ".pb")
        gd = tf.compat.v1.GraphDef.FromString(open(pb, "rb").read())
        rc = amp_rewriter_config() if name == "grappler-amp" else None
        runners[name] = Runner(gd, ports["inputs"], ports["outputs"], intra_op_threads=a.threads,
                               rewriter_config=rc)
    feeds = random_inputs(load(os.path.join(a.worker, "original.pb")), dim=a.batch)
    feeds = [feeds[p] for p in ports["inputs"]]
    for r in runners.values():   # warm-up: grappler, primitive creation, the filter caches
        for _ in range(10):
            r(feeds)
    wall = {k: [] for k in runners}
    for _ in range(a.runs):
        for k, r in runners.items():
            print(f"{MARK} {k}", flush=True)
            t = time.perf_counter()
            r(feeds)
            wall[k].append((time.perf_counter() - t) * 1e6)
    print(f"{MARK} traced", flush=True)
    ops = {k: collections.defaultdict(list) for k in runners}
    for _ in range(max(a.runs // 4, 20)):
        for k, r in runners.items():
            _, md = r.run_with_metadata(feeds)
            for dev in md.step_stats.dev_stats:
                for ns in dev.node_stats:
                    op = ns.timeline_label.split(" = ")[-1].split("(")[0] if ns.timeline_label else ""
                    if op and op not in ("_Arg", "_Retval", "Const", "NoOp"):
                        ops[k][f"{op} {ns.node_name}"].append(ns.op_end_rel_micros - ns.op_start_rel_micros)
    out = {"wall": {k: _stats(v) for k, v in wall.items()},
           "ops": {k: {n: _stats(v) for n, v in d.items()} for k, d in ops.items()}}
    print(MARK + " json " + json.dumps(out), flush=True)


def parse_verbose(text: str) -> tuple[dict, dict]:
    """(primitive stats keyed by (graph, kind, dtype, shape, impl), the worker's JSON) from its output."""
    cur, prims, result = None, collections.defaultdict(list), {}
    for ln in text.splitlines():
        if ln.startswith(MARK):
            rest = ln[len(MARK) + 1:]
            if rest.startswith("json "):
                result = json.loads(rest[5:])
            else:
                cur = None if rest == "traced" else rest
        elif cur and ln.startswith("onednn_verbose") and ",exec," in ln:
            f = ln.split(",")
            # onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,MEMORY,ATTRS,AUX,SHAPE,MS
            dt = re.search(r"src:(\w+)", ln)
            prims[(cur, f[5], dt.group(1) if dt else "?", f[-2], f[6])].append(float(f[-1]) * 1e3)
    return {k: _stats(v) for k, v in prims.items()}, result


# ---------------------------------------------------------------------------------------- parent
def prepare(name: str, batch: int, d: str) -> None:
    import graphir
    import trained_models
    from graphir.backends.tf import to_graph_def
    from graphir.frontends.tf import from_graph_def

    gd = trained_models.load(name)
    g = from_graph_def(gd)
    graphs = {"original": gd, "graphir-fp32": to_graph_def(graphir.compile(g, precisions="fp32").ir),
              "graphir-bf16": to_graph_def(graphir.compile(g, precisions="bf16,fp32",
                                                           measure_profitability=False).ir)}
    for k, v in graphs.items():
        with open(os.path.join(d, k + ".pb"), "wb") as f:
            f.write(v.SerializeToString())
    with open(os.path.join(d, "ports.json"), "w") as f:
        json.dump({"inputs": [p.value.name for p in g.inputs], "outputs": [p.value.name for p in g.outputs]}, f)


def report(name: str, threads: int, prims: dict, res: dict) -> str:
    out = [f"\n### {name}, {threads} intra-op thread(s)\n",
           "| graph | step wall µs: median / p10 / min |", "|---|---|"]
    for k, s in res["wall"].items():
        out.append(f"| {k} | {s['med']:.0f} / {s['p10']:.0f} / {s['min']:.0f} |")
    out += ["", "| graph | oneDNN primitive | src | shape | implementation | µs median / p10 / min |",
            "|---|---|---|---|---|---|"]
    for (g, kind, dt, shape, impl), s in sorted(prims.items()):
        out.append(f"| {g} | {kind} | {dt} | {shape} | {impl} | {s['med']:.1f} / {s['p10']:.1f} / {s['min']:.1f} |")
    out += ["", "| graph | executed TF op (traced) | µs median / p10 / min |", "|---|---|---|"]
    for g, ops in res["ops"].items():
        for op, s in sorted(ops.items(), key=lambda kv: -kv[1]["med"]):
            out.append(f"| {g} | {op} | {s['med']:.0f} / {s['p10']:.0f} / {s['min']:.0f} |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts, one worker process each")
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        a.threads = int(a.threads)
        return worker(a)
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        with tempfile.TemporaryDirectory() as d:
            prepare(name, a.batch, d)
            for t in [int(x) for x in a.threads.split(",")]:
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", d, "--threads", str(t),
                       "--runs", str(a.runs), "--batch", str(a.batch)]
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=dict(os.environ, ONEDNN_VERBOSE="1"))
                prims, res = parse_verbose(proc.stdout)
                if proc.returncode != 0 or not res:
                    raise SystemExit(f"{name}: worker failed: {proc.stdout.strip().splitlines()[-1:]}")
                print(report(name, t, prims, res), flush=True)


if __name__ == "__main__":
    main()
