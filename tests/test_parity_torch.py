"""Parity with PyTorch (the test oracle): forward values and gradients, float64 and float32.

Skipped as a whole when torch is not installed, so the core suite runs without it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor  # noqa: E402

DTYPES = {
    np.float64: (torch.float64, dict(rtol=1e-10, atol=1e-12)),
    np.float32: (torch.float32, dict(rtol=2e-4, atol=2e-5)),
}


def compare(ours, theirs, arrays, dtype, grad_seed=0, tol=None):
    """Run ``ours(*Tensors)`` and ``theirs(*torch tensors)`` on the same data; compare values and gradients.

    ``arrays``: ndarrays (float ones get requires_grad) or other constants passed through unchanged.
    The backward seed is a fixed random array, so every gradient entry matters.
    """
    tdt, tolerance = DTYPES[dtype]
    tolerance = tol or tolerance
    ts, ps = [], []
    for a in arrays:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            a = a.astype(dtype)
            ts.append(Tensor(a, requires_grad=True))
            ps.append(torch.tensor(a, dtype=tdt, requires_grad=True))
        else:
            ts.append(a)
            ps.append(a)
    y = ours(*ts)
    yt = theirs(*ps)
    assert y.dtype == dtype
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **tolerance)
    seed = np.random.default_rng(grad_seed).standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(seed))
    yt.backward(torch.tensor(seed, dtype=tdt))
    for t, p in zip(ts, ps):
        if isinstance(t, Tensor) and t.requires_grad:
            assert t.grad.dtype == dtype
            np.testing.assert_allclose(t.grad.data, p.grad.numpy(), **tolerance)


dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


@dtypes
@pytest.mark.parametrize("stride,padding,kernel,bias", [
    (1, 0, (3, 3), True), (2, 1, (3, 3), True), ((2, 1), (1, 2), (3, 2), True), (3, 2, (5, 4), False),
    (1, (0, 1), (1, 3), False), (2, 0, (2, 2), True),
], ids=str)
def test_conv2d(rng, dtype, stride, padding, kernel, bias):
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, *kernel))
    b = rng.standard_normal(4) if bias else None
    compare(lambda x, w, b: F.conv2d(x, w, b, stride, padding),
            lambda x, w, b: TF.conv2d(x, w, b, stride, padding), (x, w, b), dtype)


@dtypes
@pytest.mark.parametrize("kernel,stride,padding", [
    (2, None, 0), (3, 2, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 0)), (2, 3, 1), (3, 1, 1),
], ids=str)
def test_max_pool2d(rng, dtype, kernel, stride, padding):
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) * 0.01  # no ties
    compare(lambda x: F.max_pool2d(x, kernel, stride, padding),
            lambda x: TF.max_pool2d(x, kernel, stride, padding), (x,), dtype)


def test_max_pool2d_ties_route_like_torch():
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, 1:3, 1:3] = 1.0  # ties inside windows of an overlapping 3/2 pool
    compare(lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), (x,), np.float64)


@pytest.mark.parametrize("one_image_per_chunk", [False, True])
@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (2, 3, 1)], ids=str)
def test_max_pool2d_nan_routes_like_torch(rng, monkeypatch, kernel, stride, padding, one_image_per_chunk):
    """A window holding a NaN gives NaN, and its gradient goes to the window's last NaN, as in PyTorch."""
    if one_image_per_chunk:
        import tinygrad_cnn.conv as conv
        monkeypatch.setattr(conv, "_COL_CHUNK_BYTES", 1)
    x = rng.permutation(3 * 2 * 7 * 8).reshape(3, 2, 7, 8) * 0.01
    x[rng.random(x.shape) < 0.15] = np.nan
    x[0] = rng.permutation(2 * 7 * 8).reshape(2, 7, 8)  # a NaN-free image beside ones with NaNs
    compare(lambda x: F.max_pool2d(x, kernel, stride, padding),
            lambda x: TF.max_pool2d(x, kernel, stride, padding), (x,), np.float32)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), ((1, 2), 1, (0, 1)), (3, 2, 1), ((3, 1), (2, 1), (1, 0))],
                         ids=str)
def test_max_pool2d_minus_inf_windows_route_to_a_real_pixel(rng, kernel, stride, padding):
    """A window whose real pixels are all -inf sends its gradient to its first real pixel (not to the
    padding, where it would be lost), as PyTorch; mixed with NaNs and finite values."""
    x = rng.standard_normal((2, 2, 6, 7))
    r = rng.random(x.shape)
    x[r < 0.45] = -np.inf
    x[r > 0.93] = np.nan
    x[0, 0] = -np.inf  # a whole map of -inf
    compare(lambda x: F.max_pool2d(x, kernel, stride, padding),
            lambda x: TF.max_pool2d(x, kernel, stride, padding), (x,), np.float64)


