"""Small CPU-trainable models: the eccv16 design with a width multiplier and fewer blocks.

`SmallTrunk` maps normalised L (N, 1, H, W) to features at 1/4 resolution. On top of it:
  - `ECCV16Small`: logits over the Q gamut bins (Zhang-style classification),
  - `Regression`: ab / 110 directly (Cheong-style L2/Huber regression baseline).
"""

from __future__ import annotations

import torch
from torch import nn

from models.base import ClassificationColorizer, Colorizer
from transforms import bins


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation), nn.ReLU(True)]


class SmallTrunk(nn.Module):
    """eccv16's conv1..conv8 with widths (64, 128, 256, 512) x `width`, two convs a block,
    one dilated block instead of two, and a skip from conv2 into the 1/4-resolution head."""

    def __init__(self, width: float = 0.25):
        super().__init__()
        c1, c2, c3, c4 = (max(8, int(round(c * width))) for c in (64, 128, 256, 512))
        self.out_channels = c3
        self.block1 = nn.Sequential(*_conv(1, c1), *_conv(c1, c1, 2), nn.BatchNorm2d(c1))
        self.block2 = nn.Sequential(*_conv(c1, c2), *_conv(c2, c2, 2), nn.BatchNorm2d(c2))
        self.block3 = nn.Sequential(*_conv(c2, c3), *_conv(c3, c3, 2), nn.BatchNorm2d(c3))
        self.block4 = nn.Sequential(*_conv(c3, c4), *_conv(c4, c4), nn.BatchNorm2d(c4))
        self.block5 = nn.Sequential(
            *_conv(c4, c4, dilation=2), *_conv(c4, c4, dilation=2), nn.BatchNorm2d(c4)
        )
        self.block6 = nn.Sequential(*_conv(c4, c4), *_conv(c4, c4), nn.BatchNorm2d(c4))
        self.up = nn.Sequential(nn.ConvTranspose2d(c4, c3, 4, stride=2, padding=1), nn.ReLU(True))
        self.skip = nn.Conv2d(c2, c3, 1)
        self.head = nn.Sequential(*_conv(c3, c3), *_conv(c3, c3))

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        f2 = self.block2(self.block1(l_norm))
        x = self.block6(self.block5(self.block4(self.block3(f2))))
        return self.head(self.up(x) + self.skip(f2))


class ECCV16Small(ClassificationColorizer):
    """Classification over the Q in-gamut bins on a SmallTrunk."""

    def __init__(self, width: float = 0.25, num_bins: int | None = None):
        q = num_bins or bins.num_bins()
        super().__init__(q)
        self.trunk = SmallTrunk(width)
        self.classifier = nn.Conv2d(self.trunk.out_channels, q, 1)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(l_norm))


class Regression(Colorizer):
    """ab regression (output ab / 110) on a SmallTrunk: the baseline that turns sepia."""

    def __init__(self, width: float = 0.25):
        super().__init__()
        self.trunk = SmallTrunk(width)
        self.regressor = nn.Conv2d(self.trunk.out_channels, 2, 1)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.trunk(l_norm))
