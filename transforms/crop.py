"""Resizing and cropping of uint8 / float image arrays (Pillow does the resampling)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def fit_short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so that its short side is `size` (bicubic; Lanczos-free speed)."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0))


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of an (H, W, ...) array (H, W >= size)."""
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def fit_and_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Scale the short side to `size`, then centre-crop to size x size (Cheong, Zhang)."""
    return centre_crop(fit_short_side(rgb, size), size)


def resize_float(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a float32 (H, W) or (H, W, C) array to (height, width)."""
    if img.ndim == 2:
        return np.asarray(
            Image.fromarray(img.astype(np.float32), mode="F").resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
    return np.stack([resize_float(img[..., c], width, height) for c in range(img.shape[-1])], -1)