@dtypes
@pytest.mark.parametrize("kernel,stride,padding", [
    (2, None, 0), (3, 2, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 0)), (2, 3, 1),
], ids=str)
def test_avg_pool2d(rng, dtype, kernel, stride, padding):
    x = rng.standard_normal((2, 3, 9, 8))
    compare(lambda x: F.avg_pool2d(x, kernel, stride, padding),
            lambda x: TF.avg_pool2d(x, kernel, stride, padding, count_include_pad=True), (x,), dtype)


@dtypes
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (4, 0.5, 0.75, 1.0), (3, 0.3, 0.5, 2.0),
                                               (2, 1.0, 1.0, 1.0), (1, 0.2, 0.75, 1.0)], ids=str)
def test_local_response_norm(rng, dtype, size, alpha, beta, k):
    x = rng.standard_normal((2, 7, 3, 4)) * 2
    compare(lambda x: F.local_response_norm(x, size, alpha, beta, k),
            lambda x: TF.local_response_norm(x, size, alpha, beta, k), (x,), dtype)


@dtypes
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(rng, dtype, axis):
    x = rng.standard_normal((3, 5, 2)) * 3
    compare(lambda x: F.softmax(x, axis), lambda x: torch.softmax(x, axis), (x,), dtype)
    compare(lambda x: F.log_softmax(x, axis), lambda x: torch.log_softmax(x, axis), (x,), dtype)


@dtypes
def test_cross_entropy_with_labels(rng, dtype):
    x = rng.standard_normal((6, 5)) * 4
    labels = np.array([0, 4, 2, 2, 1, 3])
    compare(lambda x: F.softmax_cross_entropy(x, labels),
            lambda x: TF.cross_entropy(x, torch.tensor(labels)), (x,), dtype)


@dtypes
def test_cross_entropy_with_onehot_and_probabilities(rng, dtype):
    x = rng.standard_normal((6, 5)) * 4
    onehot = np.eye(5)[[0, 4, 2, 2, 1, 3]].astype(dtype)
    compare(lambda x: F.softmax_cross_entropy(x, onehot),
            lambda x: TF.cross_entropy(x, torch.tensor(onehot)), (x,), dtype)
    probs = rng.random((6, 5))
    probs = (probs / probs.sum(1, keepdims=True)).astype(dtype)
    compare(lambda x: F.softmax_cross_entropy(x, probs),
            lambda x: TF.cross_entropy(x, torch.tensor(probs)), (x,), dtype)


def test_cross_entropy_extreme_logits():
    x = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]])
    compare(lambda x: F.softmax_cross_entropy(x, np.array([1, 2])),
            lambda x: TF.cross_entropy(x, torch.tensor([1, 2])), (x,), np.float64)


@dtypes
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_log_softmax_and_cross_entropy_keep_precision_for_huge_logits(dtype, scale):
    """``(x - max) - log(sum)``, as PyTorch: tied huge logits give log(1/2), not 0."""
    if dtype == np.float32 and scale > 1e30:
        pytest.skip("out of float32 range")
    x = np.array([[scale, scale, 0.0], [0.0, -scale, scale]])
    labels = np.array([0, 2])
    compare(lambda x: F.log_softmax(x, axis=1), lambda x: TF.log_softmax(x, dim=1), (x,), dtype)
    compare(lambda x: F.softmax_cross_entropy(x, labels), lambda x: TF.cross_entropy(x, torch.tensor(labels)), (x,),
            dtype)


@pytest.mark.parametrize("a,b", [([0.0, 2.0], [0.0, 3.0]), ([0.0], [2.0]), ([0.0, 0.0, 1.5, 3.0], [0.0, 0.5, 0.5, 0.0]),
                                 ([[0.0, 1.0, 2.0]], [[0.0], [2.0]])], ids=str)
def test_pow_gradients_at_a_zero_base_match_torch(a, b, recwarn):
    """PyTorch takes 0 for d/da where b == 0 and for d/db where a == 0 and b >= 0 (not nan or -inf)."""
    compare(lambda a, b: a ** b, lambda a, b: a ** b, (np.array(a), np.array(b)), np.float64)


@dtypes
def test_linear(rng, dtype):
    compare(F.linear, TF.linear, (rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal(5)),
            dtype)
    compare(F.linear, TF.linear, (rng.standard_normal((2, 4, 3)), rng.standard_normal((5, 3)), None), dtype)


