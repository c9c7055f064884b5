"""Numeric equivalence check: run two graphs in TensorFlow on the same inputs and compare every output.

Behind ``graphir check`` and ``graphir compile --verify``. An output passes when, element-wise,
``|a - b| <= atol + rtol * |a|`` (``a`` from the original; NaNs must coincide), dtypes and shapes agree.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import GraphirError, ModelLoadError, describe, one_line
from ..ir import Graph
from ..ir.dialect import graph_dialect
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
    source: str = "random inputs"

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
        from ..table import format_table

        rows = [["output", "max abs err", "max rel err", "result"]] + [o.row() for o in self.outputs]
        lines = format_table(rows, rules=(1,)).split("\n")
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures())} of {len(self.outputs)} outputs)"
        lines.append(f"{verdict}: rtol={self.rtol:g} atol={self.atol:g}, {self.runs} run(s) on {self.source}")
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
RUN_ERRORS: tuple = (ValueError, TypeError)  # plus the runtime's own errors, added by _run_errors()


def _run_errors(graph: Graph) -> tuple:
    """What ``graph``'s runtime raises for a graph it cannot load or run (anything else is a bug, and
    propagates); asking the graph's dialect keeps an ONNX check free of TensorFlow's import."""
    return RUN_ERRORS + tuple(graph_dialect(graph).run_errors())


def tf_error_line(e: BaseException) -> str:
    """The line of a (long, multi-line) TF error that says what went wrong, with the node it happened at."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    node = next((ln[len("Node: "):] for ln in lines if ln.startswith("Node: ")), None)
    msg = next((ln for ln in lines if not ln.startswith(_TF_NOISE)), lines[0] if lines else "")
    if len(msg) > 160:  # TF appends paragraphs of advice ("Make sure the Op and Kernel are registered...")
        msg = msg.split(". ")[0]
    return one_line(f"{type(e).__name__}: {msg}" + (f" (at node {node})" if node else ""), 300)


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
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # what np.load raises for a bad file
        why = "" if isinstance(e, ValueError) and "pickle" in str(e) else f" ({describe(e, 200)})"
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


class CannotRunOriginal(GraphirError):
    """The original model cannot run here, so there is nothing to check against (bad input: exit 2).

    ``graphir compile`` with ``--verify`` at its default turns this into a warning and still compiles."""


PROBE_SIZES = (8, 16, 32, 64, 128, 256, 512)  # tried in turn for unknown non-batch dims


def _shapes_text(feeds: dict) -> str:
    from .shapes import format_shape

    return ",".join(f"{k}:{format_shape(np.shape(v))}" for k, v in feeds.items()) or "no inputs"


@dataclass
class Reference:
    """The original model's outputs on a fixed set of feeds: computed once, compared against any number
    of candidates (:meth:`compare`)."""

    graph: Graph
    feeds: list[dict]
    outputs: list[list]
    source: str
    probed: dict = field(default_factory=dict)  # input -> shape (batch None) found by trying sizes

    def compare(self, optimized: Graph, *, rtol: float = 1e-5, atol: float = 1e-6) -> CheckReport:
        """Run ``optimized`` on the same feeds and compare every output (by name, else by position)."""

        a_names = [p.name for p in self.graph.outputs]
        b_names = [p.name for p in optimized.outputs]
        report = CheckReport(rtol=rtol, atol=atol, runs=len(self.feeds), source=self.source)
        if sorted(a_names) != sorted(b_names) and len(a_names) != len(b_names):
            report.outputs = [OutputCheck(", ".join(b_names) or "(none)", ok=False,
                                          problem=f"{len(b_names)} outputs, original has {len(a_names)} "
                                                  f"({', '.join(a_names)})")]
            return report
        order = [b_names.index(n) for n in a_names] if sorted(a_names) == sorted(b_names) else list(range(len(a_names)))
        errors = _run_errors(optimized)
        try:
            run_b = graph_dialect(optimized).runner(optimized, optimize=False)
        except errors as e:
            report.outputs = [OutputCheck(n, ok=False, problem=f"optimized model cannot be loaded: "
                                                               f"{tf_error_line(e)}") for n in a_names]
            return report
        results = [OutputCheck(n) for n in a_names]
        try:
            for feeds, outs_a in zip(self.feeds, self.outputs):
                try:
                    outs_b = run_b(_match_feeds(optimized, feeds, self.graph))
                except errors as e:
                    report.outputs = [OutputCheck(n, ok=False, problem=f"optimized model failed to run: "
                                                                       f"{tf_error_line(e)}") for n in a_names]
                    return report
                for i, n in enumerate(a_names):
                    results[i] = _merge(results[i], compare_arrays(n, outs_a[i], outs_b[order[i]], rtol, atol))
        finally:
            run_b.close()
        report.outputs = results
        return report


