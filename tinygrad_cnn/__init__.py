"""tinygrad_cnn: a small, readable autograd engine in NumPy for convolutional networks.

``Tensor`` records every op; ``backward()`` walks the graph. ``functional`` holds the
differentiable primitives (im2col convolution, pooling, activations, losses), ``nn`` the
PyTorch-style modules, ``models`` SimpleConvNet/LeNet5/AlexNet, ``optim`` the optimizers.
``viz``, ``onnx``, ``data`` and ``training`` load on first use so ``import tinygrad_cnn`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import functional, models, nn, optim, random
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .profiler import _start_from_env, env_enabled, profile
from .random import manual_seed
from .serialization import CheckpointError, load, save
from .tensor import Function, Tensor, enable_grad, flatten, grad, is_grad_enabled, no_grad, set_grad_enabled

__version__ = "0.1.0"

_LAZY = ("viz", "onnx", "data", "training", "profiler")


if env_enabled():  # TINYGRAD_CNN_PROFILE=1: time every op of the program, print the table at exit
    _start_from_env()
del _start_from_env, env_enabled


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            # hasattr() and getattr(..., default) expect AttributeError for a part not in this build
            raise AttributeError(f"module 'tinygrad_cnn' has no attribute {name!r} ({exc})") from None
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinygrad_cnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "Tensor", "Function", "flatten", "no_grad", "enable_grad", "grad", "is_grad_enabled", "set_grad_enabled",
    "gradcheck", "gradgradcheck", "GradcheckError", "manual_seed", "save", "load", "CheckpointError",
    "functional", "nn", "optim", "models", "random", "viz", "onnx", "data", "training", "profiler", "profile",
]
