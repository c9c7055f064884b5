"""Running graphs and evaluating constants: TensorFlow for the tf dialect, ONNX Runtime for the onnx
dialect; used by constant folding, ``graphir check``, ``graphir bench``, the tuner and benchmarks."""
from .runner import Runner, random_inputs, run_errors


def register_runtimes() -> None:
    """Attach TensorFlow's evaluator and runner to the tf dialect, ONNX Runtime's to the onnx dialect
    (idempotent)."""
    from ..dialects import TF
    from ..dialects.onnx import ONNX
    from . import onnx_eval
    from .ort_runner import OrtRunner
    from .ort_runner import run_errors as ort_run_errors
    from .tf_eval import evaluate

    TF.set_evaluator(evaluate)
    TF.set_runner(Runner, errors=run_errors)
    ONNX.set_evaluator(onnx_eval.evaluate)
    ONNX.set_runner(OrtRunner, errors=ort_run_errors)


__all__ = ["Runner", "random_inputs", "register_runtimes"]
