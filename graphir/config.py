"""LPOT / Neural Compressor style YAML configs: loading, schema validation and one-line errors.

Every mistake in a config becomes a :class:`~graphir.errors.ConfigError` whose message names the key path,
e.g. ``graph_optimization.precisions[1]: 'int8' is not one of bf16, fp32``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import ConfigError, one_line

METRICS = ("topk", "MSE", "RMSE", "MAE")

_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_LOSS_METRIC = {"type": ["null", "boolean", "object"], "additionalProperties": False,
                "properties": {"compare_label": {"type": "boolean"}}}
_PRECISION = {"type": "string", "enum": ["bf16", "fp32"]}

SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"type": ["number", "string"]},
        "device": {"type": "string", "enum": ["cpu"]},
        "model": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "framework": {"type": "string", "enum": ["tensorflow"]},
                "inputs": {"type": "array", "items": {"type": "string"}},
                "outputs": {"type": "array", "items": {"type": "string"}},
                "input_shapes": {"type": "string"},  # as --input-shapes: "name:1x240x240x3,..."
            },
        },
        "graph_optimization": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "precisions": {"type": "array", "items": _PRECISION, "minItems": 1},
                # op name or op type -> {precision: fp32|bf16}, or LPOT's {activation: {dtype: [...]}}
                "op_wise": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "precision": _PRECISION,
                            "activation": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["dtype"],
                                "properties": {"dtype": {"type": "array", "items": _PRECISION,
                                                         "minItems": 1, "maxItems": 1}},
                            },
                        },
                    },
                },
            },
        },
        "evaluation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "accuracy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "metric": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "maxProperties": 1,
                            "properties": {
                                "topk": {"type": "integer", "minimum": 1},
                                "MSE": _LOSS_METRIC, "RMSE": _LOSS_METRIC, "MAE": _LOSS_METRIC,
                            },
                        },
                        "dataloader": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["dataset"],
                            "properties": {
                                "batch_size": {"type": "integer", "minimum": 1},
                                "dataset": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["path"],
                                    "properties": {
                                        "path": {"type": "string"},
                                        "inputs": _NAMES,
                                        "labels": {"type": "string"},
                                        "limit": {"type": "integer", "minimum": 1},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "tuning": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "strategy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string", "enum": ["basic"]}},
                },
                "objective": {"type": "string", "enum": ["performance"]},
                "accuracy_criterion": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "relative": {"type": "number", "minimum": 0},
                        "absolute": {"type": "number", "minimum": 0},
                        "higher_is_better": {"type": "boolean"},
                    },
                },
                "exit_policy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "timeout": {"type": "number", "minimum": 0},
                        "max_trials": {"type": "integer", "minimum": 1},
                    },
                },
                "random_seed": {"type": "integer"},
                "workspace": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string"},
                        "resume": {"type": ["boolean", "string"]},
                    },
                },
            },
        },
    },
}


@dataclass
class DatasetConfig:
    path: str
    batch_size: int = 1
    inputs: list[str] = field(default_factory=lambda: ["x"])
    labels: str = "y"
    limit: Optional[int] = None


@dataclass
class Config:
    """A validated config with defaults filled in and paths resolved against the YAML's directory."""

    name: Optional[str] = None
    inputs: Optional[list[str]] = None
    outputs: Optional[list[str]] = None
    input_shapes: Optional[str] = None
    precisions: Optional[list[str]] = None      # None: not given (the caller's default applies)
    fp32_ops: list[str] = field(default_factory=list)
    bf16_ops: list[str] = field(default_factory=list)
    metric: Optional[dict] = None               # {"topk": 1} / {"MSE": None} ...
    dataset: Optional[DatasetConfig] = None
    relative: Optional[float] = 0.01
    absolute: Optional[float] = None
    higher_is_better: Optional[bool] = None     # None: from the metric (topk up, errors down)
    timeout: float = 0.0
    max_trials: int = 100
    random_seed: int = 1978
    workspace: str = "graphir_workspace"
    resume: Any = False                         # bool, or a path to a history file
    base_dir: str = "."
    source: str = "<dict>"

    @property
    def has_evaluation(self) -> bool:
        return self.dataset is not None


