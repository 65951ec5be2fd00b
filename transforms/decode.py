"""Decode image bytes with Pillow into an 8-bit sRGB array, or fail with a clear reason.

Handles JPEG draft mode (fast downscaled decode), EXIF orientation, CMYK, palette,
alpha (composited on white), 16-bit and float images, and refuses decompression bombs:
images above `max_pixels` (the jobs' --max-pixels) are refused from their header, before any
pixel is decoded. That check replaces Pillow's own (`Image.MAX_IMAGE_PIXELS` is lifted while
we open), so the refusal names the option whatever the size. Error details never contain
object addresses (`<_io.BytesIO object at 0x...>`): reasons are stable from run to run.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from transforms.crop import strip_rows

# What a 24 GB machine takes with one image per worker in flight (2 workers on 2 cores), from
# bench/memory.py and 2 x 48 MP runs: evaluate ~0.8 GB + 19.6 B/pixel in flight, colorize
# ~0.5 GB + 10.5 B/pixel; 2 x 250 MP -> ~10.6 GB (evaluate), ~5.8 GB (colorize). 250 MP is a
# 600 dpi scan of a 20x30 inch print (216 MP) or a 1200 dpi 8x10 (115 MP) with room to spare.
DEFAULT_MAX_PIXELS = 250_000_000
_ADDRESS = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")  # " <_io.BytesIO object at 0x7f..>"
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

    image: the decoded pixels as a Pillow RGB image after orientation (possibly
    draft-downscaled): what resizing and cropping take without a copy (crop.fit_and_crop).
    rgb: the same pixels as an (H, W, 3) uint8 array, made on first use; from then on the
    array is what is held (`image` is remade from it if asked again), so one copy of the
    pixels lives at a time, as with the array alone.
    width, height: the full size after EXIF orientation (not the draft size).
    mode: the source Pillow mode; grayscale_mode: the source has one channel.
    icc_profile: the source's ICC profile if it is an RGB one (rgb_profile), else None.
    n_frames: frames in the file (animated GIF/WebP/PNG, multi-page TIFF); rgb is frame 0.
    """

    _image: Image.Image | None = field(repr=False)
    width: int
    height: int
    mode: str
    grayscale_mode: bool
    icc_profile: bytes | None = None
    exif: bytes | None = None
    n_frames: int = 1
    _rgb: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> Image.Image:
        """The pixels as a Pillow RGB image."""
        return self._image if self._image is not None else Image.fromarray(self._rgb)

    @property
    def rgb(self) -> np.ndarray:
        """The pixels as an (H, W, 3) uint8 array."""
        if self._rgb is None:
            self._rgb, self._image = np.asarray(self._image, dtype=np.uint8), None
        return self._rgb


def reason(e: BaseException) -> str:
    """str(e) without object addresses, so that the same bad file gives the same reason."""
    return _ADDRESS.sub("", str(e))


def too_large_reason(width: int, height: int, max_pixels: int) -> str:
    """The refusal of an image above --max-pixels."""
    return f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty", "zero-byte file")
    # Our limit replaces Pillow's (which would speak first, naming none of our options): the
    # size is checked below from the header, before anything is decoded.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:  # only if someone restored Pillow's limit
        raise ImageError("too_large", f"{reason(e)} (--max-pixels {max_pixels})") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError("undecodable", f"not a readable image: {reason(e)}") from e
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError("too_large", too_large_reason(w, h, max_pixels))
    if w < 1 or h < 1:
        raise ImageError("undecodable", f"invalid size {w}x{h}")
    return img


def _high_bit_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit integer or float single-channel image -> uint8 gray (in strips of rows: no
    full-size float64 temporaries)."""
    arr = np.asarray(img)
    if img.mode == "F":
        scale = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0

        def level(a):
            return np.nan_to_num(a) / scale * 255.0
    elif img.mode.startswith("I;16") or float(arr.max(initial=0)) > 255:

        def level(a):
            return a.astype(np.float64) / 257.0
    else:

        def level(a):
            return a

    out = np.empty(arr.shape, np.uint8)
    step = strip_rows(arr.shape[1] if arr.ndim > 1 else 1)
    for top in range(0, len(arr), step):
        out[top : top + step] = np.clip(np.rint(level(arr[top : top + step])), 0, 255)
    return out


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        gray = _high_bit_to_uint8(img)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1))
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        return _composite_on_white(img)
    return img if mode == "RGB" else img.convert("RGB")


def rgb_profile(icc: bytes | None) -> bytes | None:
    """An ICC profile if it describes RGB data (its header's colour space, bytes 16-20, is
    'RGB '), else None: the decoded pixels are RGB, so a CMYK, gray or Lab source's profile
    does not describe them and must not travel to an output."""
    return icc if icc and icc[16:20] == b"RGB " else None


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
    n_frames = int(getattr(img, "n_frames", 1) or 1)  # before load(): frame 0 is decoded
    try:
        if img.getexif().get(_ORIENTATION_TAG, 1) in _ROTATING_ORIENTATIONS:
            width, height = height, width
        if draft_size and img.format == "JPEG" and mode in ("RGB", "L", "YCbCr"):
            img.draft(mode, (draft_size, draft_size))
        img.load()
        # in place: without it, an image needing no turn is copied whole
        ImageOps.exif_transpose(img, in_place=True)
    except Image.DecompressionBombError as e:
        raise ImageError("too_large", f"{reason(e)} (--max-pixels {max_pixels})") from e
    except (OSError, ValueError, SyntaxError, SystemError, struct.error) as e:
        declared = f"{img.format or 'image'} {img.size[0]}x{img.size[1]}, {len(data)} bytes"
        raise ImageError(
            "truncated", f"pixel data cut short or damaged ({declared}): {reason(e)}"
        ) from e
    return DecodedImage(
        _to_rgb(img),
        width=width,
        height=height,
        mode=mode,
        grayscale_mode=mode in GRAYSCALE_MODES,
        icc_profile=rgb_profile(info.get("icc_profile")),
        exif=info.get("exif"),
        n_frames=n_frames,
    )
