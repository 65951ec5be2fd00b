"""Luminance-guided upsampling of a coarse chroma grid, in integers only (pure numpy).

The colour codec's refinement layer sends one ab value per cell; the decoder also has the
full-resolution luminance. Plain bilinear interpolation of the cell values blurs every colour
edge over a cell; here the chroma follows the luminance instead (a guided filter, He et al.
2010, run on the cell grid):

1. per cell, the mean gray level G (1/16 gray units) of the guide;
2. per cell, over its 3x3 neighbourhood of cells (edges replicated), the least-squares line
   v ~ a * G + b of the cell values against the cells' mean gray, with the regulariser EPS
   (gray levels squared) on the variance, so that where the luminance hardly varies a -> 0;
   |a| is capped at A_MAX;
3. each cell keeps its own value at its own mean gray: b = v - a * G_cell;
4. a and b are interpolated bilinearly (transforms/regions.upsample_fixed, cell centres as
   there) to every pixel, which gets a * gray + b.

Every step is integer arithmetic (int64 per cell, int32 per pixel), so the same cell values
and guide give the same field on every machine. EPS and the 3x3 window were chosen on 23
ImageNet samples (every 40th file; never Kodak) with a float prototype: exact cell means at
16 / 32 px gave CIEDE2000 3.25 / 4.25 against bilinear's 3.59 / 4.71 (EPS 100, 200, 800,
1600 and a 5x5 window all did worse).
"""

from __future__ import annotations

import numpy as np

from transforms.colour import l_to_gray
from transforms.regions import GridLayout, upsample_fixed

EPS = 400  # regulariser of the gray variance, in gray levels^2 (guide 0..255)
A_MAX = 8  # cap on |a|, in value units per gray level (2 ab units per gray level in 1/4 ab)
A_BITS = 10  # fractional bits of a (and of b while the line is fitted)
B_BITS = 4  # fractional bits of b while it is interpolated (keeps int32 from overflowing)
G_BITS = 4  # cell mean gray in 1/16 gray levels
VALUE_MAX = 1 << 14  # |cell values| the int32 pixel pass takes without overflow
# a luminance whose signature is farther than this (gray levels) from the bitstream's is not
# the one it was encoded against (luminance_signature: re-encodes <= 1, other photos >= 6)
SIGNATURE_TOLERANCE = 3


def guide_from_l(l: np.ndarray) -> np.ndarray:
    """L (H, W) in [0, 100] -> gray levels (H, W) uint8: the pixels of the grayscale
    luminance file (transforms/luminance.py), which encoder and decoder both use as guide."""
    return np.clip(np.rint(l_to_gray(l) * 255.0), 0, 255).astype(np.uint8)


def luminance_signature(gray: np.ndarray) -> bytes:
    """The 4-byte fingerprint of a guide (H, W) uint8 that a version-4 bitstream carries: the
    rounded mean gray level of its top-left, top-right, bottom-left and bottom-right halves
    by halves (rows [0, ceil(H/2)) and [H//2, H), columns likewise; a 1-pixel side is its
    own two halves), in integers. Re-encoding the luminance file (JPEG q30, PNG) moves it by
    at most 1 level; another photo of the same size by 6 levels or more (Kodak and 200
    ImageNet samples: all 939 same-size pairs); Pillow's convert("L") of the colour photo
    (Rec. 601 luma, not L*) by up to 21, more than SIGNATURE_TOLERANCE in a quarter of them."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 1:
        raise ValueError(f"a guide is (H, W) uint8 gray levels, got {gray.shape} {gray.dtype}")
    h, w = gray.shape
    out = bytearray()
    for rows in (slice(0, (h + 1) // 2), slice(h // 2, h)):
        for cols in (slice(0, (w + 1) // 2), slice(w // 2, w)):
            part = gray[rows, cols]
            total = int(part.sum(dtype=np.int64))
            out.append((2 * total + part.size) // (2 * part.size))
    return bytes(out)


def signature_distance(a: bytes, b: bytes) -> int:
    """The largest difference in gray levels between two luminance signatures' halves."""
    if len(a) != len(b):
        raise ValueError(f"signatures of {len(a)} and {len(b)} bytes")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0)


