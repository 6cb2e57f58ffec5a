"""Every fast path gives the same numbers as the general path (ties, padding, odd sizes, dtypes).

Fast paths under test: the disjoint max-pool scatter (stride >= kernel, no padding), the
max-only forward when nothing is recorded, the stride-1 conv-transpose (input gradient) with
long contiguous adds, the batched NCHW im2col, the batch-innermost layout for small maps, and the
ReLU/max-pool no-grad forwards. Plus:
no float64 array anywhere in a float32 training step.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, conv, models, optim
from tinygrad_cnn import tensor as _tensor

DTYPES = (np.float32, np.float64)


# --------------------------------------------------------------------------- max-pool


def _ref_maxpool(x, k, s, p):
    """Loop reference: values and the first (row-major) argmax of each window, padding = -inf."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf, dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.empty((n, c, oh, ow), x.dtype)
    gx_pos = np.empty((n, c, oh, ow, 2), int)  # winner's (row, col) in the unpadded input
    for a, b, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        win = xp[a, b, i * sh:i * sh + kh, j * sw:j * sw + kw]
        flat = int(np.argmax(win))  # NumPy's argmax returns the first maximum in row-major order
        y[a, b, i, j] = win.flat[flat]
        gx_pos[a, b, i, j] = (i * sh + flat // kw - ph, j * sw + flat % kw - pw)
    return y, gx_pos


def _ref_maxpool_grad(x_shape, gy, pos):
    gx = np.zeros(x_shape, gy.dtype)
    n, c, oh, ow = gy.shape
    for a, b, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        r, q = pos[a, b, i, j]
        gx[a, b, r, q] += gy[a, b, i, j]
    return gx


def _tied(rng, shape, dtype):
    """Small integers after a ReLU: many ties inside windows, including all-zero windows."""
    return np.maximum(rng.integers(-2, 3, size=shape), 0).astype(dtype)


POOL_CASES = [
    # (input shape, kernel, stride, padding)
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),    # the common case: windows tile the input
    ((2, 2, 7, 9), (2, 2), (2, 2), (0, 0)),    # odd sizes: the last row/col is dropped
    ((1, 2, 9, 7), (3, 2), (3, 2), (0, 0)),    # rectangular kernel, k == s
    ((1, 2, 10, 11), (2, 2), (3, 3), (0, 0)),  # stride > kernel: gaps between windows
    ((2, 2, 11, 11), (3, 3), (2, 2), (0, 0)),  # overlapping (AlexNet's 3/2)
    ((1, 3, 7, 6), (3, 3), (2, 2), (1, 1)),    # overlapping with padding
    ((1, 2, 6, 6), (2, 2), (2, 2), (1, 1)),    # k == s with padding: general path
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
@pytest.mark.parametrize("data", ["random", "ties"])
def test_max_pool_matches_loop_reference_incl_tie_rule(shape, k, s, p, dtype, data):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype) if data == "random" else _tied(rng, shape, dtype)
    y_ref, pos = _ref_maxpool(x, k, s, p)
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, k, s, p)
    y.backward(Tensor(gy))
    assert y.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_array_equal(y.data, y_ref)
    g_ref = _ref_maxpool_grad(shape, gy, pos)
    np.testing.assert_array_equal(xt.grad.data != 0, g_ref != 0)  # the same winners
    if s[0] >= k[0] and s[1] >= k[1]:
        np.testing.assert_array_equal(xt.grad.data, g_ref)
    else:  # overlapping windows: sums may be added in another order
        np.testing.assert_allclose(xt.grad.data, g_ref, rtol=1e-6, atol=1e-6)
    with tc.no_grad():  # the max-only forward gives the same values
        np.testing.assert_array_equal(F.max_pool2d(Tensor(x), k, s, p).data, y_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", [((2, 3, 8, 8), (2, 2), (2, 2)), ((2, 2, 7, 9), (2, 2), (2, 2)),
                                       ((1, 2, 10, 11), (2, 2), (3, 3)), ((1, 2, 9, 7), (3, 2), (3, 2))])
