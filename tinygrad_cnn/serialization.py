"""``save``/``load`` of state dicts as plain ``.npz`` files: atomic writes, never unpickling."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
import zlib
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

    Missing parent folders are created. A crash or an exception leaves the old file (or nothing)
    in place, never half a file. A parent that is a file, or a ``path`` that is a folder, raises
    ``NotADirectoryError`` / ``IsADirectoryError`` naming the path. A symlink is written through
    (the file it points at is replaced; the link stays), and a device or FIFO (``/dev/null``) is
    written to directly: a rename would put a regular file in its place.
    """
    given = path = Path(path)
    if path.is_symlink():
        try:
            path = Path(os.path.realpath(path, strict=True))
        except FileNotFoundError:  # a dangling link: its target is created, as open() would
            path = Path(os.path.realpath(path))
        except OSError as exc:  # a loop of links
            raise OSError(exc.errno, f"cannot write {given}: {exc.strerror}") from None
    if path.exists() and not path.is_file() and not path.is_dir():
        # build it in memory first: zip writers seek and tell, which a device such as /dev/null does not keep
        buffer = io.BytesIO() if "b" in mode else io.StringIO()
        write(buffer)
        with open(path, mode) as f:
            f.write(buffer.getvalue())
        return given
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((q for q in (path.parent, *path.parent.parents) if q.exists() and not q.is_dir()), path.parent)
        raise NotADirectoryError(f"cannot write {path}: {blocker} is a file, not a directory") from None
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"cannot write {path}: it is an existing directory")
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
    return given


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same state gives the same bytes
_MAX_ZIP_NAME = 0xFFFF  # the zip format stores a member name's length in 16 bits


def _member_info(key: Any) -> zipfile.ZipInfo:
    """The zip member ``<key>.npy`` for ``key``, or a clear error if ``key`` cannot be one."""
    if not isinstance(key, str):
        raise TypeError(f"save: keys must be strings, got {key!r} ({type(key).__name__})")
    name = key + ".npy"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"save: key {key!r} cannot be a zip member name (not encodable as UTF-8)") from None
    if len(encoded) > _MAX_ZIP_NAME:
        raise ValueError(f"save: key {key[:40]!r}... cannot be a zip member name "
                         f"({len(encoded)} bytes, the limit is {_MAX_ZIP_NAME})")
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    if info.filename != name:  # zipfile cuts names at NUL and rewrites os.sep: the key would not round-trip
        raise ValueError(f"save: key {key!r} cannot be a zip member name (it would be stored as {info.filename!r})")
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _write_npz(f, arrays: Mapping[str, tuple[zipfile.ZipInfo, np.ndarray]]) -> None:
    # What np.savez does, minus its keyword-argument interface (which swallows keys such as
    # 'file' or 'allow_pickle'): one '<key>.npy' member per array, written with numpy.lib.format.
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for info, arr in arrays.values():
            with zf.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _check_path(op: str, path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{op}: path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def save(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``{name: array}`` to ``path`` as an uncompressed ``.npz`` (one array per key), atomically.

    Any string key works (``'features.0.weight'``, ``'file'``, ``'allow_pickle'``, non-ASCII);
    the result is a plain ``.npz`` that ``np.load(path, allow_pickle=False)`` reads.
    """
    if not isinstance(state, Mapping):
        hint = " (pass model.state_dict())" if hasattr(state, "state_dict") else ""
        raise TypeError(f"save: expected a dict of name -> array{hint}, got {type(state).__name__}")
    path = _check_path("save", path)
    arrays: OrderedDict[str, tuple[zipfile.ZipInfo, np.ndarray]] = OrderedDict()
    for k, v in state.items():
        info = _member_info(k)
        try:
            arr = np.asarray(as_numpy(v.data if isinstance(v, Tensor) else v))
        except ValueError as exc:  # a ragged nested list
            raise ValueError(f"save: value for {k!r} is not an array: {exc}") from None
        if arr.dtype.hasobject:
            raise TypeError(f"save: value for {k!r} is not a numeric array (object arrays would need pickle)")
        arrays[k] = (info, arr)
    for k in arrays:
        if k.endswith(".npy") and k[: -len(".npy")] in arrays:
            # np.load's z['x.npy'] would return the member of key 'x' (its lookup accepts member names too)
            raise ValueError(f"save: keys {k[:-4]!r} and {k!r} together are ambiguous to np.load; rename one")
    return atomic_write(path, lambda f: _write_npz(f, arrays))


def load(path: str | os.PathLike, *, weights_only: bool | None = None,
         map_location: Any = None) -> OrderedDict[str, np.ndarray]:
    """Read a ``.npz`` written by :func:`save` into ``{name: ndarray}``; never executes code.

    A missing path raises ``FileNotFoundError``, a folder ``IsADirectoryError``; a file that is
    not a readable ``.npz`` of plain arrays (not a zip, truncated, pickled objects) raises
    :class:`CheckpointError`. All messages name the path. PyTorch's ``weights_only=True`` and
    ``map_location='cpu'`` are accepted (that is what this load always does); anything else is refused.
    """
    if weights_only is not None and weights_only is not True:
        raise ValueError(f"load: weights_only={weights_only!r}: checkpoints are plain arrays and are never "
                         "unpickled, so only weights_only=True (or leaving it out) makes sense")
    if map_location is not None and str(map_location) != "cpu":
        raise ValueError(f"load: map_location={map_location!r}: arrays are loaded into NumPy (the CPU); "
                         "leave it out or pass 'cpu'")
    path = _check_path("load", path)
    if path.is_dir():
        raise IsADirectoryError(f"load: {path} is a directory, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"load: no such checkpoint file: {path}")
    key = None
    try:
        with open(path, "rb") as f:
            head = f.read(max(len(np.lib.format.MAGIC_PREFIX), 4))
            if head.startswith(np.lib.format.MAGIC_PREFIX):
                raise CheckpointError(f"load: {path} is a single .npy array, not a .npz state dict")
            if not head.startswith(b"PK"):
                what = "the file is empty" if not head else f"it starts with {head!r}"
                raise CheckpointError(f"load: {path} is not a .npz checkpoint (not a zip file; {what})")
            f.seek(0)
            out: OrderedDict[str, np.ndarray] = OrderedDict()
            with zipfile.ZipFile(f) as zf:
                # Read members by their exact names: np.load's lookup confuses keys 'x' and 'x.npy'.
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        raise CheckpointError(f"load: {path} is not a tinygrad_cnn checkpoint: "
                                              f"member {info.filename!r} is not a .npy array")
                    key = info.filename[: -len(".npy")]
                    if key in out:
                        raise CheckpointError(f"load: {path} is corrupt: array {key!r} is stored twice")
                    with zf.open(info) as member:
                        out[key] = np.lib.format.read_array(member, allow_pickle=False)
            return out
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError, zlib.error) as exc:
        where = f" (array {key!r})" if key is not None else ""
        raise CheckpointError(
            f"load: {path} is not a readable tinygrad_cnn checkpoint{where} (truncated, corrupt or not an .npz; "
            f"object arrays are refused): {type(exc).__name__}: {exc}"
        ) from None
