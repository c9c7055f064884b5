"""cast-cleanup: constants stored in the cast dtype instead of runtime casts, lossless cast pairs
collapsed, duplicates merged.

Afterwards: no cast reads a float constant (the constant is stored in the target dtype, rounded as the
cast would round, truncating when the cast truncates), no cast is a no-op, no cast undoes a lossless
widening cast, and each value has at most one cast per (target dtype, truncation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph
from ..ir.dialect import dialect_of
from ..ir.types import DType, Tensor
from .base import Pass, PassResult, register_pass
from .patterns import cast_target

# src -> dtypes it widens into exactly (a cast along these loses nothing).
_WIDENS = {"bf16": {"f32", "f64"}, "f16": {"f32", "f64"}, "f32": {"f64"}}


def _lossless(src: DType, dst: DType) -> bool:
    return dst.name in _WIDENS.get(src.name, ())


def convert_constant(arr: np.ndarray, src: DType, dst: DType, truncate: bool) -> Optional[np.ndarray]:
    """``arr`` converted as a cast would: round to nearest even, or, with ``truncate``, drop the low
    mantissa bits (f32 -> bf16 only; other truncating conversions return None and are left to run)."""
    if not truncate or _lossless(src, dst) or src is dst:
        return np.asarray(arr).astype(dst.np)
    if src.name == "f32" and dst.name == "bf16":
        bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
        return bits.view(np.float32).astype(dst.np)  # exact: the low bits are already zero
    return None


@register_pass
@dataclass(frozen=True)
class CastCleanup(Pass):
    """Fold float constant -> cast into a constant of the cast dtype, collapse cast chains whose first step
    is lossless, drop no-op and dead casts, and merge casts of one value to one dtype."""

    name = "cast-cleanup"
    phase = "precision"

    def run(self, graph: Graph) -> PassResult:
        return PassResult.of(**cleanup_casts(graph))


def cleanup_casts(graph: Graph) -> dict[str, int]:
    """The cast-cleanup rewrite, to a fixed point; returns its counts."""
    counts = dict(const_folded=0, collapsed=0, merged=0, removed=0)
    changed = True
    while changed:
        changed = False
        for node in graph.topo_order():
            if node.graph is not graph or cast_target(node) is None:
                continue
            kind = _simplify(graph, node)
            if kind:
                counts[kind] += 1
                changed = True
    return counts


def _simplify(graph: Graph, cast) -> str:
    src = cast.inputs[0]
    dst = cast_target(cast)
    if not isinstance(dst, DType):
        return ""
    d = dialect_of(cast)
    out = cast.outputs[0]
    if not graph.has_uses(out):
        if not graph.is_signature_node(cast) and not cast.control_inputs and not graph.control_users(cast):
            graph.remove_node(cast)
            return "removed"
        return ""
    if graph.is_output(out):
        return ""  # the user sees this name; leave it
    if src.dtype is dst:
        graph.replace_all_uses_with(out, src, outputs=False)
        return "removed"
    prod = src.node
    const = prod.const_value() if prod is not None else None
    if const is not None and src.dtype.is_float and dst.is_float and not const.digest_only:
        arr = convert_constant(const.numpy(), src.dtype, dst, d.cast_truncates(cast))
        if arr is not None:
            _fold_const(graph, cast, prod, Tensor(dst, const.shape, arr), dst)
            return "const_folded"
    if prod is not None and cast_target(prod) is not None and _lossless(prod.inputs[0].dtype, src.dtype):
        # x -> (exact widening) -> cast: cast x directly (or use x itself when it already has the dtype).
        x = prod.inputs[0]
        if x.dtype is dst:
            graph.replace_all_uses_with(out, x, outputs=False)
        else:
            graph.set_input(cast, 0, x)
            d.set_cast_dtype(graph, cast, x.dtype, dst)
        return "collapsed"
    for user, _ in graph.uses(src):
        if (user is not cast and cast_target(user) is dst and user.domain == cast.domain
                and dialect_of(user).cast_truncates(user) == d.cast_truncates(cast)
                and not graph.is_output(user.outputs[0]) and user.name > cast.name):
            graph.replace_all_uses_with(user.outputs[0], out, outputs=False)
            return "merged"
    return ""


def _fold_const(graph: Graph, cast, const_node, value: Tensor, dst: DType) -> None:
    d = dialect_of(const_node)
    if graph.uses(const_node.outputs[0]) == [(cast, 0)] and not graph.is_signature_node(const_node):
        # Retype in place so the weight keeps its name.
        d.set_constant(graph, const_node, value)
        graph.replace_all_uses_with(cast.outputs[0], const_node.outputs[0], outputs=False)
    else:
        new = d.make_constant(graph, value, f"{const_node.name}/{dst.name}", like=const_node)
        for c in const_node.control_inputs:
            graph.add_control_input(new.node, c)
        graph.replace_all_uses_with(cast.outputs[0], new, outputs=False)
    graph.remove_node(cast)
