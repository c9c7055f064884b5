"""cse: common subexpression elimination by value numbering over the dataflow graph."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import FuncRef, Graph, Tensor
from .base import Pass, PassResult, register_pass
from .patterns import input_nodes, move_control_users, protected


def _by_digest(t: Tensor):
    return ("tensor", t.dtype.name, t.shape.dims, t.digest())


def hashable(v, tensor=_by_digest):
    """A hashable, content-based form of an attribute value (constants by digest, or by ``tensor(t)``)."""
    if isinstance(v, Tensor):
        return tensor(v)
    if isinstance(v, (list, tuple)):
        return tuple(hashable(x, tensor) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, hashable(x, tensor)) for k, x in v.items()))
    if isinstance(v, float) and (v != v or v == 0):
        # NaN equals nothing, and -0.0 == 0.0 though ops may tell them apart (x * -0.0): by spelling.
        return ("float", repr(v))
    if isinstance(v, FuncRef):
        return ("func", v.name, hashable(dict(v.attrs), tensor))
    return v


def _fingerprint(t: Tensor):
    """Cheap content sample of a constant; equal constants always have equal fingerprints. Up to 4 KB
    of numbers, the sample is all the bytes (a ``bytes``): then, with dtype and shape, equal fingerprints
    mean equal constants."""
    a = t.numpy()
    if a.dtype == object:
        return tuple(x if isinstance(x, bytes) else str(x) for x in a.reshape(-1))
    if a.nbytes <= 4096:
        return np.ascontiguousarray(a).tobytes()
    flat = a.reshape(-1)
    step = max(1, flat.size // 61)
    return ("sample", np.ascontiguousarray(flat[::step]).tobytes() + np.ascontiguousarray(flat[-3:]).tobytes())


_CHUNK = 1 << 18  # elements compared at a time: a mismatch ends the comparison early


def _same(t: Tensor, u: Tensor) -> bool:
    """``t.same_value(u)`` (equal dtype, shape and bytes) without copying either array's bytes; an array
    the two share (fold-constants evaluates equal sub-graphs once) is equal at once."""
    if t.dtype is not u.dtype or t.shape != u.shape:
        return False
    a, b = t.numpy(), u.numpy()
    if a is b:
        return True
    if a.dtype == object or a.dtype != b.dtype or a.shape != b.shape:
        return t.same_value(u)
    # Compared as unsigned integers of the element's size: bitwise, so -0.0 != 0.0 and NaN == NaN as bytes.
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(a.dtype.itemsize, np.uint8)
    fa = np.ascontiguousarray(a).reshape(-1).view(bits)
    fb = np.ascontiguousarray(b).reshape(-1).view(bits)
    return all(np.array_equal(fa[i:i + _CHUNK], fb[i:i + _CHUNK]) for i in range(0, fa.size, _CHUNK))


def _on_disk(t: Tensor) -> bool:
    enc = t.encoded
    return enc is not None and enc[0] == "onnx" and getattr(enc[1], "data_location", 0) == 1  # EXTERNAL


def _merge_initializers(graph: Graph) -> int:
    """Point the readers of initializers with equal contents at one of them (the first by name) and drop
    the others. Initializers that are graph inputs (overridable) or outputs are left alone, and so are
    those whose data is still in an external file (comparing would read the weights the frontend left on
    disk)."""
    sig = {id(p.value) for p in graph.inputs} | {id(p.value) for p in graph.outputs}
    by_type: dict = {}
    for name in sorted(graph.initializers):
        v = graph.initializers[name]
        if id(v) in sig or v.const is None or v.const.digest_only or _on_disk(v.const):
            continue
        by_type.setdefault((v.const.dtype.name, v.const.shape.dims), []).append(v)
    merged = 0
    for group in by_type.values():
        if len(group) < 2:
            continue  # only a shared dtype and shape is worth reading the contents for
        canon: dict = {}
        for v in group:
            fp = _fingerprint(v.const)
            cands = canon.setdefault(fp, [])
            c = (cands[0] if cands else None) if isinstance(fp, bytes) else \
                next((c for c in cands if _same(c.const, v.const)), None)
            if c is None:
                cands.append(v)
                continue
            graph.replace_all_uses_with(v, c, outputs=False)
            graph.remove_initializer(v)
            merged += 1
    return merged


@register_pass
@dataclass(frozen=True)
class CSE(Pass):
    """After: no two pure nodes compute the same value (same op, attrs, device, inputs up to commutativity,
    control inputs), and no two constants (constant nodes, or initializers that are not graph inputs or
    outputs) hold the same content. Stateful, side-effecting, control-flow,
    unknown and graph-input nodes are never merged; a graph output node is never merged away."""

    name = "cse"
    phase = "optimize"

    def run(self, graph: Graph) -> PassResult:
        # One sweep in topological order is a fixed point: every input is canonical before its readers
        # are numbered.
        sig = protected(graph)
        skip = input_nodes(graph)
        table: dict = {}
        merged = 0
        consts = _merge_initializers(graph)
        for n in graph.topo_order(by_name=False):
            info = n.info
            if not info.pure or info.source or n.name in skip:
                continue
            # Values no node produces (arguments, initializers) are keyed by name; an absent operand by "".
            ins = [("", -2) if v is None else (v.name, -1) if v.node is None else (v.node.name, v.index)
                   for v in n.inputs]
            if info.commutative and len(ins) >= 2 and ins[1] < ins[0]:
                ins[0], ins[1] = ins[1], ins[0]
            ctrl = frozenset(c.name for c in n.control_inputs)
            t = n.const_value()
            if t is not None:
                if t.digest_only:
                    continue
                attrs = hashable({k: v for k, v in n.attrs.items() if k != info.constant_attr})
                fp = _fingerprint(t)
                key = (n.domain, n.op_type, attrs, n.device, ctrl, t.dtype.name, t.shape.dims, fp)
            else:
                key = (n.domain, n.op_type, hashable(n.attrs), n.device, tuple(ins), ctrl)
            cands = table.setdefault(key, [])
            canon = None
            for c in cands:
                if t is None or isinstance(fp, bytes) or _same(c.const_value(), t):
                    canon = c
                    break
            if canon is None or n.name in sig or len(canon.outputs) != len(n.outputs):
                cands.append(n)
                continue
            for old, new in zip(n.outputs, canon.outputs):
                graph.replace_all_uses_with(old, new, outputs=False)
            move_control_users(graph, n, [canon])
            graph.remove_node(n, forward_control=False)
            merged += 1
            consts += t is not None
        return PassResult.of(nodes_merged=merged, constants_merged=consts)
