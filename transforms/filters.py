"""Is a photo black-and-white (or one-hue toned) rather than a colour photo?

Grayscale and toned photos (sepia, cyanotype, selenium) carry no colour truth, so `stage`
filters them out of training data. The measures are taken on a small thumbnail: mean chroma, a
high percentile of chroma, and two tone residuals. A toned photo's colour is a function of its
brightness alone (sepia: dark brown to light cream), a colour photo's is not.

- `tone_residual`: a percentile of |ab - f(L)| for the best tone curve f (mean ab per L level,
  interpolated). Tight (about 0.5 for a lossless toned photo), but JPEG's chroma quantization
  and 4:2:0 subsampling push it past its threshold (up to 3.3 at q50-60, 1.9 at q92).
- `smooth_tone_residual`: JPEG-robust. In JPEG's own YCbCr (8-bit units) a two-colour toning
  is a straight line (Cb, Cr) = c0 + c1 * Y, and JPEG's chroma errors are local (blocks,
  edges) and near zero-mean, so the residual of a straight-line fit is Gaussian-smoothed
  (`tone_smoothing` thumbnail pixels) before its percentile is taken; a colour photo's
  residual is spatially coherent (objects of other hues) and survives the smoothing. It only
  counts for a clearly tinted photo (`tone_chroma`, the median chroma, at least
  `min_tone_chroma`): a near-neutral photo with a small colourful object is colour. A curved
  tone (a print toned to another hue in its shadows than its highlights), once JPEG-compressed,
  fits neither measure and stays colour (two such sepia photos among the ImageNet samples).

A photo is toned when either residual is under its threshold. Thresholds chosen on the 64-px
thumbnail `stage` uses (`python bench/toned_filter.py [--size 32]`): sepia and cyanotype JPEGs
at q50-95 of 44 Kodak / ImageNet photos score at most 1.19 (their `tone_residual` up to 3.3);
the ImageNet colour samples with a median chroma >= 4 at least 1.71, except a sepia portrait
(n03929855_pickelhaube, 1.24), the one sample this measure adds to the toned ones. Sources
under 64 px (CIFAR's 32 px files) are measured at 32 px, not upsampled 4x in pixels, with
`small_tone_smoothing`, chosen on CIFAR-10 training files (`python bench/toned_filter.py
--cifar`: it catches more toned 32 px JPEGs than the upsampled 64-px thumbnail did, and decides
as it did on real CIFAR-10 photos but for a handful of 50,000).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from transforms.colour import chroma, lab_to_rgb

# RGB in [0, 1] -> JPEG's (full-range BT.601) Y, Cb, Cr in 8-bit units.
_RGB_TO_YCC = (
    np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    * 255.0
)


@dataclass(frozen=True)
class GrayThresholds:
    """Thresholds in Lab ab units; every one is a `stage` option."""

    mean_chroma: float = 0.8  # below: no colour at all
    high_chroma: float = 2.5  # ... and this percentile of chroma below this
    percentile: float = 99.0
    tone_residual: float = 0.8  # toned: tone_percentile of |ab - f(L)| below this
    tone_percentile: float = 90.0
    tone_levels: int = 32  # brightness levels of the tone curve f(L)
    smooth_tone_residual: float = 1.45  # toned (JPEG-robust): percentile below this (CbCr units)
    smooth_percentile: float = 90.0
    tone_smoothing: float = 3.0  # Gaussian sigma in pixels of the (64-px) thumbnail
    small_tone_smoothing: float = 2.0  # ... of the 32-px thumbnail of a source under 64 px
    min_tone_chroma: float = 4.0  # ... and the median chroma at least this


def smooth_tone_residual(
    lab: np.ndarray, t: GrayThresholds = GrayThresholds(), rgb: np.ndarray | None = None
) -> float:
    """The JPEG-robust tone residual of a Lab image (H, W, 3) (or (N, 3): no smoothing).

    Straight-line fit of (Cb, Cr) on Y (8-bit YCbCr), residual smoothed by a Gaussian of
    sigma `t.tone_smoothing` pixels (reflected at the borders; both channels in one pass),
    `t.smooth_percentile` of its magnitude. `rgb`: the same image as sRGB uint8 when the
    caller has it (saves converting Lab back).
    """
    lab = np.asarray(lab, dtype=np.float32)
    shape = lab.shape[:2] if lab.ndim == 3 else (lab.reshape(-1, 3).shape[0], 1)
    pixels = (
        np.asarray(rgb, np.float64).reshape(-1, 3) / 255.0
        if rgb is not None
        else lab_to_rgb(lab).reshape(-1, 3).astype(np.float64)
    )
    ycc = pixels @ _RGB_TO_YCC.T
    # least-squares line (Cb, Cr) = c0 + c1 * Y in closed form (one regressor)
    y = ycc[:, 0]
    yc = y - y.mean()
    slope = (yc @ ycc[:, 1:]) / max(float(yc @ yc), 1e-12)
    fit = ycc[:, 1:].mean(0) + yc[:, None] * slope
    residual = (ycc[:, 1:] - fit).reshape(*shape, 2)
    if lab.ndim == 3 and t.tone_smoothing > 0:
        rows, cols = (
            gaussian_matrix(shape[0], t.tone_smoothing),
            gaussian_matrix(shape[1], t.tone_smoothing),
        )
        residual = np.stack([rows @ residual[..., k] @ cols.T for k in (0, 1)], -1)
    return percentiles(np.hypot(residual[..., 0], residual[..., 1]), [t.smooth_percentile])[0]


@lru_cache(maxsize=16)
def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix G with G @ x = scipy.ndimage.gaussian_filter1d(x, sigma, axis=0,
    mode="reflect") for every x of n rows: the filter's response to each unit impulse, so two
    small matrix products smooth an image (float rounding aside, the same numbers)."""
    from scipy.ndimage import gaussian_filter1d

    g = gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect")
    g.setflags(write=False)
    return g


