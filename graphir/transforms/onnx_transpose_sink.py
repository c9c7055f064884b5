"""onnx-transpose-sink: move Transposes down through layout-agnostic ONNX ops until they cancel.

A TF graph converted to ONNX wraps every NCHW op (Conv, pooling, Resize) in ``Transpose(NHWC->NCHW)`` and
``Transpose(NCHW->NHWC)``; the elementwise chains, residual Adds, concats and reductions between them stay
NHWC. For a Transpose ``T`` (``y = transpose(x, p)``) the pass grows a *region* of readers that can compute
on ``x`` instead of ``y`` (the op data below says how each op's attributes and constant inputs change),
then counts Transposes before and after, as tf2onnx's and ONNX Runtime's transpose optimizers do. After
the rewrite the region computes in the inner layout; ``T`` and the same-permutation Transposes feeding the
region are gone when nothing else reads them, and a Transpose is left only where a value leaves the region
(a graph output, an op with no rule); one that meets its inverse (the next Conv's input Transpose)
vanishes.

An operand of a region node reaches the inner layout for free when it is a constant (permuted here), the
output of a Transpose with the same permutation, or a lower-rank tensor whose non-1 dims keep their order
(a ``[C]`` bias, an ``[N,1,1,C]`` scale: reshaped). Any other operand needs a Transpose of its own
(unsqueezed to full rank first); such a region is taken only when the total count drops, a region without
one also when the count stays and no node is added (that only moves Transposes down), so the pass
terminates. Graph inputs and outputs keep their names and types: a value that is a graph output stays
produced by its original node, turned into the Transpose.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..dialects.onnx import add_node
from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType
from .base import Pass, PassResult, register_pass
from .onnx_rules import transpose as compose_rule
from .patterns import add_const, const_array, remove_dead

D = "onnx"

# Ops computing each output element from the same element of input 0 (other inputs, e.g. Clip's bounds
# or CastLike's type carrier, are not tensors of the layout).
UNARY = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Cos",
    "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "IsInf", "IsNaN",
    "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign",
    "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
})
# Ops broadcasting all their inputs numpy-style (right-aligned) to one output.
BROADCAST = frozenset({
    "Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "PRelu", "Sub",
    "Sum", "Where", "Xor",
})
REDUCE = frozenset({
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceProd", "ReduceSum", "ReduceSumSquare",
})


@dataclass
class Plan:
    """How ``node`` computes on the inner layout: ``layout`` input slots carry the permuted tensor;
    output i is ``Transpose(inner output i, out_perms[i])``; ``attrs`` are set (None: deleted) and
    ``consts`` replace constant inputs by slot."""

    layout: tuple
    out_perms: list
    attrs: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ perms
def _perm(node: Node) -> Optional[list[int]]:
    r = node.inputs[0].shape.rank
    p = node.attrs.get("perm")
    if p is None:
        return None if r is None else list(range(r))[::-1]
    return [int(x) for x in p]


def _inverse(p: list[int]) -> list[int]:
    inv = [0] * len(p)
    for i, a in enumerate(p):
        inv[a] = i
    return inv


def _is_identity(p: list[int]) -> bool:
    return list(p) == list(range(len(p)))


def _transpose_of(v: Optional[Value], p: list[int]) -> Optional[Node]:
    """The Transpose producing ``v`` with permutation ``p``, if that is what produces it."""
    n = v.node if v is not None else None
    if n is None or n.domain != D or n.op_type != "Transpose" or n.inputs[0] is None:
        return None
    return n if _perm(n) == p else None


def _dropped_perm(p: list[int], removed: set) -> list[int]:
    """The perm relating outputs after the axes ``removed`` (of the outer layout) are dropped: outer
    axis i (kept) is inner axis p[i], renumbered among the kept inner axes."""
    kept = [p[i] for i in range(len(p)) if i not in removed]
    order = sorted(kept)
    return [order.index(a) for a in kept]


def _norm(axes, rank: int) -> Optional[list[int]]:
    out = [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    return out if all(0 <= a < rank for a in out) and len(set(out)) == len(out) else None


def _opset(graph: Graph) -> int:
    return int(graph.opset_imports.get(D, 0) or 0)


def _axes(node: Node, slot: int, attr: str):
    """(axes, where): from the constant input ``slot`` ("input"), else attribute ``attr`` ("attr"), else
    (None, None) when absent; (None, "dynamic") when the input is not constant."""
    if len(node.inputs) > slot and node.inputs[slot] is not None:
        a = const_array(node.inputs[slot])
        return (None, "dynamic") if a is None else ([int(x) for x in a.reshape(-1)], "input")
    if attr in node.attrs:
        return [int(x) for x in node.attrs[attr]], "attr"
    return None, None


def _set_axes(plan: Plan, where: str, slot: int, attr: str, axes: list[int]) -> Plan:
    if where == "input":
        plan.consts[slot] = np.array(axes, np.int64)
    else:
        plan.attrs[attr] = list(axes)
    return plan


# ------------------------------------------------------------------------------------------ op rules
def _rank(v: Optional[Value]) -> Optional[int]:
    return None if v is None else v.shape.rank


def _unary(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    if _rank(node.inputs[0]) != len(p) or len(node.outputs) != 1:
        return None
    return Plan((0,), [p])


def _broadcast(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    slots = tuple(i for i, v in enumerate(node.inputs) if v is not None)
    if _rank(node.outputs[0]) != r or any(_rank(node.inputs[i]) is None or _rank(node.inputs[i]) > r for i in slots):
        return None
    return Plan(slots, [p])


def _concat(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    if any(_rank(v) != r for v in node.inputs):
        return None
    return Plan(tuple(range(len(node.inputs))), [p], {"axis": p[_norm([node.attrs.get("axis", 0)], r)[0]]})


def _split(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    axis = _norm([node.attrs.get("axis", 0)], r)
    if _rank(node.inputs[0]) != r or axis is None:
        return None
    return Plan((0,), [p] * len(node.outputs), {"axis": p[axis[0]]})


def _softmax(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    # Before opset 13 these ops flatten at ``axis`` into 2-D: not a per-axis op.
    r = len(p)
    axis = _norm([node.attrs.get("axis", -1)], r)
    if _opset(graph) < 13 or _rank(node.inputs[0]) != r or axis is None:
        return None
    return Plan((0,), [p], {"axis": p[axis[0]]})


def _reduce(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    if _rank(node.inputs[0]) != r:
        return None
    axes, where = _axes(node, 1, "axes")
    if where == "dynamic":
        return None
    keep = bool(node.attrs.get("keepdims", 1))
    if axes is None:
        if node.attrs.get("noop_with_empty_axes", 0):
            return Plan((0,), [p])
        return Plan((0,), [p if keep else []])  # every axis: the layout does not matter
    axes = _norm(axes, r)
    if axes is None:
        return None
    plan = Plan((0,), [p if keep else _dropped_perm(p, set(axes))])
    return _set_axes(plan, where, 1, "axes", sorted(p[a] for a in axes))


def _arg_reduce(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    axis = _norm([node.attrs.get("axis", 0)], r)
    if _rank(node.inputs[0]) != r or axis is None:
        return None
    keep = bool(node.attrs.get("keepdims", 1))
    return Plan((0,), [p if keep else _dropped_perm(p, {axis[0]})], {"axis": p[axis[0]]})


def _pad(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    if _opset(graph) < 11 or _rank(node.inputs[0]) != r:
        return None
    axes, where = _axes(node, 3, "")
    if where == "dynamic":
        return None
    if axes is not None:
        axes = _norm(axes, r)
        return None if axes is None else Plan((0,), [p], consts={3: np.array([p[a] for a in axes], np.int64)})
    pads = const_array(node.inputs[1])
    if pads is None or pads.size != 2 * r:
        return None
    pads = pads.reshape(-1)
    new = np.empty_like(pads)
    for i in range(r):
        new[p[i]], new[r + p[i]] = pads[i], pads[r + i]
    return Plan((0,), [p], consts={1: new})


def _slice(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    if _opset(graph) < 10 or _rank(node.inputs[0]) != r:
        return None
    axes, where = _axes(node, 3, "")
    if where == "dynamic":
        return None
    if axes is None:
        starts = node.inputs[1]
        if starts is None or starts.shape.rank != 1 or starts.shape.dims[0] is None:
            return None
        axes = list(range(starts.shape.dims[0]))
    axes = _norm(axes, r)
    if axes is None:
        return None
    return Plan((0,), [p], consts={3: np.array([p[a] for a in axes], np.int64)})


def _squeeze(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    r = len(p)
    x = node.inputs[0]
    if _rank(x) != r:
        return None
    axes, where = _axes(node, 1, "axes")
    if where == "dynamic":
        return None
    if axes is None:  # every size-1 axis: the same axes of the inner layout, if they are known
        if not x.shape.is_static:
            return None
        return Plan((0,), [_dropped_perm(p, {i for i, d in enumerate(x.shape.dims) if d == 1})])
    axes = _norm(axes, r)
    if axes is None:
        return None
    return _set_axes(Plan((0,), [_dropped_perm(p, set(axes))]), where, 1, "axes", sorted(p[a] for a in axes))


def _unsqueeze(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    # Unsqueezing the inner tensor at the same output positions: kept positions hold the inner axes.
    r = len(p)
    axes, where = _axes(node, 1, "axes")
    if _rank(node.inputs[0]) != r or where in (None, "dynamic"):
        return None
    axes = _norm(axes, r + len(axes))
    if axes is None:
        return None
    kept = [i for i in range(r + len(axes)) if i not in axes]
    q = list(range(r + len(axes)))
    for i in range(r):
        q[kept[i]] = kept[p[i]]
    return Plan((0,), [q])


def _quantize(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    """(De)QuantizeLinear: per tensor (a scalar scale) it is unary; per axis its axis follows."""
    r = len(p)
    scale = node.inputs[1] if len(node.inputs) > 1 else None
    if _rank(node.inputs[0]) != r or scale is None or node.attrs.get("block_size", 0):
        return None
    if scale.shape.rank == 0:
        return Plan((0,), [p])
    axis = _norm([node.attrs.get("axis", 1)], r)
    if scale.shape.rank != 1 or axis is None:
        return None
    return Plan((0,), [p], {"axis": p[axis[0]]})


Rule = Callable[[Graph, Node, list], Optional[Plan]]
RULES: dict[str, Rule] = {
    **{op: _unary for op in UNARY}, **{op: _broadcast for op in BROADCAST}, **{op: _reduce for op in REDUCE},
    "Concat": _concat, "Split": _split, "Softmax": _softmax, "LogSoftmax": _softmax, "Hardmax": _softmax,
    "ArgMax": _arg_reduce, "ArgMin": _arg_reduce, "Pad": _pad, "Slice": _slice, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "QuantizeLinear": _quantize, "DequantizeLinear": _quantize,
}


def _plan(graph: Graph, node: Node, p: list[int]) -> Optional[Plan]:
    rule = RULES.get(node.op_type) if node.domain == D else None
    if rule is None or node.control_inputs or graph.control_users(node) or any(node.subgraphs()):
        return None
    if any(v.shape.rank is None for v in node.outputs):
        return None
    # Only output 0 can stay produced by the node itself (turned into its Transpose).
    if any(graph.is_output(v) for v in node.outputs[1:]):
        return None
    plan = rule(graph, node, p)
    if plan is None or any(len(q) != v.shape.rank for q, v in zip(plan.out_perms, node.outputs)):
        return None
    return plan


# ------------------------------------------------------------------------------------------ operands
def _reshaped_dims(v: Value, p: list[int]) -> Optional[list[Optional[int]]]:
    """The inner-layout shape of operand ``v`` (broadcast to rank len(p)) when moving it is a reshape
    (its non-1 dims keep their order), leading 1s dropped; None otherwise."""
    r, dims = len(p), v.shape.dims
    if dims is None or len(dims) > r:
        return None
    full = [1] * (r - len(dims)) + list(dims)
    inv = _inverse(p)
    src = [inv[i] for i in range(r) if full[inv[i]] != 1]
    if src != sorted(src):
        return None
    new = [full[inv[i]] for i in range(r)]
    while new and new[0] == 1 and len(new) > 0:
        new = new[1:]
    return new


def _operand_kind(graph: Graph, v: Value, p: list[int], inside: set, reshape: bool) -> Optional[str]:
    """How a layout operand reaches the inner layout: for free ("region", "transpose", "const", "reshape"),
    not yet ("wait": a reshape, in the phase that does not take them), or by a Transpose of its own (None)."""
    if id(v) in inside:
        return "region"
    if v.shape.rank == len(p) and _transpose_of(v, p) is not None:
        return "transpose"
    if const_array(v) is not None and v.shape.rank is not None and v.shape.rank <= len(p):
        return "const"
    dims = _reshaped_dims(v, p)
    if dims is not None and sum(d is None for d in dims) <= 1:
        return "reshape" if reshape else "wait"
    return None


# ------------------------------------------------------------------------------------------ the pass
@dataclass
class _Region:
    t: Node
    p: list
    reshape: bool      # low-rank operands may be reshaped
    nodes: list = field(default_factory=list)    # in the order they joined (a topological order)
    plans: dict = field(default_factory=dict)    # id(node) -> Plan
    inside: set = field(default_factory=set)     # ids of the values computed in the inner layout
    foreign: dict = field(default_factory=dict)  # id(value) -> operand that needs a Transpose of its own
    reshaped: set = field(default_factory=set)   # ids of the operands that get a Reshape
    pending: list = field(default_factory=list)  # readers of inside values not (yet) in the region
    rejected: set = field(default_factory=set)

    def copy(self) -> "_Region":
        return _Region(self.t, self.p, self.reshape, list(self.nodes), dict(self.plans), set(self.inside),
                       dict(self.foreign), set(self.reshaped), list(self.pending), set(self.rejected))


def _extend(graph: Graph, reg: _Region, allow: Optional[Node] = None) -> list[Node]:
    """Grow ``reg`` over readers whose layout operands are all free (``allow`` may also have operands
    that need a Transpose of their own); returns the readers left out only for such operands."""
    p = reg.p
    changed = True
    while changed:
        changed = False
        for n in list(reg.pending):
            if id(n) in reg.plans or id(n) in reg.rejected:
                continue
            plan = _plan(graph, n, p)
            if plan is None or any(id(v) in reg.inside for s, v in enumerate(n.inputs) if s not in plan.layout):
                reg.rejected.add(id(n))  # no rule, or a permuted tensor where the op wants its own (axes)
                continue
            kinds = [_operand_kind(graph, n.inputs[s], p, reg.inside, reg.reshape) for s in plan.layout]
            if "wait" in kinds or (None in kinds and n is not allow):
                continue  # may become free once its other operands join the region
            reg.nodes.append(n)
            reg.plans[id(n)] = plan
            changed = True
            for s, k in zip(plan.layout, kinds):
                if k is None:
                    reg.foreign[id(n.inputs[s])] = n.inputs[s]
                elif k == "reshape" and n.inputs[s].shape.dims != tuple(_reshaped_dims(n.inputs[s], p)):
                    reg.reshaped.add(id(n.inputs[s]))
            for v, q in zip(n.outputs, plan.out_perms):
                if q == p:
                    reg.inside.add(id(v))
                    reg.pending.extend(u for u, _ in graph.uses(v))
    return list({id(n): n for n in reg.pending if id(n) not in reg.plans and id(n) not in reg.rejected}.values())


def _grow(graph: Graph, t: Node, reshape: bool, foreign: bool) -> Optional[_Region]:
    """The region of ``t``'s readers to move into its input's layout. With ``foreign``, a reader with an
    operand that needs a Transpose of its own joins when that lowers the count further."""
    reg = _Region(t, _perm(t), reshape, inside={id(t.outputs[0])}, pending=list(graph.users(t)))
    left = _extend(graph, reg)
    if foreign:
        best = _delta(graph, reg) if reg.nodes else 0
        for n in left:
            if id(n) in reg.plans:
                continue
            trial = reg.copy()
            _extend(graph, trial, allow=n)
            if id(n) in trial.plans and _delta(graph, trial) < best:
                reg, best = trial, _delta(graph, trial)
    return reg if reg.nodes else None


def _delta(graph: Graph, reg: _Region) -> int:
    """Transposes after the rewrite minus before."""
    members = {id(n) for n in reg.nodes}
    d = len(reg.foreign)
    outs = [(v, q) for n in reg.nodes for v, q in zip(n.outputs, reg.plans[id(n)].out_perms)]
    for v, q in outs:
        outside = [u for u, _ in graph.uses(v) if id(u) not in members]
        composed = [u for u in outside if u.domain == D and u.op_type == "Transpose"]
        need = graph.is_output(v) or len(composed) < len(outside)
        d += int(need and not _is_identity(q))
        # One that composes to the identity vanishes, unless it is a graph output (then an Identity stays).
        d -= sum(1 for u in composed if _is_identity([q[i] for i in _perm(u)]) and not graph.is_output(u.outputs[0]))
    # T and the same-perm Transposes feeding the region vanish when every reader is in it (or composes).
    sources = {id(reg.t): reg.t}
    for n in reg.nodes:
        for s in reg.plans[id(n)].layout:
            src = _transpose_of(n.inputs[s], reg.p)
            if src is not None and n.inputs[s].shape.rank == len(reg.p):
                sources[id(src)] = src
    for src in sources.values():
        out = src.outputs[0]
        if graph.is_output(out) or graph.control_users(src):
            continue
        if all(id(u) in members or (u.domain == D and u.op_type == "Transpose") for u, _ in graph.uses(out)):
            d -= 1
    return d


def _inner_operand(graph: Graph, n: Node, v: Value, reg: _Region, mapped: dict) -> Value:
    if id(v) in mapped:
        return mapped[id(v)]
    p = reg.p
    r = len(p)
    src = _transpose_of(v, p)
    if src is not None and v.shape.rank == r:
        return src.inputs[0]
    a = const_array(v)
    if a is not None:
        b = a.reshape((1,) * (r - a.ndim) + a.shape).transpose(_inverse(p))
        while b.ndim and b.shape[0] == 1:
            b = b.reshape(b.shape[1:])
        if b.shape == a.shape and np.array_equal(a, b):
            return v
        return add_const(graph, b, v.name + "_inner", like=n)
    if id(v) in reg.foreign:
        return _foreign_operand(graph, n, v, p, mapped)
    dims = _reshaped_dims(v, p)
    if tuple(dims) == v.shape.dims:
        return v
    shape = add_const(graph, np.array([-1 if d is None else d for d in dims], np.int64), v.name + "_shape", like=n)
    return add_node(graph, "Reshape", [v, shape], {}, [TensorType(v.dtype, Shape(dims))], v.name + "_inner").outputs[0]


def _foreign_operand(graph: Graph, n: Node, v: Value, p: list[int], mapped: dict) -> Value:
    """``v`` unsqueezed to full rank (numpy broadcasting prepends axes) and transposed into the inner
    layout; made once per value."""
    r, k = len(p), v.shape.rank
    x = v
    if k < r:
        dims = (1,) * (r - k) + tuple(v.shape.dims)
        axes = list(range(r - k))
        if _opset(graph) >= 13:
            ins, attrs = [v, add_const(graph, np.array(axes, np.int64), v.name + "_axes", like=n)], {}
        else:
            ins, attrs = [v], {"axes": axes}
        x = add_node(graph, "Unsqueeze", ins, attrs, [TensorType(v.dtype, Shape(dims))], v.name + "_full").outputs[0]
    inv = _inverse(p)
    t = add_node(graph, "Transpose", [x], {"perm": inv}, [_inner_type(x, p)], v.name + "_inner")
    mapped[id(v)] = t.outputs[0]
    return t.outputs[0]


def _inner_type(v: Value, q: list[int]) -> TensorType:
    dims = [None] * len(q)
    for i, a in enumerate(q):
        dims[a] = v.shape.dims[i]
    return TensorType(v.dtype, Shape(dims))


def _clear_meta(n: Node) -> None:
    for k in [k for k in n.meta if k.startswith("onnx.")]:
        del n.meta[k]


def _to_transpose(graph: Graph, n: Node, src: Value, q: list[int]) -> None:
    """Make ``n`` (keeping its name and output 0) ``Transpose(src, q)``; an identity ``q`` bypasses it."""
    out = n.outputs[0]
    if _is_identity(q) and not graph.is_output(out):
        graph.replace_all_uses_with(out, src, outputs=False)
        graph.remove_node(n, forward_control=False)
        return
    graph.set_op(n, "Identity" if _is_identity(q) else "Transpose")
    for k in list(n.attrs):
        graph.del_attr(n, k)
    if not _is_identity(q):
        graph.set_attr(n, "perm", list(q))
    _clear_meta(n)
    graph.set_inputs(n, [src])
    graph.set_output_types(n, [out.type])


def _apply(graph: Graph, reg: _Region) -> None:
    p = reg.p
    mapped = {id(reg.t.outputs[0]): reg.t.inputs[0]}
    inner: dict = {}
    sources = [reg.t]
    replaced = [v for n in reg.nodes for v in n.inputs if v is not None and v.is_initializer]
    for n in reg.nodes:
        plan = reg.plans[id(n)]
        ins = list(n.inputs)
        for s in plan.layout:
            src = _transpose_of(ins[s], p)
            if src is not None:
                sources.append(src)
            ins[s] = _inner_operand(graph, n, ins[s], reg, mapped)
        for s, arr in plan.consts.items():
            ins.extend([None] * (s + 1 - len(ins)))
            ins[s] = add_const(graph, arr, f"{n.name}_{s}", like=n)
        attrs = dict(n.attrs)
        for k, v in plan.attrs.items():
            if v is None:
                attrs.pop(k, None)
            else:
                attrs[k] = v
        if all(_is_identity(q) for q in plan.out_perms):
            # Its results come out in their own layout (a reduction over the moved axes): rewritten in place.
            for k in list(n.attrs):
                if k not in attrs:
                    graph.del_attr(n, k)
            for k, v in attrs.items():
                graph.set_attr(n, k, v)
            graph.set_inputs(n, ins)
            inner[id(n)] = n
            continue
        old_name = n.name
        graph.rename(n, graph.unique_name(old_name + "/transpose"))
        m = add_node(graph, n.op_type, ins, attrs, [_inner_type(v, q) for v, q in zip(n.outputs, plan.out_perms)],
                      old_name)
        m.meta.update(n.meta)
        inner[id(n)] = m
        for v, w, q in zip(n.outputs, m.outputs, plan.out_perms):
            if q == p:
                mapped[id(v)] = w
    members = {id(n) for n in reg.nodes}
    # Readers outside the region read Transposes of the inner values; the region's originals go.
    for n in reversed(reg.nodes):
        m, plan = inner[id(n)], reg.plans[id(n)]
        if m is n:
            continue
        for i in range(len(n.outputs) - 1, -1, -1):
            v, w, q = n.outputs[i], m.outputs[i], plan.out_perms[i]
            for u, slot in graph.uses(v):
                if id(u) in members:
                    continue
                if u.domain == D and u.op_type == "Transpose":
                    graph.set_input(u, 0, w)
                    graph.set_attr(u, "perm", [q[j] for j in _perm_of_attr(u, len(q))])
            if i == 0:
                break
            if graph.has_uses(v):
                t = add_node(graph, "Transpose", [w], {"perm": list(q)}, [v.type], n.name)
                graph.replace_all_uses_with(v, t.outputs[0], outputs=False)
        if graph.has_uses(n.outputs[0]) or graph.is_output(n.outputs[0]):
            _to_transpose(graph, n, m.outputs[0], plan.out_perms[0])
        else:
            graph.remove_node(n, forward_control=False)
    remove_dead(graph, sources)
    for v in replaced:  # constants only the region's originals read
        if v.is_initializer and not graph.has_uses(v) and not any(p.value is v for p in graph.inputs):
            graph.remove_initializer(v)


def _perm_of_attr(u: Node, rank: int) -> list[int]:
    p = u.attrs.get("perm")
    return list(range(rank))[::-1] if p is None else [int(x) for x in p]


def _compose(graph: Graph, n: Node) -> bool:
    """onnx-simplify's Transpose rule (compose with a producing Transpose, drop an identity one)."""
    res = compose_rule.fn(graph, n)
    if res is None or res is False:
        p = _perm(n)
        if p is None or not _is_identity(p) or not graph.is_output(n.outputs[0]):
            return False
        # An identity Transpose left producing a graph output is an Identity (it keeps the name).
        graph.set_op(n, "Identity")
        if "perm" in n.attrs:
            graph.del_attr(n, "perm")
        _clear_meta(n)
        return True
    if isinstance(res, Value):
        graph.replace_all_uses_with(n.outputs[0], res, outputs=False)
        remove_dead(graph, [n])
    return True


