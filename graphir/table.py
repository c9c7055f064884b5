"""The one fixed-width text table formatter, for every report graphir prints (imports nothing from graphir).

Columns are two spaces apart. The last cell of a row is free text: it is not padded and does not widen its
column, so a row may end early with a cell that runs on (e.g. a totals line under a table).
"""
from __future__ import annotations

from typing import Iterable, Sequence


def format_table(rows: Iterable[Sequence], align: str = "", indent: str = "", rules: Iterable[int] = ()) -> str:
    """``rows`` of cells (anything ``str()`` accepts) as lines of text, trailing spaces stripped.

    ``align`` has one letter per column, ``l`` (the default for missing letters) or ``r``; a right-aligned
    last cell is padded so its column lines up. ``rules`` are row indices before which a line of dashes
    as wide as the widest line is inserted (``rules=(1,)`` underlines a header row)."""
    rows = [[str(c) for c in r] for r in rows]
    if not rows:
        return ""
    ncol = max(len(r) for r in rows)
    align = align.ljust(ncol, "l")
    widths = [0] * ncol
    for r in rows:
        for i, c in enumerate(r):
            if i < len(r) - 1 or align[i] == "r":
                widths[i] = max(widths[i], len(c))

    def cell(i: int, c: str, last: bool) -> str:
        if align[i] == "r":
            return c.rjust(widths[i])
        return c if last else c.ljust(widths[i])

    lines = [(indent + "  ".join(cell(i, c, i == len(r) - 1) for i, c in enumerate(r))).rstrip() for r in rows]
    if rules:
        rule = indent + "-" * max(len(line) - len(indent) for line in lines)
        for at in sorted(set(rules), reverse=True):
            lines.insert(at, rule)
    return "\n".join(lines)
