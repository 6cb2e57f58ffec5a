"""Tensor, Function and reverse-mode autodiff.

Every op is a :class:`Function`: ``forward`` works on raw arrays, ``backward`` works on
Tensors with differentiable ops, so ``backward(create_graph=True)`` records the backward pass
itself and gradients can be differentiated again. Calling a Function links its outputs to it
(``tensor.creator``) and remembers its inputs; ``backward()`` walks that graph from the output
in generation order (a heap, no recursion), so a chain of any length works.

The elementary ops (arithmetic, reductions, shape ops, exp/log) live here, each backward right
below its forward. Activations, losses, convolution and pooling live in ``functional`` and
``conv``.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from .backend import as_numpy, get_array_module, is_array, is_writeable

# --------------------------------------------------------------------------- allocator


def _keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc's malloc reuse freed activation buffers instead of mapping fresh pages each step.

    By default, glibc serves arrays over a few MB with fresh ``mmap`` pages and unmaps them on
    free, so every training step page-faults in all its activations again (measured here: about
    half of a SimpleConvNet step in a VM). Raising the mmap and trim thresholds keeps freed
    memory in the heap for the next step. Process-wide, glibc only; opt out with
    ``TINYGRAD_CNN_MALLOC_TUNE=0``. Returns True when applied.
    """
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("TINYGRAD_CNN_MALLOC_TUNE", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(mallopt(m_trim_threshold, trim_threshold))


_MALLOC_TUNED = _keep_freed_memory()

# --------------------------------------------------------------------------- grad mode

class _ThreadState(threading.local):
    """Per-thread switches, as PyTorch's: ``no_grad`` in one thread leaves the others recording.

    ``grad``: whether ops record. ``modules``: the modules whose forward is running right now
    (outermost first); every recorded Function remembers them so graphs can be drawn grouped by
    module (nn.Module.__call__ maintains it).
    """

    def __init__(self) -> None:
        self.grad = True
        self.modules: list[Any] = []


_state = _ThreadState()
# The active tinygrad_cnn.profiler.Profile, or None (checked once per op call and backward step).
_profiler: Any = None


def is_grad_enabled() -> bool:
    return _state.grad


class _GradMode:
    """Switch recording to ``mode`` inside ``with``, or around every call of a decorated function.

    Each entry saves the mode it replaces on a stack, so one instance can be re-entered and a
    decorated function can recurse. ``@no_grad`` works with and without parentheses (as PyTorch).
    """

    mode = False

    def __new__(cls, *args: Any):
        if cls is not set_grad_enabled and len(args) == 1 and callable(args[0]):
            return cls()(args[0])  # bare @no_grad / @enable_grad
        return super().__new__(cls)

    def __init__(self) -> None:
        self._saved: list[bool] = []

    def __enter__(self):
        self._saved.append(_state.grad)
        _state.grad = self.mode
        return self

    def __exit__(self, *exc) -> bool:
        _state.grad = self._saved.pop()
        return False

    def __call__(self, fn):
        mode = self.mode

        def switched(step, *args, **kwargs):
            saved, _state.grad = _state.grad, mode
            try:
                return step(*args, **kwargs)
            finally:
                _state.grad = saved

        if inspect.isgeneratorfunction(fn):  # the mode holds inside the generator's body, not just its creation
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                gen = switched(fn, *args, **kwargs)
                sent = None
                while True:
                    try:
                        item = switched(gen.send, sent)
                    except StopIteration as stop:
                        return stop.value
                    try:
                        sent = yield item
                    except GeneratorExit:
                        gen.close()
                        raise

            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return switched(fn, *args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) under which ops record nothing."""

    mode = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns recording back on, e.g. inside ``no_grad``."""

    mode = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)`` switches recording now (as PyTorch); as a context manager or a
    decorator it restores the previous mode afterwards."""

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {mode!r}")
        self._saved, self.mode, self._fresh = [], bool(mode), True
        self._before, _state.grad = _state.grad, self.mode

    def __enter__(self):
        if self._fresh:  # the first entry: the switch happened in __init__
            self._fresh = False
            self._saved.append(self._before)
        else:  # entered again: switch again
            self._saved.append(_state.grad)
            _state.grad = self.mode
        return self

    def __call__(self, fn):
        _state.grad, self._fresh = self._before, False  # used as a decorator: only the calls switch
        return super().__call__(fn)


# --------------------------------------------------------------------------- dtype policy

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _to_array(data: Any, dtype: Any = None):
    """Turn ``data`` into an array following the dtype policy (see API.md).

    Python lists/scalars become float32; arrays keep float32/float64 and integer/bool dtypes.
    float16, complex, object and string data are refused with a clear message.
    """
    if isinstance(data, Tensor):
        data = data.data
    if data is None:
        raise TypeError("Tensor: cannot build a tensor from None")
    if is_array(data):
        arr = data if dtype is None else data.astype(dtype, copy=False)
    elif isinstance(data, np.generic):
        arr = np.asarray(data, dtype=dtype)
    else:
        if isinstance(data, (str, bytes)):
            raise TypeError(f"Tensor: cannot build a tensor from {type(data).__name__}")
        try:
            arr = np.array(data, dtype=np.float32 if dtype is None else dtype)
        except TypeError as exc:  # e.g. complex or other non-real entries
            raise TypeError(f"Tensor: cannot build a real tensor from {type(data).__name__} data: {exc}") from None
        except ValueError as exc:
            raise ValueError(
                f"Tensor: cannot build an array from {type(data).__name__} data "
                f"(ragged nested list or non-numeric entries?): {exc}"
            ) from None
        if arr.dtype.kind == "f" and np.isnan(arr).any() and any(v is None for v in np.array(data, dtype=object).flat):
            # NumPy turns None into NaN in a float array; PyTorch refuses it (only looked for when NaNs are there)
            raise TypeError(f"Tensor: cannot build a tensor from {type(data).__name__} data containing None")
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype not in _FLOATS:
        raise TypeError(
            f"Tensor: dtype {arr.dtype} is not supported; use float32 (the default) or float64 "
            f"(e.g. x.astype(np.float32))"
        )
    if kind not in "fiub":
        raise TypeError(f"Tensor: dtype {arr.dtype} is not supported (numeric arrays only)")
    return arr


def _is_float(arr) -> bool:
    return arr.dtype.kind == "f"


# --------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` is the array (NumPy, or CuPy through ``backend``), ``grad`` a Tensor filled by
    ``backward()`` on leaves that require grad, ``creator`` the Function that produced it.
    """

    __array_priority__ = 1000  # ndarray <op> Tensor dispatches to Tensor's reflected op
    # Class-level defaults so that Tensor.data / Tensor.grad exist on the class too (documented attributes);
    # every instance sets its own in __init__ / _wrap.
    data: Any = None
    _grad: Tensor | None = None
    _index = 0  # which output of ``creator`` this is
    _kept = 0  # how many recorded, not yet released ops keep these values for backward: no in-place writes
    _view_of: Tensor | None = None  # the tensor whose array this one's is a view of (reshape, getitem, ...)
    # [in-place writes, recorded in-place ops] on the tensor that owns the memory (see bump_version)
    _version: list[int] | None = None
    _made_at = 0  # recorded in-place ops on this memory when this tensor got its node (see _check_fresh)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None):
        arr = _to_array(data, dtype)
        if arr is data or arr is getattr(data, "data", None):
            arr = arr.copy()  # as torch.tensor: the Tensor owns its values (x.detach() shares them)
        self.data = arr
        self._grad: Tensor | None = None
        self.creator: Function | None = None
        self.generation = 0
        self.name = name
        self._retain_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, data, requires_grad: bool = False) -> Tensor:
        """Fast constructor for op outputs (the array is already valid)."""
        t = cls.__new__(cls)
        if type(data) is not np.ndarray and not is_array(data):
            data = np.asarray(data)  # NumPy gives scalars for 0-d results: a tensor always holds an array
        t.data, t._grad, t.creator, t.generation, t.name = data, None, None, 0, None
        t._retain_grad, t._requires_grad = False, requires_grad
        return t

    # -- properties --------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient (a Tensor of this tensor's shape), or None."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad must be a Tensor or None, got {type(value).__name__} (wrap arrays in Tensor)")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has shape {value.shape} but the tensor has shape {self.shape}")
            if value.dtype != self.dtype and np.dtype(self.dtype).kind == "f":
                # a gradient has its tensor's dtype (an optimizer's state follows it)
                value = _cast_operand(value, self.dtype)
        self._grad = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):  # requires_grad="no" would switch it on, silently
            raise TypeError(f"requires_grad must be a bool, got {value!r}")
        if value and not _is_float(self.data):
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        if not value and self.creator is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use detach()")
        self._requires_grad = bool(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> _Size:
        """The number of elements (NumPy's ``a.size``), also callable as PyTorch's ``x.size()`` (the
        shape) and ``x.size(dim)`` (one dimension): ``x.view(x.size(0), -1)`` works."""
        return _Size(self.data.shape)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def grad_fn(self) -> Function | None:
        return self.creator

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    # -- Python scalars from one-element tensors (as PyTorch) ------------------------
    def _scalar(self, what: str):
        if self.data.size != 1:
            raise TypeError(f"{what}: only one-element tensors can be converted to Python scalars, "
                            f"got shape {self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self._scalar("float()"))

    def __int__(self) -> int:
        return int(self._scalar("int()"))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"bool(): the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data.item())

    def __format__(self, spec: str) -> str:
        return format(self.data.item(), spec) if spec and self.data.size == 1 else format(str(self), spec)

    # -- comparisons: elementwise bool tensors, never recorded (as PyTorch) --------------
    __hash__ = object.__hash__  # tensors stay usable as dict keys / set members (by identity)

    def _compare(self, other: Any, ufunc: str) -> Tensor:
        b = other.data if isinstance(other, Tensor) else other
        try:
            return Tensor._wrap(getattr(get_array_module(self.data), ufunc)(self.data, b))
        except ValueError:
            raise ValueError(f"{ufunc}: shapes {self.shape} and {np.shape(b)} do not broadcast") from None

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "equal")

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "not_equal")

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, "less")

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, "less_equal")

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, "greater")

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, "greater_equal")

    # -- in-place arithmetic: x += y, ... ------------------------------------------------
    def _inplace(self, other: Any, op, ufunc: str) -> Tensor:
        """``self op= other``. Where nothing is recorded (``tc.no_grad()``, or no operand requires grad)
        the array is updated in place, so ``p -= lr * p.grad`` under ``no_grad`` trains ``p``. Where the
        result is recorded, ``op(self, other)`` builds a new node and the name is rebound to it; a leaf
        that requires grad refuses, as in PyTorch."""
        if _state.grad and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)):
            if self.creator is None and self.requires_grad:
                raise RuntimeError("a leaf tensor that requires grad cannot be modified in place while grad is "
                                   "recorded; update it under `with tc.no_grad():`")
            return op(self, other)
        b = other.data if isinstance(other, Tensor) else other
        bump_version(self)
        try:
            getattr(get_array_module(self.data), ufunc)(self.data, b, out=self.data, casting="same_kind")
        except TypeError as exc:  # numpy's UFuncTypeError: a float result into an int tensor, ...
            raise TypeError(f"{ufunc} in place: {exc}") from None
        except ValueError:
            raise ValueError(f"{ufunc} in place: shape {np.shape(b)} does not broadcast to {self.shape}") from None
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(other, add, "add")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(other, sub, "subtract")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(other, mul, "multiply")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(other, div, "true_divide")

    def numpy(self) -> np.ndarray:
        return as_numpy(self.data)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = as_numpy(self.data)
        return a if dtype is None else a.astype(dtype, copy=False)

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to Python scalars, got shape "
                             f"{self.shape} ({self.data.size} elements)")
        return self.data.item()

    def __repr__(self) -> str:
        body = np.array2string(as_numpy(self.data), precision=4, threshold=20, edgeitems=2, separator=", ")
        extra = f", grad_fn=<{type(self.creator).__name__}>" if self.creator is not None else ""
        if self.requires_grad and self.creator is None:
            extra = ", requires_grad=True"
        return f"Tensor({body}, shape={self.shape}, dtype={self.dtype}{extra})"

    # -- autograd ------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` seeds the backward pass and is needed for non-scalar tensors.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no graph")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs; "
                    f"this tensor has shape {self.shape}, pass backward(gradient)"
                )
            xp = get_array_module(self.data)
            gradient = Tensor._wrap(xp.ones_like(self.data))
        _backward([self], [gradient], retain_graph=retain_graph or create_graph, create_graph=create_graph)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain_grad = True
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        t = Tensor._wrap(self.data)
        t._version = _memory_box(self)  # same memory, same version counter (not a reference to the graph)
        return t

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradient (``set_to_none=False``: a zero-filled one instead, as PyTorch)."""
        if set_to_none or self.grad is None:
            self.grad = None
        else:  # a fresh array: the old one may be held elsewhere (a gradient assigned by the caller)
            self.grad = Tensor._wrap(get_array_module(self.grad.data).zeros_like(self.grad.data))

    def requires_grad_(self, value: bool = True) -> Tensor:
        self.requires_grad = value
        return self

    # -- operators -------------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(other, self)

    def __neg__(self):
        return Neg()(self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, index):
        return GetItem(index)(self)

    # -- methods ---------------------------------------------------------------
    # Reductions take NumPy's ``axis``/``keepdims`` and PyTorch's ``dim``/``keepdim`` (keywords) alike.
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        axis, keepdims = _torch_dims("sum", axis, keepdims, dim, keepdim)
        return Sum(_check_axis("sum", _scalar_axis("sum", axis, self.ndim), self.ndim), keepdims)(self)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        axis, keepdims = _torch_dims("mean", axis, keepdims, dim, keepdim)
        return mean(self, _scalar_axis("mean", axis, self.ndim), keepdims)

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        """Max over ``axis`` (values only). PyTorch's ``max(dim=...)`` returns ``(values, indices)``:
        that spelling raises, pointing to ``amax`` and ``argmax``, rather than return something else."""
        _no_torch_max("max", dim, keepdim)
        axis = _check_axis("max", _scalar_axis("max", axis, self.ndim), self.ndim)
        _check_nonempty("max", self.shape, axis)
        return Max(axis, keepdims)(self)

    def amax(self, dim=None, keepdim: bool = False) -> Tensor:
        """Max over ``dim`` (values only, tied maxima share the gradient), as ``torch.amax``."""
        return self.max(_torch_dim(dim), keepdim)

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        """Index of the max over ``axis`` (flattened when None); an int64 tensor outside the graph."""
        axis, keepdims = _torch_dims("argmax", axis, keepdims, dim, keepdim)
        return _arg_reduce(self, "argmax", axis, keepdims)

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        """Index of the min over ``axis`` (flattened when None), as ``argmax``."""
        axis, keepdims = _torch_dims("argmin", axis, keepdims, dim, keepdim)
        return _arg_reduce(self, "argmin", axis, keepdims)

    def var(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction: float | None = None,
            axis=None, keepdims: bool | None = None) -> Tensor:
        """Variance over ``dim``, as ``torch.var``: divides by ``n - correction``, ``correction=1``
        (``unbiased=True``) by default; ``unbiased=False`` or ``correction=0`` is NumPy's ``var``."""
        return _var(self, "var", dim, unbiased, keepdim, correction, axis, keepdims)

    def std(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction: float | None = None,
            axis=None, keepdims: bool | None = None) -> Tensor:
        """Standard deviation, ``var(...).sqrt()`` (same arguments and defaults as :meth:`var`, as ``torch.std``)."""
        return _var(self, "std", dim, unbiased, keepdim, correction, axis, keepdims, root=True)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape(shape)(self)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose(axes or None)(self)

    def flatten(self, start_dim: int = 1, end_dim: int = -1) -> Tensor:
        return flatten(self, start_dim, end_dim)

    def broadcast_to(self, shape) -> Tensor:
        return broadcast_to(self, shape)

    def astype(self, dtype) -> Tensor:
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"astype: {dtype!r} is not a dtype ({exc})") from None
        if dt.kind not in "fiub" or (dt.kind == "f" and dt not in _FLOATS):
            raise TypeError(f"astype: dtype {dt} is not supported; tensors are float32, float64, integer or bool "
                            "(see the dtype policy)")
        return Cast(dt)(self)

    def exp(self) -> Tensor:
        return Exp()(self)

    def log(self) -> Tensor:
        return Log()(self)

    def relu(self) -> Tensor:
        return _functional().relu(self)

    def sigmoid(self) -> Tensor:
        return _functional().sigmoid(self)

    def tanh(self) -> Tensor:
        return _functional().tanh(self)

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        return _functional().softmax(self, axis, dim=dim)

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        return _functional().log_softmax(self, axis, dim=dim)

    # -- PyTorch spellings, built from the ops above ----------------------------------
    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim: bool | None = None) -> Tensor:
        """Min over ``axis`` (values only, like ``max``; tied minima share the gradient)."""
        _no_torch_max("min", dim, keepdim)
        axis = _check_axis("min", _scalar_axis("min", axis, self.ndim), self.ndim)
        _check_nonempty("min", self.shape, axis)
        if not _is_float(self.data):  # no gradient to route, and -x wraps unsigned ints / refuses bools
            return Tensor._wrap(self.data.min(axis=axis, keepdims=keepdims))
        return -((-self).max(axis, keepdims))

    def amin(self, dim=None, keepdim: bool = False) -> Tensor:
        """Min over ``dim`` (values only), as ``torch.amin``."""
        return self.min(_torch_dim(dim), keepdim)

    def abs(self) -> Tensor:
        return Abs()(self)

    def sqrt(self) -> Tensor:
        return Sqrt()(self)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002 - torch's names
        """Clip to ``[min, max]``; the gradient passes where ``min <= x <= max``, as PyTorch."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        lo, hi = _py_scalar(min), _py_scalar(max)
        for what, v in (("min", lo), ("max", hi)):
            if v is not None and not isinstance(v, Real) and not (is_array(v) and v.dtype.kind in "fiub"):
                raise TypeError(f"clamp: {what} must be a number (or None), got {type(v).__name__} {v!r:.40}")
        x = self
        if not _is_float(self.data) and (isinstance(lo, float) or isinstance(hi, float)):
            x = self.astype(np.float32)  # ints clamped to float bounds are float32, as PyTorch (not truncated)
        return Clamp(lo, hi)(x)

    def clone(self) -> Tensor:
        """A copy that stays in the graph (``detach()`` leaves it); same dtype (a bool stays bool)."""
        if not _is_float(self.data):  # nothing to record, and bool + 0 would be int64
            return Tensor._wrap(self.data.copy())
        return self + 0

    def view(self, *shape) -> Tensor:
        return self.reshape(*shape)

    def permute(self, *dims) -> Tensor:
        return self.transpose(*dims)

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert a size-1 axis at ``dim`` (``-ndim-1 <= dim <= ndim``)."""
        _check_axis("unsqueeze", dim, self.ndim + 1)
        dim %= self.ndim + 1
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        """Drop size-1 axes (all of them, or only ``dim`` when it has size 1), as PyTorch."""
        if dim is None:
            return self.reshape(*(n for n in self.shape if n != 1))
        _check_axis("squeeze", dim, self.ndim)
        dim %= max(self.ndim, 1)
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1:])

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.ndim

    def tolist(self) -> Any:
        return as_numpy(self.data).tolist()

    # -- more PyTorch spellings: casts, comparisons, method forms of the operators -------
    def float(self) -> Tensor:
        """As float32 (``self`` when it already is, as PyTorch); differentiable."""
        return self._cast(np.float32)

    def double(self) -> Tensor:
        """As float64 (``self`` when it already is); differentiable."""
        return self._cast(np.float64)

    def long(self) -> Tensor:
        """As int64 (labels, indices); no gradient flows through it."""
        return self._cast(np.int64)

    def int(self) -> Tensor:
        """As int32; no gradient flows through it."""
        return self._cast(np.int32)

    def _cast(self, dtype) -> Tensor:
        return self if self.dtype == dtype else self.astype(dtype)

    def eq(self, other: Any) -> Tensor:
        return self == other

    def ne(self, other: Any) -> Tensor:
        return self != other

    def lt(self, other: Any) -> Tensor:
        return self < other

    def le(self, other: Any) -> Tensor:
        return self <= other

    def gt(self, other: Any) -> Tensor:
        return self > other

    def ge(self, other: Any) -> Tensor:
        return self >= other

    def add(self, other: Any, *, alpha: float = 1) -> Tensor:
        """``self + alpha * other``, as ``torch.add``."""
        return add(self, other if alpha == 1 else mul(as_tensor(other, self), alpha))

    def sub(self, other: Any, *, alpha: float = 1) -> Tensor:
        """``self - alpha * other``, as ``torch.sub``."""
        return sub(self, other if alpha == 1 else mul(as_tensor(other, self), alpha))

    def mul(self, other: Any) -> Tensor:
        return mul(self, other)

    def div(self, other: Any) -> Tensor:
        return div(self, other)

    def pow(self, exponent: Any) -> Tensor:
        return pow(self, exponent)

    def neg(self) -> Tensor:
        return -self

    def matmul(self, other: Any) -> Tensor:
        return matmul(self, other)

    def __abs__(self) -> Tensor:
        return self.abs()

    def t(self) -> Tensor:
        """Transpose of a tensor with at most 2 dimensions, as ``torch.Tensor.t``."""
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}; use transpose()")
        return self.transpose()

    def view_as(self, other: Tensor) -> Tensor:
        """``self`` reshaped to ``other``'s shape."""
        return self.reshape(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)


