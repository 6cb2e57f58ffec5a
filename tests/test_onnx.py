"""ONNX export (checked by onnxruntime) and import (checked against this engine and PyTorch)."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'tinygrad-cnn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'tinygrad-cnn[onnx]')")

from onnx import TensorProto, helper  # noqa: E402

import tinygrad_cnn as tc  # noqa: E402
import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Function, Tensor, nn  # noqa: E402
from tinygrad_cnn.onnx import OnnxFormatError, load, to_onnx  # noqa: E402
from tinygrad_cnn.onnx import export as onnx_export  # noqa: E402


def run_ort(model_or_path, x: np.ndarray, input_name: str = "input") -> np.ndarray:
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, {input_name: x})[0]


def engine(model: nn.Module, x: np.ndarray) -> np.ndarray:
    training = model.training
    model.eval()
    with tc.no_grad():
        y = model(Tensor(x)).data
    model.train(training)
    return y


def assert_close(got: np.ndarray, ref: np.ndarray, atol: float = 1e-4) -> None:
    """Max abs error within ``atol`` (scaled up for logits beyond 1) and a non-degenerate reference."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max())
    assert err <= atol * scale, f"max abs error {err:.3g} > {atol * scale:.3g}"
    assert np.ptp(ref) > 10 * atol, "the reference output is (nearly) constant: the comparison would be vacuous"


def images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


ZOO = ["simpleconvnet", "lenet5", "lenet5-classic", "alexnet-small", "deepconvnet"]


def make(name: str) -> nn.Module:
    tc.manual_seed(0)
    if name == "simpleconvnet":  # the book's std=0.01 gives ~1e-4 logits; He init makes the check meaningful
        return tc.models.get_model(name, weight_init_std="he")
    return tc.models.get_model(name)


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("name", ZOO)
def test_export_runs_in_onnxruntime_with_another_batch_size(name, tmp_path):
    model = make(name)
    shape = tc.models.input_shape(name)
    path = onnx_export(model, Tensor(images((2, *shape))), tmp_path / f"{name}.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    x = images((5, *shape), seed=1)
    assert_close(run_ort(path, x), engine(model, x))
    assert model.training  # export ran in eval mode and restored the mode


@pytest.mark.slow
def test_export_alexnet_224(tmp_path):
    tc.manual_seed(0)
    model = tc.models.AlexNet()
    path = onnx_export(model, Tensor(images((2, 3, 224, 224))), tmp_path / "alexnet.onnx")
    assert path.stat().st_size > 62_378_344 * 4  # every float32 weight is in the file
    proto = onnx.load(str(path), load_external_data=False)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert {i.name for i in proto.graph.initializer} >= set(dict(model.named_parameters()))
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "LRN", "MaxPool", "Gemm", "Relu", "Flatten"} == ops  # dropout vanished in eval mode
    del proto
    x = images((3, 3, 224, 224), seed=1)
    y = run_ort(path, x)
    ref = engine(model, x)
    assert_close(y * 100, ref * 100)  # AlexNet's default-init logits are ~1e-2: compare at 1e-6 absolute


def test_exported_names_single_input_and_symbolic_batch():
    model = make("lenet5")
    proto = to_onnx(model, Tensor(images((2, 1, 28, 28))))
    inits = {i.name: i for i in proto.graph.initializer}
    params = dict(model.named_parameters())
    for name, p in params.items():  # initializers named by dotted module paths, holding the weights
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(inits[name]), p.data)
    assert [i.name for i in proto.graph.input if i.name not in inits] == ["input"]
    assert len(proto.graph.input) == 1
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    out = proto.graph.output[0]
    assert out.name == "logits"
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert out.type.tensor_type.shape.dim[1].dim_value == 10


