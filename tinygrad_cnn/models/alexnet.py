"""AlexNet (Krizhevsky et al., 2012), single tower, and AlexNetSmall for 28x28 / 32x32 images.

Both follow the same pattern: conv -> ReLU -> LRN -> overlapping max-pool 3/2 blocks, three
more 3x3 convs, then a dropout fully-connected head.
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor


class _AlexNetPattern(nn.Module):
    """The shared layout: conv-ReLU-LRN-pool x2, three 3x3 convs, pool, dropout FC head."""

    def _build(self, in_channels: int, widths: tuple[int, int, int, int, int], conv1: tuple[int, int, int],
               conv2_kernel: int, flat: int, hidden: int, num_classes: int, dropout: float) -> None:
        c1, c2, c3, c4, c5 = widths
        k1, s1, p1 = conv1
        self.conv1 = nn.Conv2d(in_channels, c1, k1, stride=s1, padding=p1)
        self.relu1 = nn.ReLU(inplace=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(c1, c2, conv2_kernel, padding=conv2_kernel // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.relu4 = nn.ReLU(inplace=True)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        self.relu5 = nn.ReLU(inplace=True)
        self.pool5 = nn.MaxPool2d(3, 2)
        self.flatten = nn.Flatten()
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(flat, hidden)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu7 = nn.ReLU(inplace=True)
        self.fc3 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.lrn1(self.relu1(self.conv1(x))))
        x = self.pool2(self.lrn2(self.relu2(self.conv2(x))))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.pool5(self.relu5(self.conv5(x)))
        x = self.flatten(x)
        x = self.relu6(self.fc1(self.drop1(x)))
        x = self.relu7(self.fc2(self.drop2(x)))
        return self.fc3(x)


class AlexNet(_AlexNetPattern):
    """3x224x224 -> logits; 96-256-384-384-256 convs, LRN(5, k=2) after conv1/conv2; 62,378,344 params.

    conv1 11x11/4 pad 2 (224 -> 55), pool 3/2 (-> 27), conv2 5x5 pad 2, pool (-> 13), conv3-5 3x3
    pad 1, pool (-> 6), then dropout-9216-4096-dropout-4096-classes.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self._build(in_channels, (96, 256, 384, 384, 256), conv1=(11, 4, 2), conv2_kernel=5,
                    flat=256 * 6 * 6, hidden=4096, num_classes=num_classes, dropout=dropout)


def _pooled(size: int, times: int) -> int:
    for _ in range(times):
        size = (size - 3) // 2 + 1
    return size


class AlexNetSmall(_AlexNetPattern):
    """AlexNet's pattern sized for ``input_size`` 28 (digits) or 32 (CIFAR-like) images.

    conv1 5x5 pad 2 (no stride), widths ``width * (1, 2, 3, 3, 2)``, a ``hidden``-wide FC head.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 width: int = 32, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        side = _pooled(input_size, 3)
        if side < 1:
            raise ValueError(f"AlexNetSmall: input_size {input_size} is too small for three 3/2 poolings")
        w = width
        self._build(in_channels, (w, 2 * w, 3 * w, 3 * w, 2 * w), conv1=(5, 1, 2), conv2_kernel=5,
                    flat=2 * w * side * side, hidden=hidden, num_classes=num_classes, dropout=dropout)