class _Size(int):
    """What ``Tensor.size`` gives: the element count (an int, as NumPy's ``a.size``) that can also be
    called as PyTorch's ``x.size()`` (the shape tuple) or ``x.size(dim)`` (one dimension's length)."""

    _shape: tuple[int, ...]

    def __new__(cls, shape: tuple[int, ...]) -> _Size:
        n = 1
        for s in shape:
            n *= int(s)
        self = super().__new__(cls, n)
        self._shape = tuple(int(s) for s in shape)
        return self

    def __getnewargs__(self) -> tuple:  # copy/pickle rebuild it from the shape, not the count
        return (self._shape,)

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self._shape
        if not self._shape or not -len(self._shape) <= dim < len(self._shape):
            raise np.exceptions.AxisError(dim, len(self._shape), "size")
        return self._shape[dim]


def _torch_dims(op: str, axis, keepdims: bool, dim, keepdim: bool | None) -> tuple[Any, bool]:
    """Merge PyTorch's ``dim``/``keepdim`` keywords into NumPy's ``axis``/``keepdims``."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
        axis = _torch_dim(dim)
    if keepdim is not None:
        if keepdims and not keepdim:
            raise TypeError(f"{op}: got both keepdims={keepdims!r} and keepdim={keepdim!r}; pass one of them")
        keepdims = keepdim
    return _dims(axis), bool(keepdims)


def _dims(axis):
    """A list of dims (PyTorch accepts ``dim=[0, 2]``) as the tuple NumPy wants."""
    return tuple(axis) if isinstance(axis, list) else axis


def _torch_dim(dim):
    """PyTorch's ``dim``: an empty list or tuple reduces over every dim (NumPy's ``axis=()`` reduces none)."""
    return None if isinstance(dim, (list, tuple)) and not dim else _dims(dim)


def _scalar_axis(op: str, axis, ndim: int):
    """A 0-d tensor's dim 0 / -1 is the tensor itself (PyTorch): checked, then as ``None``."""
    if ndim == 0 and axis is not None:
        _check_axis(op, axis, ndim)
        return None
    return axis


