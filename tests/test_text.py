"""The text IR: print -> parse -> print identity, precise one-line errors, and text -> IR -> TF."""
import hashlib
import re

import numpy as np
import pytest

import graphir
from conftest import run_graph
from graphir.ir.parser import ParseError as ModelLoadError  # the parser raises ParseError; loaders wrap it
from graphir.ir import FuncRef, Graph, Placeholder, Port, Shape, Tensor, TensorType
from graphir.ir.parser import parse, parse_file
from graphir.ir.printer import Elided, print_graph
from graphir.ir.types import DType, bf16, f32, i32
from models import tensor_key


def _t(*dims, dtype=f32):
    return TensorType(dtype, Shape(dims))


def _const(g, name, arr, dtype=None):
    t = Tensor.from_array(arr, dtype)
    return g.add_node("Const", attrs={"dtype": t.dtype, "value": t}, output_types=[TensorType(t.dtype, t.shape)],
                      name=name, domain="tf")


def _roundtrip(g):
    """Both modes must reproduce the same bytes; returns the graphs parsed from (abbreviated, full)."""
    out = []
    for full in (False, True):
        text = print_graph(g, full_constants=full)
        g2 = parse(text, "rt.gir")
        assert print_graph(g2, full_constants=full) == text
        out.append(g2)
    return out


def crafted_graph():
    """Every attribute kind, odd names, multi-output nodes, control inputs, devices, big and small constants."""
    g = Graph("crafted graph")
    rng = np.random.default_rng(0)
    x = g.add_node("Placeholder", attrs={"dtype": f32, "shape": Shape([None, 4])}, output_types=[_t(None, 4)],
                   name="x", domain="tf")
    w = _const(g, "w/kernel", rng.standard_normal((4, 32)).astype(np.float32))       # > 64 elements: hex
    big_bf = _const(g, "w_bf16", rng.standard_normal((40,)).astype(np.float32), bf16)  # 17..64: element list
    consts = [
        _const(g, "s", np.array([b"plain", b"\xff\x00binary", "ünï".encode()], dtype=object)),
        _const(g, "c", np.array([1 + 2j, -3.5j], dtype=np.complex64)),
        _const(g, "h", np.array([0.1, -0.0, np.inf, -np.inf, np.nan], dtype=np.float16)),
        _const(g, "d", np.array(1e-300)),
        _const(g, "u", np.array([0, 2 ** 64 - 1], dtype=np.uint64)),
        _const(g, "i8", np.array([[-128, 127]], dtype=np.int8)),
        _const(g, "b", np.array([True, False])),
        _const(g, "empty", np.zeros((0, 3), np.float32)),
        _const(g, "bool_hex", np.arange(100) % 3 == 0),
        _const(g, "strs_big", np.array([b"s%d" % i for i in range(20)], dtype=object)),
    ]
    attrs = {
        "str": 'quote " backslash \\ newline \n tab \t unicode \u00e9 \u2603',
        "empty_str": "", "bytes": b"\x00\xffab", "empty_bytes": b"",
        "int": -7, "big_int": 2 ** 70, "float": 0.1, "neg_exp": -2.5e-12, "whole": 3.0,
        "inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"),
        "t": True, "f": False, "unit": None,
        "dtype": bf16, "ref": DType.get("f32_ref"), "types": [f32, i32, DType.get("string")],
        "shape": Shape([None, 3]), "scalar_shape": Shape(()), "unknown_rank": Shape(None),
        "list": [1, [2.5, "x"], [], {"k": 1}], "empty_list": [],
        "dict": {"b": 1, "a": {"nested key": [True]}, "1.5": "digit key"},
        "func": FuncRef("body_fn"), "func_attrs": FuncRef("cond fn", (("T", f32), ("n", 3))),
        "ph": Placeholder("T"), "ph_quoted": Placeholder("a b"),
        "tensor_type": _t(None, 2, dtype=bf16),
        "small_tensor": Tensor.from_array(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "scalar_tensor": Tensor.from_array(np.float32(-1.25)),
        "1 weird key": 1, "true": "key named like a keyword",
    }
    split = g.add_node("Split", [consts[4].output(), x.output()], attrs,
                       [_t(None, 2), _t(None, 2), _t(2, dtype=bf16)],
                       name='we"ird name: 1', device="/job:localhost/replica:0/task:0/device:CPU:0",
                       control_inputs=[consts[0], consts[1]], domain="tf")
    mm = g.add_node("MatMul", [split.output(1), w.output()], {"T": f32}, [_t(None, 32)], name="1-starts.with>digit",
                    domain="tf")
    custom = g.add_node("Frob", [mm.output(), big_bf.output()], {}, [_t(None, 32), _t(dtype=i32)],
                        name="custom", domain="my")
    nodomain = g.add_node("Thing", [custom.output(1)], {}, [], name="nodomain", domain="",
                          control_inputs=consts[5:])
    g.add_node("NoOp", [], {}, [], name="sink", control_inputs=[nodomain, split, *consts[2:5]], domain="tf")
    g.inputs.append(Port("x", x.output()))
    g.outputs += [Port("y", custom.output()), Port("aux out", split.output(2)), Port("strings", consts[-1].output())]
    g.attrs = {"tf.versions": {"producer": 1882, "min_consumer": 12, "bad_consumers": []},
               "tf.library": bytes(range(256)) * 20, "tf.small": b"\x01\x02"}
    return g


