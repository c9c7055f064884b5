"""Evaluate constant sub-graphs with TensorFlow's own kernels.

Kernels run eagerly, one TF op call per node (no graph import or session set-up, which costs more than
the folding itself on typical models). Nodes with attributes eager execution cannot take (functions,
tensors) make the whole batch run as one sub-graph in one TF1 session instead.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from ..ir import Graph, Node, Port, Value
from ..ir.dialect import EvaluationError


class _NotEager(Exception):
    pass


def extract(graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value]) -> Graph:
    """A new graph holding copies of ``nodes`` (in topological order, closed under inputs)."""
    sub = Graph(graph.name)
    sub.attrs = dict(graph.attrs)
    for n in nodes:
        # Colocation hints may name nodes outside the sub-graph, which TF's importer rejects.
        attrs = {k: v for k, v in n.attrs.items() if k != "_class"}
        sub.add_node(n.op_type, [sub.node(v.node.name).outputs[v.index] for v in n.inputs], attrs,
                     [v.type for v in n.outputs], name=n.name, domain=n.domain, device=n.device,
                     control_inputs=[sub.node(c.name) for c in n.control_inputs], unique=False)
    sub.outputs = [Port(v.name, sub.node(v.node.name).outputs[v.index]) for v in fetches]
    return sub


def evaluate(graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value]) -> list[np.ndarray]:
    """Values of ``fetches``, computed by TF from ``nodes`` (topologically ordered, holding their ancestors)."""
    if not fetches:
        return []
    import tensorflow as tf

    if tf.executing_eagerly():
        try:
            return _evaluate_eager(nodes, fetches)
        except (_NotEager, tf.errors.OpError, TypeError, ValueError):
            pass
    try:
        return _evaluate_session(graph, nodes, fetches)
    except (tf.errors.OpError, TypeError, ValueError) as e:
        # TF raises these for graphs it cannot run here (no kernel, bad attr for this build): the caller's
        # problem to report, not a crash.
        raise EvaluationError(f"{type(e).__name__}: {e}") from e


@lru_cache(maxsize=None)
def _attr_types(op: str) -> dict:
    from tensorflow.python.framework import op_def_registry

    od = op_def_registry.get(op)
    if od is None:
        raise _NotEager(op)
    return {a.name: a.type for a in od.attr}


def _attr(v, kind: str):
    from ..dialects.tf_opdefs import dtype_to_tf
    from ..ir import DType, Shape

    def shape(s):
        return None if s.dims is None else [-1 if d is None else d for d in s.dims]

    if kind == "type" and isinstance(v, DType):
        return dtype_to_tf(v)
    if kind == "list(type)":
        return [dtype_to_tf(x) for x in v]
    if kind == "shape" and isinstance(v, Shape):
        return shape(v)
    if kind == "list(shape)":
        return [shape(x) for x in v]
    if kind in ("string", "list(string)"):
        enc = (lambda x: x.encode() if isinstance(x, str) else x)
        return enc(v) if kind == "string" else [enc(x) for x in v]
    if kind in ("int", "float", "bool", "list(int)", "list(float)", "list(bool)"):
        return v
    raise _NotEager(kind)


def _evaluate_eager(nodes: Sequence[Node], fetches: Sequence[Value]) -> list[np.ndarray]:
    import tensorflow as tf
    from tensorflow.python.eager import context, execute

    from ..dialects.tf_opdefs import dtype_to_tf

    ctx = context.context()
    vals: dict = {}
    for n in nodes:
        t = n.const_value()
        if t is not None:
            vals[(n.name, 0)] = tf.constant(t.numpy(), dtype=tf.dtypes.as_dtype(dtype_to_tf(t.dtype.base)))
            continue
        types = _attr_types(n.op_type)
        attrs = []
        for k, v in n.attrs.items():
            if k.startswith("_"):
                continue
            if k not in types:
                raise _NotEager(k)
            attrs += [k, _attr(v, types[k])]
        outs = execute.execute(n.op_type, len(n.outputs), [vals[(v.node.name, v.index)] for v in n.inputs],
                               tuple(attrs), ctx)
        for i, o in enumerate(outs):
            vals[(n.name, i)] = o
    return [vals[(v.node.name, v.index)].numpy() for v in fetches]


def _evaluate_session(graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value]) -> list[np.ndarray]:
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    from ..backends.tf import to_graph_def

    gd = to_graph_def(extract(graph, nodes, fetches))
    tg = tf.Graph()
    with tg.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    # Grappler would only repeat our work (and fold things we chose not to).
    rw = rewriter_config_pb2.RewriterConfig(disable_meta_optimizer=True)
    config = config_pb2.ConfigProto(graph_options=config_pb2.GraphOptions(rewrite_options=rw))
    with tf.compat.v1.Session(graph=tg, config=config) as sess:
        return sess.run([f"{v.node.name}:{v.index}" for v in fetches])
