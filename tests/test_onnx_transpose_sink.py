"""onnx-transpose-sink on ONNX models shaped like converted NHWC CNNs: the Transposes around Conv / pooling
cancel, only those at the graph's edges stay, and every result passes the checker and matches the
original on ONNX Runtime."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import graphir
import nhwc_models as NM
from graphir.backends.onnx import to_model
from graphir.runtime_check.check import check_graphs


def sunk(m, passes="onnx-transpose-sink"):
    """The graph after ``passes``: it passes the checker and matches the original on ORT."""
    res = graphir.compile(m, passes=passes)
    onnx.checker.check_model(to_model(res.ir), full_check=True)
    rep = check_graphs(graphir.load(m), res.ir, samples=2, rtol=1e-4, atol=1e-5)
    assert rep.ok, rep.format()
    return res.ir


def transposes(g):
    return [n for n in g.nodes() if n.op_type == "Transpose"]


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info(*i) for i in inputs],
                     [h.make_tensor_value_info(*o) for o in outputs], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m, full_check=True)
    return m


def test_residual_cnn_with_a_mean_head_keeps_only_the_input_transpose():
    m = NM.resnet("mean")
    assert len(transposes(graphir.load(m))) == 14
    g = sunk(m)
    (t,) = transposes(g)
    assert t.inputs[0].name == "X"
    # The head's mean runs over NCHW's spatial axes straight into the Gemm.
    (mean,) = [n for n in g.nodes() if n.op_type == "ReduceMean"]
    assert mean.attrs["axes"] == [2, 3]


def test_residual_cnn_with_a_flatten_head_keeps_one_before_the_reshape():
    g = sunk(NM.resnet("flatten"))
    t_in, t_head = sorted(transposes(g), key=lambda n: n.inputs[0].name != "X")
    assert t_in.inputs[0].name == "X"
    assert [u.op_type for u in g.users(t_head)] == ["Reshape"]
    assert t_head.attrs["perm"] == NM.TO_NHWC


def test_mobilenet_like_blocks():
    """Depthwise conv, squeeze-excitation, swish, a [C] scale, a two-branch Concat: only the Transpose
    after the input's Pad stays (sinking never moves a Transpose up)."""
    m = NM.mobilenet()
    g = sunk(m)
    (t,) = transposes(g)
    assert t.inputs[0].node.op_type == "Pad"
    (cat,) = [n for n in g.nodes() if n.op_type == "Concat"]
    assert cat.attrs["axis"] == 1
    # The whole fp32 pipeline runs it too, and keeps the output's name.
    g2 = sunk(m, passes=None)
    assert len(transposes(g2)) == 1
    assert [p.name for p in g2.outputs] == [o.name for o in m.graph.output]


