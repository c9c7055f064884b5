"""Passes on ONNX graphs: the fp32 pipeline (generic passes + the onnx rule sets) changes what it should,
leaves what it must, and every result computes the same outputs on ONNX Runtime."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import graphir
import onnx_models as M
from graphir.backends.onnx import to_model
from graphir.errors import ConfigError
from graphir.runtime_check.check import check_graphs


def model(nodes, inputs, outputs, inits=(), opset=M.OPSET):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info(*i) for i in inputs],
                     [h.make_tensor_value_info(*o) for o in outputs], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m, full_check=True)
    return m


def compile_checked(m, passes=None, samples=3):
    """Compile ``m``; the result must pass the checker and match the original on ORT."""
    res = graphir.compile(m, passes=passes)
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    rep = check_graphs(graphir.load(m), res.ir, samples=samples, rtol=1e-4, atol=1e-5)
    assert rep.ok, rep.format()
    return res.ir


def test_fp32_pipeline_on_a_cnn():
    g = compile_checked(M.cnn())
    assert g.op_histogram() == {"Conv": 1, "Gemm": 2, "Relu": 2, "Reshape": 1, "Softmax": 1}
    # The folded weights replaced the originals; nothing unread is left behind.
    assert sorted(g.initializers) == ["FB", "FW", "conv/B", "conv/W", "gemm/B", "gemm/C", "shp"]
    # Graph outputs keep their names.
    assert [p.name for p in g.outputs] == ["probs"]
    assert to_model(g).graph.output[0].name == "probs"


def test_default_pipeline_is_the_onnx_one():
    res = graphir.compile(M.cnn())
    assert res.report["pipeline"] == ("strip-unused,onnx-simplify,fold-constants{max_bytes=1073741824, "
                                      "max_expand_bytes=1073741824},onnx-transpose-sink,onnx-simplify,onnx-fuse,cse,dce")


def test_bf16_is_refused():
    with pytest.raises(ConfigError, match="bf16 is not supported for ONNX"):
        graphir.compile(M.cnn(), precisions="bf16,fp32")


def test_transposes_compose():
    m = model([h.make_node("Transpose", ["X"], ["a"], perm=[0, 2, 1, 3]),
               h.make_node("Transpose", ["a"], ["Y"], perm=[3, 0, 1, 2])],
              [("X", TP.FLOAT, [2, 3, 4, 5])], [("Y", TP.FLOAT, [5, 2, 4, 3])])
    g = compile_checked(m)
    assert g.op_histogram() == {"Transpose": 1}
    assert g.node("Y").attrs["perm"] == [3, 0, 2, 1]


def test_reshape_of_reshape_and_copied_dims():
    shape = nh.from_array(np.array([6, 4], np.int64), "s1")
    keep0 = nh.from_array(np.array([0, -1], np.int64), "s2")
    flat = nh.from_array(np.array([-1], np.int64), "s3")
    m = model([h.make_node("Reshape", ["X", "s1"], ["a"]), h.make_node("Reshape", ["a", "s3"], ["Y"]),
               h.make_node("Reshape", ["X", "s1"], ["b"]), h.make_node("Reshape", ["b", "s2"], ["Z"])],
              [("X", TP.FLOAT, [2, 3, 4])], [("Y", TP.FLOAT, [24]), ("Z", TP.FLOAT, [6, 4])],
              [shape, keep0, flat])
    g = compile_checked(m)
    # Y reads X directly; Z's 0 copies a dim of the intermediate (6), not of X (2): that pair stays.
    assert g.node("Y").inputs[0].name == "X"
    assert g.op_histogram() == {"Reshape": 3}


def test_dropout_in_training_mode_stays():
    on = nh.from_array(np.array(True), "on")
    m = model([h.make_node("Dropout", ["X", "", "on"], ["Y"], seed=1),
               h.make_node("Dropout", ["X"], ["Z"])],
              [("X", TP.FLOAT, [4])], [("Y", TP.FLOAT, [4]), ("Z", TP.FLOAT, [4])], [on])
    g = graphir.compile(m).ir
    assert g.op_histogram() == {"Dropout": 2}  # both are graph outputs: Z's keeps its name
    m2 = model([h.make_node("Dropout", ["X", "", "on"], ["a"], seed=1), h.make_node("Relu", ["a"], ["Y"]),
                h.make_node("Dropout", ["X"], ["b"]), h.make_node("Relu", ["b"], ["Z"])],
               [("X", TP.FLOAT, [4])], [("Y", TP.FLOAT, [4]), ("Z", TP.FLOAT, [4])], [on])
    g = graphir.compile(m2).ir
    assert g.op_histogram() == {"Dropout": 1, "Relu": 2}
    assert g.node("Z").inputs[0].name == "X"


def test_shape_of_static_tensor_folds():
    m1 = nh.from_array(np.array([-1], np.int64), "m1")
    m = model([h.make_node("Shape", ["X"], ["s"], start=1, end=-1),
               h.make_node("Concat", ["s", "m1"], ["s2"], axis=0),
               h.make_node("Reshape", ["X", "s2"], ["Y"])],
              [("X", TP.FLOAT, [2, 3, 4, 2])], [("Y", TP.FLOAT, [3, 4, 4])], [m1])
    g = compile_checked(m)
    assert g.op_histogram() == {"Reshape": 1}
    np.testing.assert_array_equal(g.node("Y").inputs[1].const.numpy(), [3, 4, -1])


def test_matmul_add_becomes_gemm_only_in_2d():
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((4, 5)).astype(np.float32), "W")
    b = nh.from_array(rng.standard_normal(5).astype(np.float32), "B")
    m = model([h.make_node("MatMul", ["X", "W"], ["a"]), h.make_node("Add", ["B", "a"], ["Y"]),
               h.make_node("MatMul", ["X3", "W"], ["c"]), h.make_node("Add", ["c", "B"], ["Z"])],
              [("X", TP.FLOAT, ["N", 4]), ("X3", TP.FLOAT, [2, 3, 4])],
              [("Y", TP.FLOAT, ["N", 5]), ("Z", TP.FLOAT, [2, 3, 5])], [w, b])
    g = compile_checked(m)
    assert g.node("Y").op_type == "Gemm"
    assert [v.name for v in g.node("Y").inputs] == ["X", "W", "B"]
    assert g.op_histogram() == {"Add": 1, "Gemm": 1, "MatMul": 1}


def test_matmul_add_whose_bias_broadcasts_the_product_stays():
    """[1, 64] @ [64, 64] + C[64, 64] is [64, 64]: the product broadcasts to C, which Gemm cannot do (its C
    broadcasts one way, to the product's shape)."""
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((64, 64)).astype(np.float32), "W")
    c = nh.from_array(rng.standard_normal((64, 64)).astype(np.float32), "C")
    m = model([h.make_node("MatMul", ["X", "W"], ["mm"]), h.make_node("Add", ["mm", "C"], ["Y"])],
              [("X", TP.FLOAT, [1, 64])], [("Y", TP.FLOAT, [64, 64])], [w, c])
    g = compile_checked(m)
    assert g.op_histogram() == {"Add": 1, "MatMul": 1}


