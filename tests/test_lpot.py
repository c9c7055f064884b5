"""The LPOT-compatible API on the bundled digits CNN: the issue's three snippets, YAML end to end, the CLI."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphir
from graphir import Graph_Optimization
from graphir.tuning import precision_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")
PB = os.path.join(DIGITS, "digits_cnn.pb")
NPZ = os.path.join(DIGITS, "digits_test.npz")
# Explicit bf16 target (tests must not depend on this CPU) and no timing-based decisions. Conv2D/MatMul
# pinned to bf16 by op type so the tiny model really converts (the cost model would keep it fp32).
BF16 = dict(target="avx512_bf16", measure_profitability=False, bf16_ops=["Conv2D", "MatMul"])
# The digits CNN's Conv2D and MatMul nodes, the ones BF16 pins by op type.
PINNED = {"digits_cnn_1/conv2d_1/convolution", "digits_cnn_1/conv2d_1_2/convolution", "digits_cnn_1/probs_1/MatMul"}


@pytest.fixture(scope="module")
def data():
    z = np.load(NPZ)
    return z["x"], z["y"]


@pytest.fixture(scope="module")
def fp32_accuracy(data):
    x, y = data
    from graphir.runtime_check.runner import Runner

    (p,) = Runner(graphir.load(PB))({"input": x})
    return accuracy_of(p, y)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workspace is ./graphir_workspace


def accuracy_of(probs, y):
    return float(np.mean(np.argmax(probs, -1) == y))


def write_yaml(path, text):
    path = os.fspath(path)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


CONF = textwrap.dedent("""
    model:
      name: digits_cnn
      framework: tensorflow
      inputs: input
      outputs: probs
    graph_optimization:
      precisions: bf16, fp32
    evaluation:
      accuracy:
        metric:
          topk: 1
        dataloader:
          batch_size: 64
          dataset:
            path: {path}
    tuning:
      accuracy_criterion:
        relative: 0.01
      exit_policy:
        timeout: 0
        max_trials: 20
      random_seed: 9527
