"""SavedModels, Keras models and concrete functions: freeze the variables, then load the GraphDef.

A SavedModel is read with TF2's object loader (``tf.saved_model.load``). Some real SavedModels defeat
it (a Keras-2-era model saved with its optimizer fails with ``'_UserObject' object has no attribute
'add_slot'``); those are read through the MetaGraph instead: TF1's loader restores the variables into
a session, which freezes them, and the signature's tensors give the ports.
"""
from __future__ import annotations

from ...errors import ModelLoadError, describe
from ...ir import Graph
from ..signature import apply_signature
from .graphdef import from_graph_def, new_placeholder

SERVE_TAG = "serve"


def _freeze(fn):
    """Freeze a ConcreteFunction with TF's own converter (no grappler optimizations beyond inlining)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(fn, lower_control_flow=False)


def _flat_names(structure, prefix: str) -> list[str]:
    import tensorflow as tf

    if isinstance(structure, dict):
        return [str(k) for k in sorted(structure)] if all(
            not isinstance(v, (dict, list, tuple)) for v in structure.values()) else [
            f"{prefix}_{i}" for i in range(len(tf.nest.flatten(structure)))]
    flat = tf.nest.flatten(structure)
    return [f"{prefix}_{i}" if len(flat) > 1 else prefix for i in range(len(flat))]


def from_concrete_function(fn, inputs=None, outputs=None, *, input_names=None, output_names=None,
                           label="ConcreteFunction") -> Graph:
    """Freeze ``fn`` and load it. Port names: given names, or the frozen graph's tensor names."""
    try:
        frozen = _freeze(fn)
    except Exception as e:  # TF's converter raises whatever its graph walk meets (ValueError, KeyError...)
        raise ModelLoadError(f"{label}: cannot freeze: {describe(e, 300)}") from None
    gd = frozen.graph.as_graph_def()
    in_t = [t for t in frozen.inputs if t.dtype.name != "resource"]
    out_t = list(frozen.outputs)
    names = {}
    if input_names and sorted(input_names) == sorted(t.op.name for t in in_t):
        input_names = [t.op.name for t in in_t]  # placeholders carry the signature's own names
    for t, n in zip(in_t, input_names or []):
        names[_tname(t)] = n
    for t, n in zip(out_t, output_names or []):
        names.setdefault(_tname(t), n)
    graph = from_graph_def(gd, [_tname(t) for t in in_t], [_tname(t) for t in out_t],
                           signature_names=names, label=label)
    return apply_signature(graph, inputs, outputs, make_placeholder=new_placeholder)


def _tname(t) -> str:
    n = t.name
    return n[:-2] if n.endswith(":0") else n


def _spec_name(spec, i):
    return getattr(spec, "name", None) or f"input_{i}"


def from_saved_model(path: str, inputs=None, outputs=None, signature: str = "serving_default") -> Graph:
    import tensorflow as tf

    try:
        obj = tf.saved_model.load(path)
    # TF's object loader fails with whatever the restored objects raise (AttributeError for a Keras 2
    # optimizer's slots, ValueError, KeyError, NotFoundError...): every failure is a reason to try the
    # MetaGraph path before giving up.
    except Exception as e:
        return _from_meta_graph(path, inputs, outputs, signature, object_error=e)
    sigs = getattr(obj, "signatures", {}) or {}
    if signature not in sigs:
        have = ", ".join(sorted(sigs)) or "none"
        raise ModelLoadError(f"{path}: no signature {signature!r} (available: {have})")
    fn = sigs[signature]
    args, kwargs = fn.structured_input_signature
    in_names = [_spec_name(s, i) for i, s in enumerate(tf.nest.flatten((args, kwargs)))]
    if kwargs and not args:
        in_names = sorted(kwargs)
    out_names = _flat_names(fn.structured_outputs, "output")
    return from_concrete_function(fn, inputs, outputs, input_names=in_names, output_names=out_names,
                                  label=path)


