"""Accuracy-driven bf16 tuning: fall the most harmful bf16 ops back to fp32 until the criterion holds.

Search: fp32 baseline -> all-bf16 candidate -> per-op sensitivity (one op back in fp32 at a time, the
independent trials optionally in worker processes) -> greedy fallback, most harmful op first, keeping a
fallback only if it improves the metric. Every trial is appended to ``history.jsonl`` in the workspace,
keyed by its fp32 fallback set, so ``resume`` skips finished trials.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .errors import ConfigError, GraphirError
from .ir import DType

BASELINE = "baseline"
_BF16 = DType.get("bf16")
_F32 = DType.get("f32")


# ---------------------------------------------------------------------------------------------- policy
@dataclass
class Criterion:
    """Allowed metric loss versus the fp32 baseline: ``relative`` (fraction) or ``absolute``."""

    relative: Optional[float] = 0.01
    absolute: Optional[float] = None
    higher_is_better: bool = True

    def loss(self, baseline: float, value: float) -> float:
        return baseline - value if self.higher_is_better else value - baseline

    def met(self, baseline: float, value: float) -> bool:
        if value is None or not np.isfinite(value):
            return False
        allowed = self.absolute if self.absolute is not None else self.relative * abs(baseline)
        return self.loss(baseline, value) <= allowed + 1e-12

    def better(self, a: float, b: Optional[float]) -> bool:
        """Is metric ``a`` strictly better than ``b``?"""
        if b is None or not np.isfinite(b):
            return np.isfinite(a)
        return a > b if self.higher_is_better else a < b

    def text(self) -> str:
        amount = f"absolute {self.absolute:g}" if self.absolute is not None else f"relative {self.relative:.2%}"
        return f"{amount} loss allowed, {'higher' if self.higher_is_better else 'lower'} is better"


@dataclass
class Policy:
    criterion: Criterion = field(default_factory=Criterion)
    timeout: float = 0.0          # seconds; 0 = stop at the first candidate that meets the criterion
    max_trials: int = 100         # candidate models evaluated (the fp32 baseline is not a candidate)
    random_seed: int = 1978
    workspace: str = "graphir_workspace"
    resume: Any = False           # True, or the path of a history file to continue from
    workers: int = 1
    progress: bool = True


# ---------------------------------------------------------------------------------------------- candidates
def precision_of(model) -> tuple[list[str], list[str]]:
    """(bf16 node names, fp32 node names) of a compiled model: nodes computing float values, excluding
    Casts, constants and graph inputs, classified by their float output dtype."""
    bf16, fp32 = [], []
    for n in model.ir.topo_order():
        if n.op_type == "Cast" or n.info.source or n.const_value() is not None:
            continue
        floats = [v.dtype.base for v in n.outputs if v.dtype.is_float]
        if _BF16 in floats:
            bf16.append(n.name)
        elif _F32 in floats:
            fp32.append(n.name)
    return bf16, fp32


class CandidateBuilder:
    """Compiles the candidate for a set of nodes forced to fp32. Picklable: a worker process rebuilds
    the graph from the model path or from the graph's text form, never from live TF objects."""

    def __init__(self, graph, compile_kwargs: dict, model_path: Optional[str] = None,
                 inputs=None, outputs=None):
        self._graph = graph
        self.compile_kwargs = dict(compile_kwargs)
        self.model_path, self.inputs, self.outputs = model_path, inputs, outputs
        self._text = None
        self.pinned_bf16: tuple = ()  # the all-bf16 candidate's bf16 compute nodes, see pin_bf16()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["compile_kwargs"] = {k: v for k, v in self.compile_kwargs.items() if k != "log"}  # a stream
        if self.model_path is None and self._text is None:
            state["_text"] = self._graph.text(full_constants=True)
        state["_graph"] = None
        return state

    @property
    def graph(self):
        if self._graph is None:
            from .frontends import load

            if self._text is not None:
                from .ir.parser import parse

                self._graph = parse(self._text)
            else:
                self._graph = load(self.model_path, self.inputs, self.outputs)
        return self._graph

    def build(self, fallback=(), **overrides):
        from .compiler import compile as compile_model

        kw = {**self.compile_kwargs, **overrides}
        kw["fp32_ops"] = list(kw.get("fp32_ops") or []) + sorted(fallback)
        if fallback and self.pinned_bf16:
            # A trial is the all-bf16 candidate minus the fallbacks: pinning its other compute nodes by name
            # keeps the cost model from dropping a region that one fallback made look small. Follow and
            # clear nodes stay free, so the cut still places the fewest casts around the fallback.
            kw["bf16_ops"] = list(kw.get("bf16_ops") or []) + sorted(set(self.pinned_bf16) - set(fallback))
        return compile_model(self.graph, **kw)

    def pin_bf16(self, bf16_nodes) -> None:
        from .dialects.tf_precision import precision_class

        g = self.graph
        self.pinned_bf16 = tuple(n for n in bf16_nodes
                                 if n in g and precision_class(g.node(n).op_type) == "compute")

    def baseline(self):
        from .compiler import OptimizedModel

        return OptimizedModel(self.graph, self.graph, {"precisions": ["fp32"]})


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)


