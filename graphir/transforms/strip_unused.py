"""strip-unused: keep only what the graph outputs need."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .base import Pass, PassResult, register_pass
from .patterns import remove_unreachable


@register_pass
@dataclass(frozen=True)
class StripUnused(Pass):
    """After: every node is an input or output node, or an ancestor (data or control) of an output
    or of a kept input."""

    name = "strip-unused"
    phase = "cleanup"

    def run(self, graph: Graph) -> PassResult:
        return PassResult.of(nodes_removed=remove_unreachable(graph))
