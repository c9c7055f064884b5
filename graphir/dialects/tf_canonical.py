"""TF op knowledge the canonicalization passes need, as data checked against the installed TensorFlow:
which ops have a CPU kernel for a dtype (TF's kernel registry), and what the CPU kernels of the ops those
passes emit accept beyond their OpDefs.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..ir.types import DType
from .tf_opdefs import _op_def, dtype_to_tf
from .tf_precision import cpu_kernels


def has_cpu_kernel(op_type: str, dtype: Optional[DType] = None) -> bool:
    """True if the installed TF knows ``op_type`` and registers a CPU kernel for it (for ``dtype``, when
    given, in its ``T`` attr)."""
    if _op_def(op_type) is None:
        return False
    kernels = cpu_kernels(op_type)
    if dtype is None:
        return bool(kernels)
    enum = dtype_to_tf(dtype)
    return any("T" not in k or enum in k["T"] for k in kernels)


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


# _MklLayerNorm(x, scale, offset; epsilon) = (x - mean) / sqrt(var + epsilon) * scale + offset, moments
# over the last axis of a rank 2 or 3 ``x`` (TF's remapper emits it for Keras 2's fused LayerNormalization).
MKL_LAYER_NORM = "_MklLayerNorm"
MKL_LAYER_NORM_RANKS = (2, 3)


def mkl_layer_norm_available(dtype: DType) -> bool:
    """True if the installed TF defines ``_MklLayerNorm`` with the inputs and attr above and registers a
    CPU kernel for ``dtype``."""
    od = _op_def(MKL_LAYER_NORM)
    if od is None:
        return False
    if [a.name for a in od.input_arg] != ["x", "scale", "offset"] or "epsilon" not in {a.name for a in od.attr}:
        return False
    return has_cpu_kernel(MKL_LAYER_NORM, dtype)
