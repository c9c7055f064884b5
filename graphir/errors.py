"""The error model, shared by every layer (this module imports nothing from graphir).

- :class:`GraphirError` and its subclasses are *bad input* or an impossible request: the CLI prints
  ``graphir: error: <one line>`` and exits with ``exit_code`` (2).
- :class:`InternalError` is a *graphir bug* (IR misuse, an invalid IR after a pass, an exception inside a
  pass): ``graphir: internal error: <one line>; rerun with GRAPHIR_DEBUG=1 ...`` and exit code 3.

:func:`one_line` is the one formatter for messages that must fit on one line.
"""
from __future__ import annotations

import re

_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def one_line(msg, limit: int = 0) -> str:
    """``msg`` (an exception or any object) as one line: whitespace collapsed, object addresses dropped,
    cut to ``limit`` characters when ``limit`` is positive."""
    text = _ADDR.sub("", " ".join(str(msg).split()))
    if limit > 0 and len(text) > limit:
        text = text[: max(0, limit - 3)].rstrip() + "..."
    return text


def describe(e: BaseException, limit: int = 0) -> str:
    """``Type: message`` on one line (just the type when the message is empty)."""
    text = one_line(e, limit)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class GraphirError(Exception):
    """Bad input or an impossible request, explained in one line."""

    exit_code = 2


class ModelLoadError(GraphirError):
    """The model file or object cannot be read."""


class ConfigError(GraphirError):
    """A bad option, pipeline string or YAML config."""


class InternalError(Exception):
    """A bug in graphir, not in the user's input: the CLI exits with code 3."""

    exit_code = 3
