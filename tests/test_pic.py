"""PIC (models/pic.py): the discretized logistic likelihood, the autoregressive masking, the
cached-feature sampler, and colorize --samples / evaluate's bits per dimension."""

from __future__ import annotations

import json
import math

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from models.infer import DecodeSettings, predict
from models.losses import PicLoss
from models.pic import (
    HALF_BIN,
    PIC,
    PixelCNNHead,
    discretize,
    mixture_log_prob,
    sample_pixel,
)
from pipeline import colorize
from pipeline.evaluate import with_true_ab
from tests.conftest_models import BEAM_ARGS, job_args, one_thread, save_png, write_tiny_checkpoint
from tests.helpers import gray_photo, smooth_colour_field
from transforms.colour import rgb_to_lab

TINY = {"channels": 8, "blocks": 2, "mix": 3}
# staged from here: keys hash the URI, so the split is the same on every run (2 of 8 in val)
PIC_SRC = "memory://pic-train-src"


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _one_component(mu_a, mu_b, ls_a, ls_b, coeff=0.0) -> torch.Tensor:
    """Params (1, 6, 1, 1) of a single logistic component (coeff given after tanh)."""
    vals = [0.0, mu_a, mu_b, ls_a, ls_b, math.atanh(coeff)]
    return torch.tensor(vals, dtype=torch.float64).reshape(1, 6, 1, 1)


def test_single_logistic_matches_the_cdf_difference_by_hand():
    mu_a, mu_b, ls_a, ls_b, coeff = 0.1, -0.2, math.log(0.05), math.log(0.08), 0.5
    ab = torch.tensor([[[[12.3]], [[-30.6]]]])  # bins 12 and -31 (Lab units)
    x = discretize(ab).double()
    a, b = 12 / 110, -31 / 110
    h = 0.5 / 110
    sa, sb = 0.05, 0.08
    mb = mu_b + coeff * a  # b's mean is linear in a
    pa = _sigmoid((a + h - mu_a) / sa) - _sigmoid((a - h - mu_a) / sa)
    pb = _sigmoid((b + h - mb) / sb) - _sigmoid((b - h - mb) / sb)
    got = mixture_log_prob(_one_component(mu_a, mu_b, ls_a, ls_b, coeff), x, 1)
    assert float(got) == pytest.approx(math.log(pa) + math.log(pb), rel=1e-5)
    # the edge bins take the tails: a = -110 -> CDF(-1 + h); b = 110 -> 1 - CDF(1 - h)
    x_edge = torch.tensor([[[[-1.0]], [[1.0]]]], dtype=torch.float64)
    edge = mixture_log_prob(_one_component(mu_a, mu_b, ls_a, ls_b), x_edge, 1)
    pa = _sigmoid((-1 + h - mu_a) / sa)
    pb = 1 - _sigmoid((1 - h - mu_b) / sb)
    assert float(edge) == pytest.approx(math.log(pa) + math.log(pb), rel=1e-5)
    assert HALF_BIN == pytest.approx(h)


def test_loss_is_bits_per_ab_dimension():
    class Fixed(torch.nn.Module):
        def nll_bits(self, features, ab):
            x = discretize(ab).double()
            return -mixture_log_prob(features, x, 1).mean((1, 2)) / (2 * math.log(2))

    params = _one_component(0.0, 0.0, math.log(0.1), math.log(0.1))
    ab = torch.zeros(1, 2, 1, 1)
    h, s = 0.5 / 110, 0.1
    p = _sigmoid(h / s) - _sigmoid(-h / s)
    expected = -2 * math.log2(p) / 2  # two dimensions, each the same bin mass
    assert float(PicLoss(Fixed())(params, ab)) == pytest.approx(expected, rel=1e-6)


def test_autoregressive_masking_by_gradients():
    """The params at pixel i never depend on ab at pixels >= i (raster order); they do depend
    on the pixel above and the one to the left; and the log-likelihood at i depends on b_i only
    through its own term, on a_i (b given a), never on later pixels."""
    one_thread()
    torch.manual_seed(0)
    head = PixelCNNHead(cond=4, channels=8, blocks=2, k=3, mix=3).double()
    cond = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    hgt, wid = 5, 6
    for r in range(hgt):
        for c in range(wid):
            x = (torch.rand(1, 2, hgt, wid, dtype=torch.float64) - 0.5).requires_grad_(True)
            head(x, cond)[0, :, r, c].sum().backward()
            g = x.grad[0].abs().sum(0).flatten()
            i = r * wid + c
            assert float(g[i:].sum()) == 0.0, (r, c)
            if r > 0:
                assert float(x.grad[0, :, r - 1, c].abs().sum()) > 0
            if c > 0:
                assert float(x.grad[0, :, r, c - 1].abs().sum()) > 0
    # within a pixel: log P(a_i) ignores b_i; log P(b_i | a_i) uses a_i
    x = (torch.rand(1, 2, hgt, wid, dtype=torch.float64) - 0.5).requires_grad_(True)
    r, c = 2, 3
    mixture_log_prob(head(x, cond), x, 3)[0, r, c].backward()
    g = x.grad[0].abs().sum(0).flatten()
    assert float(g[r * wid + c + 1 :].sum()) == 0.0
    assert float(x.grad[0, 0, r, c].abs()) > 0  # a_i enters b's mean and a's own term


