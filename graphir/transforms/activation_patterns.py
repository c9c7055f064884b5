"""Activation subgraphs that TF has no single public op for: recognising them in any of the forms the
frontends trace, and building the one canonical form each. The contract between the canonicalization
passes (canonicalize-gelu, dense-to-matmul) and the oneDNN lowering (lower-onednn).

GELU. TF has no public Gelu op, so the canonical forms are fixed node patterns TF runs unfused; they are
exactly the patterns TF's own grappler remapper fuses into ``_FusedMatMul`` with ``fused_ops`` [BiasAdd,
GeluExact] / [BiasAdd, GeluApproximate] (tensorflow/core/grappler/optimizers/remapper.cc), so a graph TF
runs without our lowering fuses them too. Every constant is a scalar Const of x's dtype; operand order as
written::

    exact  0.5 * x * (1 + erf(x / sqrt 2)):      approximate  0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))):
        a = Mul(x, 0.70710677)                      s = Square(x)
        e = Erf(a)                                  c = Mul(0.044715, x)
        p = AddV2(e, 1.0)                           k = Mul(c, s)
        h = Mul(p, 0.5)                             i = AddV2(x, k)
        y = Mul(h, x)                               m = Mul(i, 0.7978846)
                                                    t = Tanh(m)
                                                    p = AddV2(t, 1.0)
                                                    h = Mul(p, 0.5)
                                                    y = Mul(h, x)

:func:`match_gelu` recognises these and the other traced forms (Keras 3's ``0.5*x*erfc(-x/sqrt 2)`` and
``Pow(x, 3)`` tanh form, Keras 2's ``x / sqrt 2`` with RealDiv, any operand order, constants read through a
Cast) by value, not by shape: the product of the factors around Erf/Erfc/Tanh, with polynomial arguments
compared coefficient by coefficient. Every node of a match other than ``x``'s producer has no reader
outside the match (:func:`gelu_nodes` lists them), so a lowering that fuses the match removes them all.

Swish. ``x * sigmoid(x)`` is canonical as ``Mul(Sigmoid(x), x)``, the operand order of TF's remapper
Sigmoid+Mul -> ``_MklSwish`` pattern (:func:`build_swish`); :func:`match_swish` accepts either order.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .patterns import add_const, cast_target, const_array

SQRT_HALF = 1.0 / math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715
# Constants of a bf16 or f16 graph are rounded: compare with the dtype's precision.
_RTOL = {"bf16": 1e-2, "f16": 2e-3}
_POLY_OPS = frozenset({"Mul", "Neg", "RealDiv", "Div", "Add", "AddV2", "Sub", "Square", "Pow"})
_SPECIAL = frozenset({"Erf", "Erfc", "Tanh"})


def _scalar(v: Optional[Value]) -> Optional[float]:
    """The value of a one-element float constant, read through a Cast of one."""
    if v is None:
        return None
    a = const_array(v)
    if a is None and v.node is not None and cast_target(v.node) is not None:
        a = const_array(v.node.inputs[0])
    if a is None or a.size != 1 or a.dtype.kind not in "fc" and a.dtype.name != "bfloat16":
        return None
    return float(np.asarray(a, np.float64).reshape(()))


class _Match:
    """The state of one match: the variable ``x`` (the first leaf met) and the interior nodes."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.x: Optional[Value] = None
        self.nodes: list[Node] = []

    def interior(self, v: Value, ops) -> bool:
        """True if ``v`` is output 0 of an ``ops`` node whose only reader is inside the pattern."""
        n = v.node
        g = self.graph
        return (n is not None and n.domain == "tf" and n.op_type in ops and v.index == 0 and len(g.uses(v)) == 1
                and not g.is_output(v) and not n.control_inputs and not g.control_users(n))

    def leaf(self, v: Value) -> Optional[dict]:
        if self.x is None:
            self.x = v
        return {1: 1.0} if self.x is v else None

    def poly(self, v: Value, depth: int = 0) -> Optional[dict]:
        """``v`` as a polynomial in ``x`` of degree <= 3 ({power: coefficient}), through single-reader
        arithmetic nodes; anything else is a leaf and must be ``x``."""
        c = _scalar(v)
        if c is not None:
            return {0: c}
        if depth > 16 or not self.interior(v, _POLY_OPS):
            return self.leaf(v)
        n = v.node
        op = n.op_type
        if op in ("Neg", "Square"):
            a = self.poly(n.inputs[0], depth + 1)
            r = None if a is None else _scale(a, -1.0) if op == "Neg" else _mul(a, a)
        elif op == "Pow":
            k = _scalar(n.inputs[1])
            a = self.poly(n.inputs[0], depth + 1)
            r = a if a is not None and k in (1.0, 2.0, 3.0) else None
            for _ in range(int(k or 1) - 1):
                r = None if r is None else _mul(r, a)
        elif op in ("RealDiv", "Div"):
            c = _scalar(n.inputs[1])
            a = self.poly(n.inputs[0], depth + 1) if c else None
            r = None if a is None else _scale(a, 1.0 / c)
        else:
            a = self.poly(n.inputs[0], depth + 1)
            b = None if a is None else self.poly(n.inputs[1], depth + 1)
            if b is None:
                return None
            r = _mul(a, b) if op == "Mul" else _add(a, _scale(b, -1.0) if op == "Sub" else b)
        if r is not None:
            self.nodes.append(n)
        return r

    def factors(self, v: Value, root: bool = False) -> list[Value]:
        """The factors of a product tree of single-reader Muls (``v`` itself expanded when ``root``)."""
        if not root:
            if not self.interior(v, ("Mul",)):
                return [v]
            self.nodes.append(v.node)
        return self.factors(v.node.inputs[0]) + self.factors(v.node.inputs[1])


