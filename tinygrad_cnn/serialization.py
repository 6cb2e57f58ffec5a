"""``save``/``load`` of state dicts as plain ``.npz`` files: atomic writes, never unpickling."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .backend import as_numpy
from .tensor import Tensor


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, or not a tinygrad_cnn ``.npz``."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it over ``path``.

    A crash or an exception leaves the old file (or nothing) in place, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``{name: array}`` to ``path`` as an uncompressed ``.npz`` (one array per key), atomically."""
    arrays = OrderedDict()
    for k, v in state.items():
        if not isinstance(k, str):
            raise TypeError(f"save: keys must be strings, got {k!r}")
        arr = np.asarray(as_numpy(v.data if isinstance(v, Tensor) else v))
        if arr.dtype == object:
            raise TypeError(f"save: value for {k!r} is not a numeric array (object arrays would need pickle)")
        arrays[k] = arr
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """Read a ``.npz`` written by :func:`save` into ``{name: ndarray}``; never executes code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such checkpoint file: {path}")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy gives an ndarray, not a context manager
            raise CheckpointError(f"load: {path} is a single .npy array, not a .npz state dict")
        with z:
            return OrderedDict((k, z[k]) for k in z.files)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"load: {path} is not a readable tinygrad_cnn checkpoint (truncated, corrupt or not an .npz; "
            f"object arrays are refused): {type(exc).__name__}: {exc}"
        ) from None
