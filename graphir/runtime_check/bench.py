"""Latency of several models on this machine, measured fairly: ``graphir bench`` and ``compile --measure``.

Every model is imported once into its own TF session (intra- and inter-op threads from ``threads``),
warmed up (the first runs pay for grappler and oneDNN primitive creation), then timed in interleaved
rounds: one run of each model per round, the starting model rotating, so load from other processes
hits every model alike. The report gives each model's median and minimum, and its speed-up over the
first model (first median / its median) with a 95% paired bootstrap confidence interval over rounds.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import GraphirError
from ..ir import Graph

DEFAULT_SECONDS = 10.0
MIN_ROUNDS = 5
MAX_ROUNDS = 100_000
WARMUP_RUNS = 2
GIVEN = "the given inputs"
BOOTSTRAP = 2000  # resamples; the CI's endpoints move by well under 1% between seeds at this count


@dataclass
class BenchRow:
    label: str
    times: list  # seconds, one per round
    speedup: float = 1.0
    ci: tuple = (1.0, 1.0)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times)) * 1e3

    @property
    def min_ms(self) -> float:
        return float(np.min(self.times)) * 1e3


@dataclass
class BenchReport:
    rows: list[BenchRow]
    batch_size: Optional[int]
    threads: Optional[int]
    seconds: float          # wall time of the timed rounds
    warmup: int
    inputs: str             # where the feeds came from, with their shapes
    input_shapes: dict = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return len(self.rows[0].times) if self.rows else 0

    def table(self) -> str:
        from ..table import format_table

        rows = [("model", "median ms", "min ms", "speedup vs first (95% CI)")]
        for i, r in enumerate(self.rows):
            sp = "1.00x (baseline)" if i == 0 else f"{r.speedup:.2f}x ({r.ci[0]:.2f}-{r.ci[1]:.2f})"
            rows.append((r.label, f"{r.median_ms:.2f}", f"{r.min_ms:.2f}", sp))
        threads = "TF default threads" if self.threads is None else f"{self.threads} thread(s)"
        return (format_table(rows, align="lrrr", rules=(1,)) + "\n"
                f"{self.rounds} interleaved rounds in {self.seconds:.1f} s after {self.warmup} warm-up run(s) "
                f"each; {threads}; {self.inputs}\n")

    def to_json(self) -> dict:
        import tensorflow as tf

        return {
            "rows": [{"model": r.label, "median_ms": r.median_ms, "min_ms": r.min_ms, "speedup": r.speedup,
                      "speedup_ci95": list(r.ci), "runs": len(r.times)} for r in self.rows],
            "rounds": self.rounds, "seconds": self.seconds, "warmup": self.warmup,
            "batch_size": self.batch_size, "threads": self.threads, "inputs": self.inputs,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "tensorflow": tf.__version__,
        }


def amp_rewriter_config():
    """TF's own bf16 auto-mixed-precision (grappler, oneDNN): the rival row of ``--grappler-amp``."""
    from tensorflow.core.protobuf import rewriter_config_pb2

    rc = rewriter_config_pb2.RewriterConfig()
    rc.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return rc


def speedup_ci(base: Sequence[float], other: Sequence[float], *, resamples: int = BOOTSTRAP,
               seed: int = 0) -> tuple[float, tuple[float, float]]:
    """median(base) / median(other) and its 95% CI. Rounds are resampled in pairs: a round's runs share
    the machine's state at that moment, so noise common to both cancels."""
    a, b = np.asarray(base, float), np.asarray(other, float)
    ratio = float(np.median(a) / np.median(b))
    if len(a) < 2:
        return ratio, (ratio, ratio)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (resamples, len(a)))
    boot = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return ratio, (float(lo), float(hi))


