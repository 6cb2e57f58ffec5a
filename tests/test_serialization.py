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
