"""The ``tf`` dialect: TensorFlow op knowledge as data, and how to build TF nodes.

Traits come from two places: TF's own op registry (``is_stateful``, input arg types) and the tables
below for what the registry does not say (commutativity, loop structure, training-only ops). Ops the
installed TF does not know (custom ops) fall back to the conservative ``unknown_op`` defaults. Without an
importable TensorFlow the dialect raises :class:`TFUnavailableError` instead of answering differently.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from ..ir.core import Graph, Node, Value
from ..ir.dialect import Dialect
from ..ir.registry import OpInfo
from ..ir.types import DType, Tensor, TensorType
from .tf_opdefs import TFUnavailableError, _op_def, dtype_from_tf, dtype_to_tf  # noqa: F401  (re-exported)
from . import tf_precision
from .tf_precision import precision_class

COMMUTATIVE = {
    "Add", "AddV2", "Mul", "Maximum", "Minimum", "LogicalAnd", "LogicalOr", "Equal", "NotEqual",
    "SquaredDifference", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "MulNoNan",
}
IDENTITY_LIKE = {"Identity", "Snapshot", "StopGradient", "PreventGradient", "CheckNumerics", "EnsureShape"}
TRAINING_ONLY = {"CheckNumerics", "StopGradient", "PreventGradient", "Snapshot"}
CONTROL_FLOW = {
    "Switch", "RefSwitch", "Merge", "RefMerge", "Enter", "RefEnter", "Exit", "RefExit", "NextIteration",
    "RefNextIteration", "LoopCond", "ControlTrigger", "If", "StatelessIf", "While", "StatelessWhile",
    "Case", "StatelessCase", "_SwitchN",
}
LOOP_NEXT = {"NextIteration", "RefNextIteration"}
LOOP_MERGE = {"Merge", "RefMerge"}
SOURCES = {"Placeholder", "PlaceholderV2"}
# NodeDef fields that are not attrs, kept (serialized) in Node.meta as "tf.<field>" so a round trip loses nothing.
NODE_EXTRAS = ("experimental_debug_info", "experimental_type")
# Ops whose effect is the point of running them, even with no data consumer.
SIDE_EFFECTING = {
    "Assert", "Print", "PrintV2", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
    "AssignAddVariableOp", "AssignSubVariableOp", "ScatterUpdate", "ResourceScatterUpdate", "SaveV2",
    "Save", "SaveSlices", "MergeV2Checkpoints", "WriteFile", "DestroyResourceOp", "StatefulPartitionedCall",
    "ResourceApplyGradientDescent", "NoOp",
}
# Ops whose output can be far larger than their inputs: constant folding keeps them symbolic when big.
EXPANDING = {"Fill", "Tile", "BroadcastTo", "ZerosLike", "OnesLike", "Pad", "PadV2", "MirrorPad", "OneHot",
             "Range", "Zeros", "Ones", "Empty", "MatrixDiag", "MatrixDiagV3", "ResizeBilinear",
             "ResizeNearestNeighbor", "Conv2DBackpropInput", "TensorScatterUpdate"}
# Shape queries answered from the IR's static shapes, even when their input is not constant.
SHAPE_QUERIES = {"Shape": "shape", "ShapeN": "shape", "Size": "size", "Rank": "rank"}
# Debug-only ops with side effects nobody needs at inference; value: the data input they pass through.
DEBUG_ONLY = {"Assert": None, "Print": 0, "PrintV2": None, "NoOp": None}
SWITCHES = {"Switch", "RefSwitch"}
# Pure ops that constant folding leaves alone: graph inputs, and ops whose value only exists at run time.
NOT_FOLDABLE = {"Placeholder", "PlaceholderV2", "PlaceholderWithDefault", "Const", "HostConst"}
# Stateless ops TF still marks stateful for reasons that do not matter at inference.
NOT_STATEFUL = {"Placeholder", "PlaceholderV2"}


def _provider(op_type: str, version: Optional[int] = None) -> Optional[OpInfo]:
    od = _op_def(op_type)
    if od is None:
        return None
    stateful = bool(od.is_stateful) and op_type not in NOT_STATEFUL
    return OpInfo(
        "tf",
        op_type,
        stateful=stateful,
        side_effecting=op_type in SIDE_EFFECTING or (stateful and not od.output_arg),
        commutative=op_type in COMMUTATIVE,
        control_flow=op_type in CONTROL_FLOW,
        loop_next=op_type in LOOP_NEXT,
        loop_merge=op_type in LOOP_MERGE,
        source=op_type in SOURCES,
        constant_attr="value" if op_type in ("Const", "HostConst") else None,
        identity_like=op_type in IDENTITY_LIKE,
        training_only=op_type in TRAINING_ONLY,
        precision=precision_class(op_type),
        foldable=not stateful and op_type not in CONTROL_FLOW and op_type not in NOT_FOLDABLE,
        expanding=op_type in EXPANDING,
        debug_only=op_type in DEBUG_ONLY,
        passthrough=DEBUG_ONLY.get(op_type),
        switch=op_type in SWITCHES,
        defaulted_input=op_type == "PlaceholderWithDefault",
        shape_query=SHAPE_QUERIES.get(op_type),
    )


@lru_cache(maxsize=None)
def _type_attr_names(op_type: str) -> Optional[tuple[str, ...]]:
    """The attrs that decide an op's input dtypes (None for ops TF does not know)."""
    od = _op_def(op_type)
    if od is None:
        return None
    names = []
    for arg in od.input_arg:
        names += [a for a in (arg.number_attr, arg.type_list_attr, "" if arg.type else arg.type_attr) if a]
    return tuple(dict.fromkeys(names))


