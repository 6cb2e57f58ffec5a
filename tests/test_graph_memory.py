"""What the recorded graph keeps: data-free stand-ins for unneeded inputs, in-place ReLU, owned gradients.

The activations a training step holds are the memory budget of issue #6 (W1: at most twice the
im2col buffer). These tests pin the mechanisms down; the gradients stay exact (gradcheck, PyTorch).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, nn
from tinygrad_cnn.checks import CASES
from tinygrad_cnn.gradcheck import gradcheck, gradgradcheck
from tinygrad_cnn.tensor import _Shadow

torch = pytest.importorskip("torch")


def _through_an_op(fn):
    """``fn`` applied to non-leaf copies of its inputs (``x + 0``), so ops see recorded inputs."""
    def wrapped(*xs):
        return fn(*(x + 0.0 if isinstance(x, Tensor) and x.requires_grad else x for x in xs))
    return wrapped


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}[{c.config}]")
def test_every_primitive_is_exact_on_recorded_inputs(case):
    """With non-leaf inputs an op may keep shadows and mask owned gradients in place: still exact."""
    fn, inputs = case.build(np.random.default_rng(0))
    assert gradcheck(_through_an_op(fn), inputs)
    if case.second_order:
        assert gradgradcheck(_through_an_op(fn), inputs)


def test_ops_that_do_not_need_values_keep_shadows():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    h = x * 2.0
    y = F.max_pool2d(F.relu(h), 2)
    relu_fn, pool_fn = y.creator.inputs[0].creator, y.creator
    assert isinstance(relu_fn.inputs[0], _Shadow) and isinstance(pool_fn.inputs[0], _Shadow)
    assert relu_fn.inputs[0].shape == (2, 3, 8, 8) and relu_fn.inputs[0].dtype == np.float32
    with pytest.raises(RuntimeError, match="not kept by the graph"):
        _ = relu_fn.inputs[0].data
    assert h.creator.inputs[0] is x  # Mul keeps its inputs (its backward reads them)


def test_sigmoid_output_is_kept_for_its_backward():
    x = Tensor(np.linspace(-2, 2, 6), requires_grad=True)
    y = F.sigmoid(x).sum()  # Sum keeps no values, but sigmoid's backward reads its output
    y.backward()
    s = 1 / (1 + np.exp(-x.data))
    np.testing.assert_allclose(x.grad.data, s * (1 - s), rtol=1e-12)


def test_graph_after_forward_holds_no_activation_of_conv_size():
    model = models.SimpleConvNet()
    x = Tensor(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    loss = F.softmax_cross_entropy(model(x), np.array([0, 1, 2, 3]))
    held = []
    for fn in tc.viz.collect_graph(loss).functions:
        held += [v.nbytes for v in vars(fn).values() if isinstance(v, np.ndarray)]
        held += [t.data.nbytes for t in fn.inputs if not isinstance(t, _Shadow) and t.creator is not None]
    conv_out = 4 * 30 * 24 * 24 * 4
    assert max(held) <= conv_out / 4  # the pooled map (for fc1's weight gradient); masks are bits


def test_w1_step_peak_memory_is_within_twice_the_im2col_buffer():
    from tinygrad_cnn.cli.bench import w1_peak_memory

    mem = w1_peak_memory()
    assert mem["peak_extra_bytes"] <= 2 * mem["im2col_bytes"], mem


# --------------------------------------------------------------------------- in-place ReLU


def _torch_pair(a):
    t = torch.tensor(a, requires_grad=True)
    return Tensor(a.copy(), requires_grad=True), t


def test_inplace_relu_matches_torch_values_and_gradients():
    rng = np.random.default_rng(1)
    a, w = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    x, tx = _torch_pair(a)
    h = x @ Tensor(w)
    out = F.relu(h, inplace=True)
    assert out is h and h.creator.name == "ReLU"  # rebased, as torch's relu_
    (out * out).sum().backward()
    th = tx @ torch.tensor(w)
    torch.relu_(th)
    (th * th).sum().backward()
    np.testing.assert_allclose(h.data, th.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


def test_inplace_relu_module_repr_and_models():
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    model = models.LeNet5()
    x = Tensor(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    y = model(x)
    with tc.no_grad():
        ref = model.fc3(model.act4(model.fc2(model.act3(model.fc1(model.flatten(
            model.pool2(F.relu(model.conv2(model.pool1(F.relu(model.conv1(x))))))))))))
    np.testing.assert_allclose(y.data, ref.data, rtol=1e-6)


def test_inplace_relu_refuses_what_would_corrupt_a_gradient():
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        F.relu(x, inplace=True)
    with pytest.raises(RuntimeError, match="needed to compute a gradient"):
        F.relu(F.sigmoid(x), inplace=True)  # sigmoid's backward reads its output
    h = x * 1.0
    _ = h * x  # Mul keeps h for the gradient of x
    with pytest.raises(RuntimeError, match="needed to compute a gradient"):
        F.relu(h, inplace=True)
    with tc.no_grad():  # nothing recorded: plain in-place
        z = Tensor(np.array([-1.0, 2.0]))
        assert F.relu(z, inplace=True) is z and z.data.tolist() == [0.0, 2.0]


@pytest.mark.parametrize("view", [
    lambda h: h.reshape(1, 3), lambda h: h.flatten(0), lambda h: h[None], lambda h: h.reshape(3, 1).T,
])
def test_inplace_relu_sees_values_kept_through_a_view(view):
    """A recorded op that keeps a view of ``h`` (matmul keeps its inputs) needs ``h``'s values too:
    relu(h, inplace=True) would change them under it, and the weight gradient would be wrong."""
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    w = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    h = x * 1.0
    y = view(h).reshape(1, 3) @ w
    with pytest.raises(RuntimeError, match="needed to compute a gradient"):
        F.relu(h, inplace=True)
    (y.sum() + F.relu(h).sum()).backward()
    np.testing.assert_array_equal(w.grad.data, [[1.0, 1.0], [-2.0, -2.0], [3.0, 3.0]])


def test_inplace_relu_on_a_view_or_detached_copy_of_kept_values_is_refused():
    x = Tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
    h = x * 1.0
    _ = h @ Tensor(np.ones((3, 2)), requires_grad=True)  # keeps h
    for alias in (h.reshape(3), h[0]):
        with pytest.raises(RuntimeError, match="view of"):
            F.relu(alias, inplace=True)
    assert h.data.tolist() == [[1.0, -2.0, 3.0]]
    F.relu(h.detach(), inplace=True)  # cut from the graph, as in torch: the version counter catches it later
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        _.sum().backward()
    fresh = h * 2.0  # a new array: free to overwrite
    assert F.relu(fresh, inplace=True) is fresh and fresh.data.tolist() == [[2.0, 0.0, 6.0]]


def test_retained_and_shared_gradients_are_never_overwritten():
    """A gradient kept with retain_grad, or fanned out by an add, must not be masked in place."""
    a = np.array([[-1.0, 2.0, -3.0, 4.0]])
    x, tx = _torch_pair(a)
    h = x * 1.0
    h.retain_grad()
    y = F.relu(h) + F.relu(h * -1.0)
    (y * Tensor(np.array([[1.0, 2.0, 3.0, 4.0]]))).sum().backward()
    th = tx * 1.0
    th.retain_grad()
    ty = torch.relu(th) + torch.relu(th * -1.0)
    (ty * torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
    np.testing.assert_allclose(h.grad.data, th.grad.numpy())
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


def test_feature_maps_show_conv_outputs_before_the_inplace_relu():
    from tinygrad_cnn.viz.plots import _conv_activations

    model = models.SimpleConvNet(weight_init_std="he")
    x = Tensor(np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32))
    (name, act), = _conv_activations(model, x)
    with tc.no_grad():
        ref = model.conv1(x).data[0]
    assert name == "conv1" and (act < 0).any()
    np.testing.assert_allclose(act, ref, rtol=1e-6)


def test_inplace_relu_through_a_view_leaves_no_stale_node():
    """After relu(inplace=True) on a view, the base (or an older view) holds the ReLU'd values under
    its old node: using it in a recorded op would give a wrong gradient, so it raises (torch rebuilds
    the node instead). The rewritten tensor itself keeps working."""
    x = Tensor(np.array([[1.0, -2.0], [-3.0, 4.0]]), requires_grad=True)
    h = x * 1.0
    v = F.relu(h.reshape(4), inplace=True)
    with pytest.raises(RuntimeError, match="changed by an in-place op on a view"):
        h * 2.0
    (v * Tensor(np.arange(4.0))).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.0], [0.0, 3.0]])  # torch's
    x = Tensor(np.array([1.0, -2.0, 3.0, -4.0]), requires_grad=True)
    h = x * 1.0
    older = h.reshape(2, 2)
    F.relu(h, inplace=True)
    with pytest.raises(RuntimeError, match="changed by an in-place op"):
        older.sum()
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0, 1.0, 0.0])


def test_inplace_relu_on_a_view_of_a_leaf_is_refused():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.relu(x.reshape(2, 1), inplace=True)
    assert x.data.tolist() == [1.0, -2.0]


def test_inplace_relu_on_zero_d_results_and_integer_indexing():
    x = Tensor(np.array(-1.0), requires_grad=True)
    y = x * 1.0
    assert isinstance(y.data, np.ndarray) and F.relu(y, inplace=True).data == 0.0
    y.backward()
    assert x.grad.data == 0.0
    r = F.relu(Tensor(np.array(2.0), requires_grad=True) * 1.0)
    (r + r).backward()  # the accumulated 0-d gradient is masked in place
    h = Tensor(np.array([1.0, -2.0]), requires_grad=True) * 1.0
    F.relu(h[1], inplace=True)  # h[1] is a 0-d view, as in torch
    assert h.data.tolist() == [1.0, 0.0]
    z = Tensor(np.array(2.0), requires_grad=True) * 1.0
    with tc.no_grad():
        z += 1.0
    assert z.data == 3.0


def test_inplace_relu_allowed_where_no_backward_reads_the_values():
    """As torch: a product with a constant and exp (which reads its output) keep nothing of ``v``, so
    relu(v, inplace=True) afterwards is fine and every gradient still flows through the old node."""
    a = np.array([1.0, -2.0])
    x, tx = _torch_pair(a)
    v = x * 1.0
    w = (v * 3.0).sum() + v.exp().sum()
    F.relu(v, inplace=True)
    (w + v.sum()).backward()
    tv = tx * 1.0
    tw = (tv * 3.0).sum() + tv.exp().sum()
    torch.relu_(tv)
    (tw + tv.sum()).backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    np.testing.assert_array_equal(v.data, [1.0, 0.0])


def test_inference_keeps_no_columns_of_a_big_layer():
    """Under no_grad a big conv (single-GEMM path) with a trainable weight keeps no column chunks:
    its peak is one reused chunk buffer, not all of them (the weight gradient will never run)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((8, 96, 27, 27), dtype=np.float32))
    w = Tensor(rng.standard_normal((256, 96, 5, 5), dtype=np.float32) * 0.05, requires_grad=True)
    b = Tensor(np.zeros(256, np.float32), requires_grad=True)
    columns = 8 * 96 * 25 * 27 * 27 * 4  # the whole im2col: 56 MB
    tracemalloc.start()
    try:
        with tc.no_grad():
            y = F.conv2d(x, w, b, padding=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.creator is None and y.shape == (8, 256, 27, 27)
    assert peak < columns / 2, f"peak {peak / 1e6:.1f} MB for a {columns / 1e6:.1f} MB im2col"
