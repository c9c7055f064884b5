"""Pass base class, pass results and the pass registry.

A pass is a frozen dataclass with a kebab-case ``name``; its options are its typed fields. ``run(graph)``
mutates the graph through the IR API and returns a :class:`PassResult`. The one rule: a pass leaves the IR
valid (the pass manager verifies after every pass). A pass never runs another pass: the pipeline composes
them. ``phase`` places the pass in the default pipeline (see :mod:`.pipeline`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Type

from ..ir import Graph

# The order of the compiler's phases: canonicalize, then optimize, then assign precisions, then lower to
# the target's kernels, then clean up (MLIR's shape of a compiler).
PHASES = ("cleanup", "canonicalize", "optimize", "precision", "lower", "finalize")


@dataclass
class PassResult:
    """What a pass did: whether it changed the graph, a few counts, warnings for the user, and a report
    (data the driver shows, e.g. the bf16 statistics)."""

    changed: bool
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(**counts: int) -> "PassResult":
        return PassResult(any(v for v in counts.values()), dict(counts))


@dataclass(frozen=True)
class Pass:
    """Base class. Subclasses set ``name`` (and ``phase``) and implement ``run``; options are fields."""

    name: ClassVar[str] = ""
    phase: ClassVar[str] = "optimize"

    def run(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError


PASSES: dict[str, Type[Pass]] = {}


def register_pass(cls: Type[Pass]) -> Type[Pass]:
    """Class decorator: make a pass available to pipelines by its ``name``."""
    if not cls.name or cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"bad or duplicate pass name {cls.name!r}")
    if cls.phase not in PHASES:
        raise ValueError(f"pass {cls.name!r}: unknown phase {cls.phase!r}")
    PASSES[cls.name] = cls
    return cls
