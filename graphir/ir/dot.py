"""Graphviz DOT rendering of a graph, nodes coloured by the precision they compute in.

The output is deterministic (topological order, ties by name) so dumps diff cleanly.
"""
from __future__ import annotations

from .core import Graph, Node

# precision class -> (fill colour, legend text)
COLORS = {
    "bf16": ("#f4a261", "bf16"),
    "f32": ("#a8dadc", "f32"),
    "cast": ("#c77dff", "cast (float precision change)"),
    "other": ("#d9d9d9", "other (non-float, f16/f64, mixed)"),
}


def _q(s: str) -> str:
    """A DOT double-quoted string; backslashes are escaped so labels show names verbatim."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def precision_class(node: Node) -> str:
    """``bf16`` / ``f32`` when every float output has that dtype, ``cast`` for a one-in one-out node
    from one float dtype to another (decided from types, so the IR need not know TF's Cast), else
    ``other``."""
    outs = [v.dtype.base for v in node.outputs]
    ins = [v.dtype.base for v in node.inputs]
    if len(ins) == 1 and len(outs) == 1 and ins[0] is not outs[0] and ins[0].is_float and outs[0].is_float:
        return "cast"
    floats = {d.name for d in outs if d.is_float}
    if floats == {"bf16"}:
        return "bf16"
    if floats == {"f32"}:
        return "f32"
    return "other"


def _edge_label(v) -> str:
    return v.type.text() if v.index == 0 else f":{v.index} {v.type.text()}"


def to_dot(graph: Graph) -> str:
    lines = [
        f"digraph {_q(graph.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
        "  subgraph cluster_legend {",
        '    label="precision"; style=dashed; fontname="Helvetica";',
    ]
    prev = None
    for key, (color, text) in COLORS.items():
        lines.append(f"    {_q('legend:' + key)} [label={_q(text)}, fillcolor={_q(color)}];")
        if prev:
            lines.append(f"    {_q(prev)} -> {_q('legend:' + key)} [style=invis];")
        prev = "legend:" + key
    lines.append("  }")
    order = graph.topo_order()
    for n in order:
        color = COLORS[precision_class(n)][0]
        label = f"{n.name}\n{n.qualified_op}"
        lines.append(f"  {_q(n.name)} [label={_q(label)}, fillcolor={_q(color)}];")
    for n in order:
        for v in n.inputs:
            src = v.node
            extra = ", constraint=false" if src.info.loop_next and n.info.loop_merge else ""
            lines.append(f"  {_q(src.name)} -> {_q(n.name)} [label={_q(_edge_label(v))}{extra}];")
        for c in n.control_inputs:
            lines.append(f"  {_q(c.name)} -> {_q(n.name)} [style=dashed, color=\"gray40\"];")
    for kind, ports in (("input", graph.inputs), ("output", graph.outputs)):
        for p in ports:
            pid = f"{kind}:{p.name}"
            lines.append(f"  {_q(pid)} [label={_q(p.name)}, shape=ellipse, style=solid];")
            v = p.value
            ends = (pid, v.node.name) if kind == "input" else (v.node.name, pid)
            lines.append(f"  {_q(ends[0])} -> {_q(ends[1])} [label={_q(_edge_label(v))}, style=bold];")
    lines.append("}")
    return "\n".join(lines) + "\n"
