"""graphir's ONNX optimization against onnx-simplifier and onnxscript's optimizer: node counts, optimize
time, and whether each optimized model computes the original's outputs on ONNX Runtime.

Usage: python benchmarks/onnx_optimizers.py [--extra DIR ...] [--repeat N] [--markdown] [--only SUBSTR]
       (``make bench-onnxopt`` builds the rivals' venv and runs it)

Models: the real CNNs the installed ``onnx`` package ships (``onnx/backend/test/data/light/*.onnx``:
resnet50, squeezenet, densenet121, inception v1/v2, shufflenet, vgg19, zfnet512, alexnet; their weights
are ``ConstantOfShape`` fills), plus every ``*.onnx`` under each ``--extra`` directory (e.g. models graphir
exported from TF). The package's models are op set 9 with their initializers also listed as graph inputs
(IR version 3, where that means "overridable"); graphir refuses op sets below 13, so each is first
brought to op set 13 with ``onnx.version_converter`` and its initializers taken out of the inputs (making
them constants). That prepared model is what all three optimizers get; "orig" counts its nodes.

Each optimizer is timed as load from file + optimize + save to file: the best of ``--repeat`` runs in one
warm process (imports and first-run set-up are not counted), over ``--rounds`` rounds that alternate the
optimizers (so load from other processes hits them alike):

- graphir: ``graphir.compile(path)`` (its ONNX fp32 pipeline, with the IR verifier after every pass as
  the CLI runs it) then ``.save(out)`` -- the code path of ``graphir compile x.onnx -o y.onnx`` without
  ``--verify``, whose ORT runs of both models are not counted;
- onnxsim: ``onnxsim.simplify(model, check_n=0)`` (its own ORT check off);
- onnxscript: ``onnxscript.optimizer.optimize(model)``.

The rivals are not graphir dependencies: they run in a subprocess of the ``.venv-onnxopt`` interpreter
(``--rivals-python``), this same file in ``--worker`` mode, which imports nothing from graphir.

Nodes are counted over the main graph and every subgraph. "equal" is checked here, on ORT with its graph
optimizations off (so the model as written is what runs): the original and each optimized model get the
same random inputs (``--samples`` sets, symbolic dims 1) and every output must match within
``|a - b| <= atol + rtol * |b|`` (rtol 1e-4, atol 1e-5 times the output's largest magnitude).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("graphir", "onnxsim", "onnxscript")
RIVALS = ("onnxsim", "onnxscript")
MIN_OPSET = 13


# ------------------------------------------------------------------------------------------ both sides
def count_nodes(graph) -> int:
    """Nodes of a GraphProto, its subgraphs' included."""
    from onnx import AttributeProto

    n = 0
    for node in graph.node:
        n += 1
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                n += count_nodes(a.g)
            elif a.type == AttributeProto.GRAPHS:
                n += sum(count_nodes(g) for g in a.graphs)
    return n


def _optimize_rival(tool: str, src: str, dst: str) -> None:
    import onnx

    m = onnx.load(src)
    if tool == "onnxsim":
        import onnxsim

        m, _ = onnxsim.simplify(m, check_n=0)
    elif tool == "onnxscript":
        import onnxscript.optimizer

        m = onnxscript.optimizer.optimize(m)
    else:
        raise ValueError(tool)
    onnx.save(m, dst)


def _optimize_graphir(src: str, dst: str) -> None:
    import graphir

    graphir.compile(src).save(dst)


def time_jobs(optimize, jobs: list[dict], repeat: int) -> list[dict]:
    """Run ``optimize(src, dst)`` ``repeat`` times per job; the best time and the result's node count."""
    import onnx

    out = []
    for job in jobs:
        best, err = None, None
        for _ in range(repeat):
            try:
                t0 = time.perf_counter()
                optimize(job["src"], job["dst"])
                dt = time.perf_counter() - t0
            except Exception as e:  # a rival's failure is a result of the benchmark, not its end
                err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
                break
            best = dt if best is None else min(best, dt)
        res = {"name": job["name"], "seconds": best, "error": err}
        if err is None:
            res["nodes"] = count_nodes(onnx.load(job["dst"], load_external_data=False).graph)
        out.append(res)
    return out


