"""Per-image colorization metrics and bootstrap confidence intervals (numpy + scikit-image).

Conventions as elsewhere in `transforms`: RGB is float in [0, 1] (H, W, 3), Lab is CIE Lab D65
with L in [0, 100], ab arrays are (..., 2) in Lab units. No Beam, no torch.

- PSNR, SSIM and CIEDE2000 compare a prediction with the ground truth.
- AuC is Zhang et al. (ECCV 2016): CMF(t) = share of pixels with ||ab - ab_hat||_2 <= t for
  t = 0..150, AuC = the area under the CMF divided by 150 (trapezoid rule, see `auc`). The
  class-rebalanced AuC weights each pixel by 1 / prior of its true ab bin.
- Colorfulness is Hasler & Suesstrunk (2003).
- `bootstrap_ci` / `paired_bootstrap_diff` give percentile bootstrap CIs of a mean over images.

scikit-image is imported inside `ssim` and `ciede2000` only, so the rest works without it.
"""

from __future__ import annotations

import math

import numpy as np

from transforms.bins import hard_encode, num_bins

AUC_THRESHOLDS = np.arange(0, 151)  # ab error thresholds t = 0..150 (Zhang et al. ECCV16)
SSIM_WIN = 7  # scikit-image's default SSIM window
_BOOT_CHUNK_ELEMS = 2_000_000  # resampled values held in memory at once by the bootstrap