def test_crafted_graph_roundtrips_in_both_modes():
    g = crafted_graph()
    short, full = _roundtrip(g)
    text = print_graph(g)
    assert "dense_resource<sha:" in text and "#blob<sha:" in text and '%"we\\"ird name: 1"' in text
    assert 'dense<"0x' in print_graph(g, full_constants=True)
    for g2 in (short, full):
        assert g2.name == "crafted graph"
        assert [(p.name, p.value.name) for p in g2.outputs] == [(p.name, p.value.name) for p in g.outputs]
        for n in g.nodes():
            m = g2.node(n.name)
            assert (m.domain, m.op_type, m.device) == (n.domain, n.op_type, n.device)
            assert [v.name for v in m.inputs] == [v.name for v in n.inputs]
            assert [c.name for c in m.control_inputs] == [c.name for c in n.control_inputs]
            assert [v.type for v in m.outputs] == [v.type for v in n.outputs]
    s = full.node('we"ird name: 1').attrs
    o = g.node('we"ird name: 1').attrs
    for k in ("str", "bytes", "big_int", "float", "dtype", "ref", "types", "shape", "unknown_rank", "list", "dict",
              "func", "func_attrs", "ph", "tensor_type", "unit", "true", "1 weird key"):
        assert s[k] == o[k] and type(s[k]) is type(o[k]), k
    assert s["func_attrs"].attrs == (("T", f32), ("n", 3)) and np.isnan(s["nan"]) and s["unit"] is None
    assert isinstance(s["bytes"], bytes) and isinstance(s["str"], str)
    assert s["small_tensor"].same_value(o["small_tensor"])
    # Full constants carry the data; abbreviated ones only the digest, which prints back the same.
    for name in ("w/kernel", "w_bf16", "s", "c", "h", "u", "i8", "b", "empty", "bool_hex", "strs_big"):
        a, b = full.node(name).const_value(), g.node(name).const_value()
        assert a.same_value(b) and a.digest() == b.digest(), name
    elided = short.node("w/kernel").const_value()
    assert elided.digest_only and elided.digest() == g.node("w/kernel").const_value().digest()
    with pytest.raises(ValueError, match="elided"):
        elided.numpy()
    lib = g.attrs["tf.library"]
    assert short.attrs["tf.library"] == Elided(hashlib.sha256(lib).hexdigest()[:16], len(lib))
    assert full.attrs["tf.library"] == g.attrs["tf.library"]
    assert full.node("nodomain").domain == "" and full.node("custom").domain == "my"


