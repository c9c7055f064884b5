"""Evaluation data: batches of (inputs, labels) from ``.npz`` / ``.npy`` files."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from .errors import ConfigError


class NpzDataLoader:
    """Iterate ``(inputs, labels)`` batches over arrays from a ``.npz`` (keys ``inputs``/``labels``) or an
    ``.npy`` of inputs plus an ``.npy`` of labels. ``inputs`` is one array, or a tuple for multi-input
    models. Holds plain arrays, so it pickles to worker processes."""

    def __init__(self, path, batch_size: int = 1, inputs: Union[str, Sequence[str]] = "x",
                 labels: str = "y", limit: Optional[int] = None):
        path = os.fspath(path)
        self.path, self.batch_size = path, int(batch_size)
        keys = [inputs] if isinstance(inputs, str) else list(inputs)
        if not os.path.exists(path):
            raise ConfigError(f"dataset.path: {path}: no such file")
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                for k in keys + [labels]:
                    if k not in z.files:
                        raise ConfigError(f"dataset: {path} has no array {k!r} (it has {', '.join(z.files)})")
                self.x = [z[k] for k in keys]
                self.y = z[labels]
        elif path.endswith(".npy"):
            if not labels.endswith(".npy") or not os.path.exists(labels):
                raise ConfigError(f"dataset.labels: an .npy dataset needs labels: <file>.npy (got {labels!r})")
            self.x = [np.load(path, allow_pickle=False)]
            self.y = np.load(labels, allow_pickle=False)
        else:
            raise ConfigError(f"dataset.path: {path}: expected an .npz or .npy file")
        n = len(self.y)
        if any(len(a) != n for a in self.x):
            raise ConfigError(f"dataset: {path}: inputs and labels have different lengths")
        if limit:
            self.x, self.y = [a[:limit] for a in self.x], self.y[:limit]

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __iter__(self):
        for s in range(0, len(self.y), self.batch_size):
            xs = tuple(a[s:s + self.batch_size] for a in self.x)
            yield (xs[0] if len(xs) == 1 else xs), self.y[s:s + self.batch_size]


def evaluate(model, dataloader, metric) -> float:
    """Run ``model`` (an OptimizedModel or any callable on numpy inputs) over ``dataloader`` and score it."""
    metric.reset()
    for batch in dataloader:
        inputs, labels = batch
        if isinstance(inputs, dict):
            preds = model(**{k: np.asarray(v) for k, v in inputs.items()})
        elif isinstance(inputs, (tuple, list)):
            preds = model(*[np.asarray(v) for v in inputs])
        else:
            preds = model(np.asarray(inputs))
        metric.update(preds, np.asarray(labels))
    return float(metric.result())
