"""Differential tests of the conv2d / pooling fast paths against PyTorch (the oracle, in float64).

Every path of ``conv.py`` is run on awkward geometries (batch 1, odd sizes, even and non-square
kernels, stride > kernel, padding up to and beyond the kernel, kernel == padded input, one and
many channels, ``'same'``), with chunks of two images so that the batch does not divide evenly,
and at the default thresholds on both sides of each one (``_wide``, ``_from_planes``,
``_batch_inner``, ``_image_row_width``, the image chunks). Checked: forward values and dtype,
gradients with only some inputs requiring grad, and double backward. Pooling: NaN/inf/ties in
later chunks, kernels of 256+ offsets (int32 argmax), double backward of max/avg pooling.
PyTorch runs in float64 even where ours runs in float32: its float32 CPU conv2d is wrong for some
of these shapes (e.g. x (2, 1, 8, 1), w (1, 1, 6, 3), stride (1, 2), padding 1 in torch 2.13).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, conv

torch = pytest.importorskip("torch")
TF = torch.nn.functional
# PyTorch's note that an even 'same' kernel pads a copy of the input (as this library does)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def _tol(dtype, ref):
    """Tolerance against the float64 oracle: tight for float64, float32 rounding of sums otherwise."""
    scale = float(np.abs(ref).max()) if np.size(ref) else 1.0
    if dtype == np.float64:
        return dict(rtol=1e-9, atol=1e-11 * max(1.0, scale))
    return dict(rtol=2e-4, atol=2e-5 * max(1.0, scale))


def _t64(a, requires_grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def conv_vs_torch(arrays, req, stride, padding, double=True, seed=0, dilation=1, groups=1):
    """Run conv2d on ``arrays = (x, w[, b])`` with ``req`` telling which require grad; compare the
    output, the gradients (for a random upstream gradient) and, with ``double``, the gradients of a
    random linear function of those gradients with PyTorch in float64."""
    ts = [Tensor(a, requires_grad=r) for a, r in zip(arrays, req)]
    ps = [_t64(a, r) for a, r in zip(arrays, req)]
    bias = ts[2] if len(ts) > 2 else None
    y = F.conv2d(ts[0], ts[1], bias, stride, padding, dilation, groups)
    yt = TF.conv2d(ps[0], ps[1], ps[2] if len(ps) > 2 else None, stride, padding, dilation, groups)
    dtype = np.result_type(*arrays).type
    ref = yt.detach().numpy()
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y.data, ref, **_tol(dtype, ref))
    rng = np.random.default_rng(seed)
    gy = rng.standard_normal(y.shape).astype(dtype)
    want = [i for i, r in enumerate(req) if r]
    gs = tc.grad(y, [ts[i] for i in want], Tensor(gy), create_graph=double)
    gts = torch.autograd.grad(yt, [ps[i] for i in want], _t64(gy), create_graph=double)
    for i, g, gt in zip(want, gs, gts):
        ref = gt.detach().numpy()
        assert g.dtype == arrays[i].dtype and g.shape == ref.shape  # each gradient has its tensor's dtype
        np.testing.assert_allclose(g.data, ref, err_msg=f"gradient of input {i}", **_tol(g.dtype, ref))
    if not double:
        return
    rs = [rng.standard_normal(g.shape).astype(dtype) for g in gs]
    loss = sum(((g * Tensor(r)).sum() for g, r in zip(gs, rs)), Tensor(np.zeros((), dtype)))
    loss_t = sum((g * _t64(r)).sum() for g, r in zip(gts, rs))
    ggts = torch.autograd.grad(loss_t, [ps[i] for i in want], allow_unused=True) if loss_t.requires_grad \
        else [None] * len(want)
    ggs = tc.grad(loss, [ts[i] for i in want], allow_unused=True) if loss.requires_grad else [None] * len(want)
    for i, g, gt in zip(want, ggs, ggts):
        ref = np.zeros(arrays[i].shape) if gt is None else gt.numpy()  # torch: None where it is zero
        got = np.zeros(arrays[i].shape) if g is None else g.data
        np.testing.assert_allclose(got, ref, err_msg=f"double backward, input {i}", **_tol(arrays[i].dtype, ref))


# --------------------------------------------------------------------------- every path, forced

PATHS = ["per-image", "per-image-long-rows", "wide", "long-rows", "batch-inner"]


@pytest.fixture(params=PATHS)
def forced_path(request, monkeypatch):
    """Force one conv layout for the forward, the input gradient and the weight gradient, with chunks of
    two images (one image for the stride-1 input gradient's columns)."""
    path = request.param
    wide = path in ("wide", "long-rows")
    monkeypatch.setattr(conv, "_wide", lambda n, oc, ckk, p: wide and n > 1)
    monkeypatch.setattr(conv, "_LONG_ROW_MAX_WASTE", float("inf") if path == "long-rows" else -1.0)
    monkeypatch.setattr(conv, "_batch_inner", lambda n, ow: path == "batch-inner")
    width = (lambda xs, oc, kh, kw, s, p: conv._phase_width(xs, s, p)) if path == "per-image-long-rows" else \
        (lambda xs, oc, kh, kw, s, p: conv._out_hw("t", xs, kh, kw, *s, *p)[1])
    monkeypatch.setattr(conv, "_image_row_width", width)
    monkeypatch.setattr(conv, "_images_per_chunk", lambda image_bytes, chunk_bytes=None: 2)
    monkeypatch.setattr(conv, "_WIDE_MIN_COLUMNS", 1 << 40)  # the chunk step is then _images_per_chunk's 2
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)
    return path


