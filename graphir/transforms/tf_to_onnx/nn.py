"""Converters of TF's neural-network ops: convolutions (plain, depthwise, transposed, 3-D, and the fused
forms with their epilogues), pooling, batch and layer normalization, LRN, activations, softmax, resizing,
and the block moves (DepthToSpace / SpaceToDepth, SpaceToBatchND / BatchToSpaceND, which TF wraps
around dilated convolutions).

TF's are NHWC, ONNX's NCHW: each layout-sensitive op is wrapped in transposes (onnx-transpose-sink
removes the pairs that meet). Constant filters are rearranged at conversion time (HWIO -> OIHW).
"""
from __future__ import annotations

import math as _math
from typing import Optional, Sequence

import numpy as np

from ...ir import Value
from ...ir.types import Shape
from ..patterns import const_array
from .context import I64, Ctx, converts


# ------------------------------------------------------------------------------------------ layout
def _channels_first(cx: Ctx, last: str, first: str) -> bool:
    """True for the channels-first ``data_format`` ``first``, False for ``last`` (TF's default)."""
    fmt = cx.attr("data_format", last)
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt not in (last, first):
        raise cx.fail(f"data_format {fmt} is not supported for ONNX export")
    return fmt == first


def _nchw(cx: Ctx) -> bool:
    return _channels_first(cx, "NHWC", "NCHW")


def _hw(cx: Ctx, key: str, default: int = 1) -> list[int]:
    """The spatial entries of an NHWC/NCHW 4-element attribute (strides, dilations, ksize)."""
    v = cx.attr(key)
    if not v:
        return [default, default]
    v = [int(x) for x in v]
    if len(v) == 4:
        return v[2:4] if _nchw(cx) else v[1:3]
    return v


