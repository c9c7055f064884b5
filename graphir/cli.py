"""The ``graphir`` command line: ``compile``, ``dump``, ``check``, ``bench`` and ``env``.

Errors are one line on stderr: ``graphir: error: ...`` with exit code 2 for bad input, exit code 1 for a
numeric mismatch, ``graphir: internal error: ...`` with exit code 3 for bugs (``GRAPHIR_DEBUG=1`` shows
the traceback). Arguments are validated before TensorFlow is imported, so typos fail fast.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Optional, Sequence

from .errors import ConfigError, GraphirError, InternalError, ModelLoadError, describe, one_line

# TF node names (tensorflow/core/framework/node_def_util.cc), optionally with an output index.
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*(:\d+)?$")
FP32_TOL = (1e-4, 1e-5)   # compile --verify defaults (rtol, atol): folding reorders float math
BF16_TOL = (5e-2, 5e-2)   # bf16 keeps ~3 significant digits


class NumericMismatch(Exception):
    """A check failed: exit code 1."""


def _names(v: Optional[str], flag: str) -> Optional[list[str]]:
    if v is None:
        return None
    names = [s.strip() for s in v.split(",")]
    if not any(names):
        raise ConfigError(f"{flag}: empty list of names")
    for n in names:
        if not _TENSOR_NAME.match(n):
            raise ConfigError(f"{flag}: {n!r} is not a valid tensor name (expected 'node' or 'node:N', comma-separated)")
    return names


def check_model_path(path: str) -> None:
    """Cheap checks that need no TensorFlow: exists, not empty, a SavedModel directory has saved_model.pb."""
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
            raise ModelLoadError(f"{path}: directory has no saved_model.pb (not a SavedModel)")
    elif os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path}: empty file")
    elif not os.access(path, os.R_OK):
        raise ModelLoadError(f"{path}: not readable")


def check_output_path(out: str, model: str, fmt: Optional[str] = None) -> None:
    parent = os.path.dirname(os.path.abspath(out)) or "."
    if not os.path.isdir(parent):
        raise GraphirError(f"{out}: parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise GraphirError(f"{out}: directory {parent} is not writable")
    if os.path.exists(out) and os.path.samefile(out, model):
        raise GraphirError(f"{out}: output would overwrite the input model")
    if os.path.isdir(out) and not os.path.isfile(os.path.join(out, "saved_model.pb")) and os.listdir(out):
        raise GraphirError(f"{out}: is a non-empty directory that is not a SavedModel; refusing to replace it")
    if fmt is not None and os.path.exists(out) and os.path.isdir(out) != (fmt == "saved_model"):
        what = "a directory" if os.path.isdir(out) else "a file"
        kind = "a SavedModel directory" if fmt == "saved_model" else f"a {fmt} file"
        raise GraphirError(f"{out}: is {what}; refusing to replace it with {kind}")


def _tf(*models: str):
    """Import TensorFlow quietly, unless every model is ONNX (those never need it)."""
    if models and all(m.lower().endswith(".onnx") for m in models):
        return None
    from .quiet import import_tf_quietly

    return import_tf_quietly()


# ---------------------------------------------------------------------------------------------- compile
class _Phases:
    """Wall time per phase of a compile, for ``--stats``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, name: str, t0: float) -> float:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - t0
        return now

    def table(self) -> str:
        from .table import format_table

        rows = [("phase", "seconds")] + [(k, f"{v:.2f}") for k, v in self.seconds.items()]
        rows.append(("total", f"{sum(self.seconds.values()):.2f}"))
        return format_table(rows, align="lr", rules=(1, len(rows) - 1)) + "\n"


def _shapes_option(a) -> None:
    """Syntax of --input-shapes, checked before TensorFlow is imported."""
    from .runtime_check.shapes import parse_input_shapes

    parse_input_shapes(a.input_shapes)
    if getattr(a, "batch_size", None) is not None and a.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")


