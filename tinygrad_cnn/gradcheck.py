"""Numerical gradient checking: the analytic Jacobian against central differences.

``gradcheck`` seeds backward with one-hot vectors (one output element at a time), never with
all ones: a softmax whose backward returns zeros would pass a ones-seeded check because
``sum(softmax(x))`` is constant.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np

from .backend import get_array_module, is_writeable, like
from .tensor import Tensor, grad, no_grad, set_grad_enabled


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with the numerical one."""


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn: Callable, inputs: Sequence[Any]) -> tuple[Tensor, ...]:
    outs = _as_tuple(fn(*inputs))
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(o).__name__}")
    return outs


def _differentiable(inputs: Sequence[Any]) -> list[int]:
    idx = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not idx:
        kinds = ", ".join(f"{i}: {type(t).__name__}" + (f" {t.dtype}" if isinstance(t, Tensor) else "")
                          for i, t in enumerate(inputs[:8]))
        raise ValueError("gradcheck: no input requires grad; pass the inputs to check as float Tensors with "
                         f"requires_grad=True (got {kinds or 'no inputs'})")
    for i in idx:
        if inputs[i].dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {i} is {inputs[i].dtype}, not float64; central differences with "
                f"eps=1e-6 are unreliable in single precision",
                UserWarning, stacklevel=_outside_package(),
            )
    return idx


def _outside_package() -> int:
    """The ``stacklevel`` that points a warning at the caller's line: the first frame outside tinygrad_cnn
    (gradcheck reaches the check through different paths, gradgradcheck through one more)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class _Perturb:
    """Temporarily move elements of a Tensor's data; :meth:`restore` puts every value back bit for bit,
    also when ``fn`` raised (or the user pressed Ctrl-C) in the middle of a perturbation."""

    def __init__(self, t: Tensor):
        self.t, self.orig = t, t.data
        if is_writeable(t.data):
            self.saved = t.data.copy()
        else:  # perturb a copy; restoring is putting the original array back
            self.saved, t.data = None, t.data.copy()

    def at(self, index: tuple, value: float) -> None:
        self.t.data[index] = value

    def restore(self) -> None:
        self.t.data = self.orig
        if self.saved is not None:
            self.orig[...] = self.saved


def _snapshot(y: Tensor) -> np.ndarray:
    """A float64 copy of an output (outputs may be views of the input being perturbed)."""
    return np.array(y.numpy(), dtype=np.float64, copy=True).ravel()


def _analytic_rows(outs, diff_tensors, o: int, seed) -> list[np.ndarray]:
    """Gradients of ``<seed, outs[o]>`` w.r.t. each differentiable input (zeros where unused)."""
    if not outs[o].requires_grad:
        return [np.zeros(t.shape) for t in diff_tensors]
    gs = grad(outs[o], diff_tensors, Tensor._wrap(seed), retain_graph=True, allow_unused=True)
    return [np.zeros(t.shape) if g is None else np.asarray(g.numpy(), dtype=np.float64)
            for g, t in zip(gs, diff_tensors)]


def _ix(index) -> str:
    return "[" + ", ".join(str(int(k)) for k in index) + "]"


def _close(a, n, atol: float, rtol: float):
    """``|a - n| <= atol + rtol * |n|`` elementwise; NaN never passes (equal infinities do), as PyTorch's
    ``allclose``: a NaN or infinite gradient must not pass as a match."""
    return np.isclose(a, n, rtol=rtol, atol=atol, equal_nan=False)


def _check_eps(eps: float) -> None:
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"gradcheck: eps must be a number, got {type(eps).__name__} {eps!r:.40}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a positive finite step, got {eps!r}")


def _check_args(fn: Any, atol: Any, rtol: Any) -> None:
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {type(fn).__name__}")
    for name, v in (("atol", atol), ("rtol", rtol)):
        if isinstance(v, bool) or not isinstance(v, Real):
            raise TypeError(f"gradcheck: {name} must be a number, got {type(v).__name__} {v!r:.40}")
        if not v >= 0:  # a negative tolerance fails every element (NaN: every comparison)
            raise ValueError(f"gradcheck: {name} must be >= 0, got {v!r}")


def _fail(o, i, out_index, in_index, a, n, atol, rtol):
    raise GradcheckError(
        f"gradcheck: Jacobian mismatch for output {o}, input {i}: d out[{o}]{_ix(out_index)} / "
        f"d in[{i}]{_ix(in_index)}: analytic {a:.10g} vs numeric {n:.10g}"
        + (" (a NaN never matches)" if np.isnan(a) or np.isnan(n) else
           f" (|diff| {abs(a - n):.3g} > atol {atol:g} + rtol {rtol:g} * |numeric|)")
    )


def jacobians(fn: Callable, inputs: Sequence[Any], eps: float = 1e-6):
    """Return ``(analytic, numeric)`` dicts mapping ``(output, input)`` to Jacobians ``(out.size, in.size)``."""
    _check_eps(eps)
    inputs = _as_tuple(inputs)
    diff = _differentiable(inputs)
    outs = _outputs(fn, inputs)
    tensors = [inputs[i] for i in diff]
    analytic = {(o, i): np.zeros((outs[o].size, inputs[i].size)) for o in range(len(outs)) for i in diff}
    for o, out in enumerate(outs):
        xp = get_array_module(out.data)
        for k in range(out.size):
            seed = xp.zeros(out.shape, dtype=out.dtype)
            seed[np.unravel_index(k, out.shape)] = 1
            for i, row in zip(diff, _analytic_rows(outs, tensors, o, seed)):
                analytic[(o, i)][k] = row.ravel()
    numeric = {key: np.zeros_like(v) for key, v in analytic.items()}
    with no_grad():
        for i in diff:
            p = _Perturb(inputs[i])
            try:
                for j in range(inputs[i].size):
                    idx = np.unravel_index(j, inputs[i].shape)
                    x0 = float(p.t.data[idx])
                    p.at(idx, x0 + eps)
                    plus = [_snapshot(y) for y in _outputs(fn, inputs)]
                    p.at(idx, x0 - eps)
                    minus = [_snapshot(y) for y in _outputs(fn, inputs)]
                    p.at(idx, x0)
                    for o in range(len(outs)):
                        numeric[(o, i)][:, j] = (plus[o] - minus[o]) / (2 * eps)
            finally:
                p.restore()
    return analytic, numeric


def max_error(fn: Callable, inputs: Sequence[Any], eps: float = 1e-6) -> float:
    """Largest ``|analytic - numeric|`` over every Jacobian entry (for reports)."""
    analytic, numeric = jacobians(fn, inputs, eps)
    return max((float(np.max(np.abs(analytic[k] - numeric[k]), initial=0.0)) for k in analytic), default=0.0)


def gradcheck(fn: Callable, inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check every analytic gradient of ``fn(*inputs)`` against central differences.

    The default compares whole Jacobians element by element; ``fast_mode=True`` compares
    random projections ``v^T J u`` instead (one backward and two forwards per input).
    Pass rule: ``|analytic - numeric| <= atol + rtol * |numeric|``; a NaN on either side fails.
    Returns True or raises :class:`GradcheckError` naming the output, input, element, analytic
    and numeric values (``raise_exception=False``: returns False instead, as PyTorch).
    Inputs are left exactly as they were.
    """
    _check_args(fn, atol, rtol)
    try:
        return _gradcheck(fn, _as_tuple(inputs), eps, atol, rtol, fast_mode, seed)
    except GradcheckError:
        if raise_exception:
            raise
        return False