def _trim(p: dict) -> dict:
    return {k: c for k, c in p.items() if c != 0.0}


def _scale(p: dict, s: float) -> dict:
    return _trim({k: c * s for k, c in p.items()})


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, c in b.items():
        out[k] = out.get(k, 0.0) + c
    return _trim(out)


def _mul(a: dict, b: dict) -> Optional[dict]:
    out: dict = {}
    for i, x in a.items():
        for j, y in b.items():
            if i + j > 3:
                return None
            out[i + j] = out.get(i + j, 0.0) + x * y
    return _trim(out)


def _close(a: Optional[float], b: float, rtol: float) -> bool:
    return a is not None and abs(a - b) <= rtol * abs(b)


def _is_poly(p: Optional[dict], want: dict, rtol: float) -> bool:
    return p is not None and set(p) == set(want) and all(_close(p[k], c, rtol) for k, c in want.items())


def _match(graph: Graph, value: Value) -> Optional[tuple[str, Value, list[Node]]]:
    if value.node is None or value.node.domain != "tf" or value.node.op_type != "Mul" or value.index != 0:
        return None
    m = _Match(graph)
    coef, special, rest = 1.0, [], []
    for f in m.factors(value, root=True):
        c = _scalar(f)
        if c is not None:
            coef *= c
        elif m.interior(f, _SPECIAL | {"Add", "AddV2"}):
            special.append(f)
        else:
            rest.append(f)
    if len(special) != 1:
        return None
    poly: Optional[dict] = {0: 1.0}
    for f in rest:
        p = m.poly(f)
        poly = None if p is None or poly is None else _mul(poly, p)
    s = special[0].node
    if s.op_type == "Erfc":
        kind, arg, want = "exact", s.inputs[0], {1: -SQRT_HALF}
    elif s.op_type in ("Add", "AddV2"):
        ones = [i for i in (0, 1) if _close(_scalar(s.inputs[i]), 1.0, 1e-6)]
        inner = s.inputs[1 - ones[0]] if ones else None
        if inner is None or not m.interior(inner, ("Erf", "Tanh")):
            return None
        m.nodes.append(inner.node)
        kind = "exact" if inner.node.op_type == "Erf" else "approximate"
        arg = inner.node.inputs[0]
        want = {1: SQRT_HALF} if kind == "exact" else {1: SQRT_2_OVER_PI, 3: SQRT_2_OVER_PI * CUBIC}
    else:
        return None
    m.nodes.append(s)
    if poly is None or set(poly) != {1} or m.x is None:
        return None
    rtol = _RTOL.get(m.x.dtype.name, 1e-4)
    if not _close(coef * poly[1], 0.5, rtol) or not _is_poly(m.poly(arg), want, rtol):
        return None
    return kind, m.x, [value.node] + m.nodes


def match_gelu(graph: Graph, value: Value) -> Optional[tuple[str, Value]]:
    """``("exact" | "approximate", x)`` if ``value`` computes GELU(x) in any recognised form, else None."""
    r = _match(graph, value)
    return None if r is None else (r[0], r[1])


def gelu_nodes(graph: Graph, value: Value) -> Optional[list[Node]]:
    """The nodes of the GELU computing ``value`` (its producer first; ``x``'s producer and constants not
    included), or None if ``value`` is no GELU. None of them has a reader outside the list."""
    r = _match(graph, value)
    return None if r is None else r[2]


def _const(graph: Graph, c: float, x: Value, name: str, like: Node) -> Value:
    return add_const(graph, np.asarray(c, dtype=x.dtype.np), name, dtype=x.dtype, like=like)


