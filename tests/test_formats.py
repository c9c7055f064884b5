"""Model formats in and out: SavedModel, pbtxt, .keras/.h5, in-memory objects, signature overrides."""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphir
from graphir.backends.tf import to_graph_def
from graphir.errors import ModelLoadError
from graphir.frontends.tf import from_graph_def
from graphir.ir import Shape
from graphir.runtime_check import Runner, random_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small_keras():
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((8,), name="feat")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(h)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def x8():
    return np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)


def _serve(path, graph, feeds):
    import tensorflow as tf

    sig = tf.saved_model.load(path).signatures["serving_default"]
    _, spec = sig.structured_input_signature
    assert sorted(spec) == sorted(p.name for p in graph.inputs)
    for p in graph.inputs:
        assert spec[p.name].dtype.as_numpy_dtype == p.value.dtype.np
    assert sorted(sig.structured_outputs) == sorted(p.name for p in graph.outputs)
    out = sig(**{k: tf.constant(v) for k, v in feeds.items()})
    return {k: v.numpy() for k, v in out.items()}


def test_keras_saved_model_to_saved_model(tmp_path, small_keras, x8):
    src = str(tmp_path / "exported")
    small_keras.export(src)
    graph = graphir.load(src)
    assert [p.name for p in graph.inputs] == ["feat"]
    out = str(tmp_path / "graphir_sm")
    graph.save(out, format="saved_model")
    got = _serve(out, graph, {"feat": x8})
    want = _serve(src, graph, {"feat": x8})
    assert got.keys() == want.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], want[k])


def test_keras_file_to_saved_model(tmp_path, small_keras, x8):
    src = str(tmp_path / "m.keras")
    small_keras.save(src)
    graph = graphir.load(src)
    assert [p.name for p in graph.inputs] == ["feat"] and [p.name for p in graph.outputs] == ["probs"]
    graph.save(str(tmp_path / "sm"))  # no suffix: a SavedModel directory
    got = _serve(str(tmp_path / "sm"), graph, {"feat": x8})
    np.testing.assert_allclose(got["probs"], small_keras(x8).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got["probs"], Runner(graph)([x8])[0])


def test_pb_to_saved_model(tmp_path, tf1_while_gd):
    src = tmp_path / "loop.pb"
    src.write_bytes(tf1_while_gd.SerializeToString())
    graph = graphir.load(str(src))
    graph.save(str(tmp_path / "loop_sm"), format="saved_model")
    feeds = random_inputs(graph, dim=3)
    got = _serve(str(tmp_path / "loop_sm"), graph, feeds)
    want = Runner(tf1_while_gd, ["x"], ["y", "steps"])([feeds["x"]])
    np.testing.assert_array_equal(got["y"], want[0])
    assert got["steps"] == want[1] == 5


def test_saved_model_signature_choice(tmp_path, small_keras):
    src = str(tmp_path / "exported")
    small_keras.export(src)
    assert [p.name for p in graphir.load(src, signature="serve").inputs] == ["feat"]
    with pytest.raises(ModelLoadError, match="no signature 'nope' \\(available: serve, serving_default\\)"):
        graphir.load(src, signature="nope")


def test_pbtxt_roundtrip(tmp_path, tf2_functional_gd):
    graph = from_graph_def(tf2_functional_gd)
    graph.save(str(tmp_path / "f.pbtxt"))
    assert (tmp_path / "f.pbtxt").read_text().startswith("node {")
    back = graphir.load(str(tmp_path / "f.pbtxt"))
    assert to_graph_def(back) == tf2_functional_gd
    graph.save(str(tmp_path / "f.pb"))
    assert to_graph_def(graphir.load(str(tmp_path / "f.pb"))) == tf2_functional_gd


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files(tmp_path, small_keras, x8, suffix):
    path = str(tmp_path / ("m" + suffix))
    small_keras.save(path)
    graph = graphir.load(path)
    graph.verify()
    np.testing.assert_allclose(Runner(graph)([x8])[0], small_keras(x8).numpy(), rtol=1e-6, atol=1e-7)


def test_in_memory_objects(small_keras, x8):
    import tensorflow as tf

    want = small_keras(x8).numpy()
    g_keras = graphir.load(small_keras)
    assert [p.name for p in g_keras.outputs] == ["probs"]
    gd = to_graph_def(g_keras)
    tfg = tf.Graph()
    with tfg.as_default():
        tf.graph_util.import_graph_def(gd, name="")

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="feat")])
    def fn(x):
        return small_keras(x)

    for obj in (gd, tfg, fn.get_concrete_function(), fn):
        graph = graphir.load(obj)
        assert [p.value.dtype.name for p in graph.inputs] == ["f32"]
        np.testing.assert_allclose(Runner(graph)([x8])[0], want, rtol=1e-6, atol=1e-7)


def test_load_does_not_modify_graph_def(tf1_while_gd):
    before = tf1_while_gd.SerializeToString()
    graph = graphir.load(tf1_while_gd, inputs="loop/Enter_1", outputs="y")
    assert graph.inputs[0].value.node.op_type == "Placeholder"
    assert tf1_while_gd.SerializeToString() == before


