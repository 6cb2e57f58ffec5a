"""Tests for tinygrad_cnn.data: IDX reader, dataset lookup, downloads (local HTTP server), sample, DataLoader.

No test touches the real network: downloads go to an http.server bound to 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.data import DATASETS, DataLoader, DatasetError, load_dataset, load_idx
from tinygrad_cnn.data import datasets as ds_mod
from tinygrad_cnn.data.download import IDX_FILES, download_file
from tinygrad_cnn.data.loader import shift_images

# ----------------------------------------------------------------------------- helpers

_TYPE = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as IDX, written independently of the reader under test."""
    code = _TYPE[arr.dtype.type]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def fake_split(n: int, seed: int, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = np.full(n, label, np.uint8) if label is not None else rng.integers(0, 10, n).astype(np.uint8)
    return x, y


def fake_files(label: int | None = None, n_train: int = 12, n_test: int = 5) -> dict[str, bytes]:
    """Gzipped IDX bytes of a tiny MNIST-shaped dataset, keyed by standard file name."""
    xtr, ytr = fake_split(n_train, 1, label)
    xte, yte = fake_split(n_test, 2, label)
    arrays = dict(zip(IDX_FILES, (xtr, ytr, xte, yte), strict=True))
    return {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}


def write_dataset(directory: Path, label: int | None = None, gz: bool = True) -> dict[str, bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    files = fake_files(label)
    for name, blob in files.items():
        if gz:
            (directory / name).write_bytes(blob)
        else:
            (directory / name.removesuffix(".gz")).write_bytes(gzip.decompress(blob))
    return files


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """HOME, $TINYGRAD_CNN_DATA, $TINYGRAD_CNN_MIRROR and /usr/share/datasets pointed at empty temp dirs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TINYGRAD_CNN_DATA", raising=False)
    monkeypatch.delenv("TINYGRAD_CNN_MIRROR", raising=False)
    monkeypatch.setattr(ds_mod, "SYSTEM_DATA_DIR", tmp_path / "system")
    return tmp_path


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncate: bool = False
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        blob = self.files.get(name)
        if blob is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        # A truncated transfer: announce the full length, send half, hang up.
        self.wfile.write(blob[: len(blob) // 2] if self.truncate else blob)
        if self.truncate:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving ``handler.files`` under /mnist/."""
    handler = type("H", (_Handler,), {"files": {}, "truncate": False, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/mnist/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


# ----------------------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (0, 4)])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, dtype, shape, gz):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    blob = idx_bytes(arr)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    out = load_idx(path)
    assert out.shape == shape
    assert out.dtype == np.dtype(dtype)  # native byte order
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # writable, not a view of a bytes object


def test_idx_known_bytes(tmp_path):
    # magic 0x00000801 (uint8, 1 dim), 3 items: the MNIST label-file layout, written by hand
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    np.testing.assert_array_equal(load_idx(path), np.array([7, 2, 1], np.uint8))
    # big-endian int16 value 0x0102 = 258
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 1, 2]))
    assert load_idx(path).tolist() == [258]


def test_idx_gz_detected_by_content_not_name(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "no-extension"
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(load_idx(path), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_names_path(tmp_path, gz):
    blob = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-100]
    path = tmp_path / ("trunc.gz" if gz else "trunc")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DatasetError, match="truncated") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0]))  # 3 dims announced, 1.5 given
    with pytest.raises(DatasetError, match="truncated IDX header") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)


def test_idx_cut_gzip_stream(tmp_path):
    full = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DatasetError) as ei:
        load_idx(path)
    assert str(path) in str(ei.value)


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "magic"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(DatasetError, match="magic") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)


def test_idx_unknown_type_byte(tmp_path):
    path = tmp_path / "type"
    path.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 9]))
    with pytest.raises(DatasetError, match="type byte 0x42"):
        load_idx(path)


