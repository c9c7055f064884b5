"""onnx-simplify and onnx-fuse: rewrite rules for ONNX graphs, keyed by ("onnx", op type).

onnx-simplify (canonicalize): identity-like ops (op data) and inference-mode Dropout are bypassed (an
Identity that only names a graph output hands the name to its producer), consecutive Transposes compose
(or vanish), a Transpose of a Pad moves above it, a Reshape of a Reshape / Squeeze / Unsqueeze / Flatten
reads that op's input, a Reshape of a keepdims=0 reduction back to the kept-dims shape is the reduction
with keepdims=1, a Reshape to the shape its input already has vanishes (dynamic dims matched by 0 or one
-1), ``Shape`` of a statically shaped tensor is a constant, and so is shape arithmetic on it (Cast /
Slice / Gather / Squeeze / Unsqueeze / Concat) where the dims it reads are static; a Reshape whose shape
is computed from its own input's run-time dims gets a constant shape (0 copies the dim, one -1 stands for
one other), and a zero Pad of the spatial dims before a Conv becomes the Conv's pads.
onnx-fuse (optimize): an inference BatchNormalization, or a Mul / Add / Sub / Div by a per-channel
constant, after Conv / Gemm / MatMul with constant weights or an inference BatchNormalization is folded
into their parameters, MatMul + Add with a 2-D left operand becomes one Gemm, a Gemm / MatMul of a
flattened Transpose reads the untransposed features with permuted weight rows, and a Transpose that only
moves unit dims becomes a Reshape (here, after onnx-transpose-sink, which a Reshape would stop).

Every rewrite keeps the name and value of the last node of its pattern (it is rewritten in place, or its
readers read an equal value), so graph outputs keep their names; nodes left unread are removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..dialects.onnx import add_node
from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType
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
            and not graph.uses(out) and not node.control_inputs and not graph.control_users(node) \
            and not any(p.value is out for p in graph.inputs):
        # An Identity that only names a graph output: the value it copies takes the output's name (its
        # other readers see the same tensor).
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


@rule(D, "Transpose")
def transpose_above_pad(graph: Graph, node: Node):
    """Transpose(Pad(x)) -> Pad(Transpose(x)) with the pads permuted: an NHWC model's input Pad then meets
    the NCHW Conv it pads (and becomes its pads). Constant pads, no axes operand, Pad read only here."""
    pad = _producer(node.inputs[0], "Pad")
    if pad is None or sole_use(graph, pad.outputs[0]) is None or graph.is_output(pad.outputs[0]):
        return None
    ins = pad.inputs
    if len(ins) < 2 or (len(ins) > 3 and ins[3] is not None):
        return None
    pads = const_array(ins[1])
    x = ins[0]
    perm = _perm(node, x.shape.rank)
    if pads is None or perm is None or pads.size != 2 * len(perm):
        return None
    r = len(perm)
    pads = pads.reshape(-1)
    new = np.array([pads[p] for p in perm] + [pads[r + p] for p in perm], np.int64)
    t_type = TensorType(x.dtype, Shape(None) if x.shape.dims is None else Shape([x.shape.dims[p] for p in perm]))
    t = add_node(graph, "Transpose", [x], {"perm": perm}, [t_type], node.name + "/moved")
    graph.set_input(pad, 0, t.outputs[0])
    graph.set_input(pad, 1, add_const(graph, new, pad.name + "/pads", like=pad))
    graph.set_output_types(pad, [node.outputs[0].type])
    return pad.outputs[0]


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
    shape = add_const(graph, target, node.name + "/shape", like=node)
    r = add_node(graph, "Reshape", [x, shape], {}, [out.type], node.name + "/reshape")
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


# Shape arithmetic: the int64 1-D values Shape -> Cast/Slice/Gather/Squeeze/Unsqueeze/Concat compute,
# element by element, each a known int or (value, axis) for a dim only known at run time.
_SHAPE_OPS = ("Shape", "Cast", "Slice", "Gather", "Squeeze", "Unsqueeze", "Concat")


def shape_elements(v: Optional[Value], depth: int = 12):
    """``v``'s elements as a list (a rank-0 ``v`` as a 1-list, flagged by the second result) when ``v`` is
    a constant or shape arithmetic on them, else None."""
    if v is None or depth == 0 or v.dtype.name not in ("i64", "i32") or v.shape.rank not in (0, 1):
        return None
    c = const_array(v)
    if c is not None:
        return [int(e) for e in c.reshape(-1)], c.ndim == 0
    n = v.node
    if n is None or n.domain != D or n.op_type not in _SHAPE_OPS or v.index != 0:
        return None
    op, ins = n.op_type, n.inputs
    if op == "Shape":
        x = ins[0]
        if x.shape.rank is None:
            return None
        r = x.shape.rank
        start, end = int(n.attrs.get("start", 0)), n.attrs.get("end")
        start = min(max(start + r if start < 0 else start, 0), r)
        end = r if end is None else int(end)
        end = min(max(end + r if end < 0 else end, 0), r)
        return [d if d is not None else (x, i) for i, d in zip(range(start, end), x.shape.dims[start:end])], False
    first = shape_elements(ins[0], depth - 1)
    if first is None:
        return None
    els, scalar = first
    if op == "Cast":
        return (els, scalar) if v.dtype.name in ("i64", "i32") else None
    if op == "Concat":
        out = list(els)
        for w in ins[1:]:
            e = shape_elements(w, depth - 1)
            if e is None or e[1]:
                return None
            out += e[0]
        return out, False
    if op == "Squeeze":
        return (els, True) if len(els) == 1 and not scalar else None
    if op == "Unsqueeze":
        return (els, False) if scalar else None
    rest = [const_array(w) if w is not None else None for w in ins[1:]]
    if any(r is None for r, w in zip(rest, ins[1:]) if w is not None) or scalar:
        return None
    if op == "Gather":
        if int(n.attrs.get("axis", 0)) != 0 or rest[0].ndim > 1:
            return None
        idx = [int(i) for i in rest[0].reshape(-1)]
        if any(not -len(els) <= i < len(els) for i in idx):
            return None
        return [els[i] for i in idx], rest[0].ndim == 0
    # Slice on axis 0 with constant starts / ends (/ axes / steps)
    starts, ends = rest[0], rest[1]
    axes = rest[2] if len(rest) > 2 and rest[2] is not None else np.zeros(1, np.int64)
    steps = rest[3] if len(rest) > 3 and rest[3] is not None else np.ones(1, np.int64)
    if starts.size != 1 or ends.size != 1 or axes.size != 1 or int(axes.reshape(-1)[0]) not in (0, -1) \
            or steps.size != 1 or int(steps.reshape(-1)[0]) == 0:
        return None
    # Python's slice clamps out-of-range starts and ends as ONNX's Slice does (INT64_MIN/MAX included).
    sl = slice(int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0]), int(steps.reshape(-1)[0]))
    return els[sl], False


@rule(D, *_SHAPE_OPS[1:])
def fold_shape_arithmetic(graph: Graph, node: Node):
    """Shape arithmetic whose every element is known (dims static where it reads them) is a constant."""
    out = node.outputs[0]
    if len(node.outputs) != 1 or graph.is_output(out) or const_array(out) is not None:
        return None
    if not any(w is not None and w.node is not None and w.node.op_type in _SHAPE_OPS for w in node.inputs):
        return None  # constants only: fold-constants' work
    e = shape_elements(out)
    if e is None or not all(isinstance(x, int) for x in e[0]):
        return None
    a = np.array(e[0], out.dtype.np)
    return add_const(graph, a.reshape(()) if e[1] else a, node.name, like=node)


def _reshape_target(node: Node) -> Optional[list[int]]:
    """The Reshape's target as constants when its shape is shape arithmetic whose unknown elements are
    the data input's own dim at the same position (written 0: copy) or one other dim (written -1)."""
    x, shp = node.inputs[0], node.inputs[1]
    e = shape_elements(shp)
    if e is None or e[1]:
        return None
    allowzero = bool(node.attrs.get("allowzero", 0))
    target, unknown = [], 0
    for pos, el in enumerate(e[0]):
        if isinstance(el, int):
            if el == 0 and not allowzero:
                return None  # keep the meaning of a literal 0 simple: leave such shapes alone
            target.append(el)
        elif el[0] is x and el[1] == pos and not allowzero:
            target.append(0)
        else:
            target.append(None)
            unknown += 1
    # -1 is inferred from the other dims: not when a copied dim (0) may be 0 at run time.
    if unknown > 1 or (unknown == 1 and (-1 in target or 0 in target)):
        return None
    return [-1 if t is None else t for t in target]