def _round_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """round(num / den) for int64 arrays, den > 0 (halves round up), exact."""
    return (2 * num + den) // (2 * den)


def _box3(x: np.ndarray) -> np.ndarray:
    """Sum over each cell's 3x3 neighbourhood, edges replicated (int64)."""
    p = np.pad(x, ((1, 1), (1, 1)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    rows, cols = x.shape[:2]
    return sum(p[i : i + rows, j : j + cols] for i in range(3) for j in range(3))


def cell_gray(guide: np.ndarray, cell: int) -> np.ndarray:
    """Mean gray of each cell, (rows, cols) int64 in 1/16 gray levels (rounded)."""
    layout = GridLayout(guide.shape[0], guide.shape[1], cell)
    sums = layout.sums(np.asarray(guide, dtype=np.int64))
    return _round_div(sums << G_BITS, layout.counts())


def coefficients(values: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell line (a, b) of cell values (rows, cols, C) int against the cells' mean gray
    (rows, cols) in 1/16 levels: a in value units per gray level and b in value units, both
    times 2^A_BITS, int64 (rows, cols, C)."""
    v = np.asarray(values, dtype=np.int64)
    g = gray.astype(np.int64)[..., None]
    n = 9
    sg, sgg = _box3(g), _box3(g * g)
    sv, sgv = _box3(v), _box3(g * v)
    eps = n * n * EPS << (2 * G_BITS)
    num = n * sgv - sg * sv  # n^2 * covariance, value x (1/16 gray)
    den = n * sgg - sg * sg + eps  # n^2 * variance (+ eps), (1/16 gray)^2
    a = _round_div(num << (A_BITS + G_BITS), den)
    a = np.clip(a, -A_MAX << A_BITS, A_MAX << A_BITS)
    b = (v << A_BITS) - ((a * g + (1 << (G_BITS - 1))) >> G_BITS)
    return a, b


def guided_field(values: np.ndarray, guide: np.ndarray, cell: int, out_bits: int = 4) -> np.ndarray:
    """Cell values (rows, cols, C) int (cells of `cell` px over the guide, row-major from the
    top left, each value at its cell's centre) + guide (H, W) uint8 gray -> per-pixel field
    (H, W, C) int32 = round(value * 2^out_bits), following the guide's edges."""
    guide = np.asarray(guide)
    if guide.ndim != 2 or guide.dtype != np.uint8:
        raise ValueError(f"guide must be (H, W) uint8, got {guide.shape} {guide.dtype}")
    values = np.asarray(values)
    if values.ndim != 3 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"values must be (rows, cols, C) integers, got {values.shape} {values.dtype}"
        )
    if np.abs(values).max(initial=0) > VALUE_MAX:
        raise ValueError(f"|values| above {VALUE_MAX}: the int32 pixel pass would overflow")
    height, width = guide.shape
    rows, cols = values.shape[:2]
    if (rows, cols) != (-(-height // cell), -(-width // cell)):
        raise ValueError(f"values {values.shape[:2]} do not match {height}x{width} / {cell}")
    a, b = coefficients(values, cell_gray(guide, cell))
    # a and b at every pixel: bilinear between cell centres over the padded rows*cell x
    # cols*cell area (as the bilinear filter), a in 2^-A_BITS, b in 2^-B_BITS value units
    # (int32 throughout: |a| <= A_MAX, |values| well inside 2^15)
    size = (rows * cell, cols * cell)
    a_up = upsample_fixed(a.astype(np.int32), *size, out_bits=0)[:height, :width]
    b_low = (b + (1 << (A_BITS - B_BITS - 1))) >> (A_BITS - B_BITS)
    b_up = upsample_fixed(b_low.astype(np.int32), *size, out_bits=0)[:height, :width]
    full = a_up * guide[..., None].astype(np.int32)
    full += b_up << (A_BITS - B_BITS)
    shift = A_BITS - out_bits
    full += 1 << (shift - 1)
    full >>= shift
    return full