EDGE_CONVS = [
    # (x shape, w shape, stride, padding)
    ((1, 1, 5, 5), (2, 1, 5, 5), (1, 1), (0, 0)),    # batch 1, one channel, kernel == input
    ((3, 2, 4, 6), (3, 2, 2, 3), (3, 4), (0, 0)),    # stride > kernel: pixels no window reaches
    ((2, 3, 5, 4), (2, 3, 2, 2), (3, 2), (2, 3)),    # stride > kernel, padding > kernel
    ((3, 2, 3, 3), (2, 2, 3, 3), (1, 1), (3, 3)),    # padding == kernel: outputs of padding only
    ((2, 1, 8, 1), (2, 1, 6, 3), (1, 2), (1, 1)),    # width-1 input, kernel wider than the input
    ((5, 2, 6, 7), (4, 2, 4, 2), (2, 1), (1, 0)),    # even kernel, odd sizes, 5 images in chunks of 2
    ((3, 9, 3, 3), (7, 9, 1, 1), (2, 2), (1, 1)),    # strided 1x1 with padding, many channels
    ((4, 3, 9, 9), (2, 3, 5, 5), (4, 4), (2, 2)),    # stride 4: four phase planes per axis
    ((3, 2, 7, 7), (2, 2, 2, 2), (5, 3), (1, 1)),    # stride > kernel: phases no kernel offset reads
    ((3, 2, 7, 5), (3, 2, 3, 3), (1, 1), "same"),
    ((3, 2, 6, 5), (3, 2, 4, 2), (1, 1), "same"),    # even 'same': one more pixel at the bottom/right
]
REQS = [(True, True, True), (True, False, False), (False, True, False), (False, False, True), (False, True, True)]


@pytest.mark.parametrize("xs,ws,s,p", EDGE_CONVS, ids=str)
def test_conv_edge_geometries_match_torch_on_every_path(xs, ws, s, p, forced_path):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    for k, req in enumerate(REQS):
        conv_vs_torch((x, w, b), req, s, p, seed=k)
    conv_vs_torch((x, w), (True, True), s, p)  # no bias: no row of ones in the columns


