"""Run the random-graph fuzzer (tests/fuzz_graphs.py) over many seeds: ``make fuzz N=2000``.

Each seed's graph goes through every pass alone and the full fp32 and bf16 pipelines, compared with the
original in TensorFlow (see tests/fuzz_graphs.py). Failures are grouped by what they say; the first seed
of each group is shrunk to a minimal ``.gir``, printed and written to ``--out``. Exits 1 if anything
failed. Not part of ``make test`` (tests/test_fuzz.py runs a fixed few seeds there).

    python benchmarks/fuzz.py --seeds 2000 [--start 0] [--out out/fuzz]
    python benchmarks/fuzz.py --seed 1234        # one seed, with the shrinking steps shown
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def signature(f) -> tuple:
    """What a failure says, without the node names and numbers that differ from seed to seed."""
    if f.kind == "mismatch":
        return f.check, f.kind
    msg = re.sub(r"'[^']*'", "'…'", f.message)
    return f.check, f.kind, re.sub(r"\d+", "#", msg)[:200]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2000, help="how many seeds (default 2000)")
    ap.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--seed", type=int, help="run this one seed only, verbosely")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "fuzz"), help="where minimal .gir files go")
    ap.add_argument("--no-reduce", action="store_true", help="report failing graphs unshrunk")
    a = ap.parse_args(argv)

    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    import fuzz_graphs as F

    if a.seed is not None:
        report = F.fuzz(a.seed, reduce=not a.no_reduce, log=print)
        print(report or f"seed {a.seed}: every check holds")
        return 1 if report else 0

    groups: dict = {}
    t0 = time.perf_counter()
    seeds = range(a.start, a.start + a.seeds)
    for i, seed in enumerate(seeds):
        try:
            failures = F.check_graph(F.make_graph(seed), seed=seed)
        except Exception as e:  # the generator itself failed: report it like any other failure
            failures = [F.Failure("generator", "crash", f"{type(e).__name__}: {e}")]
        for f in failures:
            groups.setdefault(signature(f), []).append((seed, f))
        if (i + 1) % 100 == 0 or i + 1 == len(seeds):
            bad = len({s for g in groups.values() for s, _ in g})
            print(f"{i + 1}/{len(seeds)} seeds, {bad} failing, {len(groups)} distinct failures, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    if not groups:
        print(f"no failures in seeds {seeds.start}..{seeds.stop - 1}")
        return 0
    os.makedirs(a.out, exist_ok=True)
    for sig, hits in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        seed, f = hits[0]
        print(f"\n== {len(hits)} seed(s): {f}\n   seeds: {' '.join(str(s) for s, _ in hits[:30])}"
              f"{' ...' if len(hits) > 30 else ''}")
        if f.check == "generator":
            continue
        graph = F.make_graph(seed)
        small = graph if a.no_reduce else F.minimize(graph, f, seed=seed)
        path = os.path.join(a.out, f"seed{seed}-{f.check.replace(':', '-')}-{f.kind}.gir")
        text = small.text(full_constants=True)
        with open(path, "w") as fh:
            fh.write(f"// seed {seed}: {f}\n{text}")
        print(f"   minimal .gir ({len(small)} nodes, {os.path.relpath(path)}):\n{text}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
