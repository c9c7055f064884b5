"""Models with unknown spatial sizes: --input-shapes, sizes found by trying, and compiling what cannot run.

The fully convolutional model has three VALID 3x3 convolutions on a ``[?, ?, ?, 3]`` input: at the old
default size 4 the first output would be 2x2 and the third negative, so it only runs from 7x7 up.
"""
import os
from types import SimpleNamespace

import numpy as np
import pytest

import graphir
from graphir.errors import ConfigError
from graphir.runtime_check.runner import Runner
from graphir.runtime_check.shapes import parse_input_shapes, resolve_input_shapes


@pytest.fixture(scope="module")
def fcn_pb(tmp_path_factory):
    import keras

    from graphir.backends.tf import to_graph_def

    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = inp = keras.Input((None, None, 3), name="image")
    for i, ch in enumerate((8, 16, 16)):
        x = keras.layers.Conv2D(ch, 3, padding="valid", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    out = keras.layers.Softmax(name="prob")(keras.layers.Conv2D(2, 1, name="head")(x))
    model = keras.Model(inp, out)
    for layer in model.layers:  # trained-like statistics, so folding them is a real change
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 1.5, n)])
    path = tmp_path_factory.mktemp("fcn") / "fcn.pb"
    path.write_bytes(to_graph_def(graphir.load(model)).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def reshape_pb(tmp_path_factory):
    """[?, ?, ?, 3] reshaped to rows of 147 = 7*7*3: no square size but multiples of 7 runs."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="x")
        w = tf.constant(np.random.default_rng(3).standard_normal((147, 4)).astype(np.float32))
        tf.identity(tf.matmul(tf.reshape(x, [-1, 147]), w), name="y")
    path = tmp_path_factory.mktemp("reshape") / "reshape.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return str(path)


def cli(capsys, *args):
    from graphir.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return SimpleNamespace(code=code, out=out, err=err, lines=err.splitlines())


# ---------------------------------------------------------------------------------------------- parsing
def test_parse_input_shapes():
    assert parse_input_shapes("image:1x240x240x3, mask:1x240x240") == {"image": (1, 240, 240, 3),
                                                                       "mask": (1, 240, 240)}
    assert parse_input_shapes("x:0:2x3") == {"x:0": (2, 3)}            # a tensor name
    assert parse_input_shapes("n:scalar,m:") == {"n": (), "m": ()}
    assert parse_input_shapes("8x8x1") == {"": (8, 8, 1)}               # the only input
    assert parse_input_shapes({"a": [1, 2], "b": "3x4"}) == {"a": (1, 2), "b": (3, 4)}
    assert parse_input_shapes(None) == {}


@pytest.mark.parametrize("spec,needle", [
    ("image:1xax3", "'image:1xax3': expected NAME:DxDx..."),
    ("image:1x0x3", "sizes must be >= 1"),
    (":1x2", "empty input name"),
    ("a:1,a:2", "input 'a' given twice"),
    (",", "empty"),
    ("image:1x-2", "expected NAME:DxDx..."),
])
def test_bad_specs_are_one_line_config_errors(spec, needle):
    with pytest.raises(ConfigError) as e:
        parse_input_shapes(spec)
    assert str(e.value).startswith("--input-shapes: ") and needle in str(e.value) and "\n" not in str(e.value)


def test_resolve_against_the_graph(fcn_pb):
    g = graphir.load(fcn_pb)
    assert resolve_input_shapes(g, "image:2x9x10x3") == {"image": (2, 9, 10, 3)}
    assert resolve_input_shapes(g, "image:0:1x9x9x3") == {"image": (1, 9, 9, 3)}  # its tensor name
    assert resolve_input_shapes(g, "1x9x9x3") == {"image": (1, 9, 9, 3)}
    with pytest.raises(ConfigError, match=r"'nope' is not an input of the model \(inputs: image\)"):
        resolve_input_shapes(g, "nope:1x9x9x3")
    with pytest.raises(ConfigError, match=r"input 'image' has shape \?x\?x\?x3; 1x9x9x4 does not fit it"):
        resolve_input_shapes(g, "image:1x9x9x4")
    with pytest.raises(ConfigError, match="does not fit"):
        resolve_input_shapes(g, "image:1x9x9")


# ---------------------------------------------------------------------------------------------- compile
def test_fcn_compiles_with_defaults_and_is_verified(fcn_pb, tmp_path, capsys):
    out = tmp_path / "fcn_opt.pb"
    r = cli(capsys, "compile", fcn_pb, "-o", out)
    assert r.code == 0, r.err
    # Verified, at batch 1 and the first size the convolutions accept among those tried (8).
    assert len(r.lines) == 1 and "verified on random inputs image:1x8x8x3, seed 0" in r.lines[0], r.err
    orig, opt = graphir.load(fcn_pb), graphir.load(str(out))
    assert opt.inputs[0].value.shape.dims == (None, None, None, 3)  # still takes any size
    assert "FusedBatchNormV3" not in opt.op_histogram()
    x = np.random.default_rng(0).standard_normal((2, 21, 17, 3)).astype(np.float32)
    np.testing.assert_allclose(Runner(opt)([x])[0], Runner(orig)([x])[0], rtol=1e-4, atol=1e-5)


def test_fcn_compiles_in_bf16_and_is_verified(fcn_pb, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHIR_CPU_FLAGS", "avx512f avx512_bf16")
    r = cli(capsys, "compile", fcn_pb, "-o", tmp_path / "fcn_bf16.pb", "--precisions", "bf16")
    assert r.code == 0, r.err
    last = r.lines[-1]
    assert "verified on random inputs image:1x8x8x3" in last and "warning" not in r.err, r.err
    n_bf16 = int(last.split(" nodes in bf16")[0].rsplit(" ", 1)[-1])
    assert n_bf16 >= 4  # the convolutions at least


def test_verification_runs_on_the_sizes_found(fcn_pb):
    from graphir.ir import Tensor
    from graphir.runtime_check.check import reference_run

    g = graphir.load(fcn_pb)
    ref = reference_run(g, batch_size=1)
    assert ref.probed == {"image": (None, 8, 8, 3)} and ref.feeds[0]["image"].shape == (1, 8, 8, 3)
    assert ref.compare(graphir.compile(g).ir, rtol=1e-4, atol=1e-5).ok
    bad = g.copy()
    kernel = next(n for n in bad.nodes() if n.op_type == "Const" and n.attrs["value"].shape.rank == 4)
    kernel.attrs["value"] = Tensor.from_array(kernel.attrs["value"].numpy() * 1.01)
    rep = ref.compare(bad, rtol=1e-4, atol=1e-5)
    assert not rep.ok and rep.outputs[0].max_abs > 1e-5


def test_a_model_that_cannot_run_is_compiled_unverified(reshape_pb, tmp_path, capsys):
    need = "input 'x' (?x?x?x3) needs a shape: give --input-shapes x:1xNxNx3"
    out = tmp_path / "r.pb"
    r = cli(capsys, "compile", reshape_pb, "-o", out)
    assert r.code == 0, r.err
    warn, wrote = r.lines
    assert warn.startswith("graphir: warning: verification skipped: cannot run the original model on random "
                           "inputs x:1x4x4x3 to x:1x512x512x3: InvalidArgumentError: ") and warn.endswith(need), warn
    assert "not verified" in wrote and out.stat().st_size > 0
    os.unlink(out)
    r = cli(capsys, "compile", reshape_pb, "-o", out, "--verify")
    assert r.code == 2 and len(r.lines) == 1 and r.lines[0].startswith("graphir: error: ") and need in r.lines[0]
    assert not out.exists()
    r = cli(capsys, "compile", reshape_pb, "-o", out, "--verify", "--input-shapes", "x:1x7x7x3")
    assert r.code == 0 and "verified on random inputs x:1x7x7x3" in r.lines[-1], r.err


def test_check_finds_sizes_and_takes_shapes(fcn_pb, capsys):
    r = cli(capsys, "check", fcn_pb, fcn_pb)
    assert r.code == 0 and "on random inputs image:4x8x8x3" in r.out, r.out + r.err
    r = cli(capsys, "check", fcn_pb, fcn_pb, "--input-shapes", "image:2x9x11x3", "--batch-size", "5")
    assert r.code == 0 and "on random inputs image:2x9x11x3" in r.out, r.out + r.err
    r = cli(capsys, "check", fcn_pb, fcn_pb, "--batch-size", "3")
    assert r.code == 0 and "on random inputs image:3x8x8x3" in r.out, r.out + r.err
    r = cli(capsys, "check", fcn_pb, fcn_pb, "--input-shapes", "image:1x9x9")
    assert r.code == 2 and len(r.lines) == 1 and "does not fit" in r.lines[0]
    r = cli(capsys, "check", fcn_pb, fcn_pb, "--input-shapes", "image:1x9x9x3", "--inputs-npz", "x.npz")
    assert r.code == 2 and len(r.lines) == 1 and "drop --input-shapes/--batch-size" in r.lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--input-shapes", "image:1xax3"], "--input-shapes: 'image:1xax3'"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_bad_shape_options_fail_before_tf(fcn_pb, tmp_path, args, needle):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    env.pop("GRAPHIR_DEBUG", None)
    code = ("import sys; from graphir.cli import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "compile", fcn_pb, "-o", str(tmp_path / "o.pb"), *args],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr


def test_api_and_yaml_take_input_shapes(fcn_pb):
    om = graphir.compile(fcn_pb, input_shapes="image:1x32x32x3")
    assert om.ir.meta["input_shapes"] == {"image": (1, 32, 32, 3)}
    assert set(om.report["seconds"]) == {"load", "passes"}
    om = graphir.compile(fcn_pb, config={"model": {"input_shapes": "image:1x16x16x3"}})
    assert om.ir.meta["input_shapes"] == {"image": (1, 16, 16, 3)}
    with pytest.raises(ConfigError, match="^input_shapes: 'nope' is not an input"):
        graphir.compile(fcn_pb, input_shapes={"nope": [1, 2]})
    with pytest.raises(ConfigError, match="model.input_shapes: expected string"):
        graphir.compile(fcn_pb, config={"model": {"input_shapes": 3}})
