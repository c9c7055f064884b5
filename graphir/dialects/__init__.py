"""Dialects: op knowledge per framework domain, registered explicitly with the IR registry."""
from __future__ import annotations

from ..ir.registry import has_dialect, register_dialect
from .tf import TF


def register_builtin_dialects() -> None:
    """Register the dialects graphir ships (idempotent). Their runtimes are attached by
    :func:`graphir.runtime_check.register_runtimes`."""
    if not has_dialect(TF.domain):
        register_dialect(TF)


__all__ = ["TF", "register_builtin_dialects"]
