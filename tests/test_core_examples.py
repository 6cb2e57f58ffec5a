"""The chapter-7 gradient-check example and the scripts that draw the core docs' figures."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = str(Path(tinygrad_cnn.__file__).resolve().parents[1])


def load_script(relpath: str):
    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gradient_check_example_runs_and_matches(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "gradient_check.py"), "--batch", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    for name, shape in [("conv1.weight", "(10, 1, 3, 3)"), ("conv1.bias", "(10,)"), ("fc1.weight", "(10, 160)"),
                        ("fc1.bias", "(10,)"), ("fc2.weight", "(10, 10)"), ("fc2.bias", "(10,)")]:
        row = lines[name]
        assert " ".join(row[1:-2]) == shape
        assert float(row[-2]) < 1e-8 and float(row[-1]) < 1e-6  # max abs diff, relative error
    assert "OK: largest relative error" in proc.stdout


def test_gradient_check_example_exits_non_zero_on_a_wrong_gradient(monkeypatch, capsys):
    """A ReLU whose backward doubles the gradient: the example must notice and return 1."""
    from tinygrad_cnn.functional import ReLU

    right = ReLU.backward
    monkeypatch.setattr(ReLU, "backward", lambda self, gy: right(self, gy) * 2.0)
    example = load_script("examples/gradient_check.py")
    assert example.main(["--batch", "1"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out
    # the last layer (no ReLU after it) still matches; the layers before a ReLU do not
    rel = {line.split()[0]: float(line.split()[-1]) for line in out.splitlines() if line.startswith(("conv1", "fc"))}
    assert rel["fc2.weight"] < 1e-6 and rel["conv1.weight"] > 1e-2


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz `dot` program is not installed")
@pytest.mark.parametrize("walk", [False, True], ids=["viz", "walk"])
def test_autograd_figure_script(tmp_path, walk):
    fig = load_script("docs/make_autograd_figure.py")
    out = tmp_path / "graph.svg"
    assert fig.main([str(out)] + (["--walk"] if walk else [])) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for label in ("Mul", "Add", "ReLU", "Sum", "x", "w", "b"):
        assert f">{label}" in svg
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file behind


def test_im2col_figure_script(tmp_path):
    pytest.importorskip("matplotlib")
    fig = load_script("docs/make_im2col_figure.py")
    out = tmp_path / "im2col.png"
    assert fig.main([str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_committed_figures_exist():
    svg = (ROOT / "docs" / "img" / "autograd_graph.svg").read_text()
    assert "<svg" in svg and ">ReLU" in svg
    assert (ROOT / "docs" / "img" / "im2col.png").read_bytes()[:4] == b"\x89PNG"
    for doc, figure in (("autograd.md", "img/autograd_graph.svg"), ("im2col.md", "img/im2col.png")):
        assert figure in (ROOT / "docs" / doc).read_text()


def test_im2col_doc_memory_numbers_are_right():
    """The numbers quoted in docs/im2col.md: col size for SimpleConvNet and AlexNet conv1 at batch 100."""
    from tinygrad_cnn.conv import conv_output_size

    text = (ROOT / "docs" / "im2col.md").read_text()
    for n, c, h, k, s, p in [(100, 1, 28, 5, 1, 0), (100, 3, 224, 11, 4, 2)]:
        o = conv_output_size(h, k, s, p)
        rows, cols = n * o * o, c * k * k
        assert f"({rows:,}, {cols})" in text
        assert f"{rows * cols * 4 / 1e6:.1f} MB" in text
        assert f"{n * c * h * h * 4 / 1e6:.1f} MB" in text
    np.testing.assert_equal(conv_output_size(224, 11, 4, 2), 55)


@pytest.mark.parametrize("doc", ["autograd.md", "im2col.md"])
def test_doc_code_blocks_run(doc):
    """Every runnable ```python block of the core docs (those that start with an import) executes."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)
    runnable = [b for b in blocks if b.startswith(("import", "from"))]
    assert runnable
    for block in runnable:
        exec(compile(block, f"docs/{doc}", "exec"), {})
