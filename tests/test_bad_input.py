"""Bad input gets a clear error that names the op and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.tensor import broadcast_to


def z(*shape):
    return Tensor(np.zeros(shape))


def test_conv2d_channel_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"conv2d.*\(1, 3, 5, 5\).*\(2, 4, 3, 3\)"):
        F.conv2d(z(1, 3, 5, 5), z(2, 4, 3, 3))


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel \(5, 5\) is larger than the padded input \(4, 4\)"):
        F.conv2d(z(1, 1, 2, 2), z(1, 1, 5, 5), padding=1)
    F.conv2d(z(1, 1, 3, 3), z(1, 1, 5, 5), padding=1)  # exactly fits: fine


def test_conv2d_wrong_ranks_and_bias():
    for shape in [(5, 5), (1, 1, 3, 5, 5)]:  # 3-D is PyTorch's unbatched input: see test_parity_torch
        with pytest.raises(ValueError, match=r"conv2d: input must be 4-D \(N, C, H, W\) or 3-D \(C, H, W\)"):
            F.conv2d(z(*shape), z(2, 3, 3, 3))
    with pytest.raises(ValueError, match="conv2d: weight must be 4-D"):
        F.conv2d(z(1, 3, 5, 5), z(3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: bias of shape \(3,\)"):
        F.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), z(3))


@pytest.mark.parametrize("kwargs", [{"stride": 0}, {"padding": -1}, {"stride": (1, 2, 3)}, {"stride": 1.5}])
def test_conv2d_bad_stride_or_padding(kwargs):
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(z(1, 1, 5, 5), z(1, 1, 3, 3), **kwargs)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pool_window_larger_than_input(pool):
    name = pool.__name__
    with pytest.raises(ValueError, match=f"{name}: kernel"):
        pool(z(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match=f"{name}: padding"):
        pool(z(1, 1, 6, 6), 2, 2, 2)  # padding more than half the window
    for shape in [(6, 6), (1, 1, 1, 6, 6)]:
        with pytest.raises(ValueError, match=f"{name}: input must be 4-D .* or 3-D"):
            pool(z(*shape), 2)


def test_matmul_shape_mismatch():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\)"):
        z(2, 3) @ z(2, 3)
    with pytest.raises(ValueError, match="matmul"):
        z(2, 3, 4) @ z(3, 4, 5)  # batch dims do not broadcast


def test_matmul_of_vectors_names_the_shapes_given():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3,\) and \(4,\) are not aligned"):
        z(3) @ z(4)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4,\) are not aligned"):
        z(2, 3) @ z(4)
    with pytest.raises(ValueError, match=r"matmul: shapes \(3,\) and \(4, 2\) are not aligned"):
        z(3) @ z(4, 2)
    with pytest.raises(ValueError, match="matmul: both operands need at least one dimension"):
        z(3) @ z()


@pytest.mark.parametrize("op,name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"), (lambda a, b: a ** b, "pow"), (lambda a, b: np.ones((4, 5)) + a, "add"),
])
def test_elementwise_ops_that_do_not_broadcast_name_the_op_and_shapes(op, name):
    with pytest.raises(ValueError, match=rf"{name}: shapes \((2, 3|4, 5)\) and \((4, 5|2, 3)\) do not broadcast"):
        op(z(2, 3), z(4, 5))


def test_broadcast_to_names_both_shapes():
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape \(3,\) to \(4, 2\)"):
        broadcast_to(z(3), (4, 2))


@pytest.mark.parametrize("call,name", [
    (lambda t: t.sum(axis=2), "sum"), (lambda t: t.mean(axis=(0, -3)), "mean"), (lambda t: t.max(axis=5), "max"),
    (lambda t: F.softmax(t, axis=2), "softmax"), (lambda t: F.log_softmax(t, axis=-3), "log_softmax"),
])
def test_an_axis_out_of_range_names_the_op(call, name):
    with pytest.raises(IndexError, match=rf"{name}: axis -?\d is out of bounds for array of dimension 2"):
        call(z(2, 3))  # an IndexError as in PyTorch, and a ValueError (numpy's AxisError is both)


def test_linear_shape_mismatch():
    with pytest.raises(ValueError, match=r"linear: input of shape \(3, 4\).*\(5, 3\)"):
        F.linear(z(3, 4), z(5, 3))


@pytest.mark.parametrize("label", [-1, 5, 17])
def test_label_out_of_range(label):
    with pytest.raises(ValueError, match=rf"label {label} out of range \[0, 5\)"):
        F.softmax_cross_entropy(z(3, 5), np.array([0, label, 1]))


def test_target_batch_and_width_mismatch():
    with pytest.raises(ValueError, match=r"\(3, 5\).*\(4,\)"):
        F.softmax_cross_entropy(z(3, 5), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        F.softmax_cross_entropy(z(3, 5), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="integer"):
        F.softmax_cross_entropy(z(3, 5), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        F.softmax_cross_entropy(z(3, 5, 2), np.array([0, 1, 2]))


def test_backward_on_non_scalar_without_gradient():
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        (Tensor(np.zeros((2, 3)), requires_grad=True) * 2).backward()


def test_backward_with_wrongly_shaped_gradient():
    y = Tensor(np.zeros((2, 3)), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(Tensor(np.ones((3, 2))))
    with pytest.raises(RuntimeError):
        y.backward(np.ones(6))


def test_backward_on_tensor_without_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(())).backward()


def test_ragged_list():
    with pytest.raises(ValueError, match="ragged"):
        Tensor([[1, 2], [3]])


@pytest.mark.parametrize("arr,what", [
    (np.zeros(3, np.float16), "float16"), (np.zeros(3, np.complex128), "complex128"),
    (np.array([object()]), "object"), (np.array(["a"]), "<U1"),
], ids=["float16", "complex", "object", "str"])
def test_unsupported_dtypes_rejected(arr, what):
    with pytest.raises(TypeError, match=f"dtype {what} is not supported"):
        Tensor(arr)


def test_complex_and_string_python_data_rejected():
    with pytest.raises(TypeError, match="complex"):
        Tensor([1 + 2j])
    with pytest.raises(TypeError, match="str"):
        Tensor("abc")


def test_requires_grad_on_int_tensor():
    with pytest.raises(RuntimeError, match="floating point"):
        Tensor(np.array([1, 2]), requires_grad=True)
    t = Tensor(np.array([1, 2]))
    with pytest.raises(RuntimeError, match="int64"):
        t.requires_grad = True


def test_reshape_and_transpose_errors():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) into \(4, 2\)"):
        z(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="transpose: axes"):
        z(2, 3).transpose(0, 0)


def test_other_functional_arguments():
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(z(3), 1.5)
    with pytest.raises(ValueError, match="local_response_norm"):
        F.local_response_norm(z(3, 4), 3)
    with pytest.raises(ValueError, match="local_response_norm: size"):
        F.local_response_norm(z(1, 3, 4), 0)
    with pytest.raises(ValueError, match="pad"):
        F.pad(z(2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match="col2im"):
        F.col2im(z(5, 4), (1, 1, 3, 3), 2, 2)
