"""Convert a frozen GraphDef to bf16 with Intel Neural Compressor 2.6 (a rival, for benchmarks).

INC pins numpy 1.x, so this script runs in its own venv (`make .venv-inc`), as a subprocess of
benchmarks/bf16_latency.py; the converted graph is then timed in the same process as the others.

    .venv-inc/bin/python benchmarks/inc_convert.py IN.pb OUT.pb --inputs input --outputs Identity
"""
import argparse
import contextlib
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--outputs", required=True)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from neural_compressor import mix_precision
    from neural_compressor.config import MixedPrecisionConfig

    conf = MixedPrecisionConfig(inputs=args.inputs.split(","), outputs=args.outputs.split(","))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        model = mix_precision.fit(args.model, conf=conf)
    seconds = time.perf_counter() - t0
    model.save(args.out)
    print(f"inc_seconds={seconds:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
