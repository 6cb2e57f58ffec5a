"""Tensor construction, properties and the forward values of its operators and methods."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor


def test_construction_and_properties():
    a = np.arange(6.0).reshape(2, 3)
    x = Tensor(a, requires_grad=True, name="x")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == np.float64 and x.requires_grad and x.is_leaf and x.grad_fn is None and x.name == "x"
    assert x.data is a  # an ndarray of a supported dtype is not copied
    np.testing.assert_array_equal(x.numpy(), a)
    np.testing.assert_array_equal(np.asarray(x), a)
    assert Tensor(x).data is a  # Tensor(Tensor) shares the array
    assert Tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert Tensor(np.float64(3.0)).item() == 3.0
    assert Tensor(np.zeros(3), dtype=np.float32).dtype == np.float32


def test_item_and_argmax():
    x = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 0])
    assert x.sum().item() == 16.0


@pytest.mark.parametrize("op,ref", [
    (lambda a, b: a + b, np.add), (lambda a, b: a - b, np.subtract), (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / b, np.divide), (lambda a, b: a ** b, np.power),
], ids=["add", "sub", "mul", "div", "pow"])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2,))], ids=str)
def test_binary_ops_broadcast_like_numpy(rng, op, ref, sa, sb):
    a, b = np.abs(rng.standard_normal(sa)) + 0.5, rng.standard_normal(sb)  # a > 0 for a ** b
    out = op(Tensor(a), Tensor(b))
    np.testing.assert_allclose(out.data, ref(a, b), rtol=1e-12)
    # ndarray on either side works too, and returns a Tensor
    assert isinstance(op(a, Tensor(b)), Tensor) and isinstance(op(Tensor(a), b), Tensor)
    np.testing.assert_allclose(op(a, Tensor(b)).data, ref(a, b), rtol=1e-12)


def test_unary_ops_values(rng):
    a = rng.standard_normal((3, 4))
    x = Tensor(a)
    np.testing.assert_allclose((-x).data, -a)
    np.testing.assert_allclose(x.exp().data, np.exp(a))
    np.testing.assert_allclose(x.exp().log().data, a, atol=1e-12)
    np.testing.assert_allclose(x.relu().data, np.maximum(a, 0))
    np.testing.assert_allclose(x.sigmoid().data, 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_allclose(x.tanh().data, np.tanh(a), rtol=1e-12)
    np.testing.assert_allclose(tc.functional.exp(x).data, np.exp(a))
    np.testing.assert_allclose(x.softmax().data.sum(-1), 1.0)


def test_matmul_values(rng):
    for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                   ((2, 1, 2, 3), (3, 3, 2))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        out = Tensor(a) @ Tensor(b)
        assert out.shape == np.matmul(a, b).shape
        np.testing.assert_allclose(out.data, a @ b, rtol=1e-12)
    np.testing.assert_allclose((a @ Tensor(b)).data, a @ b)  # __rmatmul__


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False), (-1, True), ((0, 2), False),
                                           ((1, 2), True)], ids=str)
def test_reductions_use_numpy_semantics(rng, axis, keepdims):
    a = rng.standard_normal((2, 3, 4))
    x = Tensor(a)
    for name in ("sum", "mean", "max"):
        out = getattr(x, name)(axis, keepdims)
        ref = getattr(a, name)(axis=axis, keepdims=keepdims)
        assert out.shape == np.shape(ref), name
        np.testing.assert_allclose(out.data, ref, rtol=1e-12)


def test_full_reduction_is_zero_dim():
    x = Tensor(np.ones((2, 3)))
    assert x.sum().shape == () and x.mean().shape == () and x.max().shape == ()


def test_shape_ops_values(rng):
    a = rng.standard_normal((2, 3, 4))
    x = Tensor(a)
    np.testing.assert_array_equal(x.reshape(4, 6).data, a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape((6, -1)).data, a.reshape(6, -1))
    np.testing.assert_array_equal(x.transpose(1, 0, 2).data, a.transpose(1, 0, 2))
    np.testing.assert_array_equal(x.transpose((2, 0, 1)).data, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.transpose().data, a.T)
    np.testing.assert_array_equal(x.T.data, a.T)
    assert x.flatten().shape == (2, 12) and x.flatten(0).shape == (24,) and x.flatten(-1).shape == (2, 3, 4)
    np.testing.assert_array_equal(x[1, ::2, [0, 3]].data, a[1, ::2, [0, 3]])
    np.testing.assert_array_equal(x[..., None].data, a[..., None])


def test_pad_values():
    x = Tensor(np.ones((1, 2, 2)))
    y = tc.functional.pad(x, (1, 0, 0, 2), value=-1.0)  # last axis (left 1, right 0), then (top 0, bottom 2)
    assert y.shape == (1, 4, 3)
    np.testing.assert_array_equal(y.data[0], [[-1, 1, 1], [-1, 1, 1], [-1, -1, -1], [-1, -1, -1]])


def test_in_place_free_api_does_not_alias_inputs():
    a = np.ones(3)
    x = Tensor(a, requires_grad=True)
    y = x + 1
    y.data[0] = 100.0
    assert a[0] == 1.0


def test_ndarray_on_the_left_dispatches_to_tensor():
    a = np.arange(3.0)
    x = Tensor(np.ones(3), requires_grad=True)
    y = a * x + a - x
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_array_equal(y.data, 2 * a - 1)
