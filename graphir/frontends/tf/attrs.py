"""NodeDef attributes -> IR attribute values, losslessly (the backend converts them back).

Constants stay encoded: a :class:`~graphir.ir.Tensor` keeps TF's serialized TensorProto and decodes it
only when a pass asks for its value.
"""
from __future__ import annotations

import functools

from ...dialects.tf import dtype_from_tf
from ...ir import FuncRef, Placeholder, Shape, Tensor


def shape_from_proto(sp) -> Shape:
    if sp.unknown_rank:
        return Shape(None)
    return Shape([d.size for d in sp.dim])


def _decode_tensor(data: bytes):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    return tf.make_ndarray(tensor_pb2.TensorProto.FromString(data))


def _tensor(tp) -> Tensor:
    data = tp.SerializeToString()
    return Tensor(dtype_from_tf(tp.dtype), shape_from_proto(tp.tensor_shape),
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
    ("shape", lambda xs: [shape_from_proto(x) for x in xs]),
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
        return shape_from_proto(av.shape)
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
