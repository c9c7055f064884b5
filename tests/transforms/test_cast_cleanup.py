"""cast-cleanup: bf16 constants, lossless Cast pairs collapsed, lossy ones kept, duplicates merged."""
import numpy as np
import tensorflow as tf

from conftest import build as shared_build
from conftest import run_both
from graphir.ir.types import bf16, f32
from graphir.transforms.cast_cleanup import CastCleanup


def build(fn):
    return shared_build(fn, [(2, 8)], prune=True)


def cleaned(g):
    h = g.copy()
    res = CastCleanup().run(h)
    h.verify()
    for a, b in zip(*run_both(g, h, dim=4)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)  # clean-up never changes a single bit
    return h, res


def casts(g):
    return sorted((n.attrs["SrcT"].name, n.attrs["DstT"].name) for n in g.nodes() if n.op_type == "Cast")


W = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)


def test_constant_feeding_bf16_becomes_bf16_const():
    def fn(x):
        w = tf.constant(W, name="w")
        return [tf.cast(tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(w, tf.bfloat16)), tf.float32)]
    g = build(fn)
    h, res = cleaned(g)
    assert res.counts["const_folded"] == 1
    assert h.node("w").outputs[0].dtype is bf16 and h.node("w").const_value().nbytes == W.size * 2
    assert casts(h) == [("bf16", "f32"), ("f32", "bf16")]


def test_shared_constant_keeps_fp32_copy():
    def fn(x):
        w = tf.constant(W, name="w")
        y = tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(w, tf.bfloat16))
        return [tf.cast(y, tf.float32) + tf.matmul(x, w)]
    h, _ = cleaned(build(fn))
    assert h.node("w").outputs[0].dtype is f32 and h.node("w/bf16").outputs[0].dtype is bf16


def test_lossless_round_trip_collapses_lossy_one_stays():
    def fn(x):
        b = tf.cast(x, tf.bfloat16)
        back = tf.cast(tf.cast(b, tf.float32), tf.bfloat16)       # bf16 -> f32 -> bf16: exact
        lossy = tf.cast(tf.cast(x, tf.bfloat16), tf.float32)       # f32 -> bf16 -> f32: rounds
        return [tf.cast(tf.nn.relu(back), tf.float32), lossy]
    h, res = cleaned(build(fn))
    assert res.counts["collapsed"] >= 1
    assert casts(h) == [("bf16", "f32"), ("bf16", "f32"), ("f32", "bf16")]


def test_duplicate_casts_merge():
    def fn(x):
        a, b = tf.cast(x, tf.bfloat16), tf.cast(x, tf.bfloat16)
        return [tf.cast(tf.nn.relu(a) + tf.tanh(b), tf.float32)]
    h, res = cleaned(build(fn))
    assert res.counts["merged"] == 1
    assert casts(h) == [("bf16", "f32"), ("f32", "bf16")]


def test_noop_cast_removed_but_output_cast_kept():
    def fn(x):
        return [tf.raw_ops.Cast(x=tf.nn.relu(x), DstT=tf.float32) * 2.0, tf.cast(x, tf.bfloat16)]
    g = build(fn)
    h, _ = cleaned(g)
    assert casts(h) == [("f32", "bf16")]
    assert [p.value.dtype for p in h.outputs] == [f32, bf16]
