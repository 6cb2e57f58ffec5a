"""Property tests (hypothesis): conv/pool output sizes follow the floor formula; col2im is im2col's adjoint."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor  # noqa: E402
from tinygrad_cnn.conv import col2im_array, im2col_array  # noqa: E402

FAST = settings(max_examples=60, deadline=None, database=None)  # no .hypothesis/ left behind


@st.composite
def geometry(draw, max_pad_half_kernel: bool = False):
    """Random N, C, H, W, kernel (kh, kw), stride (sh, sw), padding (ph, pw) with a window that fits."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if max_pad_half_kernel:
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    else:
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return n, c, h, w, (kh, kw), (sh, sw), (ph, pw)


def floor_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@FAST
@given(geometry(), st.integers(1, 4))
def test_conv2d_output_shape_is_the_floor_formula(g, oc):
    n, c, h, w, (kh, kw), (sh, sw), (ph, pw) = g
    y = F.conv2d(Tensor(np.zeros((n, c, h, w))), Tensor(np.zeros((oc, c, kh, kw))), None, (sh, sw), (ph, pw))
    assert y.shape == (n, oc, floor_size(h, kh, sh, ph), floor_size(w, kw, sw, pw))


@FAST
@given(geometry(max_pad_half_kernel=True))
def test_pool_output_shape_is_the_floor_formula(g):
    n, c, h, w, k, s, p = g
    x = Tensor(np.zeros((n, c, h, w)))
    expected = (n, c, floor_size(h, k[0], s[0], p[0]), floor_size(w, k[1], s[1], p[1]))
    assert F.max_pool2d(x, k, s, p).shape == expected
    assert F.avg_pool2d(x, k, s, p).shape == expected


@FAST
@given(geometry(), st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(g, seed):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im is exactly im2col's transpose."""
    n, c, h, w, (kh, kw), s, p = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    col = im2col_array(x, kh, kw, s, p)
    oh, ow = floor_size(h, kh, s[0], p[0]), floor_size(w, kw, s[1], p[1])
    assert col.shape == (n * oh * ow, c * kh * kw)
    cc = rng.standard_normal(col.shape)
    lhs = float(np.sum(col * cc))
    rhs = float(np.sum(x * col2im_array(cc, x.shape, kh, kw, s, p)))
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@FAST
@given(geometry(), st.integers(0, 2**32 - 1))
def test_conv2d_backward_is_the_adjoint_of_forward(g, seed):
    """Without bias conv2d is linear in x: <conv(x), gy> == <x, conv_backward(gy)>."""
    n, c, h, w, (kh, kw), s, p = g
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((n, c, h, w)), requires_grad=True)
    wt = Tensor(rng.standard_normal((2, c, kh, kw)))
    y = F.conv2d(x, wt, None, s, p)
    gy = rng.standard_normal(y.shape)
    y.backward(Tensor(gy))
    assert np.isclose(np.sum(y.data * gy), np.sum(x.data * x.grad.data), rtol=1e-10, atol=1e-10)
