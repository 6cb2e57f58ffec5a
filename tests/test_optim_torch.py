"""Optimizer parity with ``torch.optim``: identical parameters and gradients -> identical updates.

Skipped as a whole when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_cnn import Tensor, optim

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (5,), (2, 3, 3, 3), ()]  # (): a 0-d parameter (NumPy turns a 0-d sum into a scalar)

# (name, our constructor, torch constructor, kwargs shared by both)
CASES = [
    ("sgd", optim.SGD, "SGD", dict(lr=0.1)),
    ("sgd-wd", optim.SGD, "SGD", dict(lr=0.1, weight_decay=0.01)),
    ("momentum", optim.SGD, "SGD", dict(lr=0.05, momentum=0.9)),
    ("momentum-dampening", optim.SGD, "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("nesterov-wd", optim.SGD, "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)),
    ("adagrad", optim.AdaGrad, "Adagrad", dict(lr=0.1)),
    ("adagrad-decay-wd", optim.AdaGrad, "Adagrad",
     dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", optim.RMSprop, "RMSprop", dict(lr=0.01)),
    ("rmsprop-centered", optim.RMSprop, "RMSprop", dict(lr=0.01, centered=True)),
    ("rmsprop-momentum", optim.RMSprop, "RMSprop", dict(lr=0.01, momentum=0.9)),
    ("rmsprop-centered-momentum-wd", optim.RMSprop, "RMSprop",
     dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01)),
    ("adam", optim.Adam, "Adam", dict(lr=0.01)),
    ("adam-wd", optim.Adam, "Adam", dict(lr=0.01, weight_decay=0.05)),
    ("adam-amsgrad", optim.Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    ("adam-amsgrad-wd", optim.Adam, "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01, eps=1e-6)),
]

TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def run_both(ours_cls, torch_name, kw, steps, dtype, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    # Zero some gradient entries and scale others: the rules must handle both.
    for g in grads:
        g[0][0] = 0.0
        g[1] *= 1e-3
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = ours_cls(ours, **kw)
    topt = getattr(torch.optim, torch_name)(theirs, **kw)
    for step in range(steps):
        for p, tp, g in zip(ours, theirs, grads[step]):
            p.grad = Tensor(g.copy())
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    return ours, theirs


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("name,ours_cls,torch_name,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_float32(name, ours_cls, torch_name, kw, steps):
    ours, theirs = run_both(ours_cls, torch_name, kw, steps, np.float32)
    for i, (p, tp) in enumerate(zip(ours, theirs)):
        assert p.dtype == np.float32, f"{name}: parameter {i} changed dtype"
        np.testing.assert_allclose(p.data, tp.detach().numpy(), **TOL[np.float32],
                                   err_msg=f"{name}: parameter {i} after {steps} step(s)")


@pytest.mark.parametrize("name,ours_cls,torch_name,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_float64_five_steps(name, ours_cls, torch_name, kw):
    ours, theirs = run_both(ours_cls, torch_name, kw, 5, np.float64, seed=1)
    for i, (p, tp) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), **TOL[np.float64],
                                   err_msg=f"{name}: parameter {i} after 5 steps")


def test_adam_state_buffers_match_torch():
    p = Tensor(np.zeros(3), requires_grad=True)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt, topt = optim.Adam([p], lr=0.01, amsgrad=True), torch.optim.Adam([t], lr=0.01, amsgrad=True)
    for g in (np.array([0.5, -1.0, 2.0]), np.array([-0.25, 3.0, 0.0])):
        p.grad, t.grad = Tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    st, tst = opt.state[0], topt.state[t]
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        np.testing.assert_allclose(st[key], tst[key].numpy(), rtol=1e-12, err_msg=key)
    assert st["step"] == int(tst["step"]) == 2


# Parameter groups: (our class, torch's name, defaults, overrides for the second group)
GROUP_CASES = [
    (optim.SGD, "SGD", dict(lr=0.1, momentum=0.9), dict(lr=0.01, weight_decay=0.1, nesterov=True)),
    # (not initial_accumulator_value: torch.optim.Adagrad fills every group's sums from the constructor's value)
    (optim.AdaGrad, "Adagrad", dict(lr=0.1, initial_accumulator_value=0.1), dict(lr_decay=0.05, eps=1e-3)),
    (optim.RMSprop, "RMSprop", dict(lr=0.01), dict(centered=True, momentum=0.5, alpha=0.9)),
    (optim.Adam, "Adam", dict(lr=0.01), dict(betas=(0.8, 0.9), amsgrad=True, weight_decay=0.01)),
]


def _grouped(cls, torch_name, defaults, overrides, seed=0, late_group=False):
    """Ours and torch's optimizer over two groups of the same parameters; with ``late_group`` the
    optimizers get only the first, and the second group (ours, torch's) is returned for add_param_group."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    ogroups = [{"params": ours[:2]}, {"params": ours[2:], **overrides}]
    tgroups = [{"params": theirs[:2]}, {"params": theirs[2:], **overrides}]
    k = 1 if late_group else 2
    opt, topt = cls(ogroups[:k], **defaults), getattr(torch.optim, torch_name)(tgroups[:k], **defaults)
    return ours, theirs, opt, topt, (ogroups[1], tgroups[1]) if late_group else None


def _steps(ours, theirs, opt, topt, n, rng):
    for _ in range(n):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad, tp.grad = Tensor(g.copy()), torch.tensor(g.copy())
        opt.step()
        topt.step()


def _assert_same(ours, theirs, what):
    for i, (p, tp) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{what}: param {i}")


@pytest.mark.parametrize("cls,torch_name,defaults,overrides", GROUP_CASES, ids=[c[1] for c in GROUP_CASES])
def test_param_groups_match_torch(cls, torch_name, defaults, overrides):
    ours, theirs, opt, topt, _ = _grouped(cls, torch_name, defaults, overrides)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == topt.param_groups[1]["lr"]
    assert {k: v for k, v in opt.param_groups[1].items() if k != "params"} == \
        {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in topt.param_groups[1].items()
         if k in opt.defaults}
    _steps(ours, theirs, opt, topt, 5, np.random.default_rng(1))
    _assert_same(ours, theirs, "5 steps")


@pytest.mark.parametrize("cls,torch_name,defaults,overrides", GROUP_CASES, ids=[c[1] for c in GROUP_CASES])
def test_add_param_group_mid_training_matches_torch(cls, torch_name, defaults, overrides):
    ours, theirs, opt, topt, (o2, t2) = _grouped(cls, torch_name, defaults, overrides, late_group=True)
    rng = np.random.default_rng(2)
    _steps(ours[:2], theirs[:2], opt, topt, 2, rng)
    opt.add_param_group(o2)
    topt.add_param_group(t2)
    _steps(ours, theirs, opt, topt, 3, rng)
    _assert_same(ours, theirs, "2 + 3 steps")


@pytest.mark.parametrize("cls,torch_name,defaults,overrides", GROUP_CASES, ids=[c[1] for c in GROUP_CASES])
def test_grouped_state_dict_round_trip_continues_like_torch(cls, torch_name, defaults, overrides, tmp_path):
    import tinygrad_cnn as tc

    ours, theirs, opt, topt, _ = _grouped(cls, torch_name, defaults, overrides)
    rng = np.random.default_rng(3)
    _steps(ours, theirs, opt, topt, 2, rng)
    tc.save(opt.state_dict(), tmp_path / "opt.npz")
    sd = tc.load(tmp_path / "opt.npz")
    assert sd["group_sizes"].tolist() == [2, 2]
    # a new optimizer with the same groups but other hyper-parameters: loading restores both groups
    opt2 = cls([{"params": ours[:2], "lr": 0.5}, {"params": ours[2:]}], **defaults)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == defaults["lr"]
    assert all(opt2.param_groups[1][k] == (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items())
    _steps(ours, theirs, opt2, topt, 3, rng)
    _assert_same(ours, theirs, "2 steps, reload, 3 steps")


def test_grouped_state_dict_refuses_other_group_layouts():
    ps = [Tensor(np.ones(2), requires_grad=True) for _ in range(3)]
    two = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}], lr=0.1)
    one = optim.SGD(ps, lr=0.1)
    with pytest.raises(ValueError, match=r"parameter groups have \[3\] parameters, this optimizer's have \[1, 2\]"):
        two.load_state_dict(one.state_dict())
    with pytest.raises(ValueError, match="unexpected key 'group.1.lr'"):
        one.load_state_dict(two.state_dict())
    other = optim.SGD([{"params": ps[:2]}, {"params": ps[2:]}], lr=0.1)
    with pytest.raises(ValueError, match=r"have \[1, 2\] parameters, this optimizer's have \[2, 1\]"):
        other.load_state_dict(two.state_dict())


