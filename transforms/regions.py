"""Region layout of the colour codec and the map between full-image and model resolution.

Regions are square grid cells of `cell` full-image pixels, row-major from the top left; the
last row / column of cells is cut at the image border. The model sees the whole image
resized (aspect ignored) to a square and returns maps of h x w pixels; full-image pixel
centre i of n maps to model coordinate (i + 0.5) * m / n - 0.5 (pixel-centre alignment, as
`resize_float`/PIL do), clamped at the borders.

`upsample_fixed` is bilinear interpolation in integers only (positions in 1/64 pixel,
separable, rows then columns, one rounding at the end), so every machine gets the same
values from the same integer maps. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAC_BITS = 6  # interpolation positions in 1/64 of a model pixel
_ONE = 1 << FRAC_BITS


@dataclass(frozen=True)
class GridLayout:
    """Square cells of `cell` pixels over a height x width image."""

    height: int
    width: int
    cell: int

    def __post_init__(self):
        if min(self.height, self.width, self.cell) < 1:
            raise ValueError(f"bad grid layout {self}")

    @property
    def rows(self) -> int:
        return -(-self.height // self.cell)

    @property
    def cols(self) -> int:
        return -(-self.width // self.cell)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def counts(self) -> np.ndarray:
        """Pixels per cell, (rows, cols) int64."""
        hs = np.minimum(self.cell, self.height - self.cell * np.arange(self.rows))
        ws = np.minimum(self.cell, self.width - self.cell * np.arange(self.cols))
        return np.outer(hs, ws).astype(np.int64)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Sum of x (height, width, ...) over each cell -> (rows, cols, ...)."""
        if x.shape[:2] != (self.height, self.width):
            raise ValueError(f"array {x.shape[:2]} does not match layout {self}")
        s = np.add.reduceat(x, np.arange(0, self.height, self.cell), axis=0)
        return np.add.reduceat(s, np.arange(0, self.width, self.cell), axis=1)

    def means(self, x: np.ndarray) -> np.ndarray:
        """Mean of x over each cell (float64)."""
        s = self.sums(np.asarray(x, dtype=np.float64))
        c = self.counts()
        return s / c.reshape(c.shape + (1,) * (s.ndim - 2))

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Per-cell values (rows, cols, ...) -> per-pixel (height, width, ...)."""
        if values.shape[:2] != (self.rows, self.cols):
            raise ValueError(f"values {values.shape[:2]} do not match layout {self}")
        out = np.repeat(np.repeat(values, self.cell, axis=0), self.cell, axis=1)
        return out[: self.height, : self.width]

    def labels(self) -> np.ndarray:
        """Cell index (row-major) of every pixel, (height, width) int32."""
        ids = np.arange(self.count, dtype=np.int32).reshape(self.rows, self.cols)
        return self.expand(ids)


def model_position(i: np.ndarray | int, n_full: int, n_model: int) -> np.ndarray:
    """Model-resolution coordinate (float) of full-resolution pixel centre(s) i."""
    return (np.asarray(i, dtype=np.float64) + 0.5) * n_model / n_full - 0.5


def full_position(j: np.ndarray | int, n_full: int, n_model: int) -> np.ndarray:
    """Full-resolution coordinate (float) of model pixel centre(s) j."""
    return (np.asarray(j, dtype=np.float64) + 0.5) * n_full / n_model - 0.5


def source_taps(n_full: int, n_model: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer bilinear taps for n_full outputs from n_model inputs: (i0, i1, w1) with the
    output = (x[i0] * (64 - w1) + x[i1] * w1) / 64. Positions are computed exactly in
    integers: floor(((2i + 1) * m - n) * 64 / (2n)) in 1/64 model pixels."""
    i = np.arange(n_full, dtype=np.int64)
    pos = ((2 * i + 1) * n_model - n_full) * _ONE // (2 * n_full)
    pos = np.clip(pos, 0, (n_model - 1) * _ONE)
    i0 = pos >> FRAC_BITS
    w1 = pos & (_ONE - 1)
    i1 = np.minimum(i0 + 1, n_model - 1)
    return i0, i1, w1


def upsample_columns(x: np.ndarray, width: int, dtype: type = np.int32) -> np.ndarray:
    """First (horizontal) pass of upsample_fixed: integer maps (h, w, ...) -> (h, width, ...)
    `dtype` (int32, or int64 for wide values) in 1/64 of x's units."""
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError("upsample_fixed takes integer maps (quantize first)")
    x = x.astype(dtype)
    c0, c1, cw = source_taps(width, x.shape[1])
    cw = cw.astype(dtype).reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.take(x, c0, axis=1) * (_ONE - cw) + np.take(x, c1, axis=1) * cw


def _finish(full: np.ndarray, out_bits: int) -> np.ndarray:
    shift = 2 * FRAC_BITS - out_bits
    if shift <= 0:
        return full << -shift
    full += 1 << (shift - 1)
    full >>= shift
    return full


def upsample_fixed(
    x: np.ndarray, height: int, width: int, out_bits: int = 4, dtype: type = np.int32
) -> np.ndarray:
    """Bilinear upsampling of integer maps x (h, w, ...) to (height, width, ...), integers
    only: the result is round(value * 2^out_bits) as `dtype` (out_bits <= 12; int64 for values
    that would pass 2^19 in int32). Exact integer sums, so the order of the two passes does not
    matter; one rounding at the end."""
    cols = upsample_columns(x, width, dtype)
    r0, r1, rw = source_taps(height, x.shape[0])
    rw = rw.astype(dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    full = np.take(cols, r0, axis=0) * (_ONE - rw)
    full += np.take(cols, r1, axis=0) * rw
    return _finish(full, out_bits)


def upsample_select(cols: np.ndarray, choice: np.ndarray, out_bits: int = 4) -> np.ndarray:
    """Second pass for a per-pixel choice among K maps: cols (K, h, width, C) from
    upsample_columns, choice (height, width) ints in 0..K-1 -> (height, width, C) int32,
    equal pixel for pixel to upsample_fixed(x[choice]), computing only the chosen maps."""
    k, h, width, c = cols.shape
    height = choice.shape[0]
    r0, r1, rw = source_taps(height, h)
    flat = cols.reshape(k * h * width, c)
    base = choice.astype(np.int64) * h
    xs = np.arange(width, dtype=np.int64)[None, :]
    rw = rw.astype(np.int32)[:, None, None]
    full = np.take(flat, ((base + r0[:, None]) * width + xs).ravel(), axis=0).reshape(
        height, width, c
    ) * (_ONE - rw)
    full += (
        np.take(flat, ((base + r1[:, None]) * width + xs).ravel(), axis=0).reshape(height, width, c)
        * rw
    )
    return _finish(full, out_bits)
