"""The onnx dialect: op data read from the onnx.defs schemas at the graph's op set, and the builders."""
import numpy as np
import onnx
import pytest

import graphir
import onnx_models as M
from graphir.backends.onnx import to_model
from graphir.dialects.onnx import ONNX, schema
from graphir.ir import DType, TensorType
from graphir.ir.registry import op_info
from graphir.ir.types import Shape

f32, i64, f16 = DType.get("f32"), DType.get("i64"), DType.get("f16")


def test_op_data_comes_from_the_schemas():
    assert op_info("onnx", "Add", 17).commutative and op_info("onnx", "Add", 17).pure
    assert not op_info("onnx", "Sub", 17).commutative
    assert op_info("onnx", "RandomNormal", 17).stateful       # NodeDeterminism.NonDeterministic
    assert op_info("onnx", "If", 17).control_flow             # has graph attributes
    assert op_info("onnx", "Loop", 17).control_flow and not op_info("onnx", "Loop", 17).foldable
    assert op_info("onnx", "Constant", 17).constant_attr == "value"
    assert op_info("onnx", "Identity", 17).identity_like
    unknown = op_info("onnx", "local.AddMul", 17)
    assert not unknown.known and unknown.side_effecting
    # Versioned: the schema in force at each op set.
    assert schema("Reshape", 13).since_version == 13
    assert schema("Reshape", 17).since_version == 14
    assert [i.name for i in schema("Clip", 13).inputs] == ["input", "min", "max"]
    assert schema("FrobnicateV2", 17) is None


def test_expected_input_dtypes_bind_type_parameters():
    g = graphir.load(M.cnn())
    assert ONNX.expected_input_dtypes(g.node("flatten")) == [f32, i64]   # Reshape: T and tensor(int64)
    assert ONNX.expected_input_dtypes(g.node("conv")) == [f32, f32, f32]
    drop = g.node("drop")                                                  # optional inputs left out
    assert ONNX.expected_input_dtypes(drop) == [f32]


def test_builders_make_valid_onnx():
    g = graphir.load(M.cnn())
    relu = g.node("relu2")
    h = relu.outputs[0]
    c = ONNX.make_constant(g, np.float32(0.5), "half", like=relu)
    assert c.is_initializer and c.name == "half"
    assert ONNX.make_constant(g, np.float32(0.25), "half", like=relu).name == "half_0"
    cast = ONNX.make_cast(g, h, f16, "to_f16", like=relu)
    assert ONNX.cast_target(cast.node) is f16
    back = ONNX.make_cast(g, cast, f32, "to_f32", like=relu)
    mul = g.add_node("Mul", [back, c], {}, [h.type], domain="onnx", name="scale")
    gemm = g.node("gemm")
    g.set_input(gemm, 0, mul.outputs[0])
    extra = ONNX.make_placeholder(g, "extra", TensorType(f32, Shape([None, 3, 8, 8])))
    assert extra.is_argument
    g.verify()
    m = to_model(g)
    onnx.checker.check_model(m, full_check=True)
    assert [n.op_type for n in m.graph.node if n.name in ("to_f16", "to_f32", "scale")] == ["Cast", "Cast", "Mul"]
    assert "extra" in [i.name for i in m.graph.input]


def test_verifier_checks_input_counts_against_the_schemas():
    from graphir.ir import Graph, VerificationError

    g = Graph()
    g.opset_imports["onnx"] = 17
    t = TensorType(f32, Shape([2]))
    x = g.add_argument("x", t)
    g.add_node("Add", [x, x, x], {}, [t], domain="onnx", name="add3")
    h = g.add_argument("h", TensorType(f16, Shape([2])))
    g.add_node("Sub", [x, h], {}, [t], domain="onnx", name="sub")
    with pytest.raises(VerificationError) as e:
        g.verify()
    assert e.value.errors == ["node 'add3' (onnx.Add): expects 2 inputs, has 3",
                              "node 'sub' (onnx.Sub): input 1 (h) is f16, expected f32"]
