"""Tests for transforms.metrics: hand-computed values and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transforms.bins import hard_encode, num_bins
from transforms.metrics import (
    AUC_THRESHOLDS,
    ab_errors,
    auc,
    bootstrap_ci,
    ciede2000,
    cmf,
    colorfulness,
    image_metrics,
    paired_bootstrap_diff,
    psnr,
    rebalanced_pixel_weights,
    ssim,
)

skimage_color = pytest.importorskip("skimage.color")


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --- PSNR / SSIM / CIEDE2000 -------------------------------------------------------------


def test_psnr_constant_offset_is_20_db():
    a = np.full((4, 5, 3), 0.3)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-9)  # MSE 0.01 -> 10 log10(100)


def test_psnr_uses_data_range_and_mean_over_channels():
    a = np.zeros((2, 2, 3))
    b = a.copy()
    b[..., 0] = 0.3  # MSE = 0.09 / 3 = 0.03
    assert psnr(a, b) == pytest.approx(10.0 * math.log10(1.0 / 0.03))
    assert psnr(a * 255, b * 255, data_range=255.0) == pytest.approx(psnr(a, b))


def test_psnr_identical_is_inf():
    a = _rng().random((3, 3, 3))
    assert psnr(a, a) == float("inf")


def test_ssim_identical_is_one_and_noise_lowers_it():
    a = _rng().random((16, 16, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, np.clip(a + 0.2 * _rng().standard_normal(a.shape), 0, 1)) < 0.9


@pytest.mark.parametrize("size", [1, 2, 4, 6])
def test_ssim_small_images(size):
    a = _rng().random((size, size + 3, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 1.0 - a) < 1.0


def test_ssim_matches_skimage_default_window():
    from skimage.metrics import structural_similarity

    a, b = _rng().random((2, 12, 10, 3))
    want = structural_similarity(a, b, channel_axis=-1, data_range=1.0)
    assert ssim(a, b) == pytest.approx(want)


def test_ciede2000_identical_is_zero():
    lab = np.stack([np.full((4, 4), 50.0), np.full((4, 4), 20.0), np.full((4, 4), -30.0)], axis=-1)
    assert ciede2000(lab, lab) == 0.0


def test_ciede2000_matches_skimage():
    rng = _rng()
    lab1 = np.concatenate([rng.uniform(0, 100, (6, 7, 1)), rng.uniform(-80, 80, (6, 7, 2))], -1)
    lab2 = np.concatenate([rng.uniform(0, 100, (6, 7, 1)), rng.uniform(-80, 80, (6, 7, 2))], -1)
    want = float(np.mean(skimage_color.deltaE_ciede2000(lab1, lab2)))
    assert ciede2000(lab1, lab2) == pytest.approx(want, rel=1e-12)
    assert want > 1.0


# --- ab errors, CMF, AuC -----------------------------------------------------------------


def test_ab_errors_euclidean_and_flat():
    ab_true = np.zeros((2, 3, 2))
    ab_pred = np.zeros((2, 3, 2))
    ab_pred[0, 1] = [3.0, 4.0]
    ab_pred[1, 2] = [-6.0, 8.0]
    err = ab_errors(ab_true, ab_pred)
    np.testing.assert_allclose(err, [0, 5, 0, 0, 0, 10])


def test_cmf_hand_computed():
    c = cmf(np.array([0.0, 5.0, 10.0, 200.0]), thresholds=np.array([0, 5, 10, 150]))
    np.testing.assert_allclose(c, [0.25, 0.5, 0.75, 0.75])


def test_cmf_default_thresholds_and_order_independence():
    c = cmf(np.array([10.0, 200.0, 0.0, 5.0]))
    assert c.shape == AUC_THRESHOLDS.shape == (151,)
    np.testing.assert_allclose(c[[0, 4, 5, 9, 10, 150]], [0.25, 0.25, 0.5, 0.5, 0.75, 0.75])


def test_cmf_weighted_hand_computed():
    # errors 0, 5, 10, 200 carry weights 1, 2, 3, 4 (total 10), given in shuffled order.
    errors = np.array([200.0, 0.0, 10.0, 5.0])
    weights = np.array([4.0, 1.0, 3.0, 2.0])
    c = cmf(errors, weights, thresholds=np.array([0, 4, 5, 10, 150]))
    np.testing.assert_allclose(c, [0.1, 0.1, 0.3, 0.6, 0.6])


def test_cmf_weighted_uniform_equals_unweighted():
    errors = _rng().uniform(0, 180, 500)
    np.testing.assert_allclose(cmf(errors, np.full(500, 3.0)), cmf(errors))


def test_cmf_rejects_bad_input():
    with pytest.raises(ValueError):
        cmf(np.array([]))
    with pytest.raises(ValueError):
        cmf(np.array([1.0, 2.0]), weights=np.array([1.0]))
    with pytest.raises(ValueError):
        cmf(np.array([1.0, 2.0]), weights=np.array([1.0, -1.0]))


def test_auc_extremes():
    assert auc(np.zeros(10)) == pytest.approx(1.0)
    assert auc(np.full(10, 151.0)) == 0.0


def test_auc_hand_computed_trapezoid():
    # CMF = 0.25 on t=0..4, 0.5 on 5..9, 0.75 on 10..150: sum 109.5; trapezoid subtracts
    # (c_0 + c_150) / 2 = 0.5 -> area 109, AuC 109 / 150.
    assert auc(np.array([0.0, 5.0, 10.0, 200.0])) == pytest.approx(109.0 / 150.0)


def test_auc_weighted_hand_computed():
    # CMF = 0.1 on 0..4, 0.3 on 5..9, 0.6 on 10..150: sum 86.6, minus (0.1 + 0.6)/2 -> 86.25.
    errors = np.array([0.0, 5.0, 10.0, 200.0])
    assert auc(errors, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(86.25 / 150.0)


def test_auc_single_error_steps_at_e():
    # CMF is 0 below e and 1 from e on: sum 151 - e, minus (c_0 + c_150)/2 = 0.5.
    for e in (1.0, 30.0, 149.0):
        assert auc(np.array([e])) == pytest.approx((150.5 - e) / 150.0)


# --- class-rebalanced weights ------------------------------------------------------------


def test_rebalanced_weights_rare_bin_gets_larger_weight():
    ab = np.array([[[0.0, 0.0], [40.0, 40.0], [0.0, 0.0]]])  # (1, 3, 2)
    common, rare = (int(i) for i in hard_encode(np.array([[0.0, 0.0], [40.0, 40.0]])))
    assert common != rare
    prior = np.full(num_bins(), 0.001)
    prior[common] = 0.5
    w = rebalanced_pixel_weights(ab, prior)
    assert w.shape == (3,)
    np.testing.assert_allclose(w, [2.0, 1000.0, 2.0])


def test_rebalanced_weights_zero_prior_uses_smallest_positive():
    rare = int(hard_encode(np.array([40.0, 40.0])))
    prior = np.full(num_bins(), 0.01)
    prior[rare] = 0.0
    prior[0] = 0.002
    w = rebalanced_pixel_weights(np.array([[40.0, 40.0]]), prior)
    np.testing.assert_allclose(w, [500.0])


def test_rebalanced_weights_rejects_wrong_prior_size():
    with pytest.raises(ValueError):
        rebalanced_pixel_weights(np.zeros((2, 2, 2)), np.full(313, 1.0 / 313))


# --- colorfulness ------------------------------------------------------------------------


def test_colorfulness_gray_is_zero():
    gray = np.repeat(_rng().random((5, 6, 1)), 3, axis=-1)
    assert colorfulness(gray) == pytest.approx(0.0, abs=1e-9)


def test_colorfulness_two_pixels_hand_computed():
    # Pure red (255, 0, 0): rg = 255, yb = 127.5.  Pure blue (0, 0, 255): rg = 0, yb = -255.
    # mean rg 127.5, std 127.5; mean yb -63.75, std 191.25.
    # M = sqrt(127.5^2 + 191.25^2) + 0.3 sqrt(127.5^2 + 63.75^2) = 229.8539 + 42.7648.
    img = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    assert colorfulness(img) == pytest.approx(272.6187, abs=1e-3)
    assert colorfulness((img * 255).astype(np.uint8)) == pytest.approx(colorfulness(img))


# --- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_ci_contains_mean_and_shrinks_with_n():
    rng = _rng()
    small = rng.normal(3.0, 1.0, 20)
    large = rng.normal(3.0, 1.0, 2000)
    m_s, lo_s, hi_s = bootstrap_ci(small, n_boot=500)
    m_l, lo_l, hi_l = bootstrap_ci(large, n_boot=500)
    assert m_s == pytest.approx(small.mean()) and lo_s < m_s < hi_s
    assert m_l == pytest.approx(large.mean()) and lo_l < m_l < hi_l
    assert (hi_l - lo_l) < 0.3 * (hi_s - lo_s)
    # Normal theory: width ~ 2 * 1.96 / sqrt(2000) = 0.088.
    assert 0.06 < hi_l - lo_l < 0.12


def test_bootstrap_ci_is_seeded():
    v = _rng().random(50)
    assert bootstrap_ci(v, n_boot=200, seed=7) == bootstrap_ci(v, n_boot=200, seed=7)
    assert bootstrap_ci(v, n_boot=200, seed=7) != bootstrap_ci(v, n_boot=200, seed=8)


def test_bootstrap_ci_constant_sample_has_zero_width():
    mean, lo, hi = bootstrap_ci(np.full(30, 0.1), n_boot=200)
    assert mean == pytest.approx(0.1)
    assert hi - lo == 0.0


def test_bootstrap_ci_single_value_and_non_finite_dropped():
    assert bootstrap_ci(np.array([4.5])) == (4.5, 4.5, 4.5)
    assert bootstrap_ci(np.array([np.nan, 4.5, np.inf])) == (4.5, 4.5, 4.5)
    mean, lo, hi = bootstrap_ci(np.array([1.0, np.nan, 3.0, -np.inf]), n_boot=200)
    assert mean == 2.0 and 1.0 <= lo <= hi <= 3.0
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([np.nan])))


def test_paired_bootstrap_diff():
    a = _rng().random(40)
    assert paired_bootstrap_diff(a, a, n_boot=200) == (0.0, 0.0, 0.0)
    mean, lo, hi = paired_bootstrap_diff(a + 1.0 + 0.01 * _rng().standard_normal(40), a)
    assert lo < mean < hi and 0.99 < lo and hi < 1.01
    with pytest.raises(ValueError):
        paired_bootstrap_diff(a, a[:-1])


# --- per-image bundle --------------------------------------------------------------------


def _lab(rgb: np.ndarray) -> np.ndarray:
    return skimage_color.rgb2lab(rgb)


def test_image_metrics_identical_images():
    rgb = _rng().random((8, 8, 3))
    lab = _lab(rgb)
    m = image_metrics(rgb, rgb, lab, lab)
    assert set(m) == {
        "psnr",
        "ssim",
        "ciede2000",
        "auc",
        "auc_rebalanced",
        "colorfulness",
        "colorfulness_truth",
        "delta_colorfulness",
    }
    assert m["psnr"] == float("inf")
    assert m["ssim"] == pytest.approx(1.0)
    assert m["ciede2000"] == 0.0
    assert m["auc"] == pytest.approx(1.0)
    assert math.isnan(m["auc_rebalanced"])
    assert m["delta_colorfulness"] == 0.0
    assert m["colorfulness"] == m["colorfulness_truth"] > 0


def test_image_metrics_grayscale_prediction():
    rgb = _rng().random((8, 8, 3))
    lab = _lab(rgb)
    lab_gray = lab.copy()
    lab_gray[..., 1:] = 0.0
    rgb_gray = np.repeat(skimage_color.lab2rgb(lab_gray).mean(-1, keepdims=True), 3, axis=-1)
    prior = np.full(num_bins(), 1.0 / num_bins())
    m = image_metrics(rgb, rgb_gray, lab, lab_gray, prior=prior)
    assert m["colorfulness"] == pytest.approx(0.0, abs=1e-9)
    assert m["delta_colorfulness"] == pytest.approx(m["colorfulness_truth"])
    want_auc = auc(np.hypot(lab[..., 1], lab[..., 2]).ravel())
    assert m["auc"] == pytest.approx(want_auc)
    assert m["auc_rebalanced"] == pytest.approx(want_auc)  # a uniform prior changes nothing
    assert 0.0 < m["auc"] < 1.0
    assert m["ciede2000"] > 0 and m["psnr"] < 40


# --- strip-wise metrics (big scans, issue 9) ----------------------------------------------

METRIC_KEYS = ("psnr", "ssim", "ciede2000", "auc", "auc_rebalanced", "colorfulness",
               "colorfulness_truth", "delta_colorfulness")  # fmt: skip


def _pair(h: int, w: int, seed: int) -> tuple[np.ndarray, ...]:
    """A colourful float32 image, a noisy prediction of it, and both in Lab."""
    from transforms.colour import rgb_to_lab

    rng = np.random.default_rng(seed)
    true = rng.random((h, w, 3)).astype(np.float32)
    pred = np.clip(true + 0.15 * rng.standard_normal(true.shape), 0, 1).astype(np.float32)
    return true, pred, rgb_to_lab(true), rgb_to_lab(pred)


@pytest.mark.parametrize("shape", [(37, 23), (64, 9), (7, 7), (3, 50), (2, 2), (1, 1), (101, 33)])
@pytest.mark.parametrize("with_prior", [False, True])
def test_strip_metrics_equal_whole_image_metrics(shape, with_prior):
    from transforms.metrics import strip_image_metrics

    true, pred, lab_t, lab_p = _pair(*shape, seed=shape[0] * 100 + shape[1])
    prior = np.random.default_rng(5).random(num_bins()) if with_prior else None
    prior = prior / prior.sum() if with_prior else None
    want = image_metrics(true, pred, lab_t, lab_p, prior)
    want_cmf = cmf(ab_errors(lab_t[..., 1:], lab_p[..., 1:]))
    for pixels in (shape[1], 3 * shape[1] + 1, 10**9):  # 1-row bands, odd bands, one band
        got, got_cmf = strip_image_metrics(true, pred, lab_t, lab_p, prior, pixels=pixels)
        for k in METRIC_KEYS:
            if math.isnan(want[k]):
                assert math.isnan(got[k]), k
            else:
                assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), (k, pixels)
        np.testing.assert_allclose(got_cmf, want_cmf, rtol=0, atol=1e-12)


def test_strip_metrics_identical_images_and_missing_rows():
    from transforms.metrics import StripMetrics, strip_image_metrics

    true, _, lab_t, _ = _pair(20, 30, seed=3)
    m, c = strip_image_metrics(true, true, lab_t, lab_t, pixels=30)
    assert m["psnr"] == float("inf") and m["ssim"] == pytest.approx(1.0) and c[0] == 1.0
    acc = StripMetrics(20, 30)
    a, r0, r1, b = next(acc.bands(pixels=30))
    acc.add(a, r0, r1, true[a:b], true[a:b], lab_t[a:b], lab_t[a:b])
    with pytest.raises(ValueError, match="pixels added"):
        acc.result()


def test_cmf_counts_sum_to_cmf():
    from transforms.metrics import auc_of_cmf, cmf_counts

    e = np.random.default_rng(4).uniform(0, 170, 1000)
    w = np.random.default_rng(5).random(1000)
    e[:5] = [0.0, 1.0, 150.0, 150.0001, 2.5]  # on and just past the thresholds
    for weights in (None, w):
        parts = sum(cmf_counts(e[i : i + 97], None if weights is None else weights[i : i + 97])
                    for i in range(0, 1000, 97))  # fmt: skip
        total = 1000 if weights is None else w.sum()
        np.testing.assert_allclose(parts / total, cmf(e, weights), rtol=0, atol=1e-12)
        assert auc_of_cmf(parts / total) == pytest.approx(auc(e, weights), abs=1e-12)


def test_colorfulness_in_chunks_equals_one_pass(monkeypatch):
    import transforms.metrics as metrics

    img = np.random.default_rng(6).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    one = colorfulness(img)
    monkeypatch.setattr(metrics, "STRIP_PIXELS", 7)  # 76 chunks
    assert colorfulness(img) == pytest.approx(one, rel=1e-12)
    r, g, b = img.reshape(-1, 3).astype(np.float64).T
    rg, yb = r - g, 0.5 * (r + g) - b
    direct = math.sqrt(rg.var() + yb.var()) + 0.3 * math.hypot(rg.mean(), yb.mean())
    assert colorfulness(img) == pytest.approx(direct, rel=1e-12)
