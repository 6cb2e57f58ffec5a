"""float64 gradcheck and gradgradcheck of every differentiable primitive over parametrized configs.

Shapes are small on purpose: a full-Jacobian check costs out.size backward passes plus
2 * in.size forward passes. Second derivatives use the full check on a few configs and the
random-projection ``fast_mode`` on the rest.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor


def check(fn, inputs, second: str | None = "fast"):
    """First-order full check, then second order: "full", "fast" or None."""
    assert tc.gradcheck(fn, inputs) is True
    if second == "full":
        assert tc.gradgradcheck(fn, inputs) is True
    elif second == "fast":
        assert tc.gradgradcheck(fn, inputs, fast_mode=True) is True


# ----------------------------------------------------------------------------- convolution

# (kernel, stride, padding, input HxW, bias): every kernel size 1-5, non-square kernels,
# strides 1-3, paddings 0-2, non-square inputs, with and without bias.
CONV_CONFIGS = [
    ((1, 1), 1, 0, (5, 4), True),
    ((2, 2), 1, 1, (4, 5), False),
    ((3, 3), 1, 1, (5, 5), True),
    ((3, 3), 2, 0, (7, 6), True),
    ((3, 2), 2, 1, (6, 5), True),
    ((2, 3), (1, 2), (2, 1), (4, 6), False),
    ((4, 4), 3, 2, (6, 7), True),
    ((5, 5), 1, 2, (5, 5), False),
    ((5, 3), (3, 2), (0, 1), (7, 5), True),
    ((1, 4), 1, (0, 2), (3, 4), True),
]


@pytest.mark.parametrize("kernel,stride,padding,hw,bias", CONV_CONFIGS,
                         ids=[f"k{c[0]}-s{c[1]}-p{c[2]}-in{c[3]}-{'b' if c[4] else 'nob'}" for c in CONV_CONFIGS])
def test_conv2d_grad(randt, kernel, stride, padding, hw, bias):
    x = randt(2, 3, *hw)
    w = randt(2, 3, *kernel)
    inputs = (x, w, randt(2)) if bias else (x, w)
    second = "full" if kernel == (3, 2) else "fast"

    def fn(x, w, *b):
        return F.conv2d(x, w, b[0] if b else None, stride, padding)

    check(fn, inputs, second)


def test_conv2d_grad_single_input_channel_many_filters(randt):
    check(lambda x, w, b: F.conv2d(x, w, b, 1, 1), (randt(1, 1, 4, 4), randt(5, 1, 3, 3), randt(5)))


def test_conv2d_grad_wrt_weight_only(randt):
    """A frozen input (no grad) still gives the weight and bias gradients."""
    x = randt(2, 2, 5, 5, requires_grad=False)
    check(lambda w, b: F.conv2d(x, w, b, 2, 1), (randt(3, 2, 3, 3), randt(3)))


@pytest.mark.parametrize("kh,kw,stride,padding", [(3, 2, 2, 1), (2, 2, 1, 0), (3, 3, (2, 1), (1, 0))])
def test_im2col_col2im_grad(randt, kh, kw, stride, padding):
    x = randt(1, 2, 5, 4)
    check(lambda x: F.im2col(x, kh, kw, stride, padding), (x,), "full")
    col = F.im2col(x, kh, kw, stride, padding)
    c = randt(*col.shape)
    check(lambda c: F.col2im(c, x.shape, kh, kw, stride, padding), (c,), "full")


# ----------------------------------------------------------------------------- pooling

# (kernel, stride, padding, input HxW): overlapping windows (stride < kernel), sizes not
# divisible by the stride, gaps (stride > kernel), padding, non-square everything.
POOL_CONFIGS = [
    (2, None, 0, (4, 6)),
    (3, 2, 0, (7, 6)),
    (3, 2, 1, (6, 7)),
    (3, 1, 0, (5, 5)),
    (2, 3, 1, (7, 5)),
    ((3, 2), (2, 1), (1, 0), (5, 6)),
    (2, 2, 0, (5, 7)),
]
POOL_IDS = [f"k{c[0]}-s{c[1]}-p{c[2]}-in{c[3]}" for c in POOL_CONFIGS]


@pytest.mark.parametrize("kernel,stride,padding,hw", POOL_CONFIGS, ids=POOL_IDS)
def test_max_pool2d_grad(rng, kernel, stride, padding, hw):
    # a permutation of spaced values: no ties, so max is differentiable everywhere the check probes
    x = Tensor(rng.permutation(2 * 2 * hw[0] * hw[1]).reshape(2, 2, *hw) * 0.1, requires_grad=True)
    second = "full" if kernel == 3 and stride == 2 else "fast"
    check(lambda x: F.max_pool2d(x, kernel, stride, padding), (x,), second)


@pytest.mark.parametrize("kernel,stride,padding,hw", POOL_CONFIGS, ids=POOL_IDS)
def test_avg_pool2d_grad(randt, kernel, stride, padding, hw):
    second = "full" if kernel == 3 and stride == 2 else "fast"
    check(lambda x: F.avg_pool2d(x, kernel, stride, padding), (randt(2, 2, *hw),), second)


# ----------------------------------------------------------------------------- activations, elementwise


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "exp"])
def test_activation_grad(rng, name):
    a = rng.standard_normal((3, 4)) * 2
    a[np.abs(a) < 0.05] = 0.3  # keep relu's kink away from the finite-difference step
    check(getattr(F, name), (Tensor(a, requires_grad=True),), "full")


def test_activation_methods_grad(randt):
    check(lambda x: x.relu() + x.sigmoid() * x.tanh() + x.exp(), (randt(2, 3),), "full")


def test_log_grad(randt):
    check(F.log, (randt(3, 4, positive=True),), "full")
    check(lambda x: x.log(), (randt(5, positive=True),), "full")


def test_sigmoid_large_magnitude_has_correct_values_and_no_warnings(recwarn):
    for dt in (np.float32, np.float64):
        x = Tensor(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=dt), requires_grad=True)
        y = F.sigmoid(x)
        y.sum().backward()
        assert y.dtype == dt and x.grad.dtype == dt
        assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad.data))
        assert y.data[0] == 0.0 and y.data[-1] == 1.0 and y.data[2] == 0.5
        np.testing.assert_allclose(y.data[[1, 3]], [9.357622968839299e-14, 1 - 9.357622968839299e-14],
                                   atol=1e-12 if dt == np.float64 else 1e-6)
        assert x.grad.data[0] == 0.0 and x.grad.data[-1] == 0.0 and x.grad.data[2] == 0.25
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in recwarn]


# ----------------------------------------------------------------------------- matmul, linear


@pytest.mark.parametrize("sa,sb", [
    ((3, 4), (4, 5)),          # 2-D
    ((2, 3, 4), (2, 4, 2)),    # batched
    ((2, 3, 4), (4, 2)),       # batch broadcast on the left
    ((3, 4), (2, 4, 3)),       # batch broadcast on the right
    ((2, 1, 2, 3), (3, 3, 2)),  # both batches broadcast
    ((4,), (4, 3)),            # vector @ matrix
    ((3, 4), (4,)),            # matrix @ vector
    ((4,), (4,)),              # dot product
], ids=str)
def test_matmul_grad(randt, sa, sb):
    check(lambda a, b: a @ b, (randt(*sa), randt(*sb)), "full" if len(sa) == 3 else "fast")


def test_linear_grad(randt):
    check(F.linear, (randt(3, 4), randt(5, 4), randt(5)), "full")
    check(F.linear, (randt(2, 3, 4), randt(2, 4)))  # leading batch dims
    check(lambda x, w: F.linear(x, w), (randt(3, 4), randt(2, 4)))


# ----------------------------------------------------------------------------- softmax family, losses


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_grad(randt, axis):
    check(lambda x: F.softmax(x, axis), (randt(3, 4, 2),), "full" if axis == -1 else "fast")


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_grad(randt, axis):
    check(lambda x: F.log_softmax(x, axis), (randt(3, 5),), "full")


def test_softmax_cross_entropy_labels_grad(randt):
    labels = np.array([0, 4, 2, 2])
    check(lambda x: F.softmax_cross_entropy(x, labels), (randt(4, 5),), "full")
    check(lambda x: F.softmax_cross_entropy(x, Tensor(labels)), (randt(4, 5),))  # labels as an int Tensor


def test_softmax_cross_entropy_onehot_and_probabilities_grad(randt, rng):
    onehot = np.eye(5)[[3, 1, 0, 4]]
    check(lambda x: F.softmax_cross_entropy(x, onehot), (randt(4, 5),), "full")
    probs = rng.random((4, 5))
    probs /= probs.sum(1, keepdims=True)
    check(lambda x: F.softmax_cross_entropy(x, probs), (randt(4, 5),), "full")


def test_softmax_cross_entropy_is_mean_over_batch(rng):
    x = rng.standard_normal((6, 4))
    labels = np.array([0, 1, 2, 3, 0, 1])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    loss = F.softmax_cross_entropy(Tensor(x), labels)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), -logp[np.arange(6), labels].mean(), rtol=1e-12)
    onehot = F.softmax_cross_entropy(Tensor(x), np.eye(4)[labels])
    np.testing.assert_allclose(onehot.item(), loss.item(), rtol=1e-12)


def test_softmax_cross_entropy_exact_for_extreme_logits():
    """Exact log-sum-exp: a confidently wrong prediction costs its full margin, not -log(1e-7)."""
    x = Tensor(np.array([[1000.0, 0.0], [0.0, 0.0]]), requires_grad=True)
    loss = F.softmax_cross_entropy(x, np.array([1, 0]))
    np.testing.assert_allclose(loss.item(), (1000.0 + np.log(2)) / 2, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad.data, [[0.5, -0.5], [-0.25, 0.25]], atol=1e-12)


# ----------------------------------------------------------------------------- dropout


def test_dropout_grad_with_fixed_seed(randt):
    def fn(x):
        tc.manual_seed(7)  # the same mask for every evaluation of the check
        return F.dropout(x, 0.4)

    check(fn, (randt(3, 6),), "full")


def test_dropout_is_inverted_and_keeps_expected_rate(rng):
    tc.manual_seed(0)
    x = Tensor(np.ones((200, 500)))
    y = F.dropout(x, 0.3)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.7)
    # 100,000 Bernoulli(0.7) draws: the std of the keep rate is 0.0014
    assert abs(kept.mean() - 0.7) < 0.01
    assert abs(y.data.mean() - 1.0) < 0.015  # inverted: expectation preserved


def test_dropout_identity_when_not_training_or_p_zero(randt):
    x = randt(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).data == 0)


def test_dropout_fresh_mask_per_call_and_grad_uses_the_same_mask():
    tc.manual_seed(3)
    x = Tensor(np.ones((8, 64)), requires_grad=True)
    y1, y2 = F.dropout(x, 0.5), F.dropout(x, 0.5)
    assert not np.array_equal(y1.data != 0, y2.data != 0)
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y1.data)  # d/dx of x * mask is the mask


def test_dropout_seed_reproducible():
    tc.manual_seed(11)
    a = F.dropout(Tensor(np.ones((4, 4))), 0.5).data
    tc.manual_seed(11)
    b = F.dropout(Tensor(np.ones((4, 4))), 0.5).data
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- local response norm


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_grad(randt, size):
    # large alpha so the normalization term really matters in the check
    check(lambda x: F.local_response_norm(x, size, 0.5, 0.75, 2.0), (randt(2, 5, 2, 3),),
          "full" if size in (3, 4) else "fast")


@pytest.mark.parametrize("channels,size", [(1, 3), (2, 5), (3, 8)], ids=str)
def test_local_response_norm_grad_window_wider_than_channels(randt, channels, size):
    check(lambda x: F.local_response_norm(x, size, 0.5, 0.75, 2.0), (randt(2, channels, 2, 3),), "full")


def test_local_response_norm_matches_formula(rng):
    """PyTorch's formula written out: window [c - size//2, c + (size-1)//2], alpha / size."""
    x = rng.standard_normal((2, 6, 3, 3))
    for size in (2, 3, 4, 5):
        ref = np.empty_like(x)
        for c in range(6):
            lo, hi = max(0, c - size // 2), min(6, c + (size - 1) // 2 + 1)
            ref[:, c] = x[:, c] / (2.0 + 0.3 / size * (x[:, lo:hi] ** 2).sum(1)) ** 0.75
        np.testing.assert_allclose(F.local_response_norm(Tensor(x), size, 0.3, 0.75, 2.0).data, ref, rtol=1e-12)


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False), (1, True), (-1, False),
                                           ((0, 2), False), ((0, 2), True)], ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reduction_grad(rng, op, axis, keepdims):
    x = Tensor(rng.permutation(24).reshape(2, 3, 4) * 0.25 - 3, requires_grad=True)  # distinct: no max ties
    check(lambda x: getattr(x, op)(axis, keepdims), (x,), "fast")