def test_disjoint_scatter_equals_general_scatter(shape, k, s, dtype):
    rng = np.random.default_rng(1)
    x = _tied(rng, shape, dtype)
    pool = conv.MaxPool2d(k, s, (0, 0))
    pool.needs_input_grad = (True,)
    y = pool.forward(x)
    gy = rng.standard_normal(y.shape).astype(dtype)
    fast = conv._scatter_disjoint(gy, pool.argmax, shape, *k, *s)
    taps = [pool.tap(t) for t in range(k[0] * k[1])]
    general = conv._scatter_general(gy, pool.argmax, shape, taps, *s, 0, 0)
    np.testing.assert_array_equal(fast, general)
    assert fast.dtype == dtype


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_unit_stride_offset_views_equal_the_strided_offset_views(shape, k, s, p):
    rng = np.random.default_rng(12)
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    xpad = conv.pad2d(rng.standard_normal(shape).astype(np.float32), ph, pw, -np.inf)
    oh, ow = (xpad.shape[2] - kh) // sh + 1, (xpad.shape[3] - kw) // sw + 1
    fast = conv._unit_stride_offsets(xpad, [divmod(t, kw) for t in range(kh * kw)], sh, sw, oh, ow)
    for i, view in enumerate(fast):
        np.testing.assert_array_equal(view, conv._offset(xpad, i // kw, i % kw, sh, sw, oh, ow))
        assert view.strides[-1] == xpad.itemsize  # rows are contiguous


def test_max_pool_ties_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for shape, k, s, p in POOL_CASES:
        x = _tied(rng, shape, np.float32)
        gy = rng.standard_normal(F.max_pool2d(Tensor(x), k, s, p).shape).astype(np.float32)
        xt = Tensor(x, requires_grad=True)
        F.max_pool2d(xt, k, s, p).backward(Tensor(gy))
        tx = torch.tensor(x, requires_grad=True)
        torch.nn.functional.max_pool2d(tx, k, s, p).backward(torch.tensor(gy))
        g, tg = xt.grad.data, tx.grad.numpy()
        np.testing.assert_array_equal(g != 0, tg != 0, err_msg=str((shape, k, s, p)))  # same winners
        np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-6, err_msg=str((shape, k, s, p)))


@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), (0, 0)), ((2, 2), (3, 3), (0, 0)), ((3, 3), (2, 2), (1, 1))])
def test_max_pool_fast_paths_pass_gradcheck(k, s, p):
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 2, 7, 7)), requires_grad=True)
    assert tc.gradcheck(lambda t: F.max_pool2d(t, k, s, p), (x,))
    assert tc.gradgradcheck(lambda t: F.max_pool2d(t, k, s, p), (x,))


def test_max_pool_records_no_argmax_without_grad():
    x = Tensor(np.random.default_rng(4).standard_normal((1, 1, 4, 4)).astype(np.float32))
    pool = conv.MaxPool2d((2, 2), (2, 2), (0, 0))
    pool(x)  # input does not require grad: nothing to route back
    assert not hasattr(pool, "argmax")


# --------------------------------------------------------------------------- convolution

CONV_CASES = [
    # (x shape, weight shape, stride, padding)
    ((2, 3, 7, 9), (4, 3, 3, 2), (1, 1), (1, 1)),
    ((3, 2, 10, 6), (5, 2, 5, 5), (1, 1), (2, 2)),
    ((2, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0)),   # LeNet's conv2
    ((2, 3, 9, 8), (4, 3, 3, 3), (2, 2), (1, 1)),
    ((1, 2, 11, 13), (3, 2, 4, 3), (3, 2), (2, 1)),
    ((2, 1, 5, 5), (2, 1, 5, 5), (1, 1), (0, 0)),      # kernel == input
    ((2, 4, 6, 5), (3, 4, 1, 1), (1, 1), (0, 0)),      # 1x1
]


