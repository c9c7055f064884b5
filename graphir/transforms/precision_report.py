"""The bf16 report: per-op-type precision statistics, casts and weight bytes, and --explain rows."""
from __future__ import annotations

from ..ir import Graph
from ..ir.types import bf16, f32
from ..table import format_table
from .patterns import cast_target

# Reasons a float node stays fp32 (shown by --explain).
R_BOUNDARY = "graph input/output"
R_CLASS = "fp32-only class"
R_KERNEL = "no bf16 kernel in this TF"
R_USER = "user override"
R_PROFIT = "not profitable"
R_CUT = "cast-cost optimum"


def weights_and_casts(graph: Graph) -> tuple[int, int]:
    wbytes = casts = 0
    for n in graph.nodes():
        c = n.const_value()
        if c is not None and c.dtype.is_float:
            wbytes += c.nbytes
        elif cast_target(n) is not None:
            casts += 1
    for v in graph.initializers.values():
        if v.const.dtype.is_float:
            wbytes += v.const.nbytes
    return wbytes, casts


def precision_stats(graph, before, after) -> dict:
    rows = {}
    for n in graph.nodes():
        if cast_target(n) is not None or n.const_value() is not None:
            continue
        dts = {v.dtype for v in n.outputs} | {v.dtype for v in n.inputs if v is not None}
        if bf16 in dts:
            rows.setdefault(n.op_type, [0, 0, 0])[1] += 1
        elif f32 in dts:
            rows.setdefault(n.op_type, [0, 0, 0])[2] += 1
        else:
            continue
        rows[n.op_type][0] += 1
    return {"ops": {k: tuple(v) for k, v in sorted(rows.items())},
            "casts_before": before[1], "casts_after": after[1],
            "weight_bytes_before": before[0], "weight_bytes_after": after[0]}


def finalize_precision_stats(graph: Graph, report: dict) -> None:
    """Recompute the statistics on the graph the pipeline finally produced: passes after the bf16 pass
    (e.g. fuse-bias-activation) change the op types the table lists."""
    st = report.get("precision_stats")
    if st:
        before = (st["weight_bytes_before"], st["casts_before"])
        report["precision_stats"] = precision_stats(graph, before, weights_and_casts(graph))


def format_precision_stats(report: dict) -> str:
    st = report.get("precision_stats")
    if not st:
        return ""
    rows = [("op type", "total", "bf16", "fp32")] + [(k, *v) for k, v in st["ops"].items()]
    lines = format_table(rows, align="lrrr", rules=(1,)).split("\n")
    lines.append(f"casts: {st['casts_before']} before, {st['casts_after']} after "
                 f"({st['casts_after'] - st['casts_before']:+d})")
    lines.append(f"weight bytes: {st['weight_bytes_before']} before, {st['weight_bytes_after']} after")
    for reg in report.get("precision_unprofitable", ()):
        lines.append(f"kept fp32 (not profitable): {len(reg['nodes'])} nodes, {reg['reason']}")
    return "\n".join(lines)


def format_explain(report: dict) -> str:
    rows = report.get("precision_explain") or []
    if not rows:
        return "every float node runs in bf16" if "precision_explain" in report else ""
    w = max(len(n) for n, _, _ in rows)
    wo = max(len(o) for _, o, _ in rows)
    return "\n".join(f"{n.ljust(w)}  {o.ljust(wo)}  {r}" for n, o, r in rows)
