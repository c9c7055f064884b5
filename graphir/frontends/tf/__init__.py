"""TensorFlow frontend: GraphDef / SavedModel / Keras / in-memory TF objects -> graphir IR.

- :mod:`.attrs`: NodeDef attrs -> IR attrs, losslessly (constants stay encoded until a pass decodes them);
- :mod:`.inference`: types and shapes from TF's own importer and shape inference;
- :mod:`.graphdef`: GraphDef -> IR, the detected signature, reading ``.pb`` / ``.pbtxt``;
- :mod:`.savedmodel`: SavedModel / Keras / ConcreteFunction loading and freezing.

This package never imports :mod:`graphir.frontends.select` (which imports it); it cuts graphs at a
signature with the framework-neutral :mod:`graphir.frontends.signature`.
"""
from __future__ import annotations

import os
import zipfile

from ...errors import ModelLoadError, describe
from ...ir import Graph
from .attrs import convert_attr, parse_input
from .graphdef import (INPUT_OPS, NOT_OUTPUTS, default_inputs, default_outputs, from_graph_def, new_placeholder,
                       read_graph_def)
from .savedmodel import from_concrete_function, from_keras, from_saved_model, load_keras_file

__all__ = [
    "INPUT_OPS", "NOT_OUTPUTS", "convert_attr", "default_inputs", "default_outputs", "from_concrete_function",
    "from_graph_def", "from_keras", "from_saved_model", "load", "new_placeholder", "parse_input",
]


def _load_path(path: str, inputs, outputs, signature) -> Graph:
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
            raise ModelLoadError(f"{path}: not a SavedModel directory (no saved_model.pb)")
        return from_saved_model(path, inputs, outputs, signature)
    if not os.path.isfile(path):
        raise ModelLoadError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"{path}: permission denied")
    low = path.lower()
    if low.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a Keras .keras archive (not a zip file)")
    if low.endswith((".keras", ".h5", ".hdf5")):
        return load_keras_file(path, inputs, outputs)
    if os.path.basename(low) == "saved_model.pb":
        return from_saved_model(os.path.dirname(path) or ".", inputs, outputs, signature)
    gd = read_graph_def(path, text=low.endswith((".pbtxt", ".txt")))
    return from_graph_def(gd, inputs, outputs, label=path)


def load(model, inputs=None, outputs=None, signature: str = "serving_default") -> Graph:
    """Load a TF model given as a path or an in-memory GraphDef / tf.Graph / ConcreteFunction / keras.Model."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelLoadError(f"{path}: no such file or directory")
        return _load_path(path, inputs, outputs, signature)
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    if isinstance(model, graph_pb2.GraphDef):
        return from_graph_def(model, inputs, outputs)
    if isinstance(model, tf.Graph):
        return from_graph_def(model.as_graph_def(), inputs, outputs, label="tf.Graph")
    if hasattr(model, "get_concrete_function") and not _is_keras(model):
        try:
            model = model.get_concrete_function()
        except Exception as e:  # tracing runs user code: any exception type
            raise ModelLoadError(f"tf.function: cannot get a concrete function: {describe(e, 300)}") from None
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        return from_concrete_function(model, inputs, outputs)
    if _is_keras(model):
        return from_keras(model, inputs, outputs)
    raise ModelLoadError(f"unsupported model object of type {type(model).__name__}")


def _is_keras(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, keras.Model)