@dtypes
@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)),
                                   ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 5)), ((3, 4), (4,))],
                         ids=str)
def test_matmul(rng, dtype, sa, sb):
    compare(lambda a, b: a @ b, torch.matmul, (rng.standard_normal(sa), rng.standard_normal(sb)), dtype)


@dtypes
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "exp"])
def test_activations(rng, dtype, name):
    x = rng.standard_normal((4, 5)) * 3
    compare(getattr(F, name), getattr(torch, name), (x,), dtype)


def test_sigmoid_extremes():
    x = np.array([-1000.0, -40.0, -10.0, 0.0, 10.0, 40.0, 1000.0])
    compare(F.sigmoid, torch.sigmoid, (x,), np.float64, tol=dict(rtol=1e-10, atol=1e-15))


@dtypes
@pytest.mark.parametrize("pad,value", [((1, 2), 0.0), ((1, 0, 2, 1), 0.0), ((0, 1, 1, 0, 2, 2), 1.5)], ids=str)
def test_pad(rng, dtype, pad, value):
    x = rng.standard_normal((2, 3, 4))
    compare(lambda x: F.pad(x, pad, value=value), lambda x: TF.pad(x, pad, value=value), (x,), dtype)


@dtypes
def test_broadcast_arithmetic_and_reductions(rng, dtype):
    a, b = rng.standard_normal((2, 3, 4)), np.abs(rng.standard_normal((3, 1))) + 0.5

    def expr(a, b):
        return ((a * b - a / b + 2 - a) ** 2).sum(axis=1).mean() + (2 / b).max() + (2 ** a).sum() \
            + (a.exp() + b.log().sum()).mean(axis=(0, 2), keepdims=True).sum()

    def texpr(a, b):
        return ((a * b - a / b + 2 - a) ** 2).sum(dim=1).mean() + (2 / b).max() + (2 ** a).sum() \
            + (a.exp() + b.log().sum()).mean(dim=(0, 2), keepdim=True).sum()

    compare(expr, texpr, (a, b), dtype)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [
    ((0, 1, 28, 28), (30, 1, 5, 5), 1, 0),
    ((0, 3, 224, 224), (96, 3, 11, 11), 4, 2),
    ((0, 6, 14, 14), (16, 6, 5, 5), 1, 0),
], ids=["simpleconvnet", "alexnet", "lenet2"])
def test_conv2d_of_an_empty_batch(rng, x_shape, w_shape, stride, padding):
    """Batch size 0, as PyTorch accepts it: an empty output, an empty input gradient, a zero weight gradient."""
    x, w = np.zeros(x_shape, np.float32), rng.standard_normal(w_shape).astype(np.float32)
    compare(lambda x, w: F.conv2d(x, w, None, stride, padding), lambda x, w: TF.conv2d(x, w, None, stride, padding),
            (x, w), np.float32)


@pytest.mark.parametrize("case", ["max_pool", "max_pool_overlap", "avg_pool", "cross_entropy"])
def test_pooling_and_loss_of_an_empty_batch(case):
    x_shape, ours, theirs = {
        "max_pool": ((0, 2, 8, 8), lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
        "max_pool_overlap": ((0, 2, 9, 9), lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
        "avg_pool": ((0, 2, 8, 8), lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2)),
        "cross_entropy": ((0, 10), lambda x: F.cross_entropy(x, np.zeros(0, np.int64)),  # NaN, the mean of nothing
                          lambda x: TF.cross_entropy(x, torch.zeros(0, dtype=torch.long))),
    }[case]
    compare(ours, theirs, (np.zeros(x_shape, np.float32),), np.float32)


@pytest.mark.parametrize("shape,axis", [((0, 3), None), ((0, 3), 0), ((2, 0), 1), ((0, 3), 1)], ids=str)
def test_mean_of_nothing_is_nan_as_in_torch(shape, axis):
    theirs = (lambda x: x.mean()) if axis is None else (lambda x: x.mean(dim=axis))
    compare(lambda x: x.mean(axis), theirs, (np.zeros(shape, np.float32),), np.float32)


def test_a_small_convnet_end_to_end(rng):
    """conv -> relu -> LRN -> max-pool 3/2 -> linear -> cross-entropy, all gradients against torch."""
    x, w, b = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3)) * 0.5, rng.standard_normal(4)
    fw = rng.standard_normal((5, 4 * 4 * 4)) * 0.1
    labels = np.array([1, 3])

    def ours(x, w, b, fw):
        h = F.max_pool2d(F.local_response_norm(F.relu(F.conv2d(x, w, b, 1, 1)), 5, 1e-2, 0.75, 2.0), 3, 2)
        return F.softmax_cross_entropy(F.linear(h.flatten(1), fw), labels)

    def theirs(x, w, b, fw):
        h = TF.max_pool2d(TF.local_response_norm(TF.relu(TF.conv2d(x, w, b, 1, 1)), 5, 1e-2, 0.75, 2.0), 3, 2)
        return TF.cross_entropy(TF.linear(h.flatten(1), fw), torch.tensor(labels))

    compare(ours, theirs, (x, w, b, fw), np.float64)


