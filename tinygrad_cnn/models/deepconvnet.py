"""DeepConvNet: the book's chapter-8 network for digits (six 3x3 convs, He init, dropout).

conv16-conv16-pool-conv32-conv32(pad 2)-pool-conv64-conv64-pool-Affine50-dropout-Affine10-dropout.
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor


class DeepConvNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, hidden_size: int = 50, dropout: float = 0.5):
        super().__init__()
        spec = [(in_channels, 16, 1), (16, 16, 1), (16, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 1)]
        self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6 = (
            nn.Conv2d(i, o, 3, padding=p) for i, o, p in spec
        )
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 4 * 4, hidden_size)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_size, num_classes)
        self.drop2 = nn.Dropout(dropout)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        r, pool = self.relu, self.pool
        x = pool(r(self.conv2(r(self.conv1(x)))))          # 28 -> 14
        x = pool(r(self.conv4(r(self.conv3(x)))))          # 14 -> 16 -> 8
        x = pool(r(self.conv6(r(self.conv5(x)))))          # 8 -> 4
        x = self.drop1(r(self.fc1(self.flatten(x))))
        return self.drop2(self.fc2(x))
