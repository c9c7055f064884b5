"""The installed TensorFlow's op definitions and dtype enums: the one place the tf dialect asks TF.

Everything else in the dialect reads op data through here, so a missing TensorFlow is one clear error
(:class:`TFUnavailableError`) rather than different answers.
"""
from __future__ import annotations

import os
from functools import lru_cache

from ..ir.dialect import DialectError
from ..ir.types import DType


class TFUnavailableError(DialectError):
    """TensorFlow cannot be imported, so the tf dialect cannot answer."""


@lru_cache(maxsize=None)
def _registry():
    try:
        from tensorflow.python.framework import op_def_registry
    except ImportError as e:
        raise TFUnavailableError(f"the tf dialect needs TensorFlow, which cannot be imported: {e}") from None
    return op_def_registry


@lru_cache(maxsize=None)
def _op_def(op_type: str):
    """TF's OpDef for ``op_type`` (None if the installed TF does not know it); the one cached lookup."""
    return _registry().get(op_type)


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


def onednn_enabled() -> bool:
    """True when the installed TF runs its oneDNN (MKL) kernels: the x86 default, off with
    ``TF_ENABLE_ONEDNN_OPTS=0``. Decides which fused kernels exist at run time."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TF build without the port utilities has no oneDNN either
        return False
    return bool(_pywrap_util_port.IsMklEnabled())
