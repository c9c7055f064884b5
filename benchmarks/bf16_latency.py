"""bf16 latency: TensorFlow fp32 vs every bf16 route we know of, on models with trained-like statistics.

In one process, interleaved (median of ``--runs`` rounds, >= 9; batch 8; 2 intra-op threads): TF fp32, TF
with grappler's oneDNN bf16 auto-mixed-precision, Intel Neural Compressor 2.6's bf16 graph (converted in
its own venv, timed here), graphir fp32 and graphir ``--precisions bf16,fp32``. Each in its own process,
so not interleaved with the others (marked with a dagger): TF fp32 under ``TF_SET_ONEDNN_FPMATH_MODE=BF16``
(oneDNN computes f32 convolutions and matmuls in bf16) and OpenVINO fp32 / bf16 on the frozen .pb
(``INFERENCE_PRECISION_HINT``, 2 threads, 1 stream; in ``.venv-ov``). Casts are counted in the graphs TF
actually executes (RunMetadata partition graphs), OpenVINO's in its compiled model. Prints markdown tables.

    python benchmarks/bf16_latency.py [--runs 11] [--models resnet50,mobilenet_v2] [--unlowered]

Models (benchmarks/trained_models.py): resnet50, resnet50v2, mobilenet_v2, efficientnetv2b0, transformer,
digits. ``--unlowered`` adds graphir bf16 without the lower-onednn pass (fuse-bias-activation instead).
Without ``.venv-inc`` / ``.venv-ov`` (``make bench-bf16`` builds both) those columns show ``-``.
"""
from __future__ import annotations

import argparse
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

MODELS = ("resnet50", "resnet50v2", "mobilenet_v2", "efficientnetv2b0", "transformer", "digits", "convnext_tiny",
          "encoder", "vit")
INC_PYTHON = os.path.join(ROOT, ".venv-inc", "bin", "python")
OV_PYTHON = os.path.join(ROOT, ".venv-ov", "bin", "python")


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


def _strip(n: str) -> str:
    return n[:-2] if n.endswith(":0") else n


def inc_convert(pb_path, inputs, outputs):
    """(bf16 GraphDef, seconds) from Intel Neural Compressor, or (None, reason) when it is unavailable."""
    if not os.path.exists(INC_PYTHON):
        return None, "no .venv-inc (`make bench-bf16` builds it)"
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        dst = os.path.join(d, "inc.pb")
        cmd = [INC_PYTHON, os.path.join(HERE, "inc_convert.py"), pb_path, dst,
               "--inputs", ",".join(map(_strip, inputs)), "--outputs", ",".join(map(_strip, outputs))]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
        m = re.search(r"inc_seconds=([0-9.]+)", proc.stdout)
        if proc.returncode != 0 or not m or not os.path.exists(dst):
            return None, f"INC failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
        gd = tf.compat.v1.GraphDef()
        with open(dst, "rb") as f:
            gd.ParseFromString(f.read())
        return gd, float(m.group(1))


def executed_casts(runner, feeds) -> int:
    _, md = runner.run_with_metadata(feeds)
    return sum(1 for pg in md.partition_graphs for n in pg.node if "Cast" in n.op)


def time_interleaved(runners: dict, feeds, runs: int) -> tuple[dict, int]:
    """Median ms per runner over at least ``runs`` interleaved rounds; sub-millisecond models keep going
    for ~2 s so their medians settle. Returns (medians, rounds)."""
    for r in runners.values():   # warm-up: graph optimization, oneDNN primitive creation
        r(feeds)
        r(feeds)
    times = {k: [] for k in runners}
    start = time.perf_counter()
    while min(map(len, times.values())) < runs or (time.perf_counter() - start < 2.0
                                                   and len(next(iter(times.values()))) < 1000):
        for k, r in runners.items():
            t = time.perf_counter()
            r(feeds)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}, len(next(iter(times.values())))


