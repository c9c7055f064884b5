"""Converters of TF's math ops: elementwise (as tables), divisions with TF's rounding, matrix products,
reductions, casts, selects, band masks and scatters."""
from __future__ import annotations

import numpy as np

from ...dialects.onnx import dtype_to_onnx
from ...ir import Value
from ..patterns import const_array
from ...ir.types import Tensor
from .context import BOOL, I64, INT64_MAX, Ctx, converts
from .nn import _fused_epilogue

# TF op -> ONNX op with the same operands and broadcasting (numpy rules on both sides).
BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div", "Maximum": "Max",
          "Minimum": "Min", "Pow": "Pow", "Equal": "Equal", "Greater": "Greater", "GreaterEqual": "GreaterOrEqual",
          "Less": "Less", "LessEqual": "LessOrEqual", "LogicalAnd": "And", "LogicalOr": "Or",
          "BitwiseAnd": "BitwiseAnd", "BitwiseOr": "BitwiseOr", "BitwiseXor": "BitwiseXor"}
UNARY = {"Abs": "Abs", "Neg": "Neg", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt", "Reciprocal": "Reciprocal",
         "Inv": "Reciprocal", "Floor": "Floor", "Ceil": "Ceil", "Round": "Round", "Sign": "Sign", "Erf": "Erf",
         "Sin": "Sin", "Cos": "Cos", "Tan": "Tan", "Asin": "Asin", "Acos": "Acos", "Atan": "Atan", "Sinh": "Sinh",
         "Cosh": "Cosh", "Asinh": "Asinh", "Acosh": "Acosh", "Atanh": "Atanh", "IsNan": "IsNaN",
         "LogicalNot": "Not", "Invert": "BitwiseNot"}
# Ops that pass their first operand through at inference.
IDENTITY = ("Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics", "EnsureShape",
            "PlaceholderWithDefault")
# min op set of an ONNX op when newer than 13
NEWER = {"GreaterOrEqual": 12, "LessOrEqual": 12, "BitwiseAnd": 18, "BitwiseOr": 18, "BitwiseXor": 18,
         "BitwiseNot": 18}


def _out_dtype(cx: Ctx, i: int = 0):
    return cx.out_type(i).dtype


@converts(*BINARY)
def _binary(cx: Ctx):
    op = BINARY[cx.op_type]
    if cx.opset < NEWER.get(op, 0):
        raise cx.fail(f"{op} needs op set {NEWER[op]}")
    return cx.op(op, [cx.input(0), cx.input(1)], dtype=_out_dtype(cx), shape=cx.out_type().shape)


@converts("NotEqual")
def _not_equal(cx: Ctx):
    return cx.op("Not", [cx.op("Equal", [cx.input(0), cx.input(1)], dtype=BOOL)], shape=cx.out_type().shape)


@converts("Div", "FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Mod")
def _division(cx: Ctx):
    a, b = cx.input(0), cx.input(1)
    floating = a.dtype.is_float
    shape = cx.out_type().shape
    op = cx.op_type
    # TF's integer Div truncates toward zero, as ONNX's integer Div does.
    if op == "Div" or op == "TruncateDiv" and not floating:
        return cx.op("Div", [a, b], shape=shape)
    if op == "TruncateDiv":
        q = cx.op("Div", [a, b])
        return cx.op("Mul", [cx.op("Sign", [q]), cx.op("Floor", [cx.op("Abs", [q])])], shape=shape)
    if op in ("TruncateMod", "Mod"):
        return cx.op("Mod", [a, b], {"fmod": 1}, shape=shape)  # the sign of the dividend, as C's fmod
    if op == "FloorDiv" and floating:
        return cx.op("Floor", [cx.op("Div", [a, b])], shape=shape)
    if op == "FloorMod" and not floating:
        return cx.op("Mod", [a, b], {"fmod": 0}, shape=shape)  # the sign of the divisor, as TF
    if op == "FloorMod":
        # As TF computes it: fmod, plus the divisor where the signs of the remainder and the divisor differ
        # (a - floor(a / b) * b loses the remainder's low bits when a / b is large).
        r = cx.op("Mod", [a, b], {"fmod": 1})
        zero = cx.scalar_like(0.0, a, "zero")
        differ = cx.op("Xor", [cx.op("Less", [b, zero], dtype=BOOL), cx.op("Less", [r, zero], dtype=BOOL)])
        fix = cx.op("And", [differ, cx.op("Not", [cx.op("Equal", [r, zero], dtype=BOOL)])])
        return cx.op("Where", [fix, cx.op("Add", [r, b]), r], dtype=a.dtype, shape=shape)
    # Integer FloorDiv: a - floor_mod(a, b) is a multiple of b, so ONNX's truncating Div is exact on it.
    return cx.op("Div", [cx.op("Sub", [a, cx.op("Mod", [a, b], {"fmod": 0})]), b], shape=shape)


