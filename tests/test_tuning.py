"""The accuracy-driven tuner: fallback search, exit policy, workspace history/resume, workers, metrics, data.

The tuning tests use a small MLP whose MatMuls are big enough for the bf16 cost model to convert them;
crafted ``eval_func``s run the candidate on real data and penalise bf16 on chosen nodes, read from the
candidate's own IR.
"""
import json

import numpy as np
import pytest

import graphir
from graphir.data import NpzDataLoader, evaluate
from graphir.errors import ConfigError
from graphir.metrics import MAE, MSE, RMSE, TopK, make_metric
from graphir.tuning import Criterion, precision_of

# MatMul pinned to bf16 by op type keeps the bf16 cost model from declaring this small MLP unprofitable;
# the tuner's per-node fallbacks still override a pin by op type.
BF16 = dict(target="avx512_bf16", measure_profitability=False, bf16_ops=["MatMul"])
LAYERS = ("fc1", "fc2", "fc3", "fc4")


@pytest.fixture(scope="module")
def mlp():
    """(graph, x, labels): labels are the fp32 model's own top-1 on inputs with a clear margin, so the
    fp32 baseline scores 1.0 and bf16 rounding alone keeps well within 1%."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    ws = [(rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32)
          for s in [(256, 1024), (1024, 1024), (1024, 1024), (1024, 10)]]

    @tf.function(input_signature=[tf.TensorSpec([None, 256], tf.float32, name="x")])
    def f(x):
        h = tf.nn.relu(tf.matmul(x, ws[0], name="fc1") + 0.1)
        h = tf.nn.relu(tf.matmul(h, ws[1], name="fc2") - 0.05)
        h = tf.tanh(tf.matmul(h, ws[2], name="fc3"))
        return tf.identity(tf.nn.softmax(tf.matmul(h, ws[3], name="fc4") * 4.0), name="probs")

    graph = graphir.load(f.get_concrete_function())
    x = rng.standard_normal((2048, 256)).astype(np.float32)
    p = f(x).numpy()
    top2 = np.sort(p, -1)[:, -2:]
    keep = (top2[:, 1] - top2[:, 0]) > 0.3
    return graph, x[keep][:200], p[keep][:200].argmax(-1)


class Penalised:
    """eval_func: top-1 accuracy of the candidate on the data, minus a penalty for each listed node whose
    output is bf16 in the candidate's IR. Module level, so worker processes can unpickle it."""

    def __init__(self, x, y, penalties):
        self.x, self.y, self.penalties = x, y, dict(penalties)
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        acc = float(np.mean(np.argmax(model(self.x), -1) == self.y))
        for name, amount in self.penalties.items():
            node = model.ir.get(name)
            if node is not None and node.outputs[0].dtype.name == "bf16":
                acc -= amount
        return acc


def tune(graph, ev, tmp_path, tuning=None, **kw):
    conf = {"tuning": {"workspace": {"path": str(tmp_path / "ws")}, **(tuning or {})}}
    return graphir.compile(graph, precisions="bf16,fp32", config=conf, eval_func=ev, **BF16, **kw)


def bf16_set(model):
    return set(precision_of(model)[0])


def history(tmp_path):
    with open(tmp_path / "ws" / "history.jsonl") as f:
        return [json.loads(s) for s in f]


def test_all_bf16_meets_without_fallback(mlp, tmp_path):
    graph, x, y = mlp
    ev = Penalised(x, y, {})
    out = tune(graph, ev, tmp_path)
    full = graphir.compile(graph, precisions="bf16,fp32", **BF16)
    assert set(LAYERS) <= bf16_set(full)
    t = out.report["tuning"]
    assert t["met"] and t["fp32_fallbacks"] == [] and t["trials"] == 1 and ev.calls == 2
    assert bf16_set(out) == bf16_set(full)
    np.testing.assert_allclose(out(x), full(x))