def run_trial(builder: CandidateBuilder, evaluate: Callable, fallback, seed: int, keep_model=False) -> dict:
    """Build and score one candidate (``fallback`` None = the fp32 baseline)."""
    t0 = time.perf_counter()
    try:
        model = builder.baseline() if fallback is None else builder.build(fallback)
    except GraphirError as e:
        if not fallback:
            raise
        # e.g. a node name the bf16 pass never sees (renamed by a later pass): not a usable fallback
        return {"error": str(e)}
    bf16 = [] if fallback is None else precision_of(model)[0]
    _seed(seed)
    metric = float(evaluate(model))
    out = {"metric": metric, "bf16_ops": bf16, "seconds": time.perf_counter() - t0}
    if keep_model:
        out["model"] = model
    return out


_WORKER: dict = {}


def _worker_init(builder, evaluate):
    from .quiet import import_tf_quietly

    import_tf_quietly()
    _WORKER["builder"], _WORKER["evaluate"] = builder, evaluate


def _worker_trial(fallback, seed):
    return run_trial(_WORKER["builder"], _WORKER["evaluate"], fallback, seed)


# ---------------------------------------------------------------------------------------------- workspace
def _key(fallback) -> str:
    return BASELINE if fallback is None else json.dumps(sorted(fallback))


class History:
    """``history.jsonl``: a header line with the search's fingerprint, then one line per trial."""

    def __init__(self, workspace: str, fingerprint: str, resume, log):
        self.path = resume if isinstance(resume, str) else os.path.join(workspace, "history.jsonl")
        self.fingerprint = fingerprint
        self.records: dict[str, dict] = {}
        self.next_id = 1
        loaded = False
        if resume and os.path.exists(self.path):
            loaded = self._load(log)
        elif isinstance(resume, str):
            raise ConfigError(f"tuning.workspace.resume: {resume}: no such history file")
        if not loaded:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(json.dumps({"graphir_history": 1, "fingerprint": fingerprint}) + "\n")

    def _load(self, log) -> bool:
        lines = []
        with open(self.path, encoding="utf-8") as f:
            for s in f:
                try:
                    lines.append(json.loads(s))
                except ValueError:  # a line cut short by an interrupted run: that trial runs again
                    continue
        if not lines or lines[0].get("fingerprint") != self.fingerprint:
            print(f"graphir: warning: {self.path} holds the history of a different model or config; "
                  f"starting a new one", file=log)
            return False
        for rec in lines[1:]:
            self.records[rec["key"]] = rec
            self.next_id = max(self.next_id, rec["trial"] + 1)
        return True

    def add(self, rec: dict) -> dict:
        rec = {"trial": self.next_id, **rec}
        self.next_id += 1
        self.records[rec["key"]] = rec
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        return rec


