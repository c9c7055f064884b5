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
    pred = G._pred
    for name, data in table.items():
        node = data.get("obj")
        if node is None or node.name != name or node.graph is not graph:
            errors.append(f"node {name!r}: registry entry does not match the node object")
            continue
        inputs = node._inputs
        edges = pred[name]
        # Every input must be a live output with a matching ``slot -> out`` edge, and no other data edge
        # may exist: the edge store and the ordered inputs are in step exactly when both hold.
        resolved, in_step = True, True
        for slot, v in enumerate(inputs):
            src_node = v.node
            src = table.get(src_node.name)
            if src is None or src["obj"] is not src_node:
                errors.append(f"node {name!r}: input {slot} reads {v.name!r}, which is not in the graph")
                resolved = False
                continue
            outs = src_node.outputs
            if v.index >= len(outs) or outs[v.index] is not v:
                errors.append(f"node {name!r}: input {slot} reads missing output {v.name!r}")
                resolved = False
                continue
            keyed = edges.get(src_node.name)
            e = None if keyed is None else keyed.get(slot)
            if e is None or e.get("out") != v.index:
                in_step = False
        for c in node._controls:
            src = table.get(c.name)
            if src is None or src["obj"] is not c:
                errors.append(f"node {name!r}: control input {c.name!r} is not in the graph")
        if resolved:
            n_data = 0
            for keyed in edges.values():
                n_data += len(keyed) - (CTRL in keyed)
            if not in_step or n_data != len(inputs):
                errors.append(f"node {name!r}: edge store out of step with its inputs")
        if types:
            exp = expected_input_dtypes(node)
            if exp is not None:
                if len(exp) != len(inputs):
                    errors.append(
                        f"node {name!r} ({node.qualified_op}): expects {len(exp)} inputs, has {len(inputs)}")
                else:
                    for slot, e in enumerate(exp):
                        v = inputs[slot]
                        actual = v.type.dtype
                        if e is not actual and not _compatible(e, actual):
                            errors.append(
                                f"node {name!r} ({node.qualified_op}): input {slot} ({v.name}) is "
                                f"{actual.name}, expected {e.name}")
    for kind, ports in (("input", graph.inputs), ("output", graph.outputs)):
        for p in ports:
            n = G.nodes.get(p.value.node.name)
            if n is None or n["obj"] is not p.value.node:
                errors.append(f"graph {kind} {p.name!r}: node {p.value.node.name!r} is not in the graph")
    if not errors:
        try:
            graph._kahn_order()  # the fast acyclicity check, always recomputed
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
