"""Baselines of the colour codec's rate-distortion benchmark (numpy + Pillow + lzma).

- trivial: ab box-downsampled by `factor` (means over factor x factor blocks, cut at the
  border), quantized to `step` ab units (int8), DPCM per channel (difference from the left
  value; the first column from the value above), LZMA2 raw stream; decoded by bicubic
  up-sampling (Pillow, mode F) to the full size. Bytes = the whole encoded string (a 4..9-byte
  varint header of size / factor / step + the LZMA data).
- JPEG colour coding: the colour JPEG (Pillow/libjpeg, 4:2:0, optimize) at a quality, of which
  only the chroma is used: chroma bytes = size(colour JPEG) - size(grayscale JPEG of the
  same Y at the same quality); the reconstruction keeps the original L and takes ab from the
  decoded colour JPEG.
Both keep the original L, as the codec does.
"""

from __future__ import annotations

import io
import lzma

import numpy as np
from PIL import Image

from transforms.colour import rgb_to_lab
from transforms.regions import GridLayout

# preset 9e with a 1 MiB dictionary: the same bytes on these tiny inputs as the 64 MiB default,
# without its allocation (10x faster)
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def _dpcm(q: np.ndarray) -> np.ndarray:
    d = q.astype(np.int16).copy()
    d[:, 1:] = q[:, 1:].astype(np.int16) - q[:, :-1]
    d[1:, 0] = q[1:, 0].astype(np.int16) - q[:-1, 0]
    return d


def _undpcm(d: np.ndarray) -> np.ndarray:
    q = d.astype(np.int16).copy()
    q[:, 0] = np.cumsum(q[:, 0])
    return np.cumsum(q, axis=1)


def trivial_encode(ab: np.ndarray, factor: int = 32, step: int = 4) -> bytes:
    """ab (H, W, 2) -> the trivial baseline's bytes."""
    h, w = ab.shape[:2]
    means = GridLayout(h, w, factor).means(ab)
    q = np.clip(np.rint(means / step), -127, 127).astype(np.int16)
    planes = np.stack([_dpcm(q[..., c]) for c in range(2)])
    if planes.min() < -128 or planes.max() > 127:
        raw = planes.astype(">i2").tobytes()  # rare: differences beyond int8
        kind = 1
    else:
        raw = planes.astype(np.int8).tobytes()
        kind = 0
    head = _varint(h) + _varint(w) + _varint(factor) + _varint(step * 2 + kind)
    return head + lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


def trivial_decode(data: bytes) -> np.ndarray:
    """The trivial baseline's bytes -> ab (H, W, 2) float32 (bicubic up-sampling)."""
    h, pos = _read_varint(data, 0)
    w, pos = _read_varint(data, pos)
    factor, pos = _read_varint(data, pos)
    sk, pos = _read_varint(data, pos)
    step, kind = sk >> 1, sk & 1
    grid = GridLayout(h, w, factor)
    raw = lzma.decompress(data[pos:], format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    planes = np.frombuffer(raw, dtype=">i2" if kind else np.int8).reshape(2, grid.rows, grid.cols)
    out = np.empty((h, w, 2), np.float32)
    for c in range(2):
        small = (_undpcm(planes[c]) * step).astype(np.float32)
        out[..., c] = np.asarray(Image.fromarray(small, "F").resize((w, h), Image.BICUBIC))
    return out


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True, subsampling="4:2:0")
    return buf.getvalue()


def jpeg_colour(rgb: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """JPEG colour coding of an sRGB uint8 image: (chroma bytes, decoded ab (H, W, 2))."""
    img = Image.fromarray(np.asarray(rgb, np.uint8), "RGB")
    colour = _jpeg(img, quality)
    gray = _jpeg(img.convert("L"), quality)
    decoded = np.asarray(Image.open(io.BytesIO(colour)).convert("RGB"))
    return len(colour) - len(gray), rgb_to_lab(decoded)[..., 1:]
