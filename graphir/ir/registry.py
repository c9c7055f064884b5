"""Op knowledge as data: traits per (domain, op type).

The IR core only knows trait *names*. Each domain (``tf``, later ``onnx``) registers a provider that
answers for its op types; see ``graphir/dialects``. Unknown ops get conservative defaults: they are
treated as stateful and side-effecting, so no pass merges, folds or deletes them, and they pass through
untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


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

    @property
    def pure(self) -> bool:
        return self.known and not (self.stateful or self.side_effecting or self.control_flow)


_providers: dict[str, Callable[[str], Optional[OpInfo]]] = {}
_cache: dict[tuple[str, str], OpInfo] = {}


def register_domain(domain: str, provider: Callable[[str], Optional[OpInfo]]) -> None:
    """Register ``provider(op_type) -> OpInfo | None`` for a domain."""
    _providers[domain] = provider
    for k in [k for k in _cache if k[0] == domain]:
        del _cache[k]


def unknown_op(domain: str, op_type: str) -> OpInfo:
    return OpInfo(domain, op_type, known=False, stateful=True, side_effecting=True)


def op_info(domain: str, op_type: str) -> OpInfo:
    key = (domain, op_type)
    info = _cache.get(key)
    if info is None:
        _load_builtin_domain(domain)
        provider = _providers.get(domain)
        info = provider(op_type) if provider else None
        if info is None:
            info = unknown_op(domain, op_type)
        _cache[key] = info
    return info


def _load_builtin_domain(domain: str) -> None:
    if domain == "tf" and domain not in _providers:
        from ..dialects import tf  # noqa: F401  (registers itself)


# Per-domain input type rules: fn(node) -> list of expected input dtypes, or None when unknown.
_input_type_rules: dict[str, Callable] = {}


def register_input_type_rule(domain: str, fn: Callable) -> None:
    _input_type_rules[domain] = fn


def expected_input_dtypes(node) -> Optional[list]:
    _load_builtin_domain(node.domain)
    fn = _input_type_rules.get(node.domain)
    return fn(node) if fn else None
