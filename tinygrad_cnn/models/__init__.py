"""Models written as plain forward code: SimpleConvNet, LeNet5, AlexNet, AlexNetSmall, DeepConvNet."""

from __future__ import annotations

from typing import Any

from ..nn import Module
from .alexnet import AlexNet, AlexNetSmall
from .deepconvnet import DeepConvNet
from .lenet import LeNet5
from .simpleconvnet import SimpleConvNet

# CLI name -> (constructor, default input shape without the batch axis)
MODELS: dict[str, tuple[Any, tuple[int, int, int]]] = {
    "simpleconvnet": (SimpleConvNet, (1, 28, 28)),
    "lenet5": (LeNet5, (1, 28, 28)),
    "lenet5-classic": (lambda **kw: LeNet5(classic=True, **kw), (1, 28, 28)),
    "alexnet-small": (AlexNetSmall, (1, 28, 28)),
    "deepconvnet": (DeepConvNet, (1, 28, 28)),
    "alexnet": (AlexNet, (3, 224, 224)),
}


def model_class(name: str) -> type[Module]:
    """The model class of a command-line name (``simpleconvnet``, ``lenet5``, ``alexnet``, ...)."""
    key = name.lower().replace("_", "-")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[key][0]


def get_model(name: str, **kwargs: Any) -> Module:
    """Build a model by its command-line name (``simpleconvnet``, ``lenet5``, ``alexnet``, ...)."""
    return model_class(name)(**kwargs)


def input_shape(name: str) -> tuple[int, int, int]:
    """The (C, H, W) a model takes by default."""
    return MODELS[name.lower().replace("_", "-")][1]


__all__ = ["SimpleConvNet", "LeNet5", "AlexNet", "AlexNetSmall", "DeepConvNet", "MODELS", "get_model",
           "model_class", "input_shape"]
