"""Tests for tinygrad_cnn.models: parameter counts, shapes, registry, forward/backward, torch parity."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, nn


def conv_params(i: int, o: int, k: int) -> int:
    return o * i * k * k + o


def fc_params(i: int, o: int) -> int:
    return o * i + o


def batch(n: int, c: int = 1, s: int = 28, seed: int = 0) -> Tensor:
    return Tensor(np.random.default_rng(seed).random((n, c, s, s), dtype=np.float32))


# ----------------------------------------------------------------------------- parameter counts

def test_simpleconvnet_count_and_names():
    m = models.SimpleConvNet()
    assert m.num_parameters() == 433_890
    assert m.num_parameters() == conv_params(1, 30, 5) + fc_params(30 * 12 * 12, 100) + fc_params(100, 10)
    assert [n for n, _ in m.named_parameters()] == [
        "conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert m.fc1.weight.shape == (100, 4320)  # PyTorch layout (out, in)


@pytest.mark.parametrize("classic", [False, True])
def test_lenet5_count_both_flavours(classic):
    m = models.LeNet5(classic=classic)
    assert m.num_parameters() == 61_706
    kinds = {type(x) for x in m.modules()}
    if classic:
        assert nn.Sigmoid in kinds and nn.AvgPool2d in kinds and nn.ReLU not in kinds
    else:
        assert nn.ReLU in kinds and nn.MaxPool2d in kinds and nn.Sigmoid not in kinds


@pytest.fixture(scope="module")
def alexnet():
    tc.manual_seed(0)
    return models.AlexNet()  # 62M parameters: built once for the two tests below


def test_alexnet_count(alexnet):
    m = alexnet
    assert m.num_parameters() == 62_378_344
    expected = (conv_params(3, 96, 11) + conv_params(96, 256, 5) + conv_params(256, 384, 3)
                + conv_params(384, 384, 3) + conv_params(384, 256, 3)
                + fc_params(9216, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000))
    assert m.num_parameters() == expected


def test_deepconvnet_count():
    m = models.DeepConvNet()
    expected = (conv_params(1, 16, 3) + conv_params(16, 16, 3) + conv_params(16, 32, 3) + conv_params(32, 32, 3)
                + conv_params(32, 64, 3) + conv_params(64, 64, 3) + fc_params(64 * 4 * 4, 50) + fc_params(50, 10))
    assert m.num_parameters() == expected


# ----------------------------------------------------------------------------- shapes and passes

def test_alexnet_forward_backward_batch2(alexnet):
    m = alexnet
    x = batch(2, 3, 224)
    out = m(x)
    assert out.shape == (2, 1000) and out.dtype == np.float32
    loss = F.softmax_cross_entropy(out, np.array([3, 999]))
    assert np.isfinite(loss.item())
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert p.grad.dtype == np.float32, name
    assert np.abs(m.conv1.weight.grad.data).sum() > 0
    assert np.abs(m.fc3.weight.grad.data).sum() > 0


@pytest.mark.parametrize("size", [28, 32])
def test_alexnet_small_sizes(size):
    tc.manual_seed(0)
    in_ch = 1 if size == 28 else 3
    m = models.AlexNetSmall(num_classes=10, in_channels=in_ch, input_size=size)
    x = batch(3, in_ch, size)
    out = m(x)
    assert out.shape == (3, 10)
    F.softmax_cross_entropy(out, np.array([0, 1, 2])).backward()
    assert all(p.grad is not None for p in m.parameters())


def test_alexnet_small_rejects_tiny_input():
    with pytest.raises(ValueError, match="too small"):
        models.AlexNetSmall(input_size=5)


@pytest.mark.parametrize("shape", [(1, 4, 4), (1, 5, 5), (3, 5, 9)])
def test_simpleconvnet_rejects_an_input_too_small_for_its_conv_and_pool(shape, recwarn):
    with pytest.raises(ValueError, match=rf"SimpleConvNet: an input of {shape[0]}x{shape[1]}x{shape[2]} is too small"):
        models.SimpleConvNet(input_dim=shape)
    assert not recwarn.list  # refused before any layer is built (no zero-element init warnings)
    assert models.SimpleConvNet(input_dim=(1, 6, 6)).fc1.weight.shape == (100, 30)


@pytest.mark.parametrize("name", ["simpleconvnet", "lenet5", "lenet5-classic", "alexnet-small", "deepconvnet"])
def test_registry_models_take_their_input_shape(name):
    tc.manual_seed(0)
    m = models.get_model(name)
    shape = models.input_shape(name)
    assert shape == (1, 28, 28)
    m.eval()
    with tc.no_grad():
        out = m(batch(2, *shape[:1], shape[1]))
    assert out.shape == (2, 10)
    assert np.all(np.isfinite(out.data))


def test_registry_names_and_errors():
    assert list(models.MODELS) == ["simpleconvnet", "lenet5", "lenet5-classic", "alexnet-small", "deepconvnet",
                                   "alexnet"]
    assert isinstance(models.get_model("LeNet5_classic"), models.LeNet5)
    assert models.get_model("lenet5-classic").classic
    assert models.input_shape("alexnet") == (3, 224, 224)
    with pytest.raises(ValueError, match="unknown model 'vgg'.*simpleconvnet"):
        models.get_model("vgg")


def test_simpleconvnet_book_signature_and_predict():
    tc.manual_seed(0)
    m = models.SimpleConvNet(input_dim=(1, 28, 28),
                             conv_param={"filter_num": 8, "filter_size": 3, "pad": 1, "stride": 1},
                             hidden_size=20, output_size=5, weight_init_std=0.01)
    assert m.conv1.weight.shape == (8, 1, 3, 3) and m.fc1.weight.shape == (20, 8 * 14 * 14)
    assert abs(float(m.fc1.weight.data.std()) - 0.01) < 0.001
    assert not m.conv1.bias.data.any()
    pred = m.predict(batch(4).data)
    assert pred.shape == (4,) and pred.dtype.kind == "i" and ((pred >= 0) & (pred < 5)).all()
    he = models.SimpleConvNet(weight_init_std="he")
    assert abs(float(he.fc1.weight.data.std()) - np.sqrt(2 / 4320)) < 0.002
    with pytest.raises(ValueError, match="weight_init_std"):
        models.SimpleConvNet(weight_init_std="bogus")


def test_dropout_models_are_deterministic_in_eval_only():
    tc.manual_seed(0)
    m = models.DeepConvNet()
    x = batch(4)
    m.eval()
    with tc.no_grad():
        a, b = m(x).data, m(x).data
    np.testing.assert_array_equal(a, b)
    m.train()
    with tc.no_grad():
        c, d = m(x).data, m(x).data
    assert not np.array_equal(c, d)


# ----------------------------------------------------------------------------- parity with torch

def test_lenet5_and_simpleconvnet_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    tc.manual_seed(0)
    ours = models.LeNet5()
    ref = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2, 2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2, 2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    assert sum(p.numel() for p in ref.parameters()) == ours.num_parameters()
    with torch.no_grad():
        for (_, tp), (_, op) in zip(ref.named_parameters(), ours.named_parameters()):
            tp.copy_(torch.from_numpy(op.data))
    x = batch(5)
    y = np.array([0, 1, 2, 3, 4])
    loss = F.softmax_cross_entropy(ours(x), y)
    loss.backward()
    tx = torch.from_numpy(x.data)
    tloss = tnn.functional.cross_entropy(ref(tx), torch.from_numpy(y))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
    for (n, op), tp in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(op.grad.data, tp.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=n)

    sc = models.SimpleConvNet()
    tsc = tnn.Sequential(tnn.Conv2d(1, 30, 5), tnn.ReLU(), tnn.MaxPool2d(2, 2), tnn.Flatten(),
                         tnn.Linear(4320, 100), tnn.ReLU(), tnn.Linear(100, 10))
    with torch.no_grad():
        for tp, op in zip(tsc.parameters(), sc.parameters()):
            tp.copy_(torch.from_numpy(op.data))
        np.testing.assert_allclose(sc(x).data, tsc(tx).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("scheme,gain", [("xavier", 1.0), ("sigmoid", 1.0), ("he", 2.0), ("relu", 2.0)])
def test_simpleconvnet_named_inits_are_the_books(scheme, gain):
    """The book's MultiLayerNet: 'sigmoid'/'xavier' -> sqrt(1 / fan_in), 'relu'/'he' -> sqrt(2 / fan_in)."""
    tc.manual_seed(0)
    net = models.SimpleConvNet(weight_init_std=scheme)
    for name, p in net.named_parameters():
        if name.endswith("weight"):
            expected = (gain / np.prod(p.shape[1:])) ** 0.5
            assert abs(float(p.data.std()) - expected) < 0.1 * expected, name
        else:
            assert not p.data.any()
