"""Train the bundled digits CNN and freeze it.

Writes ``digits_cnn.pb`` (frozen GraphDef: input placeholder ``input`` [?,8,8,1] f32 in [0,1], output
``probs`` [?,10]) and ``digits_test.npz`` (``x``, ``y``: the held-out 20% split) next to this script.
Uses scikit-learn's bundled ``load_digits`` (no download). Run: ``python examples/digits/train_digits.py``.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
HERE = os.path.dirname(os.path.abspath(__file__))


def data():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # pixel values are 0..16
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)


def build_model():
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 1), name="input")
    h = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.Conv2D(32, 3, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Flatten()(h)
    out = layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inp, out, name="digits_cnn")


def freeze(model):
    """Frozen GraphDef with a placeholder named ``input`` and an output node named ``probs``."""
    import graphir
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="input")])
    def serve(x):
        return tf.identity(model(x, training=False), name="probs")

    return graphir.load(serve.get_concrete_function(), inputs="input", outputs="probs")


def main(out_dir: str = HERE) -> int:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_tr, x_te, y_tr, y_te = data()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, batch_size=32, epochs=40, validation_split=0.1, verbose=0)
    acc = float(np.mean(np.argmax(model.predict(x_te, verbose=0), -1) == y_te))
    graph = freeze(model)
    pb = os.path.join(out_dir, "digits_cnn.pb")
    graph.save(pb)
    np.savez_compressed(os.path.join(out_dir, "digits_test.npz"), x=x_te, y=y_te)
    print(f"test accuracy {acc:.4f} on {len(y_te)} samples; wrote {pb} ({os.path.getsize(pb)} bytes, "
          f"{len(graph)} nodes)")
    return 0 if acc >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
