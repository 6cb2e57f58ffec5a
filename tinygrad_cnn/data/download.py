"""Downloading dataset files: mirrors, published MD5 checksums, atomic writes, progress bar.

Every file goes to a temporary file in the destination directory and is moved into place
with ``os.replace`` only after its size and checksum are verified, so an interrupted or bad
download never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .idx import DatasetError, load_idx

__all__ = [
    "CHECKSUMS",
    "DownloadError",
    "IDX_FILES",
    "MIRROR_ENV",
    "MIRRORS",
    "download_file",
    "download_files",
    "resolve_mirrors",
]

MIRROR_ENV = "TINYGRAD_CNN_MIRROR"

# The four standard files of MNIST and Fashion-MNIST, in (train images, train labels,
# test images, test labels) order.
IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# Published MD5s of the .gz files (the ones torchvision and the Fashion-MNIST README list).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

_USER_AGENT = "tinygrad-cnn (python urllib)"
_CHUNK = 1 << 16


class DownloadError(DatasetError):
    """Every mirror failed for some file; ``attempts`` lists ``(url, reason)`` for each try."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


def resolve_mirrors(name: str, mirrors: str | Iterable[str] | None = None) -> list[str]:
    """Base URLs to try for dataset ``name``, each ending in ``/``.

    Priority: the ``mirrors`` argument, then ``$TINYGRAD_CNN_MIRROR`` (several URLs separated
    by commas or whitespace), then the built-in :data:`MIRRORS`. A ``{name}`` in a URL is
    replaced by the dataset name, so one local mirror can serve several datasets.
    """
    if mirrors is None:
        env = os.environ.get(MIRROR_ENV, "").replace(",", " ").split()
        mirrors = env or MIRRORS.get(name, ())
    elif isinstance(mirrors, str):
        mirrors = mirrors.replace(",", " ").split()
    out = []
    for m in mirrors:
        m = m.replace("{name}", name)
        out.append(m if m.endswith("/") else m + "/")
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    md5: str | None = None,
    *,
    timeout: float = 30.0,
    show_progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The bytes go to a temporary file next to ``dest``; the size is checked against
    ``Content-Length`` and the content against ``md5`` (when given; otherwise the file must
    parse as IDX). Only then is it renamed to ``dest``. On any failure the temporary file is
    removed and the error propagates (``DatasetError`` for size/checksum/format problems,
    ``OSError``/``HTTPException`` for network problems).
    """
    import urllib.request  # lazily: keeps `import tinygrad_cnn` fast

    from ..progress import progress

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with progress(
                total=total,
                desc=dest.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
                disable=not show_progress,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise DatasetError(f"{url}: download truncated: received {received} of {total} bytes")
        if md5 is not None:
            digest = h.hexdigest()
            if digest.lower() != md5.lower():
                raise DatasetError(f"{url}: MD5 checksum mismatch: expected {md5}, got {digest}")
        else:
            try:
                load_idx(tmp)
            except DatasetError as e:
                raise DatasetError(f"{url}: downloaded file is not a valid IDX file ({e})") from e
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a dataset file is ordinary data
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _reason(url: str, e: BaseException) -> str:
    """A one-line reason for a failed attempt, without repeating the URL."""
    import urllib.error

    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        why = e.reason
        return f"{type(why).__name__}: {why}" if isinstance(why, BaseException) else str(why)
    msg = str(e).removeprefix(f"{url}: ")
    return msg if isinstance(e, DatasetError) else f"{type(e).__name__}: {msg}"


def download_files(
    name: str,
    dest_dir: str | os.PathLike[str],
    filenames: Iterable[str] = IDX_FILES,
    *,
    mirrors: str | Iterable[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    show_progress: bool = True,
) -> list[Path]:
    """Download each of ``filenames`` for dataset ``name`` into ``dest_dir``.

    Each file is tried on every mirror (see :func:`resolve_mirrors`) until one succeeds.
    ``checksums`` maps file name -> MD5 and defaults to the published :data:`CHECKSUMS`;
    a file without an entry is verified by parsing it as IDX instead. Raises
    :class:`DownloadError` listing every URL tried and why it failed.
    """
    from http.client import HTTPException

    bases = resolve_mirrors(name, mirrors)
    sums = dict(CHECKSUMS.get(name, {}) if checksums is None else checksums)
    attempts: list[tuple[str, str]] = []
    done: list[Path] = []
    for fname in filenames:
        for base in bases:
            url = base + fname
            try:
                done.append(
                    download_file(
                        url,
                        Path(dest_dir) / fname,
                        sums.get(fname),
                        timeout=timeout,
                        show_progress=show_progress,
                    )
                )
                break
            except (OSError, HTTPException, DatasetError) as e:
                attempts.append((url, _reason(url, e)))
        else:
            tried = "\n".join(f"  {u}  ({r})" for u, r in attempts) or "  (no mirrors configured)"
            raise DownloadError(f"could not download {fname} for {name!r}; tried:\n{tried}", attempts)
    return done
