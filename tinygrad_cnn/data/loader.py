"""``DataLoader``: mini-batches of NumPy arrays, with reproducible, resumable shuffling."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["DataLoader", "shift_images"]


class _Samples:
    """``(x, y)`` seen as a sequence of ``(x[i], y[i])`` pairs (what ``DataLoader.dataset`` gives)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.x[i], self.y[i]


class DataLoader:
    """Iterate ``(xb, yb)`` mini-batches over paired arrays ``x`` ``(N, ...)`` and ``y`` ``(N, ...)``.

    - ``len(loader)`` is the number of batches per epoch: ``ceil(N / batch_size)``, or
      ``N // batch_size`` with ``drop_last`` (the short tail batch is skipped).
    - With ``shuffle`` each ``iter(loader)`` (each epoch) draws a fresh permutation from the
      loader's own ``np.random.default_rng(seed)``: seeded runs are reproducible and the global
      NumPy RNG is untouched. Every sample appears exactly once per epoch.
    - Batches keep the arrays' dtypes (no float64 upcast). Without shuffling they are views
      (slices) of ``x`` and ``y``; with shuffling they are copies.
    - ``random_shift=m`` (images ``(N, ..., H, W)`` only) translates every sample by its own
      (dy, dx) in ``[-m, m]`` (zero fill, :func:`shift_images`); each epoch's shifts are drawn
      from the loader's RNG right after its permutation. Shifted batches are copies.
    - ``state_dict()`` / ``load_state_dict()`` capture the RNG and the position inside the
      current epoch, so a resumed run sees exactly the batches (and shifts) it would have seen.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int = 100,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        random_shift: int = 0,
    ) -> None:
        try:
            x = x if isinstance(x, np.ndarray) else np.asarray(x)
            y = y if isinstance(y, np.ndarray) else np.asarray(y)
        except ValueError as exc:  # a ragged nested list
            raise ValueError(f"DataLoader: x and y must be arrays: {exc}") from None
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError("x and y must have a leading sample dimension")
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: len(x) = {len(x)}, len(y) = {len(y)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if isinstance(random_shift, bool) or not isinstance(random_shift, int | np.integer) or random_shift < 0:
            raise ValueError(f"random_shift must be a non-negative integer, got {random_shift!r}")
        if random_shift and x.ndim < 3:
            raise ValueError(f"random_shift needs images (N, ..., H, W), got x of shape {x.shape}")
        self.random_shift = int(random_shift)
        self.seed = seed
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"DataLoader: seed must be None or a non-negative integer, got {seed!r} ({exc})") from None
        self.epoch = 0  # completed epochs
        # Resume bookkeeping: the RNG state from before the current epoch's permutation was
        # drawn, and how many batches of that epoch have been handed out.
        self._epoch_rng_state: dict[str, Any] | None = None
        self._batch_index = 0
        self._skip = 0

    @property
    def dataset(self) -> _Samples:
        """The samples, as PyTorch's ``loader.dataset``: ``len(loader.dataset)`` and ``[i] -> (x[i], y[i])``."""
        return _Samples(self.x, self.y)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Draw the permutation now (not lazily at the first next()) so the epoch is fixed.
        self._epoch_rng_state = copy.deepcopy(self.rng.bit_generator.state)
        order = self.rng.permutation(len(self.x)) if self.shuffle else None
        # The whole epoch's shifts are drawn up front too, so a mid-epoch resume replays them.
        m = self.random_shift
        shifts = self.rng.integers(-m, m + 1, size=(len(self.x), 2)) if m else None
        skip, self._skip = self._skip, 0
        self._batch_index = skip
        return self._batches(order, skip, shifts)

    def _batches(self, order: np.ndarray | None, skip: int,
                 shifts: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n, bs = len(self.x), self.batch_size
        for b in range(skip, len(self)):
            lo, hi = b * bs, min((b + 1) * bs, n)
            idx = np.arange(lo, hi) if order is None else order[lo:hi]
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                xb, yb = self.x[idx], self.y[idx]
            if shifts is not None:
                xb = shift_images(xb, shifts[idx])
            self._batch_index = b + 1
            yield xb, yb
        self.epoch += 1
        self._epoch_rng_state = None
        self._batch_index = 0

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable resume state: RNG bit-generator state, batch position, epoch count.

        Taken mid-epoch, it records the RNG state *before* that epoch's permutation and the
        number of batches already yielded, so the next ``iter()`` after ``load_state_dict``
        replays the same permutation from the next batch on.
        """
        if self._skip:  # restored but not iterated yet: pass the pending resume point on
            state, batch_index, epoch = self.rng.bit_generator.state, self._skip, self.epoch
        elif self._epoch_rng_state is not None and self._batch_index < len(self):
            state, batch_index, epoch = self._epoch_rng_state, self._batch_index, self.epoch
        elif self._epoch_rng_state is not None:  # last batch handed out: the epoch is done
            state, batch_index, epoch = self.rng.bit_generator.state, 0, self.epoch + 1
        else:
            state, batch_index, epoch = self.rng.bit_generator.state, 0, self.epoch
        return {"bit_generator": copy.deepcopy(state), "batch_index": batch_index, "epoch": epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next ``iter()`` continues where it was taken."""
        if not isinstance(state, dict):
            raise TypeError(f"DataLoader.load_state_dict: expected a dict (from state_dict()), got "
                            f"{type(state).__name__}")
        try:
            bit_state, batch_index, epoch = state["bit_generator"], state["batch_index"], state["epoch"]
        except KeyError as e:
            raise KeyError(f"DataLoader state is missing key {e.args[0]!r}") from None
        if not isinstance(bit_state, dict) or "bit_generator" not in bit_state:
            raise ValueError(f"DataLoader state: bit_generator must be a NumPy bit-generator state dict, got "
                             f"{bit_state!r:.60}")
        if bit_state["bit_generator"] != type(self.rng.bit_generator).__name__:
            raise ValueError(
                f"DataLoader state is for bit generator {bit_state['bit_generator']!r}, "
                f"this loader uses {type(self.rng.bit_generator).__name__!r}"
            )
        for key, v in (("batch_index", batch_index), ("epoch", epoch)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"DataLoader state: {key} must be a non-negative integer, got {v!r}")
        if not 0 <= int(batch_index) <= len(self):
            raise ValueError(f"batch_index {batch_index} out of range for {len(self)} batches")
        try:
            self.rng.bit_generator.state = copy.deepcopy(bit_state)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"DataLoader state: invalid {bit_state['bit_generator']} state ({exc})") from None
        self.epoch = int(epoch)
        self._skip = int(batch_index)
        self._epoch_rng_state = None
        self._batch_index = 0

    def __repr__(self) -> str:
        return (
            f"DataLoader(n={len(self.x)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, random_shift={self.random_shift}, batches={len(self)})"
        )


