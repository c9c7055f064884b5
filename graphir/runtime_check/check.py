"""Numeric equivalence check: run two graphs in TensorFlow on the same inputs and compare every output.

Behind ``graphir check`` and ``graphir compile --verify``. An output passes when, element-wise,
``|a - b| <= atol + rtol * |a|`` (``a`` from the original; NaNs must coincide), dtypes and shapes agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import GraphirError, ModelLoadError
from ..ir import Graph
from ..ir.printer import Elided
from ..ir.types import Tensor


@dataclass
class OutputCheck:
    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    problem: str = ""  # a structural failure (dtype/shape/count), instead of numbers

    def row(self) -> list[str]:
        if self.problem:
            return [self.name, "-", "-", "FAIL: " + self.problem]
        return [self.name, f"{self.max_abs:.3g}", f"{self.max_rel:.3g}", "ok" if self.ok else "FAIL"]


@dataclass
class CheckReport:
    outputs: list[OutputCheck] = field(default_factory=list)
    rtol: float = 1e-5
    atol: float = 1e-6
    runs: int = 1
    source: str = "random"

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def failures(self) -> list[OutputCheck]:
        return [o for o in self.outputs if not o.ok]

    def first_failure(self) -> str:
        """One line naming the first failing output and its error."""
        for o in self.outputs:
            if not o.ok:
                return f"output {o.name!r}: " + (o.problem or f"max abs error {o.max_abs:.3g}, max rel error "
                                                  f"{o.max_rel:.3g} (rtol={self.rtol:g}, atol={self.atol:g})")
        return ""

    def format(self) -> str:
        rows = [["output", "max abs err", "max rel err", "result"]] + [o.row() for o in self.outputs]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures())} of {len(self.outputs)} outputs)"
        lines.append(f"{verdict}: rtol={self.rtol:g} atol={self.atol:g}, {self.runs} run(s) on {self.source} inputs")
        return "\n".join(lines) + "\n"


def compare_arrays(name: str, a, b, rtol: float, atol: float) -> OutputCheck:
    """Compare one output of the original (``a``) with the optimized one (``b``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return OutputCheck(name, ok=False, problem=f"dtype {b.dtype} != original {a.dtype}")
    if a.shape != b.shape:
        return OutputCheck(name, ok=False, problem=f"shape {b.shape} != original {a.shape}")
    if a.size == 0:
        return OutputCheck(name)
    if a.dtype.kind not in "biufc" and a.dtype.name != "bfloat16":  # strings, objects: exact
        ok = bool(np.array_equal(a, b))
        return OutputCheck(name, 0.0 if ok else float("inf"), 0.0 if ok else float("inf"), ok)
    wide = np.complex128 if a.dtype.kind == "c" else np.float64
    x, y = a.astype(wide), b.astype(wide)
    both_nan = np.isnan(x) & np.isnan(y)
    same_inf = np.isinf(x) & (x == y)
    with np.errstate(invalid="ignore"):  # inf - inf
        diff = np.where(both_nan | same_inf, 0.0, np.abs(x - y))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
    denom = np.abs(np.where(np.isfinite(x), x, 0.0)) + max(atol, np.finfo(np.float32).tiny)
    ok = bool(np.all(diff <= atol + rtol * np.abs(np.where(np.isfinite(x), x, 0.0))))
    return OutputCheck(name, float(diff.max()), float((diff / denom).max()), ok)


_TF_NOISE = ("Graph execution error", "Detected at node", "Node:", "[[", "Original stack trace", "File ")


def _one(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


def _first_line(e: Exception) -> str:
    """The line of a (long, multi-line) TF error that says what went wrong, with the node it happened at."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    node = next((ln[len("Node: "):] for ln in lines if ln.startswith("Node: ")), None)
    msg = next((ln for ln in lines if not ln.startswith(_TF_NOISE)), lines[0] if lines else "")
    if len(msg) > 160:  # TF appends paragraphs of advice ("Make sure the Op and Kernel are registered...")
        msg = msg.split(". ")[0]
    return (f"{type(e).__name__}: {msg}" + (f" (at node {node})" if node else ""))[:300]


def _merge(into: OutputCheck, new: OutputCheck) -> OutputCheck:
    if into.problem:
        return into
    if new.problem:
        return new
    return OutputCheck(into.name, max(into.max_abs, new.max_abs), max(into.max_rel, new.max_rel),
                       into.ok and new.ok)


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise GraphirError(f"{path}: no such inputs file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # numpy raises many types for a bad file
        why = "" if isinstance(e, ValueError) and "pickle" in str(e) else f" ({type(e).__name__}: {_one(e)})"
        raise GraphirError(f"{path}: not a readable .npz file{why}") from None


def require_runnable(graph: Graph, path: str) -> None:
    """A .gir dump without --full-constants has digests instead of weights: it can be printed, not run."""
    if isinstance(graph.attrs.get("tf.library"), Elided):
        raise ModelLoadError(f"{path}: the function library was elided from this dump; it can't be run or "
                             f"compiled. Re-create it with `graphir dump --full-constants`")
    for node in graph.nodes():
        for v in node.attrs.values():
            if isinstance(v, Elided) or isinstance(v, Tensor) and v.digest_only and v.encoded is None:
                raise ModelLoadError(f"{path}: abbreviated dump (constant {node.name!r} has only a digest); it "
                                     f"can't be run or compiled. Re-create it with `graphir dump --full-constants`")


def feeds_from_arrays(graph: Graph, arrays: dict[str, np.ndarray], source: str = "inputs") -> dict:
    """Check user arrays against the graph's inputs (names, dtypes, static dims) and cast them."""
    feeds = {}
    for port in graph.inputs:
        if port.name not in arrays:
            raise GraphirError(f"{source} has no array for input {port.name!r} (has: {', '.join(sorted(arrays)) or 'none'})")
        arr = np.asarray(arrays[port.name])
        t = port.value.type
        want = t.dtype.np
        if want is not None and arr.dtype != want:
            if arr.dtype.kind != want.kind and not (arr.dtype.kind in "iu" and want.kind in "iuf"):
                raise GraphirError(f"{source}: input {port.name!r} has dtype {arr.dtype}, graph expects {t.dtype.name}")
            arr = arr.astype(want)
        dims = t.shape.dims
        if dims is not None and (arr.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, arr.shape))):
            raise GraphirError(f"{source}: input {port.name!r} has shape {tuple(arr.shape)}, graph expects "
                               f"{t.shape.text() or 'a scalar'}")
        feeds[port.name] = arr
    return feeds