def _is_identity_reshape(x: Value, target: list[int], allowzero: bool) -> bool:
    """Reshape(x, target) gives x's own shape: same rank, every entry equal to x's known dim there (or 0,
    a copy), at most one -1 with every other entry matched."""
    dims = x.shape.dims
    if dims is None or len(dims) != len(target) or target.count(-1) > 1:
        return False
    return all(t == -1 or (t == 0 and not allowzero) or (d is not None and t == d) for t, d in zip(target, dims))


@rule(D, "Reshape")
def reshape(graph: Graph, node: Node):
    x, out = node.inputs[0], node.outputs[0]
    if _same_dims(x, out):
        return _bypass(graph, node, x)
    allowzero = bool(node.attrs.get("allowzero", 0))
    if const_array(node.inputs[1]) is None:
        target = _reshape_target(node)
        if target is not None:
            old = node.inputs[1].node
            graph.set_input(node, 1, add_const(graph, np.array(target, np.int64), node.name + "/shape", like=node))
            remove_dead(graph, [old])
            return True
    shp = const_array(node.inputs[1])
    if shp is not None and _same_type(x, out) and _is_identity_reshape(x, [int(t) for t in shp.reshape(-1)], allowzero):
        return _bypass(graph, node, x)
    # A Reshape of any pure reshaping op (Reshape, Squeeze, Unsqueeze, Flatten) reads that op's input.
    inner = next((n for n in (_producer(x, op) for op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"))
                  if n is not None), None)
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


@rule(D, "Conv")
def pad_into_conv(graph: Graph, conv: Node):
    """Conv(Pad(x)) with a constant zero Pad of the spatial dims only: the Conv's own pads."""
    pad = _producer(conv.inputs[0], "Pad")
    if pad is None or sole_use(graph, pad.outputs[0]) is None or pad.attrs.get("mode", "constant") != "constant":
        return None
    if conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        return None
    ins = pad.inputs
    if len(ins) > 3 and ins[3] is not None:
        return None  # Pad's axes (op set 18): left to the general case
    pads = const_array(ins[1]) if len(ins) > 1 else None
    if pads is None or (len(ins) > 2 and ins[2] is not None and not _zero(ins[2])):
        return None
    r = conv.inputs[0].shape.rank
    pads = [int(p) for p in pads.reshape(-1)]
    if r is None or len(pads) != 2 * r or any(p < 0 for p in pads) or any(pads[i] or pads[r + i] for i in (0, 1)):
        return None
    own = [int(p) for p in conv.attrs.get("pads", [0] * (2 * (r - 2)))]
    if len(own) != 2 * (r - 2):
        return None
    new = [own[i] + pads[2 + i] for i in range(r - 2)] + [own[r - 2 + i] + pads[r + 2 + i] for i in range(r - 2)]
    graph.set_input(conv, 0, ins[0])
    graph.set_attr(conv, "pads", new)
    remove_dead(graph, [pad])
    return True


def _zero(v: Value) -> bool:
    c = const_array(v)
    return c is not None and c.size == 1 and float(c.reshape(-1)[0]) == 0.0


SIMPLIFY = RuleSet([identity, dropout, transpose, transpose_above_pad, reshape_of_reduce, reshape, shape,
                    fold_shape_arithmetic, pad_into_conv])


@register_pass
@dataclass(frozen=True)
class ONNXSimplify(Pass):
    """After: no Identity (identity-like op) or inference-mode Dropout with an unread mask, no Transpose
    of a Transpose, no identity Transpose, no Reshape of a Reshape whose outer shape is constant without
    copied (0) dims, no Reshape to its input's own shape, no Shape of a static shape and no shape
    arithmetic with every element known remain, except where the node's output is a graph output (an
    Identity naming a graph output remains only when its input has other readers or no producer); no
    Reshape's shape is shape arithmetic on its input's own dims with at most one other unknown; no Conv
    reads a constant zero Pad of only its spatial dims."""

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


def _const_operand(v: Optional[Value], rank: int, size: int) -> Optional[np.ndarray]:
    """``v``'s value, flat, when it is a constant with one value per channel of a rank-``rank`` result
    with ``size`` channels (axis 1): after broadcasting's left padding every other dim is 1."""
    c = const_array(v)
    if c is None or c.ndim > rank:
        return None
    dims = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(dims) if i != 1) or dims[1] not in (1, size):
        return None
    return c.reshape(-1)


