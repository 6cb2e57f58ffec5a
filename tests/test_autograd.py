"""The backward engine: ordering, accumulation, freeing, higher order, grad mode, ``tc.grad``."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor


def test_long_chain_does_not_hit_the_recursion_limit():
    assert sys.getrecursionlimit() < 10_000 + 100  # otherwise this test would prove nothing
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(2, 1.0001 ** 10_000), rtol=1e-9)
    del y  # freeing a 10,000-deep graph must not recurse either
    gc.collect()


def test_gradients_accumulate_over_two_backward_calls():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * x.data + 3)


def test_zero_grad_and_grad_none():
    x = Tensor(np.ones(3), requires_grad=True)
    (x * 2).sum().backward()
    x.zero_grad()
    assert x.grad is None
    (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full(3, 5.0))
    x.grad = None
    (x * 7).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full(3, 7.0))


def test_grad_is_a_tensor_without_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad, Tensor)
    assert x.grad.creator is None and not x.grad.requires_grad


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with tc.no_grad():
        assert not tc.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert tc.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError):
        y.backward()

    @tc.no_grad()
    def f(t):
        return t * 2

    assert f(x).creator is None


def test_set_grad_enabled_restores_mode():
    with tc.set_grad_enabled(False):
        assert not tc.is_grad_enabled()
        with tc.set_grad_enabled(True):
            assert (Tensor(np.ones(2), requires_grad=True) * 2).requires_grad
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.creator is None and not d.requires_grad
    assert np.shares_memory(d.data, y.data)
    z = (d * x).sum()
    z.backward()
    np.testing.assert_array_equal(x.grad.data, d.data)  # no gradient through d


def test_requires_grad_propagation():
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2))
    assert (a + b).requires_grad and (b * a).requires_grad
    assert not (b + b).requires_grad and (b + b).creator is None
    (a * b).sum().backward()
    assert b.grad is None  # a leaf that does not require grad keeps grad None
    assert a.grad is not None


def test_requires_grad_off_only_on_leaves():
    y = Tensor(np.ones(2), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad = False
    assert Tensor(np.ones(2)).requires_grad_().requires_grad


def test_int_label_tensors_stay_int_and_need_no_grad():
    labels = Tensor(np.array([0, 2, 1]))
    assert labels.dtype == np.int64 and not labels.requires_grad
    logits = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    loss = F.softmax_cross_entropy(logits, labels)
    loss.backward()
    assert labels.grad is None and logits.grad.shape == (3, 4)
    np.testing.assert_allclose(logits.grad.data.sum(axis=1), 0, atol=1e-15)


def test_saved_arrays_are_freed_and_second_backward_raises():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    r = F.relu(x * 3)
    y = r.sum()
    relu_fn = r.creator
    assert hasattr(relu_fn, "bits")
    y.backward()
    assert relu_fn.released and not hasattr(relu_fn, "bits")
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    w = Tensor(np.ones((3, 1, 2, 2)), requires_grad=True)
    y = (F.conv2d(x.reshape(1, 1, 1, 2) * Tensor(np.ones((1, 1, 2, 1))), w, None, 1, 1).relu()).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * g1)


def test_freed_graph_keeps_its_structure():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    assert y.creator.name == "Sum" and y.creator.inputs[0].creator.name == "Mul"


def test_create_graph_second_derivative_of_cube():
    x = Tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.creator is not None
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_third_derivative_with_tc_grad():
    x = Tensor(np.array([0.3, -0.7]), requires_grad=True)
    y = x.tanh().sum()
    (g1,) = tc.grad(y, x, create_graph=True)
    (g2,) = tc.grad(g1.sum(), x, create_graph=True)
    (g3,) = tc.grad(g2.sum(), x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(g1.data, 1 - t ** 2)
    np.testing.assert_allclose(g2.data, -2 * t * (1 - t ** 2))
    np.testing.assert_allclose(g3.data, (1 - t ** 2) * (6 * t ** 2 - 2))


def test_hessian_vector_product(rng):
    """f(x) = sum(softmax(A x) * c): H v from differentiating <grad f, v>, against the full Hessian."""
    a, c, v = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    x = Tensor(rng.standard_normal(3), requires_grad=True)

    def f(x):
        return (F.softmax(Tensor(a) @ x, 0) * Tensor(c)).sum()

    (g,) = tc.grad(f(x), x, create_graph=True)
    (hv,) = tc.grad((g * Tensor(v)).sum(), x)
    # numeric Hessian by central differences of the analytic gradient
    eps, h = 1e-5, np.zeros((3, 3))
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        xp_, xm_ = Tensor(x.data + e, requires_grad=True), Tensor(x.data - e, requires_grad=True)
        h[:, i] = (tc.grad(f(xp_), xp_)[0].data - tc.grad(f(xm_), xm_)[0].data) / (2 * eps)
    np.testing.assert_allclose(hv.data, h @ v, rtol=1e-6, atol=1e-9)


def test_create_graph_through_conv_pool_and_loss(rng):
    """Second order through the CNN primitives: d/dw of |dL/dx|^2 against central differences."""
    x = Tensor(rng.standard_normal((1, 1, 4, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 1, 2, 2)), requires_grad=True)

    def penalty(w):
        with tc.set_grad_enabled(True):  # gradcheck evaluates fn under no_grad for the numeric part
            loss = F.softmax_cross_entropy(F.max_pool2d(F.conv2d(x, w), 3).flatten(1), np.array([1]))
            (gx,) = tc.grad(loss, x, create_graph=True)
            return (gx * gx).sum()

    assert tc.gradcheck(penalty, (w,))


def test_diamond_graph_accumulates():
    x = Tensor(np.array([2.0]), requires_grad=True)
    a = x * 3
    y = a * a + a  # a used twice, x reached along two paths
    y.backward()
    np.testing.assert_allclose(x.grad.data, [(2 * 6 + 1) * 3])
    x2 = Tensor(np.array([1.5]), requires_grad=True)
    (x2 * x2).backward()
    np.testing.assert_allclose(x2.grad.data, [3.0])


def test_generation_order_sees_full_gradient():
    """b depends on x through a long and a short path; b's backward must run once, after both arrive."""
    x = Tensor(np.array([1.0]), requires_grad=True)
    a = x.exp()
    long = a
    for _ in range(5):
        long = long * 1.0
    b = long + a
    calls = []
    orig = type(a.creator).backward

    def spy(self, gy):
        calls.append(gy.data.copy())
        return orig(self, gy)

    type(a.creator).backward = spy
    try:
        b.backward()
    finally:
        type(a.creator).backward = orig
    assert len(calls) == 1 and calls[0][0] == 2.0
    np.testing.assert_allclose(x.grad.data, 2 * np.e)


