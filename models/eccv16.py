"""Zhang et al. ECCV16 colorization generator, layer for layer as richzhang/colorization
`colorizers/eccv16.py`, so the released `colorization_release_v2-9b330a0b.pth` loads with
strict=True (82 state_dict entries, 32,236,011 parameters).

forward(l_norm) returns the logits of conv8_3 (N, Q, H/4, W/4). The bin centres live in
`model_out.weight` (2, Q, 1, 1) in units of ab/110, exactly where the official checkpoint keeps
them, so `decode` uses the checkpoint's own 313 bins. The authors' own run of it (softmax at
T = 1, expectation, `upsample4` x4 bilinear, bilinear to the original size) is
models.official's `pipeline: "authors"`, the default for this model.
"""

from __future__ import annotations

import torch
from torch import nn

from models.base import ClassificationColorizer


def _convs(cin: int, cout: int, n: int, last_stride: int = 1, dilation: int = 1) -> list:
    layers: list[nn.Module] = []
    for i in range(n):
        stride = last_stride if i == n - 1 else 1
        layers += [
            nn.Conv2d(
                cin if i == 0 else cout,
                cout,
                3,
                stride=stride,
                padding=dilation,
                dilation=dilation,
                bias=True,
            ),
            nn.ReLU(True),
        ]
    return layers


class ECCV16(ClassificationColorizer):
    """The ECCV16 generator; `num_bins` is 313 for official weights."""

    def __init__(self, num_bins: int = 313, bins: torch.Tensor | None = None):
        super().__init__(num_bins, bins)
        self.model1 = nn.Sequential(*_convs(1, 64, 2, last_stride=2), nn.BatchNorm2d(64))
        self.model2 = nn.Sequential(*_convs(64, 128, 2, last_stride=2), nn.BatchNorm2d(128))
        self.model3 = nn.Sequential(*_convs(128, 256, 3, last_stride=2), nn.BatchNorm2d(256))
        self.model4 = nn.Sequential(*_convs(256, 512, 3), nn.BatchNorm2d(512))
        self.model5 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model6 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model7 = nn.Sequential(*_convs(512, 512, 3), nn.BatchNorm2d(512))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, bias=True),
            nn.ReLU(True),
            *_convs(256, 256, 2),
            nn.Conv2d(256, num_bins, 1, bias=True),
        )
        self.softmax = nn.Softmax(dim=1)
        self.upsample4 = nn.Upsample(scale_factor=4, mode="bilinear")

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x = l_norm
        for block in (
            self.model1,
            self.model2,
            self.model3,
            self.model4,
            self.model5,
            self.model6,
            self.model7,
            self.model8,
        ):
            x = block(x)
        return x