def test_generic_passes_on_onnx():
    """cse merges equal nodes reading arguments, fold-constants evaluates initializer arithmetic (with the
    reference evaluator where ORT has no kernel: Add on int8), dce drops what nothing reads."""
    i8 = nh.from_array(np.array([100, -7], np.int8), "i8")
    two = nh.from_array(np.array([2.0], np.float32), "two")
    m = model([h.make_node("Relu", ["X"], ["r1"]), h.make_node("Relu", ["X"], ["r2"]),
               h.make_node("Mul", ["two", "two"], ["four"]), h.make_node("Mul", ["r1", "four"], ["a"]),
               h.make_node("Add", ["a", "r2"], ["Y"]),
               h.make_node("Add", ["i8", "i8"], ["Z"]), h.make_node("Neg", ["X"], ["unused"])],
              [("X", TP.FLOAT, [2])], [("Y", TP.FLOAT, [2]), ("Z", TP.INT8, [2])], [i8, two])
    res = graphir.compile(m, passes="fold-constants,cse,dce")
    g = res.ir
    assert g.op_histogram() == {"Add": 1, "Mul": 1, "Relu": 1}
    np.testing.assert_array_equal(g.outputs[1].value.const.numpy(), np.array([100, -7], np.int8) * 2)
    assert sorted(g.initializers) == ["Z/folded_0", "four/folded_0"]
    counts = {r.name: r.result.counts for r in res.report["passes"]}
    assert counts["cse"]["nodes_merged"] == 1
    assert counts["fold-constants"]["folded"] == 2
    # Z is computed by ORT from constants alone now; X still drives Y.
    rep = check_graphs(graphir.load(m), g, samples=2)
    assert rep.ok, rep.format()


