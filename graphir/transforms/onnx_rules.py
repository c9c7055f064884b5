"""onnx-simplify and onnx-fuse: rewrite rules for ONNX graphs, keyed by ("onnx", op type).

onnx-simplify (canonicalize): identity-like ops (op data) and inference-mode Dropout are bypassed,
consecutive Transposes compose (or vanish), a Reshape of a Reshape reads the first one's input, a Reshape
to the shape its input already has vanishes, and ``Shape`` of a statically shaped tensor is a constant.
onnx-fuse (optimize): an inference BatchNormalization after Conv / Gemm / MatMul with constant weights
is folded into them, and MatMul + Add with a 2-D left operand becomes one Gemm.

Every rewrite keeps the name and value of the last node of its pattern (it is rewritten in place, or its
readers read an equal value), so graph outputs keep their names; nodes left unread are removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .base import Pass, PassResult, register_pass
from .patterns import RuleSet, add_const, apply_rules, const_array, remove_dead, rule, sole_use

D = "onnx"


def _same_type(a: Value, b: Value) -> bool:
    return a.dtype is b.dtype and a.shape == b.shape


def _producer(v: Optional[Value], op: str) -> Optional[Node]:
    return v.node if v is not None and v.node is not None and v.node.domain == D and v.node.op_type == op else None


def _bypass(graph: Graph, node: Node, src: Value) -> Optional[Value]:
    """Readers of ``node``'s output 0 may read ``src`` instead (same type, not a graph output)."""
    out = node.outputs[0]
    if graph.is_output(out) or not _same_type(src, out):
        return None
    return src


# ------------------------------------------------------------------------------------------ simplify
@rule(D, "Identity")
def identity(graph: Graph, node: Node):
    if not node.info.identity_like or not node.inputs or node.inputs[0] is None:
        return None
    src, out = node.inputs[0], node.outputs[0]
    if graph.is_output(out) and src.node is not None and not graph.is_output(src) and _same_type(src, out) \
            and not graph.uses(out):
        # An Identity that only names a graph output: the value it copies takes the output's name.
        name = out.name
        graph.replace_all_uses_with(out, src, outputs=True)
        graph.remove_node(node, forward_control=False)
        graph.set_value_name(src, name)
        return True
    return _bypass(graph, node, src)


@rule(D, "Dropout")
def dropout(graph: Graph, node: Node):
    """Dropout is the identity at inference: training_mode absent or constant false, mask unread."""
    ins = node.inputs
    if len(ins) >= 3 and ins[2] is not None:
        mode = const_array(ins[2])
        if mode is None or bool(mode.reshape(-1)[0]):
            return None
    if len(node.outputs) > 1 and graph.has_uses(node.outputs[1]):
        return None
    return _bypass(graph, node, ins[0])


def _perm(node: Node, rank: Optional[int]) -> Optional[list[int]]:
    p = node.attrs.get("perm")
    if p is None:
        return None if rank is None else list(range(rank))[::-1]
    return [int(x) for x in p]


@rule(D, "Transpose")
def transpose(graph: Graph, node: Node):
    x = node.inputs[0]
    perm = _perm(node, x.shape.rank)
    if perm is None:
        return None
    inner = _producer(x, "Transpose")
    if inner is not None:
        src = inner.inputs[0]
        p1 = _perm(inner, src.shape.rank)
        if p1 is None or len(p1) != len(perm):
            return None
        perm = [p1[i] for i in perm]
        x = src
    if perm == list(range(len(perm))):
        return _bypass(graph, node, x)
    if inner is None:
        return None
    graph.set_input(node, 0, x)
    graph.set_attr(node, "perm", perm)
    remove_dead(graph, [inner])
    return True


def _same_dims(a: Value, b: Value) -> bool:
    """Equal shapes, at most one dim unknown (then, the element counts being equal, it is the same dim)."""
    da, db = a.shape.dims, b.shape.dims
    return da is not None and da == db and sum(d is None for d in da) <= 1