def _unknown_ops(graph: Graph) -> list[str]:
    return sorted({graph.node(n).op_type for n in graph.meta.get("tf.unknown_ops", ()) if n in graph})


def run_on_random_inputs(run, graph: Graph, *, shapes: Optional[dict] = None, batch_size: Optional[int] = None,
                         dim: int = 4, seed: int = 0, samples: int = 1, what: str = "the original model"):
    """Run ``run`` (a :class:`~.runner.Runner` of ``graph``) on random inputs it accepts.

    Inputs take ``shapes`` (see :mod:`.shapes`), the batch size for unknown dim 0 and ``dim`` for other
    unknown dims. When the model rejects those sizes and an input has unknown non-batch dims, growing
    sizes are tried (:data:`PROBE_SIZES`). Returns (feeds per sample, outputs per sample, source text,
    the shapes found by trying, batch dim left None). Raises :class:`CannotRunOriginal` with one line
    naming the inputs that need ``--input-shapes`` when nothing runs."""
    from .runner import random_inputs
    from .shapes import format_shape, free_dims

    shapes = dict(shapes if shapes is not None else graph.meta.get("input_shapes") or {})
    errors = _run_errors(graph)
    free = [p for p in graph.inputs if free_dims(p.value.shape.dims, shapes.get(p.name))]
    sizes = [dim] + [d for d in PROBE_SIZES if d > dim] if free else [dim]
    batch = dim if batch_size is None else batch_size
    first_error, tried = None, []
    for size in sizes:
        try:
            feeds = [random_inputs(graph, dim=size, batch_size=batch, seed=seed + i, shapes=shapes)
                     for i in range(max(1, samples))]
        except ValueError as e:  # an input type that has no random values (e.g. resource)
            raise CannotRunOriginal(f"{e}; give inputs with --inputs-npz") from None
        tried.append(_shapes_text(feeds[0]))
        try:
            outs = [run(feeds[0])]
        except errors as e:
            first_error = first_error or e
            continue
        for f in feeds[1:]:
            try:
                outs.append(run(f))
            except errors as e:
                raise CannotRunOriginal(f"cannot run {what} on random inputs {_shapes_text(f)}: "
                                        f"{tf_error_line(e)}") from None
        probed = {p.name: (None,) + tuple(feeds[0][p.name].shape[1:]) for p in free} if size != dim else {}
        return feeds, outs, f"random inputs {tried[-1]}, seed {seed}", probed
    span = tried[0] if len(tried) == 1 else f"{tried[0]} to {tried[-1]}"
    msg = f"cannot run {what} on random inputs {span}: {tf_error_line(first_error)}"
    if free:
        need = []
        for p in free:
            dims, given = p.value.shape.dims, shapes.get(p.name)
            if given is not None:
                dims = [g if g is not None else d for g, d in zip(given, dims)]
            need.append((p.name, format_shape(dims),
                         "x".join(str(batch) if i == 0 and d is None else "N" if d is None else str(d)
                                  for i, d in enumerate(dims))))
        which = " and ".join(f"{n!r} ({s})" for n, s, _ in need)
        msg += (f"; input{'s' if len(need) > 1 else ''} {which} need{'' if len(need) > 1 else 's'} a shape: "
                f"give --input-shapes {','.join(f'{n}:{t}' for n, _, t in need)}")
    raise CannotRunOriginal(msg)


