"""The documentation's examples run as written, show what the prose says, and name things that exist.

What is checked, for every page docs/*.md except docs/performance.md (benchmark transcripts):

* Every fenced ```python block runs. The blocks of one page run in order, in one namespace (a block
  may use what an earlier block of the same page defined, as a reader going down the page would),
  in a fresh temporary working directory. Signatures, pseudo-code and shell sessions are not
  Python blocks: they use ```text, ```bash or a bare fence.
* Values the pages show in comments (``x_train.shape  # (4000, 1, 28, 28)``) are asserted by
  ``CHECKS`` below, each keyed by a snippet of the block it follows. The value of every top-level
  expression statement is kept, as a REPL would print it, so that a check can look at it by (part
  of) its source text; what a block prints is available too. A check whose snippet no longer
  occurs in its page fails, so checks cannot silently go stale.
* ``tinygrad-cnn ...`` commands (```bash blocks, inline code, usage blocks) name real subcommands
  and options, ``a|b|c`` choice lists equal the parser's, concrete commands parse; ``python
  examples/...`` (``benchmarks/``, ``docs/``, ``tools/``) scripts exist and know the options used;
  the defaults table of ``tinygrad-cnn train`` matches the CLI's.
* Relative links and images point at files (and headings) that exist.
* docs/graphs.md is what examples/make_gallery.py writes (its fixed text; pictures and numbers aside).

Markers, as HTML comments on the lines right above a block's opening fence (invisible when rendered;
use them sparingly, the point is that the examples run as shown):

    <!-- skip-test: REASON -->         the block is only compiled, not run (it needs the network,
                                       or takes far too long)
    <!-- test-replace: OLD => NEW -->  the block runs with the text OLD (which must occur in it)
                                       replaced by NEW, e.g. fewer epochs for a training example
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import shlex
import shutil
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_AUDITED = {"performance.md"}
PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name not in NOT_AUDITED)

# Optional parts a page's examples need: modules, and programs on PATH.
REQUIRES: dict[str, tuple[str, ...]] = {
    "onnx.md": ("onnx", "onnxruntime"),
    "graphs.md": ("matplotlib", "dot"),
}


# --------------------------------------------------------------------------- reading the pages


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first code line
    lang: str
    source: str
    skip: str | None = None
    replace: list[tuple[str, str]] = field(default_factory=list)


_MARKER = re.compile(r"<!--\s*(skip-test|test-replace):\s*(.*?)\s*-->")


def read_blocks(page: str) -> list[Block]:
    """Every fenced block of ``page`` with its language and the markers above it."""
    lines = (DOCS / page).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i + 1
        j = start
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        body = "\n".join(line[indent:] for line in lines[start:j]) + "\n"
        block = Block(page, start + 1, lang, body)
        k = i - 1
        while k >= 0 and _MARKER.search(lines[k]):
            kind, arg = _MARKER.search(lines[k]).groups()
            if kind == "skip-test":
                block.skip = arg or "(no reason given)"
            else:
                old, sep, new = arg.partition(" => ")
                assert sep, f"{page}:{k + 1}: test-replace needs 'OLD => NEW', got {arg!r}"
                block.replace.append((old, new))
            k -= 1
        blocks.append(block)
        i = j + 1
    return blocks


def python_blocks(page: str) -> list[Block]:
    return [b for b in read_blocks(page) if b.lang == "python"]


# --------------------------------------------------------------------------- running them


def _record_expressions(tree: ast.Module, source: str) -> ast.Module:
    """Turn each top-level expression statement ``expr`` into ``__doc_record__("expr", expr)``."""
    body: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Constant):
            key = ast.get_source_segment(source, stmt) or ""
            call = ast.Call(ast.Name("__doc_record__", ast.Load()), [ast.Constant(key), stmt.value], [])
            stmt = ast.copy_location(ast.Expr(call), stmt)
        body.append(stmt)
    tree.body = body
    return ast.fix_missing_locations(tree)


@dataclass
class Run:
    """What one block left behind: the page's namespace, its expression values, its stdout."""

    ns: dict[str, Any]
    values: dict[str, Any]
    out: str

    def value(self, snippet: str) -> Any:
        """The value of the expression statement whose source contains ``snippet``."""
        hits = [v for k, v in self.values.items() if snippet in k]
        assert len(hits) == 1, f"{len(hits)} expression statements contain {snippet!r}: {list(self.values)}"
        return hits[0]