# ---------------------------------------------------------------------------------------- other processes
def fpmath_worker(a) -> None:
    """``--fpmath-worker PB``: TF fp32 with oneDNN's bf16 math mode; the variable is read when TF loads."""
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    from graphir.frontends.tf import load
    from graphir.runtime_check.runner import Runner, random_inputs

    g = load(a.fpmath_worker)
    r = Runner(g, intra_op_threads=a.threads)
    feeds = random_inputs(g, dim=a.batch)
    ms, rounds = time_interleaved({"fpmath": r}, feeds, a.runs)
    print(json.dumps({"ms": ms["fpmath"], "rounds": rounds, "casts": executed_casts(r, feeds)}))


def run_fpmath(pb_path, a) -> dict:
    env = dict(os.environ, TF_SET_ONEDNN_FPMATH_MODE="BF16")
    cmd = [sys.executable, os.path.abspath(__file__), "--fpmath-worker", pb_path, "--runs", str(a.runs),
           "--batch", str(a.batch), "--threads", str(a.threads)]
    return _json_subprocess(cmd, env)


def run_openvino(pb_path, graph, a) -> dict:
    if not os.path.exists(OV_PYTHON):
        return {"error": "no .venv-ov (`make bench-bf16` builds it)"}
    (inp,) = graph.inputs
    shape = ",".join(str(a.batch if d is None else d) for d in inp.value.shape.dims)
    cmd = [OV_PYTHON, os.path.join(HERE, "openvino_bench.py"), pb_path, "--input", _strip(inp.value.name),
           "--shape", shape, "--runs", str(a.runs), "--threads", str(a.threads)]
    return _json_subprocess(cmd, os.environ)


def _json_subprocess(cmd, env) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------- one model
def unlowered_pipeline(opts) -> str:
    """graphir's default pipeline with fuse-bias-activation in place of lower-onednn."""
    from graphir.transforms.pass_manager import default_pipeline

    passes = [p for p in default_pipeline(opts, {}).split(",") if not p.startswith("lower-onednn")]
    return ",".join(passes + ([] if "fuse-bias-activation" in passes else ["fuse-bias-activation"]))


def bench(name, a) -> dict:
    import graphir
    import trained_models
    from graphir.compiler import CompileOptions
    from graphir.frontends.tf import from_graph_def
    from graphir.runtime_check.runner import Runner, random_inputs

    gd = trained_models.load(name)
    g = from_graph_def(gd)
    inputs, outputs = [p.value.name for p in g.inputs], [p.value.name for p in g.outputs]
    t = time.perf_counter()
    om = graphir.compile(g, precisions="bf16,fp32", target="native")
    compile_s = time.perf_counter() - t
    om32 = graphir.compile(g, precisions="fp32")
    rep = om.report
    lower_s = sum(r.seconds for r in rep["passes"] if r.name == "lower-onednn")
    grappler_s = grappler_optimize_seconds(gd, outputs)
    row = {"model": name, "compile_s": compile_s, "amp_pass_s": rep.get("bf16_seconds"), "lower_s": lower_s,
           "grappler_s": grappler_s, "bf16_nodes": rep.get("bf16_nodes", 0), "warnings": rep.get("warnings", [])}
    with tempfile.TemporaryDirectory() as d:
        pb = os.path.join(d, f"{name}.pb")
        with open(pb, "wb") as f:
            f.write(gd.SerializeToString())
        inc_gd, row["inc_s"] = inc_convert(pb, inputs, outputs)
        feeds = random_inputs(g, dim=a.batch)
        runners = {"fp32": Runner(g, intra_op_threads=a.threads),
                   "grappler-amp": Runner(g, intra_op_threads=a.threads, rewriter_config=amp_rewriter_config()),
                   "graphir-fp32": Runner(om32.ir, intra_op_threads=a.threads),
                   "graphir-bf16": Runner(om.ir, intra_op_threads=a.threads)}
        if inc_gd is not None:
            runners["inc"] = Runner(inc_gd, inputs, outputs, intra_op_threads=a.threads)
        if a.unlowered:
            opts = CompileOptions(precisions=["bf16", "fp32"])
            ul = graphir.compile(g, precisions="bf16,fp32", passes=unlowered_pipeline(opts))
            runners["graphir-bf16-unlowered"] = Runner(ul.ir, intra_op_threads=a.threads)
        row["ms"], row["rounds"] = time_interleaved(runners, feeds, a.runs)
        row["casts"] = {k: executed_casts(r, feeds) for k, r in runners.items()}
        for r in runners.values():
            r.close()
        # After the in-process rivals: these processes must not compete with them for the 2 cores.
        row["fpmath"] = run_fpmath(pb, a)
        row["openvino"] = run_openvino(pb, g, a)
    return row


