"""Running graphs and evaluating constants in TensorFlow: the tf dialect's runtime, used by constant
folding, ``graphir check``, ``graphir bench``, the tuner and benchmarks."""
from .runner import Runner, random_inputs


def register_runtimes() -> None:
    """Attach TensorFlow's evaluator and runner to the tf dialect (idempotent)."""
    from ..dialects import TF
    from .tf_eval import evaluate

    TF.set_evaluator(evaluate)
    TF.set_runner(Runner)


__all__ = ["Runner", "random_inputs", "register_runtimes"]
