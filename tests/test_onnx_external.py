"""ONNX models with external data, at a small scale: weights are memory-mapped, not read; an untouched
model round-trips byte for byte even after every weight was decoded; new tensors stream into the output's
data file (no copy of their bytes in the proto), and so do the kept tensors of a data file whose tensors
were mostly replaced; the data files of input and output never collide; ONNX
Runtime runs a temporary model that links the data instead of copying it; a bad data file is one line and
exit 2. (The model over 2 GB is ``benchmarks/onnx_big_model.py``.)"""
import mmap
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.external_data_helper import convert_model_to_external_data, set_external_data

import graphir
import onnx_models as M
from conftest import traced_peak
from graphir.runtime_check.ort_runner import OrtRunner, session
from test_cli import assert_one_line_error, graphir_inproc, snapshot


def _save_external(m, d, location="weights.bin", name="model.onnx"):
    d.mkdir(exist_ok=True)
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location=location, size_threshold=64)
    onnx.save(m, d / name)
    return d / name


def _dense_bn(n=1024, seed=0):
    """X[1, n] -> MatMul (W) -> BatchNormalization -> MatMul (W2) -> Y: folding the BN rewrites W, W2 stays."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [nh.from_array((rng.standard_normal((n, n)) / np.sqrt(n)).astype(f), "W"),
             nh.from_array((rng.random(n) + 0.5).astype(f), "g"), nh.from_array(rng.standard_normal(n).astype(f), "b"),
             nh.from_array(rng.standard_normal(n).astype(f), "m"), nh.from_array((rng.random(n) + 0.5).astype(f), "v"),
             nh.from_array((rng.standard_normal((n, 16)) / np.sqrt(n)).astype(f), "W2")]
    g = h.make_graph([h.make_node("MatMul", ["X", "W"], ["mm"], name="mm"),
                      h.make_node("BatchNormalization", ["mm", "g", "b", "m", "v"], ["bn"], name="bn"),
                      h.make_node("MatMul", ["bn", "W2"], ["Y"], name="mm2")],
                     "dense_bn", [h.make_tensor_value_info("X", TP.FLOAT, [1, n])],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [1, 16])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)])


def _mapping(a):
    """The object at the bottom of an array's buffer chain (an mmap for a mapped file)."""
    while isinstance(a, (np.ndarray, memoryview)):
        a = a.base if isinstance(a, np.ndarray) else a.obj
    return a