def percentiles(x: np.ndarray, qs: list[float]) -> list[float]:
    """np.percentile(x, qs) (its default 'linear' method, the same numbers) with one
    partition for all of qs and without np.percentile's per-call overhead: batch_percentiles
    of x as one row."""
    return batch_percentiles(np.asarray(x).reshape(1, -1), qs)[0].tolist()


def chroma_measures(lab: np.ndarray, t: GrayThresholds = GrayThresholds()) -> dict[str, float]:
    """Mean, median ("tone_chroma") and `t.percentile` ("high_chroma") chroma of Lab pixels."""
    c = chroma(np.asarray(lab, dtype=np.float32).reshape(-1, 3)[:, 1:])
    median, high = percentiles(c, [50.0, t.percentile])
    return {
        "mean_chroma": float(c.mean()),
        "high_chroma": float(high),
        "tone_chroma": float(median),
    }


def tone_residual(lab: np.ndarray, t: GrayThresholds = GrayThresholds()) -> float:
    """`t.tone_percentile` of |ab - f(L)| for the tone curve f: mean ab per brightness level
    (`t.tone_levels` of them), interpolated linearly in L between the levels' mean L (a step
    function would leave a residual on steep tone ramps)."""
    lab = np.asarray(lab, dtype=np.float32).reshape(-1, 3)
    l = lab[:, 0]
    n = t.tone_levels
    level = np.clip((l * (n / 100.0)).astype(np.int64), 0, n - 1)
    count = np.bincount(level, minlength=n)
    used = count > 0
    l_mean = np.bincount(level, weights=l, minlength=n)[used] / count[used]
    da, db = (
        lab[:, k] - np.interp(l, l_mean, np.bincount(level, lab[:, k], n)[used] / count[used])
        for k in (1, 2)
    )
    return percentiles(np.hypot(da, db), [t.tone_percentile])[0]


def colour_measures(
    lab: np.ndarray, t: GrayThresholds = GrayThresholds(), rgb: np.ndarray | None = None
) -> dict[str, float]:
    """Mean, median ("tone_chroma") and percentile chroma and both tone residuals of a Lab
    image (H, W, 3) (an (N, 3) array of pixels is measured without smoothing); `rgb`, the
    same image as sRGB uint8 if at hand."""
    return {
        **chroma_measures(lab, t),
        "tone_residual": tone_residual(lab, t),
        "smooth_tone_residual": smooth_tone_residual(lab, t, rgb),
    }


def classify_tone(
    lab: np.ndarray, t: GrayThresholds = GrayThresholds(), rgb: np.ndarray | None = None
) -> str:
    """'grayscale', 'toned' or 'colour' for a Lab image (..., 3) (`rgb`: the same image as
    sRGB uint8, if at hand). The measures of colour_measures, each taken only when the
    answer still depends on it (the smooth residual only for a clearly tinted photo)."""
    m = chroma_measures(lab, t)
    if m["mean_chroma"] < t.mean_chroma and m["high_chroma"] < t.high_chroma:
        return "grayscale"
    if tone_residual(lab, t) < t.tone_residual:
        return "toned"
    if (
        m["tone_chroma"] >= t.min_tone_chroma
        and smooth_tone_residual(lab, t, rgb) < t.smooth_tone_residual
    ):
        return "toned"
    return "colour"


