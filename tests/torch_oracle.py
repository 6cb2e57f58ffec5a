"""PyTorch as the oracle: tolerances per dtype and ``compare`` (values, then gradients) for op tests.

Importing this module needs torch: import it after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinygrad_cnn import Tensor

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
TDT = {np.float64: torch.float64, np.float32: torch.float32}
dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


def compare(ours, theirs, arrays, dtype, seed=0):
    """``ours(*Tensors)`` vs ``theirs(*torch tensors)`` on the same data: values and dtype, then the
    gradients (each in its input's dtype) for a random upstream gradient."""
    ts = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ps = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y, yt = ours(*ts), theirs(*ps)
    assert y.dtype == dtype and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(g))
    yt.backward(torch.tensor(g))
    for t, p in zip(ts, ps):
        assert t.grad.dtype == dtype
        np.testing.assert_allclose(t.grad.data, p.grad.numpy(), **TOL[dtype])
