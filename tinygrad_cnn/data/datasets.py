"""``load_dataset``: MNIST, Fashion-MNIST and a packaged 5,000-digit MNIST sample.

Returns ``((x_train, y_train), (x_test, y_test))`` like the book's ``load_mnist``.
Files are looked up locally first (see :func:`search_dirs`) and downloaded only if missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .download import IDX_FILES, MIRROR_ENV, DownloadError, download_files, resolve_mirrors
from .idx import DatasetError, load_idx

__all__ = [
    "DATA_ENV",
    "DATASETS",
    "SAMPLE_PATH",
    "SYSTEM_DATA_DIR",
    "cache_dir",
    "find_dataset_dir",
    "load_dataset",
    "search_dirs",
]

DATASETS: dict[str, str] = {
    "mnist": "MNIST handwritten digits, 60,000 train / 10,000 test, 28x28 grayscale, 10 classes "
    "(downloaded on first use)",
    "fashion-mnist": "Zalando Fashion-MNIST clothing images, 60,000 train / 10,000 test, 28x28 grayscale, "
    "10 classes (Debian: apt install dataset-fashion-mnist)",
    "mnist-sample": "5,000 real MNIST digits shipped with the package, stratified 4,000 train / "
    "1,000 test; no network needed",
}

DATA_ENV = "TINYGRAD_CNN_DATA"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")  # where Debian's dataset-* packages install
SAMPLE_PATH = Path(__file__).with_name("mnist_sample.npz")

_NUM_CLASSES = 10


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, one of {', '.join(DATASETS)}; got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def cache_dir(name: str) -> Path:
    """``~/.cache/tinygrad_cnn/<name>``: where downloads go when no ``root`` is given."""
    return Path.home() / ".cache" / "tinygrad_cnn" / name


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Directories searched for dataset ``name``, in order.

    ``root`` and ``root/<name>``; ``$TINYGRAD_CNN_DATA/<name>`` and ``$TINYGRAD_CNN_DATA``;
    ``~/.cache/tinygrad_cnn/<name>``; ``/usr/share/datasets/<name>`` (Debian packages).
    """
    dirs: list[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [root, root / name]
    env = os.environ.get(DATA_ENV)
    if env:
        base = Path(env).expanduser()
        dirs += [base / name, base]
    dirs += [cache_dir(name), SYSTEM_DATA_DIR / name]
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def _candidates(fname: str) -> list[str]:
    """Accepted spellings of one standard file: ``.gz``, raw, and the ``train-images.idx3-ubyte`` form."""
    raw = fname.removesuffix(".gz")
    dotted = raw.replace("-idx", ".idx")
    return [raw + ".gz", raw, dotted, dotted + ".gz"]


def _find_file(directory: Path, fname: str) -> Path | None:
    for cand in _candidates(fname):
        p = directory / cand
        if p.is_file():
            return p
    return None


def _find_files(directory: Path) -> list[Path] | None:
    """The four standard files in ``directory`` (raw or .gz), or None if any is missing."""
    found = [_find_file(directory, f) for f in IDX_FILES]
    return None if any(p is None for p in found) else found  # type: ignore[return-value]


def find_dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first directory of :func:`search_dirs` holding all four files, or None."""
    name = _canonical(name)
    for d in search_dirs(name, root):
        if _find_files(d) is not None:
            return d
    return None


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and cross-check one split: uint8 images ``(N, 28, 28)``, uint8 labels ``(N,)``."""
    x, y = load_idx(images_path), load_idx(labels_path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DatasetError(f"{labels_path}: expected uint8 labels (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DatasetError(f"{images_path} has {len(x)} images but {labels_path} has {len(y)} labels")
    if y.size and y.max() >= _NUM_CLASSES:
        raise DatasetError(f"{labels_path}: label {int(y.max())} outside [0, {_NUM_CLASSES})")
    return x, y


def _load_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(SAMPLE_PATH, allow_pickle=False) as z:
            return z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(
            f"{SAMPLE_PATH}: packaged MNIST sample is missing or corrupt ({e}); "
            f"regenerate it with tools/make_mnist_sample.py"
        ) from e


def _not_found_message(name: str, dirs: list[Path], attempts: list[tuple[str, str]], download: bool) -> str:
    files = ", ".join(IDX_FILES)
    lines = [f"dataset {name!r} not found: need {files} (raw or .gz).", "Looked in:"]
    lines += [f"  {d}" for d in dirs]
    if download:
        lines.append("Download failed; tried:")
        lines += [f"  {url}  ({why})" for url, why in attempts] or ["  (no mirrors configured)"]
    else:
        lines.append("Not downloading (download=False).")
    lines += [
        "To provide the files offline, copy the four files into one of:",
        "  - a directory passed as root=...",
        f"  - ${DATA_ENV}/{name} or ${DATA_ENV} (environment variable)",
        f"  - {cache_dir(name)} (the cache directory)",
    ]
    fm_dir = SYSTEM_DATA_DIR / "fashion-mnist"
    if name == "fashion-mnist":
        lines.append(f"  - or: apt install dataset-fashion-mnist (Debian; installs them in {fm_dir})")
    else:
        lines.append(f"(Fashion-MNIST is packaged by Debian: apt install dataset-fashion-mnist -> {fm_dir})")
    lines.append(f"or point ${MIRROR_ENV} at a mirror that serves them; "
                 f"for a quick offline start use load_dataset('mnist-sample').")
    return "\n".join(lines)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    normalize: bool = True,
    flatten: bool = False,
    one_hot: bool = False,
    *,
    mirrors: str | Iterable[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    show_progress: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load ``mnist``, ``fashion-mnist`` or ``mnist-sample`` as ``((x_train, y_train), (x_test, y_test))``.

    x: ``(N, 1, 28, 28)`` (``(N, 784)`` with ``flatten``), float32 in [0, 1] when ``normalize``,
    else uint8. y: int64 labels ``(N,)``, or float32 one-hot ``(N, 10)`` with ``one_hot``.

    Files are looked up in :func:`search_dirs` order; if absent and ``download`` is true they
    are downloaded into ``root`` (or ``~/.cache/tinygrad_cnn/<name>``) from ``mirrors`` (default:
    ``$TINYGRAD_CNN_MIRROR`` or the canonical mirrors), checked against ``checksums`` (default:
    the published MD5s). ``mnist-sample`` is read from the package and ignores those arguments.
    Raises :class:`DatasetError` listing every place looked and URL tried when all fails.
    """
    name = _canonical(name)
    if name == "mnist-sample":
        x_tr, y_tr, x_te, y_te = _load_sample()
    else:
        dirs = search_dirs(name, root)
        directory = next((d for d in dirs if _find_files(d) is not None), None)
        attempts: list[tuple[str, str]] = []
        if directory is None and download:
            target = Path(root).expanduser() if root is not None else cache_dir(name)
            missing = [f for f in IDX_FILES if _find_file(target, f) is None]
            try:
                download_files(
                    name, target, missing, mirrors=resolve_mirrors(name, mirrors),
                    checksums=checksums, show_progress=show_progress,
                )
                directory = target
            except DownloadError as e:
                attempts = e.attempts
            except OSError as e:  # e.g. the target directory cannot be created
                attempts = [(str(target), f"{type(e).__name__}: {e}")]
        if directory is None:
            raise DatasetError(_not_found_message(name, dirs, attempts, download))
        paths = _find_files(directory)
        assert paths is not None
        x_tr, y_tr = _read_split(paths[0], paths[1])
        x_te, y_te = _read_split(paths[2], paths[3])
    return (
        (_prep_x(x_tr, normalize, flatten), _prep_y(y_tr, one_hot)),
        (_prep_x(x_te, normalize, flatten), _prep_y(y_te, one_hot)),
    )


def _prep_x(x: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    """uint8 ``(N, H, W)`` -> ``(N, 1, H, W)`` or ``(N, H*W)``, optionally float32 / 255."""
    x = x.reshape(len(x), -1) if flatten else x[:, None, :, :]
    return x.astype(np.float32) / np.float32(255.0) if normalize else np.ascontiguousarray(x)


def _prep_y(y: np.ndarray, one_hot: bool) -> np.ndarray:
    """uint8 labels -> int64 ``(N,)`` or float32 one-hot ``(N, 10)``."""
    if one_hot:
        return np.eye(_NUM_CLASSES, dtype=np.float32)[y]
    return y.astype(np.int64)
