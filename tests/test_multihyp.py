"""The multihypothesis model: shapes, decoding, init from eccv16-small, the min-over-branches
loss (per pixel and per region), validation statistics, and a short training run."""

from __future__ import annotations

import argparse
import json

import fsspec
import numpy as np
import pytest
import torch

from models import train
from models.base import AB_SCALE
from models.losses import MultiHypothesisLoss
from models.multihyp import MultiHypothesis, branch_stats, prior_centres
from models.registry import build, load_model
from tests.conftest_models import build_tiny, one_thread, run_stage, uniform_prior
from tests.helpers import encode, smooth_colour_field


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def test_output_layout_and_decoding():
    model, _ = build_tiny("multihypothesis", k=3)
    out = model(torch.rand(2, 1, 32, 32) - 0.5)
    assert out.shape == (2, 9, 8, 8)
    hyps, logits = model.hypotheses(out), model.selector_logits(out)
    assert hyps.shape == (2, 3, 2, 8, 8) and logits.shape == (2, 3, 8, 8)
    mode = model.decode(out, method="mode")
    pick = logits.argmax(1)
    expected = torch.stack([hyps[:, k] for k in range(3)], 1)  # (N, K, 2, h, w)
    expected = expected.gather(1, pick[:, None, None].expand(-1, 1, 2, -1, -1))[:, 0] * AB_SCALE
    torch.testing.assert_close(mode, expected)
    # T -> 0 approaches the per-pixel argmax; T = 1 is the plain selector-weighted mean
    torch.testing.assert_close(model.decode(out, temperature=1e-4), mode, atol=1e-3, rtol=0)
    mean = (hyps * torch.softmax(logits, 1)[:, :, None]).sum(1) * AB_SCALE
    torch.testing.assert_close(model.decode(out, method="mean"), mean)
    assert model.decode(out, size=(32, 40)).shape == (2, 2, 32, 40)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        MultiHypothesis(k=1)
    with pytest.raises(ValueError):
        MultiHypothesis(split=3)


def test_branches_start_at_distinct_prior_modes():
    c = prior_centres(uniform_prior(), 5)
    assert c.shape == (5, 2)
    assert len({tuple(np.round(x, 3)) for x in c}) == 5
    np.testing.assert_array_equal(c, prior_centres(uniform_prior(), 5))  # deterministic
    model = MultiHypothesis(width=0.125, k=5, prior=uniform_prior())
    biases = np.stack([b[-1].bias.detach().numpy() for b in model.branches]) * AB_SCALE
    np.testing.assert_allclose(biases, c, atol=1e-4)


def test_init_from_eccv16_small_copies_trunk_and_seeds_branches():
    src, _ = build_tiny("eccv16-small")
    model = MultiHypothesis(width=0.125, k=3, split=1)
    loaded = model.load_init(src.state_dict())
    state = src.state_dict()
    assert "trunk.block1.0.weight" in loaded and "classifier.weight" not in loaded
    torch.testing.assert_close(model.trunk.block4[0].weight, state["trunk.block4.0.weight"])
    for b in model.branches:  # the trunk's second head conv seeds each branch's conv
        torch.testing.assert_close(b[0].weight, state["trunk.head.2.weight"])
    # a multihypothesis checkpoint loads completely
    other = MultiHypothesis(width=0.125, k=3, split=1)
    assert set(other.load_init(model.state_dict())) == set(model.state_dict())


