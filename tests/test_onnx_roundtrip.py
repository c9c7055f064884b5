"""ONNX -> IR -> ONNX: byte-identical for untouched models (names, initializers, metadata, doc strings, op set
imports, local functions, external-data layout, every element type), checker-clean, same numbers on ORT,
and the text form of ONNX graphs round-trips."""
import os
import resource

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.external_data_helper import convert_model_to_external_data

import graphir
import onnx_models as M
from graphir.backends.onnx import to_model
from graphir.ir.parser import parse
from graphir.ir.types import Subgraph
from graphir.runtime_check.ort_runner import session

BUILDERS = {"cnn": M.cnn, "control_flow": M.control_flow, "with_function": M.with_function,
            "every_dtype": M.every_dtype}


def serialized(m) -> bytes:
    return m.SerializeToString(deterministic=True)


def run(model, feeds):
    sess = session(model)
    return sess.run(None, feeds)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_round_trip_is_byte_identical_and_checker_clean(name, tmp_path):
    m = BUILDERS[name]()
    onnx.checker.check_model(m, full_check=True)
    g = graphir.load(m)
    out = to_model(g)
    assert serialized(out) == serialized(m)
    onnx.checker.check_model(out, full_check=True)
    # Through files too (the path frontend reads without external data; the backend writes atomically).
    src, dst = tmp_path / "m.onnx", tmp_path / "rt.onnx"
    onnx.save(m, src)
    graphir.load(str(src)).save(str(dst))
    assert dst.read_bytes() == src.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "rt.onnx"]  # no temporaries left behind


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_text_form_round_trips(name):
    g = graphir.load(BUILDERS[name]())
    for full in (False, True):
        text = g.text(full_constants=full)
        assert parse(text).text(full_constants=full) == text


def test_subgraph_captures_are_the_outer_values():
    g = graphir.load(M.control_flow())
    loop = g.node("loop")
    body = loop.attrs["body"]
    assert isinstance(body, Subgraph)
    assert [v.name for v in body.captures] == ["zero", "t", "S"]
    assert body.captures[1] is g.node("square").outputs[0]
    assert body.captures[0] is g.initializers["zero"]
    # The nested If inside the body captures body values, and the body captures what the If needs from
    # two levels up (t, S) on its behalf.
    inner = next(n for n in body.graph.nodes() if n.op_type == "If")
    then = inner.attrs["then_branch"]
    assert [v.name for v in then.captures] == ["acc_in", "S"]
    assert then.captures[1] is body.graph.captures[2]
    # Reading a value from a body counts as a use: dead-code elimination keeps "square".
    assert any(slot == ("body", 1) for _, slot in g.uses(g.node("square").outputs[0]))


def test_control_flow_runs_the_same_after_round_trip_and_pipeline():
    m = M.control_flow()
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32)
    want = run(m, {"X": x})
    g = graphir.load(m)
    np.testing.assert_array_equal(run(to_model(g), {"X": x})[1], want[1])
    opt = graphir.compile(m)
    onnx.checker.check_model(to_model(opt.ir), full_check=True)
    got = run(to_model(opt.ir), {"X": x})
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_local_function_and_metadata_are_kept():
    m = M.with_function()
    g = graphir.load(m)
    assert g.attrs["onnx.producer_name"] == "tests"
    assert g.attrs["onnx.model_doc_string"] == "model doc"
    assert g.attrs["onnx.metadata_props"] == [["author", "graphir"], ["purpose", "round trip"]]
    assert g.opset_imports == {"onnx": M.OPSET, "local": 1}
    fns = [onnx.FunctionProto.FromString(b) for b in g.attrs["onnx.functions"]]
    assert [(f.domain, f.name) for f in fns] == [("local", "AddMul")]
    # The calls are ops graphir knows nothing about: no pass may fold, merge or drop them.
    assert not g.node("call1").info.known
    opt = graphir.compile(m)
    assert opt.ir.op_histogram() == {"local.AddMul": 2}
    out = to_model(opt.ir)
    assert out.functions[0] == m.functions[0]
    assert out.graph.node[0].doc_string == "first call"
    x, y = np.ones((2, 4), np.float32), np.full((2, 4), 2.0, np.float32)
    np.testing.assert_array_equal(run(out, {"X": x, "Y": y})[0], run(m, {"X": x, "Y": y})[0])


