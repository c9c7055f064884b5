"""The ``graphir`` command line: bad input, quiet output, compile round trips.

Most cases run as a real subprocess; a few that would each cost another TensorFlow import run
``graphir.cli.main`` in-process instead (same exit codes and stderr lines).
"""
import hashlib
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_PB = os.path.join(ROOT, "examples", "digits", "digits_cnn.pb")
DIGITS_NPZ = os.path.join(ROOT, "examples", "digits", "digits_test.npz")


def graphir(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GRAPHIR_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "graphir", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def graphir_inproc(capsys, *args, cwd):
    from graphir.cli import main

    capsys.readouterr()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main([str(a) for a in args])
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def snapshot(d):
    """{relative path: sha256} of every file under ``d`` (temp files included)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def assert_one_line_error(r, *needles, code=2):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("graphir: error: "), lines[0]
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _digits_bytes():
    with open(DIGITS_PB, "rb") as f:
        return f.read()


BAD_MODELS = {
    # name: (files to create relative to tmp dir, the MODEL argument, words the error must contain)
    # (random bytes and truncated files import TF; the others fail before that)
    "missing": ({}, "nope.pb", ["nope.pb", "no such file"]),
    "empty": ({"empty.pb": b""}, "empty.pb", ["empty.pb", "empty"]),
    "dir-without-saved-model": ({"sm/variables/x": b"x"}, "sm", ["sm", "saved_model.pb"]),
    "random-bytes": ({"rand.pb": np.random.default_rng(0).bytes(4096)}, "rand.pb", ["rand.pb", "GraphDef"]),
    "truncated": ({"trunc.pb": None}, "trunc.pb", ["trunc.pb"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_is_one_line_exit_2_no_output(tmp_path, capsys, case):
    files, model, needles = BAD_MODELS[case]
    for rel, data in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_digits_bytes()[: len(_digits_bytes()) * 2 // 3] if data is None else data)
    before = snapshot(tmp_path)
    if case == "truncated":
        r = graphir_inproc(capsys, "compile", model, "-o", "out.pb", cwd=tmp_path)
    else:
        r = graphir("compile", model, "-o", "out.pb", cwd=tmp_path)
    assert_one_line_error(r, *needles)
    assert snapshot(tmp_path) == before  # input unchanged, no output, no temp file left


def test_unknown_output_name(tmp_path, capsys):
    model = tmp_path / "digits.pb"
    model.write_bytes(_digits_bytes())
    before = snapshot(tmp_path)
    r = graphir_inproc(capsys, "compile", model, "-o", tmp_path / "out.pb", "--outputs", "no_such_node", cwd=tmp_path)
    assert_one_line_error(r, "no_such_node")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args,needle", [
    (["--format", "tflite"], "--format"),
    (["--target", "tpu"], "--target"),
    (["--precisions", "int8"], "--precisions: 'int8' is not one of bf16, fp32"),
    (["--outputs", "a b"], "--outputs"),
    (["--dim", "0"], "--dim"),                      # used to reach TF and fail with its error text
    (["--dim", "x"], "invalid int value: 'x'"),     # argparse errors are one line too
])
def test_bad_options_fail_before_loading(tmp_path, args, needle):
    model = tmp_path / "digits.pb"
    model.write_bytes(_digits_bytes())
    before = snapshot(tmp_path)
    r = graphir("compile", model, "-o", tmp_path / "out.pb", *args, cwd=tmp_path)
    assert_one_line_error(r, needle)
    assert snapshot(tmp_path) == before


def test_output_over_input_is_refused(tmp_path):
    model = tmp_path / "digits.pb"
    model.write_bytes(_digits_bytes())
    before = snapshot(tmp_path)
    r = graphir("compile", model, "-o", model, cwd=tmp_path)
    assert_one_line_error(r, "overwrite")
    assert snapshot(tmp_path) == before


def test_unknown_op_passes_through(tmp_path):
    from tensorflow.core.framework import graph_pb2, types_pb2

    gd = graph_pb2.GraphDef()
    x = gd.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = types_pb2.DT_FLOAT
    c = gd.node.add(name="custom", op="MyCustomOp", input=["x"])
    c.attr["T"].type = types_pb2.DT_FLOAT
    c.attr["magic"].i = 42
    gd.node.add(name="y", op="Identity", input=["custom"]).attr["T"].type = types_pb2.DT_FLOAT
    model = tmp_path / "custom.pb"
    model.write_bytes(gd.SerializeToString())
    r = graphir("compile", model, "-o", tmp_path / "out.pb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warn, wrote = r.stderr.splitlines()
    assert warn == "graphir: warning: verification skipped: cannot run the original model: this TensorFlow has no op MyCustomOp"
    assert "; not verified) in " in wrote
    out = graph_pb2.GraphDef.FromString((tmp_path / "out.pb").read_bytes())
    custom = [n for n in out.node if n.op == "MyCustomOp"]
    assert len(custom) == 1 and custom[0].attr["magic"].i == 42 and custom[0].attr["T"].type == types_pb2.DT_FLOAT
    assert list(custom[0].input) == ["x"]
    assert any(n.op == "Placeholder" and n.name == "x" for n in out.node)


def test_dump_is_quiet_and_stable(tmp_path):
    runs = [graphir("dump", DIGITS_PB, cwd=tmp_path) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.startswith("graph @")
    assert '"input" = %input' in runs[0].stdout and '"probs" = %probs' in runs[0].stdout


def test_dump_with_a_function_library_is_stable_across_processes(tmp_path, tf2_functional_gd):
    # Protobuf map order varies from process to process; the library blob must still print the same.
    path = tmp_path / "tf2.pb"
    path.write_bytes(tf2_functional_gd.SerializeToString())
    runs = [graphir("dump", str(path), cwd=tmp_path) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert "tf.library = " in runs[0].stdout and runs[0].stdout == runs[1].stdout


def _accuracy_and_probs(graph):
    from graphir.runtime_check.runner import Runner

    d = np.load(DIGITS_NPZ)
    (probs,) = Runner(graph)({graph.inputs[0].name: d["x"]})
    return float(np.mean(np.argmax(probs, -1) == d["y"])), probs


@pytest.mark.slow
@pytest.mark.parametrize("fmt,name,inproc", [("pb", "o.pb", False), ("pbtxt", "o.pbtxt", True),
                                             ("saved_model", "o_sm", False), ("gir", "o.gir", True)])
def test_compile_digits_round_trip(tmp_path, capsys, fmt, name, inproc):
    import graphir as gi

    before = snapshot(os.path.dirname(DIGITS_PB))
    args = ("compile", DIGITS_PB, "-o", tmp_path / name, "--format", fmt)
    r = graphir_inproc(capsys, *args, cwd=tmp_path) if inproc else graphir(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"graphir: wrote {tmp_path / name} (") and r.stderr.count("\n") == 1, r.stderr
    assert snapshot(os.path.dirname(DIGITS_PB)) == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".graphir-")] == []
    orig = gi.load(DIGITS_PB)
    out = gi.load(str(tmp_path / name))
    assert [p.name for p in out.inputs] == ["input"] and [p.name for p in out.outputs] == ["probs"]
    acc0, p0 = _accuracy_and_probs(orig)
    acc1, p1 = _accuracy_and_probs(out)
    assert acc1 == acc0
    np.testing.assert_allclose(p1, p0, rtol=1e-4, atol=1e-5)


def test_verify_refuses_mismatch_and_no_verify_writes(tmp_path, capsys):
    import tensorflow as tf

    # Unseeded random op: two runs never agree, so --verify must refuse to write the result.
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(x + tf.random.uniform([4]), name="y")
    model = tmp_path / "rand.pb"
    model.write_bytes(g.as_graph_def().SerializeToString())
    before = snapshot(tmp_path)
    r = graphir_inproc(capsys, "compile", model, "-o", tmp_path / "out.pb", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith("graphir: error: verification failed") and "'y'" in last and "--no-verify" in last
    assert "Traceback" not in r.stderr
    assert snapshot(tmp_path) == before
    r = graphir_inproc(capsys, "compile", model, "-o", tmp_path / "out.pb", "--no-verify", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.pb").stat().st_size > 0


def test_env_and_usage(capsys):
    from graphir.cli import main

    from graphir.runtime_check.target import cpu_bf16_features, tf_version

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"tensorflow: {tf_version()}" in out and "oneDNN: " in out
    # The CPU line lists exactly the features detected (or says none), not just a label containing "bf16".
    (cpu,) = [ln for ln in out.splitlines() if ln.startswith("cpu bf16:")]
    assert cpu.split(":", 1)[1].strip() == (", ".join(cpu_bf16_features()) or "none")
    # The fused kernels available here are listed, each with its dtype.
    assert "fused kernels for the native target" in out and "Conv2D f32: _FusedConv2D: BiasAdd" in out
    # What ONNX export accepts here: the op set range the onnx package knows, and how many TF ops convert.
    import onnx

    from graphir.transforms.tf_to_onnx import CONVERTERS

    assert f"op sets 13 to {onnx.defs.onnx_opset_version()} (default 17), {len(CONVERTERS)} TF ops convert" in out
    assert main([]) == 2
    with pytest.raises(SystemExit) as e:
        main(["compile"])  # argparse: missing MODEL and -o
    assert e.value.code == 2


def test_abbreviated_dump_is_a_clear_error(tmp_path, capsys):
    import graphir as gi

    gir = tmp_path / "short.gir"
    gir.write_text(gi.load(DIGITS_PB).text())  # digests instead of the big weights
    before = snapshot(tmp_path)
    for args in (["compile", gir, "-o", tmp_path / "out.pb"], ["compile", gir, "-o", tmp_path / "o.gir", "--no-verify"],
                 ["check", gir, DIGITS_PB]):
        r = graphir_inproc(capsys, *args, cwd=tmp_path)
        assert_one_line_error(r, "short.gir: abbreviated dump", "--full-constants")
        assert snapshot(tmp_path) == before


def test_tf_runtime_error_names_the_cause():
    import tensorflow as tf

    import graphir as gi
    from graphir.errors import GraphirError
    from graphir.runtime_check.check import check_graphs

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.reshape(x, tf.shape(x)[:1] * 3, name="y")  # fails at run time only: 4 * 4 elements into 12
    graph = gi.load(g.as_graph_def())
    with pytest.raises(GraphirError) as e:
        check_graphs(graph, graph, dim=4)
    msg = str(e.value)
    assert "\n" not in msg and "Graph execution error" not in msg and "reshape" in msg.lower(), msg


def test_explicit_precisions_beat_the_config(tmp_path, capsys):
    # --precisions fp32 used to be indistinguishable from the default, so the YAML's bf16 always won.
    conf = os.path.join(ROOT, "examples", "graph_optimization.yaml")
    r = graphir_inproc(capsys, "compile", DIGITS_PB, "-o", tmp_path / "o.pb", "--config", conf, "--precisions", "fp32",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "tuning" not in r.stderr and "fp32 baseline" in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith(f"graphir: wrote {tmp_path / 'o.pb'} (") and " fp32; verified on " in r.stderr


@pytest.mark.parametrize("kw,needle", [
    (dict(inputs=["input", "input"]), "input 'input' given twice"),        # used to break SavedModel export
    (dict(inputs=["input:0", "input"]), "are the same tensor"),
    (dict(outputs=["probs", "probs"]), "output 'probs' given twice"),
    # used to pass loading and fail later in TF with "You must feed a value for placeholder"
    (dict(inputs=["digits_cnn_1/flatten_1/Shape:0"], outputs=["probs"]), "still depend on input 'input'"),
])
def test_signature_mistakes_are_load_errors(kw, needle):
    import graphir as gi

    with pytest.raises(gi.ModelLoadError, match=needle):
        gi.load(DIGITS_PB, **kw)


@pytest.mark.parametrize("exc,needle", [
    ("internal", "IR invalid after pass 'cse': dangling value"),
    ("unexpected", "KeyError: 'boom'"),
])
def test_bugs_exit_3_with_one_line(monkeypatch, capsys, exc, needle):
    from graphir import cli
    from graphir.errors import InternalError

    error = InternalError("IR invalid after pass 'cse':\n  dangling value") if exc == "internal" else KeyError("boom")

    def broken(a):
        raise error

    monkeypatch.setattr(cli, "cmd_env", broken)  # a command with a bug in it
    monkeypatch.delenv("GRAPHIR_DEBUG", raising=False)
    capsys.readouterr()
    assert cli.main(["env"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("graphir: internal error: ") and needle in err[0], err
    assert err[0].endswith("; rerun with GRAPHIR_DEBUG=1 for a traceback")
    monkeypatch.setenv("GRAPHIR_DEBUG", "1")
    with pytest.raises(type(error)):
        cli.main(["env"])
