"""Layers: thin Modules around the functional ops, with PyTorch names, layouts and init."""

from __future__ import annotations

import math
from collections import OrderedDict
from numbers import Integral
from typing import Any

import numpy as np

from .. import functional as F
from ..conv import _check_groups, _pair, conv_padding, dilated_span
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _size(layer: str, what: str, v: Any) -> int:
    """A layer's channel/feature count: an int >= 0 (PyTorch refuses negative sizes too, less clearly)."""
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{layer}: {what} must be an int, got {type(v).__name__} {v!r:.40}")
    if v < 0:
        raise ValueError(f"{layer}: {what} must be >= 0, got {v}")
    return int(v)


def _naming_layer(layer: Module, op: Any, *args: Any) -> Any:
    """``op(*args)``; a ValueError (a shape that does not fit, ...) is raised again with the layer in front
    of the op's own message: ``Linear(in_features=400, ...): linear: input of shape (1, 576) does not match
    weight of shape (120, 400)``. Free when nothing is raised."""
    try:
        return op(*args)
    except ValueError as e:
        try:
            named = type(e)(f"{type(layer).__name__}({layer.extra_repr()}): {e}")
        except Exception:  # an exception type that cannot be rebuilt from a message: keep it as it is
            raise e from None
        raise named from None


def _reset_like_pytorch(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default: kaiming_uniform_(a=sqrt(5)) weights, U(+-1/sqrt(fan_in)) bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def _conv_options(layer: str, in_channels: int, out_channels: int, dilation: Any, groups: Any,
                  padding_mode: Any) -> tuple[tuple[int, int], int]:
    """Conv2d/ConvTranspose2d's ``dilation``, ``groups`` and ``padding_mode``, checked as PyTorch does."""
    d = _pair(dilation, "dilation", layer, 1)
    g = _check_groups(layer, groups, in_channels, out_channels, ("in_channels", "out_channels"))
    if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        raise ValueError(f"{layer}: padding_mode must be one of 'zeros', 'reflect', 'replicate' or 'circular', "
                         f"got {padding_mode!r}")
    if padding_mode != "zeros" and layer == "ConvTranspose2d":
        raise ValueError(f"{layer}: only padding_mode='zeros' is supported, as in PyTorch, got {padding_mode!r}")
    return d, g


def _conv_repr(m: Module, extra: str = "") -> str:
    """PyTorch's repr: the options that differ from their defaults."""
    s = f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}"
    if m.padding != (0, 0):
        s += f", padding={m.padding}"  # a string shows as padding=same, as PyTorch
    if m.dilation != (1, 1):
        s += f", dilation={m.dilation}"
    s += extra
    if m.groups != 1:
        s += f", groups={m.groups}"
    s += "" if m.bias is not None else ", bias=False"
    return s + ("" if m.padding_mode == "zeros" else f", padding_mode={m.padding_mode}")


