"""transforms.stats: seeded, order-independent bootstrap CIs and paired differences."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from transforms import stats


def test_constant_sample_ci_is_the_constant():
    assert stats.bootstrap_ci(np.full(30, 0.1), n_boot=200) == (
        pytest.approx(0.1, abs=1e-15),
        pytest.approx(0.1, abs=1e-15),
        pytest.approx(0.1, abs=1e-15),
    )
    assert stats.keyed_ci({f"k{i}": 7.0 for i in range(12)}, n_boot=100) == {
        "mean": 7.0,
        "low": 7.0,
        "high": 7.0,
        "n": 12,
    }


def test_two_values_hand_computed():
    # Resampling [0, 1] twice: means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5%
    # and 97.5% quantiles of 4000 resampled means are 0 and 1 (each extreme has ~1000 draws).
    mean, low, high = stats.bootstrap_ci([0.0, 1.0], n_boot=4000, seed=3)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    # at 40% confidence the 30% and 70% quantiles both fall on the middle value 0.5
    assert stats.bootstrap_ci([0.0, 1.0], n_boot=4000, confidence=0.4, seed=3)[1:] == (0.5, 0.5)


def test_small_case_matches_pcg64_draws():
    # The contract: resample b is row b of Generator(PCG64(seed)).integers(0, n, (n_boot, n)).
    v = np.array([1.0, 2.0, 4.0])
    idx = np.random.Generator(np.random.PCG64(5)).integers(0, 3, size=(6, 3))
    means = v[idx].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert stats.bootstrap_ci(v, n_boot=6, seed=5) == (7.0 / 3.0, low, high)


def test_single_empty_and_non_finite():
    assert stats.bootstrap_ci([4.5]) == (4.5, 4.5, 4.5)
    assert stats.bootstrap_ci([np.nan, 4.5, np.inf, None]) == (4.5, 4.5, 4.5)
    assert all(math.isnan(x) for x in stats.bootstrap_ci([np.nan, -np.inf]))
    assert stats.keyed_ci({"a": None, "b": math.nan}) is None
    assert stats.keyed_ci({"a": None, "b": 2.0, "c": math.inf})["n"] == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        stats.bootstrap_ci([1.0, 2.0], n_boot=0)


def test_seeded():
    v = np.random.default_rng(0).normal(size=50)
    assert stats.bootstrap_ci(v, n_boot=300, seed=1) == stats.bootstrap_ci(v, n_boot=300, seed=1)
    assert stats.bootstrap_ci(v, n_boot=300, seed=1) != stats.bootstrap_ci(v, n_boot=300, seed=2)


def test_chunking_does_not_change_the_stream(monkeypatch):
    v = np.random.default_rng(1).normal(size=40)
    whole = stats.bootstrap_ci(v, n_boot=257, seed=9)
    monkeypatch.setattr(stats, "_CHUNK_ELEMS", 40 * 10)  # 10 resamples per chunk
    assert stats.bootstrap_ci(v, n_boot=257, seed=9) == whole


def _shuffled(d: dict, seed: int) -> dict:
    items = list(d.items())
    random.Random(seed).shuffle(items)
    return dict(items)


def test_keyed_ci_independent_of_order():
    rng = np.random.default_rng(2)
    values = {f"img{i:03d}": float(x) for i, x in enumerate(rng.gamma(2.0, 3.0, size=101))}
    ref = stats.keyed_ci(values, n_boot=500, seed=0)
    for seed in range(3):
        assert stats.keyed_ci(_shuffled(values, seed), n_boot=500, seed=0) == ref
    # while the array version does depend on the order (so the sort is what makes it stable)
    arr = np.array(list(values.values()))
    assert stats.bootstrap_ci(arr[::-1], n_boot=500)[1:] != stats.bootstrap_ci(arr, n_boot=500)[1:]


def test_paired_diff_hand_computed():
    a = {"x": 3.0, "y": 5.0, "z": 10.0, "only_a": 1.0}
    b = {"z": 9.0, "x": 2.0, "y": 4.0, "only_b": 0.0}
    d = stats.paired_diff(a, b, n_boot=200)
    assert d == {"n_pairs": 3, "mean": 1.0, "low": 1.0, "high": 1.0, "excludes_zero": True}
    assert stats.verdict(d, higher_is_better=True) == "better"
    assert stats.verdict(d, higher_is_better=False) == "worse"
    same = stats.paired_diff(a, a, n_boot=200)
    assert (same["mean"], same["low"], same["high"], same["excludes_zero"]) == (0, 0, 0, False)
    assert stats.verdict(same, True) == "no significant difference"


def test_paired_diff_no_pairs_and_non_finite():
    none = stats.paired_diff({"a": 1.0}, {"b": 1.0})
    assert none == {"n_pairs": 0, "mean": None, "low": None, "high": None, "excludes_zero": None}
    assert stats.verdict(none, True) == "no pairs"
    d = stats.paired_diff({"a": 1.0, "b": math.inf, "c": None}, {"a": 0.5, "b": 1.0, "c": 2.0})
    assert d["n_pairs"] == 1 and d["mean"] == 0.5


def test_paired_diff_independent_of_order():
    rng = np.random.default_rng(4)
    a = {f"k{i}": float(x) for i, x in enumerate(rng.normal(10, 2, 60))}
    b = {k: v + float(rng.normal(0.3, 1.0)) for k, v in a.items()}
    ref = stats.paired_diff(a, b, n_boot=400, seed=7)
    assert stats.paired_diff(_shuffled(a, 1), _shuffled(b, 2), n_boot=400, seed=7) == ref
