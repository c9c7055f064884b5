"""simplify-arithmetic: algebraic identities as (pattern, rewrite) rules applied to a fixed point."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Node, Value
from .base import Pass, PassResult, register_pass
from .patterns import RuleSet, add_const, const_array, remove_dead, rewrite_fixed_point, rule, sole_use


def _bypass(graph: Graph, node: Node, value: Value) -> bool:
    """Replace ``node``'s output 0 by ``value`` and drop ``node``; refused for graph-output nodes, nodes
    with control edges, or when the type would change."""
    out = node.outputs[0]
    if graph.is_signature_node(node) or node.control_inputs or graph.control_users(node):
        return False
    if value.dtype is not out.dtype or value.shape != out.shape or not out.shape.is_static and \
            value.shape.rank != out.shape.rank:
        return False
    graph.replace_all_uses_with(out, value, outputs=False)
    remove_dead(graph, [node])
    return True


def _is_all(a, x) -> bool:
    return a is not None and a.dtype != object and a.size > 0 and bool(np.all(a == x))


# ------------------------------------------------------------------ identities: x*1, x+0, x-0, x/1
@rule("Mul", "Add", "AddV2", "Sub", "RealDiv", "Div", "BiasAdd")
def neutral_operand(graph, n):
    if len(n.inputs) != 2:
        return False
    neutral = 1 if n.op_type in ("Mul", "RealDiv", "Div") else 0
    slots = (1,) if n.op_type in ("Sub", "RealDiv", "Div", "BiasAdd") else (1, 0)
    for s in slots:
        if _is_all(const_array(n.inputs[s]), neutral):
            return _bypass(graph, n, n.inputs[1 - s])
    return False


# ------------------------------------------------------------------ shape ops
@rule("Reshape")
def reshape_noop(graph, n):
    x = n.inputs[0]
    return x.shape.is_static and x.shape == n.outputs[0].shape and _bypass(graph, n, x)


@rule("Reshape")
def reshape_of_reshape(graph, n):
    inner = n.inputs[0].node
    if inner.op_type != "Reshape" or inner.domain != "tf" or sole_use(graph, n.inputs[0]) is None \
            or inner.control_inputs:
        return False
    graph.set_input(n, 0, inner.inputs[0])
    remove_dead(graph, [inner])
    return True


@rule("Transpose")
def transpose_of_transpose(graph, n):
    inner = n.inputs[0].node
    if inner.op_type != "Transpose" or inner.domain != "tf" or inner.control_inputs:
        return False
    p1, p2 = const_array(inner.inputs[1]), const_array(n.inputs[1])
    if p1 is None or p2 is None or p1.shape != p2.shape:
        return False
    composed = p1[p2]
    if np.array_equal(composed, np.arange(len(composed))):
        if _bypass(graph, n, inner.inputs[0]):
            remove_dead(graph, [inner])
            return True
        return False
    if sole_use(graph, n.inputs[0]) is None:
        return False
    old = n.inputs[1].node
    perm = add_const(graph, composed.astype(p2.dtype), f"{n.name}/perm", like=n)
    graph.set_inputs(n, [inner.inputs[0], perm.outputs[0]])
    remove_dead(graph, [inner, old])
    return True


@rule("Cast")
def cast_noop(graph, n):
    return n.inputs[0].dtype is n.outputs[0].dtype and _bypass(graph, n, n.inputs[0])


@rule("Squeeze", "ExpandDims")
def squeeze_expand_pair(graph, n):
    inner = n.inputs[0].node
    pair = {"Squeeze": "ExpandDims", "ExpandDims": "Squeeze"}[n.op_type]
    if inner.op_type != pair or inner.domain != "tf":
        return False
    x = inner.inputs[0]
    # Undoing each other exactly is the same as the round trip giving back x's shape.
    if x.shape.rank is None or x.shape != n.outputs[0].shape or not x.shape.is_static and None in (x.shape.dims or ()):
        return False
    ok = _bypass(graph, n, x)
    if ok:
        remove_dead(graph, [inner])
    return ok


# ------------------------------------------------------------------ chains of constants
_CHAIN = {"Mul": np.multiply, "Add": np.add, "AddV2": np.add}


@rule("Mul", "Add", "AddV2")
def constant_chain(graph, n):
    """(x op c1) op c2 -> x op (c1 op c2) when the inner node has no other reader."""
    if len(n.inputs) != 2:
        return False
    for s in (1, 0):
        c2 = const_array(n.inputs[s])
        inner = n.inputs[1 - s].node
        if c2 is None or inner.op_type not in _CHAIN or _CHAIN[inner.op_type] is not _CHAIN[n.op_type]:
            continue
        if inner.domain != "tf" or inner.control_inputs or sole_use(graph, n.inputs[1 - s]) is None:
            continue
        for t in (1, 0):
            c1 = const_array(inner.inputs[t])
            if c1 is None or c1.dtype != c2.dtype or inner.inputs[1 - t].node.const_value() is not None:
                continue
            c = _CHAIN[n.op_type](c1, c2).astype(c1.dtype)
            x = inner.inputs[1 - t]
            old = n.inputs[s].node
            k = add_const(graph, c, f"{n.name}/folded", like=n)
            graph.set_inputs(n, [x, k.outputs[0]])
            remove_dead(graph, [inner, old])
            return True
    return False


RULES = RuleSet([neutral_operand, reshape_noop, reshape_of_reshape, transpose_of_transpose, cast_noop,
                 squeeze_expand_pair, constant_chain])


@register_pass
@dataclass
class SimplifyArithmetic(Pass):
    """After: no x*1, x+0, x-0, x/1 that keeps x's type, no no-op Reshape/Cast, no Reshape of a
    single-use Reshape, no Transpose pair (composed or removed), no Squeeze/ExpandDims round trip, and no
    Mul/Add by a constant of a single-use Mul/Add by a constant. Graph output nodes keep their names."""

    name = "simplify-arithmetic"
    max_rounds: int = 20

    def run(self, graph: Graph) -> PassResult:
        fired = rewrite_fixed_point(graph, RULES, self.max_rounds)
        return PassResult.of(**fired)
