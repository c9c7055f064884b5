"""Small helpers shared by passes: constant access, node builders, dead-node cleanup, rewrite rules."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from ..ir import Graph, Node, Tensor, TensorType, Value


def const_array(v: Value) -> Optional[np.ndarray]:
    """The numpy value of ``v`` if it is produced by a constant op, else None."""
    if v.index != 0:
        return None
    t = v.node.const_value()
    if t is None or t.digest_only:
        return None
    return t.numpy()


def add_const(graph: Graph, array, name: str, *, dtype=None, device: str = "",
              like: Optional[Node] = None) -> Node:
    """A new TF ``Const`` node holding ``array`` (named ``name``, made unique)."""
    t = Tensor.from_array(array, dtype)
    return graph.add_node("Const", (), {"dtype": t.dtype, "value": t}, [TensorType(t.dtype, t.shape)],
                          name=name, device=like.device if like is not None else device)


def input_nodes(graph: Graph) -> set[str]:
    return {p.value.node.name for p in graph.inputs}


def protected(graph: Graph) -> set[str]:
    """Names of nodes that carry the graph signature (inputs and outputs)."""
    return {p.value.node.name for p in itertools.chain(graph.inputs, graph.outputs)}


def remove_unreachable(graph: Graph, extra_roots: Iterable[Node] = ()) -> int:
    """Remove every node that neither a graph input or output nor one of ``extra_roots`` depends on
    (by data or control edges). Returns the number removed."""
    roots = [p.value.node for p in itertools.chain(graph.inputs, graph.outputs)] + list(extra_roots)
    live = graph.ancestors(roots)
    return graph.remove_nodes([n for n in graph.nodes() if n.name not in live])


def sole_use(graph: Graph, v: Value) -> Optional[tuple[Node, int]]:
    """(reader, slot) when that is the only use of ``v``, ``v`` is not a graph output and its producer has
    no control users (so rewriting the pair changes nothing else); else None."""
    uses = graph.uses(v)
    if len(uses) != 1 or graph.is_output(v) or graph.control_users(v.node):
        return None
    return uses[0]


def move_control_users(graph: Graph, node: Node, srcs: Iterable[Node]) -> None:
    """Make every control user of ``node`` wait on ``srcs`` instead (a user never on itself)."""
    srcs = list(srcs)
    for u in graph.control_users(node):
        graph.remove_control_input(u, node)
        for s in srcs:
            if s is not u:
                graph.add_control_input(u, s)


def is_removable(graph: Graph, node: Node, keep: set[str]) -> bool:
    info = node.info
    return (node.name not in keep and not info.side_effecting and info.known
            and not graph.users(node) and not graph.control_users(node))


def remove_dead(graph: Graph, candidates: Iterable[Node], keep: Optional[set[str]] = None) -> int:
    """Remove unused side-effect-free nodes among ``candidates`` and, transitively, their producers."""
    keep = protected(graph) if keep is None else keep
    stack = [n for n in candidates if n.graph is graph]
    removed = 0
    while stack:
        n = stack.pop()
        if n.graph is not graph or not is_removable(graph, n, keep):
            continue
        preds = [v.node for v in n.inputs] + list(n.control_inputs)
        graph.remove_node(n, forward_control=False)
        removed += 1
        stack.extend(preds)
    return removed


# ---------------------------------------------------------------- rewrite rules (tinygrad style)
@dataclass(frozen=True)
class Rule:
    """``ops``: op types the rule looks at; ``fn(graph, node) -> bool`` rewrites in place, True if it did."""

    name: str
    ops: frozenset
    fn: Callable[[Graph, Node], bool]


class RuleSet:
    def __init__(self, rules: Iterable[Rule] = ()):
        self.rules = list(rules)
        self.by_op: dict[str, list[Rule]] = {}
        for r in self.rules:
            for op in r.ops:
                self.by_op.setdefault(op, []).append(r)

    def __add__(self, other: "RuleSet") -> "RuleSet":
        return RuleSet(self.rules + other.rules)


def rule(*ops: str):
    """Decorator turning ``fn(graph, node) -> bool`` into a :class:`Rule` for ``ops``."""

    def wrap(fn):
        return Rule(fn.__name__, frozenset(ops), fn)

    return wrap


def rewrite_fixed_point(graph: Graph, rules: RuleSet, max_rounds: int = 20) -> dict[str, int]:
    """Apply ``rules`` to every node, in topological order, until none fires. Returns fire counts."""
    fired: dict[str, int] = {}
    for _ in range(max_rounds):
        changed = False
        for node in graph.topo_order(by_name=False):
            for r in rules.by_op.get(node.op_type, ()):
                if node.graph is not graph:
                    break
                if r.fn(graph, node):
                    fired[r.name] = fired.get(r.name, 0) + 1
                    changed = True
        if not changed:
            break
    return fired
