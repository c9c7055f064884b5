"""Bad ONNX input: one line, exit code 2, nothing written; and the ONNX command-line paths that work."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx.external_data_helper import convert_model_to_external_data

import onnx_models as M
from test_cli import assert_one_line_error, graphir_inproc, snapshot


def _tiny(nodes, opset=M.OPSET, domain_opsets=()):
    g = h.make_graph(nodes, "bad", [h.make_tensor_value_info("X", TP.FLOAT, [2])],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [2])])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset), *domain_opsets])


def truncated(d):
    data = M.cnn().SerializeToString()
    (d / "m.onnx").write_bytes(data[: len(data) // 3])


def garbage(d):
    (d / "m.onnx").write_bytes(b"this is not a protobuf \xff\xfe\x00 at all" * 10)


def fails_checker(d):
    onnx.save(_tiny([h.make_node("Add", ["X"], ["Y"])]), d / "m.onnx")  # Add needs two inputs


def old_opset(d):
    onnx.save(_tiny([h.make_node("Relu", ["X"], ["Y"])], opset=11), d / "m.onnx")


def no_schema(d):
    onnx.save(_tiny([h.make_node("FrobnicateV2", ["X"], ["Y"])]), d / "m.onnx")


def missing_external_data(d):
    m = M.cnn()
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="w.bin", size_threshold=64)
    onnx.save(m, d / "m.onnx")
    os.remove(d / "w.bin")


def _short_weight(d, elements):
    """A MatMul model whose weight's raw_data is 4 bytes short of its shape."""
    w = np.ones((2, elements // 2), np.float32)
    t = onnx.numpy_helper.from_array(w, "W")
    t.raw_data = t.raw_data[:-4]
    g = h.make_graph([h.make_node("MatMul", ["X", "W"], ["Y"])], "short",
                     [h.make_tensor_value_info("X", TP.FLOAT, [1, 2])],
                     [h.make_tensor_value_info("Y", TP.FLOAT, [1, elements // 2])], [t])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", M.OPSET)]), d / "m.onnx")


def short_small_weight(d):
    _short_weight(d, 64)


def short_large_weight(d):  # over the size the frontend stubs out while ONNX checks the model
    _short_weight(d, 1 << 16)


BAD = {
    truncated: "not a readable ONNX model",
    garbage: "not a readable ONNX model",
    fails_checker: "fails the ONNX checker",
    old_opset: "op set 11 is below 13",
    no_schema: "no schema for op 'FrobnicateV2'",
    missing_external_data: "external data file 'w.bin' of tensor",
    short_small_weight: "fails the ONNX checker",
    short_large_weight: "fails the ONNX checker: tensor 'W' has 262140 bytes of raw_data; its shape and type need 262144",
}


@pytest.mark.parametrize("make", list(BAD), ids=[f.__name__ for f in BAD])
@pytest.mark.parametrize("cmd", ["compile", "dump", "check"])
def test_bad_onnx_input(make, cmd, tmp_path, capsys):
    make(tmp_path)
    before = snapshot(tmp_path)
    args = {"compile": ["compile", "m.onnx", "-o", "out.onnx"], "dump": ["dump", "m.onnx", "-o", "out.gir"],
            "check": ["check", "m.onnx", "m.onnx"]}[cmd]
    r = graphir_inproc(capsys, *args, cwd=tmp_path)
    assert_one_line_error(r, BAD[make])
    assert snapshot(tmp_path) == before


def test_bf16_with_onnx_output_is_refused(tmp_path, capsys):
    onnx.save(M.cnn(), tmp_path / "m.onnx")
    before = snapshot(tmp_path)
    r = graphir_inproc(capsys, "compile", "m.onnx", "-o", "out.onnx", "--precisions", "bf16", cwd=tmp_path)
    assert_one_line_error(r, "bf16 is not supported for ONNX")
    assert snapshot(tmp_path) == before


def test_compile_verify_and_check_run_on_ort(tmp_path, capsys):
    onnx.save(M.cnn(), tmp_path / "m.onnx")
    r = graphir_inproc(capsys, "compile", "m.onnx", "-o", "out.onnx", "--stats", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "onnx-fuse" in r.stdout
    assert r.stderr.startswith("graphir: wrote out.onnx (14 -> 7 nodes, fp32; verified on random inputs")
    onnx.checker.check_model(str(tmp_path / "out.onnx"), full_check=True)
    r = graphir_inproc(capsys, "check", "m.onnx", "out.onnx", "--samples", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout
    # A model that computes something else fails the check (exit 1).
    other = M.cnn(seed=1)
    onnx.save(other, tmp_path / "other.onnx")
    r = graphir_inproc(capsys, "check", "m.onnx", "other.onnx", cwd=tmp_path)
    assert r.returncode == 1
    assert "FAIL" in r.stdout


def test_in_memory_model_proto_and_inputs_outputs_override():
    import graphir

    g = graphir.load(M.cnn(), outputs="fc_out")
    assert [p.name for p in g.outputs] == ["fc_out"]
    assert g.op_histogram() == {"BatchNormalization": 1, "Conv": 1, "Dropout": 1, "Identity": 1, "MatMul": 1,
                                "Add": 1, "Relu": 1, "Reshape": 1, "Transpose": 2}
    cut = graphir.load(M.cnn(), inputs="flat", outputs="fc_out")
    assert cut.op_histogram() == {"Add": 1, "MatMul": 1}
    assert [p.name for p in cut.inputs] == ["flat"]
    assert sorted(cut.initializers) == ["FB", "FW"]
    x = np.ones((2, 64), np.float32)
    from graphir.ir.dialect import graph_dialect

    (y,) = graph_dialect(cut).runner(cut)({"flat": x})
    assert y.shape == (2, 16)
