"""Measured profitability: time the fp32 and bf16 graphs, interleaved, with the dialect's runner."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

from ..ir import Graph
from ..ir.dialect import graph_dialect
from ..runtime_check.runner import random_inputs

MEASURE_BATCH = 8
# Measured fp32/bf16 latency ratio below which bf16 is dropped: timing noise must not ship a slower graph.
MIN_MEASURED_SPEEDUP = 1.02
CLOCK: Callable[[], float] = time.perf_counter  # replaced by a stub clock in tests


def measure_speedup(fp32_graph: Graph, bf16_graph: Graph, max_runs: int = 50, min_s: float = 0.3,
                    budget_s: float = 1.5, batch: int = MEASURE_BATCH) -> Optional[float]:
    """fp32 median / bf16 median latency on random inputs (unknown dims = ``batch``): interleaved runs,
    at least 7 and ``min_s`` seconds (fast graphs are noisy), at most ``max_runs`` or ``budget_s`` (but 3
    runs); None if the graphs cannot run here."""
    clock = CLOCK
    d = graph_dialect(fp32_graph)
    ra = rb = None
    try:
        try:
            ra, rb = d.runner(fp32_graph), d.runner(bf16_graph)
            feeds = random_inputs(fp32_graph, dim=batch)
            ra(feeds), rb(feeds)   # warm-up: grappler, oneDNN primitive creation
        except d.run_errors():
            # Graphs this machine cannot run on random inputs (no kernel, sizes the model rejects): no
            # measurement; the cost model has already decided.
            return None
        ta, tb = [], []
        start = clock()
        while len(ta) < max_runs:
            for r, acc in ((ra, ta), (rb, tb)):
                t = clock()
                r(feeds)
                acc.append(clock() - t)
            spent = clock() - start
            if spent > budget_s and len(ta) >= 3 or spent > min_s and len(ta) >= 7:
                break
        return statistics.median(ta) / max(statistics.median(tb), 1e-12)
    finally:
        for r in (ra, rb):
            if r is not None:
                r.close()
