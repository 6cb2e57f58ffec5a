"""Forward values of im2col, col2im, conv2d and pooling against plain-loop references (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.conv import col2im_array, conv_output_size, im2col_array


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_loops(x, w, b, stride, padding):
    """Cross-correlation written as the definition: one dot product per output pixel."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, oc, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y if b is None else y + b[None, :, None, None]


def pool_loops(x, kernel, stride, padding, reduce, pad_value):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = reduce(xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(2, 3))
    return y


# ----------------------------------------------------------------------------- im2col / col2im


def test_im2col_is_the_books_layout():
    """Rows are output pixels (n, oh, ow); columns are (channel, kernel row, kernel column)."""
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    col = im2col_array(x, 2, 2)
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2)
    # image 0, output pixel (0, 1): channel 0 window then channel 1 window, row-major
    np.testing.assert_array_equal(col[1], [1, 2, 4, 5, 10, 11, 13, 14])
    # image 1, output pixel (1, 0)
    np.testing.assert_array_equal(col[4 + 2], x[1, :, 1:3, 0:2].ravel())
    # same layout as the book's loop implementation for a general case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6))
    kh, kw, s, p = 3, 2, 2, 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = conv_output_size(5, kh, s, p), conv_output_size(6, kw, s, p)
    rows = [xp[n, :, i * s:i * s + kh, j * s:j * s + kw].ravel()
            for n in range(2) for i in range(oh) for j in range(ow)]
    np.testing.assert_array_equal(F.im2col(Tensor(x), kh, kw, s, p).data, np.stack(rows))


def test_col2im_sums_overlaps():
    """col2im(im2col(ones)) counts how many windows cover each pixel."""
    x = np.ones((1, 1, 4, 4))
    counts = col2im_array(im2col_array(x, 3, 3), x.shape, 3, 3)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])
    # with stride 2 and padding 1 the border pixels are covered once, the middle row/column twice
    counts = col2im_array(im2col_array(x, 3, 3, (2, 2), (1, 1)), x.shape, 3, 3, (2, 2), (1, 1))
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1, 1], [2, 4, 2, 2], [1, 2, 1, 1], [1, 2, 1, 1]])


def test_im2col_uncovered_pixels_get_zero_gradient():
    """A stride that skips the last row/column: those pixels are in no window."""
    x = Tensor(np.ones((1, 1, 5, 5)), requires_grad=True)
    F.im2col(x, 2, 2, 2).sum().backward()
    assert np.all(x.grad.data[0, 0, 4, :] == 0) and np.all(x.grad.data[0, 0, :, 4] == 0)
    assert np.all(x.grad.data[0, 0, :4, :4] == 1)


def test_im2col_keeps_dtype():
    for dt in (np.float32, np.float64):
        x = np.ones((1, 2, 4, 4), dtype=dt)
        assert im2col_array(x, 3, 3, (1, 1), (1, 1)).dtype == dt
        assert col2im_array(im2col_array(x, 3, 3), x.shape, 3, 3).dtype == dt


# ----------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize("kernel,stride,padding", [
    ((3, 3), 1, 0), ((3, 3), 1, 1), ((5, 5), 2, 2), ((2, 3), (2, 1), (0, 1)), ((1, 1), 3, 0), ((4, 2), 3, (2, 0)),
], ids=str)
def test_conv2d_matches_loops(rng, kernel, stride, padding):
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((4, 3, *kernel))
    b = rng.standard_normal(4)
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride, padding)
    np.testing.assert_allclose(y.data, conv2d_loops(x, w, b, stride, padding), rtol=1e-10, atol=1e-12)
    y = F.conv2d(Tensor(x), Tensor(w), None, stride, padding)
    np.testing.assert_allclose(y.data, conv2d_loops(x, w, None, stride, padding), rtol=1e-10, atol=1e-12)


