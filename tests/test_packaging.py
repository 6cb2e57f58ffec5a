"""Packaging and the fresh-install experience: what ``import tinygrad_cnn`` loads, what a missing extra says,
and that pyproject's metadata matches the code.

A missing extra is simulated in a subprocess by a meta-path finder that makes ``import NAME`` fail as it
does when NAME is not installed (``ModuleNotFoundError: No module named 'NAME'``, ``exc.name == 'NAME'``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import training

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tc.__file__).resolve().parent
EXTRAS = ("matplotlib", "onnx", "onnxruntime", "tqdm", "torch", "scipy", "threadpoolctl", "PIL")

# Prepended to every subprocess script: `BLOCKED` names cannot be imported, as if not installed.
BLOCKER = """
import sys

class _NotInstalled:
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled(BLOCKED))
"""


def run_python(code: str, blocked: tuple[str, ...] = (), cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this checkout's tinygrad_cnn, ``blocked`` not installed."""
    # _STARTUP: modules the interpreter loaded before the test's code (site's .pth files may import some)
    script = f"import sys\n_STARTUP = set(sys.modules)\nBLOCKED = {list(blocked)!r}\n{BLOCKER}\n{code}"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=cwd)


def run_cli(argv: list[str], blocked: tuple[str, ...] = (), cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_python(f"from tinygrad_cnn.cli import main\nsys.exit(main({argv!r}))", blocked, cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, command: str, *needles: str) -> None:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"tinygrad-cnn {command}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A SimpleConvNet run directory, as `train` writes it."""
    root = tmp_path_factory.mktemp("packaging")
    tc.manual_seed(0)
    model = tc.models.SimpleConvNet()
    run = root / "run"
    training.save_checkpoint(run / training.CHECKPOINT, model, epoch=1,
                             config={"model": "simpleconvnet", "dataset": "mnist-sample", "model_kwargs": {}})
    return run


# ----------------------------------------------------------------------------- what an import loads


THIRD_PARTY = """
import json
std = set(sys.stdlib_module_names)
third = sorted({m.split(".")[0] for m in set(sys.modules) - _STARTUP} - std - {"__main__", "tinygrad_cnn"})
print(json.dumps([m for m in third if not m.startswith("_") and m != "cython_runtime"]))
"""


def test_import_loads_numpy_and_nothing_else():
    proc = run_python("import time\nt = time.perf_counter()\nimport tinygrad_cnn\n"
                      "print(time.perf_counter() - t)\n" + THIRD_PARTY)
    assert proc.returncode == 0, proc.stderr
    seconds, modules = proc.stdout.splitlines()
    assert set(json.loads(modules)) <= {"numpy"}
    assert float(seconds) < 5.0  # ~0.15 s, numpy's import most of it; a generous bound for a busy machine


def test_lazy_parts_and_the_cli_parser_load_no_extra():
    code = ("import tinygrad_cnn as tc\n"
            "tc.viz, tc.onnx, tc.data, tc.training, tc.profiler\n"
            "import tinygrad_cnn.progress, tinygrad_cnn.checks, tinygrad_cnn.cli.bench\n"
            "from tinygrad_cnn.cli import build_parser\nbuild_parser()\n" + THIRD_PARTY)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) <= {"numpy", "graphviz"}


def test_every_help_works_without_any_extra():
    code = """
import contextlib, io
from tinygrad_cnn.cli import build_parser, main
sub = next(a for a in build_parser()._actions if a.dest == "command")
for argv in [["--help"], ["--version"]] + [[name, "--help"] for name in sub.choices]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
    assert "tinygrad-cnn" in out.getvalue(), (argv, out.getvalue())
print("ok", len(sub.choices))
"""
    proc = run_python(code, blocked=EXTRAS)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr


