"""Peak memory of graphir on an ONNX model over 2 GB with external data: load + save back, and compile.

Usage: python benchmarks/onnx_big_model.py [--gib 2.25] [--dir /tmp/graphir-big] [--no-verify] [--keep]

The model is synthetic and built here (onnx.helper, numpy; no downloads), its weights streamed straight
into one external data file (each tensor at a 4 KiB-aligned offset), so building it never holds them all:
a Conv + BatchNormalization + Relu on a small image, flattened into a 16384 -> 4096 MatMul + Add + Relu,
then parallel 4096 x 4096 MatMul + Add + Relu branches (like experts) summed (fp32, He-initialized,
non-zero biases). Foldable structure for the optimizer: the BN after the
Conv, a BN after one of the big MatMuls (its 64 MiB weight is rewritten), Identity nodes, and biases that
are an Add of two constants. ``--gib`` sets the weight size (the default is past protobuf's 2 GB limit).

Each measured step is a fresh process, as a user runs it:
- round trip: ``python -c "graphir.load(big).save(out)"`` (the model written back untouched);
- compile: ``python -m graphir compile big.onnx -o out.onnx --stats``, verified (the default: both graphs
  run on ONNX Runtime, which must read every weight) and with ``--no-verify`` (graphir's own cost; the
  benchmark's ``--no-verify`` runs only this one).

Peak memory is the process's peak resident set (``VmHWM``), shown against the weight size net of what
the same command costs on the same model 64 wide (interpreter, libraries); the anonymous part
(``RssAnon``) is shown apart, since pages of memory-mapped weights are file-backed: the kernel drops them
under pressure instead of swapping. Both are polled every 10 ms from ``/proc/PID/status``.
Each output is checked with ``onnx.checker.check_model(path, full_check=True)`` (path-based: over 2 GB), and
its external-data layout: every reference inside the output's directory, in bounds, no two tensors
overlapping, and, for the round trip, the data file byte-identical to the input's. Prints a Markdown
table. Everything is written under ``--dir`` and deleted afterwards unless ``--keep``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HIDDEN = 4096
ALIGN = 4096
OPSET = 17


# ------------------------------------------------------------------------------------------ the model
def build(directory: str, gib: float, hidden: int = HIDDEN, min_layers: int = 3, seed: int = 0) -> dict:
    """Write ``big.onnx`` and ``big.onnx.data`` into ``directory``: MatMul layers ``hidden`` wide until the
    weights pass ``gib`` GiB (at least ``min_layers``); returns facts about them."""
    import numpy as np
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h

    rng = np.random.default_rng(seed)
    data_name = "big.onnx.data"
    inits, nodes = [], []
    f = open(os.path.join(directory, data_name), "wb")

    def weight(name: str, a: np.ndarray) -> str:
        a = np.ascontiguousarray(a, np.float32)
        off = f.tell()
        if off % ALIGN:
            f.write(b"\0" * (ALIGN - off % ALIGN))
            off = f.tell()
        f.write(memoryview(a).cast("B"))
        t = TP(name=name, data_type=TP.FLOAT, dims=list(a.shape))
        t.data_location = TP.EXTERNAL
        for k, v in (("location", data_name), ("offset", str(off)), ("length", str(a.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
        return name

    def small(name: str, a: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    def bn_params(prefix: str, c: int) -> list[str]:
        return [small(f"{prefix}_gamma", rng.uniform(0.5, 1.5, c)), small(f"{prefix}_beta", rng.normal(0, 0.1, c)),
                small(f"{prefix}_mean", rng.normal(0, 0.1, c)), small(f"{prefix}_var", rng.uniform(0.5, 1.5, c))]

    # Stem: Conv + BN + Relu on 3x32x32, flattened to 16 * 32 * 32 = 16384 features.
    c = 16
    weight("conv_w", rng.normal(0, (2 / 27) ** 0.5, (c, 3, 3, 3)))
    small("conv_b", rng.normal(0, 0.05, c))
    nodes.append(h.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], name="conv", pads=[1, 1, 1, 1]))
    nodes.append(h.make_node("BatchNormalization", ["conv", *bn_params("bn0", c)], ["bn0"], name="bn0"))
    nodes.append(h.make_node("Relu", ["bn0"], ["stem"], name="stem_relu"))
    nodes.append(h.make_node("Flatten", ["stem"], ["flat"], name="flatten", axis=1))
    features = c * 32 * 32
    # A 16384 -> hidden layer, then parallel hidden -> hidden branches (like experts), summed, until the
    # weights reach the asked size: deep enough to have structure, shallow enough that fp32 rounding does
    # not compound over dozens of layers (verification compares with the default tolerances).
    target = int(gib * (1 << 30))
    total = 27 * c * 4

    def layer(i: int, x: str, fan_in: int, bn: bool = False) -> str:
        nonlocal total
        w = weight(f"w{i}", rng.normal(0, (2 / fan_in) ** 0.5, (fan_in, hidden)))
        total += fan_in * hidden * 4
        nodes.append(h.make_node("MatMul", [x, w], [f"mm{i}"], name=f"mm{i}"))
        cur = f"mm{i}"
        if bn:  # a BN after a big MatMul: folding it rewrites that weight
            nodes.append(h.make_node("BatchNormalization", [cur, *bn_params(f"bn{i}", hidden)], [f"bn{i}"],
                                     name=f"bn{i}"))
            cur = f"bn{i}"
        # The bias is the sum of two constants (constant folding), then an Identity (removed).
        ba, bb = small(f"b{i}_a", rng.normal(0, 0.05, hidden)), small(f"b{i}_b", rng.normal(0, 0.05, hidden))
        nodes.append(h.make_node("Add", [ba, bb], [f"b{i}"], name=f"bias{i}"))
        nodes.append(h.make_node("Add", [cur, f"b{i}"], [f"add{i}"], name=f"add{i}"))
        nodes.append(h.make_node("Identity", [f"add{i}"], [f"id{i}"], name=f"id{i}"))
        nodes.append(h.make_node("Relu", [f"id{i}"], [f"relu{i}"], name=f"relu{i}"))
        return f"relu{i}"

    trunk = layer(0, "flat", c * 32 * 32)
    branches = []
    while total < target or len(branches) + 1 < min_layers:
        branches.append(layer(len(branches) + 1, trunk, hidden, bn=not branches))
    f.close()
    nodes.append(h.make_node("Sum", branches, ["y"], name="sum"))
    g = h.make_graph(nodes, "big", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 32, 32])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, hidden])], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)], producer_name="onnx_big_model.py")
    onnx.save(model, os.path.join(directory, "big.onnx"))
    return {"weights": total, "layers": len(branches) + 1, "nodes": len(nodes),
            "data_bytes": os.path.getsize(os.path.join(directory, data_name))}


# ------------------------------------------------------------------------------------------ measuring
def _status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def measure(cmd: list[str], cwd: str) -> dict:
    """Run ``cmd``; its wall time, exit code, output, and its peak resident set (``VmHWM``, which exec
    resets, unlike ``ru_maxrss``, which a forked child inherits from its parent) and peak RssAnon/RssFile,
    polled every 10 ms from ``/proc``."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    done = threading.Event()

    def poll():
        while not done.is_set():
            for k, v in _status(p.pid).items():
                if k in peaks:
                    peaks[k] = max(peaks[k], v)
            done.wait(0.01)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, err = [], []
    readers = [threading.Thread(target=lambda s, acc: acc.append(s.read()), args=(s, acc), daemon=True)
               for s, acc in ((p.stdout, out), (p.stderr, err))]
    for r in readers:
        r.start()
    _, status = os.waitpid(p.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    for r in readers:
        r.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": p.returncode, "seconds": seconds, "maxrss": peaks["VmHWM"], "anon": peaks["RssAnon"],
            "file": peaks["RssFile"], "stdout": "".join(out), "stderr": "".join(err)}


