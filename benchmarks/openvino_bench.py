"""Time a frozen TF GraphDef in OpenVINO (a rival in benchmarks/bf16_latency.py), fp32 and bf16.

OpenVINO lives in its own venv (`make .venv-ov/.installed`); benchmarks/bf16_latency.py runs this script
there as a subprocess, once per model, and reads the JSON it prints: the median latency per precision and
the number of layers of the compiled model that convert between precisions.

    .venv-ov/bin/python benchmarks/openvino_bench.py MODEL.pb --input input --shape 8,224,224,3 --runs 9
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input", required=True, help="the input tensor's name")
    ap.add_argument("--shape", required=True, help="comma-separated static input shape")
    ap.add_argument("--output", default=None, help="the output tensor's name (default: the graph's sinks)")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="f32,bf16")
    a = ap.parse_args()
    import openvino as ov

    shape = [int(d) for d in a.shape.split(",")]
    # OpenVINO's TF frontend names tensors ``node:0``.
    tensor = a.input if ":" in a.input else a.input + ":0"
    model = ov.convert_model(a.model, input=[(tensor, shape)], output=a.output)
    core = ov.Core()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    compiled, result = {}, {}
    for p in a.precisions.split(","):
        # One stream of ``threads`` threads: the same budget as TF's intra-op pool in the other rivals.
        compiled[p] = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": p, "INFERENCE_NUM_THREADS": a.threads, "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY"})
        compiled[p]([x])  # warm-up
        # Precision changes: Convert layers, and Reorders whose input and output precisions differ.
        info = [{k: op.get_rt_info()[k].astype(str) for k in ("layerType", "runtimePrecision", "outputPrecisions")}
                for op in compiled[p].get_runtime_model().get_ops()]
        result[p] = {"converts": sum(i["layerType"] == "Convert" or i["layerType"] == "Reorder"
                                     and i["runtimePrecision"] != i["outputPrecisions"] for i in info)}
    times = {p: [] for p in compiled}
    for _ in range(a.runs):  # interleaved, like the TF rivals
        for p, cm in compiled.items():
            t = time.perf_counter()
            cm([x])
            times[p].append(time.perf_counter() - t)
    for p in compiled:
        result[p]["ms"] = statistics.median(times[p]) * 1e3
    print(json.dumps({"openvino": ov.__version__, "results": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
