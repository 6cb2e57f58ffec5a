"""Tensor construction, properties and the forward values of its operators and methods."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor


def test_construction_and_properties():
    a = np.arange(6.0).reshape(2, 3)
    x = Tensor(a, requires_grad=True, name="x")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == np.float64 and x.requires_grad and x.is_leaf and x.grad_fn is None and x.name == "x"
    a[0, 0] = 10.0  # the Tensor owns a copy, as torch.tensor (x.detach() shares, Tensor() does not)
    assert x.data is not a and x.data[0, 0] == 0.0
    np.testing.assert_array_equal(x.numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.asarray(x), x.data)
    assert Tensor(x).data is not x.data and x.detach().data is x.data
    assert Tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert Tensor(np.float64(3.0)).item() == 3.0
    assert Tensor(np.zeros(3), dtype=np.float32).dtype == np.float32


def test_item_and_argmax():
    x = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 0])
    assert x.sum().item() == 16.0


@pytest.mark.parametrize("op,ref", [
    (lambda a, b: a + b, np.add), (lambda a, b: a - b, np.subtract), (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / b, np.divide), (lambda a, b: a ** b, np.power),
], ids=["add", "sub", "mul", "div", "pow"])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2,))], ids=str)
def test_binary_ops_broadcast_like_numpy(rng, op, ref, sa, sb):
    a, b = np.abs(rng.standard_normal(sa)) + 0.5, rng.standard_normal(sb)  # a > 0 for a ** b
    out = op(Tensor(a), Tensor(b))
    np.testing.assert_allclose(out.data, ref(a, b), rtol=1e-12)
    # ndarray on either side works too, and returns a Tensor
    assert isinstance(op(a, Tensor(b)), Tensor) and isinstance(op(Tensor(a), b), Tensor)
    np.testing.assert_allclose(op(a, Tensor(b)).data, ref(a, b), rtol=1e-12)


def test_unary_ops_values(rng):
    a = rng.standard_normal((3, 4))
    x = Tensor(a)
    np.testing.assert_allclose((-x).data, -a)
    np.testing.assert_allclose(x.exp().data, np.exp(a))
    np.testing.assert_allclose(x.exp().log().data, a, atol=1e-12)
    np.testing.assert_allclose(x.relu().data, np.maximum(a, 0))
    np.testing.assert_allclose(x.sigmoid().data, 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_allclose(x.tanh().data, np.tanh(a), rtol=1e-12)
    np.testing.assert_allclose(tc.functional.exp(x).data, np.exp(a))
    np.testing.assert_allclose(x.softmax().data.sum(-1), 1.0)


def test_matmul_values(rng):
    for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                   ((2, 1, 2, 3), (3, 3, 2))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        out = Tensor(a) @ Tensor(b)
        assert out.shape == np.matmul(a, b).shape
        np.testing.assert_allclose(out.data, a @ b, rtol=1e-12)
    np.testing.assert_allclose((a @ Tensor(b)).data, a @ b)  # __rmatmul__


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False), (-1, True), ((0, 2), False),
                                           ((1, 2), True)], ids=str)
def test_reductions_use_numpy_semantics(rng, axis, keepdims):
    a = rng.standard_normal((2, 3, 4))
    x = Tensor(a)
    for name in ("sum", "mean", "max"):
        out = getattr(x, name)(axis, keepdims)
        ref = getattr(a, name)(axis=axis, keepdims=keepdims)
        assert out.shape == np.shape(ref), name
        np.testing.assert_allclose(out.data, ref, rtol=1e-12)


def test_full_reduction_is_zero_dim():
    x = Tensor(np.ones((2, 3)))
    assert x.sum().shape == () and x.mean().shape == () and x.max().shape == ()


def test_shape_ops_values(rng):
    a = rng.standard_normal((2, 3, 4))
    x = Tensor(a)
    np.testing.assert_array_equal(x.reshape(4, 6).data, a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape((6, -1)).data, a.reshape(6, -1))
    np.testing.assert_array_equal(x.transpose(1, 0, 2).data, a.transpose(1, 0, 2))
    np.testing.assert_array_equal(x.transpose((2, 0, 1)).data, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.transpose().data, a.T)
    np.testing.assert_array_equal(x.T.data, a.T)
    assert x.flatten().shape == (2, 12) and x.flatten(0).shape == (24,) and x.flatten(-1).shape == (2, 3, 4)
    np.testing.assert_array_equal(x[1, ::2, [0, 3]].data, a[1, ::2, [0, 3]])
    np.testing.assert_array_equal(x[..., None].data, a[..., None])


def test_pad_values():
    x = Tensor(np.ones((1, 2, 2)))
    y = tc.functional.pad(x, (1, 0, 0, 2), value=-1.0)  # last axis (left 1, right 0), then (top 0, bottom 2)
    assert y.shape == (1, 4, 3)
    np.testing.assert_array_equal(y.data[0], [[-1, 1, 1], [-1, 1, 1], [-1, -1, -1], [-1, -1, -1]])


def test_in_place_free_api_does_not_alias_inputs():
    a = np.ones(3)
    x = Tensor(a, requires_grad=True)
    y = x + 1
    y.data[0] = 100.0
    assert a[0] == 1.0


def test_ndarray_on_the_left_dispatches_to_tensor():
    a = np.arange(3.0)
    x = Tensor(np.ones(3), requires_grad=True)
    y = a * x + a - x
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_array_equal(y.data, 2 * a - 1)


# ----------------------------------------------------------------------------- the PyTorch surface


def test_in_place_updates_under_no_grad_train_the_parameter():
    """``q -= lr * q.grad`` under no_grad updates the parameter's array (the micrograd/book loop)."""
    from tinygrad_cnn import nn

    lin = nn.Linear(3, 2)
    w0 = lin.weight.data.copy()
    (lin(Tensor(np.ones((4, 3), np.float32))) ** 2).sum().backward()
    with tc.no_grad():
        for q in lin.parameters():
            q -= 0.1 * q.grad
    np.testing.assert_allclose(lin.weight.data, w0 - 0.1 * lin.weight.grad.data)
    assert lin.weight.is_leaf and [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    t = Tensor(np.array([1.0, 2.0], np.float32))
    t *= 3
    t /= 2
    t += np.float64(1)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, [2.5, 4.0])


