"""LPOT-style YAML configs: schema validation with one-line errors, defaults, shorthands, path resolution."""
import os
import textwrap

import pytest

from graphir.config import load_config
from graphir.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, text, name="conf.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


BAD = [
    ("graph_optimization: {precisions: [bf16, int8]}",
     "graph_optimization.precisions[1]: 'int8' is not one of bf16, fp32"),
    ("graph_optimization: {precisions: 'bf16, int8'}",
     "graph_optimization.precisions[1]: 'int8' is not one of bf16, fp32"),
    ("graph_optimization: {precisions: fp16}",
     "graph_optimization.precisions[0]: 'fp16' is not one of bf16, fp32"),
    ("tuning: {foo: 1}", "tuning.foo: unknown key"),
    ("quantization: {}", "quantization: unknown key"),
    ("tuning: {exit_policy: {max_trials: ten}}", "tuning.exit_policy.max_trials: expected integer, got 'ten'"),
    ("tuning: {exit_policy: {timeout: -5}}", "tuning.exit_policy.timeout: must be >= 0, got -5"),
    ("tuning: {exit_policy: {max_trials: 0}}", "tuning.exit_policy.max_trials: must be >= 1, got 0"),
    ("tuning: {random_seed: 1.5}", "tuning.random_seed: expected integer, got 1.5"),
    ("tuning: {workspace: {resume: 3}}", "tuning.workspace.resume: expected boolean or string, got 3"),
    ("tuning: {accuracy_criterion: {relative: 0.01, absolute: 0.1}}",
     "tuning.accuracy_criterion: give relative or absolute, not both"),
    ("tuning: {accuracy_criterion: {higher_is_better: maybe}}",
     "tuning.accuracy_criterion.higher_is_better: expected boolean, got 'maybe'"),
    ("tuning: [1, 2]", "tuning: expected mapping, got a list"),
    ("model: {framework: pytorch}", "model.framework: 'pytorch' is not one of tensorflow"),
    ("model: {inputs: 7}", "model.inputs: expected a comma-separated string or a list, got 7"),
    ("evaluation: {accuracy: {metric: F1}}",
     "evaluation.accuracy.metric: unknown metric 'F1'; expected one of topk, MSE, RMSE, MAE"),
    ("evaluation: {accuracy: {metric: {topk: 1, MSE: {}}}}",
     "evaluation.accuracy.metric: give exactly one of topk, MSE, RMSE, MAE"),
    ("evaluation: {accuracy: {metric: {topk: 0}}}", "evaluation.accuracy.metric.topk: must be >= 1, got 0"),
    ("evaluation: {accuracy: {dataloader: {batch_size: 8}}}",
     "evaluation.accuracy.dataloader.dataset: required key missing"),
    ("evaluation: {accuracy: {dataloader: {batch_size: 8, dataset: {path: a.npz, root: b}}}}",
     "evaluation.accuracy.dataloader.dataset.root: unknown key"),
    ("graph_optimization: {op_wise: {conv1: {precision: int8}}}",
     "graph_optimization.op_wise.conv1.precision: 'int8' is not one of bf16, fp32"),
    ("graph_optimization: {op_wise: {conv1: {activation: {dtype: [bf16], scheme: sym}}}}",
     "graph_optimization.op_wise.conv1.activation.scheme: unknown key"),
    ("- just\n- a list\n", "config: expected a mapping at the top level, got a list"),
    ("evaluation: {accuracy: {dataloader: {dataset: {path: x.npy}}}}",  # was: needs labels (got '<dir>/y')
     "evaluation.accuracy.dataloader.dataset.labels: an .npy dataset needs labels: <labels>.npy"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_schema_errors_are_one_line_with_key_path(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert str(e.value) == message
    assert "\n" not in str(e.value)


def test_yaml_syntax_error_is_one_line(tmp_path):
    path = write(tmp_path, "tuning:\n  exit_policy: {max_trials: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: invalid YAML at line") and "\n" not in msg


def test_missing_file():
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/conf.yaml")


def test_dict_config_is_validated_too():
    with pytest.raises(ConfigError, match=r"^tuning\.exit_policy\.speed: unknown key$"):
        load_config({"tuning": {"exit_policy": {"speed": 1}}})


def test_defaults_and_shorthands(tmp_path):
    cfg = load_config(write(tmp_path, """
        model: {name: m, framework: tensorflow, inputs: 'a, b', outputs: out}
        graph_optimization:
          precisions: bf16, fp32
          op_wise:
            conv1: {activation: {dtype: [fp32]}}
            MatMul: {precision: bf16}
            pool: {activation: {dtype: fp32}}
        evaluation: {accuracy: {metric: RMSE, dataloader: {dataset: {path: data/d.npz}}}}
    """))
    assert cfg.inputs == ["a", "b"] and cfg.outputs == ["out"]
    assert cfg.precisions == ["bf16", "fp32"]
    assert cfg.fp32_ops == ["conv1", "pool"] and cfg.bf16_ops == ["MatMul"]
    assert cfg.metric == {"RMSE": None}
    assert cfg.relative == 0.01 and cfg.absolute is None and cfg.higher_is_better is None
    assert cfg.timeout == 0 and cfg.max_trials == 100 and cfg.resume is False
    assert cfg.dataset.batch_size == 1 and cfg.dataset.inputs == ["x"] and cfg.dataset.labels == "y"
    # paths in the YAML are relative to the YAML file, not to the working directory
    assert cfg.dataset.path == str(tmp_path / "data" / "d.npz")
    assert cfg.workspace == os.path.abspath("graphir_workspace")  # the default stays in the cwd
    assert cfg.has_evaluation


def test_list_and_string_precisions_agree(tmp_path):
    a = load_config(write(tmp_path, "graph_optimization: {precisions: [bf16, fp32]}", "a.yaml"))
    b = load_config(write(tmp_path, "graph_optimization: {precisions: 'bf16,fp32'}", "b.yaml"))
    assert a.precisions == b.precisions == ["bf16", "fp32"]


def test_relative_workspace_and_absolute_criterion(tmp_path):
    cfg = load_config(write(tmp_path, """
        tuning:
          accuracy_criterion: {absolute: 0.02, higher_is_better: false}
          exit_policy: {timeout: 30, max_trials: 7}
          random_seed: 9527
          workspace: {path: ws, resume: true}
    """))
    assert (cfg.absolute, cfg.relative, cfg.higher_is_better) == (0.02, None, False)
    assert (cfg.timeout, cfg.max_trials, cfg.random_seed) == (30, 7, 9527)
    assert cfg.workspace == str(tmp_path / "ws") and cfg.resume is True
    assert not cfg.has_evaluation


def test_shipped_example_validates():
    cfg = load_config(os.path.join(ROOT, "examples", "graph_optimization.yaml"))
    assert cfg.precisions == ["bf16", "fp32"] and cfg.metric == {"topk": 1}
    assert cfg.dataset.path == os.path.join(ROOT, "examples", "digits", "digits_test.npz")