def test_verifier_checks_types_against_the_schemas():
    from graphir.ir.verifier import VerificationError

    g = graphir.load(M.cnn())
    g.verify()
    mm = g.node("fc").outputs[0]
    mm.type = mm.type.with_dtype(graphir.DType.get("f16"))
    with pytest.raises(VerificationError, match=r"'fc_bias' \(onnx.Add\): input 1 \(FB\) is f32, expected f16"):
        g.verify()


def test_large_constant_of_shape_weights_fold_then_batch_norm_folds():
    """ONNX folds constants up to 1 GiB whatever op made them: a 1.2 MB ConstantOfShape weight becomes an
    initializer (the TF pipeline's 1 MB expansion cap does not apply), so the BatchNormalization after the
    Conv folds into it."""
    rng = np.random.default_rng(1)
    c = 256
    shp = nh.from_array(np.array([c, 128, 3, 3], np.int64), "wshape")
    bn = [nh.from_array(a.astype(np.float32), n) for a, n in
          ((rng.uniform(0.5, 2, c), "g"), (rng.standard_normal(c), "b"), (rng.standard_normal(c), "m"),
           (rng.uniform(0.5, 2, c), "v"))]
    m = model([h.make_node("ConstantOfShape", ["wshape"], ["W"],
                           value=nh.from_array(np.array([0.01], np.float32))),
               h.make_node("Conv", ["X", "W"], ["c"], pads=[1, 1, 1, 1]),
               h.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["Y"])],
              [("X", TP.FLOAT, [1, 128, 4, 4])], [("Y", TP.FLOAT, [1, c, 4, 4])], [shp, *bn])
    g = compile_checked(m)
    assert g.op_histogram() == {"Conv": 1}


def test_per_channel_scale_and_shift_fold_into_their_producer():
    """Conv * s + t, Gemm - t / s, BatchNormalization * s + t (the affine tail Caffe2 exports write as
    separate ops) each become one node; a constant varying along the width does not fold."""
    rng = np.random.default_rng(2)

    def init(name, *shape, lo=None):
        a = rng.uniform(lo, 2, shape) if lo is not None else rng.standard_normal(shape)
        return nh.from_array(a.astype(np.float32), name)

    inits = [init("W", 4, 3, 3, 3), init("Bc", 4), init("s", 1, 4, 1, 1), init("t", 4, 1, 1),
             init("GB", 5, 6), init("GC", 6), init("t2", 6), init("s2", 1, 6, lo=0.5),
             init("g", 3, lo=0.5), init("b", 3), init("m", 3), init("v", 3, lo=0.5),
             init("s3", 3, 1, 1), init("t3", 1, 3, 1, 1), init("wide", 1, 1, 1, 6)]
    m = model([h.make_node("Conv", ["X", "W", "Bc"], ["c"], pads=[1, 1, 1, 1]),
               h.make_node("Mul", ["c", "s"], ["cm"]), h.make_node("Add", ["t", "cm"], ["Y"]),
               h.make_node("Gemm", ["A", "GB", "GC"], ["gm"], alpha=0.5),
               h.make_node("Sub", ["gm", "t2"], ["gs"]), h.make_node("Div", ["gs", "s2"], ["G"]),
               h.make_node("BatchNormalization", ["X", "g", "b", "m", "v"], ["bn"]),
               h.make_node("Mul", ["s3", "bn"], ["bm"]), h.make_node("Add", ["bm", "t3"], ["bo"]),
               h.make_node("Mul", ["bo", "wide"], ["B"])],
              [("X", TP.FLOAT, ["N", 3, 6, 6]), ("A", TP.FLOAT, [2, 5])],
              [("Y", TP.FLOAT, ["N", 4, 6, 6]), ("G", TP.FLOAT, [2, 6]), ("B", TP.FLOAT, ["N", 3, 6, 6])], inits)
    g = compile_checked(m)
    assert g.op_histogram() == {"Conv": 1, "Gemm": 1, "BatchNormalization": 1, "Mul": 1}
    assert g.node("Y").op_type == "Conv" and g.node("G").op_type == "Gemm"
    assert g.node("B").op_type == "Mul" and g.node("B").inputs[0].node.op_type == "BatchNormalization"