# ------------------------------------------------------------------------------------------ checking
def check_output(path: str) -> dict:
    """Checker (path-based, full) and the external-data layout of the model at ``path``."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    t0 = time.perf_counter()
    onnx.checker.check_model(path, full_check=True)
    checker_s = time.perf_counter() - t0
    model = onnx.load(path, load_external_data=False)
    base = os.path.dirname(os.path.abspath(path))
    spans: dict[str, list] = {}
    inline = ext = 0
    for t in model.graph.initializer:
        if not uses_external_data(t):
            inline += len(t.raw_data)
            continue
        info = ExternalDataInfo(t)
        loc = os.path.normpath(os.path.join(base, info.location))
        assert os.path.dirname(loc) == base, f"{t.name}: data outside the model's directory ({info.location})"
        assert os.path.isfile(loc), f"{t.name}: {info.location} missing"
        n = 4 * int(__import__("numpy").prod(t.dims)) if t.data_type == onnx.TensorProto.FLOAT else info.length
        assert info.length == n, f"{t.name}: length {info.length}, tensor needs {n}"
        assert info.offset + info.length <= os.path.getsize(loc), f"{t.name}: past the end of {info.location}"
        spans.setdefault(info.location, []).append((info.offset, info.offset + info.length, t.name))
        ext += info.length
    for loc, s in spans.items():
        s.sort()
        for a, b in zip(s, s[1:]):
            assert a[1] <= b[0], f"{a[2]} and {b[2]} overlap in {loc}"
    files = {loc: os.path.getsize(os.path.join(base, loc)) for loc in spans}
    return {"checker_s": checker_s, "files": files, "external_bytes": ext, "inline_bytes": inline,
            "model_bytes": os.path.getsize(path), "nodes": len(model.graph.node)}


def same_bytes(a: str, b: str, chunk: int = 64 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


# ------------------------------------------------------------------------------------------ main
def _gb(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def run_steps(directory: str, verify: bool) -> list[tuple]:
    """Round trip and compile of ``directory``/src/big.onnx, each checked; rows of (step, run, check, note)."""
    src = os.path.join(directory, "src")
    big = os.path.join(src, "big.onnx")
    rt, opt = os.path.join(directory, "roundtrip"), os.path.join(directory, "compiled")
    for d in (rt, opt):
        os.makedirs(d, exist_ok=True)
    py = sys.executable
    rows = []
    trip = measure([py, "-c", "import sys, graphir; graphir.load(sys.argv[1]).save(sys.argv[2])",
                    big, os.path.join(rt, "big.onnx")], directory)
    if trip["rc"] != 0:
        raise SystemExit(f"round trip failed ({trip['rc']}): {trip['stderr'].strip()[-2000:]}")
    chk = check_output(os.path.join(rt, "big.onnx"))
    identical = same_bytes(big, os.path.join(rt, "big.onnx")) and \
        same_bytes(os.path.join(src, "big.onnx.data"), os.path.join(rt, "big.onnx.data"))
    rows.append(("round trip (load + save)", trip, chk, "output byte-identical" if identical else "DIFFERENT"))
    for verified in ([True, False] if verify else [False]):
        out = os.path.join(opt, "verified" if verified else "unverified")
        os.makedirs(out, exist_ok=True)
        cmd = [py, "-m", "graphir", "compile", big, "-o", os.path.join(out, "big.onnx"), "--stats"]
        comp = measure(cmd + ([] if verified else ["--no-verify"]), directory)
        if comp["rc"] != 0:
            raise SystemExit(f"compile failed ({comp['rc']}): {comp['stderr'].strip()[-2000:]}")
        chk2 = check_output(os.path.join(out, "big.onnx"))
        last = comp["stderr"].strip().splitlines()[-1]
        note = last[last.index("(") + 1:last.index(")")] if "(" in last else last
        rows.append((f"compile{'' if verified else ' --no-verify'}", comp, chk2, note))
        comp["stats"] = comp["stdout"]
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=2.25, help="weight size in GiB (default 2.25)")
    ap.add_argument("--dir", default="/tmp/graphir-big", help="work directory (deleted afterwards)")
    ap.add_argument("--no-verify", action="store_true", help="only compile with --no-verify (no ONNX Runtime runs)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    if os.path.exists(a.dir):
        shutil.rmtree(a.dir)
    tiny_dir, big_dir = os.path.join(a.dir, "tiny"), os.path.join(a.dir, "big")
    try:
        # The same commands on the same structure with 64-wide layers: what the process costs without weights.
        os.makedirs(os.path.join(tiny_dir, "src"))
        tiny = build(os.path.join(tiny_dir, "src"), 0.0, hidden=64)
        base = run_steps(tiny_dir, not a.no_verify)
        os.makedirs(os.path.join(big_dir, "src"))
        t0 = time.perf_counter()
        facts = build(os.path.join(big_dir, "src"), a.gib)
        print(f"built {facts['layers']} layers, {facts['nodes']} nodes, {_gb(facts['weights'])} of weights "
              f"in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows = run_steps(big_dir, not a.no_verify)
        sys.stderr.write(rows[1][1]["stats"])

        w = facts["weights"]
        print(f"\nSynthetic model: {facts['nodes']} nodes, {_gb(w)} of fp32 weights in one external data file "
              f"({facts['layers']} MatMul layers: one 16384 x 4096, the rest 4096 x 4096 in parallel branches). Peak: the process's maximum resident set; anon: "
              f"its peak anonymous (not file-backed) part; over weights: (peak - the same command's peak on the "
              f"same model 64 wide, {_gb(tiny['weights'])} of weights) / weight size.\n")
        print("| step | time | peak RSS | over weights | peak anon | anon over weights | output checker | "
              "output data files | result |")
        print("|---|--:|--:|--:|--:|--:|---|---|---|")
        for (name, r, c, note), (_, b, _, _) in zip(rows, base):
            files = ", ".join(f"`{k}` {_gb(v)}" for k, v in c["files"].items())
            print(f"| {name} | {r['seconds']:.0f} s | {_gb(r['maxrss'])} | {(r['maxrss'] - b['maxrss']) / w:.2f} | "
                  f"{_gb(r['anon'])} | {(r['anon'] - b['anon']) / w:.2f} | full_check ok ({c['checker_s']:.1f} s) | "
                  f"{files} | {note} |")
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