def test_step_with_closure_matches_torch():
    w0 = np.array([1.0, -2.0, 0.5])
    p, t = Tensor(w0.copy(), requires_grad=True), torch.tensor(w0.copy(), requires_grad=True)
    opt, topt = optim.SGD([p], lr=0.1, momentum=0.9), torch.optim.SGD([t], lr=0.1, momentum=0.9)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        calls.append(float(loss.data))
        return loss

    def tclosure():
        topt.zero_grad()
        loss = (t * t).sum()
        loss.backward()
        return loss

    from tinygrad_cnn import no_grad

    for _ in range(3):
        with no_grad():  # the closure records anyway, as PyTorch's step runs it under enable_grad
            loss = opt.step(closure)
        tloss = topt.step(tclosure)
        assert float(loss.data) == pytest.approx(float(tloss.detach()))
    assert len(calls) == 3
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)
    assert opt.step() is None and topt.step() is None


@pytest.mark.parametrize("groups,error,match", [
    (lambda ps: [ps[0], {"params": [ps[1]]}], TypeError, "all Tensors or all parameter-group dicts"),
    (lambda ps: [{"params": [ps[0]], "momentun": 0.9}], ValueError, "unknown option.*'momentun'.*lr, momentum"),
    (lambda ps: [{"params": [ps[0]]}, {"params": [ps[0], ps[1]]}], ValueError, "same Tensor as parameter 0"),
    (lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": -1.0}], ValueError, "Invalid learning rate: -1"),
    (lambda ps: [{"lr": 0.1}], TypeError, "dict with a 'params' entry"),
    (lambda ps: set(ps), TypeError, "not a set"),
    (lambda ps: [{"params": set(ps)}], TypeError, "group 0's params should be an ordered collection"),
], ids=["mixed", "typo", "shared", "bad-lr", "no-params", "set", "set-in-group"])
def test_param_group_errors(groups, error, match):
    ps = [Tensor(np.ones(2), requires_grad=True) for _ in range(2)]
    with pytest.raises(error, match=match):
        optim.SGD(groups(ps), lr=0.1)


def test_empty_groups_and_named_parameters_are_accepted_as_torch():
    from tinygrad_cnn import nn

    a = Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": []}, {"params": [a]}], lr=0.1)
    topt = torch.optim.SGD([{"params": []}, {"params": [torch.ones(2, requires_grad=True)]}], lr=0.1)
    assert len(opt.param_groups) == len(topt.param_groups) == 2 and opt.params == [a]
    a.grad = Tensor(np.ones(2))
    opt.step()
    np.testing.assert_allclose(a.data, [0.9, 0.9])
    assert opt.state_dict()["group_sizes"].tolist() == [0, 1]
    model = nn.Linear(3, 2)
    named = optim.Adam(model.named_parameters(), lr=0.1)
    assert named.params == list(model.parameters())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no steps needed here
def test_lr_setter_keeps_the_groups_ratios_like_torch_schedulers():
    """fit's lr_schedule sets ``opt.lr``: every group is scaled by the same factor; a frozen group stays frozen."""
    ps = [Tensor(np.ones(2), requires_grad=True) for _ in range(3)]
    opt = optim.Adam([{"params": ps[:1]}, {"params": ps[1:2], "lr": 0.05}, {"params": ps[2:], "lr": 0.0}], lr=0.1)
    tps = [torch.ones(2, requires_grad=True) for _ in range(3)]
    topt = torch.optim.Adam([{"params": tps[:1]}, {"params": tps[1:2], "lr": 0.05}, {"params": tps[2:], "lr": 0.0}],
                            lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda epoch: 0.5 ** epoch)
    for epoch in range(1, 4):
        opt.lr = 0.1 * 0.5 ** epoch
        sched.step()
        assert opt.lr == pytest.approx(0.1 * 0.5 ** epoch)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups])
    same = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.1}], lr=0.1)
    same.lr = 0.01
    assert [g["lr"] for g in same.param_groups] == [0.01, 0.01]
    frozen_first = optim.SGD([{"params": ps[:1], "lr": 0.0}, {"params": ps[1:]}], lr=0.1)
    frozen_first.lr = 0.01
    assert [g["lr"] for g in frozen_first.param_groups] == [0.0, pytest.approx(0.01)]
    assert frozen_first.lr == pytest.approx(0.01)
    zero = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.1}], lr=0.0)
    with pytest.raises(ValueError, match="created with lr 0"):
        zero.lr = 0.01


