"""Accuracy-driven bf16 tuning: fall the most harmful bf16 ops back to fp32 until the criterion holds.

Search: fp32 baseline -> all-bf16 candidate -> per-op sensitivity (one op back in fp32 at a time, the
independent trials optionally in worker processes) -> greedy fallback, most harmful op first, keeping a
fallback only if it improves the metric. Every trial is appended to ``history.jsonl`` in the workspace,
keyed by its fp32 fallback set, so ``resume`` skips finished trials.

- :mod:`.search`: the criterion, the exit policy and the search strategy (:class:`Tuner`);
- :mod:`.candidates`: building and scoring one candidate, in this process or in worker processes;
- :mod:`.history`: the JSON-lines history and resume;
- :mod:`.progress`: the progress line and the final summary table.
"""
from .candidates import CandidateBuilder, precision_of, run_trial
from .history import BASELINE, History, fingerprint
from .progress import Progress, summary_table
from .search import Criterion, Policy, Tuner, TuningResult

__all__ = [
    "BASELINE", "CandidateBuilder", "Criterion", "History", "Policy", "Progress", "Tuner", "TuningResult",
    "fingerprint", "precision_of", "run_trial", "summary_table",
]
