"""GraphDef -> IR -> GraphDef over the model corpus: same NodeDefs, library, versions, and bitwise outputs."""
import numpy as np
import pytest

from graphir.backends.tf import to_graph_def
from graphir.frontends.tf import from_graph_def
from graphir.runtime_check import Runner, random_inputs
from models import tensor_key

SMALL = ["tf1_while", "tf2_functional", "transformer", "digits"]
LARGE = ["resnet50", "mobilenet_v2"]


def assert_same_node_defs(a, b):
    na, nb = {n.name: n for n in a.node}, {n.name: n for n in b.node}
    assert len(na) == len(a.node) and set(na) == set(nb)
    for name, x in na.items():
        y = nb[name]
        assert (x.op, list(x.input), x.device) == (y.op, list(y.input), y.device), name
        assert set(x.attr) == set(y.attr), name
        for k in x.attr:
            if x.attr[k].WhichOneof("value") == "tensor":
                assert tensor_key(x.attr[k].tensor) == tensor_key(y.attr[k].tensor), (name, k)
            else:
                assert x.attr[k] == y.attr[k], (name, k)
    assert a.library == b.library
    assert a.versions == b.versions


def check_roundtrip(gd):
    graph = from_graph_def(gd)
    graph.verify()
    back = to_graph_def(graph)
    assert_same_node_defs(gd, back)
    assert [n.name for n in back.node] == [n.name for n in gd.node]
    # Run the original and the round-tripped GraphDef on the same feeds and fetches.
    ins = [p.value.name for p in graph.inputs]
    outs = [p.value.name for p in graph.outputs]
    assert outs, "no outputs detected"
    feeds = random_inputs(graph, dim=2)
    feed_list = [feeds[p.name] for p in graph.inputs]
    want = Runner(gd, ins, outs)(feed_list)
    got = Runner(back, ins, outs)(feed_list)
    assert len(want) == len(got) == len(outs)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        assert np.array_equal(w, g)
    return graph


@pytest.mark.parametrize("model_gd", SMALL, indirect=True)
def test_roundtrip_small(model_gd):
    check_roundtrip(model_gd)


@pytest.mark.slow
@pytest.mark.parametrize("model_gd", LARGE, indirect=True)
def test_roundtrip_large(model_gd):
    graph = check_roundtrip(model_gd)
    assert len(graph) > 300


def test_tf1_while_structure(tf1_while_gd):
    graph = from_graph_def(tf1_while_gd)
    ops = graph.op_histogram()
    assert ops["NextIteration"] >= 2 and ops["Enter"] >= 2
    # The loop back-edges are cycles the verifier must accept.
    graph.verify()
    assert [p.name for p in graph.outputs] == ["y", "steps"]


def test_tf2_functional_keeps_library(tf2_functional_gd):
    graph = from_graph_def(tf2_functional_gd)
    lib = type(tf2_functional_gd.library).FromString(graph.attrs["tf.library"])
    assert lib == tf2_functional_gd.library and lib.function
    w = [n for n in graph.nodes() if n.op_type in ("While", "StatelessWhile")]
    assert w and w[0].attrs["body"].name in {f.signature.name for f in tf2_functional_gd.library.function}


def test_constants_reencoded_byte_for_byte(transformer_gd):
    graph = from_graph_def(transformer_gd)
    back = {n.name: n for n in to_graph_def(graph).node}
    consts = [n for n in transformer_gd.node if n.op == "Const"]
    assert consts
    for n in consts:
        assert back[n.name].attr["value"].SerializeToString() == n.attr["value"].SerializeToString()


def test_modified_constant_is_reencoded(tf1_while_gd):
    from graphir.ir import Tensor

    graph = from_graph_def(tf1_while_gd)
    w = graph.node("w")
    new = Tensor.from_array(w.const_value().numpy() * 2)
    w.attrs["value"] = new
    back = {n.name: n for n in to_graph_def(graph).node}
    import tensorflow as tf

    np.testing.assert_array_equal(tf.make_ndarray(back["w"].attr["value"].tensor), new.numpy())


def test_bf16_and_string_constants_roundtrip():
    import ml_dtypes
    import tensorflow as tf

    from graphir.ir import Tensor, TensorType

    g = tf.Graph()
    with g.as_default():
        a = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3), name="a")
        tf.cast(a, tf.bfloat16, name="b")
        tf.constant([b"x", b"\xff"], name="s")
    graph = from_graph_def(g.as_graph_def())
    arr = np.array([[1.5, -2.0, 3.25]], dtype=ml_dtypes.bfloat16)
    t = Tensor.from_array(arr)
    graph.add_node("Const", attrs={"dtype": t.dtype, "value": t}, output_types=[TensorType(t.dtype, t.shape)],
                   name="c16", domain="tf")
    graph.node("s").attrs["value"] = Tensor.from_array(np.array([b"x", b"\xff"], dtype=object))
    gd = to_graph_def(graph)
    nodes = {n.name: n for n in gd.node}
    got = tf.make_ndarray(nodes["c16"].attr["value"].tensor)
    assert got.dtype == ml_dtypes.bfloat16 and np.array_equal(got, arr)
    assert list(tf.make_ndarray(nodes["s"].attr["value"].tensor)) == [b"x", b"\xff"]
    # The string constant decodes lazily to the same bytes it was loaded with.
    assert from_graph_def(gd).node("s").const_value().same_value(graph.node("s").const_value())


def test_attr_coercion_to_op_def():
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        tf.nn.leaky_relu(x, alpha=0.25, name="y")
    graph = from_graph_def(g.as_graph_def())
    graph.node("y").attrs["alpha"] = 1  # an int where the op def wants a float
    gd = to_graph_def(graph)
    assert {n.name: n for n in gd.node}["y"].attr["alpha"].f == 1.0
    out, = Runner(gd, ["x"], ["y"])([np.array([[-1.0, 0.0, 2.0]], np.float32)])
    np.testing.assert_array_equal(out, [[-1.0, 0.0, 2.0]])


def test_nodedef_extras_and_debug_info_survive(tf1_while_gd):
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.CopyFrom(tf1_while_gd)
    gd.node[3].experimental_debug_info.original_node_names.append("before_rewrite")
    gd.node[4].experimental_type.type_id = 10001  # TFT_PRODUCT
    gd.debug_info.files.append("model.py")
    graph = from_graph_def(gd)
    assert to_graph_def(graph) == gd
    assert to_graph_def(graph.copy()) == gd

