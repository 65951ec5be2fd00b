"""Resizing and cropping of uint8 / float image arrays (Pillow does the resampling).

Big images are resized in strips of rows so that no full-size float temporary is made:
`RowResizer` upsamples a small image one band of output rows at a time and `shrink_float`
downsamples a big one from bands of input rows. Both reproduce Pillow's separable two-pass
resampling (horizontal pass first, float32 in between, Pillow's filter weights), so they give
the same numbers as `resize_float` on the whole image up to float rounding.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMBNAIL_REDUCING_GAP = 1.5  # thumbnail(): box-reduce first when shrinking >= 3x
STRIP_PIXELS = 1 << 20  # pixels per strip of rows in full-resolution work (bounded memory)
INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


def fitted_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of an image scaled so that its short side is `size`."""
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def _pil(rgb: np.ndarray | Image.Image) -> Image.Image:
    return rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)


def fit_short_side(
    rgb: np.ndarray | Image.Image, size: int, reducing_gap: float = 3.0
) -> np.ndarray:
    """Resize (H, W, 3) uint8 (an array, or a Pillow RGB image: no copy into Pillow) so that
    its short side is `size` (bicubic; Lanczos-free speed; Pillow's `reducing_gap`: a box
    reduction by an integer factor first when shrinking by more than twice it)."""
    if isinstance(rgb, np.ndarray) and min(rgb.shape[:2]) == size:
        return rgb
    return np.asarray(_fit_short_side_image(_pil(rgb), size, reducing_gap))


def _fit_short_side_image(img: Image.Image, size: int, reducing_gap: float) -> Image.Image:
    new = fitted_size(*img.size, size)
    if new == img.size:
        return img
    return img.resize(new, Image.Resampling.BICUBIC, reducing_gap=reducing_gap)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of an (H, W, ...) array (H, W >= size)."""
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def fit_and_crop(rgb: np.ndarray | Image.Image, size: int, reducing_gap: float = 3.0) -> np.ndarray:
    """Scale the short side to `size`, then centre-crop to size x size (Cheong, Zhang): an
    (H, W, 3) uint8 array of an (H, W, 3) uint8 array or a Pillow RGB image (decode's
    DecodedImage.image: resized without a copy into Pillow and back, 0.15-0.27 ms less per
    ImageNet photo at 224 px, the same crop). fit_and_crop_image as an array."""
    if min(rgb.size if isinstance(rgb, Image.Image) else rgb.shape[:2]) == size:
        return centre_crop(np.asarray(rgb), size)  # nothing to resample: a view of the array
    return np.asarray(fit_and_crop_image(rgb, size, reducing_gap))


def fit_and_crop_image(
    rgb: np.ndarray | Image.Image, size: int, reducing_gap: float = 3.0
) -> Image.Image:
    """fit_and_crop as a Pillow RGB image (what a thumbnail of the crop takes without a copy;
    a source already size x size is returned itself).

    Only the crop's window is resampled (Pillow's `box`: the same filter taps as resizing the
    whole image and cropping, up to float rounding of the window, which moves a few pixels
    by 1-2 levels), at a fraction of the work: decode + crop of an ImageNet photo at 224 px
    2.23 against 2.54 ms (the best of 3 interleaved passes). A shrink by more than twice
    `reducing_gap` (Pillow's box reduction first) keeps the whole-image path, whose
    reduction blocks are aligned to the image's corner."""
    img = _pil(rgb)
    w, h = img.size
    if (w, h) == (size, size):
        return img  # already the crop (the same image, no copy)
    new_w, new_h = fitted_size(w, h, size)
    sx, sy = w / new_w, h / new_h
    top, left = (new_h - size) // 2, (new_w - size) // 2  # centre_crop's window, resized
    if (new_w, new_h) == (w, h) or max(sx, sy) >= 2 * reducing_gap:
        img = _fit_short_side_image(img, size, reducing_gap)
        return img.crop((left, top, left + size, top + size))
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box)


def thumbnail(rgb: np.ndarray | Image.Image, size: int) -> np.ndarray:
    """A size x size preview for measures (the tone filter): fit_and_crop with Pillow's
    reducing_gap 1.5, about half its time when shrinking 3x or more, within a few levels of
    its pixels (tests/test_filters_staging.py)."""
    return fit_and_crop(rgb, size, THUMBNAIL_REDUCING_GAP)


def _resample(interpolation: str) -> Image.Resampling:
    try:
        return INTERPOLATIONS[interpolation]
    except KeyError:
        raise ValueError(
            f"unknown interpolation {interpolation!r} ({', '.join(INTERPOLATIONS)})"
        ) from None


