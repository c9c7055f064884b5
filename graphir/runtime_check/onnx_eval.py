"""Evaluate constant sub-graphs of an onnx graph: ONNX Runtime's kernels first, the onnx package's
reference evaluator (``onnx.reference.ReferenceEvaluator``) for what ORT has no kernel for."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import describe
from ..ir import Graph, Node, Port, Value
from ..ir.dialect import EvaluationError


# Constants from this many bytes up are fed to the evaluation as inputs, not serialized into its model.
FEED_MIN_BYTES = 1 << 20


def _feedable(t) -> bool:
    """A large constant ONNX Runtime can take as a numpy input (no ml_dtypes element type)."""
    return t.nbytes >= FEED_MIN_BYTES and t.dtype.np is not None and np.dtype(t.dtype.np).type.__module__ == "numpy"


def extract(graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value], feeds: Optional[dict] = None) -> Graph:
    """A graph of copies of ``nodes`` whose outputs are ``fetches``; the initializers they read come along.
    Given a ``feeds`` dict, large initializers become inputs instead, their arrays put into ``feeds``."""
    sub = Graph(graph.name)
    sub.opset_imports = dict(graph.opset_imports)
    sub.attrs = {k: v for k, v in graph.attrs.items() if k in ("onnx.ir_version", "onnx.functions",
                                                                 "onnx.opset_order")}
    vmap: dict[int, Value] = {}

    def get(v):
        if v is None:
            return None
        w = vmap.get(id(v))
        if w is None:
            if v.const is None:
                raise EvaluationError(f"{v.name!r} is not a constant")
            if feeds is not None and _feedable(v.const):
                w = vmap[id(v)] = sub.add_argument(v.name, v.type)
                sub.inputs = list(sub.inputs) + [Port(v.name, w)]
                feeds[v.name] = v.const.numpy()
            else:
                w = vmap[id(v)] = sub.add_initializer(v.name, v.const, v.type)
        return w

    for n in nodes:
        m = sub.add_node(n.op_type, [get(v) for v in n.inputs], dict(n.attrs), [v.type for v in n.outputs],
                         domain=n.domain, name=n.name, unique=False, output_names=[v._name for v in n.outputs])
        m.meta = {k: v for k, v in n.meta.items() if k.startswith("onnx.")}
        for a, b in zip(n.outputs, m.outputs):
            vmap[id(a)] = b
    sub.outputs = [Port(f"out{i}", vmap[id(v)]) for i, v in enumerate(fetches)]
    return sub


def _as(a, v: Value) -> np.ndarray:
    """ORT hands some element types back as their storage (bf16 as uint16, ...): view them as the IR's."""
    a = np.asarray(a)
    want = v.dtype.np
    if want is None or a.dtype == want:
        return a
    if a.dtype.itemsize == want.itemsize and a.dtype.kind in "uiV" and want.kind not in "uib":
        return a.view(want)
    return a.astype(want)


def evaluate(graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value]) -> list[np.ndarray]:
    """Values of ``fetches``, computed from ``nodes`` (topologically ordered, closed under inputs)."""
    if not fetches:
        return []
    from ..backends.onnx import to_model
    from .ort_runner import session

    # Large constants (memory-mapped weights, often) are fed as arrays: serializing them into the model
    # would copy each several times, and past 2 GB protobuf cannot hold them at all.
    feeds: dict = {}
    model = to_model(extract(graph, nodes, fetches, feeds))
    names = [o.name for o in model.graph.output]
    try:
        # One run: growing ORT's memory arena to the size of all the fetched values would cost more than
        # the allocations it saves (a model's worth of weight fills, say).
        outs = session(model, intra_op_threads=1, arena=False).run(names, feeds)
    except Exception as ort_error:  # ORT raises its own exception types for missing kernels
        try:
            from onnx.reference import ReferenceEvaluator

            outs = ReferenceEvaluator(model).run(names, feeds)
        except Exception as e:
            raise EvaluationError(f"onnxruntime: {describe(ort_error, 150)}; reference: {describe(e, 150)}") from e
    return [_as(a, v) for a, v in zip(outs, fetches)]