@pytest.mark.parametrize("content", [b"", b"ab", b"hello, this is a text file, not IDX\n", b"%PDF-1.4 ...."])
def test_idx_not_an_idx_file(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="IDX") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="trailing"):
        load_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("dims, payload, expected", [
    ((2**32 - 1,) * 4, b"abc", (2**32 - 1) ** 4),  # int64 product wraps to a negative number
    ((65536,) * 4, b"abc", 2**64),  # int64 product wraps to exactly 0
    ((65536,) * 4, b"", 2**64),  # used to end in NumPy's bare "cannot reshape array of size 0"
    ((2**31, 4), b"\x00" * 10, 2**33),  # too big for a uint32/int32 product
], ids=["wraps-negative", "wraps-zero", "wraps-zero-no-payload", "over-32-bit"])
def test_idx_huge_header_dims_report_truncation(tmp_path, gz, dims, payload, expected):
    blob = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload
    path = tmp_path / ("huge.gz" if gz else "huge")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DatasetError, match="truncated IDX file") as ei:
        load_idx(path)
    msg = str(ei.value)
    assert str(path) in msg
    assert f"expected {expected} data bytes" in msg and f"found {len(payload)}" in msg


def test_idx_huge_itemsize_product_is_exact(tmp_path):
    # float64 multiplies the element count by 8: still exact Python ints
    dims = (2**32 - 1, 2**32 - 1)
    path = tmp_path / "f64"
    path.write_bytes(struct.pack(">HBB", 0, 0x0E, 2) + struct.pack(">2I", *dims) + b"\x00" * 16)
    with pytest.raises(DatasetError, match=f"expected {(2**32 - 1) ** 2 * 8} data bytes.*found 16"):
        load_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_zero_dim_with_huge_dims_is_a_dataset_error(tmp_path, gz):
    # 0 elements, so no bytes are missing, but NumPy cannot represent the shape
    blob = struct.pack(">HBB", 0, 0x08, 4) + struct.pack(">4I", 0, 2**32 - 1, 2**32 - 1, 2**32 - 1)
    path = tmp_path / ("zero.gz" if gz else "zero")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DatasetError, match="not a valid array shape") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_trailing_bytes_counted(tmp_path, gz):
    blob = idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x01\x02\x03"
    path = tmp_path / ("long.gz" if gz else "long")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DatasetError, match="trailing bytes after the 6 data bytes") as ei:
        load_idx(path)
    assert str(path) in str(ei.value)
    if not gz:
        assert "has 3 trailing bytes" in str(ei.value)


# ----------------------------------------------------------------------------- load_dataset (local)

@pytest.mark.parametrize("gz", [True, False])
def test_load_from_root(isolated, gz):
    root = isolated / "root"
    files = write_dataset(root, gz=gz)
    (x, y), (xt, yt) = load_dataset("mnist", root=root, download=False)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
    assert xt.shape == (5, 1, 28, 28)
    assert y.shape == (12,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw = load_idx_bytes(files["train-images-idx3-ubyte.gz"])
    np.testing.assert_allclose(x[:, 0] * 255, raw, atol=1e-3)
    np.testing.assert_array_equal(y, load_idx_bytes(files["train-labels-idx1-ubyte.gz"]))


def load_idx_bytes(gz_blob: bytes) -> np.ndarray:
    raw = gzip.decompress(gz_blob)
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim :], np.uint8).reshape(shape)


def test_load_options(isolated):
    root = isolated / "root"
    write_dataset(root)
    (x, y), (xt, yt) = load_dataset("fashion_mnist", root=root, download=False, normalize=False,
                                    flatten=True, one_hot=True)
    assert x.shape == (12, 784) and x.dtype == np.uint8
    assert y.shape == (12, 10) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(1), np.ones(12))
    (_, y2), _ = load_dataset("fashion-mnist", root=root, download=False)
    np.testing.assert_array_equal(y.argmax(1), y2)


def test_lookup_order(isolated, monkeypatch):
    root, env, home = isolated / "root", isolated / "env", isolated / "home"
    write_dataset(root, label=1)
    write_dataset(env / "mnist", label=2)
    write_dataset(home / ".cache" / "tinygrad_cnn" / "mnist", label=3)
    write_dataset(isolated / "system" / "mnist", label=4)
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(env))

    def label(**kw):
        (_, y), _ = load_dataset("mnist", download=False, **kw)
        return int(y[0])

    assert label(root=root) == 1  # root beats env
    assert label() == 2  # env beats cache
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(isolated / "empty"))
    assert label() == 3  # cache beats system
    monkeypatch.delenv("TINYGRAD_CNN_DATA")
    (home / ".cache" / "tinygrad_cnn" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # incomplete
    assert label() == 4  # Debian's /usr/share/datasets/<name> last


def test_env_var_plain_directory(isolated, monkeypatch):
    env = isolated / "flat"
    write_dataset(env, label=6)  # files directly in $TINYGRAD_CNN_DATA, no <name> subdir
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(env))
    (_, y), _ = load_dataset("mnist", download=False)
    assert set(y.tolist()) == {6}