def _as_reshape(x: Value, perm: list[int], out: Value) -> Optional[np.ndarray]:
    """The Reshape target equal to Transpose(x, perm) when it moves only unit dims (the other dims keep their
    order); unknown dims are copied in place (0) or inferred (-1, once)."""
    dims = x.shape.dims
    if dims is None or len(perm) != len(dims) or out.shape.dims is None:
        return None
    moved = [p for p in perm if dims[p] != 1]
    if moved != sorted(moved):
        return None
    unknown = sum(d is None for d in dims)
    target = []
    for i, p in enumerate(perm):
        d = dims[p]
        if d is not None:
            target.append(d)
        elif unknown == 1:
            target.append(-1)  # -1 rather than 0 lets the Reshape compose with a Reshape before it
        elif p == i:
            target.append(0)
        else:
            return None
    if 0 in [d for d in dims if d is not None]:
        return None  # a zero-sized dim: 0 in the target would copy, not mean zero
    return np.array(target, np.int64)


@rule(D, "Transpose")
def transpose_of_unit_dims(graph: Graph, node: Node):
    """A Transpose that only moves dims of size 1 is a Reshape (which composes with its neighbours)."""
    x, out = node.inputs[0], node.outputs[0]
    perm = _perm(node, x.shape.rank)
    if perm is None or perm == list(range(len(perm))) or graph.is_output(out):
        return None
    target = _as_reshape(x, perm, out)
    if target is None:
        return None
    from ..dialects.onnx import unique_value_name

    shape = add_const(graph, target, node.name + "/shape", like=node)
    r = graph.add_node("Reshape", [x, shape], {}, [out.type], domain=D, name=node.name + "/reshape",
                       output_names=[unique_value_name(graph, out.name + "/reshape")])
    return r.outputs[0]


REDUCE_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


@rule(D, "Reshape")
def reshape_of_reduce(graph: Graph, node: Node):
    """Reshape(Reduce(x, keepdims=0)) back to the kept-dims shape is Reduce(x, keepdims=1)."""
    x, out = node.inputs[0], node.outputs[0]
    red = x.node if x.node is not None and x.node.domain == D and x.node.op_type in REDUCE_OPS else None
    if red is None or red.attrs.get("keepdims", 1) or sole_use(graph, x) is None or graph.is_output(x):
        return None
    src = red.inputs[0]
    if src.shape.dims is None or out.shape.rank != src.shape.rank:
        return None
    axes = red.attrs.get("axes")
    if axes is None and len(red.inputs) > 1 and red.inputs[1] is not None:
        a = const_array(red.inputs[1])
        axes = None if a is None else a.reshape(-1).tolist()
    if axes is None:
        return None
    r = src.shape.rank
    axes = {int(a) % r for a in axes}
    kept = [1 if i in axes else d for i, d in enumerate(src.shape.dims)]
    if sum(d is None for d in kept) > 1 or list(out.shape.dims) != kept:
        return None
    graph.set_attr(red, "keepdims", 1)
    graph.set_output_types(red, [out.type])
    return x


@rule(D, "Reshape")
def reshape(graph: Graph, node: Node):
    x, out = node.inputs[0], node.outputs[0]
    if _same_dims(x, out):
        return _bypass(graph, node, x)
    inner = _producer(x, "Reshape")
    if inner is None:
        return None
    shape = const_array(node.inputs[1])
    # A 0 in the outer shape copies a dim of the intermediate tensor (unless allowzero): not the same.
    if shape is None or (not node.attrs.get("allowzero", 0) and np.any(shape == 0)):
        return None
    graph.set_input(node, 0, inner.inputs[0])
    remove_dead(graph, [inner])
    return True


@rule(D, "Shape")
def shape(graph: Graph, node: Node):
    x = node.inputs[0]
    if not x.shape.is_static or graph.is_output(node.outputs[0]):
        return None
    dims = list(x.shape.dims)
    r = len(dims)
    start, end = int(node.attrs.get("start", 0)), node.attrs.get("end")
    start = min(max(start + r if start < 0 else start, 0), r)
    end = r if end is None else int(end)
    end = min(max(end + r if end < 0 else end, 0), r)
    return add_const(graph, np.array(dims[start:end], np.int64), node.name, like=node)


SIMPLIFY = RuleSet([identity, dropout, transpose, transpose_of_unit_dims, reshape_of_reduce, reshape, shape])


