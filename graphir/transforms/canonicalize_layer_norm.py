"""canonicalize-layer-norm: LayerNormalization subgraphs as one ``_MklLayerNorm``.

Keras 3 traces ``LayerNormalization`` (last axis) as about a dozen ops: ``mean = Mean(x)``, ``var =
Mean(SquaredDifference(x, mean))``, ``inv = Rsqrt(var + eps) * gamma`` and ``y = x * inv + (beta +
Neg(mean) * inv)``; Keras 2's unfused form (``tf.nn.batch_normalization``) writes ``beta - mean * inv``
with Sub. Each is recognised by value, not by operand order: from each ``Rsqrt(Mean(squared deviation) +
eps)`` the arithmetic downstream is expanded into a polynomial in ``x``, ``mean`` and ``rsqrt`` with
constant coefficients, and the last value equal to ``(x - mean) * rsqrt * gamma + beta`` for constant
``gamma``, ``beta`` (either may be absent) is replaced by ``_MklLayerNorm(x, gamma, beta, epsilon)``, TF's
oneDNN kernel (fp32 and bf16, rank 2-3; a rank >= 4 input is reshaped to rank 3 around it).

tf.keras's fused LayerNormalization is recognised too: ``Reshape(x, [1, rows, C, 1])`` into a training-mode
NCHW ``FusedBatchNorm*`` with unit scale and zero offset (constants, or ``Fill``s of 1 and 0 for a dynamic
batch), ``Reshape`` back to ``x``'s shape, then an optional ``Mul`` by gamma and ``Add`` of beta.

Nothing changes when the installed TF lacks the op or its CPU kernel for the dtype
(:func:`graphir.dialects.tf_canonical.mkl_layer_norm_available`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..dialects.tf_canonical import MKL_LAYER_NORM, MKL_LAYER_NORM_RANKS, mkl_layer_norm_available
from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType, i32
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, remove_dead

_ARITH = frozenset({"Mul", "Add", "AddV2", "Sub", "Neg", "RealDiv", "Div"})
_FUSED_BN = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


def _filled(v: Value, want: float) -> bool:
    """``v`` is a constant (or a ``Fill`` of a constant) whose every element is ``want``."""
    a = const_array(v)
    if a is None:
        fill = _tf(v, "Fill")
        a = None if fill is None else const_array(fill.inputs[1])
    return a is not None and a.size > 0 and bool(np.all(a == want))


def _last_axis_vector(v: Value, c: int, rank: int) -> Optional[np.ndarray]:
    """A constant that broadcasts along the last axis only, as a length-``c`` vector."""
    a = const_array(v)
    if a is None or a.ndim > rank or a.size not in (1, c) or (a.size == c and a.shape[-1] != c):
        return None
    return np.broadcast_to(a.reshape(-1), (c,)).astype(np.float64)


def _sole_reader(graph: Graph, v: Value) -> Optional[tuple[Node, int]]:
    uses = graph.uses(v)
    if len(uses) != 1 or graph.is_output(v) or uses[0][0].domain != "tf" or uses[0][0].control_inputs:
        return None
    return uses[0]


def _tf(v: Optional[Value], *ops: str) -> Optional[Node]:
    n = None if v is None else v.node
    return n if n is not None and n.domain == "tf" and n.op_type in ops and v.index == 0 else None


def _last_axis_mean(v: Value, x: Optional[Value] = None) -> Optional[Node]:
    """The Mean producing ``v`` if it reduces the last axis only, keeping dims (of ``x`` when given)."""
    m = _tf(v, "Mean")
    if m is None or not m.attrs.get("keep_dims") or x is not None and m.inputs[0] is not x:
        return None
    axes, rank = const_array(m.inputs[1]), m.inputs[0].shape.rank
    if axes is None or rank is None or axes.size != 1 or int(axes.reshape(-1)[0]) % rank != rank - 1:
        return None
    return m


def _moments(r: Node) -> Optional[tuple[Value, Value, float]]:
    """(x, mean, epsilon) if Rsqrt ``r`` is ``1 / sqrt(Mean((x - mean)^2) + eps)`` over the last axis."""
    add = _tf(r.inputs[0], "Add", "AddV2")
    if add is None:
        return None
    for s in (0, 1):
        eps = const_array(add.inputs[s])
        var = _last_axis_mean(add.inputs[1 - s])
        if eps is None or eps.size != 1 or var is None:
            continue
        dev = var.inputs[0]
        sq = _tf(dev, "SquaredDifference")
        pair = tuple(sq.inputs) if sq is not None else None
        if pair is None and _tf(dev, "Square") is not None:
            sub = _tf(dev.node.inputs[0], "Sub")
            pair = tuple(sub.inputs) if sub is not None else None
        if pair is None:
            continue
        for a, b in (pair, pair[::-1]):
            if _last_axis_mean(b, a) is not None:
                return a, b, float(eps.reshape(-1)[0])
    return None


class _Expansion:
    """Values as polynomials in the atoms X (x), M (mean), R (the rsqrt) and constant vectors, each term a
    sorted tuple of atom keys mapped to its coefficient."""

    def __init__(self, x: Value, mean: Value, r: Value):
        self.x = x
        self.atoms = {id(x): "X", id(mean): "M", id(r): "R"}
        self.consts: dict[str, np.ndarray] = {}
        self.channels = x.shape.dims[-1]
        self.rank = x.shape.rank

    def of(self, v: Value, depth: int = 0) -> Optional[dict]:
        key = self.atoms.get(id(v))
        if key is not None:
            return {(key,): 1.0}
        if _last_axis_mean(v, self.x) is not None:  # a second copy of the mean (before CSE merged them)
            return {("M",): 1.0}
        c = const_array(v)
        if c is not None:
            if c.dtype.kind not in "f" and c.dtype.name != "bfloat16":
                return None
            if c.size == 1:
                return {(): float(np.asarray(c, np.float64).reshape(()))}
            if c.ndim > self.rank or c.shape[-1] != self.channels or c.size != self.channels:
                return None
            k = self.atoms.setdefault(id(v), f"c{len(self.consts)}")
            self.consts[k] = np.asarray(c, np.float64).reshape(-1)
            return {(k,): 1.0}
        n = _tf(v, *_ARITH)
        if n is None or depth > 10:
            return None
        a = self.of(n.inputs[0], depth + 1)
        if a is None:
            return None
        if n.op_type == "Neg":
            return {t: -c for t, c in a.items()}
        if n.op_type in ("RealDiv", "Div"):
            d = const_array(n.inputs[1])
            return {t: c / float(d.reshape(-1)[0]) for t, c in a.items()} if d is not None and d.size == 1 else None
        b = self.of(n.inputs[1], depth + 1)
        if b is None:
            return None
        if n.op_type == "Mul":
            out: dict = {}
            for ta, ca in a.items():
                for tb, cb in b.items():
                    t = tuple(sorted(ta + tb))
                    out[t] = out.get(t, 0.0) + ca * cb
            return out
        sign = -1.0 if n.op_type == "Sub" else 1.0
        out = dict(a)
        for t, c in b.items():
            out[t] = out.get(t, 0.0) + sign * c
        return out

    def value(self, term: tuple, coef: float) -> np.ndarray:
        out = np.full(self.channels, coef)
        for k in term:
            out = out * self.consts[k]
        return out

    def layer_norm(self, p: dict) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(gamma, beta) if ``p`` is ``(X - M) * R * gamma + beta``."""
        p = {t: c for t, c in p.items() if c != 0.0}
        with_x = [t for t in p if "X" in t]
        with_m = [t for t in p if "M" in t]
        if len(with_x) != 1 or len(with_m) != 1:
            return None
        tx, tm = with_x[0], with_m[0]
        gx = tuple(k for k in tx if k not in ("X", "R"))
        gm = tuple(k for k in tm if k not in ("M", "R"))
        if tx.count("X") != 1 or tx.count("R") != 1 or tm.count("M") != 1 or tm.count("R") != 1 or "M" in gx \
                or "X" in gm:
            return None
        gamma = self.value(gx, p[tx])
        if not np.allclose(self.value(gm, -p[tm]), gamma, rtol=1e-6, atol=0):
            return None
        beta = np.zeros(self.channels)
        for t, c in p.items():
            if t in (tx, tm):
                continue
            if any(k in ("X", "M", "R") for k in t):
                return None
            beta = beta + self.value(t, c)
        return gamma, beta


