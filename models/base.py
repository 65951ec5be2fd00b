"""The interface every colorization model implements, and the shared classification decoder.

A model takes normalised L, (L - 50) / 100, shaped (N, 1, H, W), and returns its native output;
`decode(output, **settings)` turns that into ab in Lab units at the input size (N, 2, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transforms.bins import gamut_bins

L_CENTRE, L_SCALE, AB_SCALE = 50.0, 100.0, 110.0
DEFAULT_TEMPERATURE = 0.38


def normalize_l(l: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> the models' input scale."""
    return (l - L_CENTRE) / L_SCALE


class Colorizer(nn.Module):
    """Base class: `kind` says what forward returns ('classification' or 'regression')."""

    kind = "regression"
    # the --decode methods decode() takes; none: it predicts ab directly, so neither a decode
    # method nor a temperature changes its colours
    decode_methods: tuple[str, ...] = ()
    # ... and those of them whose colours depend on the temperature (the rest ignore it)
    temperature_methods: tuple[str, ...] = ()

    def decode(
        self, output: torch.Tensor, size: tuple[int, int] | None = None, **_
    ) -> torch.Tensor:
        """Regression: output is ab / AB_SCALE; upsample to `size`."""
        ab = output * AB_SCALE
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False) if size else ab


class ClassificationColorizer(Colorizer):
    """A model whose forward returns logits over Q ab bins.

    The bin centres are stored as a frozen 1x1 conv `model_out` (2, Q, 1, 1) in ab / 110,
    the layout of the official eccv16 checkpoint.
    """

    kind = "classification"
    decode_methods = ("annealed", "mean", "mode")
    temperature_methods = ("annealed",)  # mean is the annealed mean at T = 1

    def __init__(self, num_bins: int, bins: torch.Tensor | None = None):
        super().__init__()
        self.model_out = nn.Conv2d(num_bins, 2, kernel_size=1, bias=False)
        if bins is None and num_bins == len(gamut_bins()):
            bins = torch.from_numpy(gamut_bins().copy())
        if bins is not None:
            with torch.no_grad():
                self.model_out.weight.copy_((bins.T / AB_SCALE).reshape(2, num_bins, 1, 1))
        self.model_out.weight.requires_grad_(False)

    @property
    def bin_centres(self) -> torch.Tensor:
        """(Q, 2) ab centres in Lab units."""
        return self.model_out.weight.detach().reshape(2, -1).T * AB_SCALE

    def probabilities(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """softmax(logits / T): the annealed distribution f_T (T=1: the model's own)."""
        return torch.softmax(logits / temperature, dim=1)

    def decode(
        self,
        output: torch.Tensor,
        size: tuple[int, int] | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        method: str = "annealed",
        **_,
    ) -> torch.Tensor:
        """Logits -> ab. method: 'annealed' (mean of f_T), 'mean' (T=1) or 'mode'."""
        if method == "mode":
            idx = output.argmax(dim=1)
            ab = self.bin_centres.to(output.dtype)[idx].permute(0, 3, 1, 2)
        else:
            t = 1.0 if method == "mean" else temperature
            ab = self.model_out(self.probabilities(output, t)) * AB_SCALE
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False) if size else ab
