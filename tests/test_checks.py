"""pipeline.checks: option validators and the fail-fast checks (no Beam pipeline runs here)."""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import checks
from tests.conftest_models import write_tiny_checkpoint
from transforms import schema
from transforms.compose import encode_image, luminance
from transforms.decode import decode_image
from transforms.fileio import write_table


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (checks.finite_float, ["-1.5", "0", "1e3"], ["nan", "inf", "-inf", "x", ""]),
        (checks.positive_float, ["1e-6", "3"], ["0", "-1", "nan"]),
        (checks.non_negative_float, ["0", "2.5"], ["-0.1", "nan"]),
        (checks.positive_int, ["1", "64"], ["0", "-1", "1.5", "nan"]),
        (checks.non_negative_int, ["0", "7"], ["-1", "x"]),
        (checks.percent, ["0", "10", "100"], ["-1", "150", "nan"]),
        (checks.probability, ["0", "0.5", "1"], ["1.01", "-0.1"]),
        (checks.quality, ["1", "95", "100"], ["0", "500", "95.5"]),
        (checks.temperature, ["0.01", "0.38", "1", "10"], ["0", "-0.38", "nan", "inf"]),
        (checks.strength, ["0", "0.35", "2"], ["-1", "nan"]),
        (checks.render_size, ["16", "128", "256"], ["0", "8", "100", "-256", "5000"]),
        (checks.crop_size, ["8", "224"], ["0", "-5", "7"]),
        (checks.eval_size, ["full", "FULL", "256"], ["0", "3", "big"]),
        (checks.device_name, ["auto", "cpu", "cuda", "cuda:1", "mps"], ["gpu", "cuda:x", ""]),
    ],
)
def test_validators_accept_the_range_and_name_it_when_refusing(kind, good, bad):
    for text in good:
        kind(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError) as e:
            kind(text)
        assert kind.range_text in str(e.value) and repr(text) in str(e.value)


def test_validator_values_and_range_texts():
    assert checks.percent("12.5") == 12.5 and isinstance(checks.positive_int("3"), int)
    assert checks.eval_size("Full") == "full" and checks.eval_size("64") == "64"
    assert checks.percent.range_text == "a number from 0 to 100"
    assert checks.temperature.range_text == "a number > 0"
    assert checks.render_size.range_text == "an integer from 16 to 4096 and a multiple of 8"


def test_check_value_names_the_setting():
    assert checks.check_value("--model m: strength", "0.5", checks.strength) == 0.5
    with pytest.raises(checks.UsageError, match=r"--model m: strength: expected a number >= 0"):
        checks.check_value("--model m: strength", "nan", checks.strength)