def test_static_batch_fixes_the_batch_dimension():
    model = make("lenet5")
    proto = to_onnx(model, Tensor(images((4, 1, 28, 28))), dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    x = images((4, 1, 28, 28), seed=2)
    assert_close(run_ort(proto, x), engine(model, x))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_ort(proto, images((3, 1, 28, 28)))


def test_export_restores_each_module_mode_and_drops_dropout():
    model = make("alexnet-small")
    model.train()
    model.conv1.eval()
    proto = to_onnx(model, Tensor(images((2, 1, 28, 28))))
    assert model.training and model.fc1.training and not model.conv1.training
    assert "Dropout" not in {n.op_type for n in proto.graph.node}
    x = images((3, 1, 28, 28), seed=3)
    assert_close(run_ort(proto, x), engine(model, x))


class Zoo(nn.Module):
    """One of nearly every mapped op, with outputs that depend on all of them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.lrn_even = nn.LocalResponseNorm(4, alpha=0.5, beta=0.75, k=2.0)
        self.lrn_odd = nn.LocalResponseNorm(3, alpha=0.3, beta=0.6, k=1.5)
        self.fc = nn.Linear(6, 5)
        self.proj = nn.Linear(20, 7, bias=False)

    def forward(self, x):
        h = self.lrn_odd(self.lrn_even(self.conv(x)))                                  # (N, 4, 6, 6)
        h = F.avg_pool2d(h, 3, 2, padding=1) + F.max_pool2d(h, 3, 2, padding=1) * 0.5  # (N, 4, 3, 3)
        h = F.pad(h, (1, 2, 0, 1), value=0.25)                                         # (N, 4, 4, 6)
        h = (h * 2 - 1) / 3
        h = h ** 2 + (-h).exp() + (h * h + 1).log() - 2 / (h * h + 1) + (h * h + 0.5).sqrt()
        h = F.tanh(self.fc(h.astype(np.float32)))                                      # Linear on 4-D input
        h = h.transpose(0, 2, 3, 1).reshape(h.shape[0], 4, -1)                         # (N, 4, 20)
        h = h + h.sum(axis=2, keepdims=True) * 0.1 - h.max(axis=1, keepdims=True) - h.mean(axis=0) * 0.2
        h = F.softmax(h, axis=1) + F.log_softmax(h, axis=-1) * F.sigmoid(h)
        h = self.proj(h) @ Tensor(np.linspace(-1, 1, 21, dtype=np.float32).reshape(7, 3))
        return h.reshape(h.shape[0], -1) + h.max(axis=(1, 2)).reshape(-1, 1)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_every_mapped_op_matches_onnxruntime(opset):
    tc.manual_seed(1)
    model = Zoo()
    proto = to_onnx(model, Tensor(images((2, 3, 6, 6))), opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "LRN", "AveragePool", "MaxPool", "Pad", "Mul", "Add", "Sub", "Div", "Pow", "Neg", "Exp",
            "Log", "Sqrt", "Tanh", "Sigmoid", "Transpose", "Reshape", "ReduceSum", "ReduceMax", "ReduceMean", "Softmax",
            "LogSoftmax",
            "MatMul", "Cast"} <= ops
    x = images((3, 3, 6, 6), seed=4)
    ref = engine(model, x)
    assert_close(run_ort(proto, x), ref)
    assert_close(load(proto)(Tensor(x)).data, ref, atol=1e-6)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
def test_lrn_export_matches_pytorch_for_every_size(size):
    """ONNX's LRN window differs from PyTorch's for even sizes and onnxruntime refuses them: decomposed."""
    torch = pytest.importorskip("torch")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lrn = nn.LocalResponseNorm(size, alpha=0.7, beta=0.8, k=1.5)

        def forward(self, x):
            return self.lrn(x)

    x = images((2, 7, 3, 3), seed=size) * 3
    proto = to_onnx(Net(), Tensor(x[:1]))
    assert ("LRN" in {n.op_type for n in proto.graph.node}) == (size % 2 == 1)
    ref = torch.nn.functional.local_response_norm(torch.from_numpy(x), size, 0.7, 0.8, 1.5).numpy()
    assert_close(run_ort(proto, x), ref, atol=1e-5)
    assert_close(load(proto)(Tensor(x)).data, ref, atol=1e-5)


def test_unmapped_op_names_the_op_and_the_module(tmp_path):
    class Foo(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

    class MyModule(nn.Module):
        def forward(self, x):
            return Foo()(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.ReLU())
            self.features.add_module("conv1", MyModule())

        def forward(self, x):
            return self.features(x)

    path = tmp_path / "foo.onnx"
    with pytest.raises(NotImplementedError, match=r"op Foo in features\.conv1 \(MyModule\) has no ONNX mapping"):
        onnx_export(Net(), Tensor(images((1, 2, 3, 3))), path)
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("index", [
    (slice(None), 0), (Ellipsis, slice(1, None, 2)), (slice(None), slice(None, None, -1), -1),
    (slice(None), slice(-2, None)), (slice(None), 1, Ellipsis, slice(None, 1)), (slice(None), slice(3, 0, -2)),
])
def test_basic_indexing_exports_as_slice_and_squeeze(index):
    class Net(nn.Module):
        def forward(self, x):
            return x[index] * 2 + x.sum(axis=())[index]

    proto = to_onnx(Net(), Tensor(images((2, 4, 5, 3))))
    assert "Slice" in {n.op_type for n in proto.graph.node}
    x = images((3, 4, 5, 3), seed=16)
    ref = x[index] * 3
    assert_close(run_ort(proto, x), ref, atol=1e-6)
    assert_close(load(proto)(Tensor(x)).data, ref, atol=1e-6)


def test_fancy_indexing_has_no_mapping():
    class Net(nn.Module):
        def forward(self, x):
            return x[:, np.array([0, 0, 1])]

    with pytest.raises(NotImplementedError, match=r"op GetItem in <root> \(Net\)"):
        to_onnx(Net(), Tensor(images((2, 3))))


def test_reshape_that_mixes_the_batch_axis_needs_a_static_batch():
    class Net(nn.Module):
        def forward(self, x):
            return x.reshape(-1, 3) * 2

    with pytest.raises(ValueError, match="dynamic_batch=False"):
        to_onnx(Net(), Tensor(images((2, 3, 2))))
    proto = to_onnx(Net(), Tensor(images((2, 3, 2))), dynamic_batch=False)
    x = images((2, 3, 2), seed=5)
    np.testing.assert_allclose(run_ort(proto, x), x.reshape(-1, 3) * 2, rtol=1e-6)


# --------------------------------------------------------------------------- import


@pytest.mark.parametrize("name", ["simpleconvnet", "lenet5", "lenet5-classic", "alexnet-small"])
def test_round_trip_gives_the_same_logits_and_gradients(name, tmp_path):
    model = make(name)
    shape = tc.models.input_shape(name)
    path = onnx_export(model, Tensor(images((2, *shape))), tmp_path / "m.onnx")
    loaded = load(path)
    assert isinstance(loaded, nn.Module)
    assert list(dict(loaded.named_parameters())) == list(dict(model.named_parameters()))
    model.eval()
    x_np = images((3, *shape), seed=6)
    seed = Tensor(images((3, 10), seed=7))
    grads = []
    for m in (model, loaded):
        x = Tensor(x_np, requires_grad=True)
        y = m(x)
        y.backward(seed)
        grads.append((y.data, x.grad.data, {k: p.grad.data for k, p in m.named_parameters()}))
    (y0, gx0, gp0), (y1, gx1, gp1) = grads
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-5, atol=1e-6)
    for k in gp0:
        np.testing.assert_allclose(gp1[k], gp0[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_loaded_module_fine_tunes_like_the_original_and_round_trips_its_state_dict(tmp_path):
    model = make("lenet5")
    loaded = load(onnx_export(model, Tensor(images((1, 1, 28, 28))), tmp_path / "m.onnx"))
    x, labels = Tensor(images((8, 1, 28, 28), seed=8)), np.arange(8) % 10
    losses = {}
    for key, m in (("original", model), ("loaded", loaded)):
        opt = tc.optim.Adam(m.parameters(), lr=1e-2)
        losses[key] = []
        for _ in range(6):
            loss = F.softmax_cross_entropy(m(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[key].append(loss.item())
    assert losses["loaded"][-1] < 0.9 * losses["loaded"][0]
    np.testing.assert_allclose(losses["loaded"], losses["original"], rtol=1e-4)
    trained = loaded.state_dict()
    assert list(trained) == list(model.state_dict())
    fresh = make("lenet5")
    fresh.load_state_dict(trained)  # same keys, same shapes: the fine-tuned weights go back
    np.testing.assert_allclose(engine(fresh, x.data), engine(loaded, x.data), rtol=1e-5, atol=1e-6)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.lrn = nn.LocalResponseNorm(2, alpha=0.5, beta=0.75, k=1.0)
        self.fc = nn.Linear(3 * 2 * 2, 3)

    def forward(self, x):
        h = F.avg_pool2d(self.lrn(F.tanh(self.conv(x))), 2)
        return F.log_softmax(self.fc(h.flatten(1)), axis=1)


def test_gradcheck_of_a_loaded_model_in_float64():
    tc.manual_seed(2)
    loaded = load(to_onnx(Tiny(), Tensor(images((1, 2, 4, 4))))).double()
    params = dict(loaded.named_parameters())
    assert all(p.dtype == np.float64 for p in params.values())
    x = Tensor(np.random.default_rng(9).standard_normal((2, 2, 4, 4)), requires_grad=True)
    assert loaded(x).dtype == np.float64
    assert tc.gradcheck(lambda x, w, b: loaded(x), (x, params["conv.weight"], params["fc.bias"]))


def _torch_lenet(torch, flatten: str):
    class TorchLeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
                torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
                torch.nn.LocalResponseNorm(4, alpha=1e-2, beta=0.75, k=2.0),
            )
            self.drop = torch.nn.Dropout(0.5)
            self.fc1, self.fc2, self.fc3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

        def forward(self, x):
            x = self.features(x)
            x = x.view(x.size(0), -1) if flatten == "view" else torch.flatten(x, 1)
            x = torch.relu(self.fc1(self.drop(x)))
            return self.fc3(torch.sigmoid(self.fc2(x)))

    torch.manual_seed(0)
    return TorchLeNet().eval()


def _torch_export(torch, net, x, opset: int = 17) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, x, f, dynamo=False, opset_version=opset, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        except (TypeError, RuntimeError) as exc:  # no legacy exporter in this torch: needs onnxscript
            pytest.importorskip("onnxscript", reason=f"torch's legacy ONNX exporter is unavailable ({exc})")
            f = io.BytesIO()
            torch.onnx.export(net, (x,), f, dynamo=True, opset_version=18, input_names=["x"], output_names=["y"])
    return f.getvalue()


@pytest.mark.parametrize("flatten", ["view", "flatten"])
def test_pytorch_lenet5_loads_and_matches_pytorch(flatten):
    torch = pytest.importorskip("torch")
    net = _torch_lenet(torch, flatten)
    proto = onnx.load_from_string(_torch_export(torch, net, torch.randn(2, 1, 28, 28)))
    loaded = load(proto)
    torch_params = dict(net.named_parameters())
    assert sorted(dict(loaded.named_parameters())) == sorted(torch_params)
    x_np = images((3, 1, 28, 28), seed=10)
    xt = torch.from_numpy(x_np).requires_grad_()
    yt = net(xt)
    g = images((3, 10), seed=11)
    yt.backward(torch.from_numpy(g))
    x = Tensor(x_np, requires_grad=True)
    y = loaded(x)
    y.backward(Tensor(g))
    assert_close(y.data, yt.detach().numpy())
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loaded.fc1.weight.grad.data, torch_params["fc1.weight"].grad.numpy(),
                               rtol=1e-4, atol=1e-6)


def test_pytorch_alexnet_style_net_loads_and_matches_pytorch():
    """LRN (exported by PyTorch as Pad + 3-D AveragePool inside an If), count_include_pad=False, opset-11 Softmax."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class Small(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 16, 5, stride=2, padding=2), tnn.ReLU(inplace=True), tnn.LocalResponseNorm(5, k=2.0),
                tnn.MaxPool2d(3, 2), tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(inplace=True), tnn.MaxPool2d(3, 2),
                tnn.AvgPool2d(3, 1, padding=1, count_include_pad=False))
            self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(32 * 9, 64), tnn.ReLU(), tnn.Dropout(),
                                             tnn.Linear(64, 10))

        def forward(self, x):
            return torch.softmax(self.classifier(torch.flatten(self.features(x), 1)) * 20, dim=1)

    torch.manual_seed(0)
    net = Small().eval()
    loaded = load(onnx.load_from_string(_torch_export(torch, net, torch.randn(1, 3, 32, 32), opset=11)))
    x = images((4, 3, 32, 32), seed=15)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert_close(loaded(Tensor(x)).data, ref, atol=1e-5)


