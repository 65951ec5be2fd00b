"""siggraph17-small: shapes, hints change the output, init from eccv16-small, training
batches with simulated hints, and `evaluate --hints` on small generated images."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from models.infer import DecodeSettings, predict
from models.registry import build, takes_hints
from tests.conftest_models import (
    BEAM_ARGS,
    build_tiny,
    colour_images,
    job_args,
    save_png,
    write_tiny_checkpoint,
)
from transforms.hints import Hints, with_hints


def test_shapes_and_range():
    model, _ = build_tiny("siggraph17-small")
    l = torch.randn(2, 1, 32, 48)
    out = model(l)
    assert out.shape == (2, 2, 32, 48) and out.abs().max() <= 1.0  # tanh: ab / 110
    assert model(l, torch.zeros(2, 2, 32, 48), torch.zeros(2, 1, 32, 48)).equal(out)
    assert takes_hints("siggraph17-small") and takes_hints(model)
    assert not takes_hints("eccv16-small")


def test_hints_change_the_output_through_predict():
    model, _ = build_tiny("siggraph17-small")
    l = np.random.default_rng(0).uniform(20, 80, (1, 32, 32)).astype(np.float32)
    h = Hints(np.array([[16, 16]], np.float32), np.array([[60.0, -40.0]], np.float32), 3.0)
    plain, _ = predict(model, l, DecodeSettings())
    zeros, _ = predict(
        model, with_hints(l[0], Hints(h.xy[:0], h.ab[:0]), 32, 32)[None], DecodeSettings()
    )
    hinted, _ = predict(model, with_hints(l[0], h, 32, 32)[None], DecodeSettings())
    assert plain.shape == hinted.shape == (1, 32, 32, 2)
    np.testing.assert_allclose(plain, zeros, atol=1e-5)  # an empty hint map = no hints
    assert np.abs(hinted - plain).max() > 0.1
    # A model without hints ignores a hint map.
    cls, _ = build_tiny("eccv16-small")
    a, _ = predict(cls, l, DecodeSettings())
    b, _ = predict(cls, with_hints(l[0], h, 32, 32)[None], DecodeSettings())
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_load_init_from_eccv16_small():
    torch.manual_seed(0)
    src = build({"name": "eccv16-small", "width": 0.125, "num_bins": None})
    dst = build({"name": "siggraph17-small", "width": 0.125})
    copied = dst.load_init(src.state_dict())
    assert "trunk.block1.0.weight" in copied and "trunk.head.2.weight" in copied
    w = dst.trunk.block1[0].weight
    assert torch.equal(w[:, :1], src.trunk.block1[0].weight) and not w[:, 1:].any()
    assert not any(k.startswith("classifier") for k in copied)


def test_training_stream_yields_hint_maps(tmp_path):
    from models.data import ShardStream
    from tests.conftest_models import run_stage

    colour_images(tmp_path / "img", 4, 40, 40)
    run_stage(
        [str(tmp_path / "img" / "*.png")],
        str(tmp_path / "stage"),
        "--size",
        "32",
        "--val-percent",
        "0",
    )
    from models.data import shard_files

    files = shard_files(str(tmp_path / "stage"))
    a = list(ShardStream(files, "train", seed=1, hints=True))
    b = list(ShardStream(files, "train", seed=1, hints=True))
    assert len(a) == 4 and all(len(x) == 3 and x[2].shape == (3, 32, 32) for x in a)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x[2], y[2])  # seeded
    hinted = [x for x in a if x[2][2].any()]
    for _, ab, hint in hinted:  # a hint's colour is the mean truth of its patch
        m = hint[2] > 0
        assert torch.all(hint[:2][:, m].abs() <= ab.abs().amax() + 1e-4)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from pipeline import evaluate

    tmp = tmp_path_factory.mktemp("sweep")
    quads = [
        ((200, 40, 40), (40, 60, 200), (40, 160, 60), (230, 200, 40)),
        ((40, 160, 60), (200, 40, 180), (220, 120, 30), (30, 150, 200)),
    ]
    for i, cols in enumerate(quads):  # four flat colours split by L edges
        rgb = np.empty((40, 48, 3), np.uint8)
        rgb[:20, :24], rgb[:20, 24:], rgb[20:, :24], rgb[20:, 24:] = cols
        save_png(tmp / "gt" / f"img_{i}.png", rgb)
    ckpt = tmp / "guided.pt"
    write_tiny_checkpoint(ckpt, "siggraph17-small")
    argv = [
        str(tmp / "gt" / "*.png"),
        str(tmp / "out"),
        "--model",
        f"siggraph17-small,weights={ckpt}",
        "--hints",
        "0",
        "2",
        "30",
        "--no-report",
    ]
    evaluate.run(job_args(evaluate, argv), list(BEAM_ARGS))
    return tmp / "out"


def test_evaluate_hints_rows(sweep):
    rows = pq.read_table(sweep / "hints").to_pylist()
    got = sorted((r["model"], r["points"], r["key"]) for r in rows)
    keys = sorted({r["key"] for r in rows})
    want = sorted(
        (m, n, k)
        for m in ("siggraph17-small", "IDW propagation", "Levin propagation")
        for n in (0, 2, 30)
        for k in keys
    )
    assert len(keys) == 2 and got == want
    by = {(r["model"], r["points"], r["key"]): r for r in rows}
    for k in keys:  # with 0 points the propagations are the no-colour image
        assert (
            by[("IDW propagation", 0, k)]["ciede2000"]
            == by[("Levin propagation", 0, k)]["ciede2000"]
        )
        idw30, lev30 = by[("IDW propagation", 30, k)], by[("Levin propagation", 30, k)]
        assert lev30["ciede2000"] < idw30["ciede2000"] < by[("IDW propagation", 0, k)]["ciede2000"]
        assert (
            by[("siggraph17-small", 2, k)]["ciede2000"]
            != by[("siggraph17-small", 0, k)]["ciede2000"]
        )


def test_evaluate_hints_report_files_and_reproducible(sweep, tmp_path):
    for name in ("hints.md", "hints.json", "hints_curve.png"):
        assert (sweep / name).stat().st_size > 0
    summary = json.loads((sweep / "hints.json").read_text())
    assert set(summary["targets"]) == {"siggraph17-small"}
    md = (sweep / "hints.md").read_text()
    assert "Zhang 2017" in md and "28.42" in md
    from pipeline.evaluate import load_truth
    from pipeline.evaluate_hints import expand
    from transforms.fileio import read_bytes

    uri = sorted(str(p) for p in (sweep.parent / "gt").glob("*.png"))[0]
    item = load_truth(uri, read_bytes(uri), None, 10**8)
    a, b = expand(item, (0, 2, 30), 0), expand(item, (0, 2, 30), 0)
    np.testing.assert_array_equal(a[2]["sim"].xy, b[2]["sim"].xy)
    np.testing.assert_array_equal(a[1]["sim"].xy, a[2]["sim"].xy[:2])  # nested


def _point_hints(h: int, w: int, points: list[tuple[int, int, float, float]]):
    ab, mask = torch.zeros(1, 2, h, w), torch.zeros(1, 1, h, w)
    for x, y, a, b in points:
        ab[0, :, y, x] = torch.tensor([a, b])
        mask[0, 0, y, x] = 1.0
    return ab, mask


def test_propagate_hints_is_idw_and_keeps_hint_colours():
    from models.guided import propagate_hints
    from transforms.propagate import idw

    pts = [(3, 4, 0.5, -0.2), (20, 10, -0.3, 0.4), (12, 25, 0.1, 0.1)]
    ab, mask = _point_hints(30, 24, pts)
    got = propagate_hints(ab, mask, cell=1)[0].permute(1, 2, 0).numpy()
    xy = np.array([[x, y] for x, y, _, _ in pts], np.float32)
    cols = np.array([[a, b] for _, _, a, b in pts], np.float32)
    np.testing.assert_allclose(got, idw(xy, cols, 24, 30), atol=1e-5)
    # Pooled into cells: hinted pixels keep their colour, the rest lies between the hints.
    ab, mask = torch.zeros(2, 2, 32, 32), torch.zeros(2, 1, 32, 32)
    ab[0, :, 2:7, 3:8], mask[0, :, 2:7, 3:8] = 0.6, 1.0
    ab[0, 0, 20:23, 25:28], mask[0, :, 20:23, 25:28] = -0.4, 1.0
    p = propagate_hints(ab, mask)
    assert torch.equal(p[0][mask[0].expand(2, -1, -1) > 0], ab[0][mask[0].expand(2, -1, -1) > 0])
    assert p[0, 0].min() >= -0.4 - 1e-6 and p[0, 0].max() <= 0.6 + 1e-6
    assert p[0, 0, 31, 0] > 0 and p[0, 0, 31, 31] < 0.3  # nearer hints weigh more
    assert not p[1].any()  # an image without hints: zeros


def test_residual_with_zero_correction_is_the_propagation():
    from models.guided import propagate_hints

    model, _ = build_tiny("siggraph17-small", residual=True)
    with torch.no_grad():
        model.regressor.weight.zero_()
        model.regressor.bias.zero_()
    l = torch.randn(1, 1, 32, 32)
    ab, mask = _point_hints(32, 32, [(5, 5, 0.5, -0.3), (25, 20, -0.2, 0.6)])
    out = model(l, ab, mask)
    assert torch.allclose(out, propagate_hints(ab, mask), atol=1e-6)
    assert not model(l).any()  # no hints: zero propagation, zero correction


def test_residual_no_hint_output_unchanged_and_hints_change_it():
    plain, _ = build_tiny("siggraph17-small", seed=3)
    res, _ = build_tiny("siggraph17-small", seed=4, residual=True)
    copied = res.load_init(plain.state_dict())
    assert len(copied) == len(res.state_dict())  # 4-channel input convs fill channels 0..3
    assert not res.trunk.block1[0].weight[:, 4:].any() and not res.full[0].weight[:, 4:].any()
    l = np.random.default_rng(1).uniform(20, 80, (1, 32, 32)).astype(np.float32)
    a, _ = predict(plain, l, DecodeSettings())
    b, _ = predict(res, l, DecodeSettings())
    np.testing.assert_allclose(a, b, atol=1e-4)  # no hints: the propagation path adds nothing
    h = Hints(np.array([[8, 8]], np.float32), np.array([[50.0, 30.0]], np.float32), 1.0)
    hinted, _ = predict(res, with_hints(l[0], h, 32, 32)[None], DecodeSettings())
    assert np.abs(hinted - b).max() > 5.0  # ab units: the hint spreads over the image
    # Round trip through a checkpoint keeps the residual layout.
    from models.registry import build as build_cfg

    assert build_cfg({"name": "siggraph17-small", "width": 0.125, "residual": True}).residual


def test_hinted_strength():
    from transforms.hints import hinted_strength

    assert hinted_strength(0.6, 0) == 0.6
    assert hinted_strength(0.6, 3) == 1.0
    assert hinted_strength(0.6, 3, hinted=0.8) == 0.8
