"""Pass manager: pipeline parsing and errors, verification naming the pass, printing, dumps, stats."""
import io
import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf

import graphir
from conftest import assert_same_outputs, build, ops, run_cli
from graphir.errors import ConfigError, InternalError
from graphir.transforms.base import PASSES, Pass, PassResult, register_pass
from graphir.transforms.pass_manager import (
    FP32_PIPELINE, PassManager, default_pipeline, known_passes, parse_pipeline, stats_table)


@dataclass(frozen=True)
class BreakIR(Pass):
    """Test only: points a node at a value of the wrong dtype."""

    name = "test-break-ir"

    def run(self, graph):
        n = next(n for n in graph.nodes() if n.op_type == "Mul")
        c = graph.add_node("Const", (), {"dtype": graphir.DType.get("i32"),
                                         "value": graphir.Tensor.from_array(np.int32(1))},
                           [graphir.TensorType(graphir.DType.get("i32"), graphir.Shape(()))], domain="tf")
        graph.set_input(n, 1, c.outputs[0])
        return PassResult.of(broken=1)


def _graph():
    def fn(x):
        y = tf.identity(tf.identity(x)) * tf.exp(tf.constant(0.0))
        return tf.nn.relu(y * 1.0 + y * 1.0, name="r")
    return build(fn, [[2, 3]])


def test_parse_pipeline_with_options():
    ps = parse_pipeline("strip-unused, fold-constants{max_bytes=1048576, max_expand_bytes=64},"
                        "remove-training-nodes{keep=a;b},cse")
    assert [p.name for p in ps] == ["strip-unused", "fold-constants", "remove-training-nodes", "cse"]
    assert ps[1].max_bytes == 1048576 and ps[1].max_expand_bytes == 64
    assert ps[2].keep == ("a", "b")
    assert all(PASSES[n] for n in FP32_PIPELINE)


@pytest.mark.parametrize("text,why", [
    ("strip-unused,no-such-pass", "unknown pass 'no-such-pass'"),
    ("cse,,dce", "bad pass pipeline"),
    ("fold-constants{max_bytes=", "bad pass pipeline"),
    ("", "empty pass pipeline"),
])
def test_bad_pipelines_give_one_line_listing_known_passes(text, why):
    with pytest.raises(ConfigError) as e:
        parse_pipeline(text)
    msg = str(e.value)
    assert why in msg and "\n" not in msg
    assert "known passes: " in msg and all(p in msg for p in FP32_PIPELINE)


def test_bad_option():
    with pytest.raises(ConfigError, match="pass 'cse': bad option 'nope'"):
        parse_pipeline("cse{nope=1}")
    with pytest.raises(ConfigError, match="not a valid int"):
        parse_pipeline("fold-constants{max_bytes=lots}")


def test_verifier_failure_names_pass_and_predecessors():
    register_pass(BreakIR)
    try:
        pm = PassManager.from_pipeline("remove-training-nodes,cse,test-break-ir,dce")
        with pytest.raises(InternalError) as e:
            pm.run(_graph().copy())
    finally:
        PASSES.pop(BreakIR.name)
    msg = str(e.value)
    assert "after pass 'test-break-ir'" in msg and "(after passes: remove-training-nodes, cse)" in msg
    assert "expected f32" in msg


def test_records_print_dump_and_stats(tmp_path):
    g = _graph()
    out = io.StringIO()
    pm = PassManager.from_pipeline("remove-training-nodes,fold-constants,cse,dce", print_ir_after=["cse"],
                                   dump_dir=str(tmp_path), out=out)
    work = g.copy()
    recs = pm.run(work)
    assert [r.name for r in recs] == ["remove-training-nodes", "fold-constants", "cse", "dce"]
    assert recs[0].nodes_before == len(g) and recs[-1].nodes_after == len(work)
    assert recs[0].result.counts["identities_removed"] == 2
    printed = out.getvalue()
    assert printed.count("// -----// IR after") == 1 and "IR after cse" in printed
    assert "graph @main {" in printed
    assert sorted(os.listdir(tmp_path)) == ["01-remove-training-nodes.gir", "02-fold-constants.gir",
                                            "03-cse.gir", "04-dce.gir"]
    assert (tmp_path / "04-dce.gir").read_text() == work.text(full_constants=True)
    table = stats_table(recs)
    assert table.splitlines()[0].split() == ["pass", "seconds", "verify", "s", "before", "after", "counts"]
    assert all(r.verify_seconds >= 0 for r in recs)
    assert "identities_removed=2" in table and table.splitlines()[-1].startswith("total")
    assert_same_outputs(g, work)


def test_fixed_point_repeats_until_nothing_changes():
    pm = PassManager.from_pipeline("simplify-arithmetic,cse", fixed_point=True)
    recs = pm.run(_graph().copy())
    assert len(recs) >= 4 and len(recs) % 2 == 0
    assert not any(r.result.changed for r in recs[-2:])


def test_print_ir_after_unknown_pass():
    with pytest.raises(ConfigError, match="unknown pass 'nope'"):
        PassManager.from_pipeline("cse", print_ir_after=["nope"])


def test_default_pipeline_and_compile_end_to_end():
    class Opts:
        precisions = ["fp32"]
    assert str(default_pipeline(Opts(), {})) == ",".join(FP32_PIPELINE)
    g = _graph()
    m = graphir.compile(g)
    assert {"Identity", "Placeholder", "Relu"} <= set(ops(m.ir))
    assert "Exp" not in ops(m.ir) and len(m.ir) < len(g)
    assert [r.name for r in m.report["passes"]] == FP32_PIPELINE and FP32_PIPELINE[-1] == "lower-onednn"
    assert_same_outputs(g, m.ir)


def test_cli_bad_pipeline_exit_code_2(tmp_path):
    pb = tmp_path / "m.pb"
    _graph().save(str(pb))
    p = run_cli("compile", pb, "-o", tmp_path / "o.pb", "--passes", "cse,bogus")
    assert p.returncode == 2, p.stderr
    (line,) = [ln for ln in p.stderr.splitlines() if ln.startswith("graphir: error:")]
    assert "unknown pass 'bogus'" in line and "known passes: " in line and "fold-constants" in line


def test_known_passes_lists_all_fp32_passes():
    assert set(FP32_PIPELINE) <= set(known_passes())


def test_pipeline_prints_and_parses_back_names_with_separators():
    from graphir.transforms.pipeline import Pipeline

    text = 'remove-training-nodes{keep=["a,b", "c;d", "{e}", "f g", plain]},cse'
    p = Pipeline.parse(text)
    assert p[0].keep == ("a,b", "c;d", "{e}", "f g", "plain")
    assert Pipeline.parse(str(p)) == p
    assert str(Pipeline.parse(str(p))) == str(p)


def test_required_passes_are_inserted_not_run_by_the_pass():
    from graphir.transforms.pipeline import Pipeline

    assert Pipeline.parse("fold-batch-norms").resolved().names() == ["fold-constants", "fold-batch-norms"]
    assert Pipeline.parse("auto-mixed-precision").resolved().names() == ["auto-mixed-precision", "cast-cleanup"]
    # Already present: nothing added.
    assert Pipeline.parse("fold-constants,cse,fold-batch-norms").resolved().names() == [
        "fold-constants", "cse", "fold-batch-norms"]
