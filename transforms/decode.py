"""Decode image bytes with Pillow into an 8-bit sRGB array, or fail with a clear reason.

Handles JPEG draft mode (fast downscaled decode), EXIF orientation, CMYK, palette,
alpha (composited on white), 16-bit and float images, and refuses decompression bombs.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 10,000 x 10,000 scan
_ORIENTATION_TAG = 0x0112
_ROTATING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap w and h
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class ImageError(Exception):
    """A bad input image. `outcome` is a short machine-readable code, str() the detail."""

    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


@dataclass
class DecodedImage:
    """An image as the pipelines use it.

    rgb: (H, W, 3) uint8 sRGB after orientation (possibly draft-downscaled).
    width, height: the full size after EXIF orientation (not the draft size).
    mode: the source Pillow mode; grayscale_mode: the source has one channel.
    """

    rgb: np.ndarray
    width: int
    height: int
    mode: str
    grayscale_mode: bool
    icc_profile: bytes | None = None
    exif: bytes | None = None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError("too_large", str(e)) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError("undecodable", f"not a readable image: {e}") from e
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError("too_large", f"{w}x{h} = {w * h} pixels exceeds the limit {max_pixels}")
    if w < 1 or h < 1:
        raise ImageError("undecodable", f"invalid size {w}x{h}")
    return img


def _high_bit_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit integer or float single-channel image -> uint8 gray."""
    arr = np.asarray(img)
    if img.mode == "F":
        scale = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        arr = np.nan_to_num(arr) / scale * 255.0
    elif img.mode.startswith("I;16") or float(arr.max(initial=0)) > 255:
        arr = arr.astype(np.float64) / 257.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        gray = _high_bit_to_uint8(img)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        img = _composite_on_white(img)
    elif mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def decode_image(
    data: bytes, draft_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode bytes to a DecodedImage; raise ImageError with an outcome code on bad input.

    draft_size: for JPEGs, let libjpeg decode at the smallest scale whose short side is still
    at least this many pixels (much faster for thumbnails and training crops).
    """
    img = _open(data, max_pixels)
    mode = img.mode
    info = dict(img.info)
    width, height = img.size
    try:
        if img.getexif().get(_ORIENTATION_TAG, 1) in _ROTATING_ORIENTATIONS:
            width, height = height, width
        if draft_size and img.format == "JPEG" and mode in ("RGB", "L", "YCbCr"):
            img.draft(mode, (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as e:
        raise ImageError("too_large", str(e)) from e
    except (OSError, ValueError, SyntaxError, SystemError, struct.error) as e:
        raise ImageError("truncated", f"decoding failed: {e}") from e
    rgb = _to_rgb(img)
    return DecodedImage(
        rgb=rgb,
        width=width,
        height=height,
        mode=mode,
        grayscale_mode=mode in GRAYSCALE_MODES,
        icc_profile=info.get("icc_profile"),
        exif=info.get("exif"),
    )