def _graph(nodes, inputs, outputs, initializers=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _fvi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


@pytest.mark.parametrize("op, attrs", [
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2]}),  # count_include_pad=0
    ("AveragePool", {"kernel_shape": [3, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("MaxPool", {"kernel_shape": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 0]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ("Conv", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ("Conv", {"kernel_shape": [3, 3], "pads": [0, 1, 2, 1]}),
    ("ConvTranspose", {"kernel_shape": [3, 3], "strides": [2, 3], "pads": [1, 0, 1, 0], "output_padding": [1, 2]}),
    ("ConvTranspose", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [2, 0, 0, 1]}),  # asymmetric: cropped
    ("LRN", {"size": 4, "alpha": 0.5, "beta": 0.75, "bias": 2.0}),  # ONNX's even window (onnxruntime refuses)
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),  # hanging last windows
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1], "ceil_mode": 1}),  # a dropped
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),      # window
])
def test_imported_op_semantics_match_onnxruntime(op, attrs):
    x = images((2, 5, 7, 8), seed=12)
    inits = []
    ins = ["x"]
    if op in ("Conv", "ConvTranspose"):
        inits = [onnx.numpy_helper.from_array(images((4, 5, 3, 3) if op == "Conv" else (5, 4, 3, 3), seed=13), "w")]
        ins.append("w")
    model = _graph([helper.make_node(op, ins, ["y"], **attrs)], [_fvi("x", x.shape)], [_fvi("y", [None] * 4)], inits)
    got = load(model)(Tensor(x)).data
    if op == "LRN":  # the ONNX spec's formula: window [c - (size-1)//2, c + size//2]
        sq, c = x * x, x.shape[1]
        s = np.stack([sq[:, max(0, i - 1):min(c, i + 3)].sum(1) for i in range(c)], axis=1)
        ref = x / (2.0 + 0.5 / 4 * s) ** 0.75
    else:
        ref = run_ort(model, x, "x")
    assert_close(got, ref, atol=1e-5)


