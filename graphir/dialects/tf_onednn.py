"""oneDNN fused CPU kernels of TensorFlow, as data: which fused op, dtype and ``fused_ops`` list the
installed TF really executes, and how to recognise the activations those lists name.

Every list below was run on TF 2.21 (oneDNN on and off), numerically against the unfused graph, in f32 and
bf16; ``tests/test_onednn_kernels.py`` runs each entry again on the installed TF. What the measurements
showed, and the table encodes:

- ``_FusedConv2D``'s OpDef rejects bf16 (its bf16 CPU kernel is unreachable). ``_MklNativeFusedConv2D``
  accepts bf16, but its kernel is registered under the label ``MklNameChangeOp``: the node needs
  ``_kernel: "MklNameChangeOp"``. TF's layout pass sets ``is_filter_const`` for a constant filter (the kernel
  may then cache the reordered filter) and folds a ``Pad`` feeding a VALID convolution into
  ``_MklNativePadWithFusedConv2D``, but only on the ops it rewrites itself: for this op, emitted directly,
  the lowering must do both, or ResNet50V2's 17 explicit Pads run as bf16 copies. It cannot emit
  ``_MklNativePadWithFusedConv2D``: that op's shape function ignores the paddings (a 14x14 input padded to
  16x16 infers 12x12), so a GraphDef holding it fails TF's import-time shape inference. It folds the Pad
  into ``padding=EXPLICIT`` instead, which this op executes and infers correctly.
- Weight caching: ``is_filter_const`` is the only such attr in TF 2.21's OpDefs (``_MklNativeFusedConv2D``,
  ``_MklNativeConv2D``, ``_MklNativeFusedDepthwiseConv2dNative``, ``_MklNativeFusedMatMul``; there is no
  ``is_weight_const`` or ``is_bias_const``, and the public ``_Fused*`` ops have none). Every contraction
  of a lowered graph executes with it set (RunMetadata partition graphs: the 53 of MobileNetV2 and the
  digits CNN's 3, f32 and bf16), so oneDNN reorders each filter once per session: on the digits CNN
  (ONEDNN_VERBOSE) clearing it adds two filter reorders to every step, 1-2 us each.
- With oneDNN on, TF's layout pass rewrites ``_FusedConv2D`` / ``_FusedDepthwiseConv2dNative`` /
  ``_FusedMatMul`` into ``_MklNative*`` ops with that label and ``is_filter_const`` (RunMetadata partition
  graphs): in f32 the public op executes the same kernel (a 3x3x64x64 conv on 8x56x56: 48.1 ms either way,
  2 threads), so f32 keeps the public op. The layout-dependent ``_MklFusedConv2D`` family (extra oneDNN
  metadata inputs) never appeared in a partition graph: TF 2.21 runs the native-format ops.
- With oneDNN off, ``_FusedConv2D`` (f32) and ``_FusedMatMul`` (f32, bf16) run TF's default kernels for
  the short lists marked portable; ``_FusedDepthwiseConv2dNative`` has no working kernel at all ("Missing
  0-th output"), and no Add or GELU list runs.
- ``_MklFusedBatchMatMulV2`` takes only ``[Mul, Add]`` with a rank-4 output and a rank-4 addend
  (broadcastable); ``[Mul]`` alone and rank-3 outputs abort the process.

``private`` entries run only where TF has oneDNN on (x86 Linux/Windows builds, unless
``TF_ENABLE_ONEDNN_OPTS=0``); a ``generic`` target emits only the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

ONEDNN_LABEL = "MklNameChangeOp"
BIAS, ADD, MUL = "BiasAdd", "Add", "Mul"


def _lists(prefix: tuple, acts=()) -> tuple:
    return tuple(prefix + (a,) for a in acts)


@dataclass(frozen=True)
class FusedKernel:
    """One fused op for one unfused contraction (``base``), with the ``fused_ops`` lists it executes."""

    base: str                    # Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMulV2
    op: str                      # the op type emitted
    dtypes: tuple                # graphir dtype names of T
    fused_ops: tuple             # accepted lists, each a tuple of TF's fused_ops names
    private: bool                # needs TF with oneDNN on
    label: Optional[str] = None  # value of the ``_kernel`` attr the kernel is registered under
    filter_const_attr: bool = False  # has ``is_filter_const``, which TF's layout pass sets for a Const filter
    explicit_padding: bool = False  # takes padding=EXPLICIT, so a spatial Pad of its input can fold in

    def accepts(self, dtype: str, fused_ops) -> bool:
        return dtype in self.dtypes and tuple(fused_ops) in self.fused_ops


_CONV_ACTS = ("Relu", "Relu6", "Elu", "LeakyRelu")
_CONV_ONEDNN = (_lists((BIAS,), ("_MklSwish", "Mish", "_FusedHardSwish")) + ((BIAS, ADD),)
                + _lists((BIAS, ADD), _CONV_ACTS))
_CONV_PORTABLE = ((BIAS,),) + _lists((BIAS,), _CONV_ACTS)
_MATMUL_PORTABLE = ((BIAS,),) + _lists((BIAS,), _CONV_ACTS + ("Sigmoid", "Tanh"))

KERNELS: tuple[FusedKernel, ...] = (
    FusedKernel("Conv2D", "_FusedConv2D", ("f32",), _CONV_PORTABLE, private=False),
    FusedKernel("Conv2D", "_FusedConv2D", ("f32",), _CONV_ONEDNN, private=True),
    FusedKernel("Conv2D", "_MklNativeFusedConv2D", ("bf16",), _CONV_PORTABLE + _CONV_ONEDNN, private=True,
                label=ONEDNN_LABEL, filter_const_attr=True, explicit_padding=True),
    FusedKernel("DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", ("f32", "bf16"),
                ((BIAS,),) + _lists((BIAS,), ("Relu", "Relu6", "Elu", "_FusedHardSwish")), private=True),
    FusedKernel("MatMul", "_FusedMatMul", ("f32", "bf16"), _MATMUL_PORTABLE, private=False),
    FusedKernel("MatMul", "_FusedMatMul", ("f32", "bf16"),
                _lists((BIAS,), ("GeluExact", "GeluApproximate")) + ((BIAS, ADD),), private=True),
    FusedKernel("BatchMatMulV2", "_MklFusedBatchMatMulV2", ("f32", "bf16"), ((MUL, ADD),), private=True),
)

BASES = tuple(dict.fromkeys(k.base for k in KERNELS))

# Attributes of the unfused op that carry over to the fused one.
KEEP_ATTRS = {
    "Conv2D": ("strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu"),
    "DepthwiseConv2dNative": ("strides", "padding", "data_format", "dilations"),
    "MatMul": ("transpose_a", "transpose_b"),
    "BatchMatMulV2": ("adj_x", "adj_y"),
}


def lookup(base: str, dtype: str, fused_ops, private: bool) -> Optional[FusedKernel]:
    """The kernel to emit for ``base`` in ``dtype`` fusing ``fused_ops``; portable entries first, private
    ones only when ``private``. None when no kernel of the installed TF executes that list."""
    for k in KERNELS:
        if k.base == base and k.accepts(dtype, fused_ops) and (private or not k.private):
            return k
    return None


# ------------------------------------------------------------------------------------ activations
# Activations that are one TF op, by op type -> fused_ops name (Elu and Relu6 have fixed parameters in TF,
# LeakyRelu carries its ``alpha`` over as ``leakyrelu_alpha``).
SINGLE_OP_ACTIVATIONS = {"Relu": "Relu", "Relu6": "Relu6", "Elu": "Elu", "LeakyRelu": "LeakyRelu",
                         "Sigmoid": "Sigmoid", "Tanh": "Tanh"}

# Activations that frameworks spell as several elementwise ops (Keras's swish is x * sigmoid(x), its GELU
# 0.5 * x * erfc(-x / sqrt(2)), ...). A candidate region must hold one of the ``marks`` op types; it is then
# accepted only if it computes the function numerically (see graphir.transforms.lower_onednn).
COMPOSITE_ACTIVATIONS = {
    "_MklSwish": {"marks": ("Sigmoid",)},
    "GeluExact": {"marks": ("Erf", "Erfc")},
    "GeluApproximate": {"marks": ("Tanh",)},
    "Mish": {"marks": ("Softplus",)},
    "_FusedHardSwish": {"marks": ("Relu6",)},
}

# Ops a composite activation may be built from: elementwise, so a region of them computes the same function
# on any tensor shape (each constant input must hold a single element).
ELEMENTWISE = frozenset({
    "Mul", "Add", "AddV2", "Sub", "RealDiv", "Div", "Neg", "Maximum", "Minimum", "Erf", "Erfc", "Tanh",
    "Sigmoid", "Softplus", "Relu", "Relu6", "Exp", "Pow", "Square", "Sqrt", "Rsqrt", "Reciprocal", "Cast",
    "Identity",
})


def reference_activation(name: str, x, alpha: float = 0.2):
    """``name`` (a fused_ops activation) applied to numpy ``x`` by TF's own f64 kernels."""
    import numpy as np
    import tensorflow as tf

    t = tf.constant(np.asarray(x, dtype=np.float64))
    fns = {
        "Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Elu": tf.nn.elu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh,
        "LeakyRelu": lambda z: tf.nn.leaky_relu(z, alpha),
        "_MklSwish": tf.nn.silu,
        "GeluExact": lambda z: tf.nn.gelu(z, approximate=False),
        "GeluApproximate": lambda z: tf.nn.gelu(z, approximate=True),
        "Mish": lambda z: z * tf.tanh(tf.nn.softplus(z)),
        "_FusedHardSwish": lambda z: z * tf.nn.relu6(z + 3.0) / 6.0,
    }
    return fns[name](t).numpy()


