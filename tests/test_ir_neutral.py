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


def _other_value():
    return Graph("other").add_argument("z", F)


def _body(n_captures=1):
    body = Graph("body")
    caps = [body.add_capture(f"c{i}", F) for i in range(n_captures)]
    body.set_outputs([("out", caps[0])])
    return body


def _cycle_by_hand(g):
    # Add reads Clip's output, use lists kept in step: only the acyclicity check can object.
    add, x, clipped = g.node("Add"), g.value("x"), g.value("clipped")
    add._inputs[0] = clipped
    x._uses.remove((add, 0))
    clipped._uses.append((add, 0))


def _cycle_through_assigned_capture(g):
    # A Subgraph put straight into attrs (not through set_attr): the order must still see its capture.
    add, clipped = g.node("Add"), g.value("clipped")
    add.attrs["body"] = Subgraph(_body(), [clipped])
    clipped._uses.append((add, ("body", 0)))


def _nested(g):
    body = g.node("If").attrs["then_branch"].graph
    body._nodes["alias"] = body.node("Neg")


# Each corruption bypasses the mutation API the way a buggy pass could; the verifier must report exactly
# these violations, in this order.
CORRUPTIONS = {
    "registry alias": (lambda g: g._nodes.__setitem__("alias", g.node("Add")),
                       ["node 'alias': registry entry does not match the node object"]),
    "node of another graph": (lambda g: setattr(g.node("Add"), "graph", None),
                              ["node 'Add': registry entry does not match the node object"]),
    "producer gone": (lambda g: g._nodes.pop("Add"),
                      ["node 'Clip': input 0 reads 'sum', which is not in the graph",
                       "value 'x': used by 'Add', which is not in the graph",
                       "value 'w': used by 'Add', which is not in the graph"]),
    "output dropped": (lambda g: g.node("Add").outputs.clear(),
                       ["node 'Clip': input 0 reads 'sum', which is not in the graph"]),
    "argument of another graph": (lambda g: g.node("Clip")._inputs.__setitem__(1, _other_value()),
                                  ["node 'Clip': input 1 reads 'z', which is not in the graph"]),
    "use missing": (lambda g: g.value("sum")._uses.clear(),
                    ["node 'Clip': input 0 missing from the use list of 'sum'"]),
    "initializer use missing": (lambda g: g.value("w")._uses.remove((g.node("Clip"), 2)),
                                ["node 'Clip': input 2 missing from the use list of 'w'"]),
    "stale use": (lambda g: g.value("sum")._uses.append((g.node("If"), 0)),
                  ["node 'Add': stale use of 'sum' by 'If'"]),
    "stale capture use": (lambda g: g.value("sum")._uses.append((g.node("If"), ("then_branch", 0))),
                          ["node 'Add': stale use of 'sum' by 'If'"]),
    "control input elsewhere": (lambda g: g.node("Add")._controls.append(Graph().add_node("N", [], {}, [F],
                                                                                           domain="my")),
                                ["node 'Add': control input 'N' is not in the graph"]),
    "control input one-sided": (lambda g: g.node("Clip")._controls.append(g.node("Add")),
                                ["node 'Clip': control input 'Add' does not list it as a user"]),
    "control user one-sided": (lambda g: g.node("Add")._cusers.append(g.node("Clip")),
                               ["node 'Add': control user 'Clip' out of step"]),
    "capture of another graph": (lambda g: g.node("If").attrs["then_branch"].captures.__setitem__(
                                     0, _other_value()),
                                 ["node 'If': then_branch captures 'z', which is not in the graph"]),
    "capture count": (lambda g: g.node("If").attrs["then_branch"].graph.add_capture("extra", F),
                      ["node 'If': then_branch has 1 captures but its body declares 2"]),
    "assigned subgraph": (lambda g: g.node("Add").attrs.__setitem__("body",
                                                                    Subgraph(_body(), [_other_value()])),
                          ["node 'Add': body captures 'z', which is not in the graph"]),
    "nested body": (_nested, ["If.then_branch: node 'alias': registry entry does not match the node object"]),
    "graph output": (lambda g: g.outputs.append(Port("q", _other_value())),
                     ["graph output 'q': 'z' is not in the graph"]),
    "graph input": (lambda g: g.inputs.append(Port("q", _other_value())),
                    ["graph input 'q': 'z' is not in the graph"]),
    "cycle": (_cycle_by_hand, ["node 'Add': on a cycle that is not a loop back-edge: Add -> Clip"]),
    "cycle through a capture": (_cycle_through_assigned_capture,
                                ["node 'Add': on a cycle that is not a loop back-edge: Add -> Clip"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_verifier_reports_each_corruption(case):
    from graphir.ir import VerificationError

    corrupt, expected = CORRUPTIONS[case]
    g = _graph()
    verify(g)
    g.topo_order(by_name=False)  # a cached order must not hide a cycle made behind the API's back
    corrupt(g)
    with pytest.raises(VerificationError) as e:
        verify(g)
    assert e.value.errors == expected


def test_every_way_of_making_a_subgraph_is_noticed(monkeypatch):
    """Node.subgraphs() skips scanning attrs until the process has made a Subgraph, so every route to
    one (constructor, copy, pickle) must raise the flag."""
    import copy
    import pickle

    sg = Subgraph(_body(), [])
    for make in (lambda: Subgraph(_body(), []), lambda: copy.copy(sg), lambda: copy.deepcopy(sg),
                 lambda: pickle.loads(pickle.dumps(sg))):
        monkeypatch.setattr(Subgraph, "made", False)
        made = make()
        assert Subgraph.made and isinstance(made, Subgraph)


def test_verifier_without_any_subgraph_in_the_process(monkeypatch):
    """With no Subgraph made yet the verifier skips attribute scans; the other checks and the cycle
    check still see everything."""
    monkeypatch.setattr(Subgraph, "made", False)
    g = Graph("plain")
    x = g.add_argument("x", F)
    a = g.add_node("Neg", [x], {}, [F], domain="my", name="a")
    b = g.add_node("Neg", [a.outputs[0]], {}, [F], domain="my", name="b")
    g.set_outputs([("y", b.outputs[0])])
    verify(g)
    assert [n.name for n in g.topo_order(by_name=False)] == ["a", "b"]
    a._inputs[0] = b.outputs[0]
    x._uses.clear()
    b.outputs[0]._uses.append((a, 0))
    from graphir.ir import VerificationError

    with pytest.raises(VerificationError) as e:
        verify(g)
    assert e.value.errors == ["node 'a': on a cycle that is not a loop back-edge: a -> b"]
    assert not Subgraph.made