def _pads(cx: Ctx, x: Value, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> dict:
    """ONNX pad attributes for TF's padding of ``x`` (NCHW)."""
    padding = cx.attr("padding", "VALID")
    padding = padding.decode() if isinstance(padding, bytes) else padding
    if padding == "VALID":
        return {"pads": [0] * (2 * len(kernel))}
    if padding == "EXPLICIT":
        e = [int(p) for p in cx.attr("explicit_paddings", [])]
        if len(e) != 8:
            raise cx.fail("EXPLICIT padding without 8 explicit_paddings")
        h, w = (2, 3) if _nchw(cx) else (1, 2)
        return {"pads": [e[2 * h], e[2 * w], e[2 * h + 1], e[2 * w + 1]]}
    if padding != "SAME":
        raise cx.fail(f"padding {padding} is not supported")
    dims = x.shape.dims
    if dims is None or None in dims[2:]:
        if all(s == 1 for s in strides):
            # Stride 1 pads (k - 1) * d whatever the size; ONNX Runtime refuses SAME_UPPER with dilations.
            total = [(k - 1) * d for k, d in zip(kernel, dilations)]
            return {"pads": [t // 2 for t in total] + [t - t // 2 for t in total]}
        if any(d != 1 for d in dilations):
            raise cx.fail("SAME padding with strides and dilations needs a known spatial size")
        return {"auto_pad": "SAME_UPPER"}  # TF's SAME puts the odd pixel at the end, as SAME_UPPER does
    before, after = [], []
    for size, k, s, d in zip(dims[2:], kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return {"pads": before + after}


def _in_nchw(cx: Ctx, i: int = 0) -> Value:
    return cx.input(i) if _nchw(cx) else cx.to_nchw(cx.input(i))


def _out(cx: Ctx, y: Value) -> Value:
    return y if _nchw(cx) else cx.to_nhwc(y)


# ------------------------------------------------------------------------------------------ activations
SIMPLE_ACTIVATIONS = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu", "Selu": "Selu",
                      "Softplus": "Softplus", "Softsign": "Softsign"}


def activation(cx: Ctx, name: str, y: Value, alpha: Optional[float] = None) -> Value:
    """``name`` (a TF activation or fused_ops entry) applied to ``y``."""
    if name in SIMPLE_ACTIVATIONS:
        return cx.op(SIMPLE_ACTIVATIONS[name], [y], shape=y.shape)
    if name == "Relu6":
        return cx.op("Clip", [y, cx.scalar_like(0.0, y, "zero"), cx.scalar_like(6.0, y, "six")], shape=y.shape)
    if name == "LeakyRelu":
        return cx.op("LeakyRelu", [y], {"alpha": float(0.2 if alpha is None else alpha)}, shape=y.shape)
    if name in ("_MklSwish", "Swish"):
        return cx.op("Mul", [y, cx.op("Sigmoid", [y], shape=y.shape)], shape=y.shape)
    if name == "Mish":
        return cx.op("Mul", [y, cx.op("Tanh", [cx.op("Softplus", [y], shape=y.shape)], shape=y.shape)], shape=y.shape)
    if name in ("HardSwish", "_FusedHardSwish"):
        if cx.opset >= 14:
            return cx.op("HardSwish", [y], shape=y.shape)
        return cx.op("Mul", [y, cx.op("HardSigmoid", [y], {"alpha": 1 / 6, "beta": 0.5})], shape=y.shape)
    if name == "GeluExact":
        if cx.opset >= 20:
            return cx.op("Gelu", [y], shape=y.shape)
        # 0.5 * x * (1 + erf(x / sqrt(2)))
        e = cx.op("Erf", [cx.op("Mul", [y, cx.scalar_like(1 / _math.sqrt(2), y, "rsqrt2")])])
        half_x = cx.op("Mul", [y, cx.scalar_like(0.5, y, "half")])
        return cx.op("Mul", [half_x, cx.op("Add", [e, cx.scalar_like(1.0, y, "one")])], shape=y.shape)
    if name == "GeluApproximate":
        if cx.opset >= 20:
            return cx.op("Gelu", [y], {"approximate": "tanh"}, shape=y.shape)
        # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        x3 = cx.op("Mul", [cx.op("Mul", [y, y]), y])
        inner = cx.op("Add", [y, cx.op("Mul", [x3, cx.scalar_like(0.044715, y, "c")])])
        t = cx.op("Tanh", [cx.op("Mul", [inner, cx.scalar_like(_math.sqrt(2 / _math.pi), y, "k")])])
        half_x = cx.op("Mul", [y, cx.scalar_like(0.5, y, "half")])
        return cx.op("Mul", [half_x, cx.op("Add", [t, cx.scalar_like(1.0, y, "one")])], shape=y.shape)
    raise cx.fail(f"activation {name} has no ONNX conversion")


@converts("Relu", "Relu6", "Elu", "Selu", "Softplus", "Softsign", "Sigmoid", "Tanh", "_MklSwish", "Mish")
def _activation(cx: Ctx):
    return activation(cx, cx.op_type, cx.input(0))


@converts("LeakyRelu")
def _leaky_relu(cx: Ctx):
    return activation(cx, "LeakyRelu", cx.input(0), cx.attr("alpha", 0.2))


@converts("Softmax", "LogSoftmax")
def _softmax(cx: Ctx):
    x = cx.input(0)
    if cx.opset >= 13:
        return cx.op(cx.op_type, [x], {"axis": -1}, shape=x.shape)
    raise cx.fail("needs op set 13")


# ------------------------------------------------------------------------------------------ convolution
def _filter_oihw(cx: Ctx, i: int, depthwise: bool) -> Value:
    """TF's filter (HWIO, or HW C M for depthwise) as ONNX's OIHW (depthwise: [C*M, 1, H, W])."""
    w = cx.const(i)
    if w is not None:
        if depthwise:
            h, ww, c, m = w.shape
            w = np.transpose(w.reshape(h, ww, c * m), (2, 0, 1))[:, None]
        else:
            w = np.transpose(w, (3, 2, 0, 1))
        return cx.constant(np.ascontiguousarray(w), "filter")
    v = cx.input(i)
    if depthwise:
        dims = v.shape.dims
        if dims is None or None in dims:
            raise cx.fail("a depthwise filter that is not a constant needs a static shape")
        h, ww, c, m = dims
        v = cx.op("Reshape", [v, cx.i64([h, ww, 1, c * m])], shape=Shape([h, ww, 1, c * m]))
    return cx.transpose(v, (3, 2, 0, 1))


def _conv(cx: Ctx, depthwise: bool, bias: Optional[Value] = None) -> Value:
    """The NCHW Conv of a TF conv node's inputs 0 and 1 (with an optional bias as Conv's B)."""
    x = _in_nchw(cx, 0)
    w = _filter_oihw(cx, 1, depthwise)
    fdims = cx.input(1).shape.dims
    if fdims is None or fdims[0] is None or fdims[1] is None:
        raise cx.fail("the filter's spatial size must be known")
    kernel = [int(fdims[0]), int(fdims[1])]
    strides, dilations = _hw(cx, "strides"), _hw(cx, "dilations")
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
             **_pads(cx, x, kernel, strides, dilations)}
    if depthwise:
        c = x.shape.dims[1] if x.shape.rank == 4 else None
        c = c if c is not None else fdims[2]
        if c is None:
            raise cx.fail("the channel count must be known")
        attrs["group"] = int(c)
    elif x.shape.rank == 4 and x.shape.dims[1] is not None and fdims[2] is not None and x.shape.dims[1] != fdims[2]:
        attrs["group"] = int(x.shape.dims[1] // fdims[2])  # grouped convolution
    return cx.op("Conv", [x, w] + ([bias] if bias is not None else []), attrs)


@converts("Conv2D")
def _conv2d(cx: Ctx):
    return _out(cx, _conv(cx, False))


@converts("DepthwiseConv2dNative")
def _depthwise(cx: Ctx):
    return _out(cx, _conv(cx, True))


@converts("Conv2DBackpropInput")
def _conv_transpose(cx: Ctx):
    """tf.nn.conv2d_transpose: (output_sizes, filter HW O I, input) -> ConvTranspose; the filter's out/in
    channels swap (TF's filter is [H, W, out, in], ONNX's [in, out, H, W]).

    TF crops the full transposed convolution as the forward convolution padded it (SAME: total // 2 before),
    and an output larger than the full one (VALID with extra rows) grows at the end: with the input's
    spatial size known, both are explicit pads and output_padding. The output size comes from the sizes
    operand when it is constant, else from TF's type (Keras builds it from the dynamic batch size)."""
    w = cx.need_const(1, "the filter")
    nchw = _nchw(cx)
    x = cx.input(2) if nchw else cx.to_nchw(cx.input(2))
    kh, kw = w.shape[:2]
    wt = cx.constant(np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))), "filter")
    strides, dilations = _hw(cx, "strides"), _hw(cx, "dilations")
    sizes = cx.const(0)
    if sizes is not None:
        out_hw = [int(s) for s in (sizes[2:4] if nchw else sizes[1:3])]
    else:
        dims = cx.out_type().shape.dims
        out_hw = None if dims is None else list(dims[2:4] if nchw else dims[1:3])
        if out_hw is None or None in out_hw:
            raise cx.fail("the output's spatial size must be known")
    attrs = {"kernel_shape": [int(kh), int(kw)], "strides": strides, "dilations": dilations}
    padding = cx.attr("padding", "VALID")
    padding = padding.decode() if isinstance(padding, bytes) else padding
    if padding not in ("SAME", "VALID"):
        raise cx.fail(f"padding {padding} is not supported")
    in_hw = x.shape.dims[2:4] if x.shape.rank == 4 else [None, None]
    if None in in_hw:
        attrs["output_shape"] = out_hw
        if padding == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
    else:
        begin, end, extra = [], [], []
        for i, o, k, s, d in zip(in_hw, out_hw, (kh, kw), strides, dilations):
            full = (i - 1) * s + (k - 1) * d + 1
            b = max(full - o, 0) // 2 if padding == "SAME" else 0
            e = full - o - b
            begin.append(b)
            end.append(max(e, 0))
            extra.append(max(-e, 0))
        attrs["pads"] = begin + end
        if any(extra):
            attrs["output_padding"] = extra
    return _out(cx, cx.op("ConvTranspose", [x, wt], attrs))


