"""Reader for the IDX format used by MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout (all big-endian): two zero bytes, a type byte, the number of dimensions ``d``, then
``d`` uint32 sizes, then the data in C order. The reader checks every part of that and raises
:class:`DatasetError` naming the file instead of returning garbage.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "IDX_DTYPES", "load_idx"]


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, or could not be obtained; the message says which."""


# type byte -> big-endian dtype of the stored values
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path):
    """Open ``path`` for binary reading, decompressing transparently when it is gzip data.

    Detection uses the gzip magic bytes, not the file name, so a mis-named file still works.
    """
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


_CHUNK = 1 << 24  # read in 16 MiB pieces: never ask read() for a size taken from an untrusted header


def _read_exact(f, n: int) -> bytes:
    """Read up to ``n`` bytes (fewer only at end of stream); memory grows only with what is there."""
    chunks, left = [], n
    while left > 0:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a native-endian ndarray of the header's shape.

    Example: ``train-images-idx3-ubyte.gz`` -> uint8 array ``(60000, 28, 28)``;
    ``train-labels-idx1-ubyte`` -> uint8 array ``(60000,)``.

    Raises :class:`DatasetError` (a ``ValueError``) naming ``path`` when the magic number is
    wrong, the type byte is unknown, the file is truncated or has trailing bytes, or the gzip
    stream is corrupt. A missing file raises ``FileNotFoundError`` as usual.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            header = _read_exact(f, 4)
            if len(header) < 4:
                raise DatasetError(
                    f"{path}: not an IDX file (only {len(header)} bytes, the header needs 4)"
                )
            zero, type_code, ndim = struct.unpack(">HBB", header)
            if zero != 0:
                raise DatasetError(
                    f"{path}: not an IDX file (bad magic number 0x{header.hex()}, "
                    f"expected 0x0000 followed by a type byte and the number of dimensions)"
                )
            if type_code not in IDX_DTYPES:
                known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
                raise DatasetError(f"{path}: unknown IDX type byte 0x{type_code:02X} (known: {known})")
            dims_raw = _read_exact(f, 4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DatasetError(
                    f"{path}: truncated IDX header ({ndim} dimensions announced, "
                    f"only {len(dims_raw)} of {4 * ndim} bytes of sizes present)"
                )
            shape = struct.unpack(f">{ndim}I", dims_raw)
            dtype = IDX_DTYPES[type_code]
            # Python ints: a corrupt header with huge sizes must not overflow (np.prod wraps around).
            expected = math.prod(shape) * dtype.itemsize
            st = None if isinstance(f, gzip.GzipFile) else os.fstat(f.fileno())
            streamed = st is None or not stat.S_ISREG(st.st_mode)  # a stream whose length is not known up front
            if streamed:
                # Read at most one byte past the expected size: enough to detect trailing data,
                # and bounded memory even if the stream is much larger than announced.
                data = _read_exact(f, expected + 1)
                found = len(data)
            else:
                found = st.st_size - f.tell()  # a regular file: check the size before reading anything
                data = _read_exact(f, expected) if found == expected else b""
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
        raise DatasetError(f"{path}: corrupt or truncated gzip/IDX file ({type(e).__name__}: {e})") from e
    if found < expected:
        raise DatasetError(
            f"{path}: truncated IDX file: header says shape {shape} of {dtype.name}, "
            f"expected {expected} data bytes after the header, found {found}"
        )
    if found > expected:
        extra = "" if streamed else f"{found - expected} "  # a stream is only read one byte past the end
        raise DatasetError(
            f"{path}: IDX file has {extra}trailing bytes after the {expected} data bytes "
            f"announced for shape {shape} of {dtype.name}"
        )
    if len(data) != expected:  # the file changed while it was being read
        raise DatasetError(f"{path}: truncated IDX file: expected {expected} data bytes, found {len(data)}")
    try:
        arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as e:  # e.g. a zero dimension next to sizes whose product NumPy cannot represent
        raise DatasetError(f"{path}: IDX header shape {shape} of {dtype.name} is not a valid array shape ({e})") from e
    return arr.astype(dtype.newbyteorder("="), copy=True)