# ------------------------------------------------------------------------------------ introspection
def check_kernels(kernels=KERNELS) -> list[str]:
    """Disagreements between the table and the installed TF's OpDefs and CPU kernel registry (one line
    each); empty when every entry has an OpDef taking its dtypes and attrs, and a CPU kernel under its label.
    A private entry is only checked when TF has oneDNN on."""
    from tensorflow.python.framework import kernels as kreg
    from tensorflow.python.framework import op_def_registry

    from ..ir.types import DType
    from .tf_opdefs import onednn_enabled
    from .tf import dtype_to_tf

    onednn = onednn_enabled()
    problems = []
    for k in kernels:
        if k.private and not onednn:
            continue
        od = op_def_registry.get(k.op)
        if od is None:
            problems.append(f"{k.op}: no OpDef in this TensorFlow")
            continue
        attrs = {a.name: a for a in od.attr}
        need = {"T", "fused_ops", "num_args"} | ({"is_filter_const"} if k.filter_const_attr else set())
        if any("LeakyRelu" in lst for lst in k.fused_ops):
            need.add("leakyrelu_alpha")
        if "TArgs" in attrs:
            need.add("num_host_args")
        if k.explicit_padding:
            need.add("explicit_paddings")
            if b"EXPLICIT" not in attrs["padding"].allowed_values.list.s:
                problems.append(f"{k.op}: OpDef does not allow padding=EXPLICIT")
        for a in sorted(need - set(attrs)):
            problems.append(f"{k.op}: OpDef has no attr {a!r}")
        allowed = set(attrs["T"].allowed_values.list.type) if "T" in attrs else set()
        cpu = [kd for kd in kreg.get_registered_kernels_for_op(k.op).kernel if kd.device_type == "CPU"]
        for dt in k.dtypes:
            enum = dtype_to_tf(DType.get(dt))
            if allowed and enum not in allowed:
                problems.append(f"{k.op}: OpDef does not allow T={dt}")
            if not any(kd.label == (k.label or "") and any(
                    c.name == "T" and enum in c.allowed_values.list.type for c in kd.constraint) for kd in cpu):
                problems.append(f"{k.op}: no CPU kernel for T={dt} with label {k.label or '(none)'!r}")
    return problems