def test_every_dtype_keeps_its_values():
    m = M.every_dtype()
    g = graphir.load(m)
    for t in m.graph.initializer:
        ours = g.initializers[t.name].const
        want = nh.to_array(t)
        got = ours.numpy()
        assert got.dtype == want.dtype, t.name
        assert np.array_equal(got.view(np.uint8) if got.dtype.kind not in "OSU" else got,
                              want.view(np.uint8) if want.dtype.kind not in "OSU" else want), t.name
    # A constant graphir made itself (not the decoded original) is encoded back to the same bytes.
    from graphir.ir.types import Tensor

    for k, v in g.initializers.items():
        v.const = Tensor.from_array(v.const.numpy(), v.const.dtype)
    assert serialized(to_model(g)) == serialized(m)


def _external_model(tmp_path, location="weights.bin"):
    m = M.cnn(channels=16)  # a conv weight over 1 KB: its folded copy goes to the output's data file
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location=location, size_threshold=64)
    d = tmp_path / "src"
    d.mkdir()
    onnx.save(m, d / "model.onnx")
    return d


def test_external_data_layout_is_kept(tmp_path):
    src = _external_model(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    g = graphir.load(str(src / "model.onnx"))
    g.save(str(out / "model.onnx"))
    assert (out / "model.onnx").read_bytes() == (src / "model.onnx").read_bytes()
    assert (out / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    # Next to its input, the data file is already in place: it is neither rewritten nor duplicated.
    before = os.stat(src / "weights.bin")
    g.save(str(src / "copy.onnx"))
    after = os.stat(src / "weights.bin")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert sorted(os.listdir(src)) == ["copy.onnx", "model.onnx", "weights.bin"]


def test_external_data_model_compiles_and_runs(tmp_path):
    src = _external_model(tmp_path)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = session(str(src / "model.onnx")).run(None, {"X": x})[0]
    before = {f: (src / f).read_bytes() for f in os.listdir(src)}
    opt = graphir.compile(str(src / "model.onnx"))
    dst = tmp_path / "opt.onnx"
    opt.save(str(dst))
    onnx.checker.check_model(str(dst), full_check=True)
    # Folded weights are new tensors: they go to the output's own data file, the input's stays as it was.
    assert (tmp_path / "opt.onnx.data").exists()
    got = session(str(dst)).run(None, {"X": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert {f: (src / f).read_bytes() for f in os.listdir(src)} == before


def test_large_external_data_is_not_read(tmp_path):
    """A 3 GB weight on disk (a sparse file): loading, printing and writing next to it read none of it."""
    n = 3 << 30
    d = tmp_path / "big"
    d.mkdir()
    with open(d / "big.bin", "wb") as f:
        f.truncate(n)
    w = TP(name="W", data_type=TP.FLOAT, dims=[n // 4], data_location=TP.EXTERNAL)
    for k, v in (("location", "big.bin"), ("offset", "0"), ("length", str(n))):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = h.make_graph([h.make_node("Identity", ["W"], ["Y"])], "big", [],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [n // 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)]), d / "big.onnx")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    graph = graphir.load(str(d / "big.onnx"))
    graph.save(str(d / "again.onnx"))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (rss1 - rss0) * 1024 < n // 4  # ru_maxrss is in KiB
    again = onnx.load(str(d / "again.onnx"), load_external_data=False)
    assert again.graph.initializer[0].external_data == w.external_data
    assert sorted(os.listdir(d)) == ["again.onnx", "big.bin", "big.onnx"]


def test_input_with_default_stays_an_input():
    x = h.make_tensor_value_info("X", TP.FLOAT, [2])
    k = h.make_tensor_value_info("K", TP.FLOAT, [2])
    g = h.make_graph([h.make_node("Mul", ["X", "K"], ["Y"])], "d", [x, k],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [2])],
                     [nh.from_array(np.array([2.0, 3.0], np.float32), "K")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)])
    opt = graphir.compile(m)
    assert [p.name for p in opt.ir.inputs] == ["X", "K"]
    assert opt.ir.op_histogram() == {"Mul": 1}  # K may be fed: not a constant to fold
    assert serialized(to_model(graphir.load(m))) == serialized(m)


def test_cli_dump_prints_the_text_ir(tmp_path, capsys):
    from graphir.cli import main

    onnx.save(M.control_flow(), tmp_path / "cf.onnx")
    capsys.readouterr()
    assert main(["dump", str(tmp_path / "cf.onnx")]) == 0
    out = capsys.readouterr().out
    assert out == graphir.load(str(tmp_path / "cf.onnx")).text()
    assert parse(out).text() == out


def test_sibling_bodies_may_reuse_names():
    """Both branches define "out" and "k": legal in ONNX (no shadowing of an outer name), kept as is."""
    def branch(op):
        return h.make_graph([h.make_node("Constant", [], ["k"], value_float=2.0), h.make_node(op, ["X", "k"], ["out"])],
                            op, [], [h.make_tensor_value_info("out", TP.FLOAT, [2])])

    g = h.make_graph([h.make_node("ReduceSum", ["X"], ["s"], keepdims=0),
                      h.make_node("Greater", ["s", "zero"], ["c"]),
                      h.make_node("If", ["c"], ["Y"], then_branch=branch("Mul"), else_branch=branch("Add"))],
                     "siblings", [h.make_tensor_value_info("X", TP.FLOAT, [2])],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [2])], [nh.from_array(np.array(0.0, np.float32), "zero")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)])
    onnx.checker.check_model(m, full_check=True)
    assert serialized(to_model(graphir.load(m))) == serialized(m)
    x = np.array([1.0, -3.0], np.float32)
    opt = graphir.compile(m)
    np.testing.assert_array_equal(run(to_model(opt.ir), {"X": x})[0], run(m, {"X": x})[0])


def test_sparse_initializer():
    """Kept sparse (ONNX types it sparse_tensor, which the default-domain ops do not take), decodable."""
    values = nh.from_array(np.array([5.0, -1.0], np.float32), "S")
    indices = nh.from_array(np.array([1, 6], np.int64), "S_idx")
    g = h.make_graph([h.make_node("Relu", ["X"], ["Y"])], "sparse",
                     [h.make_tensor_value_info("X", TP.FLOAT, [2, 4])], [h.make_tensor_value_info("Y", TP.FLOAT, [2, 4])])
    g.sparse_initializer.append(h.make_sparse_tensor(values, indices, [2, 4]))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)])
    onnx.checker.check_model(m, full_check=True)
    graph = graphir.load(m)
    want = np.zeros((2, 4), np.float32)
    want[0, 1], want[1, 2] = 5.0, -1.0
    np.testing.assert_array_equal(graph.initializers["S"].const.numpy(), want)
    assert serialized(to_model(graph)) == serialized(m)