def test_fallback_finds_the_harmful_op(mlp, tmp_path, capsys):
    graph, x, y = mlp
    ev = Penalised(x, y, {"fc2": 0.5})
    out = tune(graph, ev, tmp_path)
    t = out.report["tuning"]
    assert t["met"] and t["fp32_fallbacks"] == ["fc2"]
    assert out.ir.node("fc2").outputs[0].dtype.name == "f32"
    # everything else that can be bf16 with fc2 pinned to fp32 is bf16
    ref = graphir.compile(graph, precisions="bf16,fp32", fp32_ops=["fc2"], **BF16)
    assert bf16_set(out) == bf16_set(ref) and {"fc3", "fc4"} <= bf16_set(out)
    assert t["metric"] == pytest.approx(ev(out))  # the returned model is the one that was scored
    summary = capsys.readouterr().err.split("graphir: tuning summary")[-1].splitlines()
    assert summary[1].split() == ["fp32", "baseline", "best", "candidate"]
    assert summary[4].split() == ["fp32", "fallbacks", "-", "fc2"]


def test_greedy_keeps_only_fallbacks_that_help(mlp, tmp_path):
    graph, x, y = mlp
    # timeout > 0: the whole sensitivity pass runs, then ops fall back most harmful first
    ev = Penalised(x, y, {"fc3": 0.3, "fc2": 0.2})
    out = tune(graph, ev, tmp_path, {"exit_policy": {"timeout": 600}})
    t = out.report["tuning"]
    assert t["met"] and sorted(t["fp32_fallbacks"]) == ["fc2", "fc3"]
    recs = history(tmp_path)[1:]
    greedy = [r for r in recs if r["phase"] == "fallback"]
    assert greedy[0]["fp32_ops"] == ["fc2", "fc3"]  # fc3 (most harmful) first, fc2 added because it helped
    n_single = sum(r["phase"] == "sensitivity" for r in recs)
    assert n_single == len(bf16_set(graphir.compile(graph, precisions="bf16,fp32", **BF16)))
    assert t["trials"] == 1 + n_single + len(greedy) == ev.calls - 1


def test_max_trials_and_no_candidate_meeting(mlp, tmp_path, capsys):
    graph, x, y = mlp
    ev = Penalised(x, y, {"fc4": 0.5, "fc1": 0.1})  # fc4 is near the end of the sensitivity order
    out = tune(graph, ev, tmp_path, {"exit_policy": {"max_trials": 3}})
    t = out.report["tuning"]
    assert t["trials"] == 3 and ev.calls == 4 and not t["met"]
    assert t["stop_reason"] == "max_trials reached"
    assert len(history(tmp_path)) == 1 + 4
    err = capsys.readouterr().err
    assert "graphir: warning: no candidate met the accuracy criterion" in err
    assert "no candidate met" in t["warning"]
    # the best found is returned: the fc1 fallback lifted the fc1 penalty
    assert t["fp32_fallbacks"] == ["fc1"] and t["metric"] == pytest.approx(ev(out))


def test_timeout_is_honoured(mlp, tmp_path, monkeypatch):
    """The deadline is checked before each trial. The tuner's clock counts evaluations here, so every
    trial takes one "second" whatever else the machine is doing."""
    from graphir.tuning import search

    graph, x, y = mlp
    ev = Penalised(x, y, {"fc4": 0.5})
    monkeypatch.setattr(search, "clock", lambda: ev.calls)
    out = tune(graph, ev, tmp_path, {"exit_policy": {"timeout": 3.5}})
    t = out.report["tuning"]
    # baseline 0 -> 1, all-bf16 1 -> 2, sensitivity trials start at 2 and 3; at 4 the budget is spent
    # (a full search would take 21 trials, and fc4 comes late in the sensitivity order)
    assert t["stop_reason"] == "timeout reached" and not t["met"]
    assert t["trials"] == 3 and ev.calls == 4 and t["seconds"] == 4
    assert [r["phase"] for r in history(tmp_path)[1:]] == ["baseline", "all-bf16", "sensitivity", "sensitivity"]


