"""Hypercolumn colorization (Larsson et al., ECCV 2016; seed 003) at CPU scale.

A VGG-16-like backbone (five blocks of 2, 2, 3, 3, 3 convs, widths (64, 128, 256, 512, 512) x
`width`, max-pooling between blocks, random init, BatchNorm per block) gives features at
strides 1, 2, 4, 8 and 16; a global feature (average of the last block, one 1x1 conv: the
stand-in for VGG's fc7) is broadcast to every pixel. A pixel's **hypercolumn** is its L plus the
features of every depth bilinearly sampled at its position; a small MLP (1x1 convs) maps it to
logits of a hue and a chroma histogram (32 bins each, transforms.huechroma).

Sparse training (the seed's point): in train mode with `points` > 0 the model samples that many
random pixels per image (`F.grid_sample`, bilinear at the pixel centres) and runs the MLP only
there; forward then returns (N, 2·32 + 2, P, 1): the hue logits, the chroma logits and the
sampled positions (x, y in grid_sample's normalised coordinates) for the loss to fetch its
targets. In eval mode (or points = 0) it is dense: every level is upsampled bilinearly to the
output grid (1/`out_stride` of the input), concatenated and fed to the MLP, one image at a time
to keep memory bounded; forward returns (N, 64, H/s, W/s).

`decode(output, method, temperature)`: method 'annealed' (the default) decodes
softmax(logits / T) with the config's `chroma_decode` (median | mean | mode) and `hue_decode`
(mean = circular expectation | mode); 'median' = chroma median + hue expectation, 'mean' =
chroma and hue expectations, 'mode' = both modes (these three at T = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.base import Colorizer
from transforms import huechroma

DEFAULT_POINTS = 256  # pixels per image sampled in training (the seed: ~128)
DEFAULT_STRIDE = 2  # dense output at 1/2 of the input (the compose upsamples ab, keeps L)
VGG_WIDTHS = (64, 128, 256, 512, 512)
VGG_CONVS = (2, 2, 3, 3, 3)


def _block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout))


class Hypercolumn(Colorizer):
    """VGG-like backbone + hypercolumn MLP predicting hue and chroma histograms per pixel."""

    kind = "hypercolumn"
    decode_methods = ("annealed", "median", "mean", "mode")
    temperature_methods = ("annealed",)

    def __init__(
        self,
        width: float = 0.25,
        bins: int = huechroma.NUM_BINS,
        hidden: int = 128,
        points: int = DEFAULT_POINTS,
        out_stride: int = DEFAULT_STRIDE,
        chroma_decode: str = "median",
        hue_decode: str = "mean",
    ):
        super().__init__()
        if chroma_decode not in huechroma.CHROMA_METHODS or hue_decode not in huechroma.HUE_METHODS:
            raise ValueError(f"bad decode settings {chroma_decode!r}, {hue_decode!r}")
        widths = [max(8, int(round(c * width))) for c in VGG_WIDTHS]
        self.bins, self.points, self.out_stride = bins, points, out_stride
        self.chroma_decode, self.hue_decode = chroma_decode, hue_decode
        cins = [1, *widths[:-1]]
        self.blocks = nn.ModuleList(
            _block(ci, co, n) for ci, co, n in zip(cins, widths, VGG_CONVS, strict=True)
        )
        g = widths[-1] // 2
        self.global_feature = nn.Sequential(nn.Conv2d(widths[-1], g, 1), nn.ReLU(True))
        self.hypercolumn_channels = 1 + sum(widths) + g
        self.mlp = nn.Sequential(
            nn.Conv2d(self.hypercolumn_channels, hidden, 1),
            nn.ReLU(True),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(True),
            nn.Conv2d(hidden, 2 * bins, 1),
        )

    def levels(self, l_norm: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Features of every depth (input L first) and the global feature (N, g, 1, 1)."""
        feats, x = [l_norm], l_norm
        for i, block in enumerate(self.blocks):
            x = block(F.max_pool2d(x, 2) if i else x)
            feats.append(x)
        return feats, self.global_feature(x.mean(dim=(2, 3), keepdim=True))

    def sample(self, l_norm: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2·bins, P, 1) at positions grid (N, P, 1, 2), grid_sample's normalised
        (x, y) in [-1, 1] (align_corners=False: -1 and 1 are the outer pixel edges)."""
        feats, glob = self.levels(l_norm)
        cols = [
            F.grid_sample(f, grid, mode="bilinear", padding_mode="border", align_corners=False)
            for f in feats
        ]
        cols.append(glob.expand(-1, -1, grid.shape[1], 1))
        return self.mlp(torch.cat(cols, dim=1))

    def dense(self, l_norm: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """Logits (N, 2·bins, H/s, W/s) on the whole output grid, one image at a time."""
        s = stride or self.out_stride
        size = (max(1, l_norm.shape[-2] // s), max(1, l_norm.shape[-1] // s))
        out = []
        for x in l_norm.split(1):
            feats, glob = self.levels(x)
            cols = [
                F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats
            ]
            cols.append(glob.expand(-1, -1, *size))
            out.append(self.mlp(torch.cat(cols, dim=1)))
        return torch.cat(out)

    def dense_batched(self, l_norm: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """As `dense`, for the whole batch at once (the memory-hungry dense training step)."""
        s = stride or self.out_stride
        size = (max(1, l_norm.shape[-2] // s), max(1, l_norm.shape[-1] // s))
        feats, glob = self.levels(l_norm)
        cols = [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats]
        cols.append(glob.expand(-1, -1, *size))
        return self.mlp(torch.cat(cols, dim=1))

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        if self.training and self.points > 0:
            grid = random_pixel_grid(l_norm.shape[0], *l_norm.shape[-2:], self.points, l_norm)
            logits = self.sample(l_norm, grid)
            return torch.cat([logits, grid.permute(0, 3, 1, 2)], dim=1)
        if self.training:
            return self.dense_batched(l_norm)
        return self.dense(l_norm)

    def split(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hue logits, chroma logits), each (N, bins, ...)."""
        return output[:, : self.bins], output[:, self.bins : 2 * self.bins]

    def decode(
        self,
        output: torch.Tensor,
        size: tuple[int, int] | None = None,
        temperature: float = 1.0,
        method: str = "annealed",
        **_,
    ) -> torch.Tensor:
        """Dense logits -> ab (N, 2, h, w) in Lab units (upsampled to `size`)."""
        hue_logits, chroma_logits = self.split(output.float())
        if method == "annealed":
            t, chroma, hue = max(float(temperature), 1e-3), self.chroma_decode, self.hue_decode
        elif method in ("median", "mean", "mode"):
            t, chroma, hue = 1.0, method, "mode" if method == "mode" else "mean"
        else:
            raise ValueError(f"hypercolumn decode method {method!r}: annealed|median|mean|mode")
        ph = huechroma.softmax(hue_logits.permute(0, 2, 3, 1).cpu().numpy(), t)
        pc = huechroma.softmax(chroma_logits.permute(0, 2, 3, 1).cpu().numpy(), t)
        ab = torch.from_numpy(huechroma.decode_ab(ph, pc, chroma, hue)).permute(0, 3, 1, 2)
        ab = ab.to(output.device)
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False) if size else ab


def pixel_grid(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Integer pixel positions (N, P, 2) as (x, y) -> grid_sample coordinates (N, P, 1, 2)
    of those pixels' centres (align_corners=False)."""
    scale = torch.tensor([width, height], dtype=torch.float32, device=xy.device)
    return ((xy.float() + 0.5) / scale * 2.0 - 1.0)[:, :, None]


def random_pixel_grid(n: int, height: int, width: int, points: int, like: torch.Tensor):
    """`points` random pixel centres per image (torch's global RNG), (N, P, 1, 2)."""
    x = torch.randint(0, width, (n, points, 1), device=like.device)
    y = torch.randint(0, height, (n, points, 1), device=like.device)
    return pixel_grid(torch.cat([x, y], dim=2), height, width).to(like.dtype)
