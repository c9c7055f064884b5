"""canonicalize-gelu: every GELU subgraph in one canonical node pattern per kind.

Keras 3 traces ``gelu(approximate=False)`` as ``0.5*x*erfc(-x/sqrt 2)`` and ``approximate=True`` with
``Pow(x, 3)``; Keras 2 and hand-written models use ``erf(x/sqrt 2)`` in any operand order. None of these is
what a fusing lowering (or TF's own remapper) recognises. This pass rewrites each to the canonical forms
documented in :mod:`.activation_patterns` (the contract with lower-onednn, which fuses MatMul + BiasAdd +
canonical GELU into ``_FusedMatMul`` with [BiasAdd, GeluExact] / [BiasAdd, GeluApproximate]).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .activation_patterns import build_gelu, is_canonical_gelu, match_gelu
from .base import Pass, PassResult, register_pass
from .patterns import remove_dead


@register_pass
@dataclass(frozen=True)
class CanonicalizeGelu(Pass):
    """After: every value :func:`match_gelu` recognises is computed by the canonical pattern of its kind;
    the last node of each rewritten GELU keeps the old one's name."""

    name = "canonicalize-gelu"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        counts = {"exact": 0, "approximate": 0}
        for n in graph.topo_order(by_name=False):
            if n.graph is not graph or n.op_type != "Mul" or n.domain != "tf" or n.control_inputs:
                continue
            y = n.outputs[0]
            m = match_gelu(graph, y)
            if m is None or is_canonical_gelu(graph, y):
                continue
            kind, x = m
            name = n.name
            new = build_gelu(graph, x, kind, like=n, name=f"{name}/canonical")
            graph.replace_all_uses_with(y, new, outputs=True)
            for u in graph.control_users(n):
                graph.remove_control_input(u, n)
                graph.add_control_input(u, new.node)
            remove_dead(graph, [n])
            graph.rename(new.node, name)
            counts[kind] += 1
        return PassResult.of(**counts)
