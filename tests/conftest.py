"""Shared fixtures: a seeded NumPy generator and a float64 leaf-tensor factory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so every test sees the same data."""
    return np.random.default_rng(0)


@pytest.fixture
def randt(rng):
    """``randt(*shape, positive=False, dtype=np.float64, requires_grad=True)`` -> a random leaf Tensor."""
    from tinygrad_cnn import Tensor

    def make(*shape: int, positive: bool = False, dtype=np.float64, requires_grad: bool = True) -> Tensor:
        a = rng.standard_normal(shape)
        if positive:
            a = np.abs(a) + 0.5
        return Tensor(a.astype(dtype), requires_grad=requires_grad)

    return make
