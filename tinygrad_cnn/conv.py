"""Convolution and pooling: im2col, col2im, conv2d, max_pool2d, avg_pool2d.

Convolution is im2col + one matmul (the book's chapter 7): every receptive field becomes a
row of ``col`` ``(N*OH*OW, C*kh*kw)`` and the filters a matrix ``(OC, C*kh*kw)``. im2col is a
strided *view* of the padded input copied once; col2im, its adjoint, adds the columns back
with one vectorized add per kernel offset.

Each op's backward is itself an op here (conv2d <-> conv_transpose2d <-> conv2d_weight_grad,
max-pool scatter <-> gather, avg-pool <-> its adjoint), so second derivatives work.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from .backend import get_array_module, like, strided_view
from .tensor import Function, Tensor, _as_float, _float_operands, as_tensor, is_grad_enabled

IntPair = int | tuple[int, int]
# Column buffers of the conv input gradient are built this many bytes at a time (see
# _conv_transpose_stride1): small enough for malloc to reuse, big enough for efficient GEMMs.
_CHUNK_BYTES = 8 << 20
# conv2d's forward and weight gradient build their im2col columns this many bytes at a time:
# the chunk stays in cache for its GEMM and the graph never holds a full column buffer.
_COL_CHUNK_BYTES = 1 << 20
# Maps at most this wide (and a batch at least twice as large) use the batch-innermost layout
# (see _batch_inner).
_BATCH_INNER_MAX_OW = 16
# Layers whose per-image GEMM has at least this many multiply-adds use one GEMM for the whole
# batch (see _wide).
_WIDE_GEMM_MACS = 1 << 23
# The single-GEMM path builds its columns a few images at a time into one reused buffer, one GEMM
# per chunk (see _column_chunks): enough images for _WIDE_MIN_COLUMNS GEMM columns (fewer columns
# starve the BLAS threads), but at most _WIDE_CHUNK_BYTES, under glibc's 32 MB mmap ceiling (above
# it every buffer is page-faulted in afresh, about 4 ms per 36 MB here). A chunk just big enough
# for its GEMM stays in cache between im2col and GEMM: AlexNet's first conv, one 4.6 MB image a
# chunk, is 2 ms faster a step than three.
_WIDE_CHUNK_BYTES = 16 << 20
_WIDE_MIN_COLUMNS = 2048
# The single-GEMM path copies its columns out of stride-phase planes (see _long_row_runs) and
# rebuilds them for the weight gradient, instead of keeping them, when the planes' rows are at most
# this fraction wider than an output row (AlexNet's 11x11/4 conv: 57 for 55).
_LONG_ROW_MAX_WASTE = 1 / 16


def _pair(v: IntPair, what: str, op: str, minimum: int) -> tuple[int, int]:
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # a float/None must not reach tuple()
    if len(pair) != 2 or not all(isinstance(p, Integral) and not isinstance(p, bool) and p >= minimum
                                 for p in pair):
        raise ValueError(f"{op}: {what} must be an int >= {minimum} or a pair of them, got {v!r}")
    return (int(pair[0]), int(pair[1]))  # NumPy ints welcome, plain ints stored


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Floor output size of a convolution/pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def dilated_span(kernel, dilation) -> tuple[int, ...]:
    """A dilated kernel's extent per axis, ``dilation * (kernel - 1) + 1``: the window size that
    output sizes and ``'same'`` padding count (taps ``dilation`` apart)."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _dense_kernel(w, dilation=(1, 1), groups: int = 1):
    """A grouped and/or dilated kernel as the ordinary dense one that computes the same convolution.

    ``w: (OC, C/groups, kh, kw)`` -> ``(OC, C, dh*(kh-1)+1, dw*(kw-1)+1)``: zeros between the taps
    (dilation) and off the diagonal group blocks (output group g reads only input group g). Every
    fast path then runs unchanged; the price is ``groups`` times the multiply-adds (the zero blocks),
    and for dilation the window's area over the taps' (fine for AlexNet's groups=2, slow for
    depthwise convs with many channels).
    """
    if tuple(dilation) == (1, 1) and groups == 1:
        return w
    xp = get_array_module(w)
    oc, cg, kh, kw = w.shape
    (dh, dw), g = dilation, groups
    dense = xp.zeros(_dense_shape(w.shape, dilation, groups), dtype=w.dtype)
    diag = xp.arange(g)
    dense.reshape(g, oc // g, g, cg, *dense.shape[2:])[diag, :, diag, :, ::dh, ::dw] = w.reshape(g, oc // g, cg, kh, kw)
    return dense


def _compact_kernel(dense, w_shape, dilation=(1, 1), groups: int = 1):
    """Adjoint of :func:`_dense_kernel`: the entries of a dense kernel (its gradient) that are real taps."""
    if tuple(dilation) == (1, 1) and groups == 1:
        return dense
    oc, cg, kh, kw = w_shape
    (dh, dw), g = dilation, groups
    diag = get_array_module(dense).arange(g)
    blocks = dense.reshape(g, oc // g, g, cg, *dense.shape[2:])[diag, :, diag, :, ::dh, ::dw]
    return blocks.reshape(w_shape)


def _dense_shape(w_shape, dilation=(1, 1), groups: int = 1) -> tuple[int, int, int, int]:
    oc, cg = w_shape[:2]
    return (oc, cg * groups, *dilated_span(w_shape[2:], dilation))


def _check_groups(op: str, groups: Any, channels: int, out_channels: int,
                  names=("input channels", "output channels")) -> int:
    """``groups`` must be a positive int dividing both channel counts (PyTorch's rule)."""
    if not isinstance(groups, Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    for name, count in zip(names, (channels, out_channels)):
        if count % groups:
            raise ValueError(f"{op}: {name} ({count}) must be divisible by groups ({groups})")
    return int(groups)


def _out_hw(op: str, shape, kh, kw, sh, sw, ph, pw) -> tuple[int, int]:
    h, w = shape[-2], shape[-1]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"{op}: kernel ({kh}, {kw}) is larger than the padded input ({h + 2 * ph}, {w + 2 * pw}) "
            f"(input {tuple(shape)}, padding ({ph}, {pw}))"
        )
    return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)


def _check_4d(op: str, name: str, a) -> None:
    if a.ndim != 4:
        raise ValueError(f"{op}: {name} must be 4-D (N, C, H, W), got shape {tuple(a.shape)}")


def _check_kernel(op: str, w, channel_axis: int) -> None:
    """A conv weight needs a non-empty kernel and at least one filter along ``channel_axis`` (PyTorch's rule);
    NumPy would otherwise return zeros of a made-up size or fail deep inside a reshape."""
    if w.shape[2] < 1 or w.shape[3] < 1:
        raise ValueError(f"{op}: weight of shape {tuple(w.shape)} has an empty kernel {tuple(w.shape[2:])}; "
                         "kernel sizes must be >= 1")
    if w.shape[channel_axis] < 1:
        raise ValueError(f"{op}: weight of shape {tuple(w.shape)} is empty at dimension {channel_axis}; it needs "
                         "at least one channel there")


def _check_flag(op: str, name: str, v: Any) -> bool:
    """A bool argument (``ceil_mode``, ...): ``ceil_mode="no"`` would otherwise switch it on, silently."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(v).__name__} {v!r:.40}")
    return bool(v)


def _unbatched(op: str, x: Tensor, fn):
    """PyTorch's unbatched input: ``fn`` of ``x: (C, H, W)`` as a batch of one, the batch axis dropped
    again. Any rank but 3 or 4 is refused naming the op and the shape."""
    if x.ndim == 3:
        out = fn(x.unsqueeze(0))
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {tuple(x.shape)}")
    return fn(x)


def pad2d(x, ph: int, pw: int, value: float = 0.0):
    """Pad the last two axes of ``x: (N, C, H, W)`` with ``value`` (one allocation, one copy)."""
    if ph == 0 and pw == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _windows(xp_, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """A no-copy view ``(N, C, kh, kw, OH, OW)`` of every window of the padded input."""
    sn, sc, sy, sx = xp_.strides
    shape = (xp_.shape[0], xp_.shape[1], kh, kw, oh, ow)
    return strided_view(xp_, shape, (sn, sc, sy, sx, sy * sh, sx * sw))


def _offset(a, i: int, j: int, sh: int, sw: int, oh: int, ow: int):
    """The ``(N, C, OH, OW)`` slice of padded ``a`` that kernel offset (i, j) touches."""
    return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


# --------------------------------------------------------------------------- im2col / col2im


def im2col_array(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0)):
    """``x: (N, C, H, W)`` -> ``col: (N*OH*OW, C*kh*kw)``, the book's layout, same dtype.

    Row ``n*OH*OW + oh*OW + ow`` holds the receptive field of output pixel (oh, ow) of image n,
    ordered channel-major then kernel row then kernel column, matching ``W.reshape(OC, -1)``.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c = x.shape[:2]
    oh, ow = _out_hw("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    win = _windows(pad2d(x, ph, pw), kh, kw, sh, sw, oh, ow)  # (N, C, kh, kw, OH, OW) view
    return win.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


def col2im_array(col, input_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0)):
    """Adjoint of :func:`im2col_array`: add every column entry back to the pixel it came from.

    ``col: (N*OH*OW, C*kh*kw)`` -> ``(N, C, H, W)``. Overlapping windows sum, which is exactly
    the gradient of im2col. One vectorized add per kernel offset.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = input_shape
    oh, ow = _out_hw("col2im", input_shape, kh, kw, sh, sw, ph, pw)
    expected = (n * oh * ow, c * kh * kw)
    if tuple(col.shape) != expected:
        raise ValueError(f"col2im: col has shape {tuple(col.shape)}, expected {expected} for input {input_shape}")
    cols = col.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    return _scatter_windows(cols, (n, c, h, w), kh, kw, sh, sw, ph, pw)


def _scatter_windows(cols, input_shape, kh, kw, sh, sw, ph, pw):
    """Sum ``cols: (N, C, kh, kw, OH, OW)`` into an ``(N, C, H, W)`` image (crop the padding)."""
    n, c, h, w = input_shape
    img = get_array_module(cols).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    _add_windows(img, cols, sh, sw)
    return img[:, :, ph:ph + h, pw:pw + w]


def _add_windows(img, cols, sh: int, sw: int) -> None:
    """``img (N, C, Hp, Wp) += `` every window of ``cols: (N, C, kh, kw, OH, OW)``: one add per kernel offset."""
    xp = get_array_module(img)
    kh, kw, oh, ow = cols.shape[2:]
    for i in range(kh):
        for j in range(kw):
            seg = _offset(img, i, j, sh, sw, oh, ow)
            xp.add(seg, cols[:, :, i, j], out=seg)


def im2col_batched(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), ones_row: bool = False):
    """``x: (N, C, H, W)`` -> ``(N, C*kh*kw, OH*OW)``: the layout conv2d uses internally.

    Same numbers as :func:`im2col_array`, arranged so that ``W.reshape(OC, -1) @ col`` is a
    batched matmul giving ``(N, OC, OH*OW)`` — NCHW directly, no transpose copy. The copy out of
    the window view runs along OW (contiguous rows), which is far faster than the book's layout.
    ``ones_row=True`` appends a row of ones, ``(N, C*kh*kw + 1, OH*OW)``, so that a bias stored
    as the weight matrix's last column is added by the GEMM itself (no extra pass over the output).
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c = x.shape[:2]
    oh, ow = _out_hw("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    win = _windows(pad2d(x, ph, pw), kh, kw, sh, sw, oh, ow)  # (N, C, kh, kw, OH, OW) view
    if not ones_row:
        return win.reshape(n, c * kh * kw, oh * ow)
    xp = get_array_module(x)
    col = xp.empty((n, c * kh * kw + 1, oh * ow), dtype=x.dtype)
    body = col[:, :-1].reshape(n, c, kh, kw, oh, ow)  # a view: only leading axes are split
    body[...] = win
    col[:, -1] = 1
    return col


def _images_per_chunk(image_bytes: int, chunk_bytes: int | None = None) -> int:
    """How many images of scratch (columns, planes, masks) make one chunk of about ``chunk_bytes``
    (default ``_COL_CHUNK_BYTES``)."""
    return max(1, (_COL_CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // max(1, image_bytes))


def _wide_chunks(n: int, rows: int, columns: int, itemsize: int) -> range:
    """Start indices of the image chunks of the single-GEMM path, whose columns are ``(rows, columns)``
    per image: the fewest images that give a GEMM ``_WIDE_MIN_COLUMNS`` columns, at most
    ``_WIDE_CHUNK_BYTES`` of them."""
    step = min(_images_per_chunk(rows * columns * itemsize, _WIDE_CHUNK_BYTES), -(-_WIDE_MIN_COLUMNS // columns))
    return range(0, n, max(1, step))


def _wide(n: int, oc: int, ckk: int, p: int) -> bool:
    """Use one GEMM over many images, ``(OC, C*kh*kw) @ (C*kh*kw, N'*OH*OW)``, for big layers.

    One GEMM per image (:func:`im2col_batched`) gives NCHW with no transpose and wins for small
    maps. For big layers (AlexNet's) one GEMM per ``_WIDE_CHUNK_BYTES`` of columns (2-3 images)
    is as fast on one thread and much faster on several, because every BLAS call is a thread
    fork/join: batch 8 means 8 joins per op, which cost 4x on a busy 2-core machine. The price is
    a transpose copy of the (small) output.
    """
    return n > 1 and oc * ckk * p >= _WIDE_GEMM_MACS


def _column_buffer(x, rows: int, width: int, out):
    """``out`` when given (a buffer being reused), else a fresh ``(rows, width)`` array."""
    if out is None:
        return get_array_module(x).empty((rows, width), dtype=x.dtype)
    if tuple(out.shape) != (rows, width) or out.dtype != x.dtype:
        raise ValueError(f"im2col: out has shape {tuple(out.shape)} and dtype {out.dtype}, "
                         f"expected {(rows, width)} and {x.dtype}")
    return out


def im2col_wide(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), ones_row: bool = False, out=None):
    """``x: (N, C, H, W)`` -> ``(C*kh*kw [+1], N*OH*OW)``: one column per output pixel of the batch.

    The layout of the single-GEMM path (:func:`_wide`); rows as in :func:`im2col_batched`,
    columns ordered (n, oh, ow). ``ones_row`` appends the bias row of ones. ``out``, a
    C-contiguous array of that shape, is filled instead of a new one.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c = x.shape[:2]
    oh, ow = _out_hw("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    win = _windows(pad2d(x, ph, pw), kh, kw, sh, sw, oh, ow)  # (N, C, kh, kw, OH, OW) view
    ckk = c * kh * kw
    col = _column_buffer(x, ckk + int(ones_row), n * oh * ow, out)
    col[:ckk].reshape(c, kh, kw, n, oh, ow)[...] = win.transpose(1, 2, 3, 0, 4, 5)  # a view of col
    if ones_row:
        col[ckk] = 1
    return col


def _long_rows(ow: int, wq: int) -> bool:
    """Use :func:`im2col_long_rows` when its ``Wq - OW`` wasted columns per row cost little GEMM work."""
    return wq - ow <= _LONG_ROW_MAX_WASTE * ow


def im2col_long_rows(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), ones_row: bool = False, out=None):
    """``x: (N, C, H, W)`` -> ``(C*kh*kw [+1], N*OH*Wq)``: the single-GEMM columns with rows Wq >= OW wide.

    The padded input is split into ``sh*sw`` phase planes: pixel (y, x) goes to plane
    (y % sh, x % sw) at (y // sh, x // sw), so each plane is ``Wq = ceil(Wpad / sw)`` wide. Kernel
    offset (i, j) of output pixel (oh, ow) then reads plane (i % sh, j % sw) at
    (oh + i // sh, ow + j // sw). Laying each output row out ``Wq`` wide makes one offset's
    columns for one (c, n) a single contiguous run of ``OH*Wq`` values of the flattened plane:
    im2col is ``C*N*kh*kw`` block copies instead of ``C*N*kh*kw*OH`` strided row copies (3x
    faster for AlexNet's 11x11/4 conv), and the offsets of one phase are one strided view, so
    that is ``sh*sw`` NumPy calls. Columns ``ow >= OW`` hold whatever the run passes over; a
    GEMM's results there are to be dropped (and a weight gradient pairs them with zeros, as the
    per-image path does). ``out`` as in :func:`im2col_wide`.
    """
    n, c = x.shape[:2]
    oh = _out_hw("im2col", x.shape, kh, kw, *stride, *padding)[0]
    col = _column_buffer(x, c * kh * kw + int(ones_row), n * oh * _phase_width(x.shape, stride, padding), out)
    _fill_long_rows(col, _long_row_runs(x, kh, kw, stride, padding), kh, kw, stride, 0, n, ones_row)
    return col


def _phase_width(x_shape, stride, padding) -> int:
    """``Wq``: the width of a stride-phase plane of the padded input."""
    return -(-(x_shape[3] + 2 * padding[1]) // stride[1])


def _long_row_runs(x, kh: int, kw: int, stride, padding) -> list:
    """The runs :func:`im2col_long_rows` copies, for the whole batch: ``[((p, q), view)]``.

    ``view: (C, kh', kw', N, OH*Wq)`` holds, for every offset ``(sh*a + p, sw*b + q)`` of phase
    (p, q), each image's run; the columns of images ``i:j`` are ``view[:, :, :, i:j]``. Built once
    per pass, so chunks only slice and copy.
    """
    (sh, sw), (ph, pw) = stride, padding
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, _ = _out_hw("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    hq, wq = -(-(h + 2 * ph) // sh), _phase_width(x.shape, stride, padding)
    planes = xp.zeros((sh, sw, c, n, hq + 1, wq), dtype=x.dtype)  # one spare row per plane: the runs' tails
    xt = x.transpose(1, 0, 2, 3)
    for p in range(sh):  # padded row ph + y lands in plane p = (ph + y) % sh, row (ph + y) // sh
        y0 = (p - ph) % sh
        for q in range(sw):
            x0 = (q - pw) % sw
            src = xt[:, :, y0::sh, x0::sw]
            r0, c0 = (ph + y0) // sh, (pw + x0) // sw
            planes[p, q, :, :, r0:r0 + src.shape[2], c0:c0 + src.shape[3]] = src
    planes = planes.reshape(sh, sw, c, n, (hq + 1) * wq)
    runs = []
    for p in range(min(sh, kh)):  # offsets (sh*a + p, sw*b + q) of one phase start a*Wq + b apart: one view
        for q in range(min(sw, kw)):
            plane = planes[p, q]  # (C, N, (Hq + 1) * Wq)
            sc, sn, item = plane.strides
            shape = (c, len(range(p, kh, sh)), len(range(q, kw, sw)), n, oh * wq)
            runs.append(((p, q), strided_view(plane, shape, (sc, wq * item, item, sn, item))))
    return runs


def _copy_runs(dst, runs, stride, i: int, j: int) -> None:
    """Copy images ``i:j`` of :func:`_long_row_runs` into the view ``dst: (C, kh, kw, j-i, OH*Wq)``,
    or, cropping every output row to OW, ``dst: (C, kh, kw, j-i, OH, OW)``."""
    for (p, q), view in runs:
        v = view[:, :, :, i:j]
        if dst.ndim == 6:
            v = v.reshape(*v.shape[:4], dst.shape[4], -1)[..., :dst.shape[5]]
        dst[:, p::stride[0], q::stride[1]] = v


def _fill_long_rows(col, runs, kh: int, kw: int, stride, i: int, j: int, ones_row: bool = False) -> None:
    """Copy images ``i:j`` of :func:`_long_row_runs` into ``col: (C*kh*kw [+1], (j-i)*OH*Wq)``."""
    c, length = runs[0][1].shape[0], runs[0][1].shape[4]
    _copy_runs(col[:c * kh * kw].reshape(c, kh, kw, j - i, length), runs, stride, i, j)
    if ones_row:
        col[-1] = 1


def _image_row_width(x_shape, oc: int, kh: int, kw: int, stride, padding) -> int:
    """Output row width on the per-image path: ``Wq`` (long rows, :func:`_image_long_rows`) where the
    columns are at least twice the output and the extra columns at most a quarter, else OW.

    Long rows turn im2col's OW-long copies into OH*Wq-long ones, but the GEMM's output has to be
    cropped and ``gy`` padded: that pays for LeNet's first conv (25 column rows for 6 channels:
    forward 1.10 -> 0.83 ms, weight gradient 1.10 -> 0.92 ms), not for SimpleConvNet's (25 for 30).
    """
    ow = _out_hw("im2col", x_shape, kh, kw, *stride, *padding)[1]
    wq = _phase_width(x_shape, stride, padding)
    return wq if x_shape[1] * kh * kw >= 2 * oc and wq - ow <= ow / 4 else ow


def _image_long_rows(runs, kh: int, kw: int, stride, i: int, j: int, ones_row: bool = False):
    """Images ``i:j`` of :func:`_long_row_runs` in the per-image layout ``(j-i, C*kh*kw [+1], OH*Wq)``."""
    view0 = runs[0][1]
    c, length = view0.shape[0], view0.shape[4]
    col = get_array_module(view0).empty((j - i, c * kh * kw + int(ones_row), length), dtype=view0.dtype)
    _copy_runs(col[:, :c * kh * kw].reshape(j - i, c, kh, kw, length).transpose(1, 2, 3, 0, 4), runs, stride, i, j)
    if ones_row:
        col[:, -1] = 1
    return col


def _from_planes(x_shape, kh: int, kw: int, stride, padding) -> bool:
    """Whether the single-GEMM columns are copied out of stride-phase planes (:func:`_long_row_runs`).

    The planes turn a strided im2col into unit-stride copies and are small enough to keep, so the
    weight gradient copies the columns again instead of holding them (AlexNet's first conv: 6 MB
    of planes instead of 36 MB of columns). The columns keep OW-wide rows: cropping the runs while
    copying costs less than GEMMs over ``Wq - OW`` spare columns and the copies to add and drop them.
    """
    ow = _out_hw("im2col", x_shape, kh, kw, *stride, *padding)[1]
    return _long_rows(ow, _phase_width(x_shape, stride, padding))


def _column_chunks(x, kh: int, kw: int, stride, padding, ones_row: bool = False, runs=None, reuse: bool = True):
    """Yield ``(i, j, col)``: the single-GEMM columns ``(C*kh*kw [+1], (j-i)*OH*OW)`` of images ``i:j``
    (:func:`im2col_wide`'s layout), chunk after chunk.

    With ``reuse`` every full chunk is built into the same buffer, so it is still in cache when
    its GEMM reads it, and ``col`` is overwritten by the next chunk; without, each chunk is a new
    array that can be kept. With ``runs`` (:func:`_long_row_runs` of ``x``) the columns are copied
    out of its phase planes, else out of the padded input's window view.
    """
    n, c = x.shape[:2]
    oh, ow = _out_hw("im2col", x.shape, kh, kw, *stride, *padding)
    rows = c * kh * kw + int(ones_row)
    chunks = _wide_chunks(n, rows, oh * ow, x.dtype.itemsize)
    buf = None
    for i in chunks:
        j = min(i + chunks.step, n)
        out = buf if j - i == chunks.step else None
        if runs is None:
            col = im2col_wide(x[i:j], kh, kw, stride, padding, ones_row, out)
        else:
            col = _column_buffer(x, rows, (j - i) * oh * ow, out)
            _copy_runs(col[:c * kh * kw].reshape(c, kh, kw, j - i, oh, ow), runs, stride, i, j)
            if ones_row:
                col[-1] = 1
        buf = col if reuse and j - i == chunks.step else buf
        yield i, j, col


def _channels_first(gy, out=None):
    """``gy (N, OC, OH, OW)`` -> ``(OC, N*OH*OW)``, the single-GEMM layout (one copy).

    ``out``, an earlier result of the same shape, is refilled instead of allocating.
    """
    n, oc, oh, ow = gy.shape
    if out is None:
        out = get_array_module(gy).empty((oc, n * oh * ow), dtype=gy.dtype)
    out.reshape(oc, n, oh, ow)[...] = gy.transpose(1, 0, 2, 3)
    return out


def _batch_inner(n: int, ow: int) -> bool:
    """Use columns ordered (OH, OW, N) for small maps in a big batch (LeNet's 10x10, DeepConvNet's 7x7).

    With rows of only OW <= 16 pixels, the per-image im2col copies short pieces and the per-image
    GEMMs are tiny. With the batch as the innermost axis, every copy is a run of N contiguous
    values (5x faster for LeNet's second conv) and the whole batch is one GEMM; the price is one
    transpose of the (small) input, output or gradient to or from NCHW.
    """
    return ow <= _BATCH_INNER_MAX_OW and n >= 2 * ow


def _pad_batch_last(x, ph: int, pw: int):
    """``x (N, C, H, W)`` -> zero-padded ``(C, H + 2ph, W + 2pw, N)``, one copy."""
    n, c, h, w = x.shape
    xp = get_array_module(x)
    out = (xp.zeros if ph or pw else xp.empty)((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    out[:, ph:ph + h, pw:pw + w] = x.transpose(1, 2, 3, 0)
    return out


def im2col_batch_inner(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), ones_row: bool = False):
    """``x: (N, C, H, W)`` -> ``(C*kh*kw [+1], OH*OW*N)``: rows as :func:`im2col_batched`, columns (oh, ow, n).

    The layout of :func:`_batch_inner`; ``ones_row`` appends the bias row of ones.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c = x.shape[:2]
    oh, ow = _out_hw("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    xt = _pad_batch_last(x, ph, pw)
    s0, s1, s2, s3 = xt.strides
    xp = get_array_module(x)
    win = strided_view(xt, (c, kh, kw, oh, ow, n), (s0, s1, s2, s1 * sh, s2 * sw, s3))
    ckk = c * kh * kw
    col = xp.empty((ckk + int(ones_row), oh * ow * n), dtype=x.dtype)
    col[:ckk].reshape(c, kh, kw, oh, ow, n)[...] = win
    if ones_row:
        col[ckk] = 1
    return col


def _batch_last(gy):
    """``gy (N, OC, OH, OW)`` -> ``(OC, OH*OW*N)``, the layout of :func:`im2col_batch_inner` (one copy)."""
    return gy.transpose(1, 2, 3, 0).reshape(gy.shape[1], -1)


def col2im_batched(col, input_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0)):
    """Adjoint of :func:`im2col_batched`: ``(N, C*kh*kw, OH*OW)`` -> ``(N, C, H, W)``."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = input_shape
    oh, ow = _out_hw("col2im", input_shape, kh, kw, sh, sw, ph, pw)
    return _scatter_windows(col.reshape(n, c, kh, kw, oh, ow), (n, c, h, w), kh, kw, sh, sw, ph, pw)


class Im2col(Function):
    keeps_inputs = False

    def __init__(self, kh, kw, stride, padding):
        self.kh, self.kw, self.stride, self.padding = kh, kw, stride, padding

    def forward(self, x):
        self.in_shape = x.shape
        return im2col_array(x, self.kh, self.kw, self.stride, self.padding)

    def backward(self, gcol):
        return Col2im(self.in_shape, self.kh, self.kw, self.stride, self.padding)(gcol)

    def attrs(self):
        return {"kernel_size": (self.kh, self.kw), "stride": self.stride, "padding": self.padding}


class Col2im(Function):
    keeps_inputs = False

    def __init__(self, input_shape, kh, kw, stride, padding):
        self.input_shape = tuple(input_shape)
        self.kh, self.kw, self.stride, self.padding = kh, kw, stride, padding

    def forward(self, col):
        return col2im_array(col, self.input_shape, self.kh, self.kw, self.stride, self.padding)

    def backward(self, gx):
        return Im2col(self.kh, self.kw, self.stride, self.padding)(gx)

    def attrs(self):
        return {"kernel_size": (self.kh, self.kw), "stride": self.stride, "padding": self.padding}


def im2col(x: Any, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """Differentiable im2col: ``x: (N, C, H, W)`` -> ``(N*OH*OW, C*kh*kw)`` (see im2col_array)."""
    x = as_tensor(x)
    _check_4d("im2col", "x", x.data)
    kh, kw = _pair((kh, kw), "kernel size", "im2col", 1)
    return Im2col(kh, kw, _pair(stride, "stride", "im2col", 1), _pair(padding, "padding", "im2col", 0))(x)


def col2im(col: Any, input_shape, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """Differentiable col2im, the adjoint of :func:`im2col`; returns ``(N, C, H, W)``."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 4 or not all(isinstance(d, Integral) and not isinstance(d, bool) and d >= 0
                                                     for d in shape):
        raise ValueError(f"col2im: input_shape must be 4 non-negative ints (N, C, H, W), got {input_shape!r}")
    input_shape = tuple(int(d) for d in shape)
    kh, kw = _pair((kh, kw), "kernel size", "col2im", 1)
    return Col2im(input_shape, kh, kw, _pair(stride, "stride", "col2im", 1),
                  _pair(padding, "padding", "col2im", 0))(as_tensor(col))


# --------------------------------------------------------------------------- conv2d


class Conv2d(Function):
    """``y = x * W + b``: x (N, C, H, W), W (OC, C/groups, kh, kw), b (OC,) -> y (N, OC, OH, OW).

    ``dilation``/``groups`` run as the equivalent dense kernel (:func:`_dense_kernel`); the three conv
    ops (this, its input gradient ConvTranspose2d and its weight gradient) all take the compact weight.
    """

    def __init__(self, stride, padding, dilation=(1, 1), groups: int = 1):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, tuple(dilation), groups

    def reads(self):
        need = self.needs_input_grad
        return (need[1], need[0], False, False)[:len(need) + 1]

    def forward(self, x, w, b=None):
        _check_4d("conv2d", "input", x)
        _check_4d("conv2d", "weight", w)
        _check_kernel("conv2d", w, 0)
        g = self.groups
        if x.shape[1] != w.shape[1] * g:
            raise ValueError(
                f"conv2d: input of shape {tuple(x.shape)} has {x.shape[1]} channels but weight of shape "
                f"{tuple(w.shape)} expects {w.shape[1] * g}" + (f" (groups={g})" if g > 1 else "")
            )
        if w.shape[0] % g:
            raise ValueError(f"conv2d: weight of shape {tuple(w.shape)} has {w.shape[0]} filters, not divisible "
                             f"by groups={g}")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"conv2d: bias of shape {tuple(b.shape)} does not match weight {tuple(w.shape)}")
        # one float dtype for every path (f32 with f64 -> f64, an int input takes the weight's); the
        # engine casts each gradient back to its tensor's
        x, w, b = _float_operands(x, w, b)
        self.kernel_size = tuple(w.shape[2:])
        w = _dense_kernel(w, self.dilation, g)
        n, oc, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
        oh, ow = _out_hw("conv2d", x.shape, kh, kw, *self.stride, *self.padding)
        xp = get_array_module(x)
        if n == 0:  # an empty batch: nothing to compute
            return xp.zeros((0, oc, oh, ow), dtype=x.dtype)
        w2 = w.reshape(oc, -1)
        if b is not None:  # bias as an extra weight column against a row of ones: added by the GEMM
            w2 = xp.concatenate([w2, b.reshape(oc, 1).astype(w.dtype, copy=False)], axis=1)
        wgrad = is_grad_enabled() and self.needs_input_grad[1]  # else no weight gradient will read columns
        if _wide(n, oc, w2.shape[1], oh * ow):
            y = xp.empty((n, oc, oh, ow), dtype=x.dtype)
            runs = _long_row_runs(x, kh, kw, self.stride, self.padding) \
                if _from_planes(x.shape, kh, kw, self.stride, self.padding) else None
            # Copies out of the kept phase planes are cheap to redo; columns copied out of the input
            # (W3b: rows of 27 values) cost more to copy again than to keep: those chunks are kept.
            keep = runs is None and wgrad
            # the weight gradient's GEMM gives the bias gradient too, from the same row of ones
            ones = b is not None and self.needs_input_grad[2]
            kept = []
            for i, j, col in _column_chunks(x, kh, kw, self.stride, self.padding, b is not None, runs,
                                            reuse=not keep):
                if j - i == 1:  # one image: the GEMM writes its NCHW output in place
                    xp.matmul(w2, col, out=y[i].reshape(oc, -1))
                else:
                    y[i:j] = (w2 @ col).reshape(oc, j - i, oh, ow).transpose(1, 0, 2, 3)
                if keep:
                    kept.append((i, j, col if ones or b is None else col[:-1]))
            if wgrad:  # what the weight gradient iterates: the kept chunks, or their rebuild
                self.columns = kept if keep else _column_chunks(x, kh, kw, self.stride, self.padding, ones, runs)
            return y
        if _batch_inner(n, ow):
            col = im2col_batch_inner(x, kh, kw, self.stride, self.padding, ones_row=b is not None)
            if wgrad:  # kept for the weight gradient: rebuilding them cost 0.4 ms of LeNet's step
                self.columns = col if b is None or self.needs_input_grad[2] else col[:-1]
            return xp.ascontiguousarray((w2 @ col).reshape(oc, oh, ow, n).transpose(3, 0, 1, 2))
        # One GEMM per image gives NCHW directly. The columns are built a few images at a time:
        # the chunk stays in cache for its GEMM, and the full im2col buffer never exists.
        width = _image_row_width(x.shape, oc, kh, kw, self.stride, self.padding)
        runs = _long_row_runs(x, kh, kw, self.stride, self.padding) if width != ow else None
        y = xp.empty((n, oc, oh, ow), dtype=x.dtype)
        step = _images_per_chunk(w2.shape[1] * oh * width * x.dtype.itemsize)
        for i in range(0, n, step):
            j = min(i + step, n)
            if runs is None:
                col = im2col_batched(x[i:j], kh, kw, self.stride, self.padding, ones_row=b is not None)
                xp.matmul(w2, col, out=y[i:j].reshape(j - i, oc, -1))
            else:
                col = _image_long_rows(runs, kh, kw, self.stride, i, j, ones_row=b is not None)
                y[i:j] = xp.matmul(w2, col).reshape(j - i, oc, oh, width)[..., :ow]
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        with_bias = len(need) > 2 and need[2]
        gy_last = None
        if need[0] and need[1] and _batch_inner(gy.shape[0], gy.shape[3]):
            gy_last = _batch_last(gy.data)  # the layout both gradients' GEMMs read: one transpose for the two
        dg = self.dilation, self.groups
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:], gy_last, *dg)(gy, w) if need[0] else None
        gw = gb = None
        if need[1]:  # with the bias gradient from the same GEMM (a row of ones in the columns)
            gw = Conv2dWeightGrad(w.shape, self.stride, self.padding, self.__dict__.pop("columns", None),
                                  with_bias, gy_last, *dg)(x, gy)
            if with_bias:
                gw, gb = gw
        elif with_bias:
            gb = _sum_per_channel(gy)
        return gx, gw, gb

    def attrs(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                **_dilation_groups_attrs(self)}


def _dilation_groups_attrs(fn) -> dict:
    """``dilation``/``groups`` for graph labels and export, only where they are not the defaults."""
    a = {}
    if fn.dilation != (1, 1):
        a["dilation"] = fn.dilation
    if fn.groups != 1:
        a["groups"] = fn.groups
    return a


def _sum_per_channel(gy):
    """``gy (N, C, H, W)`` -> ``(C,)``: the bias gradient, as a GEMV against ones (5x NumPy's strided sum)."""
    n, c = gy.shape[:2]
    ones = get_array_module(gy).ones(gy.shape[2] * gy.shape[3], dtype=gy.dtype)
    return (gy.reshape(n * c, ones.size) @ ones).reshape(n, c).sum(axis=0)


class ConvTranspose2d(Function):
    """Gradient of conv2d w.r.t. its input: ``gy (N, OC, OH, OW), W (OC, C/groups, kh, kw) -> (N, C, H, W)``."""

    def __init__(self, stride, padding, in_hw, gy_last=None, dilation=(1, 1), groups: int = 1):
        self.stride, self.padding, self.in_hw = stride, padding, tuple(in_hw)
        self.gy_last = gy_last  # gy in the batch-innermost layout, when the weight gradient shares it
        self.dilation, self.groups = tuple(dilation), groups

    def forward(self, gy, w):
        gy, w = _float_operands(gy, w)
        w = _dense_kernel(w, self.dilation, self.groups)
        oc, c, kh, kw = w.shape
        n, _, oh, ow = gy.shape
        if n == 0 or c == 0:  # an empty batch, or no input channels: nothing to compute
            return get_array_module(gy).zeros((n, c, *self.in_hw), dtype=gy.dtype)
        wide = _wide(n, oc, c * kh * kw, oh * ow)
        if wide and self.stride == (1, 1):
            return _conv_transpose_row_unfold(gy, w, self.in_hw, self.padding)
        if wide:
            xp = get_array_module(gy)
            (h, wd), (ph, pw) = self.in_hw, self.padding
            img = xp.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
            wt = w.reshape(oc, -1).T
            gcol = g = None  # buffers reused from chunk to chunk, as in _column_chunks
            for i in (chunks := _wide_chunks(n, c * kh * kw, oh * ow, gy.dtype.itemsize)):
                j = min(i + chunks.step, n)
                if j - i < chunks.step:
                    gcol = g = None
                g = _channels_first(gy[i:j], out=g)
                gcol = xp.matmul(wt, g, out=gcol)  # (C*kh*kw, n'*OH*OW): one GEMM per chunk
                _add_windows(img[i:j], gcol.reshape(c, kh, kw, -1, oh, ow).transpose(3, 0, 1, 2, 4, 5), *self.stride)
            return img[:, :, ph:ph + h, pw:pw + wd]
        if _batch_inner(n, ow):
            gy_last, self.gy_last = self.gy_last, None
            return _conv_transpose_batch_inner(gy, w, self.in_hw, self.stride, self.padding, gy_last)
        if self.stride == (1, 1):
            return _conv_transpose_stride1(gy, w, self.in_hw, self.padding)
        gcol = get_array_module(gy).matmul(w.reshape(oc, -1).T, gy.reshape(n, oc, -1))  # (N, C*kh*kw, OH*OW)
        return col2im_batched(gcol, (n, c, *self.in_hw), kh, kw, self.stride, self.padding)

    def backward(self, ggx):
        gy, w = self.inputs
        dg = self.dilation, self.groups
        g_gy = conv2d(ggx, w, None, self.stride, self.padding, *dg) if self.needs_input_grad[0] else None
        g_w = Conv2dWeightGrad(w.shape, self.stride, self.padding, None, False, None, *dg)(ggx, gy) \
            if self.needs_input_grad[1] else None
        return g_gy, g_w

    def attrs(self):
        return {"stride": self.stride, "padding": self.padding, **_dilation_groups_attrs(self)}


def _conv_transpose_row_unfold(gy, w, in_hw, padding):
    """ConvTranspose2d forward for big stride-1 layers: the kernel rows go into the GEMM, only the
    kernel columns are left for col2im.

    ``gx[n, c, y, x] = sum over oc, i, j of W[oc, c, i, j] * gy[n, oc, y + ph - i, x + pw - j]``.
    Unfolding ``gy`` along its rows only, ``G[(oc, i), (n, y, x')] = gy[n, oc, y + ph - i, x']``
    (zero outside), one GEMM ``(C*kw, OC*kh) @ G`` sums over oc and i, leaving kw shifted adds
    along x instead of col2im's kh*kw (W3b: 25 -> 5 adds, its input gradient 52 -> 45 ms).
    ``G`` is kh times ``gy``, built a few images at a time with one block copy per kernel row.
    """
    xp = get_array_module(gy)
    n, oc, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    (h, wd), (ph, pw) = in_hw, padding
    a = xp.ascontiguousarray(w.transpose(1, 3, 0, 2)).reshape(c * kw, oc * kh)  # [(c, j), (oc, i)]
    img = xp.zeros((n, c, h, ow + kw - 1), dtype=gy.dtype)  # x padded: ow + kw - 1 == wd + 2 * pw
    rows = cols = None  # the unfolded chunk and the GEMM output, reused from chunk to chunk
    for s in (chunks := _wide_chunks(n, oc * kh, h * ow, gy.dtype.itemsize)):
        e = min(s + chunks.step, n)
        if rows is None or rows.shape[2] != e - s:
            rows, cols = xp.zeros((oc, kh, e - s, h, ow), dtype=gy.dtype), None  # rows no i reaches stay 0
        for i in range(kh):
            y0, y1 = max(0, i - ph), min(h, oh + i - ph)
            if y0 < y1:
                rows[:, i, :, y0:y1] = gy[s:e, :, y0 + ph - i:y1 + ph - i].transpose(1, 0, 2, 3)
        cols = xp.matmul(a, rows.reshape(oc * kh, -1), out=cols)  # (C*kw, n'*H*OW)
        per_j = cols.reshape(c, kw, e - s, h, ow)
        for j in range(kw):
            seg = img[s:e, :, :, j:j + ow]
            xp.add(seg, per_j[:, j].transpose(1, 0, 2, 3), out=seg)
    return img[:, :, :, pw:pw + wd]


def _conv_transpose_batch_inner(gy, w, in_hw, stride, padding, gy_last=None):
    """ConvTranspose2d forward in the (OH, OW, N) column layout of :func:`_batch_inner`.

    One GEMM gives the columns; col2im is one add per kernel offset into a ``(C, Hp, Wp, N)``
    image, each over rows of OW*N contiguous values; one transpose back to NCHW.
    """
    xp = get_array_module(gy)
    n, oc, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    (h, wd), (sh, sw), (ph, pw) = in_hw, stride, padding
    cols = (w.reshape(oc, -1).T @ (_batch_last(gy) if gy_last is None else gy_last)).reshape(c, kh, kw, oh, ow, n)
    img = xp.zeros((c, h + 2 * ph, wd + 2 * pw, n), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            seg = img[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            xp.add(seg, cols[:, i, j], out=seg)
    return xp.ascontiguousarray(img[:, ph:ph + h, pw:pw + wd].transpose(3, 0, 1, 2))


def _conv_transpose_stride1(gy, w, in_hw, padding):
    """ConvTranspose2d forward for stride 1, with col2im as kh*kw long contiguous adds.

    Flatten the padded image per (n, c): kernel offset (i, j) of output pixel (y, x) lands at
    ``(y + i) * Wp + x + j``. Laying the output rows out at the padded width ``Wp`` (``gy``
    zero-padded on the right before the GEMM, so the extra columns add zeros) makes every
    offset's contribution one shifted block of length ``OH * Wp``: the adds run over long rows
    instead of OW-long pieces (10x faster for LeNet-sized maps). Same sums as col2im_batched.
    """
    xp = get_array_module(gy)
    n, oc, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    (h, wd), (ph, pw) = in_hw, padding
    hp, wp = h + 2 * ph, wd + 2 * pw
    gy_ext = xp.zeros((n, oc, oh, wp), dtype=gy.dtype)
    gy_ext[..., :ow] = gy
    gy_ext = gy_ext.reshape(n, oc, oh * wp)
    wt = w.reshape(oc, -1).T
    img = xp.zeros((n, c, hp * wp + kw - 1), dtype=gy.dtype)  # kw - 1 slack for the last offsets' tails
    length = oh * wp
    # a few images at a time, so the (C*kh*kw, OH*Wp) columns stay small enough to be reused by
    # the allocator instead of being page-faulted in afresh (AlexNet-sized layers: 64 MB at once)
    step = max(1, _CHUNK_BYTES // max(1, c * kh * kw * length * gy.dtype.itemsize))
    for i in range(0, n, step):
        gcol = xp.matmul(wt, gy_ext[i:i + step]).reshape(-1, c, kh * kw, length)  # (n', C, kh*kw, OH*Wp)
        part = img[i:i + step]
        for k in range(kh * kw):
            start = (k // kw) * wp + k % kw
            seg = part[:, :, start:start + length]
            xp.add(seg, gcol[:, :, k], out=seg)
    return img[:, :, :hp * wp].reshape(n, c, hp, wp)[:, :, ph:ph + h, pw:pw + wd]


class Conv2dWeightGrad(Function):
    """Gradient of conv2d w.r.t. its weight: ``x (N, C, H, W), gy (N, OC, OH, OW) -> (OC, C, kh, kw)``.

    With ``bias`` it also returns the bias gradient ``(OC,)``: the columns get a row of ones, so
    the same GEMM sums ``gy`` per channel instead of another pass over it.
    """

    def __init__(self, w_shape, stride, padding, columns=None, bias: bool = False, gy_last=None,
                 dilation=(1, 1), groups: int = 1):
        self.w_shape, self.stride, self.padding, self.bias = tuple(w_shape), stride, padding, bias
        # what the forward built, used once: the single-GEMM path's (i, j, col) chunks of x, or the
        # batch-innermost path's columns; and gy in that path's layout when the input gradient shares it
        self.columns, self.gy_last = columns, gy_last
        self.dilation, self.groups = tuple(dilation), groups

    def forward(self, x, gy):
        gw = self._dense_grad(*_float_operands(x, gy))  # the dense kernel's gradient; keep its real taps
        if self.bias:
            return _compact_kernel(gw[0], self.w_shape, self.dilation, self.groups), gw[1]
        return _compact_kernel(gw, self.w_shape, self.dilation, self.groups)

    def _dense_grad(self, x, gy):
        oc, c, kh, kw = w_shape = _dense_shape(self.w_shape, self.dilation, self.groups)
        n, _, oh, ow = gy.shape
        xp = get_array_module(gy)
        ones = self.bias
        if n == 0 or c == 0:  # an empty batch, or no input channels: only the bias has a gradient
            gw = xp.zeros(w_shape, dtype=gy.dtype)
            return (gw, _sum_per_channel(gy) if n else xp.zeros(oc, dtype=gy.dtype)) if ones else gw
        # computed transposed, col @ gy^T -> (C*kh*kw [+1], OC): the long OH*OW axis is the inner one
        # of both operands; OpenBLAS threads this orientation well (the other was up to 15x slower)
        if _wide(n, oc, c * kh * kw + ones, oh * ow):  # (C*kh*kw, N*OH*OW): the forward's chunks, kept or rebuilt
            gw_t = xp.zeros((c * kh * kw + ones, oc), dtype=gy.dtype)
            chunks, self.columns = self.columns, None
            if chunks is None:
                runs = _long_row_runs(x, kh, kw, self.stride, self.padding) \
                    if _from_planes(x.shape, kh, kw, self.stride, self.padding) else None
                chunks = _column_chunks(x, kh, kw, self.stride, self.padding, ones, runs)
            g = None
            for i, j, col in chunks:
                if j - i == 1:  # one image's gy is already (OC, OH*OW)
                    gw_t += col @ gy[i].reshape(oc, -1).T
                    continue
                g = _channels_first(gy[i:j], out=g if g is not None and g.shape[1] == col.shape[1] else None)
                gw_t += col @ g.T
        elif _batch_inner(n, ow):
            col, self.columns = self.columns, None
            if getattr(col, "shape", None) != (c * kh * kw + ones, oh * ow * n):  # not the forward's: rebuild
                col = im2col_batch_inner(x, kh, kw, self.stride, self.padding, ones)
            gy_last, self.gy_last = self.gy_last, None
            gw_t = col @ (_batch_last(gy) if gy_last is None else gy_last).T
        else:  # (C*kh*kw, OH*width) @ (OH*width, OC) per image, summed; columns rebuilt a chunk at a time
            width = _image_row_width(x.shape, oc, kh, kw, self.stride, self.padding)
            runs = _long_row_runs(x, kh, kw, self.stride, self.padding) if width != ow else None
            gw_t = xp.zeros((c * kh * kw + ones, oc), dtype=gy.dtype)
            step = _images_per_chunk((c * kh * kw + ones) * oh * width * x.dtype.itemsize)
            g = None if runs is None else xp.zeros((min(step, n), oc, oh, width), dtype=gy.dtype)
            for i in range(0, n, step):
                j = min(i + step, n)
                if runs is None:
                    col, gj = im2col_batched(x[i:j], kh, kw, self.stride, self.padding, ones), gy[i:j]
                else:  # gy's rows zero-padded to the long rows' width
                    col, gj = _image_long_rows(runs, kh, kw, self.stride, i, j, ones), g[:j - i]
                    gj[..., :ow] = gy[i:j]
                gw_t += xp.matmul(col, gj.reshape(j - i, oc, -1).transpose(0, 2, 1)).sum(axis=0)
        if ones:
            return gw_t[:-1].T.reshape(w_shape), gw_t[-1].copy()
        return gw_t.T.reshape(w_shape)

    def backward(self, ggw, ggb=None):
        x, gy = self.inputs
        dg = self.dilation, self.groups
        g_x = ConvTranspose2d(self.stride, self.padding, x.shape[2:], None, *dg)(gy, ggw) \
            if self.needs_input_grad[0] else None
        g_gy = conv2d(x, ggw, ggb, self.stride, self.padding, *dg) if self.needs_input_grad[1] else None
        return g_x, g_gy

    def attrs(self):
        return _dilation_groups_attrs(self)


class PaddingError(ValueError, RuntimeError):
    """A bad padding string: a ValueError (as this library's argument errors, and ``nn.Conv2d``'s in
    PyTorch) that is also the RuntimeError PyTorch's ``F.conv2d`` raises."""


def _same_padding(op: str, stride, kernel) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch's ``padding='same'``: (symmetric padding, extra bottom/right padding) for stride 1.

    The total padding ``k - 1`` is split ``(k - 1) // 2`` before and the rest after, so an even
    kernel pads one more pixel at the bottom/right (PyTorch pads the input for that extra pixel).
    """
    if tuple(stride) != (1, 1):
        raise PaddingError(f"{op}: padding='same' is not supported for strided convolutions (stride {tuple(stride)})")
    sym = tuple((k - 1) // 2 for k in kernel)
    return (sym[0], sym[1]), (kernel[0] - 1 - 2 * sym[0], kernel[1] - 1 - 2 * sym[1])


def conv_padding(op: str, padding, stride, kernel) -> tuple[tuple[int, int], tuple[int, int]]:
    """``padding`` (an int, a pair, ``'valid'`` or ``'same'``) -> (symmetric (ph, pw), extra bottom/right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return _same_padding(op, stride, kernel)
        raise PaddingError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same' "
                           f"or an int or a pair of ints")
    return _pair(padding, "padding", op, 0), (0, 0)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
           padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), weight (OC, C/groups, kh, kw).

    ``padding``: an int, an ``(h, w)`` pair, ``'valid'`` (none) or ``'same'`` (output as large as
    the input; stride 1 only, as PyTorch: an even kernel pads one more pixel at the bottom/right,
    done by padding the input explicitly). An unbatched ``x (C, H, W)`` gives ``(OC, OH, OW)``.
    ``dilation`` spaces the kernel taps; ``groups`` splits the channels into groups convolved
    separately (both as PyTorch; computed with the equivalent dense kernel, see ``_dense_kernel``).
    """
    x = as_tensor(x)
    if x.ndim != 4:
        return _unbatched("conv2d", x, lambda xb: conv2d(xb, weight, bias, stride, padding, dilation, groups))
    s = _pair(stride, "stride", "conv2d", 1)
    d = _pair(dilation, "dilation", "conv2d", 1)
    w_shape = getattr(weight, "shape", None)
    g = _check_groups("conv2d", groups, x.shape[1], w_shape[0] if w_shape is not None and len(w_shape) == 4 else 0,
                      ("input channels", "weight's filters"))
    if isinstance(padding, str):
        if w_shape is None or len(w_shape) != 4:
            raise ValueError(f"conv2d: weight must be 4-D (OC, C, kh, kw), got shape {w_shape}")
        p, (eh, ew) = conv_padding("conv2d", padding, s, dilated_span(w_shape[2:], d))
        if eh or ew:
            from .functional import pad  # functional imports this module

            x = pad(x, (0, ew, 0, eh))
    else:
        p = _pair(padding, "padding", "conv2d", 0)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(s, p, d, g)(*args)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> Tensor:
    """Transposed convolution, as PyTorch's: conv2d's gradient with respect to its input.

    input (N, C_in, H, W), weight (C_in, C_out/groups, kh, kw), bias (C_out,) -> (N, C_out, H', W')
    with ``H' = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + 1 + output_padding``. Every
    conv2d input size of ``H'`` and ``H' + 1``, ... (stride of them) gives the same ``H``;
    ``output_padding`` (smaller than the stride or the dilation, PyTorch's rule) picks one.
    The op is ``ConvTranspose2d``, the one conv2d's backward records. An unbatched
    ``input (C_in, H, W)`` gives ``(C_out, H', W')``, as conv2d's.
    """
    op = "conv_transpose2d"
    s, p = _pair(stride, "stride", op, 1), _pair(padding, "padding", op, 0)
    d = _pair(dilation, "dilation", op, 1)
    op_ = _pair(output_padding, "output_padding", op, 0)
    if any(e >= max(st, di) for e, st, di in zip(op_, s, d)):
        raise ValueError(f"{op}: output_padding {op_} must be smaller than either the stride {s} or the "
                         f"dilation {d}")
    input = as_tensor(input)
    if input.ndim != 4:  # PyTorch's unbatched (C, H, W) input, as conv2d's
        return _unbatched(op, input, lambda xb: conv_transpose2d(xb, weight, bias, stride, padding, output_padding,
                                                                 groups, dilation))
    weight = as_tensor(weight, input)
    _check_4d(op, "weight", weight.data)
    _check_kernel(op, weight, 0)
    g = _check_groups(op, groups, input.shape[1], input.shape[1])
    if input.shape[1] != weight.shape[0]:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} has {input.shape[1]} channels but weight of "
                         f"shape {tuple(weight.shape)} expects {weight.shape[0]}")
    kernel = dilated_span(weight.shape[2:], d)
    out_hw = tuple((o - 1) * st - 2 * pd + k + e for o, st, pd, k, e in zip(input.shape[2:], s, p, kernel, op_))
    if min(out_hw) < 1:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} gives an output of size {out_hw} (kernel "
                         f"{tuple(weight.shape[2:])}, stride {s}, padding {p}, dilation {d}): too small")
    if all(e < st for e, st in zip(op_, s)):  # out_hw is a conv2d input size that maps back to input's size
        y = ConvTranspose2d(s, p, out_hw, None, d, g)(input, weight)
    else:  # output_padding >= stride (PyTorch allows it below the dilation): the whole unpadded output, cropped
        full = tuple((o - 1) * st + k for o, st, k in zip(input.shape[2:], s, kernel))
        y = ConvTranspose2d(s, (0, 0), full, None, d, g)(input, weight)[:, :, p[0]:p[0] + out_hw[0],
                                                                          p[1]:p[1] + out_hw[1]]
        short = tuple(o - n for o, n in zip(out_hw, y.shape[2:]))  # rows past the full output: zeros
        if any(short):
            from .functional import pad  # functional imports this module

            y = pad(y, (0, short[1], 0, short[0]))
    if bias is None:
        return y
    bias = as_tensor(bias, input)
    if tuple(bias.shape) != (weight.shape[1] * g,):
        raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} does not match weight {tuple(weight.shape)}"
                         + (f" with groups={g}" if g > 1 else ""))
    return y + bias.reshape(1, -1, 1, 1)


# --------------------------------------------------------------------------- pooling


def _pool_params(op, x, kernel_size, stride, padding, ceil_mode=False, dilation=1):
    _check_4d(op, "input", x.data)
    _check_flag(op, "ceil_mode", ceil_mode)
    kh, kw = _pair(kernel_size, "kernel_size", op, 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    dh, dw = _pair(dilation, "dilation", op, 1)
    if ph > kh // 2 or pw > kw // 2:  # PyTorch's rule: half the kernel size, whatever the dilation
        raise ValueError(f"{op}: padding ({ph}, {pw}) should be at most half of kernel_size ({kh}, {kw})")
    _pool_out_hw(op, x.shape, *dilated_span((kh, kw), (dh, dw)), sh, sw, ph, pw, ceil_mode)
    return (kh, kw), (sh, sw), (ph, pw)


def pool_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil_mode: bool = False) -> int:
    """Pooling output size along one axis, PyTorch's rule.

    Floor by default; with ``ceil_mode`` the size is rounded up, except that the last window must
    start inside the input or its left padding (a window starting in the right padding is dropped).
    """
    if not ceil_mode:
        return conv_output_size(size, kernel, stride, padding)
    return ceil_pool_size(size, kernel, stride, padding, padding)


def ceil_pool_size(size: int, kernel: int, stride: int, begin: int, end: int) -> int:
    """Ceil-mode output size with ``begin``/``end`` padding: rounded up, but the last window must start
    before the end padding (PyTorch's rule, and onnxruntime's for asymmetric ONNX pads)."""
    out = -(-(size + begin + end - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + begin else out


def _pool_out_hw(op: str, shape, kh, kw, sh, sw, ph, pw, ceil_mode: bool) -> tuple[int, int]:
    if not ceil_mode:
        return _out_hw(op, shape, kh, kw, sh, sw, ph, pw)
    h, w = shape[-2], shape[-1]
    oh, ow = pool_output_size(h, kh, sh, ph, True), pool_output_size(w, kw, sw, pw, True)
    if oh < 1 or ow < 1:  # ceil_mode accepts a window larger than the padded input, as PyTorch, if one fits
        raise ValueError(f"{op}: output size ({oh}, {ow}) is too small for input {tuple(shape)}, kernel ({kh}, {kw}), "
                         f"stride ({sh}, {sw}), padding ({ph}, {pw}), ceil_mode=True")
    return oh, ow


def _pool_extra(h: int, w: int, kh, kw, sh, sw, ph, pw, oh, ow) -> tuple[int, int]:
    """How far the last ceil-mode windows hang over the bottom/right padding (0 in floor mode)."""
    return max(0, (oh - 1) * sh + kh - h - 2 * ph), max(0, (ow - 1) * sw + kw - w - 2 * pw)


def _pad_pool(x, ph: int, pw: int, eh: int, ew: int, value: float = 0.0):
    """:func:`pad2d`, plus ``eh``/``ew`` more rows/columns of ``value`` at the bottom/right."""
    if not (eh or ew):
        return pad2d(x, ph, pw, value)
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph + eh, w + 2 * pw + ew), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _avg_divisor(h: int, w: int, kh, kw, sh, sw, ph, pw, oh, ow, eh, ew, count_include_pad: bool, xp, dtype):
    """The ``(OH, OW)`` divisor of every average-pooling window, or None when it is ``kh*kw`` everywhere.

    PyTorch's rule: a window is clipped to the padded input (ceil-mode windows hanging over its
    bottom/right edge lose that part); ``count_include_pad=False`` then counts only real pixels.
    """
    if not (eh or ew) and (count_include_pad or not (ph or pw)):
        return None

    def counts(size, k, s, p, o):
        start = s * xp.arange(o) - p
        end = xp.minimum(start + k, size + p)
        if count_include_pad:
            return end - start
        return xp.minimum(end, size) - xp.maximum(start, 0)

    return (counts(h, kh, sh, ph, oh)[:, None] * counts(w, kw, sw, pw, ow)[None, :]).astype(dtype)


class _Pool(Function):
    keeps_inputs = False  # pooling and its adjoints route gradients with saved argmax/shapes

    def __init__(self, kernel, stride, padding, ceil_mode: bool = False, dilation=(1, 1)):
        self.kernel, self.stride, self.padding, self.ceil_mode = kernel, stride, padding, bool(ceil_mode)
        self.dilation = tuple(dilation)  # kernel tap (i, j) sits at (i * dh, j * dw) in its window

    def span(self) -> tuple[int, int]:
        """The window's extent, ``dilation * (kernel - 1) + 1``: the kernel size the output size counts."""
        return dilated_span(self.kernel, self.dilation)

    def geometry(self, shape):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = _pool_out_hw(self.name, shape, *self.span(), sh, sw, ph, pw, self.ceil_mode)
        return kh, kw, sh, sw, ph, pw, oh, ow

    def extra(self, shape) -> tuple[int, int]:
        """Padding beyond ``padding`` at the bottom/right that ceil-mode windows reach ((0, 0) in floor mode)."""
        if not self.ceil_mode:
            return 0, 0
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(shape)
        return _pool_extra(shape[-2], shape[-1], *self.span(), sh, sw, ph, pw, oh, ow)

    def tap(self, k: int) -> tuple[int, int]:
        """Where kernel tap ``k`` (row-major) sits in its window."""
        i, j = divmod(k, self.kernel[1])
        return i * self.dilation[0], j * self.dilation[1]

    def attrs(self):
        a = {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding}
        if self.dilation != (1, 1):
            a["dilation"] = self.dilation
        if self.ceil_mode:
            a["ceil_mode"] = True
        return a


class MaxPool2d(_Pool):
    """Max over each window; padding acts as -inf.

    Tie rule: the gradient goes to the first maximum of the window in row-major order
    (kernel row, then column), as PyTorch's CPU kernel does; a window holding a NaN gives NaN
    and sends its gradient to its last NaN, and one whose real pixels are all -inf sends it to
    its first real pixel (not to the padding), as PyTorch does too. ``self.argmax`` keeps the
    winning kernel offset of every output pixel, ``(N, C, OH, OW)``.
    """

    def __init__(self, kernel, stride, padding, ceil_mode: bool = False, dilation=(1, 1), with_indices: bool = False):
        super().__init__(kernel, stride, padding, ceil_mode, dilation)
        self.with_indices = with_indices  # the caller wants the argmax even when no gradient will need it

    def forward(self, x):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        xp = get_array_module(x)
        xpad = _pad_pool(x, ph, pw, *self.extra(x.shape), -xp.inf)
        n, c = x.shape[:2]
        y = xp.empty((n, c, oh, ow), dtype=x.dtype)
        # else nothing to route back: max only
        with_arg = self.with_indices or (is_grad_enabled() and self.needs_input_grad[0])
        if with_arg:
            self.argmax = xp.empty((n, c, oh, ow), dtype=xp.uint8 if kh * kw < 256 else xp.int32)
        # a few images at a time: the phase planes stay small and in cache
        step = _images_per_chunk(max(1, xpad[:1].size) * x.dtype.itemsize)
        taps = [self.tap(k) for k in range(kh * kw)]
        for i in range(0, n, step):
            views = _unit_stride_offsets(xpad[i:i + step], taps, sh, sw, oh, ow)
            if with_arg:
                _max_argmax(views, y[i:i + step], self.argmax[i:i + step])
                _nan_argmax(views, y[i:i + step], self.argmax[i:i + step])
                if ph or pw:
                    _minus_inf_argmax(y[i:i + step], self.argmax[i:i + step], kw, sh, sw, ph, pw, self.dilation)
            else:
                _max_of(views, y[i:i + step])
        return y

    def indices(self, x_shape):
        """PyTorch's ``return_indices``: the flat index ``row * W + col`` into each input map of every
        window's maximum, int64 ``(N, C, OH, OW)`` (from ``self.argmax``, so the same tie rules)."""
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x_shape)
        xp = get_array_module(self.argmax)
        i, j = xp.divmod(self.argmax.astype(xp.int64), kw)
        rows = i * self.dilation[0] + (sh * xp.arange(oh) - ph)[:, None]
        cols = j * self.dilation[1] + (sw * xp.arange(ow) - pw)
        return rows * x_shape[-1] + cols

    def backward(self, gy):
        return MaxPool2dScatter(self, self.inputs[0].shape)(gy)


def _max_argmax(views, y, arg):
    """Max over the kh*kw offset views ``(N, C, OH, OW)`` into ``y``, index of the first maximum into ``arg``.

    Tie rule: the first maximum in row-major window order wins. Offset k replaces the running
    max only when strictly greater, so the winner is the *last* k that improved it: the argmax
    is ``max_k(k * improved_k)``, computed with cheap uint8 ops (no boolean-mask assignment).
    """
    xp = get_array_module(views[0])
    y[...] = views[0]
    arg[...] = 0
    better = xp.empty(y.shape, dtype=bool)
    tmp = xp.empty_like(arg)
    for k in range(1, len(views)):
        xp.greater(views[k], y, out=better)
        xp.maximum(y, views[k], out=y)
        xp.multiply(better, arg.dtype.type(k), out=tmp)
        xp.maximum(arg, tmp, out=arg)
    return y, arg


def _nan_argmax(views, y, arg):
    """Where a window holds a NaN (its max ``y`` is NaN), point ``arg`` at the window's last NaN.

    PyTorch's kernel takes a value when ``val > max or isnan(val)``, so the last NaN wins; the
    comparisons of :func:`_max_argmax` are false against NaN. A NaN-free chunk costs one max
    over the pooled output (NaN propagates through it).
    """
    xp = get_array_module(y)
    if y.size == 0 or not xp.isnan(y.max()):
        return
    for k, v in enumerate(views):
        xp.copyto(arg, arg.dtype.type(k), where=xp.isnan(v))


def _minus_inf_argmax(y, arg, kw, sh, sw, ph, pw, dilation=(1, 1)):
    """Where a window's max is -inf, point ``arg`` at its first tap inside the input.

    :func:`_max_argmax` then holds the window's first offset, which is padding for border windows;
    PyTorch starts each window at its first real pixel, so the gradient reaches the input.
    """
    xp = get_array_module(y)
    lost = y == -xp.inf
    if not lost.any():
        return
    oh, ow = y.shape[-2:]
    dh, dw = dilation  # first kernel row (column) inside the input: the first tap past the padding
    first_row = -(-xp.maximum(0, ph - sh * xp.arange(oh)) // dh)
    first_col = -(-xp.maximum(0, pw - sw * xp.arange(ow)) // dw)
    xp.copyto(arg, (first_row[:, None] * kw + first_col).astype(arg.dtype), where=lost)


def _unit_stride_offsets(xpad, taps, sh, sw, oh, ow):
    """The window-offset views ``(N, C, OH, OW)`` of ``xpad`` for the kernel ``taps`` (row, column
    offsets in the window, :meth:`_Pool.tap`), each with contiguous rows.

    The plain offset view ``xpad[..., i::sh, j::sw]`` makes every NumPy pass over it read with
    stride ``sw``. Splitting the input once into its phase planes ``xpad[..., a::sh, b::sw]``
    (one copy in all) turns every offset into an ordinary slice of a plane, so the kh*kw passes
    that follow read unit-stride rows (10-30% faster pooling). Stride 1 needs no planes.
    """
    if (sh, sw) == (1, 1):
        return [_offset(xpad, i, j, 1, 1, oh, ow) for i, j in taps]
    planes = {(a, b): xpad[:, :, a::sh, b::sw].copy() for a in sorted({i % sh for i, _ in taps})
              for b in sorted({j % sw for _, j in taps})}
    return [planes[(i % sh, j % sw)][:, :, i // sh:i // sh + oh, j // sw:j // sw + ow] for i, j in taps]


def _max_of(views, y):
    """Elementwise max of same-shaped views, into ``y``."""
    xp = get_array_module(views[0])
    if len(views) == 1:
        y[...] = views[0]
    else:
        xp.maximum(views[0], views[1], out=y)
    for v in views[2:]:
        xp.maximum(y, v, out=y)
    return y


class MaxPool2dScatter(_Pool):
    """Route ``gy (N, C, OH, OW)`` to each window's argmax: the gradient of max-pooling."""

    def __init__(self, pool: MaxPool2d, in_shape):
        super().__init__(pool.kernel, pool.stride, pool.padding, pool.ceil_mode, pool.dilation)
        self.argmax, self.in_shape = pool.argmax, tuple(in_shape)

    def forward(self, gy):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(self.in_shape)
        eh, ew = self.extra(self.in_shape)
        if ph == pw == eh == ew == 0 and sh >= kh and sw >= kw and self.dilation == (1, 1):
            return _scatter_disjoint(gy, self.argmax, self.in_shape, kh, kw, sh, sw)
        taps = [self.tap(k) for k in range(kh * kw)]
        return _scatter_general(gy, self.argmax, self.in_shape, taps, sh, sw, ph, pw, eh, ew)

    def backward(self, ggx):
        return MaxPool2dGather(self)(ggx)


def _scatter_general(gy, argmax, in_shape, taps, sh, sw, ph, pw, eh=0, ew=0):
    """Max-pool scatter for any geometry (overlapping windows, padding, dilation): accumulate per kernel tap.

    ``taps``: each kernel tap's (row, column) offset in its window (:meth:`_Pool.tap`).

    ``eh``/``ew``: extra bottom/right padding that ceil-mode windows hang over.

    As in :func:`_unit_stride_offsets`, the sums are accumulated in the phase planes of the
    padded gradient (``gx[..., a::sh, b::sw]``, where every offset is a plain slice with
    contiguous rows) and each plane is written into ``gx`` once at the end.
    """
    xp = get_array_module(gy)
    n, c, h, w = in_shape
    oh, ow = gy.shape[-2:]
    # every phase plane gets written: no zero fill needed
    covered = len({i % sh for i, _ in taps}) == sh and len({j % sw for _, j in taps}) == sw
    gx = (xp.empty if covered and (sh, sw) != (1, 1) else xp.zeros)((n, c, h + 2 * ph + eh, w + 2 * pw + ew),
                                                                    dtype=gy.dtype)
    planes = {} if (sh, sw) != (1, 1) else {(0, 0): gx}  # stride 1: gx is its only plane
    eq = xp.empty(gy.shape, dtype=bool)
    part = xp.empty_like(gy)
    for k, (i, j) in enumerate(taps):
        key = (i % sh, j % sw)
        if key not in planes:
            planes[key] = xp.zeros(gx[:, :, key[0]::sh, key[1]::sw].shape, dtype=gy.dtype)
        xp.equal(argmax, k, out=eq)
        xp.multiply(gy, eq, out=part)
        view = planes[key][:, :, i // sh:i // sh + oh, j // sw:j // sw + ow]
        xp.add(view, part, out=view)
    if (sh, sw) != (1, 1):
        for (a, b), plane in planes.items():
            gx[:, :, a::sh, b::sw] = plane
    return gx[:, :, ph:ph + h, pw:pw + w]


def _scatter_disjoint(gy, argmax, in_shape, kh, kw, sh, sw):
    """Max-pool scatter when windows do not overlap (stride >= kernel, no padding, e.g. 2x2/2).

    Every input pixel is in at most one window, so each offset's share is written straight into
    its strided slice of ``gx``: no accumulation, and no zero-fill when the windows tile the input.
    Same result as the general path (same argmax, same tie rule).
    """
    xp = get_array_module(gy)
    n, c, h, w = in_shape
    oh, ow = gy.shape[-2:]
    tiles = (sh, sw) == (kh, kw) and oh * sh == h and ow * sw == w
    gx = (xp.empty if tiles else xp.zeros)(in_shape, dtype=gy.dtype)
    step = _images_per_chunk(max(1, gy[:1].size) * gy.dtype.itemsize)  # keeps the mask temporary small
    eq = xp.empty((min(step, n), *gy.shape[1:]), dtype=bool)
    for i in range(0, n, step):
        z = min(n, i + step)
        for k in range(kh * kw):
            xp.equal(argmax[i:z], k, out=eq[:z - i])
            xp.multiply(gy[i:z], eq[:z - i], out=_offset(gx[i:z], k // kw, k % kw, sh, sw, oh, ow))
    return gx


class MaxPool2dGather(_Pool):
    """Pick each window's argmax element of ``x (N, C, H, W)``: the adjoint of the scatter."""

    def __init__(self, scatter: MaxPool2dScatter):
        super().__init__(scatter.kernel, scatter.stride, scatter.padding, scatter.ceil_mode, scatter.dilation)
        self.argmax, self.in_shape = scatter.argmax, scatter.in_shape

    def forward(self, x):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        xp = get_array_module(x)
        xpad = _pad_pool(x, ph, pw, *self.extra(x.shape))
        y = xp.zeros(self.argmax.shape, dtype=x.dtype)
        for k in range(kh * kw):
            s = _offset(xpad, *self.tap(k), sh, sw, oh, ow)
            xp.copyto(y, s, where=self.argmax == k)
        return y

    def backward(self, gy):
        return MaxPool2dScatter(self, self.in_shape)(gy)


class AvgPool2d(_Pool):
    """Mean over each window, as PyTorch: by default padding counts as zeros (``count_include_pad=True``).

    ``count_include_pad=False`` divides by the number of real pixels of each window; ceil-mode
    windows hanging over the bottom/right edge are clipped to the padded input (see :func:`_avg_divisor`).
    ``divisor_override``: divide every window's sum by this instead (PyTorch's).
    """

    def __init__(self, kernel, stride, padding, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel, stride, padding, ceil_mode)
        self.count_include_pad, self.divisor_override = bool(count_include_pad), divisor_override

    def scale(self, x_shape, xp, dtype):
        """What each window's sum is multiplied (a number) or divided (an ``(OH, OW)`` array) by."""
        if self.divisor_override:
            return dtype.type(1.0 / self.divisor_override), None
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x_shape)
        div = _avg_divisor(x_shape[2], x_shape[3], kh, kw, sh, sw, ph, pw, oh, ow, *self.extra(x_shape),
                           self.count_include_pad, xp, dtype)
        return (dtype.type(1.0 / (kh * kw)), None) if div is None else (None, div)

    def attrs(self):
        a = super().attrs()
        if not self.count_include_pad:
            a["count_include_pad"] = False
        if self.divisor_override:
            a["divisor_override"] = self.divisor_override
        return a

    def forward(self, x):
        x = _as_float(x)  # an average of ints is float32, as ints.mean() (not a wrapped, truncated int)
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        eh, ew = self.extra(x.shape)
        xpad = _pad_pool(x, ph, pw, eh, ew)
        y = _offset(xpad, 0, 0, sh, sw, oh, ow).copy()
        for k in range(1, kh * kw):
            y += _offset(xpad, k // kw, k % kw, sh, sw, oh, ow)
        factor, div = self.scale(x.shape, get_array_module(x), y.dtype)
        if div is None:
            y *= factor
        else:
            y /= div
        return y

    def backward(self, gy):
        return AvgPool2dAdjoint(self, self.inputs[0].shape)(gy)


class AvgPool2dAdjoint(_Pool):
    """Spread ``gy (N, C, OH, OW)`` evenly over each window: the gradient of avg-pooling."""

    def __init__(self, pool: AvgPool2d, in_shape):
        super().__init__(pool.kernel, pool.stride, pool.padding, pool.ceil_mode)
        self.pool, self.in_shape = pool, tuple(in_shape)

    def forward(self, gy):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(self.in_shape)
        eh, ew = self.extra(self.in_shape)
        xp = get_array_module(gy)
        n, c, h, w = self.in_shape
        factor, div = self.pool.scale(self.in_shape, xp, gy.dtype)
        share = gy * factor if div is None else gy / div
        cols = xp.broadcast_to(share[:, :, None, None], (*gy.shape[:2], kh, kw, oh, ow))
        if not (eh or ew):
            return _scatter_windows(cols, self.in_shape, kh, kw, sh, sw, ph, pw)
        img = xp.zeros((n, c, h + 2 * ph + eh, w + 2 * pw + ew), dtype=gy.dtype)
        _add_windows(img, cols, sh, sw)
        return img[:, :, ph:ph + h, pw:pw + w]

    def backward(self, ggx):
        p = self.pool
        return AvgPool2d(p.kernel, p.stride, p.padding, p.ceil_mode, p.count_include_pad, p.divisor_override)(ggx)

    def attrs(self):
        return self.pool.attrs()


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max-pooling of ``x: (N, C, H, W)`` (or unbatched ``(C, H, W)``); ``stride`` defaults to ``kernel_size``.

    PyTorch's arguments, in its order. ``dilation`` spaces the window's taps; ``ceil_mode``: round
    the output size up (PyTorch's rule, see :func:`pool_output_size`); the windows hanging over the
    bottom/right edge see only the pixels they cover. ``return_indices=True`` also returns each
    maximum's flat index ``row * W + col`` into its input map (int64, PyTorch's layout).
    """
    x = as_tensor(x)
    _check_flag("max_pool2d", "return_indices", return_indices)
    if x.ndim != 4:
        return _unbatched("max_pool2d", x, lambda xb: max_pool2d(xb, kernel_size, stride, padding, dilation, ceil_mode,
                                                                 return_indices))
    kernel, s, p = _pool_params("max_pool2d", x, kernel_size, stride, padding, ceil_mode, dilation)
    pool = MaxPool2d(kernel, s, p, ceil_mode, _pair(dilation, "dilation", "max_pool2d", 1), return_indices)
    y = pool(x)
    if not return_indices:
        return y
    return y, Tensor._wrap(pool.indices(x.shape))


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average-pooling of ``x: (N, C, H, W)`` (or unbatched ``(C, H, W)``), PyTorch's semantics.

    ``count_include_pad=True`` (default) counts padding zeros in the mean, ``False`` averages the
    real pixels only. ``ceil_mode`` rounds the output size up; a window hanging over the
    bottom/right edge is divided by its size clipped to the padded input (or by its real pixels).
    ``divisor_override``: a nonzero int every window's sum is divided by instead.
    """
    x = as_tensor(x)
    _check_flag("avg_pool2d", "count_include_pad", count_include_pad)
    if divisor_override is not None and (not isinstance(divisor_override, Integral) or
                                         isinstance(divisor_override, bool) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a nonzero int or None, got {divisor_override!r}")
    if x.ndim != 4:
        return _unbatched("avg_pool2d", x, lambda xb: avg_pool2d(xb, kernel_size, stride, padding, ceil_mode,
                                                                 count_include_pad, divisor_override))
    return AvgPool2d(*_pool_params("avg_pool2d", x, kernel_size, stride, padding, ceil_mode), ceil_mode,
                     count_include_pad, None if divisor_override is None else int(divisor_override))(x)


def _adaptive_weights(size: int, out: int, dtype):
    """``(out, size)``: row i averages PyTorch's adaptive window ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    i = np.arange(out)
    start, end = (i * size) // out, -(-(i + 1) * size // out)
    inside = (np.arange(size) >= start[:, None]) & (np.arange(size) < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average-pooling to a fixed ``output_size`` ``(OH, OW)`` whatever the input's ``(H, W)``, as PyTorch's
    (``None`` keeps that axis). Windows that tile the input evenly are a plain :func:`avg_pool2d`;
    otherwise the windows overlap or differ in size, and the op is two averaging matrices,
    ``A_h @ x @ A_w.T`` (each row of ``A`` spreads ``1/len`` over one window).
    """
    x = as_tensor(x)
    if x.ndim != 4:
        return _unbatched("adaptive_avg_pool2d", x, lambda xb: adaptive_avg_pool2d(xb, output_size))
    pair = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(pair) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    h, w = x.shape[2:]
    if h == 0 or w == 0:  # no window has a pixel to average (PyTorch refuses these too)
        raise ValueError(f"adaptive_avg_pool2d: input of shape {tuple(x.shape)} has an empty spatial axis")
    oh, ow = (size if o is None else _pair(o, "output_size", "adaptive_avg_pool2d", 0)[0]
              for o, size in zip(pair, (h, w)))
    if oh == 0 or ow == 0:  # an empty output, as PyTorch's (its gradient is zero)
        return (x.sum(axis=(2, 3), keepdims=True) * 0).broadcast_to((*x.shape[:2], oh, ow))
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    if x.dtype.kind != "f":  # an average of ints is float32, as avg_pool2d's
        x = x.astype(np.float32)
    rows, cols = (Tensor._wrap(like(_adaptive_weights(n, o, x.dtype), x.data)) for n, o in ((h, oh), (w, ow)))
    return rows @ (x @ cols.T)
