"""The pass manager: parse pipeline strings, run passes, verify after each, record time and node counts."""
from __future__ import annotations

import dataclasses
import gc
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence, TextIO, Union

from ..errors import ConfigError, GraphirError
from ..ir import Graph, VerificationError, verify
from .base import PASSES, Pass, PassResult


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


class PassFailedError(GraphirError):
    """A pass broke the IR (or raised); the message names it and the passes that ran before it."""


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    result: PassResult


def known_passes() -> list[str]:
    from . import _load_all

    _load_all()
    return sorted(PASSES)


def _bad(msg: str):
    raise ConfigError(f"{msg}; known passes: {', '.join(known_passes())}")


_ITEM = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*(?:\{([^{}]*)\})?\s*(?:,|$)")


def _convert(text: str, f: dataclasses.Field, pname: str):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = text.strip()
    try:
        if t.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if t.startswith("int"):
            return int(float(text)) if re.fullmatch(r"[0-9.eE+]+", text) else int(text, 0)
        if t.startswith("float"):
            return float(text)
        if "list" in t or "tuple" in t:
            return tuple(s.strip() for s in text.split(";") if s.strip())
        return text
    except ValueError:
        raise ConfigError(f"pass {pname!r}: option {f.name} = {text!r} is not a valid {t}") from None


def parse_pipeline(text: str) -> list[Pass]:
    """``"a,b{opt=1, other=x},c"`` -> pass instances. List options use ``;``: ``keep=a;b``."""
    from . import _load_all

    _load_all()
    if not isinstance(text, str) or not text.strip():
        _bad("empty pass pipeline")
    passes: list[Pass] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            _bad(f"bad pass pipeline {text!r} at column {pos + 1}")
        name, opts = m.group(1), m.group(2)
        cls = PASSES.get(name)
        if cls is None:
            _bad(f"unknown pass {name!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for item in (opts or "").split(","):
            if not item.strip():
                continue
            k, eq, v = item.partition("=")
            k = k.strip().replace("-", "_")
            if not eq or k not in fields:
                raise ConfigError(f"pass {name!r}: bad option {item.strip()!r}; options: "
                                  f"{', '.join(fields) or 'none'}")
            kwargs[k] = _convert(v, fields[k], name)
        passes.append(cls(**kwargs))
        pos = m.end()
    return passes


class PassManager:
    """Runs passes in order; verifies, prints, dumps and times after each."""

    def __init__(self, passes: Sequence[Pass], *, verify: bool = True, print_ir_after_all: bool = False,
                 print_ir_after: Sequence[str] = (), dump_dir: Optional[str] = None, out: TextIO = None,
                 fixed_point: bool = False, max_iterations: int = 10):
        self.passes = list(passes)
        self.verify = verify
        self.print_ir_after_all = print_ir_after_all
        self.print_ir_after = set(print_ir_after or ())
        unknown = self.print_ir_after - set(known_passes())
        if unknown:
            _bad(f"--print-ir-after: unknown pass {sorted(unknown)[0]!r}")
        self.dump_dir = dump_dir
        self.out = out
        self.fixed_point = fixed_point
        self.max_iterations = max_iterations
        self._dump_count = 0

    @classmethod
    def from_pipeline(cls, pipeline: Union[str, Sequence[Pass]], **kwargs) -> "PassManager":
        passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
        return cls(passes, **kwargs)

    def run(self, graph: Graph) -> list[PassRecord]:
        records: list[PassRecord] = []
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
        with gc_paused():
            for _ in range(self.max_iterations if self.fixed_point else 1):
                changed = False
                for p in self.passes:
                    rec = self._run_one(p, graph, records)
                    records.append(rec)
                    changed |= rec.result.changed
                if not changed:
                    break
        return records

    def _run_one(self, p: Pass, graph: Graph, records: list[PassRecord]) -> PassRecord:
        before = len(graph)
        t0 = time.perf_counter()
        ran = ", ".join(r.name for r in records) or "none"
        try:
            result = p.run(graph)
        except GraphirError:
            raise
        except Exception as e:
            raise PassFailedError(f"pass {p.name!r} failed: {type(e).__name__}: {_one_line(e)} "
                                  f"(after passes: {ran})") from e
        if self.verify:
            try:
                verify(graph)
            except VerificationError as e:
                raise PassFailedError(f"IR invalid after pass {p.name!r}: {_one_line(e)} "
                                      f"(after passes: {ran})") from e
        seconds = time.perf_counter() - t0
        rec = PassRecord(p.name, seconds, before, len(graph), result)
        out = self.out or sys.stderr
        if self.print_ir_after_all or p.name in self.print_ir_after:
            out.write(f"// -----// IR after {p.name} //----- //\n")
            out.write(graph.text())
            out.flush()
        if self.dump_dir:
            self._dump_count += 1
            graph.save(os.path.join(self.dump_dir, f"{self._dump_count:02d}-{p.name}.gir"), format="gir")
        return rec


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def stats_table(records: Sequence[PassRecord]) -> str:
    """A fixed-width table: pass, seconds, nodes before/after, and the pass's counts."""
    rows = [("pass", "seconds", "before", "after", "counts")]
    for r in records:
        counts = " ".join(f"{k}={v}" for k, v in r.result.counts.items() if v)
        rows.append((r.name, f"{r.seconds:.3f}", str(r.nodes_before), str(r.nodes_after), counts))
    total = sum(r.seconds for r in records)
    if records:
        rows.append(("total", f"{total:.3f}", str(records[0].nodes_before), str(records[-1].nodes_after), ""))
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]}".rstrip() for r in rows]
    rule = "-" * max(len(line) for line in lines)
    lines.insert(1, rule)
    if records:
        lines.insert(len(lines) - 1, rule)
    return "\n".join(lines) + "\n"


# The standard FP32 pipeline. fold-batch-norms folds the constants it needs itself; simplify-arithmetic runs
# again after CSE has merged the zero/one constants the folds produce.
FP32_PIPELINE = [
    "strip-unused", "remove-training-nodes", "prune-switch-merge", "fold-constants", "simplify-arithmetic",
    "fold-batch-norms", "cse", "simplify-arithmetic", "dce", "fuse-bias-activation",
]


def default_pipeline(opts, report: Optional[dict] = None) -> str:
    """The pipeline ``graphir.compile`` runs for ``opts.precisions`` (a comma-separated string)."""
    passes = list(FP32_PIPELINE)
    # WIP wiring (lower-onednn): the lowering replaces fuse-bias-activation and runs after precision
    # assignment, so it sees every node's final dtype.
    passes.remove("fuse-bias-activation")
    if "bf16" in getattr(opts, "precisions", ()):
        from .auto_mixed_precision import extend_pipeline

        passes = extend_pipeline(passes, opts, report if report is not None else {})
    passes.append(f"lower-onednn{{target={getattr(opts, 'target', 'native')}}}")
    return ",".join(passes)
