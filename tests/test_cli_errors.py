"""The CLI's user errors end in one clean line (no traceback); run directories, picture formats and --input-shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import training
from tinygrad_cnn.cli import main

PACKAGE_PARENT = str(Path(tc.__file__).resolve().parents[1])


def cli(argv: list[str]) -> int:
    """``main(argv)``'s exit status, also when argparse exits (parser.error raises SystemExit(2))."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A LeNet5 training run directory (RUN/checkpoint.npz, as `train` writes it) and a plain state dict."""
    root = tmp_path_factory.mktemp("cli-errors")
    tc.manual_seed(0)
    model = tc.models.LeNet5()
    run = root / "run"
    training.save_checkpoint(run / training.CHECKPOINT, model, epoch=1,
                             config={"model": "lenet5", "dataset": "mnist-sample", "model_kwargs": {}})
    plain = tc.save(model.state_dict(), root / "plain.npz")
    return model, run, plain


def assert_clean_error(rc: int, err: str, command: str, *needles: str, status: int | None = None) -> None:
    assert rc != 0 and (status is None or rc == status), rc
    assert "Traceback" not in err
    assert f"tinygrad-cnn {command}: error: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------------------------------------- one-line errors


def test_bad_numbers_are_argparse_errors(ckpts, tmp_path, capsys):
    _, run, plain = ckpts
    assert_clean_error(cli(["evaluate", "--checkpoint", str(run), "--batch-size", "0"]), capsys.readouterr().err,
                       "evaluate", "--batch-size", ">= 1, got 0", status=2)
    assert_clean_error(cli(["filters", "--checkpoint", str(plain), "--ncols", "0", "-o", str(tmp_path / "f.png")]),
                       capsys.readouterr().err, "filters", "--ncols", ">= 1, got 0", status=2)
    assert_clean_error(cli(["features", "--checkpoint", str(run), "--max-channels", "-1", "-o",
                            str(tmp_path / "m.png")]), capsys.readouterr().err, "features", "--max-channels",
                       status=2)
    assert_clean_error(cli(["export", "--model", "lenet5", "--batch-size", "0", "-o", str(tmp_path / "m.onnx")]),
                       capsys.readouterr().err, "export", "--batch-size", status=2)
    assert_clean_error(cli(["graph", "--depth", "-1", "-o", str(tmp_path / "g.dot")]), capsys.readouterr().err,
                       "graph", "--depth", ">= 0", status=2)
    assert not list(tmp_path.iterdir())


def test_filters_missing_checkpoint_and_non_conv_param(ckpts, tmp_path, capsys):
    _, _, plain = ckpts
    assert_clean_error(cli(["filters", "--checkpoint", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "x.png")]),
                       capsys.readouterr().err, "filters", "no such checkpoint file", "nope.npz", status=1)
    assert_clean_error(cli(["filters", "--checkpoint", str(plain), "--param", "fc1.weight", "-o",
                            str(tmp_path / "x.png")]), capsys.readouterr().err, "filters",
                       "fc1.weight has shape (120, 400), not a conv filter bank", "conv1.weight, conv2.weight",
                       status=1)
    assert not (tmp_path / "x.png").exists()


def test_features_unknown_dataset_and_architecture_mismatch(ckpts, tmp_path, capsys):
    _, run, _ = ckpts
    out = str(tmp_path / "m.png")
    assert_clean_error(cli(["features", "--checkpoint", str(run), "--dataset", "cifar", "-o", out]),
                       capsys.readouterr().err, "features", "unknown dataset 'cifar'", "mnist-sample", status=1)
    assert_clean_error(cli(["features", "--checkpoint", str(run), "--model", "simpleconvnet", "-o", out]),
                       capsys.readouterr().err, "features", "does not fit simpleconvnet (it holds a lenet5)",
                       "unexpected keys: conv2.weight", "shape mismatch for conv1.weight: checkpoint (6, 1, 5, 5) "
                       "vs model (30, 1, 5, 5)", status=1)
    assert not Path(out).exists()


def test_shapes_a_model_cannot_take_name_the_op(tmp_path, capsys):
    assert_clean_error(cli(["summary", "--model", "lenet5", "--input-shape", "1", "32", "32"]),
                       capsys.readouterr().err, "summary", "lenet5 cannot take an input of shape 1x32x32",
                       "linear: input of shape (1, 576) does not match weight of shape (120, 400)", status=1)
    assert_clean_error(cli(["export", "--model", "lenet5", "--input-shape", "3,32,32", "-o",
                            str(tmp_path / "l.onnx")]), capsys.readouterr().err, "export",
                       "lenet5 cannot take an input of shape 3x32x32", "linear", status=1)
    assert_clean_error(cli(["summary", "--input-shape", "3", "32"]), capsys.readouterr().err, "summary",
                       "--input-shape", "C,H,W or C H W", status=2)
    assert_clean_error(cli(["summary", "--input-shape", "3,a,32"]), capsys.readouterr().err, "summary",
                       "--input-shape", status=2)
    assert not (tmp_path / "l.onnx").exists()


