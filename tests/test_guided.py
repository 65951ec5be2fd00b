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
