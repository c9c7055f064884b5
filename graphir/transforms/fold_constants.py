"""fold-constants: evaluate constant sub-graphs with the dialect's evaluator (TF's own kernels for tf)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import one_line
from ..ir import Graph, Node
from ..ir.dialect import EvaluationError, dialect_of, graph_dialect
from ..ir.types import Tensor
from .base import Pass, PassResult, register_pass
from .cse import hashable
from .patterns import add_const, input_nodes, protected, remove_dead

# Constants up to this size take part in a node's value number by content, larger ones by identity.
_KEY_BYTES = 4096


def _tensor_key(t: Tensor):
    if t.digest_only or t.dtype.np is None or t.dtype.np.kind == "O" or t.nbytes > _KEY_BYTES:
        return ("id", id(t))
    return ("tensor", t.dtype.name, t.shape.dims, t.numpy().tobytes())


def _distinct(order: list, evaluable: set, fetch: list) -> tuple[list, list[int]]:
    """The values of ``fetch`` that differ by value number (op, attributes, device, inputs, output types;
    evaluable nodes are pure), and for each fetch the index of its equal among them. Models whose weights
    are fills repeat the same fill hundreds of times: each distinct one is evaluated once."""
    rep: dict[str, Node] = {}  # evaluable node -> the first evaluable node with its value number
    first: dict = {}
    for n in order:
        if n.name not in evaluable:
            continue
        ctrl = n.control_inputs
        try:
            ins = tuple(None if v is None else _tensor_key(v.const) if v.node is None
                        else (rep[v.node.name].name, v.index) for v in n.inputs)
            key = (n.domain, n.op_type, n.device, hashable(n.attrs, _tensor_key), ins,
                   tuple(sorted(rep[c.name].name for c in ctrl)) if ctrl else (),
                   tuple((v.dtype.name, v.shape.dims) for v in n.outputs))
            rep[n.name] = first.setdefault(key, n)
        except TypeError:  # an unhashable attribute: a value number of its own
            rep[n.name] = n
    uniq: list = []
    index: dict[int, int] = {}
    pick = []
    for v in fetch:
        w = rep[v.node.name].outputs[v.index]
        if id(w) not in index:
            index[id(w)] = len(uniq)
            uniq.append(w)
        pick.append(index[id(w)])
    return uniq, pick


@register_pass
@dataclass(frozen=True)
class FoldConstants(Pass):
    """After: no foldable, pure, non-source node whose inputs are all constants remains, unless its value
    would be larger than ``max_bytes`` (or ``max_expand_bytes`` for Fill/Tile-like expansions); shape
    queries (Shape, Size, Rank) of statically shaped tensors are constants. Folded nodes keep their names.
    When the evaluator fails, nothing is folded and the pass warns."""

    name = "fold-constants"
    phase = "canonicalize"
    max_bytes: int = 10 * 1024 * 1024
    max_expand_bytes: int = 1024 * 1024

    def run(self, graph: Graph) -> PassResult:
        if not len(graph):
            return PassResult.of()
        domain = graph_dialect(graph).domain
        keep_inputs = input_nodes(graph)
        order = graph.topo_order(by_name=False)
        shapes = 0
        evaluable: set[str] = set()
        for n in order:
            if n.domain != domain:
                continue
            info = n.info
            if info.shape_query and n.inputs and n.name not in keep_inputs:
                consts = self._fold_shape(graph, n)
                if consts:
                    # Every output's constant (ShapeN has several) lets its readers fold in this run.
                    shapes += 1
                    evaluable.update(c.node.name for c in consts if c.node is not None)
                    continue
            if self._evaluable(n, info, evaluable, keep_inputs):
                evaluable.add(n.name)

        # Fold the evaluable nodes some non-evaluable node (or a graph output) reads: one run for all.
        outputs = {id(p.value) for p in graph.outputs}
        fetch = []
        for n in graph.nodes():
            if n.name not in evaluable or n.const_value() is not None:
                continue
            for v in n.outputs:
                if id(v) in outputs or any(u.name not in evaluable for u, _ in graph.uses(v)):
                    fetch.append(v)
        folded = removed = 0
        if fetch:
            order = graph.topo_order(by_name=False)  # the shape folds above changed the graph
            uniq, pick = _distinct(order, evaluable, fetch)
            needed = graph.ancestors({v.node for v in uniq}, control=True)
            sub = [n for n in order if n.name in needed]
            # What the duplicates read goes dead too.
            dead = sub if len(uniq) == len(fetch) else \
                [graph.node(k) for k in graph.ancestors({v.node for v in fetch}, control=True)]
            try:
                arrays = dialect_of(domain).evaluate(graph, sub, uniq)
            except EvaluationError as e:  # a kernel the framework lacks here, say: leave the graph as it is
                res = PassResult.of(shapes_folded=shapes, eval_failed=1)
                res.warnings.append(f"evaluation failed, nothing folded: {one_line(e, 200)}")
                return res
            if len(uniq) < len(fetch):
                for i, k in Counter(pick).items():
                    if k > 1:
                        arrays[i].flags.writeable = False  # shared by several constants: none may change it
                arrays = [arrays[i] for i in pick]
            before = len(graph)
            by_node: dict[str, list] = {}
            for v, a in zip(fetch, arrays):
                by_node.setdefault(v.node.name, []).append((v, a))
            for name, pairs in by_node.items():
                folded += self._replace(graph, graph.node(name), pairs)
            remove_dead(graph, dead, protected(graph))
            removed = before - len(graph)
        return PassResult.of(folded=folded, shapes_folded=shapes, nodes_removed=removed)

    def _evaluable(self, n: Node, info, evaluable: set, keep_inputs: set) -> bool:
        if n.name in keep_inputs:
            return False
        if any(c.name not in evaluable for c in n.control_inputs):
            return False
        ins = n.inputs
        if info.constant_attr and not ins:  # n.const_value(), its op data at hand
            c = n.attrs.get(info.constant_attr)
            if isinstance(c, Tensor):
                return not c.digest_only
        if not info.pure or not info.foldable or info.source or not n.outputs:
            return False
        for v in ins:
            if v is None:
                continue  # an absent optional operand
            if v.node is None:  # an initializer is a constant; a graph argument is not
                if v.const is None or v.const.digest_only:
                    return False
            elif v.node.name not in evaluable:
                return False
        limit = self._limit(info)
        for v in n.outputs:
            if v.dtype.is_ref or v.dtype.np is None:
                return False
            nb = v.type.nbytes()
            if nb is not None and nb > limit:
                return False
        return True

    def _limit(self, info) -> int:
        return min(self.max_bytes, self.max_expand_bytes) if info.expanding else self.max_bytes

    def _replace(self, graph: Graph, node: Node, pairs) -> int:
        """Replace the fetched outputs of ``node`` by constants; the one for output 0 takes its name."""
        done = 0
        heir = None
        limit = self._limit(node.info)
        for v, a in pairs:
            a = np.asarray(a)
            if a.nbytes > limit:
                continue
            c = add_const(graph, a, f"{node.name}/folded_{v.index}", dtype=v.dtype, like=node)
            graph.replace_all_uses_with(v, c, outputs=True)
            if v.index == 0:
                heir = c.node
            done += 1
        if done and not any(graph.has_uses(v) for v in node.outputs) and not graph.control_users(node) \
                and not graph.is_signature_node(node):
            graph.remove_node(node, forward_control=False)
            if heir is not None:
                graph.rename(heir, node.name)
        return 1 if done else 0

    def _fold_shape(self, graph: Graph, n: Node) -> list:
        """Replace a shape query of statically known input(s) by constants (returned; empty when the
        shapes are not static)."""
        kind = n.info.shape_query
        vals = []
        for v in n.inputs:
            if v is None:
                return []
            s = v.shape
            if kind == "rank":
                if s.rank is None:
                    return []
                vals.append(s.rank)
            elif not s.is_static:
                return []
            elif kind == "size":
                vals.append(s.num_elements())
            else:
                vals.append(list(s.dims))
        if n.control_inputs or graph.control_users(n) or len(vals) != len(n.outputs):
            return []
        consts = []
        for v, val in zip(n.outputs, vals):
            c = add_const(graph, np.asarray(val, dtype=v.dtype.np), f"{n.name}/folded_{v.index}", dtype=v.dtype,
                          like=n)
            graph.replace_all_uses_with(v, c, outputs=True)
            consts.append(c)
        graph.remove_node(n, forward_control=False)
        if len(n.outputs) == 1 and consts[0].node is not None:  # an initializer has no node to rename
            graph.rename(consts[0].node, n.name)
        return consts