@register_pass
@dataclass(frozen=True)
class ONNXSimplify(Pass):
    """After: no Identity (identity-like op) or inference-mode Dropout with an unread mask, no Transpose
    of a Transpose, no identity Transpose, no Reshape of a Reshape whose outer shape is constant without
    copied (0) dims, no Reshape to its input's own static shape, and no Shape of a static shape remain,
    except where the node's output is a graph output."""

    name = "onnx-simplify"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        return PassResult.of(**apply_rules(graph, SIMPLIFY))


# ------------------------------------------------------------------------------------------ fuse
def _float(v: Optional[Value]) -> bool:
    return v is not None and v.dtype.name in ("f32", "f64", "f16")


def _bn_params(graph: Graph, bn: Node):
    """(scale, shift) of an inference BatchNormalization with constant parameters: y = x * scale + shift
    per channel (axis 1)."""
    if len(bn.inputs) != 5 or bn.attrs.get("training_mode", 0):
        return None
    if any(graph.has_uses(v) for v in bn.outputs[1:]):
        return None
    params = [const_array(v) for v in bn.inputs[1:]]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    s = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return s, beta - mean * s


def _absorb(graph: Graph, last: Node, op: str, inputs: list, attrs: dict, meta_from: Optional[Node]) -> None:
    """Turn ``last`` into ``op(inputs){attrs}`` in place (its name and output value stay)."""
    old_ins = [v.node for v in last.inputs if v is not None and v.node is not None]
    graph.set_op(last, op)
    for k in list(last.attrs):
        graph.del_attr(last, k)
    for k, v in attrs.items():
        graph.set_attr(last, k, v)
    last.meta["onnx.attr_types"] = dict(meta_from.meta.get("onnx.attr_types", {})) if meta_from else {}
    last.meta.pop("onnx.trailing_outputs", None)
    last.meta.pop("onnx.absent_outputs", None)
    graph.set_inputs(last, inputs)
    graph.set_output_types(last, [last.outputs[0].type])
    remove_dead(graph, old_ins)


@rule(D, "BatchNormalization")
def fold_batch_norm(graph: Graph, bn: Node):
    x = bn.inputs[0]
    lin = x.node if x.node is not None and x.node.domain == D else None
    if lin is None or lin.op_type not in ("Conv", "Gemm", "MatMul") or not _float(x):
        return None
    if sole_use(graph, x) is None or x.shape.rank is None or x.shape.rank < 2:
        return None
    p = _bn_params(graph, bn)
    if p is None:
        return None
    s, shift = p
    w = const_array(lin.inputs[1])
    if w is None:
        return None
    dt = w.dtype
    if lin.op_type == "Conv":
        if w.shape[0] != s.size:
            return None
        b = const_array(lin.inputs[2]) if len(lin.inputs) > 2 and lin.inputs[2] is not None else np.zeros(s.size)
        if b is None:
            return None
        w2 = w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))
        b2 = b.astype(np.float64) * s + shift
        ins = [lin.inputs[0], add_const(graph, w2.astype(dt), lin.name + "/W", like=lin),
               add_const(graph, b2.astype(dt), lin.name + "/B", like=lin)]
        _absorb(graph, bn, "Conv", ins, dict(lin.attrs), lin)
        return True
    if x.shape.rank != 2 or w.ndim != 2:
        return None  # BatchNormalization's channel axis 1 is the matmul's output axis only in 2-D
    if lin.op_type == "Gemm":
        trans_b = bool(lin.attrs.get("transB", 0))
        if (w.shape[0] if trans_b else w.shape[1]) != s.size:
            return None
        alpha, beta = float(lin.attrs.get("alpha", 1.0)), float(lin.attrs.get("beta", 1.0))
        c = lin.inputs[2] if len(lin.inputs) > 2 else None
        c_arr = np.zeros(()) if c is None else const_array(c)
        # Only a C that is the same for every row (scalar, (N,), (1, N)) folds into a per-channel shift.
        if c_arr is None or c_arr.ndim > 2 or (c_arr.ndim == 2 and c_arr.shape[0] != 1) \
                or c_arr.size not in (1, s.size):
            return None
        w2 = w.astype(np.float64) * (s.reshape(-1, 1) if trans_b else s.reshape(1, -1))
        c2 = beta * np.broadcast_to(c_arr.astype(np.float64).reshape(-1), (s.size,)) * s + shift
        attrs = dict(lin.attrs)
        attrs["alpha"], attrs["beta"] = alpha, 1.0
        ins = [lin.inputs[0], add_const(graph, w2.astype(dt), lin.name + "/B", like=lin),
               add_const(graph, c2.astype(dt), lin.name + "/C", like=lin)]
        _absorb(graph, bn, "Gemm", ins, attrs, lin)
        return True
    # MatMul (A 2-D): a Gemm carries the shift as its C.
    if w.shape[1] != s.size:
        return None
    ins = [lin.inputs[0], add_const(graph, (w.astype(np.float64) * s).astype(dt), lin.name + "/B", like=lin),
           add_const(graph, shift.astype(dt), lin.name + "/C", like=lin)]
    _absorb(graph, bn, "Gemm", ins, {}, None)
    return True


