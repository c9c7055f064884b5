"""The bf16 cost model: FLOPs of compute ops and bytes of values, from static shapes.

Unknown dims (the batch) count as 1: the model compares per-sample compute with per-sample cast traffic.
"""
from __future__ import annotations

import math

from ..ir import Graph
from ..ir.dialect import dialect_of, const_tensor

UNKNOWN_BYTES = 1 << 16   # cost of converting a tensor of unknown rank
UNKNOWN_FLOPS = 1 << 40   # compute of unknown size counts as big


def per_sample_elements(v, _depth: int = 0) -> int:
    """Elements of a value per sample: its static shape with unknown dims counted as 1, except that a value
    whose unknown dim folds known ones (a Reshape to [-1, K], the MatMul and elementwise ops after it)
    counts what it holds per sample: the Reshape's input, the MatMul's rows, the same-shaped operand's."""
    dims = v.shape.dims
    own = math.prod(d or 1 for d in dims)
    n = v.node
    if None not in dims or n is None or _depth > 64:
        return own
    if n.op_type == "Reshape" and n.inputs[0].shape.dims is not None:
        return max(own, per_sample_elements(n.inputs[0], _depth + 1))
    if n.op_type in ("MatMul", "_FusedMatMul") and len(dims) == 2 and n.inputs[0].shape.rank == 2:
        k = _contraction(n)
        rows = per_sample_elements(n.inputs[0], _depth + 1) // k if k else 1
        return max(own, rows * (dims[1] or 1))
    for u in n.inputs:
        if u is not None and u.shape.dims == dims:
            return max(own, per_sample_elements(u, _depth + 1))
    return own


def _contraction(n) -> int:
    """A MatMul's inner dimension, from whichever operand knows it (a tensordot's [?, ?] input does not)."""
    a = n.inputs[0].shape.dims[0 if n.attrs.get("transpose_a") else 1]
    b = n.inputs[1].shape.dims
    return a or (b[1 if n.attrs.get("transpose_b") else 0] if b is not None and len(b) == 2 else None) or 1


def value_bytes(v) -> int:
    """fp32 bytes of a value per sample (:func:`per_sample_elements`)."""
    return UNKNOWN_BYTES if v.shape.dims is None else 4 * per_sample_elements(v)


def _dims(v):
    return None if v.shape.dims is None else [d or 1 for d in v.shape.dims]


def node_flops(node) -> int:
    """Multiply-add FLOPs of a compute node from static shapes (unknown dims count as 1)."""
    op = node.op_type
    out = _dims(node.outputs[0]) if node.outputs else None
    ins = [_dims(v) for v in node.inputs]
    if out is None or any(d is None for d in ins[:2]):
        return UNKNOWN_FLOPS
    n_out = per_sample_elements(node.outputs[0])
    try:
        if op in ("MatMul", "_FusedMatMul"):
            return 2 * n_out * _contraction(node)
        if op.startswith("BatchMatMul"):
            return 2 * n_out * ins[0][-2 if node.attrs.get("adj_x") else -1]
        if op in ("Conv2D", "Conv3D", "_FusedConv2D"):
            return 2 * n_out * math.prod(ins[1][:-1])
        if op == "DepthwiseConv2dNative":
            return 2 * n_out * ins[1][0] * ins[1][1]
        if op in ("Conv2DBackpropInput", "Conv3DBackpropInputV2"):
            return 2 * math.prod(ins[1]) * (n_out // max(1, ins[1][-2]))
        if op == "Einsum":
            eq = node.attrs.get("equation", b"")
            eq = eq.decode() if isinstance(eq, bytes) else str(eq)
            lhs = eq.split("->")[0].replace("...", "").split(",")
            sizes = {}
            for term, shape in zip(lhs, ins):
                for ch, d in zip(term[::-1], shape[::-1]):
                    sizes[ch] = d
            return max(2 * math.prod(sizes.values()), 2 * n_out)
    except (IndexError, TypeError):
        return UNKNOWN_FLOPS
    return 2 * n_out


def compute_flops(graph: Graph, names) -> int:
    """FLOPs of the compute-class nodes among ``names``."""
    return sum(node_flops(n) for n in map(graph.node, names)
               if dialect_of(n).precision_class(n.op_type) == "compute")




def region_cast_bytes(graph, plans, comp) -> int:
    """Bytes cast at the border of a bf16 region ``comp`` (outputs read outside it, non-constant inputs)."""
    total = 0
    for name in comp:
        node, plan = graph.node(name), plans[name]
        for i in plan.outs:
            v = node.outputs[i]
            if graph.is_output(v) or any(u.name not in comp or s not in plans[u.name].ins
                                         for u, s in graph.uses(v)):
                total += value_bytes(v)
    seen = set()
    for name in comp:
        node, plan = graph.node(name), plans[name]
        for s in plan.ins:
            v = node.inputs[s]
            if (v.node is None or v.node.name not in comp) and const_tensor(v) is None and id(v) not in seen:
                seen.add(id(v))
                total += value_bytes(v)
    return total


def cut_cost(graph: Graph, plans: dict, bf16_set: set) -> int:
    """Bytes converted by an assignment (one cast per value and target dtype); for tests and reports."""
    total = 0
    seen = set()
    for name, plan in plans.items():
        node = graph.node(name)
        vals = [node.inputs[s] for s in plan.ins] + [node.outputs[i] for i in plan.outs]
        for v in vals:
            if id(v) in seen or const_tensor(v) is not None:
                continue
            seen.add(id(v))
            p = v.node
            p_bf16 = p is not None and p.name in bf16_set and v.index in plans[p.name].outs
            wants = set()
            for u, s in graph.uses(v):
                wants.add(u.name in bf16_set and s in plans[u.name].ins if u.name in plans else False)
            if graph.is_output(v):
                wants.add(False)
            total += value_bytes(v) * len(wants - {p_bf16})
    return total