def test_in_place_on_a_recorded_graph_as_torch():
    torch = pytest.importorskip("torch")
    p = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad cannot be modified in place"):
        p += 1
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    h += x * x  # recorded: the gradient flows through both terms
    h.sum().backward()
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    th = tx * 2
    th += tx * tx
    th.sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    ints = Tensor(np.array([1, 2]))
    with pytest.raises(TypeError, match="add in place"):
        ints += 0.5  # a float result does not fit an int tensor (torch raises too)


def test_comparisons_are_elementwise_bool_tensors():
    pred, y = Tensor(np.array([0, 1, 2])), np.array([0, 2, 2])
    for got in (pred == y, y == pred, pred == Tensor(y)):
        assert isinstance(got, Tensor) and got.dtype == bool
        np.testing.assert_array_equal(got.data, [True, False, True])
    assert abs(float((pred == y).mean()) - 2 / 3) < 1e-6  # the usual accuracy line
    x = Tensor(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal((x > 0).data, [False, False, True])
    np.testing.assert_array_equal((x <= 0).data, [True, True, False])
    np.testing.assert_array_equal((np.zeros(3) < x).data, [False, False, True])
    np.testing.assert_array_equal((x != 0).data, [True, False, True])
    assert x in {x} and len({x, Tensor(x)}) == 2  # hashing stays by identity
    with pytest.raises(ValueError, match="equal: shapes"):
        _ = x == np.ones(2)


def test_one_element_tensors_convert_to_python_scalars():
    assert float(Tensor(2.5)) == 2.5 and int(Tensor(np.array([4]))) == 4
    assert f"{Tensor(2.5):.2f}" == "2.50" and f"{Tensor([1.0, 2.0])}".startswith("Tensor(")
    assert bool(Tensor([0.0])) is False and bool(Tensor(3.0)) is True
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="one-element"):
        float(Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(Tensor(1.0))
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert len(rows) == 3 and rows[1].shape == (2,) and rows[1].data.tolist() == [2.0, 3.0]
    assert np.mean([Tensor(1.0), Tensor(2.0)]) == 1.5  # averaging a list of losses
    assert Tensor([Tensor(1.0), Tensor(2.0)]).shape == (2,)
    with pytest.raises(TypeError, match="None"):
        Tensor(None)


def test_mixed_int_and_float_operands_promote_as_torch():
    ints, f32 = Tensor(np.array([1, 2])), Tensor(np.ones(2, np.float32))
    assert (ints + 0.5).dtype == (ints / 2).dtype == (f32 + ints).dtype == (ints * f32).dtype == np.float32
    assert (ints + 1).dtype == np.int64 and (Tensor(np.ones(2)) + ints).dtype == np.float64
    np.testing.assert_allclose((ints / 2).data, [0.5, 1.0])


def test_mean_of_ints_and_bools_is_float32_as_division():
    """``(pred == y).mean()`` (an accuracy) is float32, the default float, like ``ints / 2``; never float64."""
    ints, flags = Tensor(np.array([[1, 2, 4], [3, 5, 6]])), Tensor(np.array([True, False, True, True]))
    assert ints.mean().dtype == ints.mean(0).dtype == flags.mean().dtype == np.float32
    np.testing.assert_allclose(ints.mean(0).data, [2.0, 3.5, 5.0])
    assert float(flags.mean()) == 0.75
    empty = Tensor(np.zeros(0, np.int64)).mean()
    assert np.isnan(empty.data) and empty.dtype == np.float32
    assert Tensor(np.ones(3)).mean().dtype == np.float64  # a float keeps its own dtype


def test_int_inputs_to_float_layers_stay_in_the_layers_dtype():
    """uint8/int64 images into a float32 model give float32 (as ``ints * f32``), not NumPy's float64."""
    w = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    y = F.linear(Tensor(np.arange(8).reshape(2, 4)), w, Tensor(np.zeros(3, np.float32)))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, [[6, 6, 6], [22, 22, 22]])
    y.sum().backward()
    assert w.grad.dtype == np.float32
    img = Tensor(np.full((1, 1, 4, 4), 255, np.uint8))
    out = F.conv2d(img, Tensor(np.ones((2, 1, 3, 3), np.float32)))
    assert out.dtype == np.float32 and float(out.data.max()) == 9 * 255  # no uint8 wrap-around either
    assert tc.models.LeNet5()(Tensor(np.zeros((1, 1, 28, 28), np.uint8))).dtype == np.float32