@converts("Erfc")
def _erfc(cx: Ctx):
    x = cx.input(0)
    return cx.op("Sub", [cx.scalar_like(1.0, x, "one"), cx.op("Erf", [x])], shape=x.shape)


@converts("IsInf", "IsFinite")
def _is_inf(cx: Ctx):
    x = cx.input(0)
    inf = cx.op("IsInf", [x], dtype=BOOL, shape=x.shape)
    if cx.op_type == "IsInf":
        return inf
    return cx.op("Not", [cx.op("Or", [inf, cx.op("IsNaN", [x], dtype=BOOL)])], shape=x.shape)


@converts("Atan2")
def _atan2(cx: Ctx):
    """atan2(y, x) from Atan(y / x), moved to the right quadrant; x == 0 gives +-pi/2 (0 when y is 0 too)."""
    y, x = cx.input(0), cx.input(1)
    shape = cx.out_type().shape
    zero = cx.scalar_like(0.0, x, "zero")
    q = cx.op("Atan", [cx.op("Div", [y, x])])
    y_neg = cx.op("Less", [y, zero], dtype=BOOL)
    turn = cx.op("Where", [y_neg, cx.scalar_like(-np.pi, x, "minus_pi"), cx.scalar_like(np.pi, x, "pi")], dtype=x.dtype)
    r = cx.op("Where", [cx.op("Less", [x, zero], dtype=BOOL), cx.op("Add", [q, turn]), q], dtype=x.dtype)
    on_axis = cx.op("Mul", [cx.op("Sign", [y]), cx.scalar_like(np.pi / 2, x, "half_pi")])
    return cx.op("Where", [cx.op("Equal", [x, zero], dtype=BOOL), on_axis, r], dtype=x.dtype, shape=shape)


@converts("SquaredDifference")
def _squared_difference(cx: Ctx):
    d = cx.op("Sub", [cx.input(0), cx.input(1)])
    return cx.op("Mul", [d, d], shape=cx.out_type().shape)


@converts(*UNARY)
def _unary(cx: Ctx):
    op = UNARY[cx.op_type]
    if cx.opset < NEWER.get(op, 0):
        raise cx.fail(f"{op} needs op set {NEWER[op]}")
    return cx.op(op, [cx.input(0)], dtype=_out_dtype(cx), shape=cx.out_type().shape)


@converts("Rsqrt")
def _rsqrt(cx: Ctx):
    return cx.op("Reciprocal", [cx.op("Sqrt", [cx.input(0)])], shape=cx.out_type().shape)


@converts("Square")
def _square(cx: Ctx):
    return cx.op("Mul", [cx.input(0), cx.input(0)], shape=cx.out_type().shape)


@converts("Log1p", "Expm1")
def _log1p(cx: Ctx):
    x = cx.input(0)
    one = cx.scalar_like(1.0, x, "one")
    if cx.op_type == "Log1p":
        return cx.op("Log", [cx.op("Add", [x, one])], shape=x.shape)
    return cx.op("Sub", [cx.op("Exp", [x]), one], shape=x.shape)


@converts(*IDENTITY)
def _identity(cx: Ctx):
    return cx.op("Identity", [cx.input(0)], shape=cx.out_type().shape)


@converts("IdentityN")
def _identity_n(cx: Ctx):
    return [cx.op("Identity", [cx.input(i)], shape=cx.out_type(i).shape) for i in range(cx.n_inputs)]


@converts("AddN")
def _add_n(cx: Ctx):
    if cx.n_inputs == 1:
        return cx.op("Identity", [cx.input(0)])
    return cx.op("Sum", [cx.input(i) for i in range(cx.n_inputs)], shape=cx.out_type().shape)


@converts("BiasAdd", "BiasAddV1")
def _bias_add(cx: Ctx):
    x, b = cx.input(0), cx.input(1)
    fmt = cx.attr("data_format", "NHWC")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt == "NCHW" and x.shape.rank not in (None, 1, 2):
        a = const_array(b)
        extra = [1] * (x.shape.rank - 2)
        b = (cx.constant(a.reshape(-1, *extra), "bias") if a is not None
             else cx.unsqueeze(b, list(range(1, 1 + len(extra)))))
    return cx.op("Add", [x, b], shape=cx.out_type().shape)