@pytest.mark.parametrize("xs,ws,s,p", [EDGE_CONVS[i] for i in (2, 4, 5, 8)], ids=str)
@pytest.mark.parametrize("dtypes", [(np.float32,) * 3, (np.float32, np.float64, np.float32)], ids=["f32", "mixed"])
def test_conv_float32_and_mixed_dtypes_on_every_path(xs, ws, s, p, dtypes, forced_path):
    """float32 stays float32 on every path; float32 with float64 computes in float64, as NumPy
    promotes, and each gradient comes back in its own tensor's dtype."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(a).astype(d) for a, d in zip((xs, ws, ws[:1]), dtypes)]
    conv_vs_torch(arrays, (True, True, True), s, p, double=False)


@pytest.mark.parametrize("xs,ws,s,p", [EDGE_CONVS[i] for i in (1, 3, 8)], ids=str)
def test_conv_edge_geometries_pass_gradcheck_on_every_path(xs, ws, s, p, forced_path):
    rng = np.random.default_rng(3)
    xs = (2, *xs[1:])  # two images: the single-GEMM paths need a batch
    args = tuple(Tensor(rng.standard_normal(a), requires_grad=True) for a in (xs, ws, ws[:1]))
    fn = lambda x, w, b: F.conv2d(x, w, b, s, p)  # noqa: E731
    assert tc.gradcheck(fn, args)
    assert tc.gradgradcheck(fn, args)


@pytest.mark.parametrize("gs,ws,s,p,op_,bias", [
    ((3, 3, 4, 4), (3, 2, 3, 3), (1, 1), (0, 0), (0, 0), True),
    ((3, 3, 4, 5), (3, 2, 3, 2), (2, 3), (1, 0), (1, 2), False),
    ((2, 4, 3, 3), (4, 1, 2, 4), (3, 2), (2, 1), (0, 1), True),
], ids=str)
def test_conv_transpose2d_matches_torch_with_output_padding_on_every_path(gs, ws, s, p, op_, bias, forced_path):
    """PyTorch's signature (input, weight, bias, stride, padding, output_padding): values and gradients."""
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal(gs), rng.standard_normal(ws), *((rng.standard_normal(ws[1]),) if bias else ())]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [_t64(a, True) for a in arrays]
    x = F.conv_transpose2d(ours[0], ours[1], ours[2] if bias else None, s, p, op_)
    xt = TF.conv_transpose2d(theirs[0], theirs[1], theirs[2] if bias else None, s, p, output_padding=op_)
    np.testing.assert_allclose(x.data, xt.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(x.shape)
    x.backward(Tensor(g))
    xt.backward(_t64(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv_transpose2d_float32_stays_float32():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 3, 5, 5), dtype=np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 4, 3, 3), dtype=np.float32), requires_grad=True)
    y = F.conv_transpose2d(x, w, Tensor(np.zeros(4, np.float32)), stride=2, padding=1, output_padding=1)
    assert y.shape == (2, 4, 10, 10) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_conv_transpose2d_refuses_bad_arguments(forced_path):
    """A mismatch names the op and both shapes; output_padding must be below the stride (PyTorch's
    rule); the old (gy, weight, stride, padding, in_hw) order fails instead of returning garbage."""
    x, w = Tensor(np.ones((2, 3, 4, 4))), Tensor(np.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input of shape \(2, 3, 4, 4\) has 3 channels but "
                                         r"weight of shape \(2, 2, 3, 3\) expects 2"):
        F.conv_transpose2d(x, Tensor(np.ones((2, 2, 3, 3))))
    with pytest.raises(ValueError, match="output_padding .* must be smaller than either the stride"):
        F.conv_transpose2d(x, w, None, 1, 0, 1)
    with pytest.raises(ValueError, match="bias of shape"):
        F.conv_transpose2d(x, w, Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="too small"):
        F.conv_transpose2d(Tensor(np.ones((1, 3, 1, 1))), w, None, 1, 2)
    with pytest.raises((ValueError, TypeError)):
        F.conv_transpose2d(x, w, 1, 0, (6, 6))


# --------------------------------------------------------------------------- default thresholds


def _selection(xs, ws, s, p, bias_row):
    n, c = xs[:2]
    oc, _, kh, kw = ws
    oh, ow = conv._out_hw("t", xs, kh, kw, *s, *p)
    return dict(
        forward_wide=conv._wide(n, oc, c * kh * kw + 1, oh * ow),  # with a bias column
        weight_grad_wide=conv._wide(n, oc, c * kh * kw + bias_row, oh * ow),
        input_grad_wide=conv._wide(n, oc, c * kh * kw, oh * ow),
        planes=conv._from_planes(xs, kh, kw, s, p),
        chunks=[(i, min(i + r.step, n)) for r in [conv._wide_chunks(n, c * kh * kw + 1, oh * ow, 8)] for i in r],
        batch_inner=conv._batch_inner(n, ow),
        long_image_rows=conv._image_row_width(xs, oc, kh, kw, s, p) != ow,
    )