def test_external_weights_are_memory_mapped_views(tmp_path):
    path = _save_external(M.cnn(channels=64), tmp_path / "src")
    want = {t.name: nh.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    g = graphir.load(str(path))
    big = [k for k, v in g.initializers.items() if v.const.nbytes >= 4096]
    assert big == ["W", "FW"]
    arrays = {k: g.initializers[k].const.numpy() for k in big}
    maps = {k: _mapping(a) for k, a in arrays.items()}
    for k, a in arrays.items():
        assert isinstance(maps[k], mmap.mmap), k  # a view of the file, not a copy in memory
        assert not a.flags.writeable
        np.testing.assert_array_equal(a, want[k])
    assert maps["W"] is maps["FW"]  # one mapping (one file descriptor) per data file
    # Small tensors are read as before.
    np.testing.assert_array_equal(g.initializers["cb"].const.numpy(), want["cb"])


def test_decoded_weights_still_round_trip_byte_for_byte(tmp_path):
    path = _save_external(M.cnn(channels=64), tmp_path / "src")
    g = graphir.load(str(path))
    for v in g.initializers.values():
        v.const.numpy()  # decoded, but untouched: still written as references to the same bytes
    out = tmp_path / "out"
    out.mkdir()
    g.save(str(out / "model.onnx"))
    assert (out / "model.onnx").read_bytes() == path.read_bytes()
    assert (out / "weights.bin").read_bytes() == (tmp_path / "src" / "weights.bin").read_bytes()
    assert sorted(os.listdir(out)) == ["model.onnx", "weights.bin"]


def test_new_tensors_stream_into_the_data_file(tmp_path):
    n = 1024
    path = _save_external(_dense_bn(n), tmp_path / "src")
    opt = graphir.compile(str(path))
    folded = [v.const for v in opt.ir.initializers.values() if v.const.encoded is None and v.const.nbytes == n * n * 4]
    assert len(folded) == 1
    folded[0].numpy()
    dst = tmp_path / "opt.onnx"
    _, peak = traced_peak(lambda: opt.save(str(dst)))
    # The 4 MB folded weight went from its array to the file: no bytes copy of it was made on the way.
    assert peak < n * n * 4 // 4
    onnx.checker.check_model(str(dst), full_check=True)
    m = onnx.load(str(dst), load_external_data=False)
    (w,) = [t for t in m.graph.initializer if list(t.dims) == [n, n]]
    info = {e.key: e.value for e in w.external_data}
    assert info["location"] == "opt.onnx.data" and int(info["offset"]) % 4096 == 0
    np.testing.assert_array_equal(nh.to_array(w, base_dir=str(tmp_path)), folded[0].numpy())
    # The input's data file was mostly the replaced weight: not copied whole, the kept W2 moved over.
    assert sorted(os.listdir(tmp_path)) == ["opt.onnx", "opt.onnx.data", "src"]
    (w2,) = [t for t in m.graph.initializer if t.name == "W2"]
    np.testing.assert_array_equal(nh.to_array(w2, base_dir=str(tmp_path)),
                                  opt.ir.initializers["W2"].const.numpy())
    x = np.random.default_rng(1).standard_normal((1, n)).astype(np.float32)
    np.testing.assert_allclose(session(str(dst)).run(None, {"X": x})[0],
                               session(str(path)).run(None, {"X": x})[0], rtol=1e-4, atol=1e-5)


def test_input_data_file_named_like_the_outputs(tmp_path):
    """The input's data file is ``model.onnx.data`` and the output is another ``model.onnx``: the kept
    file's copy and the new tensors' file must not be the same file."""
    path = _save_external(M.cnn(channels=16), tmp_path / "src", location="model.onnx.data")
    out = tmp_path / "out"
    out.mkdir()
    graphir.compile(str(path)).save(str(out / "model.onnx"))
    assert sorted(os.listdir(out)) == ["model.onnx", "model.onnx.1.data", "model.onnx.data"]
    assert (out / "model.onnx.data").read_bytes() == (tmp_path / "src" / "model.onnx.data").read_bytes()
    onnx.checker.check_model(str(out / "model.onnx"), full_check=True)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(session(str(out / "model.onnx")).run(None, {"X": x})[0],
                               session(str(path)).run(None, {"X": x})[0], rtol=1e-4, atol=1e-6)


def test_output_next_to_a_data_file_it_no_longer_uses(tmp_path):
    """The conv weight, which BN folding replaces, sits in ``opt.onnx.data`` next to the input; writing
    ``opt.onnx`` there leaves that file (part of the input model) alone."""
    m = M.cnn(channels=16)
    d = tmp_path / "src"
    d.mkdir()
    for t in m.graph.initializer:
        if len(t.raw_data) >= 64:
            set_external_data(t, "opt.onnx.data" if t.name == "W" else "rest.bin")
    onnx.save(m, d / "model.onnx")
    before = snapshot(d)
    graphir.compile(str(d / "model.onnx")).save(str(d / "opt.onnx"))
    after = snapshot(d)
    assert {k: after[k] for k in before} == before
    assert sorted(after) == ["model.onnx", "opt.onnx", "opt.onnx.1.data", "opt.onnx.data", "rest.bin"]
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(session(str(d / "opt.onnx")).run(None, {"X": x})[0],
                               session(str(d / "model.onnx")).run(None, {"X": x})[0], rtol=1e-4, atol=1e-6)


def test_ort_runner_links_the_data_instead_of_copying(tmp_path):
    path = _save_external(M.cnn(channels=16), tmp_path / "src")
    g = graphir.load(str(path))
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = session(str(path)).run(None, {"X": x})[0]
    for optimize in (True, False):  # False: verification, which also skips weight prepacking
        r = OrtRunner(g, optimize=optimize)
        linked = os.path.join(r._tmp.name, "weights.bin")
        assert os.stat(linked).st_ino == os.stat(tmp_path / "src" / "weights.bin").st_ino
        np.testing.assert_allclose(r({"X": x})[0], want, rtol=1e-6, atol=1e-7)
        r.close()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_bad_external_data_file_is_one_line_and_exit_2(damage, tmp_path, capsys):
    _save_external(M.cnn(channels=16), tmp_path, location="w.bin", name="m.onnx")
    if damage == "missing":
        os.remove(tmp_path / "w.bin")
    else:
        with open(tmp_path / "w.bin", "r+b") as f:
            f.truncate(os.path.getsize(tmp_path / "w.bin") // 2)
    before = snapshot(tmp_path)
    r = graphir_inproc(capsys, "compile", "m.onnx", "-o", "out.onnx", cwd=tmp_path)
    assert_one_line_error(r, "external data file 'w.bin'", "missing" if damage == "missing" else "too short")
    assert snapshot(tmp_path) == before


def test_constant_folding_feeds_large_weights_instead_of_serializing_them(tmp_path):
    """ReduceSum of a 4 MB external weight folds to 4 KB: the weight reaches ONNX Runtime as an input (the
    memory-mapped array), not as bytes copied into a model proto."""
    n = 1024
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    g = h.make_graph([h.make_node("ReduceSum", ["W", "axes"], ["s"], name="sum", keepdims=0),
                      h.make_node("Add", ["X", "s"], ["Y"], name="add")], "fold",
                     [h.make_tensor_value_info("X", TP.FLOAT, [n])], [h.make_tensor_value_info("Y", TP.FLOAT, [n])],
                     [nh.from_array(w, "W"), nh.from_array(np.array([0], np.int64), "axes")])
    path = _save_external(h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)]), tmp_path / "src")
    graph = graphir.load(str(path))
    node = graph.node("sum")
    from graphir.ir.dialect import graph_dialect

    (got,), peak = traced_peak(lambda: graph_dialect(graph).evaluate(graph, [node], [node.outputs[0]]))
    assert peak < w.nbytes // 4
    np.testing.assert_allclose(got, w.sum(axis=0), rtol=1e-5, atol=1e-4)
    opt = graphir.compile(str(path))
    assert opt.ir.op_histogram() == {"Add": 1}


