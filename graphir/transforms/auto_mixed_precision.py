"""bf16 auto-mixed precision: precision propagation with cast placement solved as an exact minimum s-t cut.

After the pass every compute node the installed TF can run in bf16 (and that is profitable) runs in bf16,
free (follow/clear) nodes take whichever precision minimises the bytes converted, each converted value
has exactly one Cast per target dtype, graph inputs and outputs keep their dtypes, and float constants
read in bf16 are stored as bf16.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import networkx as nx

from ..dialects import tf_precision as P
from ..errors import ConfigError
from ..ir import Graph
from ..ir.types import DType, bf16, f32
from .base import Pass, PassResult, register_pass
from .cast_cleanup import CastCleanup
from .patterns import protected

UNKNOWN_BYTES = 1 << 16   # cost of converting a tensor of unknown rank
UNKNOWN_FLOPS = 1 << 40   # compute of unknown size counts as big
# Measured fp32/bf16 latency ratio below which bf16 is dropped: timing noise must not ship a slower graph.
MIN_MEASURED_SPEEDUP = 1.02
SURE_FLOPS = 100_000_000  # per sample: above this (MobileNetV2 ~300M) bf16 won in every measurement here
MEASURE_BATCH = 8
_S, _T = "\0bf16", "\0fp32"

# Reasons a float node stays fp32 (shown by --explain).
R_BOUNDARY = "graph input/output"
R_CLASS = "fp32-only class"
R_KERNEL = "no bf16 kernel in this TF"
R_USER = "user override"
R_PROFIT = "not profitable"
R_CUT = "cast-cost optimum"


@dataclass(frozen=True)
class _Plan:
    attrs: frozenset   # type attrs that become bf16
    ins: tuple         # input slots whose dtype follows those attrs
    outs: tuple        # output indices whose dtype follows those attrs
    convertible: bool  # the op def and a CPU kernel allow bf16 for these attrs


def _op_def(op_type):
    from ..dialects.tf import _op_def as get

    return get(op_type)


def node_plan(node) -> Optional[_Plan]:
    """Which of ``node``'s ports are fp32 floats that switch to bf16 together; None if it has none."""
    if node.domain != "tf" or node.info.constant_attr:
        return None
    od = _op_def(node.op_type)
    if od is None:
        return None
    keep = P.KEEP_FP32_ATTRS.get(node.op_type, ())
    type_attrs = {a.name: a for a in od.attr if a.type == "type"}
    flip = {n for n in type_attrs if node.attrs.get(n) is f32 and n not in keep}
    if not flip:
        return None

    def ports(args):
        slots, i = [], 0
        for arg in args:
            if arg.type_list_attr:
                n = len(node.attrs.get(arg.type_list_attr) or ())
            elif arg.number_attr:
                n = int(node.attrs.get(arg.number_attr, 1))
            else:
                n = 1
            if arg.type_attr in flip:
                slots.extend(range(i, i + n))
            i += n
        return tuple(slots)

    ins, outs = ports(od.input_arg), ports(od.output_arg)
    if not ins and not outs:
        return None
    allowed = all(not type_attrs[a].allowed_values.list.type or P.BF16_ENUM in type_attrs[a].allowed_values.list.type
                  for a in flip)
    from ..dialects.tf import dtype_to_tf

    other = {n: dtype_to_tf(v) for n in type_attrs if n not in flip and isinstance(v := node.attrs.get(n), DType)}
    ok = allowed and P.has_bf16_kernel(node.op_type, flip, other)
    return _Plan(frozenset(flip), ins, outs, ok)


def value_bytes(v) -> int:
    """fp32 bytes of a value from its static shape; unknown dims (batch) count as 1."""
    dims = v.shape.dims
    return UNKNOWN_BYTES if dims is None else 4 * math.prod(d or 1 for d in dims)


def _dims(v):
    return None if v.shape.dims is None else [d or 1 for d in v.shape.dims]


