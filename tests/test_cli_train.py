"""Tests for `tinygrad-cnn train` / `tinygrad-cnn evaluate` (in-process through cli.main, one real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import training
from tinygrad_cnn.cli import main

SMOKE = ["--epochs", "1", "--limit", "300", "--batch-size", "50", "--no-progress"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One epoch of the default model on 300 mnist-sample digits, as the README's command would run it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["train", *SMOKE, "--out", str(out)])
    return rc, out, buf.getvalue()


def test_train_smoke_writes_the_run_directory(smoke_run):
    rc, out, printed = smoke_run
    assert rc == 0
    assert "training simpleconvnet (433,890 parameters) on mnist-sample (300 train / 1,000 test)" in printed
    assert "epoch 1/1" in printed and "final test accuracy:" in printed
    for name in ("checkpoint.npz", "history.json", "history.csv", "config.json"):
        assert (out / name).is_file(), name
    hist = json.loads((out / "history.json").read_text())["epochs"]
    assert len(hist) == 1 and 0.25 < hist[0]["test_acc"] <= 1.0  # chance is 0.1
    assert f"{100 * hist[0]['test_acc']:.2f}%" in printed
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_acc,test_loss,test_acc") and len(csv_lines) == 2
    ck = training.load_checkpoint(out / "checkpoint.npz")
    assert ck.epoch == 1
    assert ck.config["model"] == "simpleconvnet" and ck.config["dataset"] == "mnist-sample"
    assert ck.config["optimizer"] == "momentum" and ck.config["lr"] == 0.05 and ck.config["limit"] == 300
    assert "momentum_buffer" in {k.split(".")[-1] for k in ck.optim} and ck.config["weight_decay"] == 1e-3
    pytest.importorskip("matplotlib")
    for name in ("learning_curves.png", "filters_before.png", "filters_after.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    if shutil.which("dot"):
        assert "<svg" in (out / "graph.svg").read_text()


def test_evaluate_rebuilds_the_model_from_the_checkpoint(smoke_run, capsys):
    _, out, _ = smoke_run
    acc = json.loads((out / "history.json").read_text())["epochs"][0]["test_acc"]
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz")]) == 0
    printed = capsys.readouterr().out
    assert f"simpleconvnet (epoch 1) on mnist-sample test: accuracy {100 * acc:.2f}%" in printed
    assert f"({round(acc * 1000)}/1000)" in printed and "loss" in printed
    assert main(["evaluate", "--checkpoint", str(out), "--split", "train", "--batch-size", "1000"]) == 0
    assert "on mnist-sample train: accuracy" in capsys.readouterr().out


def test_evaluate_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.npz")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["evaluate", "--checkpoint", str(junk)]) == 2
    assert "junk.npz" in capsys.readouterr().err


def test_cli_resume_equals_straight_run(smoke_run, tmp_path, capsys):
    _, out, _ = smoke_run
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    assert main(["train", "--epochs", "2", "--resume", "--out", str(resumed), "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    straight = tmp_path / "straight"
    assert main(["train", "--epochs", "2", "--limit", "300", "--batch-size", "50", "--no-progress",
                 "--no-pictures", "--out", str(straight)]) == 0
    a, b = training.load_checkpoint(resumed), training.load_checkpoint(straight)
    assert a.epoch == b.epoch == 2
    for k in b.model:
        np.testing.assert_array_equal(a.model[k], b.model[k], err_msg=k)
    for k in b.optim:
        np.testing.assert_array_equal(a.optim[k], b.optim[k], err_msg=k)
    assert [r["train_loss"] for r in a.history.epochs] == [r["train_loss"] for r in b.history.epochs]


def test_cli_resume_refuses_changed_settings(smoke_run, tmp_path):
    _, out, _ = smoke_run
    with pytest.raises(SystemExit, match="--lr 0.1 differs from the checkpoint's 0.05"):
        main(["train", "--epochs", "2", "--resume", "--out", str(out), "--lr", "0.1"])
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["train", "--resume", "--out", str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="--resume needs --out"):
        main(["train", "--resume"])


def test_cli_train_refuses_a_file_as_run_directory_before_training(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    with pytest.raises(SystemExit, match=f"--out {afile} is a file; it must be a run directory"):
        main(["train", "--epochs", "1", "--out", str(afile)])
    assert "training" not in capsys.readouterr().out and afile.read_text() == "not a directory"


@pytest.mark.filterwarnings("error::RuntimeWarning")  # fit keeps NumPy's overflow warnings quiet
def test_cli_nan_stop_exit_code(tmp_path, capsys):
    rc = main(["train", "--optimizer", "sgd", "--lr", "1e12", "--epochs", "2", "--limit", "100", "--batch-size", "20",
               "--no-progress", "--no-pictures", "--out", str(tmp_path / "nan")])
    assert rc == 1
    assert "training stopped: the loss is" in capsys.readouterr().out
    assert not (tmp_path / "nan" / "checkpoint.npz").exists()


def test_help_lists_train_and_evaluate():
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tinygrad_cnn", *args], capture_output=True, text=True,
                              timeout=60, cwd=root, env=env)

    r = cli("--help")
    assert r.returncode == 0
    assert "train" in r.stdout and "evaluate" in r.stdout
    r = cli("train", "--help")
    for opt in ("--model", "--dataset", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--out",
                "--resume", "--limit", "--random-shift"):
        assert opt in r.stdout, opt
    assert "lenet5-classic" in r.stdout and "fashion-mnist" in r.stdout and "rmsprop" in r.stdout


# ----------------------------------------------------------------------------- --random-shift (augmentation)

TINY = ["--epochs", "1", "--limit", "100", "--batch-size", "50", "--no-progress", "--no-pictures"]


def test_random_shift_default_is_recorded(smoke_run):
    _, out, printed = smoke_run
    assert "shifts <= 2 px" in printed
    assert training.load_checkpoint(out).config["random_shift"] == 2
    assert json.loads((out / "config.json").read_text())["random_shift"] == 2


@pytest.fixture(scope="module")
def unshifted_run(tmp_path_factory):
    """One epoch on 100 digits with --random-shift 0 (augmentation off)."""
    out = tmp_path_factory.mktemp("cli-noshift") / "run"
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", *TINY, "--random-shift", "0", "--out", str(out)]) == 0
    return out


def test_random_shift_zero_is_recorded(unshifted_run):
    assert training.load_checkpoint(unshifted_run).config["random_shift"] == 0
    assert json.loads((unshifted_run / "config.json").read_text())["random_shift"] == 0


def test_resume_refuses_a_different_random_shift(smoke_run, unshifted_run, tmp_path):
    _, out, _ = smoke_run
    with pytest.raises(SystemExit, match="--random-shift 0 differs from the checkpoint's 2"):
        main(["train", "--epochs", "2", "--resume", "--out", str(out), "--random-shift", "0"])
    with pytest.raises(SystemExit, match="--random-shift 1 differs from the checkpoint's 0"):
        main(["train", "--epochs", "2", "--resume", "--out", str(unshifted_run), "--random-shift", "1"])
    with pytest.raises(SystemExit, match="--random-shift must be >= 0"):
        main(["train", *TINY, "--random-shift", "-1", "--out", str(tmp_path / "neg")])


def test_resume_of_a_checkpoint_from_before_random_shift_keeps_it_off(unshifted_run, tmp_path, capsys):
    """A checkpoint whose config has no random_shift was trained without augmentation: resuming keeps it off."""
    old = tmp_path / "old"
    shutil.copytree(unshifted_run, old)
    path = old / "checkpoint.npz"
    with np.load(path) as z:
        state = {k: z[k] for k in z.files}
    cfg = json.loads(training.array_text(state["meta.config"]))
    del cfg["random_shift"]
    state["meta.config"] = training.text_array(json.dumps(cfg))
    np.savez(path, **state)
    assert "random_shift" not in training.load_checkpoint(path).config
    assert main(["train", "--epochs", "2", "--resume", "--out", str(old), "--no-progress", "--no-pictures"]) == 0
    assert "shifts <= 0 px" in capsys.readouterr().out
    assert training.load_checkpoint(old).config["random_shift"] == 0


def test_train_refuses_to_overwrite_a_run_without_resume(smoke_run, tmp_path, capsys):
    _, out, _ = smoke_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = (copy / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit, match=r"already holds a run \(checkpoint.npz\); pass --resume"):
        main(["train", *TINY, "--out", str(copy)])
    assert "training" not in capsys.readouterr().out
    assert (copy / "checkpoint.npz").read_bytes() == before


def test_default_run_directories_never_collide(tmp_path, monkeypatch, capsys):
    """Two runs started in the same second (the default name's resolution) get two directories."""
    import time

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")
    for _ in range(2):
        assert main(["train", *TINY, "--no-pictures"]) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["simpleconvnet-mnist-sample-20260101-000000", "simpleconvnet-mnist-sample-20260101-000000-2"]
    assert all((tmp_path / "runs" / r / "checkpoint.npz").is_file() for r in runs)


def test_bad_arguments_leave_no_default_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in (["--limit", "0"], ["--random-shift", "-1"], ["--epochs", "0"]):
        with pytest.raises(SystemExit):
            main(["train", *bad, "--no-progress"])
    assert not (tmp_path / "runs").exists()


def _with_config(src: Path, dst: Path, edit) -> Path:
    with np.load(src) as z:
        state = {k: z[k] for k in z.files}
    edit(state)
    np.savez(dst, **state)
    return dst


def test_evaluate_and_features_report_unfit_model_kwargs_in_one_line(smoke_run, tmp_path, capsys):
    _, out, _ = smoke_run

    def bogus(state):
        cfg = json.loads(training.array_text(state["meta.config"]))
        cfg["model_kwargs"] = {"bogus": 1}
        state["meta.config"] = training.text_array(json.dumps(cfg))

    ck = _with_config(out / "checkpoint.npz", tmp_path / "kw.npz", bogus)
    assert main(["evaluate", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "cannot build simpleconvnet with {'bogus': 1} (the model_kwargs stored in" in err and "Traceback" not in err
    assert main(["features", "--checkpoint", str(ck), "-o", str(tmp_path / "f.png")]) == 1
    assert "cannot build simpleconvnet" in capsys.readouterr().err

    for value, exit_code in (([1], 2), ("abc", 2), ({"weight_init_std": "bogus"}, 2)):
        def odd(state, value=value):
            cfg = json.loads(training.array_text(state["meta.config"]))
            cfg["model_kwargs"] = value
            state["meta.config"] = training.text_array(json.dumps(cfg))

        ck = _with_config(out / "checkpoint.npz", tmp_path / "odd.npz", odd)
        assert main(["evaluate", "--checkpoint", str(ck)]) == exit_code
        err = capsys.readouterr().err
        assert "cannot build simpleconvnet" in err and "odd.npz" in err and "Traceback" not in err
        assert main(["features", "--checkpoint", str(ck), "-o", str(tmp_path / "f.png")]) == 1
        assert "cannot build simpleconvnet" in capsys.readouterr().err

    def broken(state):
        state["meta.config"] = training.text_array("{not json")

    ck = _with_config(out / "checkpoint.npz", tmp_path / "json.npz", broken)
    assert main(["evaluate", "--checkpoint", str(ck)]) == 2
    assert "json.npz: meta.config is not readable (JSONDecodeError" in capsys.readouterr().err


def test_resume_of_a_fit_run_names_the_settings_it_lacks(tmp_path):
    """A run written by fit() in Python records no CLI settings: resuming it does not assume the CLI's defaults."""
    from tinygrad_cnn import models, optim
    from tinygrad_cnn.data import DataLoader, load_dataset

    (x, y), _ = load_dataset("mnist-sample")
    model = models.LeNet5()
    training.fit(model, optim.Adam(model.parameters(), 1e-3), DataLoader(x[:40], y[:40], batch_size=20), None,
                 epochs=1, out_dir=tmp_path / "fitrun", progress_bar=False, pictures=False)
    with pytest.raises(SystemExit, match=r"not written by `tinygrad-cnn train`.*--optimizer.*"
                                         r"\(its optimizer state is --optimizer adam's\)"):
        main(["train", "--resume", "--out", str(tmp_path / "fitrun"), "--epochs", "2"])
