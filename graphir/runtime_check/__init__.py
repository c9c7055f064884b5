"""Running graphs in TensorFlow: used by tests, ``graphir check``, ``graphir bench``, the tuner and benchmarks."""
from .runner import Runner, random_inputs

__all__ = ["Runner", "random_inputs"]
