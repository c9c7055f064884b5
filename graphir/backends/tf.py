"""TensorFlow backend: graphir IR -> GraphDef, and writing ``.pb`` / ``.pbtxt`` / SavedModel.

The inverse of :mod:`graphir.frontends.tf`: an untouched graph comes back as the same NodeDefs, with
constants re-emitted from their original encoding byte for byte.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from ..dialects.tf import NODE_EXTRAS, _op_def, dtype_to_tf
from ..errors import GraphirError
from ..ir import DType, FuncRef, Graph, Placeholder, Shape, Tensor
from ..ir.printer import Elided
from .atomic import atomic_directory, atomic_write_bytes, atomic_write_text


@functools.lru_cache(maxsize=None)
def _attr_types(op: str) -> dict:
    od = _op_def(op)
    return {} if od is None else {a.name: a.type for a in od.attr}


def _set_shape(sp, shape):
    sp.SetInParent()  # a scalar shape has no dims but must still mark the attr as set
    if not isinstance(shape, Shape):
        shape = Shape(shape)
    if shape.dims is None:
        sp.unknown_rank = True
        return
    for d in shape.dims:
        sp.dim.add(size=-1 if d is None else d)


def _set_tensor(tp, t, where: str):
    if not isinstance(t, Tensor):
        t = Tensor.from_array(np.asarray(t))
    enc = t.encoded
    if enc is not None and enc[0] == "tf":
        tp.ParseFromString(enc[1])
        if tp.dtype % 100 == dtype_to_tf(t.dtype) % 100 and list(d.size for d in tp.tensor_shape.dim) == list(
                -1 if d is None else d for d in (t.shape.dims or ())):
            return
        tp.Clear()
    if t.digest_only:
        raise GraphirError(f"constant {where!r} was elided from the text dump; dump with --full-constants")
    import tensorflow as tf

    arr = t.numpy()
    dims = t.shape.dims
    tp.CopyFrom(tf.make_tensor_proto(arr, dtype=tf.dtypes.as_dtype(dtype_to_tf(t.dtype.base)),
                                     shape=list(dims) if dims is not None and t.shape.is_static else None))


def _scalar_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, (str, bytes)):
        return "string"
    if isinstance(v, DType):
        return "type"
    if isinstance(v, Shape):
        return "shape"
    if isinstance(v, (Tensor, np.ndarray)):
        return "tensor"
    if isinstance(v, FuncRef):
        return "func"
    raise GraphirError(f"cannot convert attribute value of type {type(v).__name__} to TensorFlow")


def _func(nl, f: FuncRef, where):
    nl.name = f.name
    for k, v in f.attrs:
        set_attr(nl.attr[k], v, None, f"{where}.{k}")


_SCALAR_FIELD = {"int": "i", "float": "f", "bool": "b", "string": "s", "type": "type"}


def _set_scalar(av_or_list, kind: str, v, where, is_list: bool):
    if kind == "int":
        x = int(v)
    elif kind == "float":
        x = float(v)
    elif kind == "bool":
        x = bool(v)
    elif kind == "string":
        x = v.encode("utf-8") if isinstance(v, str) else bytes(v)
    elif kind == "type":
        x = dtype_to_tf(v if isinstance(v, DType) else DType.get(str(v)))
    field = _SCALAR_FIELD.get(kind)
    if field:
        if is_list:
            getattr(av_or_list, field).append(x)
        else:
            setattr(av_or_list, field, x)
        return
    # shape / tensor / func: the AttrValue field is named like the kind
    msg = getattr(av_or_list, kind).add() if is_list else getattr(av_or_list, kind)
    if kind == "shape":
        _set_shape(msg, v)
    elif kind == "tensor":
        _set_tensor(msg, v, where)
    else:
        _func(msg, v, where)


def set_attr(av, v, op_type: str | None, where: str) -> None:
    """Fill AttrValue ``av`` from IR value ``v``, coerced to the op def's attr type ``op_type``."""
    if v is None:
        return
    if isinstance(v, Elided):
        raise GraphirError(f"attribute {where!r} was elided from the text dump; dump with --full-constants")
    if isinstance(v, Placeholder):
        av.placeholder = v.name
        return
    # Coerce to what the op def declares: a bare value for a list attr, a list for a shape or tensor.
    if op_type and op_type.startswith("list(") and not isinstance(v, (list, tuple)):
        v = [v]
    elif op_type == "shape" and isinstance(v, (list, tuple)):
        v = Shape(v)
    elif op_type == "tensor" and isinstance(v, (list, tuple)):
        v = np.asarray(v)
    elif op_type == "func" and isinstance(v, str):
        v = FuncRef(v)
    if isinstance(v, (list, tuple)):
        lv = av.list
        lv.SetInParent()
        kind = op_type[5:-1] if op_type and op_type.startswith("list(") else None
        for x in v:
            _set_scalar(lv, kind or _scalar_kind(x), x, where, True)
        return
    kind = op_type if op_type and not op_type.startswith("list(") else _scalar_kind(v)
    if kind == "tensor" and isinstance(v, np.ndarray):
        v = Tensor.from_array(v)
    _set_scalar(av, kind, v, where, False)