def test_python_m_is_the_cli_and_reports_the_pyproject_version():
    tomllib = pytest.importorskip("tomllib")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert tc.__version__ == version
    proc = subprocess.run([sys.executable, "-m", "tinygrad_cnn", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tinygrad-cnn {version}", proc


# ----------------------------------------------------------------------------- a missing extra


@pytest.mark.parametrize("call", [
    "from tinygrad_cnn.viz import plot_filters; plot_filters(np.zeros((4, 1, 3, 3)), 'f.png')",
    "from tinygrad_cnn.training import History, plot_history; plot_history(History(), 'h.png')",
], ids=["plot_filters", "plot_history"])
def test_plotting_without_matplotlib_names_the_package_and_the_extra(call, tmp_path):
    code = f"""
import numpy as np
try:
    {call}
except ModuleNotFoundError as exc:
    print(exc.name)
    print(exc)
"""
    proc = run_python(code, blocked=("matplotlib",), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    name, message = proc.stdout.splitlines()
    assert name == "matplotlib"  # was None: training's notes then read "(plotting needs ... is not installed)"
    assert "pip install 'tinygrad-cnn[viz]'" in message


def test_train_without_matplotlib_or_tqdm_notes_the_skipped_pictures_cleanly(tmp_path):
    proc = run_cli(["train", "--epochs", "1", "--limit", "50", "--out", str(tmp_path / "run")],
                   blocked=("matplotlib", "tqdm"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert "note: skipped the first-layer filters (matplotlib is not installed: pip install 'tinygrad-cnn[viz]')" in out
    assert "note: skipped the learning curves (matplotlib is not installed: pip install 'tinygrad-cnn[viz]')" in out
    assert "is not installed is not installed" not in out and "[viz]' is not installed" not in out
    assert "final test accuracy" in proc.stdout
    assert (tmp_path / "run" / "checkpoint.npz").is_file()


@pytest.mark.parametrize("command", ["filters", "features"])
def test_picture_commands_without_matplotlib_fail_in_one_line(checkpoint, tmp_path, command):
    proc = run_cli([command, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "x.png")],
                   blocked=("matplotlib",))
    assert_one_line_error(proc, command, "matplotlib", "pip install 'tinygrad-cnn[viz]'")


def test_onnx_functions_without_onnx_name_the_extra(tmp_path):
    code = f"""
import numpy as np
import tinygrad_cnn as tc
x = tc.Tensor(np.zeros((1, 1, 28, 28), np.float32))
for call in (lambda: tc.onnx.export(tc.models.LeNet5(), x, {str(tmp_path / 'm.onnx')!r}),
             lambda: tc.onnx.load({str(tmp_path / 'm.onnx')!r})):
    try:
        call()
    except ModuleNotFoundError as exc:
        print(exc.name, "|", exc)
"""
    proc = run_python(code, blocked=("onnx", "onnxruntime"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    for line in lines:
        name, message = line.split(" | ")
        assert name == "onnx"
        assert "needs the onnx package: pip install 'tinygrad-cnn[onnx]'" in message, message


def test_export_command_without_onnx_fails_in_one_line(checkpoint, tmp_path):
    proc = run_cli(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "m.onnx")],
                   blocked=("onnx", "onnxruntime"))
    assert_one_line_error(proc, "export", "needs the onnx package", "pip install 'tinygrad-cnn[onnx]'")
    assert proc.stderr.count("tinygrad-cnn[onnx]") == 1, proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_gradcheck_command_without_tqdm():
    proc = run_cli(["gradcheck", "--op", "relu", "--first-order"], blocked=("tqdm",))
    assert proc.returncode == 0, proc.stderr
    assert "0 failed" in proc.stdout and "Traceback" not in proc.stderr


def test_bench_without_torch_says_so(monkeypatch, capsys):
    from tinygrad_cnn.cli import bench, main

    monkeypatch.setitem(sys.modules, "torch", None)  # importlib.util.find_spec("torch") is None, as when missing
    monkeypatch.setattr(bench, "run_benchmarks", lambda names, *a, **k: {"workloads": {"W4": {"ours": {}}}})
    monkeypatch.setattr(bench, "format_table", lambda result: "table")
    assert main(["bench", "--workloads", "W4"]) == 0
    err = capsys.readouterr().err
    assert "PyTorch is not installed" in err and "--no-torch" in err
    assert main(["bench", "--workloads", "W4", "--no-torch"]) == 0
    assert "PyTorch" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- pyproject and the sdist


@pytest.fixture(scope="module")
def pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def _lower_bound(requirements: list[str], dist: str) -> tuple[int, ...]:
    req = next(r for r in requirements if _dist(r) == dist)
    found = re.search(r">=\s*([\d.]+)", req)
    assert found, f"{req!r} has no lower bound"
    return tuple(int(p) for p in found.group(1).split("."))


# import name -> the distribution that brings it (google.protobuf: onnx depends on protobuf)
_DIST_OF = {"google": "onnx", "PIL": "pillow"}
# imported only to do more when present, in no extra: bench's PyTorch columns and BLAS thread reading
_OPTIONAL_UNDECLARED = {"torch", "threadpoolctl"}


def _third_party_imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``({dist: files}, {dist: files})``: third-party imports at module level and inside functions."""
    std = set(sys.stdlib_module_names)
    top: dict[str, set[str]] = {}
    inner: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in std or root == "tinygrad_cnn":
                    continue
                dist = _DIST_OF.get(root, root).lower()
                (top if id(node) in module_level else inner).setdefault(dist, set()).add(path.name)
    return top, inner


def test_every_third_party_import_is_declared(pyproject):
    core = {_dist(r) for r in pyproject["project"]["dependencies"]}
    extras = {_dist(r) for reqs in pyproject["project"]["optional-dependencies"].values() for r in reqs}
    top, inner = _third_party_imports()
    assert set(top) <= core, f"module-level imports of packages that are not core dependencies: {top}"
    undeclared = set(inner) - core - extras - _OPTIONAL_UNDECLARED
    assert not undeclared, {d: inner[d] for d in undeclared}
    assert {"numpy", "graphviz"} == core
    extra = pyproject["project"]["optional-dependencies"]
    assert {_dist(r) for r in extra["viz"]} == {"matplotlib"}
    assert {_dist(r) for r in extra["onnx"]} == {"onnx", "onnxruntime"}
    assert {_dist(r) for r in extra["train"]} == {"tqdm"}
    assert {_dist(r) for r in extra["viz"] + extra["onnx"] + extra["train"] + ["pytest", "hypothesis", "ruff"]} \
        <= {_dist(r) for r in extra["dev"]}


def test_numpy_lower_bound_covers_the_numpy_api_used(pyproject):
    uses_exceptions = any("np.exceptions" in p.read_text() for p in PACKAGE.rglob("*.py"))
    if uses_exceptions:  # numpy.exceptions (AxisError) appeared in numpy 1.25
        assert _lower_bound(pyproject["project"]["dependencies"], "numpy") >= (1, 25)


def test_license_file_and_metadata(pyproject):
    project = pyproject["project"]
    assert isinstance(project["license"], str), "an SPDX expression (a TOML table is deprecated by setuptools)"
    assert "MIT" in project["license"]
    assert "LICENSE" in project["license-files"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    setuptools_req = next(r for r in pyproject["build-system"]["requires"] if _dist(r) == "setuptools")
    assert _lower_bound([setuptools_req], "setuptools") >= (77,)  # license expression + license-files
    assert project["scripts"] == {"tinygrad-cnn": "tinygrad_cnn.cli:main"}
    low = tuple(int(p) for p in re.search(r">=\s*([\d.]+)", project["requires-python"]).group(1).split("."))
    versions = [tuple(int(p) for p in c.rsplit(":: ", 1)[1].split("."))
                for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and min(versions) == low


def test_the_shipped_data_file_is_package_data(pyproject):
    patterns = pyproject["tool"]["setuptools"]["package-data"]["tinygrad_cnn"]
    assert "data/*.npz" in patterns
    from tinygrad_cnn.data.datasets import SAMPLE_PATH

    assert SAMPLE_PATH.parent == PACKAGE / "data" and SAMPLE_PATH.is_file()
    with np.load(SAMPLE_PATH) as f:
        assert f["x_train"].shape == (4000, 28, 28) and f["x_test"].shape == (1000, 28, 28)


def test_sdist_manifest_holds_license_and_the_test_tree():
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    includes = " ".join(line for line in manifest if line.startswith("include "))
    grafts = {line.split()[1] for line in manifest if line.startswith("graft ")}
    assert "LICENSE" in includes and "README.md" in includes
    # tests/ without conftest.py and the docs/examples they read would not run from an unpacked sdist
    assert {"tinygrad_cnn", "tests", "docs", "examples"} <= grafts