def test_rank_changing_ops():
    """Squeeze, Unsqueeze, Split, Slice, Softmax, ArgMax, Pad and ReduceSum (axes as an input) with
    keepdims 0 follow the permutation (their outputs' permutations change with the rank); each output's
    inverse Transpose then cancels, so none is left."""
    rng = np.random.default_rng(0)
    c = [nh.from_array(np.array(a, np.int64), n) for a, n in [
        ([1], "ax1"), ([0], "ax0"), ([2], "ax2"), ([2, 4], "sp"), ([0], "st"), ([2], "en"), ([3], "axs"),
        ([0, 1, 0, 0, 0, 0, 1, 0], "pads")]]
    b = nh.from_array(rng.standard_normal(6).astype(np.float32), "B")
    back, back3 = [0, 3, 1, 2], [0, 2, 1]
    nodes = [
        h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]),           # 2x1x4x6 (H=1)
        h.make_node("Add", ["t", "B"], ["a"]),
        h.make_node("Squeeze", ["a", "ax1"], ["sq"]),                        # 2x4x6
        h.make_node("Unsqueeze", ["sq", "ax0"], ["us"]),                     # 1x2x4x6
        h.make_node("Softmax", ["us"], ["y1"], axis=-1),
        h.make_node("Transpose", ["y1"], ["Y1"], perm=[0, 1, 3, 2]),
        h.make_node("Split", ["a", "sp"], ["s1", "s2"], axis=3),
        h.make_node("Relu", ["s2"], ["y2"]), h.make_node("Transpose", ["y2"], ["Y2"], perm=back),
        h.make_node("Slice", ["a", "st", "en", "axs"], ["y3"]), h.make_node("Transpose", ["y3"], ["Y3"], perm=back),
        h.make_node("ArgMax", ["a"], ["y4"], axis=2, keepdims=0),
        h.make_node("Transpose", ["y4"], ["Y4"], perm=back3),
        h.make_node("ReduceSum", ["s1", "ax2"], ["y5"], keepdims=0),
        h.make_node("Transpose", ["y5"], ["Y5"], perm=back3),
        h.make_node("Pad", ["a", "pads"], ["y6"]), h.make_node("Transpose", ["y6"], ["Y6"], perm=back),
    ]
    m = model(nodes, [("X", TP.FLOAT, [2, 6, 1, 4])],
              [("Y1", TP.FLOAT, [1, 2, 6, 4]), ("Y2", TP.FLOAT, [2, 4, 1, 4]), ("Y3", TP.FLOAT, [2, 2, 1, 4]),
               ("Y4", TP.INT64, [2, 6, 1]), ("Y5", TP.FLOAT, [2, 2, 1]), ("Y6", TP.FLOAT, [2, 6, 2, 5])],
              c + [b])
    g = sunk(m)
    assert transposes(g) == []
    assert [p.value.name for p in g.outputs] == ["Y1", "Y2", "Y3", "Y4", "Y5", "Y6"]
    ops = {n.op_type: n for n in g.nodes()}
    assert ops["Softmax"].attrs["axis"] == 2
    assert ops["Split"].attrs["axis"] == 1
    assert ops["ArgMax"].attrs["axis"] == 3
    np.testing.assert_array_equal(ops["Pad"].inputs[1].const.numpy(), [0, 0, 1, 0, 0, 0, 0, 1])


def test_shared_transpose_is_not_duplicated():
    """A Transpose read by two unary ops that are graph outputs stays: sinking needs two."""
    m = model([h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]), h.make_node("Relu", ["t"], ["Y"]),
               h.make_node("Sigmoid", ["t"], ["Z"])],
              [("X", TP.FLOAT, [1, 3, 4, 4])], [("Y", TP.FLOAT, [1, 4, 4, 3]), ("Z", TP.FLOAT, [1, 4, 4, 3])])
    g = graphir.load(m)
    res = graphir.compile(m, passes="onnx-transpose-sink")
    assert res.ir.text() == g.text()


@pytest.mark.parametrize("shape", [[3], [1, 1, 3], ["N", 1, 1, 3]])
def test_low_rank_operand_is_reshaped(shape):
    """A non-constant operand whose non-1 dims keep their order under the permutation is reshaped
    (unsqueezed to full rank and permuted) instead of transposed."""
    m = model([h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]), h.make_node("Mul", ["t", "S"], ["m"]),
               h.make_node("Transpose", ["m"], ["u"], perm=[0, 3, 1, 2]), h.make_node("Relu", ["u"], ["Y"])],
              [("X", TP.FLOAT, ["N", 3, 4, 4]), ("S", TP.FLOAT, shape)], [("Y", TP.FLOAT, ["N", 3, 4, 4])])
    g = sunk(m)
    assert transposes(g) == []
    (mul,) = [n for n in g.nodes() if n.op_type == "Mul"]
    assert mul.inputs[1].node.op_type == "Reshape"


def test_transpose_of_a_constant_is_folded_by_fold_constants():
    w = nh.from_array(np.arange(24, dtype=np.float32).reshape(2, 3, 4), "W")
    m = model([h.make_node("Transpose", ["W"], ["wt"], perm=[2, 0, 1]), h.make_node("Add", ["X", "wt"], ["Y"])],
              [("X", TP.FLOAT, [4, 2, 3])], [("Y", TP.FLOAT, [4, 2, 3])], [w])
    g = sunk(m, passes="fold-constants,onnx-transpose-sink")
    assert transposes(g) == []