@rule(D, "Add")
def matmul_add(graph: Graph, add: Node):
    """MatMul(A, B) + C -> Gemm(A, B, C) when A and B are 2-D and C broadcasts to the (M, N) result."""
    for i in (0, 1):
        mm = _producer(add.inputs[i], "MatMul")
        if mm is None:
            continue
        c = add.inputs[1 - i]
        a, b = mm.inputs
        y = add.outputs[0]
        if not (_float(a) and a.shape.rank == 2 and b.shape.rank == 2 and c is not None and c.shape.rank is not None
                and c.shape.rank <= 2 and y.shape.rank == 2 and y.dtype is a.dtype):
            continue
        if sole_use(graph, mm.outputs[0]) is None:
            continue
        # Gemm broadcasts C one way only: each of C's dims must be 1 or the result's.
        ydims = y.shape.dims[2 - c.shape.rank:]
        if any(cd is None or (cd != 1 and cd != yd) for cd, yd in zip(c.shape.dims, ydims)):
            continue
        _absorb(graph, add, "Gemm", [a, b, c], {}, None)
        return True
    return None


@rule(D, "Gemm", "MatMul")
def flatten_transpose(graph: Graph, mm: Node):
    """Gemm/MatMul(Reshape(Transpose(x, [0, p...]), [N, K]), W) -> Gemm/MatMul(Reshape(x, [N, K]), W') with
    W's rows permuted: the head of an NHWC CNN exported to NCHW reads the flattened features in NHWC order;
    reading them in NCHW order with permuted weights saves the Transpose."""
    a, w = mm.inputs[0], mm.inputs[1]
    if mm.op_type == "Gemm" and (mm.attrs.get("transA", 0) or mm.attrs.get("transB", 0)):
        return None
    flat = _producer(a, "Reshape")
    if flat is None or sole_use(graph, a) is None or graph.is_output(a):
        return None
    t = _producer(flat.inputs[0], "Transpose")
    wa = const_array(w)
    if t is None or wa is None or wa.ndim != 2 or sole_use(graph, flat.inputs[0]) is None:
        return None
    x = t.inputs[0]
    perm = _perm(t, x.shape.rank)
    dims = x.shape.dims
    if perm is None or perm[0] != 0 or dims is None or any(d is None for d in dims[1:]) or a.shape.rank != 2:
        return None
    k = int(np.prod(dims[1:]))
    if a.shape.dims[1] != k or wa.shape[0] != k:
        return None
    # Rows of W are indexed by the transposed (permuted) feature layout; reorder them to x's own layout.
    tdims = [dims[p] for p in perm[1:]]
    inv = np.argsort(perm[1:])
    w2 = wa.reshape(*tdims, -1).transpose(*inv, len(tdims)).reshape(k, -1)
    graph.set_input(flat, 0, x)
    remove_dead(graph, [t])
    graph.set_input(mm, 1, add_const(graph, np.ascontiguousarray(w2), mm.name + "/W", like=mm))
    return True


FUSE = RuleSet([fold_batch_norm, matmul_add, flatten_transpose])


@register_pass
@dataclass(frozen=True)
class ONNXFuse(Pass):
    """After: no inference BatchNormalization with constant parameters directly follows (as the sole
    reader) a Conv, Gemm or 2-D MatMul with constant weights, and no 2-D float MatMul read only by an Add
    whose other operand broadcasts one way to the result remains: both are one Conv / Gemm."""

    name = "onnx-fuse"
    phase = "optimize"
    requires = ("fold-constants",)

    def run(self, graph: Graph) -> PassResult:
        return PassResult.of(**apply_rules(graph, FUSE))