def test_tc_grad_leaves_grad_untouched():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    y = (x * w).sum()
    gx, gw = tc.grad(y, [x, w])
    np.testing.assert_array_equal(gx.data, w.data)
    np.testing.assert_array_equal(gw.data, x.data)
    assert x.grad is None and w.grad is None


def test_tc_grad_unused_input_and_grad_outputs():
    x = Tensor(np.ones(2), requires_grad=True)
    z = Tensor(np.ones(2), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="allow_unused"):
        tc.grad(y, [x, z], Tensor(np.ones(2)), retain_graph=True)
    gx, gz = tc.grad(y, [x, z], Tensor(np.array([1.0, 3.0])), allow_unused=True)
    np.testing.assert_array_equal(gx.data, [2, 6])
    assert gz is None


def test_grad_of_non_leaf_and_retain_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = (x * 3).retain_grad()
    y = (h * h).sum()
    (gh,) = tc.grad(y, h, retain_graph=True)
    np.testing.assert_array_equal(gh.data, 2 * h.data)
    y.backward()
    np.testing.assert_array_equal(h.grad.data, 2 * h.data)
    np.testing.assert_array_equal(x.grad.data, 6 * h.data)


def test_backward_with_explicit_gradient():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    y = x * x
    y.backward(Tensor(np.array([[1.0, 0.0], [0.5, 2.0]])))
    np.testing.assert_array_equal(x.grad.data, [[2, 0], [3, 16]])
    x.grad = None
    (x * 1.0).backward(np.ones((2, 2)))  # an ndarray seed works too
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 2)))


