"""simplify-arithmetic: algebraic identities as rewrite rules, applied by the worklist driver."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph
from .base import Pass, PassResult, register_pass
from .patterns import RuleSet, add_const, apply_rules, can_bypass, cast_target, const_array, is_const, \
    remove_dead, rule, sole_use


def _is_all(a, x) -> bool:
    return a is not None and a.dtype != object and a.size > 0 and bool(np.all(a == x))


def _same_op(node, op_type: str, domain: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain == domain


# ------------------------------------------------------------------ identities: x*1, x+0, x-0, x/1
@rule("tf", "Mul", "Add", "AddV2", "Sub", "RealDiv", "Div", "BiasAdd")
def neutral_operand(graph, n):
    if len(n.inputs) != 2:
        return None
    neutral = 1 if n.op_type in ("Mul", "RealDiv", "Div") else 0
    slots = (1,) if n.op_type in ("Sub", "RealDiv", "Div", "BiasAdd") else (1, 0)
    for s in slots:
        if _is_all(const_array(n.inputs[s]), neutral) and can_bypass(graph, n, n.inputs[1 - s]):
            return n.inputs[1 - s]
    return None


# ------------------------------------------------------------------ shape ops
def _dim_of(v, x):
    """``j`` when ``v`` is the scalar ``Shape(x)[j]`` (a shrinking StridedSlice of a Shape of ``x``)."""
    n = v.node if v is not None else None
    if not _same_op(n, "StridedSlice", "tf") or any(n.attrs.get(k, 0) for k in
                                                  ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask")):
        return None
    src = n.inputs[0].node
    if not _same_op(src, "Shape", "tf") or src.inputs[0] is not x or n.attrs.get("shrink_axis_mask") != 1:
        return None
    b, e, st = (const_array(n.inputs[i]) for i in (1, 2, 3))
    if b is None or e is None or st is None or b.shape != (1,) or int(st[0]) != 1 or int(e[0]) != int(b[0]) + 1:
        return None
    j = int(b[0])
    rank = x.shape.rank
    if rank is None or not -rank <= j < rank:
        return None
    return j % rank


@rule("tf", "Reshape")
def reshape_to_own_dims(graph, n):
    """Reshape(x, Pack(Shape(x)[0], 512)) -> Reshape(x, [-1, 512]): a shape built from x's own dims (and
    constants) is a constant where those dims are static, with -1 for the one dynamic dim."""
    x, shape = n.inputs
    pack = shape.node if shape is not None else None
    if not _same_op(pack, "Pack", n.domain) or pack.attrs.get("axis", 0) != 0:
        return None
    out, dynamic = [], 0
    for e in pack.inputs:
        c = const_array(e)
        if c is not None and c.shape == ():
            out.append(int(c))
            continue
        j = _dim_of(e, x)
        if j is None:
            return None
        d = x.shape.dims[j]
        out.append(-1 if d is None else d)
        dynamic += d is None
    if dynamic > 1 or (dynamic and out.count(-1) > 1):
        return None
    graph.set_input(n, 1, add_const(graph, np.array(out, dtype=shape.dtype.np), n.name + "/shape", like=n))
    remove_dead(graph, [pack])
    return True


@rule("tf", "Reshape")
def reshape_noop(graph, n):
    x = n.inputs[0]
    if x.shape.is_static and x.shape == n.outputs[0].shape and can_bypass(graph, n, x):
        return x
    return None


@rule("tf", "Reshape")
def reshape_of_reshape(graph, n):
    inner = n.inputs[0].node
    if not _same_op(inner, "Reshape", n.domain) or sole_use(graph, n.inputs[0]) is None or inner.control_inputs:
        return None
    graph.set_input(n, 0, inner.inputs[0])
    remove_dead(graph, [inner])
    return True


@rule("tf", "Transpose")
def transpose_of_transpose(graph, n):
    inner = n.inputs[0].node
    if not _same_op(inner, "Transpose", n.domain) or inner.control_inputs:
        return None
    p1, p2 = const_array(inner.inputs[1]), const_array(n.inputs[1])
    if p1 is None or p2 is None or p1.shape != p2.shape:
        return None
    composed = p1[p2]
    if np.array_equal(composed, np.arange(len(composed))):
        return inner.inputs[0] if can_bypass(graph, n, inner.inputs[0]) else None
    if sole_use(graph, n.inputs[0]) is None:
        return None
    old = n.inputs[1].node
    perm = add_const(graph, composed.astype(p2.dtype), f"{n.name}/perm", like=n)
    graph.set_inputs(n, [inner.inputs[0], perm])
    remove_dead(graph, [inner, old])
    return True


@rule("tf", "Cast")
def cast_noop(graph, n):
    x = n.inputs[0]
    if cast_target(n) is x.dtype and n.outputs[0].dtype is x.dtype and can_bypass(graph, n, x):
        return x
    return None


@rule("tf", "Squeeze", "ExpandDims")
def squeeze_expand_pair(graph, n):
    inner = n.inputs[0].node
    pair = {"Squeeze": "ExpandDims", "ExpandDims": "Squeeze"}[n.op_type]
    if not _same_op(inner, pair, n.domain):
        return None
    x = inner.inputs[0]
    # Undoing each other exactly is the same as the round trip giving back x's shape.
    if x.shape.rank is None or x.shape != n.outputs[0].shape or not x.shape.is_static and None in (x.shape.dims or ()):
        return None
    return x if can_bypass(graph, n, x) else None


# ------------------------------------------------------------------ chains of constants
_CHAIN = {"Mul": np.multiply, "Add": np.add, "AddV2": np.add}


@rule("tf", "Mul", "Add", "AddV2")
def constant_chain(graph, n):
    """(x op c1) op c2 -> x op (c1 op c2) when the inner node has no other reader."""
    if len(n.inputs) != 2:
        return None
    for s in (1, 0):
        c2 = const_array(n.inputs[s])
        inner = n.inputs[1 - s].node
        if c2 is None or inner is None or inner.op_type not in _CHAIN or _CHAIN[inner.op_type] is not _CHAIN[n.op_type]:
            continue
        if inner.domain != n.domain or inner.control_inputs or sole_use(graph, n.inputs[1 - s]) is None:
            continue
        for t in (1, 0):
            c1 = const_array(inner.inputs[t])
            if c1 is None or c1.dtype != c2.dtype or is_const(inner.inputs[1 - t]):
                continue
            c = _CHAIN[n.op_type](c1, c2).astype(c1.dtype)
            x = inner.inputs[1 - t]
            old = n.inputs[s].node
            k = add_const(graph, c, f"{n.name}/folded", like=n)
            graph.set_inputs(n, [x, k])
            remove_dead(graph, [inner, old])
            return True
    return None


# ------------------------------------------------------------------ scalars move toward their producer
_LAYOUT = ("Reshape", "Transpose", "ExpandDims", "Squeeze")


def _move_scalar(graph, n, accepts):
    """Mul(op(x, ...), c) -> op(Mul(x, c), ...) for a one-element constant ``c`` and an ``op`` that
    ``accepts(op)``, is read only by ``n`` and keeps ``n``'s type. Returns op's output (the replacement of
    ``n``), or None."""
    if len(n.inputs) != 2 or n.control_inputs or graph.control_users(n) or graph.is_signature_node(n):
        return None
    for s in (1, 0):
        c = const_array(n.inputs[s])
        op = n.inputs[1 - s].node
        if c is None or c.size != 1 or op is None or op.domain != n.domain or op.control_inputs \
                or not accepts(op):
            continue
        x = op.inputs[0]
        if x.dtype is not n.outputs[0].dtype or op.outputs[0].type != n.outputs[0].type \
                or sole_use(graph, op.outputs[0]) is None:
            continue
        k = add_const(graph, c.reshape(()), f"{n.name}/scalar", like=n)
        m = graph.add_node("Mul", [x, k], {"T": x.dtype}, [x.type], domain=n.domain, name=f"{n.name}/moved",
                           device=n.device)
        graph.set_input(op, 0, m.outputs[0])
        return op.outputs[0]
    return None


@rule("tf", "Mul")
def scalar_through_layout(graph, n):
    """Mul(layout(x), c) -> layout(Mul(x, c)) for a one-element constant ``c`` and a Reshape / Transpose /
    ExpandDims / Squeeze read only here: a scalar commutes with data movement, and next to its producer it
    folds into weights (attention's 1/sqrt(d) after the query projection's reshape into heads)."""
    return _move_scalar(graph, n, lambda op: op.op_type in _LAYOUT and not is_const(op.inputs[0]))


@rule("tf", "Mul")
def scalar_into_contraction(graph, n):
    """Mul(BatchMatMulV2(a, b), c) -> BatchMatMulV2(Mul(a, c), b) for a one-element constant ``c`` and a
    contraction of two activations read only here. With :func:`scalar_through_layout` the scalar then
    reaches the projection that produced ``a`` and fold-batch-norms folds it into its weights: attention's
    1/sqrt(d) on the scores ends in the query (or key) weights. A contraction with constant weights is left
    alone: fold-batch-norms takes the scalar into them where it is."""
    return _move_scalar(graph, n, lambda op: op.op_type == "BatchMatMulV2"
                        and not any(is_const(v) for v in op.inputs))


RULES = RuleSet([neutral_operand, reshape_to_own_dims, reshape_noop, reshape_of_reshape, transpose_of_transpose, cast_noop,
                 squeeze_expand_pair, constant_chain, scalar_through_layout, scalar_into_contraction])


@register_pass
@dataclass(frozen=True)
class SimplifyArithmetic(Pass):
    """After: no x*1, x+0, x-0, x/1 that keeps x's type, no Reshape to a Pack of its input's own dims
    (Shape(x)[j]) and constants with at most one dynamic dim, no no-op Reshape/Cast, no Reshape of a
    single-use Reshape, no Transpose pair (composed or removed), no Squeeze/ExpandDims round trip, and no
    Mul/Add by a constant of a single-use Mul/Add by a constant, and no Mul by a scalar constant reads a
    single-use Reshape/Transpose/ExpandDims/Squeeze or activation-by-activation BatchMatMulV2 (the scalar
    moves onto their first input). Graph output nodes keep their names."""

    name = "simplify-arithmetic"
    phase = "optimize"
    max_steps: int = 0  # 0: the driver's default bound

    def run(self, graph: Graph) -> PassResult:
        fired = apply_rules(graph, RULES, self.max_steps or None)
        return PassResult.of(**fired)
