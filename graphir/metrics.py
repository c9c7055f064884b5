"""Accuracy metrics for the tuner: top-k accuracy and MSE / RMSE / MAE, accumulated batch by batch."""
from __future__ import annotations

from typing import Union

import numpy as np

from .errors import ConfigError


class Metric:
    """``update(preds, labels)`` per batch, then ``result()``. ``higher_is_better`` says which way is up."""

    name = "metric"
    higher_is_better = True

    def reset(self) -> None:
        self._sum, self._count = 0.0, 0

    def __init__(self):
        self.reset()

    def result(self) -> float:
        if not self._count:
            raise ValueError(f"{self.name}: no samples were evaluated")
        return self._sum / self._count

    def __repr__(self):
        return self.name


def _first(preds):
    """A model with several outputs is scored on its first one (LPOT does the same)."""
    return preds[0] if isinstance(preds, (list, tuple)) else preds


class TopK(Metric):
    def __init__(self, k: int = 1):
        self.k = int(k)
        self.name = f"topk({self.k})"
        super().__init__()

    def update(self, preds, labels) -> None:
        p = np.asarray(_first(preds))
        p = p.reshape(p.shape[0], -1)
        y = np.asarray(labels)
        if y.ndim > 1 and y.shape[-1] == p.shape[-1] and y.shape[-1] > 1:
            y = y.argmax(-1)  # one-hot labels
        y = y.reshape(-1).astype(np.int64)
        if y.shape[0] != p.shape[0]:
            raise ValueError(f"{self.name}: {p.shape[0]} predictions but {y.shape[0]} labels")
        k = min(self.k, p.shape[1])
        top = np.argpartition(-p, k - 1, axis=1)[:, :k]
        self._sum += float((top == y[:, None]).any(axis=1).sum())
        self._count += y.shape[0]


class _Elementwise(Metric):
    higher_is_better = False

    def update(self, preds, labels) -> None:
        p = np.asarray(_first(preds), dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if p.size != y.size:
            raise ValueError(f"{self.name}: predictions {p.shape} and labels {y.shape} differ in size")
        self._sum += float(self._err(p.reshape(-1) - y.reshape(-1)).sum())
        self._count += p.size


class MSE(_Elementwise):
    name = "MSE"

    @staticmethod
    def _err(d):
        return d * d


class RMSE(MSE):
    name = "RMSE"

    def result(self) -> float:
        return float(np.sqrt(super().result()))


class MAE(_Elementwise):
    name = "MAE"

    @staticmethod
    def _err(d):
        return np.abs(d)


def make_metric(spec: Union[None, str, dict, Metric] = None) -> Metric:
    """``None`` (top-1), ``'topk'``, ``'MSE'``, ``{'topk': 5}``, ``{'RMSE': {}}`` or a Metric -> a fresh Metric."""
    if isinstance(spec, Metric):
        spec.reset()
        return spec
    if spec is None:
        return TopK(1)
    if isinstance(spec, str):
        spec = {spec: None}
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"metric: expected one of topk, MSE, RMSE, MAE, got {spec!r}")
    (name, arg), = spec.items()
    key = {"topk": "topk", "top1": "topk", "mse": "MSE", "rmse": "RMSE", "mae": "MAE"}.get(str(name).lower())
    if key == "topk":
        return TopK(1 if arg is None else int(arg))
    if key:
        return {"MSE": MSE, "RMSE": RMSE, "MAE": MAE}[key]()
    raise ConfigError(f"metric: unknown metric {name!r}; expected one of topk, MSE, RMSE, MAE")
