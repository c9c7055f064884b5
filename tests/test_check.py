"""``graphir check`` / runtime_check.check: identical models pass, perturbed weights fail, bad npz is exit 2."""
import os
import subprocess
import sys

import numpy as np
import pytest

from graphir import Tensor
from graphir.cli import main
from graphir.runtime_check.check import check_models, compare_arrays

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_PB = os.path.join(ROOT, "examples", "digits", "digits_cnn.pb")
DIGITS_NPZ = os.path.join(ROOT, "examples", "digits", "digits_test.npz")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import graphir

    d = tmp_path_factory.mktemp("check")
    g = graphir.load(DIGITS_PB)
    # Scale the dense layer's kernel (the largest 2-D constant): a real, small weight change.
    kernel = max((n for n in g.nodes() if n.op_type == "Const" and n.attrs["value"].shape.rank == 2),
                 key=lambda n: n.attrs["value"].size)
    kernel.attrs["value"] = Tensor.from_array(kernel.attrs["value"].numpy() * 1.05)
    g.save(str(d / "perturbed.pb"))
    x = np.load(DIGITS_NPZ)["x"]
    np.savez(d / "good.npz", input=x[:50])
    np.savez(d / "wrong_name.npz", images=x[:50])
    np.savez(d / "wrong_shape.npz", input=x[:50, :, :4])
    (d / "garbage.npz").write_bytes(b"not a zip file at all")
    return d


def test_identical_models_pass():
    rep = check_models(DIGITS_PB, DIGITS_PB, samples=2, dim=8)
    assert rep.ok and rep.runs == 2
    assert [o.name for o in rep.outputs] == ["probs"]
    assert rep.outputs[0].max_abs == 0.0
    assert "PASS" in rep.format()


def test_perturbed_weights_fail(files):
    rep = check_models(DIGITS_PB, str(files / "perturbed.pb"), inputs_npz=str(files / "good.npz"))
    assert not rep.ok
    assert rep.outputs[0].max_abs > 1e-4
    assert "FAIL" in rep.format() and "probs" in rep.first_failure()


def test_cli_exit_codes(files, capsys):
    assert main(["check", DIGITS_PB, DIGITS_PB, "--inputs-npz", str(files / "good.npz")]) == 0
    out = capsys.readouterr().out
    assert "probs" in out and "PASS" in out
    assert main(["check", DIGITS_PB, str(files / "perturbed.pb"), "--samples", "2"]) == 1
    assert "FAIL" in capsys.readouterr().out
    # Loose enough tolerances make the same pair pass: the verdict follows the numbers.
    assert main(["check", DIGITS_PB, str(files / "perturbed.pb"), "--rtol", "1", "--atol", "1"]) == 0


@pytest.mark.parametrize("npz,needle", [("wrong_name.npz", "'input'"), ("wrong_shape.npz", "shape"),
                                        ("garbage.npz", "npz"), ("missing.npz", "missing.npz")])
def test_bad_npz_is_exit_2(files, capsys, npz, needle):
    assert main(["check", DIGITS_PB, DIGITS_PB, "--inputs-npz", str(files / npz)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("graphir: error: ") and needle in err[0], err


def test_bad_npz_subprocess(files):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("GRAPHIR_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "graphir", "check", DIGITS_PB, DIGITS_PB,
                        "--inputs-npz", str(files / "wrong_name.npz")], capture_output=True, text=True, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "images" in r.stderr


def test_compare_arrays_rules():
    a = np.array([1.0, np.nan, np.inf, 0.0], np.float32)
    assert compare_arrays("y", a, a.copy(), 0, 0).ok  # NaN/inf in the same places are equal
    assert not compare_arrays("y", a, np.array([1.0, 0.0, np.inf, 0.0], np.float32), 1, 1).ok
    assert compare_arrays("y", a[:1], a[:1] + 1e-7, 1e-5, 0).ok
    assert not compare_arrays("y", a[:1], a[:1] + 1e-4, 1e-5, 1e-6).ok
    assert "dtype" in compare_arrays("y", a, a.astype(np.float64), 1, 1).problem
    assert "shape" in compare_arrays("y", a, a[:2], 1, 1).problem
    assert compare_arrays("s", np.array([b"a"]), np.array([b"a"]), 0, 0).ok
    assert not compare_arrays("s", np.array([b"a"]), np.array([b"b"]), 0, 0).ok
