"""Porting PyTorch programs: the spellings a PyTorch user types, checked value for value against torch.

Covers the PyTorch MNIST example's idioms (``torch.flatten(x, 1)``, ``F.log_softmax(x, dim=1)``,
``F.nll_loss(..., reduction='sum')``, ``output.argmax(dim=1, keepdim=True)``,
``pred.eq(target.view_as(pred)).sum().item()``, ``x.view(x.size(0), -1)``), the reductions with
``dim``/``keepdim``, ``std``/``var``, casts, method forms of operators, ``Module.apply`` and
``nn.ModuleList``. Skipped when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch_oracle import compare, dtypes  # noqa: E402

import tinygrad_cnn as tc  # noqa: E402
import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, nn, optim  # noqa: E402


def to_torch(model: nn.Module, tmodel: torch.nn.Module) -> torch.nn.Module:
    """Copy our weights into the torch twin (same names, same layouts)."""
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return tmodel


# --------------------------------------------------------------------------- the MNIST example


class Net(nn.Module):
    """pytorch/examples mnist/main.py, scaled to 12x12 inputs (dropout left out: masks are random)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 6, 3, 1)
        self.fc1 = nn.Linear(6 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = tc.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


class TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 4, 3, 1)
        self.conv2 = tnn.Conv2d(4, 6, 3, 1)
        self.fc1 = tnn.Linear(6 * 4 * 4, 16)
        self.fc2 = tnn.Linear(16, 10)

    def forward(self, x):
        x = TF.relu(self.conv1(x))
        x = TF.relu(self.conv2(x))
        x = TF.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = TF.relu(self.fc1(x))
        return TF.log_softmax(self.fc2(x), dim=1)


def _mnist_like(rng, n=16):
    return rng.random((n, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mnist_example_port_trains_like_torch(rng, opt_name):
    tc.manual_seed(0)
    model = Net()
    tmodel = to_torch(model, TorchNet())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tmodel.parameters())
    if opt_name == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    else:
        opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-2, weight_decay=1e-4)
    x, y = _mnist_like(rng)
    model.train()
    tmodel.train()
    for step in range(4):
        if step == 2:  # a manual learning-rate schedule, the torch way
            for g, tg in zip(opt.param_groups, topt.param_groups):
                g["lr"] *= 0.5
                tg["lr"] *= 0.5
        opt.zero_grad()
        topt.zero_grad()
        data, target = Tensor(x), Tensor(y)
        loss = F.nll_loss(model(data), target)
        tloss = TF.nll_loss(tmodel(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-4, abs=1e-6)
    for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-3, atol=1e-5)

    # the example's test loop
    model.eval()
    tmodel.eval()
    with tc.no_grad():
        output = model(Tensor(x))
        test_loss = F.nll_loss(output, Tensor(y), reduction="sum").item()
        pred = output.argmax(dim=1, keepdim=True)
        correct = pred.eq(Tensor(y).view_as(pred)).sum().item()
    with torch.no_grad():
        toutput = tmodel(torch.tensor(x))
        ttest_loss = TF.nll_loss(toutput, torch.tensor(y), reduction="sum").item()
        tpred = toutput.argmax(dim=1, keepdim=True)
        tcorrect = tpred.eq(torch.tensor(y).view_as(tpred)).sum().item()
    assert pred.shape == tuple(tpred.shape) == (len(y), 1)
    assert test_loss == pytest.approx(ttest_loss, rel=1e-4)
    assert correct == tcorrect and isinstance(correct, int)


def test_view_with_size_and_numel():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x, t = Tensor(a), torch.tensor(a)
    assert x.size() == tuple(t.size()) and x.size(0) == t.size(0) and x.size(-1) == t.size(-1)
    assert x.view(x.size(0), -1).shape == tuple(t.view(t.size(0), -1).shape) == (2, 12)
    assert x.size == 24 and isinstance(x.size, int)  # NumPy's attribute keeps working
    assert x.numel() == t.numel() and x.dim() == t.dim()
    with pytest.raises(IndexError):
        x.size(3)
    with pytest.raises(IndexError):
        Tensor(np.float32(1.0)).size(0)


# --------------------------------------------------------------------------- reductions


@dtypes
@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("dim,keepdim", [(1, False), (1, True), (-1, True), ((0, 2), False), ([0, 2], True)])
def test_reductions_take_dim_and_keepdim(rng, dtype, op, dim, keepdim):
    a = rng.standard_normal((3, 4, 5))
    compare(lambda x: getattr(x, op)(dim=dim, keepdim=keepdim),
            lambda x: getattr(x, op)(dim=dim, keepdim=keepdim), (a,), dtype)


