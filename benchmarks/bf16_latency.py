"""bf16 latency: original fp32 vs grappler auto-mixed-precision (oneDNN bf16) vs Intel Neural Compressor
vs graphir's bf16 graph.

INC (neural-compressor 2.6) pins numpy 1.x, so it converts the model in its own venv (``make bench-bf16`` builds it,
via benchmarks/inc_convert.py); its bf16 graph is then timed here, interleaved with the others. Without
that venv the INC column shows ``-``.

One process, interleaved runs, median of ``--runs`` (>= 7), batch 8, 2 intra-op threads. Also counts the
Cast ops TF actually executes (RunMetadata partition graphs) and compares graphir's bf16 compile time with
grappler's OptimizeGraph (AMP on) on the same graph. Prints a markdown table.

    python benchmarks/bf16_latency.py [--runs 11] [--models resnet50,mobilenet_v2,transformer,digits]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

MODELS = ("resnet50", "mobilenet_v2", "transformer", "digits")


def amp_rewriter_config():
    from tensorflow.core.protobuf import rewriter_config_pb2

    rc = rewriter_config_pb2.RewriterConfig()
    rc.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return rc


def grappler_optimize_seconds(graph_def, outputs) -> float:
    """Wall time of grappler's OptimizeGraph with oneDNN bf16 AMP on ``graph_def``."""
    import tensorflow as tf
    from tensorflow.python.grappler import tf_optimizer

    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        train_op = g.get_collection_ref(tf.compat.v1.GraphKeys.TRAIN_OP)
        for name in outputs:
            train_op.append(g.get_tensor_by_name(name if ":" in name else name + ":0"))
        mg = tf.compat.v1.train.export_meta_graph(graph=g)
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.CopyFrom(amp_rewriter_config())
    t = time.perf_counter()
    tf_optimizer.OptimizeGraph(config, mg)
    return time.perf_counter() - t


INC_PYTHON = os.path.join(ROOT, ".venv-inc", "bin", "python")


def inc_convert(graph_def, inputs, outputs):
    """(bf16 GraphDef, seconds) from Intel Neural Compressor, or (None, reason) when it is unavailable."""
    if not os.path.exists(INC_PYTHON):
        return None, "no .venv-inc (`make bench-bf16` builds it)"
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.pb"), os.path.join(d, "inc.pb")
        with open(src, "wb") as f:
            f.write(graph_def.SerializeToString())
        strip = lambda n: n[:-2] if n.endswith(":0") else n  # noqa: E731
        cmd = [INC_PYTHON, os.path.join(ROOT, "benchmarks", "inc_convert.py"), src, dst,
               "--inputs", ",".join(strip(n) for n in inputs), "--outputs", ",".join(strip(n) for n in outputs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
        m = re.search(r"inc_seconds=([0-9.]+)", proc.stdout)
        if proc.returncode != 0 or not m or not os.path.exists(dst):
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"INC failed: {tail}"
        gd = tf.compat.v1.GraphDef()
        with open(dst, "rb") as f:
            gd.ParseFromString(f.read())
        return gd, float(m.group(1))


def executed_casts(runner, feeds) -> int:
    _, md = runner.run_with_metadata(feeds)
    return sum(1 for pg in md.partition_graphs for n in pg.node if "Cast" in n.op)


def load_model(name):
    import models

    return {**models.SMALL, **models.LARGE}[name]()


def bench(name, runs: int, batch: int, threads: int) -> dict:
    import graphir
    from graphir.frontends.tf import from_graph_def
    from graphir.runtime_check.runner import Runner, random_inputs

    gd = load_model(name)
    g = from_graph_def(gd)
    outputs = [p.value.name for p in g.outputs]
    t = time.perf_counter()
    om = graphir.compile(g, precisions="bf16,fp32", target="native")
    compile_s = time.perf_counter() - t
    rep = om.report
    grappler_s = grappler_optimize_seconds(gd, outputs)
    inc_gd, inc_s = inc_convert(gd, [p.value.name for p in g.inputs], outputs)

    feeds = random_inputs(g, dim=batch)
    runners = {
        "fp32": Runner(g, intra_op_threads=threads),
        "grappler-amp": Runner(g, intra_op_threads=threads, rewriter_config=amp_rewriter_config()),
        "graphir": Runner(om.ir, intra_op_threads=threads),
    }
    if inc_gd is not None:
        runners["inc"] = Runner(inc_gd, [p.value.name for p in g.inputs], outputs, intra_op_threads=threads)
    for r in runners.values():   # warm-up: graph optimization, oneDNN primitive creation
        r(feeds)
        r(feeds)
    times = {k: [] for k in runners}
    start = time.perf_counter()
    # At least ``runs`` rounds; sub-millisecond models keep going for ~2 s so their medians settle.
    while len(times["fp32"]) < runs or (time.perf_counter() - start < 2.0 and len(times["fp32"]) < 1000):
        for k, r in runners.items():
            t = time.perf_counter()
            r(feeds)
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    casts = {k: executed_casts(r, feeds) for k, r in runners.items()}
    for r in runners.values():
        r.close()
    return {"model": name, "ms": med, "rounds": len(times["fp32"]), "casts": casts, "compile_s": compile_s,
            "amp_pass_s": rep.get("bf16_seconds"), "grappler_s": grappler_s, "inc_s": inc_s,
            "bf16_nodes": rep.get("bf16_nodes", 0), "measured": rep.get("bf16_measured_speedup"),
            "warnings": rep.get("warnings", [])}


def table(rows) -> str:
    head = ("| model (rounds) | fp32 ms | grappler-AMP ms (x) | INC ms (x) | graphir ms (x) | "
            "casts grappler / INC / graphir | bf16 pass s (full compile s) | grappler OptimizeGraph s | INC s |")
    out = [head, "|" + "---|" * 9]
    for r in rows:
        ms, c = r["ms"], r["casts"]
        f = ms["fp32"]
        amp_s = f"{r['amp_pass_s']:.2f}" if r["amp_pass_s"] is not None else "-"
        inc_ms = f"{ms['inc']:.2f} ({f / ms['inc']:.2f}x)" if "inc" in ms else "-"
        inc_s = f"{r['inc_s']:.2f}" if isinstance(r["inc_s"], float) else "-"
        out.append(f"| {r['model']} ({r['rounds']}) | {f:.2f} | "
                   f"{ms['grappler-amp']:.2f} ({f / ms['grappler-amp']:.2f}x) | {inc_ms} | "
                   f"{ms['graphir']:.2f} ({f / ms['graphir']:.2f}x) | "
                   f"{c['grappler-amp']} / {c.get('inc', '-')} / {c['graphir']} | "
                   f"{amp_s} ({r['compile_s']:.2f}) | {r['grappler_s']:.2f} | {inc_s} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args(argv)
    if a.runs < 7:
        ap.error("--runs must be at least 7")
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()

    rows = []
    for name in a.models.split(","):
        r = bench(name.strip(), a.runs, a.batch, a.threads)
        for w in r["warnings"]:
            print(f"{name}: warning: {w}", file=sys.stderr)
        if not isinstance(r["inc_s"], float):
            print(f"{name}: INC skipped: {r['inc_s']}", file=sys.stderr)
        rows.append(r)
        print(f"{name}: done ({r['bf16_nodes']} bf16 nodes, measured speedup {r['measured']})",
              file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
