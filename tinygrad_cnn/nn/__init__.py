"""Neural-network building blocks: ``Module``, layers and ``init``."""

from . import init
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    ConvTranspose2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Identity,
    Linear,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool2d,
    ModuleList,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .module import Module, Parameter, StateDictError

__all__ = [
    "Module", "Parameter", "StateDictError", "init", "Sequential", "Conv2d", "ConvTranspose2d", "Linear", "ReLU",
    "Sigmoid", "Tanh", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "LocalResponseNorm",
    "Softmax", "Identity", "CrossEntropyLoss", "LogSoftmax", "ModuleList", "NLLLoss",
]
