"""User colour hints: sidecar parsing and validation, hint maps, simulated hints.

Sidecar format (`photo.hints.json` next to `photo.png`, or the same relative path under
`--hints DIR`)::

    {"points": [[x, y, r, g, b], ...], "radius": R}

x, y are pixels of the original image (0-based, x to the right, y down), r, g, b the sRGB
colour 0-255, and the optional radius R (original pixels, >= 0) makes each hint the square
|x' - x| <= R, |y' - y| <= R. Without a radius a hint is a (2 * DEFAULT_MODEL_RADIUS + 1)-pixel
square at model resolution. Only the hint colour's ab is used (the photo keeps its own L).

Hint maps are the input layout of Zhang et al. 2017: (H, W, 3) float32 with channels
a, b (Lab units, 0 where no hint) and the mask (1 on hinted pixels, else 0).
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass

import numpy as np

from transforms.colour import rgb_to_lab

SIDECAR_SUFFIX = ".hints.json"
DEFAULT_MODEL_RADIUS = 2  # pixels at model resolution: a 5x5 square
GEOMETRIC_P = 1.0 / 8.0  # Zhang 2017: keep adding points while uniform < 1 - 1/8
TRAIN_PATCHES = tuple(range(1, 10))  # Zhang 2017: square patches of 1-9 px
SWEEP_PATCH = 6  # Zhang 2017's sweep: 6 px patches at 256 px
SWEEP_SIZE = 256  # the resolution their sweep's patch size refers to


class HintError(ValueError):
    """A malformed hints sidecar (the message is the reason shown in the error row)."""


@dataclass(frozen=True)
class Hints:
    """Colour hints of one image, in original-image pixels.

    xy: (n, 2) float32 x, y; ab: (n, 2) float32 Lab a, b; radius: original pixels, or None
    for the default square at model resolution.
    """

    xy: np.ndarray
    ab: np.ndarray
    radius: float | None = None

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def head(self, n: int) -> Hints:
        """The first n points (same radius)."""
        return Hints(self.xy[:n], self.ab[:n], self.radius)


def no_hints() -> Hints:
    """An empty hint set."""
    return Hints(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), None)


def is_sidecar(uri: str) -> bool:
    """Whether a matched input file is a hints sidecar (never an image to process)."""
    return uri.lower().endswith(SIDECAR_SUFFIX)


def sidecar_uri(image_uri: str, hints_dir: str | None = None, rel: str | None = None) -> str:
    """Where the sidecar of an image lives: next to it (photo.png -> photo.hints.json), or
    under hints_dir at the image's relative path `rel` (default: its file name)."""
    if hints_dir is None:
        return posixpath.splitext(image_uri)[0] + SIDECAR_SUFFIX
    rel = rel if rel is not None else posixpath.basename(image_uri)
    return hints_dir.rstrip("/") + "/" + posixpath.splitext(rel)[0] + SIDECAR_SUFFIX


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise HintError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def parse_hints(data: bytes | str, width: int, height: int) -> Hints:
    """Parse and validate a sidecar for an image of width x height; raises HintError.

    Errors: not JSON, not an object, unknown keys, `points` missing or not a list, a point
    that is not 5 numbers, x/y outside the image, a colour outside 0-255, a negative radius.
    """
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HintError(f"hints: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise HintError(f"hints: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"points", "radius"}
    if unknown:
        raise HintError(f"hints: unknown keys {sorted(unknown)} (known: points, radius)")
    if "points" not in obj:
        raise HintError("hints: missing 'points'")
    points = obj["points"]
    if not isinstance(points, list):
        raise HintError(f"hints: 'points' must be a list, got {type(points).__name__}")
    radius = None
    if obj.get("radius") is not None:
        radius = _number(obj["radius"], "hints: radius")
        if radius < 0:
            raise HintError(f"hints: radius must be >= 0, got {radius:g}")
    xy, rgb = [], []
    for i, p in enumerate(points):
        if not isinstance(p, list) or len(p) != 5:
            raise HintError(f"hints: point {i} must be [x, y, r, g, b], got {p!r}")
        x, y, r, g, b = (_number(v, f"hints: point {i}") for v in p)
        if not (0 <= x < width and 0 <= y < height):
            raise HintError(
                f"hints: point {i} at ({x:g}, {y:g}) is outside the {width}x{height} image"
            )
        if not all(0 <= c <= 255 for c in (r, g, b)):
            raise HintError(f"hints: point {i} colour ({r:g}, {g:g}, {b:g}) is outside 0-255")
        xy.append((x, y))
        rgb.append((r, g, b))
    if not xy:
        return Hints(no_hints().xy, no_hints().ab, radius)
    ab = rgb_to_lab(np.asarray(rgb, np.float32) / 255.0)[:, 1:]
    return Hints(np.asarray(xy, np.float32), ab.astype(np.float32), radius)


def hints_to_json(hints: Hints) -> str:
    """A sidecar for these hints (colours as sRGB of L = 50 with the hint ab; round trip
    keeps ab within the sRGB rounding)."""
    from transforms.colour import lab_to_rgb

    lab = np.concatenate([np.full((len(hints), 1), 50.0, np.float32), hints.ab], axis=1)
    rgb = np.rint(lab_to_rgb(lab) * 255).astype(int)
    points = [[float(x), float(y), *map(int, c)] for (x, y), c in zip(hints.xy, rgb, strict=True)]
    obj: dict = {"points": points}
    if hints.radius is not None:
        obj["radius"] = float(hints.radius)
    return json.dumps(obj)


