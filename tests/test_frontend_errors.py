"""Bad input: one-line ModelLoadError, input untouched, nothing written; unknown ops pass through."""
import hashlib
import os

import numpy as np
import pytest

import graphir
from graphir.backends.tf import to_graph_def
from graphir.errors import GraphirError, ModelLoadError
from graphir.frontends.tf import from_graph_def
from graphir.runtime_check import Runner


def _hash_tree(path):
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in sorted(os.walk(path)):
            for f in sorted(files):
                h.update(f.encode())
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(fh.read())
    elif os.path.exists(path):
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def _write(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _bad_inputs(tmp_path, tf1_while_gd):
    rng = np.random.default_rng(0)
    data = tf1_while_gd.SerializeToString()
    nosm = tmp_path / "no_saved_model"
    nosm.mkdir()
    (nosm / "variables").mkdir()
    # A GraphDef cut at a node boundary parses, but refers to nodes that are gone.
    from tensorflow.core.framework import graph_pb2

    cut = graph_pb2.GraphDef()
    cut.node.extend(tf1_while_gd.node[len(tf1_while_gd.node) // 2:])
    return {
        "missing": (str(tmp_path / "missing.pb"), "no such file or directory"),
        "random": (_write(tmp_path / "random.pb", rng.bytes(37)), "not a TensorFlow GraphDef"),
        "truncated": (_write(tmp_path / "trunc.pb", data[: len(data) // 2]), "not a TensorFlow GraphDef"),
        "cut": (_write(tmp_path / "cut.pb", cut.SerializeToString()), "invalid GraphDef"),
        "empty": (_write(tmp_path / "empty.pb", b""), "empty file"),
        "no_saved_model": (str(nosm), "no saved_model.pb"),
        "bad_keras": (_write(tmp_path / "bad.keras", rng.bytes(64)), "not a Keras .keras archive"),
        "bad_keras_zip": (_write(tmp_path / "zip.keras", _zip_bytes()), "cannot load Keras model"),
        "bad_h5": (_write(tmp_path / "bad.h5", rng.bytes(64)), "cannot load Keras model"),
        "bad_pbtxt": (_write(tmp_path / "bad.pbtxt", b"node { name: 'x' op: }"), "not a TensorFlow text GraphDef"),
    }


def _zip_bytes():
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a model")
    return buf.getvalue()


CASES = ["missing", "random", "truncated", "cut", "empty", "no_saved_model", "bad_keras", "bad_keras_zip",
         "bad_h5", "bad_pbtxt"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, tf1_while_gd):
    path, expect = _bad_inputs(tmp_path, tf1_while_gd)[case]
    before = _hash_tree(path)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(ModelLoadError) as ei:
        graphir.load(path)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(path + ": ") and expect in msg, msg
    assert _hash_tree(path) == before
    assert sorted(os.listdir(tmp_path)) == listing


def test_random_bytes_never_load(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(40):
        p = _write(tmp_path / f"r{i}.pb", rng.bytes(int(rng.integers(1, 300))))
        with pytest.raises(ModelLoadError) as ei:
            graphir.load(p)
        assert "\n" not in str(ei.value)


def test_unsupported_object():
    with pytest.raises(ModelLoadError, match="^unsupported model object of type int$"):
        graphir.load(42)


@pytest.mark.parametrize("kind,name,msg", [
    ("outputs", "foo", "unknown output 'foo': no node named 'foo' in the graph"),
    ("outputs", "y:3", "unknown output 'y:3': node 'y' has 1 output(s)"),
    ("inputs", "nope", "unknown input 'nope': no node named 'nope' in the graph"),
])
def test_unknown_signature_name(tmp_path, tf1_while_gd, kind, name, msg):
    p = _write(tmp_path / "m.pb", tf1_while_gd.SerializeToString())
    with pytest.raises(ModelLoadError) as ei:
        graphir.load(p, **{kind: name})
    assert str(ei.value) == msg


def test_failed_save_leaves_nothing(tmp_path, tf1_while_gd):
    from graphir.ir import Tensor

    graph = from_graph_def(tf1_while_gd)
    w = graph.node("w")
    w.attrs["value"] = Tensor(w.attrs["value"].dtype, w.attrs["value"].shape, digest="0" * 16)
    msg = "^constant 'w' was elided from the text dump; dump with --full-constants$"
    for name, fmt in (("out.pb", "pb"), ("out.pbtxt", "pbtxt"), ("out_sm", "saved_model")):
        with pytest.raises(GraphirError, match=msg):
            graph.save(str(tmp_path / name), format=fmt)
    assert os.listdir(tmp_path) == []


def test_elided_library_is_an_error(tf2_functional_gd):
    from graphir.ir.printer import Elided

    graph = from_graph_def(tf2_functional_gd)
    graph.attrs["tf.library"] = Elided("0" * 16, 100)
    with pytest.raises(GraphirError, match="elided"):
        to_graph_def(graph)


def _custom_graph_def():
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.nn.relu(x, name="y")
        tf.identity(y, name="z")
        tf.math.square(y, name="w")
    gd = g.as_graph_def()
    for n in gd.node:
        if n.name == "z":  # an op this TF does not know, with two outputs used downstream
            n.op = "MyCustomOp"
            n.attr["note"].s = b"\xffbinary"
            n.attr["_output_shapes"].list.shape.add().dim.add(size=-1)
            n.device = "/device:CPU:0"
        if n.name == "w":
            n.input[0] = "z:1"
    return gd


def test_unknown_op_passes_through(tmp_path):
    gd = _custom_graph_def()
    p = _write(tmp_path / "custom.pb", gd.SerializeToString())
    before = _hash_tree(p)
    graph = graphir.load(p)
    z = graph.node("z")
    assert z.op_type == "MyCustomOp" and not z.info.known
    assert len(z.outputs) == 2 and z.outputs[1].dtype.name == "f32"
    assert z.outputs[0].shape.rank == 1
    assert z.attrs["note"] == b"\xffbinary"
    graph.verify()
    assert [p.name for p in graph.outputs] == ["w"]
    assert to_graph_def(graph) == gd
    out = tmp_path / "custom_out.pb"
    graph.save(str(out))
    assert _hash_tree(p) == before
    from tensorflow.core.framework import graph_pb2

    assert graph_pb2.GraphDef.FromString(out.read_bytes()) == gd


def test_known_part_of_graph_with_custom_op_runs():
    gd = _custom_graph_def()
    graph = from_graph_def(gd, outputs=["y"])
    assert "z" not in graph and "w" not in graph
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    np.testing.assert_array_equal(Runner(graph)([x])[0], np.maximum(x, 0))


def test_unwritable_outputs_are_one_line_errors(tmp_path):
    graph = from_graph_def(_custom_graph_def())
    with pytest.raises(GraphirError, match="cannot write") as ei:
        graph.save(str(tmp_path / "no" / "such" / "dir" / "m.pb"))
    assert "\n" not in str(ei.value)
    # TF cannot build a SavedModel around an op it does not know: a clean error, no directory left.
    with pytest.raises(GraphirError, match="cannot write SavedModel") as ei:
        graph.save(str(tmp_path / "sm"), format="saved_model")
    assert "\n" not in str(ei.value)
    with pytest.raises(GraphirError, match="unknown output format"):
        graph.save(str(tmp_path / "m.tflite"), format="tflite")
    with pytest.raises(GraphirError, match="not an ONNX graph"):  # no TF -> ONNX export (yet)
        graph.save(str(tmp_path / "m.onnx"), format="onnx")
    assert os.listdir(tmp_path) == []