def _no_torch_max(op: str, dim, keepdim) -> None:
    if dim is not None or keepdim is not None:
        raise TypeError(f"{op}(dim=...): PyTorch returns (values, indices) there, but {op}(axis) here returns the "
                        f"values only; use a{op}(dim=..., keepdim=...) for the values and arg{op}(dim=...) for the "
                        "indices")


def _arg_reduce(x: Tensor, name: str, axis, keepdims: bool) -> Tensor:
    """``argmax``/``argmin`` as int64 indices; ``keepdims`` with ``axis=None`` keeps every dim as 1 (NumPy)."""
    if axis is not None and not isinstance(axis, Integral):
        raise TypeError(f"{name}: dim must be an int or None, got {axis!r}")
    axis = _check_axis(name, axis, x.ndim)
    _check_nonempty(name, x.shape, axis)
    out = getattr(x.data, name)(axis=axis, keepdims=keepdims)
    return Tensor._wrap(get_array_module(x.data).asarray(out, dtype=np.int64))


def _var(x: Tensor, op: str, dim, unbiased, keepdim: bool, correction, axis, keepdims, root: bool = False) -> Tensor:
    """``sum((x - mean)^2) / (n - correction)`` over ``dim`` (its square root with ``root``), built from
    differentiable ops.

    A float32 std squares ``x - mean`` scaled by a power of two per reduced group (exact): PyTorch
    accumulates float32 in double, where the squares of |x| > 1.8e19 do not overflow nor those of
    |x| < 1e-19 underflow, so its std of such data is finite and right, not inf or 0 (nor its gradient
    0). The variance is left unscaled: it overflows float32 at about the same size, and a scale factor
    that large in the graph would overflow its gradient.
    """
    if isinstance(dim, bool):  # x.var(False): PyTorch's old positional form var(unbiased)
        dim, unbiased = None, dim
    axis, _ = _torch_dims(op, axis, False, dim, None)
    keepdim = bool(keepdim) or bool(keepdims)
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if not _is_float(x.data):
        raise RuntimeError(f"{op}: only floating point tensors are supported, got dtype {x.dtype}")
    axis = _scalar_axis(op, _check_axis(op, axis, x.ndim), x.ndim)
    n = 1
    for ax in _normalize_axis(axis, x.ndim):
        n *= x.shape[ax]
    centered = x - x.mean(axis, keepdims=True)
    scaled = root and x.dtype == np.float32 and x.data.size > 0
    if scaled:
        k, unk = _pow2_scale(centered.data, axis)
        centered = centered * k
    denominator = max(n - correction, 0)
    scale = 1.0 / denominator if denominator else float("inf")  # n <= correction: inf or NaN, as PyTorch
    with np.errstate(invalid="ignore"):
        v = (centered * centered).sum(axis, keepdim) * scale
    if root:
        if v.requires_grad and (zero := v.data == 0).any():
            # where the std is 0 PyTorch's gradient is 0, not 0 * inf = nan: sqrt(1) * 0 there
            v = (v + _mask(zero, v)).sqrt() * _mask(~zero, v)
        else:
            v = v.sqrt()
    return v * unk.reshape(v.shape) if scaled else v