@converts("Cast")
def _cast(cx: Ctx):
    dst = _out_dtype(cx)
    return cx.op("Cast", [cx.input(0)], {"to": dtype_to_onnx(dst)}, dtype=dst, shape=cx.out_type().shape)


@converts("Select", "SelectV2")
def _select(cx: Ctx):
    c, a, b = cx.input(0), cx.input(1), cx.input(2)
    if cx.op_type == "Select" and c.shape.rank == 1 and (a.shape.rank or 0) > 1:
        c = cx.unsqueeze(c, list(range(1, a.shape.rank)))  # TF's Select picks whole rows by a vector
    return cx.where(c, a, b, cx.out_type().shape)



@converts("ClipByValue")
def _clip(cx: Ctx):
    x, lo, hi = cx.input(0), cx.input(1), cx.input(2)
    if lo.shape.rank == 0 and hi.shape.rank == 0:
        return cx.op("Clip", [x, lo, hi], shape=x.shape)
    return cx.op("Min", [cx.op("Max", [x, lo]), hi], shape=cx.out_type().shape)


# ------------------------------------------------------------------------------------------ products
def _swap_last_two(cx: Ctx, v: Value) -> Value:
    r = v.shape.rank
    if r is None:
        raise cx.fail("a transposed operand needs a known rank")
    return cx.transpose(v, list(range(r - 2)) + [r - 1, r - 2])


def _matmul(cx: Ctx, ta: str, tb: str) -> Value:
    a, b = cx.input(0), cx.input(1)
    if cx.attr(ta, False):
        a = _swap_last_two(cx, a)
    if cx.attr(tb, False):
        b = _swap_last_two(cx, b)
    return cx.op("MatMul", [a, b], dtype=a.dtype)


@converts("MatMul")
def _mat_mul(cx: Ctx):
    return _matmul(cx, "transpose_a", "transpose_b")