def reference_run(original: Graph, *, feeds_list: Optional[list[dict]] = None, shapes: Optional[dict] = None,
                  batch_size: Optional[int] = None, dim: int = 4, seed: int = 0, samples: int = 1,
                  source: Optional[str] = None) -> Reference:
    """Run ``original`` as written (no grappler) once per sample and keep its outputs: on ``feeds_list``,
    else on random inputs it accepts (:func:`run_on_random_inputs`)."""

    unknown = _unknown_ops(original)
    if unknown:
        raise CannotRunOriginal(f"cannot run the original model: this TensorFlow has no op {', '.join(unknown)}")
    errors = _run_errors(original)
    try:
        run_a = graph_dialect(original).runner(original, optimize=False)
    except errors as e:
        raise CannotRunOriginal(f"cannot load the original model into TF: {tf_error_line(e)}") from None
    try:
        if feeds_list is None:
            feeds, outs, text, probed = run_on_random_inputs(run_a, original, shapes=shapes, batch_size=batch_size,
                                                             dim=dim, seed=seed, samples=samples)
            return Reference(original, feeds, outs, source or text, probed)
        outs = []
        for feeds in feeds_list:
            try:
                outs.append(run_a(feeds))
            except errors as e:
                raise CannotRunOriginal(f"cannot run the original model on {source or 'the given inputs'}: "
                                        f"{tf_error_line(e)}") from None
        return Reference(original, list(feeds_list), outs, source or "the given inputs")
    finally:
        run_a.close()


def check_graphs(original: Graph, optimized: Graph, *, feeds_list: Optional[list[dict]] = None, rtol: float = 1e-5,
                 atol: float = 1e-6, samples: int = 1, dim: int = 4, seed: int = 0,
                 source: Optional[str] = None, shapes: Optional[dict] = None,
                 batch_size: Optional[int] = None) -> CheckReport:
    """Compare two loaded graphs; ``feeds_list`` (a list of feed dicts) replaces random inputs.

    Both run as written (no grappler): the check is about what graphir changed, not what TF would."""
    ref = reference_run(original, feeds_list=feeds_list, shapes=shapes, batch_size=batch_size, dim=dim,
                        seed=seed, samples=samples, source=source)
    return ref.compare(optimized, rtol=rtol, atol=atol)


def check_options(rtol: float, atol: float, samples: int, dim: int, batch_size: Optional[int] = None) -> None:
    """Bounds of the numeric options; needs no TensorFlow, so the CLI checks them before importing it."""
    if rtol < 0 or atol < 0:
        raise GraphirError("--rtol and --atol must be >= 0")
    if samples < 1 or dim < 1:
        raise GraphirError("--samples and --dim must be >= 1")
    if batch_size is not None and batch_size < 1:
        raise GraphirError("--batch-size must be >= 1")


def check_models(original, optimized, *, inputs_npz: Optional[str] = None, rtol: float = 1e-5, atol: float = 1e-6,
                 samples: int = 1, dim: int = 4, seed: int = 0, inputs=None, outputs=None, input_shapes=None,
                 batch_size: Optional[int] = None) -> CheckReport:
    """Load two models (paths or graphs) and compare them; see :func:`check_graphs`."""
    from ..frontends import load

    check_options(rtol, atol, samples, dim, batch_size)
    arrays = load_npz(inputs_npz) if inputs_npz else None
    g_a = load(original, inputs, outputs)
    g_b = load(optimized, inputs, outputs)
    for g, m in ((g_a, original), (g_b, optimized)):
        if isinstance(m, (str, os.PathLike)):
            require_runnable(g, os.fspath(m))
    from .shapes import resolve_input_shapes

    shapes = resolve_input_shapes(g_a, input_shapes)
    feeds_list = None
    if arrays is not None:
        feeds_list = [feeds_from_arrays(g_a, arrays, os.path.basename(inputs_npz))]
    return check_graphs(g_a, g_b, feeds_list=feeds_list, rtol=rtol, atol=atol, samples=samples, dim=dim,
                        seed=seed, source=f"inputs from {os.path.basename(inputs_npz)}" if inputs_npz else None,
                        shapes=shapes, batch_size=batch_size)
