"""The pass manager: run a pipeline, verify after each pass, record times, counts and warnings."""
from __future__ import annotations

import gc
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence, TextIO, Union

from ..errors import ConfigError, GraphirError, InternalError, describe, one_line
from ..ir import Graph, IRError, VerificationError, verify
from ..table import format_table
from .base import Pass, PassResult
from .pipeline import Pipeline, as_pipeline, known_passes, parse_pipeline  # noqa: F401  (re-exported)


@contextmanager
def gc_paused():
    """Pause Python's cyclic GC. Graph work allocates many small objects; with TF's large heap loaded,
    the collections it triggers otherwise cost more than the work (the cycles are collected afterwards)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class PassFailedError(InternalError):
    """A pass broke the IR (or raised): a graphir bug. The message names the pass and those before it."""


@dataclass
class PassRecord:
    name: str
    seconds: float          # the pass itself
    verify_seconds: float   # verifying the IR after it
    nodes_before: int
    nodes_after: int
    result: PassResult


class PassManager:
    """Runs passes in order; verifies, prints, dumps and times after each."""

    def __init__(self, passes: Union[Pipeline, Sequence[Pass]], *, verify: bool = True,
                 print_ir_after_all: bool = False, print_ir_after: Sequence[str] = (),
                 dump_dir: Optional[str] = None, out: TextIO = None, fixed_point: bool = False,
                 max_iterations: int = 10):
        self.pipeline = as_pipeline(passes).resolved()
        self.verify = verify
        self.print_ir_after_all = print_ir_after_all
        self.print_ir_after = set(print_ir_after or ())
        unknown = self.print_ir_after - set(known_passes())
        if unknown:
            raise ConfigError(f"--print-ir-after: unknown pass {sorted(unknown)[0]!r}; known passes: "
                              f"{', '.join(known_passes())}")
        self.dump_dir = dump_dir
        self.out = out
        self.fixed_point = fixed_point
        self.max_iterations = max_iterations
        self._dump_count = 0

    @property
    def passes(self) -> list[Pass]:
        return list(self.pipeline)

    @classmethod
    def from_pipeline(cls, pipeline, **kwargs) -> "PassManager":
        return cls(as_pipeline(pipeline), **kwargs)

    def run(self, graph: Graph) -> list[PassRecord]:
        records: list[PassRecord] = []
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
        with gc_paused():
            for _ in range(self.max_iterations if self.fixed_point else 1):
                changed = False
                for p in self.pipeline:
                    rec = self._run_one(p, graph, records)
                    records.append(rec)
                    changed |= rec.result.changed
                if not changed:
                    break
        return records

    def _run_one(self, p: Pass, graph: Graph, records: list[PassRecord]) -> PassRecord:
        before = len(graph)
        ran = ", ".join(r.name for r in records) or "none"
        version = graph.version
        t0 = time.perf_counter()
        try:
            result = p.run(graph)
        except GraphirError:
            raise  # bad input found by the pass (e.g. an unknown op in --fp32-ops)
        except Exception as e:  # anything else raised inside a pass is a graphir bug
            raise PassFailedError(f"pass {p.name!r} failed: {describe(e)} (after passes: {ran})") from e
        t1 = time.perf_counter()
        # A pass that mutated nothing through the IR API left the verified graph as it was.
        if self.verify and graph.version != version:
            try:
                verify(graph)
            except (VerificationError, IRError) as e:
                raise PassFailedError(f"IR invalid after pass {p.name!r}: {one_line(e)} "
                                      f"(after passes: {ran})") from e
        t2 = time.perf_counter()
        rec = PassRecord(p.name, t1 - t0, t2 - t1, before, len(graph), result)
        out = self.out or sys.stderr
        if self.print_ir_after_all or p.name in self.print_ir_after:
            out.write(f"// -----// IR after {p.name} //----- //\n")
            out.write(graph.text())
            out.flush()
        if self.dump_dir:
            from ..backends.atomic import atomic_write_text

            self._dump_count += 1
            atomic_write_text(os.path.join(self.dump_dir, f"{self._dump_count:02d}-{p.name}.gir"), graph.text())
        return rec


def stats_table(records: Sequence[PassRecord]) -> str:
    """A fixed-width table: pass, seconds, verify seconds, nodes before/after, and the pass's counts."""
    rows = [("pass", "seconds", "verify s", "before", "after", "counts")]
    for r in records:
        counts = " ".join(f"{k}={v}" for k, v in r.result.counts.items() if v)
        rows.append((r.name, f"{r.seconds:.3f}", f"{r.verify_seconds:.3f}", str(r.nodes_before),
                     str(r.nodes_after), counts))
    rules = (1,)
    if records:
        rows.append(("total", f"{sum(r.seconds for r in records):.3f}",
                     f"{sum(r.verify_seconds for r in records):.3f}", str(records[0].nodes_before),
                     str(records[-1].nodes_after), ""))
        rules = (1, len(rows) - 1)
    return format_table(rows, align="lrrrrl", rules=rules) + "\n"