def test_per_channel_dequantize_and_where():
    """A per-channel DequantizeLinear (its axis follows), a leaky ReLU spelled Where(Greater(x, 0), x, x*a)
    and a per-tensor QuantizeLinear compute in NCHW between the two Transposes, which vanish."""
    rng = np.random.default_rng(1)
    inits = [nh.from_array((rng.random(4) + 0.1).astype(np.float32), "s"),
             nh.from_array(rng.integers(-3, 3, 4).astype(np.int8), "z"),
             nh.from_array(np.float32(0.0), "zero"), nh.from_array(np.float32(0.1), "a"),
             nh.from_array(np.float32(0.05), "qs")]
    m = model([h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]),
               h.make_node("DequantizeLinear", ["t", "s", "z"], ["d"], axis=3),
               h.make_node("Greater", ["d", "zero"], ["pos"]), h.make_node("Mul", ["d", "a"], ["neg"]),
               h.make_node("Where", ["pos", "d", "neg"], ["l"]),
               h.make_node("QuantizeLinear", ["l", "qs"], ["q"]),
               h.make_node("Transpose", ["q"], ["Y"], perm=[0, 3, 1, 2])],
              [("X", TP.INT8, [2, 4, 3, 3])], [("Y", TP.UINT8, [2, 4, 3, 3])], inits)
    g = sunk(m)
    assert transposes(g) == []
    (dq,) = [n for n in g.nodes() if n.op_type == "DequantizeLinear"]
    assert dq.attrs["axis"] == 1 and dq.inputs[0].name == "X"


@pytest.mark.parametrize("shape", [[1, 4, 4, 3], [4, 3]])
def test_operand_that_needs_its_own_transpose(shape):
    """An NHWC operand that is no Transpose's output (full rank, or [W, C]: its dims change order, so
    unsqueezed to full rank first) gets a Transpose of its own when that removes two: 2 Transposes -> 1."""
    m = model([h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]), h.make_node("Add", ["t", "W"], ["a"]),
               h.make_node("Relu", ["a"], ["r"]), h.make_node("Transpose", ["r"], ["u"], perm=[0, 3, 1, 2]),
               h.make_node("Sigmoid", ["u"], ["Y"])],
              [("X", TP.FLOAT, [1, 3, 4, 4]), ("W", TP.FLOAT, shape)], [("Y", TP.FLOAT, [1, 3, 4, 4])])
    g = sunk(m)
    (t,) = transposes(g)
    assert t.attrs["perm"] == [0, 3, 1, 2]
    w = t.inputs[0]
    if len(shape) == 4:
        assert w.name == "W"
    else:
        assert w.node.op_type == "Unsqueeze" and w.node.inputs[0].name == "W"
    (add,) = [n for n in g.nodes() if n.op_type == "Add"]
    assert add.inputs[0].name == "X" and add.inputs[1] is t.outputs[0]


def test_operand_transpose_only_when_it_pays():
    """The same with the Relu a graph output: a Transpose for W and one for the output would replace the
    one there is. Unchanged."""
    m = model([h.make_node("Transpose", ["X"], ["t"], perm=[0, 2, 3, 1]), h.make_node("Add", ["t", "W"], ["a"]),
               h.make_node("Relu", ["a"], ["Y"])],
              [("X", TP.FLOAT, [1, 3, 4, 4]), ("W", TP.FLOAT, [1, 4, 4, 3])], [("Y", TP.FLOAT, [1, 4, 4, 3])])
    res = graphir.compile(m, passes="onnx-transpose-sink")
    assert res.ir.text() == graphir.load(m).text()


