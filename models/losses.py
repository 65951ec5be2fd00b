"""Training losses: soft-encoded, class-rebalanced cross-entropy (Zhang et al.), ab regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.base import AB_SCALE
from transforms.bins import SOFT_SIGMA, gamut_bins, neighbour_table

_LUT_HALF = 128


class SoftEncoder(nn.Module):
    """ab (N, 2, H, W) -> indices and Gaussian weights of the 5 nearest bins (N, 5, H, W)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.from_numpy(neighbour_table().astype("int64")))
        self.register_buffer("centres", torch.from_numpy(gamut_bins().copy()))

    def forward(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ij = torch.clamp(torch.round(ab + _LUT_HALF), 0, 2 * _LUT_HALF).long()
        idx = self.table[ij[:, 0], ij[:, 1]].permute(0, 3, 1, 2)  # (N, K, H, W)
        c = self.centres[idx]  # (N, K, H, W, 2)
        d2 = ((ab.permute(0, 2, 3, 1).unsqueeze(1) - c) ** 2).sum(-1)
        w = torch.softmax(-d2 / (2.0 * SOFT_SIGMA**2), dim=1)
        return idx, w


def match_size(ab: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Area-downsample target ab to the spatial size of the model output."""
    if ab.shape[-2:] == like.shape[-2:]:
        return ab
    return F.interpolate(ab, size=like.shape[-2:], mode="area")


def soft_cross_entropy(
    logits: torch.Tensor,
    idx: torch.Tensor,
    w: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over pixels of −Σ_k w_k log p(idx_k), each pixel weighted by the rebalancing
    weight of its nearest bin (idx[:, 0]) when class_weights is given."""
    logp = torch.log_softmax(logits.float(), dim=1)
    ce = -(w * logp.gather(1, idx)).sum(1)
    if class_weights is not None:
        ce = ce * class_weights[idx[:, 0]]
    return ce.mean()


class ClassificationLoss(nn.Module):
    """Soft-encoded cross-entropy with optional class rebalancing."""

    def __init__(self, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.encoder = SoftEncoder()
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        idx, w = self.encoder(match_size(ab, logits))
        return soft_cross_entropy(logits, idx, w, self.class_weights)


class RegressionLoss(nn.Module):
    """L2 ('l2') or Huber ('huber', delta 1 in ab/110 units x 10) on ab / 110."""

    def __init__(self, kind: str = "l2"):
        super().__init__()
        self.kind = kind

    def forward(self, pred: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        target = match_size(ab, pred) / AB_SCALE
        if self.kind == "huber":
            return F.smooth_l1_loss(pred, target, beta=0.1)
        return F.mse_loss(pred, target)


class MultiHypothesisLoss(nn.Module):
    """Min-over-branches ab regression (Baig & Torresani) + the selector's cross-entropy.

    pred: a MultiHypothesis output (N, 3K, h, w); ab: target in Lab units. Per pixel squared
    ab / 110 error e_k; with `region` > 0 (input pixels) e_k is averaged over region x region
    cells first, so a branch wins whole cells (the codec's unit). The winner of each pixel or
    cell gets weight 1 - relax, the other branches relax / (K - 1) each ("relaxed
    winner-takes-all", the remedy against one branch winning everywhere). The selector learns
    the per-pixel winner with weight `select_weight`.
    """

    def __init__(self, k: int, region: int = 16, relax: float = 0.05, select_weight: float = 0.02):
        super().__init__()
        self.k, self.region, self.relax, self.select_weight = k, region, relax, select_weight

    def forward(self, pred: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        n, _, h, w = pred.shape
        hyps = pred[:, : 2 * self.k].reshape(n, self.k, 2, h, w)
        logits = pred[:, 2 * self.k :]
        target = match_size(ab, pred) / AB_SCALE
        err = ((hyps.float() - target[:, None]) ** 2).sum(2)  # (N, K, h, w)
        cell = max(1, round(self.region * w / ab.shape[-1])) if self.region else 1
        unit = F.avg_pool2d(err, cell, ceil_mode=True) if cell > 1 else err
        win = unit.detach().argmin(1, keepdim=True)
        weights = torch.full_like(unit, self.relax / (self.k - 1)).scatter_(
            1, win, 1.0 - self.relax
        )
        hyp_loss = (weights * unit).sum(1).mean()
        pixel_win = err.detach().argmin(1)
        return hyp_loss + self.select_weight * F.cross_entropy(logits.float(), pixel_win)
