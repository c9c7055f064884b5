"""Pipelines as structured objects: a sequence of configured passes that prints and parses back.

Text form: ``name, name{option=value, list_option=[a, "b,c"]}``. A value with any of ``, ; { } [ ] " =``
or whitespace is a JSON-quoted string; lists are ``[...]`` (the older ``a;b`` form is still read).
``Pipeline.parse(str(p)) == p`` for every pipeline.

Ordering is declared, not spliced: a pass class names the passes it ``requires`` earlier in the pipeline
and the ones that must follow it (``followed_by``); :meth:`Pipeline.resolved` inserts any that are missing,
so no pass ever runs another.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from typing import Iterable, Sequence

from ..errors import ConfigError
from .base import PASSES, Pass


def load_passes() -> None:
    from . import _load_all

    _load_all()


def known_passes() -> list[str]:
    load_passes()
    return sorted(PASSES)


def _bad(msg: str):
    raise ConfigError(f"{msg}; known passes: {', '.join(known_passes())}")


_SPECIAL = re.compile(r'[\s,;{}\[\]"=]')


def _fmt_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    return json.dumps(s) if not s or _SPECIAL.search(s) else s


def format_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_scalar(x) for x in v) + "]"
    return _fmt_scalar(v)


def format_pass(p: Pass) -> str:
    """``name`` or ``name{opt=value, ...}`` listing the options that differ from their defaults."""
    opts = []
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if default is dataclasses.MISSING or v != default and not (isinstance(v, tuple) and list(v) == default):
            opts.append(f"{f.name}={format_value(v)}")
    return p.name + ("{" + ", ".join(opts) + "}" if opts else "")


class Pipeline:
    """An immutable sequence of configured passes."""

    def __init__(self, passes: Iterable[Pass] = ()):
        self.passes: tuple[Pass, ...] = tuple(passes)

    def __iter__(self):
        return iter(self.passes)

    def __len__(self):
        return len(self.passes)

    def __getitem__(self, i):
        return self.passes[i]

    def __eq__(self, other):
        return isinstance(other, Pipeline) and self.passes == other.passes

    def __add__(self, other: "Pipeline") -> "Pipeline":
        return Pipeline(self.passes + tuple(other))

    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def __str__(self) -> str:
        return ",".join(format_pass(p) for p in self.passes)

    def __repr__(self) -> str:
        return f"Pipeline({str(self)!r})"

    def split_before(self, phase: str) -> tuple["Pipeline", "Pipeline"]:
        """(the passes of the phases before ``phase``, the rest), by the declared phase order."""
        from .base import PHASES

        k = PHASES.index(phase)
        i = next((i for i, p in enumerate(self.passes) if PHASES.index(p.phase) >= k), len(self.passes))
        return Pipeline(self.passes[:i]), Pipeline(self.passes[i:])

    def without_phase(self, phase: str) -> "Pipeline":
        return Pipeline(p for p in self.passes if p.phase != phase)

    def resolved(self) -> "Pipeline":
        """This pipeline with the passes each pass requires before it, or needs after it, inserted where
        missing (with default options)."""
        load_passes()
        out: list[Pass] = []
        for p in self.passes:
            for req in getattr(type(p), "requires", ()):
                if req not in (q.name for q in out):
                    out.append(PASSES[req]())
            out.append(p)
        i = 0
        while i < len(out):
            for nxt in getattr(type(out[i]), "followed_by", ()):
                if nxt not in (q.name for q in out[i + 1:]):
                    out.insert(i + 1, PASSES[nxt]())
            i += 1
        return Pipeline(out)

    @staticmethod
    def parse(text: str) -> "Pipeline":
        return Pipeline(_Parser(text).pipeline())


def _field_kind(cls, f: dataclasses.Field) -> str:
    hints = typing.get_type_hints(cls)
    t = hints.get(f.name, str)
    origin = typing.get_origin(t)
    if origin in (tuple, list) or t in (tuple, list):
        return "list"
    return {bool: "bool", int: "int", float: "float"}.get(t, "str")


class _Parser:
    def __init__(self, text):
        if not isinstance(text, str) or not text.strip():
            _bad("empty pass pipeline")
        self.s = text
        self.pos = 0

    def ws(self):
        while self.pos < len(self.s) and self.s[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.pos:self.pos + 1]

    def fail(self, what: str):
        _bad(f"bad pass pipeline {self.s!r} at column {self.pos + 1}: {what}")

    def word(self, what: str) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z0-9_\-]+").match(self.s, self.pos)
        if not m:
            self.fail(f"expected {what}")
        self.pos = m.end()
        return m.group()

    def scalar(self) -> tuple[str, bool]:
        """(text, quoted)."""
        self.ws()
        if self.s.startswith('"', self.pos):
            m = re.compile(r'"(?:[^"\\]|\\.)*"').match(self.s, self.pos)
            if not m:
                self.fail("unterminated string")
            self.pos = m.end()
            return json.loads(m.group()), True
        m = re.compile(r'[^\s,;{}\[\]"=]+').match(self.s, self.pos)
        if not m:
            self.fail("expected a value")
        self.pos = m.end()
        return m.group(), False

    def value(self):
        if self.peek() == "[":
            self.pos += 1
            items = []
            if self.peek() == "]":
                self.pos += 1
                return items
            while True:
                items.append(self.scalar()[0])
                c = self.peek()
                self.pos += 1
                if c == "]":
                    return items
                if c != ",":
                    self.fail("expected ',' or ']' in a list")
        first, _ = self.scalar()
        if self.peek() == ";":  # the a;b list form
            items = [first]
            while self.peek() == ";":
                self.pos += 1
                if self.peek() in ("}", ",", ""):
                    break
                items.append(self.scalar()[0])
            return items
        return first

    def pipeline(self) -> list[Pass]:
        load_passes()
        out = []
        while True:
            name = self.word("a pass name")
            cls = PASSES.get(name)
            if cls is None:
                _bad(f"unknown pass {name!r}")
            kwargs = {}
            if self.peek() == "{":
                self.pos += 1
                fields = {f.name: f for f in dataclasses.fields(cls)}
                while self.peek() != "}":
                    key = self.word("an option name").replace("-", "_")
                    if key not in fields:
                        raise ConfigError(f"pass {name!r}: bad option {key!r}; options: "
                                          f"{', '.join(fields) or 'none'}")
                    if self.peek() != "=":
                        raise ConfigError(f"pass {name!r}: bad option {key!r}: expected '='")
                    self.pos += 1
                    kwargs[key] = _convert(self.value(), cls, fields[key], name)
                    c = self.peek()
                    if c == ",":
                        self.pos += 1
                    elif c != "}":
                        self.fail("expected ',' or '}' after an option")
                self.pos += 1
            out.append(cls(**kwargs))
            c = self.peek()
            if c == "":
                return out
            if c != ",":
                self.fail("expected ',' between passes")
            self.pos += 1


def _convert(v, cls, f: dataclasses.Field, pname: str):
    kind = _field_kind(cls, f)
    try:
        if kind == "list":
            return tuple(str(x).strip() for x in (v if isinstance(v, list) else [v]) if str(x).strip())
        if isinstance(v, list):
            raise ValueError(v)
        text = v.strip()
        if kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind == "int":
            return int(float(text)) if re.fullmatch(r"[0-9.eE+]+", text) else int(text, 0)
        if kind == "float":
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"pass {pname!r}: option {f.name} = {v!r} is not a valid {kind}") from None


def parse_pipeline(text: str) -> list[Pass]:
    return list(Pipeline.parse(text))


def as_pipeline(p) -> Pipeline:
    if isinstance(p, Pipeline):
        return p
    if isinstance(p, str):
        return Pipeline.parse(p)
    if isinstance(p, Sequence):
        return Pipeline(p)
    raise ConfigError(f"not a pipeline: {type(p).__name__}")