def _random_model(seed):
    """A random DAG of Transposes (random perms) and the ops the pass moves them through, on a tensor
    with distinct dims (so a wrong axis shows); every value nothing reads is a graph output."""
    rng = np.random.default_rng(seed)
    vals = [("X", (2, 3, 4, 5))]
    nodes, inits, uses = [], [], {}

    def pick():
        name, shp = vals[int(rng.integers(len(vals)))]
        uses[name] = uses.get(name, 0) + 1
        return name, shp

    def const(a):
        name = f"c{len(inits)}"
        inits.append(nh.from_array(np.asarray(a, np.float32 if np.asarray(a).dtype.kind == "f" else np.int64), name))
        return name

    for i in range(14):
        x, shp = pick()
        r, out = len(shp), f"v{i}"
        kind = rng.choice(["transpose", "transpose", "unary", "add", "bias", "concat", "reduce", "softmax",
                           "pad", "split", "unsqueeze"])
        if kind == "transpose" or r < 2:
            perm = [int(a) for a in rng.permutation(r)]
            nodes.append(h.make_node("Transpose", [x], [out], perm=perm))
            shp = tuple(shp[a] for a in perm)
        elif kind == "unary":
            nodes.append(h.make_node(str(rng.choice(["Relu", "Sigmoid", "Neg", "Abs"])), [x], [out]))
        elif kind == "add":
            same = [v for v in vals if v[1] == shp]
            y = same[int(rng.integers(len(same)))][0]
            uses[y] = uses.get(y, 0) + 1
            nodes.append(h.make_node("Add", [x, y], [out]))
        elif kind == "bias":
            k = int(rng.integers(0, r + 1))
            nodes.append(h.make_node("Mul", [x, const(rng.random(shp[r - k:]) + 0.5)], [out]))
        elif kind == "concat":
            ax = int(rng.integers(-r, r))
            nodes.append(h.make_node("Concat", [x, x], [out], axis=ax))
            shp = tuple(d * 2 if j == ax % r else d for j, d in enumerate(shp))
        elif kind == "reduce":
            axes = sorted(int(a) for a in rng.choice(r, size=int(rng.integers(1, r)), replace=False))
            keep = int(rng.integers(2))
            nodes.append(h.make_node("ReduceSum", [x, const(np.array(axes, np.int64))], [out], keepdims=keep))
            shp = tuple(1 if j in axes else d for j, d in enumerate(shp)) if keep else \
                tuple(d for j, d in enumerate(shp) if j not in axes)
        elif kind == "softmax":
            nodes.append(h.make_node("Softmax", [x], [out], axis=int(rng.integers(-r, r))))
        elif kind == "pad":
            pads = rng.integers(0, 2, 2 * r)
            nodes.append(h.make_node("Pad", [x, const(pads.astype(np.int64))], [out]))
            shp = tuple(d + int(pads[j] + pads[r + j]) for j, d in enumerate(shp))
        elif kind == "split":
            ax = int(rng.integers(r))
            n1 = shp[ax] // 2 if shp[ax] > 1 else 0
            if n1 == 0:
                nodes.append(h.make_node("Relu", [x], [out]))
            else:
                nodes.append(h.make_node("Split", [x, const(np.array([n1, shp[ax] - n1], np.int64))],
                                         [out, out + "b"], axis=ax))
                vals.append((out + "b", tuple(shp[ax] - n1 if j == ax else d for j, d in enumerate(shp))))
                shp = tuple(n1 if j == ax else d for j, d in enumerate(shp))
        else:
            if r >= 4:
                nodes.append(h.make_node("Relu", [x], [out]))
            else:
                ax = int(rng.integers(r + 1))
                nodes.append(h.make_node("Unsqueeze", [x, const(np.array([ax], np.int64))], [out]))
                shp = shp[:ax] + (1,) + shp[ax:]
        vals.append((out, shp))
    outs = [(n, TP.FLOAT, list(s)) for n, s in vals[1:] if not uses.get(n)]
    return model(nodes, [("X", TP.FLOAT, [2, 3, 4, 5])], outs, inits)


@pytest.mark.parametrize("seed", range(30))
def test_random_graphs(seed):
    """Same outputs on ORT, never more Transposes nor more nodes, and a second run changes nothing."""
    m = _random_model(seed)
    g0 = graphir.load(m)
    g = sunk(m)
    assert len(transposes(g)) <= len(transposes(g0))
    assert len(g) <= len(g0)
    again = graphir.compile(to_model(g), passes="onnx-transpose-sink").ir
    assert again.text() == graphir.load(to_model(g)).text()
