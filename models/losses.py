"""Training losses: soft-encoded, class-rebalanced cross-entropy (Zhang et al.), ab regression."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.base import AB_SCALE
from transforms import huechroma
from transforms.bins import SOFT_SIGMA, gamut_bins, neighbour_table

_LUT_HALF = 128
HUE_WEIGHT = 5.0  # Larsson et al.: λ_H on the chroma-weighted hue term


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


def two_hot(x: torch.Tensor, step: float, n: int, circular: bool):
    """Soft two-hot encoding on centres k * step: (indices, weights), each x.shape + (2,)
    stacked on dim 1 (the bin axis); the torch twin of transforms.huechroma.two_hot_positions."""
    u = x / step
    if circular:
        u = torch.remainder(u, n)
        i0 = torch.floor(u).long() % n
        i1 = (i0 + 1) % n
        w1 = u - torch.floor(u)
    else:
        u = u.clamp(0.0, n - 1)
        i0 = torch.floor(u).long().clamp(max=n - 2)
        i1 = i0 + 1
        w1 = u - i0
    return torch.stack([i0, i1], dim=1), torch.stack([1.0 - w1, w1], dim=1)


def hue_chroma_loss(
    hue_logits: torch.Tensor,
    chroma_logits: torch.Tensor,
    ab: torch.Tensor,
    hue_weight: float = HUE_WEIGHT,
) -> torch.Tensor:
    """Larsson et al.'s histogram loss, mean over pixels: the cross-entropy of the chroma
    histogram against the two-hot target (= KL up to the target's entropy) plus the hue
    cross-entropy weighted by hue_weight · C / CHROMA_MAX (hue means little at low chroma).
    Logits (N, bins, ...), target ab (N, 2, ...) in Lab units."""
    n = chroma_logits.shape[1]
    a, b = ab[:, 0].float(), ab[:, 1].float()
    chroma = torch.hypot(a, b)
    hue = torch.remainder(torch.atan2(b, a), 2 * math.pi)
    ic, wc = two_hot(chroma, huechroma.CHROMA_MAX / (n - 1), n, circular=False)
    ih, wh = two_hot(hue, 2 * math.pi / n, n, circular=True)
    ce_c = -(wc * torch.log_softmax(chroma_logits.float(), 1).gather(1, ic)).sum(1)
    ce_h = -(wh * torch.log_softmax(hue_logits.float(), 1).gather(1, ih)).sum(1)
    w = hue_weight * (chroma / huechroma.CHROMA_MAX).clamp(max=1.0)
    return (ce_c + w * ce_h).mean()


class HypercolumnLoss(nn.Module):
    """hue_chroma_loss on a Hypercolumn output: sparse (N, 2·bins + 2, P, 1), whose last two
    channels are the sampled pixel centres (targets fetched there, nearest pixel: exact), or
    dense (N, 2·bins, h, w) (targets area-downsampled to the output grid)."""

    def __init__(self, bins: int = huechroma.NUM_BINS, hue_weight: float = HUE_WEIGHT):
        super().__init__()
        self.bins, self.hue_weight = bins, hue_weight

    def forward(self, output: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        q = self.bins
        if output.shape[1] == 2 * q + 2:
            grid = output[:, 2 * q :].detach().permute(0, 2, 3, 1)
            target = F.grid_sample(ab, grid, mode="nearest", align_corners=False)
        else:
            target = match_size(ab, output)
        return hue_chroma_loss(output[:, :q], output[:, q : 2 * q], target, self.hue_weight)


class PicLoss(nn.Module):
    """PIC's maximum-likelihood loss: the mean negative log2-likelihood per ab dimension of the
    true ab (area-downsampled to the feature grid, discretized at 1 Lab unit) under a PIC
    model's mixture of discretized logistics. `features` is the model's forward output g(L)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self._model = [model]  # a reference, not a submodule: the loss owns no parameters

    def forward(self, features: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self._model[0].nll_bits(features, ab).mean()