def _pow2_scale(a, axis) -> tuple[Tensor, Tensor]:
    """Powers of two ``k`` (one per group reduced over ``axis``, kept as size-1 axes) that bring
    ``max |a|`` into [0.5, 1), and ``1 / k``: multiplying by them is exact. 1 where the max is 0, inf or
    NaN; the exponent stays within float32's normal range."""
    xp = get_array_module(a)
    _, e = xp.frexp(xp.abs(a).max(axis=axis, keepdims=True))  # e = 0 for 0, inf and NaN
    e = xp.clip(e, -126, 126)
    one = a.dtype.type(1)
    return Tensor._wrap(xp.ldexp(one, -e)), Tensor._wrap(xp.ldexp(one, e))


@functools.cache
def _functional():
    from . import functional

    return functional


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; Python scalars take the dtype of ``like`` so float32 stays float32."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float)):
        if isinstance(x, bool) or _is_float(like.data):  # a Python bool never widens a tensor (PyTorch)
            dt = like.dtype
        elif isinstance(x, float):
            dt = np.float32
        else:  # an int with a bool tensor counts, as in PyTorch (True + 1 == 2)
            dt = np.int64 if like.dtype == np.bool_ else like.dtype
        xp = get_array_module(like.data)
        return Tensor._wrap(xp.asarray(x, dtype=dt))
    if like is not None and is_array(x) and x.ndim == 0 and x.dtype.kind == "f":
        # a 0-d float array acts as a scalar, as a 0-d tensor in PyTorch
        return Tensor._wrap(x.astype(like.dtype if _is_float(like.data) else np.float32))
    return Tensor._wrap(_to_array(x))  # an operand: no copy


# --------------------------------------------------------------------------- Function


class Function:
    """One recorded op. Subclasses define ``forward(*arrays)`` and ``backward(*grad_tensors)``.

    ``backward`` returns one gradient Tensor (or None) per input, built from differentiable
    ops so that the backward pass can itself be recorded (``create_graph=True``).
    Arrays saved in ``forward`` as attributes are freed after ``backward`` unless
    ``retain_graph=True``.
    """

    inputs: tuple[Tensor, ...] | None = None
    outputs: list[weakref.ref] = []
    generation = 0
    modules: tuple = ()
    released = False
    # Does ``backward`` read the values of the inputs? Ops that route gradients with saved masks or
    # shapes say False: the graph then keeps a data-free stand-in (``_Shadow``) for non-leaf
    # inputs, so an activation is freed as soon as the forward pass is done with it.
    keeps_inputs = True
    # Does ``backward`` read this op's own output (``self.output()``)? Then its consumers keep it.
    keeps_output = False
    # During ``backward``: for each output gradient, whether the op may overwrite it (no one else
    # holds it; never with create_graph). ReLU and dropout mask it in place.
    grad_owned: tuple[bool, ...] = ()

    def __call__(self, *inputs: Any):
        if _profiler is not None and not _profiler.busy:
            return _profiler.forward(self, inputs)  # times this call (tinygrad_cnn.profiler)
        xs = []
        for x in inputs:
            xs.append(x if isinstance(x, Tensor) else as_tensor(x, xs[0] if xs else None))
        self.needs_input_grad = tuple(x.requires_grad for x in xs)
        record = _state.grad and any(self.needs_input_grad)
        if record:
            if self.inputs is not None:  # the graph node of an earlier call: a second one would overwrite it
                raise RuntimeError(f"{self.name}: this Function instance is already a node of a recorded graph; "
                                   f"create a new instance for each call ({self.name}()(...))")
            for x in xs:
                if x.creator is not None:
                    _check_fresh(x, self.name)
        ys = self.forward(*[x.data for x in xs])
        multi = isinstance(ys, tuple)
        outputs = [Tensor._wrap(y, record and _is_float(y)) for y in (ys if multi else (ys,))]
        for o in outputs:
            base = o._view_of = _viewed(o.data, xs)
            if base is not None and record:
                o._made_at = _memory_box(base)[1]
        if record:
            self.generation = max(x.generation for x in xs)
            read = self.reads() if self.keeps_inputs or self.keeps_output else ()
            if self.keeps_inputs:  # the inputs backward reads; the others as graph references only
                self.inputs = tuple(x if r else _graph_ref(x) for x, r in zip(xs, read))
                self.versions = [_version_box(x) for x, r in zip(xs, read) if r]
                self._read = read
                for x, r in zip(xs, read):
                    for t in _view_chain(x) if r else ():  # a view's values are its base's too
                        t._kept += 1
            else:
                self.inputs = tuple(_graph_ref(x) for x in xs)
            if self.keeps_output and read[-1]:
                self.versions = [*getattr(self, "versions", ()), *(_version_box(o) for o in outputs)]
            self.outputs = [weakref.ref(o) for o in outputs]
            self.out_meta = [(o.data.shape, o.data.dtype) for o in outputs]
            self.modules = tuple(_state.modules)
            for i, o in enumerate(outputs):
                o.creator, o.generation, o._index = self, self.generation + 1, i
        return tuple(outputs) if multi else outputs[0]

    # Does ``backward`` read its inputs' values at all? False for ops that read only their output.
    reads_inputs = True

    def reads(self) -> tuple[bool, ...]:
        """Which inputs' values (then the output's, with ``keeps_output``) ``backward`` reads, given
        ``needs_input_grad``: only those are kept and version-checked, as PyTorch saves only those
        (``x * 3.0`` keeps nothing of ``x``). Ops whose gradients need the other operand override it."""
        return (self.reads_inputs,) * len(self.needs_input_grad) + (True,)

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys: Tensor):
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """Op attributes shown in graphs and used by ONNX export (kernel, stride, ...)."""
        return {}

    def output(self, i: int = 0) -> Tensor:
        """Output ``i`` with its values (ops with ``keeps_output`` are guaranteed to have it)."""
        out = self.outputs[i]()
        assert out is not None and out.creator is self, "output tensor was freed"
        return out

    def output_node(self, i: int = 0) -> Tensor:
        """Output ``i`` as a graph node: the tensor itself while it lives, else its ``_Shadow``."""
        out = self.outputs[i]()
        if out is not None and out.creator is self and out._index == i:
            return out
        return _Shadow(self, i, *self.out_meta[i])

    def release(self) -> None:
        """Free the arrays saved for backward (the graph structure stays for drawing)."""
        for k, v in list(vars(self).items()):
            if is_array(v):
                delattr(self, k)
        if self.keeps_inputs and self.inputs is not None:
            for x, r in zip(self.inputs, getattr(self, "_read", ())):
                for t in _view_chain(x) if r and not isinstance(x, _Shadow) else ():
                    t._kept -= 1  # one op fewer needs these values: in-place writes may be allowed again
            self.inputs = tuple(_graph_ref(x) for x in self.inputs)
        self.released = True

    @property
    def name(self) -> str:
        return type(self).__name__