def _scaled(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``w * s`` in ``w``'s dtype. float32 and float64 weights multiply in their own type (``s`` rounded to
    it first: within an ulp of the exact product, as ONNX Runtime and TF fold batch norms, and a third of
    the time of a float64 pass over float32 weights); narrower ones (float16) are computed in float64 and
    rounded once, as ``(w.astype(float64) * s).astype(w.dtype)`` without float64 copies of the weights,
    since rounding ``s`` to them first would cost real precision."""
    if w.dtype in (np.float32, np.float64):
        return w * s.astype(w.dtype)
    return np.multiply(w, s, out=np.empty(w.shape, w.dtype), casting="same_kind")


def _fold_affine(graph: Graph, lin: Node, last: Node, s: np.ndarray, t: np.ndarray):
    """Make ``last`` compute ``lin``'s result times ``s`` plus ``t`` per channel (axis 1), by rescaling
    ``lin``'s constant parameters: Conv (weights and bias), Gemm (B and C), a 2-D MatMul (as a Gemm) or
    an inference BatchNormalization (scale and bias). ``last`` keeps its name and output."""
    y = lin.outputs[0]
    if sole_use(graph, y) is None or not _float(y) or y.shape.rank is None or y.shape.rank < 2:
        return None
    n = y.shape.dims[1]
    if n is None or s.size not in (1, n) or t.size not in (1, n):
        return None
    unit = bool(np.all(s == 1))
    s = np.broadcast_to(s.astype(np.float64), (n,))
    t = np.broadcast_to(t.astype(np.float64), (n,))
    if lin.op_type == "BatchNormalization":
        if len(lin.inputs) != 5 or lin.attrs.get("training_mode", 0) \
                or any(graph.has_uses(v) for v in lin.outputs[1:]):
            return None
        gamma, beta = const_array(lin.inputs[1]), const_array(lin.inputs[2])
        if gamma is None or beta is None or gamma.size != n or beta.size != n:
            return None
        dt = gamma.dtype
        ins = [lin.inputs[0],
               add_const(graph, (gamma.astype(np.float64) * s).astype(dt), lin.name + "/scale", like=lin),
               add_const(graph, (beta.astype(np.float64) * s + t).astype(dt), lin.name + "/bias", like=lin),
               lin.inputs[3], lin.inputs[4]]
        _absorb(graph, last, "BatchNormalization", ins, dict(lin.attrs), lin)
        return True
    w = const_array(lin.inputs[1]) if len(lin.inputs) > 1 else None
    if w is None:
        return None
    dt = w.dtype
    if lin.op_type == "Conv":
        if w.shape[0] != n:
            return None
        b = const_array(lin.inputs[2]) if len(lin.inputs) > 2 and lin.inputs[2] is not None else np.zeros(n)
        if b is None:
            return None
        b2 = b.astype(np.float64) * s + t
        # A shift alone (an Add) leaves the weights as they are: no copy of them.
        w2 = lin.inputs[1] if unit else add_const(
            graph, _scaled(w, s.reshape((-1,) + (1,) * (w.ndim - 1))), lin.name + "/W", like=lin)
        ins = [lin.inputs[0], w2, add_const(graph, b2.astype(dt), lin.name + "/B", like=lin)]
        _absorb(graph, last, "Conv", ins, dict(lin.attrs), lin)
        return True
    if y.shape.rank != 2 or w.ndim != 2:
        return None  # the channel axis 1 is the matmul's output axis only in 2-D
    if lin.op_type == "Gemm":
        trans_b = bool(lin.attrs.get("transB", 0))
        if (w.shape[0] if trans_b else w.shape[1]) != n:
            return None
        alpha, beta = float(lin.attrs.get("alpha", 1.0)), float(lin.attrs.get("beta", 1.0))
        c = lin.inputs[2] if len(lin.inputs) > 2 else None
        c_arr = np.zeros(()) if c is None else const_array(c)
        # Only a C that is the same for every row (scalar, (N,), (1, N)) folds into a per-channel shift.
        if c_arr is None or c_arr.ndim > 2 or (c_arr.ndim == 2 and c_arr.shape[0] != 1) \
                or c_arr.size not in (1, n):
            return None
        c2 = beta * np.broadcast_to(c_arr.astype(np.float64).reshape(-1), (n,)) * s + t
        attrs = dict(lin.attrs)
        attrs["alpha"], attrs["beta"] = alpha, 1.0
        w2 = lin.inputs[1] if unit else add_const(
            graph, _scaled(w, s.reshape(-1, 1) if trans_b else s.reshape(1, -1)), lin.name + "/B", like=lin)
        ins = [lin.inputs[0], w2, add_const(graph, c2.astype(dt), lin.name + "/C", like=lin)]
        _absorb(graph, last, "Gemm", ins, attrs, lin)
        return True
    if lin.op_type != "MatMul" or w.shape[1] != n or lin.inputs[0].shape.rank != 2:
        return None
    # MatMul (A 2-D): a Gemm carries the shift as its C.
    w2 = lin.inputs[1] if unit else add_const(graph, _scaled(w, s), lin.name + "/B", like=lin)
    ins = [lin.inputs[0], w2, add_const(graph, t.astype(dt), lin.name + "/C", like=lin)]
    _absorb(graph, last, "Gemm", ins, {}, None)
    return True


_AFFINE_HOSTS = ("Conv", "Gemm", "MatMul", "BatchNormalization")


@rule(D, "BatchNormalization")
def fold_batch_norm(graph: Graph, bn: Node):
    x = bn.inputs[0]
    lin = x.node if x.node is not None and x.node.domain == D else None
    if lin is None or lin.op_type not in _AFFINE_HOSTS or not _float(x):
        return None
    p = _bn_params(graph, bn)
    if p is None:
        return None
    return _fold_affine(graph, lin, bn, *p)


@rule(D, "Mul", "Add", "Sub", "Div")
def fold_scale_shift(graph: Graph, node: Node):
    """``lin(...) * c``, ``+ c``, ``- c`` or ``/ c`` with a per-channel constant ``c``, where ``lin`` is
    an affine host: one ``lin`` with rescaled parameters."""
    y = node.outputs[0]
    if y.shape.rank is None or y.shape.rank < 2 or y.shape.dims[1] is None:
        return None
    n = y.shape.dims[1]
    op = node.op_type
    for i in ((0, 1) if op in ("Mul", "Add") else (0,)):
        x = node.inputs[i]
        lin = x.node if x is not None and x.node is not None and x.node.domain == D else None
        # A per-channel constant broadcasts without changing the shape: x's type may just know less.
        if lin is None or lin.op_type not in _AFFINE_HOSTS or x.dtype is not y.dtype or x.shape.rank != y.shape.rank:
            continue
        c = _const_operand(node.inputs[1 - i], y.shape.rank, n)
        if c is None or c.dtype != x.dtype.np:
            continue
        c = c.astype(np.float64)
        if op == "Div" and not np.all(c != 0):
            continue
        one, zero = np.ones(1), np.zeros(1)
        s, t = {"Mul": (c, zero), "Add": (one, c), "Sub": (one, -c)}.get(op) or (1.0 / c, zero)
        if _fold_affine(graph, lin, node, s, t):
            return True
    return None


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
        # Gemm broadcasts C one way only, to the product's (M, N): each of C's dims must be 1 or the
        # product's. (A C the product broadcasts to instead, e.g. [M', N] against [1, N], makes the Add's
        # result larger than the product: no Gemm.)
        mdims = mm.outputs[0].shape.dims
        if mdims is None or len(mdims) != 2:
            continue
        if any(cd is None or (cd != 1 and cd != md) for cd, md in zip(c.shape.dims, mdims[2 - c.shape.rank:])):
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


# transpose_of_unit_dims runs here, after onnx-transpose-sink: as a Reshape, a Transpose no longer sinks.
FUSE = RuleSet([fold_batch_norm, matmul_add, fold_scale_shift, flatten_transpose, transpose_of_unit_dims])


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
