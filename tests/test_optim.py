"""Tests for tinygrad_cnn.optim: update rules by hand, dtypes, state dicts, convergence, argument checks."""

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
    with pytest.raises(ValueError, match="Adam: optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="SGD: parameters must be Tensors"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD([param([1.0])], lr=0.1, nesterov=True)


def test_lr_property_and_param_groups():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1)
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    assert optim.SGD([p]).lr == 1e-3 == optim.Adam([p]).lr  # PyTorch's defaults
    assert optim.AdaGrad([p]).lr == 0.01 == optim.RMSprop([p]).lr
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
    assert set(sd) == {"step_count", "param_count", "group.lr", "group.betas", "group.eps", "group.weight_decay",
                       "group.amsgrad", "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"}
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


# ----------------------------------------------------------------------------- hyper-parameter validation

# (our class, torch.optim name, keyword arguments): invalid ones raise ValueError like torch, valid ones build
VALIDATION_CASES = [
    (optim.SGD, "SGD", dict(lr=-1)),
    (optim.SGD, "SGD", dict(lr=0.1, momentum=-0.5)),
    (optim.SGD, "SGD", dict(lr=0.1, weight_decay=-1e-4)),
    (optim.SGD, "SGD", dict(lr=0.1, nesterov=True)),
    (optim.SGD, "SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    (optim.SGD, "SGD", dict(lr=0.0, momentum=0.9, dampening=0.5, weight_decay=0.0)),
    (optim.SGD, "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.AdaGrad, "Adagrad", dict(lr=-0.01)),
    (optim.AdaGrad, "Adagrad", dict(lr_decay=-1)),
    (optim.AdaGrad, "Adagrad", dict(weight_decay=-1)),
    (optim.AdaGrad, "Adagrad", dict(initial_accumulator_value=-0.5)),
    (optim.AdaGrad, "Adagrad", dict(eps=-1e-10)),
    (optim.AdaGrad, "Adagrad", dict(lr=0.0, eps=0.0, initial_accumulator_value=0.1)),
    (optim.RMSprop, "RMSprop", dict(lr=-1)),
    (optim.RMSprop, "RMSprop", dict(eps=-1)),
    (optim.RMSprop, "RMSprop", dict(momentum=-1)),
    (optim.RMSprop, "RMSprop", dict(weight_decay=-1)),
    (optim.RMSprop, "RMSprop", dict(alpha=-0.1)),
    (optim.RMSprop, "RMSprop", dict(alpha=1.5, eps=0.0)),  # torch checks alpha >= 0 only
    (optim.Adam, "Adam", dict(lr=-1e-3)),
    (optim.Adam, "Adam", dict(eps=-1e-8)),
    (optim.Adam, "Adam", dict(betas=(1.5, 0.9))),
    (optim.Adam, "Adam", dict(betas=(-0.1, 0.9))),
    (optim.Adam, "Adam", dict(betas=(0.9, 1.0))),
    (optim.Adam, "Adam", dict(betas=(0.9, -0.001))),
    (optim.Adam, "Adam", dict(weight_decay=-0.1)),
    (optim.Adam, "Adam", dict(lr=0.0, betas=(0.0, 0.0), eps=0.0)),
]


def _outcome(make):
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - the type and message are what we compare
        return type(exc), str(exc)
    return None, None


@pytest.mark.parametrize("ours, torch_name, kwargs", VALIDATION_CASES,
                         ids=[f"{t}-{k}" for _, t, k in VALIDATION_CASES])
def test_hyperparameter_validation_matches_torch(ours, torch_name, kwargs):
    torch = pytest.importorskip("torch")
    want_type, want_msg = _outcome(lambda: getattr(torch.optim, torch_name)([torch.zeros(2, requires_grad=True)],
                                                                             **kwargs))
    got_type, got_msg = _outcome(lambda: ours([param([0.0, 0.0])], **kwargs))
    assert got_type is want_type, (got_msg, want_msg)
    if want_type is not None:
        assert want_type is ValueError
        # same wording as torch, prefixed with the optimizer's name
        assert got_msg.startswith(f"{ours.__name__}: {want_msg}"), (got_msg, want_msg)


@pytest.mark.parametrize("ours, kwargs, message", [
    (optim.SGD, dict(lr=-1), "SGD: Invalid learning rate: -1"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "SGD: Invalid momentum value: -0.5"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "SGD: Nesterov momentum requires a momentum and zero dampening"),
    (optim.AdaGrad, dict(lr_decay=-1), "AdaGrad: Invalid lr_decay value: -1"),
    (optim.RMSprop, dict(alpha=-0.1), "RMSprop: Invalid alpha value: -0.1"),
    (optim.Adam, dict(betas=(1.5, 0.9)), "Adam: Invalid beta parameter at index 0: 1.5"),
    (optim.Adam, dict(betas=(0.9, 1.0)), "Adam: Invalid beta parameter at index 1: 1.0"),
    (optim.Adam, dict(eps=-1), "Adam: Invalid epsilon value: -1"),
    (optim.Adam, dict(betas=(0.9,)), "Adam: betas must be a pair"),
    # NaN never trains anything: refused everywhere (torch.optim.SGD lets a NaN lr through)
    (optim.SGD, dict(lr=float("nan")), "SGD: Invalid learning rate: nan"),
    (optim.Adam, dict(lr=float("nan")), "Adam: Invalid learning rate: nan"),
])
def test_invalid_hyperparameters_name_optimizer_and_value(ours, kwargs, message):
    with pytest.raises(ValueError) as ei:
        ours([param([1.0])], **kwargs)
    assert str(ei.value).startswith(message)


@pytest.mark.parametrize("ours", [optim.SGD, optim.AdaGrad, optim.RMSprop, optim.Adam])
def test_empty_and_single_tensor_params_like_torch(ours):
    with pytest.raises(ValueError, match=f"^{ours.__name__}: optimizer got an empty parameter list$"):
        ours([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        ours(iter([]), lr=0.1)
    with pytest.raises(TypeError, match=f"{ours.__name__}: params should be an iterable of Tensors"):
        ours(param([1.0, 2.0]), lr=0.1)
    # hyper-parameters are checked first, as in torch
    with pytest.raises(ValueError, match="Invalid learning rate"):
        ours([], lr=-1)


def test_empty_and_single_tensor_messages_match_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as ei:
        torch.optim.SGD([], lr=0.1)
    assert str(ei.value) == "optimizer got an empty parameter list"
    with pytest.raises(TypeError):
        torch.optim.SGD(torch.zeros(2, requires_grad=True), lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        torch.optim.SGD([], lr=-1)


def test_zero_grad_set_to_none_false_leaves_zero_gradients():
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.shape == (3,) and not p.grad.data.any()
    opt.zero_grad()
    assert p.grad is None


def test_load_state_dict_replaces_the_state_as_pytorch():
    """Loading the state dict of a fresh optimizer drops the buffers built since (torch: state == {})."""
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    fresh = opt.state_dict()
    for _ in range(3):
        set_grad(p, [1.0, 1.0])
        opt.step()
    assert "momentum_buffer" in opt.state[0]
    opt.load_state_dict(fresh)
    assert opt.state == [{}] and opt.step_count == 0
    set_grad(p, [1.0, 1.0])
    before = p.data.copy()
    opt.step()  # a first step again: the buffer starts from the gradient
    np.testing.assert_allclose(p.data, before - 0.1)


@pytest.mark.parametrize("sd,match", [
    ({"weight": np.zeros((3, 3)), "bias": np.zeros(3)}, "unexpected key 'weight'"),   # a model's state dict
    ({"state": np.zeros(1), "param_groups": np.zeros(1)}, "unexpected key 'state'"),   # PyTorch's layout
    ({"group.betas": np.array([0.9, 0.99])}, "unexpected key 'group.betas'.*SGD"),     # Adam's, into SGD
    ({"param_count": np.asarray(1)}, "for 1 parameters, the optimizer has 2"),
    ({"step_count": np.asarray(1.5)}, "step_count must be an integer"),
], ids=["model", "torch-layout", "other-optimizer", "count", "step-count"])
def test_load_state_dict_refuses_what_is_not_its_state_and_changes_nothing(sd, match):
    ps = [param([1.0, 2.0]), param([3.0])]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    for p in ps:
        set_grad(p, np.ones(p.shape))
    opt.step()
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.AdaGrad(ps, lr=0.1),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True),
    lambda ps: optim.Adam(ps, lr=0.1),
], ids=["momentum", "adagrad", "rmsprop", "adam"])
def test_a_reload_mid_run_continues_exactly_for_a_0d_parameter(factory):
    """0-d buffers come back as arrays: the updates that follow change them in place, as before the reload."""
    p, q = param(1.5, np.float32), param(1.5, np.float32)
    grads = [0.5, -1.0, 2.0, 0.25, -0.75, 1.0]
    opt, other = factory([p]), factory([q])
    for i, g in enumerate(grads):
        if i == 3:
            other = factory([q])
            other.load_state_dict(opt.state_dict())
        set_grad(p, g)
        set_grad(q, g)
        opt.step()
        other.step()
    np.testing.assert_array_equal(q.data, p.data)

