"""``graphir bench`` and ``compile --measure``: structure, JSON schema and exit codes (never timing values)."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import graphir
from graphir.errors import GraphirError
from graphir.runtime_check.bench import bench_graphs, speedup_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_PB = os.path.join(ROOT, "examples", "digits", "digits_cnn.pb")


def cli(capsys, *args):
    from graphir.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return SimpleNamespace(code=code, out=out, err=err, lines=err.splitlines())


@pytest.fixture(scope="module")
def digits_opt(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "digits_opt.pb"
    graphir.compile(DIGITS_PB).save(str(path))
    return str(path)


def test_speedup_ci_is_the_ratio_of_medians_with_a_paired_bootstrap():
    rng = np.random.default_rng(0)
    base = 2.0 + rng.random(50) * 0.1
    assert speedup_ci(base, base / 2) == (pytest.approx(2.0), (pytest.approx(2.0), pytest.approx(2.0)))
    other = base / 2 * (1 + rng.normal(0, 0.05, 50))
    ratio, (lo, hi) = speedup_ci(base, other)
    assert ratio == pytest.approx(np.median(base) / np.median(other))
    assert lo < ratio < hi and hi - lo < 0.2
    assert speedup_ci(base, other) == speedup_ci(base, other)  # seeded
    assert speedup_ci([3.0], [1.0]) == (3.0, (3.0, 3.0))


def test_bench_graphs_report(digits_opt):
    graphs = [graphir.load(DIGITS_PB), graphir.load(digits_opt)]
    rep = bench_graphs(graphs, ["orig", "opt"], seconds=0.2, min_rounds=5, batch_size=3, threads=1,
                       grappler_amp=True, progress=False)
    assert [r.label for r in rep.rows] == ["orig", "orig + grappler AMP", "opt"]
    assert rep.rounds >= 5 and all(len(r.times) == rep.rounds for r in rep.rows)
    assert rep.rows[0].speedup == 1.0
    for r in rep.rows:
        assert 0 < r.min_ms <= r.median_ms and math.isfinite(r.speedup) and r.ci[0] <= r.speedup <= r.ci[1]
    assert rep.inputs == "random inputs input:3x8x8x1, seed 0" and rep.batch_size == 3
    lines = rep.table().splitlines()
    assert lines[0].split() == ["model", "median", "ms", "min", "ms", "speedup", "vs", "first", "(95%", "CI)"]
    assert [ln.split()[0] for ln in lines[2:5]] == ["orig", "orig", "opt"]
    assert lines[-1].startswith(f"{rep.rounds} interleaved rounds in ")


def test_bench_cli_json_and_npz(digits_opt, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", input=np.load(os.path.join(ROOT, "examples", "digits", "digits_test.npz"))["x"])
    r = cli(capsys, "bench", DIGITS_PB, digits_opt, "--seconds", "0.2", "--json", "--threads", "1",
            "--inputs-npz", tmp_path / "in.npz", "--batch-size", "16")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert set(doc) == {"rows", "rounds", "seconds", "warmup", "batch_size", "threads", "inputs", "input_shapes",
                        "tensorflow"}
    assert [row["model"] for row in doc["rows"]] == [DIGITS_PB, digits_opt]
    for row in doc["rows"]:
        assert set(row) == {"model", "median_ms", "min_ms", "speedup", "speedup_ci95", "runs"}
        assert row["runs"] == doc["rounds"] >= 5 and math.isfinite(row["speedup"]) and len(row["speedup_ci95"]) == 2
    assert doc["inputs"] == "inputs from in.npz input:16x8x8x1" and doc["threads"] == 1
    assert "graphir: bench: " in r.err  # progress goes to stderr, the result alone to stdout


def test_compile_measure_prints_the_speedup(tmp_path, capsys):
    r = cli(capsys, "compile", DIGITS_PB, "-o", tmp_path / "o.pb", "--measure", "--measure-seconds", "0.2", "--stats")
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if ln.startswith("measured speed-up of "))
    assert f"of {tmp_path / 'o.pb'} over {DIGITS_PB}: " in line and "x (95% CI " in line
    assert "rounds on random inputs input:1x8x8x1, seed 0" in line
    table = r.out.split("phase ", 1)[1].split("total")[0]
    phases = [ln.split()[0] for ln in table.splitlines()[1:] if not ln.startswith("-")] + ["total"]
    assert phases == ["tf", "load", "verify", "passes", "measure", "save", "total"]


@pytest.mark.parametrize("args,needle", [
    (["nope.pb", DIGITS_PB], "nope.pb: no such file or directory"),
    ([DIGITS_PB], "give at least two models"),
    ([DIGITS_PB, DIGITS_PB, "--input-shapes", "input:1x8"], "input 'input' has shape ?x8x8x1; 1x8 does not fit it"),
    ([DIGITS_PB, DIGITS_PB, "--input-shapes", "input:1xx8"], "--input-shapes: 'input:1xx8'"),
    ([DIGITS_PB, DIGITS_PB, "--seconds", "0"], "--seconds must be > 0"),
    ([DIGITS_PB, DIGITS_PB, "--inputs-npz", "missing.npz"], "missing.npz: no such inputs file"),
])
def test_bad_bench_input_is_one_line_exit_2(args, needle, capsys):
    r = cli(capsys, "bench", *args, "--seconds" if "--seconds" not in args else "--quiet",
            *(["0.1"] if "--seconds" not in args else []))
    assert r.code == 2 and len(r.lines) == 1 and r.lines[0].startswith("graphir: error: "), r.err
    assert needle in r.lines[0], r.lines[0]


def test_measure_of_a_model_that_cannot_run_is_an_error_and_writes_nothing(tmp_path, capsys):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():  # rows of 147 = 7*7*3: no size that graphir tries runs
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="x")
        tf.identity(tf.reshape(x, [-1, 147]) * 2.0, name="y")
    model = tmp_path / "m.pb"
    model.write_bytes(g.as_graph_def().SerializeToString())
    r = cli(capsys, "compile", model, "-o", tmp_path / "o.pb", "--no-verify", "--measure", "--measure-seconds", "0.1")
    assert r.code == 2 and len(r.lines) == 1 and "give --input-shapes x:1xNxNx3" in r.lines[0], r.err
    assert not (tmp_path / "o.pb").exists()


def test_models_with_different_inputs_are_refused(tmp_path, capsys):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name="pixels")
        tf.identity(x * 2.0, name="y")
    other = tmp_path / "other.pb"
    other.write_bytes(g.as_graph_def().SerializeToString())
    r = cli(capsys, "bench", DIGITS_PB, other, "--seconds", "0.1")
    assert r.code == 2 and len(r.lines) == 1
    assert f"{other}: inputs (pixels) differ from {DIGITS_PB}'s (input)" in r.lines[0]
    with pytest.raises(GraphirError, match="differ"):
        bench_graphs([graphir.load(DIGITS_PB), graphir.load(str(other))], seconds=0.1, progress=False)
