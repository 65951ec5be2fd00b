"""Training losses: soft encoding, soft cross-entropy, rebalancing, regression, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.base import AB_SCALE, normalize_l
from models.losses import (
    ClassificationLoss,
    RegressionLoss,
    SoftEncoder,
    match_size,
    soft_cross_entropy,
)
from tests.conftest_models import build_tiny, one_thread
from tests.helpers import smooth_colour_field
from transforms.bins import SOFT_NEIGHBOURS, gamut_bins, hard_encode, num_bins, soft_encode
from transforms.colour import rgb_to_lab


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _random_ab(shape=(2, 2, 6, 7), seed=0, scale=90.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1) * scale


def test_soft_encoder_equals_numpy_soft_encode():
    ab = _random_ab()
    idx, w = SoftEncoder()(ab)
    assert idx.shape == w.shape == (2, SOFT_NEIGHBOURS, 6, 7)
    n_idx, n_w = soft_encode(ab.permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(idx.permute(0, 2, 3, 1).numpy(), n_idx)
    np.testing.assert_allclose(w.permute(0, 2, 3, 1).numpy(), n_w, atol=1e-5)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 6, 7))
    # the first neighbour is the hard encoding
    np.testing.assert_array_equal(idx[:, 0].numpy(), hard_encode(ab.permute(0, 2, 3, 1).numpy()))


def test_soft_encoder_on_a_bin_centre():
    c = torch.from_numpy(gamut_bins()[[0, 100, num_bins() - 1]].copy())  # (3, 2)
    ab = c.T.reshape(1, 2, 1, 3)
    idx, w = SoftEncoder()(ab)
    assert idx[0, 0, 0].tolist() == [0, 100, num_bins() - 1]
    # neighbours 10 units away get exp(-100 / 50) relative weight
    assert torch.all(w[0, 0] > w[0, 1])


def test_soft_cross_entropy_hand_computed():
    # one pixel, three bins, logits (0, 1, 2); target: 0.75 on bin 2, 0.25 on bin 0.
    # log-sum-exp = ln(1 + e + e^2) = ln(11.107337927) = 2.4076059644
    # CE = 0.75 (2.4076059644 - 2) + 0.25 (2.4076059644 - 0) = 2.4076059644 - 1.5
    expected = 0.9076059644
    logits = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 3, 1, 1)
    idx = torch.tensor([2, 0]).reshape(1, 2, 1, 1)
    w = torch.tensor([0.75, 0.25]).reshape(1, 2, 1, 1)
    assert soft_cross_entropy(logits, idx, w).item() == pytest.approx(expected, abs=1e-6)
    # rebalancing multiplies by the weight of the nearest bin (idx[:, 0] = bin 2)
    cw = torch.tensor([0.5, 7.0, 3.0])
    assert soft_cross_entropy(logits, idx, w, cw).item() == pytest.approx(3 * expected, abs=1e-5)
    # half-precision logits are computed in float32
    half = soft_cross_entropy(logits.half(), idx, w)
    assert half.dtype == torch.float32 and half.item() == pytest.approx(expected, abs=1e-3)


def test_rebalancing_multiplies_by_the_nearest_bins_weight():
    ab = _random_ab((1, 2, 4, 4), seed=1)
    logits = torch.randn(1, num_bins(), 4, 4)
    enc = SoftEncoder()
    idx, w = enc(ab)
    cw = torch.rand(num_bins()) * 3 + 0.1
    logp = torch.log_softmax(logits, 1)
    per_pixel = -(w * logp.gather(1, idx)).sum(1)
    expected = (per_pixel * cw[idx[:, 0]]).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, idx, w, cw), expected)
    torch.testing.assert_close(ClassificationLoss(cw)(logits, ab), expected)
    torch.testing.assert_close(ClassificationLoss(None)(logits, ab), per_pixel.mean())
    # uniform weights 1 change nothing
    torch.testing.assert_close(
        ClassificationLoss(torch.ones(num_bins()))(logits, ab), per_pixel.mean()
    )


def test_classification_loss_area_downsamples_targets():
    ab = _random_ab((2, 2, 16, 16), seed=2)
    logits = torch.randn(2, num_bins(), 4, 4)
    loss = ClassificationLoss(None)
    pooled = F.avg_pool2d(ab, 4)  # area downsampling of 16x16 -> 4x4
    torch.testing.assert_close(match_size(ab, logits), pooled)
    torch.testing.assert_close(loss(logits, ab), loss(logits, pooled))
    nearest = ab[:, :, ::4, ::4]
    assert not torch.allclose(loss(logits, ab), loss(logits, nearest))
    assert match_size(pooled, logits) is pooled


def test_regression_l2_is_mse_on_ab_over_110():
    ab = _random_ab((2, 2, 8, 8), seed=3)
    pred = torch.randn(2, 2, 8, 8) * 0.3
    expected = ((pred - ab / AB_SCALE) ** 2).mean()
    torch.testing.assert_close(RegressionLoss("l2")(pred, ab), expected)
    # at a lower output resolution the target is area-averaged first
    small = torch.randn(2, 2, 2, 2) * 0.3
    target = F.avg_pool2d(ab, 4) / AB_SCALE
    torch.testing.assert_close(RegressionLoss()(small, ab), F.mse_loss(small, target))


def test_huber_differs_from_l2_and_is_smooth_l1():
    ab = _random_ab((1, 2, 8, 8), seed=4)
    pred = torch.randn(1, 2, 8, 8) * 0.5
    l2 = RegressionLoss("l2")(pred, ab)
    hub = RegressionLoss("huber")(pred, ab)
    assert not torch.isclose(l2, hub)
    d = (pred - ab / AB_SCALE).abs()
    beta = 0.1
    manual = torch.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta).mean()
    torch.testing.assert_close(hub, manual)
    # small errors: Huber is the scaled quadratic
    tiny = ab / AB_SCALE + 0.01
    assert RegressionLoss("huber")(tiny, ab).item() == pytest.approx(0.5 * 0.01**2 / beta, rel=1e-3)


def _fixed_batch(n=4, size=32):
    rgb = np.stack([smooth_colour_field(size, size, seed=s) for s in range(n)])
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    l = torch.from_numpy(lab[..., 0])[:, None]
    ab = torch.from_numpy(np.ascontiguousarray(lab[..., 1:].transpose(0, 3, 1, 2)))
    return l, ab


@pytest.mark.parametrize(
    "name, loss_fn",
    [
        ("eccv16-small", lambda: ClassificationLoss(None)),
        ("eccv16-small", lambda: ClassificationLoss(torch.rand(num_bins()) + 0.5)),
        ("regression", lambda: RegressionLoss("l2")),
    ],
    ids=["soft-ce", "rebalanced", "l2"],
)
def test_loss_decreases_on_a_fixed_batch(name, loss_fn):
    torch.manual_seed(0)
    model, _ = build_tiny(name, seed=0)
    model.train()
    loss_fn = loss_fn()
    l, ab = _fixed_batch()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(30):
        loss = loss_fn(model(normalize_l(l)), ab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses
    # the frozen bin centres did not move
    if name == "eccv16-small":
        np.testing.assert_allclose(model.bin_centres.numpy(), gamut_bins(), atol=1e-4)
