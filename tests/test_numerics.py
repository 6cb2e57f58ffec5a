"""Numerical robustness against PyTorch on extreme inputs: tiny and huge values, NaN, overflow.

Every check runs with warnings turned into errors: an op that returns PyTorch's finite value must not
also emit a NumPy RuntimeWarning (overflow / invalid / divide) on the way.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, optim  # noqa: E402

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
RTOL = {np.float32: 1e-6, np.float64: 1e-14}


def _both(ours, theirs, arrays, dtype, grad=None):
    """Values and gradients of ``ours`` and ``theirs`` on the same data (warnings are errors for ours):
    ``(y, y_torch, [grads], [grads_torch])`` as float64 arrays."""
    ts = [Tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    ps = [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ours(*ts)
        g = np.ones(y.shape, dtype) if grad is None else np.asarray(grad, dtype=dtype)
        y.backward(Tensor(g))
    yt = theirs(*ps)
    yt.backward(torch.tensor(g))
    assert y.dtype == dtype and all(t.grad.dtype == dtype for t in ts)
    as64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    return (as64(y.data), as64(yt.detach().numpy()), [as64(t.grad.data) for t in ts],
            [as64(p.grad.numpy()) for p in ps])


def _assert_rel(a, b, rtol):
    """Elementwise relative agreement, no absolute floor: a tiny value must be right, not merely tiny."""
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


# --------------------------------------------------------------------------- sigmoid


@DTYPES
def test_sigmoid_keeps_tiny_outputs_and_their_gradient(dtype):
    # (tanh(x/2) + 1) / 2 rounded these to 0 (float32 below x = -17, float64 below -37): a zero gradient
    lo = -87.0 if dtype == np.float32 else -700.0
    x = np.concatenate([np.linspace(lo, -10.0, 40), [-5.0, -1.0, 0.0, 1.0, 5.0, 10.0, 20.0]])
    y, yt, (g,), (gt,) = _both(F.sigmoid, torch.sigmoid, [x], dtype)
    assert (y[:40] > 0).all()
    _assert_rel(y, yt, 4 * RTOL[dtype])
    _assert_rel(g, gt, 4 * RTOL[dtype])


@DTYPES
def test_sigmoid_saturates_silently(dtype):
    x = [-1e4, -1e3, -100.0, 100.0, 1e3, 1e4, -np.inf, np.inf]
    y, yt, (g,), (gt,) = _both(F.sigmoid, torch.sigmoid, [x], dtype)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(g, gt)


# --------------------------------------------------------------------------- softmax


def test_softmax_of_logits_more_than_float32_max_apart_is_finite_and_silent():
    # x - max overflows to -inf (float32): its exp is the exact 0, no "overflow in subtract" warning
    x = [[3e38, -3e38, 0.0, 1.0], [-3e38, -3e38, -3e38, 3e38]]
    g = [[0.3, -1.0, 0.2, 0.5], [1.0, 2.0, 3.0, 4.0]]
    y, yt, (gx,), (gxt,) = _both(lambda t: F.softmax(t, 1), lambda t: torch.softmax(t, 1), [x], np.float32, g)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_allclose(gx, gxt, rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- division


@pytest.mark.parametrize("a, b", [(1.0, 1e20), (1e-30, 1e-20), (1e30, 3e19), (2.0, -1e19)],
                         ids=["b_squared_overflows", "b_squared_subnormal", "huge_both", "negative"])
def test_div_gradient_of_the_divisor_needs_no_b_squared(a, b):
    # -a / (b * b): b * b overflows (|b| > 1.8e19) or loses its digits (|b| < 1e-19) in float32 where the
    # gradient itself is representable; PyTorch computes -(a / b) / b
    _, _, (ga, gb), (gat, gbt) = _both(lambda s, t: s / t, lambda s, t: s / t, [[a], [b]], np.float32)
    _assert_rel(ga, gat, 1e-6)
    _assert_rel(gb, gbt, 1e-6)
    assert gb[0] != 0


# --------------------------------------------------------------------------- abs


@DTYPES
def test_abs_gradient_at_nan_is_zero_as_torch(dtype):
    x = [np.nan, -2.0, -0.0, 0.0, 3.0, np.inf, -np.inf]
    y, yt, (g,), (gt,) = _both(lambda t: t.abs(), torch.abs, [x], dtype)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(g, gt)  # sign(NaN) is 0 in PyTorch's backward, NaN in NumPy


# --------------------------------------------------------------------------- std


@pytest.mark.parametrize("scale", [1e20, 1e-25, 1e36], ids=["squares_overflow", "squares_underflow", "near_max"])
@pytest.mark.parametrize("dim", [1, None], ids=["dim1", "all"])
def test_std_float32_of_huge_and_tiny_values_is_finite_and_right(scale, dim):
    # PyTorch accumulates float32 in double; (x - mean)^2 in float32 was inf (1e20) or 0 (1e-25), so the
    # std was inf or 0 and its gradient 0
    x = np.random.default_rng(0).standard_normal((3, 5)) * scale
    g = np.array([0.5, -1.0, 2.0]) if dim == 1 else None
    y, yt, (gx,), (gxt,) = _both(lambda t: t.std(dim), lambda t: t.std(dim), [x], np.float32, g)
    assert np.isfinite(y).all() and (y > 0).all()
    _assert_rel(y, yt, 1e-6)
    np.testing.assert_allclose(gx, gxt, rtol=1e-5, atol=1e-6 * np.abs(gxt).max())


@DTYPES
def test_std_unchanged_for_ordinary_values(dtype):
    x = np.random.default_rng(1).standard_normal((4, 6)) * 3 + 1
    g = np.random.default_rng(2).standard_normal(4)
    y, yt, (gx,), (gxt,) = _both(lambda t: t.std(1), lambda t: t.std(1), [x], dtype, g)
    np.testing.assert_allclose(y, yt, rtol=RTOL[dtype] * 4)
    np.testing.assert_allclose(gx, gxt, rtol=RTOL[dtype] * 40, atol=RTOL[dtype])


# --------------------------------------------------------------------------- RMSprop


@DTYPES
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_rmsprop_state_uses_one_minus_alpha_in_double(dtype, centered):
    # sq += (1 - float32(alpha)) * g^2 was 1e-6 relative off PyTorch's float32(1 - alpha) on every step
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(100).astype(dtype)
    t, pt = Tensor(p0.copy(), requires_grad=True), torch.tensor(p0.copy(), requires_grad=True)
    opt, topt = optim.RMSprop([t], lr=1e-2, centered=centered), torch.optim.RMSprop([pt], lr=1e-2, centered=centered)
    for _ in range(3):
        g = rng.standard_normal(100).astype(dtype)
        t.grad, pt.grad = Tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    rtol = 3e-7 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(opt.state[0]["square_avg"], topt.state[pt]["square_avg"].numpy(), rtol=rtol)
    if centered:  # near-zero entries differ by PyTorch's fused lerp: compared to the largest entry
        ga = topt.state[pt]["grad_avg"].numpy()
        np.testing.assert_allclose(opt.state[0]["grad_avg"], ga, rtol=0, atol=rtol * np.abs(ga).max())


def test_rmsprop_centered_with_overflowing_gradients_stays_finite_as_torch():
    # |g| ~ 1e20: square_avg and grad_avg^2 both overflow to inf; inf - inf made the parameters NaN, where
    # PyTorch's fused square_avg - grad_avg^2 stays inf and the update is 0
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50).astype(np.float32)
    t, pt = Tensor(p0.copy(), requires_grad=True), torch.tensor(p0.copy(), requires_grad=True)
    kw = dict(lr=1e-3, centered=True, momentum=0.9, weight_decay=1e-3)
    opt, topt = optim.RMSprop([t], **kw), torch.optim.RMSprop([pt], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow of square_avg itself is real (torch's too)
        for _ in range(150):
            g = (rng.standard_normal(50) * 1e20).astype(np.float32)
            t.grad, pt.grad = Tensor(g), torch.tensor(g)
            opt.step()
            topt.step()
    assert np.isfinite(t.data).all()
    ref = pt.detach().numpy()
    np.testing.assert_allclose(t.data, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


# ----------------------------------------------------------------------------- 0-d tensors, int division, sqrt

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["sigmoid", "softmax", "log_softmax", "std", "tanh", "exp"])
def test_zero_d_tensors_like_torch(dtype, op):
    """NumPy gives a scalar for a ufunc on a 0-d array; ops that then wrote into it with out= crashed."""
    x = Tensor(np.array(0.3, dtype), requires_grad=True)
    t = torch.tensor(0.3, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
    call = {"softmax": lambda v: v.softmax(-1), "log_softmax": lambda v: v.log_softmax(-1)}.get(
        op, lambda v: getattr(v, op)())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # std of one value: NaN, with a warning on both sides
        y, ty = call(x), call(t)
        y.backward()
        ty.backward()
    assert y.shape == () and y.dtype == dtype
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,), None])
@pytest.mark.parametrize("op", ["sum", "max", "min", "mean", "amax"])
def test_zero_d_reductions_take_dim_zero_as_torch(op, axis):
    x = Tensor(np.array(2.0, np.float32), requires_grad=True)
    y = getattr(x, op)(axis)
    assert y.shape == () and float(y.data) == 2.0
    y.backward()
    assert float(x.grad.data) == 1.0
    with pytest.raises(np.exceptions.AxisError):
        getattr(x, op)((1,))


@pytest.mark.parametrize("a,b", [
    (np.array(-1, np.int8), np.array([2], np.uint8)), (np.array(-3), np.array([2], np.uint8)),
    (np.array([-7, 9], np.int16), np.array(2, np.uint8)), (np.array([5, 6]), np.array([2])),
    (np.array([True, False]), np.array([2, 4], np.uint8)),
], ids=["i8-0d/u8", "i64-0d/u8", "i16/u8-0d", "i64/i64", "bool/u8"])
def test_integer_true_division_converts_each_operand_from_its_own_dtype(a, b):
    ours = Tensor(a) / Tensor(b)
    theirs = torch.tensor(a) / torch.tensor(b)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sqrt_values_and_gradients_at_special_points_like_torch(dtype):
    v = np.array([-np.inf, -1.0, -0.0, 0.0, 1e-30, 2.0, np.inf], dtype)
    x = Tensor(v.copy(), requires_grad=True)
    t = torch.tensor(v.copy(), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = x.sqrt()
        y.sum().backward()
    t.sqrt().sum().backward()
    np.testing.assert_array_equal(y.data, t.detach().sqrt().numpy())
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())  # -0.0 -> -inf, below 0 -> NaN
