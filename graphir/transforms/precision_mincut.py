"""Cast placement as an exact minimum s-t cut (networkx's max-flow), over a flow network built per call."""
from __future__ import annotations

import networkx as nx

from ..ir import Graph
from ..ir.dialect import const_tensor
from .bf16_cost import value_bytes

_S, _T = "\0bf16", "\0fp32"


def min_cut_assignment(graph: Graph, plans: dict, fixed: dict) -> set:
    """Names of the nodes that run in bf16 under the minimum-bytes cut.

    Nodes with a plan are the variables (source side = bf16). ``fixed`` pins nodes to bf16 ("bf16") or
    fp32 (any other value). For every float value one auxiliary node on each side makes a cut pay its bytes
    once however many consumers switch: ``p -> a -> {consumers}`` charges bf16 p read in fp32, and
    ``{consumers} -> b -> p`` charges fp32 p read in bf16. Constants cost nothing (they become bf16
    constants). A tiny source edge on every free node breaks ties toward bf16 without changing the optimum.
    """
    G = nx.DiGraph()
    G.add_nodes_from((_S, _T))
    free = [n for n in plans if n not in fixed]
    scale = 2 * (len(free) + 1)
    for n in plans:
        G.add_node(n)
        if n in fixed:
            if fixed[n] == "bf16":
                G.add_edge(_S, n)          # no capacity attribute = infinite
            else:
                G.add_edge(n, _T)
        else:
            G.add_edge(_S, n, capacity=1)

    def var(node):
        return node.name if node.name in plans else _T

    values = {}
    for name, plan in plans.items():
        node = graph.node(name)
        for s in plan.ins:
            v = node.inputs[s]
            if const_tensor(v) is None:
                values.setdefault((v.node.name if v.node is not None else "%" + v.name, v.index), v)
        for i in plan.outs:
            v = node.outputs[i]
            values.setdefault((name, i), v)
    for key, v in values.items():
        p = v.node
        pv = var(p) if p is not None else _T
        pflip = p is not None and p.name in plans and v.index in plans[p.name].outs
        readers = set()
        for u, s in graph.uses(v):
            readers.add(u.name if u.name in plans and s in plans[u.name].ins else _T)
        if graph.is_output(v):
            readers.add(_T)
        if not pflip:
            pv = _T
        w = value_bytes(v) * scale
        a, b = ("a",) + key, ("b",) + key
        if pv != _T and _T in readers:
            G.add_edge(pv, a, capacity=w)
            G.add_edge(a, _T)
        elif pv != _T:
            G.add_edge(pv, a, capacity=w)
            for r in readers:
                G.add_edge(a, r)
        for r in readers - {_T}:
            G.add_edge(r, b)
        if readers - {_T}:
            G.add_edge(b, pv, capacity=w)
    _, (src_side, _) = nx.minimum_cut(G, _S, _T)
    return {n for n in src_side if isinstance(n, str) and n in plans}
