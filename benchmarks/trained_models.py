"""Benchmark models with trained-like statistics, as frozen GraphDefs (built once per process).

Keras applications come with ``weights=None`` (nothing is downloaded), which leaves every bias and BN shift
at zero and every BN at the identity: constant folding then deletes those BiasAdds and the graph is not the
one a trained model gives. Here every BN's gamma, beta, moving mean and moving variance and every bias is
drawn from a fixed seed instead. The digits CNN is really trained (examples/digits).

    python benchmarks/trained_models.py resnet50 out.pb     # write one model's frozen GraphDef
"""
from __future__ import annotations

import functools
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT, os.path.join(ROOT, "tests")) if p not in sys.path]

import models as corpus  # noqa: E402  (tests/models.py: freezing, the transformer, digits)

from models import randomize_statistics  # noqa: E402  (trained-like BN statistics and biases)


def _application(name: str):
    import keras

    corpus._keras_seed()
    model = getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    return corpus.freeze_keras(randomize_statistics(model))


@functools.lru_cache(maxsize=None)
def resnet50():
    return _application("ResNet50")


@functools.lru_cache(maxsize=None)
def resnet50v2():
    return _application("ResNet50V2")


@functools.lru_cache(maxsize=None)
def mobilenet_v2():
    return _application("MobileNetV2")


@functools.lru_cache(maxsize=None)
def efficientnetv2b0():
    return _application("EfficientNetV2B0")


@functools.lru_cache(maxsize=None)
def transformer():
    """tests/models.py's 4-layer encoder, built anew (that one is cached and shared) with random biases and
    layer-norm parameters."""
    corpus._keras_seed()
    return corpus.freeze_keras(randomize_statistics(corpus.transformer_model.__wrapped__()))


@functools.lru_cache(maxsize=None)
def convnext_tiny():
    return _application("ConvNeXtTiny")


def _encoder_blocks(x, layers, n: int, d: int, heads: int, ff: int, prefix: str):
    for i in range(n):
        a = layers.MultiHeadAttention(num_heads=heads, key_dim=d // heads, name=f"{prefix}mha_{i}")(x, x)
        x = layers.LayerNormalization(name=f"{prefix}ln_a_{i}")(x + a)
        f = layers.Dense(ff, activation="gelu", name=f"{prefix}ff1_{i}")(x)
        f = layers.Dense(d, name=f"{prefix}ff2_{i}")(f)
        x = layers.LayerNormalization(name=f"{prefix}ln_f_{i}")(x + f)
    return x


@functools.lru_cache(maxsize=None)
def encoder():
    """A 4-layer transformer encoder at the size the Keras 3 issue profiled: seq 128, d_model 256, 4 heads,
    feed-forward 1024, exact GELU."""
    import keras
    from keras import layers

    corpus._keras_seed()
    x = inp = keras.Input((128, 256), name="tokens")
    model = keras.Model(inp, _encoder_blocks(x, layers, 4, 256, 4, 1024, ""), name="encoder")
    return corpus.freeze_keras(randomize_statistics(model))


@functools.lru_cache(maxsize=None)
def vit():
    """A small ViT from Keras layers: 96x96 images, 8x8 patches embedded by a strided Conv2D (144 tokens),
    learned position embedding, 4 pre-LN-free encoder blocks of d 192 with 3 heads, mean-pooled head."""
    import keras
    from keras import layers

    corpus._keras_seed()
    inp = keras.Input((96, 96, 3), name="image")
    x = layers.Conv2D(192, 8, strides=8, name="patch_embed")(inp)
    x = layers.Reshape((144, 192))(x)
    x = x + layers.Embedding(144, 192, name="pos")(keras.ops.arange(144))
    x = _encoder_blocks(x, layers, 4, 192, 3, 768, "vit_")
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, layers.Dense(10, activation="softmax", name="head")(x), name="vit")
    return corpus.freeze_keras(randomize_statistics(model))


def digits():
    return corpus.digits()


MODELS = {"resnet50": resnet50, "resnet50v2": resnet50v2, "mobilenet_v2": mobilenet_v2,
          "efficientnetv2b0": efficientnetv2b0, "transformer": transformer, "digits": digits,
          "convnext_tiny": convnext_tiny, "encoder": encoder, "vit": vit}


def load(name: str):
    try:
        return MODELS[name]()
    except KeyError:
        raise SystemExit(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    from graphir.backends.atomic import atomic_write_bytes
    from graphir.quiet import import_tf_quietly

    import_tf_quietly()
    atomic_write_bytes(sys.argv[2], load(sys.argv[1]).SerializeToString())
