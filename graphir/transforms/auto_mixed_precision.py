"""auto-mixed-precision: bf16 where the framework can run it and it pays, casts placed by an exact min cut.

After the pass every compute node the dialect can run in bf16 (and that is profitable) runs in bf16,
free (follow/clear) nodes take whichever precision minimises the bytes converted, each converted value
has exactly one cast per target dtype, graph inputs and outputs keep their dtypes, and float constants
read in bf16 are stored as bf16 (by the cast-cleanup pass that follows it).

Op data (precision classes, per-node plans, kernel checks) comes from the dialect; the cost model is in
:mod:`.bf16_cost`, the solver in :mod:`.precision_mincut`, the report in :mod:`.precision_report`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import networkx as nx

from ..errors import ConfigError
from ..ir import Graph
from ..ir.dialect import dialect_of
from ..ir.registry import expected_input_dtypes
from ..ir.types import DType, bf16, f32
from .base import Pass, PassResult, register_pass
from .bf16_cost import compute_flops, cut_cost, node_flops, region_cast_bytes  # noqa: F401  (re-exported)
from .patterns import add_cast, protected
from .precision_mincut import min_cut_assignment
from .precision_report import (R_BOUNDARY, R_CLASS, R_CUT, R_KERNEL, R_PROFIT, R_USER,  # noqa: F401
                               format_explain, format_precision_stats, precision_stats, weights_and_casts)



def node_plan(node):
    """The dialect's bf16 plan for ``node`` (None: nothing to convert)."""
    return dialect_of(node).precision_plan(node)


def _matches(node, entries) -> bool:
    return node.name in entries or node.op_type in entries


def check_overrides(graph: Graph, fp32_ops, bf16_ops) -> None:
    domains = {n.domain for n in graph.nodes()}
    for flag, entries in (("--fp32-ops", fp32_ops), ("--bf16-ops", bf16_ops)):
        for e in entries:
            if e not in graph and not any(dialect_of(d).is_op(e) for d in domains):
                raise ConfigError(f"{flag}: {e!r} is neither an op type nor a node in the graph")