def test_resume_skips_finished_trials(mlp, tmp_path):
    graph, x, y = mlp
    pen = {"fc4": 0.5}
    first = Penalised(x, y, pen)
    a = tune(graph, first, tmp_path, {"exit_policy": {"max_trials": 4}})
    assert not a.report["tuning"]["met"] and first.calls == 1 + 4
    second = Penalised(x, y, pen)
    b = tune(graph, second, tmp_path, {"workspace": {"path": str(tmp_path / "ws"), "resume": True}})
    tb = b.report["tuning"]
    assert tb["met"] and tb["trials_from_history"] == 4
    fresh = Penalised(x, y, pen)
    c = tune(graph, fresh, tmp_path / "fresh")
    assert c.report["tuning"]["fp32_fallbacks"] == tb["fp32_fallbacks"]
    assert c.report["tuning"]["trials"] == tb["trials"]
    assert second.calls == fresh.calls - first.calls  # nothing evaluated twice
    keys = [r["key"] for r in history(tmp_path)[1:]]
    assert len(keys) == len(set(keys))


def test_resume_with_another_config_starts_afresh(mlp, tmp_path, capsys):
    graph, x, y = mlp
    tune(graph, Penalised(x, y, {}), tmp_path)
    ev = Penalised(x, y, {})
    resume = {"workspace": {"path": str(tmp_path / "ws"), "resume": True}}
    out = tune(graph, ev, tmp_path, resume, fp32_ops=["fc4"])  # a different search: history not reused
    assert "different model or config" in capsys.readouterr().err and ev.calls == 2
    assert out.report["tuning"]["trials_from_history"] == 0


