"""The search: which candidates to score, in what order, and when to stop.

fp32 baseline -> all-bf16 candidate -> sensitivity (each bf16 op alone back in fp32) -> greedy fallback,
most harmful op first, keeping a fallback only if it improves the metric. The exit policy: ``max_trials``
candidates, a ``timeout`` budget, or (timeout 0) the first candidate that meets the criterion.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .candidates import CandidateBuilder, run_trial, unpicklable, worker_pool, worker_trial
from .history import BASELINE, History, trial_key
from .progress import Progress, trial_text

# The tuner's clock for the timeout (a module attribute, so tests can run the search on a clock of their own).
clock = time.perf_counter


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
        why = unpicklable(self.evaluate)  # lambdas, closures, bound methods of unpicklable objects
        if why is None:
            return n
        print(f"graphir: warning: the evaluation function cannot be sent to worker processes ({why}); "
              f"define it at module level, or use workers=1. Running the trials in one process", file=self.log)
        return 1

    # -------------------------------------------------------------- bookkeeping
    def _budget_left(self) -> int:
        return self.policy.max_trials - self.trials

    def _time_up(self) -> bool:
        return self.policy.timeout > 0 and clock() - self.t0 >= self.policy.timeout

    def _check(self) -> None:
        if self._budget_left() <= 0:
            raise _Stop("max_trials reached")
        if self._time_up():
            raise _Stop("timeout reached")

    def _record(self, fallback, phase: str, res: dict) -> dict:
        meets = fallback is not None and self.crit.met(self.baseline, res["metric"])
        rec = self.history.add({
            "key": trial_key(fallback), "phase": phase,
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
        self.bar.update(self.trials, trial_text(rec, self.metric_name, cached))

    def _rank(self, rec: dict):
        m = rec["metric"]
        score = -m if self.crit.higher_is_better else m
        return (not rec["meets"], len(rec["fp32_ops"]) if rec["meets"] else 0,
                score if np.isfinite(score) else float("inf"), rec["trial"])

    def trial(self, fallback, phase: str) -> Optional[dict]:
        """One trial, from the history when it was already run; None when the fallback is unusable."""
        key = trial_key(fallback)
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
        self.t0 = clock()
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
        cached = [op for op in candidates if trial_key(frozenset([op])) in self.history.records]
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
        self._check()
        todo = todo[:self._budget_left()]
        seed = self.policy.random_seed
        pool = worker_pool(self.builder, self.evaluate, min(self.workers, len(todo)))
        stop = None
        try:
            pending = {pool.submit(worker_trial, frozenset([op]), seed): op for op in todo}
            while pending:
                done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    op = pending.pop(fut)
                    self.seen.add(trial_key(frozenset([op])))
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
                            clock() - self.t0, candidates, self.history.path, stop_reason)
