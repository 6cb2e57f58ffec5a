"""The library's one random generator (dropout masks, weight init, shuffling defaults).

``manual_seed(s)`` makes a whole run reproducible; ``get_state``/``set_state`` let a
checkpoint resume exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng() -> np.random.Generator:
    return _rng


def get_state() -> dict[str, Any]:
    return _rng.bit_generator.state


def set_state(state: dict[str, Any]) -> None:
    _rng.bit_generator.state = state
