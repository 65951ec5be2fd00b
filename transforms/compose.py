"""Pre- and post-processing around a colorization model (pure numpy).

prepare: sRGB uint8 -> full-resolution L + the L the model sees (render_size square).
compose: full-resolution L + low-resolution ab -> sRGB uint8 whose L equals the input's:
ab is upsampled, scaled by `strength`, and pulled toward gray only where the colour
would leave the sRGB gamut, so clipping never changes the luminance.

Full-resolution work is done in strips of rows (about crop.STRIP_PIXELS pixels each): memory
is bounded by the strip, not by the image, and every step is per pixel or per row, so the
result is the same as on the whole image. `Composer` gives the composition band by band
(evaluate scores a prediction without ever holding it whole).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from transforms.colour import lab_in_gamut, lab_planes_in_gamut, lab_to_rgb, rgb_to_lab
from transforms.crop import STRIP_PIXELS, RowResizer, shrink_float, strip_rows
from transforms.fileio import atomic_write

GAMUT_STEPS = 8  # bisection steps of the per-pixel chroma scale (precision 2^-8)
# no sRGB colour has a chroma above 134 (D65): an ab farther out (a large --strength) is first
# scaled to this, so that the bisection finds the gamut's edge rather than gray
MAX_CHROMA = np.float32(150.0)


def luminance(rgb: np.ndarray, pixels: int = STRIP_PIXELS, as_float: bool = False) -> np.ndarray:
    """L in [0, 100] float32 (H, W) of an sRGB image (H, W, 3) (uint8, or float in [0, 1]):
    the desaturated input, computed in strips of rows. `as_float` converts uint8 to
    float32 / 255 first (the float path of rgb_to_lab instead of its uint8 table)."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.float32)
    step = strip_rows(w, pixels)
    for top in range(0, h, step):
        band = rgb[top : top + step]
        if as_float:
            band = band.astype(np.float32) / np.float32(255.0)
        out[top : top + step] = rgb_to_lab(band)[..., 0]
    return out


def render_l(l_full: np.ndarray, render_size: int, interpolation: str = "bicubic") -> np.ndarray:
    """The model's input: full L resized (aspect ignored) to render_size x render_size
    (Pillow's filter, read in strips of rows: no full-size copy)."""
    small = shrink_float(l_full, render_size, render_size, interpolation)
    return small.clip(0.0, 100.0).astype(np.float32)


def _fit_pixels(flat: np.ndarray, steps: int) -> None:
    """fit_into_gamut on (N, 3) float32 Lab rows, in place."""
    out = ~lab_in_gamut(flat, tol=1e-4)
    if not out.any():
        return
    sub = flat[out]
    chroma = np.hypot(sub[:, 1], sub[:, 2])
    far = chroma > MAX_CHROMA  # bring ab within reach of the bisection's 2^-steps precision
    sub[far, 1:] *= (MAX_CHROMA / chroma[far])[:, None]
    l, a, b = sub[:, 0], sub[:, 1], sub[:, 2]
    lo = np.zeros(len(sub), np.float32)
    hi = np.ones(len(sub), np.float32)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = lab_planes_in_gamut(l, a * mid, b * mid, tol=1e-4)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    sub[:, 1:] *= lo[:, None]
    flat[out] = sub


def fit_into_gamut(
    lab: np.ndarray, steps: int = GAMUT_STEPS, pixels: int = STRIP_PIXELS
) -> np.ndarray:
    """Scale each out-of-gamut pixel's ab toward 0 (L fixed) to the largest in-gamut chroma
    (per pixel, in chunks of `pixels`); returns a float32 copy."""
    lab = lab.astype(np.float32, copy=True)
    flat = lab.reshape(-1, 3)
    for start in range(0, len(flat), max(1, pixels)):
        _fit_pixels(flat[start : start + pixels], steps)
    return lab


class Composer:
    """Full-resolution L (H, W) + ab (h, w, 2) -> sRGB uint8, one band of rows at a time.

    ab is upsampled (crop.RowResizer: Pillow's `interpolation` filter, horizontal pass done
    once), scaled by `strength`, stacked with L and fitted into the gamut. `rows(a, b)` equals
    `compose(...)[a:b]`.
    """

    def __init__(
        self,
        l_full: np.ndarray,
        ab_small: np.ndarray,
        strength: float = 1.0,
        interpolation: str = "bicubic",
    ):
        self.l_full = l_full
        self.height, self.width = l_full.shape
        self.strength = np.float32(strength)
        self._ab = RowResizer(
            np.asarray(ab_small, dtype=np.float32), self.width, self.height, interpolation
        )

    def rows(self, top: int, bottom: int, step: int = 1) -> np.ndarray:
        """Rows top, top + step, ... < bottom (every `step`-th column) as uint8 (n, w, 3)."""
        ab = self._ab.rows(top, bottom, step)[:, ::step] * self.strength
        l_band = self.l_full[top:bottom:step, ::step].astype(np.float32, copy=False)
        lab = fit_into_gamut(np.concatenate([l_band[..., None], ab], axis=-1))
        return np.clip(np.rint(lab_to_rgb(lab) * 255.0), 0, 255).astype(np.uint8)


