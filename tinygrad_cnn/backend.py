"""The one place that picks the array module.

Every op asks ``get_array_module(array)`` for ``xp`` and calls ``xp.zeros``, ``xp.matmul``, ...
on it, as DeZero does. Today that is always NumPy; a CuPy backend is this file, not a rewrite.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def _cupy():
    """CuPy if the program has imported it, else None. Never imported here: a CuPy array can only
    exist once its user imported CuPy, and importing it (and a CUDA context) would make
    ``import tinygrad_cnn`` slow wherever CuPy happens to be installed."""
    return sys.modules.get("cupy")


def get_array_module(*arrays: Any):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    cp = _cupy()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def as_numpy(a: Any) -> np.ndarray:
    """Bring an array back to host memory as a NumPy array."""
    cp = _cupy()
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


def is_array(a: Any) -> bool:
    cp = _cupy()
    return isinstance(a, np.ndarray) or (cp is not None and isinstance(a, cp.ndarray))
