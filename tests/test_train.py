"""`chromabeam train` on a tiny staged set: outputs, resume, determinism, variants, schedule."""

from __future__ import annotations

import argparse
import json
import math

import fsspec
import numpy as np
import pytest
import torch

from models import registry, train
from models.losses import ClassificationLoss, RegressionLoss
from models.small import ECCV16Small, Regression
from pipeline import checks, progress
from tests.conftest_models import one_thread, run_stage, save_png
from tests.helpers import encode, smooth_colour_field
from transforms.bins import num_bins

# Chosen so that the hash split puts 4 of the 16 images in "val" at --val-percent 25
# (keys hash the URI, so a memory:// location keeps the split the same on every run).
SRC = "memory://chromabeam-tests/train-7"
N_IMAGES, N_VAL = 16, 4


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> str:
    """16 smooth colour fields (40x40 PNG) staged at 32x32 with 25% validation."""
    one_thread()
    from PIL import Image

    fs = fsspec.filesystem("memory")
    for i in range(N_IMAGES):
        rgb = smooth_colour_field(40, 40, seed=100 + i)
        with fs.open(f"{SRC}/img_{i:02d}.png", "wb") as f:
            f.write(encode(Image.fromarray(rgb), "PNG"))
    out = tmp_path_factory.mktemp("stage")
    run_stage([f"{SRC}/*.png"], str(out), "--size", "32", "--val-percent", "25")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outcomes"] == {"kept": N_IMAGES}, stats
    return str(out)