def test_match_inputs(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    patterns, total = checks.match_inputs([str(tmp_path / "*.png"), str(tmp_path / "*.tif")])
    assert patterns == [str(tmp_path / "*.png")] and total == 2
    with pytest.raises(checks.UsageError, match=r"no input matches '.*\*\.tif'.*--allow-empty"):
        checks.match_inputs([str(tmp_path / "*.tif")])
    assert checks.match_inputs([str(tmp_path / "*.tif")], allow_empty=True) == ([], 0)
    # a file matched twice is one input, and hints sidecars are none
    (tmp_path / "a.hints.json").write_text("{}")
    both = [str(tmp_path / "*"), str(tmp_path / "a.*")]
    assert checks.match_inputs(both) == (both, 2)
    with pytest.raises(checks.UsageError, match="no input matches"):
        checks.match_inputs([str(tmp_path / "*.json")])


def test_check_output_dir(tmp_path):
    checks.check_output_dir(str(tmp_path / "new" / "dir"))  # made
    assert (tmp_path / "new" / "dir").is_dir()
    assert list((tmp_path / "new" / "dir").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(checks.UsageError, match=r"is a file, not a folder"):
        checks.check_output_dir(str(tmp_path / "file"))
    with pytest.raises(checks.UsageError, match=r"is not writable"):
        checks.check_output_dir(str(tmp_path / "file" / "sub"))
    checks.check_output_dir("memory://chromabeam-check-test/out")
    with pytest.raises(checks.UsageError, match="is a folder, not a file"):
        checks.check_output_file(str(tmp_path / "new"))
    checks.check_output_file(str(tmp_path / "new" / "x.png"))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    write_tiny_checkpoint(path, "eccv16-small")
    return str(path)


def test_check_weights(tmp_path, tiny_ckpt):
    obj, sha = checks.check_weights("eccv16-small", tiny_ckpt)  # {"config", "state_dict"}
    assert obj["config"]["name"] == "eccv16-small"  # what it read, for describe / load_model
    assert sha == hashlib.sha256(Path(tiny_ckpt).read_bytes()).hexdigest()
    checks.check_weights(None, None)  # the shipped default
    with pytest.raises(checks.UsageError, match=r"^--weights .*missing.pt: no such file$"):
        checks.check_weights("eccv16-small", str(tmp_path / "missing.pt"))
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes\n")
    with pytest.raises(checks.UsageError) as e:
        checks.check_weights("eccv16-small", str(notes))
    msg = str(e.value)
    assert "notes.txt: not a checkpoint (not a torch file" in msg
    assert 'expected a torch checkpoint {"config", "state_dict"} or a state dict of model' in msg
    torch.save({"a": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(
        checks.UsageError, match=r"not a state dict of model eccv16-small: \d+ miss"
    ):
        checks.check_weights("eccv16-small", str(tmp_path / "other.pt"))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(checks.UsageError, match="holds a list"):
        checks.check_weights("eccv16-small", str(tmp_path / "list.pt"))
    with pytest.raises(checks.UsageError, match=r"^--model x: no such file$"):
        checks.check_weights("eccv16-small", str(tmp_path / "missing.pt"), "--model x")


def test_check_weights_refuses_another_model_a_bad_config_and_nan(tmp_path, tiny_ckpt):
    with pytest.raises(checks.UsageError, match=r"a checkpoint of model eccv16-small, not regr"):
        checks.check_weights("regression", tiny_ckpt)  # asked for one model, given another
    ck = torch.load(tiny_ckpt, weights_only=False)
    torch.save({**ck, "config": "eccv16-small"}, tmp_path / "cfg.pt")
    with pytest.raises(checks.UsageError, match="its config is not a dict naming the model"):
        checks.check_weights(None, str(tmp_path / "cfg.pt"))
    state = dict(ck["state_dict"])
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save({**ck, "state_dict": state}, tmp_path / "nan.pt")
    with pytest.raises(checks.UsageError, match=rf"{key} holds NaN or infinite values"):
        checks.check_weights("eccv16-small", str(tmp_path / "nan.pt"))


def test_check_decode(caplog):
    checks.check_decode("hypercolumn", "median", 0.3, "--decode")
    checks.check_decode("eccv16-small", "mode", None, "--decode")
    with pytest.raises(checks.UsageError, match="eccv16-small decodes with annealed, mean, mode, "):
        checks.check_decode("eccv16-small", "median", None, "--decode")
    with caplog.at_level("WARNING"):
        checks.check_decode("regression", None, 0.1, "--temperature")
        checks.check_decode("siggraph17-small", "mode", None, "--decode")
    assert caplog.text.count("predicts colours directly: decode settings ignored") == 2
    caplog.clear()
    with caplog.at_level("WARNING"):
        checks.check_decode("regression", None, None, "--decode")  # nothing asked: silent
    assert not caplog.text


def test_a_temperature_the_decode_does_not_apply_is_a_warning(caplog):
    with caplog.at_level("WARNING"):
        checks.check_temperature_applies("eccv16-small", "annealed", 0.3, "--temperature")
        checks.check_temperature_applies("pic", "sample", 0.8, "--temperature")
        checks.check_temperature_applies("eccv16-small", "mean", None, "--temperature")  # default
        checks.check_temperature_applies("regression", "annealed", 0.3, "--t")  # check_decode's
    assert not caplog.text
    with caplog.at_level("WARNING"):
        checks.check_temperature_applies("eccv16-small", "mean", 0.3, "--temperature")
        checks.check_temperature_applies("hypercolumn", "median", 0.5, "--model x")
        checks.check_temperature_applies("pic", "annealed", 0.5, "--model y")
    assert caplog.text.count("without a temperature: temperature") == 3
    expected = "--model x: model hypercolumn decodes median without a temperature: temperature 0.5 "
    assert expected in caplog.text


def test_which_decodes_apply_the_temperature():
    from models.registry import uses_temperature

    applies = {
        (name, method): uses_temperature(name, method)
        for name, method in [
            ("eccv16", "annealed"),
            ("eccv16-small", "mean"),
            ("eccv16-small", "mode"),
            ("hypercolumn", "annealed"),
            ("hypercolumn", "median"),
            ("multihypothesis", "annealed"),
            ("pic", "annealed"),
            ("pic", "sample"),
            ("regression", "annealed"),
            ("siggraph17", "annealed"),
        ]
    }
    assert [k for k, v in applies.items() if v] == [
        ("eccv16", "annealed"),
        ("hypercolumn", "annealed"),
        ("multihypothesis", "annealed"),
        ("pic", "sample"),
    ]


def test_same_file(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    (tmp_path / "link.png").symlink_to(a)
    (tmp_path / "sub").mkdir()
    assert checks.same_file(str(a), str(tmp_path / "sub" / ".." / "a.png"))
    assert checks.same_file(str(a), str(tmp_path / "link.png"))
    assert not checks.same_file(str(a), str(tmp_path / "b.png"))
    assert checks.same_file("memory://x/a.png", "memory://x/./a.png")
    assert not checks.same_file("memory://x/a.png", str(a))


def test_image_format_and_no_overwrite(tmp_path, caplog):
    assert checks.image_format("a.webp", "png") == "webp"
    assert checks.image_format("a.JPG", "png") == "jpeg"
    assert checks.image_format("noext", "webp") == "webp"
    with caplog.at_level("WARNING"):
        assert checks.image_format("a.png", "jpeg") == "png"
    assert "writing png as its extension says, not --format jpeg" in caplog.text
    with pytest.raises(checks.UsageError, match=r"^-o a.tif: cannot write .tif images \(use"):
        checks.image_format("a.tif", "png")
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    checks.check_no_overwrite([str(tmp_path / "out.png")], [str(src)])
    with pytest.raises(checks.UsageError, match=r"would overwrite the input .*in.png$"):
        checks.check_no_overwrite([str(tmp_path / "o.cbc"), str(tmp_path / "in.png")], [str(src)])


def test_check_device_and_stage_dir(tmp_path):
    checks.check_device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(checks.UsageError, match="no CUDA device"):
            checks.check_device("cuda")
    with pytest.raises(checks.MissingInput, match="no such folder"):
        checks.check_stage_dir(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no priors.json"):
        checks.check_stage_dir(str(tmp_path))
    (tmp_path / "shards").mkdir()  # a run that kept nothing: an empty table, no priors
    write_table(str(tmp_path / "shards" / "part-empty.parquet"), [], schema.SHARD_SCHEMA)
    with pytest.raises(checks.MissingInput, match="no shards in shards/: .* kept no image"):
        checks.check_stage_dir(str(tmp_path))
    (tmp_path / "shards" / "part-0.parquet").write_bytes(b"rows")
    with pytest.raises(checks.MissingInput, match="no priors.json: .* did not finish"):
        checks.check_stage_dir(str(tmp_path))
    (tmp_path / "priors.json").write_text("{}")
    checks.check_stage_dir(str(tmp_path))


def test_unknown_options_suggest_the_closest_spelling():
    job = ["--render-size", "--strength", "--skip-existing"]
    rest = [
        "--render-szie",
        "256",
        "--runner=DirectRunner",
        "--frobnicate",
        "--direct_num_worker=2",
    ]
    got = dict(checks.unknown_options(rest, job))
    assert got == {
        "--render-szie": "--render-size",
        "--frobnicate": None,
        "--direct_num_worker": "--direct_num_workers",
    }
    assert {"--runner", "--direct_num_workers", "--project", "--job_name"} <= checks.beam_flags()
    assert checks.unknown_options(["--render_size=3"], job) == [("--render_size", "--render-size")]


# --- the smaller items: JPEG chroma, frame counts -------------------------------------------


def _l_error(rgb: np.ndarray, fmt: str, quality: int, chroma: str) -> float:
    out = decode_image(encode_image(rgb, fmt, quality, chroma_subsampling=chroma)).rgb
    return float(np.abs(luminance(out) - luminance(rgb)).max())


@pytest.fixture(scope="module")
def colour_edges() -> np.ndarray:
    """Saturated red / blue stripes one pixel wide: what 4:2:0 chroma averages away."""
    yy, xx = np.mgrid[0:64, 0:64]
    rgb = np.zeros((64, 64, 3), np.uint8)
    red = (xx + yy // 2) % 2 == 0
    rgb[red], rgb[~red] = (200, 40, 40), (40, 90, 200)
    return rgb


def test_jpeg_chroma_subsampling(colour_edges):
    full, half = (
        _l_error(colour_edges, "jpeg", 95, "444"),
        _l_error(colour_edges, "jpeg", 95, "420"),
    )
    assert full <= 1.0 < 5.0 < half  # measured: 0.69 vs 7.93
    assert _l_error(colour_edges, "jpeg", 95, "auto") == full  # quality >= 90: 4:4:4
    assert _l_error(colour_edges, "jpeg", 80, "auto") == _l_error(colour_edges, "jpeg", 80, "420")
    assert _l_error(colour_edges, "webp", 95, "auto") > 5.0  # lossy WebP: 4:2:0 only
    assert _l_error(colour_edges, "webp", 95, "444") == 0.0  # lossless WebP
    data = encode_image(colour_edges, "jpeg", 95, chroma_subsampling="444")
    with Image.open(io.BytesIO(data)) as im:
        assert [c[1:3] for c in im.layer] == [(1, 1)] * 3  # no component subsampled


def test_decoded_images_count_their_frames():
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(3)]
    for fmt in ("GIF", "TIFF"):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
        img = decode_image(buf.getvalue())
        assert img.n_frames == 3 and int(img.rgb.max()) == 0, fmt  # frame 0 decoded
    buf = io.BytesIO()
    frames[1].save(buf, "PNG")
    assert decode_image(buf.getvalue()).n_frames == 1


def test_applied_decode_records_none_where_a_setting_does_not_apply():
    from models.registry import applied_decode

    assert applied_decode("eccv16-small", "annealed", 0.38) == {
        "decode": "annealed",
        "temperature": 0.38,
    }
    assert applied_decode("eccv16-small", "mean", 0.38) == {"decode": "mean", "temperature": None}
    assert applied_decode("regression", "annealed", 0.38) == {"decode": None, "temperature": None}
