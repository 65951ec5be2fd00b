"""`siggraph17-small`: a hint-conditioned colorizer (Zhang et al. 2017's design, CPU-sized).

Input, as Zhang 2017: normalised L, the hint ab map (ab / 110, 0 where no hint) and the hint
mask (1 on hinted pixels), stacked to 4 channels. The trunk is eccv16-small's
(models.small.SmallTrunk: same widths and parameter names, so its weights initialise ours;
only conv1 gains three input channels) and ends at 1/4 resolution; U-Net shortcuts bring
back the 1/2-resolution conv1 features (Zhang's 2 -> 9) and full-resolution features of the
input (1 -> 10), so a hint acts at its own pixels. Regression head: 1x1 conv -> tanh, ab / 110
(as Zhang 2017's regression output): tanh bounds the ab to the Lab range the data can reach,
so no prediction leaves +-110 however far the inputs are from the training data.

`residual=True` (the shipped model): the network also gets the inverse-distance propagation
of the hints at its own resolution (`propagate_hints`, two more input channels) and its
output is that propagation plus a learned correction, clipped to +-1 (ab / 110). With zero
correction the output is the propagation (the IDW baseline), so training only has to improve
on it; without hints the propagation is zero and the output is the network's own prediction.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from models.base import AB_SCALE, Colorizer
from models.small import SmallTrunk, _conv

log = logging.getLogger(__name__)
PROP_CELL = 4  # propagate_hints pools hinted pixels into cells of this side
HUBER_DELTA = 1.0 / AB_SCALE  # Zhang 2017: smooth-L1 with delta 1 ab unit (in ab / 110 units)


class SiggraphSmall(Colorizer):
    """siggraph17-small: forward(l_norm, ab_hint, mask) -> ab / 110 at the input size."""

    takes_hints = True

    def __init__(self, width: float = 0.25, residual: bool = False):
        super().__init__()
        self.residual = residual
        cin = 6 if residual else 4  # L + ab hints + mask (+ propagated ab)
        self.trunk = SmallTrunk(width)
        c1 = self.trunk.block1[0].out_channels
        c2 = self.trunk.block2[0].out_channels
        c3 = self.trunk.out_channels
        self.trunk.block1[0] = nn.Conv2d(cin, c1, 3, 1, padding=1)
        self.full = nn.Sequential(*_conv(cin, c1))  # full-resolution input features (1 -> 10)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(True))
        self.short2 = nn.Conv2d(c1, c2, 1)  # conv1 output at 1/2 resolution (2 -> 9)
        self.head2 = nn.Sequential(*_conv(c2, c2))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(True))
        self.short1 = nn.Conv2d(c1, c1, 1)
        self.head1 = nn.Sequential(*_conv(c1, c1))
        self.regressor = nn.Conv2d(c1, 2, 1)

    def forward(
        self,
        l_norm: torch.Tensor,
        ab_hint: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n, _, h, w = l_norm.shape
        if ab_hint is None:
            ab_hint = l_norm.new_zeros(n, 2, h, w)
        if mask is None:
            mask = l_norm.new_zeros(n, 1, h, w)
        prop = propagate_hints(ab_hint, mask) if self.residual else None
        x = torch.cat([l_norm, ab_hint, mask] + ([prop] if self.residual else []), dim=1)
        t = self.trunk
        f1 = t.block1(x)  # 1/2
        f2 = t.block2(f1)  # 1/4
        y = t.block6(t.block5(t.block4(t.block3(f2))))  # 1/8
        y = t.head(t.up(y) + t.skip(f2))  # 1/4 (3 -> 8)
        y = self.head2(_fit(self.up2(y), f1) + self.short2(f1))  # 1/2 (2 -> 9)
        y = self.head1(_fit(self.up1(y), x) + self.short1(self.full(x)))  # full (1 -> 10)
        correction = torch.tanh(self.regressor(y))
        if not self.residual:
            return correction
        return (prop + correction).clamp(-1.0, 1.0)

    def load_init(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Copy every tensor of `state` whose name and shape match (e.g. eccv16-small's trunk);
        an input conv with fewer input channels (eccv16-small's L-only conv1, the 4-channel
        convs of a non-residual siggraph17-small) fills our first channels, the others start
        at 0. Returns the names copied."""
        own = self.state_dict()
        copied = []
        with torch.no_grad():
            for k, v in state.items():
                if k not in own:
                    continue
                v = v.float()
                if own[k].shape == v.shape:
                    own[k].copy_(v)
                elif (
                    k in ("trunk.block1.0.weight", "full.0.weight")
                    and v.ndim == 4
                    and v.shape[0] == own[k].shape[0]
                    and v.shape[1] < own[k].shape[1]
                    and v.shape[2:] == own[k].shape[2:]
                ):
                    own[k].zero_()
                    own[k][:, : v.shape[1]].copy_(v)
                else:
                    continue
                copied.append(k)
        log.info("initialised %d of %d tensors", len(copied), len(own))
        return copied


