"""Compile speed: ``graphir.compile`` (load .pb + passes + save) against TF grappler, plus a scaling curve.

Usage: python benchmarks/compile_speed.py [--models resnet50,mobilenet_v2] [--sizes 1000,10000,100000]
                                          [--repeats 3]

Grappler runs ``tf_optimizer.OptimizeGraph`` with the default rewriter config on a MetaGraphDef holding the
same GraphDef (outputs in the train_op collection); only that call is timed. graphir's time covers reading
the .pb, all passes and writing the optimized .pb (to a new file each run, as a CLI user would; replacing
an existing file makes ext4 flush it first). The two are timed in alternation, ``--repeats`` runs each (at
least 5), so load from other processes hits both alike; each reports its median and the ratio is the ratio of
the medians. Garbage left by the previous run is collected before each timed run, as ``timeit`` does.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def timed(fn) -> tuple[float, object]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def interleaved(fns, repeats: int) -> list[tuple[float, list[float], object]]:
    """Run ``fns`` in turn, ``repeats`` rounds; per fn: (median seconds, all times, last result)."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t, outs[i] = timed(fn)
            times[i].append(t)
    return [(statistics.median(ts), ts, out) for ts, out in zip(times, outs)]


def graphir_compile(pb: str, out: str):
    import graphir

    m = graphir.compile(pb)
    m.save(out)
    return len(m.ir)


def grappler(gd, outputs: list[str]):
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    mg = meta_graph_pb2.MetaGraphDef()
    mg.graph_def.CopyFrom(gd)
    mg.collection_def["train_op"].node_list.value.extend(outputs)  # what grappler must keep
    config = config_pb2.ConfigProto()

    def run():
        return len(tf_optimizer.OptimizeGraph(config, mg).node)

    return run


def bench_model(name: str, gd, repeats: int, tmp: str) -> None:
    from graphir.frontends.tf import from_graph_def

    pb = os.path.join(tmp, f"{name}.pb")
    with open(pb, "wb") as f:
        f.write(gd.SerializeToString())
    outputs = [p.value.node.name for p in from_graph_def(gd).outputs]
    graphir_compile(pb, os.path.join(tmp, f"{name}.warm.pb"))  # first-use imports are not compile time
    g_run = grappler(gd, outputs)
    g_run()
    written = []

    def ours():
        written.append(os.path.join(tmp, f"{name}.opt{len(written)}.pb"))
        return graphir_compile(pb, written[-1])

    (t_ours, ts_ours, n_ours), (t_grap, ts_grap, n_grap) = interleaved([ours, g_run], max(5, repeats))
    for f in written:
        os.unlink(f)
    print(f"{name:<14} nodes {len(gd.node):>6}  graphir {t_ours:7.3f} s -> {n_ours:>4} nodes   "
          f"grappler {t_grap:7.3f} s -> {n_grap:>4} nodes   ratio graphir/grappler {t_ours / t_grap:5.2f}"
          f"   (medians of {len(ts_ours)}; graphir {min(ts_ours):.3f}-{max(ts_ours):.3f} s, "
          f"grappler {min(ts_grap):.3f}-{max(ts_grap):.3f} s)", flush=True)


def synthetic_graph_def(n_nodes: int, seed: int = 0):
    """A DAG of ~n_nodes small ops: Add/Mul/Relu/Sub chains reading earlier values and small constants, with
    identity chains, constant sub-expressions and duplicated work for the passes to find."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    rng = np.random.default_rng(seed)
    gd = graph_pb2.GraphDef()
    gd.versions.producer = tf.version.GRAPH_DEF_VERSION
    f32 = tf.float32.as_datatype_enum

    def node(name, op, inputs=(), **attrs):
        nd = gd.node.add(name=name, op=op)
        nd.input.extend(inputs)
        for k, v in attrs.items():
            if k == "value":
                nd.attr[k].tensor.CopyFrom(tf.make_tensor_proto(v))
            elif k == "shape":
                nd.attr[k].shape.CopyFrom(tf.TensorShape(v).as_proto())
            else:
                nd.attr[k].type = v
        return name

    live = [node("x", "Placeholder", dtype=f32, shape=[None, 8])]
    i = 0
    while len(gd.node) < n_nodes - 1:
        i += 1
        kind = rng.integers(0, 6)
        a = live[-1]
        b = live[int(rng.integers(max(0, len(live) - 50), len(live)))]
        if kind == 0:    # x op small constant
            c = node(f"c{i}", "Const", dtype=f32, value=rng.standard_normal(8).astype(np.float32))
            live.append(node(f"n{i}", ["Mul", "AddV2"][i % 2], [a, c], T=f32))
        elif kind == 1:  # a constant expression to fold
            c1 = node(f"c{i}a", "Const", dtype=f32, value=np.float32(rng.random()))
            c2 = node(f"e{i}", "Exp", [c1], T=f32)
            live.append(node(f"n{i}", "Mul", [a, c2], T=f32))
        elif kind == 2:  # identity chain
            live.append(node(f"n{i}", "Identity", [node(f"id{i}", "Identity", [a], T=f32)], T=f32))
        elif kind == 3:  # duplicated work for CSE
            d1 = node(f"d{i}a", "AddV2", [a, b], T=f32)
            d2 = node(f"d{i}b", "AddV2", [b, a], T=f32)
            live.append(node(f"n{i}", "Mul", [d1, d2], T=f32))
        elif kind == 4:
            live.append(node(f"n{i}", "Relu", [a], T=f32))
        else:            # DAG merge with a recent value
            live.append(node(f"n{i}", "Maximum", [a, b], T=f32))
    node("y", "Identity", [live[-1]], T=f32)
    return gd


def bench_scaling(sizes, tmp: str) -> None:
    for n in sizes:
        gd = synthetic_graph_def(n)
        pb = os.path.join(tmp, f"synthetic_{n}.pb")
        with open(pb, "wb") as f:
            f.write(gd.SerializeToString())
        t, after = timed(lambda: graphir_compile(pb, os.path.join(tmp, f"synthetic_{n}.opt.pb")))
        print(f"synthetic {len(gd.node):>7} nodes  graphir {t:8.3f} s  ({t / len(gd.node) * 1e6:6.1f} us/node)"
              f" -> {after} nodes", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of each, at least 5 (default 7)")
    a = ap.parse_args(argv)
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()

    import models

    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, a.models.split(",")):
            bench_model(name, getattr(models, name)(), a.repeats, tmp)
        bench_scaling([int(s) for s in a.sizes.split(",") if s], tmp)


if __name__ == "__main__":
    main()
