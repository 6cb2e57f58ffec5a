"""The one place that picks the array module.

Every op asks ``get_array_module(array)`` for ``xp`` and calls ``xp.zeros``, ``xp.matmul``, ...
on it, as DeZero does, so Tensors built from CuPy arrays run on the GPU. What NumPy and CuPy do
differently is here too (``strided_view``, ``is_writeable``, ``like``); ``tools/cupy_check.py``
checks every op against NumPy on a GPU.
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


def strided_view(a: Any, shape: tuple, strides: tuple):
    """A no-copy view of ``a`` with ``shape`` and byte ``strides`` (im2col's windows). Read-only on
    NumPy, so a write through overlapping windows fails loudly; CuPy has no read-only arrays."""
    xp = get_array_module(a)
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def is_writeable(a: Any) -> bool:
    """Whether ``a`` may be written in place (CuPy arrays have no such flag: always)."""
    return getattr(a.flags, "writeable", True)


def like(a: Any, ref: Any):
    """``a`` (an array or array-like) in the array module of ``ref``: a NumPy index or weight array
    next to CuPy data is copied to the GPU; on NumPy this is ``np.asarray`` (no copy of an array)."""
    return get_array_module(ref).asarray(a)


def is_array(a: Any) -> bool:
    cp = _cupy()
    return isinstance(a, np.ndarray) or (cp is not None and isinstance(a, cp.ndarray))