@pytest.mark.parametrize("channels,size", [(1, 5), (2, 5), (2, 6), (3, 9)], ids=str)
def test_local_response_norm_window_wider_than_channels(rng, channels, size):
    """Window offsets that reach past every channel add only zeros (values and gradients)."""
    compare(lambda x: F.local_response_norm(x, size, 0.5, 0.75, 1.0),
            lambda x: TF.local_response_norm(x, size, 0.5, 0.75, 1.0),
            (rng.standard_normal((2, channels, 3, 2)) * 2,), np.float64)


@pytest.mark.parametrize("shape", [(2, 5, 7), (2, 6, 3, 2, 2)], ids=["3d", "5d"])
@pytest.mark.parametrize("size", [2, 3, 4])
def test_local_response_norm_other_ranks(rng, shape, size):
    compare(lambda x: F.local_response_norm(x, size, 0.5, 0.75, 1.0),
            lambda x: TF.local_response_norm(x, size, 0.5, 0.75, 1.0), (rng.standard_normal(shape),), np.float64)


def test_full_max_splits_ties_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 1.0]])
    compare(lambda x: x.max(), lambda x: x.max(), (x,), np.float64)


def test_second_derivatives_match_torch(rng):
    """Double backward through conv, max-pool, LRN, softmax-CE: d/dw of |dL/dx|^2 (a gradient penalty)."""
    import tinygrad_cnn as tc

    x0, w0 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    fw0, labels = rng.standard_normal((4, 12)), np.array([1, 3])

    x, w, fw = (Tensor(a, requires_grad=True) for a in (x0, w0, fw0))
    h = F.max_pool2d(F.local_response_norm(F.conv2d(x, w, None, 1, 1).tanh(), 3, 0.5, 0.75, 2.0), 3, 2)
    loss = F.softmax_cross_entropy(F.linear(h.flatten(1), fw), labels)
    (gx,) = tc.grad(loss, x, create_graph=True)
    gw, gfw = tc.grad((gx * gx).sum(), [w, fw])

    xt, wt, fwt = (torch.tensor(a, requires_grad=True) for a in (x0, w0, fw0))
    ht = TF.max_pool2d(TF.local_response_norm(TF.conv2d(xt, wt, None, 1, 1).tanh(), 3, 0.5, 0.75, 2.0), 3, 2)
    losst = TF.cross_entropy(TF.linear(ht.flatten(1), fwt), torch.tensor(labels))
    (gxt,) = torch.autograd.grad(losst, xt, create_graph=True)
    gwt, gfwt = torch.autograd.grad((gxt * gxt).sum(), [wt, fwt])

    np.testing.assert_allclose(gx.data, gxt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gw.data, gwt.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gfw.data, gfwt.numpy(), rtol=1e-9, atol=1e-12)



def test_double_backward_through_the_weight_and_bias_gradients_matches_torch(rng):
    """d/d(x, w, b) of |dL/dw|^2 + |dL/db|^2: the bias gradient comes out of the weight gradient's op."""
    import tinygrad_cnn as tc

    arrays = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x, w, b = (Tensor(a, requires_grad=True) for a in arrays)
    gw, gb = tc.grad((F.conv2d(x, w, b, 2, 1) ** 2).sum(), [w, b], create_graph=True)
    ((gw * gw).sum() + (gb * gb).sum()).backward()
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in arrays)
    gwt, gbt = torch.autograd.grad((TF.conv2d(xt, wt, bt, 2, 1) ** 2).sum(), [wt, bt], create_graph=True)
    ((gwt * gwt).sum() + (gbt * gbt).sum()).backward()
    for ours, theirs in ((gw, gwt), (gb, gbt), (x.grad, xt.grad), (w.grad, wt.grad), (b.grad, bt.grad)):
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-10)

# ----------------------------------------------------------------------------- output sizes (property)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2),
       st.integers(0, 2), st.integers(0, 8), st.integers(0, 8), st.integers(1, 2), st.integers(1, 3))