def _book_conv_grads(x, w, gy, s, p):
    """Reference through the book's im2col layout: y, dx (via col2im_array), dw."""
    oc, c, kh, kw = w.shape
    n = x.shape[0]
    col = conv.im2col_array(x, kh, kw, s, p)                       # (N*OH*OW, C*kh*kw)
    oh, ow = gy.shape[2:]
    y = (col @ w.reshape(oc, -1).T).reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
    rows = gy.transpose(0, 2, 3, 1).reshape(-1, oc)
    dx = conv.col2im_array(rows @ w.reshape(oc, -1), x.shape, kh, kw, s, p)
    dw = (rows.T @ col).reshape(w.shape)
    return y, dx, dw


@pytest.fixture(params=["per-image", "per-image-long-rows", "wide", "long-rows", "batch-inner"])
def conv_path(request, monkeypatch):
    """Run a test with one GEMM per image (output rows OW or phase-plane Wq wide), the single-GEMM
    layout with OW-wide ("wide") or Wq-wide ("long-rows") output rows, and the batch-innermost layout."""
    wide = request.param in ("wide", "long-rows")
    image_width = (lambda x_shape, oc, kh, kw, stride, padding: conv._phase_width(x_shape, stride, padding)) \
        if request.param == "per-image-long-rows" else \
        (lambda x_shape, oc, kh, kw, stride, padding: conv._out_hw("t", x_shape, kh, kw, *stride, *padding)[1])
    monkeypatch.setattr(conv, "_image_row_width", image_width)
    monkeypatch.setattr(conv, "_WIDE_GEMM_MACS", 0 if wide else 1 << 62)
    monkeypatch.setattr(conv, "_LONG_ROW_MAX_WASTE", float("inf") if request.param == "long-rows" else -1.0)
    monkeypatch.setattr(conv, "_WIDE_CHUNK_BYTES", 1)  # one image per chunk: the chunk loops run
    monkeypatch.setattr(conv, "_COL_CHUNK_BYTES", 1)
    monkeypatch.setattr(conv, "_batch_inner", lambda n, ow: request.param == "batch-inner")
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,s,p", CONV_CASES)
def test_conv_paths_match_the_book_layout(xs, ws, s, p, dtype, conv_path):
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, stride=s, padding=p)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(gy))
    y_ref, dx_ref, dw_ref = _book_conv_grads(x, w, gy, s, p)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    assert y.dtype == xt.grad.dtype == wt.grad.dtype == dtype
    np.testing.assert_allclose(y.data, y_ref, **tol)
    np.testing.assert_allclose(xt.grad.data, dx_ref, **tol)
    np.testing.assert_allclose(wt.grad.data, dw_ref, **tol)


