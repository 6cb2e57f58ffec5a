"""Per-op profiler: time per op type, forward and backward, so the next bottleneck is visible.

Use it as a context manager, or set ``TINYGRAD_CNN_PROFILE=1`` to profile a whole program and
print the table to stderr at exit::

    with tc.profile() as prof:
        loss = F.softmax_cross_entropy(model(x), y); loss.backward()
    prof.rows()   # [{"op": "Conv2d", "phase": "forward", "calls": 1, "total_ms": ..., "percent": ...}, ...]

Forward time is the whole ``Function.__call__`` of an op (wrapping included); backward time is
its ``backward`` call inside ``Tensor.backward`` (ops it builds there count towards it, not
separately); summing two gradients of one tensor is ``AccumulateGrad`` backward. Time outside any
op (Python glue, optimizer) is reported as ``(outside ops)``. Profiles nest: an op timed by an
inner ``tc.profile()`` counts in every enclosing one too (and in the ``TINYGRAD_CNN_PROFILE``
whole-program table). Cost when off: one module-level ``is not None`` check per op call and per
backward step.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from typing import Any

from . import tensor as _tensor

_ENV = "TINYGRAD_CNN_PROFILE"


class Profile:
    """Accumulates ``(phase, op) -> [calls, seconds]``; installed on ``tensor._profiler`` while active."""

    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self.stats: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self.busy = False  # True while timing an op: nested op calls are part of it
        self.wall = 0.0
        self._t0 = 0.0
        self._prev: Profile | None = None  # the enclosing profile while this one runs
        self._running = False

    # -- hooks called from tensor.py -------------------------------------------------
    def forward(self, fn: _tensor.Function, inputs: tuple[Any, ...]):
        """Run ``fn(*inputs)`` and charge its time to ``fn``'s forward."""
        self.busy = True
        t0 = time.perf_counter()
        try:
            return fn(*inputs)
        finally:
            self._charge(("forward", fn.name), time.perf_counter() - t0)
            self.busy = False

    def backward(self, fn: _tensor.Function, gys: list[Any]):
        """Run ``fn.backward(*gys)`` and charge its time to ``fn``'s backward."""
        busy, self.busy = self.busy, True
        t0 = time.perf_counter()
        try:
            return fn.backward(*gys)
        finally:
            self._charge(("backward", fn.name), time.perf_counter() - t0)
            self.busy = busy

    def accumulate(self, a: Any, b: Any):
        """``a + b`` of two gradients of one tensor during backward, charged to ``AccumulateGrad`` backward
        (not to an ``Add`` forward)."""
        busy, self.busy = self.busy, True
        t0 = time.perf_counter()
        try:
            return a + b
        finally:
            self._charge(("backward", "AccumulateGrad"), time.perf_counter() - t0)
            self.busy = busy

    def _charge(self, key: tuple[str, str], seconds: float) -> None:
        """One call of ``seconds`` to this profile and to every profile it runs inside."""
        prof: Profile | None = self
        while prof is not None:
            s = prof.stats[key]
            s[0] += 1
            s[1] += seconds
            prof = prof._prev

    # -- context -------------------------------------------------------------------
    def start(self) -> Profile:
        if self._running:
            raise RuntimeError("profile: this profile is already running; nest a new tc.profile() instead")
        self._prev, _tensor._profiler, self._running = _tensor._profiler, self, True
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self.wall += time.perf_counter() - self._t0
        if _tensor._profiler is self:
            _tensor._profiler = self._prev
        else:  # stopped before a profile started inside it: unlink it, so that one's stop() cannot reinstall it
            inner = _tensor._profiler
            while inner is not None and inner._prev is not self:
                inner = inner._prev
            if inner is not None:
                inner._prev = self._prev
        self._prev, self._running = None, False

    def __enter__(self) -> Profile:
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        if self.verbose:
            print(self.table())
        return False

    # -- results -------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One dict per (op, phase): calls, total_ms, percent of the profiled wall time; slowest first."""
        total = max(self.wall, sum(s[1] for s in self.stats.values()), 1e-12)
        rows = [{"op": op, "phase": phase, "calls": int(c), "total_ms": t * 1e3, "percent": 100 * t / total}
                for (phase, op), (c, t) in self.stats.items()]
        return sorted(rows, key=lambda r: -r["total_ms"])

    def calls(self, phase: str | None = None) -> dict[str, int]:
        """``{op: number of calls}`` for one phase ("forward"/"backward") or both summed."""
        if phase not in (None, "forward", "backward"):
            raise ValueError(f"profile.calls: phase must be 'forward', 'backward' or None, got {phase!r}")
        out: dict[str, int] = defaultdict(int)
        for (ph, op), (c, _) in self.stats.items():
            if phase is None or ph == phase:
                out[op] += int(c)
        return dict(out)

    def phase_ms(self) -> dict[str, float]:
        """Total milliseconds in forward ops, backward ops, and outside ops."""
        fw = sum(t for (ph, _), (_, t) in self.stats.items() if ph == "forward") * 1e3
        bw = sum(t for (ph, _), (_, t) in self.stats.items() if ph == "backward") * 1e3
        return {"forward": fw, "backward": bw, "outside ops": max(self.wall * 1e3 - fw - bw, 0.0)}

    def table(self) -> str:
        wall_ms = max(self.wall * 1e3, 1e-9)
        lines = [f"{'op':24s} {'phase':9s} {'calls':>7s} {'total ms':>10s} {'%':>6s}", "-" * 60]
        for r in self.rows():
            lines.append(f"{r['op']:24s} {r['phase']:9s} {r['calls']:7d} {r['total_ms']:10.2f} {r['percent']:6.1f}")
        lines.append("-" * 60)
        for k, v in self.phase_ms().items():
            lines.append(f"{k:34s} {v:16.2f} {100 * v / wall_ms:6.1f}")
        lines.append(f"{'profiled wall time':34s} {wall_ms:16.2f}")
        return "\n".join(lines)


def profile(verbose: bool = True) -> Profile:
    """``with tc.profile() as prof:`` times every op by type; prints the table on exit when ``verbose``."""
    return Profile(verbose)


def _start_from_env() -> None:
    """``TINYGRAD_CNN_PROFILE=1``: profile the whole program and print the table to stderr at exit."""
    import atexit

    prof = Profile(verbose=False).start()

    def report() -> None:
        prof.stop()
        print(prof.table(), file=sys.stderr)

    atexit.register(report)


def env_enabled() -> bool:
    """Whether ``TINYGRAD_CNN_PROFILE`` asks for profiling (anything but unset, empty, 0, false, no, off)."""
    return os.environ.get(_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")
