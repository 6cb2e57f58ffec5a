"""Tests for tc.save / tc.load / atomic_write: plain .npz, atomic, never unpickling."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.serialization import CheckpointError, atomic_write

MARKER_ENV = "TINYGRAD_CNN_TEST_PICKLE_MARKER"


class Boom:
    """Unpickling this creates a marker file: proof that code ran."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ[MARKER_ENV]),))


def test_round_trip_keeps_keys_order_dtypes_and_values(tmp_path):
    state = {
        "conv1.weight": np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32),
        "a.b.c": np.arange(5, dtype=np.int64),
        "meta.epoch": np.asarray(7),
        "meta.text": np.frombuffer(b'{"x": 1}', dtype=np.uint8),
        "f64": np.linspace(0, 1, 3),
        "t": Tensor(np.ones((2, 2), np.float32)),
    }
    path = tc.save(state, tmp_path / "ck.npz")
    assert path == tmp_path / "ck.npz"
    out = tc.load(path)
    assert list(out) == list(state)
    for k, v in state.items():
        want = v.data if isinstance(v, Tensor) else v
        assert out[k].dtype == want.dtype and out[k].shape == want.shape, k
        np.testing.assert_array_equal(out[k], want)
    assert int(out["meta.epoch"]) == 7 and out["meta.text"].tobytes() == b'{"x": 1}'
    # it is a plain zip of .npy files, one per key
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(f"{k}.npy" for k in state)


def test_load_returns_independent_arrays(tmp_path):
    path = tc.save({"w": np.zeros(3, np.float32)}, tmp_path / "w.npz")
    a = tc.load(path)["w"]
    a[...] = 1
    assert (tc.load(path)["w"] == 0).all()


