"""Frontends: turn a model (path or in-memory object) into a graphir :class:`~graphir.ir.Graph`."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from ..ir import Graph

Names = Optional[Union[str, Sequence[str]]]


def split_names(names: Names) -> Optional[list[str]]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]``; None/empty -> None."""
    if names is None:
        return None
    if isinstance(names, str):
        names = names.split(",")
    out = [n.strip() for n in names if n and n.strip()]
    return out or None


def load(model, inputs: Names = None, outputs: Names = None, *, signature: str = "serving_default") -> Graph:
    """Load ``model`` into the IR.

    ``model`` is a path (``.pb``, ``.pbtxt``, ``.gir``, ``.onnx``, SavedModel directory, ``.keras``/``.h5``) or
    an in-memory ``Graph``, ``GraphDef``, ``onnx.ModelProto``, ``tf.Graph``, ``ConcreteFunction`` or
    ``keras.Model``."""
    inputs, outputs = split_names(inputs), split_names(outputs)
    if isinstance(model, Graph):
        from .select import select_signature

        return select_signature(model.copy(), inputs, outputs)
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".gir"):
        from ..errors import ModelLoadError
        from ..ir.parser import ParseError, parse_file
        from .select import select_signature

        try:
            graph = parse_file(model)  # reports a missing file itself, like the TF frontend
        except ParseError as e:
            raise ModelLoadError(str(e)) from None
        return select_signature(graph, inputs, outputs)
    from . import onnx as onnx_frontend

    if onnx_frontend.is_onnx_path(model) or type(model).__name__ == "ModelProto":
        return onnx_frontend.load(model, inputs, outputs)
    from . import tf as tf_frontend

    return tf_frontend.load(model, inputs, outputs, signature=signature)
