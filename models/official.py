"""The authors' own pre- and post-processing for Zhang et al.'s released models (pure numpy).

richzhang/colorization `colorizers/util.py` runs both `eccv16` and `siggraph17` as:
  preprocess_img: the sRGB image resized to 256x256 with PIL bicubic (on RGB, not on L), L of
    that; the network normalises it as (L - 50) / 100 (both models: eccv16 in models.base,
    siggraph17 inside its forward in the reference, here in models.infer via normalize_l).
  eccv16: softmax at T = 1, expectation over the checkpoint's 313 centres (`model_out`), x4
    bilinear (`upsample4`); siggraph17: tanh x 110 at 256x256 (no upsampling).
  postprocess_tens: ab resized bilinearly (torch `F.interpolate`, align_corners=False, no
    antialiasing) to the original size, stacked with the original full-resolution L,
    skimage `lab2rgb` (sRGB clipped to [0, 1]).

`pipeline: "authors"` in a model's config selects these (the default of the official models);
`pipeline: "project"` the project's own: L resized bicubically from the full-resolution L,
bicubic ab upsampling and the chroma-only gamut fit of transforms.compose.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from transforms.colour import lab_to_rgb
from transforms.compose import compose, fit_into_gamut, luminance, render_l

AUTHORS, PROJECT = "authors", "project"
PIPELINES = (AUTHORS, PROJECT)
AUTHORS_SIZE = 256
STRIP_ROWS = 512  # rows per strip of the full-resolution composition (bounded memory)

# Config defaults of the official models: the authors' pipeline and decoding (T = 1 mean).
OFFICIAL_DEFAULTS: dict[str, dict] = {
    "eccv16": {"pipeline": AUTHORS, "decode": "mean"},
    "siggraph17": {"pipeline": AUTHORS, "decode": "mean"},
}


def defaults(name: str) -> dict:
    """Config defaults for model `name`: the authors' for official models, else the project's."""
    return dict(OFFICIAL_DEFAULTS.get(name, {"pipeline": PROJECT, "decode": "annealed"}))


def authors_preprocess(rgb: np.ndarray, size: int = AUTHORS_SIZE) -> np.ndarray:
    """sRGB uint8 (H, W, 3) -> the model's L (size, size) float32: PIL bicubic on the RGB
    image (`resize_img(..., resample=3)`), then L of the resized image."""
    small = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").resize(
        (size, size), Image.Resampling.BICUBIC
    )
    return luminance(np.asarray(small)).astype(np.float32)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight of i1 for each output position: torch bilinear with
    align_corners=False (half-pixel centres, source clamped at 0, no antialiasing)."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def bilinear_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, C) float -> (height, width, C) float32, as torch `F.interpolate(mode="bilinear")`."""
    img = np.asarray(img, dtype=np.float32)
    y0, y1, wy = _bilinear_taps(img.shape[0], height)
    x0, x1, wx = _bilinear_taps(img.shape[1], width)
    cols = img[:, x0] * (1 - wx)[None, :, None] + img[:, x1] * wx[None, :, None]
    return cols[y0] * (1 - wy)[:, None, None] + cols[y1] * wy[:, None, None]


def authors_postprocess(
    l_full: np.ndarray,
    ab_out: np.ndarray,
    render_size: int | None = None,
    strength: float = 1.0,
    gamut_fit: bool = False,
    strip_rows: int = STRIP_ROWS,
) -> np.ndarray:
    """Full-resolution L (H, W) + the model's ab (h, w, 2) -> sRGB uint8 (H, W, 3).

    If h < render_size (eccv16: 64x64 logits for a 256 input) ab is first upsampled bilinearly
    to render_size (the model's `upsample4`); then bilinear to (H, W), stacked with the
    original L and converted with sRGB clipping (the authors), or with transforms.compose's
    chroma-only gamut fit when `gamut_fit`. Worked in strips of rows: the column pass is done
    once at (h, W), each strip is a two-row blend, so memory stays O(strip x W).
    """
    ab = np.asarray(ab_out, dtype=np.float32)
    if render_size and ab.shape[0] < render_size:
        ab = bilinear_resize(ab, render_size, render_size)
    if strength != 1.0:
        ab = ab * np.float32(strength)
    height, width = l_full.shape
    y0, y1, wy = _bilinear_taps(ab.shape[0], height)
    x0, x1, wx = _bilinear_taps(ab.shape[1], width)
    cols = ab[:, x0] * (1 - wx)[None, :, None] + ab[:, x1] * wx[None, :, None]
    out = np.empty((height, width, 3), np.uint8)
    for r in range(0, height, strip_rows):
        s = slice(r, min(r + strip_rows, height))
        ab_s = cols[y0[s]] * (1 - wy[s])[:, None, None] + cols[y1[s]] * wy[s, None, None]
        lab = np.concatenate([l_full[s, :, None].astype(np.float32), ab_s], axis=-1)
        if gamut_fit:
            lab = fit_into_gamut(lab)
        out[s] = np.clip(np.rint(lab_to_rgb(lab) * 255.0), 0, 255).astype(np.uint8)
    return out


def model_input(pipeline: str, rgb: np.ndarray, l_full: np.ndarray, size: int) -> np.ndarray:
    """The L (size, size) the model sees, by `pipeline` ('authors' or 'project')."""
    if pipeline == AUTHORS:
        return authors_preprocess(rgb, size)
    return render_l(l_full, size)


def model_output(
    pipeline: str,
    l_full: np.ndarray,
    ab_out: np.ndarray,
    strength: float = 1.0,
    render_size: int | None = None,
) -> np.ndarray:
    """The full-resolution sRGB uint8 image from the model's ab, by `pipeline`."""
    if pipeline == AUTHORS:
        return authors_postprocess(l_full, ab_out, render_size, strength)
    return compose(l_full, ab_out, strength)
