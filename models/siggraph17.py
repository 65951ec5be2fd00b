"""Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned Deep Priors"):
the released generator, layer for layer as richzhang/colorization `colorizers/siggraph17.py`,
so `siggraph17-df00044c.pth` loads with strict=True (107 state_dict entries with the BatchNorm
counters, 34,187,027 parameters).

Input: 4 channels, (L - 50) / 100, the hint ab map / 110, the hint mask (1 where a hint is).
Zeros for the last three mean "no hints" (what the authors' demo feeds). Ten blocks: conv1..7
as eccv16 (strided *slicing* [::2, ::2] between blocks 1-2-3-4 instead of strided convs), then
three upsampling blocks each adding a shortcut from the encoder: conv3 -> 8, conv2 -> 9,
conv1 -> 10. Two heads: `model_class` (529-way classification at 1/4 resolution, used by the
authors only in training) and `model_out` (1x1 conv + tanh at full resolution), whose output
x 110 is the ab the released pipeline shows. forward returns that tanh output (ab / 110) at
the input size; `decode` (regression, models.base) multiplies by 110.
"""

from __future__ import annotations

import torch
from torch import nn

from models.base import Colorizer


def _block(channels: list[int], dilation: int = 1, pre_relu: bool = False) -> nn.Sequential:
    """[ReLU] + (3x3 conv + ReLU) per step + BatchNorm: the reference's conv blocks."""
    layers: list[nn.Module] = [nn.ReLU(True)] if pre_relu else []
    for cin, cout in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(channels[-1]))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))


def _short(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1))


class SIGGRAPH17(Colorizer):
    """The user-guided generator. forward(l_norm, ab_hint=None, mask=None) -> ab / 110.

    l_norm: (N, 1, H, W) = (L - 50) / 100; ab_hint: (N, 2, H, W) hint ab / 110 (0 where no
    hint); mask: (N, 1, H, W), 1 at hinted pixels, else 0. H and W must be multiples of 8.
    """

    kind = "regression"
    takes_hints = True

    def __init__(self, classes: int = 529):
        super().__init__()
        self.model1 = _block([4, 64, 64])
        self.model2 = _block([64, 128, 128])
        self.model3 = _block([128, 256, 256, 256])
        self.model4 = _block([256, 512, 512, 512])
        self.model5 = _block([512, 512, 512, 512], dilation=2)
        self.model6 = _block([512, 512, 512, 512], dilation=2)
        self.model7 = _block([512, 512, 512, 512])
        self.model8up = _up(512, 256)
        self.model3short8 = _short(256, 256)
        self.model8 = _block([256, 256, 256], pre_relu=True)
        self.model9up = _up(256, 128)
        self.model2short9 = _short(128, 128)
        self.model9 = _block([128, 128], pre_relu=True)
        self.model10up = _up(128, 128)
        self.model1short10 = _short(64, 128)
        self.model10 = nn.Sequential(
            nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(negative_slope=0.2)
        )
        self.model_class = nn.Sequential(nn.Conv2d(256, classes, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def forward(
        self,
        l_norm: torch.Tensor,
        ab_hint: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ab_hint is None:
            ab_hint = l_norm.new_zeros(l_norm.shape[0], 2, *l_norm.shape[2:])
        if mask is None:
            mask = l_norm.new_zeros(l_norm.shape)
        conv1 = self.model1(torch.cat([l_norm, ab_hint, mask], dim=1))
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        x = self.model4(conv3[:, :, ::2, ::2])
        x = self.model7(self.model6(self.model5(x)))
        x = self.model8(self.model8up(x) + self.model3short8(conv3))
        x = self.model9(self.model9up(x) + self.model2short9(conv2))
        x = self.model10(self.model10up(x) + self.model1short10(conv1))
        return self.model_out(x)