def _fused_epilogue(cx: Ctx, y: Value, ops: list[str], args: list[Value], nchw_args: bool) -> Value:
    """Apply a fused node's ``fused_ops`` after its main op; ``y`` has the layout args must match."""
    k = 0
    for op in ops:
        if op == "BiasAdd":
            b = args[k]
            k += 1
            y = cx.op("Add", [y, _channel_vector(cx, b, y) if nchw_args else b])
        elif op == "FusedBatchNorm":
            scale, offset, mean, var = args[k:k + 4]
            k += 4
            mul, add = _bn_affine(cx, scale, offset, mean, var, float(cx.attr("epsilon", 1e-3)))
            y = cx.op("Add", [cx.op("Mul", [y, _channel_vector(cx, mul, y) if nchw_args else mul]),
                              _channel_vector(cx, add, y) if nchw_args else add])
        elif op in ("Add", "AddV2"):
            r = args[k]
            k += 1
            y = cx.op("Add", [y, cx.to_nchw(r) if nchw_args and not _nchw(cx) else r])
        else:
            y = activation(cx, op, y, cx.attr("leakyrelu_alpha"))
    return y


def _channel_vector(cx: Ctx, v: Value, like: Value) -> Value:
    """A per-channel [C] vector shaped to broadcast over NCHW ([C, 1, 1])."""
    a = const_array(v)
    if a is not None:
        return cx.constant(a.reshape(-1, 1, 1), "channel")
    return cx.unsqueeze(v, [1, 2])


