"""``tc.gradcheck`` / ``tc.gradgradcheck`` themselves, and mutation checks: wrong backward rules get caught."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.conv import Conv2d, MaxPool2d
from tinygrad_cnn.functional import Softmax, Tanh
from tinygrad_cnn.tensor import Function

# ----------------------------------------------------------------------------- deliberately wrong ops


class ZeroGradSoftmax(Softmax):
    """Softmax whose backward returns zeros."""

    def backward(self, gy):
        return gy * 0.0


class FlippedKernelConv2d(Conv2d):
    """Conv2d whose weight gradient is computed for the flipped kernel (a classic conv/correlation mix-up)."""

    def backward(self, gy):
        gx, gw, gb = (*super().backward(gy), None)[:3]
        return gx, None if gw is None else gw[:, :, ::-1, ::-1], gb


class TransposedKernelConv2d(Conv2d):
    """Conv2d whose weight gradient has kh and kw swapped (shape-correct only for square kernels)."""

    def backward(self, gy):
        gx, gw = super().backward(gy)[:2]
        return gx, gw.transpose(0, 1, 3, 2)


class ShiftedMaxPool2d(MaxPool2d):
    """Max-pool that routes each gradient to the window element after the maximum."""

    def forward(self, x):
        y = super().forward(x)
        if hasattr(self, "argmax"):  # only kept when a backward can follow
            kh, kw = self.kernel
            self.argmax = (self.argmax + 1) % (kh * kw)
        return y


class DetachedTanh(Tanh):
    """Correct first derivative, but built from a constant array: its second derivative is wrong."""

    def backward(self, gy):
        y = self.output().data
        return gy * Tensor._wrap(1 - y * y)


class ScaleSecondInput(Function):
    """``a + 2 b`` whose gradient w.r.t. b is 3 instead of 2 at one element."""

    def forward(self, a, b):
        return a + 2 * b

    def backward(self, gy):
        wrong = np.full(gy.shape, 2.0)
        wrong[1, 2] = 3.0
        return gy, gy * Tensor._wrap(wrong)


# ----------------------------------------------------------------------------- the check itself


def test_returns_true_on_a_correct_op(randt):
    assert tc.gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), (randt(2, 3, 5, 5), randt(2, 3, 3, 3)))
    assert tc.gradcheck(F.tanh, randt(3))  # a single Tensor instead of a tuple


def test_error_names_input_element_analytic_and_numeric(randt):
    a, b = randt(2, 4), randt(2, 4)
    with pytest.raises(tc.GradcheckError) as info:
        tc.gradcheck(lambda a, b: ScaleSecondInput()(a, b), (a, b))
    msg = str(info.value)
    assert "analytic" in msg and "numeric" in msg
    assert "input 1" in msg and "in[1][1, 2]" in msg and "out[0][1, 2]" in msg
    assert "analytic 3" in msg and "numeric 2" in msg
    assert isinstance(info.value, RuntimeError)  # GradcheckError is a RuntimeError, like torch's


def test_warns_for_float32_inputs():
    x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float64") as rec:
        tc.gradcheck(F.sigmoid, (x,), eps=1e-3, atol=1e-3, rtol=1e-2)
        tc.gradcheck(F.sigmoid, (x,), eps=1e-3, atol=1e-3, rtol=1e-2, fast_mode=True)
        tc.gradgradcheck(F.sigmoid, (x,), eps=1e-2, atol=1e-1, rtol=1e-1)
    assert {w.filename for w in rec} == {__file__}  # the caller's line, whichever path reached the check


def test_no_input_requiring_grad_is_an_error():
    with pytest.raises(ValueError, match="requires grad"):
        tc.gradcheck(F.relu, (Tensor(np.ones(3)),))


def test_inputs_left_exactly_as_they_were(randt):
    x, w = randt(1, 2, 4, 4), randt(3, 2, 2, 2)
    w.grad = Tensor(np.full(w.shape, 7.0))
    x_data, w_data = x.data, w.data
    x_copy, w_copy = x.data.copy(), w.data.copy()
    tc.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))
    tc.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w), fast_mode=True)
    tc.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w), fast_mode=True)
    assert x.data is x_data and w.data is w_data
    np.testing.assert_array_equal(x.data, x_copy)  # bit for bit
    np.testing.assert_array_equal(w.data, w_copy)
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.data, np.full(w.shape, 7.0))


def test_inputs_restored_even_when_the_check_fails(randt):
    a, b = randt(2, 4), randt(2, 4)
    a0, b0 = a.data.copy(), b.data.copy()
    with pytest.raises(tc.GradcheckError):
        tc.gradcheck(lambda a, b: ScaleSecondInput()(a, b), (a, b))
    np.testing.assert_array_equal(a.data, a0)
    np.testing.assert_array_equal(b.data, b0)


@pytest.mark.parametrize("fast_mode", [False, True], ids=["full", "fast"])
def test_inputs_restored_when_fn_raises_in_the_middle_of_a_perturbation(randt, fast_mode):
    x = randt(2, 3)
    x0, calls = x.data.copy(), [0]

    def fn(a):
        calls[0] += 1
        if calls[0] == 3:  # the second numeric forward: x is perturbed right now
            raise RuntimeError("boom")
        return a * 2

    with pytest.raises(RuntimeError, match="boom"):
        tc.gradcheck(fn, (x,), fast_mode=fast_mode)
    np.testing.assert_array_equal(x.data, x0)  # bit for bit


@pytest.mark.parametrize("fast_mode", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("case", ["log of negatives", "sqrt at zero"])
def test_a_nan_or_infinite_gradient_never_passes(fast_mode, case):
    """As PyTorch (allclose without equal_nan): NaN against NaN, or inf against NaN, is a mismatch."""
    fn, x = {"log of negatives": (lambda a: a.log(), -np.ones(3)),
             "sqrt at zero": (lambda a: a ** 0.5, np.zeros(2))}[case]
    with np.errstate(all="ignore"), pytest.raises(tc.GradcheckError, match="NaN|nan"):
        tc.gradcheck(fn, (Tensor(x, requires_grad=True),), fast_mode=fast_mode)


def test_raise_exception_false_returns_false_as_pytorch(randt):
    x = randt(3, 4)
    assert tc.gradcheck(lambda x: ZeroGradSoftmax(-1)(x), (x,), raise_exception=False) is False
    assert tc.gradcheck(lambda x: ZeroGradSoftmax(-1)(x), (x,), fast_mode=True, raise_exception=False) is False
    assert tc.gradgradcheck(lambda x: x.tanh(), (x,), raise_exception=False) is True
    with pytest.raises(ValueError, match="no input requires grad"):  # a misuse still raises
        tc.gradcheck(lambda x: x * 2, (Tensor(np.ones(2)),), raise_exception=False)


@pytest.mark.parametrize("eps", [0.0, -1e-6, float("nan")])
def test_eps_must_be_a_positive_step(randt, eps):
    """eps=0 would divide 0 by 0: every numeric entry NaN."""
    with pytest.raises(ValueError, match="eps must be a positive finite step"):
        tc.gradcheck(lambda x: x * 2, (randt(2),), eps=eps)


def test_non_tensor_and_int_inputs_pass_through(randt):
    labels = Tensor(np.array([2, 0, 1]))
    assert tc.gradcheck(lambda x, t, scale: F.softmax_cross_entropy(x * scale, t), (randt(3, 4), labels, 1.5))


def test_multiple_outputs(randt):
    assert tc.gradcheck(lambda x: (x.exp(), (x * x).sum(0)), (randt(2, 3),))


def test_fast_mode_passes_and_catches_a_bug(randt):
    x, w = randt(2, 3, 5, 5), randt(2, 3, 3, 3)
    assert tc.gradcheck(lambda x, w: F.conv2d(x, w, None, 2, 1), (x, w), fast_mode=True)
    with pytest.raises(tc.GradcheckError, match="analytic.*numeric"):
        tc.gradcheck(lambda x: ZeroGradSoftmax(-1)(x), (randt(3, 4),), fast_mode=True)
    with pytest.raises(tc.GradcheckError):
        tc.gradcheck(lambda x, w: FlippedKernelConv2d((1, 1), (0, 0))(x, w), (x, w), fast_mode=True)


def test_gradgradcheck_passes_and_catches_a_wrong_second_derivative(randt):
    x = randt(2, 3)
    assert tc.gradgradcheck(F.tanh, (x,))
    assert tc.gradcheck(lambda x: DetachedTanh()(x), (x,))  # first order is right ...
    with pytest.raises(tc.GradcheckError):
        tc.gradgradcheck(lambda x: DetachedTanh()(x), (x,))  # ... second order is not
    with pytest.raises(tc.GradcheckError):
        tc.gradgradcheck(lambda x: DetachedTanh()(x), (x,), fast_mode=True)


def test_max_error_and_jacobians(randt):
    from tinygrad_cnn.gradcheck import jacobians, max_error

    x = randt(3)
    analytic, numeric = jacobians(lambda x: x * x, (x,))
    np.testing.assert_allclose(analytic[(0, 0)], np.diag(2 * x.data))
    np.testing.assert_allclose(numeric[(0, 0)], np.diag(2 * x.data), atol=1e-8)
    assert 0 <= max_error(lambda x: x * x, (x,)) < 1e-8


# ----------------------------------------------------------------------------- mutation checks


def test_zero_softmax_backward_fools_a_ones_seeded_check_but_not_gradcheck(randt):
    x = randt(3, 4)
    ZeroGradSoftmax(-1)(x).sum().backward()
    bad = x.grad.data.copy()
    x.grad = None
    F.softmax(x).sum().backward()
    good = x.grad.data.copy()
    # sum(softmax(x)) == 1 for every x, so both backward passes give (about) zero
    np.testing.assert_allclose(bad, 0, atol=1e-12)
    np.testing.assert_allclose(good, 0, atol=1e-12)
    assert tc.gradcheck(F.softmax, (x,))
    with pytest.raises(tc.GradcheckError, match="analytic 0 vs numeric"):
        tc.gradcheck(lambda x: ZeroGradSoftmax(-1)(x), (x,))


@pytest.mark.parametrize("bad_conv", [FlippedKernelConv2d, TransposedKernelConv2d])
def test_conv_with_wrong_weight_gradient_is_caught(randt, bad_conv):
    x, w = randt(1, 2, 5, 5), randt(2, 2, 3, 3)
    assert tc.gradcheck(lambda x, w: Conv2d((1, 1), (1, 1))(x, w), (x, w))
    with pytest.raises(tc.GradcheckError, match="input 1"):
        tc.gradcheck(lambda x, w: bad_conv((1, 1), (1, 1))(x, w), (x, w))


def test_flipped_kernel_conv_is_caught_with_an_even_kernel(randt):
    """2x2 kernel, no padding: the flipped gradient still has the right shape and size."""
    x, w = randt(1, 1, 4, 4), randt(1, 1, 2, 2)
    with pytest.raises(tc.GradcheckError):
        tc.gradcheck(lambda x, w: FlippedKernelConv2d((1, 1), (0, 0))(x, w), (x, w))


def test_max_pool_routing_to_the_wrong_element_is_caught(rng):
    x = Tensor(rng.permutation(32).reshape(1, 2, 4, 4) * 0.1, requires_grad=True)
    pool = ((2, 2), (2, 2), (0, 0))
    assert tc.gradcheck(lambda x: MaxPool2d(*pool)(x), (x,))
    np.testing.assert_array_equal(ShiftedMaxPool2d(*pool)(x).data, F.max_pool2d(x, 2).data)  # forward is right
    with pytest.raises(tc.GradcheckError, match="analytic.*numeric"):
        tc.gradcheck(lambda x: ShiftedMaxPool2d(*pool)(x), (x,))
