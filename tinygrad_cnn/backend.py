"""The one place that picks the array module.

Every op asks ``get_array_module(array)`` for ``xp`` and calls ``xp.zeros``, ``xp.matmul``, ...
on it, as DeZero does. Today that is always NumPy; a CuPy backend is this file, not a rewrite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # CuPy is optional and never imported unless installed.
    import cupy as _cupy  # type: ignore[import-not-found]
except Exception:  # pragma: no cover - no GPU on CI
    _cupy = None


def get_array_module(*arrays: Any):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def as_numpy(a: Any) -> np.ndarray:
    """Bring an array back to host memory as a NumPy array."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def is_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) or (_cupy is not None and isinstance(a, _cupy.ndarray))