def _match_feeds(graph: Graph, feeds: dict, original: Graph) -> dict:
    """Feeds for ``graph`` keyed by its own input names: same name, else same position."""
    names = [p.name for p in original.inputs]
    out = {}
    for i, p in enumerate(graph.inputs):
        if p.name in feeds:
            out[p.name] = feeds[p.name]
        elif len(graph.inputs) == len(names):
            out[p.name] = feeds[names[i]]
        else:
            raise GraphirError(f"optimized model has input {p.name!r}, which the original does not")
    return out


def check_graphs(original: Graph, optimized: Graph, *, feeds_list: Optional[list[dict]] = None, rtol: float = 1e-5,
                 atol: float = 1e-6, samples: int = 1, dim: int = 4, seed: int = 0,
                 source: Optional[str] = None) -> CheckReport:
    """Compare two loaded graphs; ``feeds_list`` (a list of feed dicts) replaces random inputs."""
    from ..ir.dialect import graph_dialect
    from .runner import random_inputs

    a_names = [p.name for p in original.outputs]
    b_names = [p.name for p in optimized.outputs]
    report = CheckReport(rtol=rtol, atol=atol)
    if sorted(a_names) != sorted(b_names) and len(a_names) != len(b_names):
        report.outputs = [OutputCheck(", ".join(b_names) or "(none)", ok=False,
                                      problem=f"{len(b_names)} outputs, original has {len(a_names)} ({', '.join(a_names)})")]
        return report
    # Optimized output index for each original output: by name, else by position.
    order = [b_names.index(n) for n in a_names] if sorted(a_names) == sorted(b_names) else list(range(len(a_names)))
    if feeds_list is None:
        try:
            feeds_list = [random_inputs(original, dim=dim, seed=seed + i) for i in range(max(1, samples))]
        except ValueError as e:
            raise GraphirError(f"{e}; give inputs with --inputs-npz") from None
        report.source = source or f"random (dim={dim}, seed={seed})"
    else:
        report.source = source or "user"
    report.runs = len(feeds_list)
    unknown = sorted({original.node(n).op_type for n in original.meta.get("tf.unknown_ops", ()) if n in original})
    if unknown:
        raise GraphirError(f"cannot run the original model: this TensorFlow has no op {', '.join(unknown)}")
    try:
        run_a = graph_dialect(original).runner(original)
    except GraphirError:
        raise
    except Exception as e:
        raise GraphirError(f"cannot load the original model into TF: {_first_line(e)}") from None
    try:
        run_b = graph_dialect(optimized).runner(optimized)
    except Exception as e:
        report.outputs = [OutputCheck(n, ok=False, problem=f"optimized model cannot be loaded into TF: {_first_line(e)}")
                          for n in a_names]
        return report
    results = [OutputCheck(n) for n in a_names]
    for feeds in feeds_list:
        try:
            outs_a = run_a(feeds)
        except Exception as e:  # TF's errors are long; the first line says what went wrong
            raise GraphirError(f"cannot run the original model on {report.source} inputs: {_first_line(e)}") from None
        try:
            outs_b = run_b(_match_feeds(optimized, feeds, original))
        except GraphirError:
            raise
        except Exception as e:
            report.outputs = [OutputCheck(n, ok=False, problem=f"optimized model failed to run: {_first_line(e)}")
                              for n in a_names]
            return report
        for i, n in enumerate(a_names):
            results[i] = _merge(results[i], compare_arrays(n, outs_a[i], outs_b[order[i]], rtol, atol))
    report.outputs = results
    return report


