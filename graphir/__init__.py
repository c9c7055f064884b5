"""graphir: an offline graph optimizer for TensorFlow inference models.

Public API: :func:`load`, :func:`compile`, :class:`Graph_Optimization` and the IR types. TensorFlow is
imported only when a model is actually loaded or written.
"""
from .errors import ConfigError, GraphirError, ModelLoadError
from .ir import DType, Graph, Node, Shape, Tensor, TensorType, Value

__version__ = "0.1.0"

from .builtins import register_all as _register_all  # noqa: E402

_register_all()

__all__ = [
    "ConfigError", "DType", "Graph", "GraphirError", "Graph_Optimization", "ModelLoadError", "Node",
    "OptimizedModel", "Shape", "Tensor", "TensorType", "Value", "compile", "load",
]


def load(model, inputs=None, outputs=None, *, signature="serving_default") -> Graph:
    """Load a model (path or in-memory TF/Keras object) into graphir's IR."""
    from .frontends import load as _load

    return _load(model, inputs, outputs, signature=signature)


def __getattr__(name):
    if name == "compile":
        from .api import compile

        return compile
    if name == "OptimizedModel":
        from .compiler import OptimizedModel

        return OptimizedModel
    if name == "Graph_Optimization":
        from .lpot import Graph_Optimization

        return Graph_Optimization
    raise AttributeError(f"module 'graphir' has no attribute {name!r}")
