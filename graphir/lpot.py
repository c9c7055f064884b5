"""The LPOT / Neural Compressor compatible front door: ``Graph_Optimization`` and YAML-driven compiles.

``Graph_Optimization`` is a thin attribute-style layer over :func:`graphir.compile`; with a YAML config or
an evaluation (``eval_func`` / ``eval_dataloader``) the work happens in :func:`compile_with_config`.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

from . import tuning
from .compiler import compile as compile_model
from .compiler import parse_precisions, split_list
from .config import Config, load_config
from .data import NpzDataLoader
from .data import evaluate as evaluate_batches
from .errors import ConfigError, GraphirError, InternalError, describe, one_line
from .frontends import load
from .metrics import make_metric
from .runtime_check.target import resolve as resolve_target


def _score(what: str, fn, model) -> float:
    """Run one evaluation; a failure in the user's data or function is a one-line error, not a crash."""
    try:
        value = fn(model)
    except (GraphirError, InternalError):  # graphir's own errors keep their meaning (and exit code)
        raise
    except Exception as e:  # user code (eval_func, a dataloader, a metric) may raise anything
        raise GraphirError(one_line(f"{what} failed: {describe(e)}", 400)) from e
    try:
        return float(value) + 0.0  # + 0.0: no "-0" in the tables for a negated zero loss
    except (TypeError, ValueError):
        raise GraphirError(f"{what} returned {type(value).__name__} {value!r:.60}, expected a number") from None