def test_forward_references_and_loop_back_edges(tf1_while_gd):
    from graphir.frontends.tf import from_graph_def

    ir = from_graph_def(tf1_while_gd)
    text = print_graph(ir, full_constants=True)
    # A back-edge's producer is printed after its consumer, so the parser must resolve names late.
    lines = text.splitlines()
    merge = next(i for i, line in enumerate(lines) if "tf.Merge(" in line)
    nxt = next(i for i, line in enumerate(lines) if "tf.NextIteration(" in line)
    assert merge < nxt
    ir2 = parse(text)
    assert print_graph(ir2, full_constants=True) == text
    ir2.verify()
    merges = [n for n in ir2.nodes() if n.op_type == "Merge"]
    assert merges and all(n.inputs[1].node.op_type == "NextIteration" for n in merges)
    _check_runs_like(tf1_while_gd, ir, ir2)


TRICKY = ["h\n", "a b", '"', "\\", "\u00e9", "1", ".", "a:1", "a>b", "-x", "%x", "^x", "{", "\u2028", "tf.x", "\x00"]


def test_tricky_names_and_op_types_roundtrip():
    g = Graph("name\nwith newline")
    prev = g.add_node("Placeholder", attrs={"dtype": f32}, output_types=[_t()], name="x", domain="tf")
    for i, name in enumerate(TRICKY):
        attrs = {name: name, "f": FuncRef(name, ((name, 1),)), "p": Placeholder(name), "d": {name: [name]}}
        op = ["Relu", "A.B", "odd op", ""][i % 4]
        prev = g.add_node(op, [prev.output()], attrs, [_t()], name=name, domain=["tf", "", "my"][i % 3],
                          device=name, control_inputs=[g.node("x")], unique=False)
        g.outputs.append(Port(name, prev.output()))
    short, full = _roundtrip(g)
    for n in g.nodes():
        m = full.node(n.name)
        assert (m.domain, m.op_type, m.attrs, m.device) == (n.domain, n.op_type, n.attrs, n.device)
    assert full.name == g.name and [p.name for p in full.outputs] == TRICKY


def test_hand_written_text_in_any_order():
    text = """
    // comments and free layout are fine in hand-written text
    graph @g {
      inputs {"x" = %x}
      outputs {"y" = %y}
      %y = tf.Relu(%x) {T = f32} : (tensor<2xf32>) -> tensor<2xf32>
      %x = tf.Placeholder()
           {dtype = f32, shape = #shape<2>} : () -> tensor<2xf32>
    }
    """
    g = parse(text)
    assert g.node("y").inputs[0] is g.node("x").output()
    assert g.outputs[0].value is g.node("y").output()
    g.verify()