def test_eval_func_without_config_tunes(mlp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workspace is ./graphir_workspace
    graph, x, y = mlp
    ev = Penalised(x, y, {})
    out = graphir.compile(graph, precisions="bf16,fp32", eval_func=ev, **BF16)
    assert out.report["tuning"]["met"] and ev.calls == 2
    with open(tmp_path / "graphir_workspace" / "history.jsonl") as f:
        recs = [json.loads(s) for s in f]
    assert [r["phase"] for r in recs[1:]] == ["baseline", "all-bf16"]


def test_unpicklable_eval_func_falls_back_to_one_worker(mlp, tmp_path, capsys):
    graph, x, y = mlp
    out = tune(graph, lambda m: float(np.mean(np.argmax(m(x), -1) == y)), tmp_path, workers=2)
    assert out.report["tuning"]["met"]
    assert "cannot be sent to worker processes" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- criterion
def test_criterion():
    rel = Criterion(relative=0.01)
    assert rel.met(0.90, 0.8911) and not rel.met(0.90, 0.8909) and rel.met(0.9, 0.95)
    ab = Criterion(relative=None, absolute=0.05, higher_is_better=False)
    assert ab.met(1.0, 1.05) and not ab.met(1.0, 1.06) and ab.met(1.0, 0.2)
    assert ab.better(0.1, 0.2) and not rel.better(0.1, 0.2) and not rel.met(1.0, float("nan"))


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_against_sklearn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    p = rng.random((50, 7)).astype(np.float32)
    y = rng.integers(0, 7, 50)
    for k in (1, 3):
        m = TopK(k)
        m.update(p[:20], y[:20])
        m.update(p[20:], np.eye(7)[y[20:]])  # one-hot labels work too
        assert m.result() == pytest.approx(skm.top_k_accuracy_score(y, p, k=k, labels=range(7)))
    t = rng.random((50, 7))
    for cls, ref in ((MSE, skm.mean_squared_error(t, p)), (RMSE, np.sqrt(skm.mean_squared_error(t, p))),
                     (MAE, skm.mean_absolute_error(t, p))):
        m = cls()
        for s in range(0, 50, 16):
            m.update(p[s:s + 16], t[s:s + 16])
        assert m.result() == pytest.approx(ref, rel=1e-6) and not m.higher_is_better
    assert make_metric({"topk": 5}).k == 5 and make_metric("RMSE").name == "RMSE"
    with pytest.raises(ConfigError):
        make_metric("F1")


# ---------------------------------------------------------------------------------------------- data
def test_npz_and_npy_loaders(tmp_path):
    x = np.arange(50, dtype=np.float32).reshape(10, 5)
    y = np.arange(10) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, x2=x * 2)
    dl = NpzDataLoader(tmp_path / "d.npz", batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    two = next(iter(NpzDataLoader(tmp_path / "d.npz", 3, inputs=["x", "x2"])))
    assert isinstance(two[0], tuple) and len(two[0]) == 2
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    npy = NpzDataLoader(tmp_path / "x.npy", 20, labels=str(tmp_path / "y.npy"), limit=6)
    assert npy.num_samples == 6
    # evaluate() drives any callable model
    acc = evaluate(lambda a: np.eye(3)[a[:, 0].astype(int) // 5 % 3], dl, TopK(1))
    assert acc == pytest.approx(np.mean((np.arange(10) % 3) == (x[:, 0].astype(int) // 5 % 3)))
    with pytest.raises(ConfigError, match="has no array 'z'"):
        NpzDataLoader(tmp_path / "d.npz", inputs="z")
    with pytest.raises(ConfigError, match="needs labels"):
        NpzDataLoader(tmp_path / "x.npy")


def test_fallback_trials_are_not_confounded_by_the_cost_model(tmp_path):
    """Without pins: falling back the big conv leaves ~1.8 MFLOP of bf16 compute, under the cost model's
    cut-off, so the trial silently became all-fp32. A trial must be the bf16 candidate minus one op."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    k1 = (rng.standard_normal((3, 3, 3, 32)) * 0.2).astype(np.float32)
    k2 = (rng.standard_normal((3, 3, 32, 64)) * 0.05).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="img")])
    def f(img):
        h = tf.nn.relu(tf.nn.conv2d(img, k1, 1, "SAME", name="small_conv"))
        h = tf.nn.relu(tf.nn.conv2d(h, k2, 1, "SAME", name="big_conv"))
        return tf.identity(tf.reduce_mean(h, axis=[1, 2]), name="feat")

    graph = graphir.load(f.get_concrete_function())
    x = rng.standard_normal((16, 32, 32, 3)).astype(np.float32)
    ref = f(x).numpy()

    def ev(model):  # MSE against fp32 (lower is better) plus a penalty while big_conv is bf16
        node = model.ir.get("big_conv")
        return float(np.mean((model(x) - ref) ** 2)) + (1.0 if node and node.outputs[0].dtype.name == "bf16"
                                                        else 0.0)

    conf = {"tuning": {"workspace": {"path": str(tmp_path / "ws")},
                       "accuracy_criterion": {"absolute": 0.01, "higher_is_better": False}}}
    out = graphir.compile(graph, precisions="bf16,fp32", config=conf, eval_func=ev, target="avx512_bf16",
                          measure_profitability=False)
    t = out.report["tuning"]
    assert t["met"] and t["fp32_fallbacks"] == ["big_conv"]
    assert "small_conv" in bf16_set(out) and "big_conv" not in bf16_set(out)


# ---------------------------------------------------------------------------------------------- layering
def _graphir_imports(path, module: str) -> set:
    """Every graphir module ``path`` imports, at the top or lazily inside a function."""
    import ast

    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            full = (base + "." + node.module if node.module else base) if node.level else node.module
            names.add(full)
            names.update(f"{full}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] == "graphir"}


def test_nothing_below_tuning_imports_it():
    """The compiler and the layers under it import neither the tuner nor what is built on it (graphir.api,
    graphir.lpot, graphir.cli), so there is no compiler <-> lpot <-> tuning cycle; the tuner imports nothing
    above itself."""
    import pathlib

    root = pathlib.Path(graphir.__file__).parent
    tops = ("graphir.api", "graphir.lpot", "graphir.cli")
    offenders = []
    for path in root.rglob("*.py"):
        module = ".".join(("graphir",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        if module in ("graphir", "graphir.__main__") + tops:
            continue
        above = tops if module.startswith("graphir.tuning") else tops + ("graphir.tuning",)
        offenders += [f"{module} imports {n}" for n in sorted(_graphir_imports(path, module))
                      if any(n == a or n.startswith(a + ".") for a in above)]
    assert offenders == []
