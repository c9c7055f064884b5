"""bf16 precision data for TF ops: the one precision-class table plus the installed TF's kernel check.

Classes: ``compute`` (bf16 pays off: matmuls, convolutions), ``follow`` (elementwise / normalisation,
bf16 when its neighbours are), ``clear`` (dtype-agnostic data movement), ``fp32`` (numerically sensitive,
and every op not listed). Whether a node can really run in bf16 is asked of TF's kernel registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from ..ir.types import DType, f32
from .tf_opdefs import _op_def, dtype_to_tf

COMPUTE = frozenset({
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv3D", "DepthwiseConv2dNative",
    "Conv2DBackpropInput", "Conv3DBackpropInputV2", "Einsum", "_FusedMatMul", "_FusedConv2D",
})
FOLLOW = frozenset({
    "BiasAdd", "BiasAddV1", "Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum",
    "Minimum", "SquaredDifference", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Erf", "Erfc", "Sigmoid",
    "Tanh", "Softplus", "Softsign", "Sqrt", "Rsqrt", "Square", "Reciprocal", "Neg", "Abs", "Floor",
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "_FusedBatchNormEx", "AvgPool", "AvgPool3D",
    "MaxPool", "MaxPoolV2", "MaxPool3D", "Mean", "Softmax", "Select", "SelectV2", "ClipByValue",
    "_MklLayerNorm",
})
CLEAR = frozenset({
    "Identity", "Snapshot", "StopGradient", "Reshape", "Transpose", "ConcatV2", "Concat", "Pack", "Unpack",
    "Split", "SplitV", "Pad", "PadV2", "MirrorPad", "Slice", "StridedSlice", "Gather", "GatherV2", "GatherNd",
    "Squeeze", "ExpandDims", "Tile", "BroadcastTo", "SpaceToBatchND", "BatchToSpaceND", "DepthToSpace",
    "SpaceToDepth", "ReverseV2", "Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike", "ArgMax",
    "ArgMin", "Cast", "ResizeNearestNeighbor", "EnsureShape",
})
# Listed for the record; any op in no table is fp32 too.
FP32_ONLY = frozenset({
    "Exp", "Expm1", "Log", "Log1p", "Pow", "LogSoftmax", "SoftmaxCrossEntropyWithLogits",
    "SparseSoftmaxCrossEntropyWithLogits", "Sum", "Prod", "L2Loss", "Cumsum", "Cumprod", "EuclideanNorm",
    "Lgamma", "Digamma", "Igamma", "Igammac", "Betainc", "Atan2", "TopKV2", "NonMaxSuppressionV3",
})
_LISTED = COMPUTE | FOLLOW | CLEAR | FP32_ONLY

# Type attrs that stay fp32 even when the node runs in bf16 (e.g. FusedBatchNorm's scale/mean/var: U).
KEEP_FP32_ATTRS = {"FusedBatchNormV2": {"U"}, "FusedBatchNormV3": {"U"}, "_FusedBatchNormEx": {"U"}}

BF16_ENUM = 14  # DT_BFLOAT16 in types.proto


def precision_class(op_type: str) -> str:
    """The bf16 class of a TF op type: compute | follow | clear | fp32."""
    if op_type in COMPUTE:
        return "compute"
    if op_type in FOLLOW:
        return "follow"
    if op_type in CLEAR:
        return "clear"
    return "fp32"


@lru_cache(maxsize=None)
def cpu_kernels(op_type: str) -> tuple:
    """The installed TF's CPU kernels for ``op_type``, each as {attr: allowed dtype enums} (cached)."""
    from tensorflow.python.framework import kernels

    out = []
    for k in kernels.get_registered_kernels_for_op(op_type).kernel:
        if k.device_type == "CPU":
            out.append({c.name: frozenset(c.allowed_values.list.type) for c in k.constraint
                        if c.allowed_values.HasField("list")})
    return tuple(out)


def has_bf16_kernel(op_type: str, bf16_attrs, other_attrs: Optional[dict] = None) -> bool:
    """True if the installed TF registers a CPU kernel for ``op_type`` with every attr in ``bf16_attrs``
    set to bf16 and the other type attrs at their given enum values (``other_attrs``: attr -> enum)."""
    other_attrs = other_attrs or {}
    for cons in cpu_kernels(op_type):
        ok = True
        for name, allowed in cons.items():
            if name in bf16_attrs:
                ok = BF16_ENUM in allowed
            elif name in other_attrs:
                ok = other_attrs[name] in allowed
            if not ok:
                break
        if ok:
            return True
    return False


def is_tf_op(op_type: str) -> bool:
    return _op_def(op_type) is not None or op_type in _LISTED


@dataclass(frozen=True)
class PrecisionPlan:
    """How a node switches to bf16: which type attrs flip, and the input slots / output indices whose
    dtype follows them; ``convertible`` if the op def and a CPU kernel of the installed TF allow it."""

    attrs: frozenset
    ins: tuple
    outs: tuple
    convertible: bool


def precision_plan(node) -> Optional[PrecisionPlan]:
    """Which of ``node``'s ports are fp32 floats that switch to bf16 together; None if it has none."""
    if node.domain != "tf" or node.info.constant_attr:
        return None
    od = _op_def(node.op_type)
    if od is None:
        return None
    keep = KEEP_FP32_ATTRS.get(node.op_type, ())
    type_attrs = {a.name: a for a in od.attr if a.type == "type"}
    flip = {n for n in type_attrs if node.attrs.get(n) is f32 and n not in keep}
    if not flip:
        return None

    def ports(args):
        slots, i = [], 0
        for arg in args:
            if arg.type_list_attr:
                n = len(node.attrs.get(arg.type_list_attr) or ())
            elif arg.number_attr:
                n = int(node.attrs.get(arg.number_attr, 1))
            else:
                n = 1
            if arg.type_attr in flip:
                slots.extend(range(i, i + n))
            i += n
        return tuple(slots)

    ins, outs = ports(od.input_arg), ports(od.output_arg)
    if not ins and not outs:
        return None
    allowed = all(not type_attrs[a].allowed_values.list.type or BF16_ENUM in type_attrs[a].allowed_values.list.type
                  for a in flip)
    other = {n: dtype_to_tf(v) for n in type_attrs if n not in flip and isinstance(v := node.attrs.get(n), DType)}
    ok = allowed and has_bf16_kernel(node.op_type, flip, other)
    return PrecisionPlan(frozenset(flip), ins, outs, ok)