def test_unsupported_picture_suffixes_list_the_supported_ones(ckpts, tmp_path, capsys):
    _, run, _ = ckpts
    assert_clean_error(cli(["graph", "-o", str(tmp_path / "g.jpeg")]), capsys.readouterr().err, "graph",
                       "cannot write a .jpeg graph", ".svg, .png, .pdf, .dot", status=2)
    assert_clean_error(cli(["filters", "--checkpoint", str(run), "-o", str(tmp_path / "f.jpg")]),
                       capsys.readouterr().err, "filters", "cannot write a .jpg picture", ".png, .svg, .pdf", status=2)
    assert_clean_error(cli(["features", "--checkpoint", str(run), "-o", str(tmp_path / "m.gif")]),
                       capsys.readouterr().err, "features", ".gif", ".png, .svg, .pdf", status=2)
    assert not list(tmp_path.iterdir())


def test_train_missing_dataset_prints_only_the_message(tmp_path, monkeypatch, capsys):
    from tinygrad_cnn.data import datasets

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached copy
    monkeypatch.delenv("TINYGRAD_CNN_DATA", raising=False)
    monkeypatch.setenv("TINYGRAD_CNN_MIRROR", (tmp_path / "no-mirror").as_uri())  # a download fails at once
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    (tmp_path / "empty").mkdir()
    rc = cli(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "empty"), "--no-progress",
              "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert_clean_error(rc, captured.err, "train", status=1)
    assert captured.err.startswith("tinygrad-cnn train: error: dataset 'mnist' not found")
    assert str(tmp_path / "empty") in captured.err and "training" not in captured.out
    assert not (tmp_path / "run").exists()


def test_a_bug_still_raises(monkeypatch):
    """Only user errors are caught: anything else keeps its traceback."""
    from tinygrad_cnn.cli import viz

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setitem(viz.COMMANDS, "summary", (viz.COMMANDS["summary"][0], viz.add_summary_arguments, broken))
    with pytest.raises(TypeError, match="a bug"):
        main(["summary"])


def test_python_dash_m_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
    for args, command in ((["filters", "--checkpoint", "nope.npz", "-o", "x.png"], "filters"),
                          (["summary", "--model", "lenet5", "--input-shape", "1", "32", "32"], "summary")):
        proc = subprocess.run([sys.executable, "-m", "tinygrad_cnn", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"tinygrad-cnn {command}: error: ") and proc.stderr.count("\n") == 1


# ----------------------------------------------------------------------------- run directories


def test_filters_features_export_accept_a_run_directory(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, run, _ = ckpts
    assert main(["filters", "--checkpoint", str(run), "-o", str(tmp_path / "f.png")]) == 0
    assert "6 filters of conv1.weight" in capsys.readouterr().out
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["features", "--checkpoint", str(run), "-o", str(tmp_path / "m.png")]) == 0
    assert f"wrote {tmp_path / 'm.png'}" in capsys.readouterr().out
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert_clean_error(cli(["filters", "--checkpoint", str(tmp_path), "-o", str(tmp_path / "g.png")]),
                       capsys.readouterr().err, "filters", str(tmp_path / training.CHECKPOINT), status=1)


def test_export_accepts_a_run_directory(ckpts, tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, run, _ = ckpts
    out = tmp_path / "lenet5.onnx"
    assert main(["export", "--checkpoint", str(run), "-o", str(out)]) == 0
    assert "model lenet5" in capsys.readouterr().out
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(str(out))
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    model.eval()
    with tc.no_grad():
        np.testing.assert_allclose(y, model(tc.Tensor(x)).data, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- picture formats


def test_filters_and_features_follow_the_suffix(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, run, _ = ckpts
    svg = tmp_path / "f.svg"
    assert main(["filters", "--checkpoint", str(run), "-o", str(svg)]) == 0
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text and "<image" in text
    pdf = tmp_path / "m.pdf"
    assert main(["features", "--checkpoint", str(run), "-o", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    svg2 = tmp_path / "m.SVG"
    assert main(["features", "--checkpoint", str(run), "--max-channels", "2", "-o", str(svg2)]) == 0
    assert svg2.read_text().startswith("<?xml")
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["f.svg", "m.SVG", "m.pdf"]  # no temporary PNG left


# ----------------------------------------------------------------------------- --input-shape builds the model


def test_summary_input_shape_forms_build_the_model(capsys):
    assert main(["summary", "--model", "alexnet-small", "--input-shape", "3", "32", "32"]) == 0
    spaced = capsys.readouterr().out
    assert main(["summary", "--model", "alexnet-small", "--input-shape", "3,32,32"]) == 0
    assert capsys.readouterr().out == spaced
    assert "input (1, 3, 32, 32)" in spaced
    assert "conv1 (Conv2d)             (1, 32, 32, 32)     2,432" in spaced  # 32 filters of 3x5x5, + bias
    assert main(["summary", "--model", "simpleconvnet", "--input-shape", "3x32x32"]) == 0
    n = tc.models.SimpleConvNet(input_dim=(3, 32, 32)).num_parameters()
    assert f"Total params: {n:,}" in capsys.readouterr().out


@pytest.mark.parametrize("shape_args", [["3,32,32"], ["3", "32", "32"]])
def test_export_alexnet_small_for_a_three_channel_32px_input(shape_args, tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "a.onnx"
    assert main(["export", "--model", "alexnet-small", "--input-shape", *shape_args, "-o", str(out)]) == 0
    assert "input batchx3x32x32" in capsys.readouterr().out
    sess = ort.InferenceSession(str(out))
    inp = sess.get_inputs()[0]
    assert inp.shape[1:] == [3, 32, 32]
    y = sess.run(None, {inp.name: np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)})[0]
    assert y.shape == (2, 10) and np.isfinite(y).all()
