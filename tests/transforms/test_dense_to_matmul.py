"""dense-to-matmul: Keras 3 tensordot Dense as Reshape -> MatMul -> BiasAdd -> activation -> Reshape."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.runtime_check.runner import Runner
from graphir.transforms.activation_patterns import is_canonical_gelu
from graphir.transforms.dense_to_matmul import DenseToMatMul
from graphir.transforms.pass_manager import PassManager
from keras3util import assert_bf16_close, filecheck, load

TOL = dict(rtol=1e-5, atol=1e-5)


def prepared(g):
    """The graph as the pipeline hands it over: constants folded, arithmetic simplified."""
    g = g.copy()
    PassManager("strip-unused,remove-training-nodes,fold-constants,simplify-arithmetic").run(g)
    return g


def keras_dense_model():
    import keras
    from keras import layers

    seq = keras.Input((5, 8), name="seq")               # dynamic batch
    ragged = keras.Input((None, 8), name="ragged")      # dynamic batch and length
    grid = keras.Input((3, 4, 8), name="grid")          # rank 4
    return keras.Model([seq, ragged, grid], [
        layers.Dense(6, activation="gelu", name="exact")(seq),
        layers.Dense(6, activation=lambda t: keras.activations.gelu(t, approximate=True), name="approx")(seq),
        layers.Dense(6, activation="relu", name="relu")(ragged),
        layers.Dense(6, name="linear")(grid),
    ], name="net")


@pytest.fixture(scope="module")
def keras_graph():
    return prepared(load(keras_dense_model()))


def feeds(g, batch, length, seed=0):
    rng = np.random.default_rng(seed)
    sizes = {"seq": (batch, 5, 8), "ragged": (batch, length, 8), "grid": (batch, 3, 4, 8)}
    return {p.name: rng.standard_normal(sizes[p.name]).astype(np.float32) for p in g.inputs}


def test_keras_dense_chains(keras_graph):
    g = keras_graph
    out, res = apply(DenseToMatMul(), g)
    assert res.counts == {"rewritten": 4, "bias": 4, "activation": 3}
    for op in ("Transpose", "Prod", "Pack"):
        assert op not in ops(out), op
    # Each MatMul reads a Reshape of a graph input and feeds a BiasAdd; GELUs are canonical and 2-D.
    for mm in (n for n in out.nodes() if n.op_type == "MatMul"):
        assert mm.inputs[0].node.op_type == "Reshape" and mm.inputs[0].node.inputs[0].node.op_type == "Placeholder"
        ((bias, _),) = out.uses(mm.outputs[0])
        assert bias.op_type == "BiasAdd" and bias.outputs[0].shape.rank == 2
    gelus = [n for n in out.nodes() if n.op_type == "Mul" and is_canonical_gelu(out, n.outputs[0])]
    assert len(gelus) == 2 and all(n.outputs[0].shape.rank == 2 for n in gelus)
    # Only the input with two unknown dimensions keeps a Shape-based target.
    assert ops(out).count("Shape") == 1
    for batch, length in ((1, 2), (4, 7)):
        f = feeds(g, batch, length)
        for a, b in zip(Runner(g)(f), Runner(out)(f)):
            np.testing.assert_allclose(b, a, **TOL)
    filecheck(out.text(), """
        CHECK: %net_1/exact_1/flatten/shape = tf.Const() {dtype = i32, value = dense<[-1, 8]>
        CHECK: %net_1/exact_1/unflatten/shape = tf.Const() {dtype = i32, value = dense<[-1, 5, 6]>
        CHECK: %net_1/exact_1/flatten = tf.Reshape(%seq, %net_1/exact_1/flatten/shape) {{.*}} -> tensor<?x8xf32>
        CHECK: %net_1/exact_1/MatMul = tf.MatMul(%net_1/exact_1/flatten,
        CHECK: %net_1/exact_1/BiasAdd = tf.BiasAdd(%net_1/exact_1/MatMul, %net_1/exact_1/bias) {{.*}} -> tensor<?x6xf32>
        CHECK: %net_1/exact_1/Gelu/scaled = tf.Mul(%net_1/exact_1/BiasAdd,
        CHECK: %net_1/exact_1/Gelu/mul_2 = tf.Reshape(%net_1/exact_1/Gelu/gelu, %net_1/exact_1/unflatten/shape) {{.*}} -> tensor<?x5x6xf32>
    """)
    filecheck(out.text(), """
        CHECK: %net_1/relu_1/Tensordot/Shape = tf.Shape(%ragged)
        CHECK: %net_1/relu_1/Tensordot/concat_1 = tf.ConcatV2(%net_1/relu_1/Tensordot/GatherV2,
        CHECK: %net_1/relu_1/BiasAdd = tf.BiasAdd(%net_1/relu_1/MatMul,
        CHECK: = tf.Relu(%net_1/relu_1/BiasAdd)
        CHECK: %net_1/relu_1/Relu = tf.Reshape({{.*}}, %net_1/relu_1/Tensordot/concat_1) {{.*}} -> tensor<?x?x6xf32>
    """)


def test_bf16(keras_graph):
    out, _ = apply(DenseToMatMul(), keras_graph)
    om = assert_bf16_close(keras_graph, out, feeds=feeds(keras_graph, 2, 3))
    assert any(n.op_type in ("MatMul", "_FusedMatMul") and n.attrs["T"].name == "bf16" for n in om.ir.nodes())


def _w(shape, seed):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_tensordot_with_add_bias_and_a_shared_bias_output():
    """tf.tensordot + AddV2 of a [1, N] bias; a bias output read twice keeps its activation outside."""
    def fn(x):
        y = tf.tensordot(x, _w((8, 6), 1), axes=1) + _w((1, 6), 2)
        z = tf.tensordot(x, _w((8, 6), 3), axes=1) + _w((6,), 4)
        return [tf.nn.elu(y), tf.sigmoid(z) + z]
    g = prepared(build(fn, [[None, 5, 8]]))
    out, res = apply(DenseToMatMul(), g)
    assert res.counts == {"rewritten": 2, "bias": 2, "activation": 1}
    assert ops(out).count("BiasAdd") == 2 and "AddV2" in ops(out)
    (elu,) = [n for n in out.nodes() if n.op_type == "Elu"]
    assert elu.inputs[0].node.op_type == "BiasAdd" and elu.outputs[0].shape.rank == 2
    (sig,) = [n for n in out.nodes() if n.op_type == "Sigmoid"]
    assert sig.inputs[0].node.op_type == "Reshape"
    assert_same_outputs(g, out, **TOL)


@pytest.mark.parametrize("fn", [
    # Reshaped back to something else than x's leading dimensions.
    lambda x: tf.reshape(tf.matmul(tf.reshape(x, [-1, 8]), _w((8, 6), 1)), [-1, 6]),
    lambda x: tf.reshape(tf.matmul(tf.reshape(x, [-1, 8]), _w((8, 6), 1)), [5, -1, 6]),
    lambda x: tf.reshape(tf.matmul(tf.reshape(x, [-1, 8]), _w((8, 6), 1)), [-1, 1, 6]),
    # The 2-D product has a second reader.
    lambda x: (lambda m: [tf.reshape(m, [-1, 5, 6]), m])(tf.matmul(tf.reshape(x, [-1, 8]), _w((8, 6), 1))),
])
def test_other_reshapes_stay(fn):
    g = prepared(build(fn, [[None, 5, 8]]))
    out, res = apply(DenseToMatMul(), g)
    assert not res.changed and out.text() == g.text()


def test_cost_model_sizes_survive_the_flatten(keras_graph):
    """The bf16 cost model counts per-sample sizes: a [-1, K] flatten folds the sequence into the unknown
    batch, and the MatMul's FLOPs and the 2-D values' bytes must still count it."""
    from graphir.transforms.bf16_cost import node_flops, value_bytes

    out, _ = apply(DenseToMatMul(), keras_graph)
    for g in (keras_graph, out):
        (mm,) = [n for n in g.nodes() if n.op_type == "MatMul" and "linear" in n.name]  # [?, 3, 4, 8] @ [8, 6]
        assert node_flops(mm) == 2 * 3 * 4 * 8 * 6
        ((reader, _),) = g.uses(mm.outputs[0])
        assert value_bytes(reader.outputs[0]) == 4 * 3 * 4 * 6
