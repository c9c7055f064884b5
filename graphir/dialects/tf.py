"""TensorFlow op knowledge, as data.

Traits come from two places: TF's own op registry (``is_stateful``, input arg types) and the tables
below for what the registry does not say (commutativity, loop structure, training-only ops). Ops the
installed TF does not know (custom ops) fall back to the conservative ``unknown_op`` defaults.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from ..ir.registry import OpInfo, register_domain, register_input_type_rule
from ..ir.types import DType
from .tf_precision import precision_class

# DataType enum values from tensorflow/core/framework/types.proto.
_TF_ENUM = {
    1: "f32", 2: "f64", 3: "i32", 4: "u8", 5: "i16", 6: "i8", 7: "string", 8: "c64", 9: "i64",
    10: "bool", 11: "qi8", 12: "qu8", 13: "qi32", 14: "bf16", 15: "qi16", 16: "qu16", 17: "u16",
    18: "c128", 19: "f16", 20: "resource", 21: "variant", 22: "u32", 23: "u64",
    24: "f8e5m2", 25: "f8e4m3fn", 26: "f8e4m3fnuz", 27: "f8e4m3b11fnuz", 28: "f8e5m2fnuz",
    29: "i4", 30: "u4", 31: "i2", 32: "u2", 33: "f4e2m1fn",
}
_REF_OFFSET = 100
_TO_ENUM = {v: k for k, v in _TF_ENUM.items()}


def dtype_from_tf(enum: int) -> DType:
    """Map a TF ``DataType`` enum value to a graphir dtype (``*_ref`` for reference types)."""
    if enum > _REF_OFFSET:
        return DType.get(_TF_ENUM[enum - _REF_OFFSET] + "_ref")
    try:
        return DType.get(_TF_ENUM[enum])
    except KeyError:
        raise ValueError(f"unsupported TF dtype enum {enum}") from None


def dtype_to_tf(dtype: DType) -> int:
    if dtype.is_ref:
        return _TO_ENUM[dtype.base.name] + _REF_OFFSET
    return _TO_ENUM[dtype.name]


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
# Stateless ops TF still marks stateful for reasons that do not matter at inference.
NOT_STATEFUL = {"Placeholder", "PlaceholderV2"}


@lru_cache(maxsize=None)
def _op_def(op_type: str):
    """TF's OpDef for ``op_type`` (None if the installed TF does not know it); the one cached lookup."""
    try:
        from tensorflow.python.framework import op_def_registry
    except ImportError:  # pragma: no cover - TF is a hard dependency
        return None
    return op_def_registry.get(op_type)


def _provider(op_type: str) -> Optional[OpInfo]:
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


register_domain("tf", _provider)
register_input_type_rule("tf", expected_input_dtypes)
