"""Convolution and pooling: im2col, col2im, conv2d, max_pool2d, avg_pool2d.

Convolution is im2col + one matmul (the book's chapter 7): every receptive field becomes a
row of ``col`` ``(N*OH*OW, C*kh*kw)`` and the filters a matrix ``(OC, C*kh*kw)``. im2col is a
strided *view* of the padded input copied once; col2im, its adjoint, adds the columns back
with one vectorized add per kernel offset.

Each op's backward is itself an op here (conv2d <-> conv_transpose2d <-> conv2d_weight_grad,
max-pool scatter <-> gather, avg-pool <-> its adjoint), so second derivatives work.
"""

from __future__ import annotations

from typing import Any

from .backend import get_array_module
from .tensor import Function, Tensor, as_tensor

IntPair = int | tuple[int, int]


def _pair(v: IntPair, what: str, op: str, minimum: int) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and p >= minimum for p in pair):
        raise ValueError(f"{op}: {what} must be an int >= {minimum} or a pair of them, got {v!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Floor output size of a convolution/pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


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
    xp = get_array_module(xp_)
    sn, sc, sy, sx = xp_.strides
    shape = (xp_.shape[0], xp_.shape[1], kh, kw, oh, ow)
    return xp.lib.stride_tricks.as_strided(xp_, shape, (sn, sc, sy, sx, sy * sh, sx * sw), writeable=False)


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
    xp = get_array_module(cols)
    n, c, h, w = input_shape
    oh, ow = cols.shape[-2:]
    img = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            _offset(img, i, j, sh, sw, oh, ow)[...] += cols[:, :, i, j]
    return img[:, :, ph:ph + h, pw:pw + w]


class Im2col(Function):
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
    return Im2col(kh, kw, _pair(stride, "stride", "im2col", 1), _pair(padding, "padding", "im2col", 0))(x)


def col2im(col: Any, input_shape, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """Differentiable col2im, the adjoint of :func:`im2col`; returns ``(N, C, H, W)``."""
    return Col2im(input_shape, kh, kw, _pair(stride, "stride", "col2im", 1),
                  _pair(padding, "padding", "col2im", 0))(as_tensor(col))


# --------------------------------------------------------------------------- conv2d


def _rows(gy):
    """``gy: (N, OC, OH, OW)`` -> ``(N*OH*OW, OC)``, matching im2col's row order."""
    n, oc = gy.shape[:2]
    return gy.transpose(0, 2, 3, 1).reshape(-1, oc)


class Conv2d(Function):
    """``y = x * W + b``: x (N, C, H, W), W (OC, C, kh, kw), b (OC,) -> y (N, OC, OH, OW)."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        _check_4d("conv2d", "input", x)
        _check_4d("conv2d", "weight", w)
        if x.shape[1] != w.shape[1]:
            raise ValueError(
                f"conv2d: input of shape {tuple(x.shape)} has {x.shape[1]} channels but weight of shape "
                f"{tuple(w.shape)} expects {w.shape[1]}"
            )
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"conv2d: bias of shape {tuple(b.shape)} does not match weight {tuple(w.shape)}")
        n, oc, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
        self.kernel_size = (kh, kw)
        oh, ow = _out_hw("conv2d", x.shape, kh, kw, *self.stride, *self.padding)
        col = im2col_array(x, kh, kw, self.stride, self.padding)
        y = col @ w.reshape(oc, -1).T
        if b is not None:
            y += b
        if self.needs_input_grad[1]:
            self.col = col  # reused by the weight gradient; freed after backward
        return y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = conv_transpose2d(gy, w, self.stride, self.padding, x.shape[2:]) if need[0] else None
        gw = Conv2dWeightGrad(w.shape, self.stride, self.padding, getattr(self, "col", None))(x, gy) \
            if need[1] else None
        gb = gy.sum(axis=(0, 2, 3)) if len(need) > 2 and need[2] else None
        return gx, gw, gb

    def attrs(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class ConvTranspose2d(Function):
    """Gradient of conv2d w.r.t. its input: ``gy (N, OC, OH, OW), W -> (N, C, H, W)``."""

    def __init__(self, stride, padding, in_hw):
        self.stride, self.padding, self.in_hw = stride, padding, tuple(in_hw)

    def forward(self, gy, w):
        oc, c, kh, kw = w.shape
        gcol = _rows(gy) @ w.reshape(oc, -1)
        return col2im_array(gcol, (gy.shape[0], c, *self.in_hw), kh, kw, self.stride, self.padding)

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = conv2d(ggx, w, None, self.stride, self.padding) if self.needs_input_grad[0] else None
        g_w = Conv2dWeightGrad(w.shape, self.stride, self.padding)(ggx, gy) if self.needs_input_grad[1] else None
        return g_gy, g_w

    def attrs(self):
        return {"stride": self.stride, "padding": self.padding}


class Conv2dWeightGrad(Function):
    """Gradient of conv2d w.r.t. its weight: ``x (N, C, H, W), gy (N, OC, OH, OW) -> (OC, C, kh, kw)``."""

    def __init__(self, w_shape, stride, padding, col=None):
        self.w_shape, self.stride, self.padding = tuple(w_shape), stride, padding
        if col is not None:
            self.col = col

    def forward(self, x, gy):
        oc, c, kh, kw = self.w_shape
        col = self.__dict__.pop("col", None)
        if col is None:
            col = im2col_array(x, kh, kw, self.stride, self.padding)
        return (_rows(gy).T @ col).reshape(self.w_shape)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = conv_transpose2d(gy, ggw, self.stride, self.padding, x.shape[2:]) if self.needs_input_grad[0] else None
        g_gy = conv2d(x, ggw, None, self.stride, self.padding) if self.needs_input_grad[1] else None
        return g_x, g_gy


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
           padding: IntPair = 0) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), weight (OC, C, kh, kw)."""
    s, p = _pair(stride, "stride", "conv2d", 1), _pair(padding, "padding", "conv2d", 0)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(s, p)(*args)


def conv_transpose2d(gy: Tensor, weight: Tensor, stride: IntPair, padding: IntPair, in_hw) -> Tensor:
    """The adjoint of conv2d in its input (used for backward); ``in_hw`` is the input's (H, W)."""
    s, p = _pair(stride, "stride", "conv_transpose2d", 1), _pair(padding, "padding", "conv_transpose2d", 0)
    return ConvTranspose2d(s, p, in_hw)(gy, weight)


# --------------------------------------------------------------------------- pooling


def _pool_params(op, x, kernel_size, stride, padding):
    _check_4d(op, "input", x.data)
    kh, kw = _pair(kernel_size, "kernel_size", op, 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{op}: padding ({ph}, {pw}) should be at most half of kernel_size ({kh}, {kw})")
    _out_hw(op, x.shape, kh, kw, sh, sw, ph, pw)
    return (kh, kw), (sh, sw), (ph, pw)


class _Pool(Function):
    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def geometry(self, shape):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = _out_hw(self.name, shape, kh, kw, sh, sw, ph, pw)
        return kh, kw, sh, sw, ph, pw, oh, ow

    def attrs(self):
        return {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding}


class MaxPool2d(_Pool):
    """Max over each window; padding acts as -inf.

    Tie rule: the gradient goes to the first maximum of the window in row-major order
    (kernel row, then column), as PyTorch's CPU kernel does. ``self.argmax`` keeps the
    winning kernel offset of every output pixel, ``(N, C, OH, OW)``.
    """

    def forward(self, x):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        xp = get_array_module(x)
        xpad = pad2d(x, ph, pw, -xp.inf)
        y, arg = None, None
        for k in range(kh * kw):
            s = _offset(xpad, k // kw, k % kw, sh, sw, oh, ow)
            if y is None:
                y, arg = s.copy(), xp.zeros(s.shape, dtype=xp.uint8 if kh * kw < 256 else xp.int32)
            else:
                better = s > y
                xp.copyto(y, s, where=better)
                arg[better] = k
        self.argmax = arg
        return y

    def backward(self, gy):
        return MaxPool2dScatter(self, self.inputs[0].shape)(gy)


class MaxPool2dScatter(_Pool):
    """Route ``gy (N, C, OH, OW)`` to each window's argmax: the gradient of max-pooling."""

    def __init__(self, pool: MaxPool2d, in_shape):
        super().__init__(pool.kernel, pool.stride, pool.padding)
        self.argmax, self.in_shape = pool.argmax, tuple(in_shape)

    def forward(self, gy):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(self.in_shape)
        xp = get_array_module(gy)
        n, c, h, w = self.in_shape
        gx = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
        zero = gy.dtype.type(0)
        for k in range(kh * kw):
            _offset(gx, k // kw, k % kw, sh, sw, oh, ow)[...] += xp.where(self.argmax == k, gy, zero)
        return gx[:, :, ph:ph + h, pw:pw + w]

    def backward(self, ggx):
        return MaxPool2dGather(self)(ggx)


class MaxPool2dGather(_Pool):
    """Pick each window's argmax element of ``x (N, C, H, W)``: the adjoint of the scatter."""

    def __init__(self, scatter: MaxPool2dScatter):
        super().__init__(scatter.kernel, scatter.stride, scatter.padding)
        self.argmax, self.in_shape = scatter.argmax, scatter.in_shape

    def forward(self, x):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        xp = get_array_module(x)
        xpad = pad2d(x, ph, pw)
        y = xp.zeros(self.argmax.shape, dtype=x.dtype)
        for k in range(kh * kw):
            s = _offset(xpad, k // kw, k % kw, sh, sw, oh, ow)
            xp.copyto(y, s, where=self.argmax == k)
        return y

    def backward(self, gy):
        return MaxPool2dScatter(self, self.in_shape)(gy)


class AvgPool2d(_Pool):
    """Mean over each window, padding counted as zeros (PyTorch's ``count_include_pad=True``)."""

    def forward(self, x):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(x.shape)
        xpad = pad2d(x, ph, pw)
        y = _offset(xpad, 0, 0, sh, sw, oh, ow).copy()
        for k in range(1, kh * kw):
            y += _offset(xpad, k // kw, k % kw, sh, sw, oh, ow)
        y *= y.dtype.type(1.0 / (kh * kw))
        return y

    def backward(self, gy):
        return AvgPool2dAdjoint(self.kernel, self.stride, self.padding, self.inputs[0].shape)(gy)


class AvgPool2dAdjoint(_Pool):
    """Spread ``gy (N, C, OH, OW)`` evenly over each window: the gradient of avg-pooling."""

    def __init__(self, kernel, stride, padding, in_shape):
        super().__init__(kernel, stride, padding)
        self.in_shape = tuple(in_shape)

    def forward(self, gy):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry(self.in_shape)
        xp = get_array_module(gy)
        share = gy * gy.dtype.type(1.0 / (kh * kw))
        cols = xp.broadcast_to(share[:, :, None, None], (*gy.shape[:2], kh, kw, oh, ow))
        return _scatter_windows(cols, self.in_shape, kh, kw, sh, sw, ph, pw)

    def backward(self, ggx):
        return AvgPool2d(self.kernel, self.stride, self.padding)(ggx)


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Max-pooling of ``x: (N, C, H, W)``; ``stride`` defaults to ``kernel_size``."""
    x = as_tensor(x)
    return MaxPool2d(*_pool_params("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Average-pooling of ``x: (N, C, H, W)``; padding zeros are counted in the mean."""
    x = as_tensor(x)
    return AvgPool2d(*_pool_params("avg_pool2d", x, kernel_size, stride, padding))(x)
