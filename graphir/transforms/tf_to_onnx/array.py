"""Converters of TF's array ops: reshapes and transposes, concatenation and splitting, slicing and
gathering, padding, shape queries and tensor construction.

TF computes shapes in int32, ONNX wants int64 shape/index operands: shape values keep TF's dtype, and are
cast where an ONNX op reads them (constants are converted at conversion time)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir.types import Shape, Tensor
from .context import BOOL, I64, INT64_MAX, INT64_MIN, Ctx, converts


def _axis(cx: Ctx, i: int) -> int:
    return int(np.asarray(cx.need_const(i, "the axis")).reshape(-1)[0])


def _norm(axis: int, rank: Optional[int], cx: Ctx) -> int:
    if axis >= 0:
        return axis
    if rank is None:
        raise cx.fail("a negative axis needs a known rank")
    return axis + rank


@converts("Reshape")
def _reshape(cx: Ctx):
    shape = cx.const(1)
    attrs = {}
    if shape is not None:
        if 0 in shape.reshape(-1).tolist():
            if cx.opset < 14:
                raise cx.fail("a reshape to a zero-sized dim needs op set 14")
            attrs["allowzero"] = 1  # TF's 0 is a zero-sized dim, ONNX's "copy the input's"
        s = cx.constant(shape.astype(np.int64), "shape")
    else:
        s = cx.as_i64(1)
    return cx.op("Reshape", [cx.input(0), s], attrs, shape=cx.out_type().shape)


@converts("Transpose")
def _transpose(cx: Ctx):
    perm = cx.need_const(1, "the permutation")
    return cx.op("Transpose", [cx.input(0)], {"perm": [int(p) for p in perm.reshape(-1)]}, shape=cx.out_type().shape)


@converts("ConcatV2", "Concat")
def _concat(cx: Ctx):
    if cx.op_type == "ConcatV2":
        values, axis = [cx.input(i) for i in range(cx.n_inputs - 1)], _axis(cx, cx.n_inputs - 1)
    else:
        values, axis = [cx.input(i) for i in range(1, cx.n_inputs)], _axis(cx, 0)
    if len(values) == 1:
        return cx.op("Identity", values, shape=cx.out_type().shape)
    return cx.op("Concat", values, {"axis": axis}, shape=cx.out_type().shape)


@converts("Pack")
def _pack(cx: Ctx):
    rank = cx.out_type().shape.rank
    axis = _norm(int(cx.attr("axis", 0)), rank, cx)
    parts = [cx.unsqueeze(cx.input(i), [axis]) for i in range(cx.n_inputs)]
    if len(parts) == 1:
        return parts[0]
    return cx.op("Concat", parts, {"axis": axis}, shape=cx.out_type().shape)


@converts("Unpack")
def _unpack(cx: Ctx):
    x = cx.input(0)
    axis = _norm(int(cx.attr("axis", 0)), x.shape.rank, cx)
    n = len(cx.node.outputs)
    parts = cx.op("Split", [x, cx.i64([1] * n)], {"axis": axis}, outputs=n) if n > 1 else (x,)
    return [cx.squeeze(p, [axis]) for p in parts]


@converts("ExpandDims")
def _expand_dims(cx: Ctx):
    axis = _axis(cx, 1)
    if axis < 0:
        axis = _norm(axis, cx.out_type().shape.rank, cx)
    return cx.op("Unsqueeze", [cx.input(0), cx.i64([axis])], shape=cx.out_type().shape)


@converts("Squeeze")
def _squeeze(cx: Ctx):
    axes = [int(a) for a in cx.attr("squeeze_dims", []) or []]
    return cx.op("Squeeze", [cx.input(0)] + ([cx.i64(axes)] if axes else []), shape=cx.out_type().shape)


# ------------------------------------------------------------------------------------------ slicing
@converts("Slice")
def _slice(cx: Ctx):
    x = cx.input(0)
    begin, size = cx.const(1), cx.const(2)
    if begin is not None and size is not None:
        begin, size = begin.astype(np.int64).reshape(-1), size.astype(np.int64).reshape(-1)
        ends = np.where(size == -1, INT64_MAX, begin + size)
        starts_v, ends_v = cx.constant(begin, "starts"), cx.constant(ends, "ends")
    else:
        b, s = cx.as_i64(1), cx.as_i64(2)
        minus1 = cx.constant(np.array(-1, np.int64), "minus1")
        ends_v = cx.op("Where", [cx.op("Equal", [s, minus1], dtype=BOOL),
                                 cx.constant(np.array(INT64_MAX, np.int64), "max"), cx.op("Add", [b, s])], dtype=I64)
        starts_v = b
    return cx.op("Slice", [x, starts_v, ends_v], shape=cx.out_type().shape)


def _bits(mask: int, n: int) -> list[bool]:
    return [bool(mask >> i & 1) for i in range(n)]


@converts("StridedSlice")
def _strided_slice(cx: Ctx):
    """One ONNX Slice over the dims the spec slices, then Squeeze (shrink_axis) and Unsqueeze (new_axis).
    Strides must be constants (their signs pick what a mask means); begin and end may be tensors (a
    sequence-length slice of a positional table), read entry by entry."""
    x = cx.input(0)
    s = cx.need_const(3, "the strides").astype(np.int64).reshape(-1).tolist()
    n = len(s)
    bounds = []
    for i in (1, 2):
        c = cx.const(i)
        bounds.append(c.astype(np.int64).reshape(-1).tolist() if c is not None else cx.as_i64(i))
    b, e = bounds
    bm, em, ell, new, shrink = (_bits(int(cx.attr(k, 0)), n) for k in
                                ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"))
    rank = x.shape.rank

    def entry(bound, i):
        if isinstance(bound, list):
            return bound[i]
        return cx.op("Slice", [bound, cx.i64([i]), cx.i64([i + 1])], shape=Shape([1]))

    consumed = sum(1 for i in range(n) if not ell[i] and not new[i])
    ell_dims = 0  # without an ellipsis, the dims after the spec are taken whole
    if any(ell):
        if rank is None:
            raise cx.fail("an ellipsis needs a known input rank")
        ell_dims = rank - consumed
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    d = out = 0
    for i in range(n):
        if ell[i]:
            d += ell_dims
            out += ell_dims
            continue
        if new[i]:
            unsqueeze.append(out)
            out += 1
            continue
        step = s[i]
        if step == 0:
            raise cx.fail("a zero stride")
        start = (0 if step > 0 else INT64_MAX) if bm[i] and not shrink[i] else entry(b, i)
        if shrink[i]:
            step = 1
            if isinstance(start, int):
                end = INT64_MAX if start == -1 else start + 1
            else:
                end = cx.op("Where", [cx.op("Equal", [start, cx.i64([-1])], dtype=BOOL), cx.i64([INT64_MAX]),
                                      cx.op("Add", [start, cx.i64([1])])], dtype=I64, shape=Shape([1]))
            squeeze.append(d)
        else:
            end = (INT64_MAX if step > 0 else INT64_MIN) if em[i] else entry(e, i)
            out += 1
        if not (isinstance(start, int) and isinstance(end, int) and start == 0 and end == INT64_MAX and step == 1):
            starts.append(start)
            ends.append(end)
            axes.append(d)
            steps.append(step)
        d += 1
    y = x
    if axes:
        y = cx.op("Slice", [x, _vector(cx, starts), _vector(cx, ends), cx.i64(axes), cx.i64(steps)])
    if squeeze:
        y = cx.squeeze(y, squeeze)
    if unsqueeze:
        y = cx.unsqueeze(y, unsqueeze)
    if y is x:
        y = cx.op("Identity", [x])
    return y


def _vector(cx: Ctx, entries: list):
    """An int64 vector of ``entries`` (ints and [1]-shaped values)."""
    if all(isinstance(v, int) for v in entries):
        return cx.i64(entries)
    parts = [cx.i64([v]) if isinstance(v, int) else v for v in entries]
    return parts[0] if len(parts) == 1 else cx.op("Concat", parts, {"axis": 0}, dtype=I64, shape=Shape([len(parts)]))


@converts("GatherV2", "Gather", "ResourceGather")
def _gather(cx: Ctx):
    axis = _axis(cx, 2) if cx.op_type == "GatherV2" else 0
    batch_dims = int(cx.attr("batch_dims", 0) or 0)
    if batch_dims:
        rank = cx.input(1).shape.rank
        if rank is None:
            raise cx.fail("batch_dims needs the indices' rank")
        batch_dims = batch_dims + rank if batch_dims < 0 else batch_dims
        if _norm(axis, cx.input(0).shape.rank, cx) != batch_dims:
            raise cx.fail("batch_dims with a gather axis after the batch dims has no ONNX conversion")
        # Gathering right after the batch dims picks one index per batch entry: GatherND of the indices as
        # 1-element index tuples.
        idx = cx.unsqueeze(cx.as_i64(1), [rank])
        return cx.op("GatherND", [cx.input(0), idx], {"batch_dims": batch_dims}, shape=cx.out_type().shape)
    return cx.op("Gather", [cx.input(0), cx.input(1)], {"axis": axis}, shape=cx.out_type().shape)


@converts("GatherNd")
def _gather_nd(cx: Ctx):
    return cx.op("GatherND", [cx.input(0), cx.as_i64(1)], shape=cx.out_type().shape)


@converts("ReverseV2")
def _reverse(cx: Ctx):
    x = cx.input(0)
    axes = [_norm(int(a), x.shape.rank, cx) for a in cx.need_const(1, "the axes").reshape(-1)]
    if not axes:
        return cx.op("Identity", [x])
    k = len(axes)
    return cx.op("Slice", [x, cx.i64([-1] * k), cx.i64([INT64_MIN] * k), cx.i64(axes), cx.i64([-1] * k)],
                 shape=cx.out_type().shape)


# ------------------------------------------------------------------------------------------ padding
@converts("Pad", "PadV2", "MirrorPad")
def _pad(cx: Ctx):
    x = cx.input(0)
    p = cx.const(1)
    if p is not None:
        pads = cx.constant(np.concatenate([p[:, 0], p[:, 1]]).astype(np.int64), "pads")
    else:
        t = cx.op("Transpose", [cx.as_i64(1)], {"perm": [1, 0]})
        pads = cx.op("Reshape", [t, cx.i64([-1])], shape=Shape([None]))
    ins, attrs = [x, pads], {}
    if cx.op_type == "PadV2":
        ins.append(cx.input(2))
    elif cx.op_type == "MirrorPad":
        mode = cx.attr("mode", "REFLECT")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "SYMMETRIC":
            return _symmetric_pad(cx, x, p)
        if mode != "REFLECT":
            raise cx.fail(f"MirrorPad mode {mode} has no ONNX equivalent")
        attrs["mode"] = "reflect"
    return cx.op("Pad", ins, attrs, shape=cx.out_type().shape)


def _symmetric_pad(cx: Ctx, x, p):
    """ONNX's Pad has no edge-repeating reflection: per padded axis, concatenate the reversed leading and
    trailing slices around the input."""
    if p is None:
        raise cx.fail("SYMMETRIC paddings must be constants for ONNX export")
    y = x
    for axis, (before, after) in enumerate(p.astype(np.int64).tolist()):
        if not before and not after:
            continue
        parts = [y]
        ax = cx.i64([axis])
        step = cx.i64([-1])
        if before:
            parts.insert(0, cx.op("Slice", [y, cx.i64([before - 1]), cx.i64([INT64_MIN]), ax, step]))
        if after:
            parts.append(cx.op("Slice", [y, cx.i64([-1]), cx.i64([-after - 1]), ax, step]))
        y = cx.op("Concat", parts, {"axis": axis})
    return y if y is not x else cx.op("Identity", [x])


# ------------------------------------------------------------------------------------------ shapes
@converts("Shape")
def _shape(cx: Ctx):
    s = cx.op("Shape", [cx.input(0)], dtype=I64, shape=cx.out_type().shape)
    return cx.cast(s, cx.out_type().dtype)


@converts("ShapeN")
def _shape_n(cx: Ctx):
    return [cx.cast(cx.op("Shape", [cx.input(i)], dtype=I64, shape=cx.out_type(i).shape), cx.out_type(i).dtype)
            for i in range(cx.n_inputs)]


@converts("Size")
def _size(cx: Ctx):
    return cx.cast(cx.op("Size", [cx.input(0)], dtype=I64, shape=Shape([])), cx.out_type().dtype)


@converts("Rank")
def _rank(cx: Ctx):
    r = cx.input(0).shape.rank
    if r is not None:
        return cx.constant(np.array(r, cx.out_type().dtype.np), "rank")
    s = cx.op("Shape", [cx.input(0)], dtype=I64, shape=Shape([None]))
    return cx.cast(cx.op("Size", [s], dtype=I64, shape=Shape([])), cx.out_type().dtype)


# ------------------------------------------------------------------------------------------ construction
@converts("Fill")
def _fill(cx: Ctx):
    value = cx.const(1)
    dims = cx.as_i64(0)
    if value is not None:
        t = Tensor.from_array(np.asarray(value).reshape(1))
        return cx.op("ConstantOfShape", [dims], {"value": t}, dtype=cx.out_type().dtype, shape=cx.out_type().shape)
    return cx.op("Expand", [cx.input(1), dims], shape=cx.out_type().shape)


@converts("ZerosLike", "OnesLike")
def _zeros_like(cx: Ctx):
    x = cx.input(0)
    fill = np.array([0 if cx.op_type == "ZerosLike" else 1], x.dtype.np)
    s = cx.op("Shape", [x], dtype=I64, shape=Shape([x.shape.rank]) if x.shape.rank is not None else Shape([None]))
    return cx.op("ConstantOfShape", [s], {"value": Tensor.from_array(fill)}, dtype=x.dtype, shape=x.shape)


@converts("Tile")
def _tile(cx: Ctx):
    return cx.op("Tile", [cx.input(0), cx.as_i64(1)], shape=cx.out_type().shape)


@converts("BroadcastTo")
def _broadcast_to(cx: Ctx):
    return cx.op("Expand", [cx.input(0), cx.as_i64(1)], shape=cx.out_type().shape)


@converts("Range")
def _range(cx: Ctx):
    dt = cx.out_type().dtype
    ins = [cx.cast(cx.input(i), dt) for i in range(3)]
    return cx.op("Range", ins, dtype=dt, shape=cx.out_type().shape)


@converts("Split", "SplitV")
def _split(cx: Ctx):
    n = len(cx.node.outputs)
    if cx.op_type == "Split":
        x, axis = cx.input(1), _axis(cx, 0)
        sizes = None
        dim = x.shape.dims[axis] if x.shape.rank is not None else None
        if dim is not None:
            sizes = [dim // n] * n
    else:
        x, axis = cx.input(0), _axis(cx, 2)
        sizes = [int(a) for a in cx.need_const(1, "the split sizes").reshape(-1)]
        if -1 in sizes:
            dim = x.shape.dims[axis] if x.shape.rank is not None else None
            if dim is None:
                raise cx.fail("a -1 split size needs a known dimension")
            sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    if n == 1:
        return [cx.op("Identity", [x])]
    types = [cx.out_type(i) for i in range(n)]
    if sizes is not None:
        return list(cx.op("Split", [x, cx.i64(sizes)], {"axis": axis}, types=types))
    if cx.opset >= 18:
        return list(cx.op("Split", [x], {"axis": axis, "num_outputs": n}, types=types))
    return list(cx.op("Split", [x], {"axis": axis}, types=types))


@converts("OneHot")
def _one_hot(cx: Ctx):
    """indices == range(depth), laid along ``axis``, selects on_value over off_value. Not ONNX's OneHot: it
    counts negative indices from the end (TF gives them all-off rows) and ONNX Runtime implements it for a few
    type combinations only."""
    idx = cx.as_i64(0)
    rank = idx.shape.rank
    if rank is None:
        raise cx.fail("the indices' rank must be known")
    axis = int(cx.attr("axis", -1))
    axis = rank if axis == -1 else axis
    depth = cx.op("Reshape", [cx.as_i64(1), cx.i64([])], shape=Shape([]))
    positions = cx.op("Range", [cx.constant(np.array(0, np.int64), "zero"), depth,
                                cx.constant(np.array(1, np.int64), "one")], dtype=I64)
    positions = cx.op("Reshape", [positions, cx.i64([-1] + [1] * (rank - axis))])
    hot = cx.op("Equal", [cx.unsqueeze(idx, [axis]), positions], dtype=BOOL)
    return cx.where(hot, cx.input(2), cx.input(3), cx.out_type().shape)


@converts("TopKV2")
def _top_k(cx: Ctx):
    k = cx.op("Reshape", [cx.as_i64(1), cx.i64([1])], shape=Shape([1]))
    vals, idx = cx.op("TopK", [cx.input(0), k], {"largest": 1, "sorted": 1},
                      types=[cx.out_type(0), cx.out_type(1).with_dtype(I64)])
    return [vals, cx.cast(idx, cx.out_type(1).dtype)]


@converts("Where")
def _where(cx: Ctx):
    nz = cx.op("NonZero", [cx.input(0)], dtype=I64)
    return cx.cast(cx.op("Transpose", [nz], {"perm": [1, 0]}, dtype=I64), cx.out_type().dtype)



@converts("Roll")
def _roll(cx: Ctx):
    """tf.roll by constant shifts on dims of known size: per axis, the last ``shift`` entries (mod the dim)
    move to the front, a Concat of two Slices."""
    x = cx.input(0)
    shifts = [int(v) for v in cx.need_const(1, "the shifts").reshape(-1)]
    axes = [int(v) for v in cx.need_const(2, "the axes").reshape(-1)]
    if len(axes) != len(shifts):  # a scalar shift applies to every axis
        shifts = shifts * len(axes)
    dims = cx.out_type().shape.dims
    total = {}
    for shift, axis in zip(shifts, axes):
        axis = _norm(axis, len(dims) if dims is not None else None, cx)
        total[axis] = total.get(axis, 0) + shift  # TF adds the shifts of a repeated axis
    y = x
    for axis, shift in total.items():
        n = dims[axis] if dims is not None else None
        if n is None:
            raise cx.fail("rolling needs the rolled dims to be known")
        k = shift % n if n else 0
        if k == 0:
            continue
        ax = cx.i64([axis])
        tail = cx.op("Slice", [y, cx.i64([n - k]), cx.i64([INT64_MAX]), ax])
        head = cx.op("Slice", [y, cx.i64([0]), cx.i64([n - k]), ax])
        y = cx.op("Concat", [tail, head], {"axis": axis})
    return y if y is not x else cx.op("Identity", [x])
