"""``graphir.compile``: load a model, run the pass pipeline for the requested precisions, return the result.

This is the one driver behind the CLI's ``compile``, the Python API and ``Graph_Optimization``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from .errors import ConfigError
from .ir import Graph
from .runtime_check.target import TARGETS

PRECISIONS = ("bf16", "fp32")


def parse_precisions(precisions: Union[str, Sequence[str], None]) -> list[str]:
    """``"bf16, fp32"`` / ``["bf16", "fp32"]`` -> ``["bf16", "fp32"]``; unknown names are a ConfigError."""
    if precisions is None:
        return ["fp32"]
    items = precisions.split(",") if isinstance(precisions, str) else list(precisions)
    out = []
    for i, p in enumerate(items):
        p = str(p).strip().lower()
        if not p:
            continue
        if p not in PRECISIONS:
            raise ConfigError(f"precisions[{i}]: {p!r} is not one of {', '.join(PRECISIONS)}")
        if p not in out:
            out.append(p)
    if not out:
        raise ConfigError("precisions: empty; use fp32, bf16 or 'bf16,fp32'")
    return out


def split_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        v = v.split(",")
    return [s.strip() for s in v if s and s.strip()]


@dataclass
class CompileOptions:
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    passes: Optional[str] = None
    target: str = "native"
    fp32_ops: list[str] = field(default_factory=list)
    bf16_ops: list[str] = field(default_factory=list)
    verify_each: bool = True
    print_ir_after_all: bool = False
    print_ir_after: list[str] = field(default_factory=list)
    dump_dir: Optional[str] = None
    measure_profitability: bool = True
    measure_batch: int = 8  # batch of the timed bf16 profitability check
    log: Any = None  # a text stream for debug output; default stderr
    workers: int = 1  # parallel tuning trials (used with config=, see graphir.lpot)
    # Shapes to run the model at when a pass times it ("x:1x240x240x3,..." or {name: dims}); see
    # graphir.runtime_check.shapes. Needed for inputs with unknown non-batch dims.
    input_shapes: Any = None
    # "onnx": convert a TF graph to ONNX after the TF FP32 passes (TF -> ONNX export), at op set ``opset``
    # (None: tf-to-onnx's default).
    export: Optional[str] = None
    opset: Optional[int] = None


class OptimizedModel:
    """The result of a compile: the optimized IR plus what happened to it.

    ``.ir`` is the graph, ``.graph_def`` its TF GraphDef, ``.save(path)`` writes it, and calling the model
    on numpy arrays runs it in TensorFlow."""

    def __init__(self, ir: Graph, original: Optional[Graph] = None, report: Optional[dict] = None):
        self.ir = ir
        self.original = original
        self.report = report or {}
        self._runner = None

    @property
    def graph_def(self):
        from .backends.tf import to_graph_def

        return to_graph_def(self.ir)

    def save(self, path, format: Optional[str] = None) -> None:
        self.ir.save(path, format=format)

    def __call__(self, *args, **feeds):
        from .ir.dialect import graph_dialect

        if self._runner is None:
            self._runner = graph_dialect(self.ir).runner(self.ir)
        if args:
            if len(args) != len(self.ir.inputs):
                raise ValueError(f"model takes {len(self.ir.inputs)} inputs, got {len(args)}")
            feeds.update({p.name: a for p, a in zip(self.ir.inputs, args)})
        outs = self._runner(feeds)
        return outs[0] if len(outs) == 1 else outs

    def __repr__(self):
        return f"<OptimizedModel {len(self.ir)} nodes, precisions={self.report.get('precisions')}>"


def compile(
    model,
    precisions: Union[str, Sequence[str], None] = "fp32",
    inputs=None,
    outputs=None,
    passes: Optional[str] = None,
    target: str = "native",
    fp32_ops=None,
    bf16_ops=None,
    **options,
) -> OptimizedModel:
    """Optimize ``model`` in one conversion and return an :class:`OptimizedModel`.

    The public :func:`graphir.compile` (:mod:`graphir.api`) adds the accuracy-driven flow (``config=``)."""
    # Checked before the model is loaded.
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    opts = CompileOptions(precisions=parse_precisions(precisions), passes=passes, target=target,
                          fp32_ops=split_list(fp32_ops), bf16_ops=split_list(bf16_ops))
    for k, v in options.items():
        if not hasattr(opts, k):
            raise TypeError(f"compile() got an unexpected option {k!r}")
        setattr(opts, k, v)
    from .frontends import load

    from .transforms.pass_manager import gc_paused

    with gc_paused():
        t0 = time.perf_counter()
        # load() returns a graph of our own (a copy when given a Graph), so the pipeline may change it.
        graph = load(model, inputs, outputs)
        load_s = time.perf_counter() - t0
        result = compile_graph(graph, opts, original=model if isinstance(model, Graph) else None)
        result.report["seconds"] = {"load": round(load_s, 3), **result.report["seconds"]}
        return result


def compile_graph(graph: Graph, opts: CompileOptions, original: Optional[Graph] = None) -> OptimizedModel:
    """Run the pipeline on ``graph``, changing it in place; ``original`` is kept on the result.

    With bf16 on the native target and ``measure_profitability``, the guarantee that graphir never ships a
    graph slower than its fp32 one is measured, not modelled: the passes up to precision assignment run
    once, then the fp32 and the bf16 graph are each finished (lowered to the target's kernels) and timed,
    interleaved, at ``measure_batch``; bf16 is kept only if it is at least ``MIN_MEASURED_SPEEDUP`` faster."""
    from .transforms.pass_manager import PassManager, default_pipeline, warnings_of
    from .transforms.precision_report import R_PROFIT, finalize_precision_stats

    t0 = time.perf_counter()
    nodes_before = len(graph)
    log = opts.log or sys.stderr
    if opts.input_shapes:
        from .runtime_check.shapes import resolve_input_shapes

        # Kept in the graph's meta, so any run of it or of its copies (the bf16 timing) uses them.
        graph.meta["input_shapes"] = resolve_input_shapes(graph, opts.input_shapes, "input_shapes")
    report: dict[str, Any] = {"precisions": list(opts.precisions), "warnings": [], "bf16_measured_speedup": None}
    pipeline = default_pipeline(opts, report, graph) if opts.passes is None else opts.passes
    pm_opts = dict(verify=opts.verify_each, print_ir_after_all=opts.print_ir_after_all,
                   print_ir_after=opts.print_ir_after, dump_dir=opts.dump_dir, out=log)
    pm = PassManager.from_pipeline(pipeline, **pm_opts)
    fallback_report: dict[str, Any] = {}
    # A user's --bf16-ops is a decision, not a hint: measuring would only second-guess it.
    guard = (opts.passes is None and opts.measure_profitability and opts.target == "native" and not opts.bf16_ops
             and "fp32" in report["precisions"] and any(p.phase == "precision" for p in pm.pipeline))
    if not guard:
        records = pm.run(graph)
    else:
        head, tail = pm.pipeline.split_before("precision")
        records = PassManager(head, **pm_opts).run(graph)
        fp32_graph = graph.copy()
        fp32_records = PassManager(tail.without_phase("precision"), **pm_opts).run(fp32_graph)
        records += PassManager(tail, **pm_opts).run(graph)
        from .transforms.profitability import MIN_MEASURED_SPEEDUP, measure_speedup

        has_bf16 = any(v.dtype.name == "bf16" for n in graph.nodes() for v in n.outputs)
        speedup = measure_speedup(fp32_graph, graph, batch=opts.measure_batch) if has_bf16 else None
        report["bf16_measured_speedup"] = speedup
        if speedup is not None and speedup < MIN_MEASURED_SPEEDUP:
            reason = f"measured bf16/fp32 speedup {speedup:.2f}x at batch {opts.measure_batch}"
            report["warnings"].append(f"bf16 not profitable on this model ({reason}); emitting fp32")
            # Keep the precision pass's report, rewritten for the fp32 graph that ships instead.
            for r in records[len(head):]:
                rep = r.result.report
                if "precision_explain" in rep:
                    bf16_rows = [(n, op, R_PROFIT) for n, op in rep.get("precision_bf16", [])]
                    rep["precision_explain"] = sorted(rep["precision_explain"] + bf16_rows)
                    rep["precision_unprofitable"] = rep.get("precision_unprofitable", []) + [
                        {"nodes": [n for n, _, _ in bf16_rows], "reason": reason}]
                    rep["bf16_nodes"] = 0
                    fallback_report.update(rep)
            graph = fp32_graph
            records = records[:len(head)] + fp32_records
    report["pipeline"] = str(pm.pipeline)
    report["passes"] = records
    report["warnings"].extend(warnings_of(records))
    # bf16 statistics / --explain data reported by the precision pass, described on the final graph.
    for r in records:
        if r.result.report:
            report.update(r.result.report)
    report.update(fallback_report)
    if "precision_stats" in report:
        finalize_precision_stats(graph, report)
    report["nodes_before"] = nodes_before
    report["nodes_after"] = len(graph)
    report["seconds"] = {"passes": round(time.perf_counter() - t0, 3)}
    return OptimizedModel(graph, original, report)
