"""canonicalize-gelu: every traced GELU form becomes the canonical Mul/Erf/AddV2 (or Tanh) pattern."""
import pytest
import tensorflow as tf

from conftest import apply, assert_same_outputs, build, ops
from graphir.transforms.activation_patterns import gelu_nodes, is_canonical_gelu, match_gelu, match_swish
from graphir.transforms.canonicalize_gelu import CanonicalizeGelu
from keras3util import assert_bf16_close, filecheck, load

TOL = dict(rtol=1e-5, atol=1e-5)


def keras_gelu_model():
    import keras
    from keras import layers

    x = inp = keras.Input((6, 8), name="tokens")
    a = layers.Dense(16, activation="gelu", name="ff_exact")(x)
    b = layers.Dense(16, name="ff_approx")(x)
    b = layers.Activation(lambda t: keras.activations.gelu(t, approximate=True), name="gelu_tanh")(b)
    return keras.Model(inp, layers.Add()([a, b]), name="net")


@pytest.fixture(scope="module")
def keras_graph():
    return load(keras_gelu_model())


def outputs_of(graph, kind):
    return [n.outputs[0] for n in graph.nodes() if n.op_type == "Mul" and (match_gelu(graph, n.outputs[0]) or
                                                                           ("", None))[0] == kind]


def test_keras3_forms(keras_graph):
    g = keras_graph
    assert "Erfc" in ops(g) and "Pow" in ops(g)
    (exact,), (approx,) = outputs_of(g, "exact"), outputs_of(g, "approximate")
    assert not is_canonical_gelu(g, exact) and not is_canonical_gelu(g, approx)
    out, res = apply(CanonicalizeGelu(), g)
    assert res.counts == {"exact": 1, "approximate": 1}
    assert "Erfc" not in ops(out) and "Pow" not in ops(out) and "Neg" not in ops(out)
    (exact,), (approx,) = outputs_of(out, "exact"), outputs_of(out, "approximate")
    assert is_canonical_gelu(out, exact) and is_canonical_gelu(out, approx)
    assert match_gelu(out, exact)[1].node.op_type == "BiasAdd"
    # The pass is idempotent: a canonical GELU is left alone.
    again, res2 = apply(CanonicalizeGelu(), out)
    assert not res2.changed and again.text() == out.text()
    assert_same_outputs(g, out, **TOL)
    filecheck(out.text(), """
        CHECK: %net_1/ff_exact_1/Gelu/mul_2/canonical/scaled = tf.Mul(%net_1/ff_exact_1/BiasAdd, %net_1/ff_exact_1/Gelu/mul_2/canonical/sqrt_half)
        CHECK: %net_1/ff_exact_1/Gelu/mul_2/canonical/erf = tf.Erf(%net_1/ff_exact_1/Gelu/mul_2/canonical/scaled)
        CHECK: %net_1/ff_exact_1/Gelu/mul_2/canonical/one_plus = tf.AddV2(%net_1/ff_exact_1/Gelu/mul_2/canonical/erf, %net_1/ff_exact_1/Gelu/mul_2/canonical/one)
        CHECK: %net_1/ff_exact_1/Gelu/mul_2/canonical/times_half = tf.Mul(%net_1/ff_exact_1/Gelu/mul_2/canonical/one_plus, %net_1/ff_exact_1/Gelu/mul_2/canonical/half)
        CHECK: %net_1/ff_exact_1/Gelu/mul_2 = tf.Mul(%net_1/ff_exact_1/Gelu/mul_2/canonical/times_half, %net_1/ff_exact_1/BiasAdd)
        CHECK: %net_1/gelu_tanh_1/Gelu/mul_3/canonical/cubic_x = tf.Mul(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/cubic, %net_1/ff_approx_1/BiasAdd)
        CHECK: %net_1/gelu_tanh_1/Gelu/mul_3/canonical/square = tf.Square(%net_1/ff_approx_1/BiasAdd)
        CHECK: /canonical/cubic_term = tf.Mul(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/cubic_x, %net_1/gelu_tanh_1/Gelu/mul_3/canonical/square)
        CHECK: /canonical/inner = tf.AddV2(%net_1/ff_approx_1/BiasAdd, %net_1/gelu_tanh_1/Gelu/mul_3/canonical/cubic_term)
        CHECK: /canonical/scaled = tf.Mul(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/inner,
        CHECK: /canonical/tanh = tf.Tanh(
        CHECK: /canonical/one_plus = tf.AddV2(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/tanh,
        CHECK: /canonical/times_half = tf.Mul(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/one_plus, %net_1/gelu_tanh_1/Gelu/mul_3/canonical/half)
        CHECK: %net_1/gelu_tanh_1/Gelu/mul_3 = tf.Mul(%net_1/gelu_tanh_1/Gelu/mul_3/canonical/times_half, %net_1/ff_approx_1/BiasAdd)
    """)
    consts = {ln.split(" = ")[0].rsplit("/", 1)[1]: ln for ln in out.text().splitlines()
              if "/canonical/" in ln and "tf.Const" in ln}
    for key, value in (("sqrt_half", "0.70710677"), ("one", "1.0"), ("cubic", "0.044715"),
                       ("sqrt_2_over_pi", "0.7978846"), ("half", "0.5")):
        assert f"dense<[{value}]> : tensor<f32>" in consts[key], consts[key]