def test_kaggle_dotted_names(isolated):
    root = isolated / "dotted"
    files = write_dataset(root, gz=False)
    for name in files:
        raw = root / name.removesuffix(".gz")
        raw.rename(root / raw.name.replace("-idx", ".idx"))  # train-images.idx3-ubyte
    (x, _), _ = load_dataset("mnist", root=root, download=False)
    assert x.shape == (12, 1, 28, 28)


def test_mismatched_counts(isolated):
    root = isolated / "bad"
    write_dataset(root)
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(DatasetError, match="12 images") as ei:
        load_dataset("mnist", root=root, download=False)
    assert "train-labels-idx1-ubyte.gz" in str(ei.value)


def test_corrupt_local_file_names_it(isolated):
    root = isolated / "corrupt"
    write_dataset(root)
    bad = root / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DatasetError) as ei:
        load_dataset("mnist", root=root, download=False)
    assert str(bad) in str(ei.value)


def test_missing_without_download(isolated):
    with pytest.raises(DatasetError) as ei:
        load_dataset("mnist", root=isolated / "r", download=False)
    msg = str(ei.value)
    assert str(isolated / "r") in msg and "download=False" in msg
    assert str(isolated / "home" / ".cache" / "tinygrad_cnn" / "mnist") in msg


def test_unknown_name():
    with pytest.raises(ValueError, match="mnist-sample"):
        load_dataset("cifar-100")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TINYGRAD_CNN_DATA", raising=False)
    (x, y), (xt, yt) = load_dataset("fashion-mnist", download=False, normalize=False)
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert y[:5].tolist() == [9, 0, 0, 3, 0]  # first labels of the official train split


# ----------------------------------------------------------------------------- downloads (local server)

def test_download_success(isolated, server):
    handler, url = server
    handler.files = fake_files()
    sums = {k: md5(v) for k, v in handler.files.items()}
    root = isolated / "dl"
    (x, y), (xt, yt) = load_dataset("mnist", root=root, mirrors=[url], checksums=sums)  # with a real bar
    assert x.shape == (12, 1, 28, 28) and yt.shape == (5,)
    assert sorted(p.name for p in root.iterdir()) == sorted(IDX_FILES)  # no temp files left
    for name, blob in handler.files.items():
        assert (root / name).read_bytes() == blob
    n = len(handler.requests)
    load_dataset("mnist", root=root, mirrors=[url], checksums=sums)  # present now: no new request
    assert len(handler.requests) == n


def test_download_to_cache_via_env_mirror(isolated, server, monkeypatch):
    handler, url = server
    handler.files = fake_files()
    monkeypatch.setenv("TINYGRAD_CNN_MIRROR", url.replace("/mnist/", "/{name}"))
    sums = {k: md5(v) for k, v in handler.files.items()}
    load_dataset("mnist", checksums=sums, show_progress=False)
    cache = isolated / "home" / ".cache" / "tinygrad_cnn" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_FILES)
    assert all(r.startswith("/mnist/") for r in handler.requests)


def test_download_only_missing_files_and_mirror_fallback(isolated, server):
    handler, url = server
    files = fake_files()
    handler.files = files
    root = isolated / "partial"
    root.mkdir()
    (root / IDX_FILES[0]).write_bytes(files[IDX_FILES[0]])
    dead = closed_port_url()
    sums = {k: md5(v) for k, v in files.items()}
    load_dataset("mnist", root=root, mirrors=[dead, url], checksums=sums, show_progress=False)
    assert IDX_FILES[0] not in "".join(handler.requests)
    assert len(handler.requests) == 3


def test_published_checksums_are_checked_by_default(isolated, server):
    handler, url = server
    handler.files = fake_files()  # not the real MNIST files: published MD5s cannot match
    root = isolated / "dl"
    with pytest.raises(DatasetError, match="MD5 checksum mismatch"):
        load_dataset("mnist", root=root, mirrors=url, show_progress=False)
    assert list(root.iterdir()) == []


