"""``tinygrad-cnn gradcheck``: the table, ``--op`` filtering, and the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_cnn
from tinygrad_cnn import Tensor, checks
from tinygrad_cnn.cli import main
from tinygrad_cnn.functional import Softmax

PACKAGE_PARENT = str(Path(tinygrad_cnn.__file__).resolve().parents[1])


class ZeroGradSoftmax(Softmax):
    def backward(self, gy):
        return gy * 0.0


def table_rows(out: str) -> list[list[str]]:
    """The data rows of the table: [op, config..., error, 1st, 2nd]."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("op ")) + 2
    rows = []
    for line in lines[start:]:
        if line.startswith("---"):
            break
        rows.append(line.split())
    return rows


def test_gradcheck_command_filters_by_op(capsys):
    assert main(["gradcheck", "--op", "relu", "--op", "conv2d"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    n_conv = sum(c.op == "conv2d" for c in checks.CASES)
    assert {r[0] for r in rows} == {"relu", "conv2d"} and len(rows) == n_conv + 1
    for r in rows:
        assert float(r[-3]) < 1e-6 and r[-2:] == ["ok", "ok"]
    assert f"{n_conv + 1} passed, 0 failed" in out


def test_gradcheck_command_first_order_and_list(capsys):
    assert main(["gradcheck", "--op", "max_pool2d", "--first-order"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows and all(r[0] == "max_pool2d" and r[-2:] == ["ok", "-"] for r in rows)
    assert main(["gradcheck", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(checks.CASES)


@pytest.mark.parametrize("argv,message", [
    (["--op", "no_such_op"], "tinygrad-cnn gradcheck: error: no check matches --op no_such_op; ops: "),
    (["--seed", "-1"], "tinygrad-cnn gradcheck: error: argument --seed: must be an integer >= 0, got -1"),
], ids=["op", "seed"])
def test_gradcheck_command_bad_arguments_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["gradcheck", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(message)
    if argv[0] == "--op":
        assert "conv2d" in err  # lists the ops that exist


def test_gradcheck_command_fails_on_a_wrong_backward(capsys, monkeypatch):
    bad = checks.Case("bad_softmax", "zero backward", lambda r: (
        lambda x: ZeroGradSoftmax(-1)(x), (Tensor(r.standard_normal((2, 3)), requires_grad=True),)))
    relu = next(c for c in checks.CASES if c.op == "relu")
    monkeypatch.setattr(checks, "CASES", [relu, bad])
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    rows = {r[0]: r for r in table_rows(out)}
    assert rows["relu"][-2:] == ["ok", "ok"] and rows["bad_softmax"][-2] == "FAIL"
    assert "1 passed, 1 failed" in out
    assert "bad_softmax [zero backward]" in out and "analytic" in out and "numeric" in out


def test_every_case_passes_at_float64():
    """The catalogue behind the table (first order; second order is covered per op elsewhere)."""
    results = checks.run_all(second_order=False)
    assert len(results) == len(checks.CASES) > 30
    bad = [(r.case.op, r.case.config, r.message) for r in results if not r.ok]
    assert not bad
    assert max(r.max_abs_error for r in results) < 1e-7


@pytest.mark.slow
def test_python_dash_m_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "tinygrad_cnn", "gradcheck", "--op", "relu"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert len(rows) == 1 and rows[0][0] == "relu" and rows[0][-2:] == ["ok", "ok"]
    assert "1 passed, 0 failed" in proc.stdout
    assert float(rows[0][-3]) < 1e-6
