"""fold-batch-norms: fold inference batch norms (and any per-channel affine chain) into conv/matmul weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, protected, remove_dead

# Producers whose weights absorb a per-output-channel scale: op -> weight input index.
LINEAR = {"Conv2D": 1, "DepthwiseConv2dNative": 1, "MatMul": 1}
ADD_OPS = {"Add", "AddV2", "BiasAdd", "BiasAddV1"}
BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BatchNormWithGlobalNormalization"}


def channel_axis(node: Node) -> int:
    fmt = node.attrs.get("data_format", "NHWC")
    return 1 if isinstance(fmt, str) and fmt.startswith("NC") else -1


def per_channel(arr: np.ndarray, out: Value, axis: int) -> Optional[np.ndarray]:
    """``arr`` as a length-C vector if broadcasting it against ``out`` only varies along ``axis``."""
    dims = out.shape.dims
    if dims is None or dims[axis] is None:
        return None
    c, rank = dims[axis], len(dims)
    a = np.asarray(arr)
    if a.ndim > rank:
        return None
    shape = (1,) * (rank - a.ndim) + a.shape
    ax = axis % rank
    if any(d != 1 for i, d in enumerate(shape) if i != ax) or shape[ax] not in (1, c):
        return None
    return np.broadcast_to(a.reshape(-1), (c,)) if a.size in (1, c) else None


@register_pass
@dataclass(frozen=True)
class FoldBatchNorms(Pass):
    """After: no inference batch norm (FusedBatchNorm*, BatchNormWithGlobalNormalization, or the decomposed
    Mul/Add form) and no chain of per-channel Mul/Add/Sub/BiasAdd by constants directly follows a
    Conv2D / DepthwiseConv2dNative / MatMul with constant weights whose output has no other reader: the
    scale is in the weights and the shift in one BiasAdd (named like the last folded node). Training-mode
    batch norms are left alone."""

    name = "fold-batch-norms"
    phase = "optimize"
    # Batch-norm parameters reach it through Identity/ReadVariableOp chains until constants are folded.
    requires = ("fold-constants",)

    def run(self, graph: Graph) -> PassResult:
        folded = bns = 0
        for node in graph.topo_order(by_name=False):
            if node.graph is graph and node.op_type in LINEAR and node.domain == "tf":
                r = self._fold(graph, node)
                if r:
                    folded += 1
                    bns += r - 1
        return PassResult.of(folded=folded, batch_norms=bns)

    def _fold(self, graph: Graph, lin: Node) -> int:
        w = const_array(lin.inputs[LINEAR[lin.op_type]])
        if w is None or not lin.outputs[0].dtype.is_float or lin.control_inputs:
            return 0
        if lin.op_type == "MatMul" and lin.attrs.get("transpose_b"):
            w_axis = 0
        else:
            w_axis = -1
        axis = channel_axis(lin) if lin.op_type != "MatMul" else -1
        y = lin.outputs[0]
        dims = y.shape.dims
        if dims is None or dims[axis] is None:
            return 0
        c = dims[axis]
        scale = np.ones(c, np.float64)
        shift = np.zeros(c, np.float64)
        chain: list[Node] = []
        bn_count = 0
        while True:
            uses = graph.uses(y)
            if len(uses) != 1 or graph.is_output(y):
                break
            nxt, slot = uses[0]
            if nxt.control_inputs or graph.control_users(nxt) or nxt.domain != "tf":
                break
            step = self._affine(nxt, slot, y, axis)
            if step is None:
                break
            s, b, is_bn = step
            scale, shift = scale * s, shift * s + b
            chain.append(nxt)
            bn_count += is_bn
            y = nxt.outputs[0]
            if any(graph.uses(v) for v in nxt.outputs[1:]):
                return 0
        if not chain or (np.all(scale == 1.0) and len(chain) < 2):
            return 0
        last = chain[-1]
        dt = lin.outputs[0].dtype
        # New weights: the per-output-channel scale along the weights' output axis.
        # f32 math for f32/f16 weights (one rounding per weight; f64 would double the cost on 100 MB models).
        ct = np.float64 if dt.name == "f64" else np.float32
        s = scale.astype(ct)
        if lin.op_type == "DepthwiseConv2dNative":
            s = s.reshape(w.shape[2], w.shape[3])
        elif w_axis == 0:
            s = s[:, None]
        old_inputs = [v.node for v in lin.inputs]
        wn = add_const(graph, (w.astype(ct, copy=False) * s).astype(dt.np, copy=False),
                       f"{lin.name}/folded_weights", dtype=dt, like=lin)
        graph.set_input(lin, LINEAR[lin.op_type], wn)
        bias = add_const(graph, shift.astype(dt.np), f"{last.name}/folded_bias", dtype=dt, like=lin)
        fmt = "NCHW" if axis == 1 else "NHWC"
        ba = graph.add_node("BiasAdd", [lin.outputs[0], bias], {"T": dt, "data_format": fmt},
                            [last.outputs[0].type], domain=lin.domain, name=f"{last.name}/folded", device=lin.device)
        graph.replace_all_uses_with(last.outputs[0], ba.outputs[0], outputs=True)
        feeders = []
        for n in reversed(chain):
            feeders += [v.node for v in n.inputs]
            graph.remove_node(n, forward_control=False)
        graph.rename(ba, last.name)
        remove_dead(graph, feeders + old_inputs, protected(graph))
        return 1 + bn_count

    @staticmethod
    def _affine(n: Node, slot: int, y: Value, axis: int):
        """(scale, shift, is_bn) when ``n`` maps ``y`` to ``y * scale + shift`` per channel, else None."""
        op = n.op_type
        if op in BN_OPS:
            return FoldBatchNorms._batch_norm(n, slot, axis)
        if op not in ADD_OPS | {"Mul", "Sub"} or len(n.inputs) != 2:
            return None
        if op.startswith("BiasAdd") and (slot != 0 or channel_axis(n) != axis):
            return None
        other = n.inputs[1 - slot]
        a = const_array(other)
        if a is None or n.outputs[0].shape != y.shape or n.outputs[0].dtype is not y.dtype:
            return None
        v = per_channel(a, y, axis)
        if v is None:
            return None
        v = v.astype(np.float64)
        if op == "Mul":
            return v, np.zeros_like(v), False
        if op == "Sub":
            return (np.ones_like(v), -v, False) if slot == 0 else (-np.ones_like(v), v, False)
        return np.ones_like(v), v, False

    @staticmethod
    def _batch_norm(n: Node, slot: int, axis: int):
        if slot != 0 or n.attrs.get("is_training", False):
            return None
        if n.op_type == "BatchNormWithGlobalNormalization":
            arrs = [const_array(v) for v in n.inputs[1:5]]
            if any(a is None for a in arrs):
                return None
            mean, var, beta, gamma = (a.astype(np.float64) for a in arrs)
            inv = 1.0 / np.sqrt(var + float(n.attrs.get("variance_epsilon", 0.001)))
            if n.attrs.get("scale_after_normalization", False):
                inv = inv * gamma
            return inv, beta - mean * inv, True
        if channel_axis(n) != axis:
            return None
        arrs = [const_array(v) for v in n.inputs[1:5]]
        if any(a is None or a.size == 0 for a in arrs):
            return None
        gamma, beta, mean, var = (a.astype(np.float64) for a in arrs)
        inv = gamma / np.sqrt(var + float(n.attrs.get("epsilon", 0.0001)))
        return inv, beta - mean * inv, True