def _weights_everywhere(seed=0):
    """Tensors over the backend's STREAM_MIN_BYTES in every place a model holds them: main-graph
    initializers (raw; one also with fields after raw_data; one as float_data; one with a field this onnx
    does not know; a float16 one), an input with a default, If branch and Loop body initializers, a
    Constant node's tensor, a sparse initializer; a local function; a Conv + BatchNormalization whose
    folding makes new tensors."""
    rng = np.random.default_rng(seed)
    f, n = np.float32, 64

    def w(name, *shape, dtype=f):
        return nh.from_array((rng.standard_normal(shape) / 8).astype(dtype), name)

    m1 = w("M1", 2048, 128)
    m1.doc_string = "after raw_data"
    m1.data_location = TP.DEFAULT
    h.set_metadata_props(m1, {"origin": "test"})
    m2 = h.make_tensor("M2", TP.FLOAT, [128, n], (rng.standard_normal(128 * n) / 8).astype(f).tolist())
    m3 = w("M3", n, n)
    m3.MergeFromString(b"\xc0\x3e\x2a")  # field 1000 = 42: unknown to onnx
    bn = [nh.from_array((rng.random(32) + 0.5).astype(f), "g"), w("b", 32), w("m", 32),
          nh.from_array((rng.random(32) + 0.5).astype(f), "v")]
    inits = [w("W", 32, 16, 3, 3), w("cb", 32), *bn, nh.from_array(np.array([1, 2048], np.int64), "shp"),
             m1, m2, m3, w("H", n, n, dtype=np.float16), nh.from_array(np.array(0.0, f), "zero"),
             nh.from_array(np.array(2, np.int64), "trip"), nh.from_array(np.array(True), "cond"),
             w("K", n, n)]  # (graphir writes an input's default after the other initializers)

    def branch(op, name):
        return h.make_graph([h.make_node(op, ["h4", name], [f"{name}_out"])], name, [],
                            [h.make_tensor_value_info(f"{name}_out", TP.FLOAT, [n, n])], [w(name, n, n)])

    body = h.make_graph([h.make_node("Identity", ["c_in"], ["c_out"]), h.make_node("Add", ["acc", "L"], ["acc_out"])],
                        "body", [h.make_tensor_value_info("i", TP.INT64, []),
                                 h.make_tensor_value_info("c_in", TP.BOOL, []),
                                 h.make_tensor_value_info("acc", TP.FLOAT, [n, n])],
                        [h.make_tensor_value_info("c_out", TP.BOOL, []),
                         h.make_tensor_value_info("acc_out", TP.FLOAT, [n, n])], [w("L", n, n)])
    fn = h.make_function("local", "AddMul", ["a", "b"], ["y"],
                         [h.make_node("Add", ["a", "b"], ["s"]), h.make_node("Mul", ["s", "b"], ["y"])],
                         [h.make_opsetid("", M.OPSET)])
    nodes = [
        h.make_node("Conv", ["X", "W", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        h.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn"),
        h.make_node("Reshape", ["bn", "shp"], ["flat"], name="flat"),
        h.make_node("MatMul", ["flat", "M1"], ["h0"], name="mm1"),
        h.make_node("MatMul", ["h0", "M2"], ["h1"], name="mm2"),
        h.make_node("MatMul", ["h1", "M3"], ["h2"], name="mm3"),
        h.make_node("MatMul", ["h2", "K"], ["h3"], name="mmk"),
        h.make_node("Constant", [], ["C"], name="const", value=w("C", n, n)),
        h.make_node("Mul", ["h3", "C"], ["h4"], name="mulc"),
        h.make_node("ReduceSum", ["h4"], ["s"], keepdims=0, name="sum"),
        h.make_node("Greater", ["s", "zero"], ["gt"], name="gt"),
        h.make_node("If", ["gt"], ["h5"], name="if", then_branch=branch("Add", "T"),
                    else_branch=branch("Sub", "E")),
        h.make_node("Loop", ["trip", "cond", "h5"], ["h6"], name="loop", body=body),
        h.make_node("Cast", ["h6"], ["h6h"], to=TP.FLOAT16, name="tohalf"),
        h.make_node("Mul", ["h6h", "H"], ["h7h"], name="mulh"),
        h.make_node("Cast", ["h7h"], ["h7"], to=TP.FLOAT, name="tofloat"),
        h.make_node("AddMul", ["h7", "h7"], ["Y"], domain="local", name="call"),
    ]
    g = h.make_graph(nodes, "everywhere", [h.make_tensor_value_info("X", TP.FLOAT, [1, 16, 8, 8]),
                                           h.make_tensor_value_info("K", TP.FLOAT, [n, n])],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [n, n])], inits)
    g.sparse_initializer.append(h.make_sparse_tensor(w("S", 2048), nh.from_array(np.arange(0, 4096, 2), "S_idx"),
                                                     [4096]))
    return h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET), h.make_opsetid("local", 1)], functions=[fn])


