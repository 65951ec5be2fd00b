"""Colour-bin priors and class-rebalancing weights (Zhang et al. 2016, section 3.1)."""

from __future__ import annotations

import numpy as np

from transforms.bins import gamut_bins

REBALANCE_LAMBDA = 0.5
PRIOR_SIGMA = 5.0  # Gaussian smoothing of the empirical distribution, ab units


def empirical_distribution(counts: np.ndarray) -> np.ndarray:
    """Normalise bin counts (Q,) to a probability distribution."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no pixels were counted: the prior is undefined")
    return counts / total


def smooth_distribution(
    p: np.ndarray, sigma: float = PRIOR_SIGMA, centres: np.ndarray | None = None
) -> np.ndarray:
    """Smooth a distribution over bins with a Gaussian in ab space, renormalised to sum 1."""
    centres = gamut_bins() if centres is None else centres
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2.0 * sigma**2))
    kernel /= kernel.sum(0, keepdims=True)  # each bin spreads its mass, conserving it
    smoothed = kernel @ np.asarray(p, dtype=np.float64)
    return smoothed / smoothed.sum()


def rebalancing_weights(p_smooth: np.ndarray, lam: float = REBALANCE_LAMBDA) -> np.ndarray:
    """w ∝ ((1 − λ)·P̃ + λ/Q)^−1, normalised so that Σ P̃·w = 1 (so E[w] = 1)."""
    p_smooth = np.asarray(p_smooth, dtype=np.float64)
    q = p_smooth.size
    w = 1.0 / ((1.0 - lam) * p_smooth + lam / q)
    return w / (p_smooth * w).sum()


def priors_from_counts(counts: np.ndarray, lam: float = REBALANCE_LAMBDA) -> dict[str, np.ndarray]:
    """All three arrays the `stage` job writes: empirical, smoothed, weights."""
    p = empirical_distribution(counts)
    p_smooth = smooth_distribution(p)
    return {"empirical": p, "smoothed": p_smooth, "weights": rebalancing_weights(p_smooth, lam)}