def test_repr_shows_shape_dtype_and_grad_fn():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    r = repr(x)
    assert "shape=(2, 3)" in r and "float64" in r and "requires_grad=True" in r
    r = repr(x * 2)
    assert "shape=(2, 3)" in r and "float64" in r and "grad_fn=<Mul>" in r
    r = repr(F.relu(Tensor([1.0, -1.0], requires_grad=True)))
    assert "float32" in r and "grad_fn=<ReLU>" in r
    assert "grad_fn" not in repr(Tensor([1.0]))


def test_graph_is_freed_when_output_dies():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).exp()
    fn = weakref.ref(y.creator)
    del y
    gc.collect()
    assert fn() is None


# ----------------------------------------------------------------------------- dtype policy


def test_list_is_float32_and_arrays_keep_their_dtype():
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor([[1.5, 2.0]]).dtype == np.float32
    assert Tensor(2.5).dtype == np.float32 and Tensor(2.5).shape == ()
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert Tensor(np.array([1, 2])).dtype == np.int64
    assert Tensor(np.array([1, 2], np.uint8)).dtype == np.uint8
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_graph_stays_in_its_dtype_end_to_end(rng, dt):
    """Every op, every saved buffer and every gradient in the input's float dtype; no upcast."""
    arrs = []
    orig_release = tc.Function.release

    def spy_release(self):
        arrs.extend(v for v in vars(self).values() if isinstance(v, np.ndarray) and v.dtype.kind == "f")
        orig_release(self)

    x = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(dt), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(dt), requires_grad=True)
    b = Tensor(np.zeros(4, dt), requires_grad=True)
    fw = Tensor(rng.standard_normal((5, 16)).astype(dt), requires_grad=True)
    tc.manual_seed(0)
    h = F.conv2d(x, w, b, 1, 1).relu()
    h = F.local_response_norm(h, 3, 1e-2, 0.75, 2.0)
    h = F.max_pool2d(h, 3, 2, 1)
    h = F.avg_pool2d(h, 2) * 0.5 + 1
    h = F.dropout(h.sigmoid().tanh() ** 2 / 3.0 - 1, 0.3)
    logits = F.linear(h.flatten(1), fw)
    loss = F.softmax_cross_entropy(logits, np.array([1, 4])) + F.log_softmax(logits).mean() * 0.0 \
        + F.softmax(logits).max() + (2 - logits.exp().log()).mean() * 0.0
    assert loss.dtype == dt and loss.shape == ()
    tc.Function.release = spy_release
    try:
        loss.backward()
    finally:
        tc.Function.release = orig_release
    assert arrs and all(a.dtype == dt for a in arrs), {str(a.dtype) for a in arrs}
    for t in (x, w, b, fw):
        assert t.grad.dtype == dt
    assert F.im2col(x, 3, 3, 1, 1).dtype == dt


def test_python_scalars_do_not_upcast_float32():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    for y in (x * 0.1, 0.1 * x, x / 3.0, 2 - x, 2 ** x, x ** 0.5, x + np.float64(1), x.mean(), -x):
        assert y.dtype == np.float32
    (x ** 2.5).sum().backward()
    assert x.grad.dtype == np.float32


def test_a_zero_d_float64_array_acts_as_a_scalar():
    """As a 0-d tensor in PyTorch: ``x + np.array(2.5)`` stays float32; a 1-d float64 array promotes."""
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    assert (x + np.array(2.5)).dtype == (np.array(2.5) * x).dtype == np.float32
    assert (x + np.ones(3)).dtype == np.float64
    np.testing.assert_array_equal((x + np.array(2.5)).data, [3.5, 3.5, 3.5])


def test_float32_gradient_seed_is_cast_to_output_dtype():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    (x * 2).backward(np.ones(3))  # float64 seed
    assert x.grad.dtype == np.float32


# --------------------------------------------------------------------------- version counters

def _modify(kind, h):
    """An in-place write to ``h``'s values, as a user might make it."""
    with tc.no_grad():
        if kind == "iadd":
            h += 1.0
        elif kind == "detached":
            d = h.detach()
            d *= 2.0
        elif kind == "view":
            v = h.reshape(-1)
            v -= 1.0
        elif kind == "relu":
            F.relu(h, inplace=True)