def warnings_of(records: Sequence[PassRecord]) -> list[str]:
    """Every warning the passes raised, in order, prefixed by the pass name."""
    return [f"{r.name}: {w}" for r in records for w in r.result.warnings]


# The standard FP32 pipeline. simplify-arithmetic runs again after CSE has merged the zero/one constants the
# folds produce.
FP32_PIPELINE = [
    "strip-unused", "remove-training-nodes", "prune-switch-merge", "fold-constants",
    "inline-grouped-conv", "canonicalize-dilated-conv", "canonicalize-gelu", "canonicalize-swish", "einsum-to-matmul", "dense-to-matmul",
    "canonicalize-layer-norm", "simplify-arithmetic",
    "fold-batch-norms", "cse", "simplify-arithmetic", "dce", "lower-onednn",
]


# The FP32 pipeline for ONNX graphs: the generic passes around the onnx rule sets. ONNX keeps weights as
# initializers (spilled to external data past 2 GB by the backend), so constants fold up to 1 GiB whatever
# op made them: a ConstantOfShape holding a Conv's weights is a weight, and BN folding needs it constant.
ONNX_FP32_PIPELINE = ("strip-unused,onnx-simplify,fold-constants{max_bytes=1073741824, max_expand_bytes=1073741824},"
                      "onnx-transpose-sink,onnx-simplify,onnx-fuse,cse,dce")


def default_pipeline(opts, report: Optional[dict] = None, graph: Optional[Graph] = None) -> Pipeline:
    """The pipeline ``graphir.compile`` runs for ``opts`` (precisions, target, op overrides): the FP32
    passes, plus the precision passes when bf16 survives the target, ordered by their declared phases.
    For a ``graph`` of the onnx dialect: the ONNX FP32 pipeline (bf16 is refused: ONNX Runtime's CPU
    provider has no bf16 kernels)."""
    from ..runtime_check.target import resolve
    from .base import PASSES, PHASES
    from .pipeline import load_passes

    load_passes()
    from ..dialects.onnx import is_onnx_graph

    export = getattr(opts, "export", None)
    if export not in (None, "onnx"):
        raise ConfigError(f"export: unknown format {export!r}; only onnx")
    onnx_in = graph is not None and is_onnx_graph(graph)
    if (onnx_in or export) and "bf16" in getattr(opts, "precisions", ["fp32"]):
        raise ConfigError("--precisions: bf16 is not supported for ONNX models (ONNX Runtime's CPU "
                          "provider has no bf16 kernels); use fp32")
    onnx_passes = list(Pipeline.parse(ONNX_FP32_PIPELINE))
    if onnx_in:
        return Pipeline(onnx_passes)
    if export:
        # The TF FP32 passes up to (not including) lowering to TF's kernels, then the conversion and the
        # ONNX passes on its result.
        tf_passes = [PASSES[n]() for n in FP32_PIPELINE if PASSES[n].phase != "lower"]
        opset = getattr(opts, "opset", None)
        convert = PASSES["tf-to-onnx"]() if opset is None else PASSES["tf-to-onnx"](opset=opset)
        return Pipeline(tf_passes + [convert] + onnx_passes)
    report = report if report is not None else {}
    target = getattr(opts, "target", "native")
    passes: list[Pass] = [PASSES[n](target=target) if n == "lower-onednn" else PASSES[n]() for n in FP32_PIPELINE]
    precisions = list(getattr(opts, "precisions", ["fp32"]))
    if "bf16" in precisions:
        precisions, warnings = resolve(opts.target, precisions)
        report.setdefault("warnings", []).extend(warnings)
        report["precisions"] = precisions
    if "bf16" in precisions:
        from ..runtime_check.target import cpu_flags

        kwargs = dict(fp32_ops=tuple(opts.fp32_ops), bf16_ops=tuple(opts.bf16_ops))
        # With AMX, bf16 pays off far below the FLOP count the static model assumes (a 0.6 MFLOP/sample CNN
        # runs 2x faster): no whole-graph FLOP floor there. On the native target the driver also times the
        # finished fp32 and bf16 graphs and keeps the faster (graphir.compiler.compile_graph).
        amx = "amx_bf16" in (cpu_flags() if opts.target == "native" else {opts.target})
        if amx:
            kwargs.update(min_region_flops=0)
        if "fp32" not in precisions:
            # "bf16" alone asks for bf16 wherever the framework can run it, not for a profitability judgement.
            kwargs.update(min_region_flops=0, flops_per_cast_byte=0.0)
        passes.append(PASSES["auto-mixed-precision"](**kwargs))
    order = {p: i for i, p in enumerate(PHASES)}
    passes.sort(key=lambda p: order[p.phase])  # stable: the table's order within a phase
    return Pipeline(passes).resolved()
