"""The dtype policy (docs/autograd.md) against PyTorch as the oracle: result dtypes of mixed
operands, integer inputs to float ops, and no float64 anywhere in a float32 graph (outputs,
gradients, arrays the recorded ops keep)."""

from __future__ import annotations

import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import tinygrad_cnn as tc  # noqa: E402
import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, optim  # noqa: E402
from tinygrad_cnn.backend import is_array  # noqa: E402


def _name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _saved_float64(y: Tensor) -> list[str]:
    """``op.attr`` for every float64 array a Function of ``y``'s graph keeps."""
    found, seen, stack = [], set(), [y]
    while stack:
        fn = stack.pop().creator
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.extend(fn.inputs or ())
        for k, v in vars(fn).items():
            if is_array(v) and v.dtype == np.float64:
                found.append(f"{fn.name}.{k}")
    return found


OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv, "pow": operator.pow}


# --------------------------------------------------------------------------- elementwise promotion


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("big, small", [("float32", "float64"), ("int8", "int64"), ("uint8", "int64"),
                                        ("int32", "int64"), ("float64", "float32")])
@pytest.mark.parametrize("reflected", [False, True], ids=["dim_first", "0d_first"])
def test_a_0d_tensor_does_not_widen_a_dimensioned_one(op, big, small, reflected):
    a, b = np.array([1, 2, 3], dtype=big), np.array(2, dtype=small)
    args, targs = (Tensor(a), Tensor(b)), (torch.tensor(a), torch.tensor(b))
    if reflected:
        args, targs = args[::-1], targs[::-1]
    assert _name(OPS[op](*args).dtype) == _name(OPS[op](*targs).dtype)


@pytest.mark.parametrize("op", ["mul", "div", "add"])
def test_a_0d_float64_tensor_keeps_a_float32_graph_float32(op):
    x = Tensor(np.array([0.5, 1.0, 2.0], np.float32), requires_grad=True)
    s = Tensor(np.array(2.0), requires_grad=True)  # float64, 0-d
    y = OPS[op](x, s)
    assert y.dtype == np.float32 and not _saved_float64(y)
    y.sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64  # each gradient in its tensor's dtype
    xt = torch.tensor(x.data, requires_grad=True)
    st = torch.tensor(s.data, requires_grad=True)
    OPS[op](xt, st).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.grad.data, st.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8", "int64", "bool"])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_a_python_bool_takes_the_tensor_dtype(dtype, op):
    a = np.array([0, 1, 1], dtype=dtype)
    for ours, theirs in ((OPS[op](Tensor(a), True), OPS[op](torch.tensor(a), True)),
                         (OPS[op](True, Tensor(a)), OPS[op](True, torch.tensor(a)))):
        assert _name(ours.dtype) == _name(theirs.dtype)
        np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32"])
def test_a_numpy_int_scalar_takes_the_tensor_dtype(dtype):
    a = np.array([1, 2, 3], dtype=dtype)
    assert _name((Tensor(a) + np.int64(2)).dtype) == _name((torch.tensor(a) + 2).dtype) == dtype


def test_integers_numpy_joins_only_in_float64_are_refused():
    u, i = Tensor(np.array([1, 2], np.uint64)), Tensor(np.array([1, 2], np.int64))
    with pytest.raises(TypeError, match="no integer dtype holds both uint64 and int64"):
        u + i
    with pytest.raises(RuntimeError):  # PyTorch refuses the promotion as well
        torch.tensor([1, 2], dtype=torch.uint64) + torch.tensor([1, 2])


# --------------------------------------------------------------------------- reductions and methods


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int8", "int32", "bool"])
@pytest.mark.parametrize("dims", [None, 1, (0, 1)])
def test_sums_of_integers_are_int64(dtype, dims):
    a = (np.arange(24).reshape(2, 3, 4) * 37 % 256).astype(dtype)
    ours = Tensor(a).sum() if dims is None else Tensor(a).sum(dim=dims)
    theirs = torch.tensor(a).sum() if dims is None else torch.tensor(a).sum(dim=dims)
    assert ours.dtype == np.int64 and _name(theirs.dtype) == "int64"
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    assert Tensor(a).mean().dtype == np.float32


def test_uint8_sums_meet_int64_sums_as_ints():
    u, i = Tensor(np.array([200, 100], np.uint8)), Tensor(np.array([1, 2]))
    y = u.sum() - i.sum()
    assert y.dtype == np.int64 and y.item() == 297


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int64"])
@pytest.mark.parametrize("lo, hi", [(0.5, 3.5), (np.float64(1.5), None), (None, 2.5)])
def test_clamp_of_ints_to_float_bounds_is_float32(dtype, lo, hi):
    a = np.arange(6).astype(dtype)
    ours = Tensor(a).clamp(lo, hi)
    theirs = torch.tensor(a).clamp(None if lo is None else float(lo), hi)
    assert _name(ours.dtype) == _name(theirs.dtype) == "float32"
    np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_clamp_keeps_no_float64_bound_in_a_float32_graph():
    x = Tensor(np.array([-1.0, 0.5, 3.0], np.float32), requires_grad=True)
    y = x.clamp(np.array(0.0), np.array(1.0))
    assert y.dtype == np.float32 and not _saved_float64(y)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int64"])