@pytest.mark.parametrize("compiled", [False, True])
def test_saved_file_is_the_serialized_model(compiled, tmp_path):
    """save() streams the file (the weights from their buffers, not through one serialized proto): it is
    still byte for byte the ModelProto to_model builds, serialized, wherever the tensors sit."""
    m = _weights_everywhere()
    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(m, src)
    g = graphir.compile(str(src)).ir if compiled else graphir.load(str(src))
    g.initializers["H"].const.numpy()  # decoded: written from its array; the undecoded from their protos
    for _ in range(2):  # the second time over an existing file of the same name
        g.save(str(dst))
        want = to_model(g, external="keep")
        assert dst.read_bytes() == want.SerializeToString()
        assert onnx.load(str(dst)) == want
    if not compiled:
        assert dst.read_bytes() == src.read_bytes()
    else:
        assert any(v.const.encoded is None and v.const.nbytes >= 4096 for v in g.initializers.values())
        x = np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32)
        k = nh.to_array(m.graph.initializer[-1])
        np.testing.assert_allclose(run(str(dst), {"X": x, "K": k})[0], run(m, {"X": x, "K": k})[0],
                                   rtol=1e-2, atol=1e-2)
    # A smaller model over the bigger one: nothing of the old file is left at the end.
    graphir.load(M.cnn()).save(str(dst))
    assert dst.read_bytes() == serialized(M.cnn())
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "out.onnx"]


def test_new_weights_go_from_their_arrays_to_the_file(tmp_path):
    """A 4 MB folded weight of a model without external data is written from its array: no copy of it
    (a proto's, a serialized model's) is made on the way."""
    from conftest import traced_peak
    from test_onnx_external import _dense_bn

    n = 1024
    opt = graphir.compile(_dense_bn(n))
    (folded,) = [v.const for v in opt.ir.initializers.values()
                 if v.const.encoded is None and v.const.nbytes == n * n * 4]
    folded.numpy()
    dst = tmp_path / "opt.onnx"
    _, peak = traced_peak(lambda: opt.save(str(dst)))
    assert peak < n * n * 4 // 4
    assert dst.read_bytes() == to_model(opt.ir, external="keep").SerializeToString()
