"""The dialect interface: everything a pass may ask of a framework, in one object per domain.

Passes never import a framework and never build framework ops by hand; they ask the dialect of the node
they work on (``dialect_of(node)``) to make a constant, a cast or a placeholder, to evaluate a constant
subgraph, or to run a graph, and they read op data (traits, precision classes, foldability) through
:func:`graphir.ir.registry.op_info`. Evaluating and running need the framework's runtime, which the runtime
layer attaches with :meth:`Dialect.set_evaluator` / :meth:`Dialect.set_runner` when it registers.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .core import Graph, Node, Value
from .registry import OpInfo
from .registry import dialect as _dialect
from .types import DType, Tensor, TensorType


class DialectError(Exception):
    """A dialect cannot do what was asked (no runtime attached, framework missing)."""


class EvaluationError(Exception):
    """The framework could not evaluate a constant subgraph (e.g. no kernel for an op here). Passes treat
    it as "cannot fold", not as a bug."""


class Dialect:
    """Base class. A subclass sets ``domain`` and overrides what its framework supports."""

    domain: str = ""
    # Set by the runtime layer: evaluate(graph, nodes, fetches) -> arrays; runner(graph) -> callable.
    _evaluator: Optional[Callable] = None
    _runner: Optional[Callable] = None
    _run_errors: Optional[Callable[[], tuple]] = None

    # ---------------------------------------------------------------- op data
    def op_info(self, op_type: str, version: Optional[int] = None) -> Optional[OpInfo]:
        return None

    def expected_input_dtypes(self, node: Node) -> Optional[list[DType]]:
        return None

    def value_name(self, node_name: str, index: int) -> str:
        """The derived name of output ``index`` of ``node_name`` (for values without a name of their own)."""
        return node_name if index == 0 else f"{node_name}:{index}"

    def is_op(self, op_type: str) -> bool:
        """True if ``op_type`` names an op of this dialect (for validating user op lists)."""
        return False

    def precision_class(self, op_type: str) -> str:
        """The op's bf16 class: compute | follow | clear | fp32."""
        return "fp32"

    def precision_plan(self, node: Node):
        """How ``node`` switches to bf16 (an object with ``attrs``, ``ins``, ``outs``, ``convertible``), or
        None when it has no fp32 float ports."""
        return None

    def set_node_precision(self, graph: Graph, node: Node, plan, dtype: DType) -> None:
        """Apply ``plan`` with ``dtype`` to ``node`` (type attrs and output types)."""
        raise DialectError(f"dialect {self.domain!r} cannot change precisions")

    def cast_target(self, node: Node) -> Optional[DType]:
        """If ``node`` is this dialect's cast op, the dtype it casts to."""
        return None

    def cast_truncates(self, node: Node) -> bool:
        """True if a cast node rounds toward zero (TF's ``Truncate=True``) instead of to nearest."""
        return False

    # ---------------------------------------------------------------- builders
    def make_constant(self, graph: Graph, array, name: str, *, dtype: Optional[DType] = None,
                      like: Optional[Node] = None) -> Value:
        raise DialectError(f"dialect {self.domain!r} cannot make constants")

    def make_cast(self, graph: Graph, value: Value, dtype: DType, name: str, *,
                  like: Optional[Node] = None) -> Value:
        raise DialectError(f"dialect {self.domain!r} cannot make casts")

    def make_placeholder(self, graph: Graph, name: str, type: TensorType) -> Value:
        raise DialectError(f"dialect {self.domain!r} cannot make placeholders")

    def set_cast_dtype(self, graph: Graph, node: Node, src: DType, dst: DType) -> None:
        raise DialectError(f"dialect {self.domain!r} has no casts")

    def set_constant(self, graph: Graph, node: Node, tensor: Tensor) -> None:
        """Replace the value a constant node holds (its output type follows)."""
        raise DialectError(f"dialect {self.domain!r} has no constants")

    # ---------------------------------------------------------------- runtime
    def set_evaluator(self, fn: Callable) -> None:
        self._evaluator = fn

    def set_runner(self, fn: Callable, errors: Optional[Callable[[], tuple]] = None) -> None:
        """``fn(graph, **kwargs)`` makes a runner; ``errors()`` names the exception types the framework
        raises for a graph it cannot import or run (called lazily: the framework need not be imported)."""
        self._runner = fn
        self._run_errors = errors

    def run_errors(self) -> tuple:
        """Exception types that mean "this graph cannot run here" rather than a bug in graphir."""
        extra = self._run_errors() if self._run_errors is not None else ()
        return (DialectError, ValueError, TypeError) + tuple(extra)

    def evaluate(self, graph: Graph, nodes: Sequence[Node], fetches: Sequence[Value]) -> list[np.ndarray]:
        """The values of ``fetches``, computed by the framework from ``nodes`` (topologically ordered)."""
        if self._evaluator is None:
            raise DialectError(f"dialect {self.domain!r} has no evaluator registered")
        return self._evaluator(graph, nodes, fetches)

    def runner(self, graph: Graph, **kwargs) -> Any:
        """A callable that runs ``graph`` on feeds (``runner(feeds) -> outputs``), for verification."""
        if self._runner is None:
            raise DialectError(f"dialect {self.domain!r} has no runner registered")
        return self._runner(graph, **kwargs)

    def __repr__(self):
        return f"<Dialect {self.domain}>"


def dialect_of(node_or_domain) -> Dialect:
    """The dialect of a node (or a domain name)."""
    return _dialect(node_or_domain if isinstance(node_or_domain, str) else node_or_domain.domain)


def graph_dialect(graph: Graph) -> Dialect:
    """The dialect most of ``graph``'s nodes belong to (the one to build new nodes with)."""
    counts: dict[str, int] = {}
    for n in graph.nodes():
        counts[n.domain] = counts.get(n.domain, 0) + 1
    if not counts:
        domain = next(iter(graph.opset_imports), None) or graph.meta.get("domain")
        if domain is None:
            raise DialectError("empty graph: no dialect to build nodes with")
        return _dialect(domain)
    return _dialect(max(counts, key=lambda d: (counts[d], d)))


def const_tensor(v: Optional[Value]) -> Optional[Tensor]:
    """The constant ``v`` holds, if its producer is a constant op or it is an initializer."""
    if v is None:
        return None
    if v.node is None:
        return v.const
    if v.index != 0:
        return None
    return v.node.const_value()