# ---------------------------------------------------------------------------------------- tables
def _cell(ms, base):
    return "-" if ms is None else f"{ms:.2f} ({base / ms:.2f}x)"


def tables(rows, unlowered: bool) -> str:
    ov = lambda r, p: r["openvino"].get("results", {}).get(p, {})  # noqa: E731
    head = ["model (rounds)", "TF fp32 ms", "TF fpmath=BF16 †", "grappler-AMP", "INC", "OV fp32 †", "OV bf16 †",
            "graphir fp32", "graphir bf16"] + (["graphir bf16 unlowered"] if unlowered else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ms, f = r["ms"], r["ms"]["fp32"]
        cells = [f"{r['model']} ({r['rounds']})", f"{f:.2f}", _cell(r["fpmath"].get("ms"), f),
                 _cell(ms["grappler-amp"], f), _cell(ms.get("inc"), f), _cell(ov(r, "f32").get("ms"), f),
                 _cell(ov(r, "bf16").get("ms"), f), _cell(ms["graphir-fp32"], f), _cell(ms["graphir-bf16"], f)]
        if unlowered:
            cells.append(_cell(ms.get("graphir-bf16-unlowered"), f))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| model | casts executed: grappler-AMP / INC / graphir bf16 / TF fpmath | OV bf16 converts | "
            "graphir bf16 compile s (AMP pass, lowering) | grappler OptimizeGraph s | INC s |", "|" + "---|" * 6]
    for r in rows:
        c = r["casts"]
        amp = f"{r['amp_pass_s']:.2f}" if r["amp_pass_s"] is not None else "-"
        inc_s = f"{r['inc_s']:.2f}" if isinstance(r["inc_s"], float) else "-"
        out.append(f"| {r['model']} | {c['grappler-amp']} / {c.get('inc', '-')} / {c['graphir-bf16']} / "
                   f"{r['fpmath'].get('casts', '-')} | {ov(r, 'bf16').get('converts', '-')} | "
                   f"{r['compile_s']:.2f} ({amp}, {r['lower_s']:.2f}) | {r['grappler_s']:.2f} | {inc_s} |")
    out.append("\n† own process, not interleaved with the others.")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--unlowered", action="store_true", help="also time graphir bf16 without lower-onednn")
    ap.add_argument("--fpmath-worker", metavar="PB", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.runs < 9:
        ap.error("--runs must be at least 9")
    if a.fpmath_worker:
        return fpmath_worker(a)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; expected some of {', '.join(MODELS)}")
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    rows = []
    for name in names:
        r = bench(name, a)
        for w in r["warnings"]:
            print(f"{name}: warning: {w}", file=sys.stderr)
        for what, val in (("INC", r["inc_s"]), ("fpmath", r["fpmath"]), ("OpenVINO", r["openvino"])):
            reason = val if isinstance(val, str) else val.get("error") if isinstance(val, dict) else None
            if reason:
                print(f"{name}: {what} skipped: {reason}", file=sys.stderr)
        rows.append(r)
        print(f"{name}: done ({r['bf16_nodes']} bf16 nodes)", file=sys.stderr, flush=True)
    print(tables(rows, a.unlowered))


if __name__ == "__main__":
    main()