def test_imported_tensor_ops_match_onnxruntime_and_pass_gradcheck():
    """Concat/Slice/Gather/Squeeze/Unsqueeze/Expand/ReduceMean/Softmax on computed tensors, not just on shapes."""
    i64 = onnx.TensorProto.INT64

    def ints(name, values):
        return helper.make_tensor(name, i64, [len(values)], values)

    w = onnx.numpy_helper.from_array(images((3, 4), seed=17), "w")
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Concat", ["x", "a"], ["c"], axis=1),                                 # (N, 4, 3)
        helper.make_node("Slice", ["c", "s0", "s1", "s2", "s3"], ["s"]),                        # (N, 3, 3)
        helper.make_node("Gather", ["s", "idx"], ["g"], axis=2),                                # (N, 3, 2)
        helper.make_node("Unsqueeze", ["g", "ax0"], ["u"]),                                     # (N, 1, 3, 2)
        helper.make_node("Expand", ["u", "shape"], ["e"]),                                      # (N, 2, 3, 2)
        helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),                     # (N, 3, 2)
        helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),                            # (N, 2, 3)
        helper.make_node("MatMul", ["t", "w"], ["p"]),                                          # (N, 2, 4)
        helper.make_node("Softmax", ["p"], ["y"], axis=1),
    ]
    inits = [ints("s0", [1]), ints("s1", [100]), ints("s2", [1]), ints("s3", [1]), ints("idx", [2, 0]),
             ints("ax0", [1]), ints("shape", [1, 2, 1, 1]), w]
    opset13 = _graph(nodes, [_fvi("x", ["n", 2, 3])], [_fvi("y", ["n", 2, 4])], inits, opset=13)
    x = images((3, 2, 3), seed=18)
    net = load(opset13)
    assert_close(net(Tensor(x)).data, run_ort(opset13, x, "x"), atol=1e-6)
    net.double()
    xt = Tensor(x.astype(np.float64), requires_grad=True)
    assert tc.gradcheck(lambda x, w: net(x), (xt, dict(net.named_parameters())["w"]))