BAD = [
    ("", 1, 1, "expected 'graph'"),
    ("graph @g {\n  inputs {}\n  outputs {\"y\" = %nope}\n}\n", 3, 18, "undefined value %nope"),
    ("graph @g {\n  %a = tf.Relu(%b) : (tensor<f32>) -> tensor<f32>\n}\n", 2, 16, "undefined value %b"),
    ("graph @g {\n  %a = tf.Const() : () -> tensor<f32>\n  %a = tf.Const() : () -> tensor<f32>\n}", 3, 3,
     "duplicate node name 'a'"),
    ("graph @g {\n  %a = tf.Const() : () -> tensor<2xf32>\n  %b = tf.Neg(%a) : (tensor<3xf32>) -> tensor<3xf32>\n}",
     3, 22, "has type tensor<2xf32>, but node 'b' declares tensor<3xf32>"),
    ("graph @g {\n  %a = tf.Const() : () -> tensor<2xf33>\n}", 2, 36, "unknown dtype 'f33'"),
    ("graph @g {\n  %a = tf.Const() {T = f99} : () -> tensor<f32>\n}", 2, 24, "unknown dtype 'f99'"),
    ("graph @g {\n  %a = tf.Const() ?? : () -> tensor<f32>\n}", 2, 19, "expected ':'"),
    ("graph @g {\n  %a = tf.Const() : () -> tensor<f32>\n  %b = tf.Neg(%a) : () -> tensor<f32>\n}", 3, 21,
     "1 operands but its signature lists 0"),
    ("graph @g {\n  %a = tf.Const() : () -> tensor<f32>\n  %b = tf.Neg(%a:1) : (tensor<f32>) -> tensor<f32>\n}",
     3, 15, "has 1 output(s), no output 1"),
    ('graph @g {\n  %a = tf.Const() {s = "open} : () -> tensor<f32>\n}', 2, 24, "unterminated string"),
    ('graph @g {\n  %a = tf.Const() {s = "bad \\q escape"} : () -> tensor<f32>\n}', 2, 24, "bad string literal"),
    ("graph @g {\n  %a = tf.Const() {v = dense<[1.0, 2.0]> : tensor<3xf32>} : () -> tensor<f32>\n}", 2, 24,
     "2 elements given, tensor<3xf32> has 3"),
    ("graph @g {\n  %a = tf.Const() {v = dense<[300]> : tensor<1xi8>} : () -> tensor<f32>\n}", 2, 24,
     "out of range for i8"),
    ('graph @g {\n  %a = tf.Const() {v = dense<"0xABC"> : tensor<1xi8>} : () -> tensor<f32>\n}', 2, 30,
     "odd number of hex digits"),
    ('graph @g {\n  %a = tf.Const() {v = dense<"0xABZZ"> : tensor<2xi8>} : () -> tensor<f32>\n}', 2, 30,
     "bad hex digit"),
    ('graph @g {\n  %a = tf.Const() {v = dense<"0xABCD"> : tensor<1xi8>} : () -> tensor<f32>\n}', 2, 24,
     "hex data has 2 bytes"),
    ("graph @g {\n  %a = tf.Const() {v = dense<[true]> : tensor<1xf32>} : () -> tensor<f32>\n}", 2, 35,
     "bad element True for a f32 constant"),
    ("graph @g {\n  %a = tf.Const() {k = 1, k = 2} : () -> tensor<f32>\n}", 2, 27, "duplicate attribute 'k'"),
    ('graph @g {\n  %"" = tf.NoOp() : () -> ()\n}', 2, 3, "empty node name"),
    ("graph @g {\n  %a = tf.NoOp(^zz) : () -> ()\n}", 2, 16, "undefined control input ^zz"),
    ("graph @g {\n  %a = tf.NoOp() : () -> ()\n", 3, 1, "found end of input"),
    ("graph @g {\n  %a = tf.NoOp() : () -> ()\n}\ntrailing", 4, 1, "unexpected text after the graph"),
    ("graph @g {\n  bogus {}\n}", 2, 3, "expected 'inputs', 'outputs', 'arguments', 'initializers', 'attributes'"),
    ("graph @g {\n  %a = tf.NoOp() : () -> tensor<2x>\n}", 2, 26, "expected a tensor type"),
    ("graph @g {\n  %a = tf.NoOp() {x = [[[[1]]]} : () -> ()\n}", 2, 31, "expected ','"),
    ("graph @g {\n  %a = tf.NoOp() {x = #what<1>} : () -> ()\n}", 2, 23, "unknown attribute value"),
    ("graph @g {\n  %a = tf.NoOp() {x = [" + "[" * 5000 + "]}\n}", 2, None, "nested"),
]


@pytest.mark.parametrize("text,line,col,msg", BAD, ids=[b[3][:30] for b in BAD])
def test_bad_text_is_one_line_error_with_position(text, line, col, msg):
    with pytest.raises(ModelLoadError) as ei:
        parse(text, "bad.gir")
    err = str(ei.value)
    assert "\n" not in err
    m = re.match(r"bad\.gir:(\d+):(\d+): (.*)$", err)
    assert m, err
    assert int(m.group(1)) == line, err
    if col is not None:
        assert int(m.group(2)) == col, err
    assert msg in m.group(3), err


def test_parse_file_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        parse_file(tmp_path / "missing.gir")
    p = tmp_path / "random.gir"
    p.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(ModelLoadError, match="random.gir: not a graphir text file") as ei:
        parse_file(p)
    assert "\n" not in str(ei.value)
    p.write_text("graph @g {\n  %a = tf.NoOp() : () -> \n}\n")
    with pytest.raises(ModelLoadError, match=r"random\.gir:3:1: expected a tensor type"):
        parse_file(p)


