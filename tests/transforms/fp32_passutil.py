"""Helpers for the FP32 pass tests: build small TF1 graphs, run a pass, compare both graphs in TF."""
import numpy as np
import tensorflow as tf

from graphir.frontends.tf import from_graph_def
from graphir.runtime_check.runner import Runner, random_inputs


def build(fn, shapes, dtypes=None):
    """IR of ``fn(*placeholders)`` built as a TF1 graph; outputs are Identity nodes out0, out1, ..."""
    g = tf.Graph()
    dtypes = dtypes or [tf.float32] * len(shapes)
    with g.as_default():
        xs = [tf.compat.v1.placeholder(d, s, name=f"x{i}") for i, (s, d) in enumerate(zip(shapes, dtypes))]
        outs = fn(*xs)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for i, o in enumerate(outs):
            tf.identity(o, name=f"out{i}")
    # Load with every sink as an output, then keep only out*: nothing is stripped on the way in.
    ir = from_graph_def(g.as_graph_def())
    by_name = {p.name: p for p in ir.outputs}
    ir.outputs = [by_name[f"out{i}"] for i in range(len(outs))]
    return ir


def apply(p, graph):
    """Run pass ``p`` on a copy of ``graph`` as a pipeline would (with the passes it declares it needs),
    verified after each pass. Returns (copy, ``p``'s result)."""
    from graphir.transforms.pass_manager import PassManager

    g = graph.copy()
    records = PassManager([p]).run(g)
    (result,) = [r.result for r in records if r.name == p.name]
    return g, result


def assert_same_outputs(before, after, *, rtol=1e-5, atol=1e-6, seed=0, feeds=None):
    feeds = feeds if feeds is not None else random_inputs(before, dim=3, seed=seed)
    a, b = Runner(before)(feeds), Runner(after)(feeds)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol)
    return a


def ops(graph):
    return [n.op_type for n in graph.nodes()]


def lines_with(graph, text):
    return [ln for ln in graph.text().splitlines() if text in ln]


def const(shape, seed=0, scale=1.0, offset=0.0):
    return tf.constant((np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(np.float32))