def test_max_splits_gradient_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0, 0.5, 0.5], [0.5, 0, 0.5]])


# ----------------------------------------------------------------------------- shape ops


@pytest.mark.parametrize("fn", [
    lambda x: x.reshape(4, 6),
    lambda x: x.reshape((3, -1)),
    lambda x: x.transpose(2, 0, 1),
    lambda x: x.transpose(),
    lambda x: x.transpose(-1, 0, 1),
    lambda x: x.T,
    lambda x: x.flatten(),
    lambda x: x.flatten(0),
    lambda x: F.pad(x, (1, 2, 0, 1)),
    lambda x: F.pad(x, (1, 0, 2, 1, 1, 1), value=3.0),
    lambda x: x[1],
    lambda x: x[:, ::2, 1:3],
    lambda x: x[..., -1],
    lambda x: x[None, :, 1],
    lambda x: x[::-1, :, ::-2],
], ids=["reshape", "reshape-1", "transpose", "transpose-rev", "transpose-neg", "T", "flatten1", "flatten0",
        "pad2d", "pad3d-value", "int", "slices", "ellipsis", "newaxis", "reversed"])
def test_shape_op_grad(randt, fn):
    check(fn, (randt(2, 3, 4),), "full")


def test_getitem_repeated_fancy_indices_accumulate(randt):
    x = randt(3, 4)
    check(lambda x: x[[0, 2, 0, 0], 1:], (x,), "full")
    x.grad = None
    x[[0, 2, 0, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.array([[3] * 4, [0] * 4, [1] * 4], dtype=float))
    x.grad = None
    x[np.array([1, 1]), np.array([2, 2])].sum().backward()
    assert x.grad.data[1, 2] == 2 and x.grad.data.sum() == 2


def test_getitem_boolean_mask_and_tensor_index_grad(randt):
    x = randt(3, 4)
    mask = x.data > 0
    check(lambda x: x[mask], (x,), "full")
    check(lambda x: x[Tensor(np.array([2, 0, 2]))], (x,), "full")


# ----------------------------------------------------------------------------- broadcasting arithmetic

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 1), (4,)), ((2, 3, 4), (3, 1)), ((), (2, 3)), ((2, 1, 3), (4, 1))]


