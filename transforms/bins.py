"""The quantized ab gamut (grid 10) and encodings of ab onto its bins.

The bins are derived, not tabulated: every 8-bit sRGB colour is converted to Lab and its ab
rounded to the nearest multiple of GRID; the set of centres reached is the gamut. Colours are
enumerated on the six faces of the RGB cube (where the gamut boundary lies) plus a coarse
interior grid, which reaches exactly the same set as all 2^24 colours (tests check this).

On the D65 sRGB gamut this gives 261 bins. Zhang et al.'s released table has 313 entries: it
includes 52 bins outside sRGB (their table was made from data, not from the gamut). Official
eccv16 checkpoints carry their own 313 centres in `model_out.weight` and are decoded with those.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from transforms.colour import rgb_to_lab

GRID = 10.0  # ab bin size (Zhang et al.)
AB_RANGE = 110.0  # ab centres lie in [-110, 110]
SOFT_NEIGHBOURS = 5  # soft encoding: nearest bins
SOFT_SIGMA = 5.0  # soft encoding: Gaussian sigma in ab units
_LUT_STEP = 1.0  # resolution of the nearest-bin lookup tables (ab units)
_LUT_HALF = 128  # tables cover ab in [-128, 128]


def _srgb_cube_samples(interior_levels: int = 16) -> np.ndarray:
    """All 8-bit colours on the faces of the RGB cube plus an interior grid, (N, 3) in [0, 1]."""
    v = np.arange(256, dtype=np.float32) / 255.0
    u, w = (x.ravel() for x in np.meshgrid(v, v, indexing="ij"))
    faces = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for value in (0.0, 1.0):
            face = np.empty((u.size, 3), dtype=np.float32)
            face[:, axis] = value
            face[:, others[0]] = u
            face[:, others[1]] = w
            faces.append(face)
    r = np.linspace(0.0, 1.0, interior_levels, dtype=np.float32)
    interior = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.concatenate(faces + [interior])


def derive_gamut_bins(rgb: np.ndarray) -> np.ndarray:
    """Grid centres (Q, 2) reached by rounding the ab of the given sRGB colours, sorted by a, b."""
    q = np.round(rgb_to_lab(rgb)[:, 1:] / GRID).astype(np.int64)
    # np.unique over one int key per (a, b) cell: the same sorted cells as unique(axis=0),
    # 30x faster (this runs at every worker's start-up)
    lo = q.min()
    span = int(q.max() - lo) + 1
    keys = np.unique((q[:, 0] - lo) * span + (q[:, 1] - lo))
    idx = np.stack([keys // span + lo, keys % span + lo], axis=-1)
    return (idx * GRID).astype(np.float32)


@lru_cache(maxsize=1)
def gamut_bins() -> np.ndarray:
    """The in-gamut ab bin centres, (Q, 2) float32, sorted by a then b. Read-only."""
    bins = derive_gamut_bins(_srgb_cube_samples())
    bins.setflags(write=False)
    return bins


def num_bins() -> int:
    """Q, the number of in-gamut bins."""
    return int(gamut_bins().shape[0])


def _lut_axis() -> np.ndarray:
    return np.arange(-_LUT_HALF, _LUT_HALF + _LUT_STEP, _LUT_STEP, dtype=np.float32)


@lru_cache(maxsize=1)
def neighbour_table() -> np.ndarray:
    """For each point of a 1-unit ab lattice, the indices of its SOFT_NEIGHBOURS nearest bins.

    Shape (257, 257, SOFT_NEIGHBOURS), int16, nearest first. Index with `lattice_index`.
    """
    axis = _lut_axis()
    a, b = np.meshgrid(axis, axis, indexing="ij")
    pts = np.stack([a.ravel(), b.ravel()], axis=1)
    bins = gamut_bins()
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 does not change the ranking. Integer maths
    # keeps ties exact, so they break by bin index.
    pts, bins = pts.astype(np.int64), bins.astype(np.int64)
    d2 = (bins**2).sum(1)[None, :] - 2 * (pts @ bins.T)
    # Candidates with slack for ties at the boundary, then an exact (distance, index) sort.
    part = np.argpartition(d2, 4 * SOFT_NEIGHBOURS, axis=1)[:, : 4 * SOFT_NEIGHBOURS]
    order = np.lexsort((part, np.take_along_axis(d2, part, axis=1)), axis=1)
    nearest = np.take_along_axis(part, order, axis=1)[:, :SOFT_NEIGHBOURS]
    table = nearest.reshape(axis.size, axis.size, SOFT_NEIGHBOURS).astype(np.int16)
    table.setflags(write=False)
    return table


def lattice_index(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each ab value (..., 2) in the lookup tables (clipped to the table)."""
    ij = np.clip(np.rint((np.asarray(ab) + _LUT_HALF) / _LUT_STEP), 0, 2 * _LUT_HALF / _LUT_STEP)
    ij = ij.astype(np.int64)
    return ij[..., 0], ij[..., 1]


def hard_encode(ab: np.ndarray) -> np.ndarray:
    """Index of the nearest in-gamut bin for each ab value (..., 2) -> (...) int16.

    Exact up to the 1-unit lattice (ab is rounded to integers first).
    """
    i, j = lattice_index(ab)
    return neighbour_table()[i, j, 0]


def soft_encode(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets: (indices, weights) of the SOFT_NEIGHBOURS nearest bins, each (..., K).

    The neighbours are those of ab rounded to the 1-unit lattice (exact for integer ab; for
    others at most sqrt(2)/2 units off); the weights are Gaussian (sigma SOFT_SIGMA) in the
    true ab distance, normalised to sum 1.
    """
    ab = np.asarray(ab, dtype=np.float32)
    i, j = lattice_index(ab)
    idx = neighbour_table()[i, j].astype(np.int64)
    d2 = ((ab[..., None, :] - gamut_bins()[idx]) ** 2).sum(-1)
    w = np.exp(-(d2 - d2.min(-1, keepdims=True)) / (2.0 * SOFT_SIGMA**2))
    return idx, (w / w.sum(-1, keepdims=True)).astype(np.float32)


def histogram(ab: np.ndarray) -> np.ndarray:
    """Counts of pixels per bin (Q,) int64 for an ab image (..., 2)."""
    return np.bincount(hard_encode(ab).ravel(), minlength=num_bins()).astype(np.int64)


def annealed_mean(probs: np.ndarray, temperature: float = 0.38, centres: np.ndarray | None = None):
    """Decode bin probabilities (..., Q) to ab (..., 2) by the annealed mean (Zhang et al.).

    f_T(z) = exp(log z / T) / sum exp(log z / T); T=1 is the mean, T->0 the mode.
    """
    centres = gamut_bins() if centres is None else centres
    logp = np.log(np.clip(probs, 1e-12, None)) / temperature
    logp -= logp.max(-1, keepdims=True)
    q = np.exp(logp)
    q /= q.sum(-1, keepdims=True)
    return (q @ centres).astype(np.float32)
