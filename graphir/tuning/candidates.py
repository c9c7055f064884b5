"""Candidates: compile the model with a set of nodes forced to fp32 and score it, here or in a worker process."""
from __future__ import annotations

import multiprocessing
import pickle
import random
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional

import numpy as np

from ..compiler import OptimizedModel
from ..compiler import compile as compile_model
from ..errors import GraphirError, describe, one_line
from ..ir import DType

_BF16 = DType.get("bf16")
_F32 = DType.get("f32")


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
            if self._text is not None:
                from ..ir.parser import parse

                self._graph = parse(self._text)
            else:
                from ..frontends import load

                self._graph = load(self.model_path, self.inputs, self.outputs)
        return self._graph

    def build(self, fallback=(), **overrides):
        kw = {**self.compile_kwargs, **overrides}
        kw["fp32_ops"] = list(kw.get("fp32_ops") or []) + sorted(fallback)
        if fallback and self.pinned_bf16:
            # A trial is the all-bf16 candidate minus the fallbacks: pinning its other compute nodes by name
            # keeps the cost model from dropping a region that one fallback made look small. Follow and
            # clear nodes stay free, so the cut still places the fewest casts around the fallback.
            kw["bf16_ops"] = list(kw.get("bf16_ops") or []) + sorted(set(self.pinned_bf16) - set(fallback))
        return compile_model(self.graph, **kw)

    def pin_bf16(self, bf16_nodes) -> None:
        from ..dialects.tf_precision import precision_class

        g = self.graph
        self.pinned_bf16 = tuple(n for n in bf16_nodes
                                 if n in g and precision_class(g.node(n).op_type) == "compute")

    def baseline(self):
        return OptimizedModel(self.graph, self.graph, {"precisions": ["fp32"]})


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)


def run_trial(builder: CandidateBuilder, evaluate: Callable, fallback, seed: int, keep_model=False) -> dict:
    """Build and score one candidate (``fallback`` None = the fp32 baseline). A fallback set the compiler
    rejects gives ``{"error": message}``; the baseline and the all-bf16 candidate must compile."""
    t0 = time.perf_counter()
    try:
        model = builder.baseline() if fallback is None else builder.build(fallback)
    except GraphirError as e:
        if not fallback:
            raise
        # e.g. a node name the bf16 pass never sees (renamed by a later pass): not a usable fallback
        return {"error": one_line(e)}
    bf16 = [] if fallback is None else precision_of(model)[0]
    _seed(seed)
    metric = float(evaluate(model))
    out = {"metric": metric, "bf16_ops": bf16, "seconds": time.perf_counter() - t0}
    if keep_model:
        out["model"] = model
    return out


# ---------------------------------------------------------------------------------------------- workers
def unpicklable(evaluate) -> Optional[str]:
    """Why ``evaluate`` cannot be sent to a worker process, or None when it can."""
    try:
        pickle.dumps(evaluate)
    except Exception as e:  # pickling runs the user's own __reduce__/__getstate__, which may raise anything
        return describe(e)
    return None


_WORKER: dict = {}


def _worker_init(builder, evaluate):
    from ..quiet import import_tf_quietly

    import_tf_quietly()
    _WORKER["builder"], _WORKER["evaluate"] = builder, evaluate


def worker_trial(fallback, seed) -> dict:
    """:func:`run_trial` in a worker process started by :func:`worker_pool`."""
    return run_trial(_WORKER["builder"], _WORKER["evaluate"], fallback, seed)


def worker_pool(builder: CandidateBuilder, evaluate: Callable, workers: int) -> ProcessPoolExecutor:
    """Processes that score candidates: ``pool.submit(worker_trial, fallback, seed)``."""
    from ..quiet import quiet_environment

    quiet_environment()  # spawned workers inherit it: no TF start-up noise from each of them
    # spawn: forking a process that has started TensorFlow's thread pools can deadlock.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(builder, evaluate))