def shift_images(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Translate each image of ``x: (N, ..., H, W)`` by ``shifts: (N, 2)`` = (dy, dx) pixels, zero fill.

    Random shifts of 1-2 pixels are the classic augmentation for digits: with only 4,000
    training images (mnist-sample) they lift SimpleConvNet from 96.9% to 97.8% test accuracy (docs/results.md).
    One padded copy and one gather, no loop over images.
    """
    shifts = np.asarray(shifts)
    if x.ndim < 3:
        raise ValueError(f"shift_images: x must be images (N, ..., H, W), got shape {x.shape}")
    if shifts.shape != (x.shape[0], 2) or shifts.dtype.kind not in "iu":
        raise ValueError(f"shift_images: shifts must be integers of shape (N, 2) = {(x.shape[0], 2)}, got "
                         f"{shifts.dtype} {shifts.shape}")
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    m = int(np.abs(shifts).max(initial=0))
    if m == 0:
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(m, m), (m, m)]
    padded = np.pad(x, pad)
    lead = (slice(None),) * (x.ndim - 3)
    rows = (m - shifts[:, 0])[:, None] + np.arange(h)  # (N, H): source row of each output row
    cols = (m - shifts[:, 1])[:, None] + np.arange(w)  # (N, W)
    b = np.arange(n)
    # move the batch axis next to the gathered axes so advanced indexing keeps (N, ..., H, W)
    moved = np.moveaxis(padded, 0, -3)  # (..., N, H+2m, W+2m)
    out = moved[(*lead, b[:, None, None], rows[:, :, None], cols[:, None, :])]  # (..., N, H, W)
    return np.ascontiguousarray(np.moveaxis(out, -3, 0))
