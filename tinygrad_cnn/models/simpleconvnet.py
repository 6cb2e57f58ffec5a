"""SimpleConvNet: the book's chapter-7 network, same signature, PyTorch weight layouts.

conv(30@5x5) -> ReLU -> max-pool 2/2 -> Affine(100) -> ReLU -> Affine(10); 433,890 parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import nn
from ..tensor import Tensor


def _init_weight(weight: nn.Parameter, bias: nn.Parameter, std: Any) -> None:
    """The book's init: ``std * randn`` (std a float), or by name as the book's ``MultiLayerNet``:
    'relu'/'he' -> ``sqrt(2 / fan_in)``, 'sigmoid'/'xavier' -> ``sqrt(1 / fan_in)`` (the book's
    "Xavier", not PyTorch's ``xavier_normal_``, which also counts fan_out); zero biases."""
    if isinstance(std, str):
        if std.lower() in ("relu", "he"):
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        elif std.lower() in ("sigmoid", "xavier"):
            fan_in, _ = nn.init.calculate_fan_in_and_fan_out(weight)
            nn.init.normal_(weight, 0.0, (1.0 / max(fan_in, 1)) ** 0.5)
        else:
            raise ValueError(f"weight_init_std: unknown scheme {std!r} (use a float, 'he' or 'xavier')")
    else:
        nn.init.normal_(weight, 0.0, float(std))
    nn.init.zeros_(bias)


class SimpleConvNet(nn.Module):
    """x (N, C, H, W) -> logits (N, output_size)."""

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param: dict[str, int] | None = None, hidden_size: int = 100, output_size: int = 10,
                 weight_init_std: float | str = 0.01):
        super().__init__()
        p = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **(conv_param or {})}
        c, h, w = input_dim
        fs, pad, stride = p["filter_size"], p["pad"], p["stride"]
        conv_h = (h + 2 * pad - fs) // stride + 1
        conv_w = (w + 2 * pad - fs) // stride + 1
        pool_out = p["filter_num"] * (conv_h // 2) * (conv_w // 2)
        if conv_h < 2 or conv_w < 2:
            raise ValueError(f"SimpleConvNet: an input of {c}x{h}x{w} is too small for a {fs}x{fs} conv (padding "
                             f"{pad}, stride {stride}) and a 2x2 pool; its conv output would be {conv_h}x{conv_w}")
        self.input_dim = tuple(input_dim)
        self.conv1 = nn.Conv2d(c, p["filter_num"], fs, stride=stride, padding=pad)
        self.fc1 = nn.Linear(pool_out, hidden_size)
        self.fc2 = nn.Linear(hidden_size, output_size)
        for layer in (self.conv1, self.fc1, self.fc2):
            _init_weight(layer.weight, layer.bias, weight_init_std)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x), inplace=True), 2, 2)  # in place: one activation buffer less
        x = F.relu(self.fc1(x.flatten(1)), inplace=True)
        return self.fc2(x)

    def predict(self, x: Any) -> np.ndarray:
        """Class indices for a batch (the book's ``predict`` + argmax), in eval mode without a graph."""
        from ..tensor import no_grad

        with no_grad():
            return self(x if isinstance(x, Tensor) else Tensor(x)).data.argmax(axis=1)