def test_unsupported_ops_are_all_listed_at_load_time():
    nodes = [helper.make_node("Erf", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("HardSwish", ["b"], ["c"]), helper.make_node("Erf", ["c"], ["y"])]
    model = _graph(nodes, [_fvi("x", [1, 2])], [_fvi("y", [1, 2])])
    with pytest.raises(NotImplementedError, match="Erf, HardSwish$"):
        load(model)


def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path):
    good = onnx_export(make("lenet5"), Tensor(images((1, 1, 28, 28))), tmp_path / "good.onnx").read_bytes()
    npz = tc.save({"a": np.zeros(3)}, tmp_path / "w.npz").read_bytes()
    cases = {"truncated.onnx": good[: len(good) // 2], "text.onnx": b"this is not an ONNX model\n",
             "empty.onnx": b"", "weights.onnx": npz}
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(OnnxFormatError, match=name.replace(".", r"\.")) as info:
            load(path)
        assert isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load(tmp_path / "missing.onnx")
    with pytest.raises(IsADirectoryError, match="is a directory, not an ONNX file"):
        load(tmp_path)


# --------------------------------------------------------------------------- CLI and packaging


def test_cli_export_from_a_training_checkpoint(tmp_path, capsys):
    from tinygrad_cnn.cli import main
    from tinygrad_cnn.training import save_checkpoint

    model = make("lenet5-classic")
    opt = tc.optim.Adam(model.parameters())
    save_checkpoint(tmp_path / "ckpt.npz", model, opt, epoch=1, config={"model": "lenet5-classic"})
    out = tmp_path / "out" / "model.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt.npz"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "AveragePool 2" in text and "Sigmoid 4" in text and "bytes" in text
    x = images((3, 1, 28, 28), seed=14)
    assert_close(run_ort(out, x), engine(model, x))

    tc.save(model.state_dict(), tmp_path / "plain.npz")  # a plain state dict needs --model
    assert main(["export", "--checkpoint", str(tmp_path / "plain.npz"), "-o", str(tmp_path / "p.onnx")]) == 1
    assert "--model" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "plain.npz"), "--model", "alexnet-small", "-o",
                 str(tmp_path / "p.onnx")]) == 1
    err = capsys.readouterr().err
    assert "export: error:" in err and "shape mismatch for conv1.weight" in err
    assert not (tmp_path / "p.onnx").exists()

    static = tmp_path / "static.onnx"
    assert main(["export", "--model", "lenet5", "--no-dynamic-batch", "--batch-size", "2", "--opset", "13",
                 "-o", str(static)]) == 0
    proto = onnx.load(str(static))
    assert proto.opset_import[0].version == 13
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert "input 2x1x28x28" in capsys.readouterr().out