class _Shadow(Tensor):
    """A graph node without values: output ``index`` of ``creator``, with its shape and dtype.

    Recorded ops hold these instead of non-leaf inputs whose values their backward never reads
    (``Function.keeps_inputs = False``), so the graph does not keep activations alive. Reading
    ``data`` raises: a backward that needs values must keep its inputs.
    """

    def __init__(self, creator: Function, index: int, shape: tuple[int, ...], dtype: Any,
                 requires_grad: bool | None = None):
        self.creator, self._index, self.generation = creator, index, creator.generation + 1
        self._grad, self.name, self._retain_grad = None, None, False
        self._requires_grad = np.dtype(dtype).kind == "f" if requires_grad is None else requires_grad
        self._shape, self._dtype = tuple(shape), dtype

    @property
    def data(self):
        raise RuntimeError(f"the values of this output of {self.creator.name} were not kept by the graph "
                           "(the op that consumed it does not need them for backward)")

    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: int(np.prod(self._shape)))

    def __repr__(self) -> str:
        return f"Tensor(<not kept>, shape={self._shape}, dtype={self._dtype}, grad_fn=<{self.creator.name}>)"


def _graph_ref(x: Tensor, creator_done: bool = False) -> Tensor:
    """What a recorded op keeps of an input whose values it does not need. The output of an op whose
    backward reads it (``keeps_output``) is kept for that backward, unless ``creator_done`` and the
    creator has released its saved values."""
    c = x.creator
    if c is None or isinstance(x, _Shadow) or (c.keeps_output and not (creator_done and c.released)):
        return x
    return _Shadow(c, x._index, *c.out_meta[x._index], x._requires_grad)


def _node_key(t: Tensor):
    """Identity of ``t`` in the graph: the tensor for leaves, (creator, output index) otherwise.

    A tensor and the ``_Shadow`` that stands in for it share the key.
    """
    return id(t) if t.creator is None else (id(t.creator), t._index)


def _viewed(y: Any, xs: Sequence[Tensor]) -> Tensor | None:
    """The input whose array ``y`` is, or is a view of (same memory owner), else None."""
    owner = getattr(y, "base", None)
    for x in xs:
        a = x.__dict__.get("data")  # a _Shadow has no values
        if a is not None and (y is a or (owner is not None and (owner is a or owner is getattr(a, "base", None)))):
            return x
    return None


def _view_chain(t: Tensor) -> Iterator[Tensor]:
    """``t``, the tensor it is a view of, that one's base, ... down to the tensor that owns the memory."""
    while t is not None:
        yield t
        t = t._view_of


def _memory_box(t: Tensor) -> list[int]:
    """The counters of ``t``'s memory, ``[writes, recorded in-place ops]``, kept on the tensor that owns it
    (and shared with its ``detach()`` copies)."""
    *_, t = _view_chain(t)
    box = t.__dict__.get("_version")
    if box is None:
        box = t._version = [0, 0]
    return box


def _version_box(t: Tensor) -> tuple[list[int], int]:
    """``(counters, writes now)``: what an op that keeps ``t`` for its backward remembers."""
    box = _memory_box(t)
    return box, box[0]


def bump_version(t: Tensor, recorded: bool = False) -> None:
    """Record an in-place write to ``t``'s array (and so to every view of it), as PyTorch's version
    counter: a recorded op that kept these values for its backward then refuses to run it.
    ``recorded``: the write is itself an op in the graph (``relu(x, inplace=True)``), which gives
    ``t`` a new node; every other tensor on that memory (its base, its other views) still has the
    old one and may no longer be used in a recorded op (:func:`_check_fresh`)."""
    box = _memory_box(t)
    box[0] += 1
    if recorded:
        box[1] += 1
        t._made_at = box[1]


def _check_fresh(t: Tensor, op: str) -> None:
    """Refuse a recorded tensor whose memory a recorded in-place op rewrote through another tensor
    (a view of it, or its base): its node no longer describes its values."""
    box = _memory_box(t) if t._view_of is not None or t.__dict__.get("_version") is not None else None
    if box is not None and box[1] != t._made_at:
        raise RuntimeError(f"{op}: this tensor's values were changed by an in-place op on a view of it (or on the "
                           "tensor it is a view of) after it was computed, so its gradient would be wrong; "
                           "apply the in-place op before taking views, or call it without inplace=True")


def _check_versions(fn: Function) -> None:
    for box, seen in getattr(fn, "versions", ()):
        if box[0] != seen:
            raise RuntimeError(f"{fn.name} backward: one of the tensors it saved for its gradient has been modified "
                               f"by an in-place operation since (version {box[0]}, saved at {seen}); write "
                               "x = x + y instead of x += y, or do the in-place change after backward()")


def _values_needed(x: Tensor) -> Tensor | None:
    """The recorded tensor, ``x`` or one it is a view of, whose values a recorded op keeps for its
    backward (an input of matmul, the output of sigmoid), else None: writing ``x`` in place would
    corrupt that gradient."""
    return next((t for t in _view_chain(x) if t.creator is not None
                 and (t._kept > 0 or (t.creator.keeps_output and not t.creator.released))), None)


def _leaf_below(x: Tensor) -> bool:
    """Whether ``x`` is, or is a view of, a leaf that requires grad (never to be written in place)."""
    return any(t.creator is None and t.requires_grad for t in _view_chain(x))


def _rebase(x: Tensor, y: Tensor) -> Tensor:
    """Make ``x`` the node ``y`` after an in-place op wrote ``y``'s values into ``x``'s array."""
    x.creator, x._index, x.generation, x._requires_grad = y.creator, y._index, y.generation, y._requires_grad
    if y.creator is not None:
        y.creator.outputs[y._index] = weakref.ref(x)
    return x


# --------------------------------------------------------------------------- backward engine


