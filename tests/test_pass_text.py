"""Text tests for the passes: tests/passes/<pass-name>.gir, one file per pass, MLIR lit/FileCheck style.

A file holds cases separated by a line ``// -----``. Each case is a ``graph @... { ... }`` in the text IR
plus comment directives::

    // RUN: fold-constants,cse{opt=value}     the pipeline to run (required, exactly one)
    // CHECK: text                            found at or after the end of the previous match
    // CHECK-NEXT: text                       found on the line right after the previous match
    // CHECK-SAME: text                       found on the previous match's line, after it
    // CHECK-NOT: text                        absent between the neighbouring matches (or to the end)
    // CHECK-UNCHANGED                        a negative case: the pipeline must not change the printed IR
    // TOLERANCE: rtol atol                   for the numeric comparison (default 1e-5 1e-6)
    // XFAIL: reason                          a known bug: the case must fail until the bug is fixed,
    // FAILS-WITH: text                         with this text in the error (required with XFAIL)

Patterns are plain substrings (surrounding blanks ignored). For every case the runner also checks that
the input and the output verify, that the output re-parses and re-prints to the same text, that running
the pipeline again changes nothing, that a case without CHECK-UNCHANGED does change the IR, and that the
input and output graphs compute the same values in TensorFlow.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from conftest import parse_ir, print_ir, run_both, run_pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
PASS_DIR = os.path.join(HERE, "passes")
SEPARATOR = "// -----"
_DIRECTIVE = re.compile(r"^\s*//\s*(RUN|CHECK|CHECK-NEXT|CHECK-SAME|CHECK-NOT|CHECK-UNCHANGED|TOLERANCE|XFAIL"
                        r"|FAILS-WITH)(?::\s?(.*?))?\s*$")


@dataclass
class Check:
    kind: str      # CHECK, CHECK-NEXT, CHECK-SAME, CHECK-NOT
    pattern: str
    line: int      # 1-based line in the .gir file


@dataclass
class Case:
    path: str
    first_line: int          # 1-based line of the case's first line in the file
    text: str                # the case, preceded by blank lines so parser positions are file positions
    pipeline: str = ""
    checks: list = field(default_factory=list)
    unchanged: bool = False
    rtol: float = 1e-5
    atol: float = 1e-6
    xfail: str = ""
    fails_with: str = ""

    @property
    def id(self) -> str:
        return f"{os.path.basename(self.path)}:{self.first_line}"


class CheckFailure(AssertionError):
    pass


def read_cases(path: str) -> list[Case]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    cases, start = [], 0
    for i in range(len(lines) + 1):
        if i == len(lines) or lines[i].strip() == SEPARATOR:
            body = lines[start:i]
            if any(ln.strip() for ln in body):
                cases.append(_case(path, start, body))
            start = i + 1
    return cases


def _case(path: str, start: int, body: list[str]) -> Case:
    c = Case(path, start + 1, "\n" * start + "\n".join(body))
    for k, ln in enumerate(body):
        m = _DIRECTIVE.match(ln)
        if not m:
            continue
        kind, arg, where = m.group(1), (m.group(2) or "").strip(), f"{path}:{start + k + 1}"
        if kind == "RUN":
            if c.pipeline:
                raise ValueError(f"{where}: a case has one RUN line")
            c.pipeline = arg
        elif kind == "CHECK-UNCHANGED":
            c.unchanged = True
        elif kind == "TOLERANCE":
            c.rtol, c.atol = (float(x) for x in arg.split())
        elif kind == "XFAIL":
            c.xfail = arg or "known bug"
        elif kind == "FAILS-WITH":
            c.fails_with = arg
        else:
            if not arg:
                raise ValueError(f"{where}: empty {kind} pattern")
            c.checks.append(Check(kind, arg, start + k + 1))
    if not c.pipeline:
        raise ValueError(f"{path}:{start + 1}: case without a '// RUN: <pipeline>' line")
    if bool(c.xfail) != bool(c.fails_with):
        raise ValueError(f"{path}:{start + 1}: XFAIL and FAILS-WITH go together")
    if c.unchanged and c.checks:
        raise ValueError(f"{path}:{start + 1}: CHECK-UNCHANGED says it all; drop the CHECK lines")
    if not c.unchanged and not c.checks:
        raise ValueError(f"{path}:{start + 1}: case without CHECK lines")
    return c


def filecheck(output: str, checks: list[Check], where: str = "") -> None:
    """FileCheck's core: ordered substring matches with CHECK-NEXT/SAME/NOT. Raises CheckFailure."""
    lines = output.split("\n")
    line, col = 0, 0          # where the next search starts
    prev = None               # line index of the previous positive match
    nots: list[Check] = []

    def fail(chk: Check, msg: str, at: int):
        shown = "\n".join(f"{'>>' if i == at else '  '} {i + 1:3d} | {s}" for i, s in enumerate(lines))
        raise CheckFailure(f"{where}:{chk.line}: {chk.kind}: {chk.pattern!r} {msg}\noutput:\n{shown}")

    def check_nots(l0, c0, l1, c1):
        for chk in nots:
            for i in range(l0, min(l1, len(lines) - 1) + 1):
                s = lines[i][c0 if i == l0 else 0: c1 if i == l1 else None]
                if chk.pattern in s:
                    fail(chk, "found where it must not be", i)
        nots.clear()

    for chk in checks:
        if chk.kind == "CHECK-NOT":
            nots.append(chk)
            continue
        if chk.kind == "CHECK":
            for i in range(line, len(lines)):
                j = lines[i].find(chk.pattern, col if i == line else 0)
                if j >= 0:
                    break
            else:
                fail(chk, "not found" + (f" after line {prev + 1}" if prev is not None else ""),
                     prev if prev is not None else -1)
        else:
            if prev is None:
                fail(chk, "has no previous match to follow", -1)
            i = prev + 1 if chk.kind == "CHECK-NEXT" else prev
            j = lines[i].find(chk.pattern, 0 if chk.kind == "CHECK-NEXT" else col) if i < len(lines) else -1
            if j < 0:
                fail(chk, "not found on " + ("the next line" if chk.kind == "CHECK-NEXT" else "the same line"), i)
        check_nots(line, col, i, j)
        prev, line, col = i, i, j + len(chk.pattern)
    check_nots(line, col, len(lines) - 1, None)


