"""From image bytes to one training-shard row (pure; `pipeline.stage` wraps it in a DoFn)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from transforms import schema
from transforms.bins import histogram
from transforms.colour import chroma, rgb_to_lab
from transforms.crop import fit_and_crop
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.filters import GrayThresholds, classify_tone

FILTER_THUMBNAIL = 64  # side of the thumbnail (of the stored crop) the grayscale filter sees


@dataclass(frozen=True)
class StageConfig:
    """Settings of the `stage` job that shape each row."""

    size: int = 224
    min_size: int = 32
    val_percent: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    thresholds: GrayThresholds = field(default_factory=GrayThresholds)


def uri_key(uri: str) -> str:
    """Stable 16-hex-digit id of a source URI."""
    return hashlib.sha1(uri.encode()).hexdigest()[:16]


def split_of(key: str, val_percent: float) -> str:
    """Deterministic train/val split: 'val' for val_percent% of keys, by hash."""
    bucket = int(key[:8], 16) % 10000
    return "val" if bucket < val_percent * 100 else "train"


def quantize_l(l: np.ndarray) -> bytes:
    """L in [0, 100] -> uint8 bytes (L * 2.55, rounded)."""
    return np.clip(np.rint(l * 2.55), 0, 255).astype(np.uint8).tobytes()


def quantize_ab(ab: np.ndarray) -> bytes:
    """ab -> int8 bytes (rounded, clipped to ±127)."""
    return np.clip(np.rint(ab), -127, 127).astype(np.int8).tobytes()


def dequantize(l_bytes: bytes, ab_bytes: bytes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shard bytes -> L (size, size) and ab (size, size, 2) float32."""
    l = np.frombuffer(l_bytes, np.uint8).reshape(size, size).astype(np.float32) / 2.55
    ab = np.frombuffer(ab_bytes, np.int8).reshape(size, size, 2).astype(np.float32)
    return l, ab


def stage_image(uri: str, data: bytes, cfg: StageConfig) -> dict:
    """Decode, filter and crop one image into a shard row (schema.SHARD_SCHEMA).

    Raises ImageError whose outcome is an error code (undecodable, truncated, ...) or a
    filter outcome (grayscale, toned, too_small).
    """
    img = decode_image(data, draft_size=cfg.size, max_pixels=cfg.max_pixels)
    if min(img.width, img.height) < cfg.min_size:
        raise ImageError(
            schema.TOO_SMALL, f"{img.width}x{img.height} is below --min-size {cfg.min_size}"
        )
    if img.grayscale_mode:
        raise ImageError(schema.GRAYSCALE, f"single-channel source (mode {img.mode})")
    crop = fit_and_crop(img.rgb, cfg.size)
    # The filter looks at a thumbnail of the stored crop (cheap), or of the decoded image when
    # the crop is smaller than the thumbnail (upsampling would blur the tone measures).
    source = crop if cfg.size >= FILTER_THUMBNAIL else img.rgb
    thumb = rgb_to_lab(fit_and_crop(source, FILTER_THUMBNAIL))
    tone = classify_tone(thumb, cfg.thresholds)
    if tone != "colour":
        raise ImageError(tone, f"{tone} photo: no colour truth")
    lab = rgb_to_lab(crop)
    key = uri_key(uri)
    return {
        "key": key,
        "source_uri": uri,
        "split": split_of(key, cfg.val_percent),
        "width": img.width,
        "height": img.height,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": cfg.size,
        "l": quantize_l(lab[..., 0]),
        "ab": quantize_ab(lab[..., 1:]),
        "hist": histogram(lab[..., 1:]).astype(np.int32).tolist(),
        "mean_chroma": float(chroma(lab[..., 1:]).mean()),
    }