@dtypes
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (0, True), ((0, 2), True)])
def test_amax_amin_match_torch(rng, dtype, dim, keepdim):
    a = rng.standard_normal((3, 4, 5))
    kw = {} if dim is None else {"dim": dim}
    compare(lambda x: x.amax(keepdim=keepdim, **kw) - x.amin(keepdim=keepdim, **kw),
            lambda x: x.amax(keepdim=keepdim, **kw) - x.amin(keepdim=keepdim, **kw), (a,), dtype)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": -1, "keepdim": True}, {"dim": 0, "keepdim": False}])
def test_argmax_argmin_match_torch(rng, op, kw):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    ours, theirs = getattr(Tensor(a), op)(**kw), getattr(torch.tensor(a), op)(**kw)
    assert ours.dtype == np.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert getattr(Tensor(a), op)(1).tolist() == getattr(torch.tensor(a), op)(1).tolist()  # positional dim


def test_reduction_aliases_refuse_conflicts_and_max_dim():
    x = Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="both"):
        x.sum(0, dim=1)
    with pytest.raises(TypeError, match="amax"):  # torch's max(dim=) returns (values, indices): no silent mismatch
        x.max(dim=1)
    with pytest.raises(TypeError, match="amin"):
        x.min(dim=1, keepdim=True)
    assert x.max(1).shape == (2,)  # the documented values-only max is unchanged


@dtypes
@pytest.mark.parametrize("op", ["std", "var"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": (0, 2), "keepdim": True}, {"dim": 0, "unbiased": False},
                                {"unbiased": False}, {"dim": -1, "correction": 0}, {"dim": 1, "correction": 2}])
def test_std_var_match_torch(rng, dtype, op, kw):
    a = rng.standard_normal((3, 4, 5)) * 2 + 1
    compare(lambda x: getattr(x, op)(**kw), lambda x: getattr(x, op)(**kw), (a,), dtype)


def test_std_var_numpy_spellings_and_gradcheck(randt):
    x = randt(3, 4)
    assert np.allclose(x.var(axis=0, keepdims=True, correction=0).data, x.data.var(axis=0, keepdims=True))
    assert np.allclose(x.std(False).data, x.data.std())  # torch's old positional std(unbiased)
    assert tc.gradcheck(lambda t: t.std(dim=1, keepdim=True), (x,))
    assert tc.gradcheck(lambda t: t.var(), (x,))
    with pytest.raises(RuntimeError, match="floating point"):
        Tensor(np.arange(4)).var()


# --------------------------------------------------------------------------- softmax family and losses


@dtypes
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dim_keyword(rng, dtype, name):
    a = rng.standard_normal((3, 4, 5))
    compare(lambda x: getattr(F, name)(x, dim=1), lambda x: getattr(TF, name)(x, dim=1), (a,), dtype)
    compare(lambda x: getattr(x, name)(dim=0), lambda x: getattr(x, name)(dim=0), (a,), dtype)
    module = nn.Softmax(dim=1) if name == "softmax" else nn.LogSoftmax(dim=1)
    tmodule = tnn.Softmax(dim=1) if name == "softmax" else tnn.LogSoftmax(dim=1)
    compare(module, tmodule, (a,), dtype)
    with pytest.raises(TypeError, match="both"):
        getattr(F, name)(Tensor(a), 0, dim=1)


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(rng, dtype, reduction):
    a, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    compare(lambda x: F.nll_loss(F.log_softmax(x, dim=1), y, reduction=reduction),
            lambda x: TF.nll_loss(TF.log_softmax(x, dim=1), torch.tensor(y), reduction=reduction), (a,), dtype)
    compare(lambda x: nn.NLLLoss(reduction=reduction)(x, Tensor(y)),
            lambda x: tnn.NLLLoss(reduction=reduction)(x, torch.tensor(y)), (a,), dtype)


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target", ["labels", "probabilities"])
def test_cross_entropy_reduction_matches_torch(rng, dtype, reduction, target):
    a = rng.standard_normal((6, 5))
    if target == "labels":
        y = rng.integers(0, 5, 6)
        ty = torch.tensor(y)
    else:
        y = rng.random((6, 5)).astype(dtype)
        y /= y.sum(1, keepdims=True)
        ty = torch.tensor(y)
    compare(lambda x: F.cross_entropy(x, y, reduction=reduction),
            lambda x: TF.cross_entropy(x, ty, reduction=reduction), (a,), dtype)
    compare(lambda x: nn.CrossEntropyLoss(reduction=reduction)(x, y),
            lambda x: tnn.CrossEntropyLoss(reduction=reduction)(x, ty), (a,), dtype)