def test_load_accepts_gir_files(tmp_path):
    g = crafted_graph()
    path = tmp_path / "m.gir"
    g.save(path)
    g2 = graphir.frontends.load(str(path))
    assert print_graph(g2, full_constants=True) == print_graph(g, full_constants=True)
    g3 = graphir.frontends.load(str(path), outputs=["y"])
    assert [p.name for p in g3.outputs] == ["y"] and "strs_big" not in g3


def test_parse_speed():
    g = Graph()
    x = g.add_node("Placeholder", attrs={"dtype": f32, "shape": Shape([None, 8])}, output_types=[_t(None, 8)],
                   name="x", domain="tf")
    w = _const(g, "w", np.ones((8, 8), np.float32))
    cur = x.output()
    for i in range(1000):
        m = g.add_node("MatMul", [cur, w.output()], {"T": f32, "transpose_a": False, "transpose_b": False},
                       [_t(None, 8)], name=f"block{i // 10}/mm", domain="tf")
        cur = g.add_node("Relu", [m.output()], {"T": f32}, [_t(None, 8)], name=f"block{i // 10}/relu", domain="tf").output()
    g.outputs.append(Port("y", cur))
    text = print_graph(g)
    g2 = parse(text)
    assert len(g2) == 2002 and print_graph(g2) == text


# --------------------------------------------------------------------------- text -> IR -> GraphDef runs in TF
def _small_tf_graph(relu6=False):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6], name="x")
        w = tf.constant(rng.standard_normal((6, 8)).astype(np.float32) * 4, name="w")
        b = tf.constant(rng.standard_normal(8).astype(np.float32), name="b")
        h = tf.nn.bias_add(tf.matmul(x, w), b, name="bias")
        y = (tf.nn.relu6 if relu6 else tf.nn.relu)(h, name="act")
        a, c = tf.split(y, 2, axis=1, name="split")
        tf.concat([c, a], axis=1, name="out")
    return g.as_graph_def()


def test_text_to_graph_def_runs_bitwise_equal():
    pytest.importorskip("tensorflow")
    from graphir.backends.tf import to_graph_def
    from graphir.frontends.tf import from_graph_def

    gd = _small_tf_graph()
    ir = from_graph_def(gd)
    text = print_graph(ir, full_constants=True)
    ir2 = parse(text)
    assert print_graph(ir2, full_constants=True) == text
    gd2 = to_graph_def(ir2)
    assert sorted(n.name for n in gd2.node) == sorted(n.name for n in gd.node)
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)}
    want, got = run_graph(gd, feeds), run_graph(gd2, feeds)
    assert len(want) == len(got) == 1
    assert want[0].tobytes() == got[0].tobytes()


def test_hand_edited_dump_computes_the_edit():
    pytest.importorskip("tensorflow")
    from graphir.frontends.tf import from_graph_def

    text = print_graph(from_graph_def(_small_tf_graph()), full_constants=True)
    assert text.count("tf.Relu(") == 1
    edited = parse(text.replace("tf.Relu(", "tf.Relu6("))
    feeds = {"x": np.random.default_rng(2).standard_normal((7, 6)).astype(np.float32) * 3}
    got = run_graph(edited, feeds)[0]
    want = run_graph(_small_tf_graph(relu6=True), feeds)[0]
    relu = run_graph(_small_tf_graph(relu6=False), feeds)[0]
    assert got.tobytes() == want.tobytes()
    assert relu.max() > 6 and not np.array_equal(got, relu)  # the edit really changed the result


# --------------------------------------------------------------------------- the model corpus
def _node_defs(gd) -> dict:
    """name -> (op, inputs, device, attrs), with tensors compared by value (their encoding may differ)."""
    def attr(av):
        if av.WhichOneof("value") != "tensor":
            return av.SerializeToString(deterministic=True)
        return tensor_key(av.tensor)

    return {n.name: (n.op, list(n.input), n.device, {k: attr(v) for k, v in n.attr.items()}) for n in gd.node}


