"""LPOT-style accuracy-driven bf16 conversion of the bundled digits CNN.

    python examples/lpot_digits.py [--workers 2]

The same as ``python -m graphir compile examples/digits/digits_cnn.pb --config
examples/graph_optimization.yaml -o digits_bf16.pb``, written the way an LPOT script is.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from graphir import Graph_Optimization  # noqa: E402  (was: from lpot.experimental import ...)


class Top1:
    """eval_func: top-1 accuracy on the held-out split. A class at module level, so it can be sent to
    worker processes (``--workers``)."""

    def __init__(self, path):
        z = np.load(path)
        self.x, self.y = z["x"], z["y"]

    def __call__(self, model):
        return float(np.mean(np.argmax(model(self.x), -1) == self.y))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--target", default="native", help="native (detect), avx512_bf16, amx_bf16 or generic")
    ap.add_argument("-o", "--output", default="digits_bf16.pb")
    a = ap.parse_args()

    graph_optimizer = Graph_Optimization(os.path.join(HERE, "graph_optimization.yaml"),
                                         target=a.target, workers=a.workers)
    graph_optimizer.model = os.path.join(HERE, "digits", "digits_cnn.pb")
    graph_optimizer.eval_func = Top1(os.path.join(HERE, "digits", "digits_test.npz"))  # replaces the YAML's
    optimized_model = graph_optimizer()
    optimized_model.save(a.output)
    t = optimized_model.report["tuning"]
    print(f"wrote {a.output}: top-1 {t['metric']:.4f} (fp32 {t['baseline']:.4f}), "
          f"fp32 fallbacks: {', '.join(t['fp32_fallbacks']) or 'none'}")
    return 0


if __name__ == "__main__":  # needed for --workers: worker processes are spawned
    sys.exit(main())
