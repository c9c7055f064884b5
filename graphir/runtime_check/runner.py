"""Run a graphir graph (or a raw GraphDef) in a TF1-style session, imported and set up once.

The GraphDef goes into the session's ``tf.Graph`` through TF's C importer, and Python ``Operation``
wrappers are made only for the ops a run feeds or fetches: the public ``import_graph_def`` wraps every
op, which on a 2,000-node model costs as much as the import itself and buys nothing here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..ir import Graph


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def _import_c(g, data: bytes, op_names) -> Optional[dict]:
    """Import serialized GraphDef ``data`` into ``g`` with TF's C importer. Returns ``{name: Operation}``
    for ``op_names``, the only ops given Python wrappers. None if TF's private API moved (the caller then
    takes the public path)."""
    try:
        from tensorflow.python.client import pywrap_tf_session as c_api
        from tensorflow.python.framework import c_api_util, ops

        opts = c_api_util.ScopedTFImportGraphDefOptions()
        c_api.TF_ImportGraphDefOptionsSetPrefix(opts.options, "")
        wrap = ops.Operation._from_c_op
        names = sorted(set(op_names))
        for n in names:
            c_api.TF_ImportGraphDefOptionsAddReturnOperation(opts.options, n)
        buf = c_api.TF_NewBufferFromString(data)
    except (AttributeError, ImportError, TypeError):
        return None
    try:
        with g._c_graph.get() as c_graph:
            results = c_api.TF_GraphImportGraphDefWithResults(c_graph, buf, opts.options)
        scoped = c_api_util.ScopedTFImportGraphDefResults(results)
        c_ops = c_api.TF_ImportGraphDefResultsReturnOperations(scoped.results)
    finally:
        c_api.TF_DeleteBuffer(buf)
    # Registered with the graph (Session.run wants a graph with Python ops), but only these few.
    return {n: wrap(c_op=c_op, g=g) for n, c_op in zip(names, c_ops)}


def _default_ports(tfg, graph_def):
    """(inputs, outputs) tensor names of a raw GraphDef, detected like the frontend does."""
    from ..frontends.tf import INPUT_OPS, NOT_OUTPUTS, parse_input
    from ..ir.registry import op_info

    used = {parse_input(s)[0] for nd in graph_def.node for s in nd.input}
    ins, outs = [], []
    for nd in graph_def.node:
        if nd.op in INPUT_OPS:
            ins.append(nd.name)
        elif nd.name not in used and nd.op not in NOT_OUTPUTS:
            info = op_info("tf", nd.op)
            if info.known and info.side_effecting:
                continue
            outs.extend(t.name for t in tfg.get_operation_by_name(nd.name).outputs)
    return [(n, n) for n in ins], [(t[:-2] if t.endswith(":0") else t, t) for t in outs]


def run_errors() -> tuple:
    """What TF raises for a graph it cannot import or run, beyond ValueError/TypeError (anything else is a
    bug, and propagates)."""
    import tensorflow as tf

    return (tf.errors.OpError,)


class Runner:
    """``Runner(graph)(feeds) -> [outputs]``. Feeds: a dict keyed by port or tensor name, or a list in
    input order. The TF graph and session are built once."""

    def __init__(self, graph_or_graph_def, inputs: Optional[Sequence[str]] = None,
                 outputs: Optional[Sequence[str]] = None, *, intra_op_threads: Optional[int] = None,
                 inter_op_threads: Optional[int] = None, rewriter_config=None, optimize: bool = True):
        """``optimize=False`` runs the graph as written: no grappler, no classic graph optimizer (constant
        folding, CSE, inlining). That is the faithful reference for a numeric check, and it skips the
        optimizers' work on a graph that runs once or twice (seconds on a 100 MB model)."""
        import tensorflow as tf

        if isinstance(graph_or_graph_def, Graph):
            from ..backends.tf import to_graph_def

            g = graph_or_graph_def
            gd = to_graph_def(g)
            in_ports = [(p.name, p.value.name) for p in g.inputs]
            out_ports = [(p.name, p.value.name) for p in g.outputs]
        else:
            gd = graph_or_graph_def
            in_ports = out_ports = None
        self.graph = tf.Graph()
        self._ops: Optional[dict] = None  # op name -> bare wrapper, after the C-level import
        if in_ports is not None:
            ports = dict(in_ports + out_ports)
            wanted = [_tensor_name(t).rpartition(":")[0] for _, t in in_ports + out_ports]
            wanted += [_tensor_name(ports.get(n, n)).rpartition(":")[0]
                       for n in list(inputs or []) + list(outputs or [])]
            self._ops = _import_c(self.graph, gd.SerializeToString(), wanted)
        if self._ops is None:  # a raw GraphDef (its ports are found on the Python graph), or TF moved
            self.graph = tf.Graph()
            with self.graph.as_default():
                tf.graph_util.import_graph_def(gd, name="")
        if in_ports is None:
            in_ports, out_ports = _default_ports(self.graph, gd)
        # port name -> tensor name; overrides are port or tensor names.
        self._alias = {}
        for p, t in in_ports + out_ports:
            self._alias[p] = _tensor_name(t)
        if inputs is not None:
            in_ports = [(n, self._alias.get(n, n)) for n in inputs]
        if outputs is not None:
            out_ports = [(n, self._alias.get(n, n)) for n in outputs]
        self.input_names = [p for p, _ in in_ports]
        self.output_names = [p for p, _ in out_ports]
        self._inputs = [self.tensor(t) for _, t in in_ports]
        self._outputs = [self.tensor(t) for _, t in out_ports]
        config = tf.compat.v1.ConfigProto()
        if intra_op_threads is not None:
            config.intra_op_parallelism_threads = intra_op_threads
        if inter_op_threads is not None:
            config.inter_op_parallelism_threads = inter_op_threads
        if rewriter_config is not None:
            config.graph_options.rewrite_options.CopyFrom(rewriter_config)
        if not optimize:
            from tensorflow.core.protobuf import config_pb2

            config.graph_options.rewrite_options.disable_meta_optimizer = True
            config.graph_options.optimizer_options.opt_level = config_pb2.OptimizerOptions.L0
            config.graph_options.optimizer_options.do_constant_folding = False
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def tensor(self, name: str):
        """The graph's tensor ``name`` (``node`` or ``node:i``) to feed or fetch: a port or override
        tensor, or with the public import any tensor."""
        name = _tensor_name(name)
        if self._ops is None:
            return self.graph.get_tensor_by_name(name)
        op, _, idx = name.rpartition(":")
        if op not in self._ops or int(idx) >= len(self._ops[op].outputs):
            raise KeyError(f"{name!r} is not an input or output of this graph")
        return self._ops[op].outputs[int(idx)]

    def _feed_dict(self, feeds) -> dict:
        if isinstance(feeds, dict):
            out = {}
            by_port = dict(zip(self.input_names, self._inputs))
            for k, v in feeds.items():
                t = by_port.get(k)
                if t is None:
                    t = self.tensor(self._alias.get(k, k))
                out[t] = v
            missing = [n for n, t in zip(self.input_names, self._inputs) if t not in out]
            if missing:
                raise ValueError(f"missing feeds for inputs {missing}")
            return out
        feeds = list(feeds)
        if len(feeds) != len(self._inputs):
            raise ValueError(f"expected {len(self._inputs)} inputs, got {len(feeds)}")
        return dict(zip(self._inputs, feeds))

    def __call__(self, feeds) -> list:
        return self.session.run(self._outputs, self._feed_dict(feeds))

    def run_with_metadata(self, feeds):
        """Run with a FULL trace and partition graphs (to see which ops TF actually executed)."""
        import tensorflow as tf

        opts = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE,
                                       output_partition_graphs=True)
        md = tf.compat.v1.RunMetadata()
        outs = self.session.run(self._outputs, self._feed_dict(feeds), options=opts, run_metadata=md)
        return outs, md

    def close(self) -> None:
        self.session.close()

    def __del__(self):
        try:
            self.session.close()
        except Exception:  # at interpreter exit TF may already be torn down: nothing left to release
            pass