@pytest.mark.parametrize("kind", ["iadd", "detached", "view", "relu"])
@pytest.mark.parametrize("saved", ["input of mul", "output of sigmoid"])
def test_backward_refuses_values_modified_in_place_after_they_were_saved(kind, saved):
    """PyTorch's version counter: an op whose saved values changed since forward raises in backward
    instead of returning a wrong gradient."""
    x = Tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
    if saved == "input of mul":
        h = x * 1.0
        y = (h * x).sum()  # Mul keeps h
    else:
        h = F.sigmoid(x)  # Sigmoid's backward reads its output h
        y = h.sum()
    _modify(kind, h)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_in_place_writes_outside_a_pending_backward_are_fine():
    w = Tensor(np.ones(3), requires_grad=True)
    for _ in range(2):  # manual SGD: the update comes after backward
        (w * w).sum().backward()
        with tc.no_grad():
            w -= 0.5 * w.grad
        w.grad = None
    np.testing.assert_array_equal(w.data, [0.0, 0.0, 0.0])
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = (h + x).sum()  # Add keeps nothing: h's values are not needed
    _modify("iadd", h)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_optimizer_step_or_load_state_dict_before_backward_is_refused():
    from tinygrad_cnn import nn, optim

    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = Tensor(np.ones((1, 2), np.float32))
    loss = model(x).sum()
    loss.backward(retain_graph=True)
    opt.step()  # changes the second layer's weight, which the gradient of its input reads
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    loss = model(x).sum()
    model.load_state_dict(model.state_dict())
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    for _ in range(2):  # the ordinary loop
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()


def test_only_values_that_backward_reads_are_checked():
    """As torch: the first layer's weight is not read by its backward when its input needs no
    gradient, a constant factor needs nothing of the other operand, and exp reads its output."""
    from tinygrad_cnn import nn, optim

    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss = model(Tensor(np.ones((1, 2), np.float32))).sum()
    loss.backward(retain_graph=True)
    opt.step()
    loss.backward()  # reads the input only: fine, as in torch
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    h = x * 1.0
    y = (h * 3.0).sum() + h.exp().sum()
    _modify("iadd", h)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 3.0 + np.exp([1.0, -2.0]))
    h = x * 1.0
    y = (h ** 2.0).sum()  # pow reads its base
    _modify("iadd", h)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_version_errors_match_torch():
    torch = pytest.importorskip("torch")
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    th = tx * 1.0
    ty = (th * tx).sum()
    with torch.no_grad():
        th += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = (h * x).sum()
    _modify("iadd", h)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_detach_keeps_no_reference_to_the_graph():
    """A detached copy shares the version counter, not the graph: storing ``loss.detach()`` for a
    history must not keep each step's graph (and its saved arrays) alive."""
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).exp()
    creator = weakref.ref(y.creator)
    d = y.detach()
    del y
    gc.collect()
    assert creator() is None
    np.testing.assert_allclose(d.data, np.exp(2.0))


# ----------------------------------------------------------------------------- engine semantics vs torch.autograd

A = np.array([0.5, -1.2, 2.0])


def test_grad_wrt_a_non_leaf_leaves_the_graph_below_it_for_a_later_backward():
    """As torch.autograd.grad: only the ops between the outputs and the inputs run."""
    x = Tensor(A, requires_grad=True)
    h = x.exp()
    (g,) = tc.grad((h * h).sum(), h)
    np.testing.assert_allclose(g.data, 2 * np.exp(A))
    h.backward(g)  # Exp's saved values were not freed by tc.grad
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(2 * A))
    assert x.grad is not None and not g.requires_grad


def test_grad_outputs_must_match_the_outputs_and_none_means_ones():
    x = Tensor(A, requires_grad=True)
    with pytest.raises(RuntimeError, match="got 2 output\\(s\\) but 1 grad_outputs"):
        tc.grad([x * 2, x * 3], x, grad_outputs=[Tensor(np.ones(3))])
    with pytest.raises(RuntimeError, match="at least one output and one input"):
        tc.grad([x * 2], [], grad_outputs=[Tensor(np.ones(3))])
    (g,) = tc.grad([(x * x).sum(), x * 3], x, grad_outputs=[None, Tensor(np.ones(3))])
    np.testing.assert_allclose(g.data, 2 * A + 3)
    with pytest.raises(RuntimeError, match="grad_outputs needed for non-scalar output"):
        tc.grad([x * 3], x, grad_outputs=[None])


