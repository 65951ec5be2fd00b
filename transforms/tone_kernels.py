"""Compiled (numba) per-pixel loops of the tone filter's batch measures (transforms.filters).

Each loop takes one pass where numpy took a dozen over the thumbnails (`stage` measures every
image this way: numpy's version cost as much as the rest of the per-image maths). The
numbers are the ones of filters.tone_residual / smooth_tone_residual, the readable per-image
definitions: the tone curve's sums in the same order as np.bincount's (the same bits); the
line fit's sums in pixel order and the smoothing as banded sums where numpy used pairwise
sums and BLAS (float rounding aside, the same numbers: tests/test_filters_staging.py). Compiled
on first use and cached beside this file (numba's cache=True), so a worker process pays
the compilation once per machine, not per process.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def tone_d2(lab: np.ndarray, levels: int) -> np.ndarray:
    """|ab - f(L)|^2 (N, P) float64 of N images' Lab pixels (N, P, 3) float32, f each image's
    tone curve: the mean ab of its pixels in each of `levels` brightness levels, interpolated
    linearly in L between the levels' mean L and flat beyond the ends (filters.tone_residual)."""
    n_img, n_pix = lab.shape[0], lab.shape[1]
    out = np.empty((n_img, n_pix), np.float64)
    level = np.empty(n_pix, np.int64)
    scale = np.float32(levels / 100.0)
    for i in range(n_img):
        count = np.zeros(levels, np.int64)
        sums = np.zeros((3, levels), np.float64)
        for p in range(n_pix):
            lv = min(max(np.int64(lab[i, p, 0] * scale), 0), levels - 1)
            level[p] = lv
            count[lv] += 1
            for c in range(3):
                sums[c, lv] += np.float64(lab[i, p, c])
        knot = np.empty(levels, np.int64)  # the knot of each used level
        knots = np.empty((3, levels), np.float64)  # the used levels' mean L, a, b
        used = 0
        for lv in range(levels):
            if count[lv] > 0:
                knot[lv] = used
                for c in range(3):
                    knots[c, used] = sums[c, lv] / count[lv]
                used += 1
        for p in range(n_pix):
            x = np.float64(lab[i, p, 0])
            k = knot[level[p]]
            lo = k - 1 if x < knots[0, k] else k  # the knot interval [lo, lo + 1] that holds x
            lo = min(max(lo, 0), max(used - 2, 0))
            hi = min(lo + 1, used - 1)
            x0 = knots[0, lo]
            span = knots[0, hi] - x0
            frac = min(max((x - x0) / (span if span > 0 else 1.0), 0.0), 1.0)
            da = np.float64(lab[i, p, 1]) - (knots[1, lo] + (knots[1, hi] - knots[1, lo]) * frac)
            db = np.float64(lab[i, p, 2]) - (knots[2, lo] + (knots[2, hi] - knots[2, lo]) * frac)
            out[i, p] = da * da + db * db
    return out


@njit(cache=True, nogil=True)
def smooth_tone_d2(
    rgb: np.ndarray,
    scale: float,
    to_ycc: np.ndarray,
    rows: np.ndarray,
    row_band: np.ndarray,
    cols: np.ndarray,
    col_band: np.ndarray,
) -> np.ndarray:
    """|smoothed residual|^2 (N, H, W) float64 of N sRGB images (N, H, W, 3), rgb / scale in
    [0, 1] (uint8 and 255.0, or floats and 1.0): the (Cb, Cr) residual of each image's
    least-squares line on Y (to_ycc: RGB -> 8-bit YCbCr, 3 x 3), smoothed as (rows @
    residual) @ cols.T (rows (H, H), cols (W, W): filters.gaussian_matrix) summed over each
    matrix row's nonzero band [band[r, 0], band[r, 1]) (row_band = filters.nonzero_bands(rows),
    col_band = ... (cols)), the inner loops along memory rows (so that they vectorize)."""
    n_img, h, w = rgb.shape[0], rgb.shape[1], rgb.shape[2]
    out = np.empty((n_img, h, w), np.float64)
    ycc = np.empty((3, h, w), np.float64)
    a_t = np.empty((2, w, h), np.float64)
    sm = np.empty((2, h, w), np.float64)
    res = np.empty((2, h, w), np.float64)
    n_pix = h * w
    for i in range(n_img):
        s0 = s1 = s2 = 0.0
        for y in range(h):
            for x in range(w):
                r, g, b = rgb[i, y, x, 0] / scale, rgb[i, y, x, 1] / scale, rgb[i, y, x, 2] / scale
                for c in range(3):
                    ycc[c, y, x] = to_ycc[c, 0] * r + to_ycc[c, 1] * g + to_ycc[c, 2] * b
                s0 += ycc[0, y, x]
                s1 += ycc[1, y, x]
                s2 += ycc[2, y, x]
        m0, m1, m2 = s0 / n_pix, s1 / n_pix, s2 / n_pix
        syy = sy1 = sy2 = 0.0
        for y in range(h):
            for x in range(w):
                yc = ycc[0, y, x] - m0
                syy += yc * yc
                sy1 += yc * ycc[1, y, x]
                sy2 += yc * ycc[2, y, x]
        k1, k2 = sy1 / max(syy, 1e-12), sy2 / max(syy, 1e-12)
        for y in range(h):
            for x in range(w):
                yc = ycc[0, y, x] - m0
                res[0, y, x] = ycc[1, y, x] - m1 - k1 * yc
                res[1, y, x] = ycc[2, y, x] - m2 - k2 * yc
        _product_transposed(rows, row_band, res, a_t)  # a = rows @ residual (numpy's order)
        _product_transposed(cols, col_band, a_t, sm)  # (a @ cols.T).T = cols @ a.T, back
        for y in range(h):
            for x in range(w):
                out[i, y, x] = sm[0, y, x] * sm[0, y, x] + sm[1, y, x] * sm[1, y, x]
    return out


@njit(cache=True, nogil=True)
def _product_transposed(m: np.ndarray, band: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out[c] = (m @ x[c]).T for the two planes of x (2, R, C), m (R, R) banded (band: each
    row's nonzero [first, stop)), summed in order of the inner index; the inner loop runs
    along x's memory rows, so it vectorizes."""
    acc = np.empty((2, x.shape[2]), np.float64)
    for r in range(m.shape[0]):
        acc[:] = 0.0
        for j in range(band[r, 0], band[r, 1]):
            wt = m[r, j]
            for k in range(x.shape[2]):
                acc[0, k] += wt * x[0, j, k]
                acc[1, k] += wt * x[1, j, k]
        for k in range(x.shape[2]):
            out[0, k, r] = acc[0, k]
            out[1, k, r] = acc[1, k]
