"""The IR verifier: structural and type invariants every pass must preserve."""
from __future__ import annotations

import itertools

import networkx as nx

from typing import TYPE_CHECKING

from .registry import expected_input_dtypes_fn
from .types import Subgraph

if TYPE_CHECKING:
    from .core import Graph


_UNSEEN = object()


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
    _verify(graph, types, errors, "")
    if errors:
        raise VerificationError(errors)


def _live(graph: Graph, v) -> bool:
    if v.node is not None:
        n = v.node
        return graph._nodes.get(n.name) is n and v.index < len(n.outputs) and n.outputs[v.index] is v
    if v.graph is not graph:
        return False
    return v in graph.arguments or v in graph.captures or graph.initializers.get(v.name) is v


# The verifier runs after every pass that changed the graph, so its per-node loop is written flat: _live
# inlined, use lists searched in C, subgraph attributes scanned only once the process has made a Subgraph.
# The same walk collects the edges for the acyclicity check (Kahn's algorithm, as Graph._kahn_order: every
# input's producer, then control inputs, then captured values' producers, loop back-edges left out), so the
# order is always recomputed from the edges as they are now, never taken from a cache.
def _verify(graph: Graph, types: bool, errors: list[str], where: str) -> None:
    table = graph._nodes
    lookup = table.get
    arguments, captures, inits = graph.arguments, graph.captures, graph.initializers
    scan_subgraphs = Subgraph.made
    has_loops = graph._has_loop_merge(table.values())
    back_edge = graph._is_back_edge
    indeg: dict = {}
    succ: dict = {}
    expected_of: dict = {}  # domain -> its dialect's expected_input_dtypes (None: no dialect)
    for name, node in table.items():
        if node.name != name or node.graph is not graph:
            errors.append(f"{where}node {name!r}: registry entry does not match the node object")
            continue
        producers = []
        for slot, v in enumerate(node._inputs):
            if v is None:
                continue
            p = v.node
            if p is not None:
                i = v.index
                live = lookup(p.name) is p and i < len(p.outputs) and p.outputs[i] is v
                producers.append(p)
            else:
                live = v.graph is graph and (v in arguments or v in captures or inits.get(v.name) is v)
            if not live:
                errors.append(f"{where}node {name!r}: input {slot} reads {v.name!r}, which is not in the graph")
            elif (node, slot) not in v._uses:  # tuple equality: the same node object and slot
                errors.append(f"{where}node {name!r}: input {slot} missing from the use list of {v.name!r}")
        k = _add_edges(node, producers, succ, has_loops, back_edge)
        if node._controls:
            for c in node._controls:
                if lookup(c.name) is not c:
                    errors.append(f"{where}node {name!r}: control input {c.name!r} is not in the graph")
                elif node not in c._cusers:
                    errors.append(f"{where}node {name!r}: control input {c.name!r} does not list it as a "
                                  "user")
            k += _add_edges(node, node._controls, succ, has_loops, back_edge)
        if node._cusers:
            for u in node._cusers:
                if lookup(u.name) is not u or node not in u._controls:
                    errors.append(f"{where}node {name!r}: control user {u.name!r} out of step")
        if scan_subgraphs:
            for key, sg in node.subgraphs():
                for i, v in enumerate(sg.captures):
                    if not _live(graph, v):
                        errors.append(f"{where}node {name!r}: {key} captures {v.name!r}, which is not in the "
                                      "graph")
                if len(sg.captures) != len(sg.graph.captures):
                    errors.append(f"{where}node {name!r}: {key} has {len(sg.captures)} captures but its body "
                                  f"declares {len(sg.graph.captures)}")
                _verify(sg.graph, types, errors, f"{where}{name}.{key}: ")
                k += _add_edges(node, [v.node for v in sg.captures if v.node is not None], succ, has_loops,
                                back_edge)
        indeg[node] = k
        for v in node.outputs:
            for u, s in v._uses:
                if isinstance(s, tuple):
                    sg = u.attrs.get(s[0])
                    ok = isinstance(sg, Subgraph) and s[1] < len(sg.captures) and sg.captures[s[1]] is v
                else:
                    ok = s < len(u._inputs) and u._inputs[s] is v
                if not ok or lookup(u.name) is not u:
                    errors.append(f"{where}node {name!r}: stale use of {v.name!r} by {u.name!r}")
        if types:
            domain = node.domain
            fn = expected_of.get(domain, _UNSEEN)
            if fn is _UNSEEN:
                fn = expected_of[domain] = expected_input_dtypes_fn(domain)
            exp = fn(node) if fn is not None else None
            if exp is not None:
                inputs = node._inputs
                if len(exp) != len(inputs):
                    errors.append(f"{where}node {name!r} ({node.qualified_op}): expects {len(exp)} inputs, "
                                  f"has {len(inputs)}")
                else:
                    for slot, e in enumerate(exp):
                        v = inputs[slot]
                        if v is None:
                            continue
                        actual = v.type.dtype
                        if e is not actual and not _compatible(e, actual):
                            errors.append(
                                f"{where}node {name!r} ({node.qualified_op}): input {slot} ({v.name}) is "
                                f"{actual.name}, expected {e.name}")
    for kind, ports in (("input", graph.inputs), ("output", graph.outputs)):
        for p in ports:
            if not _live(graph, p.value):
                errors.append(f"{where}graph {kind} {p.name!r}: {p.value.name!r} is not in the graph")
    for v in itertools.chain(graph.arguments, graph.captures, graph.initializers.values()):
        for u, s in v._uses:
            if lookup(u.name) is not u:
                errors.append(f"{where}value {v.name!r}: used by {u.name!r}, which is not in the graph")
    if not errors:
        order = graph._kahn_drain(list(table.values()), indeg, succ)
        if order is None:
            view = graph.acyclic_view()
            cyc = nx.find_cycle(view)
            errors.append(f"{where}node {cyc[0][0]!r}: on a cycle that is not a loop back-edge: "
                          + " -> ".join(e[0] for e in cyc))
        else:
            graph._order = order  # what topo_order(by_name=False) hands the next pass


def _add_edges(node, preds, succ: dict, has_loops: bool, back_edge) -> int:
    k = 0
    for p in preds:
        if not has_loops or not back_edge(p, node):
            k += 1
            s = succ.get(p)
            if s is None:
                succ[p] = [node]
            else:
                s.append(node)
    return k
