"""Pre- and post-processing around a colorization model (pure numpy).

prepare: sRGB uint8 -> full-resolution L + the L the model sees (render_size square).
compose: full-resolution L + low-resolution ab -> sRGB uint8 whose L equals the input's:
ab is upsampled, scaled by `strength`, and pulled toward gray only where the colour
would leave the sRGB gamut, so clipping never changes the luminance.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from transforms.colour import lab_in_gamut, lab_to_rgb, rgb_to_lab
from transforms.crop import resize_float

GAMUT_STEPS = 8  # bisection steps of the per-pixel chroma scale (precision 2^-8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """L in [0, 100] of an sRGB uint8 image (H, W, 3): the desaturated input."""
    return rgb_to_lab(rgb)[..., 0]


def render_l(l_full: np.ndarray, render_size: int) -> np.ndarray:
    """The model's input: full L resized (aspect ignored) to render_size x render_size."""
    return resize_float(l_full, render_size, render_size).clip(0.0, 100.0).astype(np.float32)


def fit_into_gamut(lab: np.ndarray, steps: int = GAMUT_STEPS) -> np.ndarray:
    """Scale each out-of-gamut pixel's ab toward 0 (L fixed) to the largest in-gamut chroma."""
    lab = lab.astype(np.float32, copy=True)
    flat = lab.reshape(-1, 3)
    out = ~lab_in_gamut(flat, tol=1e-4)
    if not out.any():
        return lab
    sub = flat[out]
    lo = np.zeros(len(sub), np.float32)
    hi = np.ones(len(sub), np.float32)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = lab_in_gamut(np.column_stack([sub[:, 0], sub[:, 1:] * mid[:, None]]), tol=1e-4)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    sub[:, 1:] *= lo[:, None]
    flat[out] = sub
    return lab


def compose(l_full: np.ndarray, ab_small: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Full-resolution L (H, W) + ab (h, w, 2) -> sRGB uint8 (H, W, 3)."""
    h, w = l_full.shape
    ab = resize_float(ab_small.astype(np.float32), w, h) * np.float32(strength)
    lab = fit_into_gamut(np.concatenate([l_full[..., None], ab], axis=-1))
    return np.clip(np.rint(lab_to_rgb(lab) * 255.0), 0, 255).astype(np.uint8)


def encode_image(
    rgb: np.ndarray,
    fmt: str = "png",
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """sRGB uint8 -> PNG / JPEG / WebP bytes, with EXIF (orientation reset) and ICC if given."""
    img = Image.fromarray(rgb, "RGB")
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
        kwargs.update(quality=quality, optimize=True)
        pil_fmt = "JPEG"
    elif fmt == "webp":
        kwargs.update(quality=quality, method=4)
        pil_fmt = "WEBP"
    elif fmt == "png":
        kwargs.update(compress_level=1)  # lossless either way; level 6 is ~6x slower
        pil_fmt = "PNG"
    else:
        raise ValueError(f"unknown output format {fmt!r} (png, jpeg, webp)")
    buf = io.BytesIO()
    img.save(buf, pil_fmt, **kwargs)
    return buf.getvalue()


EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}
