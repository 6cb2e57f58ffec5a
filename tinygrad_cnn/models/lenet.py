"""LeNet-5 (LeCun et al., 1998) for 1x28x28 digits.

conv 6@5x5 (pad 2) -> pool -> conv 16@5x5 -> pool -> FC 400-120-84-classes; 61,706 parameters.
``classic=False``: ReLU + max-pool (the modern reading). ``classic=True``: sigmoid + average-pool
subsampling, the 1998 flavour the book contrasts it with.
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, classic: bool = False, in_channels: int = 1):
        super().__init__()
        self.classic = classic
        # ReLUs run in place (their inputs are fresh conv/linear outputs): one buffer less per layer
        act, pool = (nn.Sigmoid, nn.AvgPool2d) if classic else (lambda: nn.ReLU(inplace=True), nn.MaxPool2d)
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.act1 = act()
        self.pool1 = pool(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2 = act()
        self.pool2 = pool(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.act3 = act()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = act()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.flatten(x)
        x = self.act3(self.fc1(x))
        x = self.act4(self.fc2(x))
        return self.fc3(x)
