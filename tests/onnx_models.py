"""Small ONNX models built with ``onnx.helper`` for the ONNX tests (random, trained-like weights)."""
import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

OPSET = 17
DTYPE_OPSET = 25  # the first with Identity for every 4-, 2- and 8-bit float type


def _model(graph, opset=OPSET, **kw):
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)] + kw.pop("extra_opsets", []), **kw)
    return m


def cnn(seed: int = 0, channels: int = 4) -> onnx.ModelProto:
    """Conv + BatchNormalization + Relu, an Identity, a Transpose pair, Dropout, Reshape, MatMul + Add,
    a Gemm + BatchNormalization and a Softmax: every onnx rule has something to do."""
    rng = np.random.default_rng(seed)
    f = np.float32
    c = channels

    def t(name, a):
        return nh.from_array(np.asarray(a), name)

    inits = [
        t("W", rng.standard_normal((c, 3, 3, 3)).astype(f) * 0.3), t("cb", rng.standard_normal(c).astype(f)),
        t("g", (rng.random(c) + 0.5).astype(f)), t("b", rng.standard_normal(c).astype(f)),
        t("m", rng.standard_normal(c).astype(f)), t("v", (rng.random(c) + 0.5).astype(f)),
        t("shp", np.array([-1, 16 * c], np.int64)),
        t("FW", rng.standard_normal((16 * c, 16)).astype(f) * 0.2), t("FB", rng.standard_normal(16).astype(f)),
        t("GW", rng.standard_normal((16, 10)).astype(f) * 0.3), t("GC", rng.standard_normal(10).astype(f)),
        t("g2", (rng.random(10) + 0.5).astype(f)), t("b2", rng.standard_normal(10).astype(f)),
        t("m2", rng.standard_normal(10).astype(f)), t("v2", (rng.random(10) + 0.5).astype(f)),
    ]
    nodes = [
        h.make_node("Conv", ["X", "W", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        h.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn", epsilon=1e-3),
        h.make_node("Relu", ["bn"], ["r"], name="relu"),
        h.make_node("Identity", ["r"], ["r2"], name="ident"),
        h.make_node("Transpose", ["r2"], ["t1"], name="t1", perm=[0, 2, 3, 1]),
        h.make_node("Transpose", ["t1"], ["t2"], name="t2", perm=[0, 3, 1, 2]),
        h.make_node("Dropout", ["t2"], ["d"], name="drop"),
        h.make_node("Reshape", ["d", "shp"], ["flat"], name="flatten"),
        h.make_node("MatMul", ["flat", "FW"], ["mm"], name="fc"),
        h.make_node("Add", ["mm", "FB"], ["fc_out"], name="fc_bias"),
        h.make_node("Relu", ["fc_out"], ["h"], name="relu2"),
        h.make_node("Gemm", ["h", "GW", "GC"], ["logits0"], name="gemm"),
        h.make_node("BatchNormalization", ["logits0", "g2", "b2", "m2", "v2"], ["logits"], name="bn2"),
        h.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    g = h.make_graph(nodes, "cnn", [h.make_tensor_value_info("X", TP.FLOAT, ["N", 3, 8, 8])],
                     [h.make_tensor_value_info("probs", TP.FLOAT, ["N", 10])], inits)
    return _model(g, producer_name="graphir-tests")


def control_flow() -> onnx.ModelProto:
    """An If whose branches read outer values (captures) and a Loop whose body reads an outer initializer
    and, from inside a nested If, a value of the main graph."""
    f = np.float32
    B = nh.from_array(np.array([1.0, 2.0, 3.0], f), "B")
    S = nh.from_array(np.array(0.5, f), "S")
    zero = nh.from_array(np.array(0.0, f), "zero")
    trip = nh.from_array(np.array(3, np.int64), "trip")
    cond = nh.from_array(np.array(True), "cond")
    then = h.make_graph([h.make_node("Add", ["t", "B"], ["then_out"])], "then", [],
                        [h.make_tensor_value_info("then_out", TP.FLOAT, None)])
    els = h.make_graph([h.make_node("Sub", ["t", "B"], ["else_out"])], "else", [],
                       [h.make_tensor_value_info("else_out", TP.FLOAT, None)])
    inner_then = h.make_graph([h.make_node("Mul", ["acc_in", "S"], ["it_out"])], "inner_then", [],
                              [h.make_tensor_value_info("it_out", TP.FLOAT, None)])
    inner_else = h.make_graph([h.make_node("Add", ["acc_in", "t"], ["ie_out"])], "inner_else", [],
                              [h.make_tensor_value_info("ie_out", TP.FLOAT, None)])
    body = h.make_graph(
        [h.make_node("Identity", ["c_in"], ["c_out"]),
         h.make_node("Greater", ["acc_in", "zero"], ["pos_all"]),
         h.make_node("Cast", ["pos_all"], ["pos_all_f"], to=TP.FLOAT),
         h.make_node("ReduceMax", ["pos_all_f"], ["pos"], keepdims=0),
         h.make_node("Cast", ["pos"], ["pos_b"], to=TP.BOOL),
         h.make_node("If", ["pos_b"], ["acc_out"], then_branch=inner_then, else_branch=inner_else)],
        "body",
        [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("c_in", TP.BOOL, []),
         h.make_tensor_value_info("acc_in", TP.FLOAT, None)],
        [h.make_tensor_value_info("c_out", TP.BOOL, []), h.make_tensor_value_info("acc_out", TP.FLOAT, None)])
    nodes = [
        h.make_node("Mul", ["X", "X"], ["t"], name="square"),
        h.make_node("ReduceSum", ["t"], ["s"], keepdims=0, name="sum"),
        h.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
        h.make_node("If", ["c"], ["y_if"], name="if", then_branch=then, else_branch=els),
        h.make_node("Loop", ["trip", "cond", "X"], ["y_loop"], name="loop", body=body),
    ]
    g = h.make_graph(nodes, "cf", [h.make_tensor_value_info("X", TP.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y_if", TP.FLOAT, [2, 3]),
                      h.make_tensor_value_info("y_loop", TP.FLOAT, [2, 3])], [B, S, zero, trip, cond])
    return _model(g)


def with_function() -> onnx.ModelProto:
    """A model calling a local function (domain ``local``) twice, with model and node metadata."""
    fn = h.make_function("local", "AddMul", ["a", "b"], ["y"],
                         [h.make_node("Add", ["a", "b"], ["s"]), h.make_node("Mul", ["s", "b"], ["y"])],
                         [h.make_opsetid("", OPSET)])
    nodes = [h.make_node("AddMul", ["X", "Y"], ["z1"], domain="local", name="call1", doc_string="first call"),
             h.make_node("AddMul", ["z1", "Y"], ["Z"], domain="local", name="call2")]
    g = h.make_graph(nodes, "fn", [h.make_tensor_value_info("X", TP.FLOAT, ["N", 4]),
                                   h.make_tensor_value_info("Y", TP.FLOAT, ["N", 4])],
                     [h.make_tensor_value_info("Z", TP.FLOAT, ["N", 4])], doc_string="graph doc",
                     value_info=[h.make_tensor_value_info("z1", TP.FLOAT, ["N", 4])])
    m = _model(g, extra_opsets=[h.make_opsetid("local", 1)], functions=[fn], producer_name="tests",
               producer_version="1.0", doc_string="model doc", model_version=7)
    h.set_model_props(m, {"author": "graphir", "purpose": "round trip"})
    m.graph.value_info[0].doc_string = "an intermediate value"
    return m


def every_dtype() -> onnx.ModelProto:
    """One initializer and one Identity'd graph input/output per ONNX element type graphir knows."""
    from graphir.dialects.onnx import _dtype_tables

    codes = sorted(_dtype_tables()[0])
    # Types Identity does not take at this op set (f6 so far) are unused initializers, still kept.
    allowed = set(onnx.defs.get_schema("Identity", DTYPE_OPSET, "").type_constraints[0].allowed_type_strs)
    inits, nodes, ins, outs = [], [], [], []
    for code in codes:
        name = TP.DataType.Name(code).lower()
        npd = h.tensor_dtype_to_np_dtype(code)
        if code == TP.STRING:
            a = np.array([b"a", b"bc", b""], dtype=object)
        elif code == TP.BOOL:
            a = np.array([True, False, True])
        elif np.dtype(npd).kind == "c":
            a = np.array([1 + 2j, -3j, 0.5], npd)
        else:
            a = np.array([1, 0, 1], np.float32).astype(npd)
        inits.append(nh.from_array(a, f"c_{name}"))
        if f"tensor({name})" in allowed:
            nodes.append(h.make_node("Identity", [f"c_{name}"], [f"o_{name}"], name=f"id_{name}"))
            outs.append(h.make_tensor_value_info(f"o_{name}", code, [3]))
    g = h.make_graph(nodes, "dtypes", ins, outs, inits)
    return _model(g, opset=DTYPE_OPSET)
