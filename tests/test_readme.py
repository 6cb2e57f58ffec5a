"""The README's Python example runs as written, and its Quickstart commands match what exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "net.onnx").stat().st_size > 0


def test_quickstart_commands_name_real_parts():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    bash = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert any("tinygrad-cnn train" in b for b in bash)
    assert any("bash .ci/run" in b for b in bash)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["tinygrad-cnn"] == "tinygrad_cnn.cli:main"
    assert {"train", "viz", "onnx", "dev"} <= set(project["optional-dependencies"])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and "graphviz" in ci and "pytest" in ci


def test_documented_commands_exist():
    from tinygrad_cnn.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in re.findall(r"`tinygrad-cnn (\w+)", README):
        assert name in sub.choices, f"README mentions `tinygrad-cnn {name}` but the CLI has no such command"
