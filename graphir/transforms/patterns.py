"""Small helpers shared by passes: constant access, dialect-built nodes, dead-node cleanup, and rewrite
rules with their worklist driver.

Passes build nodes only through the dialect interface (:func:`add_const`, :func:`add_cast`), never by
spelling a framework op themselves.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.dialect import const_tensor, dialect_of
from ..ir.types import DType


def const_array(v: Optional[Value]) -> Optional[np.ndarray]:
    """The numpy value of ``v`` if it is a constant (a constant op's output or an initializer), else None."""
    t = const_tensor(v)
    if t is None or t.digest_only:
        return None
    return t.numpy()


def is_const(v: Optional[Value]) -> bool:
    return const_tensor(v) is not None


def add_const(graph: Graph, array, name: str, *, like: Node, dtype: Optional[DType] = None) -> Value:
    """A new constant holding ``array`` in ``like``'s dialect (named ``name``, made unique)."""
    return dialect_of(like).make_constant(graph, array, name, dtype=dtype, like=like)


def add_cast(graph: Graph, value: Value, dtype: DType, name: str, *, like: Node) -> Value:
    """``value`` cast to ``dtype`` by ``like``'s dialect."""
    return dialect_of(like).make_cast(graph, value, dtype, name, like=like)


def cast_target(node: Node) -> Optional[DType]:
    """The dtype ``node`` casts to, if it is its dialect's cast op with one input."""
    if len(node.inputs) != 1:
        return None
    return dialect_of(node).cast_target(node)


def producer(v: Optional[Value]) -> Optional[Node]:
    return None if v is None else v.node


def input_nodes(graph: Graph) -> set[str]:
    return {p.value.node.name for p in graph.inputs if p.value.node is not None}


def protected(graph: Graph) -> set[str]:
    """Names of nodes that carry the graph signature (inputs and outputs)."""
    return {p.value.node.name for p in itertools.chain(graph.inputs, graph.outputs) if p.value.node is not None}


def remove_unreachable(graph: Graph, extra_roots: Iterable[Node] = ()) -> int:
    """Remove every node that neither a graph input or output nor one of ``extra_roots`` depends on
    (by data, control or capture edges). Returns the number removed."""
    roots = [p.value.node for p in itertools.chain(graph.inputs, graph.outputs) if p.value.node is not None]
    live = graph.ancestors(roots + list(extra_roots))
    removed = graph.remove_nodes([n for n in graph.nodes() if n.name not in live])
    for v in list(graph.initializers.values()):  # initializers nothing reads any more
        if not graph.has_uses(v) and not any(p.value is v for p in graph.inputs):
            graph.remove_initializer(v)
    return removed


def sole_use(graph: Graph, v: Value) -> Optional[tuple[Node, int]]:
    """(reader, slot) when that is the only use of ``v``, ``v`` is not a graph output and its producer has
    no control users (so rewriting the pair changes nothing else); else None."""
    uses = graph.uses(v)
    if len(uses) != 1 or graph.is_output(v) or (v.node is not None and graph.control_users(v.node)):
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
    stack = [n for n in candidates if n is not None and n.graph is graph]
    removed = 0
    while stack:
        n = stack.pop()
        if n.graph is not graph or not is_removable(graph, n, keep):
            continue
        preds = [v.node for v in n.inputs if v is not None and v.node is not None] + list(n.control_inputs)
        graph.remove_node(n, forward_control=False)
        removed += 1
        stack.extend(preds)
    return removed


def can_bypass(graph: Graph, node: Node, value: Value) -> bool:
    """True if readers of ``node``'s output 0 may read ``value`` instead: ``node`` is not a graph input or
    output, has no control edges, and the type (dtype and shape) is the same."""
    out = node.outputs[0]
    if graph.is_signature_node(node) or node.control_inputs or graph.control_users(node):
        return False
    return value.dtype is out.dtype and value.shape == out.shape


# ---------------------------------------------------------------- rewrite rules (tinygrad style)
Replacement = Union[None, bool, Value, Sequence[Value]]


@dataclass(frozen=True)
class Rule:
    """A rewrite keyed by ``(domain, op type)``. ``fn(graph, node)`` returns None/False (no match), a
    replacement for the node's outputs (a Value for output 0, or one Value per output: the driver rewires
    the readers and removes the node), or True when it rewrote the node in place."""

    name: str
    domain: str
    ops: frozenset
    fn: Callable[[Graph, Node], Replacement]


class RuleSet:
    def __init__(self, rules: Iterable[Rule] = ()):
        self.rules = list(rules)
        self.by_op: dict[tuple[str, str], list[Rule]] = {}
        for r in self.rules:
            for op in r.ops:
                self.by_op.setdefault((r.domain, op), []).append(r)

    def __add__(self, other: "RuleSet") -> "RuleSet":
        return RuleSet(self.rules + other.rules)

    def for_node(self, node: Node) -> list[Rule]:
        return self.by_op.get((node.domain, node.op_type), [])


def rule(domain: str, *ops: str):
    """Decorator turning ``fn(graph, node) -> Replacement`` into a :class:`Rule` for ``domain``'s ``ops``."""

    def wrap(fn):
        return Rule(fn.__name__, domain, frozenset(ops), fn)

    return wrap


def apply_rules(graph: Graph, rules: RuleSet, max_steps: Optional[int] = None) -> dict[str, int]:
    """Apply ``rules`` with a worklist until none fires: start from every matching node in topological
    order; after a rewrite, revisit the rewritten node, the readers of its (new) outputs, its (new and
    former) producers. Returns how often each rule fired."""
    fired: dict[str, int] = {}
    work = deque(n for n in graph.topo_order(by_name=False) if rules.for_node(n))
    queued = {id(n) for n in work}
    steps = 0
    limit = max_steps if max_steps is not None else 50 * (len(graph) + 10)

    def push(n: Optional[Node]):
        if n is not None and n.graph is graph and id(n) not in queued and rules.for_node(n):
            queued.add(id(n))
            work.append(n)

    while work and steps < limit:
        node = work.popleft()
        queued.discard(id(node))
        if node.graph is not graph:
            continue
        for r in rules.for_node(node):
            if node.graph is not graph:
                break
            steps += 1
            before = node.inputs  # a value's producer never changes: read it only after a rewrite
            res = r.fn(graph, node)
            if res is None or res is False:
                continue
            fired[r.name] = fired.get(r.name, 0) + 1
            if res is True:
                touched = [node]
            else:
                new = [res] if isinstance(res, Value) else list(res)
                for old, v in zip(node.outputs, new):
                    graph.replace_all_uses_with(old, v, outputs=False)
                remove_dead(graph, [node])
                touched = [v.node for v in new if v.node is not None]
            for n in touched:
                if n.graph is graph:
                    push(n)
                    for u in graph.users(n):
                        push(u)
                    for v in n.inputs:  # a rewrite may have put new nodes in front of it
                        push(None if v is None else v.node)
            for v in before:
                push(None if v is None else v.node)
            break
    return fired