def run_case(case: Case) -> str:
    """Everything a case promises; returns the output text."""
    g = parse_ir(case.text, case.path)
    g.verify()
    before = print_ir(g)
    out = run_pipeline(g, case.pipeline)
    text = print_ir(out)
    if case.unchanged:
        assert text == before, f"{case.id}: expected no change from {case.pipeline!r}, got:\n{text}"
    else:
        assert text != before, f"{case.id}: {case.pipeline!r} changed nothing; the case tests no rewrite"
        filecheck(text, case.checks, case.path)
    assert print_ir(parse_ir(text, f"{case.id} (output)")) == text, f"{case.id}: output does not round-trip"
    again = print_ir(run_pipeline(out, case.pipeline))
    assert again == text, f"{case.id}: {case.pipeline!r} is not idempotent; second run gave:\n{again}"
    a, b = run_both(g, out, seed=1)
    assert len(a) == len(b)
    for p, x, y in zip(g.outputs, a, b):
        assert x.dtype == y.dtype and x.shape == y.shape, (case.id, p.name, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_allclose(y, x, rtol=case.rtol, atol=case.atol, err_msg=f"{case.id}: output {p.name}")
    return text


def _files() -> list[str]:
    return sorted(glob.glob(os.path.join(PASS_DIR, "*.gir")))


def _params():
    return [pytest.param(c, id=c.id) for path in _files() for c in read_cases(path)]


@pytest.mark.parametrize("case", _params())
def test_case(case):
    if not case.xfail:
        run_case(case)
        return
    # A known bug: it must still fail, and the way it is known to (any other failure is a new problem).
    try:
        run_case(case)
    except Exception as e:
        if case.fails_with not in " ".join(str(e).split()):
            raise
        pytest.xfail(case.xfail)
    pytest.fail(f"{case.id} passes now: the bug ({case.xfail}) looks fixed; drop its XFAIL lines")


def test_every_pass_has_a_text_test_with_positive_and_negative_cases():
    from graphir.transforms.pass_manager import known_passes

    names = {os.path.basename(p)[:-4]: p for p in _files()}
    missing = sorted(set(known_passes()) - set(names))
    assert not missing, f"passes without tests/passes/<name>.gir: {missing}"
    assert not set(names) - set(known_passes()), f"tests for unknown passes: {sorted(set(names) - set(known_passes()))}"
    for name, path in names.items():
        cases = read_cases(path)
        alone = [c for c in cases if re.fullmatch(rf"{re.escape(name)}(\{{[^{{}}]*\}})?", c.pipeline.strip())]
        assert any(not c.unchanged and not c.xfail for c in alone), f"{path}: no case runs {name} alone and rewrites"
        assert any(c.unchanged for c in alone), f"{path}: no negative case (CHECK-UNCHANGED) running {name} alone"


# ----------------------------------------------------------------------- the checker checks itself
OUT = "graph @main {\n  %a = tf.X(%x)\n  %b = tf.Y(%a)\n  %c = tf.Z(%b)\n}\n"


@pytest.mark.parametrize("checks,ok", [
    ([("CHECK", "%a ="), ("CHECK-NEXT", "%b ="), ("CHECK-SAME", "tf.Y(%a)")], True),
    ([("CHECK", "%a ="), ("CHECK-NOT", "tf.Y"), ("CHECK", "%c")], False),     # NOT between matches
    ([("CHECK", "tf.X(%x)"), ("CHECK-NOT", "tf.X"), ("CHECK", "%c")], True),  # before the region
    ([("CHECK", "%b ="), ("CHECK-NOT", "%a")], False),                         # NOT up to the end
    ([("CHECK", "%a ="), ("CHECK-NEXT", "%c =")], False),                      # not the next line
    ([("CHECK", "%b ="), ("CHECK", "%a =")], False),                           # order matters
    ([("CHECK", "%a"), ("CHECK", "%a")], True),                                # second %a is in %b's line
    ([("CHECK", "tf.Z"), ("CHECK-SAME", "%c")], False),                        # SAME looks right of the match
    ([("CHECK-NEXT", "%a")], False),
])
def test_filecheck(checks, ok):
    cs = [Check(k, p, i + 1) for i, (k, p) in enumerate(checks)]
    if ok:
        filecheck(OUT, cs)
    else:
        with pytest.raises(CheckFailure):
            filecheck(OUT, cs)


def test_case_reader(tmp_path):
    p = tmp_path / "x.gir"
    p.write_text("// RUN: cse\n// CHECK: a\ngraph @g {}\n// -----\n\n// RUN: dce{drop_pure_controls=0}\n"
                 "// CHECK-UNCHANGED\n// TOLERANCE: 1e-2 1e-3\n// XFAIL: bug 1\n// FAILS-WITH: boom\ngraph @g {}\n")
    a, b = read_cases(str(p))
    assert (a.pipeline, a.first_line, [c.kind for c in a.checks], a.unchanged) == ("cse", 1, ["CHECK"], False)
    assert (b.pipeline, b.first_line, b.unchanged, b.rtol, b.atol, b.xfail, b.fails_with) == \
        ("dce{drop_pure_controls=0}", 5, True, 1e-2, 1e-3, "bug 1", "boom")
    assert b.text.startswith("\n" * 4)  # parse errors point at lines of the file
    p.write_text("// CHECK: a\ngraph @g {}\n")
    with pytest.raises(ValueError, match="RUN"):
        read_cases(str(p))