def _bn_affine(cx: Ctx, scale: Value, offset: Value, mean: Value, var: Value, eps: float):
    """Inference batch norm as x * mul + add; computed now when the statistics are constants."""
    arrs = [const_array(v) for v in (scale, offset, mean, var)]
    if all(a is not None for a in arrs):
        s, o, m, v = (a.astype(np.float64) for a in arrs)
        mul = s / np.sqrt(v + eps)
        dt = scale.dtype.np
        return cx.constant(mul.astype(dt), "bn_mul"), cx.constant((o - m * mul).astype(dt), "bn_add")
    std = cx.op("Sqrt", [cx.op("Add", [var, cx.scalar_like(eps, var, "eps")])])
    mul = cx.op("Div", [scale, std])
    return mul, cx.op("Sub", [offset, cx.op("Mul", [mean, mul])])


@converts("_FusedConv2D", "_FusedDepthwiseConv2dNative", "_MklNativeFusedConv2D", "_MklFusedConv2D",
          "_MklNativeFusedDepthwiseConv2dNative")
def _fused_conv(cx: Ctx):
    ops = [o.decode() if isinstance(o, bytes) else o for o in cx.attr("fused_ops", [])]
    args = [cx.input(i) for i in range(2, cx.n_inputs)]
    depthwise = "Depthwise" in cx.op_type
    bias = None
    if ops and ops[0] == "BiasAdd":
        bias, args, ops = args[0], args[1:], ops[1:]
    y = _conv(cx, depthwise, bias)
    return _out(cx, _fused_epilogue(cx, y, ops, args, nchw_args=True))


# ------------------------------------------------------------------------------------------ 3-D
def _ncdhw(cx: Ctx) -> bool:
    return _channels_first(cx, "NDHWC", "NCDHW")


def _dhw(cx: Ctx, key: str) -> list[int]:
    v = [int(x) for x in cx.attr(key) or [1] * 5]
    return v[2:] if _ncdhw(cx) else v[1:4]