def _gradcheck(fn, inputs, eps, atol, rtol, fast_mode, seed) -> bool:
    _check_eps(eps)
    if fast_mode:
        return _gradcheck_fast(fn, inputs, eps, atol, rtol, seed)
    analytic, numeric = jacobians(fn, inputs, eps)
    for (o, i), a in analytic.items():
        n = numeric[(o, i)]
        bad = ~_close(a, n, atol, rtol)
        if bad.any():
            k, j = np.argwhere(bad)[0]
            out_shape = _outputs_shape_cache(fn, inputs, o)
            _fail(o, i, np.unravel_index(k, out_shape), np.unravel_index(j, inputs[i].shape),
                  a[k, j], n[k, j], atol, rtol)
    return True


def _outputs_shape_cache(fn, inputs, o) -> tuple[int, ...]:
    with no_grad():
        return _outputs(fn, inputs)[o].shape


def _gradcheck_fast(fn, inputs, eps, atol, rtol, seed) -> bool:
    rng = np.random.default_rng(seed)
    diff = _differentiable(inputs)
    outs = _outputs(fn, inputs)
    tensors = [inputs[i] for i in diff]
    us = {i: rng.standard_normal(inputs[i].shape) for i in diff}
    for o, out in enumerate(outs):
        v = rng.standard_normal(out.shape)
        rows = _analytic_rows(outs, tensors, o, get_array_module(out.data).asarray(v, dtype=out.dtype))
        for i, row in zip(diff, rows):
            a = float(np.sum(row * us[i]))
            p = _Perturb(inputs[i])
            orig, u = p.t.data.copy(), like(us[i], p.t.data)
            try:
                with no_grad():
                    p.t.data[...] = orig + eps * u
                    plus = _snapshot(_outputs(fn, inputs)[o]).reshape(v.shape)
                    p.t.data[...] = orig - eps * u
                    minus = _snapshot(_outputs(fn, inputs)[o]).reshape(v.shape)
            finally:
                p.restore()
            n = float(np.sum(v * (plus - minus) / (2 * eps)))
            if not _close(a, n, atol, rtol):
                raise GradcheckError(
                    f"gradcheck (fast_mode): projection v^T J u mismatch for output {o}, input {i}: "
                    f"analytic {a:.10g} vs numeric {n:.10g} (|diff| {abs(a - n):.3g})"
                )
    return True


def gradgradcheck(fn: Callable, inputs: Any, grad_outputs: Any = None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> d<v, fn(inputs)>/d inputs``."""
    _check_args(fn, atol, rtol)
    inputs = _as_tuple(inputs)
    diff = _differentiable(inputs)
    n_in = len(inputs)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = tuple(Tensor(like(rng.standard_normal(o.shape).astype(o.dtype), o.data), requires_grad=True)
                             for o in outs)
    grad_outputs = _as_tuple(grad_outputs)

    def first_derivative(*args):
        xs, vs = args[:n_in], args[n_in:]
        with set_grad_enabled(True):  # also while gradcheck perturbs under no_grad
            return _first_derivative(xs, vs)

    def _first_derivative(xs, vs):
        ys = _outputs(fn, xs)
        live = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
        if not live:
            return tuple(Tensor._wrap(get_array_module(xs[i].data).zeros_like(xs[i].data)) for i in diff)
        gs = grad([y for y, _ in live], [xs[i] for i in diff], [v for _, v in live],
                  create_graph=True, allow_unused=True)
        return tuple(Tensor._wrap(get_array_module(xs[i].data).zeros_like(xs[i].data)) if g is None else g
                     for i, g in zip(diff, gs))

    return gradcheck(first_derivative, (*inputs, *grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, seed=seed, raise_exception=raise_exception)