def _without_default_location(m):
    """``m`` with every initializer's data_location unset where it says DEFAULT (onnx.load's external-data
    reader sets it, an inline tensor may leave it unset: the same tensor either way)."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for t in m.graph.initializer:
        if t.data_location == TP.DEFAULT:
            t.ClearField("data_location")
    return m


@pytest.mark.parametrize("build", [lambda: M.cnn(channels=64), lambda: _dense_bn(512)])
def test_streamed_external_model_is_the_model(build, tmp_path):
    """An external-data model written by save() (the model file streamed, kept and new weights in data
    files) loads as the model to_model builds in memory; its model file is the canonical serialization."""
    from graphir.backends.onnx import to_model

    path = _save_external(build(), tmp_path / "src")
    for g in (graphir.load(str(path)), graphir.compile(str(path)).ir):
        dst = tmp_path / "out" / "m.onnx"
        dst.parent.mkdir(exist_ok=True)
        g.save(str(dst))
        skeleton = onnx.load(str(dst), load_external_data=False)
        assert any(t.data_location == TP.EXTERNAL for t in skeleton.graph.initializer)
        assert dst.read_bytes() == skeleton.SerializeToString()
        got = onnx.load(str(dst))
        assert _without_default_location(got) == _without_default_location(to_model(g, external="inline"))
