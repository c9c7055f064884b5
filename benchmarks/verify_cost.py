"""What ``--verify`` costs: ``graphir compile`` of Keras ResNet50 with and without it, as a user runs it.

Usage: python benchmarks/verify_cost.py [--repeats 5] [--keep DIR]

The model is ``keras.applications.ResNet50(weights=None)`` with randomized batch-norm statistics and
biases (trained-like: nothing folds away as zero), frozen to a ``.pb``. Each run is a fresh
``python -m graphir compile model.pb -o out.pb --stats`` process, alternating ``--no-verify`` and the
default ``--verify`` so load from other processes hits both alike; ``--repeats`` runs each (at least 3).
Reported: median wall time of the whole command, and the median time of each phase from ``--stats``
(TensorFlow start-up shown apart), with the ratio verified / unverified both with and without it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_resnet50(path: str, seed: int = 0) -> int:
    """Write the frozen ResNet50 to ``path``; returns its node count."""
    import keras
    import numpy as np

    from graphir.backends.tf import to_graph_def
    from graphir.frontends.tf import load

    keras.utils.set_random_seed(seed)
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0.0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0.0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, var.shape).astype("float32")])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.05, bias.shape).astype("float32")])
    gd = to_graph_def(load(model))
    with open(path, "wb") as f:
        f.write(gd.SerializeToString())
    return len(gd.node)


def parse_phases(stdout: str) -> dict[str, float]:
    """The ``phase  seconds`` table that ``--stats`` prints."""
    out, inside = {}, False
    for line in stdout.splitlines():
        if line.startswith("phase "):
            inside = True
            continue
        if inside and line and not line.startswith("-"):
            name, _, secs = line.rpartition(" ")
            try:
                out[name.strip()] = float(secs)
            except ValueError:
                break
    return out


def run_compile(model: str, out: str, verify: bool) -> tuple[float, dict]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "graphir", "compile", model, "-o", out, "--stats",
           "--verify" if verify else "--no-verify"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"compile failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, parse_phases(proc.stdout)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of each, at least 3 (default 5)")
    ap.add_argument("--keep", metavar="DIR", help="build the model in DIR and keep it (reused when present)")
    a = ap.parse_args(argv)
    if a.repeats < 3:
        ap.error("--repeats must be at least 3")
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        model = os.path.join(d, "resnet50.pb")
        if not os.path.exists(model):
            n = build_resnet50(model)
            print(f"built {model} ({n} nodes)", file=sys.stderr, flush=True)
        runs = {False: [], True: []}
        for i in range(a.repeats):
            for verify in (False, True):
                wall, phases = run_compile(model, os.path.join(tmp, f"out{i}_{int(verify)}.pb"), verify)
                runs[verify].append((wall, phases))
                print(f"run {i + 1}/{a.repeats} {'--verify' if verify else '--no-verify'}: {wall:.2f} s "
                      f"{phases}", file=sys.stderr, flush=True)
    names = ["tf start-up", "load", "passes", "verify", "save"]

    def med(verify, key):
        vals = [w if key == "wall" else p.get(key, 0.0) for w, p in runs[verify]]
        return statistics.median(vals)

    rows = ["| run | wall s | " + " | ".join(f"{n} s" for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    for verify in (False, True):
        rows.append(f"| {'--verify' if verify else '--no-verify'} | {med(verify, 'wall'):.2f} | "
                    + " | ".join(f"{med(verify, n):.2f}" for n in names) + " |")
    wall_ratio = med(True, "wall") / med(False, "wall")
    rest = {v: med(v, "wall") - med(v, "tf start-up") for v in (False, True)}
    print("\n".join(rows))
    print(f"\nResNet50 ({a.repeats} runs each, medians): verified / unverified wall time = {wall_ratio:.2f}x; "
          f"without TF start-up = {rest[True] / rest[False]:.2f}x; verify phase = "
          f"{med(True, 'verify') / med(False, 'wall'):.0%} of the unverified compile")


if __name__ == "__main__":
    main()