def test_import_tinygrad_cnn_onnx_does_not_import_onnx():
    code = "import sys, tinygrad_cnn; tinygrad_cnn.onnx.export; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).parents[1]))


def test_the_docs_op_tables_cover_every_mapped_op():
    from tinygrad_cnn.onnx import EXPORTABLE_OPS, SUPPORTED_OPS

    text = (Path(__file__).parents[1] / "docs" / "onnx.md").read_text()
    export_table = text.split("Export (engine")[1].split("Import (ONNX")[0]
    import_table = text.split("Import (ONNX")[1].split("## LRN")[0]
    assert [op for op in EXPORTABLE_OPS if op not in export_table] == []
    assert [op for op in SUPPORTED_OPS if op not in import_table] == []


def test_export_of_a_model_that_starts_with_an_in_place_relu(tmp_path):
    """The traced input is not a leaf, so ReLU(inplace=True) may modify it (PyTorch exports this too)."""
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((3, 1, 2, 2)).astype(np.float32)
    onnx_export(model, Tensor(x[:1]), tmp_path / "m.onnx")
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), engine(model, x), rtol=1e-5, atol=1e-6)
    onnx_export(nn.Sequential(nn.ReLU(inplace=True)), Tensor(x[:1]), tmp_path / "r.onnx")
    np.testing.assert_array_equal(run_ort(tmp_path / "r.onnx", x), np.maximum(x, 0))


def test_export_takes_a_nested_list_as_float32(tmp_path):
    """As ``Tensor(list)``: a list example input is float32, the parameters' dtype."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    onnx_export(model, [[[[1.0, 2.0], [3.0, -4.0]]]], tmp_path / "m.onnx")
    x = np.ones((2, 1, 2, 2), np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), engine(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg", "avg-nocip"])
@pytest.mark.parametrize("hw,k,s,p", [((7, 8), 3, 2, 1), ((6, 6), 3, 2, 0), ((5, 5), 2, 2, 1), ((7, 7), 4, 3, 2)],
                         ids=str)
def test_ceil_mode_pools_round_trip_through_onnx(tmp_path, kind, hw, k, s, p):
    """Exported with ceil_mode=1 (or explicit end pads where ONNX's size rule differs) and loaded back."""
    pool = nn.MaxPool2d(k, s, p, ceil_mode=True) if kind == "max" else \
        nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=kind == "avg")
    model = nn.Sequential(pool)
    x = images((2, 3, *hw), seed=16)
    onnx_export(model, Tensor(x[:1]), tmp_path / "m.onnx")
    ref = engine(model, x)
    assert_close(load(tmp_path / "m.onnx")(Tensor(x)).data, ref, atol=1e-6)
    assert_close(run_ort(tmp_path / "m.onnx", x), ref, atol=1e-6)


