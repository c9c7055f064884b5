"""einsum-to-matmul: attention einsums and batched projections as MatMul / BatchMatMulV2.

Keras 3's MultiHeadAttention traces its projections as ``BatchMatMulV2(x, W)`` of a rank >= 3 activation
with 2-D weights, and its attention as ``Einsum`` ("BTNH,BSNH->BNTS", "BNTS,BSNH->BTNH"); Keras 2's
EinsumDense is an Einsum with a constant operand. A lowering fusing MatMul + BiasAdd or BatchMatMul +
scale/mask sees none of them. This pass rewrites

* ``BatchMatMulV2(x, W)`` with a constant 2-D ``W`` into ``Reshape(x, [-1, K]) -> MatMul -> Reshape``
  (the tensordot form dense-to-matmul then completes with the bias);
* a two-operand Einsum with a constant operand and no batch labels into the same form, the weights'
  transpose and reshape folded into a new constant (and a Transpose of the result when the output order
  asks for one);
* a two-operand Einsum of activations whose batch, contracted and two free label groups are one label
  each (besides the batch labels) into ``BatchMatMulV2`` with ``adj_x``/``adj_y`` instead of transposes
  where the operand layout allows, and Transposes where it does not.

Equations with an ellipsis, a label repeated within an operand, or a label summed away without being
contracted are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType, i32
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, remove_dead


def parse_equation(eq: str) -> Optional[tuple[str, str, str]]:
    """(a, b, out) labels of a two-operand equation without ellipsis or repeated labels, else None."""
    eq = eq.replace(" ", "")
    if "." in eq or "->" not in eq:
        return None
    lhs, out = eq.split("->")
    parts = lhs.split(",")
    if len(parts) != 2:
        return None
    a, b = parts
    for s in (a, b, out):
        if len(set(s)) != len(s):
            return None
    if set(out) - set(a) - set(b) or (set(a) ^ set(b)) - set(out):
        return None
    return a, b, out


def _perm(src: str, dst: str) -> list[int]:
    return [src.index(c) for c in dst]


class _Builder:
    def __init__(self, graph: Graph, like: Node):
        self.graph, self.like = graph, like

    def node(self, op, ins, attrs, t, name) -> Value:
        return self.graph.add_node(op, ins, attrs, [t], domain="tf", name=name, device=self.like.device).outputs[0]

    def const(self, array, name) -> Value:
        return add_const(self.graph, array, name, like=self.like)

    def transpose(self, v: Value, perm: list[int], name: str) -> Value:
        if perm == list(range(len(perm))):
            return v
        dims = v.shape.dims
        t = TensorType(v.dtype, Shape(None if dims is None else [dims[p] for p in perm]))
        return self.node("Transpose", [v, self.const(np.asarray(perm, np.int32), f"{name}/perm")],
                         {"T": v.dtype, "Tperm": i32}, t, name)

    def reshape(self, v: Value, dims: list, name: str) -> Value:
        shape = self.const(np.asarray([-1 if d is None else d for d in dims], np.int32), f"{name}/shape")
        return self.node("Reshape", [v, shape], {"T": v.dtype, "Tshape": i32}, TensorType(v.dtype, Shape(dims)),
                         name)


def _projection(b: _Builder, x: Value, w: np.ndarray, name: str) -> Optional[Value]:
    """``x[..., K] @ w[K, N]`` as Reshape -> MatMul -> Reshape; None when x's leading dims have more
    than one unknown (no constant target shape)."""
    lead = list(x.shape.dims[:-1])
    if sum(d is None for d in lead) > 1:
        return None
    k, n = w.shape
    rows = int(np.prod(lead)) if None not in lead else None
    flat = b.reshape(x, [rows, k], f"{name}/flatten")
    wc = b.const(np.ascontiguousarray(w), f"{name}/weights")
    mm = b.node("MatMul", [flat, wc], {"T": x.dtype, "transpose_a": False, "transpose_b": False},
                TensorType(x.dtype, Shape([rows, n])), f"{name}/MatMul")
    return b.reshape(mm, lead + [n], f"{name}/unflatten")


@register_pass
@dataclass(frozen=True)
class EinsumToMatMul(Pass):
    """After: no BatchMatMulV2/V3 of a rank >= 3 activation and a constant matrix, and no two-operand
    Einsum of the forms above; each result keeps the replaced node's name."""

    name = "einsum-to-matmul"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        counts = {"projections": 0, "einsum_const": 0, "einsum_batch_matmul": 0}
        for n in graph.topo_order(by_name=False):
            if n.graph is not graph or n.domain != "tf" or n.control_inputs or graph.control_users(n):
                continue
            if n.op_type in ("BatchMatMulV2", "BatchMatMulV3"):
                out, kind = self._batch_matmul(graph, n), "projections"
            elif n.op_type == "Einsum" and len(n.inputs) == 2:
                out, kind = self._einsum(graph, n)
            else:
                continue
            if out is None:
                continue
            name = n.name
            graph.replace_all_uses_with(n.outputs[0], out, outputs=True)
            remove_dead(graph, [n])
            if name not in graph and out.node is not None:
                graph.rename(out.node, name)
            counts[kind] += 1
        return PassResult.of(**counts)

    @staticmethod
    def _batch_matmul(graph: Graph, n: Node) -> Optional[Value]:
        x, w = n.inputs
        wa = const_array(w)
        if n.attrs.get("adj_x") or wa is None or wa.ndim != 2 or x.shape.rank is None or x.shape.rank < 3:
            return None
        if n.op_type == "BatchMatMulV3" and (n.attrs.get("Ta") != n.attrs.get("Tout") or
                                             n.attrs.get("Tb") != n.attrs.get("Tout")):
            return None
        if n.attrs.get("adj_y"):
            wa = wa.T
        if x.shape.dims[-1] != wa.shape[0]:
            return None
        return _projection(_Builder(graph, n), x, wa.astype(x.dtype.np), n.name)

    def _einsum(self, graph: Graph, n: Node):
        labels = parse_equation(str(n.attrs.get("equation", "")))
        if labels is None or any(v.shape.rank is None for v in n.inputs):
            return None, None
        a, b, out = labels
        x, y = n.inputs
        if len(a) != x.shape.rank or len(b) != y.shape.rank:
            return None, None
        dims = {}
        for lbl, v in ((a, x), (b, y)):
            for c, d in zip(lbl, v.shape.dims):
                if d is not None and dims.get(c, d) != d:
                    return None, None
                dims[c] = d if d is not None else dims.get(c)
        if const_array(x) is not None and const_array(y) is None:
            x, y, a, b = y, x, b, a
        if const_array(y) is not None:
            return self._einsum_const(graph, n, x, const_array(y), a, b, out, dims), "einsum_const"
        return self._einsum_bmm(graph, n, x, y, a, b, out, dims), "einsum_batch_matmul"

    @staticmethod
    def _einsum_const(graph, n, x, w, a, b, out, dims) -> Optional[Value]:
        batch = [c for c in out if c in a and c in b]
        k = [c for c in a if c in b and c not in out]
        fa = [c for c in a if c not in b]
        fb = [c for c in out if c in b and c not in a]
        if batch or not k or not fa:
            return None
        bld = _Builder(graph, n)
        name = n.name
        xt = bld.transpose(x, _perm(a, "".join(fa + k)), f"{name}/input_transpose")
        lead = [dims[c] for c in fa]
        kk = int(np.prod([dims[c] for c in k]))
        nn = int(np.prod([dims[c] for c in fb])) if fb else 1
        if len(k) > 1 or x.shape.rank - len(k) != len(fa):
            if sum(d is None for d in lead) > 1:
                return None
            xt = bld.reshape(xt, lead + [kk], f"{name}/merge_contracted")
        wm = np.transpose(w, _perm(b, "".join(k + fb))).reshape(kk, nn).astype(x.dtype.np)
        y = _projection(bld, xt, wm, name)
        if y is None:
            return None
        fb_dims = [dims[c] for c in fb]
        if len(fb) != 1:
            y = bld.reshape(y, lead + fb_dims, f"{name}/split")
        return bld.transpose(y, _perm("".join(fa + fb), out), f"{name}/output_transpose")

    @staticmethod
    def _einsum_bmm(graph, n, x, y, a, b, out, dims) -> Optional[Value]:
        batch = [c for c in out if c in a and c in b]
        k = [c for c in a if c in b and c not in out]
        fa = [c for c in a if c not in b]
        fb = [c for c in b if c not in a]
        if len(k) != 1 or len(fa) != 1 or len(fb) != 1:
            return None
        (k,), (fa,), (fb,) = k, fa, fb
        bt = "".join(batch)
        bld = _Builder(graph, n)
        name = n.name
        # An operand already laid out as batch + matrix is read as it is, with the adjoint flag saying which
        # way round; otherwise it is transposed to the layout that keeps its innermost label innermost
        # (the cheaper transpose, and Q @ K^T's usual adj_y form).
        adj_x = a == bt + k + fa or a != bt + fa + k and a[-1] == fa
        xa = bld.transpose(x, _perm(a, bt + (k + fa if adj_x else fa + k)), f"{name}/lhs_transpose")
        adj_y = b == bt + fb + k or b != bt + k + fb and b[-1] == k
        yb = bld.transpose(y, _perm(b, bt + (fb + k if adj_y else k + fb)), f"{name}/rhs_transpose")
        prod = bt + fa + fb
        t = TensorType(n.outputs[0].dtype, Shape([dims.get(c) for c in prod]))
        r = bld.node("BatchMatMulV2", [xa, yb], {"T": t.dtype, "adj_x": adj_x, "adj_y": adj_y}, t,
                     f"{name}/BatchMatMulV2")
        return bld.transpose(r, _perm(prod, out), f"{name}/output_transpose")