def test_save_rejects_object_arrays_and_non_string_keys(tmp_path):
    target = tmp_path / "x.npz"
    tc.save({"ok": np.ones(2)}, target)
    before = target.read_bytes()
    with pytest.raises(TypeError, match="'bad'.*pickle"):
        tc.save({"ok": np.ones(2), "bad": np.array([{"a": 1}], dtype=object)}, target)
    with pytest.raises(TypeError, match="keys must be strings"):
        tc.save({1: np.ones(2)}, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npz"]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, lambda f: f.write(b"old"))
    assert target.read_bytes() == b"old"

    def half(f):
        f.write(b"new but half")
        raise RuntimeError("disk died")

    with pytest.raises(RuntimeError, match="disk died"):
        atomic_write(target, half)
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["file.bin"]  # no temp file left behind
    atomic_write(target, lambda f: f.write("text"), mode="w")
    assert target.read_text() == "text"


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    target = tmp_path / "real" / "model.npz"
    atomic_write(target, lambda f: f.write(b"old"))
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    assert tc.save({"w": np.ones(2)}, link) == link
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(tc.load(target)["w"], np.ones(2))
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "new.npz")  # a link to a file not written yet: created, as open() would
    atomic_write(dangling, lambda f: f.write(b"x"))
    assert dangling.is_symlink() and (tmp_path / "new.npz").read_bytes() == b"x"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_atomic_write_to_a_fifo_writes_into_it(tmp_path):
    """A device or FIFO (``-o /dev/null``) is written to, not replaced by a regular file."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, lambda f: f.write(b"through the pipe"))
    reader.join(timeout=10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]
    # a checkpoint too: the zip writer seeks, which a pipe (or /dev/null) cannot, so it is built in memory first
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    tc.save({"w": np.arange(3.0)}, fifo)
    reader.join(timeout=10)
    import io

    with np.load(io.BytesIO(got[-1]), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["w"], np.arange(3.0))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_atomic_write_refuses_a_loop_of_symlinks(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError, match="cannot write .*a.npz: Too many levels of symbolic links"):
        tc.save({"w": np.ones(2)}, a)
    assert a.is_symlink() and b.is_symlink()


def test_load_truncated_file(tmp_path):
    good = tc.save({"w": np.arange(1000, dtype=np.float32)}, tmp_path / "good.npz")
    bad = tmp_path / "truncated.npz"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz.*not a readable"):
        tc.load(bad)


def test_load_foreign_file(tmp_path):
    foreign = tmp_path / "notes.npz"
    foreign.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.npz"):
        tc.load(foreign)
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        tc.load(npy)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint file.*missing.npz"):
        tc.load(tmp_path / "missing.npz")


def test_load_a_directory_says_so(tmp_path):
    folder = tmp_path / "run.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=r"run\.npz is a directory, not a checkpoint file"):
        tc.load(folder)


@pytest.mark.parametrize("content", [b'{"model": "lenet5", "epochs": 3}\n', b"", b"\x80\x04K\x01."],
                         ids=["json", "empty", "pickle"])
def test_load_non_zip_file_says_not_a_zip(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"config\.json is not a \.npz checkpoint \(not a zip file") as ei:
        tc.load(path)
    assert "pickle" not in str(ei.value)


def test_load_zip_with_foreign_member(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"other\.zip.*'readme\.txt' is not a \.npy array"):
        tc.load(path)


AWKWARD_KEYS = ["allow_pickle", "file", "a.b.c", "features.0.weight", "poids_ünïcødé.权重", "", "x.npy", "a/b",
                "mmap_mode", "args", "kwds", "with space", "-1"]


def test_awkward_keys_round_trip(tmp_path):
    state = {k: np.full((i + 1,), i, dtype=np.float32) for i, k in enumerate(AWKWARD_KEYS)}
    path = tc.save(state, tmp_path / "k.npz")
    out = tc.load(path)
    assert list(out) == AWKWARD_KEYS
    for k, v in state.items():
        np.testing.assert_array_equal(out[k], v)
        assert out[k].dtype == v.dtype
    # still a plain .npz: NumPy reads every key without pickle
    with np.load(path, allow_pickle=False) as z:
        assert z.files == AWKWARD_KEYS
        for k, v in state.items():
            np.testing.assert_array_equal(z[k], v)


def test_only_allow_pickle_key_is_not_lost(tmp_path):
    path = tc.save({"allow_pickle": np.ones(2), "a": np.zeros(1)}, tmp_path / "k.npz")
    assert list(tc.load(path)) == ["allow_pickle", "a"]
    path = tc.save({"file": np.ones(2)}, tmp_path / "f.npz")
    np.testing.assert_array_equal(tc.load(path)["file"], np.ones(2))


def test_saved_bytes_are_deterministic(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3)}
    a = tc.save(state, tmp_path / "a.npz").read_bytes()
    b = tc.save(state, tmp_path / "b.npz").read_bytes()
    assert a == b


def test_numpy_written_files_still_load(tmp_path):
    np.savez(tmp_path / "plain.npz", **{"conv.weight": np.ones((2, 2))})
    np.savez_compressed(tmp_path / "small.npz", w=np.arange(4))
    np.testing.assert_array_equal(tc.load(tmp_path / "plain.npz")["conv.weight"], np.ones((2, 2)))
    np.testing.assert_array_equal(tc.load(tmp_path / "small.npz")["w"], np.arange(4))


@pytest.mark.parametrize("key, message", [
    ("a\x00b", "cannot be a zip member name"),
    ("\udcff", "not encodable as UTF-8"),
    ("k" * 70_000, "limit is 65535"),
])
def test_keys_that_cannot_be_member_names(tmp_path, key, message):
    with pytest.raises(ValueError, match=message):
        tc.save({key: np.ones(1)}, tmp_path / "bad.npz")
    assert not os.listdir(tmp_path)


def test_keys_ambiguous_to_numpy_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'x' and 'x.npy'.*ambiguous"):
        tc.save({"x": np.ones(1), "x.npy": np.zeros(1)}, tmp_path / "bad.npz")
    assert not os.listdir(tmp_path)


def test_save_under_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"cannot write .*afile/x\.npz: .*afile is a file, not a directory"):
        tc.save({"a": np.ones(1)}, blocker / "x.npz")
    with pytest.raises(NotADirectoryError, match=r"afile is a file, not a directory"):
        tc.save({"a": np.ones(1)}, blocker / "deeper" / "x.npz")
    assert blocker.read_text() == "x"
    # missing parents are still created
    assert tc.load(tc.save({"a": np.ones(1)}, tmp_path / "new" / "dir" / "x.npz"))["a"].tolist() == [1.0]


def test_save_over_a_directory_names_the_path(tmp_path):
    (tmp_path / "ck.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"cannot write .*ck\.npz: it is an existing directory"):
        tc.save({"a": np.ones(1)}, tmp_path / "ck.npz")
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_load_never_unpickles(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    evil = tmp_path / "evil.npz"
    np.savez(evil, w=np.ones(2), payload=np.array([Boom()], dtype=object))
    # sanity: with pickle allowed, NumPy would indeed run the payload
    with np.load(evil, allow_pickle=True) as z:
        z["payload"]
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="evil.npz.*object arrays are refused"):
        tc.load(evil)
    assert not marker.exists()


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
    assert tc.CheckpointError is CheckpointError
