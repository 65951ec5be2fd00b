"""Hint propagation without a model: the baselines a learned hint model has to beat.

- Inverse-distance weighting (IDW): every pixel takes sum_i w_i ab_i / sum_i w_i with
  w_i = 1 / d_i^power over the hint centres (power 2).
- Levin, Lischinski & Weiss 2004, "Colorization using Optimization": neighbouring pixels of
  similar luminance get similar colours. Each unconstrained pixel r satisfies
  U(r) - sum_{s in N(r)} w_rs U(s) = 0 over its 3x3 window, w_rs proportional to
  exp(-(Y(r) - Y(s))^2 / (2 sigma_r^2)) (sigma_r^2 the window's luminance variance, floored
  as in the authors' code), normalised to sum 1; hinted pixels are constraints. One sparse
  LU factorisation (scipy.sparse) solves a and b.

Both work at reduced resolution (`work_size` short side, default 256); the ab is returned at
that resolution and the caller keeps the original L (transforms.compose.compose).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from transforms.crop import resize_float
from transforms.hints import Hints, hint_map

WORK_SIZE = 256
IDW_POWER = 2.0


def work_shape(width: int, height: int, work_size: int = WORK_SIZE) -> tuple[int, int]:
    """(w, h) with the short side work_size (never upscaled)."""
    scale = min(1.0, work_size / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def idw(xy: np.ndarray, ab: np.ndarray, width: int, height: int, power: float = IDW_POWER):
    """IDW of point colours ab (n, 2) at pixel coordinates xy (n, 2) over a width x height
    grid -> (height, width, 2) float32; zeros with no points."""
    out = np.zeros((height, width, 2), np.float32)
    if len(xy) == 0:
        return out
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d2 = (xx[..., None] - xy[:, 0]) ** 2 + (yy[..., None] - xy[:, 1]) ** 2  # (h, w, n)
    w = 1.0 / np.maximum(d2, 1e-6) ** (power / 2.0)
    exact = d2 < 1e-6
    if exact.any():  # a pixel on a hint centre takes that hint
        w = np.where(exact.any(-1, keepdims=True), exact.astype(np.float32), w)
    return (
        np.tensordot(w, ab.astype(np.float32), axes=([2], [0])) / w.sum(-1, keepdims=True)
    ).astype(np.float32)


def levin_matrix(y: np.ndarray, mask: np.ndarray) -> sp.csc_matrix:
    """The Levin et al. system matrix for luminance y (h, w) in [0, 1] and constraint mask."""
    h, w = y.shape
    n = h * w
    idx = np.arange(n).reshape(h, w)
    pad_y = np.pad(y, 1, mode="edge")
    pad_i = np.pad(idx, 1, mode="constant", constant_values=-1)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    nb_y = np.stack([pad_y[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    nb_i = np.stack([pad_i[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    valid = nb_i >= 0
    # Window variance (neighbours + centre), floored like the authors' getColorExact.m.
    vals = np.where(valid, nb_y, 0.0)
    cnt = valid.sum(0) + 1
    mean = (vals.sum(0) + y) / cnt
    var = (np.where(valid, (nb_y - mean) ** 2, 0.0).sum(0) + (y - mean) ** 2) / cnt
    csig = var * 0.6
    d2 = np.where(valid, (nb_y - y) ** 2, np.inf)
    mgv = d2.min(0)
    csig = np.maximum(csig, -mgv / np.log(0.01))
    csig = np.maximum(csig, 2e-6)
    wts = np.where(valid, np.exp(-np.where(valid, d2, 0.0) / csig), 0.0)
    wts /= wts.sum(0, keepdims=True)
    free = ~mask.astype(bool)
    rows = np.broadcast_to(idx, nb_i.shape)
    keep = valid & free[None]
    r = np.concatenate([idx.ravel(), rows[keep]])
    c = np.concatenate([idx.ravel(), nb_i[keep]])
    v = np.concatenate([np.ones(n), -wts[keep]])
    return sp.csc_matrix((v, (r, c)), shape=(n, n))


def levin(l: np.ndarray, hints_map: np.ndarray) -> np.ndarray:
    """Levin et al. 2004 on L (h, w) in [0, 100] with a hint map (h, w, 3) [a, b, mask]
    -> ab (h, w, 2) float32; zeros with no hints."""
    h, w = l.shape
    mask = hints_map[..., 2] > 0.5
    if not mask.any():
        return np.zeros((h, w, 2), np.float32)
    a = levin_matrix(l.astype(np.float64) / 100.0, mask)
    rhs = np.where(mask[..., None], hints_map[..., :2], 0.0).reshape(-1, 2).astype(np.float64)
    return splu(a).solve(rhs).reshape(h, w, 2).astype(np.float32)


def propagate(
    method: str, l_full: np.ndarray, hints: Hints, work_size: int = WORK_SIZE
) -> np.ndarray:
    """'idw' or 'levin' of the hints of an image with L l_full (H, W) -> ab (h, w, 2) at the
    working resolution (short side work_size), to be composed with the original L."""
    height, width = l_full.shape
    w, h = work_shape(width, height, work_size)
    if method == "idw":
        sx, sy = w / width, h / height
        xy = (hints.xy + 0.5) * np.array([sx, sy], np.float32) - 0.5
        return idw(xy, hints.ab, w, h)
    if method == "levin":
        l_small = (
            resize_float(l_full.astype(np.float32), w, h).clip(0, 100)
            if (w, h) != (width, height)
            else l_full
        )
        return levin(l_small, hint_map(hints, width, height, w, h))
    raise ValueError(f"unknown propagation {method!r} (idw, levin)")