def run_block(block: Block, ns: dict[str, Any]) -> Run:
    source = block.source
    for old, new in block.replace:
        assert old in source, f"{block.page}:{block.line}: test-replace text {old!r} is not in the block"
        source = source.replace(old, new)
    tree = _record_expressions(ast.parse(source, filename=str(DOCS / block.page)), source)
    ast.increment_lineno(tree, block.line - 1)  # tracebacks point at the page's own lines
    values: dict[str, Any] = {}
    ns["__doc_record__"] = values.__setitem__
    code = compile(tree, str(DOCS / block.page), "exec")
    buf = io.StringIO()
    with redirect_stdout(buf):
        exec(code, ns)
    return Run(ns, values, buf.getvalue())


# --------------------------------------------------------------------------- what the pages say


def _close(a: Any, b: Any) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


def _autograd_numbers(r: Run) -> None:
    assert _close(r.ns["h"].data, [0.6, -0.9, -2.9])  # h = x * w + b  # [0.6, -0.9, -2.9]
    assert _close(r.ns["y"].data, 0.6)  # y = h.relu().sum()  # 0.6


def _data_overview(r: Run) -> None:
    assert r.value("x_train.shape, x_train.dtype") == ((4000, 1, 28, 28), np.float32)
    x = r.ns["x_train"]
    assert 0.0 <= x.min() and x.max() <= 1.0  # float32 in [0, 1]
    assert r.value("y_train.shape, y_train.dtype") == ((4000,), np.int64)
    xb, yb = r.ns["xb"], r.ns["yb"]  # xb (100, 1, 28, 28) float32, yb (100,) int64
    assert (xb.shape, xb.dtype, yb.shape, yb.dtype) == ((100, 1, 28, 28), np.float32, (100,), np.int64)


def _data_loader_state(r: Run) -> None:
    assert set(json.loads(Path("loader.json").read_text())) == {"bit_generator", "batch_index", "epoch"}


def _data_shift(r: Run) -> None:
    shifted = r.value("shift_images(x, np.array([[1, -1]]))[0]")
    assert shifted.tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]
    assert r.ns["loader"].random_shift == 2 and len(r.ns["loader"]) == 80


def _onnx_export(r: Run) -> None:
    path = r.value('tc.onnx.export(model, x, "lenet5.onnx")')
    assert isinstance(path, Path) and path.stat().st_size > 0  # -> Path


def _onnx_import(r: Run) -> None:
    names = list(r.value("dict(net.named_parameters())"))
    assert names[:2] == ["conv1.weight", "conv1.bias"]
    assert list(r.value("net.state_dict()")) == list(r.ns["model"].state_dict())  # the same keys
    assert all(p.dtype == np.float64 for p in r.ns["net"].parameters())  # net.double()


def _training_fit(r: Run) -> None:
    from tinygrad_cnn.training import EvalResult

    history = r.ns["history"]
    assert 0.0 < r.value("history.test_acc[-1]") <= 1.0  # 0.966 after the page's 10 epochs (docs/results.md)
    res = r.value("evaluate(model, (xt, yt))")
    assert isinstance(res, EvalResult) and res.n == 1000
    run = Path("runs/demo")
    expected = {"checkpoint.npz", "history.json", "history.csv", "config.json"}  # the run-directory table
    if importlib.util.find_spec("matplotlib"):
        expected |= {"learning_curves.png", "filters_before.png", "filters_after.png"}
    if shutil.which("dot"):
        expected.add("graph.svg")
    assert expected <= {p.name for p in run.iterdir()}
    assert len(json.loads((run / "history.json").read_text())["epochs"]) == len(history.epochs)
    assert json.loads((run / "config.json").read_text()) == {"model": "simpleconvnet", "dataset": "mnist-sample"}


def _training_checkpoint(r: Run) -> None:
    epoch, model, test_acc = r.value('ck.epoch, ck.config["model"], ck.history.test_acc')
    assert (epoch, model, test_acc) == (len(r.ns["history"].epochs), "simpleconvnet", r.ns["history"].test_acc)
    assert "bit_generator" in json.loads(r.value('array_text(tc.load("runs/demo/checkpoint.npz")["meta.rng"])'))