def test_factorised_head_has_no_spatial_path():
    one_thread()
    model = PIC(width=0.125, head="factorised", **TINY).eval()
    feats = torch.randn(1, model.trunk.out_channels, 4, 4)
    x = torch.zeros(1, 2, 4, 4, requires_grad=True)
    model.params(feats, x).sum().backward()
    assert x.grad is None or float(x.grad.abs().sum()) == 0.0


def _tiny_pic(seed: int = 0, head: str = "ar") -> PIC:
    one_thread()
    torch.manual_seed(seed)
    return PIC(width=0.125, head=head, **TINY).eval()


def test_fast_sampler_equals_the_full_network():
    """The greedy decode is a fixed point of the full (teacher-forced) network: the cached
    row/column sampler computes the same numbers."""
    model = _tiny_pic()
    feats = model(torch.randn(2, 1, 32, 32))
    x = model.generate(feats, method="mean")
    params = model.params(feats, x)
    n, _, h, w = params.shape
    again = sample_pixel(params.permute(0, 2, 3, 1).reshape(n * h * w, -1), 3, 1.0, "mean", None)
    again = again.reshape(n, h, w, 2).permute(0, 3, 1, 2)
    assert torch.allclose(again, x, atol=1e-6)


def test_sampling_is_seeded_reproducible_and_diverse():
    model = _tiny_pic(1)
    feats = model(torch.randn(1, 1, 32, 32)).expand(3, -1, -1, -1)
    s1 = model.decode(feats, temperature=1.0, method="sample", seed=7)
    s2 = model.decode(feats, temperature=1.0, method="sample", seed=7)
    s3 = model.decode(feats, temperature=1.0, method="sample", seed=8)
    assert torch.equal(s1, s2)
    assert not torch.equal(s1, s3)
    assert not torch.equal(s1[0], s1[1])  # samples of one image differ
    # ab stays on the 1-Lab-unit grid inside [-110, 110]
    assert torch.allclose(s1, torch.round(s1), atol=1e-4) and float(s1.abs().max()) <= 110


def test_predict_returns_samples_and_bits():
    model = _tiny_pic(2)
    l = np.random.default_rng(0).uniform(0, 100, (2, 32, 32)).astype(np.float32)
    ab, bits = predict(model, l, DecodeSettings(samples=2, seed=3, temperature=0.8))
    assert ab.shape == (2, 2, 8, 8, 2) and bits is None
    truth = np.concatenate([l[..., None], np.full((2, 32, 32, 2), 5.0, np.float32)], -1)
    ab, bits = predict(model, truth, DecodeSettings(), with_probs=True)
    assert ab.shape == (2, 8, 8, 2) and bits.shape == (2,) and np.all(bits > 0)


def test_true_ab_cells_are_the_ones_bits_per_dim_scores():
    rgb = smooth_colour_field(70, 90, seed=4)
    packed = with_true_ab(np.zeros((32, 32), np.float32), rgb)
    cells = packed[::4, ::4, 1:]
    ab = rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 1:]
    fy, fx = 70 // 8, 90 // 8
    expected = ab[: 8 * fy, : 8 * fx].reshape(8, fy, 8, fx, 2).mean((1, 3))
    assert np.allclose(cells, expected, atol=1e-4)


def _colorize_samples(in_dir, out, ckpt, *extra: str) -> list[dict]:
    """colorize --samples 2 (pic) of in_dir/*.png into out; the results rows."""
    argv = [f"{in_dir}/*.png", str(out), "--model", "pic", "--weights", str(ckpt)]
    argv += ["--device", "cpu", "--samples", "2", *extra]
    colorize.run(job_args(colorize, argv), list(BEAM_ARGS))
    return sorted(pq.read_table(str(out / "results")).to_pylist(), key=lambda r: r["output_uri"])