def _args(stage_dir: str, output, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    return p.parse_args(
        [
            stage_dir,
            str(output),
            "--model",
            "eccv16-small",
            "--width",
            "0.125",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--render-size",
            "32",
            *extra,
        ]
    )


def _state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def trained(stage_dir, tmp_path_factory):
    """A 2-epoch eccv16-small run: (output folder, returned summary)."""
    one_thread()
    out = tmp_path_factory.mktemp("run")
    summary = train.run(_args(stage_dir, out), [])
    return out, summary


def test_outputs_exist(trained):
    out, summary = trained
    for name in ("model.pt", "checkpoint.pt", "MODEL.md", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_rows"] == N_IMAGES - N_VAL and metrics["val_rows"] == N_VAL
    assert metrics["stopped_early"] is False
    assert metrics["config"]["name"] == "eccv16-small"
    assert metrics["config"]["num_bins"] == num_bins()
    assert len(metrics["config"]["prior"]) == num_bins()
    assert metrics["config"]["render_size"] == 32
    assert summary["history"] == metrics["history"]
    card = (out / "MODEL.md").read_text()
    assert card.startswith("# eccv16-small (width 0.125)")
    assert card.count("\n| ") == 1 + 2  # header row + one row per epoch (after the rule)


def test_history_has_two_epochs_with_finite_val_loss(trained):
    out, _ = trained
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    steps_per_epoch = math.ceil((N_IMAGES - N_VAL) / 4)
    assert [h["step"] for h in history] == [steps_per_epoch, 2 * steps_per_epoch]
    for h in history:
        assert math.isfinite(h["val_loss"]) and h["val_loss"] > 0
        assert math.isfinite(h["train_loss"])
        assert 0.0 <= h["val_auc"] <= 1.0
        assert h["val_ab_error"] >= 0


def test_checkpoints_load_with_the_registry(trained):
    out, _ = trained
    model, config = registry.load_model(None, weights=str(out / "model.pt"))
    assert isinstance(model, ECCV16Small) and config["name"] == "eccv16-small"
    desc = registry.describe(None, str(out / "model.pt"))
    assert desc["render_size"] == 32 and desc["temperature"] == pytest.approx(0.38)
    ck_model, _ = registry.load_model(None, weights=str(out / "checkpoint.pt"))
    for (k, a), b in zip(model.state_dict().items(), ck_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with torch.no_grad():
        ab = model.decode(model(torch.zeros(1, 1, 32, 32)), size=(32, 32))
    assert ab.shape == (1, 2, 32, 32) and torch.isfinite(ab).all()
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert {"optimizer", "epoch", "step", "history", "elapsed"} <= set(ck)


def test_resume_continues(trained, stage_dir, tmp_path, caplog):
    src, _ = trained
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((src / "checkpoint.pt").read_bytes())
    before = json.loads((src / "metrics.json").read_text())["history"]
    summary = train.run(_args(stage_dir, out, "--epochs", "3", "--resume"), [])
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[:2] == before
    assert history[2]["step"] == before[1]["step"] + math.ceil((N_IMAGES - N_VAL) / 4)
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 3 and ck["step"] == history[2]["step"]
    # the changed option is named, and the card lists both runs' commands
    assert "training options differ" in caplog.text and "epochs 2 -> 3" in caplog.text
    assert len(summary["commands"]) == 2 and ck["schedule"]["epochs"] == 3
    assert (out / "MODEL.md").read_text().count("- command: `") == 2
    # what a Ctrl-C would say is safe (pipeline.cli's one line)
    assert progress.last_saved("train") == f"{out / 'checkpoint.pt'} holds epoch 3/3"
    # the weights moved on from the resumed checkpoint
    a, b = _state(src / "model.pt"), _state(out / "model.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_resume_of_a_finished_run_trains_no_more(trained, stage_dir, tmp_path):
    src, _ = trained
    out = tmp_path / "again"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((src / "checkpoint.pt").read_bytes())
    summary = train.run(_args(stage_dir, out, "--resume"), [])
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    a, b = _state(src / "model.pt"), _state(out / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights(trained, stage_dir, tmp_path):
    src, _ = trained
    train.run(_args(stage_dir, tmp_path), [])
    a, b = _state(src / "model.pt"), _state(tmp_path / "model.pt")
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"training is not deterministic: {diff[:5]}"


def test_other_seed_other_weights(trained, stage_dir, tmp_path):
    src, _ = trained
    train.run(_args(stage_dir, tmp_path, "--seed", "1", "--epochs", "1"), [])
    a, b = _state(src / "model.pt"), _state(tmp_path / "model.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_no_rebalance(stage_dir, tmp_path):
    args = _args(stage_dir, tmp_path, "--no-rebalance", "--epochs", "1")
    loss = train.make_loss(ECCV16Small(0.125, num_bins()), args, stage_dir)
    assert isinstance(loss, ClassificationLoss) and loss.class_weights is None
    rebalanced = train.make_loss(
        ECCV16Small(0.125, num_bins()), _args(stage_dir, tmp_path), stage_dir
    )
    w = np.load(f"{stage_dir}/rebalance_weights.npy")
    np.testing.assert_allclose(rebalanced.class_weights.numpy(), w, rtol=1e-6)
    summary = train.run(args, [])
    assert len(summary["history"]) == 1
    assert math.isfinite(summary["history"][0]["val_loss"])


def test_regression_trains(stage_dir, tmp_path):
    args = _args(stage_dir, tmp_path, "--epochs", "1")
    args.model = "regression"
    summary = train.run(args, [])
    assert math.isfinite(summary["history"][0]["val_loss"])
    assert isinstance(train.make_loss(Regression(0.125), args, stage_dir), RegressionLoss)
    model, config = registry.load_model(None, weights=str(tmp_path / "model.pt"))
    assert isinstance(model, Regression) and config["name"] == "regression"


def test_huber_regression_and_half_model(stage_dir, tmp_path):
    args = _args(stage_dir, tmp_path, "--epochs", "1", "--loss", "huber", "--half")
    args.model = "regression"
    train.run(args, [])
    sd = _state(tmp_path / "model.pt")
    assert sd["regressor.weight"].dtype == torch.float16
    assert _state(tmp_path / "checkpoint.pt")["regressor.weight"].dtype == torch.float32
    registry.load_model(None, weights=str(tmp_path / "model.pt"))


def test_time_budget_stops_early(stage_dir, tmp_path):
    summary = train.run(_args(stage_dir, tmp_path, "--max-minutes", "1e-6"), [])
    assert summary["stopped_early"] is True
    assert len(summary["history"]) == 1 and summary["history"][0]["step"] == 1
    assert "stopped by time budget" in (tmp_path / "MODEL.md").read_text()
    assert (tmp_path / "model.pt").is_file()


def test_init_from_weights(trained, stage_dir, tmp_path):
    src, _ = trained
    summary = train.run(
        _args(stage_dir, tmp_path, "--epochs", "1", "--init", str(src / "model.pt"), "--lr", "0"),
        [],
    )
    assert len(summary["history"]) == 1
    # lr 0: the weights are the initial ones (BatchNorm statistics still update in train mode)
    a, b = _state(src / "model.pt"), _state(tmp_path / "model.pt")
    conv = [k for k in a if k.endswith(".weight") and a[k].ndim == 4]
    assert all(torch.equal(a[k], b[k]) for k in conv)


def _folder_holding(folder, src) -> object:
    """`folder` (made) holding a copy of the file `src`."""
    folder.mkdir()
    (folder / src.name).write_bytes(src.read_bytes())
    return folder


def test_a_folder_with_a_trained_model_is_not_overwritten(trained, stage_dir, tmp_path):
    src, _ = trained
    out = _folder_holding(tmp_path / "done", src / "model.pt")
    with pytest.raises(checks.UsageError, match=r"holds a trained model \(model.pt\): pass --re"):
        train.run(_args(stage_dir, out), [])
    assert (out / "model.pt").read_bytes() == (src / "model.pt").read_bytes()


def test_resume_with_other_settings_names_them(trained, stage_dir, tmp_path):
    src, _ = trained
    out = _folder_holding(tmp_path / "resumed", src / "checkpoint.pt")
    with pytest.raises(checks.UsageError, match=r"trained with other settings \(width=0.125\)"):
        train.run(_args(stage_dir, out, "--resume", "--width", "0.25"), [])


def test_no_train_rows_and_a_crop_beyond_the_shards_are_refused(stage_dir, tmp_path):
    with pytest.raises(checks.UsageError, match=r"--crop 64 is larger than the staged crops"):
        train.run(_args(stage_dir, tmp_path / "a", "--crop", "64"), [])
    all_val = tmp_path / "val"
    run_stage([f"{SRC}/*.png"], str(all_val), "--size", "32", "--val-percent", "100")
    with pytest.raises(checks.UsageError, match="no train rows .all in the val split."):
        train.run(_args(str(all_val), tmp_path / "b"), [])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unknown_extra_arguments_are_refused(stage_dir, tmp_path):
    with pytest.raises(SystemExit, match="unrecognised"):
        train.run(_args(stage_dir, tmp_path), ["--runner=DataflowRunner"])


def test_missing_shards_is_a_clear_error(tmp_path):
    save_png(tmp_path / "x.png", smooth_colour_field(8, 8))
    with pytest.raises(FileNotFoundError, match="chromabeam stage"):
        train.run(_args(str(tmp_path), tmp_path / "out"), [])


# --- the learning-rate schedule ----------------------------------------------------------


def test_lr_factor_warmup_peak_floor():
    warmup, floor = 0.05, 0.01
    assert train.lr_factor(0.0) == pytest.approx(floor)  # starts near 0 (at the floor)
    assert train.lr_factor(0.0) < 0.05
    assert train.lr_factor(warmup / 2) == pytest.approx(0.5)
    assert train.lr_factor(warmup) == pytest.approx(1.0)  # peak at the end of warm-up
    assert train.lr_factor(1.0) == pytest.approx(floor)  # floor at the end
    assert train.lr_factor(2.0) == pytest.approx(floor) and train.lr_factor(-1.0) == floor
    mid = (1 + warmup) / 2
    assert train.lr_factor(mid) == pytest.approx(floor + (1 - floor) * 0.5)


def test_lr_factor_monotone():
    up = [train.lr_factor(p) for p in np.linspace(0.0, 0.05, 20)]
    assert up == sorted(up)
    down = [train.lr_factor(p) for p in np.linspace(0.05, 1.0, 200)]
    assert all(a > b for a, b in zip(down, down[1:], strict=False))
    assert all(0.01 <= f <= 1.0 for f in up + down)
    assert train.lr_factor(0.3, warmup=0.0, floor=0.0) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.3))
    )


def test_schedule_changes_names_each_changed_option():
    saved = {"epochs": 2, "lr": 5e-4, "seed": 0}
    assert train.schedule_changes(saved, {"epochs": 4, "lr": 1e-3, "seed": 0}) == [
        "epochs 2 -> 4",
        "lr 0.0005 -> 0.001",
    ]
    assert train.schedule_changes(saved, dict(saved)) == []
    assert train.schedule_changes(None, {"epochs": 4}) == []  # an older checkpoint: no record