class _Progress:
    """One line redrawn in place on a terminal; a few plain lines otherwise (logs, pipes)."""

    def __init__(self, stream, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._next_plain = 0.0

    def __call__(self, text: str, frac: Optional[float] = None, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final or frac is None or frac >= self._next_plain:
            self.stream.write(text + "\n")
            if frac is not None:
                self._next_plain = frac + 0.25
        self.stream.flush()


def prepare_feeds(graphs: Sequence[Graph], labels: Sequence[str], *, feeds: Optional[dict] = None,
                  feeds_source: str = GIVEN, arrays: Optional[dict] = None,
                  arrays_source: str = "inputs", input_shapes=None, batch_size: Optional[int] = None,
                  dim: int = 4, seed: int = 0, first_runner=None):
    """(feeds for each graph, description, shapes found by trying sizes). All graphs must take the same
    inputs (names, dtypes, static dims); a mismatch is a one-line :class:`GraphirError`.

    ``feeds`` is used as given; ``arrays`` (from an .npz) are checked and cut to ``batch_size`` rows;
    otherwise random inputs the first model accepts are found (see :func:`.check.run_on_random_inputs`)."""
    from .check import feeds_from_arrays, run_on_random_inputs
    from .shapes import format_shape, resolve_input_shapes

    first = graphs[0]
    names0 = sorted(p.name for p in first.inputs)
    for g, lab in zip(graphs[1:], labels[1:]):
        names = sorted(p.name for p in g.inputs)
        if names != names0:
            raise GraphirError(f"{lab}: inputs ({', '.join(names) or 'none'}) differ from {labels[0]}'s "
                               f"({', '.join(names0) or 'none'})")
    probed: dict = {}

    def shapes_text(fs):
        return ",".join(f"{k}:{format_shape(np.shape(v))}" for k, v in fs.items())

    if feeds is not None:  # e.g. --verify's random inputs (their source text shows their shapes)
        source = feeds_source if feeds_source != GIVEN else f"{GIVEN} {shapes_text(feeds)}"
    elif arrays is not None:
        if batch_size is not None:
            arrays = {k: v[:batch_size] if np.ndim(v) else v for k, v in arrays.items()}
        feeds = feeds_from_arrays(first, arrays, arrays_source)
        source = f"inputs from {arrays_source} {shapes_text(feeds)}"
    else:
        shapes = resolve_input_shapes(first, input_shapes)
        run = first_runner
        if run is None:
            from .runner import Runner

            run = Runner(first, optimize=False)
        (feeds,), _, source, probed = run_on_random_inputs(
            run, first, shapes=shapes, batch_size=1 if batch_size is None else batch_size, dim=dim, seed=seed,
            what=labels[0])
    per_graph = [feeds_from_arrays(g, feeds, lab) for g, lab in zip(graphs, labels)]
    return per_graph, source, probed


def bench_graphs(graphs: Sequence[Graph], labels: Optional[Sequence[str]] = None, *, feeds: Optional[dict] = None,
                 feeds_source: str = GIVEN, arrays: Optional[dict] = None,
                 arrays_source: str = "inputs", input_shapes=None, batch_size: Optional[int] = None,
                 threads: Optional[int] = None, seconds: float = DEFAULT_SECONDS,
                 min_rounds: int = MIN_ROUNDS, warmup: int = WARMUP_RUNS, grappler_amp: bool = False,
                 seed: int = 0, progress: bool = True, stream=None) -> BenchReport:
    """Time ``graphs`` in one process, interleaved (see the module docstring); the first is the baseline.

    ``grappler_amp`` adds a row: the first graph with TF's oneDNN bf16 auto-mixed-precision turned on.
    Feeds: see :func:`prepare_feeds` (random inputs run at ``batch_size``, default 1). Stops after
    ``seconds`` of rounds, and at least ``min_rounds``."""
    from .check import RUN_ERRORS, tf_error_line
    from .runner import Runner, run_errors

    if not graphs:
        raise GraphirError("bench: no models given")
    if seconds <= 0 or min_rounds < 1 or warmup < 0:
        raise GraphirError("bench: seconds must be > 0, min_rounds >= 1 and warmup >= 0")
    labels = list(labels) if labels is not None else [f"model {i}" for i in range(len(graphs))]
    stream = stream or sys.stderr
    show = _Progress(stream, progress)
    errors = RUN_ERRORS + tuple(run_errors())  # every model runs in TensorFlow here
    runners, row_labels, row_graphs = [], [], []
    try:
        for g, lab in zip(graphs, labels):
            try:
                runners.append(Runner(g, intra_op_threads=threads, inter_op_threads=threads))
            except errors as e:
                raise GraphirError(f"{lab}: cannot load into TF: {tf_error_line(e)}") from None
            row_labels.append(lab)
            row_graphs.append(g)
        if grappler_amp:
            runners.insert(1, Runner(graphs[0], intra_op_threads=threads, inter_op_threads=threads,
                                     rewriter_config=amp_rewriter_config()))
            row_labels.insert(1, f"{labels[0]} + grappler AMP")
            row_graphs.insert(1, graphs[0])
        per_graph, source, probed = prepare_feeds(row_graphs, row_labels, feeds=feeds, feeds_source=feeds_source,
                                                  arrays=arrays,
                                                  arrays_source=arrays_source, input_shapes=input_shapes,
                                                  batch_size=batch_size, seed=seed, first_runner=runners[0])
        show(f"graphir: bench: warming up {len(runners)} model(s) on {source}")
        for r, f, lab in zip(runners, per_graph, row_labels):
            for _ in range(warmup):
                try:
                    r(f)
                except errors as e:
                    raise GraphirError(f"{lab}: cannot run on {source}: {tf_error_line(e)}") from None
        times = [[] for _ in runners]
        n = len(runners)
        start = time.perf_counter()
        rounds = 0
        while rounds < MAX_ROUNDS:
            for k in range(n):
                i = (rounds + k) % n  # rotate the starting model: no model always runs right after another
                t = time.perf_counter()
                runners[i](per_graph[i])
                times[i].append(time.perf_counter() - t)
            rounds += 1
            spent = time.perf_counter() - start
            show(f"graphir: bench: {rounds} rounds, {spent:.1f} of {seconds:g} s", min(1.0, spent / seconds))
            if spent >= seconds and rounds >= min_rounds:
                break
        spent = time.perf_counter() - start
    finally:
        for r in runners:
            r.close()
    show(f"graphir: bench: {rounds} rounds in {spent:.1f} s", final=True)
    rows = [BenchRow(lab, ts) for lab, ts in zip(row_labels, times)]
    for i, row in enumerate(rows[1:], 1):
        row.speedup, row.ci = speedup_ci(rows[0].times, row.times, seed=seed + i)
    if batch_size is None and feeds is None and arrays is None:
        batch_size = 1
    return BenchReport(rows, batch_size, threads, spent, warmup, source, probed)
