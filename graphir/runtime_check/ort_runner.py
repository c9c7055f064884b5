"""Run an onnx graph with ONNX Runtime (CPU): the onnx dialect's runner, behind ``graphir check`` and
``compile --verify`` for ONNX models."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

import numpy as np

from ..ir import Graph


def session(model, *, intra_op_threads: Optional[int] = None, prepack: bool = True, arena: bool = True):
    """An ONNX Runtime CPU session for a ModelProto (or a path), with ORT's own graph rewrites off so the
    model runs as written. ``prepack=False`` keeps ORT from repacking weights for its GEMM kernels: each
    packed weight is an anonymous copy, while unpacked external weights stay memory-mapped from their file.
    ``arena=False`` allocates without ORT's CPU memory arena, which only pays off over repeated runs."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if intra_op_threads is not None:
        opts.intra_op_num_threads = intra_op_threads
    if not arena:
        opts.enable_cpu_mem_arena = False
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_errors() -> tuple:
    """What ONNX Runtime raises for a model it cannot load or run (its own exception types)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    return tuple(getattr(ort_state, n) for n in ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented",
                                                  "RuntimeException", "NoSuchFile", "InvalidProtobuf")
                 if hasattr(ort_state, n))


class OrtRunner:
    """``OrtRunner(graph)(feeds) -> [outputs]``, like the TF :class:`~graphir.runtime_check.runner.Runner`:
    feeds are a dict keyed by input port name or a list in input order; outputs come in port order."""

    def __init__(self, graph: Graph, inputs: Optional[Sequence[str]] = None,
                 outputs: Optional[Sequence[str]] = None, *, intra_op_threads: Optional[int] = None,
                 optimize: bool = True, **_):
        """``optimize=False`` (verification: a run or two, as written) also skips weight prepacking, which
        pays off only over many runs and would hold a second, anonymous copy of every GEMM weight."""
        from ..backends.onnx import save, to_model

        self.input_names = [p.name for p in graph.inputs] if inputs is None else list(inputs)
        self.output_names = [p.name for p in graph.outputs] if outputs is None else list(outputs)
        external = _has_external(graph)
        if external:
            # Too big, or too many weights on disk, to inline: run it from a temporary model file whose
            # untouched data files are links to the originals (ORT reads them itself; nothing is copied).
            self._tmp = tempfile.TemporaryDirectory(prefix="graphir-ort-")
            path = os.path.join(self._tmp.name, "model.onnx")
            save(graph, path, link_external=True)
            self.session = session(path, intra_op_threads=intra_op_threads, prepack=optimize)
        else:
            self.session = session(to_model(graph), intra_op_threads=intra_op_threads, prepack=optimize)
        in_names = {p.name: (p.value.name if p.value.is_argument else p.name) for p in graph.inputs}
        self._feed_names = [in_names.get(n, n) for n in self.input_names]

    def _feeds(self, feeds) -> dict:
        if isinstance(feeds, dict):
            missing = [n for n in self.input_names if n not in feeds]
            if missing:
                raise ValueError(f"missing feeds for inputs {missing}")
            return {f: np.asarray(feeds[n]) for n, f in zip(self.input_names, self._feed_names)}
        feeds = list(feeds)
        if len(feeds) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs, got {len(feeds)}")
        return {f: np.asarray(a) for f, a in zip(self._feed_names, feeds)}

    def __call__(self, feeds) -> list:
        return self.session.run(self.output_names, self._feeds(feeds))

    def close(self) -> None:
        self.session = None


def _has_external(graph: Graph) -> bool:
    from ..backends.onnx import _is_external, _tensors

    return any(t.encoded is not None and t.encoded[0] == "onnx" and _is_external(t.encoded[1])
               for t in _tensors(graph))
