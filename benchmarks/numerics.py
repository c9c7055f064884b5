"""Numerics of the compiled benchmark models: relative error of graphir fp32 and bf16 against the original.

    python benchmarks/numerics.py [--models resnet50,vit] [--batch 2]

Relative error is ||compiled - original|| / ||original|| over every output, on random inputs (seeded); the
digits model also reports top-1 agreement on its held-out test split. The bf16 graph is the one
``--precisions bf16,fp32`` ships on this machine (fp32 when bf16 is not measured faster).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "tests")]


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="digits,resnet50,resnet50v2,mobilenet_v2,efficientnetv2b0,transformer,"
                                        "convnext_tiny,encoder,vit")
    ap.add_argument("--batch", type=int, default=2)
    a = ap.parse_args(argv)
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    import graphir
    import trained_models
    from graphir.frontends.tf import from_graph_def
    from graphir.runtime_check.runner import Runner, random_inputs

    print("| model | fp32 rel. error | bf16 rel. error | bf16 graph | digits top-1 agreement |")
    print("|---|---|---|---|---|")
    for name in a.models.split(","):
        g = from_graph_def(trained_models.load(name))
        f32 = graphir.compile(g, precisions="fp32")
        b16 = graphir.compile(g, precisions="bf16,fp32")
        is_bf16 = any(v.dtype.name == "bf16" for n in b16.ir.nodes() for v in n.outputs)
        feeds = random_inputs(g, dim=a.batch, seed=1)
        if name == "digits":
            feeds = {g.inputs[0].name: np.random.default_rng(1).random((a.batch, 8, 8, 1), np.float32)}
        ref, o32, o16 = (Runner(x)(feeds) for x in (g, f32.ir, b16.ir))
        e32 = max(rel(x, y) for x, y in zip(ref, o32))
        e16 = max(rel(x, y) for x, y in zip(ref, o16))
        agree = ""
        if name == "digits":
            data = np.load(os.path.join(ROOT, "examples", "digits", "digits_test.npz"))
            x = {g.inputs[0].name: data["x"]}
            top = [np.argmax(Runner(m)(x)[0], -1) for m in (g, b16.ir)]
            agree = f"{np.mean(top[0] == top[1]) * 100:.1f}%"
        print(f"| {name} | {e32:.1e} | {e16:.1e} | {'bf16' if is_bf16 else 'fp32 (not faster)'} | {agree} |",
              flush=True)


if __name__ == "__main__":
    main()
