"""Compiled (numba) per-pixel loops of the uint8 Lab fast path and of `stage`'s pixel columns
(Lab, and the Y / UV bytes of `--space yuv`).

numpy took a pass per step (planes, three table lookups, the matrix, the linear segment; then
the quantized L and ab, their histogram, the chroma), each over the whole batch; these loops
take each pixel once, in float32 as numpy did. The cube root stays numpy's (its SIMD cbrt
is 60x faster than a compiled loop's scalar one on this machine). Compiled on first use and
cached beside this file (numba's cache=True).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def xyzn_planes(rgb: np.ndarray, linear: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(3, P) float32 planes X/Xn, Y/Yn, Z/Zn of P uint8 sRGB pixels (P, 3): `linear` the
    256-entry linearisation table (float64 of its float32 values), `m` the XYZ matrix with
    the white folded in (3, 3) float64: summed in float64, rounded once to float32."""
    n = rgb.shape[0]
    out = np.empty((3, n), np.float32)
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    for p in range(n):
        r, g, b = linear[rgb[p, 0]], linear[rgb[p, 1]], linear[rgb[p, 2]]
        out[0, p] = np.float32(m00 * r + m01 * g + m02 * b)
        out[1, p] = np.float32(m10 * r + m11 * g + m12 * b)
        out[2, p] = np.float32(m20 * r + m21 * g + m22 * b)
    return out


@njit(cache=True, nogil=True)
def linear_segment(f: np.ndarray, xyz: np.ndarray, eps: float, kappa: float) -> None:
    """Lab's companding below its knee, in place: f = (kappa * t + 16) / 116 where t = xyz
    <= eps (f holds the cube roots of xyz elsewhere); float32 throughout."""
    e, k = np.float32(eps), np.float32(kappa)
    sixteen, div = np.float32(16.0), np.float32(116.0)
    flat_f, flat_t = f.reshape(-1), xyz.reshape(-1)
    for i in range(flat_t.size):
        t = flat_t[i]
        below = (t * k + sixteen) / div
        flat_f[i] = below if t <= e else flat_f[i]  # a select, not a branch: it vectorizes


# reassoc: the chroma sum may be summed in vector lanes (it is the loop's only float
# reduction; the bytes and counts came out the same on the samples, the mean chroma within
# 1e-14); the quantized values are rounded as numpy rounds them
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def lab_columns(f: np.ndarray, n_img: int, pair_bins: np.ndarray, n_bins: int) -> tuple:
    """The Lab pixel columns of n_img images from their companded planes f (3, n_img * P)
    float32 (colour.rgb8_lab_f): L bytes (n_img, P) uint8 (round(L * 2.55)), ab bytes
    (n_img, P, 2) int8 (round(ab), clipped to +-127), the counts per ab bin (n_img, n_bins)
    int64 of the stored ab (pair_bins: the bin of each ab byte pair read as a uint16 in this
    machine's byte order) and the mean chroma (n_img,) float64 of the unrounded ab."""
    n_pix = f.shape[1] // n_img
    l_out = np.empty((n_img, n_pix), np.uint8)
    ab_out = np.empty((n_img, n_pix, 2), np.int8)
    pairs = ab_out.reshape(-1).view(np.uint16).reshape(n_img, n_pix)
    hist = np.zeros((n_img, n_bins), np.int64)
    chroma = np.zeros(n_img, np.float64)
    c116, c16, c255 = np.float32(116.0), np.float32(16.0), np.float32(2.55)
    c500, c200 = np.float32(500.0), np.float32(200.0)
    zero, top, lo, hi = np.float32(0.0), np.float32(255.0), np.float32(-127.0), np.float32(127.0)
    for i in range(n_img):
        total = 0.0
        for p in range(n_pix):  # no scattered writes here: this loop vectorizes
            k = i * n_pix + p
            fx, fy, fz = f[0, k], f[1, k], f[2, k]
            l = fy * c116 - c16
            a = (fx - fy) * c500
            b = (fy - fz) * c200
            l_out[i, p] = np.uint8(min(max(np.rint(l * c255), zero), top))
            ab_out[i, p, 0] = np.int8(min(max(np.rint(a), lo), hi))
            ab_out[i, p, 1] = np.int8(min(max(np.rint(b), lo), hi))
            total += np.sqrt(a * a + b * b)
        chroma[i] = total / n_pix
        for p in range(n_pix):
            hist[i, pair_bins[pairs[i, p]]] += 1
    return l_out, ab_out, hist, chroma


@njit(cache=True, nogil=True)
def yuv_columns(rgb: np.ndarray, m: np.ndarray) -> tuple:
    """The `--space yuv` pixel columns of P uint8 sRGB pixels (..., 3), C-contiguous: Y bytes
    (P,) uint8 and UV bytes (P, 2) int8, each round(m @ rgb) clipped to [0, 255] / +-127,
    where m (3, 3) float64 is the BT.601 matrix scaled to the stored units (staging
    .yuv_byte_matrix). Summed in float64 and rounded once (numpy's rint, half to even): the
    bytes of the float64 maths, whatever the machine's BLAS (35-43 us per 224 px crop here;
    float32 took 14-17 but rounds U and V off near ties)."""
    flat = rgb.reshape(-1)
    n = flat.size // 3
    y_out = np.empty(n, np.uint8)
    uv_out = np.empty(2 * n, np.int8)
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    for p in range(n):
        r, g, b = np.float64(flat[3 * p]), np.float64(flat[3 * p + 1]), np.float64(flat[3 * p + 2])
        y_out[p] = np.uint8(min(max(np.rint(m00 * r + m01 * g + m02 * b), 0.0), 255.0))
        u, v = m10 * r + m11 * g + m12 * b, m20 * r + m21 * g + m22 * b
        uv_out[2 * p] = np.int8(min(max(np.rint(u), -127.0), 127.0))
        uv_out[2 * p + 1] = np.int8(min(max(np.rint(v), -127.0), 127.0))
    return y_out, uv_out.reshape(n, 2)
