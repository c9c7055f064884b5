"""fold-constants: evaluate constant sub-graphs with TF's kernels and replace them by Const nodes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Node
from .base import Pass, PassResult, register_pass
from .patterns import add_const, input_nodes, protected, remove_dead
from .tf_eval import evaluate

# Pure ops that must not become constants: a default-valued input can be fed; constants already are.
NEVER_FOLD = {"PlaceholderWithDefault", "Const", "HostConst"}
# Ops whose output can be far larger than their inputs: they stay symbolic above ``max_expand_bytes``.
EXPANDING = {"Fill", "Tile", "BroadcastTo", "ZerosLike", "OnesLike", "Pad", "PadV2", "MirrorPad", "OneHot",
             "Range", "Zeros", "Ones", "Empty", "MatrixDiag", "MatrixDiagV3", "ResizeBilinear",
             "ResizeNearestNeighbor", "Conv2DBackpropInput", "TensorScatterUpdate"}
# Shape queries answered from the IR's static shapes, even when their input is not constant.
SHAPE_OPS = {"Shape", "Size", "Rank", "ShapeN"}


@register_pass
@dataclass
class FoldConstants(Pass):
    """After: no pure, non-source node whose inputs are all constants remains, unless its value would be
    larger than ``max_bytes`` (or ``max_expand_bytes`` for Fill/Tile-like expansions); ``Shape``,
    ``Size`` and ``Rank`` of statically shaped tensors are constants. Folded nodes keep their names."""

    name = "fold-constants"
    max_bytes: int = 10 * 1024 * 1024
    max_expand_bytes: int = 1024 * 1024

    def run(self, graph: Graph) -> PassResult:
        keep_inputs = input_nodes(graph)
        order = graph.topo_order(by_name=False)
        shapes = 0
        evaluable: set[str] = set()
        for n in order:
            if n.op_type in SHAPE_OPS and n.domain == "tf" and n.inputs and n.name not in keep_inputs:
                consts = self._fold_shape(graph, n)
                if consts:
                    # Every output's constant (ShapeN has several) lets its readers fold in this run.
                    shapes += 1
                    evaluable.update(c.name for c in consts)
                    continue
            if self._evaluable(n, evaluable, keep_inputs):
                evaluable.add(n.name)

        # Fold the evaluable nodes some non-evaluable node (or a graph output) reads: one TF run for all.
        outputs = {(p.value.node.name, p.value.index) for p in graph.outputs}
        fetch = []
        for n in graph.nodes():
            if n.name not in evaluable or n.const_value() is not None:
                continue
            for v in n.outputs:
                if (n.name, v.index) in outputs or any(u.name not in evaluable for u, _ in graph.uses(v)):
                    fetch.append(v)
        folded = removed = 0
        if fetch:
            needed = graph.ancestors({v.node for v in fetch}, control=True)
            sub = [n for n in graph.topo_order(by_name=False) if n.name in needed]
            try:
                arrays = evaluate(graph, sub, fetch)
            except Exception as e:  # a kernel TF lacks here, say: leave the graph as it is
                graph.meta.setdefault("warnings", []).append(
                    f"fold-constants: evaluation failed, nothing folded: {' '.join(str(e).split())[:200]}")
                return PassResult.of(shapes_folded=shapes, eval_failed=1)
            before = len(graph)
            by_node: dict[str, list] = {}
            for v, a in zip(fetch, arrays):
                by_node.setdefault(v.node.name, []).append((v, a))
            for name, pairs in by_node.items():
                folded += self._replace(graph, graph.node(name), pairs)
            remove_dead(graph, sub, protected(graph))
            removed = before - len(graph)
        return PassResult.of(folded=folded, shapes_folded=shapes, nodes_removed=removed)

    def _evaluable(self, n: Node, evaluable: set, keep_inputs: set) -> bool:
        if n.domain != "tf" or n.name in keep_inputs:
            return False
        if any(c.name not in evaluable for c in n.control_inputs):
            return False
        if n.const_value() is not None:
            return not n.const_value().digest_only
        info = n.info
        if not info.pure or info.source or n.op_type in NEVER_FOLD or not n.outputs:
            return False
        if any(v.node.name not in evaluable for v in n.inputs):
            return False
        for v in n.outputs:
            if v.dtype.is_ref or v.dtype.np is None:
                return False
            nb = v.type.nbytes()
            if nb is not None and nb > self._limit(n):
                return False
        return True

    def _limit(self, n: Node) -> int:
        return min(self.max_bytes, self.max_expand_bytes) if n.op_type in EXPANDING else self.max_bytes

    def _replace(self, graph: Graph, node: Node, pairs) -> int:
        """Replace the fetched outputs of ``node`` by constants; the one for output 0 takes its name."""
        done = 0
        heir = None
        for v, a in pairs:
            a = np.asarray(a)
            if a.nbytes > self._limit(node):
                continue
            c = add_const(graph, a, f"{node.name}/folded_{v.index}", dtype=v.dtype, like=node)
            graph.replace_all_uses_with(v, c.outputs[0], outputs=True)
            if v.index == 0:
                heir = c
            done += 1
        if done and not any(graph.has_uses(v) for v in node.outputs) and not graph.control_users(node) \
                and not graph.is_signature_node(node):
            graph.remove_node(node, forward_control=False)
            if heir is not None:
                graph.rename(heir, node.name)
        return 1 if done else 0

    def _fold_shape(self, graph: Graph, n: Node) -> list:
        """Replace a Shape/Size/Rank/ShapeN of statically known input(s) by constants (returned; empty
        when the shapes are not static)."""
        vals = []
        for i, v in enumerate(n.inputs):
            s = v.shape
            if n.op_type == "Rank":
                if s.rank is None:
                    return []
                vals.append(s.rank)
            elif not s.is_static:
                return []
            elif n.op_type == "Size":
                vals.append(s.num_elements())
            else:
                vals.append(list(s.dims))
        if n.control_inputs or graph.control_users(n):
            return []
        consts = []
        for v, val in zip(n.outputs, vals):
            c = add_const(graph, np.asarray(val, dtype=v.dtype.np), f"{n.name}/folded_{v.index}", dtype=v.dtype,
                          like=n)
            graph.replace_all_uses_with(v, c.outputs[0], outputs=True)
            consts.append(c)
        graph.remove_node(n, forward_control=False)
        if len(n.outputs) == 1:
            graph.rename(consts[0], n.name)
        return consts
