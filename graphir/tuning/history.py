"""The tuning history: ``history.jsonl`` in the workspace, one line per trial, which ``resume`` reads back."""
from __future__ import annotations

import hashlib
import json
import os

from ..errors import ConfigError

BASELINE = "baseline"


def trial_key(fallback) -> str:
    """A trial's key in the history: its sorted fp32 fallback set (None = the fp32 baseline)."""
    return BASELINE if fallback is None else json.dumps(sorted(fallback))


def fingerprint(graph, compile_kwargs: dict, evaluation: str) -> str:
    """What a history is valid for: the model, the compile options and the evaluation."""
    h = hashlib.sha256(graph.text().encode())
    h.update(json.dumps({k: v for k, v in compile_kwargs.items() if k != "log"}, sort_keys=True,
                        default=str).encode())
    h.update(evaluation.encode())
    return h.hexdigest()[:16]


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
