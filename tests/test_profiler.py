"""The per-op profiler: call counts per op type and phase (never timings), context and env-var use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, optim
from tinygrad_cnn import tensor as _tensor

ROOT = Path(__file__).resolve().parents[1]


def _step(model, x, y, opt=None):
    loss = F.softmax_cross_entropy(model(x), y)
    loss.backward()
    if opt is not None:
        opt.step()
    return loss


def test_counts_of_a_simpleconvnet_step_split_forward_and_backward():
    tc.manual_seed(0)
    model = models.SimpleConvNet()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 1, 28, 28), dtype=np.float32))
    y = np.array([1, 2, 3])
    with tc.profile(verbose=False) as prof:
        _step(model, x, y)
    expected = {"Conv2d": 1, "ReLU": 2, "MaxPool2d": 1, "Reshape": 1, "Linear": 2, "SoftmaxCrossEntropy": 1}
    assert prof.calls("forward") == expected
    # every recorded op runs its backward exactly once; ops built inside a backward
    # (conv_transpose2d, the max-pool scatter, ...) are charged to it, not listed
    assert prof.calls("backward") == expected
    assert prof.calls() == {k: 2 * v for k, v in expected.items()}
    rows = prof.rows()
    assert {(r["op"], r["phase"]) for r in rows} == {(k, p) for k in expected for p in ("forward", "backward")}
    assert all(r["total_ms"] >= 0 and 0 <= r["percent"] <= 100 for r in rows)
    assert set(prof.phase_ms()) == {"forward", "backward", "outside ops"}


def test_counts_of_a_lenet5_step_and_no_backward_without_grad():
    tc.manual_seed(0)
    model = models.LeNet5()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 1, 28, 28), dtype=np.float32))
    with tc.profile(verbose=False) as prof:
        _step(model, x, np.array([0, 9]))
        with tc.no_grad():
            model(x)  # forward ops are counted again, nothing runs backward
    fwd, bwd = prof.calls("forward"), prof.calls("backward")
    assert fwd == {"Conv2d": 4, "ReLU": 8, "MaxPool2d": 4, "Reshape": 2, "Linear": 6, "SoftmaxCrossEntropy": 1}
    assert bwd == {"Conv2d": 2, "ReLU": 4, "MaxPool2d": 2, "Reshape": 1, "Linear": 3, "SoftmaxCrossEntropy": 1}


def test_second_order_backward_ops_are_charged_to_the_op_that_built_them():
    x = Tensor(np.random.default_rng(2).standard_normal((1, 1, 5, 5)), requires_grad=True)
    w = Tensor(np.random.default_rng(3).standard_normal((2, 1, 3, 3)), requires_grad=True)
    with tc.profile(verbose=False) as prof:
        (gx,) = tc.grad(F.conv2d(x, w).sum(), [x], create_graph=True)
    assert prof.calls("forward") == {"Conv2d": 1, "Sum": 1}
    assert prof.calls("backward") == {"Sum": 1, "Conv2d": 1}
    assert gx.creator is not None and gx.creator.name == "ConvTranspose2d"


def test_profile_is_off_outside_the_context_and_nests():
    assert _tensor._profiler is None
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    with tc.profile(verbose=False) as outer:
        (a * 2).sum()
        with tc.profile(verbose=False) as inner:
            (a + 1).sum()
        assert _tensor._profiler is outer
        a.exp()
    assert _tensor._profiler is None
    assert inner.calls() == {"Add": 1, "Sum": 1}
    assert outer.calls() == {"Mul": 1, "Add": 1, "Sum": 2, "Exp": 1}  # the inner profile's ops count in it too
    assert outer.phase_ms()["forward"] >= inner.phase_ms()["forward"]


def test_summing_gradients_is_charged_to_backward_not_to_a_forward_add():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = (x * x).sum()  # x reaches Mul twice: its two gradients are summed
    x.grad = Tensor(np.ones(3, np.float32))  # and added to an existing .grad
    with tc.profile(verbose=False) as prof:
        y.backward()
    assert prof.calls("forward") == {}
    assert prof.calls("backward") == {"Sum": 1, "Mul": 1, "AccumulateGrad": 2}
    np.testing.assert_array_equal(x.grad.data, np.full(3, 3.0, np.float32))


def test_a_running_profile_cannot_be_entered_again():
    prof = tc.profile(verbose=False)
    with prof:
        try:
            with prof:
                pass
        except RuntimeError as exc:
            assert "already running" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("re-entering a running profile was allowed")
        assert _tensor._profiler is prof
    assert _tensor._profiler is None
    with prof:  # once stopped it may run again, and keeps counting
        Tensor(np.ones(2, np.float32), requires_grad=True).exp()
    assert prof.calls() == {"Exp": 1} and _tensor._profiler is None


def test_profile_prints_a_table_on_exit(capsys):
    a = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with tc.profile():
        (a * a).sum().backward()
    out = capsys.readouterr().out
    assert "Mul" in out and "backward" in out and "profiled wall time" in out


def test_exception_inside_an_op_is_not_swallowed():
    with tc.profile(verbose=False) as prof:
        try:
            F.conv2d(Tensor(np.ones((1, 2, 5, 5), np.float32)), Tensor(np.ones((1, 3, 3, 3), np.float32)))
        except ValueError as exc:
            assert "conv2d" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("channel mismatch was not raised")
    assert prof.calls("forward") == {"Conv2d": 1}
    assert _tensor._profiler is None


def test_env_var_profiles_the_whole_program():
    code = (
        "import numpy as np, tinygrad_cnn as tc, tinygrad_cnn.functional as F\n"
        "from tinygrad_cnn import Tensor\n"
        "x = Tensor(np.ones((2, 1, 6, 6), np.float32))\n"
        "w = Tensor(np.ones((3, 1, 3, 3), np.float32), requires_grad=True)\n"
        "F.max_pool2d(F.relu(F.conv2d(x, w)), 2).sum().backward()\n"
        "print('done')\n"
    )
    env = {**os.environ, "TINYGRAD_CNN_PROFILE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    table = {tuple(line.split()[:3]) for line in out.stderr.splitlines()}
    for op in ("Conv2d", "ReLU", "MaxPool2d", "Sum"):
        assert (op, "forward", "1") in table, out.stderr
        assert (op, "backward", "1") in table, out.stderr
    for off in ("0", "false", "Off", ""):
        env["TINYGRAD_CNN_PROFILE"] = off
        quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert quiet.returncode == 0 and "Conv2d" not in quiet.stderr, off


def test_profiling_changes_no_numbers():
    tc.manual_seed(0)
    m1 = models.SimpleConvNet()
    m2 = models.SimpleConvNet()
    m2.load_state_dict(m1.state_dict())
    x = Tensor(np.random.default_rng(4).standard_normal((2, 1, 28, 28), dtype=np.float32))
    y = np.array([3, 7])
    o1, o2 = optim.SGD(m1.parameters(), lr=0.1), optim.SGD(m2.parameters(), lr=0.1)
    l1 = _step(m1, x, y, o1)
    with tc.profile(verbose=False):
        l2 = _step(m2, x, y, o2)
    assert l1.item() == l2.item()
    for (_, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_array_equal(p1.data, p2.data)