def fingerprint(graph, compile_kwargs: dict, evaluation: str) -> str:
    h = hashlib.sha256(graph.text().encode())
    h.update(json.dumps({k: v for k, v in compile_kwargs.items() if k != "log"}, sort_keys=True,
                        default=str).encode())
    h.update(evaluation.encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- progress
class Progress:
    """A one-line text bar on a tty (redrawn in place), otherwise one line per trial."""

    def __init__(self, stream, total: Optional[int] = None, enabled: bool = True):
        self.stream, self.total, self.enabled = stream, total, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._open = False

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        width = 20
        if self.total:
            self.total = max(self.total, done)
            fill = int(width * done / self.total)
        else:
            fill = 0
        line = f"tuning [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total or '?'} {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


# ---------------------------------------------------------------------------------------------- tuner
@dataclass
class TuningResult:
    model: Any
    baseline: float
    best: dict
    met: bool
    trials: int
    cached: int
    seconds: float
    bf16_candidates: list
    history_path: str
    stop_reason: str

    def summary(self) -> dict:
        return {
            "baseline": self.baseline, "metric": self.best["metric"], "met": self.met,
            "fp32_fallbacks": list(self.best["fp32_ops"]), "bf16_ops": list(self.best["bf16_ops"]),
            "trials": self.trials, "trials_from_history": self.cached, "seconds": round(self.seconds, 3),
            "history": self.history_path, "stop_reason": self.stop_reason,
        }


class _Stop(Exception):
    pass


class Tuner:
    def __init__(self, builder: CandidateBuilder, evaluate: Callable, policy: Policy, *,
                 fingerprint: str = "", metric_name: str = "metric", exclude=(), log=None):
        self.builder, self.evaluate, self.policy = builder, evaluate, policy
        self.crit = policy.criterion
        self.metric_name = metric_name
        self.exclude = set(exclude)     # node names the user pinned to bf16: never fall back
        self.log = log or sys.stderr
        self.fingerprint = fingerprint
        self.workers = self._usable_workers(policy.workers)

    def _usable_workers(self, n: int) -> int:
        if n <= 1:
            return 1
        try:
            pickle.dumps(self.evaluate)
        except Exception as e:  # lambdas, closures, bound methods of unpicklable objects
            why = re.sub(r" at 0x[0-9a-f]+", "", " ".join(str(e).split()))  # no addresses in messages
            print(f"graphir: warning: the evaluation function cannot be sent to worker processes "
                  f"({type(e).__name__}: {why}); define it at module level, or use workers=1. Running the "
                  f"trials in one process", file=self.log)
            return 1
        return n

    # -------------------------------------------------------------- bookkeeping
    def _budget_left(self) -> int:
        return self.policy.max_trials - self.trials

    def _time_up(self) -> bool:
        return self.policy.timeout > 0 and time.perf_counter() - self.t0 >= self.policy.timeout

    def _check(self) -> None:
        if self._budget_left() <= 0:
            raise _Stop("max_trials reached")
        if self._time_up():
            raise _Stop("timeout reached")

    def _record(self, fallback, phase: str, res: dict) -> dict:
        meets = fallback is not None and self.crit.met(self.baseline, res["metric"])
        rec = self.history.add({
            "key": _key(fallback), "phase": phase,
            "fp32_ops": None if fallback is None else sorted(fallback),
            "bf16_ops": res["bf16_ops"], "metric": res["metric"], "meets": meets,
            "seconds": round(res["seconds"], 4), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        return rec

    def _note(self, rec: dict, cached: bool) -> None:
        if rec["phase"] == BASELINE:
            return
        if rec["phase"] == "all-bf16":  # now the search size is known: all-bf16 + sensitivity + greedy
            self.bar.total = min(self.policy.max_trials, 1 + 2 * len(rec["bf16_ops"]))
        self.trials += 1
        self.cached += cached
        if self.best is None or self._rank(rec) < self._rank(self.best):
            self.best, self.best_model = rec, None
        fb = ", ".join(rec["fp32_ops"]) or "none"
        status = "meets" if rec["meets"] else "misses"
        self.bar.update(self.trials, f"{self.metric_name}={rec['metric']:.4g} ({status}; fp32: "
                                     f"{fb if len(fb) < 40 else fb[:37] + '...'}){' [history]' if cached else ''}")

    def _rank(self, rec: dict):
        m = rec["metric"]
        score = -m if self.crit.higher_is_better else m
        return (not rec["meets"], len(rec["fp32_ops"]) if rec["meets"] else 0,
                score if np.isfinite(score) else float("inf"), rec["trial"])

    def trial(self, fallback, phase: str) -> dict:
        """One trial, from the history when it was already run."""
        key = _key(fallback)
        if key in self.seen:  # already counted in this run (a single fallback reached again greedily)
            return self.history.records[key]
        if fallback is not None and phase != "all-bf16":  # the all-bf16 candidate always runs
            self._check()
        self.seen.add(key)
        rec = self.history.records.get(key)
        if rec is not None:
            if key == BASELINE:
                self.baseline = rec["metric"]
            else:  # the criterion may have changed since that run
                rec = self.history.records[key] = dict(rec, meets=self.crit.met(self.baseline, rec["metric"]))
            self._note(rec, cached=True)
            return rec
        res = run_trial(self.builder, self.evaluate, fallback, self.policy.random_seed, keep_model=True)
        if "error" in res:
            return self._unusable(fallback, res)
        model = res.pop("model")
        if fallback is None:
            self.baseline = res["metric"]
        rec = self._record(fallback, phase, res)
        self._note(rec, cached=False)
        if self.best is rec:  # keep only the best model alive (each holds a TF session)
            self.best_model = model
        return rec

    def _unusable(self, fallback, res: dict) -> None:
        print(f"graphir: warning: skipping fallback {', '.join(sorted(fallback))}: {res['error']}", file=self.log)
        return None

    def _early_exit(self, rec: Optional[dict]) -> None:
        if rec is not None and rec["meets"] and self.policy.timeout == 0:
            raise _Stop("first candidate meeting the criterion (timeout 0)")

    # -------------------------------------------------------------- search
    def run(self) -> TuningResult:
        self.t0 = time.perf_counter()
        self.trials = self.cached = 0
        self.best: Optional[dict] = None
        self.best_model = None
        self.seen: set[str] = set()
        self.history = History(self.policy.workspace, self.fingerprint, self.policy.resume, self.log)
        self.bar = Progress(self.log, None, self.policy.progress)
        candidates: list[str] = []
        stop_reason = "search finished"
        try:
            self.trial(None, BASELINE)
            full = self.trial(frozenset(), "all-bf16")
            self.builder.pin_bf16(full["bf16_ops"])
            candidates = self._fallback_candidates(full)
            if not full["bf16_ops"]:  # e.g. the cost model found bf16 unprofitable everywhere
                raise _Stop("the bf16 candidate has no op in bf16 (see --explain): nothing to tune")
            if full["meets"]:
                raise _Stop("all-bf16 candidate meets the criterion")
            if not candidates:
                raise _Stop("no bf16 op to fall back")
            singles = self._sensitivity(candidates)
            self._greedy(full, candidates, singles)
        except _Stop as e:
            stop_reason = str(e)
        finally:
            self.bar.close()
        return self._finish(stop_reason, candidates)

    def _fallback_candidates(self, full: dict) -> list[str]:
        # Only a bf16 pin by node name is binding; a pin by op type is a default that the tuner's
        # per-node fp32 fallback overrides (names beat op types in the bf16 pass too).
        return [n for n in full["bf16_ops"] if n not in self.exclude]

    def _sensitivity(self, candidates: list[str]) -> dict[str, dict]:
        singles: dict[str, dict] = {}
        cached = [op for op in candidates if _key(frozenset([op])) in self.history.records]
        todo = [op for op in candidates if op not in cached]
        for op in cached + ([] if self.workers > 1 and len(todo) > 1 else todo):
            rec = self.trial(frozenset([op]), "sensitivity")
            if rec is not None:
                singles[op] = rec
                self._early_exit(rec)
        if self.workers > 1 and len(todo) > 1:
            self._parallel(todo, singles)
        return singles

    def _parallel(self, todo: list[str], singles: dict) -> None:
        import multiprocessing

        from .quiet import quiet_environment

        quiet_environment()  # spawned workers inherit it: no TF start-up noise from each of them
        self._check()
        todo = todo[:self._budget_left()]
        seed = self.policy.random_seed
        # spawn: forking a process that has started TensorFlow's thread pools can deadlock.
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(todo)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(self.builder, self.evaluate))
        stop = None
        try:
            pending = {pool.submit(_worker_trial, frozenset([op]), seed): op for op in todo}
            while pending:
                done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    op = pending.pop(fut)
                    self.seen.add(_key(frozenset([op])))
                    res = fut.result()
                    if "error" in res:
                        self._unusable(frozenset([op]), res)
                        continue
                    singles[op] = rec = self._record(frozenset([op]), "sensitivity", res)
                    self._note(rec, cached=False)
                    if rec["meets"] and self.policy.timeout == 0 and stop is None:
                        stop = _Stop("first candidate meeting the criterion (timeout 0)")
                if stop is None and self._time_up():
                    stop = _Stop("timeout reached")
                if stop is not None:
                    for f in pending:
                        f.cancel()
                    pending = {f: op for f, op in pending.items() if not f.cancelled()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if stop is not None:
            raise stop

    def _greedy(self, full: dict, candidates: list[str], singles: dict[str, dict]) -> None:
        sign = -1 if self.crit.higher_is_better else 1
        order = sorted((op for op in candidates if op in singles),
                       key=lambda op: (sign * singles[op]["metric"], candidates.index(op)))
        current, cur_metric = frozenset(), full["metric"]
        for op in order:
            rec = self.trial(current | {op}, "fallback")
            if rec is None:
                continue
            if self.crit.better(rec["metric"], cur_metric):
                current, cur_metric = current | {op}, rec["metric"]
            if rec["meets"]:
                raise _Stop("criterion met")

    def _finish(self, stop_reason: str, candidates: list[str]) -> TuningResult:
        best = self.best
        model = self.best_model
        if model is None:  # scored in a worker or in an earlier run: rebuild (compiling is deterministic)
            model = self.builder.build(frozenset(best["fp32_ops"]))
        return TuningResult(model, self.baseline, best, bool(best["meets"]), self.trials, self.cached,
                            time.perf_counter() - self.t0, candidates, self.history.path, stop_reason)


def format_table(result: TuningResult, metric_name: str, crit: Criterion) -> str:
    best = result.best
    bf16, fp32 = precision_of(result.model)
    rows = [
        ("", "fp32 baseline", "best candidate"),
        (metric_name, f"{result.baseline:.6g}",
         f"{best['metric']:.6g} ({'meets' if result.met else 'MISSES'} the criterion)"),
        ("ops bf16 / fp32", f"0 / {len(bf16) + len(fp32)}", f"{len(bf16)} / {len(fp32)}"),
        ("fp32 fallbacks", "-", ", ".join(best["fp32_ops"]) or "none"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"graphir: tuning summary ({metric_name}; {crit.text()})"]
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
    cached = f", {result.cached} from history" if result.cached else ""
    lines.append(f"  {'trials':<{w0}}  {result.trials}{cached} in {result.seconds:.1f} s; {result.stop_reason}")
    return "\n".join(lines)