def psnr(rgb_true: np.ndarray, rgb_pred: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of one image, MSE over all pixels and channels; identical images give inf."""
    diff = np.asarray(rgb_true, dtype=np.float64) - np.asarray(rgb_pred, dtype=np.float64)
    mse = float(np.mean(diff**2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


def _ssim_window(height: int, width: int) -> int:
    """The largest odd window <= SSIM_WIN that fits inside an image of this size."""
    side = min(height, width, SSIM_WIN)
    return side if side % 2 == 1 else side - 1


def ssim(rgb_true: np.ndarray, rgb_pred: np.ndarray) -> float:
    """Mean SSIM over channels (skimage, window 7, or the largest odd window that fits).

    Images under 3 px on a side get a 1-px window with population covariance (the sample
    covariance of a single pixel is undefined).
    """
    from skimage.metrics import structural_similarity

    rgb_true = np.asarray(rgb_true, dtype=np.float64)
    rgb_pred = np.asarray(rgb_pred, dtype=np.float64)
    win = _ssim_window(*rgb_true.shape[:2])
    return float(
        structural_similarity(
            rgb_true,
            rgb_pred,
            channel_axis=-1,
            data_range=1.0,
            win_size=win,
            use_sample_covariance=win > 1,
        )
    )


def ciede2000(lab_true: np.ndarray, lab_pred: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference over pixels (`skimage.color.deltaE_ciede2000`)."""
    from skimage.color import deltaE_ciede2000

    lab_true = np.asarray(lab_true, dtype=np.float64)
    lab_pred = np.asarray(lab_pred, dtype=np.float64)
    return float(np.mean(deltaE_ciede2000(lab_true, lab_pred, channel_axis=-1)))


def ab_errors(ab_true: np.ndarray, ab_pred: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean ab error, flattened to (N,) float64."""
    diff = np.asarray(ab_true, dtype=np.float64) - np.asarray(ab_pred, dtype=np.float64)
    return np.sqrt((diff**2).sum(-1)).ravel()


def cmf(
    errors: np.ndarray,
    weights: np.ndarray | None = None,
    thresholds: np.ndarray = AUC_THRESHOLDS,
) -> np.ndarray:
    """Cumulative mass function: (weighted) share of pixels with error <= t, one per threshold."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        raise ValueError("no errors given: the CMF is undefined")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(errors, kind="stable")
    counts = np.searchsorted(errors[order], thresholds, side="right")  # pixels with e <= t
    if weights is None:
        return counts / errors.size
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.shape != errors.shape:
        raise ValueError(f"weights {weights.shape} do not match errors {errors.shape}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite and non-negative")
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    if cum[-1] <= 0:
        raise ValueError("weights sum to zero: the weighted CMF is undefined")
    return cum[counts] / cum[-1]


def auc(errors: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the CMF over t = 0..150 divided by 150, by the trapezoid rule, in [0, 1].

    With c_t = CMF(t) this is (c_0/2 + c_1 + ... + c_149 + c_150/2) / 150.
    """
    c = cmf(errors, weights, AUC_THRESHOLDS)
    t = AUC_THRESHOLDS.astype(np.float64)
    area = float(np.sum((c[1:] + c[:-1]) * 0.5 * np.diff(t)))
    return area / float(t[-1] - t[0])


def rebalanced_pixel_weights(ab_true: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per-pixel weights 1 / prior[bin of the true ab], flattened (class-rebalanced AuC).

    `prior` is a (Q,) distribution over the in-gamut bins of `transforms.bins`; bins with
    prior 0 get the smallest positive prior instead.
    """
    prior = np.asarray(prior, dtype=np.float64).ravel()
    if prior.size != num_bins():
        raise ValueError(f"prior has {prior.size} bins, the gamut has {num_bins()}")
    positive = prior[prior > 0]
    if positive.size == 0:
        raise ValueError("prior has no positive entry")
    floored = np.where(prior > 0, prior, positive.min())
    bins = hard_encode(np.asarray(ab_true, dtype=np.float32)).ravel().astype(np.int64)
    return 1.0 / floored[bins]


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness M on the 0..255 scale.

    Integer input is taken as 0..255; float input as [0, 1] and multiplied by 255.
    rg = R - G, yb = (R + G)/2 - B, M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2),
    with population standard deviations s and means m over all pixels.
    """
    rgb = np.asarray(rgb)
    scale = 1.0 if np.issubdtype(rgb.dtype, np.integer) else 255.0
    rgb = rgb.reshape(-1, 3).astype(np.float64) * scale
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = math.sqrt(float(rg.var()) + float(yb.var()))
    mu = math.hypot(float(rg.mean()), float(yb.mean()))
    return sigma + 0.3 * mu


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean; NaN and inf values are dropped.

    No finite value gives (nan, nan, nan); a single one v gives (v, v, v).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if n == 1:
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOT_CHUNK_ELEMS // n)
    means = np.concatenate(
        [
            v[rng.integers(0, n, size=(min(rows, n_boot - start), n))].mean(axis=1)
            for start in range(0, n_boot, rows)
        ]
    )
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (mean, float(low), float(high))


def paired_bootstrap_diff(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high) bootstrap CI of mean(a - b) of paired values (non-finite a - b dropped)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} vs {b.size}")
    return bootstrap_ci(a - b, n_boot=n_boot, alpha=alpha, seed=seed)


def image_metrics(
    rgb_true: np.ndarray,
    rgb_pred: np.ndarray,
    lab_true: np.ndarray,
    lab_pred: np.ndarray,
    prior: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one image; auc_rebalanced is NaN without a prior."""
    errors = ab_errors(np.asarray(lab_true)[..., 1:], np.asarray(lab_pred)[..., 1:])
    if prior is None:
        auc_rebalanced = math.nan
    else:
        weights = rebalanced_pixel_weights(np.asarray(lab_true)[..., 1:], prior)
        auc_rebalanced = auc(errors, weights)
    cf_pred = colorfulness(rgb_pred)
    cf_true = colorfulness(rgb_true)
    return {
        "psnr": psnr(rgb_true, rgb_pred),
        "ssim": ssim(rgb_true, rgb_pred),
        "ciede2000": ciede2000(lab_true, lab_pred),
        "auc": auc(errors),
        "auc_rebalanced": auc_rebalanced,
        "colorfulness": cf_pred,
        "colorfulness_truth": cf_true,
        "delta_colorfulness": abs(cf_pred - cf_true),
    }