THRESHOLD_CASES = [
    # (x shape, w shape, stride, padding, what the default thresholds select, trained (x, w, b))
    # exactly _WIDE_GEMM_MACS with the bias column: the forward is one GEMM (phase-plane columns,
    # OW-wide rows: Wq - OW == OW / 16), the frozen-bias weight gradient and the input gradient are not
    ((2, 7, 32, 32), (128, 7, 3, 3), (1, 1), (1, 1),
     dict(forward_wide=True, weight_grad_wide=False, input_grad_wide=False, planes=True), (True, True, False)),
    ((2, 7, 32, 32), (128, 7, 3, 3), (1, 1), (1, 1),
     dict(forward_wide=True, weight_grad_wide=True, input_grad_wide=False, planes=True), (False, True, True)),
    # one output column fewer: no phase planes; kept column chunks of 3 and 1 images, row-unfold input grad
    ((4, 7, 32, 31), (136, 7, 3, 3), (1, 1), (1, 1),
     dict(forward_wide=True, input_grad_wide=True, planes=False, chunks=[(0, 3), (3, 4)]), (True, True, True)),
    # strided single GEMM: phase planes, chunks of 2 and 1 images; the strided chunked col2im
    ((3, 8, 64, 64), (64, 8, 5, 5), (2, 2), (2, 2),
     dict(forward_wide=True, input_grad_wide=True, planes=True, chunks=[(0, 2), (2, 3)]), (True, True, True)),
    ((5, 8, 63, 64), (64, 8, 5, 5), (2, 2), (1, 1),
     dict(forward_wide=True, input_grad_wide=True, planes=False, chunks=[(0, 3), (3, 5)]), (True, True, False)),
    # batch-innermost exactly at n == 2 * OW (OW == 16), and one image fewer / one column more
    ((32, 2, 18, 18), (3, 2, 3, 3), (1, 1), (0, 0), dict(forward_wide=False, batch_inner=True), (True, True, True)),
    ((31, 2, 18, 18), (3, 2, 3, 3), (1, 1), (0, 0), dict(forward_wide=False, batch_inner=False), (True, True, True)),
    ((34, 2, 19, 19), (3, 2, 3, 3), (1, 1), (0, 0), dict(forward_wide=False, batch_inner=False), (True, True, True)),
    # per-image long rows at their limits (25 column rows against 2 * 12 channels, Wq - OW == OW / 4)
    ((3, 1, 20, 20), (12, 1, 5, 5), (1, 1), (0, 0), dict(batch_inner=False, long_image_rows=True), (True, True, True)),
    ((3, 1, 20, 20), (13, 1, 5, 5), (1, 1), (0, 0), dict(batch_inner=False, long_image_rows=False), (True, True, True)),
    ((3, 1, 19, 19), (12, 1, 5, 5), (1, 1), (0, 0), dict(batch_inner=False, long_image_rows=False), (True, True, True)),
    # per-image long rows, 3 images a column chunk for 5 images; strided, non-square
    ((5, 8, 24, 24), (8, 8, 3, 3), (1, 1), (0, 0), dict(forward_wide=False, long_image_rows=True), (True, True, True)),
    ((3, 8, 29, 27), (6, 8, 4, 6), (2, 1), (1, 3), dict(forward_wide=False, long_image_rows=True), (True, True, True)),
]


@pytest.mark.parametrize("xs,ws,s,p,selected,req", THRESHOLD_CASES, ids=str)
def test_conv_default_thresholds_on_both_sides_match_torch(xs, ws, s, p, selected, req):
    """No monkeypatching: the layouts the default thresholds pick, on each side of each threshold,
    with frozen inputs (a frozen bias drops the weight gradient's row of ones) and double backward."""
    got = _selection(xs, ws, s, p, int(req[2]))
    assert {k: got[k] for k in selected} == selected
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws) * 0.1, rng.standard_normal(ws[0])
    conv_vs_torch((x, w, b), req, s, p)


@pytest.mark.parametrize("xs,ws,s,p", [THRESHOLD_CASES[i][:4] for i in (0, 2, 3, 5, 8)], ids=str)
def test_conv_default_thresholds_keep_float32(xs, ws, s, p):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(a).astype(np.float32) for a in (xs, ws, ws[:1])]
    arrays[1] *= 0.1
    conv_vs_torch(arrays, (True, True, True), s, p, double=False)


def test_conv_wide_forward_then_narrow_weight_gradient_twice_with_retain_graph():
    """The forward's column chunks are used once; a second backward (retain_graph) rebuilds them."""
    xs, ws, s, p = THRESHOLD_CASES[0][:4]
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws) * 0.1, rng.standard_normal(ws[0])
    for frozen_bias in (True, False):
        ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        ts[2].requires_grad = not frozen_bias
        ps = [_t64(a, t.requires_grad) for a, t in zip((x, w, b), ts)]
        gy = rng.standard_normal((xs[0], ws[0], 32, 32))
        y = F.conv2d(*ts, s, p)
        (y * Tensor(gy)).sum().backward(retain_graph=True)
        (y * Tensor(gy)).sum().backward()
        (TF.conv2d(*ps, s, p) * _t64(gy)).sum().mul(2).backward()
        for t, pt in zip(ts, ps):
            assert (t.grad is None) == (pt.grad is None)
            if t.grad is not None:
                np.testing.assert_allclose(t.grad.data, pt.grad.numpy(), **_tol(np.float64, pt.grad.numpy()))