@pytest.mark.parametrize("trained", ["weight and bias", "weight only", "bias only"])
@pytest.mark.parametrize("xs,ws,s,p", [c for i, c in enumerate(CONV_CASES) if i not in (1, 2)])
def test_conv_paths_bias_gradient_with_and_without_the_weights(xs, ws, s, p, trained, conv_path):
    """The bias gradient rides on the weight gradient's GEMM (a row of ones); with a frozen weight
    it is a sum of ``gy``, and a frozen bias leaves the weight gradient as it was."""
    rng = np.random.default_rng(8)
    xs = (3, *xs[1:])
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    wt, bt = Tensor(w, requires_grad=trained != "bias only"), Tensor(b, requires_grad=trained != "weight only")
    xt = Tensor(x, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride=s, padding=p)
    gy = rng.standard_normal(y.shape)
    y.backward(Tensor(gy))
    y_ref, dx_ref, dw_ref = _book_conv_grads(x, w, gy, s, p)
    np.testing.assert_allclose(y.data, y_ref + b[:, None, None], rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(xt.grad.data, dx_ref, rtol=1e-12, atol=1e-11)
    if trained == "bias only":
        assert wt.grad is None
    else:
        np.testing.assert_allclose(wt.grad.data, dw_ref, rtol=1e-12, atol=1e-11)
    if trained == "weight only":
        assert bt.grad is None
    else:
        assert bt.grad.shape == b.shape and bt.grad.dtype == np.float64
        np.testing.assert_allclose(bt.grad.data, gy.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,p", [
    *[(c[0], c[1], c[3]) for c in CONV_CASES if c[2] == (1, 1)],
    ((2, 3, 6, 7), (4, 3, 2, 3), (3, 4)),   # padding beyond the kernel: rows and columns no weight reaches
    ((3, 2, 4, 9), (2, 2, 4, 1), (0, 0)),   # even kernel rows, a single kernel column
    ((2, 5, 8, 8), (6, 5, 3, 3), (1, 0)),   # padding along y only
], ids=str)
@pytest.mark.parametrize("impl", ["long adds", "row-unfold", "row-unfold, one image a chunk"])
def test_stride1_conv_transposes_equal_the_col2im_path(xs, ws, p, dtype, impl, monkeypatch):
    """The stride-1 input gradients against the general col2im: per image with long contiguous adds,
    and the single-GEMM one with the kernel rows in the GEMM (kw adds left)."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal(ws).astype(dtype)
    oc, c, kh, kw = ws
    n, _, h, wd = xs
    oh, ow = h + 2 * p[0] - kh + 1, wd + 2 * p[1] - kw + 1
    gy = rng.standard_normal((n, oc, oh, ow)).astype(dtype)
    general = conv.col2im_batched(np.matmul(w.reshape(oc, -1).T, gy.reshape(n, oc, -1)), xs, kh, kw, (1, 1), p)
    if impl == "long adds":
        fast = conv._conv_transpose_stride1(gy, w, (h, wd), p)
    else:
        if impl.endswith("a chunk"):
            monkeypatch.setattr(conv, "_WIDE_CHUNK_BYTES", 1)
        fast = conv._conv_transpose_row_unfold(gy, w, (h, wd), p)
    assert fast.shape == general.shape == xs and fast.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast, general, **tol)


@pytest.mark.parametrize("xs,ws,s,p", [c for i, c in enumerate(CONV_CASES) if i not in (1, 2)])  # big ones slow
def test_conv_paths_pass_gradcheck_first_and_second_order(xs, ws, s, p, conv_path):
    rng = np.random.default_rng(7)
    xs = (2 if conv_path in ("wide", "long-rows") else 1, *xs[1:])  # the single-GEMM paths need a batch
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal(ws), requires_grad=True)
    b = Tensor(rng.standard_normal(ws[0]), requires_grad=True)
    fn = lambda x, w, b: F.conv2d(x, w, b, s, p)  # noqa: E731
    assert tc.gradcheck(fn, (x, w, b))
    assert tc.gradgradcheck(fn, (x, w, b))


def test_batch_inner_layout_is_chosen_for_small_maps_in_big_batches():
    assert conv._batch_inner(128, 10) and conv._batch_inner(100, 7)       # LeNet conv2, DeepConvNet's last convs
    assert not conv._batch_inner(100, 24) and not conv._batch_inner(128, 28)  # SimpleConvNet, LeNet conv1
    assert not conv._batch_inner(8, 13)                                   # AlexNet-sized batches: per image / wide


def test_batch_inner_conv_matches_torch_on_lenets_second_conv():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((32, 6, 14, 14), (16, 6, 5, 5), (16,)))
    assert conv._batch_inner(32, 10)
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(gy))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb)
    ty.backward(torch.tensor(gy))
    for ours, ref in ((y, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad)):
        np.testing.assert_allclose(ours.data, ref.detach().numpy(), rtol=1e-4, atol=1e-3)  # float32 sums of 3,200


@pytest.mark.parametrize("x_shape,w_shape,s,p,long_rows", [
    ((2, 3, 224, 224), (96, 3, 11, 11), 4, 2, True),   # AlexNet conv1: long rows, one image a chunk
    ((4, 32, 27, 27), (64, 32, 5, 5), 1, 2, False),    # conv2-like: OW-wide rows, kept chunks of 3 and 1
])
def test_single_gemm_paths_match_torch_at_alexnet_sizes(x_shape, w_shape, s, p, long_rows):
    """The default thresholds, no monkeypatching: the paths W3a and W3b take, against PyTorch."""
    torch = pytest.importorskip("torch")
    oh, ow = conv._out_hw("t", x_shape, *w_shape[2:], s, s, p, p)
    assert conv._wide(x_shape[0], w_shape[0], int(np.prod(w_shape[1:])) + 1, oh * ow)
    assert conv._from_planes(x_shape, *w_shape[2:], (s, s), (p, p)) == long_rows
    rng = np.random.default_rng(15)
    x, w, b = (rng.standard_normal(a).astype(np.float32) for a in (x_shape, w_shape, w_shape[:1]))
    w *= 0.05
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride=s, padding=p)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(gy))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
    ty.backward(torch.tensor(gy))
    for ours, ref in ((y, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad)):
        ref = ref.detach().numpy()
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours.data, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_per_image_long_rows_are_chosen_where_the_columns_outweigh_the_output():
    assert conv._image_row_width((128, 1, 28, 28), 6, 5, 5, (1, 1), (2, 2)) == 32    # LeNet conv1: 25 rows, 6 channels
    assert conv._image_row_width((100, 1, 28, 28), 30, 5, 5, (1, 1), (0, 0)) == 24   # SimpleConvNet: 30 channels
    assert conv._image_row_width((8, 3, 16, 16), 6, 7, 7, (1, 1), (0, 0)) == 10      # 6 spare columns per 10


def test_per_image_long_rows_match_torch_on_lenets_first_conv():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((20, 1, 28, 28), (6, 1, 5, 5), (6,)))
    assert not conv._batch_inner(20, 28) and not conv._wide(20, 6, 26, 28 * 28)
    assert conv._image_row_width(x.shape, 6, 5, 5, (1, 1), (2, 2)) > 28
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=2)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(gy))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=2)
    ty.backward(torch.tensor(gy))
    for ours, ref in ((y, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad)):
        np.testing.assert_allclose(ours.data, ref.detach().numpy(), rtol=1e-4, atol=1e-3)
        assert ours.dtype == np.float32
    assert y.data.flags.c_contiguous  # the long rows are cropped into an ordinary NCHW array


def test_wide_layout_is_chosen_for_alexnet_sized_layers_only():
    assert conv._wide(8, 96, 364, 55 * 55) and conv._wide(8, 384, 2305, 13 * 13)
    assert not conv._wide(100, 30, 26, 24 * 24) and not conv._wide(128, 16, 151, 100)
    assert not conv._wide(1, 384, 2305, 169)  # a single image: per-image is already one GEMM


def test_im2col_batched_is_the_book_layout_rearranged():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    book = conv.im2col_array(x, 3, 2, (2, 1), (1, 0))
    batched = conv.im2col_batched(x, 3, 2, (2, 1), (1, 0))
    n, ckk, p = batched.shape
    np.testing.assert_array_equal(batched.transpose(0, 2, 1).reshape(n * p, ckk), book)
    with_ones = conv.im2col_batched(x, 3, 2, (2, 1), (1, 0), ones_row=True)  # the bias-in-GEMM layout
    assert with_ones.shape == (n, ckk + 1, p) and with_ones.dtype == np.float32
    np.testing.assert_array_equal(with_ones[:, :-1], batched)
    np.testing.assert_array_equal(with_ones[:, -1], 1)
    wide = conv.im2col_wide(x, 3, 2, (2, 1), (1, 0), ones_row=True)  # (C*kh*kw + 1, N*OH*OW)
    assert wide.shape == (ckk + 1, n * p)
    np.testing.assert_array_equal(wide[:-1].T, book)
    np.testing.assert_array_equal(wide[-1], 1)
    oh, ow = 4, 5
    wq = 6  # ceil((6 + 2*0) / 1): rows laid out 6 wide, the last column of each is unused
    long_rows = conv.im2col_long_rows(x, 3, 2, (2, 1), (1, 0), ones_row=True)  # (C*kh*kw + 1, N*OH*Wq)
    assert long_rows.shape == (ckk + 1, n * oh * wq)
    used = long_rows[:-1].reshape(ckk, n, oh, wq)[..., :ow].reshape(ckk, n * p)
    np.testing.assert_array_equal(used, wide[:-1])
    np.testing.assert_array_equal(long_rows[-1], 1)


@pytest.mark.parametrize("stride", [(1, 1), (2, 3), (4, 4)])
def test_long_rows_match_im2col_wide_for_strided_kernels(stride):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 23, 21)).astype(np.float32)
    kh, kw, (ph, pw) = 5, 7, (2, 1)
    wide = conv.im2col_wide(x, kh, kw, stride, (ph, pw))
    long_rows = conv.im2col_long_rows(x, kh, kw, stride, (ph, pw))
    wq = -(-(21 + 2 * pw) // stride[1])  # the phase planes' width
    oh, ow = conv._out_hw("t", x.shape, kh, kw, *stride, ph, pw)
    used = long_rows.reshape(-1, 2, oh, wq)[..., :ow].reshape(wide.shape)
    np.testing.assert_array_equal(used, wide)


@pytest.mark.parametrize("long_rows", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_single_gemm_chunks_of_several_images_reuse_one_buffer(long_rows, dtype, monkeypatch):
    """5 images in chunks of 2, 2 and 1: the full chunks share a buffer, the last one has its own."""
    monkeypatch.setattr(conv, "_WIDE_GEMM_MACS", 0)
    monkeypatch.setattr(conv, "_LONG_ROW_MAX_WASTE", float("inf") if long_rows else -1.0)
    x_shape, (kh, kw), s, p = (5, 2, 13, 11), (4, 3), (3, 2), (1, 2)
    oh, ow = conv._out_hw("t", x_shape, kh, kw, *s, *p)
    assert conv._from_planes(x_shape, kh, kw, s, p) == long_rows
    monkeypatch.setattr(conv, "_WIDE_MIN_COLUMNS", 2 * oh * ow)
    assert conv._wide_chunks(5, 2 * kh * kw, oh * ow, 4) == range(0, 5, 2)
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((3, 2, kh, kw)).astype(dtype)
    runs = conv._long_row_runs(x, kh, kw, s, p) if long_rows else None
    chunks = []
    for i, j, col in conv._column_chunks(x, kh, kw, s, p, ones_row=True, runs=runs):
        # the same columns whether copied from the phase planes (cropped to OW) or from the window view
        np.testing.assert_array_equal(col, conv.im2col_wide(x[i:j], kh, kw, s, p, ones_row=True))
        chunks.append((i, j, col))
    assert [(i, j) for i, j, _ in chunks] == [(0, 2), (2, 4), (4, 5)]
    assert chunks[0][2] is chunks[1][2] and chunks[2][2] is not chunks[0][2]
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, np.ones(3, dtype)))
    y = F.conv2d(xt, wt, bt, stride=s, padding=p)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(gy))
    y_ref, dx_ref, dw_ref = _book_conv_grads(x, w, gy, s, p)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(y.data, y_ref + 1, **tol)
    np.testing.assert_allclose(xt.grad.data, dx_ref, **tol)
    np.testing.assert_allclose(wt.grad.data, dw_ref, **tol)
    np.testing.assert_allclose(bt.grad.data, gy.sum(axis=(0, 2, 3)), **tol)
    assert y.dtype == xt.grad.dtype == wt.grad.dtype == bt.grad.dtype == dtype


def test_single_gemm_chunks_hold_enough_columns_and_few_bytes():
    mb = 1 << 20
    assert conv._wide_chunks(8, 364, 55 * 57, 4).step == 1          # AlexNet conv1: 3135 columns an image
    assert conv._wide_chunks(8, 2401, 27 * 27, 4).step == 2         # conv2: 729 columns, but 7 MB an image
    assert len(conv._wide_chunks(8, 2305, 13 * 13, 4)) == 1         # conv3: 169 columns, 1.6 MB an image
    assert conv._wide_chunks(8, 2401, 27 * 27, 4).step * 2401 * 729 * 4 <= conv._WIDE_CHUNK_BYTES < 32 * mb


@pytest.mark.parametrize("fill", [conv.im2col_wide, conv.im2col_long_rows])
def test_im2col_into_a_buffer_fills_it_and_refuses_a_wrong_one(fill):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    ref = fill(x, 3, 3, (2, 2), (1, 1), ones_row=True)
    buf = np.full_like(ref, np.nan)
    assert fill(x, 3, 3, (2, 2), (1, 1), ones_row=True, out=buf) is buf
    np.testing.assert_array_equal(buf, ref)
    for bad in (np.empty((ref.shape[0] - 1, ref.shape[1]), np.float32), ref.astype(np.float64)):
        with pytest.raises(ValueError, match=r"im2col: out has shape"):
            fill(x, 3, 3, (2, 2), (1, 1), ones_row=True, out=bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gradient_sum_matches_numpy(dtype):
    gy = np.random.default_rng(14).standard_normal((3, 5, 4, 7)).astype(dtype)
    got = conv._sum_per_channel(gy)
    assert got.dtype == dtype and got.shape == (5,)
    np.testing.assert_allclose(got, gy.astype(np.float64).sum(axis=(0, 2, 3)),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    assert conv._sum_per_channel(gy[:0]).tolist() == [0.0] * 5  # an empty batch


def test_long_rows_are_chosen_when_they_waste_little():
    assert conv._long_rows(55, 57)      # AlexNet conv1: 11x11/4 pad 2 on 224, 2 spare columns per 55
    assert conv._long_rows(56, 58)      # a 3x3/1 pad 1 conv on 56x56
    assert not conv._long_rows(27, 31)  # 5x5 pad 2 on 27x27: 15% more GEMM work


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_bias_in_gemm_matches_bias_added_after(dtype, conv_path):
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((2, 3, 6, 7)).astype(dtype), rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), 1, 1).data
    y_ref = F.conv2d(Tensor(x), Tensor(w), None, 1, 1).data + b[:, None, None]
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_conv_input_that_does_not_require_grad_gets_no_gradient_work():
    x = Tensor(np.ones((2, 1, 6, 6), np.float32))
    w = Tensor(np.ones((2, 1, 3, 3), np.float32), requires_grad=True)
    with tc.profile(verbose=False):
        y = F.conv2d(x, w)
    y.sum().backward()
    assert x.grad is None and w.grad is not None
    np.testing.assert_array_equal(w.grad.data, np.full((2, 1, 3, 3), 2 * 16, np.float32))


# --------------------------------------------------------------------------- relu and dtypes


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_forward_and_grad_unchanged(dtype):
    x = np.array([[-1.5, 0.0, 2.0], [3.0, -0.0, -7.0]], dtype)
    xt = Tensor(x, requires_grad=True)
    y = F.relu(xt)
    y.backward(Tensor(np.full(x.shape, 2, dtype)))
    np.testing.assert_array_equal(y.data, [[0, 0, 2], [3, 0, 0]])
    np.testing.assert_array_equal(xt.grad.data, [[0, 0, 2], [2, 0, 0]])
    assert y.dtype == xt.grad.dtype == dtype
    with tc.no_grad():
        fn = F.ReLU()
        np.testing.assert_array_equal(fn(Tensor(x)).data, y.data)
        assert not hasattr(fn, "mask")  # nothing saved for a backward that cannot happen


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 8191, 8192, 8193, 3 * 8192 + 5])
@pytest.mark.parametrize("inplace", [False, True])
def test_relu_against_a_row_of_zeros_equals_numpys_maximum(size, dtype, inplace):
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    x[::5] = np.resize(np.array([np.nan, -np.inf, np.inf, -0.0, 0.0], dtype), len(x[::5]))
    ref = np.maximum(x, 0)
    got = F.relu(Tensor(x.copy()), inplace=inplace).data
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, ref)  # NaN where x is NaN, as np.maximum and torch.relu


def test_relu_gradient_at_nan_and_zero_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan, np.inf, -np.inf], np.float32)
    xt = Tensor(x, requires_grad=True)
    F.relu(xt).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).sum().backward()
    np.testing.assert_array_equal(xt.grad.data, tx.grad.numpy())  # NaN passes the gradient, 0 and -0 do not


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_of_empty_and_strided_inputs(inplace):
    x = np.random.default_rng(3).standard_normal((4, 6, 5)).astype(np.float32)
    for a in (x[:, ::2], x.transpose(2, 0, 1), x[:0]):
        base = a.copy() if not inplace else a  # in place on a strided view writes through to x
        got = F.relu(_tensor.as_tensor(base), inplace=inplace).data  # as_tensor wraps the view (Tensor() copies)
        np.testing.assert_array_equal(got, np.maximum(a, 0))
    if inplace:
        np.testing.assert_array_equal(x[:, ::2], np.maximum(x[:, ::2], 0))


@pytest.mark.parametrize("name", ["simpleconvnet", "lenet5", "lenet5-classic"])
def test_no_float64_anywhere_in_a_float32_training_step(name, monkeypatch):
    seen: list[np.dtype] = []
    wrap = _tensor.Tensor._wrap.__func__

    def spy(cls, data, requires_grad=False):
        seen.append(np.asarray(data).dtype)
        return wrap(cls, data, requires_grad)

    tc.manual_seed(0)
    model = models.get_model(name)
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = Tensor(np.random.default_rng(9).standard_normal((4, 1, 28, 28), dtype=np.float32))
    monkeypatch.setattr(_tensor.Tensor, "_wrap", classmethod(spy))
    loss = F.softmax_cross_entropy(model(x), np.array([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    floats = {d for d in seen if d.kind == "f"}
    assert floats == {np.dtype(np.float32)}, floats
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())


# --------------------------------------------------------------------------- bench CLI (structure, never timings)


def test_bench_cli_runs_a_workload_in_a_subprocess_and_writes_json(tmp_path, capsys):
    import json

    from tinygrad_cnn.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--workloads", "W3d", "--reps", "1", "--no-torch", "--no-memory", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["workloads"]["W3d"]
    assert set(result["workloads"]) == {"W3d"} and row["ours"]["reps"] == 1
    assert row["ours"]["min_ms"] <= row["ours"]["median_ms"]
    assert "torch" not in row and result["machine"]["blas_threads"] >= 1
    assert "W3d" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--workloads", "W9"], "argument --workloads: unknown workload(s) W9; choose from W1,W2,W3a,W3b,W3c,W3d,W4"),
    (["--workloads", ","], "argument --workloads: unknown workload(s) (none given); choose from "
                           "W1,W2,W3a,W3b,W3c,W3d,W4"),
    (["--reps", "0"], "argument --reps: must be an integer >= 1, got 0"),
    (["--rounds", "x"], "argument --rounds: must be an integer >= 1, got 'x'"),
    (["--baseline", "/nonexistent"], "argument --baseline: /nonexistent: no tinygrad_cnn package there"),
], ids=["workload", "empty", "reps", "rounds", "baseline"])
def test_bench_cli_bad_arguments_are_one_line_usage_errors(capsys, argv, message):
    from tinygrad_cnn.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv, "--no-torch"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"tinygrad-cnn bench: error: {message}"


@pytest.mark.parametrize("env,expected", [
    ({"OPENBLAS_NUM_THREADS": "1"}, 1),
    ({"OMP_NUM_THREADS": "3"}, 3),
    ({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, 2),
])
def test_bench_thread_count_without_threadpoolctl_follows_openblas_env(env, expected, monkeypatch):
    """PyTorch must get NumPy's BLAS thread count also where threadpoolctl is not installed."""
    from tinygrad_cnn.cli import bench

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # as if not installed
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert bench.blas_threads() == expected