def test_grad_modes_as_context_managers_decorators_and_calls():
    @tc.no_grad()
    def countdown(n):
        return tc.is_grad_enabled() if n == 0 else countdown(n - 1)

    assert countdown(3) is False and tc.is_grad_enabled()  # recursion restores the mode

    @tc.no_grad
    def bare():
        return tc.is_grad_enabled()

    assert bare() is False and tc.is_grad_enabled()
    tc.set_grad_enabled(False)  # a plain call switches, as torch.set_grad_enabled
    assert not tc.is_grad_enabled()
    with tc.enable_grad():
        assert tc.is_grad_enabled()
    assert not tc.is_grad_enabled()
    tc.set_grad_enabled(True)
    with tc.set_grad_enabled(False):
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()
    ctx = tc.no_grad()
    with ctx:
        with ctx:
            pass
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()


def test_flatten_checks_its_dims_and_takes_end_dim():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.flatten(0).shape == (24,) and x.flatten(1).shape == (2, 12) and x.flatten(-2).shape == (2, 12)
    assert x.flatten(0, 1).shape == (6, 4) and x.flatten(1, -1).shape == (2, 12) and x.flatten(2).shape == (2, 3, 4)
    assert Tensor(np.zeros((0, 3, 4))).flatten(1).shape == (0, 12) and Tensor(2.0).flatten(0).shape == (1,)
    for bad in ((3,), (-4,), (5,)):
        with pytest.raises(IndexError, match="flatten"):
            x.flatten(*bad)
    with pytest.raises(ValueError, match="start_dim"):
        x.flatten(2, 1)
    h = Tensor(np.ones((2, 3)), requires_grad=True) * 1.0
    assert h.flatten(1) is h and h.flatten(0, 0) is h  # nothing to merge: the tensor itself, as torch


def test_zero_d_results_hold_arrays():
    """NumPy gives scalars for 0-d results; a tensor always holds a (writable) array."""
    x = Tensor(np.array(3.0), requires_grad=True)
    for t in (x * 2.0, x + x, (x * x).sum(), Tensor(np.arange(3.0))[1], x.exp()):
        assert isinstance(t.data, np.ndarray) and t.data.ndim == 0


def test_tensors_own_their_arrays_and_gradients():
    """As torch.tensor: Tensor(ndarray) copies; gradients are never a caller's array or shared."""
    from tinygrad_cnn import nn, optim

    w0 = np.ones((2, 2), np.float32)
    p = nn.Parameter(w0)
    (p * 2).sum().backward()
    optim.SGD([p], lr=0.1).step()
    assert w0[0, 0] == 1.0 and p.data[0, 0] == np.float32(0.8)
    seed = np.ones(2)
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x + 0).backward(Tensor(seed))
    seed[0] = 99.0
    assert x.grad.data[0] == 1.0
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    (a + b).backward(Tensor(np.ones(2)))
    assert a.grad.data is not b.grad.data


