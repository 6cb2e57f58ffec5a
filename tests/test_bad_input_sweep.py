"""A sweep of the public API with bad arguments: each raises a clear error naming the op and the
offending shapes/values (never garbage, a NaN, or a bare NumPy/AttributeError from deep inside)."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn, optim
from tinygrad_cnn.data import DataLoader, shift_images
from tinygrad_cnn.data.datasets import load_dataset


def z(*shape):
    return Tensor(np.zeros(shape))


def zg(*shape):
    return Tensor(np.zeros(shape), requires_grad=True)


def params():
    return [nn.Parameter(np.zeros(2, np.float32))]


# --------------------------------------------------------------------------- Tensor

TENSOR_CASES = [
    # (call, exception, message regex)
    (lambda: z(2, 3).transpose(0, 5), IndexError, r"transpose: axis 5 is out of bounds for array of dimension 2"),
    (lambda: z(2, 3).permute(-3, 0), IndexError, r"transpose: axis -3 is out of bounds"),
    (lambda: z().transpose(0), ValueError, r"transpose: axes \(0,\) are not a permutation for shape \(\)"),
    (lambda: z(2, 3).transpose(0.0, 1), TypeError, r"transpose: axis must be an int"),
    (lambda: z(2, 3).reshape(2.0, 3), TypeError, r"reshape: the shape must be ints, got \(2\.0, 3\)"),
    (lambda: z(2, 3).sum(axis=(0, 0)), ValueError, r"sum: axis \(0, 0\) names a dimension more than once"),
    (lambda: z(2, 3).mean(axis=(1, -1)), ValueError, r"mean: axis \(1, -1\) names a dimension more than once"),
    (lambda: z(2, 3).max(axis=(0, 0)), ValueError, r"max: axis \(0, 0\) names a dimension more than once"),
    (lambda: z(2, 3).sum(axis=1.0), TypeError, r"sum: axis must be an int, a tuple of ints or None, got 1\.0"),
    (lambda: z(2, 3).sum(axis="a"), TypeError, r"sum: axis must be an int"),
    (lambda: F.log_softmax(z(2, 3), axis=1.0), TypeError, r"log_softmax: axis must be an int"),
    (lambda: z(0, 3).max(), ValueError, r"max: cannot reduce over a zero-size dimension \(tensor of shape \(0, 3\)"),
    (lambda: z(0, 3).max(axis=0), ValueError, r"max: cannot reduce over a zero-size dimension.*axis 0"),
    (lambda: z(0, 3).min(), ValueError, r"min: cannot reduce over a zero-size dimension"),
    (lambda: z(0, 3).argmax(), ValueError, r"argmax: cannot reduce over a zero-size dimension"),
    (lambda: Tensor(np.zeros((0, 3), int)).amin(0), ValueError, r"min: cannot reduce over a zero-size"),
    (lambda: z(2, 3).item(), ValueError, r"item\(\): only one-element tensors.*shape \(2, 3\) \(6 elements\)"),
    (lambda: z(0).item(), ValueError, r"item\(\): only one-element tensors.*shape \(0,\)"),
    (lambda: Tensor([1.0], requires_grad="yes"), TypeError, r"requires_grad must be a bool, got 'yes'"),
    (lambda: Tensor([1.0, None]), TypeError, r"Tensor: cannot build a tensor from list data containing None"),
    (lambda: z(2).astype("foo"), TypeError, r"astype: 'foo' is not a dtype"),
    (lambda: z(2).clamp("a"), TypeError, r"clamp: min must be a number \(or None\), got str"),
    (lambda: z(2).clamp(0, Tensor(np.ones(2))), TypeError, r"clamp: max must be a number"),
    (lambda: z(2, 3)[5], IndexError, r"getitem: index 5 is out of bounds.*tensor of shape \(2, 3\)"),
    (lambda: zg(2, 3)[np.array([0, 7])], IndexError, r"getitem: index 7 is out of bounds.*shape \(2, 3\)"),
    (lambda: z(2, 3)[1.0], IndexError, r"getitem: only integers.*tensor of shape \(2, 3\), index 1\.0"),
    (lambda: tc.grad((zg(2) * 2).sum(), [np.zeros(2)]), TypeError,
     r"grad: inputs must be a Tensor or a sequence of Tensors, got ndarray"),
    (lambda: tc.grad(3.0, [zg(2)]), TypeError, r"grad: outputs must be a Tensor or a sequence of Tensors, got float"),
]


@pytest.mark.parametrize("call, exc, message", TENSOR_CASES)
def test_tensor_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_valid_neighbours_of_the_tensor_checks_still_work():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.flatten(1, 1).shape == (2, 3)  # start == end is not a duplicate axis
    assert x.sum(axis=(0, 1)).item() == 15.0
    assert x.transpose(1, 0).shape == (3, 2) and z().transpose().shape == ()
    assert z(0, 3).max(axis=1).shape == (0,)  # reducing a non-empty axis of an empty tensor is fine
    assert Tensor([1.0, float("nan")]).shape == (2,)  # a real NaN is data, not None
    assert x.clamp(np.array(1.0), 4).numpy().tolist() == [[1, 1, 2], [3, 4, 4]]
    assert Tensor([1.0], requires_grad=np.bool_(True)).requires_grad
    lin = nn.Linear(2, 1)
    loss = lin(Tensor(np.ones((1, 2), np.float32))).sum()
    assert [g.shape for g in tc.grad(loss, lin.parameters())] == [(1, 2), (1,)]  # a generator of inputs, as torch


# --------------------------------------------------------------------------- functional

FUNCTIONAL_CASES = [
    (lambda: F.conv2d(z(1, 1, 5, 5), z(1, 1, 0, 3)), ValueError,
     r"conv2d: weight of shape \(1, 1, 0, 3\) has an empty kernel \(0, 3\)"),
    (lambda: F.conv2d(z(1, 1, 5, 5), z(0, 1, 3, 3)), ValueError,
     r"conv2d: weight of shape \(0, 1, 3, 3\) is empty at dimension 0"),
    (lambda: F.conv_transpose2d(z(1, 3, 5, 5), z(3, 2, 0, 3)), ValueError,
     r"conv_transpose2d: weight of shape \(3, 2, 0, 3\) has an empty kernel"),
    (lambda: F.conv_transpose2d(z(1, 0, 5, 5), z(0, 2, 3, 3)), ValueError,
     r"conv_transpose2d: weight of shape \(0, 2, 3, 3\) is empty at dimension 0"),
    (lambda: F.max_pool2d(z(1, 1, 6, 6), 2, ceil_mode="yes"), TypeError, r"max_pool2d: ceil_mode must be a bool"),
    (lambda: F.max_pool2d(z(1, 1, 6, 6), 2, ceil_mode=None), TypeError, r"max_pool2d: ceil_mode must be a bool"),
    (lambda: F.avg_pool2d(z(1, 6, 6), 2, ceil_mode=1), TypeError, r"avg_pool2d: ceil_mode must be a bool, got int 1"),
    (lambda: F.avg_pool2d(z(1, 1, 6, 6), 2, count_include_pad="no"), TypeError,
     r"avg_pool2d: count_include_pad must be a bool"),
    (lambda: F.softmax_cross_entropy(z(3, 5), None), TypeError,
     r"softmax_cross_entropy: target must be an int array.*got NoneType"),
    (lambda: F.nll_loss(z(3, 5), "abc"), TypeError, r"nll_loss: target must be an int array.*got str"),
    (lambda: F.dropout(z(3), "a"), TypeError, r"dropout: probability must be a number in \[0, 1\], got str"),
    (lambda: F.dropout(z(3), None), TypeError, r"dropout: probability must be a number"),
    (lambda: F.local_response_norm(z(1, 3, 4), 2.5), TypeError, r"local_response_norm: size must be an int, got float"),
    (lambda: F.local_response_norm(z(1, 3, 4), True), TypeError, r"local_response_norm: size must be an int, got bool"),
    (lambda: F.local_response_norm(z(1, 3, 4), None), TypeError, r"local_response_norm: size must be an int"),
    (lambda: F.pad(z(2, 3), (1.5, 1)), TypeError, r"pad: padding must be a tuple of ints.*got \(1\.5, 1\)"),
    (lambda: F.pad(z(2, 3), 1), TypeError, r"pad: padding must be a tuple of ints.*got 1"),
    (lambda: F.pad(z(2, 3), None), TypeError, r"pad: padding must be a tuple of ints"),
    (lambda: F.pad(z(2, 3), (1, 1), value="a"), TypeError, r"pad: value must be a number, got str"),
    (lambda: F.col2im(z(4, 4), (1, 3, 3), 2, 2), ValueError,
     r"col2im: input_shape must be 4 non-negative ints \(N, C, H, W\), got \(1, 3, 3\)"),
    (lambda: F.col2im(z(4, 4), (1, 1, 3.0, 3), 2, 2), ValueError, r"col2im: input_shape must be 4 non-negative ints"),
    (lambda: F.col2im(z(4, 4), None, 2, 2), ValueError, r"col2im: input_shape must be 4 non-negative ints.*None"),
]


@pytest.mark.parametrize("call, exc, message", FUNCTIONAL_CASES)
def test_functional_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_valid_neighbours_of_the_functional_checks_still_work():
    assert F.max_pool2d(z(1, 1, 5, 5), 2, ceil_mode=np.bool_(True)).shape == (1, 1, 3, 3)
    assert F.local_response_norm(z(1, 3, 4), np.int64(3)).shape == (1, 3, 4)
    assert F.pad(z(2, 3), [np.int64(1), 0], value=np.float32(2)).shape == (2, 4)
    assert F.col2im(z(4, 4), [1, 1, np.int64(3), 3], 2, 2).shape == (1, 1, 3, 3)
    assert F.dropout(z(3), np.float32(0.5), training=False).shape == (3,)


# --------------------------------------------------------------------------- nn layers and Module

NN_CASES = [
    (lambda: nn.Conv2d(-1, 2, 3), ValueError, r"Conv2d: in_channels must be >= 0, got -1"),
    (lambda: nn.Conv2d(1, -2, 3), ValueError, r"Conv2d: out_channels must be >= 0, got -2"),
    (lambda: nn.Conv2d(1.5, 2, 3), TypeError, r"Conv2d: in_channels must be an int, got float"),
    (lambda: nn.Conv2d(True, 2, 3), TypeError, r"Conv2d: in_channels must be an int, got bool"),
    (lambda: nn.Conv2d(1, 2, 0), ValueError, r"Conv2d: kernel_size must be an int >= 1 or a pair of them, got 0"),
    (lambda: nn.Conv2d(1, 2, 3.0), ValueError, r"Conv2d: kernel_size must be an int >= 1.*got 3\.0"),
    (lambda: nn.Conv2d(1, 2, (3, 3, 3)), ValueError, r"Conv2d: kernel_size must be an int >= 1"),
    (lambda: nn.Conv2d(1, 2, 3, stride=0), ValueError, r"Conv2d: stride must be an int >= 1"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError, r"Conv2d: padding must be an int >= 0"),
    (lambda: nn.ConvTranspose2d(-1, 2, 3), ValueError, r"ConvTranspose2d: in_channels must be >= 0"),
    (lambda: nn.ConvTranspose2d(1, 2, 3, stride=0), ValueError, r"ConvTranspose2d: stride must be an int >= 1"),
    (lambda: nn.ConvTranspose2d(1, 2, 2.0), ValueError, r"ConvTranspose2d: kernel_size must be an int >= 1"),
    (lambda: nn.Linear(-1, 2), ValueError, r"Linear: in_features must be >= 0, got -1"),
    (lambda: nn.Linear(2, "a"), TypeError, r"Linear: out_features must be an int, got str"),
    (lambda: nn.Dropout("a"), TypeError, r"Dropout: probability must be a number"),
    (lambda: nn.Sequential(nn.ReLU(), 3), TypeError, r"cannot add int as child module '1' of Sequential"),
    (lambda: nn.Module().add_module("a.b", nn.ReLU()), KeyError,
     r"Module: module name must be non-empty and without dots, got .a\.b"),
    (lambda: nn.Module().add_module(3, nn.ReLU()), TypeError, r"module name must be a string, got int"),
    (lambda: nn.Module().register_parameter("w", Tensor(np.zeros(2))), TypeError,
     r"cannot register Tensor as parameter 'w' of Module"),
    (lambda: nn.Sequential(nn.ReLU())[5], IndexError, r"Sequential: index 5 is out of range for 1 modules"),
    (lambda: nn.ModuleList([nn.ReLU()])[-2], IndexError, r"ModuleList: index -2 is out of range for 1 modules"),
]


@pytest.mark.parametrize("call, exc, message", NN_CASES)
def test_layer_and_module_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


@pytest.mark.parametrize("layer, x, message", [
    (nn.Conv2d(3, 2, 3), z(1, 4, 5, 5),
     r"^Conv2d\(3, 2, kernel_size=\(3, 3\), stride=\(1, 1\)\): conv2d: input of shape \(1, 4, 5, 5\) has 4 channels "
     r"but weight of shape \(2, 3, 3, 3\) expects 3"),
    (nn.Conv2d(1, 2, 5), z(1, 3, 3), r"^Conv2d\(1, 2, kernel_size=\(5, 5\).*conv2d: kernel \(5, 5\) is larger"),
    (nn.ConvTranspose2d(3, 2, 3), z(1, 4, 5, 5),
     r"^ConvTranspose2d\(3, 2, .*conv_transpose2d: input of shape \(1, 4, 5, 5\) has 4 channels"),
    (nn.Linear(4, 2), z(3, 5),
     r"^Linear\(in_features=4, out_features=2, bias=True\): linear: input of shape \(3, 5\) does not match weight "
     r"of shape \(2, 4\)"),
    (nn.MaxPool2d(5), z(1, 1, 4, 4), r"^MaxPool2d\(kernel_size=5.*max_pool2d: kernel \(5, 5\) is larger"),
    (nn.LocalResponseNorm(0), z(1, 3, 4, 4), r"^LocalResponseNorm\(0, .*local_response_norm: size must be >= 1"),
])
def test_a_layer_that_cannot_take_its_input_names_itself_and_the_shapes(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer(x)


def test_layers_take_numpy_ints():
    conv = nn.Conv2d(np.int64(1), np.int64(2), np.int64(3), stride=np.int64(1))
    assert conv.kernel_size == (3, 3) and conv(z(1, 1, 5, 5)).shape == (1, 2, 3, 3)
    assert nn.Linear(np.int32(4), 2)(z(3, 4)).shape == (3, 2)


def _lsd(sd, strict=True):
    return nn.Linear(2, 3).load_state_dict(sd, strict=strict)


_W, _B = np.zeros((3, 2), np.float32), np.zeros(3, np.float32)


@pytest.mark.parametrize("sd, exc, message", [
    ([1, 2], TypeError, r"load_state_dict for Linear: expected a dict of name -> array, got list"),
    (None, TypeError, r"load_state_dict for Linear: expected a dict.*got NoneType"),
    ({0: _W, "weight": _W, "bias": _B}, RuntimeError, r"load_state_dict for Linear: unexpected keys: 0"),
    ({"weight": np.zeros((3, 2), complex), "bias": _B}, RuntimeError,
     r"value for weight is not a real numeric array \(ndarray of dtype complex128\)"),
    ({"weight": np.array([[object()] * 2] * 3), "bias": _B}, RuntimeError,
     r"value for weight is not a real numeric array \(ndarray of dtype object\)"),
    ({"weight": np.full((3, 2), "a"), "bias": _B}, RuntimeError, r"value for weight is not a real numeric array"),
    ({"weight": None, "bias": _B}, RuntimeError, r"value for weight is not a real numeric array \(NoneType"),
    ({"weight": [[0, 0], [0]], "bias": _B}, RuntimeError, r"value for weight is not an array"),
])
def test_load_state_dict_bad_values(sd, exc, message):
    m = nn.Linear(2, 3)
    before = m.weight.numpy().copy()
    with pytest.raises(exc, match=message):
        m.load_state_dict(sd)
    assert np.array_equal(m.weight.numpy(), before)  # nothing was copied


# --------------------------------------------------------------------------- optimizers

OPTIM_CASES = [
    (lambda: optim.SGD(params(), lr="a"), TypeError, r"SGD: lr must be a number, got str"),
    (lambda: optim.SGD(params(), lr=None), TypeError, r"SGD: lr must be a number, got NoneType"),
    (lambda: optim.AdaGrad(params(), lr="x"), TypeError, r"AdaGrad: lr must be a number"),
    (lambda: optim.Adam(params(), betas=0.9), TypeError, r"Adam: betas must be a pair \(beta1, beta2\), got float"),
    (lambda: optim.Adam(params(), betas=("a", "b")), TypeError, r"Adam: betas\[0\] must be a number, got str"),
    (lambda: optim.SGD(None, lr=0.1), TypeError, r"SGD: params should be an iterable of Tensors.*got NoneType"),
    (lambda: optim.SGD(params() * 2, lr=0.1), ValueError,
     r"SGD: parameter 1 \(shape \(2,\)\) is the same Tensor as parameter 0"),
    (lambda: optim.Adam([zg(2) * 2], lr=0.1), ValueError, r"Adam: can't optimize a non-leaf Tensor \(parameter 0"),
    (lambda: optim.SGD(params(), lr=0.1).load_state_dict(None), TypeError,
     r"SGD.load_state_dict: expected a dict \(from state_dict\(\)\), got NoneType"),
    (lambda: optim.SGD(params(), lr=0.1).load_state_dict({"group.lr": np.array("abc")}), ValueError,
     r"SGD.load_state_dict: group.lr is 'abc', but lr is 0.1 here"),
    (lambda: optim.Adam(params()).load_state_dict({"group.betas": np.array([0.9, 0.9, 0.9])}), ValueError,
     r"Adam.load_state_dict: group.betas is \(0.9, 0.9, 0.9\)"),
]


@pytest.mark.parametrize("call, exc, message", OPTIM_CASES)
def test_optimizer_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_shared_parameters_of_a_model_are_passed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)  # one layer used twice: parameters() lists it once
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.params) == 2
    opt.load_state_dict(opt.state_dict())


# --------------------------------------------------------------------------- save / load

def test_save_refuses_what_is_not_a_dict_of_arrays(tmp_path):
    with pytest.raises(TypeError, match=r"save: expected a dict of name -> array \(pass model.state_dict\(\)\), "
                                        r"got Linear"):
        tc.save(nn.Linear(2, 2), tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"save: expected a dict of name -> array, got list"):
        tc.save([np.zeros(2)], tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"save: value for 'a' is not an array"):
        tc.save({"a": [[1], [1, 2]]}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"save: path must be a str or os.PathLike, got NoneType"):
        tc.save({"a": np.zeros(2)}, None)
    with pytest.raises(TypeError, match=r"load: path must be a str or os.PathLike, got int"):
        tc.load(3)
    assert not list(tmp_path.iterdir())


def test_load_of_a_pickle_never_unpickles(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(tc.CheckpointError, match=str(path)):
        tc.load(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- data

def test_dataset_name_must_be_a_string():
    with pytest.raises(TypeError, match=r"dataset name must be a string, one of mnist.*got int"):
        load_dataset(3)


_X, _Y = np.zeros((10, 1, 4, 4), np.float32), np.zeros(10, np.int64)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: DataLoader(_X, _Y, seed="abc"), ValueError, r"DataLoader: seed must be None or a non-negative integer"),
    (lambda: DataLoader(_X, _Y, seed=-1), ValueError, r"DataLoader: seed must be None or a non-negative integer"),
    (lambda: DataLoader([[1], [1, 2]], [0, 1]), ValueError, r"DataLoader: x and y must be arrays"),
    (lambda: DataLoader(_X, _Y).load_state_dict(None), TypeError,
     r"DataLoader.load_state_dict: expected a dict \(from state_dict\(\)\), got NoneType"),
    (lambda: DataLoader(_X, _Y).load_state_dict({"bit_generator": 5, "batch_index": 0, "epoch": 0}), ValueError,
     r"DataLoader state: bit_generator must be a NumPy bit-generator state dict, got 5"),
    (lambda: DataLoader(_X, _Y).load_state_dict({**DataLoader(_X, _Y).state_dict(), "batch_index": "x"}),
     ValueError, r"DataLoader state: batch_index must be a non-negative integer, got 'x'"),
    (lambda: DataLoader(_X, _Y).load_state_dict(
        {"bit_generator": {"bit_generator": "PCG64", "state": 3}, "batch_index": 0, "epoch": 0}),
     ValueError, r"DataLoader state: invalid PCG64 state"),
    (lambda: shift_images(_X, np.ones((3, 2), int)), ValueError,
     r"shift_images: shifts must be integers of shape \(N, 2\) = \(10, 2\), got int64 \(3, 2\)"),
    (lambda: shift_images(_X[:, 0, 0], np.ones((10, 2), int)), ValueError,
     r"shift_images: x must be images \(N, \.\.\., H, W\), got shape \(10, 4\)"),
])
def test_data_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_idx_header_with_wrong_dims_names_the_file(tmp_path):
    path = tmp_path / "labels-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 2, 3, 4) + bytes(18))
    with pytest.raises(tc.data.DatasetError, match=rf"{path}: truncated IDX file: header says shape \(2, 3, 4\)"):
        tc.data.load_idx(path)


# --------------------------------------------------------------------------- gradcheck and profiler

def _x():
    return Tensor(np.random.default_rng(0).standard_normal(3), requires_grad=True)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: tc.gradcheck(3, _x()), TypeError, r"gradcheck: fn must be callable, got int"),
    (lambda: tc.gradgradcheck(None, _x()), TypeError, r"gradcheck: fn must be callable, got NoneType"),
    (lambda: tc.gradcheck(lambda x: x * 2, _x(), eps="a"), TypeError, r"gradcheck: eps must be a number, got str"),
    (lambda: tc.gradcheck(lambda x: x * 2, _x(), atol="a"), TypeError, r"gradcheck: atol must be a number"),
    (lambda: tc.gradcheck(lambda x: x * 2, _x(), rtol=-1), ValueError, r"gradcheck: rtol must be >= 0, got -1"),
    (lambda: tc.gradcheck(lambda x: x * 2, _x(), atol=-1, raise_exception=False), ValueError,
     r"gradcheck: atol must be >= 0"),
    (lambda: tc.gradcheck(lambda x: x * 2, np.zeros(3)), ValueError,
     r"gradcheck: no input requires grad; pass the inputs to check as float Tensors with requires_grad=True "
     r"\(got 0: ndarray\)"),
    (lambda: tc.gradcheck(lambda x, y: x * y, [1.0, 2.0]), ValueError, r"no input requires grad.*0: float, 1: float"),
])
def test_gradcheck_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_profile_stopped_out_of_order_is_not_reinstalled():
    from tinygrad_cnn import tensor as _tensor

    before = _tensor._profiler
    outer, inner = tc.profile(verbose=False), tc.profile(verbose=False)
    outer.start()
    inner.start()
    outer.stop()  # before the profile started inside it
    assert _tensor._profiler is inner
    inner.stop()
    assert _tensor._profiler is before  # not the stopped outer profile
    z(2) + 1
    assert outer.calls() == {}


def test_profile_calls_phase():
    with pytest.raises(ValueError, match=r"profile.calls: phase must be 'forward', 'backward' or None, got 'fw'"):
        tc.profile(verbose=False).calls("fw")