def test_clone_keeps_the_dtype(dtype):
    a = np.array([0, 1, 1], dtype=dtype)
    y = Tensor(a).clone()
    assert _name(y.dtype) == _name(torch.tensor(a).clone().dtype) == dtype
    np.testing.assert_array_equal(y.data, a)


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, object])
def test_astype_refuses_dtypes_tensors_do_not_support(dtype):
    with pytest.raises(TypeError, match="astype: dtype .* is not supported"):
        Tensor(np.ones(2, np.float32), requires_grad=True).astype(dtype)


@pytest.mark.parametrize("grad_dtype", [np.float64, np.int64])
def test_an_assigned_gradient_takes_the_tensor_dtype(grad_dtype):
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=np.float64(0.1), momentum=0.9)
    for _ in range(2):
        p.grad = Tensor(np.ones(3, grad_dtype))
        assert p.grad.dtype == np.float32
        opt.step()
    assert p.dtype == np.float32 and opt.state[0]["momentum_buffer"].dtype == np.float32


# --------------------------------------------------------------------------- integer inputs to float ops

INTS = ["int8", "uint8", "int32", "int64", "bool"]


def _image(dtype) -> np.ndarray:
    return (np.arange(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) * 7 % 255).astype(dtype)


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=4, stride=3, padding=1, ceil_mode=True)])
def test_avg_pool2d_of_ints_is_float32(dtype, kw):
    a = _image(dtype)
    y = F.avg_pool2d(Tensor(a), **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, TF.avg_pool2d(torch.tensor(a.astype(np.float32)), **kw).numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", INTS)
def test_local_response_norm_of_ints_is_float32(dtype):
    a = _image(dtype)
    y = tc.nn.LocalResponseNorm(3, alpha=1e-2, k=2.0)(Tensor(a))
    assert y.dtype == np.float32
    expected = TF.local_response_norm(torch.tensor(a.astype(np.float32)), 3, alpha=1e-2, k=2.0).numpy()
    np.testing.assert_allclose(y.data, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout_of_ints_is_float32_and_scaled(dtype, p):
    a = _image(dtype)
    y = F.dropout(Tensor(a), p)
    assert y.dtype == np.float32
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], a.astype(np.float32)[kept] / np.float32(1 - p), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_of_int_logits_is_float32(dtype, reduction):
    logits, labels = np.array([[3, 1, 0], [0, 2, 5]], dtype=dtype), np.array([0, 1])
    y = F.cross_entropy(Tensor(logits), labels, reduction=reduction)
    expected = TF.cross_entropy(torch.tensor(logits.astype(np.float32)), torch.tensor(labels), reduction=reduction)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_keeps_no_float64_of_a_float64_one_hot_target(reduction):
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    target = np.eye(3)[[0, 2, 1, 0]]  # float64
    y = F.cross_entropy(x, target, reduction=reduction)
    assert y.dtype == np.float32 and not _saved_float64(y)
    y.backward(Tensor(np.ones(y.shape)))
    assert x.grad.dtype == np.float32


# --------------------------------------------------------------------------- a float32 graph stays float32

SCALARS = {"py": 1.5, "np_f64": np.float64(1.5), "np_0d_f64": np.array(1.5), "np_i64": np.int64(2), "bool": True}
GRAPH_OPS = {
    "mul": lambda x, s: x * s, "rsub": lambda x, s: s - x, "div": lambda x, s: x / s,
    "rdiv": lambda x, s: s / (x * x + 1),
    "pow": lambda x, s: (x * x + 1) ** s, "clamp": lambda x, s: x.clamp(-abs(float(s)), s),
    "lrn": lambda x, s: F.local_response_norm(x.reshape(1, 4, 3, 1), 2, alpha=s, beta=s, k=s),
    "pad": lambda x, s: F.pad(x, (1, 1), value=s), "dropout": lambda x, s: F.dropout(x, float(s) / 4),
    "std": lambda x, s: x.std(1) * s, "softmax": lambda x, s: (x * s).log_softmax(0),
}


@pytest.mark.parametrize("scalar", SCALARS)
@pytest.mark.parametrize("op", GRAPH_OPS)
def test_float32_graph_with_scalars_stays_float32(op, scalar):
    x = Tensor(np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    y = GRAPH_OPS[op](x, SCALARS[scalar])
    assert y.dtype == np.float32 and not _saved_float64(y)
    g, = tc.grad(y, x, grad_outputs=Tensor(np.ones(y.shape)), create_graph=True)  # a float64 seed
    assert g.dtype == np.float32 and not _saved_float64(g)
    if g.requires_grad:
        gg, = tc.grad((g * g).sum(), x, allow_unused=True)
        assert gg is None or gg.dtype == np.float32


@pytest.mark.parametrize("name", ["simpleconvnet", "lenet5-classic", "alexnet-small"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_models_take_integer_images(name, dtype):
    tc.manual_seed(0)
    model = tc.models.get_model(name)
    x = Tensor(np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28)).astype(dtype))
    loss = F.cross_entropy(model(x), np.array([1, 7]))
    loss.backward()
    assert loss.dtype == np.float32 and {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}
