"""Tests for tinygrad_cnn.nn: registration and names, modes, grads, state dicts, repr, init."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))

    def forward(self, x):
        b = self.block
        return self.head(b.drop(b.act(b.conv(x))))


# ----------------------------------------------------------------------------- names and traversal

def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.conv.weight", "block.conv.bias", "head.1.weight", "head.1.bias", "head.3.weight"]
    assert list(net.state_dict()) == names
    assert [n for n, _ in net.named_modules()] == [
        "", "block", "block.conv", "block.act", "block.drop", "head", "head.0", "head.1", "head.2", "head.3"]


def test_assignment_order_decides_order():
    class Late(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Linear(2, 2)
            self.a = nn.Linear(2, 2)

    assert [n for n, _ in Late().named_parameters()] == ["b.weight", "b.bias", "a.weight", "a.bias"]


def test_sequential_children_named_by_index_and_ordered_dict():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert isinstance(seq[1], nn.ReLU) and len(seq) == 3
    assert [type(m) for m in seq] == [nn.Linear, nn.ReLU, nn.Linear]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 3)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]


def test_children_are_direct_only():
    net = Net()
    kids = list(net.children())
    assert kids == [net.block, net.head]
    assert len(list(net.block.children())) == 3


def test_shared_parameter_counted_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_reassigning_attribute_replaces_registration():
    net = Block()
    net.conv = nn.Conv2d(1, 4, 3)
    assert net.state_dict()["conv.weight"].shape == (4, 1, 3, 3)
    net.act = None
    assert [n for n, _ in net.named_children()] == ["conv", "drop"]


def test_setattr_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Bad()


# ----------------------------------------------------------------------------- modes and gradients

def test_train_eval_propagate_to_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.block.eval()
    assert net.training and not net.block.drop.training and net.head.training
    with pytest.raises(ValueError, match="expected to be a bool, got 'no'"):  # as PyTorch: not a truthy string
        net.train("no")
    assert net.training and not net.block.drop.training
    assert net.train(np.bool_(False)) is net and not net.training


def test_dropout_follows_mode():
    tc.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = Tensor(np.ones((20, 30), np.float32))
    y = drop(x).data
    assert set(np.unique(y)) <= {0.0, 2.0} and (y == 0).any() and (y == 2).any()
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x.data)


def test_zero_grad_clears_every_parameter():
    net = Net()
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32))
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_gradients_accumulate_until_zero_grad():
    lin = nn.Linear(3, 2)
    x = Tensor(np.ones((1, 3), np.float32))
    lin(x).sum().backward()
    g1 = lin.weight.grad.data.copy()
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.data, 2 * g1)


# ----------------------------------------------------------------------------- state dicts

def test_state_dict_round_trip_through_save_load(tmp_path):
    tc.manual_seed(1)
    a = Net()
    tc.manual_seed(2)
    b = Net()
    assert not np.array_equal(a.state_dict()["block.conv.weight"], b.state_dict()["block.conv.weight"])
    path = tc.save(a.state_dict(), tmp_path / "net.npz")
    loaded = tc.load(path)
    assert list(loaded) == list(a.state_dict())
    b.load_state_dict(loaded)
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=n)
        assert pb.data.dtype == np.float32
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32))
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_state_dict_is_a_copy_and_load_does_not_alias():
    net = nn.Linear(2, 2)
    sd = net.state_dict()
    sd["weight"][...] = 7.0
    assert not (net.weight.data == 7.0).any()
    src = {"weight": np.full((2, 2), 3.0, np.float32), "bias": np.zeros(2, np.float32)}
    net.load_state_dict(src)
    src["weight"][...] = 5.0
    assert (net.weight.data == 3.0).all()
    assert not np.shares_memory(net.weight.data, src["weight"])


def test_load_state_dict_keeps_parameter_dtype():
    net = nn.Linear(2, 2)
    net.load_state_dict({"weight": np.ones((2, 2), np.float64), "bias": np.zeros(2, np.float64)})
    assert net.weight.dtype == np.float32 and net.bias.dtype == np.float32


def test_strict_load_missing_keys_named():
    net = Net()
    sd = net.state_dict()
    del sd["head.1.bias"]
    with pytest.raises(nn.StateDictError, match=r"missing keys: head\.1\.bias"):
        net.load_state_dict(sd)


def test_strict_load_unexpected_keys_named():
    net = Net()
    sd = net.state_dict()
    sd["head.9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(nn.StateDictError, match=r"unexpected keys: head\.9\.weight"):
        net.load_state_dict(sd)


def test_non_strict_load_ignores_missing_and_unexpected():
    net = Net()
    before = net.state_dict()
    sd = {"block.conv.bias": np.full(2, 4.0, np.float32), "extra": np.zeros(1, np.float32)}
    missing, unexpected = net.load_state_dict(sd, strict=False)  # as PyTorch's (missing_keys, unexpected_keys)
    assert unexpected == ["extra"] and "block.conv.bias" not in missing and "head.1.weight" in missing
    assert net.load_state_dict(net.state_dict()) == ([], [])
    np.testing.assert_array_equal(net.block.conv.bias.data, [4.0, 4.0])
    np.testing.assert_array_equal(net.head[1].weight.data, before["head.1.weight"])


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_always_raises_and_names_key_and_shapes(strict):
    net = Net()
    before = net.state_dict()
    sd = net.state_dict()
    sd["head.1.weight"] = np.zeros((3, 99), np.float32)
    with pytest.raises(nn.StateDictError) as exc:
        net.load_state_dict(sd, strict=strict)
    msg = str(exc.value)
    assert "head.1.weight" in msg and "(3, 99)" in msg and "(3, 32)" in msg
    # nothing was half-loaded
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_state_dict_error_is_a_key_error_and_value_error():
    assert issubclass(nn.StateDictError, KeyError) and issubclass(nn.StateDictError, ValueError)


# ----------------------------------------------------------------------------- repr

def test_repr_like_pytorch():
    net = Net()
    text = repr(net)
    expected = (
        "Net(\n"
        "  (block): Block(\n"
        "    (conv): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "    (act): ReLU()\n"
        "    (drop): Dropout(p=0.5, inplace=False)\n"
        "  )\n"
        "  (head): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=32, out_features=3, bias=True)\n"
        "    (2): ReLU()\n"
        "    (3): Linear(in_features=3, out_features=2, bias=False)\n"
        "  )\n"
        ")"
    )
    assert text == expected


def test_layer_reprs():
    conv = nn.Conv2d(3, 8, 5, stride=2, bias=False)
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(5, 5), stride=(2, 2), bias=False)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.LocalResponseNorm(5, k=2.0)) == "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)"
    assert repr(nn.Parameter(np.zeros(2, np.float32))).startswith("Parameter containing:")


# ----------------------------------------------------------------------------- layers

def test_conv2d_and_linear_layouts_and_forward():
    conv = nn.Conv2d(3, 4, (3, 5), stride=(1, 2), padding=(1, 2))
    assert conv.weight.shape == (4, 3, 3, 5) and conv.bias.shape == (4,)
    assert conv.weight.dtype == np.float32 and conv.weight.requires_grad
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    y = conv(x)
    assert y.shape == (2, 4, 8, 4)
    np.testing.assert_allclose(y.data, F.conv2d(x, conv.weight, conv.bias, (1, 2), (1, 2)).data)
    lin = nn.Linear(5, 3)
    assert lin.weight.shape == (3, 5)
    v = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_allclose(lin(Tensor(v)).data, v @ lin.weight.data.T + lin.bias.data, rtol=1e-6)


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.5)


# ----------------------------------------------------------------------------- init

def test_default_init_uses_pytorch_bounds():
    tc.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    fan_in = 16 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) -> gain*sqrt(3/fan_in) = 1/sqrt(fan_in)
    w, b = conv.weight.data, conv.bias.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.8 * bound
    # uniform on [-bound, bound]: std bound / sqrt(3)
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    lin = nn.Linear(400, 120)
    lb = 1 / math.sqrt(400)
    assert np.abs(lin.weight.data).max() <= lb and np.abs(lin.bias.data).max() <= lb


def test_he_and_xavier_std():
    tc.manual_seed(0)
    w = nn.Parameter(np.empty((256, 128, 3, 3), np.float32))
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert w.dtype == np.float32
    assert abs(w.data.std() - math.sqrt(2 / (128 * 9))) < 0.01 * math.sqrt(2 / (128 * 9))
    nn.init.xavier_normal_(w)
    want = math.sqrt(2 / (128 * 9 + 256 * 9))
    assert abs(w.data.std() - want) < 0.01 * want
    nn.init.xavier_uniform_(w)
    bound = math.sqrt(6 / (128 * 9 + 256 * 9))
    assert np.abs(w.data).max() <= bound and abs(w.data.std() - bound / math.sqrt(3)) < 0.01 * bound
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / (128 * 9))
    assert np.abs(w.data).max() <= bound


def test_init_is_seeded():
    tc.manual_seed(5)
    a = nn.Conv2d(1, 4, 3).weight.data.copy()
    tc.manual_seed(5)
    b = nn.Conv2d(1, 4, 3).weight.data.copy()
    np.testing.assert_array_equal(a, b)


def test_init_fan_errors_and_gains():
    with pytest.raises(ValueError, match="fan"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros(3, np.float32)))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))


def test_assigning_a_non_parameter_to_a_parameter_name_raises_as_in_torch():
    lin = nn.Linear(3, 2)
    for value in (Tensor(np.zeros((2, 3), np.float32)), np.zeros((2, 3), np.float32)):
        with pytest.raises(TypeError, match=r"cannot assign \w+ as parameter 'weight' of Linear"):
            lin.weight = value
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]  # still registered
    lin.weight = nn.Parameter(np.ones((2, 3), np.float32))  # a Parameter, or None, is fine
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match=r"cannot assign int as child module '0'"):
        setattr(seq, "0", 3)


def test_sequential_slices_and_append_as_in_torch():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    head = seq[1:3]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head[0] is seq[1] and head[1] is seq[2]
    assert [n for n, _ in head.named_parameters()] == ["1.weight", "1.bias"]  # names kept, as torch
    tail = seq[-1:]
    assert isinstance(tail, nn.Sequential) and tail[0] is seq[3]
    assert seq.append(nn.Sigmoid()) is seq and len(seq) == 5 and isinstance(seq[4], nn.Sigmoid)
    x = Tensor(np.ones((2, 4), np.float32))
    np.testing.assert_allclose(seq(x).data, F.sigmoid(seq[:4](x)).data)


def test_zero_grad_set_to_none_false_keeps_zero_gradients():
    lin = nn.Linear(3, 2)
    seed = np.ones((1, 2), np.float32)
    lin(Tensor(np.ones((1, 3), np.float32))).backward(Tensor(seed))
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad is not None and not lin.weight.grad.data.any() and lin.weight.grad.shape == (2, 3)
    assert seed.all()  # the backward seed is not written to
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None