def test_export_shape_arithmetic_pads_and_output_identity():
    """What TF->ONNX exporters write: Reshape(x, [Shape(x)[0], 1, 1, C]) with a dynamic batch (cast to
    int32 and back), a zero Pad before a Conv, an Identity naming the output. One Conv, one Reshape with
    a constant shape, the output named as before, same outputs on ORT at another batch size too."""
    rng = np.random.default_rng(3)
    i64 = lambda n, v: nh.from_array(np.array(v, np.int64), n)  # noqa: E731
    inits = [nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
             i64("P", [0, 0, 1, 1, 0, 0, 1, 1]), i64("zero", [0]), i64("one", [1]), i64("c", [1, 1, 4])]
    m = model([h.make_node("Pad", ["X", "P"], ["p"]),
               h.make_node("Conv", ["p", "W"], ["c1"]),
               h.make_node("GlobalAveragePool", ["c1"], ["gap"]),
               h.make_node("Flatten", ["gap"], ["f"]),
               h.make_node("Shape", ["f"], ["s"]), h.make_node("Cast", ["s"], ["s32"], to=TP.INT32),
               h.make_node("Slice", ["s32", "zero", "one"], ["b32"]),
               h.make_node("Cast", ["b32"], ["b"], to=TP.INT64),
               h.make_node("Concat", ["b", "c"], ["t"], axis=0),
               h.make_node("Reshape", ["f", "t"], ["r"]),
               h.make_node("Identity", ["r"], ["Y"])],
              [("X", TP.FLOAT, ["N", 3, 6, 6])], [("Y", TP.FLOAT, ["N", 1, 1, 4])], inits)
    g = compile_checked(m)
    assert g.op_histogram() == {"Conv": 1, "GlobalAveragePool": 1, "Flatten": 1, "Reshape": 1}
    np.testing.assert_array_equal(g.node("r").inputs[1].const.numpy(), [0, 1, 1, 4])
    assert g.node("c1").attrs["pads"] == [1, 1, 1, 1]
    assert [p.name for p in g.outputs] == ["Y"] and to_model(g).graph.output[0].name == "Y"
    assert [n.op_type for n in to_model(g).graph.node][-1] == "Reshape"
    import onnxruntime as ort

    x = rng.standard_normal((3, 3, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"X": x})[0]
    got = ort.InferenceSession(to_model(g).SerializeToString()).run(None, {"X": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_equal_constant_subgraphs_are_evaluated_once():
    """Fills of equal shape and value (their shape operands separate but equal initializers), and equal
    arithmetic on them, are evaluated once: the folded constants share one read-only array. A different
    fill value or shape is a different value."""
    def ints(name, *v):
        return nh.from_array(np.array(v, np.int64), name)

    def fill(out, shape, value):
        return h.make_node("ConstantOfShape", [shape], [out], value=nh.from_array(np.array([value], np.float32)))

    one = [nh.from_array(np.ones(1, np.float32), n) for n in ("one_a", "one_b")]
    m = model([fill("C1", "s1", 0.5), fill("C2", "s2", 0.5), fill("C3", "s1", 0.25), fill("C4", "s3", 0.5),
               h.make_node("Add", ["C1", "one_a"], ["A1"]), h.make_node("Add", ["C2", "one_b"], ["A2"]),
               h.make_node("Transpose", ["C4"], ["T4"], perm=[1, 0]),
               h.make_node("Mul", ["X", "A1"], ["Y1"]), h.make_node("Mul", ["X", "A2"], ["Y2"]),
               h.make_node("Mul", ["X", "C3"], ["Y3"]), h.make_node("Mul", ["X", "T4"], ["Y4"])],
              [("X", TP.FLOAT, [2, 3])], [(y, TP.FLOAT, [2, 3]) for y in ("Y1", "Y2", "Y3", "Y4")],
              [ints("s1", 2, 3), ints("s2", 2, 3), ints("s3", 3, 2), *one])
    res = graphir.compile(m, passes="fold-constants")
    g = res.ir
    assert res.report["passes"][0].result.counts["folded"] == 4
    assert g.op_histogram() == {"Mul": 4}  # the fills the shared values came from are gone too
    a1, a2, c3, t4 = (g.node(y).inputs[1].const.numpy() for y in ("Y1", "Y2", "Y3", "Y4"))
    assert a1 is a2 and not a1.flags.writeable
    np.testing.assert_array_equal(a1, np.full((2, 3), 1.5, np.float32))
    np.testing.assert_array_equal(c3, np.full((2, 3), 0.25, np.float32))
    np.testing.assert_array_equal(t4, np.full((2, 3), 0.5, np.float32))
    rep = check_graphs(graphir.load(m), g, samples=2)
    assert rep.ok, rep.format()


def test_rescaled_weights_precision():
    """Folding a scale into weights: float32 weights multiply in float32 (within an ulp of the exact product
    rounded once from float64); float16 weights are computed in float64 and rounded once (the bits of
    ``(w.astype(float64) * s).astype(float16)``), since rounding s to float16 first loses precision."""
    from graphir.transforms.onnx_rules import _scaled

    rng = np.random.default_rng(5)
    s = rng.uniform(-3, 3, 64)
    col = s.reshape(-1, 1, 1, 1)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    got = _scaled(w, col)
    assert got.dtype == np.float32
    exact = (w.astype(np.float64) * col).astype(np.float32)
    assert np.all(np.abs(got - exact) <= np.spacing(np.abs(exact)))
    w16 = w.astype(np.float16)
    got16 = _scaled(w16, col)
    assert got16.dtype == np.float16
    np.testing.assert_array_equal(got16.view(np.uint8), (w16.astype(np.float64) * col).astype(np.float16).view(np.uint8))
    # Rounding s to float16 first would give other bits: the test can tell them apart.
    assert not np.array_equal(got16.view(np.uint8), (w16 * col.astype(np.float16)).view(np.uint8))


def test_cse_merges_large_initializers_by_their_bits():
    """Large initializers merge when every byte is equal (NaNs included) and stay apart when one element
    differs where a sampled fingerprint does not look, or only in the sign of a zero."""
    n = 300_000  # more than one comparison chunk
    base = np.zeros(n, np.float32)
    base[7] = np.nan
    odd = base.copy()
    odd[1] = 1e-30
    negz = base.copy()
    negz[2] = -0.0
    inits = {"W1": base, "W2": base.copy(), "W3": odd, "W4": negz, "W5": negz.copy()}
    m = model([h.make_node("Add", ["X", w], [f"Y{i}"]) for i, w in enumerate(inits)],
              [("X", TP.FLOAT, [n])], [(f"Y{i}", TP.FLOAT, [n]) for i in range(len(inits))],
              [nh.from_array(a, k) for k, a in inits.items()])
    res = graphir.compile(m, passes="cse")
    assert res.report["passes"][0].result.counts["constants_merged"] == 2
    assert sorted(res.ir.initializers) == ["W1", "W3", "W4"]
    assert [res.ir.node(f"Y{i}").inputs[1].name for i in range(5)] == ["W1", "W1", "W3", "W4", "W4"]