def node_flops(node) -> int:
    """Multiply-add FLOPs of a compute node from static shapes (unknown dims count as 1)."""
    op = node.op_type
    out = _dims(node.outputs[0]) if node.outputs else None
    ins = [_dims(v) for v in node.inputs]
    if out is None or any(d is None for d in ins[:2]):
        return UNKNOWN_FLOPS
    n_out = math.prod(out)
    try:
        if op in ("MatMul", "_FusedMatMul"):
            return 2 * n_out * ins[0][0 if node.attrs.get("transpose_a") else 1]
        if op.startswith("BatchMatMul"):
            return 2 * n_out * ins[0][-2 if node.attrs.get("adj_x") else -1]
        if op in ("Conv2D", "Conv3D", "_FusedConv2D"):
            return 2 * n_out * math.prod(ins[1][:-1])
        if op == "DepthwiseConv2dNative":
            return 2 * n_out * ins[1][0] * ins[1][1]
        if op in ("Conv2DBackpropInput", "Conv3DBackpropInputV2"):
            return 2 * math.prod(ins[1]) * (n_out // max(1, ins[1][-2]))
        if op == "Einsum":
            eq = node.attrs.get("equation", b"")
            eq = eq.decode() if isinstance(eq, bytes) else str(eq)
            lhs = eq.split("->")[0].replace("...", "").split(",")
            sizes = {}
            for term, shape in zip(lhs, ins):
                for ch, d in zip(term[::-1], shape[::-1]):
                    sizes[ch] = d
            return max(2 * math.prod(sizes.values()), 2 * n_out)
    except (IndexError, TypeError):
        return UNKNOWN_FLOPS
    return 2 * n_out


def _compute_flops(graph: Graph, names) -> int:
    """FLOPs of the compute-class nodes among ``names``."""
    return sum(node_flops(n) for n in map(graph.node, names) if P.precision_class(n.op_type) == "compute")


def _matches(node, entries: set) -> bool:
    return node.name in entries or node.op_type in entries


def check_overrides(graph: Graph, fp32_ops, bf16_ops) -> None:
    for flag, entries in (("--fp32-ops", fp32_ops), ("--bf16-ops", bf16_ops)):
        for e in entries:
            if e not in graph and not P.is_tf_op(e):
                raise ConfigError(f"{flag}: {e!r} is neither a TF op type nor a node in the graph")


@register_pass
@dataclass
class AutoMixedPrecision(Pass):
    """Convert to bf16 where the installed TF can and it pays, with the fewest bytes cast (exact min cut).

    Options: ``fp32_ops``/``bf16_ops`` (op types or node names), ``min_region_flops`` and
    ``flops_per_cast_byte`` (the cost model for keeping small regions fp32), ``measure`` (time fp32 vs
    bf16 on random inputs and keep fp32 unless bf16 is ``min_measured_speedup`` times faster). A node name in one list beats its op type
    in the other. Statistics and explanations go to ``graph.meta["precision_report"]``, which
    ``compile`` merges into its report."""

    name = "auto-mixed-precision"
    fp32_ops: list = field(default_factory=list)
    bf16_ops: list = field(default_factory=list)
    min_region_flops: int = 10_000_000
    flops_per_cast_byte: float = 16.0
    measure: bool = False
    min_measured_speedup: float = MIN_MEASURED_SPEEDUP

    def run(self, graph: Graph) -> PassResult:
        report = graph.meta.setdefault("precision_report", {})
        fp32_ops, bf16_ops = set(self.fp32_ops or ()), set(self.bf16_ops or ())
        check_overrides(graph, fp32_ops, bf16_ops)
        t0 = time.perf_counter()
        before = _weights_and_casts(graph)
        bf16_nodes, reasons, regions = self.solve(graph, fp32_ops, bf16_ops)
        measured = None
        flops = _compute_flops(graph, bf16_nodes)
        report["bf16_flops_per_sample"] = flops
        # Above SURE_FLOPS the matmul/conv savings dwarf any cast or overhead; measuring would only cost time.
        # A user's --bf16-ops is a decision, not a hint: measuring would only second-guess it.
        if self.measure and bf16_nodes and flops < SURE_FLOPS and not bf16_ops:
            trial = graph.copy()
            self._apply(trial, bf16_nodes)
            measured = measure_speedup(graph, trial)
            if measured is not None and measured < self.min_measured_speedup:
                for name in bf16_nodes:
                    reasons[name] = R_PROFIT
                regions.append({"nodes": sorted(bf16_nodes), "reason": f"measured bf16/fp32 speedup "
                                f"{measured:.2f}x"})
                report.setdefault("warnings", []).append(
                    f"bf16 not profitable on this model (measured {measured:.2f}x vs fp32); emitting fp32")
                bf16_nodes = set()
        counts = self._apply(graph, bf16_nodes) if bf16_nodes else {}
        after = _weights_and_casts(graph)
        report["precision_stats"] = _stats(graph, before, after)
        report["precision_explain"] = sorted((n, graph.node(n).op_type, r) for n, r in reasons.items()
                                             if n in graph)
        report["precision_unprofitable"] = regions
        report["bf16_nodes"] = len(bf16_nodes)
        report["bf16_measured_speedup"] = measured
        report["bf16_seconds"] = round(time.perf_counter() - t0, 3)
        return PassResult.of(bf16_nodes=len(bf16_nodes), casts=after[1] - before[1], **counts)

    # ------------------------------------------------------------------ analysis
    def solve(self, graph: Graph, fp32_ops=(), bf16_ops=()):
        """Returns (bf16 node names, {fp32 node: reason}, unprofitable regions)."""
        fp32_ops, bf16_ops = set(fp32_ops), set(bf16_ops)
        plans = {n.name: p for n in graph.nodes() if (p := node_plan(n)) is not None}
        boundary = protected(graph)
        fixed: dict[str, str] = {}   # name -> "bf16" | reason it is fp32
        for name, plan in plans.items():
            node = graph.node(name)
            cls = P.precision_class(node.op_type)
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
                if v.node.name in bf16_set:
                    und.add_edge(name, v.node.name)
        bad = []
        for comp in nx.connected_components(und):
            compute = sorted(n for n in comp if fixed.get(n) == "bf16" and not _matches(graph.node(n), bf16_ops))
            if not compute:
                continue
            flops = _compute_flops(graph, comp)
            cast = _region_cast_bytes(graph, plans, comp)
            if flops < self.min_region_flops or flops < self.flops_per_cast_byte * cast:
                bad.append({"nodes": sorted(comp), "compute": compute,
                            "reason": f"{flops / 1e6:.2f} MFLOP per sample vs {cast} bytes cast"})
        return bad

    # ------------------------------------------------------------------ rewrite
    def _apply(self, graph: Graph, bf16_nodes: set) -> dict:
        plans = {n: node_plan(graph.node(n)) for n in bf16_nodes}
        for name in sorted(bf16_nodes):
            node, plan = graph.node(name), plans[name]
            for a in plan.attrs:
                node.attrs[a] = bf16
            graph.set_output_types(node, [v.type.with_dtype(bf16) if i in plan.outs else v.type
                                          for i, v in enumerate(node.outputs)])
        inserted = 0
        for node in graph.topo_order():
            for v in list(node.outputs):
                groups: dict[DType, list] = {}
                for user, slot in graph.uses(v):
                    plan = plans.get(user.name)
                    want = bf16 if plan is not None and slot in plan.ins else _original_dtype(user, slot, v)
                    if want is not v.dtype:
                        groups.setdefault(want, []).append((user, slot))
                for want, uses in sorted(groups.items(), key=lambda kv: kv[0].name):
                    tag = "to_bf16" if want is bf16 else f"to_{want.name}"
                    suffix = f"_{v.index}" if v.index else ""
                    cast = graph.add_node("Cast", [v], {"SrcT": v.dtype, "DstT": want, "Truncate": False},
                                          [v.type.with_dtype(want)], name=f"{node.name}/{tag}{suffix}",
                                          device=node.device)
                    for user, slot in uses:
                        graph.set_input(user, slot, cast.outputs[0])
                    inserted += 1
        res = CastCleanup().run(graph)
        return {"casts_inserted": inserted, **res.counts}


def _original_dtype(user, slot, v) -> DType:
    """The dtype a node not converted to bf16 expects at ``slot`` (its op def, else the value's old dtype)."""
    from ..ir.registry import expected_input_dtypes

    exp = expected_input_dtypes(user)
    if exp is not None and slot < len(exp):
        return exp[slot].base
    return f32 if v.dtype is bf16 else v.dtype


def _region_cast_bytes(graph, plans, comp) -> int:
    total = 0
    for name in comp:
        node, plan = graph.node(name), plans[name]
        for i in plan.outs:
            v = node.outputs[i]
            if graph.is_output(v) or any(u.name not in comp or s not in plans[u.name].ins
                                         for u, s in graph.uses(v)):
                total += value_bytes(v)
    seen = set()
    for name in comp:
        node, plan = graph.node(name), plans[name]
        for s in plan.ins:
            v = node.inputs[s]
            if v.node.name not in comp and v.node.const_value() is None and id(v) not in seen:
                seen.add(id(v))
                total += value_bytes(v)
    return total


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
            if v.node.const_value() is None:
                values.setdefault((v.node.name, v.index), v)
        for i in plan.outs:
            v = node.outputs[i]
            values.setdefault((name, i), v)
    for key, v in values.items():
        p = v.node
        pv = var(p)
        pflip = p.name in plans and v.index in plans[p.name].outs
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


def cut_cost(graph: Graph, plans: dict, bf16_set: set) -> int:
    """Bytes converted by an assignment (one Cast per value and target dtype); for tests and reports."""
    total = 0
    seen = set()
    for name, plan in plans.items():
        node = graph.node(name)
        vals = [node.inputs[s] for s in plan.ins] + [node.outputs[i] for i in plan.outs]
        for v in vals:
            if id(v) in seen or v.node.const_value() is not None:
                continue
            seen.add(id(v))
            p = v.node
            p_bf16 = p.name in bf16_set and v.index in plans[p.name].outs
            wants = set()
            for u, s in graph.uses(v):
                wants.add(u.name in bf16_set and s in plans[u.name].ins if u.name in plans else False)
            if graph.is_output(v):
                wants.add(False)
            total += value_bytes(v) * len(wants - {p_bf16})
    return total


def _weights_and_casts(graph: Graph) -> tuple[int, int]:
    wbytes = casts = 0
    for n in graph.nodes():
        c = n.const_value()
        if c is not None and c.dtype.is_float:
            wbytes += c.nbytes
        elif n.op_type == "Cast":
            casts += 1
    return wbytes, casts


def _stats(graph, before, after) -> dict:
    rows = {}
    for n in graph.nodes():
        if n.op_type == "Cast" or n.const_value() is not None:
            continue
        dts = {v.dtype for v in n.outputs} | {v.dtype for v in n.inputs}
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


def measure_speedup(fp32_graph: Graph, bf16_graph: Graph, max_runs: int = 50, min_s: float = 0.3,
                    budget_s: float = 1.5) -> Optional[float]:
    """fp32 median / bf16 median latency on random inputs (unknown dims = MEASURE_BATCH): interleaved
    runs, at least 7 and ``min_s`` seconds (fast graphs are noisy), at most ``max_runs`` or ``budget_s``
    (but 3 runs); None if the graphs cannot run here."""
    import statistics

    from ..runtime_check.runner import Runner, random_inputs

    ra = rb = None
    try:
        ra, rb = Runner(fp32_graph), Runner(bf16_graph)
        feeds = random_inputs(fp32_graph, dim=MEASURE_BATCH)
        ra(feeds), rb(feeds)   # warm-up: grappler, oneDNN primitive creation
        ta, tb = [], []
        start = time.perf_counter()
        while len(ta) < max_runs:
            for r, acc in ((ra, ta), (rb, tb)):
                t = time.perf_counter()
                r(feeds)
                acc.append(time.perf_counter() - t)
            spent = time.perf_counter() - start
            if spent > budget_s and len(ta) >= 3 or spent > min_s and len(ta) >= 7:
                break
        return statistics.median(ta) / statistics.median(tb)
    except Exception:  # a measurement problem must not fail the compile; the cost model already ran
        return None
    finally:
        for r in (ra, rb):
            if r is not None:
                r.close()


# ---------------------------------------------------------------------- reporting
def finalize_precision_stats(graph: Graph, report: dict) -> None:
    """Recompute the statistics on the graph the pipeline finally produced: passes after this one
    (e.g. fuse-bias-activation) change the op types the table lists."""
    st = report.get("precision_stats")
    if st:
        before = (st["weight_bytes_before"], st["casts_before"])
        report["precision_stats"] = _stats(graph, before, _weights_and_casts(graph))


def format_precision_stats(report: dict) -> str:
    st = report.get("precision_stats")
    if not st:
        return ""
    rows = [("op type", "total", "bf16", "fp32")] + [(k, *map(str, v)) for k, v in st["ops"].items()]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
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


def _escape(names) -> str:
    return ";".join(names)


def extend_pipeline(passes: list, opts, report: dict) -> list:
    """Resolve the target and append the bf16 pass to ``passes`` when bf16 survives it."""
    if "bf16" not in getattr(opts, "precisions", ()):
        return passes
    from ..runtime_check.target import resolve

    precisions, warnings = resolve(opts.target, list(opts.precisions))
    report.setdefault("warnings", []).extend(warnings)
    report["precisions"] = precisions
    if "bf16" not in precisions:
        return passes
    check_overrides_names(list(opts.fp32_ops) + list(opts.bf16_ops))
    # Timing on this machine says nothing about another target's CPU.
    measure = bool(opts.measure_profitability) and opts.target == "native"
    opt = [f"measure={'true' if measure else 'false'}"]
    if "fp32" not in precisions:
        # "bf16" alone asks for bf16 wherever TF can run it, not for a profitability judgement.
        opt = ["measure=false", "min_region_flops=0", "flops_per_cast_byte=0"]
    if opts.fp32_ops:
        opt.append(f"fp32_ops={_escape(opts.fp32_ops)}")
    if opts.bf16_ops:
        opt.append(f"bf16_ops={_escape(opts.bf16_ops)}")
    return list(passes) + [f"auto-mixed-precision{{{', '.join(opt)}}}"]


def check_overrides_names(names) -> None:
    for n in names:
        if any(c in n for c in ",;{}"):
            raise ConfigError(f"--fp32-ops/--bf16-ops: {n!r} contains one of , ; {{ }}")
