"""Signature selection for a graph of any domain (a loaded ``.gir`` file or an in-memory Graph).

The placeholder that replaces an inner tensor cut off as an input comes from the frontend of that
tensor's domain. This module sits above the frontends: it may import them, they never import it (they
use :mod:`graphir.frontends.signature` directly).
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..errors import ModelLoadError
from ..ir import Graph, Value
from .signature import apply_signature


def _make_placeholder(graph: Graph, value: Value, name: str):
    domain = value.node.domain
    if domain == "tf":
        from .tf import new_placeholder

        return new_placeholder(graph, value, name)
    raise ModelLoadError(f"cannot cut the graph at a {domain} tensor: no placeholder op for that domain")


def select_signature(graph: Graph, inputs: Optional[Sequence[str]] = None,
                     outputs: Optional[Sequence[str]] = None, *, port_names: Optional[dict] = None) -> Graph:
    """See :func:`graphir.frontends.signature.apply_signature`."""
    return apply_signature(graph, inputs, outputs, make_placeholder=_make_placeholder, port_names=port_names)