def test_checksum_mismatch_leaves_nothing(isolated, server):
    handler, url = server
    handler.files = fake_files()
    sums = {k: md5(v) for k, v in handler.files.items()}
    sums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    root = isolated / "dl"
    with pytest.raises(DatasetError) as ei:
        load_dataset("mnist", root=root, mirrors=[url], checksums=sums, show_progress=False)
    msg = str(ei.value)
    assert "MD5 checksum mismatch" in msg and url + "t10k-images-idx3-ubyte.gz" in msg
    assert not (root / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp file


def test_download_file_checksum_mismatch_direct(tmp_path, server):
    handler, url = server
    handler.files = {"f.gz": b"payload"}
    dest = tmp_path / "out" / "f.gz"
    with pytest.raises(DatasetError, match="expected 00000000000000000000000000000000"):
        download_file(url + "f.gz", dest, md5="0" * 32, show_progress=False)
    assert list(dest.parent.iterdir()) == []
    download_file(url + "f.gz", dest, md5=md5(b"payload"), show_progress=False)
    assert dest.read_bytes() == b"payload"


def test_truncated_download_leaves_nothing(isolated, server):
    handler, url = server
    handler.files = fake_files()
    handler.truncate = True
    sums = {k: md5(v) for k, v in handler.files.items()}
    root = isolated / "dl"
    with pytest.raises(DatasetError, match="truncated") as ei:
        load_dataset("mnist", root=root, mirrors=[url], checksums=sums, show_progress=False)
    assert "received" in str(ei.value)
    assert list(root.iterdir()) == []


def test_download_without_checksum_validates_idx(isolated, server):
    handler, url = server
    handler.files = dict(fake_files(), **{"train-labels-idx1-ubyte.gz": gzip.compress(b"<html>oops</html>")})
    root = isolated / "dl"
    with pytest.raises(DatasetError, match="not a valid IDX file"):
        load_dataset("mnist", root=root, mirrors=[url], checksums={}, show_progress=False)
    assert not (root / "train-labels-idx1-ubyte.gz").exists()
    assert not [p for p in root.iterdir() if p.name.endswith(".part")]


def test_offline_lists_everything(isolated, monkeypatch):
    env = isolated / "envdir"
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(env))
    dead = [closed_port_url(), closed_port_url().replace("/mnist/", "/other/")]
    root = isolated / "r"
    with pytest.raises(DatasetError) as ei:
        load_dataset("fashion-mnist", root=root, mirrors=dead, show_progress=False)
    msg = str(ei.value)
    cache = isolated / "home" / ".cache" / "tinygrad_cnn" / "fashion-mnist"
    for place in (root, env / "fashion-mnist", env, cache, isolated / "system" / "fashion-mnist"):
        assert str(place) in msg
    for base in dead:
        assert base + "train-images-idx3-ubyte.gz" in msg
    assert "refused" in msg.lower()
    assert "TINYGRAD_CNN_DATA" in msg and "apt install dataset-fashion-mnist" in msg
    assert not root.exists() or list(root.iterdir()) == []


# ----------------------------------------------------------------------------- mnist-sample

def test_mnist_sample():
    (x, y), (xt, yt) = load_dataset("mnist-sample")
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.dtype == xt.dtype == np.float32
    assert y.dtype == yt.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    counts, counts_t = np.bincount(y, minlength=10), np.bincount(yt, minlength=10)
    assert len(counts) == 10 and (counts > 0).all() and (counts_t > 0).all()
    assert ((380 <= counts) & (counts <= 420)).all()
    assert counts.sum() == 4000 and counts_t.sum() == 1000
    # real digits: ink covers roughly 10-25% of the pixels, mostly in the centre
    ink = (x > 0.5).mean()
    assert 0.05 < ink < 0.3
    assert x[:, :, 8:20, 8:20].mean() > 3 * x[:, :, :4, :].mean()
    # no sample shared between the splits
    tr = {r.tobytes() for r in (x[:, 0] * 255).astype(np.uint8)}
    assert not any(r.tobytes() in tr for r in (xt[:, 0] * 255).astype(np.uint8))