def test_output_override(tf1_while_gd):
    graph = graphir.load(tf1_while_gd, outputs="steps, y:0")
    assert [p.name for p in graph.outputs] == ["steps", "y"]
    graph.verify()
    x = np.ones((2, 8), np.float32)
    want = Runner(tf1_while_gd, ["x"], ["steps", "y"])([x])
    got = Runner(graph)({"x": x})
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_input_override_on_inner_tensor(transformer_gd):
    full = from_graph_def(transformer_gd)
    # Cut where layer 2 starts: the tensor its query projection reads (the residual stream).
    q = next(n for n in full.nodes() if "mha_2" in n.name and "query" in n.name and "MatMul" in n.op_type)
    cut = q.inputs[0].name
    out = full.outputs[0].name
    graph = graphir.load(transformer_gd, inputs=[cut], outputs=[out])
    graph.verify()
    ph = graph.node(cut)
    assert ph.op_type == "Placeholder" and ph.outputs[0].shape == Shape([None, 16, 64])
    assert [p.name for p in graph.inputs] == [cut] and len(graph) < len(full)
    assert "tokens" not in graph  # the original input was pruned away
    h = np.random.default_rng(5).standard_normal((3, 16, 64)).astype(np.float32)
    # TF can feed any tensor: feeding the inner tensor of the original graph is the reference.
    want = Runner(transformer_gd, [cut], [out])([h])[0]
    got = Runner(graph)({cut: h})[0]
    np.testing.assert_array_equal(got, want)
    # The cut graph writes out and reads back as a standalone model.
    again = from_graph_def(to_graph_def(graph))
    assert [p.name for p in again.inputs] == [cut] and [p.name for p in again.outputs] == [out]


def test_runner_feeds_and_metadata(tf1_while_gd):
    graph = from_graph_def(tf1_while_gd)
    r = Runner(graph, intra_op_threads=1, inter_op_threads=1)
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    a = r({"x": x})
    b = r({"x:0": x})
    c = r([x])
    outs, md = r.run_with_metadata([x])
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and np.array_equal(a[0], c[0])
    assert np.array_equal(outs[0], a[0])
    assert md.partition_graphs and any("MatMul" in n.op for pg in md.partition_graphs for n in pg.node)
    with pytest.raises(ValueError, match="missing feeds"):
        r({})
    # Overrides by port or tensor name; the C-level import wraps just those ops.
    assert Runner(graph, inputs=["x"], outputs=["steps"])([x]) == [a[1]]
    assert Runner(graph, inputs=["x:0"], outputs=["steps:0"], optimize=False)([x]) == [a[1]]
    with pytest.raises(KeyError, match="not an input or output"):
        r.tensor("loop/Enter:0")


def test_multi_input_output_keras():
    import keras

    keras.utils.set_random_seed(4)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([a, b])
    m = keras.Model([a, b], [keras.layers.Dense(2, name="head1")(h), keras.layers.Dense(5, name="head2")(h)])
    graph = graphir.load(m)
    assert [p.name for p in graph.inputs] == ["a", "b"] and [p.name for p in graph.outputs] == ["head1", "head2"]
    xa, xb = np.ones((2, 4), np.float32), np.full((2, 3), 0.5, np.float32)
    for got, want in zip(Runner(graph)({"b": xb, "a": xa}), m([xa, xb])):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)
    only = graphir.load(m, outputs="head2")
    assert [p.name for p in only.outputs] == ["head2"]


def test_tf1_saved_model_and_text_named_pb(tmp_path):
    import tensorflow as tf
    from google.protobuf import text_format

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        v = tf.compat.v1.get_variable("v", initializer=np.arange(9, dtype=np.float32).reshape(3, 3),
                                      use_resource=False)
        y = tf.matmul(x, v, name="y")
        with tf.compat.v1.Session(graph=g) as s:
            s.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.saved_model.simple_save(s, str(tmp_path / "sm"), {"inp": x}, {"out": y})
    graph = graphir.load(str(tmp_path / "sm"))
    assert [p.name for p in graph.inputs] == ["inp"] and [p.name for p in graph.outputs] == ["out"]
    assert "VariableV2" not in graph.op_histogram()
    x = np.array([[1.0, -1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(Runner(graph)([x])[0], x @ np.arange(9, dtype=np.float32).reshape(3, 3))
    # A text GraphDef saved under a .pb name still loads.
    (tmp_path / "text.pb").write_text(text_format.MessageToString(to_graph_def(graph)))
    assert to_graph_def(graphir.load(str(tmp_path / "text.pb"))) == to_graph_def(graph)


def test_tf_frontend_does_not_import_select():
    # select sits above the frontends (it asks them for a placeholder); the reverse import was a cycle.
    code = ("import sys, graphir.frontends.tf; "
            "assert 'graphir.frontends.select' not in sys.modules, 'tf frontend imported select'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr
