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

`StripMetrics` gives the same numbers as `image_metrics` from bands of rows (big scans): PSNR
from the summed squared error, CIEDE2000 from its sum, the CMFs from per-threshold counts,
colorfulness from merged moments, SSIM from bands that overlap by the window radius.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from transforms import stats
from transforms.bins import hard_encode, num_bins
from transforms.crop import STRIP_PIXELS, strip_rows

AUC_THRESHOLDS = np.arange(0, 151)  # ab error thresholds t = 0..150 (Zhang et al. ECCV16)
SSIM_WIN = 7  # scikit-image's default SSIM window


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


def _ciede2000_map(lab_true: np.ndarray, lab_pred: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 (float64), as `ciede2000` averages it."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(
        np.asarray(lab_true, dtype=np.float64),
        np.asarray(lab_pred, dtype=np.float64),
        channel_axis=-1,
    )


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
    return auc_of_cmf(cmf(errors, weights, AUC_THRESHOLDS))


def auc_of_cmf(c: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS) -> float:
    """Area under a CMF sampled at `thresholds`, divided by their range (trapezoid rule)."""
    t = np.asarray(thresholds, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    area = float(np.sum((c[1:] + c[:-1]) * 0.5 * np.diff(t)))
    return area / float(t[-1] - t[0])


def cmf_counts(
    errors: np.ndarray,
    weights: np.ndarray | None = None,
    thresholds: np.ndarray = AUC_THRESHOLDS,
) -> np.ndarray:
    """(Weighted) number of pixels with error <= t for each sorted threshold t (float64):
    summed over bands and divided by the total, this is `cmf` of all the pixels."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    thresholds = np.asarray(thresholds, dtype=np.float64)
    first = np.searchsorted(thresholds, errors, side="left")  # first t with e <= t
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    hist = np.bincount(first, weights=w, minlength=len(thresholds) + 1)
    return np.cumsum(hist[: len(thresholds)], dtype=np.float64)


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
    rgb = np.asarray(rgb).reshape(-1, 3)
    moments = _OpponentMoments()
    for start in range(0, len(rgb), STRIP_PIXELS):  # no full-size float64 copy
        moments.add(rgb[start : start + STRIP_PIXELS])
    return moments.colorfulness()


class _OpponentMoments:
    """Count, means and summed squared deviations of (rg, yb), merged chunk by chunk (Chan et
    al.'s parallel update), for colorfulness without holding all pixels."""

    def __init__(self):
        self.n = 0
        self.mean = np.zeros(2)
        self.m2 = np.zeros(2)

    def add(self, rgb: np.ndarray) -> None:
        """Add pixels (..., 3): integer as 0..255, float as [0, 1]."""
        rgb = np.asarray(rgb)
        scale = 1.0 if np.issubdtype(rgb.dtype, np.integer) else 255.0
        rgb = rgb.reshape(-1, 3).astype(np.float64) * scale
        if len(rgb) == 0:
            return
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        opp = np.stack([r - g, 0.5 * (r + g) - b])
        n_b = opp.shape[1]
        mean_b = opp.mean(axis=1)
        m2_b = ((opp - mean_b[:, None]) ** 2).sum(axis=1)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    def colorfulness(self) -> float:
        if self.n == 0:
            return math.nan
        var = self.m2 / self.n
        return math.sqrt(float(var.sum())) + 0.3 * math.hypot(*(float(m) for m in self.mean))


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean; NaN and inf values are dropped.

    No finite value gives (nan, nan, nan); a single one v gives (v, v, v). The resampling is
    transforms.stats.bootstrap_ci's (the reports' one), at confidence 1 - alpha.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return stats.bootstrap_ci(values, n_boot=n_boot, confidence=1.0 - alpha, seed=seed)


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


def row_bands(height: int, width: int, margin: int = 0, pixels: int = STRIP_PIXELS):
    """(a, r0, r1, b) for each band of rows: core rows [r0, r1) cover the image once, and
    [a, b) = the core widened by `margin` rows on each side (clipped to the image)."""
    step = strip_rows(width, pixels)
    for r0 in range(0, height, step):
        r1 = min(r0 + step, height)
        yield max(0, r0 - margin), r0, r1, min(height, r1 + margin)


class StripMetrics:
    """`image_metrics` of one image accumulated from bands of rows (bounded memory).

    For each (a, r0, r1, b) of `bands()`, call `add(a, r0, r1, ...)` with rows [a, b) of the
    four images (RGB float in [0, 1], Lab): PSNR, CIEDE2000, the CMFs and colorfulness use the
    core rows [r0, r1); SSIM uses the margin (the window radius) so that every SSIM window
    sees the same pixels as on the whole image. `result()` then equals `image_metrics` and
    `cmf()` equals `cmf(ab_errors(...))` up to float rounding.
    """

    def __init__(self, height: int, width: int, prior: np.ndarray | None = None):
        self.height, self.width = height, width
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        self.win = _ssim_window(height, width)
        self.margin = (self.win - 1) // 2
        self.sse = self.de_sum = self.ssim_sum = 0.0
        self.ssim_count = 0
        self.counts = np.zeros(len(AUC_THRESHOLDS))
        self.wcounts = np.zeros(len(AUC_THRESHOLDS))
        self.wtotal = 0.0
        self.cf_pred, self.cf_true = _OpponentMoments(), _OpponentMoments()
        self.pixels = 0

    def bands(self, pixels: int = STRIP_PIXELS) -> Iterator[tuple[int, int, int, int]]:
        """The (a, r0, r1, b) bands to `add`, about `pixels` pixels each."""
        return row_bands(self.height, self.width, self.margin, pixels)

    def add(
        self,
        a: int,
        r0: int,
        r1: int,
        rgb_true: np.ndarray,
        rgb_pred: np.ndarray,
        lab_true: np.ndarray,
        lab_pred: np.ndarray,
    ) -> None:
        """Rows [a, a + len(rgb_true)) of the four images, of which [r0, r1) are new."""
        core = slice(r0 - a, r1 - a)
        t = np.asarray(rgb_true[core], dtype=np.float64)
        p = np.asarray(rgb_pred[core], dtype=np.float64)
        self.sse += float(np.sum((t - p) ** 2))
        self.pixels += t.shape[0] * t.shape[1]
        lt, lp = lab_true[core], lab_pred[core]
        self.de_sum += float(np.sum(_ciede2000_map(lt, lp)))
        errors = ab_errors(lt[..., 1:], lp[..., 1:])
        self.counts += cmf_counts(errors)
        if self.prior is not None:
            weights = rebalanced_pixel_weights(lt[..., 1:], self.prior)
            self.wcounts += cmf_counts(errors, weights)
            self.wtotal += float(weights.sum())
        self.cf_true.add(rgb_true[core])
        self.cf_pred.add(rgb_pred[core])
        self._add_ssim(a, r0, r1, rgb_true, rgb_pred)

    def _add_ssim(self, a: int, r0: int, r1: int, rgb_true, rgb_pred) -> None:
        from skimage.metrics import structural_similarity

        pad = self.margin
        lo, hi = max(r0, pad), min(r1, self.height - pad)  # rows whose S the mean keeps
        if lo >= hi:
            return
        top, bottom = lo - pad - a, hi + pad - a  # the band rows those windows read
        for ch in range(3):
            _, smap = structural_similarity(
                np.asarray(rgb_true[top:bottom, :, ch], dtype=np.float64),
                np.asarray(rgb_pred[top:bottom, :, ch], dtype=np.float64),
                data_range=1.0,
                win_size=self.win,
                use_sample_covariance=self.win > 1,
                full=True,
            )
            self.ssim_sum += float(smap[pad : pad + hi - lo, pad : self.width - pad].sum())
            self.ssim_count += (hi - lo) * (self.width - 2 * pad)

    def cmf(self) -> np.ndarray:
        """The unweighted CMF over AUC_THRESHOLDS of the pixels added so far."""
        return self.counts / self.pixels

    def result(self) -> dict[str, float]:
        """The `image_metrics` dict; auc_rebalanced is NaN without a prior."""
        if self.pixels != self.height * self.width:
            total = self.height * self.width
            raise ValueError(f"{self.pixels} pixels added, the image has {total}")
        mse = self.sse / (self.pixels * 3)
        cf_pred, cf_true = self.cf_pred.colorfulness(), self.cf_true.colorfulness()
        return {
            "psnr": float("inf") if mse == 0.0 else 10.0 * math.log10(1.0 / mse),
            "ssim": self.ssim_sum / self.ssim_count,
            "ciede2000": self.de_sum / self.pixels,
            "auc": auc_of_cmf(self.cmf()),
            "auc_rebalanced": auc_of_cmf(self.wcounts / self.wtotal)
            if self.prior is not None
            else math.nan,
            "colorfulness": cf_pred,
            "colorfulness_truth": cf_true,
            "delta_colorfulness": abs(cf_pred - cf_true),
        }


def strip_image_metrics(
    rgb_true: np.ndarray,
    rgb_pred: np.ndarray,
    lab_true: np.ndarray,
    lab_pred: np.ndarray,
    prior: np.ndarray | None = None,
    pixels: int = STRIP_PIXELS,
) -> tuple[dict[str, float], np.ndarray]:
    """(image_metrics, unweighted CMF) of whole arrays, computed band by band (StripMetrics)."""
    acc = StripMetrics(rgb_true.shape[0], rgb_true.shape[1], prior)
    for a, r0, r1, b in acc.bands(pixels):
        acc.add(a, r0, r1, rgb_true[a:b], rgb_pred[a:b], lab_true[a:b], lab_pred[a:b])
    return acc.result(), acc.cmf()