def batch_percentiles(x: np.ndarray, qs: list[float], then=None) -> np.ndarray:
    """percentiles() of each row of x (N, P) in one partition: (N, len(qs)), the same numbers.
    `then`: an increasing function applied to the order statistics before they are
    interpolated, so batch_percentiles(d * d, qs, np.sqrt) is the percentiles of d without a
    square root per pixel."""
    x = np.asarray(x).reshape(len(x), -1)
    n = x.shape[1]
    pos = [q / 100.0 * (n - 1) for q in qs]
    lows = [min(int(np.floor(p)), n - 1) for p in pos]
    kth = sorted({k for lo in lows for k in (lo, min(lo + 1, n - 1))})
    part = np.partition(x, kth, axis=1)
    stat = {k: part[:, k] if then is None else then(part[:, k]) for k in kth}
    out = np.empty((len(x), len(qs)), np.float64)
    for j, (p, lo) in enumerate(zip(pos, lows, strict=True)):
        a, b, frac = stat[lo], stat[min(lo + 1, n - 1)], p - lo
        out[:, j] = b - (b - a) * (1 - frac) if frac >= 0.5 else a + (b - a) * frac
    return out


def batch_tone_residuals(lab: np.ndarray, t: GrayThresholds = GrayThresholds()) -> np.ndarray:
    """tone_residual of each of N same-size Lab images (N, ..., 3): (N,) float64, the same
    bits: the residuals in one compiled pass per image (tone_kernels.tone_d2), their
    percentiles in one partition."""
    from transforms import tone_kernels  # numba (0.2 s to import): only the batch measures

    lab = np.ascontiguousarray(lab, dtype=np.float32)
    d2 = tone_kernels.tone_d2(lab.reshape(len(lab), -1, 3), t.tone_levels)
    return batch_percentiles(d2, [t.tone_percentile], np.sqrt)[:, 0]


def batch_smooth_tone_residuals(
    rgb: np.ndarray, t: GrayThresholds = GrayThresholds(), scale: float = 1.0
) -> np.ndarray:
    """smooth_tone_residual of each of N same-size sRGB images (N, H, W, 3), rgb / scale in
    [0, 1] (floats, or uint8 with scale 255.0): (N,) float64, the residuals in one compiled
    pass per image (tone_kernels.smooth_tone_d2), their percentiles in one partition."""
    from transforms import tone_kernels

    rgb = np.ascontiguousarray(rgb if rgb.dtype == np.uint8 else np.asarray(rgb, np.float64))
    n_img, h, w = rgb.shape[:3]
    rows, cols = _smoothing(h, t.tone_smoothing), _smoothing(w, t.tone_smoothing)
    d2 = tone_kernels.smooth_tone_d2(rgb, float(scale), _RGB_TO_YCC, *rows, *cols)
    return batch_percentiles(d2, [t.smooth_percentile], np.sqrt)[:, 0]


@lru_cache(maxsize=16)
def _smoothing(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """gaussian_matrix(n, sigma) (the identity for sigma 0: no smoothing) and its rows'
    nonzero bands (nonzero_bands)."""
    g = gaussian_matrix(n, sigma) if sigma > 0 else np.eye(n)
    return g, nonzero_bands(g)


def nonzero_bands(matrix: np.ndarray) -> np.ndarray:
    """(n, 2) int64: [first, last + 1) of each row's nonzero entries (a banded matrix's);
    [0, 0) for a row of zeros."""
    nz = matrix != 0
    first = np.argmax(nz, axis=1)
    last = matrix.shape[1] - np.argmax(nz[:, ::-1], axis=1)
    empty = ~nz.any(axis=1)
    first[empty], last[empty] = 0, 0
    return np.stack([first, last], axis=1).astype(np.int64)


def classify_tone_batch(
    lab: np.ndarray, t: GrayThresholds = GrayThresholds(), rgb: np.ndarray | None = None
) -> list[str]:
    """classify_tone of each of N same-size Lab images (N, H, W, 3) (`rgb`: the same images as
    sRGB uint8, if at hand): the same measures and order of decisions, each measure taken once
    over the images it still decides, so many small images do not each pay numpy's fixed
    per-call cost (the answers equal classify_tone's on the staged samples; float sums in
    another order aside, tests/test_filters_staging.py)."""
    lab = np.asarray(lab, dtype=np.float32)
    n = len(lab)
    c = chroma(lab.reshape(n, -1, 3)[..., 1:])
    mean = c.mean(axis=1)
    median, high = batch_percentiles(c, [50.0, t.percentile]).T
    out = np.full(n, "colour", dtype=object)
    gray = (mean < t.mean_chroma) & (high < t.high_chroma)
    out[gray] = "grayscale"
    rest = np.flatnonzero(~gray)
    if rest.size:
        toned = batch_tone_residuals(lab[rest], t) < t.tone_residual
        out[rest[toned]] = "toned"
        rest = rest[~toned & (median[rest] >= t.min_tone_chroma)]
    if rest.size:
        if rgb is not None:
            smooth = batch_smooth_tone_residuals(np.asarray(rgb, np.uint8)[rest], t, 255.0)
        else:
            smooth = batch_smooth_tone_residuals(lab_to_rgb(lab[rest]), t)
        toned = smooth < t.smooth_tone_residual
        out[rest[toned]] = "toned"
    return out.tolist()