def test_losses_gradcheck_and_errors(randt, rng):
    y = rng.integers(0, 4, 5)
    for reduction in ("mean", "sum", "none"):
        assert tc.gradcheck(lambda x, r=reduction: F.nll_loss(x, y, reduction=r), (randt(5, 4),))
        assert tc.gradcheck(lambda x, r=reduction: F.cross_entropy(x, y, reduction=r), (randt(5, 4),))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(randt(5, 4), y, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        nn.NLLLoss(reduction="batchmean")
    with pytest.raises(ValueError, match="out of range"):
        F.nll_loss(randt(5, 4), np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="labels"):
        F.nll_loss(randt(5, 4), np.eye(4)[y])


# --------------------------------------------------------------------------- casts and method spellings


def test_casts_match_torch():
    a = np.array([[0.5, -1.7], [2.2, 3.9]], np.float32)
    x, t = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert x.float() is x  # as torch: already float32
    for ours, theirs in ((x.double(), t.double()), (x.long(), t.long()), (x.int(), t.int())):
        assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    acc, tacc = (x > 0).float().mean(), (t > 0).float().mean()
    assert acc.dtype == np.float32 and acc.item() == tacc.item()
    x.double().sum().backward()  # the gradient flows back through the cast, in float32
    assert x.grad.dtype == np.float32 and np.all(x.grad.data == 1)


@dtypes
def test_method_spellings_match_torch(rng, dtype):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) + 3

    def both(x, y):
        return (x.add(y, alpha=2).mul(y).sub(x, alpha=0.5).div(y).pow(2).neg() + abs(x)
                + x.matmul(y.t()).sum(dim=1, keepdim=True) + x.view_as(y) * y.reshape_as(x))

    compare(both, both, (a, b), dtype)
    x, t = Tensor(a), torch.tensor(a)
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        np.testing.assert_array_equal(getattr(x, op)(0.1).numpy(), getattr(t, op)(0.1).numpy())
    with pytest.raises(ValueError, match="transpose"):
        Tensor(np.zeros((2, 3, 4))).t()


# --------------------------------------------------------------------------- modules


def test_apply_and_module_list_like_torch():
    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])
            self.blocks.append(nn.Linear(4, 3))
            self.head = nn.Sequential(nn.Linear(3, 2))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    class TorchTower(tnn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = tnn.ModuleList([tnn.Linear(4, 4), tnn.ReLU()])
            self.blocks.append(tnn.Linear(4, 3))
            self.head = tnn.Sequential(tnn.Linear(3, 2))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    model, tmodel = Tower(), TorchTower()
    seen, tseen = [], []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    tmodel.apply(lambda m: tseen.append(type(m).__name__.replace("TorchTower", "Tower")))
    assert seen == tseen  # children first, then the module itself

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.1)
            nn.init.zeros_(m.bias)

    model.apply(init)
    assert all(np.all(m.weight.data == np.float32(0.1)) for m in model.modules() if isinstance(m, nn.Linear))
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert [n for n, _ in model.named_children()] == [n for n, _ in tmodel.named_children()]
    assert len(model.blocks) == 3 and isinstance(model.blocks[-1], nn.Linear) and len(model.blocks[:2]) == 2
    to_torch(model, tmodel)
    a = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(model(Tensor(a)).numpy(), tmodel(torch.tensor(a)).detach().numpy(), rtol=1e-5)
    with pytest.raises(TypeError, match="not a Module"):
        model.blocks.append(Tensor(a))


def test_load_accepts_torchs_safe_keywords_and_refuses_the_rest(tmp_path):
    path = tc.save({"w": np.arange(3, dtype=np.float32)}, tmp_path / "m.npz")
    for kwargs in ({}, {"weights_only": True}, {"map_location": "cpu"}, {"weights_only": True, "map_location": "cpu"}):
        np.testing.assert_array_equal(tc.load(path, **kwargs)["w"], [0, 1, 2])
    with pytest.raises(ValueError, match="never unpickled"):
        tc.load(path, weights_only=False)
    with pytest.raises(ValueError, match="map_location='cuda:0'"):
        tc.load(path, map_location="cuda:0")


def test_loader_dataset_is_the_samples():
    from tinygrad_cnn.data import DataLoader

    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = DataLoader(x, y, batch_size=3, shuffle=True, seed=0)
    assert len(loader.dataset) == 10 and len(loader) == 4
    xi, yi = loader.dataset[7]
    np.testing.assert_array_equal(xi, [14, 15])
    assert yi == 7
    seen = np.concatenate([yb for _, yb in loader])  # the tutorial divides by len(loader.dataset)
    assert sorted(seen) == list(range(len(loader.dataset)))


