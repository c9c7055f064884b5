"""Backends: write a graphir :class:`~graphir.ir.Graph` out as a model file."""
from __future__ import annotations

import os
from typing import Optional

FORMATS = ("pb", "pbtxt", "saved_model", "gir", "onnx")


def infer_format(path: str) -> str:
    if path.endswith(".pbtxt"):
        return "pbtxt"
    if path.endswith(".pb"):
        return "pb"
    if path.endswith(".gir"):
        return "gir"
    if path.lower().endswith(".onnx"):
        return "onnx"
    return "saved_model"


def register_backends() -> None:
    """Make ``Graph.save`` write through :func:`save` (called once by ``graphir.setup``)."""
    from ..ir.registry import register_writer

    register_writer(save)


def save(graph, path, format: Optional[str] = None, **kwargs) -> None:
    """Write ``graph`` to ``path`` atomically. ``format`` defaults from the suffix (a path without a
    known suffix is a SavedModel directory)."""
    path = os.fspath(path)
    format = format or infer_format(path)
    if format == "gir":
        from ..ir.printer import print_graph
        from .atomic import atomic_write_text

        atomic_write_text(path, print_graph(graph, full_constants=True))
        return
    if format == "onnx":
        from . import onnx as onnx_backend

        onnx_backend.save(graph, path, **kwargs)
        return
    from . import tf as tf_backend

    tf_backend.save(graph, path, format, **kwargs)