def _from_meta_graph(path: str, inputs, outputs, signature: str, object_error: BaseException) -> Graph:
    """Load ``signature`` through TF1's MetaGraph loader; ``object_error`` is why TF2's loader failed."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_from_session_graph)
    from tensorflow.python.util import deprecation

    why = describe(object_error, 200)
    g = tf.Graph()
    try:
        # The TF1 loader is deprecated, and says so on stderr; here it is the fallback on purpose.
        with tf.compat.v1.Session(graph=g) as sess, deprecation.silence():
            meta = tf.compat.v1.saved_model.loader.load(sess, [SERVE_TAG], path)
            sigs = meta.signature_def
            if signature not in sigs:
                have = ", ".join(sorted(k for k in sigs if not k.startswith("__"))) or "none"
                raise ModelLoadError(f"{path}: no signature {signature!r} (available: {have})")
            sig = sigs[signature]
            in_keys, out_keys = sorted(sig.inputs), sorted(sig.outputs)  # tf.nest order, as TF2 loads them
            in_tensors = [sig.inputs[k].name for k in in_keys]
            out_tensors = [sig.outputs[k].name for k in out_keys]
            frozen = convert_variables_to_constants_from_session_graph(
                sess, g.as_graph_def(), sorted({t.rpartition(":")[0] for t in out_tensors}))
    except ModelLoadError:
        raise
    except Exception as e:  # the MetaGraph loader, too, raises whatever the saved graph makes TF raise
        raise ModelLoadError(f"{path}: cannot load SavedModel: {why}; the MetaGraph loader failed too: "
                             f"{describe(e, 200)}") from None
    # The frozen graph still calls the signature's function; as a ConcreteFunction it gets inlined by the
    # same freezing path as every other SavedModel, so the passes see one flat graph.
    try:
        wrapped = tf.compat.v1.wrap_function(lambda: tf.graph_util.import_graph_def(frozen, name=""), [])
        fn = wrapped.prune([wrapped.graph.get_tensor_by_name(t) for t in in_tensors],
                           [wrapped.graph.get_tensor_by_name(t) for t in out_tensors])
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as e:
        raise ModelLoadError(f"{path}: cannot load SavedModel: {why}; the MetaGraph loader's signature "
                             f"{signature!r} cannot be wrapped: {describe(e, 200)}") from None
    return from_concrete_function(fn, inputs, outputs, input_names=in_keys, output_names=out_keys,
                                  label=path)


def from_keras(model, inputs=None, outputs=None, label="keras.Model") -> Graph:
    import tensorflow as tf

    try:
        kin = list(model.inputs)
    except (AttributeError, ValueError):  # a subclassed model that was never built or called
        kin = []
    if not kin:
        raise ModelLoadError(f"{label}: Keras model has no defined inputs (build or call it first)")
    in_names = [_keras_input_name(t, i) for i, t in enumerate(kin)]
    specs = [tf.TensorSpec(tuple(t.shape), tf.as_dtype(t.dtype), name=n) for t, n in zip(kin, in_names)]
    out_names = list(getattr(model, "output_names", None) or [])
    n_out = len(model.outputs)
    if len(out_names) != n_out or len(set(out_names)) != n_out:
        out_names = [f"output_{i}" for i in range(n_out)] if n_out > 1 else ["output_0"]

    @tf.function(input_signature=specs)
    def serve(*xs):
        y = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        return dict(zip(out_names, tf.nest.flatten(y)))

    try:
        fn = serve.get_concrete_function()
    except Exception as e:  # tracing runs the user's call(): any exception type can come out of it
        raise ModelLoadError(f"{label}: cannot trace Keras model: {describe(e, 300)}") from None
    return from_concrete_function(fn, inputs, outputs, input_names=in_names,
                                  output_names=sorted(out_names), label=label)


def _keras_input_name(t, i: int) -> str:
    # Keras 3 names symbolic tensors "keras_tensor_N"; the InputLayer carries the user-facing name.
    hist = getattr(t, "_keras_history", None)
    layer = getattr(hist, "operation", None) or (hist[0] if hist else None)
    return getattr(layer, "name", None) or getattr(t, "name", None) or f"input_{i}"


def load_keras_file(path: str, inputs, outputs) -> Graph:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises anything from h5py/zipfile/deserialization of user layers
        raise ModelLoadError(f"{path}: cannot load Keras model: {describe(e, 300)}") from None
    return from_keras(model, inputs, outputs, label=path)