def _span(c: float, r: float | None, scale: float, n: int) -> tuple[int, int]:
    """Output pixel range [lo, hi) whose centres lie within r (original px) of c, always at
    least the pixel containing c; r None: that pixel +- DEFAULT_MODEL_RADIUS output pixels.
    scale = output pixels per original pixel."""
    centre = (c + 0.5) * scale - 0.5  # c in output pixel coordinates
    nearest = min(max(int(round(centre)), 0), n - 1)
    if r is None:
        lo, hi = nearest - DEFAULT_MODEL_RADIUS, nearest + DEFAULT_MODEL_RADIUS
    else:
        lo = math.ceil(centre - r * scale - 1e-6)
        hi = math.floor(centre + r * scale + 1e-6)
    lo, hi = min(max(lo, 0), nearest), max(min(hi, n - 1), nearest)
    return lo, hi + 1


def hint_map(hints: Hints, width: int, height: int, out_w: int, out_h: int) -> np.ndarray:
    """Hints of a width x height image -> (out_h, out_w, 3) [a, b, mask] at the output
    resolution (aspect may change, as for the model's square input). Later points overwrite
    earlier ones where their squares overlap."""
    out = np.zeros((out_h, out_w, 3), np.float32)
    sx, sy = out_w / width, out_h / height
    for (x, y), ab in zip(hints.xy, hints.ab, strict=True):
        x0, x1 = _span(float(x), hints.radius, sx, out_w)
        y0, y1 = _span(float(y), hints.radius, sy, out_h)
        out[y0:y1, x0:x1, :2] = ab
        out[y0:y1, x0:x1, 2] = 1.0
    return out


def simulate_training_hints(
    ab: np.ndarray,
    rng: np.random.Generator,
    p: float = GEOMETRIC_P,
    patches: tuple[int, ...] = TRAIN_PATCHES,
    max_points: int = 200,
) -> np.ndarray:
    """Zhang 2017's training hints for one (H, W, 2) ab truth -> (H, W, 3) hint map.

    Points are added while a uniform draw < 1 - p (so a share p of images gets none); each is
    a square patch of side P drawn from `patches`, its top-left corner normal around the image
    centre with sigma (H - P + 1) / 4 (clipped into the image), its colour the patch's mean ab.
    """
    h, w = ab.shape[:2]
    out = np.zeros((h, w, 3), np.float32)
    n = 0
    while n < max_points and rng.random() < 1.0 - p:
        size = int(rng.choice(patches))
        size = min(size, h, w)
        y = int(np.clip(rng.normal((h - size + 1) / 2.0, (h - size + 1) / 4.0), 0, h - size))
        x = int(np.clip(rng.normal((w - size + 1) / 2.0, (w - size + 1) / 4.0), 0, w - size))
        out[y : y + size, x : x + size, :2] = ab[y : y + size, x : x + size].mean((0, 1))
        out[y : y + size, x : x + size, 2] = 1.0
        n += 1
    return out


def sweep_patch(width: int, height: int) -> int:
    """The side (original pixels) of Zhang's 6 px sweep patch at 256 px, for this image."""
    return max(1, int(round(SWEEP_PATCH * min(width, height) / SWEEP_SIZE)))


def simulate_points(ab: np.ndarray, n: int, rng: np.random.Generator, patch: int) -> Hints:
    """n ground-truth hints for an (H, W, 2) ab truth, as in Zhang 2017's sweep: square
    patches of side `patch`, top-left corners uniform over the image, colour the patch's mean
    ab. Returns Hints at the patch centres with the radius that reproduces the square."""
    h, w = ab.shape[:2]
    patch = max(1, min(patch, h, w))
    ys = rng.integers(0, h - patch + 1, n)
    xs = rng.integers(0, w - patch + 1, n)
    cols = np.array(
        [
            ab[y : y + patch, x : x + patch].reshape(-1, 2).mean(0)
            for y, x in zip(ys, xs, strict=True)
        ],
        np.float32,
    ).reshape(n, 2)
    centre = (patch - 1) / 2.0
    xy = np.stack([xs + centre, ys + centre], axis=1).astype(np.float32)
    return Hints(xy, cols, radius=(patch - 1) / 2.0)


def seeded_rng(key: str, seed: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, key): reproducible and order-independent."""
    import zlib

    return np.random.default_rng([seed, zlib.crc32(key.encode())])


HINTED_STRENGTH = 1.0  # strength of a hinted image's colours: set by its hints, not scaled


def hinted_strength(strength: float, points: int, hinted: float = HINTED_STRENGTH) -> float:
    """The output strength for an image with `points` hints: `strength` (the model's
    unguided-colour setting) without hints, else `hinted`, so a hint's own colour is not
    desaturated by a setting chosen for the model's guesses."""
    return float(strength) if points <= 0 else float(hinted)


def with_hints(l_render: np.ndarray, hints: Hints | None, width: int, height: int) -> np.ndarray:
    """The model's input for an image of width x height: L (S, S) alone without hints, else
    (S, S, 4) = L + the hint map at S x S (models.infer.predict takes either)."""
    if hints is None:
        return l_render
    s_h, s_w = l_render.shape
    return np.concatenate([l_render[..., None], hint_map(hints, width, height, s_w, s_h)], -1)
