"""Colour hints: sidecar parsing and validation, hint maps, simulated hints, and the hint
sidecars in `colorize` (Beam and -o modes)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest_models import BEAM_ARGS, colour_images, job_args, write_tiny_checkpoint
from transforms.colour import rgb_to_lab
from transforms.hints import (
    HintError,
    Hints,
    hint_map,
    hints_to_json,
    is_sidecar,
    parse_hints,
    seeded_rng,
    sidecar_uri,
    simulate_points,
    simulate_training_hints,
    with_hints,
)


def test_parse_good_sidecar():
    h = parse_hints(b'{"points": [[0, 0, 255, 0, 0], [99.5, 49, 0, 0, 255]], "radius": 3}', 100, 50)
    assert len(h) == 2 and h.radius == 3.0
    np.testing.assert_allclose(h.xy, [[0, 0], [99.5, 49]])
    red = rgb_to_lab(np.array([[1.0, 0.0, 0.0]], np.float32))[0, 1:]
    np.testing.assert_allclose(h.ab[0], red, atol=1e-4)
    assert h.ab[1, 1] < -50  # blue: strongly negative b


def test_parse_empty_points_and_default_radius():
    h = parse_hints('{"points": []}', 10, 10)
    assert len(h) == 0 and h.radius is None


@pytest.mark.parametrize(
    "text, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"radius": 2}', "missing 'points'"),
        ('{"points": {"x": 1}}', "must be a list"),
        ('{"points": [[1, 2, 3, 4]]}', "must be [x, y, r, g, b]"),
        ('{"points": [[1, 2, 3, 4, 5, 6]]}', "must be [x, y, r, g, b]"),
        ('{"points": [[1, 2, "red", 4, 5]]}', "finite number"),
        ('{"points": [[1, 2, true, 4, 5]]}', "finite number"),
        ('{"points": [[100, 2, 3, 4, 5]]}', "outside the 100x50 image"),
        ('{"points": [[-1, 2, 3, 4, 5]]}', "outside the 100x50 image"),
        ('{"points": [[1, 50, 3, 4, 5]]}', "outside the 100x50 image"),
        ('{"points": [[1, 2, 3, 256, 5]]}', "outside 0-255"),
        ('{"points": [[1, 2, -3, 4, 5]]}', "outside 0-255"),
        ('{"points": [], "radius": -1}', "radius must be >= 0"),
        ('{"points": [], "radius": "big"}', "finite number"),
        ('{"points": [], "radious": 2}', "unknown keys"),
    ],
)
def test_parse_malformed_sidecars(text, reason):
    with pytest.raises(HintError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_hints(text, 100, 50)


def test_sidecar_names():
    assert sidecar_uri("a/b/photo.png") == "a/b/photo.hints.json"
    assert sidecar_uri("a/b/photo.png", "hints/", "b/photo.png") == "hints/b/photo.hints.json"
    assert is_sidecar("x/photo.hints.json") and not is_sidecar("x/photo.json")


def test_hint_map_places_a_square_at_model_resolution():
    h = Hints(np.array([[40.0, 10.0]], np.float32), np.array([[20.0, -30.0]], np.float32), 2.0)
    m = hint_map(h, 80, 40, 80, 40)  # same resolution: the 5x5 square around (40, 10)
    ys, xs = np.nonzero(m[..., 2])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 12, 38, 42)
    np.testing.assert_allclose(m[10, 40, :2], [20, -30])
    assert m[..., :2][m[..., 2] == 0].max() == 0
    small = hint_map(h, 80, 40, 20, 20)  # x / 4, y / 2: still covers the centre pixel
    ys, xs = np.nonzero(small[..., 2])
    assert 10 in xs and 5 in ys and small[5, 10, 2] == 1
    default = Hints(h.xy, h.ab, None)  # default: 5x5 at the output resolution
    assert hint_map(default, 80, 40, 20, 20)[..., 2].sum() == 25


def test_hint_map_corner_point_is_clipped_into_the_image():
    h = Hints(np.array([[0.0, 0.0]], np.float32), np.array([[5.0, 5.0]], np.float32), 3.0)
    m = hint_map(h, 10, 10, 10, 10)
    assert m[..., 2].sum() == 16 and m[0, 0, 2] == 1


def test_with_hints_stacks_l_and_map():
    l = np.full((16, 16), 50, np.float32)
    h = Hints(np.array([[5.0, 5.0]], np.float32), np.array([[10.0, 10.0]], np.float32), 0.0)
    x = with_hints(l, h, 32, 32)
    assert x.shape == (16, 16, 4) and x[..., 3].sum() >= 1
    assert with_hints(l, None, 32, 32) is l


def test_json_round_trip_keeps_ab():
    h = Hints(np.array([[3.0, 4.0]], np.float32), np.array([[30.0, -20.0]], np.float32), 1.5)
    back = parse_hints(hints_to_json(h), 10, 10)
    np.testing.assert_allclose(back.ab, h.ab, atol=1.5)
    assert back.radius == 1.5


def _ab(h=64, w=64, seed=0):
    return np.random.default_rng(seed).uniform(-60, 60, (h, w, 2)).astype(np.float32)


def test_simulated_points_are_seeded_reproducible_and_patch_means():
    ab = _ab()
    a = simulate_points(ab, 10, seeded_rng("img", 0), 6)
    b = simulate_points(ab, 10, seeded_rng("img", 0), 6)
    c = simulate_points(ab, 10, seeded_rng("img", 1), 6)
    np.testing.assert_array_equal(a.xy, b.xy)
    assert not np.array_equal(a.xy, c.xy)
    x0, y0 = (a.xy[0] - 2.5).astype(int)
    np.testing.assert_allclose(
        a.ab[0], ab[y0 : y0 + 6, x0 : x0 + 6].reshape(-1, 2).mean(0), rtol=1e-5
    )
    m = hint_map(a.head(1), 64, 64, 64, 64)
    assert m[..., 2].sum() == 36  # the radius reproduces the 6x6 patch


def test_training_hints_follow_zhang():
    ab = _ab(32, 32)
    maps = [simulate_training_hints(ab, np.random.default_rng(i)) for i in range(400)]
    none = np.mean([m[..., 2].sum() == 0 for m in maps])
    assert 0.07 < none < 0.19  # geometric with p = 1/8: P(no point) = 1/8
    again = simulate_training_hints(ab, np.random.default_rng(3))
    np.testing.assert_array_equal(again, maps[3])
    m = maps[int(np.argmax([m[..., 2].sum() for m in maps]))]
    assert set(np.unique(m[..., 2])) == {0.0, 1.0}


# ---- colorize with sidecars -------------------------------------------------------------


@pytest.fixture(scope="module")
def guided_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("guided") / "guided.pt"
    write_tiny_checkpoint(path, "siggraph17-small")
    return str(path)


def _colorize(argv):
    from pipeline import colorize

    args = job_args(colorize, argv)
    colorize.run(args, list(BEAM_ARGS))


def test_colorize_beam_with_sidecars(tmp_path, guided_ckpt):
    src = tmp_path / "in"
    imgs = colour_images(src, 3, 24, 32)
    (src / "img_00.hints.json").write_text(json.dumps({"points": [[5, 5, 255, 0, 0]]}))
    (src / "img_01.hints.json").write_text('{"points": [[500, 5, 255, 0, 0]]}')  # malformed
    out = tmp_path / "out"
    _colorize([str(src / "*"), str(out), "--model", "siggraph17-small", "--weights", guided_ckpt])
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["img_00.png", "img_02.png"]  # no output for the sidecars themselves
    errors = pq.read_table(out / "errors").to_pylist()
    assert [(r["uri"].endswith("img_01.png"), r["outcome"]) for r in errors] == [
        (True, "bad_hints")
    ]
    assert "outside the 32x24 image" in errors[0]["reason"]
    hints = {
        r["source_uri"].rsplit("/", 1)[1]: r["hints"]
        for r in pq.read_table(out / "results").to_pylist()
    }
    assert hints == {"img_00.png": 1, "img_02.png": 0}
    assert imgs  # inputs existed
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outcomes"] == {"bad_hints": 1, "colorized": 2}
    assert stats["total"] == 3  # the sidecars are not inputs


def test_skip_existing_redoes_an_output_whose_sidecar_changed(tmp_path, guided_ckpt):
    src = tmp_path / "in"
    colour_images(src, 2, 24, 32)
    sidecar = src / "img_00.hints.json"
    sidecar.write_text(json.dumps({"points": [[5, 5, 255, 0, 0]]}))
    out = tmp_path / "out"
    argv = [str(src / "*"), str(out), "--model", "siggraph17-small", "--weights", guided_ckpt]
    _colorize(argv)
    _colorize(argv + ["--skip-existing"])
    assert json.loads((out / "stats.json").read_text())["resumed"] == 2  # nothing changed
    sidecar.write_text(json.dumps({"points": [[5, 5, 0, 0, 255], [20, 10, 0, 255, 0]]}))
    (src / "img_01.hints.json").write_text(json.dumps({"points": [[1, 1, 9, 9, 9]]}))  # new
    _colorize(argv + ["--skip-existing"])
    assert json.loads((out / "stats.json").read_text())["resumed"] == 0
    hints = {
        r["source_uri"].rsplit("/", 1)[1]: r["hints"]
        for r in pq.read_table(out / "results").to_pylist()
    }
    assert hints == {"img_00.png": 2, "img_01.png": 1}


def test_colorize_no_hints_ignores_malformed_sidecars(tmp_path, guided_ckpt):
    src = tmp_path / "in"
    colour_images(src, 1, 24, 32)
    (src / "img_00.hints.json").write_text("{broken")
    out = tmp_path / "out"
    argv = [str(src / "*.png"), str(out), "--model", "siggraph17-small", "--weights", guided_ckpt]
    _colorize(argv + ["--no-hints"])
    assert (out / "img_00.png").exists()


def test_model_without_hints_never_reads_sidecars(tmp_path, caplog):
    """A stray or malformed sidecar costs a model that takes no hints no output (batch and -o):
    the sidecar is ignored with a warning, not parsed."""
    ckpt = tmp_path / "plain.pt"
    write_tiny_checkpoint(ckpt, "eccv16-small")
    src = tmp_path / "in"
    (img,) = colour_images(src, 1, 24, 32)
    (src / "img_00.hints.json").write_text('{"points": [[500, 5, 255, 0, 0]')  # broken JSON
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        _colorize([str(src / "*"), str(out), "--model", "eccv16-small", "--weights", str(ckpt)])
        _colorize([str(img), "-o", str(tmp_path / "one.png"), "--weights", str(ckpt)])
    assert (out / "img_00.png").exists() and (tmp_path / "one.png").exists()
    assert not pq.read_table(out / "errors").num_rows
    assert "hints sidecar ignored: model eccv16-small takes no hints" in caplog.text


def test_hints_option_mistakes_are_usage_errors(tmp_path, guided_ckpt):
    from pipeline import checks

    src = tmp_path / "in"
    (img,) = colour_images(src, 1, 24, 32)
    base = ["--model", "siggraph17-small", "--weights", guided_ckpt]
    cases = [
        ([str(img), "-o", str(tmp_path / "a.png"), "--hints", "gone.json"],
         "--hints gone.json: no such file or folder"),
        ([str(src / "*"), str(tmp_path / "o"), "--hints", str(tmp_path / "nodir")],
         f"--hints {tmp_path / 'nodir'}: no such file or folder"),
        ([str(src / "*"), str(tmp_path / "o"), "--hints", str(img)],
         "a batch run takes a folder of sidecars"),
        ([str(img), "-o", str(tmp_path / "a.png"), "--hints", str(src), "--no-hints"],
         "--hints and --no-hints contradict each other"),
    ]  # fmt: skip
    for argv, message in cases:
        with pytest.raises(checks.UsageError, match=message):
            _colorize(argv + base)
    (src / "img_00.hints.json").mkdir()  # a folder where the sidecar should be
    with pytest.raises(checks.JobFailed, match="no input was colorized .1 bad_hints"):
        _colorize([str(src / "*.png"), str(tmp_path / "out"), *base])
    (row,) = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert row["outcome"] == "bad_hints" and "a folder, not a hints file" in row["reason"]


def test_colorize_single_image_hints_change_the_output(tmp_path, guided_ckpt):
    src = tmp_path / "in"
    (img,) = colour_images(src, 1, 24, 32)
    hints_dir = tmp_path / "hints"
    hints_dir.mkdir()
    pts = [[x, y, 0, 255, 0] for x in range(2, 32, 6) for y in range(2, 24, 6)]
    (hints_dir / "img_00.hints.json").write_text(json.dumps({"points": pts, "radius": 2}))
    base = ["--model", "siggraph17-small", "--weights", guided_ckpt]
    from PIL import Image

    _colorize([str(img), "-o", str(tmp_path / "plain.png"), *base])
    _colorize([str(img), "-o", str(tmp_path / "dir.png"), "--hints", str(hints_dir), *base])
    _colorize(
        [
            str(img),
            "-o",
            str(tmp_path / "file.png"),
            "--hints",
            str(hints_dir / "img_00.hints.json"),
            *base,
        ]
    )
    plain, by_dir, by_file = (
        np.asarray(Image.open(tmp_path / f"{n}.png")).astype(int) for n in ("plain", "dir", "file")
    )
    assert np.abs(plain - by_dir).max() > 0
    np.testing.assert_array_equal(by_dir, by_file)
    (hints_dir / "img_00.hints.json").write_text('{"points": [[1, 2]]}')
    from pipeline.checks import JobFailed

    with pytest.raises(JobFailed, match="must be"):
        _colorize([str(img), "-o", str(tmp_path / "bad.png"), "--hints", str(hints_dir), *base])
