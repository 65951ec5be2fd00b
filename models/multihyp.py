"""Multiple-hypothesis colorization (Baig & Torresani): one trunk, K ab branches, a selector.

The SmallTrunk of eccv16-small is shared up to its head; the last `split` head convolutions
are replicated per branch, and each branch ends in a 1x1 conv to ab / 110. A selector head
(two 3x3 convs on the shared features, detached from the hypotheses' gradients) gives
per-pixel logits over the K branches, so the model also colorizes with no side information.

forward returns one tensor (N, 3K, h, w): K hypotheses (2K channels, ab / 110, branch-major:
a0, b0, a1, b1, ...) followed by K selector logits; `hypotheses()` / `selector_logits()` split
it. `decode` turns it into ab: method 'annealed' = the mean of the hypotheses weighted by
softmax(logits / T), 'mean' the same at T = 1, 'mode' the argmax branch per pixel.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import AB_SCALE, Colorizer
from models.small import SmallTrunk, _conv
from transforms.bins import gamut_bins

DEFAULT_K = 5
DEFAULT_SPLIT = 1  # head convs replicated per branch (0, 1 or 2)
STRIDE = 4  # input pixels per output pixel (SmallTrunk: 1/8, then x2 up)


def prior_centres(prior, k: int, iters: int = 20) -> np.ndarray:
    """K ab centres (K, 2) by weighted k-means of the gamut bins under `prior` (Q,);
    deterministic (farthest-point start from the neutral bin). Used to start the branches at
    different colour modes, so that no branch wins everywhere from the start."""
    bins = gamut_bins().astype(np.float64)
    w = np.asarray(prior, np.float64) if prior is not None else np.ones(len(bins))
    if len(w) != len(bins):
        w = np.ones(len(bins))
    w = w / w.sum()
    centres = [np.zeros(2)]
    while len(centres) < k:
        d = np.min([((bins - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(bins[int(np.argmax(d * w))])
    c = np.array(centres)
    for _ in range(iters):
        assign = np.argmin(((bins[:, None] - c[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            m = assign == j
            if w[m].sum() > 0:
                c[j] = (bins[m] * w[m, None]).sum(0) / w[m].sum()
    return c.astype(np.float32)


class MultiHypothesis(Colorizer):
    """K ab hypotheses per pixel on a SmallTrunk, plus a selector over them."""

    kind = "multihypothesis"
    decode_methods = ("annealed", "mean", "mode")
    temperature_methods = ("annealed",)

    def __init__(
        self,
        width: float = 0.25,
        k: int = DEFAULT_K,
        split: int = DEFAULT_SPLIT,
        prior=None,
    ):
        super().__init__()
        if k < 2 or not 0 <= split <= 2:
            raise ValueError(
                f"multihypothesis needs k >= 2 and split in 0..2 (k={k}, split={split})"
            )
        self.k, self.split = k, split
        self.trunk = SmallTrunk(width)
        c = self.trunk.out_channels
        if split:  # the trunk keeps its first 2 - split head convs; the rest go to the branches
            self.trunk.head = self.trunk.head[: 2 * (2 - split)]
        self.branches = nn.ModuleList(
            nn.Sequential(*[m for _ in range(split) for m in _conv(c, c)], nn.Conv2d(c, 2, 1))
            for _ in range(k)
        )
        self.selector = nn.Sequential(*_conv(c, c), *_conv(c, c // 2), nn.Conv2d(c // 2, k, 1))
        with torch.no_grad():
            for branch, centre in zip(self.branches, prior_centres(prior, k), strict=True):
                branch[-1].bias.copy_(torch.from_numpy(centre / AB_SCALE))

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        f = self.trunk(l_norm)
        hyps = torch.cat([b(f) for b in self.branches], dim=1)
        return torch.cat([hyps, self.selector(f.detach())], dim=1)

    def hypotheses(self, output: torch.Tensor) -> torch.Tensor:
        """(N, K, 2, h, w) ab hypotheses in ab / 110 units."""
        n, _, h, w = output.shape
        return output[:, : 2 * self.k].reshape(n, self.k, 2, h, w)

    def selector_logits(self, output: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) per-pixel logits over the branches."""
        return output[:, 2 * self.k :]

    def decode(
        self,
        output: torch.Tensor,
        size: tuple[int, int] | None = None,
        temperature: float = 1.0,
        method: str = "annealed",
        **_,
    ) -> torch.Tensor:
        """Hypotheses + selector -> ab (N, 2, h, w) in Lab units, upsampled to `size`."""
        hyps, logits = self.hypotheses(output), self.selector_logits(output)
        if method == "mode":
            idx = logits.argmax(dim=1, keepdim=True)[:, :, None].expand(-1, 1, 2, -1, -1)
            ab = hyps.gather(1, idx)[:, 0]
        else:
            t = 1.0 if method == "mean" else max(float(temperature), 1e-3)
            p = torch.softmax(logits / t, dim=1)
            ab = (hyps * p[:, :, None]).sum(1)
        ab = ab * AB_SCALE
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False) if size else ab

    def load_init(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Initialise from another small model's state_dict where names and shapes match
        (a multihypothesis checkpoint: everything; eccv16-small: the trunk, and its head convs
        that this model replicates seed every branch). Returns the names of the tensors loaded."""
        own = self.state_dict()
        mapped = dict(state)
        for s in range(self.split):
            src = 2 * (2 - self.split + s)  # index of that conv in the original trunk head
            for suffix in ("weight", "bias"):
                key = f"trunk.head.{src}.{suffix}"
                if key in state:
                    for j in range(self.k):
                        mapped.setdefault(f"branches.{j}.{2 * s}.{suffix}", state[key])
        loaded = {k: v.float() for k, v in mapped.items() if k in own and own[k].shape == v.shape}
        own.update(loaded)
        self.load_state_dict(own)
        return sorted(loaded)


@torch.no_grad()
def branch_stats(model: MultiHypothesis, output: torch.Tensor, ab: torch.Tensor, region: int = 16):
    """Validation statistics of one batch: per-branch win counts (per pixel and per region of
    `region` input pixels) and summed ab errors of the selector ('mode'), the per-pixel oracle
    and the per-region oracle, at the model's output resolution. Returns numpy arrays/sums."""
    hyps = model.hypotheses(output).float() * AB_SCALE  # (N, K, 2, h, w)
    target = F.interpolate(ab, size=hyps.shape[-2:], mode="area")
    err = torch.linalg.vector_norm(hyps - target[:, None], dim=2)  # (N, K, h, w)
    cell = max(1, round(region * hyps.shape[-1] / ab.shape[-1]))
    region_err = F.avg_pool2d(err, cell, ceil_mode=True)
    pix_win = err.argmin(1)
    reg_win = region_err.argmin(1)
    sel = model.selector_logits(output).argmax(1)
    up = F.interpolate(reg_win[:, None].float(), scale_factor=cell, mode="nearest")[:, 0].long()
    up = up[..., : err.shape[-2], : err.shape[-1]]
    return {
        "pixels": int(pix_win.numel()),
        "regions": int(reg_win.numel()),
        "pixel_wins": torch.bincount(pix_win.flatten(), minlength=model.k).cpu().numpy(),
        "region_wins": torch.bincount(reg_win.flatten(), minlength=model.k).cpu().numpy(),
        "selector_picks": torch.bincount(sel.flatten(), minlength=model.k).cpu().numpy(),
        "selector_error": float(err.gather(1, sel[:, None]).sum()),
        "oracle_pixel_error": float(err.min(1).values.sum()),
        "oracle_region_error": float(err.gather(1, up[:, None]).sum()),
        "selector_accuracy": int((sel == pix_win).sum()),
    }