@converts("Conv3D", "MaxPool3D", "AvgPool3D")
def _conv3d(cx: Ctx):
    first = _ncdhw(cx)
    x = cx.input(0) if first else cx.transpose(cx.input(0), (0, 4, 1, 2, 3))
    strides = _dhw(cx, "strides")
    if cx.op_type == "Conv3D":
        w = cx.need_const(1, "the filter")
        kernel, dilations = [int(k) for k in w.shape[:3]], _dhw(cx, "dilations")
        attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
                 **_pads(cx, x, kernel, strides, dilations)}
        c = x.shape.dims[1] if x.shape.rank == 5 else None
        if c is not None and c != w.shape[3]:
            attrs["group"] = int(c // w.shape[3])
        filt = cx.constant(np.ascontiguousarray(np.transpose(w, (4, 3, 0, 1, 2))), "filter")
        y = cx.op("Conv", [x, filt], attrs)
    else:
        kernel = _dhw(cx, "ksize")
        attrs = {"kernel_shape": kernel, "strides": strides, **_pads(cx, x, kernel, strides, [1, 1, 1])}
        if cx.op_type == "AvgPool3D":
            attrs["count_include_pad"] = 0
        y = cx.op("MaxPool" if cx.op_type == "MaxPool3D" else "AveragePool", [x], attrs)
    return y if first else cx.transpose(y, (0, 2, 3, 4, 1))


# ------------------------------------------------------------------------------------------ pooling
@converts("MaxPool", "AvgPool")
def _pool(cx: Ctx):
    x = _in_nchw(cx)
    kernel, strides = _hw(cx, "ksize"), _hw(cx, "strides")
    attrs = {"kernel_shape": kernel, "strides": strides, **_pads(cx, x, kernel, strides, [1, 1])}
    if cx.op_type == "AvgPool":
        attrs["count_include_pad"] = 0  # TF averages over the window's valid part
    return _out(cx, cx.op("MaxPool" if cx.op_type == "MaxPool" else "AveragePool", [x], attrs))


# ------------------------------------------------------------------------------------------ normalization
@converts("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _batch_norm(cx: Ctx):
    if cx.attr("is_training", False):
        raise cx.fail("a training-mode batch norm has no inference conversion")
    x = cx.input(0)
    mul, add = _bn_affine(cx, cx.input(1), cx.input(2), cx.input(3), cx.input(4), float(cx.attr("epsilon", 1e-3)))
    if _nchw(cx):
        mul, add = _channel_vector(cx, mul, x), _channel_vector(cx, add, x)
    y = cx.op("Add", [cx.op("Mul", [x, mul]), add], shape=x.shape)
    # The other outputs (batch statistics, reserve spaces) stand for the inputs at inference; nothing an
    # inference graph computes reads them, but each needs a value of its own type.
    extra = [cx.input(3), cx.input(4), cx.input(3), cx.input(4), cx.input(3)]
    return [y] + [cx.op("Identity", [v]) if v.dtype is cx.out_type(i + 1).dtype else
                  cx.cast(v, cx.out_type(i + 1).dtype) for i, v in enumerate(extra[:len(cx.node.outputs) - 1])]


@converts("_MklLayerNorm")
def _layer_norm(cx: Ctx):
    x, scale, offset = cx.input(0), cx.input(1), cx.input(2)
    eps = float(cx.attr("epsilon", 1e-3))
    if cx.opset >= 17:
        return cx.op("LayerNormalization", [x, scale, offset], {"axis": -1, "epsilon": eps}, shape=x.shape)
    mean = cx.reduce("ReduceMean", x, [-1], True)
    d = cx.op("Sub", [x, mean])
    var = cx.reduce("ReduceMean", cx.op("Mul", [d, d]), [-1], True)
    y = cx.op("Div", [d, cx.op("Sqrt", [cx.op("Add", [var, cx.scalar_like(eps, x, "eps")])])])
    return cx.op("Add", [cx.op("Mul", [y, scale]), offset], shape=x.shape)


# ------------------------------------------------------------------------------------------ resizing
@converts("ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic")
def _resize(cx: Ctx):
    x = cx.to_nchw(cx.input(0))
    size = cx.as_i64(1)
    n_c = cx.op("Slice", [cx.op("Shape", [x], dtype=I64, shape=Shape([4])), cx.i64([0]), cx.i64([2])],
                shape=Shape([2]))
    sizes = cx.op("Concat", [n_c, size], {"axis": 0}, shape=Shape([4]))
    align, half = bool(cx.attr("align_corners", False)), bool(cx.attr("half_pixel_centers", False))
    bilinear = cx.op_type in ("ResizeBilinear", "ResizeBicubic")
    attrs = {"mode": {"ResizeBilinear": "linear", "ResizeBicubic": "cubic"}.get(cx.op_type, "nearest")}
    if cx.op_type == "ResizeBicubic":
        # TF's legacy kernel uses a = -0.75; with half-pixel centers Keys' a = -0.5
        attrs["cubic_coeff_a"] = -0.5 if half else -0.75
        if half:
            attrs["exclude_outside"] = 1
    if align:
        attrs["coordinate_transformation_mode"] = "align_corners"
    elif half:
        attrs["coordinate_transformation_mode"] = "half_pixel" if bilinear else "tf_half_pixel_for_nn"
    else:
        attrs["coordinate_transformation_mode"] = "asymmetric"
    if not bilinear:
        attrs["nearest_mode"] = "round_prefer_ceil" if align else "floor"
    y = cx.op("Resize", [x, None, None, sizes], attrs, dtype=x.dtype)
    return cx.to_nhwc(y)



# ------------------------------------------------------------------------------------------ blocks and LRN
@converts("DepthToSpace", "SpaceToDepth")
def _depth_to_space(cx: Ctx):
    attrs = {"blocksize": int(cx.attr("block_size"))}
    if cx.op_type == "DepthToSpace":
        attrs["mode"] = "DCR"  # TF's channel order: the block offset is the major part of the channel
    return _out(cx, cx.op(cx.op_type, [_in_nchw(cx)], attrs))


@converts("LRN")
def _lrn(cx: Ctx):
    """TF sums squares over depth_radius channels each side and scales the sum by alpha; ONNX's LRN scales
    it by alpha / size."""
    size = 2 * int(cx.attr("depth_radius", 5)) + 1
    attrs = {"size": size, "alpha": float(cx.attr("alpha", 1.0)) * size, "beta": float(cx.attr("beta", 0.5)),
             "bias": float(cx.attr("bias", 1.0))}
    return cx.to_nhwc(cx.op("LRN", [cx.to_nchw(cx.input(0))], attrs))


def _out_dims(cx: Ctx) -> list[int]:
    """TF's output dims after the batch (the converted operands carry no shapes until the pass ends)."""
    dims = cx.out_type().shape.dims
    if dims is None or None in dims[1:]:
        raise cx.fail("needs the output's dims after the batch to be known")
    return [int(d) for d in dims[1:]]


@converts("SpaceToBatchND")
def _space_to_batch(cx: Ctx):
    """Pad, split each spatial dim into (dim / block, block), move the block offsets in front of the batch
    (TF's order: the offset is the major part of the new batch index) and merge them into it."""
    x = cx.input(0)
    block = [int(b) for b in cx.need_const(1, "the block shape").reshape(-1)]
    pads = cx.need_const(2, "the paddings").reshape(-1, 2).astype(np.int64)
    m = len(block)
    out = _out_dims(cx)
    full = np.zeros((1 + len(out), 2), np.int64)
    full[1:1 + m] = pads
    if full.any():
        x = cx.op("Pad", [x, cx.i64(np.concatenate([full[:, 0], full[:, 1]]))])
    split = [-1]
    for d, b in zip(out, block):
        split += [d, b]
    split += out[m:]
    y = cx.op("Reshape", [x, cx.i64(split)])
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)] + list(range(1 + 2 * m, len(split)))
    y = cx.transpose(y, perm)
    return cx.op("Reshape", [y, cx.i64([-1] + out)], shape=cx.out_type().shape)


@converts("BatchToSpaceND")
def _batch_to_space(cx: Ctx):
    """SpaceToBatchND's inverse: split the batch into (block..., batch), interleave the block offsets with
    the spatial dims, merge, and crop."""
    x = cx.input(0)
    block = [int(b) for b in cx.need_const(1, "the block shape").reshape(-1)]
    crops = cx.need_const(2, "the crops").reshape(-1, 2).astype(np.int64)
    m = len(block)
    out = _out_dims(cx)
    grown = [int(d + c.sum()) for d, c in zip(out, crops)]
    rest = [g // b for g, b in zip(grown, block)] + out[m:]
    y = cx.op("Reshape", [x, cx.i64(block + [-1] + rest)])
    perm = [m]
    for i in range(m):
        perm += [m + 1 + i, i]
    perm += list(range(2 * m + 1, m + 1 + len(rest)))
    y = cx.transpose(y, perm)
    y = cx.op("Reshape", [y, cx.i64([-1] + grown + out[m:])])
    if crops.any():
        y = cx.op("Slice", [y, cx.i64(crops[:, 0]), cx.i64([g - c for g, c in zip(grown, crops[:, 1])]),
                            cx.i64(list(range(1, m + 1)))])
    return y