""")


def test_attribute_form_as_written(tmp_path, data):
    x, y = data
    graph_optimizer = Graph_Optimization()
    graph_optimizer.precisions = 'fp32'
    graph_optimizer.input = 'input'
    graph_optimizer.output = 'probs'
    graph_optimizer.model = PB
    optimized_model = graph_optimizer()
    optimized_model.save(str(tmp_path / "out.pb"))

    assert "tuning" not in optimized_model.report and not os.path.exists("graphir_workspace")
    assert len(optimized_model.ir) < len(graphir.load(PB))
    assert any(n.name == "probs" for n in optimized_model.graph_def.node)
    from graphir.runtime_check.runner import Runner

    (ref,) = Runner(graphir.load(PB))({"input": x})
    (saved,) = Runner(graphir.load(str(tmp_path / "out.pb")))({"input": x})
    np.testing.assert_allclose(optimized_model(x), ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(saved, ref, rtol=1e-4, atol=1e-6)


def test_attribute_form_bf16_within_default_criterion(data, fp32_accuracy):
    x, y = data
    graph_optimizer = Graph_Optimization(**BF16)
    graph_optimizer.precisions = 'bf16, fp32'
    graph_optimizer.input = 'input'
    graph_optimizer.output = 'probs'
    graph_optimizer.model = PB
    optimized_model = graph_optimizer()
    bf16, _ = precision_of(optimized_model)
    assert "tuning" not in optimized_model.report and PINNED <= set(bf16)  # no evaluation: one conversion
    out = optimized_model(x)
    assert out.dtype == np.float32  # bf16 never leaks to the user
    assert accuracy_of(out, y) >= fp32_accuracy * (1 - 0.01)


def test_yaml_form_with_eval_dataloader(tmp_path, data, fp32_accuracy):
    x, y = data
    conf = write_yaml(tmp_path / "conf.yaml", CONF.format(path="does_not_matter.npz"))
    graph_optimizer = Graph_Optimization(conf, **BF16)
    graph_optimizer.model = PB
    # any iterable of (inputs, labels) batches; it replaces the YAML dataloader
    graph_optimizer.eval_dataloader = [(x[i:i + 100], y[i:i + 100]) for i in range(0, len(y), 100)]
    optimized_model = graph_optimizer()
    t = optimized_model.report["tuning"]
    assert t["met"] and t["baseline"] == pytest.approx(fp32_accuracy)
    assert t["metric"] == pytest.approx(accuracy_of(optimized_model(x), y))
    assert precision_of(optimized_model)[0]
    assert os.path.exists(os.path.join("graphir_workspace", "history.jsonl"))


def test_yaml_form_with_eval_func(tmp_path, data, fp32_accuracy):
    x, y = data
    calls = []

    def eval_func(model):
        calls.append(model)
        return accuracy_of(model(x), y)

    conf = write_yaml(tmp_path / "conf.yaml", CONF.format(path="missing.npz"))
    graph_optimizer = Graph_Optimization(conf, **BF16)
    graph_optimizer.model = PB
    graph_optimizer.eval_func = eval_func  # replaces the YAML evaluation (its dataset is never read)
    optimized_model = graph_optimizer()
    t = optimized_model.report["tuning"]
    assert t["met"] and len(calls) == 1 + t["trials"]
    assert isinstance(calls[0], graphir.OptimizedModel)
    assert accuracy_of(optimized_model(x), y) >= fp32_accuracy * 0.99


HARMFUL = "digits_cnn_1/conv2d_1_2/convolution"


class PenaliseHarmful:
    """Real accuracy minus a penalty when the candidate runs HARMFUL in bf16 (read from its own IR).
    Module level so worker processes can unpickle it."""

    def __init__(self, x, y):
        self.x, self.y, self.calls = x, y, 0

    def __call__(self, model):
        self.calls += 1
        node = model.ir.get(HARMFUL)
        return accuracy_of(model(self.x), self.y) - 0.5 * (node is not None and
                                                           node.outputs[0].dtype.name == "bf16")


def test_digits_fallback_finds_the_harmful_conv(data):
    x, y = data
    harmful = HARMFUL
    eval_func = PenaliseHarmful(x, y)
    graph_optimizer = Graph_Optimization(**BF16)
    graph_optimizer.precisions = 'bf16, fp32'
    graph_optimizer.model = PB
    graph_optimizer.eval_func = eval_func
    out = graph_optimizer()
    t = out.report["tuning"]
    assert t["met"] and t["fp32_fallbacks"] == [harmful]
    assert harmful not in precision_of(out)[0]  # in fp32 (where it may have been fused into a _FusedConv2D)
    ref = graphir.compile(PB, precisions="bf16,fp32", **{**BF16, "fp32_ops": [harmful]})
    assert precision_of(out)[0] == precision_of(ref)[0] and "digits_cnn_1/conv2d_1/convolution" in \
        precision_of(out)[0]


@pytest.mark.slow
def test_parallel_sensitivity_trials(tmp_path, data):
    """--workers 2: the sensitivity trials run in spawned worker processes that rebuild the model from its
    path; with timeout > 0 all of them run, and the outcome equals the serial search."""
    x, y = data
    conf = {"tuning": {"exit_policy": {"timeout": 600}}}
    runs = {}
    for workers in (2, 1):
        ev = PenaliseHarmful(x, y)
        out = graphir.compile(PB, precisions="bf16,fp32", config={**conf, "tuning": {
            **conf["tuning"], "workspace": {"path": str(tmp_path / f"ws{workers}")}}}, eval_func=ev,
            workers=workers, **BF16)
        runs[workers] = (out.report["tuning"], ev.calls)
    (par, par_calls), (ser, ser_calls) = runs[2], runs[1]
    assert par["fp32_fallbacks"] == ser["fp32_fallbacks"] == [HARMFUL] and par["trials"] == ser["trials"]
    assert ser_calls == 1 + ser["trials"] and par_calls < ser_calls  # sensitivity scored in the workers


def test_compile_with_yaml_npz_dataloader_topk(tmp_path, data, fp32_accuracy):
    """graphir.compile(config=...) with the YAML's own npz dataloader; paths relative to the YAML."""
    x, y = data
    os.makedirs(tmp_path / "conf" / "data")
    shutil.copy(NPZ, tmp_path / "conf" / "data" / "test.npz")
    conf = write_yaml(tmp_path / "conf" / "c.yaml", CONF.format(path="data/test.npz") +
                      "  workspace:\n    path: ws\n")
    out = graphir.compile(PB, config=conf, **BF16)
    t = out.report["tuning"]
    assert t["met"] and t["baseline"] == pytest.approx(fp32_accuracy)
    assert t["metric"] == pytest.approx(accuracy_of(out(x), y))
    assert os.path.exists(tmp_path / "conf" / "ws" / "history.jsonl")
    assert out.report["precisions"] == ["bf16", "fp32"]  # from the YAML, not compile's default