# --------------------------------------------------------------------------- pooling


def _pool_vs_torch(op, x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, double=True, seed=0):
    """max/avg pooling of ``x`` against PyTorch (float64): output, gradient, the no-grad forward, and
    (``double``) the gradient of ``sum(r * dL/dx)`` with respect to the upstream gradient."""
    ours, theirs = (F.max_pool2d, TF.max_pool2d) if op == "max" else (F.avg_pool2d, TF.avg_pool2d)
    kw = dict(ceil_mode=ceil_mode) if op == "max" else dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    xt, xtt = Tensor(x, requires_grad=True), _t64(x, True)
    y, yt = ours(xt, kernel, stride, padding, **kw), theirs(xtt, kernel, stride, padding, **kw)
    ref = yt.detach().numpy()
    assert y.dtype == x.dtype and y.shape == ref.shape
    np.testing.assert_allclose(y.data, ref, **_tol(x.dtype.type, np.nan_to_num(ref, posinf=0, neginf=0)))
    with tc.no_grad():  # the max-only forward
        np.testing.assert_array_equal(ours(Tensor(x), kernel, stride, padding, **kw).data, y.data)
    rng = np.random.default_rng(seed)
    gy = Tensor(rng.standard_normal(y.shape).astype(x.dtype), requires_grad=True)
    gyt = _t64(gy.data, True)
    (gx,) = tc.grad(y, [xt], gy, create_graph=double)
    (gxt,) = torch.autograd.grad(yt, [xtt], gyt, create_graph=double)
    ref = gxt.detach().numpy()
    assert gx.dtype == x.dtype
    np.testing.assert_allclose(gx.data, ref, **_tol(x.dtype.type, ref))
    if double:
        r = rng.standard_normal(x.shape)
        (ggy,) = tc.grad((gx * Tensor(r.astype(x.dtype))).sum(), [gy])
        (ggyt,) = torch.autograd.grad((gxt * _t64(r)).sum(), [gyt])
        np.testing.assert_allclose(ggy.data, ggyt.numpy(), **_tol(x.dtype.type, ggyt.numpy()))


def _specials(rng, shape, dtype=np.float64):
    """Ties (small integers after a ReLU), with NaN, +inf and -inf sprinkled in."""
    x = np.maximum(rng.integers(-2, 3, size=shape), 0).astype(dtype)
    r = rng.random(shape)
    x[r < 0.05] = np.nan
    x[(r > 0.5) & (r < 0.6)] = -np.inf
    x[r > 0.97] = np.inf
    return x


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode", [
    ((16, 16), (1, 1), (8, 8), False),    # 256 offsets: the argmax is int32
    ((17, 15), (3, 4), (8, 7), True),
    ((15, 17), (15, 17), (0, 0), False),  # disjoint windows (255 offsets, the last uint8 one)
], ids=str)
def test_max_pool_large_kernels_match_torch(kernel, stride, padding, ceil_mode):
    rng = np.random.default_rng(7)
    x = _specials(rng, (2, 2, 19, 35))
    x[0, 0, :, :17] = -np.inf  # windows whose real pixels are all -inf
    _pool_vs_torch("max", x, kernel, stride, padding, ceil_mode)
    pool = F.max_pool2d(Tensor(x, requires_grad=True), kernel, stride, padding, ceil_mode=ceil_mode).creator
    assert pool.argmax.dtype == (np.int32 if kernel[0] * kernel[1] >= 256 else np.uint8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode", [
    (3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, False), ((2, 3), (3, 2), (1, 0), True)], ids=str)