@register_pass
@dataclass(frozen=True)
class AutoMixedPrecision(Pass):
    """Convert to bf16 where the dialect can and it pays, with the fewest bytes cast (exact min cut).

    Options: ``fp32_ops``/``bf16_ops`` (op types or node names), ``min_region_flops`` and
    ``flops_per_cast_byte`` (the static cost model for keeping small regions fp32; the driver relaxes it
    where it measures the finished graphs instead, see :func:`graphir.compiler.compile_graph`). A node name
    in one list beats its op type in the other. Statistics and explanations go to the result's ``report``,
    which ``compile`` merges into its own."""

    name = "auto-mixed-precision"
    phase = "precision"
    followed_by = ("cast-cleanup",)
    fp32_ops: tuple[str, ...] = ()
    bf16_ops: tuple[str, ...] = ()
    min_region_flops: int = 10_000_000
    flops_per_cast_byte: float = 16.0

    def run(self, graph: Graph) -> PassResult:
        report: dict = {}
        fp32_ops, bf16_ops = set(self.fp32_ops or ()), set(self.bf16_ops or ())
        check_overrides(graph, fp32_ops, bf16_ops)
        t0 = time.perf_counter()
        before = weights_and_casts(graph)
        bf16_nodes, reasons, regions = self.solve(graph, fp32_ops, bf16_ops)
        report["bf16_flops_per_sample"] = compute_flops(graph, bf16_nodes)
        counts = self._apply(graph, bf16_nodes) if bf16_nodes else {}
        after = weights_and_casts(graph)
        report["precision_stats"] = precision_stats(graph, before, after)
        report["precision_explain"] = sorted((n, graph.node(n).op_type, r) for n, r in reasons.items()
                                             if n in graph)
        report["precision_unprofitable"] = regions
        report["bf16_nodes"] = len(bf16_nodes)
        report["precision_bf16"] = sorted((n, graph.node(n).op_type) for n in bf16_nodes if n in graph)
        report["bf16_seconds"] = round(time.perf_counter() - t0, 3)
        res = PassResult.of(bf16_nodes=len(bf16_nodes), casts=after[1] - before[1], **counts)
        res.report.update(report)
        return res

    # ------------------------------------------------------------------ analysis
    def solve(self, graph: Graph, fp32_ops=(), bf16_ops=()):
        """Returns (bf16 node names, {fp32 node: reason}, unprofitable regions)."""
        fp32_ops, bf16_ops = set(fp32_ops), set(bf16_ops)
        plans = {n.name: p for n in graph.nodes() if (p := node_plan(n)) is not None}
        boundary = protected(graph)
        fixed: dict[str, str] = {}   # name -> "bf16" | reason it is fp32
        for name, plan in plans.items():
            node = graph.node(name)
            cls = dialect_of(node).precision_class(node.op_type)
            if name in boundary or node.info.source:
                fixed[name] = R_BOUNDARY
            elif _matches(node, fp32_ops) and name not in bf16_ops:
                fixed[name] = R_USER
            elif not plan.convertible:
                fixed[name] = R_KERNEL
            elif _matches(node, bf16_ops):
                fixed[name] = "bf16"
            elif cls == "fp32":
                fixed[name] = R_CLASS
            elif cls == "compute":
                fixed[name] = "bf16"
        regions = []
        # No region can hold more compute than the whole graph: below the cut-off, skip the cuts.
        auto = [n for n, f in fixed.items() if f == "bf16" and not _matches(graph.node(n), bf16_ops)]
        total = sum(node_flops(graph.node(n)) for n in auto)
        if auto and total < self.min_region_flops:
            for n in auto:
                fixed[n] = R_PROFIT
            regions.append({"nodes": sorted(auto), "reason": f"{total / 1e6:.2f} MFLOP per sample in the "
                            f"whole graph"})
        while True:
            if "bf16" not in fixed.values():
                bf16_set = set()
                break
            bf16_set = min_cut_assignment(graph, plans, fixed)
            bad = self._unprofitable(graph, plans, bf16_set, fixed, bf16_ops)
            if not bad:
                break
            for reg in bad:
                for n in reg["compute"]:
                    fixed[n] = R_PROFIT
                regions.append({"nodes": reg["nodes"], "reason": reg["reason"]})
        reasons = {}
        for name in plans:
            if name not in bf16_set:
                f = fixed.get(name)
                reasons[name] = f if f not in (None, "bf16") else R_CUT
        for reg in regions:
            for n in reg["nodes"]:
                if n not in bf16_set and reasons.get(n) == R_CUT:
                    reasons[n] = R_PROFIT
        return bf16_set, reasons, regions

    def _unprofitable(self, graph, plans, bf16_set, fixed, bf16_ops):
        und = nx.Graph()
        und.add_nodes_from(bf16_set)
        for name in bf16_set:
            for v in graph.node(name).inputs:
                if v is not None and v.node is not None and v.node.name in bf16_set:
                    und.add_edge(name, v.node.name)
        bad = []
        for comp in nx.connected_components(und):
            compute = sorted(n for n in comp if fixed.get(n) == "bf16" and not _matches(graph.node(n), bf16_ops))
            if not compute:
                continue
            flops = compute_flops(graph, comp)
            cast = region_cast_bytes(graph, plans, comp)
            if flops < self.min_region_flops or flops < self.flops_per_cast_byte * cast:
                bad.append({"nodes": sorted(comp), "compute": compute,
                            "reason": f"{flops / 1e6:.2f} MFLOP per sample vs {cast} bytes cast"})
        return bad

    # ------------------------------------------------------------------ rewrite
    def _apply(self, graph: Graph, bf16_nodes: set) -> dict:
        plans = {n: node_plan(graph.node(n)) for n in bf16_nodes}
        for name in sorted(bf16_nodes):
            node = graph.node(name)
            dialect_of(node).set_node_precision(graph, node, plans[name], bf16)
        inserted = 0
        for node in graph.topo_order():
            for v in list(node.outputs):
                groups: dict[DType, list] = {}
                for user, slot in graph.uses(v):
                    if isinstance(slot, tuple):
                        continue  # a capture keeps the value's dtype
                    plan = plans.get(user.name)
                    want = bf16 if plan is not None and slot in plan.ins else _original_dtype(user, slot, v)
                    if want is not v.dtype:
                        groups.setdefault(want, []).append((user, slot))
                for want, uses in sorted(groups.items(), key=lambda kv: kv[0].name):
                    tag = "to_bf16" if want is bf16 else f"to_{want.name}"
                    suffix = f"_{v.index}" if v.index else ""
                    cast = add_cast(graph, v, want, f"{node.name}/{tag}{suffix}", like=node)
                    for user, slot in uses:
                        graph.set_input(user, slot, cast)
                    inserted += 1
        return {"casts_inserted": inserted}


def _original_dtype(user, slot, v) -> DType:
    """The dtype a node not converted to bf16 expects at ``slot`` (its op def, else the value's old dtype)."""
    exp = expected_input_dtypes(user)
    if exp is not None and slot < len(exp):
        return exp[slot].base
    return f32 if v.dtype is bf16 else v.dtype


__all__ = ["AutoMixedPrecision", "R_CUT", "check_overrides", "cut_cost",
           "format_explain", "format_precision_stats", "min_cut_assignment", "node_plan"]
