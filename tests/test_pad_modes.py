"""F.pad's modes (reflect, replicate, circular) and Conv2d's padding_mode, against PyTorch; ONNX both ways."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn

torch = pytest.importorskip("torch")
MODES = ["reflect", "replicate", "circular"]


@pytest.mark.parametrize("mode", MODES)
def test_pad_modes_match_torch_values_and_gradients(mode):
    rng = np.random.default_rng(MODES.index(mode))
    compared = 0
    for _ in range(120):
        k = int(rng.integers(1, 4))  # PyTorch pads the last k axes of a (k+1)- or (k+2)-D input
        shape = tuple(int(v) for v in rng.integers(1, 6, k + int(rng.integers(1, 3))))
        pads = tuple(int(v) for v in rng.integers(0, 5, 2 * k))
        x = rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        try:
            yt = torch.nn.functional.pad(xt, pads, mode)
        except (RuntimeError, NotImplementedError):  # a pad too large for the mode: ours refuses too
            with pytest.raises(ValueError, match=f"pad: {mode} padding .* is too large"):
                F.pad(Tensor(x), pads, mode)
            continue
        xs = Tensor(x, requires_grad=True)
        y = F.pad(xs, pads, mode)
        g = rng.standard_normal(y.shape)
        y.backward(Tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
        compared += 1
    assert compared > 25


@pytest.mark.parametrize("mode", MODES)
def test_pad_modes_pass_gradcheck_and_gradgradcheck(mode):
    x = Tensor(np.random.default_rng(4).standard_normal((2, 3, 4, 5)), requires_grad=True)
    assert tc.gradcheck(lambda x: F.pad(x, (2, 3, 1, 3), mode), (x,))
    assert tc.gradgradcheck(lambda x: F.pad(x, (4, 1, 3, 0), mode), (x,))


def test_pad_keeps_float32_and_checks_its_arguments():
    x = Tensor(np.zeros((1, 2, 3, 3), dtype=np.float32))
    assert F.pad(x, (1, 1, 2, 0), "reflect").dtype == np.float32
    with pytest.raises(ValueError, match="pad: mode must be one of 'constant', 'reflect'"):
        F.pad(x, (1, 1), "mirror")
    with pytest.raises(ValueError, match="value=2.0 applies to mode='constant' only"):
        F.pad(x, (1, 1), "replicate", 2.0)
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\) is too large for an axis of size 3"):
        F.pad(x, (3, 0), "reflect")
    np.testing.assert_array_equal(F.pad(x, (1, 0), "constant", 7.0).data[..., 0], 7.0)  # PyTorch's order


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding,dilation,stride", [(1, 1, 1), (2, 2, 1), ("same", (1, 2), 1), ((1, 2), 1, 2)],
                         ids=str)
def test_conv2d_padding_modes_match_torch(mode, padding, dilation, stride):
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(4, 6, 3, stride, padding, dilation, 2, True, mode).double()
    ours = nn.Conv2d(4, 6, 3, stride, padding, dilation, 2, True, mode, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(5).standard_normal((2, 4, 9, 8))
    xs, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(xs), theirs(xt)
    g = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(Tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_transpose2d_refuses_other_padding_modes_as_torch():
    with pytest.raises(ValueError, match="ConvTranspose2d: only padding_mode='zeros' is supported"):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")


class _Padded(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode)

    def forward(self, x):
        return F.relu(self.conv(x))


@pytest.mark.parametrize("mode", MODES)
def test_onnx_export_of_padding_modes_runs_in_onnxruntime_and_loads_back(mode, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _Padded(mode).eval()
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = model(Tensor(x)).data
    opset = 19 if mode == "circular" else 17
    path = tc.onnx.export(model, Tensor(x), tmp_path / "m.onnx", opset=opset)
    session = ort.InferenceSession(str(path))
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tc.onnx.load(path)(Tensor(x)).data, y, rtol=1e-6, atol=1e-6)


def test_onnx_export_of_circular_padding_needs_opset_19(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(NotImplementedError, match="circular padding needs Pad's 'wrap' mode, opset 19"):
        tc.onnx.export(_Padded("circular").eval(), Tensor(np.zeros((1, 3, 5, 5), np.float32)), tmp_path / "m.onnx")