def _backward(roots: Sequence[Tensor], seeds: Sequence[Tensor], retain_graph: bool, create_graph: bool,
              wanted: Sequence[Tensor] | None = None) -> dict[int, Tensor] | None:
    """Propagate ``seeds`` from ``roots`` to every tensor that requires grad.

    Functions are processed by decreasing generation so that each one sees the full gradient
    of its outputs. With ``wanted`` the gradients of those tensors are returned instead of
    being accumulated into ``.grad``.
    """
    grads: dict[Any, Tensor] = {}  # by _node_key
    leaves: dict[int, Tensor] = {}
    want = {_node_key(t) for t in wanted} if wanted is not None else None
    found: dict[Any, Tensor] = {}
    heap: list = []
    queued: set[int] = set()
    tie = itertools.count()

    def push(fn: Function) -> None:
        if id(fn) not in queued:
            queued.add(id(fn))
            heapq.heappush(heap, (-fn.generation, next(tie), fn))

    # Gradient arrays nothing but this pass refers to: the op they are handed to may overwrite
    # them (ReLU's backward masks in place), which saves an activation-sized buffer per layer.
    owned: set[int] = set()  # ids of gradient Tensors in ``grads``
    # With ``wanted``, only the ops on a path from a root down to a wanted tensor run (as
    # torch.autograd.grad): the graph below a wanted non-leaf stays intact for a later backward.
    needed = None if want is None else _ops_leading_to(roots, want)
    released: list[Function] = []

    def accumulate(t: Tensor, g: Tensor, fresh: bool = False) -> None:
        if g.shape != t.shape:
            raise RuntimeError(f"backward: gradient of shape {g.shape} for a tensor of shape {t.shape}")
        if g.dtype != t.dtype and _is_float(g.data) and np.dtype(t.dtype).kind == "f":
            g, fresh = g.astype(t.dtype), not create_graph  # a gradient has its tensor's dtype, as in PyTorch
        key = _node_key(t)
        old = grads.get(key)
        if old is not None:
            owned.discard(id(old))
            g, fresh = _add_grads(old, g), not create_graph
        grads[key] = g
        if fresh:
            owned.add(id(g))
        if t.creator is None:
            leaves[key] = t
        elif needed is None or id(t.creator) in needed:
            push(t.creator)

    def fresh_flags(gys: list[Tensor], mine: list[bool], gxs: tuple) -> list[bool]:
        """Which returned gradients only this pass can see: new arrays, or an owned ``gy`` passed on once."""
        if create_graph:
            return [False] * len(gxs)
        arrays = [None if gx is None else gx.data for gx in gxs]
        bases = [None if a is None else (a if a.base is None else a.base) for a in arrays]
        gy_owned = {id(g.data): m for g, m in zip(gys, mine)}
        flags = []
        for a, b in zip(arrays, bases):
            ok = a is not None and is_array(a) and is_writeable(a) and sum(x is b for x in bases) == 1
            flags.append(ok and gy_owned.get(id(b), b is a))  # a new array, or a view of an owned gy
        return flags

    with set_grad_enabled(create_graph):
        for t, g in zip(roots, seeds):
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=t.dtype)
            if g.shape != t.shape:
                raise RuntimeError(f"backward: gradient has shape {g.shape} but the output has shape {t.shape}")
            accumulate(t, g.astype(t.dtype) if g.dtype != t.dtype else g)
        while heap:
            fn = heapq.heappop(heap)[2]
            if fn.released:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time ({fn.name}): its saved arrays "
                    "were freed. Pass retain_graph=True to the first backward()."
                )
            gys = [grads.pop((id(fn), i), None) for i in range(len(fn.outputs))]
            mine = [g is not None and id(g) in owned for g in gys]
            owned.difference_update(id(g) for g in gys)
            for i, g in enumerate(gys):
                if g is None:  # an unused output of a multi-output op
                    xp = get_array_module(*(g.data for g in gys if g is not None))
                    gys[i], mine[i] = Tensor._wrap(xp.zeros(*fn.out_meta[i])), True
                elif want is not None:
                    if (id(fn), i) in want:
                        found[(id(fn), i)], mine[i] = g, False
                else:
                    out = fn.outputs[i]()
                    if out is not None and out._retain_grad and out.creator is fn:
                        out.grad, mine[i] = (g if out.grad is None else _add_grads(out.grad, g)), False
            _check_versions(fn)
            fn.grad_owned = tuple(mine)
            gxs = fn.backward(*gys) if _profiler is None else _profiler.backward(fn, gys)
            del fn.grad_owned
            gxs = _backward_result(fn, gxs)
            for x, gx, fresh in zip(fn.inputs, gxs, fresh_flags(gys, mine, gxs)):
                if gx is not None and x.requires_grad:
                    accumulate(x, gx, fresh)
            if not retain_graph:
                fn.release()
                released.append(fn)
    for fn in released:  # every op that read them has run: the outputs of exp, tanh, softmax, ... can go too
        fn.inputs = tuple(_graph_ref(x, creator_done=True) for x in fn.inputs)
    if want is not None:
        for k in want:  # wanted leaves, and wanted non-leaves whose creator did not need to run
            if k not in found and k in grads:
                found[k] = grads[k]
        return found
    for k, t in leaves.items():
        g = grads[k]
        if not create_graph:  # a gradient array something else may hold (the seed, a shared one) is copied
            g = Tensor._wrap(g.data if id(g) in owned else g.data.copy())
        elif not g.requires_grad:  # plain values (from the seed alone) the caller may change in place: a copy
            g = g.clone()
        t.grad = g if t.grad is None else _add_grads(t.grad, g)
    return None


def _add_grads(a: Tensor, b: Tensor) -> Tensor:
    """``a + b`` for two gradients of one tensor; a profile charges it to backward (``AccumulateGrad``)."""
    return a + b if _profiler is None else _profiler.accumulate(a, b)


def _ops_leading_to(roots: Sequence[Tensor], want: set) -> set[int]:
    """Ids of the Functions below ``roots`` with a path down to a tensor whose node key is in ``want``."""
    memo: dict[int, bool] = {}
    stack = [(t.creator, False) for t in roots if t.creator is not None]
    while stack:  # iterative post-order: a deep graph must not hit the recursion limit
        fn, expanded = stack.pop()
        if id(fn) in memo:
            continue
        inputs = [x for x in fn.inputs or () if x.requires_grad]
        if not expanded:
            stack.append((fn, True))
            stack.extend((x.creator, False) for x in inputs if x.creator is not None and id(x.creator) not in memo)
            continue
        memo[id(fn)] = any(_node_key(x) in want or (x.creator is not None and memo.get(id(x.creator), False))
                           for x in inputs)
    return {k for k, v in memo.items() if v}


def _backward_result(fn: Function, gxs: Any) -> tuple:
    """``fn.backward``'s result as a tuple of one Tensor or None per input, or a clear error."""
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    n = len(fn.inputs)
    if len(gxs) > n and all(g is None for g in gxs[n:]):  # trailing Nones (an optional input not given)
        gxs = gxs[:n]
    if len(gxs) != n:
        raise RuntimeError(f"{fn.name} backward returned {len(gxs)} gradient(s) for {len(fn.inputs)} input(s); "
                           "return one Tensor (or None) per input of forward")
    for i, g in enumerate(gxs):
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"{fn.name} backward returned a {type(g).__name__} for input {i}; gradients must be "
                            "Tensors (or None), built from ops so that double backward works")
    return gxs