class _OneGradForTwo(tc.Function):
    def forward(self, x, y):
        return x * y

    def backward(self, gy):
        return gy * self.inputs[1]


class _ArrayGrad(tc.Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy.data * 2


class _Cube(tc.Function):
    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        return gy * 3 * self.inputs[0] ** 2


def test_a_custom_backward_must_return_one_tensor_per_input():
    x, y = Tensor(A, requires_grad=True), Tensor(A, requires_grad=True)
    with pytest.raises(RuntimeError, match="_OneGradForTwo backward returned 1 gradient\\(s\\) for 2 input\\(s\\)"):
        _OneGradForTwo()(x, y).sum().backward()
    with pytest.raises(TypeError, match="_ArrayGrad backward returned a ndarray for input 0"):
        _ArrayGrad()(x).sum().backward()


def test_one_function_instance_is_one_graph_node():
    """A second recorded call would overwrite the first call's node: wrong gradients, so it is refused."""
    x = Tensor(A, requires_grad=True)
    f = _Cube()
    f(x)
    with pytest.raises(RuntimeError, match="_Cube: this Function instance is already a node"):
        f(x * 2)
    (_Cube()(x).sum() + _Cube()(x * 2).sum()).backward()
    np.testing.assert_allclose(x.grad.data, 27 * A ** 2)
    with tc.no_grad():  # nothing recorded: an instance may be called again
        g = _Cube()
        assert np.allclose(g(x).data, g(x).data)


def test_create_graph_leaf_grads_share_no_array_with_the_seed_or_each_other():
    x1, x2 = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    seed = Tensor(np.ones(3))
    (x1 + x2).backward(seed, create_graph=True)
    x1.grad += 1
    np.testing.assert_array_equal(x2.grad.data, np.ones(3))
    np.testing.assert_array_equal(seed.data, np.ones(3))


@pytest.mark.parametrize("op", ["tanh", "exp", "sigmoid", "softmax"])
def test_outputs_kept_for_backward_are_freed_after_it(op):
    x = Tensor(A, requires_grad=True)
    h = {"tanh": F.tanh, "exp": lambda t: t.exp(), "sigmoid": F.sigmoid, "softmax": F.softmax}[op](x)
    y = (h * h).sum()
    ref = weakref.ref(h)
    del h
    y.backward()
    gc.collect()
    assert ref() is None  # y (and its graph) still alive, the activation gone


def test_relu_in_place_is_allowed_once_the_graph_that_kept_the_values_is_freed():
    x = Tensor(A, requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    with pytest.raises(RuntimeError, match="needed to compute a gradient"):
        F.relu(h, inplace=True)
    y.backward()
    np.testing.assert_array_equal(F.relu(h, inplace=True).data, np.maximum(2 * A, 0))
    s = F.sigmoid(x)
    (s * 3).sum().backward()  # Sigmoid released: its output may be written now
    F.relu(s, inplace=True)


def test_grad_mode_decorators_hold_inside_generators_and_contexts_re_enter():
    @tc.no_grad()
    def gen():
        yield tc.is_grad_enabled()
        yield tc.is_grad_enabled()

    assert list(gen()) == [False, False] and tc.is_grad_enabled()
    s = tc.set_grad_enabled(False)
    assert not tc.is_grad_enabled()
    with s:
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()
    with s:  # entered again: switches again, as PyTorch
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()
    with pytest.raises(TypeError, match="mode must be a bool"):
        tc.set_grad_enabled(0)
    assert tc.is_grad_enabled()


def test_grad_mode_is_per_thread_as_in_pytorch():
    import threading

    seen = {}
    started, checked = threading.Event(), threading.Event()

    def worker():
        started.wait()
        seen["worker"] = tc.is_grad_enabled()
        x = Tensor(A, requires_grad=True)
        seen["records"] = (x * 2).requires_grad
        checked.set()

    t = threading.Thread(target=worker)
    t.start()
    with tc.no_grad():  # the main thread only
        started.set()
        checked.wait(10)
        seen["main"] = tc.is_grad_enabled()
    t.join()
    assert seen == {"worker": True, "records": True, "main": False}
    with tc.no_grad():  # a thread started inside no_grad begins recording, too
        t = threading.Thread(target=lambda: seen.__setitem__("new", tc.is_grad_enabled()))
        t.start()
        t.join()
    assert seen["new"] is True