def resize_float(
    img: np.ndarray, width: int, height: int, interpolation: str = "bicubic"
) -> np.ndarray:
    """Resize a float32 (H, W) or (H, W, C) array to (height, width) with Pillow
    ('bicubic' or 'bilinear'; Pillow's filters are antialiased when shrinking)."""
    resample = _resample(interpolation)
    if img.ndim == 2:
        return np.asarray(
            Image.fromarray(img.astype(np.float32), mode="F").resize((width, height), resample)
        )
    return np.stack(
        [resize_float(img[..., c], width, height, interpolation) for c in range(img.shape[-1])],
        -1,
    )


def strip_rows(width: int, pixels: int = STRIP_PIXELS) -> int:
    """Rows per strip so that a strip of an image `width` wide holds about `pixels` pixels."""
    return max(1, pixels // max(1, width))


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Pillow's (and Keys') bicubic
    x = np.abs(x)
    return np.where(
        x < 1.0,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0),
    )


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


_FILTERS = {"bicubic": (2.0, _bicubic), "bilinear": (1.0, _triangle)}


def resample_weights(in_size: int, out_size: int, interpolation: str = "bicubic") -> np.ndarray:
    """(out_size, in_size) float64 matrix of Pillow's resampling weights along one axis
    (Resample.c precompute_coeffs: support scaled by the shrink factor, weights normalised
    over the taps inside the image), so that out = weights @ in."""
    _resample(interpolation)
    support, kernel = _FILTERS[interpolation]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    lo = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    hi = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    x = np.arange(in_size, dtype=np.float64)
    w = kernel((x[None, :] - center[:, None] + 0.5) / filterscale)
    inside = (x[None, :] >= lo[:, None]) & (x[None, :] < hi[:, None])
    w = np.where(inside, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=w, where=total != 0.0)


class RowResizer:
    """Resize a small float image (h, w) or (h, w, C) to (height, width) one band of output
    rows at a time: the horizontal pass is done once (Pillow, (h, width) float32), each band
    is a small product with its rows' vertical weights. `rows(a, b)` equals rows a..b of
    `resize_float(img, width, height, interpolation)` up to float rounding."""

    def __init__(self, img: np.ndarray, width: int, height: int, interpolation: str = "bicubic"):
        img = np.asarray(img, dtype=np.float32)
        self.squeeze = img.ndim == 2
        img = img[..., None] if self.squeeze else img
        h, w, c = img.shape
        self.width, self.height, self.channels = width, height, c
        cols = img if w == width else resize_float(img, width, h, interpolation)
        self._cols = np.ascontiguousarray(cols, dtype=np.float32).reshape(h, width * c)
        self._weights = None if h == height else resample_weights(h, height, interpolation)

    def rows(self, top: int, bottom: int, step: int = 1) -> np.ndarray:
        """Output rows top, top + step, ... < bottom as float32 (n, width[, C])."""
        idx = np.arange(top, min(bottom, self.height), step)
        if self._weights is None:
            out = self._cols[idx]
        else:
            wy = self._weights[idx]
            nz = np.flatnonzero(wy.any(axis=0))
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
            out = (wy[:, lo:hi] @ self._cols[lo:hi]).astype(np.float32)
        out = out.reshape(len(idx), self.width, self.channels)
        return out[..., 0] if self.squeeze else out


def shrink_float(
    img: np.ndarray,
    width: int,
    height: int,
    interpolation: str = "bicubic",
    pixels: int = STRIP_PIXELS,
) -> np.ndarray:
    """resize_float of a big (H, W) float image, reading it in bands of rows: Pillow's
    horizontal pass on each band, then its vertical pass on the (H, width) result. The same
    two passes Pillow makes on the whole image, so the result is the same, without a
    full-size copy."""
    resample = _resample(interpolation)
    h, w = img.shape
    if w == width:
        cols = np.asarray(img, dtype=np.float32)
    else:
        cols = np.empty((h, width), np.float32)
        step = strip_rows(w, pixels)
        for top in range(0, h, step):
            band = np.ascontiguousarray(img[top : top + step], dtype=np.float32)
            cols[top : top + step] = np.asarray(
                Image.fromarray(band, mode="F").resize((width, len(band)), resample)
            )
    if h == height:
        return cols.copy() if cols is img else cols
    return np.asarray(Image.fromarray(cols, mode="F").resize((width, height), resample))
