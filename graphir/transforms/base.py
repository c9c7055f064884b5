"""Pass base class, pass results and the pass registry.

A pass is a dataclass with a kebab-case ``name``; its options are its fields. ``run(graph)`` mutates the
graph through the IR API and returns a :class:`PassResult`. The one rule: a pass leaves the IR valid
(the pass manager verifies after every pass).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Type

from ..ir import Graph


@dataclass
class PassResult:
    changed: bool
    counts: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def of(**counts: int) -> "PassResult":
        return PassResult(any(v for v in counts.values()), dict(counts))


@dataclass
class Pass:
    """Base class. Subclasses set ``name`` and implement ``run``; options are dataclass fields."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError


PASSES: dict[str, Type[Pass]] = {}


def register_pass(cls: Type[Pass]) -> Type[Pass]:
    """Class decorator: make a pass available to pipeline strings by its ``name``."""
    if not cls.name or cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"bad or duplicate pass name {cls.name!r}")
    PASSES[cls.name] = cls
    return cls