@pytest.mark.parametrize("sa,sb", SHAPES, ids=str)
@pytest.mark.parametrize("op", list(BINARY))
def test_broadcast_binary_grad(randt, op, sa, sb):
    positive = op in ("div", "pow")
    a = randt(*sa, positive=op == "pow")
    b = randt(*sb, positive=positive)
    check(BINARY[op], (a, b), "fast")
    # the gradient of each input has that input's shape
    a.grad = b.grad = None
    BINARY[op](a, b).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


def test_broadcast_gradients_are_summed_back():
    a = Tensor(np.ones((3, 1)), requires_grad=True)
    b = Tensor(np.arange(4.0), requires_grad=True)
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, np.full((3, 1), 6.0))
    np.testing.assert_array_equal(b.grad.data, np.full(4, 3.0))


@pytest.mark.parametrize("fn", [
    lambda x: 2 - x, lambda x: 2 / x, lambda x: 2 ** x, lambda x: 3 + x, lambda x: 3 * x,
    lambda x: x - 2, lambda x: x / 2, lambda x: x ** 2, lambda x: x ** 0.5, lambda x: -x,
    lambda x: np.float64(1.5) * x, lambda x: x ** -1,
], ids=["rsub", "rdiv", "rpow", "radd", "rmul", "sub", "div", "pow2", "sqrt", "neg", "npscalar", "inv"])
def test_scalar_ops_grad(randt, fn):
    check(fn, (randt(2, 3, positive=True),), "full")


def test_reflected_scalar_values():
    x = Tensor(np.array([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal((2 - x).data, [1, 0, -2])
    np.testing.assert_array_equal((2 / x).data, [2, 1, 0.5])
    np.testing.assert_array_equal((2 ** x).data, [2, 4, 16])


def test_composite_graph_grad(randt):
    """A small conv net end to end: conv -> relu -> max-pool -> linear -> cross-entropy."""
    labels = np.array([1, 0])

    def net(x, w, b, fw):
        h = F.max_pool2d(F.relu(F.conv2d(x, w, b, 1, 1)), 2)
        return F.softmax_cross_entropy(F.linear(h.flatten(1), fw), labels)

    check(net, (randt(2, 1, 4, 4), randt(2, 1, 3, 3), randt(2), randt(3, 8)), "fast")


def test_pow_zero_exponent_has_zero_gradient_at_zero(recwarn):
    """d/dx x**0 = 0 everywhere, also at x = 0 (not 0 * inf = nan), as PyTorch."""
    x = Tensor(np.array([0.0, 1.5, -2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    check(lambda x: x ** 0 * x + x ** 2, (Tensor(np.array([0.0, 1.5]), requires_grad=True),), "full")
