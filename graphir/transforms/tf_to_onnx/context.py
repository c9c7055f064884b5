"""The converter registry and the context a converter writes ONNX nodes through.

A converter is a function ``fn(cx: Ctx) -> Value | Sequence[Value]`` registered for one or more TF op
types with :func:`converts`. It reads the TF node (``cx.node``, ``cx.attr``), its already converted
operands (``cx.input(i)``, ``cx.const(i)`` for constant ones) and returns the ONNX values that stand for
the node's outputs, in order. It builds ONNX nodes only through ``cx.op`` and ``cx.constant``, so names,
types and op set differences are handled in one place.

TF is NHWC, ONNX's convolution family NCHW: a converter of a layout-sensitive op transposes into NCHW and
back (``cx.to_nchw`` / ``cx.to_nhwc``); onnx-transpose-sink then removes the pairs that meet.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ...dialects.onnx import add_node, dtype_to_onnx, unique_value_name
from ...errors import GraphirError
from ...ir import Graph, Node, Value
from ...ir.types import DType, Shape, Tensor, TensorType
from ..patterns import const_array

CONVERTERS: dict[str, Callable[["Ctx"], Union[Value, Sequence[Value]]]] = {}
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

I64 = DType.get("i64")
I32 = DType.get("i32")
F32 = DType.get("f32")
BOOL = DType.get("bool")


class ExportError(GraphirError):
    """The TF graph cannot be written as ONNX (bad input for export: exit 2)."""


def converts(*ops: str):
    """Register the decorated function as the converter of TF ``ops``."""

    def deco(fn):
        for op in ops:
            if op in CONVERTERS:
                raise ValueError(f"two converters for TF op {op}")
            CONVERTERS[op] = fn
        return fn

    return deco


@lru_cache(maxsize=None)
def _op_def_default(op_type: str, key: str):
    from ...dialects.tf_opdefs import _op_def
    from ...frontends.tf.attrs import convert_attr

    od = _op_def(op_type)
    for a in od.attr if od is not None else ():
        if a.name == key and a.HasField("default_value"):
            return convert_attr(a.default_value)
    return None


def perm_shape(shape: Shape, perm: Sequence[int]) -> Shape:
    if shape.dims is None or len(shape.dims) != len(perm):
        return Shape(None)
    return Shape([shape.dims[p] for p in perm])


NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


class Ctx:
    """What one converter sees: the TF node being converted and a way to add ONNX nodes for it."""

    def __init__(self, graph: Graph, node: Node, opset: int):
        self.graph = graph
        self.node = node
        self.opset = opset

    # -------------------------------------------------------------- reading the TF node
    @property
    def op_type(self) -> str:
        return self.node.op_type

    def attr(self, key: str, default=None):
        """The node's attribute ``key``; absent, TF's OpDef default (SavedModels strip attributes that have
        their default value), else ``default``."""
        if key in self.node.attrs:
            return self.node.attrs[key]
        d = _op_def_default(self.op_type, key)
        return default if d is None else d

    def input(self, i: int) -> Value:
        v = self.node.inputs[i]
        if v is None:
            raise ExportError(f"{self.node.name} ({self.op_type}): operand {i} is absent")
        return v

    @property
    def n_inputs(self) -> int:
        return len(self.node.inputs)

    def const(self, i: int) -> Optional[np.ndarray]:
        """Operand ``i``'s value when it is a constant, else None."""
        return const_array(self.node.inputs[i]) if i < len(self.node.inputs) else None

    def need_const(self, i: int, what: str) -> np.ndarray:
        a = self.const(i)
        if a is None:
            raise ExportError(f"{self.node.name} ({self.op_type}): {what} must be a constant for ONNX export")
        return a

    def out_type(self, i: int = 0) -> TensorType:
        return self.node.outputs[i].type

    def fail(self, why: str) -> "ExportError":
        return ExportError(f"{self.node.name} ({self.op_type}): {why}")

    # -------------------------------------------------------------- writing ONNX
    def constant(self, array, name: str = "const", dtype: Optional[DType] = None) -> Value:
        t = Tensor.from_array(np.asarray(array), dtype)
        return self.graph.add_initializer(unique_value_name(self.graph, f"{self.node.name}/{name}"), t)

    def i64(self, values) -> Value:
        return self.constant(np.asarray(values, np.int64), "shape")

    def op(self, op_type: str, inputs: Sequence[Optional[Value]], attrs: Optional[dict] = None, *,
           dtype: Optional[DType] = None, shape: Optional[Shape] = None, types: Optional[Sequence[TensorType]] = None,
           outputs: int = 1) -> Union[Value, tuple[Value, ...]]:
        """Add an ONNX node. Output types: ``types``, else ``dtype`` (default: the first input's) with
        ``shape`` (default: unknown; shape inference fills it in after the conversion)."""
        if types is None:
            dt = dtype or next(v.dtype for v in inputs if v is not None)
            types = [TensorType(dt, shape if shape is not None else Shape(None))] * outputs
        n = add_node(self.graph, op_type, inputs, attrs or {}, types, f"{self.node.name}/{op_type}")
        return n.outputs[0] if len(types) == 1 else tuple(n.outputs)

    # -------------------------------------------------------------- common pieces
    def cast(self, v: Value, dtype: DType) -> Value:
        if v.dtype is dtype:
            return v
        a = const_array(v)
        if a is not None:
            return self.constant(a.astype(dtype.np), "cast")
        return self.op("Cast", [v], {"to": dtype_to_onnx(dtype)}, dtype=dtype, shape=v.shape)

    def as_i64(self, i_or_v: Union[int, Value]) -> Value:
        """Operand ``i`` (or a value) as int64, as ONNX's shape, axes and index operands want it."""
        v = self.input(i_or_v) if isinstance(i_or_v, int) else i_or_v
        return self.cast(v, I64)

    def transpose(self, v: Value, perm: Sequence[int]) -> Value:
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return v
        a = const_array(v)
        if a is not None:
            return self.constant(np.transpose(a, perm), "transposed")
        return self.op("Transpose", [v], {"perm": perm}, shape=perm_shape(v.shape, perm))

    def to_nchw(self, v: Value) -> Value:
        return self.transpose(v, NHWC_TO_NCHW)

    def to_nhwc(self, v: Value) -> Value:
        return self.transpose(v, NCHW_TO_NHWC)

    def unsqueeze(self, v: Value, axes: Sequence[int]) -> Value:
        return self.op("Unsqueeze", [v, self.i64(list(axes))])

    def squeeze(self, v: Value, axes: Optional[Sequence[int]] = None) -> Value:
        return self.op("Squeeze", [v] + ([] if axes is None else [self.i64(list(axes))]))

    def reduce(self, op: str, v: Value, axes: Optional[Sequence[int]], keepdims: bool) -> Value:
        """Reduce* over ``axes`` (all when None): axes are an input from op set 18 (13 for ReduceSum)."""
        attrs = {"keepdims": int(bool(keepdims))}
        axes_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if axes is None:
            return self.op(op, [v], attrs)
        if axes_input:
            return self.op(op, [v, self.i64(list(axes))], attrs)
        return self.op(op, [v], {**attrs, "axes": [int(a) for a in axes]})

    def where(self, c: Value, a: Value, b: Value, shape: Optional[Shape] = None) -> Value:
        """Where(c, a, b); on booleans (ONNX Runtime has no bool Where kernel) as (c and a) or (not c and b)."""
        if a.dtype is BOOL:
            return self.op("Or", [self.op("And", [c, a]), self.op("And", [self.op("Not", [c]), b])], shape=shape)
        return self.op("Where", [c, a, b], dtype=a.dtype, shape=shape)

    def scalar_like(self, value: float, like: Value, name: str = "scalar") -> Value:
        return self.constant(np.array(value, dtype=like.dtype.np), name)
