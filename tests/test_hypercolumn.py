"""The hypercolumn model (Larsson et al.): loss, sparse vs dense sampling, decoding, train,
colorize."""

from __future__ import annotations

import math

import fsspec
import numpy as np
import pytest
import torch

from models import train
from models.hypercolumn import Hypercolumn, pixel_grid
from models.losses import HUE_WEIGHT, HypercolumnLoss, hue_chroma_loss, two_hot
from models.registry import build, load_model
from pipeline import colorize
from tests.conftest_models import build_tiny, job_args, one_thread, run_stage, save_png
from tests.helpers import encode, smooth_colour_field
from transforms import huechroma as hc
from transforms.compose import luminance
from transforms.decode import decode_image

STEP = hc.CHROMA_MAX / 31


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _pixel(values) -> torch.Tensor:
    """A 1x1 image: (1, len(values), 1, 1)."""
    return torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)


def test_loss_one_pixel_by_hand():
    c = 3 * STEP  # exactly on chroma centre 3; hue 0 = hue centre 0
    chroma_logits = torch.zeros(1, 32, 1, 1)
    chroma_logits[0, 3] = math.log(3.0)  # p(3) = 3 / (31 + 3)
    hue_logits = torch.zeros(1, 32, 1, 1)  # uniform: CE = log 32
    loss = hue_chroma_loss(hue_logits, chroma_logits, _pixel([c, 0.0]))
    expected = math.log(34 / 3) + HUE_WEIGHT * (c / hc.CHROMA_MAX) * math.log(32)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # chroma between centres 3 and 4 (weights 0.75 / 0.25), hue 90° = centre 8
    c2 = 3.25 * STEP
    chroma_logits = torch.zeros(1, 32, 1, 1)
    chroma_logits[0, 4] = math.log(3.0)
    hue_logits = torch.zeros(1, 32, 1, 1)
    hue_logits[0, 8] = math.log(5.0)  # p(8) = 5 / 36
    loss = hue_chroma_loss(hue_logits, chroma_logits, _pixel([0.0, c2]))
    ce_c = -(0.75 * math.log(1 / 34) + 0.25 * math.log(3 / 34))
    ce_h = -math.log(5 / 36)
    assert float(loss) == pytest.approx(ce_c + HUE_WEIGHT * c2 / hc.CHROMA_MAX * ce_h, rel=1e-5)


def test_hue_term_vanishes_without_chroma():
    hue_logits = torch.randn(1, 32, 1, 1, requires_grad=True)
    chroma_logits = torch.zeros(1, 32, 1, 1)
    loss = hue_chroma_loss(hue_logits, chroma_logits, _pixel([0.0, 0.0]))
    assert float(loss.detach()) == pytest.approx(math.log(32), rel=1e-5)
    loss.backward()
    assert float(hue_logits.grad.abs().max()) == 0.0


def test_torch_two_hot_matches_numpy_encoding():
    rng = np.random.default_rng(1)
    ab = rng.uniform(-90, 90, (1, 2, 5, 7)).astype(np.float32)
    hue, chroma = hc.ab_to_hue_chroma(ab.transpose(0, 2, 3, 1))
    for value, step, circular, ref in [
        (chroma, STEP, False, hc.encode_chroma(chroma)),
        (hue, hc.TWO_PI / 32, True, hc.encode_hue(hue)),
    ]:
        idx, w = two_hot(torch.from_numpy(value).float(), step, 32, circular)
        dense = torch.zeros(1, 32, 5, 7).scatter_add_(1, idx, w)
        np.testing.assert_allclose(dense.permute(0, 2, 3, 1).numpy(), ref, atol=1e-5)


def test_sparse_equals_dense_at_the_sampled_pixels():
    model, _ = build_tiny("hypercolumn", out_stride=1)
    torch.manual_seed(0)
    l = torch.rand(2, 1, 32, 24) - 0.5
    xy = torch.stack([torch.randint(0, 24, (2, 40)), torch.randint(0, 32, (2, 40))], dim=2)
    with torch.no_grad():
        dense = model.dense(l, stride=1)
        sparse = model.sample(l, pixel_grid(xy, 32, 24))
    assert dense.shape == (2, 64, 32, 24) and sparse.shape == (2, 64, 40, 1)
    for n in range(2):
        at = dense[n][:, xy[n, :, 1], xy[n, :, 0]]
        torch.testing.assert_close(sparse[n, :, :, 0], at, atol=1e-4, rtol=1e-4)
    # stride 2: the dense grid is the centres of 2x2 input cells
    with torch.no_grad():
        half = model.dense(l, stride=2)
        ij = torch.tensor([[[0, 0], [11, 15], [5, 3]]]).expand(2, -1, -1)  # (x, y) on 12x16
        sparse = model.sample(l, pixel_grid(ij, 16, 12))
    for n in range(2):
        torch.testing.assert_close(
            sparse[n, :, :, 0], half[n][:, ij[n, :, 1], ij[n, :, 0]], atol=1e-4, rtol=1e-4
        )


