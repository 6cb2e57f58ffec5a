"""The array-module handle: every op takes its array module from its data, so CuPy arrays run on the GPU.

The CuPy run itself needs a GPU (``tools/cupy_check.py``; its last output is
``benchmarks/results/cupy_check_h200.txt``); here the NumPy side of the helpers, and a guard
that no NumPy-only array call creeps back into the engine.
"""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.backend import get_array_module, is_writeable, like, strided_view

ROOT = Path(__file__).resolve().parents[1]


def test_strided_view_is_a_read_only_window_view():
    a = np.arange(12.0).reshape(3, 4)
    v = strided_view(a, (2, 3, 2), (a.strides[0], a.strides[1], a.strides[1]))  # 2x2 windows of a's rows
    assert np.shares_memory(v, a)
    np.testing.assert_array_equal(v[1, 2], [6.0, 7.0])
    assert not is_writeable(v)
    with pytest.raises(ValueError, match="read-only"):
        v[0, 0, 0] = 1.0


def test_is_writeable_reads_numpy_flags_and_assumes_true_without_them():
    a = np.zeros(3)
    assert is_writeable(a)
    a.flags.writeable = False
    assert not is_writeable(a)

    class NoWriteableFlag:  # CuPy's flags have no 'writeable': its arrays are always writable
        flags = type("Flags", (), {"c_contiguous": True})()

    assert is_writeable(NoWriteableFlag())


def test_like_keeps_numpy_arrays_and_converts_lists():
    a, ref = np.arange(3), np.zeros(2, dtype=np.float32)
    assert like(a, ref) is a
    out = like([1, 2], ref)
    assert isinstance(out, np.ndarray) and out.tolist() == [1, 2]
    assert get_array_module(ref) is np


def test_no_numpy_only_array_calls_outside_the_backend():
    """Calls CuPy lacks or refuses must go through backend.py (a CuPy run found each of these)."""
    patterns = {
        r"\.flags\.writeable": "is_writeable(a)",
        r"as_strided\(": "strided_view(a, shape, strides)",
    }
    found = []
    for path in sorted((ROOT / "tinygrad_cnn").rglob("*.py")):
        if path.name == "backend.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pat, use in patterns.items():
                if re.search(pat, line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: use {use}")
    assert not found, "\n".join(found)


def test_cupy_matches_numpy_op_by_op():
    cp = pytest.importorskip("cupy", reason="CuPy is not installed (the GPU check runs where it is)")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy found no CUDA GPU")
    except cp.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"CuPy found no usable CUDA GPU: {exc}")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import cupy_check
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert cupy_check.check_ops(cp) == 0
    assert cupy_check.check_training(cp, steps=5) == 0
    assert cupy_check.check_gradcheck(cp) == 0