def _check_runs_like(gd, ir, parsed):
    """The parsed graph, written back as a GraphDef, has the same nodes and bitwise-equal outputs."""
    from graphir.backends.tf import to_graph_def
    from graphir.runtime_check import Runner, random_inputs

    back = to_graph_def(parsed)
    assert _node_defs(back) == _node_defs(to_graph_def(ir))
    assert back.library == gd.library and back.versions == gd.versions
    feeds = random_inputs(ir, dim=2)
    for p in ir.inputs:
        if p.value.dtype.name == "i32" and p.value.shape.rank is None:  # a loop bound
            feeds[p.name] = np.int32(3)
    ins, outs = [p.value.name for p in ir.inputs], [p.value.name for p in ir.outputs]
    feed_list = [feeds[p.name] for p in ir.inputs]
    want = Runner(gd, ins, outs)(feed_list)
    got = Runner(back, ins, outs)(feed_list)
    assert len(want) == len(got) == len(outs) > 0
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape and w.tobytes() == g.tobytes()


def _dump_parse_dump(gd, run=True):
    from graphir.frontends.tf import from_graph_def

    ir = from_graph_def(gd)
    for full in (False, True):
        text = print_graph(ir, full_constants=full)
        parsed = parse(text)
        assert print_graph(parsed, full_constants=full) == text
    if run:
        _check_runs_like(gd, ir, parsed)
    return ir


@pytest.mark.parametrize("model_gd", ["tf1_while", "tf2_functional", "transformer", "digits"], indirect=True)
def test_corpus_dump_parse_dump(model_gd):
    _dump_parse_dump(model_gd)


@pytest.mark.slow
@pytest.mark.parametrize("model_gd", ["resnet50", "mobilenet_v2"], indirect=True)
def test_large_corpus_dump_parse_dump(model_gd):
    ir = _dump_parse_dump(model_gd, run=False)
    assert len(ir) > 300


def test_random_graphs_roundtrip():
    """Seeded random graphs: any names, op types, attribute values and dtypes print back identically."""
    import random
    import string

    rnd = random.Random(0)
    dtypes = DType.all()

    def name():
        return "".join(rnd.choice(string.printable + "é☃\u2028\x00_/.->:^%@$#") for _ in range(rnd.randint(0, 5)))

    def value(depth=0):
        k = rnd.randint(0, 11 if depth < 2 else 8)
        return [lambda: rnd.randint(-2 ** 70, 2 ** 70), lambda: rnd.choice([0.0, -0.0, 1e-30, -2.25e10, float("inf")]),
                name, lambda: bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 4))),
                lambda: rnd.choice([True, False, None]), lambda: rnd.choice(dtypes),
                lambda: Shape(rnd.choice([None, (), (None, 3)])), lambda: FuncRef(name(), ((name(), 1),)),
                lambda: Placeholder(name()), lambda: [value(depth + 1) for _ in range(rnd.randint(0, 3))],
                lambda: {name(): value(depth + 1) for _ in range(rnd.randint(0, 3))},
                lambda: Tensor.from_array(np.arange(rnd.choice([0, 3, 20, 70])) % 7,
                                          rnd.choice([f32, bf16, i32, DType.get("u8"), DType.get("c64")]))][k]()

    for _ in range(150):
        g = Graph(name())
        for i in range(rnd.randint(1, 5)):
            ins = [v for n in rnd.sample(list(g.nodes()), min(len(g), 2)) for v in n.outputs[:1]]
            outs = [TensorType(rnd.choice(dtypes), Shape(rnd.choice([None, (), (2, None)])))
                    for _ in range(rnd.randint(0, 2))]
            g.add_node(rnd.choice(["Relu", "A>B", "a.b", "odd op", name()]), ins, {name(): value() for _ in range(3)},
                       outs, name=f"{name()}{i}", domain=rnd.choice(["tf", "", "my"]), device=name())
        g.attrs = {name(): value()}
        _roundtrip(g)
