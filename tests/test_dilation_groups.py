"""dilation, groups and return_indices, with PyTorch's argument orders, against PyTorch as the oracle.

conv2d's paths are covered in test_conv_fuzz.py (every layout forced); here: conv_transpose2d,
max_pool2d's dilation and indices, the nn layers' positional arguments, reprs and checks, the
gradient checks, ONNX both ways, and summary's MACs.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _t64(a, requires_grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# --------------------------------------------------------------------------- conv_transpose2d


@pytest.mark.parametrize("xs,ws,s,p,op,g,d", [
    ((2, 4, 5, 5), (4, 3, 3, 3), 2, 1, 1, 2, 1),        # groups
    ((2, 4, 5, 6), (4, 2, 3, 2), 1, 0, 0, 4, 2),        # depthwise-like, dilated
    ((2, 6, 4, 5), (6, 2, 3, 3), (2, 1), (1, 0), (1, 0), 3, (2, 3)),
    ((2, 2, 5, 5), (2, 3, 3, 3), 1, 0, 1, 1, 2),        # output_padding >= stride: allowed below the dilation
    ((3, 2, 4, 4), (2, 3, 2, 2), 2, 1, 2, 2, 3),
], ids=str)
def test_conv_transpose2d_with_groups_and_dilation_matches_torch(xs, ws, s, p, op, g, d):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[1] * g)
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    ps = [_t64(a) for a in (x, w, b)]
    y = F.conv_transpose2d(*ts, s, p, op, g, d)
    yt = TF.conv_transpose2d(*ps, s, p, op, g, d)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    y.backward(Tensor(gy))
    yt.backward(torch.tensor(gy))
    for t, pt in zip(ts, ps):
        np.testing.assert_allclose(t.grad.data, pt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_dilated_grouped_convs_pass_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 4, 7, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    b = Tensor(rng.standard_normal(6), requires_grad=True)
    assert tc.gradcheck(lambda x, w, b: F.conv2d(x, w, b, (2, 1), 1, (2, 3), 2), (x, w, b))
    assert tc.gradgradcheck(lambda x, w: F.conv2d(x, w, None, 1, 2, 2, 2), (x, w))
    t = Tensor(rng.standard_normal((2, 4, 3, 4)), requires_grad=True)
    wt = Tensor(rng.standard_normal((4, 3, 2, 3)), requires_grad=True)
    assert tc.gradcheck(lambda t, w: F.conv_transpose2d(t, w, None, 2, 1, 1, 2, 2), (t, wt))
    assert tc.gradgradcheck(lambda t, w: F.conv_transpose2d(t, w, None, 1, 0, 1, 2, 2), (t, wt))


# --------------------------------------------------------------------------- max_pool2d: dilation, indices


def _no_window_all_padding(size, k, s, p, d, out):
    """PyTorch scatters a window made only of padding to an index outside the input (a bug): skip those."""
    return all(any(0 <= o * s - p + i * d < size for i in range(k)) for o in range(out))


def test_dilated_max_pool_values_indices_and_gradients_match_torch():
    rng = np.random.default_rng(2)
    compared = 0
    for trial in range(300):
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        ceil = bool(trial % 2)
        h, w = (int(v) for v in rng.integers(3, 12, 2))
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x)  # ties: the first maximum wins
        if trial % 7 == 0:
            x[0, 0, 0, 0] = np.nan
        xt = torch.tensor(x, requires_grad=True)
        try:
            yt, it = TF.max_pool2d(xt, k, s, p, d, ceil, True)
        except RuntimeError:  # an output too small: ours refuses too
            with pytest.raises(ValueError):
                F.max_pool2d(Tensor(x), k, s, p, d, ceil)
            continue
        if not all(_no_window_all_padding(n, kk, ss, pp, dd, o)
                   for n, kk, ss, pp, dd, o in zip((h, w), k, s, p, d, yt.shape[2:])):
            continue
        xs = Tensor(x, requires_grad=True)
        y, i = F.max_pool2d(xs, k, s, p, d, ceil, True)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(Tensor(gy))
        yt.backward(torch.tensor(gy))
        np.testing.assert_array_equal(y.data, yt.detach().numpy())
        assert i.dtype == np.int64 and not i.requires_grad
        np.testing.assert_array_equal(i.data, it.numpy())
        np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), atol=1e-6)
        compared += 1
    assert compared > 150


def test_return_indices_without_grad_and_unbatched():
    x = np.random.default_rng(3).standard_normal((3, 6, 7)).astype(np.float32)
    with tc.no_grad():
        y, i = F.max_pool2d(Tensor(x), 2, 2, 1, 1, True, True)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, 2, 1, 1, True, True)
    assert y.shape == (3, 4, 4) and i.shape == (3, 4, 4)
    np.testing.assert_array_equal(i.data, it.numpy())
    with pytest.raises(TypeError, match="return_indices must be a bool"):
        F.max_pool2d(Tensor(x), 2, return_indices=1)


def test_dilated_max_pool_passes_gradcheck():
    x = Tensor(np.random.default_rng(4).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0, requires_grad=True)
    assert tc.gradcheck(lambda x: F.max_pool2d(x, (2, 3), 1, 1, (2, 1)), (x,))


# --------------------------------------------------------------------------- nn layers: PyTorch's orders


def test_positional_arguments_mean_what_they_mean_in_pytorch():
    """Conv2d(in, out, k, stride, padding, dilation, groups, bias), MaxPool2d(k, stride, padding, dilation,
    return_indices, ceil_mode): a model written positionally for PyTorch builds the same layers."""
    ours = nn.Conv2d(4, 8, 3, 1, 2, 2, 2, False)
    theirs = torch.nn.Conv2d(4, 8, 3, 1, 2, 2, 2, False)
    assert repr(ours) == repr(theirs)
    assert ours.weight.shape == tuple(theirs.weight.shape) and ours.bias is None
    pool, tpool = nn.MaxPool2d(3, 2, 0, 1), torch.nn.MaxPool2d(3, 2, 0, 1)
    assert pool.ceil_mode is False and pool.dilation == 1  # was ceil_mode=True before dilation took the slot
    assert repr(pool) == repr(tpool)
    assert repr(nn.MaxPool2d(3, 2, 1, 2, True, True)) == repr(torch.nn.MaxPool2d(3, 2, 1, 2, True, True))
    t = nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2, True, 2)
    tt = torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2, True, 2)
    assert repr(t) == repr(tt) and t.weight.shape == tuple(tt.weight.shape)


def test_the_contracts_short_conv2d_signature_still_reads_a_sixth_bool_as_bias():
    """API.md writes Conv2d(in, out, kernel_size, stride=1, padding=0, bias=True); a bool cannot be a dilation."""
    layer = nn.Conv2d(1, 8, 3, 1, 0, False)
    assert layer.bias is None and layer.dilation == (1, 1)
    assert nn.Conv2d(1, 8, 3, 1, 0, True).bias is not None
    with pytest.raises(ValueError, match="Conv2d: dilation must be an int >= 1"):
        nn.Conv2d(1, 8, 3, 1, 0, False, 1, False)  # both readings at once: refused


def test_layers_with_dilation_groups_and_indices_match_torch():
    torch.manual_seed(0)
    tnet = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2),
                                "up": torch.nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2, dilation=2)})
    conv = nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2)
    up = nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2, dilation=2)
    for m, name in ((conv, "conv"), (up, "up")):
        m.load_state_dict({k: v.detach().numpy() for k, v in tnet[name].state_dict().items()})
    pool, tpool = nn.MaxPool2d(2, 1, dilation=2, return_indices=True), torch.nn.MaxPool2d(2, 1, dilation=2,
                                                                                         return_indices=True)
    x = np.random.default_rng(5).standard_normal((2, 4, 9, 8)).astype(np.float32)
    y, i = pool(up(conv(Tensor(x))))
    yt, it = tpool(tnet["up"](tnet["conv"](torch.tensor(x))))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=2e-5, atol=2e-6)
    np.testing.assert_array_equal(i.data, it.numpy())


def test_pytorch_default_init_bounds_for_grouped_layers():
    """kaiming_uniform(a=sqrt(5)) and the bias bound use fan_in = C/groups * kh * kw, as PyTorch."""
    conv = nn.Conv2d(64, 64, 3, groups=16)
    bound = 1 / np.sqrt(64 // 16 * 9)
    assert conv.weight.shape == (64, 4, 3, 3)
    assert 0.9 * bound < np.abs(conv.weight.data).max() <= bound
    assert 0.9 * bound < np.abs(conv.bias.data).max() <= bound


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv2d(4, 6, 3, groups=4), r"Conv2d: out_channels \(6\) must be divisible by groups \(4\)"),
    (lambda: nn.Conv2d(5, 6, 3, groups=2), r"Conv2d: in_channels \(5\) must be divisible by groups \(2\)"),
    (lambda: nn.Conv2d(4, 6, 3, groups=0), "Conv2d: groups must be a positive int, got 0"),
    (lambda: nn.Conv2d(4, 6, 3, dilation=0), "Conv2d: dilation must be an int >= 1"),
    (lambda: nn.Conv2d(4, 6, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=4), r"out_channels \(6\) must be divisible by groups \(4\)"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=1, output_padding=1), "smaller than either the stride"),
    (lambda: nn.Conv2d(4, 6, 3, 1, 0, 1, 1, 2), "Conv2d: bias must be a bool, got int 2"),
], ids=range(8))
def test_layer_options_are_checked_at_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_functional_group_mismatch_names_the_op_and_shapes():
    x, w = Tensor(np.ones((1, 4, 5, 5))), Tensor(np.ones((6, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 4, 5, 5\) has 4 channels but weight of "
                                         r"shape \(6, 4, 3, 3\) expects 8 \(groups=2\)"):
        F.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match=r"conv2d: weight's filters \(6\) must be divisible by groups \(4\)"):
        F.conv2d(x, Tensor(np.ones((6, 1, 3, 3))), groups=4)
    with pytest.raises(ValueError, match=r"conv2d: input channels \(4\) must be divisible by groups \(3\)"):
        F.conv2d(x, Tensor(np.ones((6, 1, 3, 3))), groups=3)


# --------------------------------------------------------------------------- ONNX and summary


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
        self.p1 = nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)
        self.c2 = nn.Conv2d(8, 8, 3, padding="same", dilation=(1, 2), groups=8, bias=False)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=2)

    def forward(self, x):
        return self.up(self.c2(self.p1(F.relu(self.c1(x)))))


def test_onnx_export_of_dilated_grouped_layers_runs_in_onnxruntime_and_loads_back(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _Net().eval()
    x = np.random.default_rng(6).standard_normal((2, 4, 15, 13)).astype(np.float32)
    y = model(Tensor(x)).data
    path = tc.onnx.export(model, Tensor(x), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tc.onnx.load(path)(Tensor(x)).data, y, rtol=1e-6, atol=1e-6)
    nodes = {n.op_type: n for n in __import__("onnx").load(str(path)).graph.node}
    attrs = {a.name: a for a in nodes["ConvTranspose"].attribute}
    assert list(attrs["dilations"].ints) == [2, 2] and attrs["group"].i == 2


def test_onnx_import_of_torch_dilated_grouped_model_matches_torch():
    pytest.importorskip("onnxruntime")
    from test_onnx import _torch_export

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2, 1, 1, dilation=2),
                              torch.nn.ConvTranspose2d(8, 4, 3, stride=2, groups=2, dilation=2)).eval()
    x = np.random.default_rng(7).standard_normal((2, 4, 9, 10)).astype(np.float32)
    loaded = tc.onnx.load(__import__("onnx").load_from_string(_torch_export(torch, net, torch.from_numpy(x[:1]))))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(loaded(Tensor(x)).data, ref, rtol=1e-5, atol=1e-5)


def test_summary_counts_grouped_macs():
    s = tc.viz.summary(nn.Sequential(nn.Conv2d(4, 8, 3, dilation=2, groups=2),
                                     nn.ConvTranspose2d(8, 4, 3, stride=2, dilation=2, groups=4)), (4, 16, 16))
    assert s.rows[0].macs == 8 * 12 * 12 * 2 * 9  # OC * OH * OW * C/groups * kh * kw
    assert s.rows[1].macs == 8 * 12 * 12 * 1 * 9  # C * H * W * OC/groups * kh * kw


def test_conv_transpose2d_sweep_matches_torch_including_output_padding_beyond_the_stride():
    """output_padding may reach the dilation (PyTorch's rule): with padding, those rows hold real values."""
    rng = np.random.default_rng(8)
    compared = 0
    for _ in range(150):
        s, d, g = (int(v) for v in rng.integers(1, 4, 3))
        p, k = int(rng.integers(0, 4)), int(rng.integers(1, 4))
        op = int(rng.integers(0, max(s, d)))
        h, w = (int(v) for v in rng.integers(1, 5, 2))
        x, wt = rng.standard_normal((2, 2 * g, h, w)), rng.standard_normal((2 * g, 2, k, k))
        xt, wtt = _t64(x), _t64(wt)
        try:
            ref = TF.conv_transpose2d(xt, wtt, None, s, p, op, g, d)
        except RuntimeError:
            with pytest.raises(ValueError, match="too small"):
                F.conv_transpose2d(Tensor(x), Tensor(wt), None, s, p, op, g, d)
            continue
        xs, ws = Tensor(x, requires_grad=True), Tensor(wt, requires_grad=True)
        y = F.conv_transpose2d(xs, ws, None, s, p, op, g, d)
        np.testing.assert_allclose(y.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        gy = rng.standard_normal(y.shape)
        y.backward(Tensor(gy))
        gx, gw = torch.autograd.grad(ref, [xt, wtt], torch.tensor(gy))
        np.testing.assert_allclose(xs.grad.data, gx.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ws.grad.data, gw.numpy(), rtol=1e-10, atol=1e-12)
        compared += 1
    assert compared > 60


def test_onnx_export_of_dilated_ceil_mode_pooling_on_non_square_inputs_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(9)
    for layer, shape in [(nn.MaxPool2d(2, 3, 1, 2, ceil_mode=True), (1, 1, 5, 6)),
                         (nn.MaxPool2d(3, 2, 1, 3, ceil_mode=True), (2, 3, 9, 7)),
                         (nn.AvgPool2d(2, 1, 0, True, True, 3), (1, 1, 4, 4)),
                         (nn.AvgPool2d(3, 2, 1, True, False, 5), (2, 2, 6, 7))]:
        x = rng.standard_normal(shape).astype(np.float32)
        model = nn.Sequential(layer).eval()
        proto = tc.onnx.to_onnx(model, Tensor(x))
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model(Tensor(x)).data,
                                   rtol=1e-5, atol=1e-6)
