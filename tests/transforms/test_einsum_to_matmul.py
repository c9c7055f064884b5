"""einsum-to-matmul: MultiHeadAttention's projections and einsums as MatMul / BatchMatMulV2."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.runtime_check.runner import Runner
from graphir.transforms.einsum_to_matmul import EinsumToMatMul, parse_equation
from graphir.transforms.pass_manager import PassManager
from keras3util import assert_bf16_close, filecheck, load

TOL = dict(rtol=1e-5, atol=1e-5)


def prepared(g):
    g = g.copy()
    PassManager("strip-unused,remove-training-nodes,fold-constants,simplify-arithmetic").run(g)
    return g


@pytest.fixture(scope="module")
def mha_graph():
    import keras
    from keras import layers

    x = keras.Input((6, 16), name="x")
    mask = keras.Input((6, 6), name="mask", dtype="bool")
    masked = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="masked")(x, x, attention_mask=mask)
    plain = layers.MultiHeadAttention(num_heads=4, key_dim=8, value_dim=6, name="plain")(x, x)
    return prepared(load(keras.Model([x, mask], [masked, plain], name="net")))


def mha_feeds(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, 6, 16)).astype(np.float32), "mask": rng.random((batch, 6, 6)) > 0.3}


def canonical(g):
    """The Keras 3 canonicalization of attention: einsums and projections, then their biases."""
    out = g.copy()
    PassManager("einsum-to-matmul,dense-to-matmul,simplify-arithmetic").run(out)
    return out


def test_mha(mha_graph):
    g = mha_graph
    assert ops(g).count("Einsum") == 4 and ops(g).count("BatchMatMulV2") == 8
    out, res = apply(EinsumToMatMul(), g)
    assert res.counts == {"projections": 8, "einsum_const": 0, "einsum_batch_matmul": 4}
    assert "Einsum" not in ops(out)
    # Projections are MatMuls of constant weights; only attention's two products per layer stay batched.
    bmm = [n for n in out.nodes() if n.op_type == "BatchMatMulV2"]
    assert len(bmm) == 4 and not any(v.node.op_type == "Const" for n in bmm for v in n.inputs)
    scores = [n for n in bmm if n.attrs["adj_y"]]
    assert len(scores) == 2 and all(n.outputs[0].shape.dims[1:] == (h, 6, 6) for n, h in
                                    zip(sorted(scores, key=lambda n: n.name), (2, 4)))
    for f in (mha_feeds(), mha_feeds(batch=1, seed=1)):
        for a, b in zip(Runner(g)(f), Runner(out)(f)):
            np.testing.assert_allclose(b, a, **TOL)


def test_mha_canonical_with_dense_to_matmul(mha_graph):
    out = canonical(mha_graph)
    assert "Einsum" not in ops(out) and "AddV2" not in ops(out)
    # Every projection: Reshape -> MatMul -> BiasAdd -> Reshape to heads (or back to [?, 6, 16]).
    mms = [n for n in out.nodes() if n.op_type == "MatMul"]
    assert len(mms) == 8
    for mm in mms:
        ((b, _),) = out.uses(mm.outputs[0])
        assert b.op_type == "BiasAdd"
        ((r, _),) = out.uses(b.outputs[0])
        if r.op_type == "Mul":  # the attention scale, moved onto the query projection for fold-batch-norms
            ((r, _),) = out.uses(r.outputs[0])
        assert r.op_type == "Reshape" and r.outputs[0].shape.rank in (3, 4)
    f = mha_feeds()
    for a, b in zip(Runner(mha_graph)(f), Runner(out)(f)):
        np.testing.assert_allclose(b, a, **TOL)
    filecheck(out.text(), """
        CHECK: %net_1/masked_1/query_1/MatMul = tf.MatMul(%net_1/masked_1/query_1/flatten, %net_1/masked_1/query_1/MatMul/weights)
        CHECK: %net_1/masked_1/query_1/BiasAdd = tf.BiasAdd(%net_1/masked_1/query_1/MatMul, %net_1/masked_1/query_1/bias) {{.*}} -> tensor<?x8xf32>
        CHECK: %net_1/masked_1/query_1/Add = tf.Reshape({{.*}}, %net_1/masked_1/query_1/unflatten/shape) {{.*}} -> tensor<?x6x2x4xf32>
        CHECK: %net_1/masked_1/einsum/Einsum/lhs_transpose = tf.Transpose(%net_1/masked_1/query_1/Add,
        CHECK: %net_1/masked_1/einsum/Einsum = tf.BatchMatMulV2(%net_1/masked_1/einsum/Einsum/lhs_transpose, %net_1/masked_1/einsum/Einsum/rhs_transpose) {T = f32, adj_x = false, adj_y = true} : (tensor<?x2x6x4xf32>, tensor<?x2x6x4xf32>) -> tensor<?x2x6x6xf32>
    """)


def test_mha_bf16(mha_graph):
    out = canonical(mha_graph)
    om = assert_bf16_close(mha_graph, out, feeds=mha_feeds())
    assert any(n.op_type == "BatchMatMulV2" and n.attrs["T"].name == "bf16" for n in om.ir.nodes())


def _w(shape, seed):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("eq, shapes, kind, want", [
    # Keras 2 EinsumDense: a constant operand, the weights' layout folded into the MatMul constant.
    ("abc,cde->abde", [[None, 5, 8], [8, 2, 3]], "einsum_const", {"MatMul": 1, "Transpose": 0}),
    ("abcd,cde->abe", [[None, 5, 2, 3], [2, 3, 4]], "einsum_const", {"MatMul": 1, "Transpose": 0}),
    ("abc,dc->adb", [[None, 5, 8], [4, 8]], "einsum_const", {"MatMul": 1, "Transpose": 1}),
    ("cde,abc->abde", [[8, 2, 3], [None, 5, 8]], "einsum_const", {"MatMul": 1, "Transpose": 0}),
    # Activations: adjoint flags instead of transposes when the layout allows.
    ("bij,bjk->bik", [[None, 4, 5], [None, 5, 3]], "einsum_batch_matmul", {"BatchMatMulV2": 1, "Transpose": 0}),
    ("bji,bkj->bik", [[None, 5, 4], [None, 3, 5]], "einsum_batch_matmul", {"BatchMatMulV2": 1, "Transpose": 0}),
    ("bnts,bsnh->btnh", [[None, 2, 4, 5], [None, 5, 2, 3]], "einsum_batch_matmul",
     {"BatchMatMulV2": 1, "Transpose": 2}),
])
def test_einsum_forms(eq, shapes, kind, want):
    consts = ([0] if eq.startswith("cde") else [1]) if kind == "einsum_const" else []

    def fn(*xs):
        it = iter(xs)
        args = [_w(s, i) if i in consts else next(it) for i, s in enumerate(shapes)]
        return tf.einsum(eq, *args, name="e")
    g = prepared(build(fn, [s for i, s in enumerate(shapes) if i not in consts]))
    assert ops(g).count("Einsum") == 1
    out, res = apply(EinsumToMatMul(), g)
    assert res.counts[kind] == 1 and "Einsum" not in ops(out)
    for op, count in want.items():
        assert ops(out).count(op) == count, (op, ops(out))
    (before,), (after,) = [[n for n in h.nodes() if n.op_type == "Identity"] for h in (g, out)]
    assert after.inputs[0].shape == before.inputs[0].shape and after.inputs[0].node.name == before.inputs[0].node.name
    assert_same_outputs(g, out, **TOL)


@pytest.mark.parametrize("eq", ["...ij,...jk->...ik", "bij,bjk->bk", "bii,bij->bj", "ij,jk,kl->il"])
def test_unsupported_equations(eq):
    assert parse_equation(eq) is None


def test_two_contracted_labels_between_activations_stay():
    g = prepared(build(lambda x, y: tf.einsum("bijk,bjkl->bil", x, y), [[None, 2, 3, 4], [None, 3, 4, 5]]))
    out, res = apply(EinsumToMatMul(), g)
    assert not res.changed and "Einsum" in ops(out)