def _tensor_list(what: str, ts: Any) -> list[Tensor]:
    """``grad``'s outputs/inputs: a Tensor or an iterable of Tensors (a generator too, as PyTorch)."""
    try:
        items = [ts] if isinstance(ts, Tensor) else list(ts)
    except TypeError:
        items = [ts]
    bad = next((t for t in items if not isinstance(t, Tensor)), None)
    if bad is not None:
        raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, got {type(bad).__name__}")
    return items


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` w.r.t. ``inputs`` without touching ``.grad`` (torch.autograd.grad)."""
    outs, ins = _tensor_list("outputs", outputs), _tensor_list("inputs", inputs)
    if not outs or not ins:
        raise RuntimeError(f"grad: needs at least one output and one input, got {len(outs)} and {len(ins)}")
    if grad_outputs is None:
        given = [None] * len(outs)
    else:
        given = [grad_outputs] if isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (list, tuple)) \
            else list(grad_outputs)
        if len(given) != len(outs):
            raise RuntimeError(f"grad: got {len(outs)} output(s) but {len(given)} grad_outputs")
    seeds = []
    for o, g in zip(outs, given):  # None: ones, for a scalar output only (as PyTorch)
        if g is None:
            if o.data.size != 1:
                raise RuntimeError(f"grad: grad_outputs needed for non-scalar output of shape {o.shape}")
            g = Tensor._wrap(get_array_module(o.data).ones_like(o.data))
        seeds.append(g)
    for o in outs:
        if not o.requires_grad:
            raise RuntimeError("grad: an output does not require grad")
    found = _backward(outs, seeds, retain_graph=create_graph if retain_graph is None else retain_graph,
                      create_graph=create_graph, wanted=ins)
    result = []
    for t in ins:
        g = found.get(_node_key(t))
        if g is None and not allow_unused:
            raise RuntimeError("grad: one of the inputs was not used in the graph (pass allow_unused=True)")
        result.append(g)
    return tuple(result)


# --------------------------------------------------------------------------- array helpers


def sum_to_array(a, shape: tuple[int, ...]):
    """Sum the broadcast axes of ``a`` away so it has ``shape`` (adjoint of broadcasting)."""
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1)
    out = a.sum(axis=axes, keepdims=True)
    return out.reshape(shape)


def _check_axis(op: str, axis, ndim: int, unique: bool = True):
    """``axis`` as plain ints (a NumPy integer is welcome) if every entry names a dimension of an
    ``ndim``-D tensor, else an error naming ``op``.

    ``numpy.exceptions.AxisError`` is both a ValueError and an IndexError (PyTorch raises IndexError).
    A non-integer axis is a TypeError; with ``unique``, a dimension named twice is a ValueError (as
    NumPy's reductions, PyTorch's RuntimeError).
    """
    if axis is None:
        return axis
    n = max(ndim, 1)
    if isinstance(axis, Integral):
        if not -n <= axis < n:
            raise np.exceptions.AxisError(axis, ndim, op)
        return int(axis)
    if not isinstance(axis, (tuple, list)):
        raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
    for a in axis:
        if not isinstance(a, Integral):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if not -n <= a < n:
            raise np.exceptions.AxisError(a, ndim, op)
    if unique and len(axis) > 1 and len({a % n for a in axis}) != len(axis):
        raise ValueError(f"{op}: axis {axis!r} names a dimension more than once (tensor of dimension {ndim})")
    return tuple(int(a) for a in axis) if isinstance(axis, tuple) else axis


def _normalize_axis(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (int(axis),) if isinstance(axis, Integral) else tuple(int(a) for a in axis)
    return tuple(sorted(a % ndim if ndim else 0 for a in axes))


def _check_nonempty(op: str, shape: tuple[int, ...], axis) -> None:
    """Max/min/arg-reductions have no value over a zero-size dimension: an error naming ``op``
    (NumPy's says "zero-size array to reduction operation maximum", PyTorch raises too)."""
    if 0 in shape and any(shape[a] == 0 for a in _normalize_axis(axis, len(shape))):
        raise ValueError(f"{op}: cannot reduce over a zero-size dimension (tensor of shape {shape}, axis {axis})")


# --------------------------------------------------------------------------- arithmetic


class Add(Function):
    keeps_inputs = False

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    keeps_inputs = False

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    def reads(self):
        need = self.needs_input_grad
        return need[1], need[0], False

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def reads(self):
        need = self.needs_input_grad
        return need[1], need[0] or need[1], False

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        # (a / b) / b, as PyTorch: b * b overflows (|b| > 1.8e19 in float32) or underflows (|b| < 1e-19)
        # where the gradient itself is representable
        gb = sum_to(-gy * (a / b / b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    keeps_inputs = False

    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``a ** b``; the gradient w.r.t. ``b`` is only formed when ``b`` requires grad."""

    keeps_output = True

    def reads(self):
        return True, True, self.needs_input_grad[1]  # the output only for the exponent's gradient

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            # where b == 0, a ** b is constant: the gradient is 0, not 0 * a ** -1 = nan at a = 0 (as PyTorch)
            ga = sum_to(gy * b * a ** (b - 1 + _mask(b.data == 0, b)), a.shape)
        if self.needs_input_grad[1]:
            # where a == 0 and b >= 0, PyTorch takes 0 for a ** b * log(a) (0 * -inf or 1 * -inf)
            at_zero = _mask((a.data == 0) & (b.data >= 0), a)
            gb = sum_to(gy * self.output() * (a + at_zero).log(), b.shape)
        return ga, gb


def _mask(m, like: Tensor) -> Tensor:
    """A boolean array as a constant 0/1 Tensor of ``like``'s dtype."""
    return Tensor._wrap(m.astype(like.dtype))


def _as_float(a):
    """``a`` itself when floating point, else as float32 (PyTorch's default dtype): ``exp`` of an int
    tensor is float32 there, not NumPy's float64."""
    return a if a.dtype.kind in "fc" else a.astype(np.float32)


def _float_operands(*arrays):
    """The operands (None passes through) in one float dtype, as PyTorch promotes: the float ones'
    common dtype (an int64 input to a float32 layer stays float32, not NumPy's float64), float32
    when none is float."""
    present = [a for a in arrays if a is not None]
    if all(a.dtype == present[0].dtype for a in present) and present[0].dtype.kind == "f":
        return arrays
    floats = [a.dtype for a in present if a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.dtype(np.float32)
    return tuple(None if a is None else a.astype(dtype, copy=False) for a in arrays)


class Exp(Function):
    keeps_output = True
    reads_inputs = False

    def forward(self, a):
        return get_array_module(a).exp(_as_float(a))

    def backward(self, gy):
        return gy * self.output()


class Sqrt(Function):
    """``sqrt(x)``, gradient ``gy / (2 sqrt(x))`` from the output (``-inf`` at ``-0.0``, NaN below 0, as PyTorch)."""

    keeps_output = True
    reads_inputs = False

    def forward(self, a):
        return get_array_module(a).sqrt(_as_float(a))

    def backward(self, gy):
        return gy / (self.output() * 2)


class Log(Function):
    def forward(self, a):
        return get_array_module(a).log(_as_float(a))

    def backward(self, gy):
        return gy / self.inputs[0]


class Abs(Function):
    def forward(self, a):
        return get_array_module(a).abs(a)

    def backward(self, gy):  # sign(x): 0 at x = 0, and at NaN too, as PyTorch (NumPy's sign(NaN) is NaN)
        x = self.inputs[0].data
        return gy * Tensor._wrap((x > 0).astype(gy.dtype) - (x < 0))


class Clamp(Function):
    """``clip(x, lo, hi)``; the gradient passes where ``lo <= x <= hi`` (PyTorch's rule at the bounds)."""

    keeps_inputs = False

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, a):
        xp = get_array_module(a)
        keep = xp.ones(a.shape, dtype=bool)
        if self.lo is not None:
            keep &= a >= self.lo
        if self.hi is not None:
            keep &= a <= self.hi
        self.mask = keep
        return xp.clip(a, self.lo, self.hi).astype(a.dtype, copy=False)

    def backward(self, gy):
        return gy * Tensor._wrap(self.mask.astype(gy.dtype))

    def attrs(self):
        return {"min": self.lo, "max": self.hi}


class Cast(Function):
    keeps_inputs = False

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, a):
        self.src = a.dtype
        return a.astype(self.dtype, copy=False)

    def backward(self, gy):
        return gy.astype(self.src)


def _operands(a, b, true_divide: bool = False) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors, with PyTorch's type promotion where NumPy's differs: a float
    operand keeps its dtype against an integer one (``int64 + float32`` is float32, not float64),
    a 0-d operand does not widen a dimensioned one of its kind (``f32 (3,) * f64 0-d`` is float32,
    ``uint8 (3,) + int64 0-d`` is uint8), dividing integers gives float32, and integer dtypes that
    NumPy could only join in float64 (``uint64 + int64``) are refused."""
    if isinstance(a, Tensor):
        a, b = a, as_tensor(b, a)
    else:
        b = as_tensor(b)
        a = as_tensor(a, b)
    fa, fb = _is_float(a.data), _is_float(b.data)
    if true_divide and not fa and not fb:  # each from its own dtype (int8 -1 / uint8 2 is -0.5, as PyTorch)
        return Tensor._wrap(a.data.astype(np.float32)), Tensor._wrap(b.data.astype(np.float32))
    if fa != fb:
        if fa:
            b = Tensor._wrap(b.data.astype(a.dtype))
        else:
            a = Tensor._wrap(a.data.astype(b.dtype))
        return a, b
    if a.dtype != b.dtype:
        if (a.ndim == 0) != (b.ndim == 0) and (fa or "b" not in (a.dtype.kind, b.dtype.kind)):
            if a.ndim == 0:
                a = _cast_operand(a, b.dtype)
            else:
                b = _cast_operand(b, a.dtype)
        elif not fa and np.result_type(a.dtype, b.dtype).kind == "f":
            raise TypeError(f"no integer dtype holds both {a.dtype} and {b.dtype} (NumPy would compute in float64, "
                            "PyTorch refuses them too); cast one operand first, e.g. x.long()")
    return a, b


def _py_scalar(v: Any) -> Any:
    """A NumPy scalar or 0-d array as a Python number (an op's hyper-parameter then keeps no float64
    array, and stays after the op releases its arrays); anything else as it is."""
    return v.item() if isinstance(v, np.generic) or (is_array(v) and v.ndim == 0) else v


def _cast_operand(t: Tensor, dtype) -> Tensor:
    """``t`` in ``dtype``; recorded (differentiable) when ``t`` requires grad."""
    return t.astype(dtype) if t.requires_grad else Tensor._wrap(t.data.astype(dtype))


def _elementwise(fn: Function, name: str, a, b) -> Tensor:
    """``fn(a, b)`` with broadcasting; shapes that do not broadcast raise an error naming the op."""
    a, b = _operands(a, b, true_divide=name == "div")
    try:
        return fn(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not broadcast") from None
        raise


def add(a, b) -> Tensor:
    return _elementwise(Add(), "add", a, b)


def sub(a, b) -> Tensor:
    return _elementwise(Sub(), "sub", a, b)


def mul(a, b) -> Tensor:
    return _elementwise(Mul(), "mul", a, b)


def div(a, b) -> Tensor:
    return _elementwise(Div(), "div", a, b)


def pow(a, b) -> Tensor:  # noqa: A001 - mirrors torch.pow
    return _elementwise(Pow(), "pow", a, b)


def exp(x: Tensor) -> Tensor:
    return Exp()(x)


def log(x: Tensor) -> Tensor:
    return Log()(x)


# --------------------------------------------------------------------------- matmul


class MatMul(Function):
    """``a @ b`` for 2-D and batched (broadcast leading axes) operands."""

    def reads(self):
        need = self.needs_input_grad
        return need[1], need[0], False

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
        try:
            return get_array_module(a).matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} do not broadcast") from None

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy @ _swap_last(b), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(_swap_last(a) @ gy, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def _swap_last(t: Tensor) -> Tensor:
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return t.transpose(*axes)


def matmul(a, b) -> Tensor:
    """Matrix product; a 1-D operand is treated as a row (left) or column (right) vector."""
    a, b = _operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    if (a.ndim == 1 or b.ndim == 1) and a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
    if a.ndim == 1 and b.ndim == 1:
        return matmul(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
    if a.ndim == 1:
        return matmul(a.reshape(1, -1), b).reshape(*b.shape[:-2], b.shape[-1])
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1)).reshape(a.shape[:-1])
    return MatMul()(a, b)


# --------------------------------------------------------------------------- reductions


class Sum(Function):
    keeps_inputs = False

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.in_shape = a.shape
        # integers and bools sum to int64, as in PyTorch (NumPy gives uint64 for unsigned ones,
        # which then meets int64 only in float64)
        dtype = np.int64 if a.dtype.kind in "iub" else None
        return a.sum(axis=self.axis, keepdims=self.keepdims, dtype=dtype)

    def backward(self, gy):
        if not self.keepdims and self.axis is not None:
            gy = gy.reshape(_keepdims_shape(self.in_shape, self.axis))
        return broadcast_to(gy, self.in_shape)

    def attrs(self):
        return {"axis": self.axis, "keepdims": self.keepdims}


class Max(Function):
    """Max over ``axis``; the gradient is shared equally between tied maxima."""

    keeps_inputs = False


    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        y = a.max(axis=self.axis, keepdims=True)
        mask = (a == y).astype(a.dtype)
        self.mask = mask / mask.sum(axis=self.axis, keepdims=True)
        return y if self.keepdims else y.reshape(_reduced_shape(a.shape, self.axis))

    def backward(self, gy):
        shape = self.inputs[0].shape
        gy = gy.reshape(_keepdims_shape(shape, self.axis))
        return broadcast_to(gy, shape) * Tensor._wrap(self.mask)

    def attrs(self):
        return {"axis": self.axis, "keepdims": self.keepdims}


def _reduced_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    axes = _normalize_axis(axis, len(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _keepdims_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    axes = _normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Mean(Sum):
    """Mean over ``axis``. Its own op, not Sum times ``1/n``: an exported graph (ReduceMean) then
    divides by the size of the batch it runs on, not by the example's. An empty mean is NaN, as PyTorch's."""

    def forward(self, a):
        total = super().forward(a)
        self.count = 1
        for ax in _normalize_axis(self.axis, a.ndim):
            self.count *= a.shape[ax]
        dtype = total.dtype if total.dtype.kind == "f" else np.dtype(np.float32)  # ints average to float32, as x / 2
        if self.count == 0:
            return get_array_module(a).full_like(total, np.nan, dtype=dtype)
        if total.dtype.kind == "f":
            return total / total.dtype.type(self.count)
        return (total / self.count).astype(dtype)

    def backward(self, gy):
        return super().backward(gy) * (1.0 / max(self.count, 1))  # count 0: an empty gradient anyway


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return Mean(_check_axis("mean", axis, x.ndim), keepdims)(x)


# --------------------------------------------------------------------------- shape ops


class Reshape(Function):
    keeps_inputs = False

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.in_shape = a.shape
        try:
            return a.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {a.shape} into {self.shape}") from None
        except TypeError:
            raise TypeError(f"reshape: the shape must be ints, got {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)

    def attrs(self):
        return {"shape": self.shape}


class Transpose(Function):
    keeps_inputs = False

    def __init__(self, axes=None):
        self.axes = None if axes is None else tuple(axes)

    def forward(self, a):
        if self.axes is not None:
            if len(self.axes) == a.ndim:
                _check_axis("transpose", self.axes, a.ndim, unique=False)  # ints, each a dimension
            if len(self.axes) != a.ndim or sorted(ax % a.ndim for ax in self.axes) != list(range(a.ndim)):
                raise ValueError(f"transpose: axes {self.axes} are not a permutation for shape {a.shape}")
        return a.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(*np.argsort([a % gy.ndim for a in self.axes]).tolist())

    def attrs(self):
        return {"perm": self.axes}


class BroadcastTo(Function):
    keeps_inputs = False

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.in_shape = a.shape
        try:
            return get_array_module(a).broadcast_to(a, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {self.shape}") from None

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    keeps_inputs = False

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.in_shape = a.shape
        return sum_to_array(a, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


def broadcast_to(x: Tensor, shape) -> Tensor:
    return x if x.shape == tuple(shape) else BroadcastTo(shape)(x)


def sum_to(x: Tensor, shape) -> Tensor:
    return x if x.shape == tuple(shape) else SumTo(shape)(x)


def flatten(x: Tensor, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` (inclusive) into one, as ``torch.flatten``."""
    _check_axis("flatten", (start_dim, end_dim), x.ndim, unique=False)
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    if start == end:  # nothing to merge: the tensor itself, as torch
        return x
    if end == x.ndim - 1 and all(x.shape[:start]):  # the common case keeps -1 (graphs and ONNX show it)
        return x.reshape(*x.shape[:start], -1)
    merged = int(np.prod(x.shape[start:end + 1]))
    return x.reshape(*x.shape[:start], merged, *x.shape[end + 1:])


class GetItem(Function):
    """NumPy indexing; repeated fancy indices accumulate their gradients."""

    keeps_inputs = False


    def __init__(self, index):
        self.index = index.data if isinstance(index, Tensor) else index

    def forward(self, a):
        self.in_shape = a.shape
        try:
            y = a[self.index]
        except IndexError as exc:  # NumPy's message names neither the op nor the tensor's shape
            raise IndexError(f"getitem: {exc} (tensor of shape {a.shape}, index {self.index!r:.80})") from None
        if not is_array(y):  # integers on every axis: a 0-d view (as torch), not a scalar copy
            y = a[(*(self.index if isinstance(self.index, tuple) else (self.index,)), Ellipsis)]
        return y

    def backward(self, gy):
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    """Scatter ``gy`` into zeros of the input shape: the adjoint of ``GetItem``."""

    keeps_inputs = False


    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _has_array_index(self.index):
            xp.add.at(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx):
        return ggx[self.index]


def _has_array_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(is_array(p) or isinstance(p, (list, Tensor)) for p in parts)