def check_options(rtol: float, atol: float, samples: int, dim: int) -> None:
    """Bounds of the numeric options; needs no TensorFlow, so the CLI checks them before importing it."""
    if rtol < 0 or atol < 0:
        raise GraphirError("--rtol and --atol must be >= 0")
    if samples < 1 or dim < 1:
        raise GraphirError("--samples and --dim must be >= 1")


def check_models(original, optimized, *, inputs_npz: Optional[str] = None, rtol: float = 1e-5, atol: float = 1e-6,
                 samples: int = 1, dim: int = 4, seed: int = 0, inputs=None, outputs=None) -> CheckReport:
    """Load two models (paths or graphs) and compare them; see :func:`check_graphs`."""
    from .. import load

    check_options(rtol, atol, samples, dim)
    arrays = load_npz(inputs_npz) if inputs_npz else None
    g_a = load(original, inputs, outputs)
    g_b = load(optimized, inputs, outputs)
    for g, m in ((g_a, original), (g_b, optimized)):
        if isinstance(m, (str, os.PathLike)):
            require_runnable(g, os.fspath(m))
    feeds_list = None
    if arrays is not None:
        feeds_list = [feeds_from_arrays(g_a, arrays, os.path.basename(inputs_npz))]
    return check_graphs(g_a, g_b, feeds_list=feeds_list, rtol=rtol, atol=atol, samples=samples, dim=dim,
                        seed=seed, source=os.path.basename(inputs_npz) if inputs_npz else None)