def _pred(hyps: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """hyps (N, K, 2, h, w) in ab/110, logits (N, K, h, w) -> a model output tensor."""
    n, k, _, h, w = hyps.shape
    return torch.cat([hyps.reshape(n, 2 * k, h, w), logits], 1)


def test_loss_is_min_over_branches_per_pixel():
    target = torch.zeros(1, 2, 4, 4)
    hyps = torch.full((1, 3, 2, 4, 4), 0.5)
    hyps[:, 1] = 0.0  # branch 1 is exact everywhere
    logits = torch.zeros(1, 3, 4, 4)
    logits[:, 1] = 20.0
    loss = MultiHypothesisLoss(3, region=0, relax=0.0, select_weight=1.0)
    assert float(loss(_pred(hyps, logits), target)) < 1e-6
    # relax: the losers share `relax` of the weight: 0.1 * (2 * 0.25) per pixel
    relaxed = MultiHypothesisLoss(3, region=0, relax=0.1, select_weight=0.0)
    assert float(relaxed(_pred(hyps, logits), target)) == pytest.approx(0.1 * 0.5, rel=1e-5)
    # a selector that points at a losing branch pays cross-entropy
    logits[:, 1], logits[:, 0] = 0.0, 20.0
    assert float(loss(_pred(hyps, logits), target)) == pytest.approx(20.0, rel=1e-3)


def test_region_loss_picks_one_branch_per_region():
    # 2 pixels wide: branch 0 is exact on the left pixel and far off on the right one, branch 1
    # is 0.3 off on both. Per pixel: min(0, .09) + min(.64, .09) = .09 -> mean .045 (a, b sum).
    # One region of both pixels: branch 0 costs .32 a pixel, branch 1 .09: branch 1 wins.
    target = torch.zeros(1, 2, 1, 2)
    hyps = torch.zeros(1, 2, 2, 1, 2)
    hyps[0, 0, 0, 0, 1] = 0.8
    hyps[0, 1, 0] = 0.3
    logits = torch.zeros(1, 2, 1, 2)
    per_pixel = MultiHypothesisLoss(2, region=0, relax=0.0, select_weight=0.0)
    per_region = MultiHypothesisLoss(2, region=2, relax=0.0, select_weight=0.0)
    assert float(per_pixel(_pred(hyps, logits), target)) == pytest.approx(0.045, rel=1e-5)
    assert float(per_region(_pred(hyps, logits), target)) == pytest.approx(0.09, rel=1e-5)


def test_gradients_reach_only_the_winner_without_relax():
    target = torch.zeros(1, 2, 2, 2)
    hyps = torch.tensor([0.1, 0.5]).reshape(1, 2, 1, 1, 1).expand(1, 2, 2, 2, 2).clone()
    hyps.requires_grad_(True)
    loss = MultiHypothesisLoss(2, region=0, relax=0.0, select_weight=0.0)
    loss(_pred(hyps, torch.zeros(1, 2, 2, 2)), target).backward()
    assert hyps.grad[:, 0].abs().sum() > 0 and hyps.grad[:, 1].abs().sum() == 0


def test_branch_stats_counts_and_oracles():
    model, _ = build_tiny("multihypothesis", k=3)
    out = model(torch.rand(2, 1, 32, 32) - 0.5)
    ab = torch.randn(2, 2, 32, 32) * 20
    s = branch_stats(model, out, ab, region=16)
    assert s["pixels"] == 2 * 8 * 8 and s["regions"] == 2 * 2 * 2
    assert s["pixel_wins"].sum() == s["pixels"] and s["region_wins"].sum() == s["regions"]
    assert s["selector_picks"].sum() == s["pixels"]
    # the per-pixel oracle is the best there is; per region can only be worse or equal
    assert s["oracle_pixel_error"] <= s["oracle_region_error"] + 1e-3
    assert s["oracle_pixel_error"] <= s["selector_error"] + 1e-3


N_IMAGES = 12
SRC = "memory://mh-train-src"


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> str:
    from PIL import Image

    one_thread()
    fs = fsspec.filesystem("memory")
    for i in range(N_IMAGES):
        with fs.open(f"{SRC}/img_{i:02d}.png", "wb") as f:
            f.write(encode(Image.fromarray(smooth_colour_field(40, 40, seed=300 + i)), "PNG"))
    out = tmp_path_factory.mktemp("mh-stage")
    run_stage([f"{SRC}/*.png"], str(out), "--size", "32", "--val-percent", "25")
    return str(out)


def test_train_multihypothesis_reports_win_rates(stage_dir, tmp_path):
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    args = p.parse_args(
        [stage_dir, str(tmp_path), "--model", "multihypothesis", "--width", "0.125", "--k", "3",
         "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--threads", "1",
         "--render-size", "32", "--mh-region", "8"]
    )  # fmt: skip
    summary = train.run(args, [])
    last = summary["history"][-1]
    for key in ("val_pixel_win_rate", "val_region_win_rate", "val_selector_pick_rate"):
        assert len(last[key]) == 3 and sum(last[key]) == pytest.approx(1.0, abs=1e-3)
    assert last["val_oracle_pixel_ab_error"] <= last["val_selector_ab_error"] + 1e-3
    assert summary["config"]["k"] == 3 and summary["config"]["mh_region"] == 8
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["history"][-1]["val_region_win_rate"] == last["val_region_win_rate"]
    model, cfg = load_model("multihypothesis", str(tmp_path / "model.pt"))
    assert isinstance(model, MultiHypothesis) and model.k == 3
    assert build(cfg).k == 3