def test_mnist_sample_raw_file():
    with np.load(ds_mod.SAMPLE_PATH) as z:
        assert {k: (z[k].shape, z[k].dtype) for k in z.files} == {
            "x_train": ((4000, 28, 28), np.uint8), "y_train": ((4000,), np.uint8),
            "x_test": ((1000, 28, 28), np.uint8), "y_test": ((1000,), np.uint8),
        }
    assert ds_mod.SAMPLE_PATH.stat().st_size < 1_500_000


def test_mnist_sample_upright():
    """A '1' is a vertical stroke: far more ink variance across columns than across rows."""
    (x, y), _ = load_dataset("mnist-sample", normalize=False)
    ones = x[y == 1, 0].astype(np.float64).mean(0)  # mean image of the ones, (28, 28)
    assert ones.mean(0).std() > 2 * ones.mean(1).std()


def test_datasets_table():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "mnist-sample"}
    assert all(isinstance(v, str) and v for v in DATASETS.values())


# ----------------------------------------------------------------------------- DataLoader

def _epoch(loader):
    return [(xb.copy(), yb.copy()) for xb, yb in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, False), (1, 5, False)])
def test_loader_coverage(n, bs, drop, shuffle):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = np.arange(n)
    loader = DataLoader(x, y, batch_size=bs, shuffle=shuffle, seed=0, drop_last=drop)
    batches = _epoch(loader)
    assert len(batches) == len(loader) == (n // bs if drop else -(-n // bs))
    seen = np.concatenate([yb for _, yb in batches]) if batches else np.array([], int)
    assert len(seen) == len(set(seen.tolist()))  # nobody twice
    assert len(seen) == (n // bs * bs if drop else n)
    if not drop:
        assert sorted(seen.tolist()) == list(range(n))  # everybody once
    for xb, yb in batches:
        assert xb.dtype == np.float32 and yb.dtype == y.dtype
        np.testing.assert_array_equal(xb[:, 0], yb)  # pairs stay together
        assert len(xb) == bs or (not drop and xb is batches[-1][0])


def test_loader_drop_last_tail():
    loader = DataLoader(np.zeros((10, 1)), np.zeros(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(xb) for xb, _ in loader] == [4, 4]
    loader = DataLoader(np.zeros((10, 1)), np.zeros(10), batch_size=4)
    assert len(loader) == 3 and [len(xb) for xb, _ in loader] == [4, 4, 2]


def test_loader_shuffle_epochs_and_seed():
    x, y = np.arange(50, dtype=np.float32), np.arange(50)
    a = DataLoader(x, y, batch_size=7, shuffle=True, seed=123)
    e1 = np.concatenate([yb for _, yb in a])
    e2 = np.concatenate([yb for _, yb in a])
    assert not np.array_equal(e1, e2)  # fresh permutation per epoch
    assert not np.array_equal(e1, y)
    b = DataLoader(x, y, batch_size=7, shuffle=True, seed=123)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in b]), e1)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in b]), e2)
    c = DataLoader(x, y, batch_size=7, shuffle=True, seed=124)
    assert not np.array_equal(np.concatenate([yb for _, yb in c]), e1)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in DataLoader(x, y, batch_size=7)]), y)


def test_loader_does_not_touch_global_rng():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    list(DataLoader(np.zeros(20), np.zeros(20), batch_size=3, shuffle=True))
    assert np.random.rand() == expected


def test_loader_length_mismatch():
    with pytest.raises(ValueError, match="10.*9"):
        DataLoader(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros(3), np.zeros(3), batch_size=0)


def test_loader_state_roundtrip_between_epochs():
    x, y = np.arange(40), np.arange(40)
    a = DataLoader(x, y, batch_size=6, shuffle=True, seed=7)
    list(a)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-serializable
    expected = [_epoch(a) for _ in range(2)]
    b = DataLoader(x, y, batch_size=6, shuffle=True, seed=999)
    b.load_state_dict(state)
    assert b.epoch == 1
    got = [_epoch(b) for _ in range(2)]
    for ea, eb in zip(expected, got, strict=True):
        for (_, ya), (_, yb) in zip(ea, eb, strict=True):
            np.testing.assert_array_equal(ya, yb)


