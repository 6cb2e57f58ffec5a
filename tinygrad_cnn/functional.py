"""Differentiable functions: activations, linear, softmax and losses, dropout, LRN, pad.

Convolution and pooling live in ``conv`` and are re-exported here, so
``import tinygrad_cnn.functional as F`` gives the whole toolbox, PyTorch-style.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from . import random as _random
from .backend import get_array_module, is_array, like
from .conv import adaptive_avg_pool2d, avg_pool2d, col2im, conv2d, conv_transpose2d, im2col, max_pool2d
from .tensor import (
    Function,
    Tensor,
    _as_float,
    _check_axis,
    _float_operands,
    _leaf_below,
    _py_scalar,
    _rebase,
    _values_needed,
    as_tensor,
    bump_version,
    exp,
    flatten,
    is_grad_enabled,
    log,
    matmul,
)

__all__ = [
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "im2col", "col2im",
    "relu", "sigmoid", "tanh", "exp", "log", "matmul", "linear", "softmax", "log_softmax",
    "softmax_cross_entropy", "cross_entropy", "nll_loss", "dropout", "local_response_norm", "pad", "flatten",
    "reshape", "transpose",
]


# --------------------------------------------------------------------------- activations


class ReLU(Function):
    """``max(x, 0)``; the mask ``y != 0`` is kept, packed 8 per byte, only when the op is recorded.

    The mask is ``x > 0``, except that a NaN passes its gradient on, as in PyTorch (whose backward
    zeroes the gradient where ``y <= 0``). ``inplace=True`` writes the result into ``x``'s array
    (see :func:`relu`).
    """

    keeps_inputs = False

    def __init__(self, inplace: bool = False):
        self.inplace = inplace

    def forward(self, x):
        xp = get_array_module(x)
        y = _max_zero(x, x if self.inplace else xp.empty(x.shape, dtype=x.dtype))
        if is_grad_enabled() and self.needs_input_grad[0]:
            self.bits, self.shape = xp.packbits(y != 0), y.shape  # 1 bit per element
        return y

    def backward(self, gy):
        xp = get_array_module(self.bits)
        n = gy.data.size
        return _mask_grad(self, gy, xp.unpackbits(self.bits)[:n].reshape(self.shape).view(bool))


def _max_zero(x, out):
    """``max(x, 0)`` into ``out`` (C-contiguous, ``x``'s shape), NaN kept.

    Taken against a row of zeros, not the scalar 0: NumPy's SIMD loop for ``maximum`` runs only
    when both operands are arrays (W1's 1.7M-value ReLU: 0.25 ms instead of 0.71 ms).
    """
    xp = get_array_module(x)
    if x.size == 0 or not (out.flags.c_contiguous and (x is out or x.flags.c_contiguous)):
        return xp.maximum(x, x.dtype.type(0), out=out)
    flat, dst = x.reshape(-1), out.reshape(-1)
    row = min(flat.size, 8192)
    whole = flat.size - flat.size % row
    zeros = xp.zeros(row, dtype=x.dtype)
    xp.maximum(flat[:whole].reshape(-1, row), zeros, out=dst[:whole].reshape(-1, row))
    xp.maximum(flat[whole:], zeros[:flat.size - whole], out=dst[whole:])
    return out


def _mask_grad(fn: Function, gy: Tensor, mask) -> Tensor:
    """``gy * mask``, written into ``gy`` when the backward pass says no one else holds it."""
    if fn.grad_owned and fn.grad_owned[0]:
        get_array_module(gy.data).multiply(gy.data, mask, out=gy.data)
        return gy
    return gy * Tensor._wrap(mask)


class Sigmoid(Function):
    """``1 / (1 + e^-x)``, PyTorch's formula: accurate to the last bit for tiny outputs too
    (``(tanh(x/2) + 1) / 2`` loses them: 0 instead of 2e-9 at x = -20 in float32, and so a zero
    gradient). Below x = -88 (float32) ``e^-x`` overflows to inf and ``1 / inf`` is the correct 0:
    that overflow is expected, not reported."""

    keeps_output = True
    reads_inputs = False

    def forward(self, x):
        xp = get_array_module(x)
        x = _as_float(x)
        e = xp.asarray(xp.negative(x))  # (asarray: NumPy gives a scalar for a 0-d input, and out= needs an array)
        with np.errstate(over="ignore"):
            xp.exp(e, out=e)
        e += x.dtype.type(1)
        return xp.divide(x.dtype.type(1), e, out=e)  # (NumPy's reciprocal is slower than this)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Tanh(Function):
    keeps_output = True
    reads_inputs = False

    def forward(self, x):
        return get_array_module(x).tanh(_as_float(x))

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``. ``inplace=True`` overwrites ``x`` and returns it, as PyTorch's ``relu_``.

    In place saves one activation-sized buffer (the usual ``conv -> relu``). It is refused where it
    would corrupt a gradient: on a leaf that requires grad, and on a tensor whose values a
    recorded op still needs for its backward (e.g. the output of sigmoid, or an input of matmul).
    """
    x = as_tensor(x)
    return _in_place("relu", x, ReLU(inplace=True)) if inplace else ReLU()(x)


def _in_place(op: str, x: Tensor, fn: Function) -> Tensor:
    """Run ``fn``, which writes its result into its input's array, on ``x``, and make ``x`` its output.

    Refused where it would corrupt a gradient: on a leaf that requires grad, and on a tensor whose
    values a recorded op still needs for its backward (e.g. the output of sigmoid, or an input of matmul).
    """
    if is_grad_enabled():
        if x.requires_grad and _leaf_below(x):
            raise RuntimeError(f"{op}(inplace=True): a leaf tensor that requires grad (or a view of one) cannot be "
                               "modified in place")
        needed = _values_needed(x)
        if needed is not None:
            what = "this tensor" if needed is x else "the tensor this one is a view of"
            raise RuntimeError(f"{op}(inplace=True): the values of {what} are needed to compute a gradient "
                               f"(it is the output of {needed.creator.name} or the input of a recorded op that "
                               f"keeps it); use {op}(x)")
        if x.requires_grad:
            bump_version(x, recorded=True)
            return _rebase(x, fn(x))
    bump_version(x)
    fn(x)
    return x


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    return Tanh()(as_tensor(x))


# --------------------------------------------------------------------------- linear


class Linear(Function):
    """``y = x @ W.T + b``: x (..., in), W (out, in), b (out,) -> (..., out)."""

    def reads(self):
        need = self.needs_input_grad
        return (need[1], need[0], False, False)[:len(need) + 1]

    def forward(self, x, w, b=None):
        if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"linear: input of shape {tuple(x.shape)} does not match weight of shape {tuple(w.shape)} "
                f"(expected input (..., {w.shape[1] if w.ndim == 2 else '?'}))"
            )
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"linear: bias of shape {tuple(b.shape)} does not match weight {tuple(w.shape)}")
        x, w, b = _float_operands(x, w, b)
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = gy @ w if need[0] else None
        gw = None
        rows = int(np.prod(x.shape[:-1]))  # not reshape(-1, ...): a 0-wide input or output is allowed
        if need[1]:
            x2, g2 = x.reshape(rows, x.shape[-1]), gy.reshape(rows, gy.shape[-1])
            gw = g2.T @ x2
        gb = gy.reshape(rows, gy.shape[-1]).sum(axis=0) if len(need) > 2 and need[2] else None
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` (PyTorch layout: weight is (out, in))."""
    args = (x, weight) if bias is None else (x, weight, bias)
    return Linear()(*args)


# --------------------------------------------------------------------------- softmax family


class Softmax(Function):
    keeps_output = True
    reads_inputs = False

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        x = _as_float(x)
        if x.size == 0:  # an empty axis has no max; an empty result either way
            return x.copy()
        with np.errstate(over="ignore"):  # finite logits over 3.4e38 apart (float32): -inf, whose exp is the exact 0
            e = xp.asarray(xp.subtract(x, x.max(axis=self.axis, keepdims=True)))  # (0-d: a scalar otherwise)
        xp.exp(e, out=e)
        e /= e.sum(axis=self.axis, keepdims=True)
        return e

    def backward(self, gy):
        y = self.output()
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))

    def attrs(self):
        return {"axis": self.axis}


class LogSoftmax(Function):
    keeps_output = True
    reads_inputs = False

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, x):
        return _log_softmax(x, self.axis)

    def backward(self, gy):
        return gy - exp(self.output()) * gy.sum(axis=self.axis, keepdims=True)

    def attrs(self):
        return {"axis": self.axis}


def _log_softmax(x, axis):
    """``(x - max) - log(sum(exp(x - max)))``: subtracting the max first keeps the small log term
    that ``x - (max + log(...))`` rounds away for large logits (as PyTorch computes it)."""
    xp = get_array_module(x)
    x = _as_float(x)
    if x.size == 0:  # an empty axis has no max; an empty result either way
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def _axis_or_dim(op: str, axis: int, dim: int | None) -> int:
    """PyTorch's ``dim=`` keyword, accepted alongside ``axis`` (positional calls mean the same in both)."""
    if dim is None:
        return axis
    if axis != -1 and axis != dim:
        raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
    return dim


def softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis`` (or PyTorch's ``dim=``)."""
    x = as_tensor(x)
    return Softmax(_check_axis("softmax", _axis_or_dim("softmax", axis, dim), x.ndim))(x)


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """``log(softmax(x))`` along ``axis`` (or PyTorch's ``dim=``), computed stably."""
    x = as_tensor(x)
    return LogSoftmax(_check_axis("log_softmax", _axis_or_dim("log_softmax", axis, dim), x.ndim))(x)


class SoftmaxCrossEntropy(Function):
    """Mean over the batch of ``-log softmax(logits)[target]``, fused and exact.

    logits (N, K); target int labels (N,) or one-hot / probabilities (N, K). Backward is
    ``(softmax(logits) - onehot) / N`` without ever forming ``log(p + 1e-7)``.
    """

    def __init__(self, target):
        self.target = target

    def forward(self, x):
        x = _as_float(x)  # int logits: a float32 loss (not one truncated to the logits' int dtype)
        xp = get_array_module(x)
        n = x.shape[0]
        logp = _log_softmax(x, 1)
        t = self.target
        if t.ndim == 1:
            loss = -logp[xp.arange(n), t].sum()
        else:
            loss = -(logp * t).sum()
        self.p = xp.exp(logp)
        return xp.asarray(loss / n if n else xp.nan, dtype=x.dtype)  # an empty batch's mean is NaN, as in PyTorch

    def backward(self, gy):
        logits = self.inputs[0]
        xp = get_array_module(logits.data)
        n, k = logits.shape
        t = self.target
        if t.ndim == 1:
            onehot = xp.zeros((n, k), dtype=logits.dtype)
            onehot[xp.arange(n), t] = 1
            mass = None
        else:
            onehot = t.astype(logits.dtype, copy=False)
            mass = onehot.sum(axis=1, keepdims=True)
        # With create_graph the softmax is recomputed as an op so it can be differentiated again.
        p = softmax(logits, 1) if is_grad_enabled() else Tensor._wrap(self.p)
        if mass is not None:
            p = p * Tensor._wrap(mass)
        return (p - Tensor._wrap(onehot)) * (gy * (1.0 / max(n, 1)))


def _check_target(logits: Tensor, target: Any, op: str = "softmax_cross_entropy", ignore_index: int = -100):
    if logits.ndim != 2:
        raise ValueError(f"{op}: logits must be (N, K), got shape {logits.shape}")
    t = target.data if isinstance(target, Tensor) else target if is_array(target) else np.asarray(target)
    if t.dtype.kind not in "iufb":  # None, strings, objects: np.asarray makes them 0-d or odd arrays
        raise TypeError(f"{op}: target must be an int array or Tensor of labels (N,) or a one-hot (N, K), got "
                        f"{type(target).__name__} of dtype {t.dtype}")
    n, k = logits.shape
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise ValueError(f"{op}: label array must be integer, got dtype {t.dtype}")
        if t.shape[0] != n:
            raise ValueError(f"{op}: logits {logits.shape} and labels {t.shape} differ in batch size")
        out = ((t < 0) | (t >= k)) & (t != ignore_index)
        if t.size and out.any():
            raise ValueError(f"{op}: label {int(t[out][0])} out of range [0, {k}) for logits {logits.shape}")
    elif t.ndim == 2:
        if t.shape != (n, k):
            raise ValueError(f"{op}: one-hot target {t.shape} does not match logits {logits.shape}")
        dtype = logits.dtype if logits.dtype.kind == "f" else np.float32
        if t.dtype != dtype:  # the loss computes in the logits' dtype: a float64 target keeps none of float64
            t = t.astype(dtype)
    else:
        raise ValueError(f"{op}: target must be (N,) labels or (N, K) one-hot, got {t.shape}")
    return like(t, logits.data)


_REDUCTIONS = ("mean", "sum", "none")


def _reduce_loss(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return per_sample.sum()
    return per_sample if reduction == "none" else per_sample.mean()


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, got {reduction!r}")


def _class_weight(op: str, weight: Any, logits: Tensor):
    """PyTorch's ``weight``: a rescaling per class, ``(K,)``, a constant here as there (no gradient)."""
    if weight is None:
        return None
    k, dtype = logits.shape[1], logits.dtype
    w = weight.data if isinstance(weight, Tensor) else weight if is_array(weight) else np.asarray(weight)
    if w.dtype.kind not in "iuf" or w.shape != (k,):
        raise ValueError(f"{op}: weight must be a float array of one value per class, shape ({k},), got "
                         f"{w.dtype} of shape {w.shape}")
    return like(w, logits.data).astype(dtype if np.dtype(dtype).kind == "f" else np.float32, copy=False)


def _check_loss_options(op: str, ignore_index: Any, label_smoothing: Any) -> float:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{op}: ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating, np.integer)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _nll_per_sample(logp: Tensor, t) -> Tensor:
    """``-logp[i, t[i]]`` for labels ``t (N,)``, ``-sum(logp * t, 1)`` for one-hot / probabilities ``(N, K)``."""
    if t.ndim == 1:
        return -logp[get_array_module(t).arange(t.shape[0]), t]
    return -(logp * Tensor._wrap(t)).sum(axis=1)  # _check_target gave t the logits' dtype


def _weighted_nll(logp: Tensor, t, weight, ignore_index: int, reduction: str, smoothing: float = 0.0) -> Tensor:
    """PyTorch's ``nll_loss`` / ``cross_entropy`` with class ``weight``, ``ignore_index`` and ``label_smoothing``.

    Labels ``t (N,)``: sample i costs ``-w[t_i] * logp[i, t_i]`` (0 where ``t_i == ignore_index``); the
    mean divides by ``sum of w[t_i]`` over the kept samples. Smoothing mixes in ``-sum_c w[c] logp[i, c] / K``
    with weight ``smoothing``, divided by the same sum. Probabilities ``t (N, K)``: smoothed to
    ``t (1 - smoothing) + smoothing / K``, weighted per class, the mean over N.
    """
    n, k = logp.shape
    xp = get_array_module(logp.data)
    if t.ndim == 2:
        if smoothing:
            t = t * t.dtype.type(1 - smoothing) + t.dtype.type(smoothing / k)
        per = -(logp * Tensor._wrap(t if weight is None else t * weight)).sum(axis=1)
        return _reduce_loss(per, reduction)
    keep = t != ignore_index
    safe = xp.where(keep, t, 0)
    wy = keep.astype(logp.dtype) if weight is None else weight[safe] * keep
    per = -logp[xp.arange(n), safe] * Tensor._wrap(wy)
    smooth = None
    if smoothing:
        smooth = -(logp if weight is None else logp * Tensor._wrap(weight)).sum(axis=1) * Tensor._wrap(
            keep.astype(logp.dtype))
    if reduction == "none":
        return per if smooth is None else per * (1 - smoothing) + smooth * (smoothing / k)
    total = float(wy.sum())
    if reduction == "mean" and not keep.any():  # every sample ignored: NaN with zero gradients, as PyTorch
        return per.sum() * 0.0 + Tensor._wrap(xp.asarray(xp.nan, dtype=per.dtype))
    # weights summing to 0 over the kept targets: a NaN loss with NaN gradients, as PyTorch's 0 / 0
    scale = 1.0 if reduction == "sum" else (1.0 / total if total else float("nan"))
    loss = per.sum() * scale
    return loss if smooth is None else loss * (1 - smoothing) + smooth.sum() * (scale * smoothing / k)


def softmax_cross_entropy(logits: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,
                          reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of ``logits (N, K)`` against labels ``(N,)`` or one-hot / probabilities ``(N, K)``; 0-d.

    PyTorch's ``F.cross_entropy`` options: ``weight (K,)`` rescales each class, labels equal to
    ``ignore_index`` count for nothing (not even in the mean's divisor), ``label_smoothing`` mixes
    the target with the uniform distribution, ``reduction`` is ``'mean'`` (default), ``'sum'`` or
    ``'none'`` (per-sample losses ``(N,)``). The plain mean is one fused op.
    """
    _check_reduction("cross_entropy", reduction)
    smoothing = _check_loss_options("cross_entropy", ignore_index, label_smoothing)
    logits = as_tensor(logits)
    t = _check_target(logits, target, ignore_index=ignore_index)
    if t.ndim == 2 and ignore_index != -100:
        raise ValueError(f"cross_entropy: ignore_index={ignore_index} applies to class labels, not to "
                         f"probability / one-hot targets (PyTorch refuses it too)")
    w = _class_weight("cross_entropy", weight, logits)
    ignored = t.ndim == 1 and bool((t == ignore_index).any())
    if w is None and not smoothing and not ignored:
        if reduction == "mean":
            return SoftmaxCrossEntropy(t)(logits)
        return _reduce_loss(_nll_per_sample(log_softmax(logits, 1), t), reduction)
    return _weighted_nll(log_softmax(logits, 1), t, w, ignore_index, reduction, smoothing)


cross_entropy = softmax_cross_entropy


def nll_loss(input: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,  # noqa: A002 - torch's
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input (N, K)`` (e.g. ``log_softmax(x, dim=1)``)
    at int labels ``target (N,)``, as PyTorch's ``F.nll_loss``: ``-weight[t] * input[i, t]`` with
    ``t = target[i]``, averaged over the weights (``reduction='mean'``), summed (``'sum'``) or per
    sample (``'none'``); labels equal to ``ignore_index`` count for nothing."""
    _check_reduction("nll_loss", reduction)
    _check_loss_options("nll_loss", ignore_index, 0.0)
    input = as_tensor(input)
    t = _check_target(input, target, "nll_loss", ignore_index)
    if t.ndim != 1:
        raise ValueError(f"nll_loss: target must be int labels (N,), got shape {t.shape}")
    w = _class_weight("nll_loss", weight, input)
    if w is None and not (t == ignore_index).any():
        return _reduce_loss(_nll_per_sample(input, t), reduction)
    return _weighted_nll(input, t, w, ignore_index, reduction)


# --------------------------------------------------------------------------- dropout


class Dropout(Function):
    """Inverted dropout: keep with probability ``1 - p`` and scale by ``1 / (1 - p)``."""

    keeps_inputs = False

    def __init__(self, p: float, inplace: bool = False):
        self.p, self.inplace = p, inplace

    def forward(self, x):
        x = _as_float(x)  # int input: float32, scaled by 1 / (1 - p) (not truncated to ints)
        xp = get_array_module(x)
        if self.p >= 1.0:
            self.mask = xp.zeros_like(x)
        else:
            keep = _random.get_rng().random(x.shape, dtype=np.float32) >= self.p
            self.mask = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return xp.multiply(x, self.mask, out=x) if self.inplace else x * self.mask

    def backward(self, gy):
        return _mask_grad(self, gy, self.mask)

    def attrs(self):
        return {"p": self.p}


def _check_probability(op: str, p: Any) -> float:
    """``p`` as a Python number if it is one in ``[0, 1]``, else an error naming ``op``."""
    p = _py_scalar(p)
    if not isinstance(p, Real):
        raise TypeError(f"{op}: probability must be a number in [0, 1], got {type(p).__name__} {p!r:.40}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability must be in [0, 1], got {p}")
    return p


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` (a fresh mask per call); identity when not training.
    ``inplace=True`` writes into ``x`` and returns it (refused where that would corrupt a gradient, as relu's)."""
    p = _check_probability("dropout", p)
    x = as_tensor(x)
    if not training or p == 0.0:
        return x
    if not inplace:
        return Dropout(p)(x)
    if x.dtype.kind != "f":  # the scaled values are not integers
        raise TypeError(f"dropout(inplace=True): needs a float tensor to write into, got {x.dtype}")
    return _in_place("dropout", x, Dropout(p, inplace=True))


# --------------------------------------------------------------------------- local response norm


def _channel_window_sum(a, before: int, after: int):
    """``out[:, c] = sum(a[:, c-before : c+after+1])`` with zeros outside (arrays, axis 1).

    One copy and one add per window offset, each over whole channel blocks (no padded copy).
    """
    c = a.shape[1]
    out = a.copy()
    for i in range(1, min(before, c - 1) + 1):  # channel c gets a[:, c - i]
        out[:, i:] += a[:, :c - i]
    for i in range(1, min(after, c - 1) + 1):  # channel c gets a[:, c + i]
        out[:, :c - i] += a[:, i:]
    return out


class ChannelWindowSum(Function):
    """Sum over a sliding window of channels; its adjoint is the mirrored window."""

    keeps_inputs = False

    def __init__(self, before: int, after: int):
        self.before, self.after = before, after

    def forward(self, a):
        return _channel_window_sum(a, self.before, self.after)

    def backward(self, gy):
        return ChannelWindowSum(self.after, self.before)(gy)


class LocalResponseNorm(Function):
    """``y = x / (k + alpha/size * sum_{window} x^2) ** beta`` over channels (PyTorch's formula).

    The window of channel c is ``[c - size//2, c + (size-1)//2]``, zeros beyond the edges.
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.window = (size // 2, (size - 1) // 2)

    def forward(self, x):
        xp = get_array_module(x)
        x = _as_float(x)  # int input: float32 (int alpha / size would be 0 and x ** -beta 1)
        dt = x.dtype.type
        d = _channel_window_sum(x * x, *self.window)
        d *= dt(self.alpha / self.size)
        d += dt(self.k)
        dpow = xp.power(d, dt(-self.beta))
        self.d, self.dpow = d, dpow  # both read by backward: the power is the costly part, done once
        return x * dpow

    def backward(self, gy):
        x = self.inputs[0]
        if is_grad_enabled():  # create_graph: recompute as ops so the result can be differentiated again
            d = ChannelWindowSum(*self.window)(x * x) * (self.alpha / self.size) + self.k
            dpow = d ** (-self.beta)
            inner = ChannelWindowSum(self.window[1], self.window[0])(gy * x * dpow / d)
            return gy * dpow - x * inner * (2.0 * self.alpha * self.beta / self.size)
        # the same formula on arrays, with the forward's d and d ** -beta: no second power
        g, x, d, dpow = gy.data, _as_float(x.data), self.d, self.dpow
        dt = d.dtype.type
        u = g * x
        u *= dpow
        u /= d
        inner = _channel_window_sum(u, self.window[1], self.window[0])
        inner *= x
        inner *= dt(2.0 * self.alpha * self.beta / self.size)
        gx = g * dpow
        gx -= inner
        return Tensor._wrap(gx)

    def attrs(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


def local_response_norm(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """Local response normalization across channels of ``x: (N, C, ...)`` (AlexNet, PyTorch semantics)."""
    x = as_tensor(x)
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: input must be (N, C, ...) with >= 3 dims, got {x.shape}")
    if isinstance(size, bool) or not isinstance(size, Integral):
        raise TypeError(f"local_response_norm: size must be an int, got {type(size).__name__} {size!r:.40}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be >= 1, got {size}")
    size = int(size)
    return LocalResponseNorm(size, *map(_py_scalar, (alpha, beta, k)))(x)


# --------------------------------------------------------------------------- pad and shape


class Pad(Function):
    """Constant padding; ``widths`` is one ``(before, after)`` pair per axis."""

    keeps_inputs = False

    def __init__(self, widths, value: float = 0.0):
        self.widths, self.value = tuple(widths), value

    def forward(self, x):
        return get_array_module(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(b, gy.shape[i] - a) for i, (b, a) in enumerate(self.widths))]

    def attrs(self):
        return {"pads": self.widths, "value": self.value}


def _pad_source(size: int, before: int, after: int, mode: str):
    """Which input position each of the ``before + size + after`` output positions copies, one axis."""
    pos = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    if mode == "circular":
        return pos % size
    period = 2 * (size - 1)  # reflect: mirror at the edges without repeating them (NumPy's 'reflect')
    pos = np.abs(pos) % period if period else np.zeros_like(pos)
    return np.where(pos >= size, period - pos, pos)


class PadMode(Function):
    """``reflect``/``replicate``/``circular`` padding: a gather along each padded axis."""

    keeps_inputs = False

    def __init__(self, widths, mode: str):
        self.widths, self.mode = tuple(widths), mode

    def sources(self, shape):
        return [None if w == (0, 0) else _pad_source(n, *w, self.mode) for n, w in zip(shape, self.widths)]

    def forward(self, x):
        self.in_shape = x.shape
        for axis, src in enumerate(self.sources(x.shape)):
            if src is not None:
                x = x.take(like(src, x), axis=axis)  # (slow only on the few border positions: one gather per axis)
        return x

    def backward(self, gy):
        return PadModeAdjoint(self)(gy)

    def attrs(self):
        return {"pads": self.widths, "mode": self.mode}


class PadModeAdjoint(Function):
    """Gradient of :class:`PadMode`: every output position's gradient added back to the input position it copied."""

    keeps_inputs = False

    def __init__(self, pad: PadMode):
        self.pad = pad

    def forward(self, gy):
        xp = get_array_module(gy)
        for axis, src in reversed(list(enumerate(self.pad.sources(self.pad.in_shape)))):
            if src is None:
                continue
            before, size = self.pad.widths[axis][0], self.pad.in_shape[axis]
            g = gy.take(xp.arange(before, before + size), axis=axis)  # the copy of each position itself
            border = np.r_[0:before, before + size:len(src)]
            lead = (slice(None),) * axis
            xp.add.at(g, (*lead, like(src[border], gy)), gy.take(like(border, gy), axis=axis))
            gy = g
        return gy

    def backward(self, ggx):
        return PadMode(self.pad.widths, self.pad.mode)(ggx)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Tensor, pad: tuple[int, ...], mode: str = "constant", value: float | None = None) -> Tensor:  # noqa: A002
    """PyTorch's ``F.pad``: ``pad = (left, right, top, bottom, ...)`` from the last axis backwards.

    ``mode``: ``'constant'`` (with ``value``, default 0), ``'reflect'`` (mirror without repeating
    the edge; each pad smaller than its axis), ``'replicate'`` (repeat the edge) or ``'circular'``
    (wrap around; each pad at most its axis). Any axes may be padded in every mode (PyTorch limits
    the non-constant ones to the last three of a batched input).
    """
    x = as_tensor(input)
    if not isinstance(pad, (tuple, list)) or not all(isinstance(p, Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: padding must be a tuple of ints (left, right, top, bottom, ...), got {pad!r:.80}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(map(repr, _PAD_MODES))}, got {mode!r:.40}")
    if value is not None and not isinstance(_py_scalar(value), Real):
        raise TypeError(f"pad: value must be a number, got {type(value).__name__} {value!r:.40}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {pad} does not fit a tensor of shape {x.shape}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode == "constant":
        return Pad(widths, 0.0 if value is None else _py_scalar(value))(x)
    if value not in (None, 0):
        raise ValueError(f"pad: value={value!r} applies to mode='constant' only, not {mode!r}")
    for n, (b, a) in zip(x.shape, widths):
        limit = n - 1 if mode == "reflect" else n if mode == "circular" else (1 << 62 if n else 0)
        if (b or a) and max(b, a) > limit:
            raise ValueError(f"pad: {mode} padding {(b, a)} is too large for an axis of size {n} of input shape "
                             f"{x.shape} (at most {limit})")
    return PadMode(widths, mode)(x)


def reshape(x: Tensor, *shape) -> Tensor:
    return as_tensor(x).reshape(*shape)


def transpose(x: Tensor, *axes) -> Tensor:
    return as_tensor(x).transpose(*axes)

