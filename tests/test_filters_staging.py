"""transforms.filters (grayscale / toned / colour) and transforms.staging (one shard row)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from tests.helpers import (
    CYANOTYPE,
    IMAGENET,
    KODAK,
    RGB_ENCODED_GRAY,
    SEPIA,
    encode,
    gray_photo,
    smooth_colour_field,
    tone_curve,
)
from transforms import schema, staging
from transforms.bins import num_bins
from transforms.colour import rgb_to_lab
from transforms.crop import fit_and_crop
from transforms.decode import ImageError
from transforms.filters import GrayThresholds, classify_tone, colour_measures

COLOUR_SAMPLES = (
    "n01440764_tench.JPEG",
    "n01855672_goose.JPEG",
    "n01882714_koala.JPEG",
    "n01910747_jellyfish.JPEG",
)


def _thumb_lab(rgb: np.ndarray) -> np.ndarray:
    """What stage_image looks at: a 64 x 64 crop in Lab."""
    return rgb_to_lab(fit_and_crop(rgb, staging.FILTER_THUMBNAIL) / np.float32(255.0))


def _stage_outcome(data: bytes, cfg: staging.StageConfig | None = None) -> str:
    with pytest.raises(ImageError) as e:
        staging.stage_image("mem://x", data, cfg or staging.StageConfig(size=32))
    return e.value.outcome


# --- classify_tone -------------------------------------------------------------------------


def test_gray_photo_is_grayscale():
    g = gray_photo()
    lab = _thumb_lab(np.repeat(g[..., None], 3, -1))
    m = colour_measures(lab)
    assert m["mean_chroma"] < 0.1 and m["high_chroma"] < 0.1
    assert classify_tone(lab) == "grayscale"


def test_constant_gray_is_grayscale():
    lab = np.dstack([np.full((8, 8), 40.0), np.zeros((8, 8)), np.zeros((8, 8))])
    assert classify_tone(lab) == "grayscale"


def test_colourful_synthetic_is_colour():
    lab = _thumb_lab(smooth_colour_field(128, 160, seed=11))
    m = colour_measures(lab)
    assert m["mean_chroma"] > 10 and m["tone_residual"] > 5
    assert classify_tone(lab) == "colour"


def test_real_colour_photo_is_colour():
    rgb = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    assert classify_tone(_thumb_lab(rgb)) == "colour"


@pytest.mark.parametrize("tone", [SEPIA, CYANOTYPE], ids=["sepia", "cyanotype"])
def test_toned_photo_is_toned(tone):
    toned = tone_curve(gray_photo(), *tone)
    png = encode(Image.fromarray(toned), "PNG")  # lossless, as a scanned archive would be
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    lab = _thumb_lab(rgb)
    m = colour_measures(lab)
    assert m["mean_chroma"] > 5  # clearly not gray ...
    assert classify_tone(lab) == "toned"  # ... but one hue per brightness


@pytest.mark.parametrize("size", [32, 224])
def test_sepia_png_is_filtered_by_stage_image(size):
    png = encode(Image.fromarray(tone_curve(gray_photo(), *SEPIA)), "PNG")
    assert _stage_outcome(png, staging.StageConfig(size=size)) == schema.TONED


_CYANOTYPES = (CYANOTYPE, ((20, 40, 100), (230, 240, 250)))


@pytest.mark.parametrize("kodak", [5, 13, 23])
def test_cyanotypes_of_several_photos_are_toned(kodak):
    g = np.asarray(Image.open(KODAK / f"kodim{kodak:02d}.png").convert("L"))
    results = {classify_tone(_thumb_lab(tone_curve(g, *tone))) for tone in _CYANOTYPES}
    assert results == {"toned"}


@pytest.mark.parametrize("size", [32, 224])
def test_cyanotype_pngs_are_filtered_by_stage_image(size):
    outcomes = []
    for tone in _CYANOTYPES:
        png = encode(Image.fromarray(tone_curve(gray_photo(), *tone)), "PNG", compress_level=1)
        try:
            staging.stage_image("mem://x", png, staging.StageConfig(size=size))
            outcomes.append(schema.KEPT)
        except ImageError as e:
            outcomes.append(e.outcome)
    assert outcomes == [schema.TONED] * 2


def test_thresholds_are_used():
    lab = _thumb_lab(tone_curve(gray_photo(), *SEPIA))
    assert classify_tone(lab) == "toned"
    assert classify_tone(lab, GrayThresholds(tone_residual=0.01)) == "colour"
    assert classify_tone(lab, GrayThresholds(mean_chroma=100, high_chroma=100)) == "grayscale"


# --- stage_image filters -------------------------------------------------------------------


@pytest.mark.parametrize("name", RGB_ENCODED_GRAY)
def test_rgb_encoded_grayscale_imagenet_samples(name):
    data = (IMAGENET / name).read_bytes()
    assert Image.open(IMAGENET / name).mode == "RGB"  # not caught by the mode check
    with pytest.raises(ImageError) as e:
        staging.stage_image(str(IMAGENET / name), data, staging.StageConfig(size=32))
    assert e.value.outcome == schema.GRAYSCALE
    assert "single-channel" not in str(e.value)  # found by the filter, not by the mode


def test_mode_l_is_grayscale():
    data = encode(Image.fromarray(gray_photo(200)), "JPEG")
    assert _stage_outcome(data) == schema.GRAYSCALE


def test_tiny_image_is_too_small():
    data = encode(Image.fromarray(smooth_colour_field(10, 10)), "PNG")
    assert _stage_outcome(data) == schema.TOO_SMALL
    data = encode(Image.fromarray(smooth_colour_field(31, 200)), "PNG")
    assert _stage_outcome(data) == schema.TOO_SMALL  # the short side counts
    data = encode(Image.fromarray(smooth_colour_field(40, 200)), "PNG")
    assert _stage_outcome(data, staging.StageConfig(size=32, min_size=41)) == schema.TOO_SMALL


def test_decode_errors_pass_through():
    assert _stage_outcome(b"") == "empty"
    assert _stage_outcome(b"hello, not an image") == "undecodable"


# --- stage_image rows ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def colour_rows() -> list[tuple[str, bytes, dict]]:
    out = []
    cfg = staging.StageConfig(size=32)
    for name in COLOUR_SAMPLES:
        data = (IMAGENET / name).read_bytes()
        out.append((name, data, staging.stage_image(str(IMAGENET / name), data, cfg)))
    return out


def test_colour_imagenet_samples_give_rows(colour_rows):
    for name, data, row in colour_rows:
        assert row["source_uri"] == str(IMAGENET / name)
        assert row["key"] == staging.uri_key(str(IMAGENET / name))
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        w, h = Image.open(IMAGENET / name).size
        assert (row["width"], row["height"]) == (w, h)  # full size, not the draft size
        assert row["size"] == 32
        assert row["split"] in ("train", "val")
        assert row["mean_chroma"] > 1.0


def test_row_matches_shard_schema(colour_rows):
    rows = [r for _, _, r in colour_rows]
    assert set(rows[0]) == set(schema.SHARD_SCHEMA.names)
    table = pa.Table.from_pylist(rows, schema=schema.SHARD_SCHEMA)
    assert table.num_rows == len(rows)
    assert table.schema.equals(schema.SHARD_SCHEMA)


def test_row_byte_lengths_and_histogram(colour_rows):
    for _, _, row in colour_rows:
        assert isinstance(row["l"], bytes) and len(row["l"]) == 32 * 32
        assert isinstance(row["ab"], bytes) and len(row["ab"]) == 32 * 32 * 2
        assert len(row["hist"]) == num_bins()
        assert sum(row["hist"]) == 32 * 32
        assert min(row["hist"]) >= 0


def test_row_contents_match_the_image(colour_rows):
    name, data, row = colour_rows[0]
    rgb = np.asarray(Image.open(IMAGENET / name).convert("RGB"))
    l, ab = staging.dequantize(row["l"], row["ab"], 32)
    # a 32 x 32 crop of the image: the mean colour matches closely
    ref = rgb_to_lab(fit_and_crop(rgb, 32) / np.float32(255.0))
    assert abs(l.mean() - ref[..., 0].mean()) < 2.0
    assert np.abs(ab.mean((0, 1)) - ref[..., 1:].mean((0, 1))).max() < 2.0
    assert row["mean_chroma"] == pytest.approx(np.hypot(*ab.reshape(-1, 2).T).mean(), abs=1.0)


def test_dequantize_round_trip():
    rng = np.random.default_rng(0)
    l = rng.uniform(0, 100, (16, 16)).astype(np.float32)
    ab = rng.uniform(-127, 127, (16, 16, 2)).astype(np.float32)
    l2, ab2 = staging.dequantize(staging.quantize_l(l), staging.quantize_ab(ab), 16)
    assert l2.shape == (16, 16) and ab2.shape == (16, 16, 2)
    assert l2.dtype == np.float32 and ab2.dtype == np.float32
    assert np.abs(l2 - l).max() <= 0.5 / 2.55 + 1e-4  # half a quantization step
    assert np.abs(ab2 - ab).max() <= 0.5 + 1e-4
    # extremes and clipping
    lq = np.frombuffer(staging.quantize_l(np.array([0.0, 100.0, 120.0, -5.0])), np.uint8)
    np.testing.assert_array_equal(lq, [0, 255, 255, 0])
    abq = np.frombuffer(staging.quantize_ab(np.array([-200.0, 200.0, -0.4, 12.6])), np.int8)
    np.testing.assert_array_equal(abq, [-127, 127, 0, 13])


def test_split_of_is_deterministic_and_proportional():
    keys = [staging.uri_key(f"gs://bucket/img{i:05d}.jpg") for i in range(10_000)]
    splits = [staging.split_of(k, 10.0) for k in keys]
    assert splits == [staging.split_of(k, 10.0) for k in keys]
    share = splits.count("val") / len(splits)
    assert 0.09 < share < 0.11  # binomial sd is 0.3%
    assert set(splits) == {"train", "val"}
    share25 = [staging.split_of(k, 25.0) for k in keys].count("val") / len(keys)
    assert 0.235 < share25 < 0.265
    assert all(staging.split_of(k, 0.0) == "train" for k in keys)
    assert all(staging.split_of(k, 100.0) == "val" for k in keys)
    # nested: raising the percentage only moves keys from train to val
    for k in keys[:2000]:
        if staging.split_of(k, 10.0) == "val":
            assert staging.split_of(k, 25.0) == "val"


def test_uri_key_is_stable():
    # pinned values: keys must never change between versions (they name rows and shards)
    assert staging.uri_key("gs://bucket/photos/a.jpg") == "a617429eb8b06c38"
    assert staging.uri_key("memory://in/x.png") == "8cf36283a7584760"
    k = staging.uri_key("some/local/path.jpg")
    assert len(k) == 16 and int(k, 16) >= 0
    assert staging.uri_key("some/local/path.jpg") == k
    assert staging.uri_key("some/local/path2.jpg") != k