def test_output_sizes_match_torch(kh, kw, sh, sw, ph, pw, dh, dw, n, c):
    h, w = max(1, kh - 2 * ph) + dh, max(1, kw - 2 * pw) + dw
    x = np.zeros((n, c, h, w))
    y = F.conv2d(Tensor(x), Tensor(np.zeros((2, c, kh, kw))), None, (sh, sw), (ph, pw))
    yt = TF.conv2d(torch.tensor(x), torch.zeros((2, c, kh, kw), dtype=torch.float64), None, (sh, sw), (ph, pw))
    assert y.shape == tuple(yt.shape)
    if ph <= kh // 2 and pw <= kw // 2:  # torch's pooling rule for padding
        for ours, theirs in ((F.max_pool2d, TF.max_pool2d), (F.avg_pool2d, TF.avg_pool2d)):
            assert ours(Tensor(x), (kh, kw), (sh, sw), (ph, pw)).shape == \
                tuple(theirs(torch.tensor(x), (kh, kw), (sh, sw), (ph, pw)).shape)


@dtypes
@pytest.mark.parametrize("op", ["conv2d", "conv2d_same", "max_pool2d", "avg_pool2d"])
def test_unbatched_input_like_torch(rng, dtype, op):
    """PyTorch takes an unbatched ``(C, H, W)`` input for conv and pooling and returns ``(C', OH, OW)``."""
    x = rng.standard_normal((3, 9, 8))
    if op.startswith("conv2d"):
        w, b = rng.standard_normal((4, 3, 3, 3 if op == "conv2d_same" else 2)), rng.standard_normal(4)
        kw = dict(stride=1, padding="same") if op == "conv2d_same" else dict(stride=2, padding=(1, 0))
        compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b], dtype)
    else:
        compare(lambda x: getattr(F, op)(x, 3, 2, 1), lambda x: getattr(TF, op)(x, 3, 2, 1), [x], dtype)


@pytest.mark.parametrize("case", [
    "bool / 2", "bool + 1", "2 * bool", "int exp", "int log", "int sigmoid", "int tanh", "int softmax",
    "int log_softmax", "int / 1",
])
def test_non_float_tensors_follow_torchs_type_rules(case):
    """A bool tensor with an int counts (True + 1 == 2); float-valued ops of ints are float32, as torch's
    default dtype (not NumPy's float64)."""
    b, i = np.array([True, False, True]), np.arange(1, 4)
    ours, theirs = {
        "bool / 2": (lambda: Tensor(b) / 2, lambda: torch.tensor(b) / 2),
        "bool + 1": (lambda: Tensor(b) + 1, lambda: torch.tensor(b) + 1),
        "2 * bool": (lambda: 2 * Tensor(b), lambda: 2 * torch.tensor(b)),
        "int exp": (lambda: Tensor(i).exp(), lambda: torch.tensor(i).exp()),
        "int log": (lambda: Tensor(i).log(), lambda: torch.tensor(i).log()),
        "int sigmoid": (lambda: F.sigmoid(Tensor(i)), lambda: torch.tensor(i).sigmoid()),
        "int tanh": (lambda: F.tanh(Tensor(i)), lambda: torch.tensor(i).tanh()),
        "int softmax": (lambda: F.softmax(Tensor(i)), lambda: torch.tensor(i).float().softmax(-1)),
        "int log_softmax": (lambda: F.log_softmax(Tensor(i)), lambda: torch.tensor(i).float().log_softmax(-1)),
        "int / 1": (lambda: Tensor(i) / 1, lambda: torch.tensor(i) / 1),
    }[case]
    y, yt = ours(), theirs()
    assert y.dtype == np.dtype(str(yt.dtype).removeprefix("torch.")), (y.dtype, yt.dtype)
    np.testing.assert_allclose(y.data, yt.numpy(), rtol=1e-6)


def test_numpy_integer_axes_work_as_ints():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for ax in np.arange(-3, 3):  # np.int64
        for name in ("sum", "mean", "max"):
            np.testing.assert_allclose(getattr(Tensor(x), name)(ax).data, getattr(torch.tensor(x), name)(int(ax))
                                       if name != "max" else torch.tensor(x).max(int(ax)).values, rtol=1e-12)
        np.testing.assert_allclose(F.softmax(Tensor(x), ax).data, torch.tensor(x).softmax(int(ax)), rtol=1e-12)
    assert Tensor(x).sum((np.int64(0), np.int64(2))).shape == (3,)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_is_empty_as_in_torch(fn):
    x = np.zeros((0, 4), np.float32)
    compare(lambda t: getattr(F, fn)(t, 0), lambda t: getattr(TF, fn)(t, 0), (x,), np.float32)
