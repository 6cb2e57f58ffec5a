"""Optimizer parity with ``torch.optim``: identical parameters and gradients -> identical updates.

Skipped as a whole when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_cnn import Tensor, optim

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (5,), (2, 3, 3, 3)]

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