_MISSING = object()
_expected_cache: dict = {}


def expected_input_dtypes(node) -> Optional[list[DType]]:
    """Input dtypes that TF's op definition requires, given the node's attrs (None if unknown)."""
    # The verifier asks this for every node after every pass: memoise on the attrs that decide it.
    names = _type_attr_names(node.op_type)
    if names is None:
        return None
    attrs = node.attrs
    key = [node.op_type]
    for a in names:
        v = attrs.get(a, _MISSING)
        key.append(tuple(v) if isinstance(v, list) else v)
    try:
        key = tuple(key)
        out = _expected_cache.get(key, _MISSING)
    except TypeError:  # an unhashable attr value: compute uncached
        return _expected_input_dtypes(node)
    if out is _MISSING:
        out = _expected_cache[key] = _expected_input_dtypes(node)
    return None if out is None else list(out)


def _expected_input_dtypes(node) -> Optional[list[DType]]:
    od = _op_def(node.op_type)
    if od is None:
        return None
    out: list[DType] = []
    try:
        for arg in od.input_arg:
            if arg.number_attr:
                n = int(node.attrs[arg.number_attr])
                t = dtype_from_tf(arg.type) if arg.type else node.attrs[arg.type_attr]
                out.extend([t] * n)
            elif arg.type_list_attr:
                out.extend(node.attrs[arg.type_list_attr])
            elif arg.type:
                out.append(dtype_from_tf(arg.type))
            else:
                out.append(node.attrs[arg.type_attr])
            if arg.is_ref:
                out[-1] = out[-1].as_ref() if not out[-1].is_ref else out[-1]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(isinstance(t, DType) for t in out):
        return None
    return out


class TFDialect(Dialect):
    """TensorFlow GraphDef ops (``tf.*``). Value names follow TF's ``node`` / ``node:i`` convention."""

    domain = "tf"

    def op_info(self, op_type: str, version: Optional[int] = None) -> Optional[OpInfo]:
        return _provider(op_type, version)

    def expected_input_dtypes(self, node: Node) -> Optional[list[DType]]:
        return expected_input_dtypes(node)

    def is_op(self, op_type: str) -> bool:
        return tf_precision.is_tf_op(op_type)

    def precision_class(self, op_type: str) -> str:
        return precision_class(op_type)

    def precision_plan(self, node: Node):
        return tf_precision.precision_plan(node)

    def set_node_precision(self, graph: Graph, node: Node, plan, dtype: DType) -> None:
        for a in plan.attrs:
            graph.set_attr(node, a, dtype)
        graph.set_output_types(node, [v.type.with_dtype(dtype) if i in plan.outs else v.type
                                      for i, v in enumerate(node.outputs)])

    def cast_target(self, node: Node) -> Optional[DType]:
        return node.attrs.get("DstT") if node.op_type == "Cast" and node.domain == "tf" else None

    def cast_truncates(self, node: Node) -> bool:
        return bool(node.attrs.get("Truncate", False))

    def make_constant(self, graph: Graph, array, name: str, *, dtype: Optional[DType] = None,
                      like: Optional[Node] = None) -> Value:
        t = array if isinstance(array, Tensor) else Tensor.from_array(array, dtype)
        n = graph.add_node("Const", (), {"dtype": t.dtype, "value": t}, [TensorType(t.dtype, t.shape)],
                           domain="tf", name=name, device=like.device if like is not None else "")
        return n.outputs[0]

    def make_cast(self, graph: Graph, value: Value, dtype: DType, name: str, *,
                  like: Optional[Node] = None) -> Value:
        n = graph.add_node("Cast", [value], {"SrcT": value.dtype, "DstT": dtype, "Truncate": False},
                           [value.type.with_dtype(dtype)], domain="tf", name=name,
                           device=like.device if like is not None else (value.node.device if value.node else ""))
        return n.outputs[0]

    def make_placeholder(self, graph: Graph, name: str, type: TensorType) -> Value:
        n = graph.add_node("Placeholder", (), {"dtype": type.dtype, "shape": type.shape}, [type], domain="tf",
                           name=name, unique=False)
        return n.outputs[0]

    def set_cast_dtype(self, graph: Graph, node: Node, src: DType, dst: DType) -> None:
        graph.set_attr(node, "SrcT", src)
        graph.set_attr(node, "DstT", dst)
        graph.set_output_types(node, [node.outputs[0].type.with_dtype(dst)])

    def set_constant(self, graph: Graph, node: Node, tensor: Tensor) -> None:
        graph.set_attr(node, "value", tensor)
        graph.set_attr(node, "dtype", tensor.dtype)
        graph.set_output_types(node, [TensorType(tensor.dtype, tensor.shape)])


TF = TFDialect()