def compose(
    l_full: np.ndarray,
    ab_small: np.ndarray,
    strength: float = 1.0,
    interpolation: str = "bicubic",
    step: int = 1,
    pixels: int = STRIP_PIXELS,
) -> np.ndarray:
    """Full-resolution L (H, W) + ab (h, w, 2) -> sRGB uint8 (H, W, 3), in strips of rows.

    `step` > 1 returns only every step-th row and column of the full composition (exactly
    `compose(...)[::step, ::step]`, at a fraction of the cost: report thumbnails).
    """
    c = Composer(l_full, ab_small, strength, interpolation)
    h, w = c.height, c.width
    out = np.empty((len(range(0, h, step)), len(range(0, w, step)), 3), np.uint8)
    band = strip_rows(len(range(0, w, step)), pixels) * step
    for top in range(0, h, band):  # band is a multiple of step: top // step is exact
        part = c.rows(top, top + band, step)
        out[top // step : top // step + len(part)] = part
    return out


JPEG_SUBSAMPLING = {"444": "4:4:4", "420": "4:2:0"}


def _save_args(
    fmt: str,
    quality: int,
    exif: bytes | None,
    icc_profile: bytes | None,
    chroma_subsampling: str = "auto",
) -> tuple[str, dict]:
    """(Pillow format, save options) for encode_image / write_image. JPEG chroma:
    chroma_subsampling '444' | '420' | 'auto' (4:4:4 at quality >= 90, else 4:2:0). Lossy WebP
    has 4:2:0 chroma only, so with WebP '444' writes lossless WebP and 'auto' stays lossy."""
    kwargs: dict = {}
    if exif:
        e = Image.Exif()
        e.load(exif)
        e[0x0112] = 1  # pixels are already upright
        kwargs["exif"] = e.tobytes()
    if icc_profile:
        kwargs["icc_profile"] = icc_profile
    fmt = fmt.lower()
    if fmt in ("jpeg", "jpg"):
        if chroma_subsampling == "auto":
            chroma_subsampling = "444" if quality >= 90 else "420"
        if chroma_subsampling not in JPEG_SUBSAMPLING:
            raise ValueError(f"unknown chroma subsampling {chroma_subsampling!r} (auto, 444, 420)")
        kwargs.update(
            quality=quality, optimize=True, subsampling=JPEG_SUBSAMPLING[chroma_subsampling]
        )
        return "JPEG", kwargs
    if fmt == "webp":  # lossy WebP is always 4:2:0: '444' asks for lossless WebP
        if chroma_subsampling == "444":
            kwargs.update(lossless=True, quality=quality, method=4)
        else:
            kwargs.update(quality=quality, method=4)
        return "WEBP", kwargs
    if fmt == "png":
        # lossless either way: level 6 is ~6x slower; zlib's run-length strategy encodes the
        # 60 ImageNet samples 30% faster than level 1's default, into 2% smaller files
        kwargs.update(compress_level=1, compress_type=zlib.Z_RLE)
        return "PNG", kwargs
    raise ValueError(f"unknown output format {fmt!r} (png, jpeg, webp)")


def encode_image(
    rgb: np.ndarray,
    fmt: str = "png",
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    chroma_subsampling: str = "auto",
) -> bytes:
    """sRGB uint8 -> PNG / JPEG / WebP bytes, with EXIF (orientation reset) and ICC if given."""
    pil_fmt, kwargs = _save_args(fmt, quality, exif, icc_profile, chroma_subsampling)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, pil_fmt, **kwargs)
    return buf.getvalue()


def write_image(
    uri: str,
    rgb: np.ndarray,
    fmt: str = "png",
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    chroma_subsampling: str = "auto",
) -> None:
    """encode_image streamed into fileio.atomic_write(uri): the same bytes, never held whole
    in memory (a 48 MP PNG is ~100 MB), and all or nothing on disk."""
    pil_fmt, kwargs = _save_args(fmt, quality, exif, icc_profile, chroma_subsampling)
    img = Image.fromarray(rgb, "RGB")
    with atomic_write(uri) as f:
        img.save(f, pil_fmt, **kwargs)


EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}