def random_inputs(graph, *, dim: int = 4, seed: int = 0, shapes: Optional[dict] = None,
                  batch_size: Optional[int] = None) -> dict:
    """One random array per graph input, keyed by port name.

    Shapes: ``shapes[name]`` (else ``graph.meta["input_shapes"]``, set by ``compile(input_shapes=...)``),
    with its None dims and the graph's unknown dims filled by ``batch_size`` (dim 0) and ``dim``;
    ``batch_size`` None means ``dim`` there too. See :mod:`graphir.runtime_check.shapes`."""
    from .shapes import default_shape

    if shapes is None:
        shapes = graph.meta.get("input_shapes") or {}
    rng = np.random.default_rng(seed)
    out = {}
    for p in graph.inputs:
        shape = default_shape(p.value.shape.dims, dim=dim, batch_size=batch_size, given=shapes.get(p.name))
        dt = p.value.dtype.base
        if dt.is_float:
            a = rng.standard_normal(shape).astype(np.float32).astype(dt.np)
        elif dt.name == "bool":
            a = rng.integers(0, 2, shape).astype(bool)
        elif dt.name == "string":
            a = np.array([b"a" * int(i) for i in rng.integers(0, 4, int(np.prod(shape)))], dtype=object).reshape(shape)
        elif dt.np is not None:
            a = rng.integers(0, 4, shape).astype(dt.np)
        else:
            raise ValueError(f"cannot make a random value for input {p.name!r} of type {dt.name}")
        out[p.name] = a
    return out
