"""Tests for tinygrad_cnn.progress: real tqdm when installed, the stderr fallback when not."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from tinygrad_cnn.progress import SimpleProgress, progress


@pytest.fixture
def no_tqdm(monkeypatch):
    """Make ``import tqdm`` fail, as on an install without the ``train`` extra."""
    for mod in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "tqdm", None)


def test_uses_tqdm_when_available():
    tqdm = pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = progress(range(5), desc="work", file=out)
    assert isinstance(bar, tqdm.tqdm)
    assert list(bar) == [0, 1, 2, 3, 4]
    assert "work" in out.getvalue() and "5/5" in out.getvalue()


def test_tqdm_manual_surface():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with progress(total=10, desc="dl", unit="B", file=out, mininterval=0) as bar:
        bar.update(4)
        bar.update(6)
        bar.set_postfix(loss=0.25)
    assert bar.n == 10
    assert "loss=0.25" in out.getvalue()


def test_fallback_iteration_and_output(no_tqdm, capsys):
    bar = progress(range(3), desc="epoch 1")
    assert isinstance(bar, SimpleProgress)
    assert list(bar) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "epoch 1" in err and "3/3" in err and "100%" in err
    assert err.endswith("\n")


def test_fallback_manual_surface(no_tqdm, capsys):
    with progress(total=8, desc="dl", unit="B", mininterval=0) as bar:
        assert len(bar) == 8
        bar.update(3)
        bar.set_postfix(loss=0.123456, acc="90%")
        bar.update(5)
    assert bar.n == 8
    err = capsys.readouterr().err
    assert "3/8" in err and "8/8 B" in err and "loss=0.1235" in err and "acc=90%" in err
    bar.close()  # idempotent
    assert capsys.readouterr().err == ""


def test_fallback_unknown_total_and_generator(no_tqdm, capsys):
    bar = progress((i for i in range(4)), desc="gen", unit_scale=True, dynamic_ncols=True)
    assert sum(bar) == 6
    err = capsys.readouterr().err
    assert "4 it" in err and "%" not in err


def test_fallback_disable_prints_nothing(no_tqdm, capsys):
    bar = progress(range(3), disable=True)
    assert list(bar) == [0, 1, 2]
    bar.set_postfix(x=1)
    assert capsys.readouterr().err == ""


def test_fallback_file_and_unit_scale(no_tqdm):
    out = io.StringIO()
    kw = dict(unit="B", unit_scale=True, unit_divisor=1024, file=out, mininterval=0)
    with progress(total=2_000_000, **kw) as b:
        b.update(1_048_576)
    assert "1.00M/1.91M B" in out.getvalue()


def test_import_is_light():
    """Importing the package and this module must not import tqdm (an optional extra)."""
    code = "import sys, tinygrad_cnn.progress, tinygrad_cnn.data; assert 'tqdm' not in sys.modules, 'tqdm'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: ``\\r`` returns to the line start, characters overwrite."""
    lines, col = [[]], 0
    for ch in text:
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            line = lines[-1]
            line[col:col + 1] = [ch]
            col += 1
    return ["".join(line) for line in lines]


@pytest.mark.parametrize("leave", [True, False])
def test_fallback_leaves_a_clean_line_for_what_follows(leave):
    """leave=False blanks the bar, as tqdm does: shorter text written next shows no stray tail; a
    shorter redraw covers a longer earlier one."""
    out = io.StringIO()
    bar = SimpleProgress(total=3, desc="epoch 1/2", unit="batch", file=out, mininterval=0, leave=leave)
    bar.set_postfix({"loss": "0.9406", "acc": "0.6913", "img/s": "881"})
    bar.update(3)
    bar.set_postfix({"loss": "1"})  # shorter than the line before
    assert _screen(out.getvalue())[-1].rstrip().endswith("loss=1]")
    bar.close()
    out.write("\repoch 1/2  done")
    shown = _screen(out.getvalue())
    if leave:
        assert shown[0].rstrip().endswith("loss=1]") and shown[1] == "epoch 1/2  done"
    else:
        assert shown == ["epoch 1/2  done" + " " * (len(shown[0]) - len("epoch 1/2  done"))]
        assert shown[0].rstrip() == "epoch 1/2  done"