def build_gelu(graph: Graph, x: Value, kind: str, *, like: Node, name: str) -> Value:
    """The canonical GELU of ``x`` (see the module docstring); node names start with ``name``."""
    t = x.type

    def node(op, ins, suffix):
        return graph.add_node(op, ins, {"T": x.dtype}, [t], domain="tf", name=f"{name}/{suffix}",
                              device=like.device).outputs[0]

    if kind == "exact":
        a = node("Mul", [x, _const(graph, SQRT_HALF, x, f"{name}/sqrt_half", like)], "scaled")
        inner = node("Erf", [a], "erf")
    elif kind == "approximate":
        s = node("Square", [x], "square")
        c = node("Mul", [_const(graph, CUBIC, x, f"{name}/cubic", like), x], "cubic_x")
        k = node("Mul", [c, s], "cubic_term")
        i = node("AddV2", [x, k], "inner")
        mm = node("Mul", [i, _const(graph, SQRT_2_OVER_PI, x, f"{name}/sqrt_2_over_pi", like)], "scaled")
        inner = node("Tanh", [mm], "tanh")
    else:
        raise ValueError(f"unknown GELU kind {kind!r}")
    p = node("AddV2", [inner, _const(graph, 1.0, x, f"{name}/one", like)], "one_plus")
    h = node("Mul", [p, _const(graph, 0.5, x, f"{name}/half", like)], "times_half")
    return node("Mul", [h, x], "gelu")


def _op(v: Value, op: str) -> Optional[Node]:
    n = v.node
    return n if n is not None and n.domain == "tf" and n.op_type == op and v.index == 0 else None


def is_canonical_gelu(graph: Graph, value: Value) -> bool:
    """True if ``value`` is a GELU already in its canonical node pattern (operands in the documented order)."""
    r = match_gelu(graph, value)
    if r is None:
        return False
    kind, x = r
    y = _op(value, "Mul")
    h = _op(y.inputs[0], "Mul")
    if y.inputs[1] is not x or h is None or _scalar(h.inputs[1]) is None:
        return False
    p = _op(h.inputs[0], "AddV2")
    if p is None or _scalar(p.inputs[1]) is None:
        return False
    if kind == "exact":
        e = _op(p.inputs[0], "Erf")
        a = e and _op(e.inputs[0], "Mul")
        return bool(a) and a.inputs[0] is x and _scalar(a.inputs[1]) is not None
    t = _op(p.inputs[0], "Tanh")
    m = t and _op(t.inputs[0], "Mul")
    i = m and _scalar(m.inputs[1]) is not None and _op(m.inputs[0], "AddV2")
    if not i or i.inputs[0] is not x:
        return False
    k = _op(i.inputs[1], "Mul")
    c = k and _op(k.inputs[0], "Mul")
    s = k and _op(k.inputs[1], "Square")
    return bool(c and s) and _scalar(c.inputs[0]) is not None and c.inputs[1] is x and s.inputs[0] is x


def build_swish(graph: Graph, x: Value, *, like: Node, name: str) -> Value:
    """The canonical Swish of ``x``: ``Mul(Sigmoid(x), x)``."""
    s = graph.add_node("Sigmoid", [x], {"T": x.dtype}, [x.type], domain="tf", name=f"{name}/sigmoid",
                       device=like.device).outputs[0]
    return graph.add_node("Mul", [s, x], {"T": x.dtype}, [x.type], domain="tf", name=f"{name}/swish",
                          device=like.device).outputs[0]


def is_canonical_swish(graph: Graph, value: Value) -> bool:
    n = _op(value, "Mul")
    s = None if n is None else _op(n.inputs[0], "Sigmoid")
    return s is not None and match_swish(graph, value) is n.inputs[1] and s.inputs[0] is n.inputs[1]


def _unit_scaled(graph: Graph, v: Value, x: Value) -> bool:
    """True if ``v`` is ``x``, or ``Mul(x, 1)`` read only here (Keras 3's silu with its default beta)."""
    if v is x:
        return True
    m = _op(v, "Mul")
    if m is None or len(graph.uses(v)) != 1 or graph.is_output(v):
        return False
    return any(m.inputs[i] is x and _scalar(m.inputs[1 - i]) == 1.0 for i in (0, 1))


def match_swish(graph: Graph, value: Value) -> Optional[Value]:
    """``x`` if ``value`` is ``Mul(x, Sigmoid(x))`` (either operand order, the Sigmoid's input possibly
    ``x * 1``) whose Sigmoid has no other reader, else None."""
    n = _op(value, "Mul")
    if n is None:
        return None
    for i in (0, 1):
        s = _op(n.inputs[i], "Sigmoid")
        if s is not None and _unit_scaled(graph, s.inputs[0], n.inputs[1 - i]) \
                and len(graph.uses(n.inputs[i])) == 1 and not graph.is_output(n.inputs[i]):
            return n.inputs[1 - i]
    return None
