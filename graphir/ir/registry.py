"""Op knowledge as data, and the registry of dialects.

The IR core only knows trait *names*. Each domain (``tf``, ``onnx``, ...) registers a
:class:`graphir.ir.dialect.Dialect` that answers for its op types, keyed by (domain, op type, op set
version). Registration is explicit (``graphir.builtins.register_all``). Ops of a domain nobody registered (a
custom domain in a ``.gir`` file) and ops a dialect does not know (custom ops) get conservative defaults:
stateful and side-effecting, so no pass merges, folds or deletes them, and they pass through untouched.
A registered dialect whose framework is missing raises instead of answering differently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from .dialect import Dialect


class UnknownDialectError(LookupError):
    """No dialect is registered for a domain (a setup bug, or a model from a framework graphir lacks)."""


@dataclass(frozen=True)
class OpInfo:
    domain: str
    op_type: str
    known: bool = True
    stateful: bool = False          # result depends on hidden state or randomness: never fold or merge
    side_effecting: bool = False    # must run even when its outputs are unused (Assert, Print, assignments)
    commutative: bool = False       # the first two data inputs may be swapped
    control_flow: bool = False      # Switch/Merge/Enter/Exit/If/While/...
    loop_next: bool = False         # source of a loop back-edge (TF1 NextIteration)
    loop_merge: bool = False        # target of a loop back-edge (TF1 Merge)
    source: bool = False            # a graph input (Placeholder)
    constant_attr: Optional[str] = None  # name of the attribute holding the value of a constant op
    identity_like: bool = False     # output 0 equals data input 0 (Identity, Snapshot, StopGradient, ...)
    training_only: bool = False     # meaningless at inference: CheckNumerics, PreventGradient, ...
    precision: Optional[str] = None  # bf16 class: compute | follow | clear | fp32 (None: not convertible)
    foldable: bool = True           # constant inputs may be evaluated away (pure ops only)
    expanding: bool = False         # output may be far larger than the inputs (Fill, Tile, Pad, ...)
    shape_query: Optional[str] = None  # "shape" | "size" | "rank": answered from static input shapes
    debug_only: bool = False        # side effects nobody needs at inference (Assert, Print, NoOp)
    passthrough: Optional[int] = None  # for debug_only ops: the data input output 0 forwards, if any
    switch: bool = False            # routes its data input to one of two outputs by a predicate (TF1 Switch)
    defaulted_input: bool = False   # a feedable value with a default (PlaceholderWithDefault)

    @property
    def pure(self) -> bool:
        return self.known and not (self.stateful or self.side_effecting or self.control_flow)


_dialects: dict[str, "Dialect"] = {}
_cache: dict[tuple, OpInfo] = {}  # Node.info reads it directly: clear entries, never rebind it


def register_dialect(dialect: "Dialect") -> None:
    """Make ``dialect`` answer for ``dialect.domain`` (replacing an earlier registration)."""
    _dialects[dialect.domain] = dialect
    for k in [k for k in _cache if k[0] == dialect.domain]:
        del _cache[k]


def dialect(domain: str) -> "Dialect":
    try:
        return _dialects[domain]
    except KeyError:
        known = ", ".join(sorted(_dialects)) or "none"
        raise UnknownDialectError(f"no dialect registered for domain {domain!r} (registered: {known})") from None


def has_dialect(domain: str) -> bool:
    return domain in _dialects


def unknown_op(domain: str, op_type: str) -> OpInfo:
    return OpInfo(domain, op_type, known=False, stateful=True, side_effecting=True, foldable=False)


def op_info(domain: str, op_type: str, version: Optional[int] = None) -> OpInfo:
    key = (domain, op_type, version)
    info = _cache.get(key)
    if info is None:
        d = _dialects.get(domain)
        info = (d.op_info(op_type, version) if d is not None else None) or unknown_op(domain, op_type)
        _cache[key] = info
    return info


def value_name(domain: str, node_name: str, index: int) -> str:
    """The name a node's output gets when it has none of its own (the dialect's convention)."""
    d = _dialects.get(domain)
    if d is None:
        return node_name if index == 0 else f"{node_name}:{index}"
    return d.value_name(node_name, index)


def expected_input_dtypes(node) -> Optional[list]:
    d = _dialects.get(node.domain)
    return d.expected_input_dtypes(node) if d is not None else None


def expected_input_dtypes_fn(domain: str) -> Optional[Callable]:
    """The ``expected_input_dtypes(node)`` of ``domain``'s dialect (None: no dialect), for callers that ask
    it of many nodes (the verifier)."""
    d = _dialects.get(domain)
    return d.expected_input_dtypes if d is not None else None


# Writing a graph (Graph.save) goes through the writer the backends register.
_writer: list[Callable] = []


def register_writer(fn: Callable) -> None:
    """``fn(graph, path, format=None, **kwargs)`` writes a graph; the backends register theirs."""
    _writer[:] = [fn]


def writer() -> Callable:
    if not _writer:
        raise UnknownDialectError("no graph writer registered (call graphir.backends.register_backends())")
    return _writer[0]
