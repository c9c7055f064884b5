"""Cast clean-up: bf16 constants instead of runtime casts, lossless Cast pairs collapsed, duplicates merged.

Afterwards: no Cast reads a float Const (the Const is stored in the target dtype), no Cast is a no-op,
no Cast undoes a lossless widening Cast, and each value has at most one Cast per (DstT, Truncate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph
from ..ir.types import DType, Tensor
from .base import Pass, PassResult, register_pass

# src -> dtypes it widens into exactly (a Cast along these loses nothing).
_WIDENS = {"bf16": {"f32", "f64"}, "f16": {"f32", "f64"}, "f32": {"f64"}}


def _is_cast(node) -> bool:
    return node.domain == "tf" and node.op_type == "Cast" and len(node.inputs) == 1


def _lossless(src: DType, dst: DType) -> bool:
    return dst.name in _WIDENS.get(src.name, ())


@register_pass
@dataclass
class CastCleanup(Pass):
    """Fold float Const -> Cast into a Const of the cast dtype, collapse Cast chains whose first step is
    lossless, drop no-op and dead Casts, and merge Casts of one value to one dtype."""

    name = "cast-cleanup"

    def run(self, graph: Graph) -> PassResult:
        counts = dict(const_folded=0, collapsed=0, merged=0, removed=0)
        changed = True
        while changed:
            changed = False
            for node in graph.topo_order():
                if node.graph is not graph or not _is_cast(node):
                    continue
                kind = self._simplify(graph, node)
                if kind:
                    counts[kind] += 1
                    changed = True
        return PassResult.of(**counts)

    def _simplify(self, graph: Graph, cast) -> str:
        src = cast.inputs[0]
        dst = cast.attrs.get("DstT")
        if not isinstance(dst, DType):
            return ""
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
        const = prod.const_value()
        if const is not None and src.dtype.is_float and dst.is_float and not const.digest_only:
            self._fold_const(graph, cast, prod, const, dst)
            return "const_folded"
        if _is_cast(prod) and _lossless(prod.inputs[0].dtype, src.dtype):
            # x -> (exact widening) -> Cast: cast x directly (or use x itself when it already has DstT).
            x = prod.inputs[0]
            if x.dtype is dst:
                graph.replace_all_uses_with(out, x, outputs=False)
            else:
                graph.set_input(cast, 0, x)
                cast.attrs["SrcT"] = x.dtype
            return "collapsed"
        for user, _ in graph.uses(src):
            if (user is not cast and _is_cast(user) and user.attrs.get("DstT") is dst
                    and bool(user.attrs.get("Truncate", False)) == bool(cast.attrs.get("Truncate", False))
                    and not graph.is_output(user.outputs[0]) and user.name > cast.name):
                graph.replace_all_uses_with(user.outputs[0], out, outputs=False)
                return "merged"
        return ""

    @staticmethod
    def _fold_const(graph: Graph, cast, const_node, const: Tensor, dst: DType) -> None:
        arr = np.asarray(const.numpy()).astype(dst.np)
        value = Tensor(dst, const.shape, arr)
        if graph.uses(const_node.outputs[0]) == [(cast, 0)] and not graph.is_signature_node(const_node):
            # Retype in place so the weight keeps its name.
            const_node.attrs["value"] = value
            const_node.attrs["dtype"] = dst
            graph.set_output_types(const_node, [const_node.outputs[0].type.with_dtype(dst)])
            graph.replace_all_uses_with(cast.outputs[0], const_node.outputs[0], outputs=False)
        else:
            new = graph.add_node(const_node.op_type, (), {**const_node.attrs, "value": value, "dtype": dst},
                                 [const_node.outputs[0].type.with_dtype(dst)], name=f"{const_node.name}/{dst.name}",
                                 device=const_node.device, control_inputs=const_node.control_inputs)
            graph.replace_all_uses_with(cast.outputs[0], new.outputs[0], outputs=False)
        graph.remove_node(cast)