def test_loader_state_roundtrip_mid_epoch():
    x, y = np.arange(40), np.arange(40)
    a = DataLoader(x, y, batch_size=6, shuffle=True, seed=7)
    list(a)
    it = iter(a)
    first = [next(it)[1] for _ in range(3)]
    state = a.state_dict()
    rest = [yb for _, yb in it]
    following = np.concatenate([yb for _, yb in a])
    b = DataLoader(x, y, batch_size=6, shuffle=True)
    b.load_state_dict(state)
    assert b.state_dict() == state  # pending resume point survives a second save
    resumed = [yb for _, yb in b]
    assert len(resumed) == len(rest) == len(a) - 3
    for r1, r2 in zip(rest, resumed, strict=True):
        np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(np.concatenate(first + resumed), np.concatenate(first + rest))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in b]), following)
    assert b.epoch == a.epoch


def test_loader_state_after_last_batch_is_next_epoch():
    x = np.arange(12)
    a = DataLoader(x, x, batch_size=4, shuffle=True, seed=1)
    for i, _ in enumerate(a):
        if i == len(a) - 1:
            state = a.state_dict()  # saved inside the loop, at the last batch
    nxt = np.concatenate([yb for _, yb in a])
    b = DataLoader(x, x, batch_size=4, shuffle=True)
    b.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in b]), nxt)


# ----------------------------------------------------------------------------- random shifts (augmentation)

def _ramp(n: int = 2, c: int | None = None, h: int = 4, w: int = 5, dtype=np.float32) -> np.ndarray:
    shape = (n, h, w) if c is None else (n, c, h, w)
    return (np.arange(np.prod(shape)) + 1).reshape(shape).astype(dtype)  # no zeros: fill is visible