def _live_colocation(graph: Graph, hints):
    """Colocation hints (``loc:@node``) that still name a node of ``graph``. Passes remove nodes other nodes'
    hints refer to (TF's cond puts one on every Switch), and TF's importer rejects a hint to a missing node."""
    out = []
    for h in hints if isinstance(hints, list) else [hints]:
        text = h.decode("utf-8", "replace") if isinstance(h, bytes) else str(h)
        if not text.startswith("loc:@") or text[5:] in graph:
            out.append(h)
    return out


def to_graph_def(graph: Graph):
    """The GraphDef of ``graph``: nodes in insertion order, versions and function library restored."""
    from tensorflow.core.framework import function_pb2, graph_pb2

    gd = graph_pb2.GraphDef()
    for node in graph.nodes():
        nd = gd.node.add(name=node.name, op=node.op_type)
        if node.domain != "tf":
            raise GraphirError(f"node {node.name!r}: op {node.qualified_op} has no TensorFlow equivalent")
        nd.input.extend([v.name for v in node.inputs] + ["^" + c.name for c in node.control_inputs])
        if node.device:
            nd.device = node.device
        for field in NODE_EXTRAS:
            data = node.meta.get("tf." + field)
            if data is not None:
                getattr(nd, field).ParseFromString(data)
        types = _attr_types(node.op_type)
        for k, v in node.attrs.items():
            if k == "_class":
                v = _live_colocation(graph, v)
                if not v:
                    continue
            set_attr(nd.attr[k], v, types.get(k), node.name if k == "value" else f"{node.name}.{k}")
    ver = graph.attrs.get("tf.versions")
    if ver is not None:
        gd.versions.producer = int(ver.get("producer", 0))
        gd.versions.min_consumer = int(ver.get("min_consumer", 0))
        gd.versions.bad_consumers.extend(int(x) for x in ver.get("bad_consumers", ()))
    lib = graph.attrs.get("tf.library")
    if isinstance(lib, Elided):
        raise GraphirError("the function library was elided from the text dump; dump with --full-constants")
    if lib:
        gd.library.CopyFrom(function_pb2.FunctionDefLibrary.FromString(lib))
    if "tf.debug_info" in graph.meta:
        gd.debug_info.ParseFromString(graph.meta["tf.debug_info"])
    return gd


# ---------------------------------------------------------------------------------------- saving
def _saved_model(graph: Graph, gd, path: str) -> None:
    import tensorflow as tf

    def imp():
        tf.compat.v1.import_graph_def(gd, name="")

    wrapped = tf.compat.v1.wrap_function(imp, [])
    g = wrapped.graph
    feeds = [g.get_tensor_by_name(_tensor(p.value)) for p in graph.inputs]
    fetches = [g.get_tensor_by_name(_tensor(p.value)) for p in graph.outputs]
    pruned = wrapped.prune(feeds, fetches)
    specs = [tf.TensorSpec(tuple(p.value.shape.dims) if p.value.shape.dims is not None else None,
                           tf.dtypes.as_dtype(dtype_to_tf(p.value.dtype.base)), name=_sig_name(p.name))
             for p in graph.inputs]
    out_names = [_sig_name(p.name) for p in graph.outputs]

    @tf.function(input_signature=specs)
    def serve(*xs):
        return dict(zip(out_names, pruned(*xs)))

    module = tf.Module()
    module.serve = serve
    with atomic_directory(path) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": serve.get_concrete_function()})


def _sig_name(name: str) -> str:
    # SavedModel signature keys must be valid TF names; ``node:1`` is not.
    return name.replace(":", "_")


def _tensor(v) -> str:
    return f"{v.node.name}:{v.index}"


def save(graph: Graph, path, format: str = "pb", **kw) -> None:
    """Write ``graph`` as ``pb`` (binary GraphDef), ``pbtxt`` (text) or ``saved_model`` (directory)."""
    path = os.fspath(path)
    gd = to_graph_def(graph)
    try:
        _write(gd, graph, path, format)
    except OSError as e:
        raise GraphirError(f"{path}: cannot write: {e.strerror or e}") from None


def _write(gd, graph: Graph, path: str, format: str) -> None:
    if format == "pb":
        # Serialise first: ByteSize() walks the whole message again (0.2 s on ResNet50).
        try:
            data = gd.SerializeToString(deterministic=True)
        except Exception:
            if gd.ByteSize() < 2**31:
                raise
            data = None
        if data is None or len(data) >= 2**31:
            raise GraphirError(f"{path}: graph is larger than 2 GB, which a .pb cannot hold")
        atomic_write_bytes(path, data)
    elif format == "pbtxt":
        from google.protobuf import text_format

        atomic_write_text(path, text_format.MessageToString(gd))
    elif format == "saved_model":
        try:
            _saved_model(graph, gd, path)
        except GraphirError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()
            raise GraphirError(f"{path}: cannot write SavedModel: {msg[0] if msg else type(e).__name__}") from None
    else:
        raise GraphirError(f"unknown output format {format!r}; expected pb, pbtxt or saved_model")