def test_colorize_samples_writes_files_and_rows(tmp_path):
    ckpt = tmp_path / "pic.pt"
    write_tiny_checkpoint(ckpt, "pic", **TINY)
    in_dir = tmp_path / "in"
    save_png(in_dir / "photo.png", np.dstack([gray_photo(40)] * 3))
    save_png(in_dir / "other.png", np.dstack([gray_photo(36)] * 3))
    out = tmp_path / "out"
    first = _colorize_samples(in_dir, out, ckpt, "--seed", "1")
    files = [out / f"{stem}.s{i}.png" for stem in ("other", "photo") for i in (0, 1)]
    mtimes = [f.stat().st_mtime_ns for f in files]
    # --skip-existing keeps the samples an earlier run finished, their rows from the markers
    assert _colorize_samples(in_dir, out, ckpt, "--seed", "1", "--skip-existing") == first
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    stats = json.loads((out / "stats.json").read_text())
    assert stats["resumed"] == 2 and stats["outcomes"] == {"colorized": 2}
    # a truncated sample file redoes its input's samples, and only those
    files[3].write_bytes(files[3].read_bytes()[:50])
    again = _colorize_samples(in_dir, out, ckpt, "--seed", "1", "--skip-existing")
    kept = [f.stat().st_mtime_ns == m for f, m in zip(files, mtimes, strict=True)]
    assert kept == [True, True, False, False]
    assert [r["output_uri"] for r in again] == [r["output_uri"] for r in first]
    assert json.loads((out / "stats.json").read_text())["resumed"] == 1
    # another seed is another set of samples: all redone
    _colorize_samples(in_dir, out, ckpt, "--seed", "2", "--skip-existing")
    assert json.loads((out / "stats.json").read_text())["resumed"] == 0
    (in_dir / "other.png").unlink()
    out = tmp_path / "fresh"
    rows = _colorize_samples(in_dir, out, ckpt, "--seed", "1")
    assert (out / "photo.s0.png").exists() and (out / "photo.s1.png").exists()
    assert not (out / "photo.png").exists()
    assert sorted(r["sample"] for r in rows) == [0, 1]
    assert {r["decode"] for r in rows} == {"sample"}
    assert sorted(r["output_uri"].rsplit("/", 1)[-1] for r in rows) == [
        "photo.s0.png",
        "photo.s1.png",
    ]


def test_samples_refused_for_a_model_that_does_not_sample(tmp_path):
    ckpt = tmp_path / "cls.pt"
    write_tiny_checkpoint(ckpt)
    args = job_args(colorize, ["x.png", str(tmp_path / "o"), "--weights", str(ckpt)])
    args.samples = 2
    with pytest.raises(SystemExit):
        colorize.config_from_args(args, ["x.png"], str(tmp_path / "o"))


@pytest.mark.slow
def test_train_pic_from_staged_shards_and_evaluate_bits(tmp_path):
    """`train --model pic` (both heads) from staged shards; `evaluate` reports bits per dim."""
    import argparse
    import json

    from models import train
    from models.registry import load_model
    from pipeline import evaluate
    from tests.conftest_models import colour_images, run_stage

    one_thread()
    src = tmp_path / "src"
    fs = fsspec.filesystem("memory")
    for path in colour_images(src, 8, 40, 40, seed=500):  # evaluate reads these
        fs.pipe_file(f"{PIC_SRC}/{path.name}", path.read_bytes())
    stage = tmp_path / "stage"
    run_stage([f"{PIC_SRC}/*.png"], str(stage), "--size", "32", "--val-percent", "25")
    splits = [r["split"] for r in pq.read_table(str(stage / "shards")).to_pylist()]
    assert splits.count("val") == 2, splits
    for head in ("ar", "factorised"):
        p = argparse.ArgumentParser()
        train.add_arguments(p)
        run = tmp_path / head
        args = p.parse_args(
            [str(stage), str(run), "--model", "pic", "--pic-head", head, "--width", "0.125",
             "--pic-channels", "8", "--pic-blocks", "1", "--epochs", "1", "--batch-size", "4",
             "--device", "cpu", "--threads", "1", "--render-size", "32"]
        )  # fmt: skip
        summary = train.run(args, [])
        assert summary["config"]["head"] == head
        assert np.isfinite(summary["history"][-1]["val_loss"])
        model, _ = load_model("pic", str(run / "model.pt"))
        assert model.head_kind == head
    out = tmp_path / "eval"
    args = job_args(
        evaluate,
        [f"{src}/*.png", str(out), "--model", f"pic,weights={tmp_path / 'ar' / 'model.pt'}",
         "--priors", str(stage / "priors.json"), "--no-report", "--device", "cpu"],
    )  # fmt: skip
    evaluate.run(args, list(BEAM_ARGS))
    rows = pq.read_table(str(out / "metrics")).to_pylist()
    bits = [r["bits_per_dim"] for r in rows if r["model"] == "pic"]
    assert len(bits) == 8 and all(np.isfinite(b) and b > 0 for b in bits)
    assert all(np.isnan(r["bits_per_dim"]) for r in rows if r["model"] == "no colour")
    json.loads((tmp_path / "ar" / "metrics.json").read_text())
