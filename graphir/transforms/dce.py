"""dce: dead code elimination."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .base import Pass, PassResult, register_pass
from .patterns import remove_unreachable


@register_pass
@dataclass(frozen=True)
class DCE(Pass):
    """After: every node reaches a graph output (by data or control edges), is a graph input, or is
    side-effecting / unknown (those are kept, with everything they depend on). With
    ``drop_pure_controls``, no control edge leaves a node whose whole ancestry is free of side effects,
    state and control flow (such an edge only orders pure work, so it can go)."""

    name = "dce"
    phase = "optimize"
    drop_pure_controls: bool = True

    def run(self, graph: Graph) -> PassResult:
        controls = self._drop_pure_controls(graph) if self.drop_pure_controls else 0
        removed = remove_unreachable(graph, [n for n in graph.nodes() if n.info.side_effecting])
        return PassResult.of(nodes_removed=removed, controls_removed=controls)

    @staticmethod
    def _drop_pure_controls(graph: Graph) -> int:
        clean: set[str] = set()
        dropped = 0
        for n in graph.topo_order(by_name=False):
            for c in n.control_inputs:
                if c.name in clean:
                    graph.remove_control_input(n, c)
                    dropped += 1
            info = n.info
            if (info.pure or info.source) and not n.control_inputs \
                    and all(v is None or v.node is None or v.node.name in clean for v in n.inputs):
                clean.add(n.name)
        return dropped
