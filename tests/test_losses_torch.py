"""cross_entropy / nll_loss with PyTorch's weight, ignore_index and label_smoothing, against torch."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _case(rng, trial):
    """A random batch: labels (some ignored) or probabilities, with or without class weights."""
    n, k = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    x = rng.standard_normal((n, k))
    ignore = -100
    if trial % 3 == 2:
        t = rng.random((n, k))
        t /= t.sum(1, keepdims=True)
    else:
        t = rng.integers(0, k, n)
        if trial % 4 == 0:
            ignore = -100 if trial % 8 == 0 else 1
            t[rng.random(n) < 0.4] = ignore
    w = rng.random(k) + 0.1 if trial % 2 else None
    return x, t, w, ignore


def _torch_or_none(w):
    return None if w is None else torch.tensor(w)


def _nll_of_logits(nll_loss, log_softmax, logits, **options):
    return nll_loss(log_softmax(logits, dim=1), **options)


def _compare(rng, x, ours, theirs):
    """Loss values and logit gradients (for a random upstream gradient) of ours and torch's, float64."""
    xs, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(xs), theirs(xt)
    g = rng.standard_normal(y.shape)
    y.backward(Tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_cross_entropy_options_match_torch(reduction, smoothing):
    rng = np.random.default_rng(int(smoothing * 10) + len(reduction))
    for trial in range(60):
        x, t, w, ignore = _case(rng, trial)
        options = dict(ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)
        _compare(rng, x, partial(F.cross_entropy, target=t, weight=w, **options),
                 partial(TF.cross_entropy, target=torch.tensor(t), weight=_torch_or_none(w), **options))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_weight_and_ignore_index_match_torch(reduction):
    rng = np.random.default_rng(3)
    for trial in range(40):
        x, t, w, ignore = _case(rng, 3 * trial)  # labels only
        options = dict(ignore_index=ignore, reduction=reduction)
        _compare(rng, x, partial(_nll_of_logits, F.nll_loss, F.log_softmax, target=t, weight=w, **options),
                 partial(_nll_of_logits, TF.nll_loss, TF.log_softmax, target=torch.tensor(t),
                         weight=_torch_or_none(w), **options))


def test_every_label_ignored_gives_nan_with_zero_gradient_as_torch():
    x = Tensor(np.random.default_rng(4).standard_normal((3, 4)), requires_grad=True)
    for w in (None, np.ones(4)):
        x.grad = None
        loss = F.cross_entropy(x, np.array([-100, -100, -100]), w, label_smoothing=0.2)
        loss.backward()
        assert np.isnan(loss.item())
        np.testing.assert_array_equal(x.grad.data, 0.0)


def test_float32_stays_float32_and_gradcheck_passes():
    rng = np.random.default_rng(5)
    x32 = Tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    y = F.cross_entropy(x32, np.array([0, 3, -100, 1]), np.arange(1, 6), label_smoothing=0.1)
    y.backward()
    assert y.dtype == np.float32 and x32.grad.dtype == np.float32
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert tc.gradcheck(lambda x: F.cross_entropy(x, np.array([0, 3, 2, 1]), np.linspace(0.5, 2, 5),
                                                  ignore_index=3, label_smoothing=0.2), (x,))
    assert tc.gradcheck(lambda x: F.cross_entropy(x, np.eye(5)[[1, 0, 4, 2]], np.linspace(0.5, 2, 5),
                                                  reduction="sum", label_smoothing=0.1), (x,))


def test_loss_modules_take_pytorchs_arguments():
    rng = np.random.default_rng(6)
    x, t, w = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2]), rng.random(4) + 0.5
    ours = nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.05)(Tensor(x), t)
    theirs = torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=1, label_smoothing=0.05)(torch.tensor(x),
                                                                                               torch.tensor(t))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    ours = nn.NLLLoss(w, reduction="sum")(F.log_softmax(Tensor(x), dim=1), t)
    theirs = torch.nn.NLLLoss(torch.tensor(w), reduction="sum")(torch.log_softmax(torch.tensor(x), 1), torch.tensor(t))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)


@pytest.mark.parametrize("call,error,match", [
    (lambda x: F.cross_entropy(x, [0, 1], np.ones(3)), ValueError,
     r"cross_entropy: weight must be a float array of one value per class, shape \(4,\)"),
    (lambda x: F.cross_entropy(x, [0, 1], label_smoothing=1.5), ValueError,
     r"label_smoothing must be a float in \[0, 1\]"),
    (lambda x: F.cross_entropy(x, [0, 1], ignore_index=0.5), TypeError, "ignore_index must be an int"),
    (lambda x: F.cross_entropy(x, [0, -1]), ValueError, r"label -1 out of range \[0, 4\)"),
    (lambda x: F.nll_loss(x, [0, 7], ignore_index=7, reduction="avg"), ValueError, "reduction must be one of"),
], ids=range(5))
def test_bad_loss_options_are_refused_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call(Tensor(np.zeros((2, 4))))


def test_loss_module_weights_are_constants_not_parameters():
    """PyTorch keeps a loss's class weights as a buffer: an optimizer over the loss module finds nothing."""
    loss = nn.CrossEntropyLoss(nn.Parameter(np.ones(3)))
    assert list(loss.parameters()) == [] and isinstance(loss.weight, np.ndarray)
    assert list(nn.NLLLoss(Tensor(np.ones(3))).parameters()) == []


def test_zero_target_weights_and_float_targets_with_ignore_index_as_torch():
    x = np.random.default_rng(7).standard_normal((2, 4))
    xs = Tensor(x, requires_grad=True)
    loss = F.cross_entropy(xs, [0, 1], np.array([0.0, 0.0, 1.0, 1.0]), label_smoothing=0.2)
    loss.backward()
    assert np.isnan(loss.item()) and np.isnan(xs.grad.data).all()  # PyTorch's 0 / 0
    with pytest.raises(ValueError, match="ignore_index=1 applies to class labels"):
        F.cross_entropy(Tensor(x), np.eye(4)[[0, 1]], ignore_index=1)
