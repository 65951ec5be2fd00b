"""Is a photo black-and-white (or one-hue toned) rather than a colour photo?

Grayscale and toned photos (sepia, cyanotype, selenium) carry no colour truth, so `stage`
filters them out of training data. The measures are taken on the ab channels of a small
thumbnail: mean chroma, a high percentile of chroma, and the tone residual: how far ab strays
from a single tone curve ab = f(L). A toned photo's colour is a function of its brightness
alone (sepia: dark brown to light cream), a colour photo's is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transforms.colour import chroma


@dataclass(frozen=True)
class GrayThresholds:
    """Thresholds in Lab ab units; every one is a `stage` option."""

    mean_chroma: float = 0.8  # below: no colour at all
    high_chroma: float = 2.5  # ... and this percentile of chroma below this
    percentile: float = 99.0
    tone_residual: float = 0.8  # toned: tone_percentile of |ab - f(L)| below this
    tone_percentile: float = 90.0
    tone_levels: int = 32  # brightness levels of the tone curve f(L)


def colour_measures(lab: np.ndarray, t: GrayThresholds = GrayThresholds()) -> dict[str, float]:
    """Mean chroma, percentile chroma and tone residual of a Lab image (..., 3)."""
    lab = np.asarray(lab, dtype=np.float32).reshape(-1, 3)
    ab = lab[:, 1:]
    c = chroma(ab)
    n = t.tone_levels
    level = np.clip((lab[:, 0] * (n / 100.0)).astype(np.int64), 0, n - 1)
    # The tone curve: mean ab per brightness level, interpolated linearly in L between the
    # levels' mean L (a step function would leave a residual on steep tone ramps).
    count = np.bincount(level, minlength=n)
    used = count > 0
    l_mean = np.bincount(level, weights=lab[:, 0], minlength=n)[used] / count[used]
    fit = np.stack(
        [
            np.interp(lab[:, 0], l_mean, np.bincount(level, ab[:, k], n)[used] / count[used])
            for k in (0, 1)
        ],
        -1,
    )
    residual = np.hypot(*(ab - fit).T)
    return {
        "mean_chroma": float(c.mean()),
        "high_chroma": float(np.percentile(c, t.percentile)),
        "tone_residual": float(np.percentile(residual, t.tone_percentile)),
    }


def classify_tone(lab: np.ndarray, t: GrayThresholds = GrayThresholds()) -> str:
    """'grayscale', 'toned' or 'colour' for a Lab image (..., 3)."""
    m = colour_measures(lab, t)
    if m["mean_chroma"] < t.mean_chroma and m["high_chroma"] < t.high_chroma:
        return "grayscale"
    if m["tone_residual"] < t.tone_residual:
        return "toned"
    return "colour"
