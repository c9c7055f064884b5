"""The IR verifier: structural and type invariants every pass must preserve."""
from __future__ import annotations

import networkx as nx

from .core import CTRL, Graph, IRError
from .registry import expected_input_dtypes


class VerificationError(Exception):
    def __init__(self, errors: list[str]):
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)


def _compatible(expected, actual) -> bool:
    if expected is actual:
        return True
    # TF dereferences a *_ref tensor where a plain one is expected.
    return actual.is_ref and actual.base is expected


def verify(graph: Graph, *, types: bool = True) -> None:
    """Raise :class:`VerificationError` listing every violation, each naming its node."""
    errors: list[str] = []
    G = graph.nx
    table = G._node  # raw dicts: NodeView lookups cost more than the checks themselves
    for name, node in G.nodes(data="obj"):
        if node is None or node.name != name or node.graph is not graph:
            errors.append(f"node {name!r}: registry entry does not match the node object")
            continue
        want = {}
        for slot, v in enumerate(node._inputs):
            src = table.get(v.node.name)
            if src is None or src["obj"] is not v.node:
                errors.append(f"node {name!r}: input {slot} reads {v.name!r}, which is not in the graph")
                continue
            if v.index >= len(v.node.outputs) or v.node.outputs[v.index] is not v:
                errors.append(f"node {name!r}: input {slot} reads missing output {v.name!r}")
                continue
            want[slot] = (v.node.name, v.index)
        for c in node._controls:
            src = table.get(c.name)
            if src is None or src["obj"] is not c:
                errors.append(f"node {name!r}: control input {c.name!r} is not in the graph")
        have = {}
        for u, keyed in G._pred[name].items():  # the raw adjacency: in_edges() views cost more than the check
            for key, data in keyed.items():
                if key != CTRL:
                    have[key] = (u, data.get("out"))
        if have != want and len(want) == len(node._inputs):
            errors.append(f"node {name!r}: edge store out of step with its inputs")
        if types:
            exp = expected_input_dtypes(node)
            if exp is not None:
                if len(exp) != len(node._inputs):
                    errors.append(
                        f"node {name!r} ({node.qualified_op}): expects {len(exp)} inputs, has {len(node._inputs)}")
                else:
                    for slot, (e, v) in enumerate(zip(exp, node._inputs)):
                        if not _compatible(e, v.type.dtype):
                            errors.append(
                                f"node {name!r} ({node.qualified_op}): input {slot} ({v.name}) is "
                                f"{v.type.dtype.name}, expected {e.name}")
    for kind, ports in (("input", graph.inputs), ("output", graph.outputs)):
        for p in ports:
            n = G.nodes.get(p.value.node.name)
            if n is None or n["obj"] is not p.value.node:
                errors.append(f"graph {kind} {p.name!r}: node {p.value.node.name!r} is not in the graph")
    if not errors:
        try:
            graph.topo_order(by_name=False)  # the fast acyclicity check
            acyclic = True
        except IRError:
            acyclic = False
        if not acyclic:
            view = graph.acyclic_view()
            cyc = nx.find_cycle(view)
            errors.append(f"node {cyc[0][0]!r}: on a cycle that is not a loop back-edge: "
                          + " -> ".join(e[0] for e in cyc))
    if errors:
        raise VerificationError(errors)