@register_pass
@dataclass(frozen=True)
class CanonicalizeLayerNorm(Pass):
    """After: no value equal to ``(x - mean) * rsqrt(var + eps) * gamma + beta`` (last-axis moments of a
    static-channel ``x`` of rank >= 2, constant gamma/beta) computed by plain arithmetic, when TF has
    ``_MklLayerNorm`` for its dtype; each is one ``_MklLayerNorm`` (between Reshapes for rank >= 4)
    named like the replaced node."""

    name = "canonicalize-layer-norm"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        order = {id(n): i for i, n in enumerate(graph.topo_order(by_name=False))}
        counts = {"layer_norms": 0, "reshaped": 0}
        for r in [n for n in graph.nodes() if n.op_type == "Rsqrt" and n.domain == "tf"]:
            if r.graph is not graph:
                continue
            m = _moments(r)
            if m is None:
                continue
            x, mean, eps = m
            if x.shape.rank is None or x.shape.rank < 2 or x.shape.dims[-1] is None \
                    or not mkl_layer_norm_available(x.dtype):
                continue
            found = self._output(graph, r, x, mean, order)
            if found is None:
                continue
            y, gamma, beta = found
            counts["reshaped"] += self._rewrite(graph, x, y, gamma, beta, eps)
            counts["layer_norms"] += 1
        for bn in [n for n in graph.nodes() if n.op_type in _FUSED_BN and n.domain == "tf"]:
            if bn.graph is not graph:
                continue
            found = self._fused(graph, bn)
            if found is None:
                continue
            x, y, gamma, beta, eps = found
            counts["reshaped"] += self._rewrite(graph, x, y, gamma, beta, eps)
            counts["fused_layer_norms"] = counts.get("fused_layer_norms", 0) + 1
        return PassResult.of(**counts)

    @staticmethod
    def _fused(graph: Graph, bn: Node):
        """(x, y, gamma, beta, eps) when ``bn`` is the core of tf.keras's fused layer norm of ``x``."""
        fmt = bn.attrs.get("data_format", "NHWC")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if not bn.attrs.get("is_training", True) or fmt != "NCHW" or bn.control_inputs:
            return None
        if any(graph.has_uses(v) for v in bn.outputs[1:]):
            return None
        rin = _tf(bn.inputs[0], "Reshape")
        if rin is None or len(graph.uses(rin.outputs[0])) != 1:
            return None
        x = rin.inputs[0]
        dims, sq = x.shape.dims, rin.outputs[0].shape.dims
        if dims is None or len(dims) < 2 or dims[-1] is None or sq is None or len(sq) != 4 \
                or sq[0] != 1 or sq[2] != dims[-1] or sq[3] != 1 or not mkl_layer_norm_available(x.dtype):
            return None
        if not (_filled(bn.inputs[1], 1.0) and _filled(bn.inputs[2], 0.0)):
            return None
        back = _sole_reader(graph, bn.outputs[0])
        if back is None or back[0].op_type != "Reshape" or back[0].outputs[0].type != x.type:
            return None
        c, rank = dims[-1], len(dims)
        y = back[0].outputs[0]
        gamma, beta = np.ones(c), np.zeros(c)
        nxt = _sole_reader(graph, y)
        if nxt is not None and nxt[0].op_type == "Mul" and nxt[0].outputs[0].type == x.type:
            g = _last_axis_vector(nxt[0].inputs[1 - nxt[1]], c, rank)
            if g is not None:
                gamma, y = g, nxt[0].outputs[0]
                nxt = _sole_reader(graph, y)
        if nxt is not None and nxt[0].op_type in ("Add", "AddV2") and nxt[0].outputs[0].type == x.type:
            b = _last_axis_vector(nxt[0].inputs[1 - nxt[1]], c, rank)
            if b is not None:
                beta, y = b, nxt[0].outputs[0]
        return x, y, gamma, beta, float(bn.attrs.get("epsilon", 1e-3))

    @staticmethod
    def _output(graph: Graph, r: Node, x: Value, mean: Value, order: dict):
        """The last value downstream of ``r`` that is the layer norm of ``x``, with its gamma and beta."""
        cone, frontier = {}, [r]
        for _ in range(6):
            nxt = []
            for n in frontier:
                for u in graph.users(n):
                    if u.domain == "tf" and u.op_type in _ARITH and id(u) not in cone:
                        cone[id(u)] = u
                        nxt.append(u)
            frontier = nxt
        for n in sorted(cone.values(), key=lambda n: -order.get(id(n), -1)):
            y = n.outputs[0]
            if y.shape.rank != x.shape.rank or n.control_inputs:
                continue
            e = _Expansion(x, mean, r.outputs[0])
            p = e.of(y)
            gb = None if p is None else e.layer_norm(p)
            if gb is not None:
                return y, gb[0], gb[1]
        return None

    @staticmethod
    def _rewrite(graph: Graph, x: Value, y: Value, gamma, beta, eps: float) -> int:
        like = y.node
        name = like.name
        dt, c = x.dtype, x.shape.dims[-1]
        lead = x.shape.dims[:-1]
        xin, reshaped = x, x.shape.rank not in MKL_LAYER_NORM_RANKS
        if reshaped:
            mid = lead[-1] if lead[-1] is not None else 1
            rows = int(np.prod(lead)) // mid if all(d is not None for d in lead) else None
            s = add_const(graph, np.asarray([-1, mid, c], np.int32), f"{name}/layer_norm/shape", like=like)
            xin = graph.add_node("Reshape", [x, s], {"T": dt, "Tshape": i32},
                                 [TensorType(dt, Shape([rows, mid, c]))], domain="tf",
                                 name=f"{name}/layer_norm/input", device=like.device).outputs[0]
        scale = add_const(graph, gamma.astype(dt.np), f"{name}/layer_norm/scale", dtype=dt, like=like)
        offset = add_const(graph, beta.astype(dt.np), f"{name}/layer_norm/offset", dtype=dt, like=like)
        out = graph.add_node(MKL_LAYER_NORM, [xin, scale, offset], {"T": dt, "epsilon": eps}, [xin.type],
                             domain="tf", name=f"{name}/layer_norm", device=like.device).outputs[0]
        if reshaped:
            if sum(d is None for d in lead) <= 1:
                back = add_const(graph, np.asarray([-1 if d is None else d for d in x.shape.dims], np.int32),
                                 f"{name}/layer_norm/output_shape", like=like)
            else:
                back = graph.add_node("Shape", [x], {"T": dt, "out_type": i32},
                                      [TensorType(i32, Shape([x.shape.rank]))], domain="tf",
                                      name=f"{name}/layer_norm/output_shape", device=like.device).outputs[0]
            out = graph.add_node("Reshape", [out, back], {"T": dt, "Tshape": i32}, [x.type], domain="tf",
                                 name=f"{name}/layer_norm/output", device=like.device).outputs[0]
        graph.replace_all_uses_with(y, out, outputs=True)
        for u in graph.control_users(like):
            graph.remove_control_input(u, like)
            graph.add_control_input(u, out.node)
        remove_dead(graph, [like])
        if name not in graph:
            graph.rename(out.node, name)
        return int(reshaped)
