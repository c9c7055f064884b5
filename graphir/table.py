"""The one fixed-width table formatter (CLI reports, pass statistics, tuning summaries)."""
from __future__ import annotations

from typing import Optional, Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence], *, align: str = "",
                 footer: Optional[Sequence] = None, rule: str = "-") -> str:
    """Columns padded to their widest cell, two spaces apart; ``align`` is one ``l``/``r`` per column
    (default: first column left, the rest right). A rule goes under the header and above the footer.
    Trailing spaces are stripped; the result ends with a newline."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    if footer is not None:
        cells.append([str(c) for c in footer])
    n = len(header)
    align = (align or "l" + "r" * (n - 1)).ljust(n, "r")
    w = [max(len(r[i]) for r in cells) for i in range(n)]

    def line(r):
        return "  ".join(c.ljust(w[i]) if align[i] == "l" else c.rjust(w[i]) for i, c in enumerate(r)).rstrip()

    lines = [line(r) for r in cells]
    sep = rule * max(len(x) for x in lines)
    lines.insert(1, sep)
    if footer is not None:
        lines.insert(len(lines) - 1, sep)
    return "\n".join(lines) + "\n"
