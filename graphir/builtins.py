"""Explicit registration of what graphir ships: the tf and onnx dialects, their runtimes, and the graph writer.

``graphir/__init__`` calls :func:`register_all` once, so every entry point (API, CLI, tests) sees the same
registry; nothing registers itself as a side effect of being imported.
"""
from __future__ import annotations

_done = False


def register_all() -> None:
    global _done
    if _done:
        return
    from .backends import register_backends
    from .dialects import register_builtin_dialects
    from .dialects.onnx import register_onnx_dialect
    from .runtime_check import register_runtimes

    register_builtin_dialects()
    register_onnx_dialect()
    register_runtimes()
    register_backends()
    _done = True