def test_fit_schedule_with_a_frozen_group_leaves_it_frozen():
    from tinygrad_cnn import nn, training

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    frozen = model[1].weight.data.copy()
    opt = optim.SGD([{"params": list(model[1].parameters()), "lr": 0.0},
                     {"params": list(model[3].parameters())}], lr=0.1)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 1, 2, 2)).astype(np.float32), rng.integers(0, 2, 4)) for _ in range(3)]
    training.fit(model, opt, batches, epochs=2, lr_schedule=lambda e: 0.1 * 0.5 ** (e - 1), progress_bar=False,
                 pictures=False, log=None)
    np.testing.assert_array_equal(model[1].weight.data, frozen)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.05]


def test_a_refused_param_group_changes_nothing():
    ps = [Tensor(np.ones(2), requires_grad=True) for _ in range(3)]
    opt = optim.SGD(ps[:1], lr=0.1)
    for bad in ({"params": ps[1:], "lr": -1.0}, {"params": [ps[1], ps[0]]}, {"params": [ps[1], "w"]}):
        with pytest.raises((ValueError, TypeError)):
            opt.add_param_group(bad)
        assert len(opt.param_groups) == 1 and opt.params == ps[:1] and len(opt.state) == 1
    opt.add_param_group({"params": ps[1:], "lr": 0.5})
    assert [len(g["params"]) for g in opt.param_groups] == [1, 2] and len(opt.state) == 3


@pytest.mark.parametrize("cls,torch_name,defaults,overrides", GROUP_CASES, ids=[c[1] for c in GROUP_CASES])
def test_params_appended_to_a_group_directly_are_followed_like_torch(cls, torch_name, defaults, overrides):
    """``param_groups[g]["params"].append(p)`` (PyTorch allows it): p is updated from then on, with fresh state."""
    ours, theirs, opt, topt, _ = _grouped(cls, torch_name, defaults, overrides)
    rng = np.random.default_rng(5)
    extra, textra = Tensor(np.ones(3), requires_grad=True), torch.ones(3, dtype=torch.float64, requires_grad=True)
    _steps(ours, theirs, opt, topt, 2, rng)
    opt.param_groups[0]["params"].append(extra)
    topt.param_groups[0]["params"].append(textra)
    _steps(ours + [extra], theirs + [textra], opt, topt, 3, rng)
    _assert_same(ours + [extra], theirs + [textra], "2 steps, append, 3 steps")
    assert opt.params[2] is extra and opt.state_dict()["group_sizes"].tolist() == [3, 2]