def test_export_under_no_grad_with_frozen_weights_traces_the_input(tmp_path):
    """Exporting inside ``no_grad()`` (or with every weight frozen) still records the graph from the
    input: the file must not bake the example's output in as a constant."""
    tc.manual_seed(0)
    model = make("lenet5")
    for p in model.parameters():
        p.requires_grad_(False)
    with tc.no_grad():
        path = onnx_export(model, Tensor(images((1, 1, 28, 28))), tmp_path / "frozen.onnx")
    assert "Conv" in {n.op_type for n in onnx.load(str(path)).graph.node}
    x = images((3, 1, 28, 28), seed=5)
    assert_close(run_ort(path, x), engine(model, x))


class _Scalar(nn.Module):
    """A learnable 0-d parameter and a 0-d output."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.array(2.0, np.float32))

    def forward(self, x):
        return x.mean() * self.scale + (x * x).sum()


def test_zero_d_parameters_and_outputs_keep_their_shape(tmp_path):
    model = _Scalar()
    path = onnx_export(model, Tensor(images((2, 3))), tmp_path / "scalar.onnx")
    proto = onnx.load(str(path))
    assert [list(t.dims) for t in proto.graph.initializer if t.name.endswith("scale")] == [[]]
    x = images((5, 3), seed=6)
    got = run_ort(path, x)
    assert got.shape == () and np.isclose(got, model(Tensor(x)).item(), rtol=1e-5)
    loaded = load(path)
    loaded.load_state_dict(model.state_dict())  # the 0-d parameter comes back 0-d
    assert np.isclose(loaded(Tensor(x)).item(), model(Tensor(x)).item(), rtol=1e-6)


class _MixedConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x) * Tensor(np.array([1.5, -2.0]))  # a float64 constant promotes, as in PyTorch


def test_a_float64_constant_is_cast_as_the_engine_promotes(tmp_path):
    tc.manual_seed(0)
    model = _MixedConstant()
    path = onnx_export(model, Tensor(images((2, 3))), tmp_path / "mixed.onnx")  # checked by onnx.checker
    x = images((4, 3), seed=7)
    ref = model(Tensor(x)).data
    assert ref.dtype == np.float64
    assert_close(run_ort(path, x), ref, atol=1e-6)


def _ort_vs_load(model, x):
    """(onnxruntime's output, the loaded module's) for one input ``x``."""
    onnx.checker.check_model(model)
    return run_ort(model, x, "x"), load(model)(Tensor(x)).data


@pytest.mark.parametrize("axis", [-4, -3, -2, -1, 0, 2, 4])
def test_imported_flatten_takes_negative_axes_from_the_end(axis):
    x = images((2, 3, 4, 5))
    r = axis + 4 if axis < 0 else axis
    out = [int(np.prod(x.shape[:r])), int(np.prod(x.shape[r:]))]
    ref, got = _ort_vs_load(_graph([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], [_fvi("x", x.shape)],
                                   [_fvi("y", out)]), x)
    assert got.shape == ref.shape == tuple(out)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("noop", [0, 1])
def test_imported_reduce_without_axes_honours_noop_with_empty_axes(op, noop):
    x = images((2, 3, 4))
    shape = list(x.shape) if noop else [1, 1, 1]
    ref, got = _ort_vs_load(_graph([helper.make_node(op, ["x"], ["y"], noop_with_empty_axes=noop)],
                                   [_fvi("x", x.shape)], [_fvi("y", shape)], opset=18), x)
    assert got.shape == ref.shape == tuple(shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("kernel,strides", [([1, 2, 2], [1, 2, 2]), ([1, 1, 2], [1, 1, 2]), ([1, 1, 1], [1, 1, 1])],
                         ids=str)
def test_imported_3d_pooling_with_the_window_on_the_last_axes(op, kernel, strides):
    x = images((2, 3, 4, 6, 6))
    out = [2, 3] + [(s - k) // st + 1 for s, k, st in zip(x.shape[2:], kernel, strides)]
    ref, got = _ort_vs_load(_graph([helper.make_node(op, ["x"], ["y"], kernel_shape=kernel, strides=strides)],
                                   [_fvi("x", x.shape)], [_fvi("y", out)]), x)
    assert got.shape == ref.shape == tuple(out)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_pytorch_lrn_of_size_one_loads_and_matches_pytorch():
    torch = pytest.importorskip("torch")
    net = torch.nn.LocalResponseNorm(1, alpha=0.5, beta=0.75, k=1.5)
    x = images((2, 4, 5, 5))
    proto = onnx.load_from_string(_torch_export(torch, net, torch.from_numpy(x)))
    np.testing.assert_allclose(load(proto)(Tensor(x)).data, net(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_maxpool_indices_output_is_refused_at_load_time():
    x = _fvi("x", [1, 1, 4, 4])
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])
    model = _graph([node], [x], [_fvi("y", [1, 1, 2, 2]),
                                 helper.make_tensor_value_info("i", TensorProto.INT64, [1, 1, 2, 2])])
    with pytest.raises(NotImplementedError, match=r"MaxPool \(its Indices output\)"):
        load(model)


def test_missing_external_data_names_the_model_file(tmp_path):
    model = _graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [_fvi("x", [2, 64])], [_fvi("y", [2, 64])],
                   [onnx.numpy_helper.from_array(images((64, 64)), "w")])
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert np.allclose(load(path)(Tensor(images((2, 64)))).data.shape, (2, 64))
    (tmp_path / "ext.data").unlink()
    with pytest.raises(OnnxFormatError, match=f"{path}.*not a readable ONNX model"):
        load(path)


def test_a_float_cast_follows_double():
    """``net.double()`` runs the whole graph in float64, also past a Cast(to=FLOAT) (gradcheck needs it)."""
    w = onnx.numpy_helper.from_array(images((3, 3)), "w")
    model = _graph([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
                    helper.make_node("MatMul", ["c", "w"], ["y"])], [_fvi("x", [2, 3])], [_fvi("y", [2, 3])], [w])
    net = load(model)
    assert net(Tensor(images((2, 3)))).dtype == np.float32
    net.double()
    x = Tensor(images((2, 3)).astype(np.float64), requires_grad=True)
    assert net(x).dtype == np.float64
    assert tc.gradcheck(lambda x: net(x), (x,))


class _Upsampler(nn.Module):
    """A transposed convolution (stride 2, output_padding 1) and a bias, as a decoder would use."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(4)
        self.weight = nn.Parameter(rng.standard_normal((3, 2, 3, 3)).astype(np.float32) * 0.3)
        self.bias = nn.Parameter(rng.standard_normal(2).astype(np.float32))

    def forward(self, x):
        return F.relu(F.conv_transpose2d(x, self.weight, self.bias, stride=2, padding=1, output_padding=1))


