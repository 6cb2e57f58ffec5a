"""PyTorch's layer options: pooling ``ceil_mode``/``count_include_pad``, conv ``padding='same'|'valid'``,
zero-sized Linear/Conv2d init, ``calculate_gain``, and their ONNX export.

Every op is checked against PyTorch (values and gradients, float64 and float32), with float64
gradcheck/gradgradcheck, and the exported graphs against onnxruntime.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, conv, nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

from torch_oracle import TDT, TOL, compare, dtypes  # noqa: E402

# --------------------------------------------------------------------------- pooling options

POOL_CASES = [  # (H, W), kernel, stride, padding: hanging windows, dropped windows, kernel > padded input
    ((7, 8), 3, 2, 1), ((6, 6), 3, 2, 0), ((5, 7), 2, 2, 0), ((5, 5), 3, 3, 1), ((6, 5), (3, 2), (2, 3), (1, 0)),
    ((4, 9), (2, 4), (3, 2), (1, 2)), ((1, 1), 2, 2, 1), ((2, 2), 3, 3, 0), ((2, 3), 3, 2, 0), ((7, 7), 4, 3, 2),
    ((8, 8), 1, 3, 0), ((9, 6), 3, 1, 1),
]


def _fits(hw, k, p) -> bool:
    """A floor-mode window fits the padded input (else the pool raises; tested separately)."""
    return all(kk <= n + 2 * pp for kk, n, pp in zip(np.broadcast_to(k, 2), hw, np.broadcast_to(p, 2)))


def _with_modes(cases):
    """Each case in ceil mode, and in floor mode where a window fits."""
    return [(*c, ceil) for c in cases for ceil in (False, True) if ceil or _fits(c[0], c[1], c[3])]


def _x(hw, seed=0):
    return np.random.default_rng(seed).standard_normal((2, 3, *hw))


@dtypes
@pytest.mark.parametrize("hw,k,s,p,ceil_mode", _with_modes(POOL_CASES), ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["cip", "nocip"])
def test_avg_pool2d_options_match_torch(dtype, hw, k, s, p, ceil_mode, count_include_pad):
    compare(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad),
            lambda x: TF.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad),
            [_x(hw)], dtype)


@dtypes
@pytest.mark.parametrize("hw,k,s,p", POOL_CASES, ids=str)
def test_max_pool2d_ceil_mode_matches_torch(dtype, hw, k, s, p):
    compare(lambda x: F.max_pool2d(x, k, s, p, ceil_mode=True),
            lambda x: TF.max_pool2d(x, k, s, p, ceil_mode=True), [_x(hw, 1)], dtype)


@pytest.mark.parametrize("hw,k,s,p", POOL_CASES, ids=str)
def test_max_pool2d_ceil_mode_with_inf_and_nan_routes_like_torch(hw, k, s, p):
    x = _x(hw, 2)
    r = np.random.default_rng(3).random(x.shape)
    x[r < 0.4] = -np.inf
    x[r > 0.93] = np.nan
    x[0, 0] = -np.inf
    compare(lambda x: F.max_pool2d(x, k, s, p, ceil_mode=True),
            lambda x: TF.max_pool2d(x, k, s, p, ceil_mode=True), [x], np.float64)


def test_pool_output_size_is_torchs_rule():
    for n, k, s, p, ceil in itertools.product(range(1, 10), range(1, 6), range(1, 5), range(3), (False, True)):
        if p > k // 2:
            continue
        try:
            ref = TF.max_pool2d(torch.zeros(1, 1, n, 1), (k, 1), (s, 1), (p, 0), ceil_mode=ceil).shape[2]
        except RuntimeError:
            with pytest.raises(ValueError):
                F.max_pool2d(np.zeros((1, 1, n, 1)), (k, 1), (s, 1), (p, 0), ceil_mode=ceil)
            continue
        assert conv.pool_output_size(n, k, s, p, ceil) == ref, (n, k, s, p, ceil)
        for fn in (F.max_pool2d, F.avg_pool2d):
            assert fn(np.zeros((1, 1, n, 1)), (k, 1), (s, 1), (p, 0), ceil_mode=ceil).shape[2] == ref


def test_pool_too_small_output_raises_value_error():
    with pytest.raises(ValueError, match="larger than the padded input"):  # floor mode: unchanged
        F.avg_pool2d(np.zeros((1, 1, 2, 2)), 3, 3)
    with pytest.raises(ValueError, match="too small"):  # ceil mode: no window fits (PyTorch raises too)
        F.max_pool2d(np.zeros((1, 1, 2, 2)), 4, 1, ceil_mode=True)


POOL_GRAD_CASES = [((5, 6), 3, 2, 1), ((5, 5), (2, 3), (2, 2), (1, 0)), ((2, 3), 3, 2, 0), ((6, 4), 3, 3, 1)]


@pytest.mark.parametrize("hw,k,s,p,ceil_mode,count_include_pad", [
    (*c, ceil, cip) for c in POOL_GRAD_CASES for ceil, cip in ((True, True), (True, False), (False, False))
    if ceil or _fits(c[0], c[1], c[3])], ids=str)
def test_avg_pool2d_options_gradcheck_and_gradgradcheck(hw, k, s, p, ceil_mode, count_include_pad):
    x = Tensor(_x(hw, 4)[:1], requires_grad=True)

    def fn(x):
        return F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    assert tc.gradcheck(fn, (x,)) is True
    assert tc.gradgradcheck(fn, (x,)) is True


@pytest.mark.parametrize("hw,k,s,p", POOL_GRAD_CASES, ids=str)
def test_max_pool2d_ceil_mode_gradcheck_and_gradgradcheck(hw, k, s, p):
    x = Tensor(_x(hw, 5)[:1], requires_grad=True)

    def fn(x):
        return F.max_pool2d(x, k, s, p, ceil_mode=True)

    assert tc.gradcheck(fn, (x,)) is True
    assert tc.gradgradcheck(fn, (x,)) is True


def test_pool_defaults_keep_the_fast_paths():
    """Default options: no ceil/count attributes, a constant divisor, no extra padding."""
    x = Tensor(_x((6, 6)), requires_grad=True)
    y = F.avg_pool2d(x, 3, 2, 1)
    assert y.creator.attrs() == {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}
    assert y.creator.extra(x.shape) == (0, 0)
    assert conv._avg_divisor(6, 6, 3, 3, 2, 2, 1, 1, 3, 3, 0, 0, True, np, np.float64) is None
    m = F.max_pool2d(x, 2)
    assert m.creator.attrs() == {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)}
    # ceil_mode with no hanging window gives the same result as floor mode
    np.testing.assert_array_equal(F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False).data,
                                  F.avg_pool2d(x, 2).data)
    assert F.max_pool2d(x, 2, ceil_mode=True).creator.attrs()["ceil_mode"] is True
    assert F.avg_pool2d(x, 3, 2, 1, count_include_pad=False).creator.attrs()["count_include_pad"] is False


@dtypes
def test_pool_modules_match_torch_and_repr(dtype):
    x = _x((7, 9), 6)
    for ours, theirs in [
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, ceil_mode=True), torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
        (nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
         torch.nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)),
    ]:
        compare(ours, theirs, [x], dtype)
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.MaxPool2d(3, 2, 1, ceil_mode=True)) == \
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)"
    for ours, theirs in [(nn.AvgPool2d(3, 2, 1, True, False), torch.nn.AvgPool2d(3, 2, 1, True, False)),
                         (nn.AvgPool2d(3), torch.nn.AvgPool2d(3)),
                         (nn.Dropout(0.25), torch.nn.Dropout(0.25)),
                         (nn.Dropout(0.5, inplace=True), torch.nn.Dropout(0.5, inplace=True))]:
        assert repr(ours) == repr(theirs)  # PyTorch's AvgPool2d repr shows kernel, stride and padding only


# --------------------------------------------------------------------------- conv2d padding='same' / 'valid'

CONV_CASES = [((3, 3), True), ((4, 4), True), ((2, 5), False), ((1, 1), True), ((5, 2), True), ((1, 4), False)]


@dtypes
@pytest.mark.parametrize("kernel,bias", CONV_CASES, ids=str)
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's note about its own copy
def test_conv2d_string_padding_matches_torch(dtype, kernel, bias, padding):
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, *kernel))]
    if bias:
        arrays.append(rng.standard_normal(4))
    compare(lambda *a: F.conv2d(*a[:2], a[2] if bias else None, padding=padding),
            lambda *a: TF.conv2d(*a[:2], a[2] if bias else None, padding=padding), arrays, dtype)
    y = F.conv2d(Tensor(arrays[0]), Tensor(arrays[1]), padding=padding, stride=(1, 1))
    if padding == "same":
        assert y.shape[2:] == (7, 6)


@pytest.mark.parametrize("kernel", [(4, 4), (3, 2), (3, 3)], ids=str)
def test_conv2d_same_gradcheck_and_gradgradcheck(kernel):
    rng = np.random.default_rng(8)
    x = Tensor(rng.standard_normal((1, 2, 5, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, *kernel)), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)

    def fn(x, w, b):
        return F.conv2d(x, w, b, padding="same")

    assert tc.gradcheck(fn, (x, w, b)) is True
    assert tc.gradgradcheck(fn, (x, w, b)) is True


def test_conv2d_padding_string_errors_match_torchs_kinds():
    x, w = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))
    for stride in (2, (1, 2)):
        with pytest.raises(RuntimeError, match="not supported for strided convolutions"):
            TF.conv2d(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 3, 3), stride=stride, padding="same")
        for kind in (RuntimeError, ValueError):  # F.conv2d: RuntimeError in PyTorch, ValueError here: both
            with pytest.raises(kind, match="padding='same' is not supported for strided convolutions"):
                F.conv2d(Tensor(x), Tensor(w), stride=stride, padding="same")
        with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
            nn.Conv2d(1, 1, 3, stride=stride, padding="same")
    for kind in (RuntimeError, ValueError):
        with pytest.raises(kind, match="invalid padding string 'full'"):
            F.conv2d(Tensor(x), Tensor(w), padding="full")
    with pytest.raises(ValueError, match="invalid padding string 'Same'"):
        nn.Conv2d(1, 1, 3, padding="Same")
    with pytest.raises(ValueError, match="padding must be an int"):
        F.conv2d(Tensor(x), Tensor(w), padding=-1)
    assert F.conv2d(Tensor(x), Tensor(w), stride=2, padding="valid").shape == (1, 1, 2, 2)


@dtypes
@pytest.mark.parametrize("kernel,padding", [(4, "same"), ((3, 2), "same"), (3, "same"), (3, "valid")], ids=str)
def test_conv2d_module_string_padding_matches_torch(dtype, kernel, padding):
    tc.manual_seed(0)
    ours = nn.Conv2d(3, 5, kernel, padding=padding, dtype=dtype)
    theirs = torch.nn.Conv2d(3, 5, kernel, padding=padding, dtype=TDT[dtype])
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    x = np.random.default_rng(9).standard_normal((2, 3, 6, 7)).astype(dtype)
    y, yt = ours(Tensor(x)), theirs(torch.from_numpy(x))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **TOL[dtype])
    g = np.ones(y.shape, dtype=dtype)
    y.backward(Tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), **TOL[dtype])
    assert ours.padding == padding
    assert repr(ours) == f"Conv2d(3, 5, kernel_size={ours.kernel_size}, stride=(1, 1), padding={padding})"


@dtypes
@pytest.mark.parametrize("kernel,stride,padding,output_padding,bias", [
    (3, 2, 1, 1, True), ((3, 2), (2, 3), (1, 0), (1, 2), False), (4, 1, 0, 0, True)], ids=str)
def test_conv_transpose2d_module_matches_torch(dtype, kernel, stride, padding, output_padding, bias):
    tc.manual_seed(0)
    ours = nn.ConvTranspose2d(3, 5, kernel, stride, padding, output_padding, bias=bias, dtype=dtype)
    theirs = torch.nn.ConvTranspose2d(3, 5, kernel, stride, padding, output_padding, bias=bias, dtype=TDT[dtype])
    assert ours.weight.shape == tuple(theirs.weight.shape) and ours.weight.dtype == dtype
    fan_in = 5 * ours.kernel_size[0] * ours.kernel_size[1]  # PyTorch's: dim 1 of the weight
    assert np.abs(ours.weight.data).max() <= 1 / np.sqrt(fan_in)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        if bias:
            assert np.abs(ours.bias.data).max() <= 1 / np.sqrt(fan_in)
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 5)).astype(dtype)
    xs, xt = Tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
    y, yt = ours(xs), theirs(xt)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(10).standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), **TOL[dtype])
    if bias:
        np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), **TOL[dtype])
    assert repr(ours).startswith(f"ConvTranspose2d(3, 5, kernel_size={ours.kernel_size}, stride={ours.stride}")


def test_conv_transpose2d_module_refuses_output_padding_of_a_stride():
    with pytest.raises(ValueError, match="output_padding .* must be smaller than either the stride"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


# --------------------------------------------------------------------------- zero-sized layers, calculate_gain


def test_linear_with_zero_in_features_warns_and_gives_the_bias():
    with pytest.warns(UserWarning, match="zero-element"):
        lin = nn.Linear(0, 3)
    assert lin.weight.shape == (3, 0)
    np.testing.assert_array_equal(lin.bias.data, np.zeros(3, np.float32))  # U(-0, 0), as PyTorch
    lin.bias.data[...] = [1.0, 2.0, 3.0]
    x = Tensor(np.zeros((2, 0), np.float32), requires_grad=True)
    y = lin(x)
    np.testing.assert_array_equal(y.data, np.tile([1.0, 2.0, 3.0], (2, 1)))
    y.sum().backward()
    assert x.grad.shape == (2, 0) and lin.weight.grad.shape == (3, 0)
    np.testing.assert_array_equal(lin.bias.grad.data, [2.0, 2.0, 2.0])
    assert lin(Tensor(np.zeros((4, 2, 0), np.float32))).shape == (4, 2, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        assert nn.Linear(3, 0)(Tensor(np.ones((2, 3), np.float32))).shape == (2, 0)


def test_conv2d_with_zero_in_channels_initializes():
    with pytest.warns(UserWarning, match="zero-element"):
        c = nn.Conv2d(0, 3, 3)
    assert c.weight.shape == (3, 0, 3, 3)
    np.testing.assert_array_equal(c.bias.data, np.zeros(3, np.float32))
    with tc.no_grad():
        assert c(Tensor(np.zeros((1, 0, 5, 5), np.float32))).shape == (1, 3, 3, 3)
    t = Tensor(np.empty((4, 0), np.float32))
    with pytest.warns(UserWarning, match="zero-element"):
        nn.init.kaiming_normal_(t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.Linear(2, 3)  # no warning for ordinary layers


def test_calculate_gain_matches_torch():
    names = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
             "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
    for name in names:
        assert nn.init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15), name
    for param in (0.2, 1, 0, 0.01):
        assert nn.init.calculate_gain("leaky_relu", param) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", param), rel=1e-15)
    with pytest.raises(ValueError, match="not a valid number"):
        nn.init.calculate_gain("leaky_relu", "0.1")
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        nn.init.calculate_gain("gelu")


# --------------------------------------------------------------------------- ONNX export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _ort(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


class _PoolNet(nn.Module):
    def __init__(self, pool, features):
        super().__init__()
        self.pool = pool
        self.fc = nn.Linear(features, 4)  # Gemm's K must agree with ONNX's shape inference of the pool

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


EXPORT_POOL_CASES = [  # (H, W), kernel, stride, padding
    ((7, 8), 3, 2, 1),        # ceil_mode=1 is exact in ONNX
    ((6, 6), 3, 2, 0),        # hanging windows
    ((5, 5), 2, 2, 1),        # ONNX's ceil size keeps a window PyTorch drops: explicit end pads
    ((5, 6), (2, 3), 2, 1),   # dropped along H, hanging along W
    ((2, 3), 3, 2, 0),        # kernel larger than the input
]


@pytest.mark.parametrize("hw,k,s,p,ceil_mode", _with_modes(EXPORT_POOL_CASES), ids=str)
@pytest.mark.parametrize("kind", ["max", "avg-cip", "avg-nocip"])
def test_pool_options_export_matches_onnxruntime_and_torch(hw, k, s, p, kind, ceil_mode):
    x = np.random.default_rng(10).standard_normal((3, 2, *hw)).astype(np.float32)
    if kind == "max":
        pool, ref = nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode), torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode)
    else:
        cip = kind == "avg-cip"
        pool = nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=cip)
        ref = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=cip)
    tc.manual_seed(0)
    features = int(np.prod(ref(torch.from_numpy(x[:1])).shape[1:]))
    model = _PoolNet(pool, features)
    proto = tc.onnx.to_onnx(model, Tensor(x[:1]))
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    pooled = pool(Tensor(x)).data
    np.testing.assert_allclose(pooled, ref(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    with tc.no_grad():
        expected = model(Tensor(x)).data
    np.testing.assert_allclose(_ort(proto, x), expected, rtol=1e-4, atol=1e-5)
    node = next(n for n in proto.graph.node if n.op_type in ("MaxPool", "AveragePool"))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if kind != "max":
        assert "count_include_pad" in attrs
        if not ceil_mode:
            assert attrs["count_include_pad"] == int(kind == "avg-cip")
    naive = [-(-(n + 2 * pp - kk) // ss) + 1 for n, kk, ss, pp in
             zip(hw, np.broadcast_to(k, 2), np.broadcast_to(s, 2), np.broadcast_to(p, 2))]
    if ceil_mode and list(pooled.shape[2:]) == naive:
        assert attrs["ceil_mode"] == 1
    else:
        assert attrs.get("ceil_mode", 0) == 0


@pytest.mark.parametrize("kernel", [3, 4, (2, 5), (3, 2)], ids=str)
def test_same_padding_conv_export_matches_onnxruntime(kernel, tmp_path):
    tc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, kernel, padding="same"), nn.ReLU(), nn.Conv2d(4, 3, 3, padding="valid"),
                          nn.Flatten(), nn.Linear(3 * 5 * 4, 5))
    x = np.random.default_rng(11).standard_normal((3, 2, 7, 6)).astype(np.float32)
    path = tc.onnx.export(model, Tensor(x[:1]), tmp_path / "same.onnx")  # checked with onnx.checker
    proto = onnx.load(str(path))
    with tc.no_grad():
        expected = model(Tensor(x)).data
    np.testing.assert_allclose(_ort(proto, x), expected, rtol=1e-4, atol=1e-5)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    kh, kw = np.broadcast_to(kernel, 2)
    pads = list(next(a for a in convs[0].attribute if a.name == "pads").ints)
    assert pads == [(kh - 1) // 2, (kw - 1) // 2] * 2
    assert any(n.op_type == "Pad" for n in proto.graph.node) == (kh % 2 == 0 or kw % 2 == 0)


# --------------------------------------------------------------------------- avg_pool2d divisor_override


@pytest.mark.parametrize("divisor", [1, 4, 7, -3])
@pytest.mark.parametrize("shape,k,s,p", POOL_CASES[:6], ids=str)
def test_avg_pool_divisor_override_matches_torch(shape, k, s, p, divisor):
    x = np.random.default_rng(11).standard_normal((2, 3, *shape))
    for ceil, cip in itertools.product((False, True), (True, False)):
        try:
            TF.avg_pool2d(torch.tensor(x), k, s, p, ceil, cip, divisor)
        except RuntimeError:
            continue
        compare(lambda t, c=ceil, i=cip: F.avg_pool2d(t, k, s, p, c, i, divisor),
                lambda t, c=ceil, i=cip: TF.avg_pool2d(t, k, s, p, c, i, divisor), [x], np.float64)


def test_avg_pool_divisor_override_gradchecks_exports_and_checks(tmp_path):
    x = Tensor(np.random.default_rng(12).standard_normal((2, 2, 6, 5)), requires_grad=True)
    assert tc.gradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, True, False, 4), (x,))
    assert tc.gradgradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, True, False, 4), (x,))
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a nonzero int or None, got 0"):
        F.avg_pool2d(x, 2, divisor_override=0)
    layer = nn.AvgPool2d(3, 2, 1, False, True, 4)
    assert layer.divisor_override == 4 and repr(layer) == repr(torch.nn.AvgPool2d(3, 2, 1, False, True, 4))
    ort = pytest.importorskip("onnxruntime")
    x32 = np.random.default_rng(13).standard_normal((2, 3, 8, 7)).astype(np.float32)
    model = nn.Sequential(layer).eval()
    path = tc.onnx.export(model, Tensor(x32), tmp_path / "avg.onnx")
    session = ort.InferenceSession(str(path))
    ref = model(Tensor(x32)).data
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x32})[0], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tc.onnx.load(path)(Tensor(x32)).data, ref, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- adaptive_avg_pool2d


@pytest.mark.parametrize("hw,out", [((13, 13), 6), ((7, 5), (3, 2)), ((6, 6), 3), ((5, 9), (None, 4)),
                                    ((1, 1), 3), ((10, 7), (4, None)), ((13, 13), 1), ((4, 4), 7)], ids=str)
@dtypes
def test_adaptive_avg_pool_matches_torch(hw, out, dtype):
    x = np.random.default_rng(14).standard_normal((2, 3, *hw))
    compare(lambda t: F.adaptive_avg_pool2d(t, out), lambda t: TF.adaptive_avg_pool2d(t, out), [x], dtype)
    layer = nn.AdaptiveAvgPool2d(out)
    assert repr(layer) == repr(torch.nn.AdaptiveAvgPool2d(out))


def test_adaptive_avg_pool_gradchecks_and_exports(tmp_path):
    x = Tensor(np.random.default_rng(15).standard_normal((2, 2, 7, 5)), requires_grad=True)
    assert tc.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 2)), (x,))
    assert tc.gradgradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 2)), (x,))
    assert F.adaptive_avg_pool2d(Tensor(np.ones((2, 7, 5), dtype=np.uint8)), 3).dtype == np.float32
    ort = pytest.importorskip("onnxruntime")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(), nn.Linear(24, 5)).eval()
    x32 = np.random.default_rng(16).standard_normal((2, 3, 14, 9)).astype(np.float32)
    path = tc.onnx.export(model, Tensor(x32), tmp_path / "adaptive.onnx")
    session = ort.InferenceSession(str(path))
    for batch in (x32, np.concatenate([x32, x32[::-1], x32])):  # the batch axis stays dynamic
        got = session.run(None, {session.get_inputs()[0].name: batch})[0]
        np.testing.assert_allclose(got, model(Tensor(batch)).data, rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_empty_input_axis_and_empty_output():
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: input of shape \(1, 1, 0, 5\) has an empty spatial"):
        F.adaptive_avg_pool2d(Tensor(np.ones((1, 1, 0, 5))), 2)
    x = Tensor(np.ones((1, 2, 4, 5)), requires_grad=True)
    y = F.adaptive_avg_pool2d(x, (0, 3))
    assert y.shape == tuple(TF.adaptive_avg_pool2d(torch.ones(1, 2, 4, 5), (0, 3)).shape)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0.0)


# ------------------------------------------------------------------ dropout(inplace=True), repr of a None child

def test_dropout_inplace_writes_into_its_input_with_the_same_values_and_gradients():
    results = []
    for inplace in (False, True):
        tc.manual_seed(3)
        w = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
        h = Tensor(np.ones((5, 3))) @ w.T  # a fresh non-leaf: safe to overwrite
        y = F.dropout(h, 0.5, True, inplace)
        assert (y is h) == inplace
        (y * y).sum().backward()
        results.append((y.data.copy(), w.grad.data.copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    module = nn.Dropout(0.5, inplace=True)
    h = Tensor(np.ones((2, 8)))
    assert module(h) is h and set(np.unique(h.data)) <= {0.0, 2.0}
    module.eval()
    assert module(h) is h


def test_dropout_inplace_is_refused_where_it_would_corrupt_a_gradient():
    leaf = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"dropout\(inplace=True\): a leaf tensor that requires grad"):
        F.dropout(leaf, 0.5, inplace=True)
    with pytest.raises(RuntimeError, match="needed to compute a gradient.*Sigmoid"):
        F.dropout(leaf.sigmoid(), 0.5, inplace=True)
    with pytest.raises(TypeError, match="needs a float tensor"):
        F.dropout(Tensor(np.ones(3, dtype=np.int64)), 0.5, inplace=True)


def test_module_repr_shows_a_child_set_to_none_like_torch():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.ReLU(), nn.Tanh()
            self.b = None

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.ReLU(), torch.nn.Tanh()
            self.b = None

    assert repr(Ours()).replace("Ours", "M") == repr(Theirs()).replace("Theirs", "M")
