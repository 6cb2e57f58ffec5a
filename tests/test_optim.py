"""Tests for tinygrad_cnn.optim without torch: update rules by hand, dtypes, state dicts, convergence."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, optim


def param(values, dtype=np.float32) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p: Tensor, values) -> None:
    p.grad = Tensor(np.array(values, dtype=p.dtype))


def test_sgd_step_by_hand():
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1)
    set_grad(p, [0.5, 1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-6)


def test_momentum_by_hand():
    p = param([0.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    for _ in range(3):
        set_grad(p, [1.0])
        opt.step()
    # buf: 1, 1.9, 2.71 -> p = -0.1 * (1 + 1.9 + 2.71)
    np.testing.assert_allclose(p.data, [-0.561], rtol=1e-6)


def test_adagrad_and_adam_first_step_by_hand():
    p = param([1.0, 1.0])
    opt = optim.AdaGrad([p], lr=0.5)
    set_grad(p, [2.0, -0.001])
    opt.step()
    np.testing.assert_allclose(p.data, [0.5, 1.5], rtol=1e-5)  # lr * g / |g|
    q = param([0.0, 0.0])
    opt = optim.Adam([q], lr=0.01)
    set_grad(q, [3.0, -0.5])
    opt.step()
    np.testing.assert_allclose(q.data, [-0.01, 0.01], rtol=1e-5)  # bias-corrected: lr * sign(g)


def test_rmsprop_first_step_by_hand():
    p = param([0.0])
    opt = optim.RMSprop([p], lr=0.01, alpha=0.99)
    set_grad(p, [2.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01 * 2.0 / (np.sqrt(0.01 * 4.0) + 1e-8)], rtol=1e-6)


def test_weight_decay_is_l2_on_the_gradient():
    p = param([2.0])
    opt = optim.SGD([p], lr=0.1, weight_decay=0.5)
    set_grad(p, [0.0])
    opt.step()
    np.testing.assert_allclose(p.data, [2.0 - 0.1 * 0.5 * 2.0], rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.AdaGrad(ps, lr=0.1),
    lambda ps: optim.RMSprop(ps, lr=0.01, centered=True, momentum=0.5),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
], ids=["nesterov", "adagrad", "rmsprop", "adam"])
def test_float32_stays_float32_in_place(make):
    p = param(np.ones((3, 3)))
    buf = p.data
    opt = make([p])
    for _ in range(2):
        set_grad(p, np.full((3, 3), 0.5))
        opt.step()
    assert p.data is buf and p.dtype == np.float32
    assert all(np.asarray(v).dtype == np.float32 for v in opt.state[0].values() if np.ndim(v))


def test_params_without_grad_are_skipped_and_zero_grad_clears():
    a, b = param([1.0]), param([1.0])
    opt = optim.Adam([a, b], lr=0.1)
    set_grad(a, [1.0])
    opt.step()
    assert b.data[0] == 1.0 and a.data[0] != 1.0
    assert opt.state[1] == {}
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.02, momentum=0.9),
    lambda ps: optim.AdaGrad(ps, lr=0.5),
    lambda ps: optim.RMSprop(ps, lr=0.05),
    lambda ps: optim.Adam(ps, lr=0.1),
], ids=["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_minimizes_a_quadratic(make):
    """f(x, y) = x^2 / 20 + y^2, the book's chapter-6 test function, from (-7, 2)."""
    p = param([-7.0, 2.0], np.float64)
    opt = make([p])
    for _ in range(300):
        opt.zero_grad()
        x, y = p[0], p[1]
        (x * x / 20.0 + y * y).backward()
        opt.step()
    assert np.abs(p.data).max() < 0.5


def test_errors_name_the_optimizer():
    with pytest.raises(ValueError, match="Adam: got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="SGD: parameters must be Tensors"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([param([1.0])], lr=0.1, nesterov=True)


def test_lr_property_and_param_groups():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1)
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    set_grad(p, [1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.5])


def _train(opt_factory, steps, seed=0):
    rng = np.random.default_rng(seed)
    ps = [param(rng.standard_normal((3, 2))), param(rng.standard_normal(4))]
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in ps] for _ in range(steps)]
    return ps, opt_factory(ps), grads


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.AdaGrad(ps, lr=0.1, lr_decay=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, centered=True, momentum=0.9),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), amsgrad=True, weight_decay=0.1),
], ids=["momentum", "adagrad", "rmsprop", "adam"])
def test_state_dict_round_trip_through_file(tmp_path, factory):
    ps, opt, grads = _train(factory, 5)
    for g in grads[:3]:
        for p, gi in zip(ps, g):
            set_grad(p, gi)
        opt.step()
    path = tc.save(opt.state_dict(), tmp_path / "opt.npz")
    # a fresh optimizer (default hyper-parameters) on copies of the parameters
    qs = [param(p.data.copy()) for p in ps]
    fresh = type(opt)(qs, lr=123.0)
    fresh.load_state_dict(tc.load(path))
    assert fresh.param_groups[0].keys() == opt.param_groups[0].keys()
    for k, v in opt.param_groups[0].items():
        if k != "params":
            assert fresh.param_groups[0][k] == v, k
    assert fresh.step_count == opt.step_count == 3
    for g in grads[3:]:
        for p, q, gi in zip(ps, qs, g):
            set_grad(p, gi)
            set_grad(q, gi)
        opt.step()
        fresh.step()
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.data, q.data)
    # the loaded buffers are copies, not views of the file's arrays
    sd = opt.state_dict()
    key = next(k for k in sd if k.startswith("state.0."))
    sd[key][...] = 99.0
    assert not (np.asarray(opt.state[0][key.split(".", 2)[2]]) == 99.0).all()


def test_state_dict_is_flat_and_plain():
    p = param([1.0, 2.0])
    opt = optim.Adam([p], lr=0.01)
    set_grad(p, [1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"step_count", "group.lr", "group.betas", "group.eps", "group.weight_decay", "group.amsgrad",
                       "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"}
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in sd.values())


def test_load_state_dict_rejects_mismatched_state():
    p = param([1.0, 2.0])
    opt = optim.Adam([p])
    set_grad(p, [1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam([param([1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match=r"state\.0\.exp_avg.*\(2,\).*\(3,\)"):
        other.load_state_dict(sd)
    sd["state.3.exp_avg"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="state.3.exp_avg"):
        optim.Adam([param([1.0, 2.0])]).load_state_dict(sd)