class UserEvaluator:
    """``eval_func`` behind the same error handling as the YAML evaluation; picklable if the function is."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, model) -> float:
        return _score("eval_func", self.fn, model)


class DataEvaluator:
    """``evaluate(model) -> float`` over a dataloader with a metric; picklable for worker processes."""

    def __init__(self, dataloader, metric=None):
        self.dataloader, self.metric = dataloader, metric

    def __call__(self, model) -> float:
        return _score(f"evaluation ({self.describe()})",
                      lambda m: evaluate_batches(m, self.dataloader, make_metric(self.metric)), model)

    def describe(self) -> str:
        dl = self.dataloader
        return f"{make_metric(self.metric).name} on {getattr(dl, 'path', type(dl).__name__)}"


def _evaluation(cfg: Config, eval_func, eval_dataloader, metric):
    """(evaluate callable, metric name, higher_is_better default, what it is) or None when nothing
    evaluates."""
    if eval_func is not None:
        if not callable(eval_func):
            raise ConfigError("eval_func: expected a function taking the model and returning a float")
        name = getattr(eval_func, "__qualname__", None) or type(eval_func).__qualname__  # no addresses
        return UserEvaluator(eval_func), "metric", True, f"eval_func {getattr(eval_func, '__module__', '')}.{name}"
    spec = metric if metric is not None else cfg.metric
    if eval_dataloader is None and cfg.dataset is not None:
        ds = cfg.dataset
        try:
            eval_dataloader = NpzDataLoader(ds.path, ds.batch_size, ds.inputs, ds.labels, ds.limit)
        except ConfigError as e:  # name the full key path, as every other config error does
            msg = str(e)
            raise ConfigError("evaluation.accuracy.dataloader." + msg if msg.startswith("dataset") else msg) from None
    if eval_dataloader is None:
        return None
    m = make_metric(spec)
    ev = DataEvaluator(eval_dataloader, spec)
    return ev, m.name, m.higher_is_better, ev.describe()


def compile_with_config(model, config=None, *, precisions=None, inputs=None, outputs=None, passes=None,
                        target: str = "native", fp32_ops=None, bf16_ops=None, eval_func: Optional[Callable] = None,
                        eval_dataloader=None, metric=None, workers: int = 1, progress: bool = True,
                        log=None, **options):
    """Compile ``model`` as an LPOT-style ``config`` (YAML path, dict or None) says.

    Without any evaluation this is one conversion. With one, the fp32 baseline is measured and bf16 ops
    fall back to fp32 until the accuracy criterion holds (see :mod:`graphir.tuning`). Explicit arguments
    win over the YAML; ``precisions`` only when it is not the compile default ``'fp32'``."""
    cfg = load_config(config) if config is not None else Config()
    if precisions is None or (isinstance(precisions, str) and precisions.strip() == "fp32"):
        precisions = cfg.precisions or precisions or "fp32"
    precs = parse_precisions(precisions)
    # A bad target (or bf16 alone without bf16 support) fails here, before the baseline is scored.
    resolve_target(target, precs)
    inputs = split_list(inputs) or cfg.inputs
    outputs = split_list(outputs) or cfg.outputs
    fp32 = list(dict.fromkeys(cfg.fp32_ops + split_list(fp32_ops)))
    bf16 = list(dict.fromkeys(cfg.bf16_ops + split_list(bf16_ops)))
    if cfg.input_shapes is not None:
        options.setdefault("input_shapes", cfg.input_shapes)
    kwargs = dict(precisions=precs, passes=passes, target=target, fp32_ops=fp32, bf16_ops=bf16, **options)
    if log is not None:
        kwargs["log"] = log
    log = log or sys.stderr

    ev = _evaluation(cfg, eval_func, eval_dataloader, metric)
    if ev is None:
        return compile_model(model, inputs=inputs, outputs=outputs, **kwargs)

    evaluate, metric_name, hib_default, described = ev
    graph = load(model, inputs, outputs)
    path = os.path.abspath(os.fspath(model)) if isinstance(model, (str, os.PathLike)) else None
    # Trials compare precision plans by accuracy, so they skip the timed profitability check (slow, and
    # noisy between trials); it runs once, on the chosen model, at the end.
    measure = kwargs.pop("measure_profitability", True)
    kwargs["measure_profitability"] = False
    builder = tuning.CandidateBuilder(graph, kwargs, model_path=path, inputs=inputs, outputs=outputs)
    hib = cfg.higher_is_better if cfg.higher_is_better is not None else hib_default
    crit = tuning.Criterion(cfg.relative, cfg.absolute, hib)

    if "bf16" not in precs:  # nothing to tune: convert, then check the result against the baseline
        return _check_only(builder, evaluate, crit, metric_name, cfg, log)

    policy = tuning.Policy(crit, cfg.timeout, cfg.max_trials, cfg.random_seed, cfg.workspace, cfg.resume,
                           max(1, int(workers or 1)), progress)
    fp = tuning.fingerprint(graph, kwargs, described)
    tuner = tuning.Tuner(builder, evaluate, policy, fingerprint=fp, metric_name=metric_name,
                         exclude=bf16, log=log)
    result = tuner.run()
    out = result.model
    if measure and result.best["bf16_ops"]:
        out = builder.build(frozenset(result.best["fp32_ops"]), measure_profitability=True)
    summary = result.summary()
    summary.update(metric_name=metric_name, criterion=crit.text())
    out.report["tuning"] = summary
    print(tuning.summary_table(result, metric_name, crit), file=log)
    if not result.met:
        msg = (f"no candidate met the accuracy criterion ({crit.text()}); returning the best found: "
               f"{metric_name} {result.best['metric']:.6g} vs fp32 baseline {result.baseline:.6g}")
        print(f"graphir: warning: {msg}", file=log)
        summary["warning"] = msg  # printed here already; report["warnings"] would print it twice in the CLI
    log.flush()
    return out


def _check_only(builder, evaluate, crit, metric_name, cfg, log):
    base = tuning.run_trial(builder, evaluate, None, cfg.random_seed)["metric"]
    res = tuning.run_trial(builder, evaluate, frozenset(), cfg.random_seed, keep_model=True)
    model, value = res["model"], res["metric"]
    met = crit.met(base, value)
    model.report["tuning"] = {"baseline": base, "metric": value, "met": met, "fp32_fallbacks": [],
                              "trials": 1, "metric_name": metric_name, "criterion": crit.text()}
    print(f"graphir: {metric_name}: fp32 baseline {base:.6g}, optimized {value:.6g} "
          f"({'meets' if met else 'misses'} the criterion: {crit.text()})", file=log)
    if not met:
        model.report["tuning"]["warning"] = "the optimized model misses the accuracy criterion"
        print("graphir: warning: the optimized model misses the accuracy criterion", file=log)
    return model


class Graph_Optimization:
    """LPOT's ``Graph_Optimization`` with the same attributes::

        graph_optimizer = Graph_Optimization('conf.yaml')   # or no config
        graph_optimizer.model = 'model.pb'                  # path or in-memory model
        graph_optimizer.precisions = 'bf16, fp32'           # optional (YAML or 'fp32' otherwise)
        graph_optimizer.input, graph_optimizer.output = 'input', 'probs'
        graph_optimizer.eval_func = fn                      # or eval_dataloader (+ metric)
        optimized_model = graph_optimizer()

    graphir extras: ``target``, ``workers``, ``fp32_ops``, ``bf16_ops`` and any :func:`graphir.compile`
    option as a keyword argument of the constructor (e.g. ``measure_profitability=False``)."""

    def __init__(self, conf_fname_or_obj=None, **options):
        self.conf = load_config(conf_fname_or_obj) if conf_fname_or_obj is not None else None
        self.model: Any = None
        self.precisions = None
        self.input = None
        self.output = None
        self.eval_func: Optional[Callable] = None
        self.eval_dataloader = None
        self.metric = None
        self.target = options.pop("target", "native")
        self.workers = options.pop("workers", 1)
        self.fp32_ops = options.pop("fp32_ops", None)
        self.bf16_ops = options.pop("bf16_ops", None)
        self.options = options

    # LPOT scripts also use the plural spellings.
    inputs = property(lambda self: self.input, lambda self, v: setattr(self, "input", v))
    outputs = property(lambda self: self.output, lambda self, v: setattr(self, "output", v))

    def __call__(self):
        if self.model is None:
            raise ConfigError("Graph_Optimization: set .model (a path or an in-memory model) before calling")
        if "tensorflow" not in sys.modules:  # an LPOT-style script: no TF start-up banner in its output
            from .quiet import import_tf_quietly

            import_tf_quietly()
        if self.conf is None and self.eval_func is None and self.eval_dataloader is None:
            return compile_model(self.model, precisions=self.precisions or "fp32", inputs=self.input,
                                 outputs=self.output, target=self.target, fp32_ops=self.fp32_ops,
                                 bf16_ops=self.bf16_ops, **self.options)
        # Unset precisions: the YAML's, else fp32 (compile_with_config's defaults).
        return compile_with_config(self.model, self.conf, precisions=_explicit(self.precisions),
                                   inputs=self.input, outputs=self.output,
                                   target=self.target, fp32_ops=self.fp32_ops, bf16_ops=self.bf16_ops,
                                   eval_func=self.eval_func, eval_dataloader=self.eval_dataloader,
                                   metric=self.metric, workers=self.workers, **self.options)

    fit = __call__


def _explicit(precisions):
    """An attribute set to plain 'fp32' must still beat the YAML, so pass it as a list."""
    if isinstance(precisions, str):
        return [p for p in precisions.split(",") if p.strip()]
    return precisions
