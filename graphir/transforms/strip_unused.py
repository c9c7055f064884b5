"""strip-unused: keep only what the graph outputs need."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .base import Pass, PassResult, register_pass


@register_pass
@dataclass
class StripUnused(Pass):
    """After: every node is an input or output node, or an ancestor (data or control) of an output
    or of a kept input."""

    name = "strip-unused"

    def run(self, graph: Graph) -> PassResult:
        roots = [p.value.node for p in graph.outputs] + [p.value.node for p in graph.inputs]
        live = graph.ancestors(roots)
        dead = [n for n in graph.nodes() if n.name not in live]
        return PassResult.of(nodes_removed=graph.remove_nodes(dead))
