"""Hue/chroma histograms (Larsson et al., seed 003) in pure numpy: binning and decoding.

Colour is described per pixel in the LCh form of Lab: chroma C = sqrt(a² + b²) in Lab units and
hue h = atan2(b, a) in [0, 2π). Each is quantised into NUM_BINS = 32 bins:
  - chroma: centres linspace(0, CHROMA_MAX, 32) (step ≈ 4.13 Lab units; C > CHROMA_MAX clips),
  - hue: centres 2π k / 32 on the circle (bin 0 and bin 31 are neighbours).
Targets are soft "two-hot" histograms: the value's mass is split linearly between the two nearest
centres (circularly for hue), so the expectation of a chroma target is exactly its value.

Decoding a predicted histogram p (bins on the last axis):
  - chroma: 'median' (the histogram read as a piecewise-uniform density over bins of one step
    around each centre, cut at CDF 0.5), 'mean' (expectation) or 'mode' (argmax centre);
  - hue: 'mean' — the circular expectation, atan2 of the expected unit vector Σ p_k (cos, sin)
    (so 350° and 10° average to 0°, not 180°) — or 'mode'.
"""

from __future__ import annotations

import numpy as np

NUM_BINS = 32
CHROMA_MAX = 128.0  # Lab units; the sRGB gamut reaches ~134 (blue), photos rarely pass 100
TWO_PI = 2.0 * np.pi
CHROMA_METHODS = ("median", "mean", "mode")
HUE_METHODS = ("mean", "mode")


def chroma_centres(n: int = NUM_BINS) -> np.ndarray:
    """(n,) chroma bin centres in Lab units, 0 .. CHROMA_MAX."""
    return np.linspace(0.0, CHROMA_MAX, n)


def hue_centres(n: int = NUM_BINS) -> np.ndarray:
    """(n,) hue bin centres in radians, 2π k / n."""
    return np.arange(n) * (TWO_PI / n)


def ab_to_hue_chroma(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ab (..., 2) in Lab units -> (hue in [0, 2π), chroma >= 0), each (...)."""
    ab = np.asarray(ab, dtype=np.float64)
    hue = np.mod(np.arctan2(ab[..., 1], ab[..., 0]), TWO_PI)
    return hue, np.hypot(ab[..., 0], ab[..., 1])


def hue_chroma_to_ab(hue: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """(hue radians, chroma) -> ab (..., 2) float32."""
    return np.stack([chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1).astype(np.float32)


def two_hot_positions(
    x: np.ndarray, step: float, n: int, circular: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower bin index i0, upper i1 and the upper weight w1 of values x on centres k * step."""
    u = np.asarray(x, dtype=np.float64) / step
    if circular:
        u = np.mod(u, n)
        i0 = np.floor(u).astype(np.int64) % n
        return i0, (i0 + 1) % n, u - np.floor(u)
    u = np.clip(u, 0.0, n - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), n - 2)
    return i0, i0 + 1, u - i0


def _two_hot(i0: np.ndarray, i1: np.ndarray, w1: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((*np.shape(w1), n), dtype=np.float32)
    np.put_along_axis(out, i0[..., None], (1.0 - w1)[..., None], axis=-1)
    np.put_along_axis(out, i1[..., None], w1[..., None], axis=-1)  # i1 != i0 always
    return out


def encode_chroma(chroma: np.ndarray, n: int = NUM_BINS) -> np.ndarray:
    """Chroma (...) -> soft two-hot histograms (..., n) float32 (clipped to [0, CHROMA_MAX])."""
    return _two_hot(*two_hot_positions(chroma, CHROMA_MAX / (n - 1), n, circular=False), n)


def encode_hue(hue: np.ndarray, n: int = NUM_BINS) -> np.ndarray:
    """Hue radians (...) -> circular soft two-hot histograms (..., n) float32."""
    return _two_hot(*two_hot_positions(hue, TWO_PI / n, n, circular=True), n)


def softmax(logits: np.ndarray, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """softmax(logits / T) along `axis` (T = 1: the model's own distribution)."""
    z = np.asarray(logits, dtype=np.float64) / max(float(temperature), 1e-6)
    z = np.exp(z - z.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def chroma_expectation(p: np.ndarray) -> np.ndarray:
    """Σ_k p_k c_k over the last axis."""
    return np.asarray(p, np.float64) @ chroma_centres(np.shape(p)[-1])


def chroma_mode(p: np.ndarray) -> np.ndarray:
    """Centre of the most probable chroma bin."""
    return chroma_centres(np.shape(p)[-1])[np.argmax(p, axis=-1)]


def chroma_median(p: np.ndarray) -> np.ndarray:
    """Median of the histogram read as a piecewise-uniform density: bin k covers
    [c_k - step/2, c_k + step/2]; the result is clipped to [0, CHROMA_MAX]."""
    p = np.asarray(p, np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    n = p.shape[-1]
    step = CHROMA_MAX / (n - 1)
    cdf = np.cumsum(p, axis=-1)
    k = np.minimum(np.argmax(cdf >= 0.5, axis=-1), n - 1)
    pk = np.take_along_axis(p, k[..., None], -1)[..., 0]
    below = np.take_along_axis(cdf, k[..., None], -1)[..., 0] - pk
    pk = np.maximum(pk, 1e-12)
    value = (k - 0.5) * step + (0.5 - below) / pk * step
    return np.clip(value, 0.0, CHROMA_MAX)


def hue_expectation(p: np.ndarray) -> np.ndarray:
    """Circular mean hue in [0, 2π): atan2 of Σ_k p_k (sin h_k) over Σ_k p_k (cos h_k)."""
    h = hue_centres(np.shape(p)[-1])
    p = np.asarray(p, np.float64)
    return np.mod(np.arctan2(p @ np.sin(h), p @ np.cos(h)), TWO_PI)


def hue_mode(p: np.ndarray) -> np.ndarray:
    """Centre of the most probable hue bin."""
    return hue_centres(np.shape(p)[-1])[np.argmax(p, axis=-1)]


CHROMA_DECODERS = {"median": chroma_median, "mean": chroma_expectation, "mode": chroma_mode}
HUE_DECODERS = {"mean": hue_expectation, "mode": hue_mode}


def decode_ab(
    p_hue: np.ndarray, p_chroma: np.ndarray, chroma: str = "median", hue: str = "mean"
) -> np.ndarray:
    """Hue and chroma histograms (..., n) -> ab (..., 2) float32 in Lab units."""
    if chroma not in CHROMA_DECODERS or hue not in HUE_DECODERS:
        raise ValueError(
            f"chroma decode must be one of {CHROMA_METHODS}, hue decode one of {HUE_METHODS}"
            f" (got {chroma!r}, {hue!r})"
        )
    return hue_chroma_to_ab(HUE_DECODERS[hue](p_hue), CHROMA_DECODERS[chroma](p_chroma))
