"""Progress bars that work with or without tqdm.

``progress(...)`` returns a real ``tqdm`` bar when tqdm is installed (extra ``train``) and a
small stand-in otherwise, so training loops and downloads can always write::

    for xb, yb in progress(loader, desc="epoch 1"):
        ...
        bar.set_postfix(loss=0.1)

tqdm is imported lazily inside :func:`progress`, so ``import tinygrad_cnn`` never pays for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["progress", "SimpleProgress"]


def _fmt_num(n: float, unit_scale: bool, divisor: int) -> str:
    """``1234567 -> '1.18M'`` when unit_scale is on (tqdm's style), else a plain integer."""
    if not unit_scale:
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.2f}"
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 999.5:
            return f"{n:.0f}{prefix}" if prefix == "" else f"{n:.2f}{prefix}"
        n /= divisor
    return f"{n:.2f}P"


class SimpleProgress:
    """Minimal tqdm look-alike used when tqdm is not installed.

    Surface: iteration, ``update(n)``, ``set_postfix(**kw)``, ``set_description(desc)``,
    ``close()``, context manager, and the ``n`` / ``total`` attributes. It redraws one line on
    ``file`` (stderr by default) at most every ``mininterval`` seconds and once more on close.
    Unknown tqdm keyword arguments are accepted and ignored.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str | None = None,
        unit: str = "it",
        disable: bool = False,
        file: IO[str] | None = None,
        mininterval: float = 0.5,
        unit_scale: bool = False,
        unit_divisor: int = 1000,
        leave: bool = True,
        **_ignored: Any,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.file = file
        self.mininterval = mininterval
        self.unit_scale = unit_scale
        self.unit_divisor = unit_divisor
        self.leave = leave
        self.n: float = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last_print = -float("inf")
        self._closed = False
        self._printed = False
        self._width = 0  # the longest line drawn so far

    # --- tqdm surface ------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("SimpleProgress was created without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("progress bar has no total")
        return int(self.total)

    def __enter__(self) -> SimpleProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Advance by ``n`` steps and redraw if ``mininterval`` has passed."""
        self.n += n
        now = time.monotonic()
        if now - self._last_print >= self.mininterval:
            self._last_print = now
            self._draw()

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kw: Any
    ) -> None:
        """Show ``key=value`` pairs after the counter (floats with 4 significant digits)."""
        items = dict(ordered_dict or {}, **kw)
        self.postfix = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items()
        )
        if refresh:
            self._draw()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc
        if refresh:
            self._draw()

    def refresh(self) -> None:
        self._draw()

    def close(self) -> None:
        """Draw the final state and end the line; ``leave=False``: blank the line instead (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.disable:
            return
        out = self.file or sys.stderr
        if self.leave:
            self._draw()
            out.write("\n")
        elif self._printed:  # as tqdm: blank the line, so shorter text written next leaves no stray tail
            out.write("\r" + " " * self._width + "\r")
        out.flush()

    # --- rendering ----------------------------------------------------------------
    def format(self) -> str:
        """The current line, e.g. ``'train:  40%| 40/100 it [00:02, loss=0.3]'``."""
        elapsed = time.monotonic() - self._start
        n = _fmt_num(self.n, self.unit_scale, self.unit_divisor)
        if self.total:
            pct = 100.0 * self.n / self.total
            tot = _fmt_num(self.total, self.unit_scale, self.unit_divisor)
            body = f"{pct:3.0f}%| {n}/{tot} {self.unit}"
        else:
            body = f"{n} {self.unit}"
        mins, secs = divmod(int(elapsed), 60)
        tail = f"{mins:02d}:{secs:02d}"
        if self.postfix:
            tail += ", " + self.postfix
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{body} [{tail}]"

    def _draw(self) -> None:
        if self.disable:
            return
        out = self.file or sys.stderr
        line = self.format()
        out.write("\r" + line + " " * max(0, self._width - len(line)))  # cover a longer previous line
        out.flush()
        self._printed, self._width = True, max(self._width, len(line))

    def __repr__(self) -> str:
        return self.format()


def progress(
    iterable: Iterable[Any] | None = None,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool = False,
    **kw: Any,
) -> Any:
    """A progress bar over ``iterable`` (or a manual one with ``total`` and ``update``).

    Returns ``tqdm.tqdm(...)`` when tqdm can be imported, else a :class:`SimpleProgress`
    printing to stderr. Extra keyword arguments (``leave``, ``unit_scale``, ``file`` ...) are
    passed to tqdm; the fallback understands the common ones and ignores the rest.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return SimpleProgress(iterable, total=total, desc=desc, unit=unit, disable=disable, **kw)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, **kw)