def _graphs_api(r: Run) -> None:
    assert all(Path(f).stat().st_size > 0 for f in ("loss.svg", "model.svg", "filters.png"))
    assert r.out.startswith("SimpleConvNet summary, input (1, 1, 28, 28)") and "Total params: 433,890" in r.out


# (snippet of the block, what the page shows there, the check that asserts it). The shown texts must
# occur in the block too, so a changed value on the page fails here until the check agrees with it.
CHECKS: dict[str, list[tuple[str, tuple[str, ...], Callable[[Run], None]]]] = {
    "autograd.md": [("y = h.relu().sum()", ("# [0.6, -0.9, -2.9]", "# 0.6"), _autograd_numbers)],
    "data.md": [
        ('load_dataset("mnist-sample")   # works offline',
         ("# (4000, 1, 28, 28) float32 in [0, 1]", "# (4000,) int64", "# xb (100, 1, 28, 28) float32, yb (100,) int64"),
         _data_overview),
        ('Path("loader.json").write_text', (), _data_loader_state),
        ("shift_images(x, np.array([[1, -1]]))[0]", ("# [[0 0 0]\n#  [2 3 0]\n#  [5 6 0]]",), _data_shift),
    ],
    "onnx.md": [('tc.onnx.export(model, x, "lenet5.onnx")', ("# -> Path",), _onnx_export),
                ('net = tc.onnx.load("lenet5.onnx")', ("'conv1.weight', 'conv1.bias'",), _onnx_import)],
    "training.md": [
        ("history = fit(model, opt, train", ("# EvalResult(loss=..., accuracy=..., n=1000)",), _training_fit),
        ('ck = load_checkpoint("runs/demo")', (), _training_checkpoint),
    ],
    "graphs.md": [('tc.viz.save_graph(g, "loss.svg")', (), _graphs_api)],
}


def _require(page: str) -> None:
    for need in REQUIRES.get(page, ()):
        if need == "dot":
            if shutil.which("dot") is None:
                pytest.skip("needs the Graphviz `dot` program")
        else:
            pytest.importorskip(need)


@pytest.mark.parametrize("page", PAGES)
def test_python_examples_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    checks = CHECKS.get(page, [])
    if not blocks:
        assert not checks, f"{page} has no python blocks, but CHECKS has entries for it"
        return
    _require(page)
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": f"docs.{page}"}
    used = set()
    for block in blocks:
        if block.skip:
            compile(block.source, f"{page}:{block.line}", "exec")
            continue
        r = run_block(block, ns)
        for snippet, shown, check in checks:
            if snippet in block.source:
                for text in shown:
                    assert text in block.source, f"{page}:{block.line}: the block no longer shows {text!r}"
                check(r)
                used.add(snippet)
    stale = [s for s, _, _ in checks if s not in used]
    assert not stale, f"{page}: no (run) python block contains {stale}: update CHECKS with the page"


def test_markers_are_rare_and_explained():
    for page in PAGES:
        for b in read_blocks(page):
            if b.skip or b.replace:
                assert b.lang == "python", f"{page}:{b.line}: a test marker above a non-python block"
            if b.skip:
                assert len(b.skip) > 5, f"{page}:{b.line}: skip-test needs a reason"


# --------------------------------------------------------------------------- commands


def _commands_in(page: str) -> list[str]:
    """``tinygrad-cnn ...`` and ``python <dir>/...`` commands: bash lines, usage blocks, inline code."""
    text = (DOCS / page).read_text()
    found: list[str] = []
    for b in read_blocks(page):
        if b.lang in ("bash", "sh", "shell", "console", "", "text"):
            joined = re.sub(r"[ \t]*\\?\n[ \t]+", " ", b.source)  # continued lines: indented, or after a backslash
            found += [line.split("  #")[0].strip() for line in joined.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]  # spans may wrap lines
    cmds = []
    for c in found:
        c = re.sub(r"^(?:export\s+)?(?:[A-Z_]+=\S*\s+)*", "", c.strip())  # OPENBLAS_NUM_THREADS=1 ...
        if c.startswith("tinygrad-cnn ") or re.match(r"python (examples|benchmarks|docs|tools)/", c):
            cmds.append(c)
    return cmds


def _subparsers():
    from tinygrad_cnn.cli import build_parser

    return next(a for a in build_parser()._actions if a.dest == "command").choices


