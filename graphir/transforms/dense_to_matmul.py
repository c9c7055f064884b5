"""dense-to-matmul: Keras 3 Dense on rank >= 3 inputs as Reshape -> MatMul -> BiasAdd -> activation -> Reshape.

Keras 3 lowers ``Dense`` on a ``[..., K]`` input through ``tensordot``: Shape/GatherV2/Prod/Pack shape
arithmetic, an (identity) Transpose, Reshape to 2-D, MatMul, Reshape back to ``[..., N]``, then the bias
(BiasAdd or AddV2) and the activation on the high-rank tensor. A lowering that fuses MatMul + BiasAdd +
activation finds a Reshape in between. This pass rewrites each such chain to

    Reshape(x, [-1, K]) -> MatMul -> BiasAdd -> activation -> Reshape(., [d0, ..., N])

(Keras 3's MultiHeadAttention projections reshape to heads ``[..., H, D]`` before adding an ``[H, D]``
bias: the bias moves before the split, and the final Reshape goes to the heads shape), with the target
shape a constant when at most one leading dimension is unknown (that one as -1), and the
model's own ``Shape``-based target otherwise, so dynamic batch and sequence dimensions stay dynamic. The
activation moves into the 2-D section when the bias output feeds only it: a one-op activation (Relu,
Relu6, Elu, Selu, LeakyRelu, Tanh, Sigmoid, Softplus, Softsign), a GELU in any form (rebuilt in the
canonical form of :mod:`.activation_patterns`) or a Swish ``x * sigmoid(x)``.

The rewrite is exact: a Reshape to ``[M, K]`` whose MatMul checks ``K`` against the weights is the same
row-major flattening however its shape was computed, and the target of the Reshape back is checked to be
``x``'s leading dimensions followed by ``N``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType, i32
from .activation_patterns import build_gelu, build_swish, gelu_nodes, match_gelu, match_swish
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, remove_dead, sole_use

# One-input elementwise activations a Dense may end with.
ACTIVATIONS = frozenset({"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softplus", "Softsign"})


def _tf(v: Optional[Value], *ops: str) -> Optional[Node]:
    n = None if v is None else v.node
    return n if n is not None and n.domain == "tf" and n.op_type in ops and v.index == 0 else None


def _strip_identity_transpose(v: Value) -> Value:
    t = _tf(v, "Transpose")
    if t is not None:
        p = const_array(t.inputs[1])
        if p is not None and np.array_equal(p, np.arange(p.size)):
            return t.inputs[0]
    return v


def _dims_of(graph: Graph, v: Value, x: Value) -> Optional[list]:
    """The entries of a 1-D shape tensor: ints, or ("dim", i) for dimension i of ``x`` read through
    Shape(x) / GatherV2(Shape(x), indices); None when it is computed any other way."""
    c = const_array(v)
    if c is not None:
        return [int(d) for d in c.reshape(-1)] if c.ndim <= 1 else None
    n = v.node
    if _tf(v, "Shape") is not None and n.inputs[0] is x:
        return [("dim", i) for i in range(x.shape.rank)]
    if _tf(v, "GatherV2") is not None and _tf(n.inputs[0], "Shape") is not None \
            and n.inputs[0].node.inputs[0] is x:
        idx, axis = const_array(n.inputs[1]), const_array(n.inputs[2])
        if idx is None or axis is None or int(axis) != 0 or n.attrs.get("batch_dims", 0):
            return None
        return [("dim", int(i) % x.shape.rank) for i in idx.reshape(-1)]
    if _tf(v, "ConcatV2") is not None:
        axis = const_array(n.inputs[-1])
        if axis is None or int(axis) != 0:
            return None
        out = []
        for p in n.inputs[:-1]:
            d = _dims_of(graph, p, x)
            if d is None:
                return None
            out += d
        return out
    return None


def _is_back_shape(graph: Graph, v: Value, x: Value, tail: list) -> bool:
    """True if reshaping ``[M, N]`` to the shape tensor ``v`` gives ``x``'s leading dimensions followed by
    ``tail`` (static, with product N)."""
    dims = _dims_of(graph, v, x)
    lead = x.shape.dims[:-1]
    if dims is None or len(dims) != len(lead) + len(tail) or dims[len(lead):] != list(tail):
        return False
    if dims.count(-1) > 1:
        return False
    for i, (d, want) in enumerate(zip(dims, lead)):
        if d == ("dim", i) or d == -1 or want is not None and d == want:
            continue
        return False
    # A -1 stands for an unknown leading dimension only when it is the only one unknown.
    unknown = [i for i, d in enumerate(lead) if d is None and dims[i] != ("dim", i)]
    return len(unknown) <= 1 and all(dims[i] == -1 for i in unknown)


def _bias(graph: Graph, v: Value, tail: list) -> Optional[tuple[Node, np.ndarray]]:
    """The node adding a constant bias over the last ``len(tail)`` dims to ``v`` (its sole reader), with
    the bias flattened to ``prod(tail)``."""
    use = sole_use(graph, v)
    if use is None or use[0].control_inputs or use[0].domain != "tf" or len(use[0].inputs) != 2:
        return None
    b, slot = use
    c = const_array(b.inputs[1 - slot])
    n = int(np.prod(tail))
    if c is None or c.size != n:
        return None
    if b.op_type == "BiasAdd" and slot == 0 and len(tail) == 1 and b.attrs.get("data_format", "NHWC") == "NHWC":
        return b, c.reshape(n)
    shape = c.shape[c.ndim - len(tail):] if c.ndim >= len(tail) else None
    if b.op_type in ("Add", "AddV2") and shape == tuple(tail) and b.outputs[0].shape == v.shape:
        return b, c.reshape(n)
    return None


@dataclass
class _Chain:
    x: Value          # the [..., K] input
    matmul: Node
    back: Node        # the Reshape back to [..., N]
    target: Value     # the shape it reshapes to ([..., N], or [..., H, D] when split into heads)
    tail: list        # the target's trailing static dims ([N] or [H, D])
    bias: Optional[Node]
    bias_value: Optional[np.ndarray]
    act: Optional[tuple]   # ("op", node) | ("gelu", kind, nodes) | ("swish", nodes)
    last: Value       # the value the rewrite replaces


@register_pass
@dataclass(frozen=True)
class DenseToMatMul(Pass):
    """After: no MatMul of a Reshape of a rank >= 3 tensor whose result is reshaped back to that tensor's
    leading dimensions; each is Reshape([-1, K]) -> MatMul -> [BiasAdd] -> [activation] -> Reshape, the
    final Reshape taking the name of the last node replaced."""

    name = "dense-to-matmul"
    phase = "canonicalize"
    requires = ("fold-constants",)  # the tensordot's identity Transpose permutation must be a constant

    def run(self, graph: Graph) -> PassResult:
        counts = {"rewritten": 0, "bias": 0, "activation": 0}
        for n in graph.topo_order(by_name=False):
            if n.graph is not graph or n.op_type != "MatMul" or n.domain != "tf":
                continue
            chain = self._match(graph, n)
            if chain is None:
                continue
            self._rewrite(graph, chain)
            counts["rewritten"] += 1
            counts["bias"] += chain.bias is not None
            counts["activation"] += chain.act is not None
        return PassResult.of(**counts)

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _match(graph: Graph, mm: Node) -> Optional[_Chain]:
        if mm.attrs.get("transpose_a") or mm.control_inputs:
            return None
        w = mm.inputs[1]
        flat = _tf(mm.inputs[0], "Reshape")
        if flat is None or w.shape.rank != 2 or not w.shape.is_static or sole_use(graph, mm.inputs[0]) is None:
            return None
        k, n_out = w.shape.dims[::-1] if mm.attrs.get("transpose_b") else w.shape.dims
        x = _strip_identity_transpose(flat.inputs[0])
        if x.shape.rank is None or x.shape.rank < 3 or x.shape.dims[-1] != k:
            return None
        use = sole_use(graph, mm.outputs[0])
        back = use[0] if use is not None and use[1] == 0 else None
        if back is None or back.op_type != "Reshape" or back.domain != "tf" or back.control_inputs:
            return None
        if not _is_back_shape(graph, back.inputs[1], x, [n_out]):
            return None
        last, target, tail = back.outputs[0], back.inputs[1], [n_out]
        bias, bias_value = None, None
        found = _bias(graph, last, tail)
        split = _tf(last, "Reshape") and sole_use(graph, last)
        if found is None and split is not None and split[1] == 0 and _tf(split[0].outputs[0], "Reshape"):
            # Keras 3 MultiHeadAttention reshapes a projection to heads [..., H, D] before its bias.
            sp = split[0]
            dims = sp.outputs[0].shape.dims or ()
            heads = list(dims[x.shape.rank - 1:])
            if len(heads) > 1 and None not in heads and int(np.prod(heads)) == n_out and not sp.control_inputs \
                    and _is_back_shape(graph, sp.inputs[1], x, heads):
                found = _bias(graph, sp.outputs[0], heads)
                if found is not None:
                    target, tail = sp.inputs[1], heads
        if found is not None:
            bias, bias_value = found
            last = bias.outputs[0]
        act = DenseToMatMul._activation(graph, last)
        if act is not None:
            last = act[-1]
            act = act[:-1]
        return _Chain(x, mm, back, target, tail, bias, bias_value, act, last)

    @staticmethod
    def _activation(graph: Graph, v: Value) -> Optional[tuple]:
        """The activation reading ``v`` (and nothing else reading it): a tuple ending with its output."""
        uses = graph.uses(v)
        if graph.is_output(v) or not uses or (v.node is not None and graph.control_users(v.node)):
            return None
        if len(uses) == 1:
            a = uses[0][0]
            if a.domain == "tf" and a.op_type in ACTIVATIONS and len(a.inputs) == 1 and not a.control_inputs:
                return ("op", a, a.outputs[0])
        # GELU and Swish read v several times: find their root among the nodes a few steps downstream.
        frontier, seen = [u for u, _ in uses], set()
        for _ in range(10):
            nxt = []
            for u in frontier:
                if id(u) in seen or u.domain != "tf" or not u.outputs:
                    continue
                seen.add(id(u))
                y = u.outputs[0]
                if u.op_type == "Mul":
                    g = match_gelu(graph, y)
                    if g is not None and g[1] is v:
                        nodes = gelu_nodes(graph, y)
                        if all(r in nodes for r, _ in uses):
                            return ("gelu", g[0], nodes, y)
                    if match_swish(graph, y) is v and len(uses) == 2:
                        return ("swish", [u] + [r for r, _ in uses if r is not u], y)
                nxt += [r for r, _ in graph.uses(y)]
            frontier = nxt
        return None

    # ------------------------------------------------------------------ rewriting
    def _rewrite(self, graph: Graph, c: _Chain) -> None:
        mm, x = c.matmul, c.x
        k = x.shape.dims[-1]
        n_out = int(np.prod(c.tail))
        lead = x.shape.dims[:-1]
        rows = int(np.prod(lead)) if all(d is not None for d in lead) else None
        dt = mm.outputs[0].dtype
        t2 = TensorType(dt, Shape([rows, n_out]))
        like = mm

        base = (c.bias or c.back).name.rsplit("/", 1)[0]
        made: list[tuple[Node, str]] = []  # new nodes and the names they take once the old ones are gone

        def node(op, ins, attrs, t, suffix):
            v = graph.add_node(op, ins, attrs, [t], domain="tf", name=f"{base}/{suffix}", device=mm.device).outputs[0]
            made.append((v.node, f"{base}/{suffix}"))
            return v

        flat_shape = add_const(graph, np.asarray([-1, k], np.int32), f"{base}/flatten/shape", like=like)
        flat = node("Reshape", [x, flat_shape], {"T": x.dtype, "Tshape": i32},
                    TensorType(x.dtype, Shape([rows, k])), "flatten")
        y = node("MatMul", [flat, mm.inputs[1]], dict(mm.attrs), t2, "MatMul")
        if c.bias is not None:
            b = add_const(graph, c.bias_value.astype(dt.np), f"{base}/bias", dtype=dt, like=like)
            y = node("BiasAdd", [y, b], {"T": dt, "data_format": "NHWC"}, t2, "BiasAdd")
        if c.act is not None:
            kind = c.act[0]
            if kind == "op":
                a = c.act[1]
                y = node(a.op_type, [y], dict(a.attrs), t2, a.op_type)
            elif kind == "gelu":
                y = build_gelu(graph, y, c.act[1], like=like, name=f"{base}/Gelu")
            else:
                y = build_swish(graph, y, like=like, name=f"{base}/Swish")
        if sum(d is None for d in lead) <= 1:
            dims = [-1 if d is None else d for d in lead] + c.tail
            shape = add_const(graph, np.asarray(dims, np.int32), f"{base}/unflatten/shape", like=like)
            out_t = TensorType(dt, Shape(list(lead) + c.tail))
        else:
            # Two or more unknown dimensions: the model's own Shape-based target, checked in _match.
            shape, out_t = c.target, c.last.type
        out = node("Reshape", [y, shape], {"T": dt, "Tshape": shape.dtype}, out_t, "unflatten")
        graph.replace_all_uses_with(c.last, out, outputs=True)
        last_name = c.last.node.name
        remove_dead(graph, [c.last.node])
        # The final Reshape takes the replaced value's name first: readers outside know it by that name.
        made = [(out.node, last_name)] + made[:-1]
        for n, want in made:
            if n.name != want and want not in graph:
                graph.rename(n, want)
