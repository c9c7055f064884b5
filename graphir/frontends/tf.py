"""TensorFlow frontend: GraphDef / SavedModel / Keras / in-memory TF objects -> graphir IR.

Types and shapes come from importing the GraphDef into a ``tf.Graph`` (TF's own shape inference).
Every NodeDef becomes one IR node with its attrs converted losslessly; constants stay encoded and are
decoded only when a pass asks for their value.
"""
from __future__ import annotations

import functools
import os
import zipfile
from ..dialects.tf import NODE_EXTRAS, SOURCES, _op_def, dtype_from_tf
from ..errors import ModelLoadError
from ..ir import FuncRef, Graph, Placeholder, Port, Shape, Tensor, TensorType
from .select import select_signature

# Sinks that are never graph outputs.
NOT_OUTPUTS = {"Const", "NoOp", "Assert", "HostConst"} | SOURCES
INPUT_OPS = SOURCES  # for code that reads raw NodeDefs (runtime_check); IR nodes ask ``node.info.source``


# ---------------------------------------------------------------------------------------- attrs
def _shape(sp) -> Shape:
    if sp.unknown_rank:
        return Shape(None)
    return Shape([d.size for d in sp.dim])


def _decode_tensor(data: bytes):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    return tf.make_ndarray(tensor_pb2.TensorProto.FromString(data))


def _tensor(tp) -> Tensor:
    data = tp.SerializeToString()
    return Tensor(dtype_from_tf(tp.dtype), _shape(tp.tensor_shape),
                  decode=functools.partial(_decode_tensor, data), encoded=("tf", data))


