"""The IR core: mutation API, verifier, registry, deterministic printing."""
import numpy as np
import pytest

from graphir.ir import Graph, IRError, Port, Shape, Tensor, TensorType, VerificationError, op_info
from graphir.ir.types import DType, f32, i32


def _t(*dims, dtype=f32):
    return TensorType(dtype, Shape(dims))


def _const(g, name, arr):
    t = Tensor.from_array(arr)
    return g.add_node("Const", attrs={"dtype": t.dtype, "value": t}, output_types=[TensorType(t.dtype, t.shape)],
                      name=name, domain="tf")


def small_graph():
    g = Graph()
    x = g.add_node("Placeholder", attrs={"dtype": f32, "shape": Shape([None, 4])}, output_types=[_t(None, 4)],
                   name="x", domain="tf")
    w = _const(g, "w", np.eye(4, dtype=np.float32))
    mm = g.add_node("MatMul", [x.output(), w.output()], {"T": f32, "transpose_a": False, "transpose_b": False},
                    [_t(None, 4)], name="mm", domain="tf")
    r = g.add_node("Relu", [mm.output()], {"T": f32}, [_t(None, 4)], name="relu", domain="tf")
    g.inputs.append(Port("x", x.output()))
    g.outputs.append(Port("y", r.output()))
    return g


def test_uses_and_replace_all_uses_with():
    g = small_graph()
    mm, relu = g.node("mm"), g.node("relu")
    assert g.uses(mm.output()) == [(relu, 0)]
    ident = g.add_node("Identity", [mm.output()], {"T": f32}, [_t(None, 4)], name="id", domain="tf")
    assert g.replace_all_uses_with(mm.output(), ident.output()) == 2  # relu and ident itself
    # the identity now reads itself: undo that one use, as a pass would
    g.set_input(ident, 0, mm.output())
    assert relu.inputs[0] is ident.output()
    assert g.uses(mm.output()) == [(ident, 0)]
    g.verify()


def test_replace_updates_graph_outputs():
    g = small_graph()
    relu, mm = g.node("relu"), g.node("mm")
    g.replace_all_uses_with(relu.output(), mm.output())
    assert g.outputs[0].value is mm.output()
    g.remove_node(relu)
    g.verify()
    assert "relu" not in g


def test_remove_node_refuses_used_and_signature_nodes():
    g = small_graph()
    with pytest.raises(IRError, match="still used"):
        g.remove_node(g.node("mm"))
    g.replace_all_uses_with(g.node("x").output(), g.node("w").output())
    with pytest.raises(IRError, match="graph input or output"):
        g.remove_node(g.node("x"))


def test_remove_node_forwards_control_edges():
    g = small_graph()
    a = g.add_node("NoOp", name="init", domain="tf")
    b = g.add_node("NoOp", name="gate", control_inputs=[a], domain="tf")
    g.add_control_input(g.node("relu"), b)
    g.remove_node(b)
    assert g.node("relu").control_inputs == (a,)
    g.verify()


def test_unique_names_and_copy_independence():
    g = small_graph()
    n1 = g.add_node("Relu", [g.node("mm").output()], {"T": f32}, [_t(None, 4)], name="relu", domain="tf")
    assert n1.name != "relu" and n1.name.startswith("relu")
    h = g.copy()
    h.remove_node(h.node(n1.name))
    assert n1.name in g and n1.name not in h
    assert h.node("relu").inputs[0].node is h.node("mm")
    assert g.text() != h.text()


def test_verifier_names_node_on_type_mismatch():
    g = small_graph()
    c = _const(g, "k", np.int32(3))
    g.set_input(g.node("relu"), 0, c.output())
    with pytest.raises(VerificationError, match="'relu'.*i32, expected f32"):
        g.verify()


def test_verifier_rejects_cycles_but_not_loop_back_edges():
    g = small_graph()
    a = g.node("mm")
    g.set_input(a, 0, g.node("relu").output())
    with pytest.raises(VerificationError, match="cycle"):
        g.verify()

    h = Graph()
    x = h.add_node("Const", attrs={"dtype": f32, "value": Tensor.from_array(np.float32(1))}, output_types=[_t()],
                   name="c", domain="tf")
    enter = h.add_node("Enter", [x.output()], {"T": f32, "frame_name": "L", "is_constant": False,
                                               "parallel_iterations": 10}, [_t()], name="enter", domain="tf")
    merge = h.add_node("Merge", [enter.output(), enter.output()], {"T": f32, "N": 2}, [_t(), _t(dtype=i32)],
                       name="merge", domain="tf")
    nxt = h.add_node("NextIteration", [merge.output()], {"T": f32}, [_t()], name="next", domain="tf")
    h.set_input(merge, 1, nxt.output())
    h.verify()  # NextIteration -> Merge is a legal back-edge
    order = [n.name for n in h.topo_order()]
    assert order.index("merge") < order.index("next")


def test_unknown_ops_are_conservative_and_legal():
    info = op_info("tf", "MyCustomOp")
    assert not info.known and info.stateful and info.side_effecting
    g = small_graph()
    g.add_node("MyCustomOp", [g.node("relu").output()], {"foo": 1}, [_t(None, 4)], name="custom", domain="tf")
    g.verify()
    assert "tf.MyCustomOp(%relu)" in g.text()


def test_registry_traits_come_from_data():
    assert op_info("tf", "AddV2").commutative
    assert op_info("tf", "RandomUniform").stateful
    assert op_info("tf", "Assert").side_effecting
    assert op_info("tf", "Identity").identity_like
    assert op_info("tf", "NextIteration").loop_next and op_info("tf", "Merge").loop_merge
    assert op_info("tf", "Const").constant_attr == "value"


def test_printing_is_deterministic_and_order_independent():
    g1 = small_graph()
    g2 = Graph()
    # the same graph, built in a different insertion order
    w = _const(g2, "w", np.eye(4, dtype=np.float32))
    x = g2.add_node("Placeholder", attrs={"shape": Shape([None, 4]), "dtype": f32}, output_types=[_t(None, 4)],
                    name="x", domain="tf")
    mm = g2.add_node("MatMul", [x.output(), w.output()], {"transpose_b": False, "T": f32, "transpose_a": False},
                     [_t(None, 4)], name="mm", domain="tf")
    r = g2.add_node("Relu", [mm.output()], {"T": f32}, [_t(None, 4)], name="relu", domain="tf")
    g2.inputs.append(Port("x", x.output()))
    g2.outputs.append(Port("y", r.output()))
    assert g1.text() == g2.text()
    assert "%mm = tf.MatMul(%x, %w) {T = f32, transpose_a = false, transpose_b = false} : " \
           "(tensor<?x4xf32>, tensor<4x4xf32>) -> tensor<?x4xf32>" in g1.text()


def test_large_constants_print_as_digest():
    g = Graph()
    _const(g, "big", np.arange(1000, dtype=np.float32))
    short, full = g.text(), g.text(full_constants=True)
    assert "dense_resource<sha:" in short and "tensor<1000xf32>" in short
    assert 'dense<"0x' in full
    g2 = Graph()
    _const(g2, "big", np.arange(1000, dtype=np.float32) + 1)
    assert g2.text() != short  # digests differ with content


def test_dtypes_cover_the_required_set():
    for name in ("f32", "bf16", "f16", "f64", "i8", "i16", "i32", "i64", "u8", "bool", "string", "resource",
                 "variant"):
        assert DType.get(name).name == name
    assert DType.from_numpy(np.float32) is f32
    assert Shape.parse("?x3").dims == (None, 3) and Shape.parse("*").dims is None and Shape.parse("").rank == 0