def test_forward_modes_and_sparse_loss_targets():
    model, _ = build_tiny("hypercolumn", points=16)
    l = torch.rand(3, 1, 32, 32) - 0.5
    model.train()
    torch.manual_seed(3)
    out = model(l)
    assert out.shape == (3, 66, 16, 1)
    ab = torch.randn(3, 2, 32, 32) * 40
    grid = out[:, 64:].permute(0, 2, 3, 1)
    # the positions are pixel centres; the loss must score the ab of exactly those pixels
    xy = ((grid[..., 0, :] + 1) / 2 * 32 - 0.5).round().long()
    target = torch.stack([ab[n][:, xy[n, :, 1], xy[n, :, 0]] for n in range(3)])[..., None]
    want = float(hue_chroma_loss(out[:, :32], out[:, 32:64], target).detach())
    assert float(HypercolumnLoss()(out, ab).detach()) == pytest.approx(want, rel=1e-5)
    model.points = 0  # dense training step
    assert model(l).shape == (3, 64, 16, 16)
    model.eval()
    dense = model(l)
    assert dense.shape == (3, 64, 16, 16)
    assert float(HypercolumnLoss()(dense, ab).detach()) > 0


def test_decode_methods():
    model, _ = build_tiny("hypercolumn")
    torch.manual_seed(1)
    out = torch.randn(2, 64, 8, 8) * 3
    for method in ("annealed", "median", "mean", "mode"):
        ab = model.decode(out, size=(16, 16), method=method, temperature=0.5)
        assert ab.shape == (2, 2, 16, 16) and torch.isfinite(ab).all()
    mode = model.decode(out, method="mode")
    chroma = torch.linalg.vector_norm(mode, dim=1).flatten().numpy()
    assert np.abs(chroma[:, None] - hc.chroma_centres()[None]).min(1).max() < 1e-3
    hue_idx = out[:, :32].argmax(1)
    hue = torch.atan2(mode[:, 1], mode[:, 0]) % hc.TWO_PI
    nonzero = chroma.reshape(hue.shape) > 1e-3
    torch.testing.assert_close(
        hue[torch.from_numpy(nonzero)].double(),
        (hue_idx.double() * hc.TWO_PI / 32)[torch.from_numpy(nonzero)],
        atol=1e-4,
        rtol=0,
    )
    cold = model.decode(out, method="annealed", temperature=1e-3)  # T -> 0: near the modes
    assert (cold - mode).abs().max() < 3 * STEP
    with pytest.raises(ValueError):
        model.decode(out, method="bogus")
    with pytest.raises(ValueError):
        Hypercolumn(chroma_decode="average")


N_IMAGES = 12
SRC = "memory://hc-train-src"


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> str:
    from PIL import Image

    one_thread()
    fs = fsspec.filesystem("memory")
    for i in range(N_IMAGES):
        with fs.open(f"{SRC}/img_{i:02d}.png", "wb") as f:
            f.write(encode(Image.fromarray(smooth_colour_field(40, 40, seed=500 + i)), "PNG"))
    out = tmp_path_factory.mktemp("hc-stage")
    run_stage([f"{SRC}/*.png"], str(out), "--size", "32", "--val-percent", "25")
    return str(out)


def test_tiny_train_run_then_colorize(stage_dir, tmp_path):
    run_dir = tmp_path / "run"
    args = job_args(
        train,
        [stage_dir, str(run_dir), "--model", "hypercolumn", "--width", "0.125", "--epochs", "2",
         "--batch-size", "4", "--device", "cpu", "--threads", "1", "--render-size", "32",
         "--hc-points", "32", "--hc-chroma-decode", "mean", "--half"],
    )  # fmt: skip
    summary = train.run(args, [])
    hist = summary["history"]
    assert len(hist) == 2 and all(math.isfinite(h["val_loss"]) for h in hist)
    assert 0 < hist[-1]["val_ab_error"] < 200 and 0 <= hist[-1]["val_auc"] <= 1
    cfg = summary["config"]
    assert cfg["points"] == 32 and cfg["chroma_decode"] == "mean" and cfg["temperature"] == 1.0
    ckpt = str(run_dir / "model.pt")
    model, loaded = load_model("hypercolumn", ckpt)
    assert isinstance(model, Hypercolumn) and model.chroma_decode == "mean"
    assert isinstance(build(loaded), Hypercolumn)

    src = save_png(tmp_path / "in" / "photo.png", smooth_colour_field(48, 40, seed=9))
    out = tmp_path / "photo_colour.png"
    colorize.run(
        job_args(colorize, [str(src), "-o", str(out), "--weights", ckpt, "--device", "cpu"]), []
    )
    from PIL import Image

    with Image.open(out) as img:
        assert img.size == (40, 48)
    l_in = luminance(decode_image(src.read_bytes()).rgb)
    l_out = luminance(decode_image(out.read_bytes()).rgb)
    assert np.abs(l_out - l_in).max() <= 1.0
