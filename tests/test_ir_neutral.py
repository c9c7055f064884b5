"""The framework-neutral core: arguments, initializers, absent operands, nested subgraphs with captures,
value names of their own, the deep copy and the mutation API; and their text form."""
import numpy as np
import pytest

from graphir.ir import Graph, IRError, Port, Shape, Subgraph, Tensor, TensorType, verify
from graphir.ir.parser import parse
from graphir.ir.registry import UnknownDialectError, dialect
from graphir.transforms.patterns import remove_unreachable

F = TensorType(__import__("graphir").DType.get("f32"), Shape([2]))


def _graph():
    """A custom-domain graph: y = Add(x, w), an op with an absent operand, and an If whose branch
    captures ``w`` from the outer graph."""
    g = Graph("g")
    x = g.add_argument("x", F)
    w = g.add_initializer("w", Tensor.from_array(np.arange(2, dtype=np.float32)))
    add = g.add_node("Add", [x, w], {}, [F], domain="my", output_names=["sum"])
    clip = g.add_node("Clip", [add.outputs[0], None, w], {}, [F], domain="my", output_names=["clipped"])
    body = Graph("then")
    cw = body.add_capture("w_in", F)
    neg = body.add_node("Neg", [cw], {}, [F], domain="my", output_names=["neg"])
    body.set_outputs([("out", neg.outputs[0])])
    cond = g.add_node("If", [x], {"then_branch": Subgraph(body, [w])}, [F], domain="my", output_names=["branch"])
    g.set_graph_inputs([("x", x)])
    g.set_outputs([("y", clip.outputs[0]), ("b", cond.outputs[0])])
    return g


def test_arguments_initializers_absent_operands_and_captures_verify():
    g = _graph()
    verify(g)
    w = g.value("w")
    assert w.is_initializer and not w.is_argument and g.value("x").is_argument
    assert g.value("sum").node.name == "Add" and g.node("Clip").inputs[1] is None
    # The If node is a user of the captured initializer.
    assert {(u.name, s) for u, s in w.uses()} == {("Add", 1), ("Clip", 2), ("If", ("then_branch", 0))}


def test_text_round_trip_of_neutral_features():
    g = _graph()
    text = g.text()
    assert "arguments {%x : tensor<2xf32>}" in text and "initializers {%w = " in text
    assert "none" in text and "#graph<captures(%w)>" in text and 'results("sum")' in text
    h = parse(text)
    verify(h)
    assert h.text() == text
    assert h.node("If").attrs["then_branch"].captures[0] is h.value("w")


def test_replace_all_uses_updates_captures_and_dce_keeps_captured_producers():
    g = _graph()
    k = g.add_node("Const", [], {}, [F], domain="my", output_names=["k"])
    g.replace_all_uses_with(g.value("w"), k.outputs[0])
    verify(g)
    assert g.node("If").attrs["then_branch"].captures == [k.outputs[0]]
    assert not g.value("w").uses()
    # k is read only through the capture now; reachability must still keep it.
    assert remove_unreachable(g) == 0 and "Const" in g


def test_copy_is_deep():
    g = _graph()
    h = g.copy()
    verify(h)
    assert h.text() == g.text()
    h.set_attr(h.node("Add"), "note", [1, 2])
    h.node("If").attrs["then_branch"].graph.name = "changed"
    assert "note" not in g.node("Add").attrs
    assert g.node("If").attrs["then_branch"].graph.name == "then"
    assert h.node("If").attrs["then_branch"].captures[0] is h.value("w")


def test_replace_node_and_misuse_errors():
    g = _graph()
    new = g.add_node("Sub", [g.value("x"), g.value("w")], {}, [F], domain="my")
    g.replace_node(g.node("Add"), new)
    verify(g)
    assert "Add" not in g and g.node("Clip").inputs[0] is new.outputs[0]
    with pytest.raises(IRError, match="still used"):
        g.remove_initializer(g.value("w"))
    with pytest.raises(IRError, match="does not belong"):
        g.set_input(g.node("Clip"), 0, Graph().add_argument("z", F))
    with pytest.raises(TypeError):
        g.add_node("Neg", [], {}, [F])  # a domain is required: the core has no default framework


def test_unregistered_domain_is_conservative_and_registered_dialect_answers():
    g = _graph()
    assert not g.node("Add").info.known and g.node("Add").info.stateful
    with pytest.raises(UnknownDialectError, match="'my'"):
        dialect("my")
    assert dialect("tf").op_info("Relu").pure  # does not depend on how the tf dialect got registered


def test_versioned_op_registry():
    from graphir.ir.dialect import Dialect
    from graphir.ir.registry import OpInfo, op_info, register_dialect

    class V(Dialect):
        domain = "vtest"

        def op_info(self, op_type, version=None):
            return OpInfo(self.domain, op_type, commutative=version is not None and version >= 13)

    register_dialect(V())
    assert not op_info("vtest", "Add", 11).commutative and op_info("vtest", "Add", 13).commutative
    g = Graph()
    g.opset_imports["vtest"] = 13
    n = g.add_node("Add", [], {}, [F], domain="vtest")
    assert n.info.commutative


def test_version_counts_every_mutation_through_the_api():
    """The pass manager skips re-verifying a graph whose version did not move; every mutation must move it."""
    g = _graph()
    add, clip = g.node("Add"), g.node("Clip")
    steps = [
        lambda: g.set_attr(add, "k", 1),
        lambda: g.del_attr(add, "k"),
        lambda: g.set_input(clip, 1, g.value("x")),
        lambda: g.set_output_types(add, [F]),
        lambda: g.replace_all_uses_with(g.value("sum"), g.value("x")),
        lambda: g.set_outputs(list(g.outputs)),
        lambda: g.add_node("Neg", [g.value("x")], {}, [F], domain="my"),
        lambda: g.rename(add, "Add2"),
        lambda: g.add_initializer("w2", Tensor.from_array(np.zeros(2, np.float32))),
    ]
    for step in steps:
        before = g.version
        step()
        assert g.version > before, step
    before = g.version
    g.text(), g.topo_order(), g.copy(), verify(g)  # reading changes nothing
    assert g.version == before