def cmd_compile(a) -> int:
    t0 = time.perf_counter()
    from . import compiler
    from .backends import FORMATS, infer_format

    check_model_path(a.model)
    fmt = a.format or infer_format(a.output)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if a.target not in compiler.TARGETS:
        raise ConfigError(f"unknown --target {a.target!r}; expected one of {', '.join(compiler.TARGETS)}")
    try:
        # Given on the command line, --precisions beats a YAML config's (a list marks it explicit, see lpot).
        asked = None if a.precisions is None else compiler.parse_precisions(a.precisions)
    except ConfigError as e:
        raise ConfigError("--precisions: " + str(e).split(": ", 1)[-1]) from None  # not "precisions[0]"
    # A TF model written as ONNX is exported: the TF passes, then the conversion (op set --opset).
    export = fmt == "onnx" and not a.model.lower().endswith((".onnx", ".gir"))
    if a.opset is not None and not export:
        raise ConfigError("--opset applies to exporting a TensorFlow model to ONNX (-o model.onnx); ONNX models "
                          "keep their op set")
    if export and a.opset is not None:
        from .transforms.tf_to_onnx import check_opset

        check_opset(a.opset)
    if fmt == "onnx" and asked and "bf16" in asked:
        raise ConfigError("--precisions: bf16 is not supported for ONNX output (ONNX Runtime's CPU provider has "
                          "no bf16 kernels); use fp32")
    inputs, outputs = _names(a.inputs, "--inputs"), _names(a.outputs, "--outputs")
    if a.config is not None and not os.path.isfile(a.config):
        raise ConfigError(f"{a.config}: no such config file")
    kw = dict(precisions=asked or "fp32", passes=a.passes, target=a.target, config=a.config,
              fp32_ops=a.fp32_ops, bf16_ops=a.bf16_ops, dump_dir=a.dump_dir,
              print_ir_after_all=a.print_ir_after_all, print_ir_after=a.print_ir_after or [])
    if a.workers is not None:
        if a.workers < 1:
            raise ConfigError("--workers must be >= 1")
        if a.config is None:
            raise ConfigError("--workers only applies to accuracy-driven tuning; use it with --config")
        kw["workers"] = a.workers
    if a.dim < 1:
        raise ConfigError("--dim must be >= 1")
    if (a.rtol is not None and a.rtol < 0) or (a.atol is not None and a.atol < 0):
        raise ConfigError("--rtol and --atol must be >= 0")
    _shapes_option(a)
    if not a.measure_seconds > 0:
        raise ConfigError("--measure-seconds must be > 0")
    check_output_path(a.output, a.model, fmt)

    phases = _Phases()
    t = time.perf_counter()
    _tf(a.model)
    t = phases.add("tf start-up", t)
    import graphir
    from .runtime_check.check import CannotRunOriginal, reference_run, require_runnable
    from .runtime_check.shapes import resolve_input_shapes

    original = graphir.load(a.model, inputs, outputs)
    require_runnable(original, a.model)
    if export:
        # The conversion names every op it cannot convert (after the TF passes, which remove some).
        kw.update(export="onnx", opset=a.opset)
    spec, where = a.input_shapes, "--input-shapes"
    if spec is None and a.config is not None:
        from .config import load_config

        spec, where = load_config(a.config).input_shapes, "model.input_shapes"
    shapes = resolve_input_shapes(original, spec, where)
    t = phases.add("load", t)

    # The original's outputs are computed once, before compiling: a model graphir cannot run is still
    # compiled (with a warning, unless --verify was asked for explicitly), and sizes found by trying
    # also serve the passes that time the model.
    # Verification runs at batch 1 unless asked: the cost of a run grows with the batch.
    batch = 1 if a.batch_size is None else a.batch_size
    if a.batch_size is not None:
        kw["measure_batch"] = a.batch_size  # time bf16 against fp32 at the batch the user deploys at
    reference = None
    if a.verify is not False:
        try:
            reference = reference_run(original, shapes=shapes, batch_size=batch, dim=a.dim)
        except CannotRunOriginal as e:
            if a.verify:
                raise
            print(f"graphir: warning: verification skipped: {one_line(e)}", file=sys.stderr)
        t = phases.add("verify", t)
    run_shapes = {**(reference.probed if reference else {}), **shapes}
    if run_shapes:
        kw["input_shapes"] = run_shapes
    result = graphir.compile(original, **kw)
    t = phases.add("passes", t)
    # The effective precisions: a YAML config or the target may have changed what was asked for.
    effective = result.report.get("precisions", asked or ["fp32"])
    if reference is not None:
        rtol, atol = BF16_TOL if "bf16" in effective else FP32_TOL
        rtol = a.rtol if a.rtol is not None else rtol
        atol = a.atol if a.atol is not None else atol
        rep = reference.compare(result.ir, rtol=rtol, atol=atol)
        t = phases.add("verify", t)
        if not rep.ok:
            sys.stderr.write(rep.format())
            raise NumericMismatch(f"verification failed, {rep.first_failure()}; not writing {a.output} "
                                  f"(use --no-verify to write it anyway)")
    measured = None
    if a.measure:  # before writing: a measurement that cannot run is an error, and leaves nothing behind
        from .runtime_check.bench import bench_graphs

        same = dict(feeds=reference.feeds[0], feeds_source=reference.source) if reference is not None else {}
        measured = bench_graphs([original, result.ir], [a.model, a.output], input_shapes=run_shapes or None,
                                batch_size=batch, seconds=a.measure_seconds, **same)
        t = phases.add("measure", t)
    result.save(a.output, format=fmt)
    t = phases.add("save", t)
    if a.stats and result.report.get("passes"):
        from .transforms.pass_manager import stats_table

        sys.stdout.write(stats_table(result.report["passes"]))
    if a.stats:
        sys.stdout.write(phases.table())
    if result.report.get("precision_stats"):
        from .transforms.auto_mixed_precision import format_precision_stats

        sys.stdout.write(format_precision_stats(result.report) + "\n")
    lowered = {k: v for r in result.report.get("passes", []) if r.name == "lower-onednn"
               for k, v in r.result.counts.items() if v}
    if lowered and (a.explain or result.report.get("precision_stats")):
        print("fused kernels: " + ", ".join(f"{k}={v}" for k, v in lowered.items()))
    if a.explain:
        from .transforms.auto_mixed_precision import format_explain

        text = format_explain(result.report) or "no precision decisions (compiled for fp32 only)"
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        # What the canonicalisation left alone (e.g. XLA-compiled calls it does not inline), with the reason.
        for w in result.report.get("warnings", []):
            if w.startswith("inline-grouped-conv:"):
                print(f"left in place: {w.split(':', 1)[1].strip()}")
    if measured is not None:
        base, opt = measured.rows
        print(f"measured speed-up of {a.output} over {a.model}: {opt.speedup:.2f}x (95% CI {opt.ci[0]:.2f}-"
              f"{opt.ci[1]:.2f}); median {opt.median_ms:.2f} ms vs {base.median_ms:.2f} ms, "
              f"{measured.rounds} rounds on {measured.inputs}")
    for w in result.report.get("warnings", []):
        print(f"graphir: warning: {one_line(w)}", file=sys.stderr)
    prec = ",".join(effective)
    st = result.report.get("precision_stats")
    if st and "bf16" in prec:  # what the graph runs in, not only what was asked for
        prec += f": {sum(int(v[1]) for v in st['ops'].values())} nodes in bf16"
    checked = f"verified on {reference.source}" if reference is not None else "not verified"
    print(f"graphir: wrote {a.output} ({len(original)} -> {len(result.ir)} nodes, {prec}; {checked}) in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- dump
def cmd_dump(a) -> int:
    check_model_path(a.model)
    inputs, outputs = _names(a.inputs, "--inputs"), _names(a.outputs, "--outputs")
    if a.format not in ("text", "dot"):
        raise ConfigError(f"unknown --format {a.format!r}; expected text or dot")
    if a.output:
        check_output_path(a.output, a.model, "text")
    _tf(a.model)
    import graphir

    graph = graphir.load(a.model, inputs, outputs)
    if a.format == "dot":
        from .ir.dot import to_dot

        text = to_dot(graph)
    else:
        text = graph.text(full_constants=a.full_constants)
    if a.output:
        from .backends.atomic import atomic_write_text

        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------------------------- check
def cmd_check(a) -> int:
    check_model_path(a.original)
    check_model_path(a.optimized)
    inputs, outputs = _names(a.inputs, "--inputs"), _names(a.outputs, "--outputs")
    from .runtime_check.check import check_models, check_options

    check_options(a.rtol, a.atol, a.samples, a.dim, a.batch_size)
    _shapes_option(a)
    if a.inputs_npz is not None and (a.input_shapes is not None or a.batch_size is not None):
        raise ConfigError("--inputs-npz: the arrays have their own shapes; drop --input-shapes/--batch-size")
    if a.inputs_npz is not None and not os.path.isfile(a.inputs_npz):
        raise GraphirError(f"{a.inputs_npz}: no such inputs file")
    _tf(a.original, a.optimized)
    rep = check_models(a.original, a.optimized, inputs_npz=a.inputs_npz, rtol=a.rtol, atol=a.atol,
                       samples=a.samples, dim=a.dim, seed=a.seed, inputs=inputs, outputs=outputs,
                       input_shapes=a.input_shapes, batch_size=a.batch_size)
    sys.stdout.write(rep.format())
    return 0 if rep.ok else 1


# ---------------------------------------------------------------------------------------------- bench
def cmd_bench(a) -> int:
    if len(a.models) < 2 and not a.grappler_amp:
        raise ConfigError("bench: give at least two models (ORIGINAL OPTIMIZED ...), or one with --grappler-amp")
    for m in a.models:
        check_model_path(m)
    inputs, outputs = _names(a.inputs, "--inputs"), _names(a.outputs, "--outputs")
    _shapes_option(a)
    if a.threads is not None and a.threads < 1:
        raise ConfigError("--threads must be >= 1")
    if not a.seconds > 0:
        raise ConfigError("--seconds must be > 0")
    if a.inputs_npz is not None and a.input_shapes is not None:
        raise ConfigError("--inputs-npz and --input-shapes: give one; the arrays have their own shapes")
    if a.inputs_npz is not None and not os.path.isfile(a.inputs_npz):
        raise GraphirError(f"{a.inputs_npz}: no such inputs file")
    _tf()
    import graphir
    from .runtime_check.bench import bench_graphs
    from .runtime_check.check import load_npz, require_runnable

    arrays = load_npz(a.inputs_npz) if a.inputs_npz else None
    graphs = []
    for m in a.models:
        graphs.append(graphir.load(m, inputs, outputs))
        require_runnable(graphs[-1], m)
    rep = bench_graphs(graphs, a.models, arrays=arrays,
                       arrays_source=os.path.basename(a.inputs_npz) if a.inputs_npz else "inputs",
                       input_shapes=a.input_shapes, batch_size=a.batch_size, threads=a.threads,
                       seconds=a.seconds, grappler_amp=a.grappler_amp, progress=not a.quiet)
    if a.json:
        import json

        sys.stdout.write(json.dumps(rep.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(rep.table())
    return 0


# ---------------------------------------------------------------------------------------------- env
def cmd_env(a) -> int:
    _tf()
    from .runtime_check.target import describe

    from .dialects.tf_onednn import describe_kernels
    from .dialects.tf_opdefs import onednn_enabled

    text = describe().rstrip("\n") + "\n"
    kernels = describe_kernels()
    state = "on" if onednn_enabled() else "off (TF_ENABLE_ONEDNN_OPTS=0): portable kernels only"
    text += f"fused kernels for the native target (oneDNN {state}):\n"
    text += "".join(f"  {line}\n" for line in kernels.splitlines()) or "  none\n"
    import onnx
    import onnxruntime

    from .transforms.tf_to_onnx import CONVERTERS, DEFAULT_OPSET, MIN_OPSET, max_opset

    text += (f"onnx: {onnx.__version__}, onnxruntime: {onnxruntime.__version__} (runs ONNX models; no bf16 kernels)\n"
             f"TF -> ONNX export: op sets {MIN_OPSET} to {max_opset()} (default {DEFAULT_OPSET}), "
             f"{len(CONVERTERS)} TF ops convert\n")
    sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, like every other graphir error."""

    def error(self, message):
        self.exit(2, f"graphir: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphir", description="Offline graph optimizer for TensorFlow inference models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def shapes_options(sp, batch_default, what, batch_help):
        sp.add_argument("--input-shapes", metavar="NAME:DxD..", help=f"shapes of the {what}, e.g. "
                        f"image:1x240x240x3,mask:1x240x240 (for unknown sizes the model rejects at random)")
        sp.add_argument("--batch-size", type=int, default=batch_default, metavar="N",
                        help=f"size of an unknown batch dim (dim 0) in the {what} ({batch_help})")

    def io_names(sp):
        sp.add_argument("--inputs", metavar="A,B", help="input tensor names (default: the placeholders)")
        sp.add_argument("--outputs", metavar="Y", help="output tensor names (default: sinks or the signature)")

    c = sub.add_parser("compile", help="optimize a model and write it out")
    c.add_argument("model", help=".pb, .pbtxt, .gir, .keras/.h5 file or SavedModel directory")
    c.add_argument("-o", "--output", required=True, help="output path")
    io_names(c)
    c.add_argument("--format", help="pb, pbtxt, saved_model or gir (default: from the output suffix)")
    c.add_argument("--precisions", help="fp32 (default, or the --config's), bf16,fp32 or bf16")
    c.add_argument("--target", default="native", help="native (default), avx512_bf16, amx_bf16 or generic")
    c.add_argument("--opset", type=int, metavar="N",
                   help="ONNX op set of a TensorFlow model exported to ONNX (-o model.onnx; default 17)")
    c.add_argument("--passes", metavar="PIPELINE", help="comma-separated pass pipeline instead of the default")
    c.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass")
    c.add_argument("--print-ir-after", action="append", metavar="PASS", help="print the IR after PASS")
    c.add_argument("--dump-dir", metavar="DIR", help="write NN-<pass>.gir after every pass")
    c.add_argument("--stats", action="store_true", help="print a table of passes, times and node counts")
    c.add_argument("--explain", action="store_true", help="explain precision decisions")
    c.add_argument("--fp32-ops", metavar="A,B", help="op types or node names forced to fp32")
    c.add_argument("--bf16-ops", metavar="A,B", help="op types or node names forced to bf16")
    c.add_argument("--config", metavar="CONF.yaml", help="LPOT-style YAML config")
    c.add_argument("--workers", type=int, metavar="N", help="parallel workers")
    c.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                   help="numerically check the result before writing it (default: on; a model that cannot "
                        "run here is then compiled unverified, with a warning; an explicit --verify makes "
                        "that an error)")
    c.add_argument("--rtol", type=float, help=f"verify tolerance (default {FP32_TOL[0]:g}; {BF16_TOL[0]:g} with bf16)")
    c.add_argument("--atol", type=float, help=f"verify tolerance (default {FP32_TOL[1]:g}; {BF16_TOL[1]:g} with bf16)")
    shapes_options(c, None, "--verify and --measure inputs", "default 1; when given, also the batch of the bf16 "
                   "profitability timing, default 8")
    c.add_argument("--dim", type=int, default=4,
                   help="first size tried for unknown non-batch dims of --verify inputs (default 4)")
    c.add_argument("--measure", action="store_true",
                   help="time the written model against the original and print the speed-up (as `graphir bench`)")
    c.add_argument("--measure-seconds", type=float, default=10.0, metavar="S",
                   help="time spent in timed rounds for --measure (default 10)")
    c.set_defaults(func=cmd_compile)

    d = sub.add_parser("dump", help="print a model as graphir text IR (or DOT)")
    d.add_argument("model")
    io_names(d)
    d.add_argument("--full-constants", action="store_true", help="print constants in full (re-parsable)")
    d.add_argument("--format", default="text", help="text (default) or dot")
    d.add_argument("-o", "--output", help="write to FILE instead of stdout")
    d.set_defaults(func=cmd_dump)

    k = sub.add_parser("check", help="run two models on the same inputs and compare outputs")
    k.add_argument("original")
    k.add_argument("optimized")
    k.add_argument("--inputs-npz", metavar="F", help=".npz of input arrays keyed by input name")
    k.add_argument("--rtol", type=float, default=1e-5)
    k.add_argument("--atol", type=float, default=1e-6)
    k.add_argument("--samples", type=int, default=1, help="random input draws (default 1)")
    k.add_argument("--dim", type=int, default=4, help="size of unknown dims (default 4; tried growing when "
                                                        "the original rejects it)")
    shapes_options(k, None, "random inputs", "default: --dim")
    k.add_argument("--seed", type=int, default=0)
    io_names(k)
    k.set_defaults(func=cmd_check)

    b = sub.add_parser("bench", help="time models against the first one, interleaved, in one process")
    b.add_argument("models", nargs="+", metavar="MODEL", help="ORIGINAL OPTIMIZED [MORE...]: the first is the baseline")
    b.add_argument("--grappler-amp", action="store_true",
                   help="add a row: the first model with TF's own oneDNN bf16 auto-mixed-precision")
    shapes_options(b, None, "inputs", "default 1; with --inputs-npz, all rows")
    b.add_argument("--inputs-npz", metavar="F",
                   help=".npz of input arrays keyed by input name (cut to --batch-size rows)")
    b.add_argument("--threads", type=int, metavar="N", help="intra- and inter-op threads (default: TF's)")
    b.add_argument("--seconds", type=float, default=10.0, help="time spent in timed rounds (default 10)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    io_names(b)
    b.set_defaults(func=cmd_bench)

    e = sub.add_parser("env", help="describe TensorFlow, oneDNN and the CPU's bf16 support")
    e.set_defaults(func=cmd_env)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_usage(sys.stderr)
        return 2
    debug = bool(os.environ.get("GRAPHIR_DEBUG"))
    try:
        return a.func(a)
    except NumericMismatch as e:
        print(f"graphir: error: {one_line(e)}", file=sys.stderr)
        return 1
    except GraphirError as e:
        if debug:
            raise
        print(f"graphir: error: {one_line(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except BrokenPipeError:  # e.g. `graphir dump m.pb | head`: stop quietly, also at interpreter exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("graphir: interrupted", file=sys.stderr)
        return 130
    except InternalError as e:
        if debug:
            raise
        print(f"graphir: internal error: {one_line(e)}; rerun with GRAPHIR_DEBUG=1 for a traceback", file=sys.stderr)
        return 3
    except OSError as e:  # a file graphir was asked to read or write: bad input, not a bug
        if debug:
            raise
        what = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
        print(f"graphir: error: {one_line(what)}", file=sys.stderr)
        return 2
    except Exception as e:  # anything else is a bug in graphir: one line, no traceback unless asked
        if debug:
            raise
        print(f"graphir: internal error: {describe(e)}; rerun with GRAPHIR_DEBUG=1 for a traceback",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
