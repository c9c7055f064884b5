"""Shared fixtures (the model corpus, built once per test session) and the one copy of each test helper.

Test modules import the helpers with ``from conftest import ...``:

- ``parse_ir`` / ``print_ir`` / ``run_pipeline``: the text IR and the pass pipeline. Every test that runs a
  pipeline goes through ``run_pipeline``, so a change of the pass-manager API is a change here only.
- ``build``: a small TF1 graph from a Python function, loaded into the IR.
- ``run_graph`` / ``run_both`` / ``assert_same_outputs``: run a graph in TensorFlow, or two on the same
  inputs, and compare them.
- ``run_cli``: ``python -m graphir ...`` as a subprocess of this checkout, without debug tracebacks.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~5 s (still runs in CI)")


# ------------------------------------------------------------------------------ text IR and pipelines
def parse_ir(text: str, filename: str = "<test>"):
    """Text IR -> Graph."""
    from graphir.ir.parser import parse

    return parse(text, filename)


def print_ir(graph) -> str:
    return graph.text()


def run_pipeline(graph, pipeline: str, *, copy: bool = True, verify: bool = True):
    """Run ``pipeline`` (``"a,b{opt=value}"``) on ``graph`` (a copy unless ``copy=False``), verifying the IR
    after every pass; returns the transformed graph."""
    from graphir.transforms.pass_manager import PassManager

    g = graph.copy() if copy else graph
    PassManager.from_pipeline(pipeline, verify=verify).run(g)
    return g


# ------------------------------------------------------------------------------ building graphs
def build(fn, shapes, dtypes=None, *, prune=False):
    """IR of ``fn(*placeholders)`` built as a TF1 graph: inputs are placeholders x0, x1, ..., outputs the
    Identity nodes out0, out1, ... on what ``fn`` returns (a tensor or a list).

    By default every node ``fn`` made is kept (loaded with every sink as an output, then only out* kept as
    outputs), so a pass under test sees dead nodes too; ``prune=True`` loads only what the outputs need."""
    import tensorflow as tf

    from graphir.frontends.tf import from_graph_def

    g = tf.Graph()
    dtypes = dtypes or [tf.float32] * len(shapes)
    with g.as_default():
        xs = [tf.compat.v1.placeholder(d, s, name=f"x{i}") for i, (s, d) in enumerate(zip(shapes, dtypes))]
        outs = fn(*xs)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for i, o in enumerate(outs):
            tf.identity(o, name=f"out{i}")
    out_names = [f"out{i}" for i in range(len(outs))]
    if prune:
        return from_graph_def(g.as_graph_def(), inputs=[f"x{i}" for i in range(len(shapes))], outputs=out_names)
    ir = from_graph_def(g.as_graph_def())
    by_name = {p.name: p for p in ir.outputs}
    ir.outputs = [by_name[n] for n in out_names]
    return ir


def const(shape, seed=0, scale=1.0, offset=0.0):
    """A tf.constant of normal random values (seeded)."""
    import numpy as np
    import tensorflow as tf

    return tf.constant((np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(np.float32))


def apply(p, graph):
    """Run pass ``p`` on a copy of ``graph`` as a pipeline would (with the passes it declares it needs),
    verified after each pass. Returns (copy, ``p``'s result)."""
    from graphir.transforms.pass_manager import PassManager

    g = graph.copy()
    records = PassManager([p]).run(g)
    (result,) = [r.result for r in records if r.name == p.name]
    return g, result


def ops(graph):
    return [n.op_type for n in graph.nodes()]


def lines_with(graph, text):
    return [ln for ln in graph.text().splitlines() if text in ln]


# ------------------------------------------------------------------------------ running graphs
def run_graph(graph, feeds):
    """Outputs of one graph: an IR graph with its dialect's runner (TF, ONNX Runtime), a GraphDef in TF."""
    from graphir.ir import Graph
    from graphir.ir.dialect import graph_dialect
    from graphir.runtime_check.runner import Runner

    r = graph_dialect(graph).runner(graph) if isinstance(graph, Graph) else Runner(graph)
    try:
        return r(feeds)
    finally:
        r.close()


def run_both(before, after, *, feeds=None, seed=0, dim=3):
    """Outputs of both graphs (IR graphs or GraphDefs) in TensorFlow on the same inputs (random ones from
    ``before``'s signature unless ``feeds`` is given)."""
    from graphir.runtime_check.runner import random_inputs

    feeds = feeds if feeds is not None else random_inputs(before, dim=dim, seed=seed)
    return run_graph(before, feeds), run_graph(after, feeds)


def assert_same_outputs(before, after, *, rtol=1e-5, atol=1e-6, seed=0, feeds=None, dim=3):
    """Both graphs give the same outputs (shapes and dtypes equal, values within tolerance); returns
    ``before``'s outputs."""
    import numpy as np

    a, b = run_both(before, after, feeds=feeds, seed=seed, dim=dim)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol)
    return a


# ------------------------------------------------------------------------------ the command line
def traced_peak(fn):
    """(``fn()``'s result, the peak of Python-traced allocations while it ran, in bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def run_cli(*args, cwd=None, env=None, timeout=600):
    """``python -m graphir ARGS`` from this checkout; returns the CompletedProcess (text mode)."""
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("GRAPHIR_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "graphir", *map(str, args)], cwd=cwd or ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------ model corpus fixtures
@pytest.fixture(scope="session")
def resnet50_gd():
    return models.resnet50()


@pytest.fixture(scope="session")
def mobilenet_v2_gd():
    return models.mobilenet_v2()


@pytest.fixture(scope="session")
def transformer_gd():
    return models.transformer()


@pytest.fixture(scope="session")
def tf1_while_gd():
    return models.tf1_while()


@pytest.fixture(scope="session")
def tf2_functional_gd():
    return models.tf2_functional()


@pytest.fixture(scope="session")
def digits_gd():
    return models.digits()


@pytest.fixture(scope="session")
def model_gd(request):
    """Indirect fixture: ``model_gd`` parametrized by a corpus name."""
    return {**models.SMALL, **models.LARGE}[request.param]()