def available_kernels(private: Optional[bool] = None) -> list[FusedKernel]:
    """The table entries this TF can execute: private ones only with oneDNN on (or when ``private``)."""
    if private is None:
        from .tf_opdefs import onednn_enabled

        private = onednn_enabled()
    return [k for k in KERNELS if private or not k.private]


def describe_kernels(private: Optional[bool] = None) -> str:
    """One line per base op and dtype, for ``graphir env``: the fused ops and the lists they take, e.g.
    ``MatMul bf16: _FusedMatMul: BiasAdd[+Relu|Tanh|...], BiasAdd+Add``."""
    rows: dict = {}
    for k in available_kernels(private):
        for dt in k.dtypes:
            rows.setdefault((k.base, dt), []).append(k)
    lines = []
    for (base, dt), ks in rows.items():
        groups: dict = {}  # lists grouped by what precedes their activation
        for lst in (lst for k in ks for lst in k.fused_ops):
            head, act = (lst[:-1], lst[-1]) if lst[-1] not in (BIAS, ADD, MUL) else (lst, None)
            groups.setdefault(head, []).append(act)
        parts = []
        for head, acts in groups.items():
            named = [a for a in acts if a]
            tail = f"[+{'|'.join(named)}]" if None in acts else f"+{'|'.join(named)}"
            parts.append("+".join(head) + (tail if named else ""))
        lines.append(f"{base} {dt}: {' / '.join(dict.fromkeys(k.op for k in ks))}: {', '.join(parts)}")
    return "\n".join(lines)
