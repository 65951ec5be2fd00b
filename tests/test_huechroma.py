"""Hue/chroma binning and decoding (transforms.huechroma, Larsson et al.)."""

from __future__ import annotations

import numpy as np
import pytest

from transforms import huechroma as hc


def _hue_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.mod(np.asarray(a) - np.asarray(b), hc.TWO_PI)
    return np.minimum(d, hc.TWO_PI - d)


def test_bins_layout():
    c, h = hc.chroma_centres(), hc.hue_centres()
    assert len(c) == len(h) == hc.NUM_BINS == 32
    assert c[0] == 0 and c[-1] == hc.CHROMA_MAX
    assert h[0] == 0 and h[-1] == pytest.approx(hc.TWO_PI * 31 / 32)


def test_round_trip_ab_hue_chroma_bins():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-85, 85, (500, 2))
    hue, chroma = hc.ab_to_hue_chroma(ab)
    assert np.all((hue >= 0) & (hue < hc.TWO_PI)) and np.all(chroma <= hc.CHROMA_MAX)
    np.testing.assert_allclose(hc.hue_chroma_to_ab(hue, chroma), ab, atol=1e-3)
    pc, ph = hc.encode_chroma(chroma), hc.encode_hue(hue)
    np.testing.assert_allclose(pc.sum(-1), 1, atol=1e-6)
    np.testing.assert_allclose(ph.sum(-1), 1, atol=1e-6)
    assert np.all((pc > 0).sum(-1) <= 2) and np.all((ph > 0).sum(-1) <= 2)
    # two-hot chroma: its expectation is the value; hue: within a tiny circular error
    np.testing.assert_allclose(hc.chroma_expectation(pc), chroma, atol=1e-3)
    assert _hue_distance(hc.hue_expectation(ph), hue).max() < np.deg2rad(0.3)
    back = hc.decode_ab(ph, pc, chroma="mean", hue="mean")
    assert np.abs(back - ab).max() < 0.5


def test_chroma_encoding_clips_and_hits_centres():
    centres = hc.chroma_centres()
    p = hc.encode_chroma(np.array([centres[5], 500.0, -3.0]))
    assert p[0, 5] == pytest.approx(1.0)
    assert p[1, -1] == pytest.approx(1.0) and p[2, 0] == pytest.approx(1.0)


def test_hue_encoding_wraps_between_last_and_first_bin():
    step = hc.TWO_PI / hc.NUM_BINS
    p = hc.encode_hue(np.array(hc.TWO_PI - step / 4))  # between bin 31 and bin 0
    assert p[31] == pytest.approx(0.25) and p[0] == pytest.approx(0.75)


def test_circular_hue_mean_of_350_and_10_degrees_is_0():
    p = 0.5 * hc.encode_hue(np.deg2rad(350.0)) + 0.5 * hc.encode_hue(np.deg2rad(10.0))
    h = hc.hue_expectation(p)
    assert _hue_distance(h, 0.0) < np.deg2rad(0.3)  # the naive mean would be 180°
    naive = (p * hc.hue_centres()).sum()
    assert _hue_distance(naive, np.pi) < np.deg2rad(20)  # what a linear mean gives
    q = np.zeros(32)
    q[[31, 1]] = 0.5  # 348.75° and 11.25°, exactly symmetric around 0
    assert _hue_distance(hc.hue_expectation(q), 0.0) < 1e-9


def test_hue_mode_and_chroma_mode():
    p = np.full(32, 0.01)
    p[7] = 0.69
    assert hc.hue_mode(p) == pytest.approx(7 * hc.TWO_PI / 32)
    assert hc.chroma_mode(p) == pytest.approx(hc.chroma_centres()[7])


def test_chroma_median_vs_expectation():
    step = hc.CHROMA_MAX / 31
    one = np.zeros(32)
    one[4] = 1.0
    assert hc.chroma_median(one) == pytest.approx(4 * step)
    two = np.zeros(32)
    two[[4, 5]] = 0.5  # the median is the edge between the two bins
    assert hc.chroma_median(two) == pytest.approx(4.5 * step)
    skew = np.zeros(32)
    skew[0], skew[31] = 0.6, 0.4  # bimodal: grey or saturated
    assert hc.chroma_median(skew) < 2 * step  # median: stays with the majority (grey)
    assert hc.chroma_expectation(skew) == pytest.approx(0.4 * hc.CHROMA_MAX)  # mean: in between
    assert 0.0 <= hc.chroma_median(np.full(32, 1 / 32)) <= hc.CHROMA_MAX


def test_softmax_temperature_sharpens():
    logits = np.array([[0.0, 1.0, 2.0]])
    p1, p_cold = hc.softmax(logits, 1.0), hc.softmax(logits, 0.2)
    np.testing.assert_allclose(p1.sum(-1), 1)
    assert p_cold[0, 2] > p1[0, 2]


def test_decode_ab_refuses_unknown_methods():
    p = np.full((2, 32), 1 / 32)
    assert hc.decode_ab(p, p).shape == (2, 2)
    with pytest.raises(ValueError):
        hc.decode_ab(p, p, chroma="annealed")
    with pytest.raises(ValueError):
        hc.decode_ab(p, p, hue="median")