def test_max_pool_nan_and_inf_in_a_later_chunk_match_torch(kernel, stride, padding, ceil_mode, dtype):
    """The default chunking, a few images at a time (8 images in chunks of 3 in float64, of 6 or 7 in
    float32), with the NaN and all -inf windows only in the last chunk."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 16, 48, 48)).astype(dtype)
    assert conv._images_per_chunk(x[:1].nbytes) < len(x)  # a padded image is larger still
    x[-1] = _specials(rng, x.shape[1:], dtype)
    x[-1, 3] = -np.inf
    _pool_vs_torch("max", x, kernel, stride, padding, ceil_mode, double=False)


def test_max_pool_disjoint_scatter_in_uneven_chunks_matches_torch():
    """2x2/2 on 64 channels of 64x64: the disjoint scatter runs 2 images at a time over 3 images."""
    rng = np.random.default_rng(9)
    x = np.maximum(rng.integers(-2, 3, size=(3, 64, 64, 64)), 0).astype(np.float64)  # ties everywhere
    assert conv._images_per_chunk(64 * 32 * 32 * 8) == 2
    _pool_vs_torch("max", x, 2, 2, 0, double=False)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad", [
    (3, 2, 1, True, True), (3, 2, 1, True, False), ((2, 4), (3, 1), (1, 2), True, False),
    ((4, 1), (1, 3), (2, 0), False, False), (2, 3, 1, True, True), ((5, 5), (2, 2), (2, 2), True, True),
], ids=str)
def test_pooling_gradients_and_double_backward_match_torch(op, kernel, stride, padding, ceil_mode,
                                                           count_include_pad):
    rng = np.random.default_rng(10)
    x = _specials(rng, (2, 3, 9, 8)) if op == "max" else rng.standard_normal((2, 3, 9, 8))
    _pool_vs_torch(op, x, kernel, stride, padding, ceil_mode, count_include_pad)


# --------------------------------------------------------------------------- im2col / col2im


@pytest.mark.parametrize("kh,kw,stride,padding", [(3, 2, (2, 1), (1, 2)), (1, 4, 3, 0), (5, 5, 1, 2), (2, 2, 4, 1)],
                         ids=str)
def test_im2col_and_col2im_match_torch_unfold_and_fold(kh, kw, stride, padding):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 7, 8))
    xt, xtt = Tensor(x, requires_grad=True), _t64(x, True)
    col = F.im2col(xt, kh, kw, stride, padding)
    unfolded = TF.unfold(xtt, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    col_t = unfolded.transpose(1, 2).reshape(-1, 3 * kh * kw)  # the book's layout
    np.testing.assert_array_equal(col.data, col_t.detach().numpy())
    g = rng.standard_normal(col.shape)
    col.backward(Tensor(g))
    col_t.backward(_t64(g))
    np.testing.assert_allclose(xt.grad.data, xtt.grad.numpy(), rtol=1e-12, atol=1e-12)
    img = F.col2im(Tensor(g), x.shape, kh, kw, stride, padding)
    folded = TF.fold(_t64(g).reshape(2, -1, 3 * kh * kw).transpose(1, 2), (7, 8), (kh, kw), padding=padding,
                     stride=stride)
    np.testing.assert_allclose(img.data, folded.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kh,kw", [(0, 3), (2, 0), (-1, 2), (2.0, 2), (True, 2)])
def test_im2col_and_col2im_refuse_a_bad_kernel_size(kh, kw):
    """As PyTorch's unfold/fold: a kernel of size 0 used to give an empty column matrix of the wrong
    number of rows instead of an error."""
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="im2col: kernel size"):
        F.im2col(x, kh, kw)
    with pytest.raises(ValueError, match="col2im: kernel size"):
        F.col2im(np.zeros((25, 0)), x.shape, kh, kw)


# --------------------------------------------------------------------------- dilation and groups, every path

DILATED_GROUPED = [
    # (x shape, w shape, stride, padding, dilation, groups)
    ((3, 4, 9, 8), (6, 2, 3, 3), (1, 1), (2, 2), (2, 2), 2),    # AlexNet-style groups=2, dilated
    ((2, 6, 7, 9), (6, 1, 3, 2), (2, 1), (1, 0), (1, 3), 6),    # depthwise, dilated along W only
    ((5, 4, 10, 7), (8, 1, 2, 3), (3, 2), (0, 1), (3, 1), 4),   # stride > kernel, 5 images in chunks of 2
    ((2, 3, 8, 8), (3, 3, 3, 3), (1, 1), "same", (2, 3), 1),    # 'same' counts the dilated kernel
    ((3, 2, 6, 6), (4, 1, 2, 2), (1, 1), "same", (3, 1), 2),    # even dilated span: extra bottom/right pixel
]


@pytest.mark.parametrize("xs,ws,s,p,d,g", DILATED_GROUPED, ids=str)
def test_dilated_and_grouped_conv_match_torch_on_every_path(xs, ws, s, p, d, g, forced_path):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    for k, req in enumerate(REQS[:3]):
        conv_vs_torch((x, w, b), req, s, p, seed=k, dilation=d, groups=g)
    conv_vs_torch((x.astype(np.float32), w.astype(np.float32)), (True, True), s, p, double=False, dilation=d,
                  groups=g)
