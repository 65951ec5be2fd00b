"""`chromabeam colorize` end to end on a folder of awkward inputs, plus compose()."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline import checks, colorize
from tests.conftest_models import BEAM_ARGS, job_args, one_thread, write_tiny_checkpoint
from tests.helpers import (
    capture_pipelines,
    encode,
    gray_photo,
    smooth_colour_field,
    transform_nodes,
    upstream_of,
)
from transforms import schema
from transforms.colour import lab_in_gamut, lab_to_rgb, rgb_to_lab
from transforms.compose import GAMUT_STEPS, compose, fit_into_gamut, luminance
from transforms.decode import ImageError, decode_image
from transforms.fileio import read_table

# relative path -> (width, height) of the colorized output
GOOD = {
    "gray_a.jpg": (48, 33),
    "sub/gray_b.jpg": (40, 27),
    "sub/deeper/colour.png": (36, 30),
    "sub/gray16.png": (30, 20),
    "rgba.png": (24, 24),
    "sub/palette.gif": (32, 16),
    "rotated.jpg": (30, 44),  # stored 44x30 with EXIF orientation 6
}
BAD = {  # relative path -> outcome
    "bad/empty.jpg": "empty",
    "bad/truncated.jpg": "truncated",
    "bad/notes.png": "undecodable",
}


def _gray(w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(gray_photo(64)).resize((w, h), Image.Resampling.BILINEAR))


def _make_inputs(root: Path) -> None:
    files: dict[str, bytes] = {}
    files["gray_a.jpg"] = encode(Image.fromarray(_gray(48, 33), "L"), "JPEG", quality=90)
    files["sub/gray_b.jpg"] = encode(Image.fromarray(_gray(40, 27), "L"), "JPEG", quality=90)
    files["sub/deeper/colour.png"] = encode(Image.fromarray(smooth_colour_field(30, 36)), "PNG")
    g16 = (_gray(30, 20).astype(np.uint16) * 257 + np.arange(20)[:, None]).astype(np.uint16)
    files["sub/gray16.png"] = encode(Image.fromarray(g16), "PNG")
    rgba = np.dstack(
        [
            smooth_colour_field(24, 24, seed=2),
            np.linspace(0, 255, 24 * 24).reshape(24, 24).astype(np.uint8),
        ]
    )
    files["rgba.png"] = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    pal = Image.fromarray(smooth_colour_field(16, 32, seed=3)).convert("P", palette=Image.ADAPTIVE)
    files["sub/palette.gif"] = encode(pal, "GIF")
    exif = Image.Exif()
    exif[0x0112] = 6
    files["rotated.jpg"] = encode(Image.fromarray(_gray(44, 30), "L"), "JPEG", exif=exif.tobytes())
    files["bad/empty.jpg"] = b""
    files["bad/truncated.jpg"] = files["gray_a.jpg"][: len(files["gray_a.jpg"]) // 2]
    files["bad/notes.png"] = b"these are my notes, not a picture\n" * 10
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path, "eccv16-small", seed=7)
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    _make_inputs(root)
    return root


def _run(in_dir: Path, out_dir: Path, ckpt: str, *extra: str, beam_args=None) -> None:
    args = job_args(
        colorize, [f"{in_dir}/**", str(out_dir), "--weights", ckpt, "--device", "cpu", *extra]
    )
    colorize.run(args, list(beam_args or BEAM_ARGS))


def _out(rel: str, ext: str = ".png") -> str:
    return os.path.splitext(rel)[0] + ext


@pytest.fixture(scope="module")
def first_run(inputs, ckpt, tmp_path_factory) -> Path:
    one_thread()
    out = tmp_path_factory.mktemp("colorized")
    _run(inputs, out, ckpt)
    return out


def test_stats_json_waits_for_the_results_table(inputs, ckpt, tmp_path, monkeypatch):
    pipelines = capture_pipelines(monkeypatch)
    _run(inputs, tmp_path / "out", ckpt)
    waits_for = upstream_of(pipelines[0], "WriteStats")
    assert {"Results/Write", "Accounting/Writeerrors/Write"} <= waits_for, waits_for


def test_outputs_at_relative_paths_with_original_size(first_run):
    written = sorted(
        str(p.relative_to(first_run))
        for p in first_run.rglob("*.png")
        if p.relative_to(first_run).parts[0] not in ("results", "errors", "filtered")
    )
    assert written == sorted(_out(r) for r in GOOD)
    for rel, size in GOOD.items():
        with Image.open(first_run / _out(rel)) as img:
            assert img.format == "PNG" and img.mode == "RGB"
            assert img.size == size, rel  # raw pixel size: already upright
            orientation = img.getexif().get(0x0112, 1)
            assert orientation == 1, rel


def test_outputs_are_coloured(first_run):
    rgb = np.asarray(Image.open(first_run / _out("gray_a.jpg")).convert("RGB")).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 2  # not a gray image


def test_luminance_is_preserved(first_run, inputs):
    for rel in GOOD:
        l_in = luminance(decode_image((inputs / rel).read_bytes()).rgb)
        l_out = luminance(decode_image((first_run / _out(rel)).read_bytes()).rgb)
        assert l_out.shape == l_in.shape, rel
        assert np.abs(l_out - l_in).max() <= 1.0, rel


def test_results_table(first_run, inputs, ckpt):
    table = read_table(str(first_run / "results"))
    assert table.schema.equals(schema.COLORIZE_SCHEMA, check_metadata=False)
    rows = {r["source_uri"]: r for r in table.to_pylist()}
    assert len(table) == len(GOOD) == len(rows)
    for rel, (w, h) in GOOD.items():
        r = rows[str(inputs / rel)]
        assert r["output_uri"] == str(first_run / _out(rel))
        assert (r["width"], r["height"]) == (w, h)
        assert r["model"] == "eccv16-small" and r["render_size"] == 32
        assert r["temperature"] == pytest.approx(0.38) and r["strength"] == 1.0
        assert len(r["weights_sha256"]) == 64 and len(r["key"]) == 16
        assert r["mean_chroma"] >= 0 and r["colorfulness"] >= 0 and r["seconds"] >= 0
    for f in (first_run / "results").glob("*.parquet"):
        assert pq.read_metadata(f).num_rows > 0  # no empty shards


def test_errors_table_lists_the_bad_files(first_run, inputs):
    rows = read_table(str(first_run / "errors")).to_pylist()
    got = {r["uri"]: r for r in rows}
    assert set(got) == {str(inputs / rel) for rel in BAD}
    for rel, outcome in BAD.items():
        r = got[str(inputs / rel)]
        assert r["outcome"] == outcome and r["stage"] == "decode" and r["reason"], r
    assert read_table(str(first_run / "filtered")).num_rows == 0


def test_stats(first_run):
    stats = json.loads((first_run / "stats.json").read_text())
    assert stats["job"] == "colorize"
    assert stats["total"] == len(GOOD) + len(BAD)
    expected = {"colorized": len(GOOD)}
    for outcome in BAD.values():
        expected[outcome] = expected.get(outcome, 0) + 1
    assert stats["outcomes"] == expected
    assert stats["settings"]["render_size"] == 32 and stats["settings"]["format"] == "png"


def test_skip_existing_rewrites_nothing(first_run, inputs, ckpt):
    mtimes = {rel: os.stat(first_run / _out(rel)).st_mtime_ns for rel in GOOD}
    before = json.loads((first_run / "stats.json").read_text())
    rows_before = read_table(str(first_run / "results")).to_pylist()
    _run(inputs, first_run, ckpt, "--skip-existing")
    assert {rel: os.stat(first_run / _out(rel)).st_mtime_ns for rel in GOOD} == mtimes
    stats = json.loads((first_run / "stats.json").read_text())
    # a resumed run accounts for every input as the clean run did (issue 9)
    assert stats["outcomes"] == before["outcomes"]
    assert stats["resumed"] == len(GOOD) and before["resumed"] == 0
    assert stats["total"] == len(GOOD) + len(BAD)
    assert read_table(str(first_run / "filtered")).num_rows == 0
    # results/ is rebuilt: the earlier rows, recovered from the finished markers, once each
    rows = read_table(str(first_run / "results")).to_pylist()
    key = lambda r: r["output_uri"]  # noqa: E731
    assert sorted(rows, key=key) == sorted(rows_before, key=key)


def test_format_jpeg(inputs, ckpt, tmp_path):
    _run(inputs, tmp_path, ckpt, "--format", "jpeg", "--strength", "0.5", "--decode", "mode")
    for rel, size in GOOD.items():
        p = tmp_path / _out(rel, ".jpg")
        assert p.is_file() and not (tmp_path / _out(rel)).exists(), rel
        with Image.open(p) as img:
            assert img.format == "JPEG" and img.size == size
    rows = read_table(str(tmp_path / "results")).to_pylist()
    assert {r["strength"] for r in rows} == {0.5}
    assert all(r["output_uri"].endswith(".jpg") for r in rows)


def test_single_image_mode(inputs, ckpt, tmp_path):
    out = tmp_path / "nested" / "photo_colour.png"
    args = job_args(
        colorize,
        [str(inputs / "rotated.jpg"), "-o", str(out), "--weights", ckpt, "--device", "cpu"],
    )
    colorize.run(args, [])
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == GOOD["rotated.jpg"]
    l_in = luminance(decode_image((inputs / "rotated.jpg").read_bytes()).rgb)
    l_out = luminance(decode_image(out.read_bytes()).rgb)
    assert np.abs(l_out - l_in).max() <= 1.0
    jpg = tmp_path / "photo.jpg"
    colorize.run(
        job_args(colorize, [str(inputs / "gray_a.jpg"), "-o", str(jpg), "--weights", ckpt]), []
    )
    assert Image.open(jpg).format == "JPEG"
    with pytest.raises(SystemExit):
        colorize.run(
            job_args(
                colorize,
                [
                    str(inputs / "gray_a.jpg"),
                    str(inputs / "rgba.png"),
                    "-o",
                    str(out),
                    "--weights",
                    ckpt,
                ],
            ),
            [],
        )


def test_single_image_mode_refuses_its_input_and_unknown_extensions(inputs, ckpt, tmp_path):
    src = tmp_path / "photo.jpg"
    src.write_bytes((inputs / "gray_a.jpg").read_bytes())
    before = src.read_bytes()
    for out in (src, tmp_path / "sub" / ".." / "photo.jpg"):
        with pytest.raises(SystemExit, match="would overwrite the input"):
            colorize.run(job_args(colorize, [str(src), "-o", str(out), "--weights", ckpt]), [])
    assert src.read_bytes() == before
    with pytest.raises(SystemExit, match=r"cannot write \.tif images \(use \.png, \.jpeg"):
        colorize.run(
            job_args(colorize, [str(src), "-o", str(tmp_path / "a.tif"), "--weights", ckpt]), []
        )


def test_non_finite_prediction_is_an_error_not_a_black_image(inputs, ckpt, tmp_path):
    args = job_args(colorize, [str(inputs / "gray_a.jpg"), "-o", "x.png", "--weights", ckpt])
    cfg = colorize.config_from_args(args, [str(inputs / "gray_a.jpg")], str(tmp_path))
    item = colorize.prepare(str(inputs / "gray_a.jpg"), (inputs / "gray_a.jpg").read_bytes(), cfg)
    ab = np.zeros((8, 8, 2), np.float32)
    ab[3, 3, 0] = np.nan
    with pytest.raises(ImageError, match="NaN or infinite") as e:
        colorize.finish(item, ab, cfg)
    assert e.value.outcome == schema.MODEL_FAILED
    assert not list(tmp_path.glob("*.png"))


def test_a_run_where_nothing_comes_out_fails_with_its_reasons(inputs, ckpt, tmp_path):
    with pytest.raises(checks.JobFailed, match=r"^no input was colorized \(1 empty, 1 trunc"):
        _run(inputs / "bad", tmp_path / "out", ckpt)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["total"] == 3 and "colorized" not in stats["outcomes"]
    assert read_table(str(tmp_path / "out" / "errors")).num_rows == 3
    results = read_table(str(tmp_path / "out" / "results"))  # a table readers find: empty,
    assert results.num_rows == 0 and results.schema.equals(schema.COLORIZE_SCHEMA)
    empty = tmp_path / "out" / "results" / "part-empty.parquet"  # ... before stats.json
    assert empty.stat().st_mtime_ns <= (tmp_path / "out" / "stats.json").stat().st_mtime_ns


def test_model_failures_are_counted_with_a_one_line_reason(inputs, ckpt, tmp_path, monkeypatch):
    from models.handler import ColorizerHandler

    def boom(self, batch, model, inference_args=None):
        raise RuntimeError("boom\non two lines")

    monkeypatch.setattr(ColorizerHandler, "run_inference", boom)
    message = r"no input was colorized \(1 empty, 7 model_failed, 1 trun"
    with pytest.raises(checks.JobFailed, match=message):
        _run(inputs, tmp_path / "out", ckpt)  # 7 good inputs fail in the model, 3 bad in decode
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["total"] == len(GOOD) + len(BAD)
    assert stats["outcomes"]["model_failed"] == len(GOOD)
    rows = [r for r in read_table(str(tmp_path / "out" / "errors")).to_pylist()]
    failed = [r for r in rows if r["outcome"] == "model_failed"]
    assert len(failed) == len(GOOD)
    assert {r["reason"] for r in failed} == {"RuntimeError: boom on two lines"}


def test_inputs_inside_the_output_or_another_jobs_folder_are_refused(inputs, ckpt, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "a.jpg").write_bytes((inputs / "gray_a.jpg").read_bytes())
    with pytest.raises(SystemExit, match="all 1 files matched are inside the output folder"):
        _run(out, out, ckpt)
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "stats.json").write_text('{"job": "encode", "total": 1}')
    with pytest.raises(SystemExit, match=r"holds the results of an encode run"):
        _run(out, tmp_path / "enc", ckpt)
    assert json.loads((tmp_path / "enc" / "stats.json").read_text())["job"] == "encode"


def test_results_name_outputs_by_absolute_paths(inputs, ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = job_args(colorize, [str(inputs / "gray_a.jpg"), "out", "--weights", ckpt])
    colorize.run(args, list(BEAM_ARGS))
    (row,) = read_table(str(tmp_path / "out" / "results")).to_pylist()
    assert row["output_uri"] == str(tmp_path / "out" / "gray_a.png")


def test_needs_an_output_folder(ckpt, inputs):
    with pytest.raises(SystemExit, match="OUTPUT_DIR"):
        colorize.run(job_args(colorize, [str(inputs / "gray_a.jpg"), "--weights", ckpt]), [])


def test_folder_input_names_outputs_relative_to_the_folder(inputs, ckpt, tmp_path):
    """`colorize scans out` and `colorize scans/ out` should write out/<path under scans>."""
    args = job_args(colorize, [str(inputs), str(tmp_path), "--weights", ckpt])
    cfg = colorize.config_from_args(args, [str(inputs)], str(tmp_path))
    uri = str(inputs / "sub" / "gray_b.jpg")
    assert colorize.output_uri(uri, cfg) == str(tmp_path / "sub" / "gray_b.png")


def test_glob_base():
    assert colorize.glob_base("scans/**/*.tif") == "scans"
    assert colorize.glob_base("gs://b/x/*.jpg") == "gs://b/x"
    assert colorize.glob_base("scans/") == "scans"
    assert colorize.glob_base("scans/a.jpg") == "scans"


# --- compose -----------------------------------------------------------------------------


def test_saturated_ab_on_dark_l_stays_in_gamut_with_l_preserved():
    l = np.full((6, 8), 12.0, np.float32)
    l[:, 4:] = 85.0
    ab = np.zeros((2, 2, 2), np.float32)
    ab[..., 0], ab[..., 1] = 110.0, -110.0  # far outside sRGB at any L
    lab = np.concatenate([l[..., None], np.full((6, 8, 2), 0, np.float32)], -1)
    lab[..., 1], lab[..., 2] = 110.0, -110.0
    assert not lab_in_gamut(lab.reshape(-1, 3)).any()
    fitted = fit_into_gamut(lab)
    assert lab_in_gamut(fitted.reshape(-1, 3), tol=1e-4).all()
    np.testing.assert_array_equal(fitted[..., 0], lab[..., 0])  # L fixed
    # only pulled toward gray along the same hue, and not all the way
    ratio = fitted[..., 1] / lab[..., 1]
    np.testing.assert_allclose(fitted[..., 2] / lab[..., 2], ratio, rtol=1e-5)
    assert (ratio > 0.05).all() and (ratio < 1).all()
    # (nearly) the largest in-gamut chroma: a little more leaves the gamut
    more = lab.copy()
    more[..., 1:] *= (ratio + 2.0 ** -(GAMUT_STEPS - 1))[..., None]  # bisection precision
    assert not lab_in_gamut(more.reshape(-1, 3), tol=1e-4).any()
    rgb = compose(l, ab)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 8, 3)
    assert np.abs(luminance(rgb) - l).max() <= 1.0
    assert np.abs(rgb[..., 0].astype(int) - rgb[..., 1]).max() > 20  # still colourful


@pytest.mark.parametrize("scale", [1e3, 1e9])
def test_a_huge_strength_gives_the_gamuts_edge_not_gray(scale):
    """ab scaled far beyond sRGB (colorize --strength 1e9) is fitted to the most saturated
    in-gamut colour of its hue, as a moderate excess is (bisection from MAX_CHROMA)."""
    lab = rgb_to_lab(smooth_colour_field(8, 8, seed=5).astype(np.float32) / 255.0)
    far = lab.copy()
    far[..., 1:] *= scale
    fitted = fit_into_gamut(far)
    assert lab_in_gamut(fitted.reshape(-1, 3), tol=1e-4).all()
    np.testing.assert_allclose(  # the same hue
        np.arctan2(fitted[..., 2], fitted[..., 1]), np.arctan2(lab[..., 2], lab[..., 1]), atol=1e-3
    )
    more = fitted.copy()
    more[..., 1:] *= 1.05  # (nearly) the edge: a little more chroma leaves the gamut
    assert not lab_in_gamut(more.reshape(-1, 3), tol=1e-4).any()
    assert np.hypot(fitted[..., 1], fitted[..., 2]).mean() > 20


def test_in_gamut_colours_are_untouched():
    lab = rgb_to_lab(smooth_colour_field(8, 8, seed=5).astype(np.float32) / 255.0)
    np.testing.assert_array_equal(fit_into_gamut(lab), lab)


def test_strength_zero_gives_gray():
    l = np.linspace(0, 100, 7 * 9, dtype=np.float32).reshape(7, 9)
    ab = np.random.default_rng(0).uniform(-60, 60, (3, 3, 2)).astype(np.float32)
    rgb = compose(l, ab, strength=0.0).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 1
    assert np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 1
    assert np.abs(luminance(rgb.astype(np.uint8)) - l).max() <= 1.0
    gray = np.clip(
        np.rint(lab_to_rgb(np.dstack([l, np.zeros_like(l), np.zeros_like(l)])) * 255), 0, 255
    )
    np.testing.assert_array_equal(rgb, gray.astype(int))


def test_compose_upsamples_to_the_full_size():
    rgb = compose(np.full((31, 17), 50.0, np.float32), np.full((4, 4, 2), 20.0, np.float32))
    assert rgb.shape == (31, 17, 3)
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    assert np.abs(lab[..., 1:] - 20.0).max() < 1.5


@pytest.mark.slow
@pytest.mark.parametrize(
    "shared", [(), ("--share-model",), ("--share-model", "--model-copies", "2")]
)
def test_multi_processing_gives_the_same_outputs(
    first_run, inputs, ckpt, tmp_path, shared, monkeypatch
):
    """Two worker processes, each with its own model or (--share-model) calling one served by
    Beam's multi_process_shared (--model-copies: that many), give the in-process run's images."""
    from apache_beam.ml.inference.base import RunInference

    pipelines = capture_pipelines(monkeypatch)
    _run(
        inputs,
        tmp_path,
        ckpt,
        *shared,
        beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )
    for rel in GOOD:
        a = np.asarray(Image.open(first_run / _out(rel)))
        b = np.asarray(Image.open(tmp_path / _out(rel)))
        np.testing.assert_array_equal(a, b, err_msg=rel)
    (handler,) = [  # the job's RunInference's (keyed) handler
        node.transform._model_handler
        for node in transform_nodes(pipelines[-1], composites=True)
        if isinstance(node.transform, RunInference)
    ]
    assert handler.share_model_across_processes() == bool(shared)
    assert handler.model_copies() == (2 if "--model-copies" in shared else 1)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["outcomes"]["colorized"] == len(GOOD)
    assert read_table(str(tmp_path / "results")).num_rows == len(GOOD)
    assert read_table(str(tmp_path / "errors")).num_rows == len(BAD)
