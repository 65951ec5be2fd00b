"""Bootstrap statistics of the `evaluate` report: seeded, and independent of row order.

Values come keyed by image (`{key: value}`); every function sorts by key before it touches
the values, so the same images give the same numbers to the last digit whatever order the
rows arrived in (Beam gives no order). The random numbers are `numpy.random.Generator(PCG64
(seed))`: resample b draws n indices into the sorted values, b = 0..n_boot−1, in chunks of
rows (the stream does not depend on the chunking).

- `bootstrap_ci`: (mean, low, high) percentile bootstrap CI of the mean of an array.
- `keyed_ci`: the same for `{key: value}`, as a dict {"mean", "low", "high", "n"} or None.
- `paired_diff`: CI of mean(a − b) over the keys both hold, with `excludes_zero`.
- `verdict`: "better" / "worse" / "no significant difference" / "no pairs" of a paired CI.

Non-finite values (NaN, ±inf, None) are dropped everywhere. Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
_CHUNK_ELEMS = 2_000_000  # resampled values held in memory at once


def rng(seed: int) -> np.random.Generator:
    """The report's random generator: PCG64 seeded with `seed`."""
    return np.random.Generator(np.random.PCG64(seed))


def _finite(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype == object:
        v = np.array([math.nan if x is None else x for x in v.ravel()])
    v = v.astype(np.float64).ravel()
    return v[np.isfinite(v)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean of `values`, in their order.

    Non-finite values are dropped; none left gives (nan, nan, nan), one value v gives (v, v, v).
    The CI bounds are the (1 ± confidence) / 2 quantiles (linear interpolation) of n_boot
    resampled means.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    v = _finite(values)
    n = v.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if n == 1:
        return (mean, mean, mean)
    gen = rng(seed)
    rows = max(1, _CHUNK_ELEMS // n)
    means = np.concatenate(
        [
            v[gen.integers(0, n, size=(min(rows, n_boot - start), n))].mean(axis=1)
            for start in range(0, n_boot, rows)
        ]
    )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (mean, float(low), float(high))


def _sorted_values(values: Mapping[str, float | None]) -> np.ndarray:
    return np.array(
        [math.nan if values[k] is None else float(values[k]) for k in sorted(values)],
        dtype=np.float64,
    )


def keyed_ci(
    values: Mapping[str, float | None],
    n_boot: int = 1000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict | None:
    """{"mean", "low", "high", "n" (finite values)} of `{key: value}`, sorted by key first;
    None when no value is finite."""
    v = _finite(_sorted_values(values))
    if v.size == 0:
        return None
    mean, low, high = bootstrap_ci(v, n_boot=n_boot, confidence=confidence, seed=seed)
    return {"mean": mean, "low": low, "high": high, "n": int(v.size)}


def paired_diff(
    a: Mapping[str, float | None],
    b: Mapping[str, float | None],
    n_boot: int = 1000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of mean(a − b) over the keys in both (sorted; non-finite differences
    dropped): {"n_pairs", "mean", "low", "high", "excludes_zero"}, the last four None without
    pairs."""
    keys = sorted(set(a) & set(b))
    diff = np.array(
        [math.nan if a[k] is None or b[k] is None else float(a[k]) - float(b[k]) for k in keys],
        dtype=np.float64,
    )
    d = diff[np.isfinite(diff)]
    if d.size == 0:
        return {"n_pairs": 0, "mean": None, "low": None, "high": None, "excludes_zero": None}
    mean, low, high = bootstrap_ci(d, n_boot=n_boot, confidence=confidence, seed=seed)
    return {
        "n_pairs": int(d.size),
        "mean": mean,
        "low": low,
        "high": high,
        "excludes_zero": bool(low > 0.0 or high < 0.0),
    }


def verdict(diff: Mapping, higher_is_better: bool) -> str:
    """What a `paired_diff` says of model − reference: "better" / "worse" (its CI excludes 0;
    the direction by `higher_is_better`), "no significant difference" or "no pairs"."""
    if not diff.get("n_pairs"):
        return "no pairs"
    if not diff["excludes_zero"]:
        return "no significant difference"
    return "better" if (diff["mean"] > 0) == higher_is_better else "worse"