def _fit(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop or pad x to like's spatial size (odd input sizes)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def propagate_hints(
    ab_hint: torch.Tensor, mask: torch.Tensor, cell: int = PROP_CELL, power: float = 2.0
) -> torch.Tensor:
    """Inverse-distance propagation of a hint map over its own grid: ab_hint (N, 2, H, W),
    mask (N, 1, H, W) -> (N, 2, H, W), zeros for an image without hints.

    Hinted pixels are pooled into `cell` x `cell` cells (colour = mean hint ab, position =
    centroid of the hinted pixels, weight = their count), so the cost is pixels x cells;
    every pixel takes sum_i c_i ab_i / d_i^power / sum_i c_i / d_i^power, and a hinted pixel
    keeps its own hint colour."""
    n, _, h, w = ab_hint.shape
    m = (mask > 0.5).to(ab_hint.dtype)
    out = torch.zeros_like(ab_hint)
    if not bool(m.any()):
        return out
    ph, pw = -h % cell, -w % cell
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=ab_hint.dtype, device=ab_hint.device),
        torch.arange(w, dtype=ab_hint.dtype, device=ab_hint.device),
        indexing="ij",
    )
    grid = torch.stack([xx, yy]).expand(n, 2, h, w)
    stack = torch.cat([m, ab_hint * m, grid * m], 1)  # count, ab sums, position sums
    pooled = F.avg_pool2d(F.pad(stack, (0, pw, 0, ph)), cell) * (cell * cell)
    pix = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)  # (HW, 2)
    for i in range(n):
        cnt = pooled[i, 0].reshape(-1)
        keep = cnt > 0
        if not bool(keep.any()):
            continue
        c = cnt[keep]
        cols = (pooled[i, 1:3].reshape(2, -1)[:, keep] / c).T  # (K, 2)
        pts = (pooled[i, 3:5].reshape(2, -1)[:, keep] / c).T  # (K, 2) x, y
        d2 = torch.cdist(pix, pts).square().clamp_min(0.25)  # (HW, K)
        wts = c / d2 ** (power / 2.0)
        out[i] = ((wts @ cols) / wts.sum(1, keepdim=True)).T.reshape(2, h, w)
    return torch.where(m > 0, ab_hint, out)


def hint_tensors(hint_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A hint map batch (N, 3, H, W) [a, b in Lab units, mask] -> (ab / 110, mask)."""
    return hint_map[:, :2] / AB_SCALE, hint_map[:, 2:3]


class HintLoss(nn.Module):
    """Smooth-L1 on ab / 110 with Zhang 2017's delta (1 ab unit): L1 for real errors, so the
    regression is pulled to the conditional median rather than the (sepia) mean of L2."""

    def forward(self, pred: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(pred, ab / AB_SCALE, beta=HUBER_DELTA)
