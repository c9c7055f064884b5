"""TF op knowledge the canonicalization passes need, as data checked against the installed TensorFlow:
which ops have a CPU kernel for a dtype (TF's kernel registry), and what the CPU kernels of the ops those
passes emit accept beyond their OpDefs.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

from ..ir.types import DType
from .tf_opdefs import _op_def, dtype_to_tf


@lru_cache(maxsize=None)
def _cpu_kernel_types(op_type: str) -> Optional[frozenset]:
    """The dtype enums ``op_type``'s CPU kernels are registered for (None: no CPU kernel at all; an empty
    set: a kernel with no type constraint)."""
    from tensorflow.python.framework import kernels

    types: Optional[set] = None
    for k in kernels.get_registered_kernels_for_op(op_type).kernel:
        if k.device_type != "CPU":
            continue
        types = types if types is not None else set()
        for c in k.constraint:
            if c.name == "T":
                types.update(c.allowed_values.list.type)
    return None if types is None else frozenset(types)


def has_cpu_kernel(op_type: str, dtype: Optional[DType] = None) -> bool:
    """True if the installed TF knows ``op_type`` and registers a CPU kernel for it (for ``dtype``, when
    given, in its ``T`` attr)."""
    if _op_def(op_type) is None:
        return False
    types = _cpu_kernel_types(op_type)
    if types is None:
        return False
    return dtype is None or not types or dtype_to_tf(dtype) in types


def runs_without_xla(op_type: str, dtype: Optional[DType] = None) -> bool:
    """True if TF's CPU runtime runs ``op_type`` with a kernel of its own: a CPU kernel, and not one of the
    ``Xla*`` ops, whose CPU "kernels" compile the op with XLA on the fly."""
    return not op_type.startswith(("Xla", "_Xla")) and has_cpu_kernel(op_type, dtype)


# DepthwiseConv2dNative's Eigen CPU kernel (TF without oneDNN) takes only unit dilations and equal row and
# column strides; the oneDNN kernel takes any (found by running both with TF 2.21).
def depthwise_kernel_accepts(strides: Sequence[int], dilations: Sequence[int], onednn: bool) -> bool:
    if onednn:
        return True
    return strides[1] == strides[2] and all(d == 1 for d in dilations)
