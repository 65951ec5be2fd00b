"""`chromabeam evaluate`: metrics rows, baselines, bits per dimension, report and comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.infer import DecodeSettings
from pipeline import checks, evaluate
from tests.conftest_models import (
    BEAM_ARGS,
    colour_images,
    job_args,
    one_thread,
    write_tiny_checkpoint,
)
from tests.helpers import capture_pipelines, upstream_of
from transforms import schema
from transforms.bins import GRID, annealed_mean, gamut_bins, hard_encode, num_bins
from transforms.colour import rgb_to_lab
from transforms.compose import compose
from transforms.crop import fit_and_crop
from transforms.decode import decode_image
from transforms.fileio import read_table
from transforms.metrics import AUC_THRESHOLDS, image_metrics

N_IMAGES = 4
MODEL = "eccv16-small"
BASELINES = (evaluate.NO_COLOUR, evaluate.CONSTANT_PRIOR)
METRICS = ("psnr", "ssim", "ciede2000", "auc", "auc_rebalanced", "colorfulness",
           "colorfulness_truth", "delta_colorfulness")  # fmt: skip


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _prior() -> np.ndarray:
    """A prior peaked near gray (like real photos)."""
    c = gamut_bins().astype(np.float64)
    p = np.exp(-(c**2).sum(1) / (2 * 30.0**2))
    return p / p.sum()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    one_thread()
    root = tmp_path_factory.mktemp("eval")
    images = colour_images(root / "images", N_IMAGES, 48, 64, seed=20)
    ckpt = root / "small.pt"
    write_tiny_checkpoint(ckpt, MODEL, seed=11)
    reg = root / "reg.pt"
    write_tiny_checkpoint(reg, "regression", seed=12)
    priors = root / "priors.json"
    priors.write_text(json.dumps({"empirical": _prior().tolist(), "num_bins": num_bins()}))
    return {"root": root, "images": images, "ckpt": str(ckpt), "reg": str(reg),
            "priors": str(priors)}  # fmt: skip


def _args(s: dict, out: Path, *extra: str):
    argv = [
        f"{s['root']}/images/*.png",
        str(out),
        "--model",
        f"{MODEL},weights={s['ckpt']}",
        "--priors",
        s["priors"],
        "--device",
        "cpu",
        *extra,
    ]
    return job_args(evaluate, argv)


@pytest.fixture(scope="module")
def full_run(setup) -> tuple[Path, dict]:
    """--size full with the classification model and a regression model."""
    one_thread()
    out = setup["root"] / "full"
    args = _args(
        setup, out, "--size", "full", "--model", f"regression,weights={setup['reg']},label=reg"
    )
    summary = evaluate.run(args, list(BEAM_ARGS))
    return out, summary


def test_stats_json_waits_for_the_metrics_and_hint_tables(setup, tmp_path, monkeypatch):
    pipelines = capture_pipelines(monkeypatch)
    args = _args(setup, tmp_path / "out", "--no-report", "--hints", "2")
    evaluate.run(args, list(BEAM_ARGS))
    waits_for = upstream_of(pipelines[0], "WriteStats")
    assert {"Metrics/Write", "HintMetrics/Write", "Accounting/Writeerrors/Write"} <= waits_for


def test_stats_json_is_the_last_file_after_the_report(setup, tmp_path, monkeypatch):
    """A reader that waits for stats.json finds the report: the pipeline's stats are published
    after it; a run whose report fails leaves no stats.json (unfinished), and a rerun works."""
    out = tmp_path / "out"
    seen = {}
    build_report = evaluate.build_report

    def spy(rows, examples, meta, output, *a, **k):
        seen["before"] = sorted(p.name for p in out.iterdir())
        summary = build_report(rows, examples, meta, output, *a, **k)
        seen["after"] = sorted(p.name for p in out.iterdir())
        return summary

    monkeypatch.setattr(evaluate, "build_report", spy)
    args = _args(setup, out, "--size", "32")
    evaluate.run(args, list(BEAM_ARGS))
    assert evaluate.PENDING_STATS in seen["before"] and "stats.json" not in seen["before"]
    assert "report.html" in seen["after"] and "stats.json" not in seen["after"]
    left = {p.name for p in out.iterdir()}
    assert "stats.json" in left and evaluate.PENDING_STATS not in left
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outcomes"] == {"evaluated": N_IMAGES} and stats["job"] == "evaluate"

    def broken(*a, **k):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(evaluate, "build_report", broken)
    with pytest.raises(RuntimeError, match="the report failed"):
        evaluate.run(args, list(BEAM_ARGS))
    assert not (out / "stats.json").exists()  # the earlier run's was cleared: unfinished
    monkeypatch.setattr(evaluate, "build_report", build_report)
    evaluate.run(args, list(BEAM_ARGS))
    assert json.loads((out / "stats.json").read_text())["outcomes"] == stats["outcomes"]
    assert not (out / evaluate.PENDING_STATS).exists()


@pytest.fixture(scope="module")
def crop_run(setup, full_run) -> tuple[Path, dict]:
    """--size 32, compared with the full run."""
    one_thread()
    out = setup["root"] / "crop"
    summary = evaluate.run(_args(setup, out, "--size", "32", "--compare", str(full_run[0])),
                           list(BEAM_ARGS))  # fmt: skip
    return out, summary


def _rows(out: Path) -> list[dict]:
    return read_table(str(out / "metrics")).to_pylist()


def test_one_row_per_image_and_model(full_run, crop_run, setup):
    for (out, _), models in (
        (full_run, {MODEL, "reg", *BASELINES}),
        (crop_run, {MODEL, *BASELINES}),
    ):
        table = read_table(str(out / "metrics"))
        assert table.schema.equals(schema.METRICS_SCHEMA, check_metadata=False)
        rows = table.to_pylist()
        pairs = [(r["source_uri"], r["model"]) for r in rows]
        assert len(pairs) == len(set(pairs)) == N_IMAGES * len(models)
        assert {m for _, m in pairs} == models
        assert {u for u, _ in pairs} == {str(p) for p in setup["images"]}
        for r in rows:
            assert (r["width"], r["height"]) == (64, 48)  # the original size
            assert len(r["cmf"]) == len(AUC_THRESHOLDS)
            assert all(math.isfinite(r[m]) for m in METRICS if m != "psnr")
        stats = json.loads((out / "stats.json").read_text())
        assert stats["total"] == N_IMAGES and stats["outcomes"] == {"evaluated": N_IMAGES}
        assert read_table(str(out / "errors")).num_rows == 0


def _direct_no_colour(uri: str, size: int | None) -> dict:
    rgb = decode_image(Path(uri).read_bytes()).rgb
    if size:
        rgb = fit_and_crop(rgb, size)
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    pred = compose(lab[..., 0], np.zeros((1, 1, 2), np.float32))
    lab_pred = rgb_to_lab(pred.astype(np.float32) / 255.0)
    return image_metrics(rgb / 255.0, pred / 255.0, lab, lab_pred, _prior())


@pytest.mark.parametrize("which, size", [("full", None), ("crop", 32)])
def test_no_colour_row_equals_a_direct_computation(which, size, full_run, crop_run):
    out = (full_run if which == "full" else crop_run)[0]
    rows = [r for r in _rows(out) if r["model"] == evaluate.NO_COLOUR]
    assert len(rows) == N_IMAGES
    for r in rows:
        expect = _direct_no_colour(r["source_uri"], size)
        for m in METRICS:
            assert r[m] == pytest.approx(expect[m], rel=1e-6, abs=1e-9), m
        assert r["colorfulness"] < 1.0 < r["colorfulness_truth"]


def test_constant_prior_row_uses_the_annealed_mean(full_run):
    rows = [r for r in _rows(full_run[0]) if r["model"] == evaluate.CONSTANT_PRIOR]
    ab = annealed_mean(_prior(), 0.38)
    assert np.hypot(*ab) > 0.1  # the baseline is not just gray
    for r in rows:
        rgb = decode_image(Path(r["source_uri"]).read_bytes()).rgb
        lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
        pred = compose(lab[..., 0], ab[None, None].astype(np.float32))
        lab_pred = rgb_to_lab(pred.astype(np.float32) / 255.0)
        expect = image_metrics(rgb / 255.0, pred / 255.0, lab, lab_pred, _prior())
        assert r["ciede2000"] == pytest.approx(expect["ciede2000"], rel=1e-6)


def test_bits_per_dim_finite_for_the_classifier_only(full_run, crop_run):
    for out, _ in (full_run, crop_run):
        for r in _rows(out):
            if r["model"] == MODEL:
                assert math.isfinite(r["bits_per_dim"]) and r["bits_per_dim"] > 0
            else:
                assert math.isnan(r["bits_per_dim"]), r["model"]


def test_report_files(full_run, crop_run):
    for out, summary in (full_run, crop_run):
        for name in ("report.md", "report.html", "summary.json"):
            assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        on_disk = json.loads((out / "summary.json").read_text())
        assert on_disk["meta"]["images"] == N_IMAGES
        assert set(on_disk["meta"]["models"]) <= {MODEL, "reg"}
        assert summary["aggregate"] == on_disk["aggregate"]
    assert json.loads((full_run[0] / "summary.json").read_text())["compare"] is None
    assert "Change since the previous run" not in (full_run[0] / "report.md").read_text()


def test_compare_section(crop_run, full_run):
    out, summary = crop_run
    assert summary["compare"] is not None and summary["compare"]["dir"] == str(full_run[0])
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "Change since the previous run" in md and "Change since the previous run" in html
    assert "Only in the previous run: reg." in md


def test_compare_missing_dir_fails_before_the_pipeline(setup, tmp_path, monkeypatch):
    def no_pipeline(*a, **k):
        raise AssertionError("the pipeline was built before --compare was checked")

    monkeypatch.setattr(evaluate, "build", no_pipeline)
    out = tmp_path / "out"
    args = _args(setup, out, "--compare", str(tmp_path / "missing_dir"))
    with pytest.raises(checks.UsageError, match=r"^--compare .*missing_dir: no summary.json"):
        evaluate.run(args, list(BEAM_ARGS))
    assert not out.exists()  # refused before the output folder is made
    for bad, why in (
        (tmp_path / "none.json", "no such file"),
        (tmp_path / "afile", "not the priors.json of `chromabeam stage` .JSONDecodeError"),
        (tmp_path / "summary.json", "not the priors.json of `chromabeam stage` .KeyError"),
        (tmp_path / "short.json", f"expected {num_bins()} finite bin probabilities, got .3,."),
    ):
        if bad.name == "afile":
            bad.write_text("not json")
        elif bad.name != "none.json":
            bad.write_text(json.dumps({"aggregate": {}} if "summary" in bad.name else
                                      {"empirical": [0.1, 0.2, 0.7]}))  # fmt: skip
        with pytest.raises(checks.UsageError, match=f"^--priors {bad}: {why}"):
            evaluate.run(_args(setup, out, "--priors", str(bad)), list(BEAM_ARGS))
    assert not out.exists()


def test_reruns_leave_no_stale_report_and_never_score_their_own_files(setup, tmp_path):
    """evaluate 'in/**' in/ev twice: its plots are never ground truth; a --no-report rerun
    leaves no report of the earlier run beside its new metrics."""
    src = tmp_path / "in"
    src.mkdir()
    for img in setup["images"][:2]:
        (src / img.name).write_bytes(img.read_bytes())
    (src / "bad.png").write_bytes(b"not a picture")
    argv = [f"{src}/**", str(src / "ev"), "--model", f"{MODEL},weights={setup['ckpt']}",
            "--priors", setup["priors"], "--device", "cpu", "--size", "32"]  # fmt: skip
    for _ in range(2):
        summary = evaluate.run(job_args(evaluate, argv), list(BEAM_ARGS))
        assert summary["meta"]["images"] == 2
        assert read_table(str(src / "ev" / "errors")).num_rows == 1  # bad.png only
    report = (src / "ev" / "report.md").read_text()
    assert "2 images (inputs left out: 1 undecodable; their reasons are in errors/" in report
    assert evaluate.run(job_args(evaluate, [*argv, "--no-report"]), list(BEAM_ARGS)) is None
    left = {p.name for p in (src / "ev").iterdir()}
    assert not left & {"report.md", "report.html", "summary.json", "cmf.png", "examples.png"}
    assert "stats.json" in left and "metrics" in left


def test_missing_prior_is_a_clear_error(setup, tmp_path):
    # a checkpoint without a stored prior and no --priors
    ckpt = tmp_path / "noprior.pt"
    write_tiny_checkpoint(ckpt, MODEL, prior=None)
    args = job_args(evaluate, [f"{setup['root']}/images/*.png", str(tmp_path / "o"), "--model",
                               f"{MODEL},weights={ckpt}"])  # fmt: skip
    with pytest.raises(SystemExit, match="--priors"):
        evaluate.run(args, list(BEAM_ARGS))


def test_duplicate_labels_are_refused(setup, tmp_path):
    args = _args(setup, tmp_path, "--model", f"{MODEL},weights={setup['ckpt']}")
    with pytest.raises(SystemExit, match="label"):
        evaluate.run(args, list(BEAM_ARGS))


# --- parse_spec --------------------------------------------------------------------------


def test_parse_spec(setup):
    spec = evaluate.parse_spec(f"{MODEL},weights={setup['ckpt']},temperature=0.5,label=x")
    assert spec.name == MODEL and spec.label == "x"
    assert spec.weights == setup["ckpt"] and len(spec.weights_sha256) == 64
    assert spec.settings == DecodeSettings(temperature=0.5, method="annealed", strength=1.0)
    assert spec.render_size == 32  # from the checkpoint's config
    assert len(spec.prior) == num_bins()
    spec = evaluate.parse_spec(
        f"{MODEL},weights={setup['ckpt']},decode=mode,strength=0.7,render_size=64"
    )
    assert spec.label == MODEL and spec.render_size == 64
    assert spec.settings.method == "mode" and spec.settings.strength == 0.7
    assert spec.settings.temperature == pytest.approx(0.38)


def test_parse_spec_rejects_unknown_keys_and_models(setup):
    with pytest.raises(SystemExit, match="colour"):
        evaluate.parse_spec(f"{MODEL},weights={setup['ckpt']},colour=red")
    with pytest.raises(SystemExit, match="unknown model"):
        evaluate.parse_spec(f"pix2pix,weights={setup['ckpt']}")


# --- bits per dimension ------------------------------------------------------------------


def test_bits_per_dim_all_mass_on_the_true_bin():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-40, 40, (8, 8, 2)).astype(np.float32)
    probs = np.zeros((8, 8, num_bins()), np.float32)
    np.put_along_axis(probs, hard_encode(ab)[..., None].astype(np.int64), 1.0, -1)
    # -log2(1 / GRID^2) / 2 = log2(10)
    assert evaluate.bits_per_dim(probs, ab) == pytest.approx(3.321928, abs=1e-5)
    assert GRID == 10.0


def test_bits_per_dim_area_averages_the_truth():
    # truth 16x16 constant per 4x4 block -> probability map 4x4
    rng = np.random.default_rng(1)
    block = rng.uniform(-40, 40, (4, 4, 2)).astype(np.float32)
    ab = np.repeat(np.repeat(block, 4, 0), 4, 1)
    probs = np.zeros((4, 4, num_bins()), np.float32)
    np.put_along_axis(probs, hard_encode(block)[..., None].astype(np.int64), 0.5, -1)
    assert evaluate.bits_per_dim(probs, ab) == pytest.approx(math.log2(10) + 0.5, abs=1e-5)


def test_bits_per_dim_uniform():
    q = num_bins()
    probs = np.full((2, 3, q), 1.0 / q, np.float32)
    ab = np.zeros((2, 3, 2), np.float32)
    assert evaluate.bits_per_dim(probs, ab) == pytest.approx(math.log2(q * 100) / 2, rel=1e-5)


def test_bits_per_dim_truth_smaller_than_the_probability_map():
    """A 32x32 image (e.g. CIFAR) scored with a 64x64 probability map (render size 256)."""
    ab_value = np.array([20.0, -30.0], np.float32)
    ab = np.broadcast_to(ab_value, (5, 7, 2)).copy()
    probs = np.zeros((8, 8, num_bins()), np.float32)
    probs[..., int(hard_encode(ab_value))] = 1.0
    assert evaluate.bits_per_dim(probs, ab) == pytest.approx(math.log2(10), abs=1e-5)


def test_parse_spec_setting_without_value_is_a_clear_error(setup):
    with pytest.raises(SystemExit, match="temperature"):
        evaluate.parse_spec(f"{MODEL},weights={setup['ckpt']},temperature")


def test_bits_per_dim_of_a_model_with_its_own_bins():
    """eccv16 decodes with the 313 centres stored in its checkpoint, in the checkpoint's
    order; the likelihood of the truth must be read from the model's bin for that colour,
    not from the gamut bin with the same index."""
    import torch

    from models.eccv16 import ECCV16
    from models.infer import predict

    gamut = gamut_bins()
    extra = np.array([[120.0 + 10 * i, 120.0] for i in range(313 - num_bins())], np.float32)
    centres = np.concatenate([extra, gamut])  # 52 out-of-gamut bins first, then the gamut
    torch.manual_seed(0)
    model = ECCV16(num_bins=313, bins=torch.from_numpy(centres)).eval()
    target = len(extra) + int(hard_encode(np.zeros(2, np.float32)))  # the model's (0, 0) bin
    assert np.allclose(model.bin_centres.numpy()[target], 0.0, atol=1e-4)
    with torch.no_grad():
        model.model8[6].weight.zero_()
        model.model8[6].bias.fill_(-30.0)
        model.model8[6].bias[target] = 30.0  # all mass on ab = (0, 0) everywhere
    ab, probs = predict(model, np.full((1, 32, 32), 50.0, np.float32), DecodeSettings(), True)
    assert np.abs(ab).max() < 1e-3
    truth = np.zeros((32, 32, 2), np.float32)  # a gray image
    assert evaluate.bits_per_dim(probs[0], truth) == pytest.approx(math.log2(10), abs=1e-3)


# --- only real colour truth is scored; scoring in bands (issue 9) -------------------------


def _sepia(h: int, w: int) -> np.ndarray:
    """A toned photo: colour a function of brightness alone (dark brown to cream)."""
    from tests.helpers import smooth_colour_field

    gray = smooth_colour_field(h, w, seed=3).mean(-1, keepdims=True) / 255.0
    tone = np.array([1.0, 0.82, 0.62])
    return np.clip(np.rint(255 * gray**0.9 * tone + 20 * gray), 0, 255).astype(np.uint8)


def _odd_truth(folder: Path) -> dict[str, Path]:
    """A colour photo and ground truth that is no colour truth."""
    from PIL import Image

    from tests.conftest_models import save_png
    from tests.helpers import smooth_colour_field

    colour = smooth_colour_field(40, 56, seed=1)
    gray = np.repeat(colour.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    files = {
        "colour": save_png(folder / "colour.png", colour),
        "grayscale": save_png(folder / "gray_rgb.png", gray),
        "tiny": save_png(folder / "one_pixel.png", colour[:1, :1]),
        "strip": save_png(folder / "strip_3x2000.png", np.tile(colour[:3, :40], (1, 50, 1))),
    }
    Image.fromarray(gray[..., 0]).save(folder / "gray_l.png")
    files["gray_l"] = folder / "gray_l.png"
    files["sepia"] = save_png(folder / "sepia.png", _sepia(40, 56))
    return files


def test_load_truth_filters_what_is_no_colour_truth(tmp_path):
    from transforms.decode import ImageError

    files = _odd_truth(tmp_path)
    want = {"grayscale": "grayscale", "gray_l": "grayscale", "tiny": "too_small",
            "strip": "too_small", "sepia": "toned"}  # fmt: skip
    for name, outcome in want.items():
        with pytest.raises(ImageError) as e:
            evaluate.load_truth(str(files[name]), files[name].read_bytes(), None, 10**8)
        assert e.value.outcome == outcome, name
    item = evaluate.load_truth(str(files["colour"]), files["colour"].read_bytes(), None, 10**8)
    assert set(item) == {"uri", "key", "rgb", "l", "width", "height"}  # no full-size Lab
    assert item["rgb"].dtype == np.uint8 and item["l"].dtype == np.float32
    np.testing.assert_array_equal(
        item["l"], rgb_to_lab(item["rgb"].astype(np.float32) / 255.0)[..., 0]
    )


@pytest.mark.slow  # a Beam run (~10 s on a loaded machine); load_truth's test is fast
def test_evaluate_scores_only_colour_truth(setup, tmp_path):
    folder = tmp_path / "truth"
    files = _odd_truth(folder)
    out = tmp_path / "out"
    args = job_args(evaluate, [f"{folder}/*.png", str(out), "--model",
                               f"{MODEL},weights={setup['ckpt']}", "--priors", setup["priors"],
                               "--device", "cpu", "--no-report"])  # fmt: skip
    evaluate.run(args, list(BEAM_ARGS))
    rows = _rows(out)
    assert {r["source_uri"] for r in rows} == {str(files["colour"])}
    assert len(rows) == 3  # the model and both baselines
    assert all(math.isfinite(r["psnr"]) for r in rows)
    filtered = {r["uri"]: r for r in read_table(str(out / "filtered")).to_pylist()}
    assert set(filtered) == {str(p) for k, p in files.items() if k != "colour"}
    reasons = {k: filtered[str(p)] for k, p in files.items() if k != "colour"}
    assert reasons["tiny"]["outcome"] == reasons["strip"]["outcome"] == "too_small"
    assert reasons["strip"]["reason"] == "2000x3 is below --min-size 32"
    assert reasons["grayscale"]["outcome"] == reasons["gray_l"]["outcome"] == "grayscale"
    assert reasons["sepia"]["outcome"] == "toned"
    assert all(r["stage"] == "filter" and r["reason"] for r in filtered.values())
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outcomes"] == {"evaluated": 1, "too_small": 2, "grayscale": 2, "toned": 1}
    assert read_table(str(out / "errors")).num_rows == 0


def test_score_in_bands_equals_the_whole_image(setup):
    uri = str(setup["images"][0])
    item = evaluate.load_truth(uri, Path(uri).read_bytes(), None, 10**8)
    rng = np.random.default_rng(2)
    ab = rng.uniform(-60, 60, (4, 5, 2)).astype(np.float32)
    probs = rng.random((8, 8, num_bins())).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    one = evaluate.score(item, ab, "m", 0.9, _prior(), probs, pixels=10**9)
    banded = evaluate.score(item, ab, "m", 0.9, _prior(), probs, pixels=64 * 5)  # 5-row bands
    rgb = item["rgb"]
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    pred = compose(lab[..., 0], ab, 0.9)
    lab_pred = rgb_to_lab(pred.astype(np.float32) / 255.0)
    direct = image_metrics(rgb / 255.0, pred / 255.0, lab, lab_pred, _prior())
    for m in METRICS:
        assert banded[m] == pytest.approx(one[m], rel=1e-9), m
        assert banded[m] == pytest.approx(direct[m], rel=1e-6, abs=1e-9), m
    assert banded["bits_per_dim"] == pytest.approx(evaluate.bits_per_dim(probs, lab[..., 1:]))
    np.testing.assert_allclose(banded["cmf"], one["cmf"], atol=1e-12)


def _without_run_clock(summary: dict) -> dict:
    meta = {k: v for k, v in summary["meta"].items() if k not in ("date", "seconds")}
    return {**summary, "meta": meta}


def test_two_runs_give_the_same_summary_and_tables(setup, full_run, tmp_path):
    """Same inputs and options -> the same summary.json (but the run's date and duration) and
    the same metrics rows, though this run batches and schedules the images differently."""
    out = tmp_path / "again"
    args = _args(
        setup, out, "--size", "full", "--model", f"regression,weights={setup['reg']},label=reg",
        "--batch-size", "3",
    )  # fmt: skip
    evaluate.run(args, ["--direct_running_mode=multi_threading", "--direct_num_workers=2"])
    first = json.loads((full_run[0] / "summary.json").read_text())
    second = json.loads((out / "summary.json").read_text())
    assert _without_run_clock(second) == _without_run_clock(first)

    def rows(folder: Path) -> list[str]:  # as JSON text, so NaN equals NaN
        return sorted(json.dumps(r, sort_keys=True) for r in _rows(folder))

    assert rows(out) == rows(full_run[0])
    report = [(d / "report.md").read_text().splitlines() for d in (full_run[0], out)]
    differing = [a for a, b in zip(*report, strict=True) if a != b]
    assert all("UTC" in line or "seconds" in line.lower() for line in differing), differing