@pytest.mark.parametrize("name", ["abs", "sqrt", "clamp", "clamp_min", "clamp_max", "min", "min_axis", "clone",
                                  "view", "permute", "unsqueeze", "squeeze", "squeeze_dim"])
def test_pytorch_spelled_methods_match_torch_and_pass_gradcheck(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((2, 1, 3, 1))
    x0[0, 0, 0, 0] = 0.0  # abs at 0, clamp at its bound
    if name == "sqrt":
        x0 = np.abs(x0) + 0.5
    if name == "min":
        x0[1, 0, 2, 0] = x0.min()  # a tie: the gradient is shared, as torch's amin
    ours = {
        "abs": lambda t: t.abs(), "sqrt": lambda t: t.sqrt(), "clamp": lambda t: t.clamp(-0.5, 0.0),
        "clamp_min": lambda t: t.clamp(min=0.0), "clamp_max": lambda t: t.clamp(max=0.3), "min": lambda t: t.min(),
        "min_axis": lambda t: t.min(axis=2, keepdims=True), "clone": lambda t: t.clone() * 2,
        "view": lambda t: t.view(3, 2), "permute": lambda t: t.permute(3, 2, 0, 1),
        "unsqueeze": lambda t: t.unsqueeze(-1), "squeeze": lambda t: t.squeeze(), "squeeze_dim": lambda t: t.squeeze(1),
    }[name]
    theirs = {
        "abs": lambda t: t.abs(), "sqrt": lambda t: t.sqrt(), "clamp": lambda t: t.clamp(-0.5, 0.0),
        "clamp_min": lambda t: t.clamp(min=0.0), "clamp_max": lambda t: t.clamp(max=0.3), "min": lambda t: t.amin(),
        "min_axis": lambda t: t.amin(dim=2, keepdim=True), "clone": lambda t: t.clone() * 2,
        "view": lambda t: t.view(3, 2), "permute": lambda t: t.permute(3, 2, 0, 1),
        "unsqueeze": lambda t: t.unsqueeze(-1), "squeeze": lambda t: t.squeeze(), "squeeze_dim": lambda t: t.squeeze(1),
    }[name]
    x = Tensor(x0, requires_grad=True)
    y = ours(x)
    tx = torch.tensor(x0, requires_grad=True)
    ty = theirs(tx)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    seed = rng.standard_normal(y.shape)
    y.backward(Tensor(seed))
    ty.backward(torch.tensor(seed))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)
    if name not in ("abs", "clamp", "clamp_min", "min"):  # kinks at the chosen points: no finite differences there
        assert tc.gradcheck(ours, (Tensor(x0, requires_grad=True),))


def test_small_helpers_and_checks():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.numel() == 6 and x.dim() == 2 and x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x.squeeze(0).shape == (2, 3) and x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(2).shape == (2, 3, 1)
    with pytest.raises(IndexError, match="unsqueeze"):
        x.unsqueeze(4)
    with pytest.raises(ValueError, match="clamp: at least one"):
        x.clamp()
    t = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"assigned grad has shape \(2,\) but the tensor has shape \(3,\)"):
        t.grad = Tensor(np.ones(2))
    with pytest.raises(TypeError, match="grad must be a Tensor or None"):
        t.grad = np.ones(3)
    t.grad = Tensor(np.ones(3))
    t.grad = None


def test_nn_flatten_takes_end_dim_as_torch():
    from tinygrad_cnn import nn

    x = Tensor(np.zeros((2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(0, -2)(x).shape == (24, 5) and repr(nn.Flatten(1, 2)) == "Flatten(start_dim=1, end_dim=2)"


def test_import_and_a_training_step_never_import_cupy(tmp_path):
    """The array-module handle looks CuPy up only once the program has imported it: an installed
    CuPy (here a stand-in that fails on import) must not slow down or break ``import tinygrad_cnn``."""
    (tmp_path / "cupy").mkdir()
    marker = tmp_path / "imported"
    (tmp_path / "cupy" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('no GPU')\n")
    code = ("import sys, numpy as np, tinygrad_cnn as tc\n"
            "m = tc.models.LeNet5(); x = tc.Tensor(np.zeros((2, 1, 28, 28), np.float32))\n"
            "tc.functional.softmax_cross_entropy(m(x), np.array([1, 2])).backward()\n"
            "assert 'cupy' not in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).parents[1]), env=env)
    assert not marker.exists(), "import tinygrad_cnn imported cupy"
