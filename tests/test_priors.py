"""transforms.priors: empirical / smoothed colour priors and class-rebalancing weights."""

from __future__ import annotations

import numpy as np
import pytest

from transforms import priors
from transforms.bins import gamut_bins, num_bins


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    rng = np.random.default_rng(0)
    c = rng.poisson(rng.gamma(0.3, 200.0, num_bins())).astype(np.int64)
    c[:5] = 0  # some empty bins, as in real data
    return c


def test_empirical_distribution_sums_to_one(counts):
    p = priors.empirical_distribution(counts)
    assert p.shape == (num_bins(),)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p, counts / counts.sum())


@pytest.mark.parametrize("bad", [np.zeros(num_bins()), np.zeros(3, dtype=np.int64), []])
def test_zero_counts_raise(bad):
    with pytest.raises(ValueError):
        priors.empirical_distribution(bad)
    with pytest.raises(ValueError):
        priors.priors_from_counts(np.asarray(bad))


def test_smoothing_conserves_mass(counts):
    p = priors.empirical_distribution(counts)
    s = priors.smooth_distribution(p)
    assert s.shape == p.shape
    assert s.sum() == pytest.approx(1.0, abs=1e-12)
    assert (s >= 0).all()
    # smoothing without renormalisation already conserves mass: the kernel's columns sum to 1
    c = gamut_bins().astype(np.float64)
    d2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * priors.PRIOR_SIGMA**2))
    k /= k.sum(0, keepdims=True)
    assert (k @ p).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(s, k @ p, rtol=1e-6)  # the module works on float32 centres


def test_smoothing_spreads_a_delta():
    centres = gamut_bins()
    j = int(np.flatnonzero((centres == [0.0, 0.0]).all(1))[0])
    delta = np.zeros(num_bins())
    delta[j] = 1.0
    s = priors.smooth_distribution(delta)
    assert s.argmax() == j
    assert 0.5 < s[j] < 1.0  # the centre keeps most but not all of the mass
    # the four grid neighbours at distance 10 get equal shares: exp(-100 / 50) relative
    neighbours = [
        int(np.flatnonzero((centres == n).all(1))[0])
        for n in ([10.0, 0.0], [-10.0, 0.0], [0.0, 10.0], [0.0, -10.0])
    ]
    np.testing.assert_allclose(s[neighbours], s[neighbours[0]], rtol=1e-6)
    assert s[neighbours[0]] / s[j] == pytest.approx(np.exp(-2.0), rel=1e-6)
    # mass decays with distance; far bins receive (almost) nothing
    d = np.linalg.norm(centres - centres[j], axis=1)
    assert s[d > 40].max() < 1e-6
    assert s[(d > 0) & (d <= 10)].min() > s[(d > 10) & (d <= 20)].max()


def test_smoothing_with_custom_centres_hand_computed():
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [50.0, 0.0]])
    s = priors.smooth_distribution(np.array([1.0, 0.0, 0.0]), sigma=5.0, centres=centres)
    e = np.exp(-2.0)  # distance 10 at sigma 5
    # bin 0 spreads over bins 0, 1 (bin 2 is 50 away: exp(-50) ~ 0) in ratio 1 : e
    np.testing.assert_allclose(s, [1 / (1 + e), e / (1 + e), 0.0], atol=1e-9)


def test_rebalancing_weights_normalised(counts):
    s = priors.smooth_distribution(priors.empirical_distribution(counts))
    for lam in (0.0, 0.25, 0.5, 0.9):
        w = priors.rebalancing_weights(s, lam)
        assert (s * w).sum() == pytest.approx(1.0, abs=1e-9)
        assert (w > 0).all()
    # rarer bins weigh more (λ < 1): weights are a decreasing function of the prior
    w = priors.rebalancing_weights(s, 0.5)
    order = np.argsort(s)
    assert (np.diff(w[order]) <= 1e-12).all()


def test_rebalancing_lambda_one_is_uniform(counts):
    s = priors.smooth_distribution(priors.empirical_distribution(counts))
    np.testing.assert_allclose(priors.rebalancing_weights(s, lam=1.0), 1.0, rtol=1e-12)


def test_rebalancing_three_bins_hand_computed():
    p = np.array([0.5, 0.3, 0.2])
    lam, q = 0.5, 3
    # w ∝ ((1 − λ)P̃ + λ/Q)^−1 = 1 / (0.25 + 1/6), 1 / (0.15 + 1/6), 1 / (0.1 + 1/6)
    raw = np.array([1 / (0.25 + 1 / 6), 1 / (0.15 + 1 / 6), 1 / (0.1 + 1 / 6)])
    raw_by_formula = 1.0 / ((1 - lam) * p + lam / q)
    np.testing.assert_allclose(raw, raw_by_formula)
    expected = raw / (p * raw).sum()  # (2.4, 3.1579, 3.75) / 2.89737
    w = priors.rebalancing_weights(p, lam)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    np.testing.assert_allclose(w, [0.82833787, 1.08991826, 1.29427793], rtol=1e-7)
    assert (p * w).sum() == pytest.approx(1.0)


def test_rebalancing_lambda_zero_is_inverse_prior():
    p = np.array([0.5, 0.25, 0.25])
    w = priors.rebalancing_weights(p, lam=0.0)
    # 1 / p normalised so that sum p * w = 1: every term p * w equals 1/3
    np.testing.assert_allclose(p * w, 1 / 3, rtol=1e-12)


def test_priors_from_counts(counts):
    out = priors.priors_from_counts(counts)
    assert set(out) == {"empirical", "smoothed", "weights"}
    np.testing.assert_allclose(out["empirical"], priors.empirical_distribution(counts))
    np.testing.assert_allclose(out["smoothed"], priors.smooth_distribution(out["empirical"]))
    np.testing.assert_allclose(
        out["weights"], priors.rebalancing_weights(out["smoothed"], priors.REBALANCE_LAMBDA)
    )
    assert priors.REBALANCE_LAMBDA == 0.5 and priors.PRIOR_SIGMA == 5.0  # the paper's values
    # bins with zero counts still get a positive smoothed prior and a finite weight
    assert (out["smoothed"][:5] > 0).all()
    assert np.isfinite(out["weights"]).all()