def test_conv2d_is_cross_correlation():
    """No kernel flip: a one-hot kernel at (0, 0) picks the top-left of each window."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1
    np.testing.assert_array_equal(F.conv2d(Tensor(x), Tensor(w)).data[0, 0], x[0, 0, :3, :3])


def test_conv2d_float32_stays_float32(rng):
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(4, np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, 2, 1)
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


# per-image, batch-innermost (OW 6, batch >= 2*OW) and single-GEMM (oc*ckk*OH*OW >= 2**23) paths
@pytest.mark.parametrize("x_shape, w_shape", [((2, 2, 6, 6), (3, 2, 3, 3)), ((20, 2, 6, 6), (3, 2, 3, 3)),
                                              ((2, 16, 32, 32), (64, 16, 3, 3))])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float64, np.float32), (np.float64, np.float32, np.float32),
                                    (np.float32, np.float32, np.float64)])
def test_conv2d_mixed_dtypes_promote_on_every_path(rng, x_shape, w_shape, dtypes):
    """Mixed float32/float64 operands compute in NumPy's promoted dtype whatever the path, and each
    gradient has its own tensor's dtype (PyTorch's rule for .grad)."""
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    x, w, b = (Tensor(a.astype(d), requires_grad=True) for a, d in zip(arrays, dtypes))
    y = F.conv2d(x, w, b, 1, 1)
    assert y.dtype == np.float64
    gy = rng.standard_normal(y.shape)
    y.backward(Tensor(gy))
    x64, w64, b64 = (Tensor(t.data.astype(np.float64), requires_grad=True) for t in (x, w, b))
    y64 = F.conv2d(x64, w64, b64, 1, 1)
    y64.backward(Tensor(gy))
    np.testing.assert_allclose(y.data, y64.data, rtol=1e-12, atol=1e-12)
    for t, t64, d in zip((x, w, b), (x64, w64, b64), dtypes):
        assert t.grad.dtype == d
        np.testing.assert_allclose(t.grad.data, t64.grad.data.astype(d), rtol=1e-5, atol=1e-5)


def test_gradients_have_their_tensors_dtype():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    s = Tensor(np.array([0.5, 3.0]), requires_grad=True)  # float64
    y = x * s
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.data, [0.5, 3.0])


def test_conv2d_weight_gradient_formula(rng):
    """dL/dW = sum over positions of gy * window, checked by loops on one small case."""
    x, w = rng.standard_normal((2, 2, 4, 5)), rng.standard_normal((3, 2, 2, 3))
    gy = rng.standard_normal((2, 3, 3, 3))
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    F.conv2d(xt, wt).backward(Tensor(gy))
    gw = np.zeros_like(w)
    gx = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            gw += np.einsum("no,nchw->ochw", gy[:, :, i, j], x[:, :, i:i + 2, j:j + 3])
            gx[:, :, i:i + 2, j:j + 3] += np.einsum("no,ochw->nchw", gy[:, :, i, j], w)
    np.testing.assert_allclose(wt.grad.data, gw, rtol=1e-10)
    np.testing.assert_allclose(xt.grad.data, gx, rtol=1e-10)


# ----------------------------------------------------------------------------- pooling


POOLS = [(2, None, 0), (3, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1), ((3, 2), (2, 1), (1, 0)), (2, 2, 0)]


@pytest.mark.parametrize("kernel,stride,padding", POOLS, ids=str)
def test_max_pool2d_matches_loops(rng, kernel, stride, padding):
    x = rng.standard_normal((2, 3, 7, 6))
    y = F.max_pool2d(Tensor(x), kernel, stride, padding)
    s = kernel if stride is None else stride
    np.testing.assert_array_equal(y.data, pool_loops(x, kernel, s, padding, np.max, -np.inf))


@pytest.mark.parametrize("kernel,stride,padding", POOLS, ids=str)
def test_avg_pool2d_matches_loops_counting_padding(rng, kernel, stride, padding):
    x = rng.standard_normal((2, 3, 7, 6))
    y = F.avg_pool2d(Tensor(x), kernel, stride, padding)
    s = kernel if stride is None else stride
    np.testing.assert_allclose(y.data, pool_loops(x, kernel, s, padding, np.mean, 0.0), rtol=1e-12)


def test_max_pool_padding_acts_as_minus_infinity():
    x = Tensor(-np.ones((1, 1, 2, 2)) * 5)  # all negative: a zero pad would win
    np.testing.assert_array_equal(F.max_pool2d(x, 2, 1, 1).data, -5 * np.ones((1, 1, 3, 3)))


def test_avg_pool_padding_counts_as_zero():
    x = Tensor(np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 1, 1).data[0, 0], [[0.25, 0.5, 0.25], [0.5, 1, 0.5],
                                                                      [0.25, 0.5, 0.25]])


def test_max_pool_gradient_goes_to_the_first_maximum_of_a_tie():
    x = Tensor(np.array([[[[1.0, 1.0], [1.0, 0.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data[0, 0], [[1, 0], [0, 0]])


def test_max_pool_overlapping_windows_accumulate_gradient():
    """With stride < kernel one pixel can be the max of several windows."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0
    xt = Tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, 3, 1)
    assert np.all(y.data == 9.0)  # all 9 windows contain the centre
    y.sum().backward()
    assert xt.grad.data[0, 0, 2, 2] == 9 and xt.grad.data.sum() == 9


def test_pool_stride_defaults_to_kernel_size():
    x = Tensor(np.arange(36.0).reshape(1, 1, 6, 6))
    assert F.max_pool2d(x, 2).shape == (1, 1, 3, 3)
    assert F.avg_pool2d(x, 3).shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(F.max_pool2d(x, 2).data[0, 0], [[7, 9, 11], [19, 21, 23], [31, 33, 35]])


def test_pool_tuple_arguments_and_floor_size():
    x = Tensor(np.zeros((1, 2, 7, 9)))
    assert F.max_pool2d(x, (2, 3), (2, 3)).shape == (1, 2, 3, 3)
    assert F.avg_pool2d(x, (3, 2), (2, 1), (1, 0)).shape == (1, 2, 4, 8)


def test_pool_keeps_float32(rng):
    x = Tensor(rng.standard_normal((1, 2, 6, 6)).astype(np.float32), requires_grad=True)
    y = F.max_pool2d(x, 3, 2, 1) + F.avg_pool2d(x, 3, 2, 1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("n, size", [(3, 5), (40, 8), (2, 40)])  # per-image, batch-innermost, long rows
def test_conv2d_without_input_channels_is_its_bias(n, size):
    x = Tensor(np.zeros((n, 0, size, size)), requires_grad=True)
    w = Tensor(np.zeros((4, 0, 3, 3)), requires_grad=True)
    b = Tensor(np.arange(4.0), requires_grad=True)
    y = F.conv2d(x, w, b, 1, 1)
    np.testing.assert_array_equal(y.data, np.broadcast_to(np.arange(4.0)[:, None, None], (n, 4, size, size)))
    y.backward(Tensor(np.ones(y.shape)))
    assert x.grad.shape == x.shape and w.grad.shape == w.shape
    np.testing.assert_array_equal(b.grad.data, np.full(4, n * size * size))