@register_pass
@dataclass(frozen=True)
class ONNXTransposeSink(Pass):
    """After: no Transpose (of a non-constant, with a known rank) has a region of readers that could
    compute in its input's layout with fewer Transposes in total (or as many, without a new node or a
    Transpose on an operand); no Transpose reads a Transpose, and no identity Transpose remains (one that
    produces a graph output becomes an Identity). Graph inputs and outputs keep their names and types."""

    name = "onnx-transpose-sink"
    phase = "optimize"
    max_sweeps: int = 1000

    def run(self, graph: Graph) -> PassResult:
        counts = {"nodes_sunk": 0, "transposes_composed": 0}
        # Phases, by preference; after any change the first one runs again, until none changes anything.
        # Free moves that lower the count come first. Reshaping a low-rank operand waits until no Transpose
        # can reach it any more (an operand still waiting for its own Transpose to sink would otherwise get
        # a Reshape of that Transpose). Giving an operand a Transpose of its own must lower the count (so
        # Transposes cannot move up and down for ever). Ties, which only move Transposes down (so that two
        # branches' Transposes can meet at their Add) and add no node, come last: taken first they could
        # take a Transpose away from where a better rewrite wanted it.
        phases = ((False, False, False), (True, False, False), (True, True, False), (False, False, True))
        sweeps = 0
        while sweeps < self.max_sweeps:
            for phase in phases:
                sweeps += 1
                if self._sweep(graph, *phase, counts):
                    break
            else:
                break
        return PassResult.of(**counts)

    @staticmethod
    def _sweep(graph: Graph, reshape: bool, foreign: bool, ties: bool, counts: dict) -> bool:
        changed = False
        for n in graph.topo_order(by_name=False):
            if n.graph is not graph or n.domain != D or n.op_type != "Transpose":
                continue
            if _compose(graph, n):
                counts["transposes_composed"] += 1
                changed = True
                continue
            if n.graph is not graph or n.inputs[0].shape.rank is None or const_array(n.inputs[0]) is not None:
                continue
            if graph.control_users(n) or n.control_inputs:
                continue
            reg = _grow(graph, n, reshape, foreign)
            if reg is None:
                continue
            d = _delta(graph, reg)
            if d < 0 or (ties and d == 0 and not reg.foreign and not reg.reshaped):
                _apply(graph, reg)
                counts["nodes_sunk"] += len(reg.nodes)
                changed = True
        return changed
