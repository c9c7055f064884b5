"""What the tuner shows: a progress line while trials run and the summary table at the end."""
from __future__ import annotations

from typing import Optional

from ..errors import one_line
from ..table import format_table
from .candidates import precision_of


class Progress:
    """A one-line text bar on a tty (redrawn in place), otherwise one line per trial."""

    def __init__(self, stream, total: Optional[int] = None, enabled: bool = True):
        self.stream, self.total, self.enabled = stream, total, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._open = False

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        width = 20
        if self.total:
            self.total = max(self.total, done)
            fill = int(width * done / self.total)
        else:
            fill = 0
        line = f"tuning [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total or '?'} {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def trial_text(rec: dict, metric_name: str, cached: bool) -> str:
    """A trial's part of the progress line: its metric, the verdict and its fp32 fallbacks."""
    fb = one_line(", ".join(rec["fp32_ops"]) or "none", 40)
    status = "meets" if rec["meets"] else "misses"
    return f"{metric_name}={rec['metric']:.4g} ({status}; fp32: {fb}){' [history]' if cached else ''}"


def summary_table(result, metric_name: str, crit) -> str:
    """The final table: the fp32 baseline against the best candidate (a :class:`~.search.TuningResult`)."""
    best = result.best
    bf16, fp32 = precision_of(result.model)
    cached = f", {result.cached} from history" if result.cached else ""
    rows = [
        ("", "fp32 baseline", "best candidate"),
        (metric_name, f"{result.baseline:.6g}",
         f"{best['metric']:.6g} ({'meets' if result.met else 'MISSES'} the criterion)"),
        ("ops bf16 / fp32", f"0 / {len(bf16) + len(fp32)}", f"{len(bf16)} / {len(fp32)}"),
        ("fp32 fallbacks", "-", ", ".join(best["fp32_ops"]) or "none"),
        ("trials", f"{result.trials}{cached} in {result.seconds:.1f} s; {result.stop_reason}"),
    ]
    return f"graphir: tuning summary ({metric_name}; {crit.text()})\n" + format_table(rows, indent="  ")