def _str(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _func(f) -> FuncRef:
    return FuncRef(f.name, tuple(sorted((k, convert_attr(v)) for k, v in f.attr.items())))


_LIST_FIELDS = (
    ("s", lambda xs: [_str(x) for x in xs]),
    ("i", lambda xs: [int(x) for x in xs]),
    ("f", lambda xs: [float(x) for x in xs]),
    ("b", lambda xs: [bool(x) for x in xs]),
    ("type", lambda xs: [dtype_from_tf(x) for x in xs]),
    ("shape", lambda xs: [_shape(x) for x in xs]),
    ("tensor", lambda xs: [_tensor(x) for x in xs]),
    ("func", lambda xs: [_func(x) for x in xs]),
)


def convert_attr(av):
    """AttrValue -> IR attribute value (the kinds graphir's printer knows)."""
    kind = av.WhichOneof("value")
    if kind == "i":
        return int(av.i)
    if kind == "type":
        return dtype_from_tf(av.type)
    if kind == "s":
        return _str(av.s)
    if kind == "b":
        return bool(av.b)
    if kind == "f":
        return float(av.f)
    if kind == "shape":
        return _shape(av.shape)
    if kind == "tensor":
        return _tensor(av.tensor)
    if kind == "list":
        lv = av.list
        for field, conv in _LIST_FIELDS:
            xs = getattr(lv, field)
            if len(xs):
                return conv(xs)
        return []
    if kind == "func":
        return _func(av.func)
    if kind == "placeholder":
        return Placeholder(av.placeholder)
    return None


def parse_input(s: str):
    """``"^n"`` -> (n, None); ``"n:i"`` -> (n, i); ``"n"`` -> (n, 0)."""
    if s.startswith("^"):
        return s[1:], None
    name, sep, idx = s.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return s, 0


# ---------------------------------------------------------------------------------------- typing
def _attr_or_default(nd, od, name):
    if name in nd.attr:
        return nd.attr[name]
    for a in od.attr:
        if a.name == name and a.HasField("default_value"):
            return a.default_value
    return None


def _expected_input_types(nd) -> list:
    """The TF DataType enums a known op expects on each input slot (0 where unknown)."""
    od = _op_def(nd.op)
    if od is None:
        return []
    out = []
    for arg in od.input_arg:
        if arg.number_attr:
            n = _attr_or_default(nd, od, arg.number_attr)
            t = arg.type or getattr(_attr_or_default(nd, od, arg.type_attr), "type", 0)
            out.extend([t] * (n.i if n is not None else 0))
        elif arg.type_list_attr:
            lv = _attr_or_default(nd, od, arg.type_list_attr)
            out.extend(lv.list.type if lv is not None else [])
        else:
            av = None if arg.type else _attr_or_default(nd, od, arg.type_attr)
            out.append(arg.type or (av.type if av is not None else 0))
    return out


_BIG_CONST = 1024  # bytes; larger constants are stripped before TF's import (only their shape matters)


def _typing_graph_def(gd, unknown: set):
    """The GraphDef that TF imports for type inference: big constants without their data, and each
    unregistered op replaced by typed Placeholders feeding an ``IdentityN`` of the same name."""
    from tensorflow.core.framework import graph_pb2, types_pb2

    n_out: dict[str, int] = {}
    want: dict[tuple[str, int], int] = {}
    if unknown:
        for nd in gd.node:
            exp = None
            for slot, s in enumerate(i for i in nd.input if not i.startswith("^")):
                src, idx = parse_input(s)
                if src in unknown:
                    n_out[src] = max(n_out.get(src, 1), idx + 1)
                    if exp is None:
                        exp = _expected_input_types(nd)
                    if slot < len(exp) and exp[slot]:
                        want.setdefault((src, idx), exp[slot])
    big = [i for i, nd in enumerate(gd.node)
           if nd.op == "Const" and "value" in nd.attr and nd.attr["value"].tensor.ByteSize() > _BIG_CONST]
    if not big and not unknown:
        return gd
    out = graph_pb2.GraphDef()
    out.CopyFrom(gd)
    for i in big:
        t = out.node[i].attr["value"].tensor
        dtype, shape = t.dtype, t.tensor_shape.SerializeToString()
        t.Clear()
        t.dtype = dtype
        t.tensor_shape.ParseFromString(shape)
    for i, nd in enumerate(gd.node):
        if nd.name not in unknown:
            continue
        shapes = list(nd.attr["_output_shapes"].list.shape) if "_output_shapes" in nd.attr else []
        k = max(n_out.get(nd.name, 1), len(shapes))
        own = []
        for key in ("Tout", "output_types", "out_types"):
            if key in nd.attr and len(nd.attr[key].list.type):
                own = list(nd.attr[key].list.type)
        for key in ("T", "dtype", "out_type"):
            if not own and key in nd.attr and nd.attr[key].WhichOneof("value") == "type":
                own = [nd.attr[key].type]
        types = []
        for j in range(k):
            t = want.get((nd.name, j)) or (own[j] if j < len(own) else own[-1] if own else types_pb2.DT_FLOAT)
            types.append(t % 100)
            ph = out.node.add(name=f"{nd.name}/__graphir_out_{j}", op="Placeholder")
            ph.attr["dtype"].type = t % 100
            if j < len(shapes):
                ph.attr["shape"].shape.CopyFrom(shapes[j])
            else:
                ph.attr["shape"].shape.unknown_rank = True
        idn = out.node[i]
        idn.Clear()
        idn.name, idn.op = nd.name, "IdentityN"
        idn.input.extend(f"{nd.name}/__graphir_out_{j}" for j in range(k))
        idn.attr["T"].list.type.extend(types)
    return out


def _import(gd, label: str):
    """Import into a fresh tf.Graph for TF's shape inference.

    Returns (``name -> [(dtype enum, dims or None)]`` per output, names of unregistered ops)."""
    import tensorflow as tf

    lib = {f.signature.name for f in gd.library.function}
    unknown = {nd.name for nd in gd.node if nd.op not in lib and _op_def(nd.op) is None}
    tgd = _typing_graph_def(gd, unknown)
    g = tf.Graph()
    try:
        try:
            return _import_types(g, tgd), unknown
        except (AttributeError, ImportError, TypeError):  # TF's private API moved: take the public path
            g = tf.Graph()
        with g.as_default():
            tf.graph_util.import_graph_def(tgd, name="")
    except Exception as e:  # TF raises ValueError / InvalidArgumentError / TypeError with long texts
        raise ModelLoadError(f"{label}: invalid GraphDef: {_one_line(e)}") from None
    types = {}
    for op in g.get_operations():
        types[op.name] = [(t.dtype.as_datatype_enum, None if t.shape.rank is None else t.shape.as_list())
                          for t in op.outputs]
    return types, unknown


def _import_types(g, gd) -> dict:
    """The C-level half of ``tf.graph_util.import_graph_def`` (the same TF_GraphImportGraphDef call and
    shape inference), reading each output's dtype and shape off bare Operation wrappers. The public call
    also registers every op with the Python graph and resolves devices and colocation, which costs several
    times the import itself and is of no use here."""
    from tensorflow.python.client import pywrap_tf_session as c_api
    from tensorflow.python.framework import c_api_util, ops

    opts = c_api_util.ScopedTFImportGraphDefOptions()
    c_api.TF_ImportGraphDefOptionsSetPrefix(opts.options, "")
    buf = c_api.TF_NewBufferFromString(gd.SerializeToString())
    try:
        with g._c_graph.get() as c_graph:
            results = c_api.TF_GraphImportGraphDefWithResults(c_graph, buf, opts.options)
        c_api_util.ScopedTFImportGraphDefResults(results)
    finally:
        c_api.TF_DeleteBuffer(buf)
    types = {}
    for c_op in g.new_operations():
        op = ops.Operation(c_op, ops.SymbolicTensor)
        op.graph = g
        op._init_outputs()
        out = []
        for t in op.outputs:
            dims, unknown_rank = t._shape
            out.append((t._dtype.as_datatype_enum, None if unknown_rank else list(dims)))
        types[op.name] = out
    return types


def _one_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    msg = msg[0] if msg else type(e).__name__
    return msg if len(msg) < 300 else msg[:297] + "..."


# ---------------------------------------------------------------------------------------- GraphDef -> IR
def _tensor_type(t, cache: dict) -> TensorType:
    enum, dims = t
    dt = cache.get(enum)
    if dt is None:
        dt = cache[enum] = dtype_from_tf(enum)
    return TensorType(dt, Shape(dims))


def from_graph_def(graph_def, inputs=None, outputs=None, name: str = "main", signature_names=None,
                   *, label: str = "GraphDef") -> Graph:
    """Build the IR of ``graph_def``. ``inputs``/``outputs`` override the detected signature (tensor or
    port names); ``signature_names`` maps tensor names to port names for the detected/given ports."""
    tf_types, unknown = _import(graph_def, label)
    graph = Graph(name)
    dcache: dict = {}
    pending = []
    for nd in graph_def.node:
        types = [_tensor_type(t, dcache) for t in tf_types[nd.name]]
        attrs = {k: convert_attr(v) for k, v in nd.attr.items()}
        # Inputs are wired in a second sweep: GraphDefs need not be in topological order.
        node = graph.add_node(nd.op, (), attrs, types, domain="tf", name=nd.name, device=nd.device, unique=False)
        for field in NODE_EXTRAS:
            if nd.HasField(field):
                node.meta["tf." + field] = getattr(nd, field).SerializeToString(deterministic=True)
        pending.append((node, nd.input))
    for node, ins in pending:
        data, ctrl = [], []
        for s in ins:
            src, idx = parse_input(s)
            if idx is None:
                ctrl.append(graph.node(src))
            else:
                data.append(graph.node(src).outputs[idx])
        if data:
            graph.set_inputs(node, data)
        for c in ctrl:
            graph.add_control_input(node, c)
    if graph_def.HasField("versions"):
        v = graph_def.versions
        graph.attrs["tf.versions"] = {"producer": int(v.producer), "min_consumer": int(v.min_consumer),
                                      "bad_consumers": [int(x) for x in v.bad_consumers]}
    if graph_def.HasField("library") and graph_def.library.ByteSize():
        graph.attrs["tf.library"] = graph_def.library.SerializeToString(deterministic=True)
    if graph_def.HasField("debug_info"):
        graph.meta["tf.debug_info"] = graph_def.debug_info.SerializeToString(deterministic=True)
    names = dict(signature_names or {})
    graph.inputs = [Port(names.get(v.name, v.name), v) for v in default_inputs(graph)]
    graph.outputs = [Port(names.get(v.name, v.name), v) for v in default_outputs(graph)]
    if unknown:
        graph.meta["tf.unknown_ops"] = sorted(unknown)
    return select_signature(graph, inputs, outputs, port_names=names)


def default_inputs(graph: Graph) -> list:
    return [n.outputs[0] for n in graph.nodes() if n.info.source and n.outputs]


def default_outputs(graph: Graph) -> list:
    out = []
    for n in graph.nodes():
        if n.op_type in NOT_OUTPUTS or not n.outputs or graph.users(n) or graph.control_users(n):
            continue
        info = n.info
        if info.side_effecting and info.known:  # an unknown op at a sink is taken to be a model output
            continue
        if n.inputs and all(v.node.op_type in ("Switch", "RefSwitch") for v in n.inputs):
            continue  # a TF1 cond's branch pivot (cond/switch_t, cond/switch_f) with an empty branch
        out.extend(n.outputs)
    return out


def new_placeholder(graph: Graph, value, name: str):
    """A ``Placeholder`` producing a tensor of ``value``'s type (used to cut a graph at an inner tensor)."""
    dt = value.dtype.base
    return graph.add_node("Placeholder", (), {"dtype": dt, "shape": value.shape},
                          [TensorType(dt, value.shape)], domain="tf", name=name)


# ---------------------------------------------------------------------------------------- files & objects
def _read_graph_def(path: str, text: bool):
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2

    with open(path, "rb") as f:
        data = f.read()
    gd = graph_pb2.GraphDef()
    # A binary file that fails to parse may still be a text GraphDef under a .pb name.
    for as_text in ((True,) if text else (False, True)):
        try:
            if as_text:
                text_format.Parse(data.decode("utf-8"), gd)
            else:
                gd.ParseFromString(data)
            break
        except Exception:
            gd.Clear()
    else:
        kind = "text " if text else ""
        raise ModelLoadError(f"{path}: not a TensorFlow {kind}GraphDef (failed to parse {len(data)} bytes)")
    if not _plausible(gd):
        raise ModelLoadError(f"{path}: not a TensorFlow GraphDef ({len(data)} bytes parse to no valid nodes)")
    return gd


def _plausible(gd) -> bool:
    """Random bytes sometimes parse as a protobuf; a real GraphDef has named nodes and no unknown fields."""
    import re

    from google.protobuf import unknown_fields

    if not len(gd.node) or len(unknown_fields.UnknownFieldSet(gd)):
        return False
    ok = re.compile(r"^[A-Za-z0-9_.\-/>]+$")
    return all(ok.match(n.name) and ok.match(n.op) for n in gd.node)


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
    except Exception as e:
        raise ModelLoadError(f"{label}: cannot freeze: {_one_line(e)}") from None
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
    return select_signature(graph, inputs, outputs)


def _tname(t) -> str:
    n = t.name
    return n[:-2] if n.endswith(":0") else n


def _spec_name(spec, i):
    return getattr(spec, "name", None) or f"input_{i}"


def from_saved_model(path: str, inputs=None, outputs=None, signature: str = "serving_default") -> Graph:
    import tensorflow as tf

    try:
        obj = tf.saved_model.load(path)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load SavedModel: {_one_line(e)}") from None
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


def from_keras(model, inputs=None, outputs=None, label="keras.Model") -> Graph:
    import tensorflow as tf

    try:
        kin = list(model.inputs)
    except Exception:
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
    except Exception as e:
        raise ModelLoadError(f"{label}: cannot trace Keras model: {_one_line(e)}") from None
    return from_concrete_function(fn, inputs, outputs, input_names=in_names,
                                  output_names=sorted(out_names), label=label)


def _keras_input_name(t, i: int) -> str:
    # Keras 3 names symbolic tensors "keras_tensor_N"; the InputLayer carries the user-facing name.
    hist = getattr(t, "_keras_history", None)
    layer = getattr(hist, "operation", None) or (hist[0] if hist else None)
    return getattr(layer, "name", None) or getattr(t, "name", None) or f"input_{i}"


def _load_keras_file(path: str, inputs, outputs) -> Graph:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load Keras model: {_one_line(e)}") from None
    return from_keras(model, inputs, outputs, label=path)


def _load_path(path: str, inputs, outputs, signature) -> Graph:
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
            raise ModelLoadError(f"{path}: not a SavedModel directory (no saved_model.pb)")
        return from_saved_model(path, inputs, outputs, signature)
    if not os.path.isfile(path):
        raise ModelLoadError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"{path}: permission denied")
    low = path.lower()
    if low.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a Keras .keras archive (not a zip file)")
    if low.endswith((".keras", ".h5", ".hdf5")):
        return _load_keras_file(path, inputs, outputs)
    if os.path.basename(low) == "saved_model.pb":
        return from_saved_model(os.path.dirname(path) or ".", inputs, outputs, signature)
    gd = _read_graph_def(path, text=low.endswith((".pbtxt", ".txt")))
    return from_graph_def(gd, inputs, outputs, label=path)


def load(model, inputs=None, outputs=None, signature: str = "serving_default") -> Graph:
    """Load a TF model given as a path or an in-memory GraphDef / tf.Graph / ConcreteFunction / keras.Model."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelLoadError(f"{path}: no such file or directory")
        return _load_path(path, inputs, outputs, signature)
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    if isinstance(model, graph_pb2.GraphDef):
        return from_graph_def(model, inputs, outputs)
    if isinstance(model, tf.Graph):
        return from_graph_def(model.as_graph_def(), inputs, outputs, label="tf.Graph")
    if hasattr(model, "get_concrete_function") and not _is_keras(model):
        try:
            model = model.get_concrete_function()
        except Exception as e:
            raise ModelLoadError(f"tf.function: cannot get a concrete function: {_one_line(e)}") from None
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        return from_concrete_function(model, inputs, outputs)
    if _is_keras(model):
        return from_keras(model, inputs, outputs)
    raise ModelLoadError(f"unsupported model object of type {type(model).__name__}")


def _is_keras(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, keras.Model)
