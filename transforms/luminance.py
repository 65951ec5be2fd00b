"""The codec's luminance file: L written as a grayscale JPEG or PNG and read back (pure numpy
+ Pillow). The encoder runs the model on the L read back from the file it wrote, so that the
decoder, which only has that file, sees exactly the same input."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from transforms.compose import luminance
from transforms.decode import DEFAULT_MAX_PIXELS, decode_image
from transforms.lumaguide import guide_from_l

FORMATS = {"jpeg": ".jpg", "png": ".png"}
SUFFIX = ".l"  # <stem>.l.jpg / <stem>.l.png beside <stem>.cbc


def encode_luminance(l: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """L (H, W) in [0, 100] -> an 8-bit grayscale JPEG (at `quality`, 4:0:0) or PNG."""
    gray = guide_from_l(l)
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(gray, "L").save(buf, "JPEG", quality=quality, optimize=True)
    elif fmt == "png":
        Image.fromarray(gray, "L").save(buf, "PNG", compress_level=6)
    else:
        raise ValueError(f"unknown luminance format {fmt!r} ({', '.join(FORMATS)})")
    return buf.getvalue()


def decode_luminance(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A luminance file (any image; colour files give their L) -> L (H, W) float32."""
    return luminance(decode_image(data, max_pixels=max_pixels).rgb)


def luminance_candidates(stem_uri: str) -> list[str]:
    """Where the luminance file of `<stem>.cbc` may be: `<stem>.l.jpg`, `<stem>.l.png`, then
    the user's own grayscale file beside it (`<stem>.png`, `.jpg`, `.jpeg`, `.tif`, `.tiff`)."""
    own = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"]
    return [stem_uri + SUFFIX + ext for ext in FORMATS.values()] + [stem_uri + e for e in own]