# --------------------------------------------------------------------------- review: edge cases against torch


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.bool_])
def test_amin_of_integers_and_bools_matches_torch(dtype):
    # min was -max(-x): unsigned ints wrapped (amin of uint8 [0, 7, 3, 200] gave 3), int8 -128 gave 5, bool raised
    info = np.iinfo(dtype) if dtype != np.bool_ else None
    a = np.array([[0, 7], [3, 1]], dtype) if info is None or info.min == 0 else np.array([[info.min, 7], [3, 1]], dtype)
    if dtype == np.uint8:
        a[1, 0] = 200
    x, t = Tensor(a), torch.tensor(a)
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
        ours, theirs = x.amin(**kw), t.amin(**kw)
        assert ours.dtype == a.dtype and ours.tolist() == theirs.tolist()
    assert x.min().tolist() == t.min().tolist() and x.min(1).tolist() == t.amin(1).tolist()


@dtypes
def test_std_of_constant_values_has_zero_gradient_like_torch(dtype):
    # std at zero spread: torch's gradient is 0 there, not 0 * inf = nan
    a = np.array([[1.5, 1.5, 1.5], [1.0, 2.0, 4.0]])
    compare(lambda x: x.std(dim=1), lambda x: x.std(dim=1), (a,), dtype)
    compare(lambda x: x.std(dim=0, correction=0), lambda x: x.std(dim=0, correction=0), (a[:1],), dtype)
    assert tc.gradcheck(lambda t: t.std(dim=1) * 1.0, (Tensor(a[1:], requires_grad=True),))


@pytest.mark.parametrize("op", ["mean", "std", "var", "sum", "amax", "amin"])
@pytest.mark.parametrize("kw", [{"dim": 0}, {"dim": -1, "keepdim": True}])
def test_reductions_of_0d_tensors_take_dim_0_and_minus_1(op, kw):
    a = np.array(2.5)
    args = {"correction": 0} if op in ("std", "var") else {}
    compare(lambda x: getattr(x, op)(**kw, **args), lambda x: getattr(x, op)(**kw, **args), (a,), np.float64)
    with pytest.raises(IndexError):
        getattr(Tensor(a), op)(dim=1)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "std", "var"])
@pytest.mark.parametrize("empty", [[], ()])
def test_empty_dim_list_reduces_everything_like_torch(rng, op, empty):
    a = rng.standard_normal((3, 4))
    # torch's std/var backward with dim=[] divides by n - 1 with n = 1 (an inf gradient): compare with dim=None
    tdim = None if op in ("std", "var") else empty
    for keepdim in (False, True):
        np.testing.assert_allclose(getattr(Tensor(a), op)(dim=empty, keepdim=keepdim).numpy(),
                                   getattr(torch.tensor(a), op)(dim=empty, keepdim=keepdim).numpy(), rtol=1e-12)
        compare(lambda x, k=keepdim: getattr(x, op)(dim=empty, keepdim=k),
                lambda x, k=keepdim: getattr(x, op)(dim=tdim, keepdim=k), (a,), np.float64)
    if op in ("sum", "mean"):  # NumPy's own axis=() still reduces nothing
        assert getattr(Tensor(a), op)(axis=()).shape == (3, 4)


def test_apply_visits_a_module_registered_twice_once_like_torch():
    def visits(n):
        lin = n.Linear(2, 2)
        seen = []
        n.Sequential(lin, lin, n.ReLU()).apply(lambda m: seen.append(type(m).__name__))
        n.ModuleList([lin, lin]).apply(lambda m: seen.append(type(m).__name__))
        return seen

    assert visits(nn) == visits(tnn) == ["Linear", "ReLU", "Sequential", "Linear", "ModuleList"]


@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d_takes_unbatched_input_like_torch(rng, bias):
    a = rng.standard_normal((3, 4, 5))
    w, b = rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(2)
    compare(lambda x, w_, *b_: F.conv_transpose2d(x, w_, b_[0] if b_ else None, 2, 1, 1),
            lambda x, w_, *b_: TF.conv_transpose2d(x, w_, b_[0] if b_ else None, 2, 1, 1),
            (a, w, *((b,) if bias else ())), np.float64)
    m = nn.ConvTranspose2d(3, 2, 3, stride=2, bias=bias)
    tm = to_torch(m, tnn.ConvTranspose2d(3, 2, 3, stride=2, bias=bias))
    x = a.astype(np.float32)
    np.testing.assert_allclose(m(Tensor(x)).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="3-D"):
        F.conv_transpose2d(Tensor(a[0]), Tensor(w))