@converts("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def _batch_mat_mul(cx: Ctx):
    y = _matmul(cx, "adj_x", "adj_y")
    return y if y.dtype is _out_dtype(cx) else cx.cast(y, _out_dtype(cx))


def _fused_ops(cx: Ctx) -> list[str]:
    return [o.decode() if isinstance(o, bytes) else o for o in cx.attr("fused_ops", [])]


@converts("_FusedMatMul", "_MklNativeFusedMatMul", "_MklFusedMatMul")
def _fused_mat_mul(cx: Ctx):
    y = _matmul(cx, "transpose_a", "transpose_b")
    args = [cx.input(i) for i in range(2, cx.n_inputs)]
    return _fused_epilogue(cx, y, _fused_ops(cx), args, nchw_args=False)


@converts("_MklFusedBatchMatMulV2")
def _fused_batch_mat_mul(cx: Ctx):
    y = _matmul(cx, "adj_x", "adj_y")
    k = 2
    for op in _fused_ops(cx):
        if op not in ("Mul", "Add"):
            raise cx.fail(f"fused op {op} has no conversion")
        y = cx.op(op, [y, cx.input(k)])
        k += 1
    return y


@converts("Einsum")
def _einsum(cx: Ctx):
    eq = cx.attr("equation")
    eq = eq.decode() if isinstance(eq, bytes) else eq
    return cx.op("Einsum", [cx.input(i) for i in range(cx.n_inputs)], {"equation": eq},
                 shape=cx.out_type().shape)


# ------------------------------------------------------------------------------------------ reductions
REDUCE = {"Sum": "ReduceSum", "Mean": "ReduceMean", "Max": "ReduceMax", "Min": "ReduceMin", "Prod": "ReduceProd",
          "EuclideanNorm": "ReduceL2"}


@converts(*REDUCE, "All", "Any")
def _reduce(cx: Ctx):
    x = cx.input(0)
    axes = [int(a) for a in np.asarray(cx.need_const(1, "the reduction axes")).reshape(-1)]
    keep = bool(cx.attr("keep_dims", False))
    shape = cx.out_type().shape
    if not axes:
        return cx.op("Identity", [x], shape=shape)
    if cx.op_type in ("All", "Any"):
        # Booleans: ONNX reduces numbers, so as int32: All = min, Any = max.
        xi = cx.op("Cast", [x], {"to": dtype_to_onnx(I64)}, dtype=I64)
        r = cx.reduce("ReduceMin" if cx.op_type == "All" else "ReduceMax", xi, axes, keep)
        return cx.op("Cast", [r], {"to": dtype_to_onnx(BOOL)}, dtype=BOOL, shape=shape)
    y = cx.reduce(REDUCE[cx.op_type], x, axes, keep)
    return y


@converts("ArgMax", "ArgMin")
def _arg_max(cx: Ctx):
    axis = int(np.asarray(cx.need_const(1, "the axis")).reshape(-1)[0])
    y = cx.op(cx.op_type, [cx.input(0)], {"axis": axis, "keepdims": 0}, dtype=I64, shape=cx.out_type().shape)
    return cx.cast(y, _out_dtype(cx))


@converts("Cumsum")
def _cumsum(cx: Ctx):
    return cx.op("CumSum", [cx.input(0), cx.as_i64(1)],
                 {"exclusive": int(bool(cx.attr("exclusive", False))), "reverse": int(bool(cx.attr("reverse", False)))},
                 shape=cx.out_type().shape)


@converts("MatrixBandPart")
def _band_part(cx: Ctx):
    """Zero what lies outside the band: a constant mask when the matrix size and band are known, else one
    computed from the row and column indices."""
    x = cx.input(0)
    lower, upper = cx.const(1), cx.const(2)
    dims = x.shape.dims
    zero = cx.scalar_like(0, x, "zero")
    if dims is not None and len(dims) >= 2 and None not in dims[-2:] and lower is not None and upper is not None:
        lo, up = int(lower), int(upper)
        diff = np.arange(dims[-2])[:, None] - np.arange(dims[-1])[None, :]
        mask = ((lo < 0) | (diff <= lo)) & ((up < 0) | (-diff <= up))
        return cx.where(cx.constant(mask, "band"), x, zero, cx.out_type().shape)
    shape = cx.op("Shape", [x], dtype=I64)
    one = cx.constant(np.array(1, np.int64), "one")
    zero_i = cx.constant(np.array(0, np.int64), "zero_i")

    def index(axis):
        n = cx.op("Squeeze", [cx.op("Slice", [shape, cx.i64([axis]), cx.i64([axis + 1 or INT64_MAX])]), cx.i64([0])])
        return cx.op("Range", [zero_i, n, one], dtype=I64)

    diff = cx.op("Sub", [cx.unsqueeze(index(-2), [1]), index(-1)])
    lo, up = cx.as_i64(1), cx.as_i64(2)

    def within(d, bound):
        return cx.op("Or", [cx.op("Less", [bound, zero_i], dtype=BOOL), cx.op("LessOrEqual", [d, bound], dtype=BOOL)])

    mask = cx.op("And", [within(diff, lo), within(cx.op("Neg", [diff]), up)])
    return cx.where(mask, x, zero, cx.out_type().shape)


@converts("ScatterNd", "TensorScatterUpdate", "TensorScatterAdd", "TensorScatterMax", "TensorScatterMin")
def _scatter_nd(cx: Ctx):
    """ScatterND; TF's ScatterNd sums duplicate indices into zeros (reduction add, op set 16)."""
    reduction = {"ScatterNd": "add", "TensorScatterAdd": "add", "TensorScatterMax": "max",
                 "TensorScatterMin": "min"}.get(cx.op_type)
    need = {"add": 16, "max": 18, "min": 18}.get(reduction, 13)
    if cx.opset < need:
        raise cx.fail(f"needs op set {need}")
    if cx.op_type == "ScatterNd":
        dt = cx.out_type().dtype
        data = cx.op("ConstantOfShape", [cx.as_i64(2)], {"value": Tensor.from_array(np.zeros(1, dt.np))}, dtype=dt)
        idx, upd = cx.as_i64(0), cx.input(1)
    else:
        data, idx, upd = cx.input(0), cx.as_i64(1), cx.input(2)
    return cx.op("ScatterND", [data, idx, upd], {"reduction": reduction} if reduction else {},
                 dtype=upd.dtype, shape=cx.out_type().shape)


@converts("DivNoNan", "MulNoNan")
def _no_nan(cx: Ctx):
    """x / y (x * y) where y is not zero, else 0 (even for an infinite or NaN x)."""
    x, y = cx.input(0), cx.input(1)
    r = cx.op("Div" if cx.op_type == "DivNoNan" else "Mul", [x, y])
    zero = cx.scalar_like(0.0, y, "zero")
    return cx.op("Where", [cx.op("Equal", [y, zero], dtype=BOOL), zero, r], dtype=x.dtype,
                 shape=cx.out_type().shape)
