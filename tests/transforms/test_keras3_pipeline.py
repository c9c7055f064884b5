"""The default pipeline on Keras 3 blocks: the canonicalization passes leave the forms the lowering fuses."""
import numpy as np
import pytest

import graphir
from graphir.runtime_check.runner import Runner
from keras3util import assert_bf16_close, load, rel_err


@pytest.fixture(scope="module")
def blocks():
    """A ConvNeXt-like block (grouped 7x7 conv, LayerNorm, Dense-GELU-Dense on rank 4, a groups=2 conv)
    and a transformer block (masked MultiHeadAttention, LayerNorm, Dense-GELU(tanh)-Dense on rank 3)."""
    import keras
    from keras import layers

    img = keras.Input((8, 8, 16), name="image")
    y = layers.Conv2D(16, 7, padding="same", groups=16, name="dw")(img)
    y = layers.LayerNormalization(epsilon=1e-6, name="ln")(y)
    y = layers.Dense(64, activation="gelu", name="pw1")(y)
    y = layers.Dense(16, name="pw2")(y)
    y = layers.Conv2D(8, 3, groups=2, name="g2")(img + y)

    tok = keras.Input((6, 16), name="tokens")
    mask = keras.Input((6, 6), name="mask", dtype="bool")
    t = layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")(tok, tok, attention_mask=mask)
    t = layers.LayerNormalization(name="ln_a")(tok + t)
    f = layers.Dense(32, activation=lambda v: keras.activations.gelu(v, approximate=True), name="ff1")(t)
    t = layers.LayerNormalization(name="ln_f")(t + layers.Dense(16, name="ff2")(f))
    return load(keras.Model([img, tok, mask], [y, t], name="blocks"))


def feeds(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal((batch, 8, 8, 16)).astype(np.float32),
            "tokens": rng.standard_normal((batch, 6, 16)).astype(np.float32),
            "mask": rng.random((batch, 6, 6)) > 0.3}


def test_default_pipeline_fp32(blocks):
    om = graphir.compile(blocks, precisions="fp32")
    hist = om.ir.op_histogram()
    for op in ("StatefulPartitionedCall", "Einsum", "Erfc", "Pow", "Mean", "Rsqrt", "Prod", "Pack"):
        assert op not in hist, op
    # One exact and one tanh GELU: canonical, then fused into their MatMul by lower-onednn where one precedes.
    fused = [a for n in om.ir.nodes() if n.op_type == "_FusedMatMul" for a in n.attrs["fused_ops"]]
    assert hist["_MklLayerNorm"] == 3
    assert hist.get("Erf", 0) + fused.count("GeluExact") == 1
    assert hist.get("Tanh", 0) + fused.count("GeluApproximate") == 1
    assert hist.get("DepthwiseConv2dNative", 0) + hist.get("_FusedDepthwiseConv2dNative", 0) == 1
    assert "tf.library" not in om.ir.attrs
    counts = {r.name: r.result.counts for r in om.report["passes"]}
    assert counts["inline-grouped-conv"]["inlined"] == 2 and counts["einsum-to-matmul"]["einsum_batch_matmul"] == 2
    f = feeds()
    for a, b in zip(Runner(blocks)(f), Runner(om.ir)(f)):
        assert rel_err(a, b) <= 1e-5


def test_default_pipeline_bf16(blocks):
    assert_bf16_close(blocks, blocks, feeds=feeds(1))