def test_yaml_without_evaluation_converts_once(tmp_path, data):
    x, y = data
    conf = write_yaml(tmp_path / "conf.yaml", """
        model: {name: digits, framework: tensorflow, inputs: input, outputs: probs}
        graph_optimization:
          precisions: [bf16, fp32]
          op_wise:
            digits_cnn_1/probs_1/MatMul: {precision: fp32}
    """)
    graph_optimizer = Graph_Optimization(conf, **BF16)
    graph_optimizer.model = PB
    out = graph_optimizer()
    assert "tuning" not in out.report and not os.path.exists("graphir_workspace")
    bf16, fp32 = precision_of(out)
    assert bf16 and not any(n.startswith("digits_cnn_1/probs_1/") for n in bf16)  # name pin beats type pin
    assert out.ir.node("digits_cnn_1/conv2d_1/convolution").outputs[0].dtype.name == "bf16"


def test_in_memory_graph_def_and_list_names(data):
    from graphir.backends.tf import to_graph_def

    x, y = data
    gd = to_graph_def(graphir.load(PB))
    graph_optimizer = Graph_Optimization()
    graph_optimizer.precisions = ["fp32"]
    graph_optimizer.input = ["input"]
    graph_optimizer.output = ["probs"]
    graph_optimizer.model = gd
    out = graph_optimizer()
    np.testing.assert_allclose(out(x), graphir.compile(PB)(x), rtol=1e-6, atol=1e-7)


def test_missing_model_is_a_clear_error():
    with pytest.raises(graphir.ConfigError, match="set .model"):
        Graph_Optimization()()


@pytest.mark.parametrize("fn,needle", [
    (lambda m: None, "eval_func returned NoneType None, expected a number"),
    (lambda m: 1 / 0, "eval_func failed: ZeroDivisionError: division by zero"),
    ([(np.zeros((2, 4), np.float32), np.zeros(2))], r"evaluation \(topk\(1\) on list\) failed: ValueError: Cannot feed"),
])
def test_evaluation_failures_are_one_line_errors(fn, needle):
    # These used to escape as raw exceptions (the CLI's "internal error", exit 3).
    go = Graph_Optimization(**BF16)
    go.model, go.precisions = PB, "bf16,fp32"
    if callable(fn):
        go.eval_func = fn
    else:
        go.eval_dataloader, go.metric = fn, {"topk": 1}
    with pytest.raises(graphir.GraphirError, match=needle) as e:
        go()
    assert "\n" not in str(e.value)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "graphir", "compile", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.slow
def test_cli_schema_error_exit_code_2(tmp_path):
    conf = write_yaml(tmp_path / "bad.yaml", "graph_optimization: {precisions: [bf16, int8]}\n")
    r = _cli(PB, "--config", conf, "-o", str(tmp_path / "out.pb"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == \
        "graphir: error: graph_optimization.precisions[1]: 'int8' is not one of bf16, fp32"


@pytest.mark.slow
def test_cli_compile_with_shipped_example_config(tmp_path, data, fp32_accuracy):
    x, y = data
    out = tmp_path / "digits_bf16.pb"
    r = _cli(PB, "--config", os.path.join(ROOT, "examples", "graph_optimization.yaml"), "-o", str(out),
             "--target", "avx512_bf16", "--bf16-ops", "Conv2D,MatMul", "--workers", "1", "--no-verify",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "best candidate" in r.stderr and "meets the criterion" in r.stderr
    assert os.path.exists(tmp_path / "graphir_workspace" / "history.jsonl")
    from graphir.runtime_check.runner import Runner

    g = graphir.load(str(out))
    # --bf16-ops is a decision that the final timed profitability check does not second-guess
    assert all(g.node(n).outputs[0].dtype.name == "bf16" for n in PINNED)
    (p,) = Runner(g)({"input": x})
    assert accuracy_of(p, y) >= fp32_accuracy * 0.99


def test_unknown_target_fails_before_any_evaluation():
    calls = []
    with pytest.raises(graphir.ConfigError, match="unknown target 'tpu'"):
        graphir.compile(PB, precisions="bf16,fp32", target="tpu", config={},
                        eval_func=lambda m: calls.append(m) or 1.0)
    assert calls == []