def test_conv_transpose2d_exports_to_convtranspose_and_loads_back(tmp_path):
    model = _Upsampler()
    x = np.random.default_rng(5).standard_normal((4, 3, 5, 6)).astype(np.float32)
    proto = to_onnx(model, Tensor(x[:1]))
    node = next(n for n in proto.graph.node if n.op_type == "ConvTranspose")
    assert {a.name: list(a.ints) for a in node.attribute}["output_padding"] == [1, 1]
    ref = engine(model, x)
    assert ref.shape == (4, 2, 10, 12)
    assert_close(run_ort(proto, x), ref, atol=1e-5)
    onnx_export(model, Tensor(x[:1]), tmp_path / "up.onnx")
    assert_close(engine(load(tmp_path / "up.onnx"), x), ref, atol=1e-5)


def test_import_of_torch_conv_transpose():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 4, (3, 2), stride=(2, 3), padding=(1, 0),
                                                       output_padding=(1, 2)), torch.nn.Tanh()).eval()
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5)).astype(np.float32)
    loaded = load(onnx.load_from_string(_torch_export(torch, net, torch.from_numpy(x[:1]))))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert_close(engine(loaded, x), ref, atol=1e-5)


@pytest.mark.parametrize("attrs", [{"output_shape": [9, 9]}, {"auto_pad": "SAME_UPPER"}])
def test_import_refuses_conv_transpose_options_it_cannot_run(attrs):
    w = onnx.numpy_helper.from_array(images((5, 4, 3, 3), seed=13), "w")
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3], **attrs)
    with pytest.raises(NotImplementedError, match="is not supported"):
        load(_graph([node], [_fvi("x", [2, 5, 4, 4])], [_fvi("y", [None] * 4)], [w]))(Tensor(images((2, 5, 4, 4))))
