"""A SavedModel that TF2's object loader cannot restore loads through the MetaGraph and compiles.

The case: a Keras-2-era model saved with its optimizer. Keras 2's optimizer recorded its slot variables
in the SavedModel's object graph, and ``tf.saved_model.load`` restores those with ``add_slot`` on the
revived optimizer, which (without Keras 2's revival code) is a bare ``_UserObject``:
``AttributeError: '_UserObject' object has no attribute 'add_slot'``. Keras 3 has no such optimizer,
so the fixture saves a Keras model's variables next to the slot interface that TF's SavedModel writer
reads (``get_slot_names`` / ``get_slot``), holding a real Adam step's moments.
"""
import os
import shutil

import numpy as np
import pytest

import graphir
from graphir.errors import ModelLoadError
from graphir.runtime_check.runner import Runner


def _keras2_slots_class():
    import tensorflow as tf

    class Keras2OptimizerSlots(tf.Module):
        """What TF's SavedModel writer reads from a Keras 2 OptimizerV2: slot names and slot variables."""

        def __init__(self, variables, slots: dict):
            super().__init__()
            self.iterations = tf.Variable(1, dtype=tf.int64, name="iter")
            # Not tracked as children: TF saves slot variables only through get_slot(), as Keras 2 did.
            self._untracked = type("Slots", (), {})()
            self._untracked.slots = {id(v): s for v, s in zip(variables, slots)}

        def get_slot_names(self):
            return ["m", "v"]

        def get_slot(self, var, name):
            return self._untracked.slots[id(var)][name]

    return Keras2OptimizerSlots


@pytest.fixture(scope="module")
def keras2_era_saved_model(tmp_path_factory):
    """(SavedModel dir, feature width): two outputs (``scores`` [?,3], ``extra`` [?,2]), one input ``feat``."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    inp = keras.Input((6,), name="feat")
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    model = keras.Model(inp, [keras.layers.Dense(3, name="a")(h), keras.layers.Dense(2, name="b")(h)])
    # One real Adam step, so the moments the optimizer saves are what training left behind.
    opt = keras.optimizers.Adam(1e-2)
    x = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)
    with tf.GradientTape() as tape:
        a, b = model(x)
        loss = tf.reduce_mean(a ** 2) + tf.reduce_mean(b ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    weights = [v.value for v in model.trainable_variables]  # the backing tf.Variables, as Keras 2 held them
    slots = [{"m": m.value, "v": v.value} for m, v in zip(opt._momentums, opt._velocities)]

    root = tf.Module()
    root.weights = weights
    root.optimizer = _keras2_slots_class()(weights, slots)

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="feat")])
    def serve(feat):
        scores, extra = model(feat)
        return {"scores": scores, "extra": extra}

    path = str(tmp_path_factory.mktemp("keras2") / "sm")
    tf.saved_model.save(root, path, signatures={"serving_default": serve.get_concrete_function()})
    return path


def _tf1_outputs(path, x):
    """The original, as TF's MetaGraph loader runs it: {output key: array}."""
    import tensorflow as tf

    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        return sess.run({k: v.name for k, v in sig.outputs.items()}, {sig.inputs["feat"].name: x})


def test_object_loader_really_fails(keras2_era_saved_model):
    import tensorflow as tf

    with pytest.raises(AttributeError, match="add_slot"):
        tf.saved_model.load(keras2_era_saved_model)


def test_loads_through_the_meta_graph_with_signature_names_and_shapes(keras2_era_saved_model):
    graph = graphir.load(keras2_era_saved_model)
    assert [(p.name, p.value.shape.dims) for p in graph.inputs] == [("feat", (None, 6))]
    assert [(p.name, p.value.shape.dims) for p in graph.outputs] == [("extra", (None, 2)), ("scores", (None, 3))]
    ops = graph.op_histogram()
    # Frozen and flat: no variables left, and the signature's function call inlined for the passes.
    assert not {"VarHandleOp", "ReadVariableOp", "StatefulPartitionedCall", "PartitionedCall"} & set(ops)
    assert ops["MatMul"] == 3
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    got = dict(zip([p.name for p in graph.outputs], Runner(graph)({"feat": x})))
    want = _tf1_outputs(keras2_era_saved_model, x)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    only = graphir.load(keras2_era_saved_model, outputs="scores")
    assert [p.name for p in only.outputs] == ["scores"]


def test_compiles_and_matches_the_original(keras2_era_saved_model, tmp_path, capsys):
    from graphir.cli import main

    out = tmp_path / "opt_sm"  # a SavedModel again: it keeps the signature's names
    capsys.readouterr()
    assert main(["compile", keras2_era_saved_model, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "verified on random inputs feat:1x6" in err, err
    opt = graphir.load(str(out))
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    got = dict(zip([p.name for p in opt.outputs], Runner(opt)({"feat": x})))
    want = _tf1_outputs(keras2_era_saved_model, x)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_missing_signature_and_double_failure_are_one_line(keras2_era_saved_model, tmp_path):
    with pytest.raises(ModelLoadError, match=r"no signature 'nope' \(available: serving_default\)"):
        graphir.load(keras2_era_saved_model, signature="nope")
    broken = tmp_path / "no_variables"
    shutil.copytree(keras2_era_saved_model, broken)
    shutil.rmtree(broken / "variables")
    with pytest.raises(ModelLoadError) as e:
        graphir.load(str(broken))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{broken}: cannot load SavedModel: ")
    assert "the MetaGraph loader failed too" in msg
    assert os.path.isdir(broken) and not (broken / "variables").exists()  # the input is left alone
