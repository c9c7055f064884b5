"""Choosing a graph's signature: resolve input/output names, cut at inner inputs, prune the rest.

Framework-neutral: the op that replaces an inner tensor cut off as an input (like TF's ``strip_unused``)
comes from the caller, as ``make_placeholder(graph, value, name)``. Frontends call this directly;
:mod:`graphir.frontends.select` picks the placeholder maker by the graph's domain.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..errors import ModelLoadError
from ..ir import Graph, Port, Value


def _resolve(graph: Graph, name: str, kind: str, ports: Sequence[Port]) -> Value:
    for p in ports:
        if p.name == name:
            return p.value
    node_name, sep, idx = name.rpartition(":")
    if not (sep and idx.isdigit()):
        node_name, idx = name, "0"
    node = graph.get(node_name)
    if node is None:
        raise ModelLoadError(f"unknown {kind} {name!r}: no node named {node_name!r} in the graph")
    i = int(idx)
    if i >= len(node.outputs):
        raise ModelLoadError(
            f"unknown {kind} {name!r}: node {node_name!r} has {len(node.outputs)} output(s)")
    return node.outputs[i]


def _unique(values: Sequence[Value], names: Sequence[str], kind: str) -> None:
    seen: dict = {}
    for v, n in zip(values, names):
        if v in seen:
            same = "given twice" if seen[v] == n else f"and {seen[v]!r} are the same tensor"
            raise ModelLoadError(f"{kind} {n!r} {same}")
        seen[v] = n


PlaceholderMaker = Callable[[Graph, Value, str], object]


def apply_signature(graph: Graph, inputs: Optional[Sequence[str]], outputs: Optional[Sequence[str]], *,
                    make_placeholder: PlaceholderMaker, port_names: Optional[dict] = None) -> Graph:
    """Set ``graph``'s inputs/outputs from names (port names, ``node`` or ``node:i``) and return it.

    An input naming a non-source tensor is replaced by ``make_placeholder(graph, value, name)``. When
    anything was overridden, nodes that no output depends on are removed. ``port_names`` maps tensor
    names to the port names to use."""
    if not inputs and not outputs:
        return graph
    names = port_names or {}
    known_ports = {p.name for p in graph.inputs} | {p.name for p in graph.outputs}

    def port(n: str, v: Value) -> Port:
        # A port keeps the name it was asked by if that is a port name; a tensor name is normalised.
        return Port(names.get(n) or (n if n in known_ports else names.get(v.name, v.name)), v)

    detected = list(graph.inputs)
    if outputs:
        graph.outputs = [port(n, _resolve(graph, n, "output", graph.outputs)) for n in outputs]
        _unique([p.value for p in graph.outputs], outputs, "output")
    if inputs:
        values = [_resolve(graph, n, "input", graph.inputs) for n in inputs]
        _unique(values, inputs, "input")
        new_in = []
        for n, v in zip(inputs, values):
            p = port(n, v)
            if not v.node.info.source:
                want = v.node.name if v.index == 0 else f"{v.node.name}_{v.index}"
                ph = make_placeholder(graph, v, want + "/placeholder")
                graph.replace_all_uses_with(v, ph.outputs[0])
                p = Port(p.name, ph.outputs[0])
                ph.meta["rename_to"] = want
            new_in.append(p)
        graph.inputs = new_in
    live = graph.ancestors([p.value.node for p in graph.outputs])
    if inputs:
        chosen = {p.value.node.name for p in graph.inputs}
        for p in detected:  # a placeholder the outputs still need would fail only when the graph runs
            if p.value.node.name in live and p.value.node.name not in chosen and p.value.node.name in graph:
                raise ModelLoadError(f"the outputs still depend on input {p.name!r}, which the given inputs "
                                     f"({', '.join(inputs)}) leave out")
        live.update(chosen)
    else:  # detected inputs the chosen outputs do not need are dropped with their nodes
        graph.inputs = [p for p in graph.inputs if p.value.node.name in live]
    dead = [n for n in graph.nodes() if n.name not in live]
    if dead:
        graph.remove_nodes(dead)
    for p in graph.inputs:
        want = p.value.node.meta.pop("rename_to", None)
        if want and want not in graph:
            graph.rename(p.value.node, want)
    return graph