def test_bf16(keras_graph):
    out, _ = apply(CanonicalizeGelu(), keras_graph)
    om = assert_bf16_close(keras_graph, out)
    # The canonical GELU runs in bf16: unfused (Erf), or fused into its MatMul by lower-onednn.
    assert any(n.attrs.get("T") is not None and n.attrs["T"].name == "bf16" and
               (n.op_type == "Erf" or n.op_type == "_FusedMatMul" and "GeluExact" in n.attrs.get("fused_ops", []))
               for n in om.ir.nodes())


@pytest.mark.parametrize("kind, fn", [
    ("exact", lambda x: tf.nn.gelu(x, approximate=False)),
    ("approximate", lambda x: tf.nn.gelu(x, approximate=True)),
    ("exact", lambda x: 0.5 * x * (1.0 + tf.math.erf(x / 1.4142135623730951))),    # Keras 2
    ("exact", lambda x: x * (tf.math.erf(x * 0.7071067811865476) + 1.0) * 0.5),
    ("approximate", lambda x: 0.5 * x * (1.0 + tf.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))),
])
def test_other_traced_forms(kind, fn):
    g = build(lambda x: tf.nn.relu(fn(x), name="after"), [[4, 5]])
    out, res = apply(CanonicalizeGelu(), g)
    assert res.counts[kind] == 1 and sum(res.counts.values()) == 1
    (y,) = outputs_of(out, kind)
    assert is_canonical_gelu(out, y) and match_gelu(out, y)[1].node.op_type == "Placeholder"
    assert_same_outputs(g, out, **TOL)


@pytest.mark.parametrize("fn", [
    lambda x: 0.6 * x * tf.math.erfc(-x * 0.7071067811865476),               # wrong scale
    lambda x: 0.5 * x * (1.0 + tf.math.erf(x * 0.6)),                         # wrong argument
    lambda x: 0.5 * x * (1.0 + tf.tanh(0.7978845608 * (x + 0.05 * x * x * x))),  # wrong cubic term
    lambda x: 0.5 * x * (2.0 + tf.math.erf(x * 0.7071067811865476)),         # not 1 + erf
])
def test_near_misses_stay(fn):
    g = build(lambda x: tf.identity(fn(x), name="y"), [[4, 5]])
    out, res = apply(CanonicalizeGelu(), g)
    assert not res.changed and out.text() == g.text()


def test_shared_interior_is_no_match():
    """An erf another node also reads is not part of a GELU a lowering could fuse away."""
    def fn(x):
        e = tf.math.erf(x * 0.7071067811865476)
        return [0.5 * x * (1.0 + e), e]
    g = build(fn, [[4, 5]])
    out, res = apply(CanonicalizeGelu(), g)
    assert not res.changed


def test_gelu_nodes():
    g = build(lambda x: tf.nn.relu(tf.nn.gelu(x + 1.0, approximate=False)), [[3]])
    out, _ = apply(CanonicalizeGelu(), g)
    (y,) = outputs_of(out, "exact")
    nodes = gelu_nodes(out, y)
    assert nodes[0] is y.node and sorted(n.op_type for n in nodes) == ["AddV2", "Erf", "Mul", "Mul", "Mul"]
    x = match_gelu(out, y)[1]
    assert x.node.op_type == "AddV2" and {u.name for u, _ in out.uses(x)} <= {n.name for n in nodes}


def test_match_swish():
    g = build(lambda x: [x * tf.sigmoid(x), tf.sigmoid(x) * x * 2.0, x * tf.sigmoid(x + 1.0)], [[3]])
    y0, y1, y2 = [p.value.node.inputs[0] for p in g.outputs]
    assert match_swish(g, y0) is g.inputs[0].value
    assert match_swish(g, y1) is None and match_swish(g, y2) is None