def test_cli_commands_exist_with_their_options():
    subs = _subparsers()
    seen = 0
    for page in PAGES:
        for cmd in _commands_in(page):
            if not cmd.startswith("tinygrad-cnn "):
                continue
            seen += 1
            name = cmd.split()[1].rstrip(":")
            assert name in subs, f"{page}: `{cmd}`: the CLI has no command {name!r}"
            parser = subs[name]
            options = {s: a for a in parser._actions for s in a.option_strings}
            for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", cmd):
                assert flag in options, f"{page}: `{cmd}`: `tinygrad-cnn {name}` has no option {flag}"
            for flag, alts in re.findall(r"(--[\w-]+) ([\w.-]+(?:\|[\w.-]+)+)", cmd):
                choices = set(options[flag].choices or ())
                assert set(alts.split("|")) == choices, f"{page}: `{cmd}`: {flag} choices are {sorted(choices)}"
            # a full command line (not a usage line with placeholders, nor a bare mention of a command) parses
            concrete = not re.search(r"[\[\]|<>]|\.\.\.|^tinygrad-cnn \w+:|\b[A-Z]+\b", cmd)
            if concrete and len(cmd.split()) > 2:
                try:
                    parser.parse_args(shlex.split(cmd)[2:])
                except SystemExit:
                    pytest.fail(f"{page}: `{cmd}` does not parse")
    assert seen > 10


def test_script_commands_exist_with_their_options():
    from tinygrad_cnn.data import DATASETS
    from tinygrad_cnn.models import MODELS

    for page in PAGES:
        for cmd in _commands_in(page):
            if not cmd.startswith("python "):
                continue
            words = shlex.split(cmd.split("  #")[0])
            script = ROOT / words[1]
            assert script.is_file(), f"{page}: `{cmd}`: no such script {words[1]}"
            src = script.read_text()
            for flag in (w for w in words[2:] if w.startswith("-")):
                assert f'"{flag}"' in src, f"{page}: `{cmd}`: {words[1]} has no option {flag}"
            if words[1] == "benchmarks/train_results.py":
                for spec in (w for w in words[2:] if ":" in w):
                    model, dataset, _epochs = spec.split(":")[:3]
                    assert model in MODELS and dataset in DATASETS, f"{page}: `{cmd}`: bad run {spec}"


def test_train_defaults_table_matches_the_cli():
    from tinygrad_cnn.cli import train as cli_train

    text = (DOCS / "training.md").read_text()
    rows = dict(re.findall(r"^\| `--([\w-]+)` \| ([^|]*) \|", text, re.M))
    assert {"model", "dataset", "epochs", "batch-size", "optimizer", "seed", "random-shift"} <= set(rows)
    defaults = dict(cli_train.DEFAULTS, epochs=cli_train.DEFAULT_EPOCHS)
    for flag, shown in rows.items():
        key, shown = flag.replace("-", "_"), shown.strip().strip("`")
        if key not in defaults or defaults[key] is None:
            continue
        actual = defaults[key]
        if isinstance(actual, (int, float)):
            assert float(shown) == actual, f"training.md: --{flag} default {shown}, the CLI's is {actual}"
        else:
            assert shown == actual, f"training.md: --{flag} default {shown}, the CLI's is {actual}"
    assert cli_train.DEFAULT_LR == {"sgd": 0.01, "momentum": 0.05, "adagrad": 0.01, "rmsprop": 0.001,
                                    "adam": 0.001}, "training.md's --lr row lists these per-optimizer defaults"


# --------------------------------------------------------------------------- links and the gallery


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[`*~]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES)
def test_links_and_images_exist(page):
    text = re.sub(r"```.*?```", "", (DOCS / page).read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        dest = (DOCS / path) if path else DOCS / page
        assert dest.exists(), f"{page}: link to {target}: {dest} does not exist"
        if anchor and dest.suffix == ".md":
            slugs = {_slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}
            assert anchor in slugs, f"{page}: link to {target}: no such heading in {dest.name}"


def test_graphs_page_is_what_the_gallery_script_writes():
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "examples" / "make_gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    parts = re.split(r"\{\w+\}", gallery.PAGE)
    pattern = "(.*?)".join(re.escape(p) for p in parts)
    assert re.fullmatch(pattern, (DOCS / "graphs.md").read_text(), re.S), (
        "docs/graphs.md differs from examples/make_gallery.py's PAGE: edit the script and rerun it, "
        "not the page")
