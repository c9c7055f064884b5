"""Test model corpus: builders returning frozen GraphDefs, each built once per process.

Keras models use ``weights=None`` with a fixed seed (no downloads); they are frozen through graphir's own
``keras.Model`` path, so building them also exercises the frontend.
"""
from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_PB = os.path.join(ROOT, "examples", "digits", "digits_cnn.pb")


def freeze_keras(model):
    """A keras.Model -> frozen GraphDef, via graphir's frontend and backend."""
    from graphir.backends.tf import to_graph_def
    from graphir.frontends.tf import load

    return to_graph_def(load(model))


# weight name -> sampler(rng, shape); names are Keras 3's variable names.
TRAINED_LIKE = {
    "gamma": lambda rng, s: rng.uniform(0.7, 1.3, s),
    "beta": lambda rng, s: rng.normal(0.0, 0.1, s),
    "moving_mean": lambda rng, s: rng.normal(0.0, 0.1, s),
    "moving_variance": lambda rng, s: rng.uniform(0.7, 1.3, s),
    "bias": lambda rng, s: rng.normal(0.0, 0.05, s),
}


def randomize_statistics(model, seed: int = 0):
    """Give ``model``'s BN statistics, norm scales/shifts and biases trained-like random values (in place):
    ``weights=None`` models have zero biases and identity batch norms, which a compiler folds away."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for w in model.weights:
        draw = TRAINED_LIKE.get(w.name)
        if draw is not None:
            w.assign(draw(rng, tuple(w.shape)).astype(np.float32))
    return model


def tensor_key(tp):
    """A TensorProto compared by value: the same tensor may be encoded differently."""
    import tensorflow as tf

    a = tf.make_ndarray(tp)
    return tp.dtype, a.shape, a.tobytes() if a.dtype != object else tuple(a.reshape(-1))


def _keras_seed():
    import keras

    keras.utils.set_random_seed(0)


@functools.lru_cache(maxsize=None)
def resnet50():
    import keras

    _keras_seed()
    return freeze_keras(keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3)))


@functools.lru_cache(maxsize=None)
def mobilenet_v2():
    import keras

    _keras_seed()
    return freeze_keras(keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)))


@functools.lru_cache(maxsize=None)
def transformer_model():
    """A 4-layer post-LN transformer encoder: seq 16, d_model 64, 4 heads, ff 128 (a keras.Model)."""
    import keras
    from keras import layers

    _keras_seed()
    x = inp = keras.Input((16, 64), name="tokens")
    for i in range(4):
        a = layers.MultiHeadAttention(num_heads=4, key_dim=16, name=f"mha_{i}")(x, x)
        x = layers.LayerNormalization(name=f"ln_a_{i}")(x + a)
        f = layers.Dense(128, activation="gelu", name=f"ff1_{i}")(x)
        f = layers.Dense(64, name=f"ff2_{i}")(f)
        x = layers.LayerNormalization(name=f"ln_f_{i}")(x + f)
    return keras.Model(inp, x, name="encoder")


@functools.lru_cache(maxsize=None)
def transformer():
    return freeze_keras(transformer_model())


@contextlib.contextmanager
def control_flow_v1():
    """Build TF1 control flow (Enter/Merge/Switch/NextIteration/Exit) inside this block."""
    from tensorflow.python.ops import control_flow_util

    old = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    try:
        yield
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = old


@functools.lru_cache(maxsize=None)
def tf1_while():
    """x -> five steps of tanh(x @ w + b) in a tf.compat.v1.while_loop, plus the counter."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    g = tf.Graph()
    with g.as_default(), control_flow_v1():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        w = tf.constant(rng.standard_normal((8, 8)).astype(np.float32) * 0.5, name="w")
        b = tf.constant(rng.standard_normal(8).astype(np.float32), name="b")
        i0 = tf.constant(0, name="i0")
        i, y = tf.compat.v1.while_loop(lambda i, h: i < 5, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w) + b)),
                                       [i0, x], name="loop")
        tf.identity(y, name="y")
        tf.identity(i, name="steps")
    gd = g.as_graph_def()
    ops = {n.op for n in gd.node}
    assert {"Enter", "Merge", "Switch", "NextIteration", "Exit"} <= ops, ops
    return gd


@functools.lru_cache(maxsize=None)
def tf2_functional():
    """A tf.function with tf.while_loop and tf.cond (functional While/If in the library), frozen."""
    import tensorflow as tf

    from graphir.backends.tf import to_graph_def
    from graphir.frontends.tf import load

    rng = np.random.default_rng(2)
    w = tf.Variable(rng.standard_normal((6, 6)).astype(np.float32) * 0.4, name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x"),
                                  tf.TensorSpec([], tf.int32, name="n")])
    def f(x, n):
        def body(i, h):
            h = tf.cond(tf.reduce_sum(h) > 0, lambda: tf.nn.relu(h @ w), lambda: tf.tanh(h) - 1.0)
            return i + 1, h

        _, y = tf.while_loop(lambda i, h: i < n, body, [tf.constant(0), x])
        return {"y": y}

    gd = to_graph_def(load(f.get_concrete_function()))
    ops = {n.op for n in gd.node}
    assert ops & {"While", "StatelessWhile"}, ops
    fops = {n.op for fn in gd.library.function for n in fn.node_def}
    assert fops & {"If", "StatelessIf"}, fops
    return gd


def digits():
    """The bundled digits CNN (examples/digits/digits_cnn.pb, committed with its training script)."""
    from tensorflow.core.framework import graph_pb2

    with open(DIGITS_PB, "rb") as f:
        return graph_pb2.GraphDef.FromString(f.read())


SMALL = {"tf1_while": tf1_while, "tf2_functional": tf2_functional, "transformer": transformer,
         "digits": digits}
LARGE = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}