class Conv2d(Module):
    """2-D convolution, weight ``(out_channels, in_channels / groups, kh, kw)``: x (N, C, H, W) -> (N, OC, OH, OW).

    PyTorch's arguments, in its order (a bool sixth argument is ``bias``, as in API.md's short form
    ``Conv2d(in, out, kernel_size, stride, padding, bias)``). ``padding``: an int, an ``(h, w)`` pair, ``'valid'`` or
    ``'same'`` (stride 1 only, as PyTorch; the string is kept as ``self.padding``). ``padding_mode``:
    ``'zeros'``, or ``'reflect'``/``'replicate'``/``'circular'`` (an explicit ``F.pad`` first).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = np.float32):
        super().__init__()
        if isinstance(dilation, (bool, np.bool_)) and groups == 1 and bias is True:
            dilation, bias = 1, dilation  # API.md's short form Conv2d(in, out, k, stride, padding, bias): a bool
            # cannot be a dilation, so the sixth argument is read as bias there
        self.in_channels, self.out_channels = _size("Conv2d", "in_channels", in_channels), \
            _size("Conv2d", "out_channels", out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.dilation, self.groups = _conv_options("Conv2d", in_channels, out_channels, dilation, groups,
                                                   padding_mode)
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            try:  # PyTorch checks at construction
                conv_padding("Conv2d", padding, self.stride, dilated_span(self.kernel_size, self.dilation))
            except ValueError as e:
                raise ValueError(str(e)) from None  # nn.Conv2d raises ValueError in PyTorch (F.conv2d RuntimeError)
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = _pair(padding, "padding", "Conv2d", 0)
        self.weight = Parameter(np.empty((out_channels, in_channels // self.groups, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if _check_bias("Conv2d", bias) else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_like_pytorch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros":  # pad explicitly in that mode, then a convolution without padding
            return _naming_layer(self, self._mode_padded_conv, x)
        return _naming_layer(self, F.conv2d, x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             self.groups)

    def _mode_padded_conv(self, x: Tensor) -> Tensor:
        span = dilated_span(self.kernel_size, self.dilation)
        (ph, pw), (eh, ew) = conv_padding("Conv2d", self.padding, self.stride, span)
        x = F.pad(x, (pw, pw + ew, ph, ph + eh), self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return _conv_repr(self)


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (a learned upsampling), weight ``(in_channels, out_channels / groups, kh, kw)``:
    x (N, C, H, W) -> (N, OC, (H-1)*stride - 2*padding + dilation*(kh-1) + 1 + output_padding, ...), as PyTorch's
    (its arguments in its order; ``padding_mode`` only ``'zeros'``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, int] = 1, padding_mode: str = "zeros", dtype: Any = np.float32):
        super().__init__()
        self.in_channels, self.out_channels = _size("ConvTranspose2d", "in_channels", in_channels), \
            _size("ConvTranspose2d", "out_channels", out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "ConvTranspose2d", 1)
        self.stride = _pair(stride, "stride", "ConvTranspose2d", 1)
        self.padding = _pair(padding, "padding", "ConvTranspose2d", 0)
        self.output_padding = _pair(output_padding, "output_padding", "ConvTranspose2d", 0)
        self.dilation, self.groups = _conv_options("ConvTranspose2d", in_channels, out_channels, dilation, groups,
                                                   padding_mode)
        self.padding_mode = padding_mode
        if any(e >= max(s, d) for e, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than either "
                             f"the stride {self.stride} or the dilation {self.dilation}")
        self.weight = Parameter(np.empty((in_channels, out_channels // self.groups, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if _check_bias("ConvTranspose2d", bias) else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_like_pytorch(self.weight, self.bias)  # fan_in from dim 1 (out_channels / groups), as PyTorch

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.conv_transpose2d, x, self.weight, self.bias, self.stride, self.padding,
                             self.output_padding, self.groups, self.dilation)

    def extra_repr(self) -> str:
        op = f", output_padding={self.output_padding}" if self.output_padding != (0, 0) else ""
        return _conv_repr(self, op)


def _check_bias(layer: str, bias: Any) -> bool:
    """``bias`` is a bool (PyTorch takes any truthy value; here a stray positional int, e.g. a
    dilation in an old argument order, must not silently become ``bias=True``)."""
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"{layer}: bias must be a bool, got {type(bias).__name__} {bias!r:.40}")
    return bool(bias)


class Linear(Module):
    """``y = x @ W.T + b`` with W ``(out_features, in_features)`` (the book's Affine layer)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32):
        super().__init__()
        self.in_features, self.out_features = _size("Linear", "in_features", in_features), \
            _size("Linear", "out_features", out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_like_pytorch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.linear, x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """``max(x, 0)``; ``inplace=True`` overwrites its input (one activation buffer less, see F.relu)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:  # PyTorch's AvgPool2d (its ceil_mode and count_include_pad are not shown)
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max-pooling, PyTorch's arguments in its order: ``dilation`` spaces the window's taps,
    ``return_indices=True`` makes the layer return ``(output, indices)``, ``ceil_mode=True`` rounds the
    output size up (PyTorch's rule)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.max_pool2d, x, self.kernel_size, self.stride, self.padding, self.dilation,
                             self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:  # PyTorch's
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """Average-pooling; ``count_include_pad=False`` averages the real pixels only, ``ceil_mode`` as MaxPool2d."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.avg_pool2d, x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(Module):
    """Average-pooling to a fixed ``output_size`` (an int, or a pair with ``None`` for "keep"), as PyTorch's."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.adaptive_avg_pool2d, x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one (as ``torch.nn.Flatten``: the batch axis stays)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p, self.inplace = F._check_probability("Dropout", p), bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class LocalResponseNorm(Module):
    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return _naming_layer(self, F.local_response_norm, x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Softmax(Module):
    """``F.softmax`` along ``axis`` (PyTorch's ``dim=`` keyword is accepted too)."""

    def __init__(self, axis: int = -1, *, dim: int | None = None):
        super().__init__()
        self.axis = F._axis_or_dim("Softmax", axis, dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"dim={self.axis}"


class LogSoftmax(Softmax):
    """``F.log_softmax`` along ``axis`` / ``dim`` (the usual last layer before ``NLLLoss``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.axis)


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Sequential(Module):
    """Run modules in order; children are named "0", "1", ... (or by an OrderedDict's keys)."""

    def __init__(self, *layers: Module):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for name, layer in layers[0].items():
                self.add_module(name, layer)
        else:
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)

    def forward(self, x: Any) -> Any:
        for layer in self.children():
            x = layer(x)
        return x

    def __getitem__(self, i: int | slice) -> Module:
        """A child by position, or a slice of them as a new Sequential (same modules, names kept)."""
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return _at(self, list(self.children()), i)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self.children())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end, named by its position (as PyTorch)."""
        self.add_module(str(len(self)), module)
        return self


def _at(container: Module, items: list, i: Any) -> Any:
    """``items[i]`` with an error naming the container and its length."""
    if isinstance(i, bool) or not isinstance(i, Integral):
        raise TypeError(f"{type(container).__name__} indices must be ints or slices, got {type(i).__name__}")
    if not -len(items) <= i < len(items):
        raise IndexError(f"{type(container).__name__}: index {i} is out of range for {len(items)} modules")
    return items[i]


class ModuleList(Module):
    """A list of modules, registered as children "0", "1", ... (as ``torch.nn.ModuleList``; no forward)."""

    def __init__(self, modules: Any = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, i: int | slice) -> Module | ModuleList:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return _at(self, list(self._modules.values()), i)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: {type(module).__name__} is not a Module")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        for m in modules:
            self.append(m)
        return self


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (N, K) against labels (N,) or one-hot (N, K), with
    ``F.cross_entropy``'s ``weight``, ``ignore_index``, ``reduction`` and ``label_smoothing`` (PyTorch's)."""

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        F._check_reduction(type(self).__name__, reduction)
        self.label_smoothing = F._check_loss_options(type(self).__name__, ignore_index, label_smoothing)
        self.weight, self.ignore_index, self.reduction = _loss_weight(weight), ignore_index, reduction

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return F.softmax_cross_entropy(logits, target, self.weight, ignore_index=self.ignore_index,
                                       reduction=self.reduction, label_smoothing=self.label_smoothing)


def _loss_weight(weight: Any):
    """A loss's class weights as a constant array (PyTorch keeps them as a buffer: never a parameter to train)."""
    if weight is None:
        return None
    return np.array(weight.data if isinstance(weight, Tensor) else weight)


class NLLLoss(Module):
    """``F.nll_loss`` of log-probabilities (N, K) at labels (N,): pair it with ``LogSoftmax(dim=1)``."""

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        F._check_reduction("NLLLoss", reduction)
        F._check_loss_options("NLLLoss", ignore_index, 0.0)
        self.weight, self.ignore_index, self.reduction = _loss_weight(weight), ignore_index, reduction

    def forward(self, log_probs: Tensor, target: Any) -> Tensor:
        return F.nll_loss(log_probs, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)