def _shift_ref(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """One image ``(..., H, W)`` moved by (dy, dx), zero fill: a plain loop, independent of shift_images."""
    h, w = img.shape[-2:]
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if 0 <= si < h and 0 <= sj < w:
                out[..., i, j] = img[..., si, sj]
    return out


def test_shift_images_exact_values():
    x = _ramp(1, h=3, w=3)[0]  # [[1 2 3] [4 5 6] [7 8 9]]
    xs = np.stack([x] * 4)
    got = shift_images(xs, np.array([[1, 0], [0, 1], [-1, 0], [0, -2]]))
    np.testing.assert_array_equal(got[0], [[0, 0, 0], [1, 2, 3], [4, 5, 6]])  # dy > 0: content moves down
    np.testing.assert_array_equal(got[1], [[0, 1, 2], [0, 4, 5], [0, 7, 8]])  # dx > 0: content moves right
    np.testing.assert_array_equal(got[2], [[4, 5, 6], [7, 8, 9], [0, 0, 0]])  # dy < 0: up
    np.testing.assert_array_equal(got[3], [[3, 0, 0], [6, 0, 0], [9, 0, 0]])  # dx < 0: left
    both = shift_images(x[None], np.array([[-1, 1]]))
    np.testing.assert_array_equal(both[0], [[0, 4, 5], [0, 7, 8], [0, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("c", [None, 1, 3])
def test_shift_images_per_image_shapes_and_dtype(dtype, c):
    x = _ramp(5, c=c, h=4, w=5, dtype=dtype)
    shifts = np.array([[0, 0], [1, -2], [-3, 1], [2, 2], [-1, -1]])
    got = shift_images(x, shifts)
    assert got.shape == x.shape and got.dtype == x.dtype
    for i, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(got[i], _shift_ref(x[i], int(dy), int(dx)), err_msg=f"{i}: {dy}, {dx}")
    np.testing.assert_array_equal(x, _ramp(5, c=c, h=4, w=5, dtype=dtype))  # input untouched


def test_shift_images_zero_shift_and_far_shift():
    x = _ramp(3, c=2)
    np.testing.assert_array_equal(shift_images(x, np.zeros((3, 2), int)), x)
    far = shift_images(x, np.array([[4, 0], [0, -5], [0, 0]]))  # whole height / width: all fill
    assert not far[:2].any()
    np.testing.assert_array_equal(far[2], x[2])


def _matching_shift(orig: np.ndarray, shifted: np.ndarray, m: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)
            if np.array_equal(shift_images(orig[None], np.array([[dy, dx]]))[0], shifted)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_random_shift_batches(shuffle):
    n, m = 23, 2
    x = _ramp(n, c=1, h=7, w=6)  # every image distinct, no zeros: each shift gives a different image
    y = np.arange(n)
    loader = DataLoader(x, y, batch_size=5, shuffle=shuffle, seed=3, random_shift=m)
    used = set()
    for _ in range(2):
        batches = _epoch(loader)
        labels = np.concatenate([yb for _, yb in batches])
        assert sorted(labels.tolist()) == list(range(n))  # every sample exactly once per epoch
        moved = 0
        for xb, yb in batches:
            assert xb.shape == (len(yb), 1, 7, 6) and xb.dtype == np.float32
            for img, label in zip(xb, yb, strict=True):
                found = _matching_shift(x[label], img, m)
                assert len(found) == 1, (label, found)  # some shift in [-m, m]^2 reproduces it
                used.add(found[0])
                moved += found[0] != (0, 0)
        assert moved > n // 2  # 1/25 of the samples are expected unshifted
    assert len(used) > 10 and {abs(v) for s in used for v in s} == {0, 1, 2}
    np.testing.assert_array_equal(x, _ramp(n, c=1, h=7, w=6))  # the data set itself is never modified


def test_loader_random_shift_seeded():
    x, y = _ramp(30, h=6, w=6), np.arange(30)
    a = [_epoch(DataLoader(x, y, batch_size=8, shuffle=True, seed=11, random_shift=1)) for _ in range(2)]
    b = DataLoader(x, y, batch_size=8, shuffle=True, seed=11, random_shift=1)
    c = DataLoader(x, y, batch_size=8, shuffle=True, seed=12, random_shift=1)
    eb, ec = _epoch(b), _epoch(c)
    for (xa, ya), (xa2, _), (xb, yb) in zip(a[0], a[1], eb, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xa2)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(eb, ec, strict=True))
    e2 = _epoch(b)  # the next epoch draws fresh shifts (and a fresh permutation)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(eb, e2, strict=True))
    # without shuffling, the order stays but the shifts still change per epoch
    d = DataLoader(x, y, batch_size=8, random_shift=1, seed=0)
    d1, d2 = _epoch(d), _epoch(d)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in d1]), y)
    assert not np.array_equal(np.concatenate([xb for xb, _ in d1]), np.concatenate([xb for xb, _ in d2]))
    assert not np.array_equal(np.concatenate([xb for xb, _ in d1]), x)


def test_loader_random_shift_resume_mid_epoch():
    x, y = _ramp(40, c=1, h=5, w=5), np.arange(40)
    a = DataLoader(x, y, batch_size=6, shuffle=True, seed=7, random_shift=2)
    list(a)
    it = iter(a)
    for _ in range(3):
        next(it)
    state = json.loads(json.dumps(a.state_dict()))
    rest = [(xb.copy(), yb.copy()) for xb, yb in it]
    following = _epoch(a)
    b = DataLoader(x, y, batch_size=6, shuffle=True, seed=999, random_shift=2)
    b.load_state_dict(state)
    resumed = _epoch(b)
    assert len(resumed) == len(rest) == len(a) - 3
    for (xa, ya), (xb, yb) in zip(rest + following, resumed + _epoch(b), strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    assert b.epoch == a.epoch


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_loader_random_shift_bad_values(bad):
    with pytest.raises(ValueError, match="random_shift"):
        DataLoader(np.zeros((4, 1, 5, 5)), np.zeros(4), random_shift=bad)


def test_loader_random_shift_needs_images():
    with pytest.raises(ValueError, match="random_shift"):
        DataLoader(np.zeros((4, 5)), np.zeros(4), random_shift=1)
    with pytest.raises(ValueError, match="random_shift"):
        DataLoader(np.zeros(4), np.zeros(4), random_shift=1)
    DataLoader(np.zeros((4, 5)), np.zeros(4), random_shift=0)  # 0 = off: any shape is fine
    loader = DataLoader(np.zeros((4, 5, 5)), np.zeros(4), random_shift=np.int64(1))  # (N, H, W) is an image batch
    assert loader.random_shift == 1 and "random_shift=1" in repr(loader)