def worker_main(tool: str, repeat: int) -> None:
    """``--worker TOOL``: the rivals' side, run by the .venv-onnxopt interpreter; jobs on stdin as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    jobs = json.load(sys.stdin)
    res = time_jobs(lambda s, d: _optimize_rival(tool, s, d), jobs, repeat)
    json.dump(res, sys.stdout)


# ------------------------------------------------------------------------------------------ driver side
def package_models() -> list[str]:
    import onnx

    d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return sorted(glob.glob(os.path.join(d, "*.onnx")))


def prepare(src: str, dst: str) -> None:
    """``src`` as a model every optimizer reads the same way: op set >= 13, initializers not inputs."""
    import onnx
    from onnx import version_converter

    m = onnx.load(src)
    v = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if v < MIN_OPSET:
        m = version_converter.convert_version(m, MIN_OPSET)
    inits = {t.name for t in m.graph.initializer}
    if any(i.name in inits for i in m.graph.input):
        keep = [i for i in m.graph.input if i.name not in inits]
        del m.graph.input[:]
        m.graph.input.extend(keep)
    m.ir_version = max(m.ir_version, 7)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, dst)


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def random_feeds(sess, samples: int, seed: int = 0) -> list[dict]:
    import numpy as np
    from onnx import helper

    rng = np.random.default_rng(seed)
    type_map = {f"tensor({helper.tensor_dtype_to_string(c).split('.')[-1].lower()})": c
                for c in helper.get_all_tensor_dtypes()}
    feeds = []
    for _ in range(samples):
        f = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            dt = helper.tensor_dtype_to_np_dtype(type_map[i.type])
            if dt.kind == "f":
                f[i.name] = rng.standard_normal(shape).astype(dt)
            elif dt.kind == "b":
                f[i.name] = rng.random(shape) < 0.5
            else:
                f[i.name] = rng.integers(0, 4, shape).astype(dt)
        feeds.append(f)
    return feeds


def outputs_equal(ref_outs: list, path: str, feeds: list, rtol: float, atol: float) -> str:
    """"yes", or why not."""
    import numpy as np

    try:
        sess = _session(path)
        got = [sess.run(None, f) for f in feeds]
    except Exception as e:
        return f"does not run ({type(e).__name__})"
    for want, have in zip(ref_outs, got):
        if len(want) != len(have):
            return f"{len(have)} outputs, expected {len(want)}"
        for k, (a, b) in enumerate(zip(have, want)):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                return f"output {k}: shape {a.shape} != {b.shape}"
            if b.dtype.kind == "f":
                tol = atol * max(1.0, float(np.max(np.abs(b)))) + rtol * np.abs(b.astype(np.float64))
                err = np.abs(a.astype(np.float64) - b)
                if not np.all(err <= tol):
                    return f"output {k}: max abs err {float(err.max()):.3g}"
            elif not np.array_equal(a, b):
                return f"output {k} differs"
    return "yes"


def _best(x: dict, y: dict) -> dict:
    if x.get("seconds") is None or y.get("seconds") is None:
        return x if x.get("seconds") is None else y  # a failure in any round stands
    return x if x["seconds"] <= y["seconds"] else y


def run_rival(python: str, tool: str, jobs: list[dict], repeat: int) -> list[dict]:
    p = subprocess.run([python, os.path.abspath(__file__), "--worker", tool, "--repeat", str(repeat)],
                       input=json.dumps(jobs), capture_output=True, text=True)
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        return [{"name": j["name"], "seconds": None, "error": f"worker failed: {msg[:200]}"} for j in jobs]
    return json.loads(p.stdout)


def fmt_time(s) -> str:
    return "-" if s is None else f"{s:.3f}"


def time_ratio(r: dict) -> str:
    """graphir's optimize time over onnx-simplifier's (below 1: graphir is faster)."""
    g, s = r["graphir"].get("seconds"), r["onnxsim"].get("seconds")
    return "-" if not g or not s else f"{g / s:.2f}"


def table(rows: list[dict], markdown: bool) -> str:
    head = ["model", "orig", "graphir", "onnxsim", "onnxscript", "graphir s", "onnxsim s", "onnxscript s",
            "graphir/onnxsim time", "equal (graphir/onnxsim/onnxscript)"]
    lines = []
    for r in rows:
        cells = [r["name"], str(r["orig"])]
        cells += [str(r[t].get("nodes", "fail")) for t in TOOLS]
        cells += [fmt_time(r[t].get("seconds")) for t in TOOLS]
        cells.append(time_ratio(r))
        cells.append(" / ".join(r[t].get("equal", "-") for t in TOOLS))
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 8 + ["---"]) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    sys.path.insert(0, ROOT)
    from graphir.table import format_table

    return format_table([head] + lines, align="lrrrrrrrrl", rules=(1,))


def summary(rows: list[dict]) -> list[str]:
    out = []
    for rival in RIVALS:
        ok = [r for r in rows if "nodes" in r["graphir"] and "nodes" in r[rival]]
        worse = [r["name"] for r in ok if r["graphir"]["nodes"] > r[rival]["nodes"]]
        out.append(f"graphir nodes <= {rival} on {len(ok) - len(worse)}/{len(ok)} models"
                   + (f" (more on: {', '.join(worse)})" if worse else ""))
    timed = [r for r in rows if r["graphir"].get("seconds") and r["onnxsim"].get("seconds")]
    if timed:
        g = sum(r["graphir"]["seconds"] for r in timed)
        s = sum(r["onnxsim"]["seconds"] for r in timed)
        faster = sum(r["graphir"]["seconds"] <= r["onnxsim"]["seconds"] for r in timed)
        worst = max(timed, key=lambda r: r["graphir"]["seconds"] / r["onnxsim"]["seconds"])
        out.append(f"optimize time: graphir {g:.2f} s, onnxsim {s:.2f} s in total; graphir <= onnxsim on "
                   f"{faster}/{len(timed)} models (highest graphir/onnxsim ratio {time_ratio(worst)}, "
                   f"{worst['name']})")
    bad = [f"{r['name']} ({t}: {r[t]['equal']})" for r in rows for t in TOOLS
           if r[t].get("equal") not in (None, "yes")]
    out.append("outputs equal on ORT: " + ("all" if not bad else "not " + ", ".join(bad)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extra", action="append", default=[], help="a directory of more .onnx models")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per model, optimizer and round")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds over all optimizers (the best time of all rounds and repeats is kept)")
    ap.add_argument("--samples", type=int, default=2, help="random input sets for the output check")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--only", help="only models whose name contains this")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--keep", help="write the prepared and optimized models into this directory")
    ap.add_argument("--rivals-python", default=os.path.join(ROOT, ".venv-onnxopt", "bin", "python"),
                    help="the interpreter with onnxsim and onnxscript (default: .venv-onnxopt)")
    ap.add_argument("--worker", choices=RIVALS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker_main(a.worker, a.repeat)
        return 0
    if not os.path.exists(a.rivals_python):
        print(f"{a.rivals_python}: no such interpreter; run `make .venv-onnxopt/.installed` (or pass "
              f"--rivals-python)", file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    from graphir.quiet import quiet_environment

    quiet_environment()  # keeps TF's start-up chatter off the terminal, should anything import it

    srcs = [("onnx:" + os.path.basename(p)[:-5].removeprefix("light_"), p) for p in package_models()]
    for d in a.extra:
        if not os.path.isdir(d):
            print(f"--extra {d}: not a directory", file=sys.stderr)
            return 2
        # Named "<dir>/<model>": two directories may hold models of the same name (e.g. two exporters').
        tag = os.path.basename(os.path.normpath(d))
        srcs += [(f"{tag}/{os.path.relpath(p, d)[:-5]}", p)
                 for p in sorted(glob.glob(os.path.join(d, "**", "*.onnx"), recursive=True))]
    if a.only:
        srcs = [s for s in srcs if a.only in s[0]]
    import onnx

    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnxopt-") as tmp:
        tmp = a.keep or tmp
        jobs = {t: [] for t in TOOLS}
        rows = []
        for k, (name, src) in enumerate(srcs):
            prep = os.path.join(tmp, f"{k}.onnx")
            prepare(src, prep)
            rows.append({"name": name, "src": prep, "orig": count_nodes(onnx.load(prep).graph),
                         **{t: {} for t in TOOLS}})
            for t in TOOLS:
                jobs[t].append({"name": name, "src": prep, "dst": os.path.join(tmp, f"{k}.{t}.onnx")})
        # Rounds alternate the optimizers, so a burst of load on a shared machine hits them alike.
        results: dict = {}
        for _ in range(a.rounds):
            got = {"graphir": time_jobs(_optimize_graphir, jobs["graphir"], a.repeat)}
            for t in RIVALS:
                got[t] = run_rival(a.rivals_python, t, jobs[t], a.repeat)
            for t, res in got.items():
                results[t] = res if t not in results else [_best(x, y) for x, y in zip(results[t], res)]
        for t in TOOLS:
            for row, res in zip(rows, results[t]):
                row[t] = dict(res)
                if res.get("error"):
                    row[t]["equal"] = "failed: " + res["error"]
        for row, *tool_jobs in zip(rows, *(jobs[t] for t in TOOLS)):
            sess = _session(row["src"])
            feeds = random_feeds(sess, a.samples)
            ref = [sess.run(None, f) for f in feeds]
            for t, job in zip(TOOLS, tool_jobs):
                if "nodes" in row[t]:
                    row[t]["equal"] = outputs_equal(ref, job["dst"], feeds, a.rtol, a.atol)
    print(table(rows, a.markdown))
    print()
    for line in summary(rows):
        print(("- " if a.markdown else "") + line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "src"} for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
