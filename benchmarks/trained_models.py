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

# weight name -> sampler(rng, shape); names are Keras 3's variable names.
TRAINED_LIKE = {
    "gamma": lambda rng, s: rng.uniform(0.7, 1.3, s),
    "beta": lambda rng, s: rng.normal(0.0, 0.1, s),
    "moving_mean": lambda rng, s: rng.normal(0.0, 0.1, s),
    "moving_variance": lambda rng, s: rng.uniform(0.7, 1.3, s),
    "bias": lambda rng, s: rng.normal(0.0, 0.05, s),
}


def randomize_statistics(model, seed: int = 0):
    """Give ``model``'s BN statistics, norm scales/shifts and biases trained-like random values (in place)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        draw = TRAINED_LIKE.get(w.name)
        if draw is not None:
            w.assign(draw(rng, tuple(w.shape)).astype(np.float32))
    return model


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


def digits():
    return corpus.digits()


MODELS = {"resnet50": resnet50, "resnet50v2": resnet50v2, "mobilenet_v2": mobilenet_v2,
          "efficientnetv2b0": efficientnetv2b0, "transformer": transformer, "digits": digits}


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