# ---------------------------------------------------------------------------------------------- errors
def _path_text(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


_TYPE_WORDS = {"object": "mapping", "array": "list", "null": "null", "number": "number",
               "integer": "integer", "string": "string", "boolean": "boolean"}


def _show(v) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    return repr(v)


def _format_error(err) -> str:
    path = _path_text(err.absolute_path)
    v, inst, sch = err.validator, err.instance, err.schema
    where = path or "config"
    if v == "additionalProperties":
        known = set(sch.get("properties", {}))
        extra = sorted(str(k) for k in inst if k not in known)
        if extra and path.endswith("metric"):
            return f"{where}: unknown metric {extra[0]!r}; expected one of {', '.join(METRICS)}"
        return f"{_join(path, extra[0])}: unknown key" if extra else f"{where}: {err.message}"
    if v == "type":
        types = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if types == ["array"] and err.absolute_path and err.absolute_path[-1] in _COMMA_LISTS:
            return f"{where}: expected a comma-separated string or a list, got {_show(inst)}"
        return f"{where}: expected {' or '.join(_TYPE_WORDS.get(t, t) for t in types)}, got {_show(inst)}"
    if v == "anyOf":
        return f"{where}: expected a string or a list of strings, got {_show(inst)}"
    if v == "enum":
        return f"{where}: {_show(inst)} is not one of {', '.join(map(str, err.validator_value))}"
    if v == "minimum":
        return f"{where}: must be >= {err.validator_value}, got {_show(inst)}"
    if v == "required":
        missing = [k for k in err.validator_value if k not in inst]
        return f"{_join(path, missing[0])}: required key missing"
    if v in ("minProperties", "maxProperties") and path.endswith("metric"):
        return f"{where}: give exactly one of {', '.join(METRICS)}"
    if v == "minItems":
        return f"{where}: must not be empty"
    if v == "maxItems":
        return f"{where}: expected at most {err.validator_value} item(s)"
    return f"{where}: {err.message}"


_COMMA_LISTS = ("inputs", "outputs", "precisions", "dtype")
_FIRST = {"additionalProperties": 0, "required": 1, "type": 2}


def _sort_key(err):
    return tuple(str(p) for p in err.absolute_path), _FIRST.get(err.validator, 9), err.validator


# ---------------------------------------------------------------------------------------------- loading
def _split(v):
    """``'a, b'`` -> ``['a', 'b']`` so string and list forms validate (and report indices) alike."""
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return v


def _normalise(raw: dict) -> dict:
    """Shorthands LPOT accepts, rewritten into the one form the schema checks."""
    model = raw.get("model")
    if isinstance(model, dict):
        for k in ("inputs", "outputs"):
            if k in model:
                model[k] = _split(model[k])
    go = raw.get("graph_optimization")
    if isinstance(go, dict):
        if "precisions" in go:
            go["precisions"] = _split(go["precisions"])
        for spec in (go.get("op_wise") or {}).values() if isinstance(go.get("op_wise"), dict) else ():
            act = spec.get("activation") if isinstance(spec, dict) else None
            if isinstance(act, dict) and isinstance(act.get("dtype"), str):
                act["dtype"] = _split(act["dtype"])
    acc = (raw.get("evaluation") or {}).get("accuracy") if isinstance(raw.get("evaluation"), dict) else None
    if isinstance(acc, dict) and isinstance(acc.get("metric"), str):
        acc["metric"] = {acc["metric"]: None}
    return raw


def validate(raw: Any) -> None:
    """Raise ConfigError (one line, naming the key path) unless ``raw`` matches :data:`SCHEMA`."""
    import jsonschema

    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {_show(raw)}")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=_sort_key)
    if errors:
        raise ConfigError(_format_error(errors[0]))
    crit = (raw.get("tuning") or {}).get("accuracy_criterion") or {}
    if "relative" in crit and "absolute" in crit:
        raise ConfigError("tuning.accuracy_criterion: give relative or absolute, not both")


def read_yaml(path) -> dict:
    import yaml

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or one_line(e)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return {} if raw is None else raw


def load_config(source) -> Config:
    """A YAML path, a dict or a :class:`Config` -> a validated :class:`Config`."""
    if isinstance(source, Config):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(source))
        raw, base_dir, name = read_yaml(path), os.path.dirname(path), os.fspath(source)
    elif isinstance(source, dict):
        import copy

        raw, base_dir, name = copy.deepcopy(source), os.getcwd(), "<dict>"
    else:
        raise ConfigError(f"config: expected a YAML path or a dict, got {type(source).__name__}")
    if isinstance(raw, dict):
        raw = _normalise(raw)
    validate(raw)
    return _build(raw, base_dir, name)


def _build(raw: dict, base_dir: str, source: str) -> Config:
    def resolve(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base_dir, p))

    cfg = Config(base_dir=base_dir, source=source)
    model = raw.get("model") or {}
    cfg.name = model.get("name")
    cfg.inputs = model.get("inputs") or None
    cfg.outputs = model.get("outputs") or None
    cfg.input_shapes = model.get("input_shapes")
    go = raw.get("graph_optimization") or {}
    if go.get("precisions"):
        cfg.precisions = list(dict.fromkeys(go["precisions"]))
    for op, spec in (go.get("op_wise") or {}).items():
        prec = spec.get("precision") or (spec.get("activation") or {}).get("dtype", [None])[0]
        if prec == "fp32":
            cfg.fp32_ops.append(op)
        elif prec == "bf16":
            cfg.bf16_ops.append(op)
    acc = (raw.get("evaluation") or {}).get("accuracy") or {}
    cfg.metric = acc.get("metric")
    dl = acc.get("dataloader")
    if dl:
        ds = dl["dataset"]
        inputs = ds.get("inputs", "x")
        cfg.dataset = DatasetConfig(
            path=resolve(ds["path"]),
            batch_size=dl.get("batch_size", 1),
            inputs=[inputs] if isinstance(inputs, str) else list(inputs),
            labels=ds.get("labels", "y"),
            limit=ds.get("limit"),
        )
        if cfg.dataset.path.endswith(".npy"):  # labels then name a second .npy file
            if "labels" not in ds:
                raise ConfigError("evaluation.accuracy.dataloader.dataset.labels: an .npy dataset needs "
                                  "labels: <labels>.npy")
            cfg.dataset.labels = resolve(cfg.dataset.labels)
    tuning = raw.get("tuning") or {}
    crit = tuning.get("accuracy_criterion") or {}
    if "absolute" in crit:
        cfg.relative, cfg.absolute = None, float(crit["absolute"])
    elif "relative" in crit:
        cfg.relative = float(crit["relative"])
    cfg.higher_is_better = crit.get("higher_is_better")
    ep = tuning.get("exit_policy") or {}
    cfg.timeout = float(ep.get("timeout", cfg.timeout))
    cfg.max_trials = int(ep.get("max_trials", cfg.max_trials))
    cfg.random_seed = int(tuning.get("random_seed", cfg.random_seed))
    ws = tuning.get("workspace") or {}
    cfg.workspace = resolve(ws["path"]) if "path" in ws else os.path.abspath(cfg.workspace)
    resume = ws.get("resume", False)
    cfg.resume = resolve(resume) if isinstance(resume, str) else bool(resume)
    return cfg
