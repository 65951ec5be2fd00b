"""Memory bounded by design (issue 9): strip-wise resizing, L extraction, composition and image
writing give the same numbers as the whole-image code; --max-pixels speaks first; decode
reasons carry no object addresses."""

from __future__ import annotations

import io
import math
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import encode, smooth_colour_field
from transforms.colour import rgb_to_lab
from transforms.compose import (
    Composer,
    compose,
    encode_image,
    fit_into_gamut,
    luminance,
    render_l,
    write_image,
)
from transforms.crop import RowResizer, resample_weights, resize_float, shrink_float, strip_rows
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image

INTERPOLATIONS = ("bicubic", "bilinear")
# (h, w) -> (H, W): odd sizes, up and down, one axis unchanged, 1-pixel inputs and outputs
SIZES = [((5, 7), (31, 17)), ((64, 64), (301, 199)), ((3, 3), (2, 9)), ((1, 1), (5, 4)),
         ((16, 12), (16, 41)), ((40, 30), (7, 1))]  # fmt: skip


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _ab(h: int, w: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).uniform(-110, 110, (h, w, 2)).astype(np.float32)


def _outcome_and_reason(data: bytes, **kw) -> tuple[str, str]:
    with pytest.raises(ImageError) as e:
        decode_image(data, **kw)
    return e.value.outcome, str(e.value)


# --- resizing ----------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("small, big", SIZES)
def test_row_resizer_equals_pillow_and_strips_equal_whole(small, big, interpolation):
    img = _ab(*small)
    H, W = big
    whole = resize_float(img, W, H, interpolation)
    r = RowResizer(img, W, H, interpolation)
    assert r.rows(0, H).shape == (H, W, 2)
    np.testing.assert_allclose(r.rows(0, H), whole, rtol=0, atol=1e-4)
    bands = np.concatenate([r.rows(t, t + 3) for t in range(0, H, 3)])
    np.testing.assert_array_equal(bands, r.rows(0, H))
    np.testing.assert_array_equal(r.rows(1, H, 2), r.rows(0, H)[1::2])


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_resample_weights_are_pillows(interpolation):
    """Applying the weight matrix to an identity image reproduces Pillow's own resampling."""
    for n_in, n_out in ((7, 31), (64, 9), (5, 5), (1, 3)):
        col = np.eye(n_in, dtype=np.float32)  # column j = unit impulse at row j
        want = resize_float(col, n_in, n_out, interpolation)  # vertical pass only
        np.testing.assert_allclose(resample_weights(n_in, n_out, interpolation), want, atol=1e-6)


def test_bilinear_is_not_bicubic():
    img = _ab(5, 7)
    a = RowResizer(img, 23, 19, "bicubic").rows(0, 19)
    b = RowResizer(img, 23, 19, "bilinear").rows(0, 19)
    assert np.abs(a - b).max() > 1.0
    with pytest.raises(ValueError, match="interpolation"):
        resize_float(img, 4, 4, "lanczos")


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_shrink_in_bands_equals_pillow_whole(interpolation):
    img = _rng(1).uniform(0, 100, (203, 157)).astype(np.float32)
    for w, h in ((16, 16), (157, 40), (31, 203), (200, 250)):
        got = shrink_float(img, w, h, interpolation, pixels=500)  # bands of 3 rows
        np.testing.assert_array_equal(got, resize_float(img, w, h, interpolation))


def test_strip_rows():
    assert strip_rows(8000) == (1 << 20) // 8000
    assert strip_rows(10, pixels=35) == 3 and strip_rows(10**7, pixels=35) == 1


# --- L, composition, gamut fit -------------------------------------------------------------


def test_luminance_in_strips_equals_rgb_to_lab():
    rgb = smooth_colour_field(61, 37, seed=2)
    np.testing.assert_array_equal(luminance(rgb, pixels=100), rgb_to_lab(rgb)[..., 0])
    as_float = luminance(rgb, pixels=100, as_float=True)
    np.testing.assert_array_equal(as_float, rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 0])
    assert as_float.dtype == np.float32


def test_render_l_equals_pillow_on_the_whole_l():
    l = _rng(3).uniform(0, 100, (97, 131)).astype(np.float32)
    want = resize_float(l, 32, 32).clip(0, 100).astype(np.float32)
    np.testing.assert_array_equal(render_l(l, 32), want)


def _compose_whole(l, ab, strength, interpolation):
    """The whole-image composition the strip code replaced (one resize, one gamut fit)."""
    from transforms.colour import lab_to_rgb

    h, w = l.shape
    up = resize_float(ab, w, h, interpolation) * np.float32(strength)
    lab = fit_into_gamut(np.concatenate([l[..., None], up], -1), pixels=10**9)
    return np.clip(np.rint(lab_to_rgb(lab) * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("shape", [(61, 37), (1, 1), (2, 301), (257, 3)])
def test_compose_in_strips_equals_the_whole_image(shape, interpolation):
    l = _rng(4).uniform(0, 100, shape).astype(np.float32)
    ab = _ab(5, 4, seed=5)
    whole = _compose_whole(l, ab, 0.8, interpolation)
    # float rounding of the vertical pass may move a value across a rounding edge: <= 1 level
    strips = compose(l, ab, 0.8, interpolation=interpolation, pixels=40)
    assert np.abs(strips.astype(int) - whole).max() <= 1
    assert (strips != whole).mean() < 1e-3
    np.testing.assert_array_equal(compose(l, ab, 0.8, interpolation=interpolation), strips)
    c = Composer(l, ab, 0.8, interpolation)
    np.testing.assert_array_equal(c.rows(1, shape[0] - 1), strips[1 : shape[0] - 1])


@pytest.mark.parametrize("step", [2, 3, 7])
def test_compose_step_is_every_steps_pixel(step):
    l = _rng(6).uniform(0, 100, (50, 43)).astype(np.float32)
    ab = _ab(4, 4, seed=7)
    full = compose(l, ab)
    np.testing.assert_array_equal(compose(l, ab, step=step, pixels=60), full[::step, ::step])


def test_fit_into_gamut_in_chunks_equals_one_chunk():
    lab = np.concatenate(
        [_rng(8).uniform(0, 100, (40, 30, 1)), _rng(9).uniform(-128, 128, (40, 30, 2))], -1
    ).astype(np.float32)
    np.testing.assert_array_equal(fit_into_gamut(lab, pixels=7), fit_into_gamut(lab, pixels=10**9))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_write_image_streams_the_same_bytes(tmp_path, fmt):
    rgb = smooth_colour_field(33, 47, seed=10)
    out = tmp_path / "sub" / f"x.{fmt}"
    write_image(str(out), rgb, fmt, 90)
    assert out.read_bytes() == encode_image(rgb, fmt, 90)
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temporary left


def test_jpeg_chroma_subsampling():
    rgb = smooth_colour_field(64, 64, seed=11)
    sampling = {}
    for mode in ("444", "420", "auto"):
        data = encode_image(rgb, "jpeg", 95, None, None, mode)
        with Image.open(io.BytesIO(data)) as im:
            sampling[mode] = im.layer[0][1:3]  # (h, v) sampling factors of Y
    assert sampling["444"] == (1, 1) and sampling["420"] == (2, 2)
    assert sampling["auto"] == sampling["444"]  # quality >= 90


# --- --max-pixels and stable reasons -------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares the size, with no pixel data (as in test_decode)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(20000, 20000), (17000, 15000), (40000, 30000)])
def test_refusal_names_the_option_before_pillow_speaks(size):
    w, h = size
    outcome, reason = _outcome_and_reason(_png_header(w, h))
    assert outcome == "too_large"
    assert reason == f"{w}x{h} = {w * h} pixels exceeds --max-pixels {DEFAULT_MAX_PIXELS}"


def test_refusal_with_a_small_limit():
    data = encode(Image.fromarray(smooth_colour_field(60, 80)), "JPEG")
    outcome, reason = _outcome_and_reason(data, max_pixels=1000)
    assert (outcome, reason) == ("too_large", "80x60 = 4800 pixels exceeds --max-pixels 1000")


@pytest.mark.parametrize(
    "data",
    [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"GIF89a" + b"\1" * 20],
)
def test_reasons_carry_no_object_addresses(data):
    first = _outcome_and_reason(data)
    assert first == _outcome_and_reason(data)
    assert not re.search(r"0x[0-9a-f]{6,}", first[1]) and "object at" not in first[1], first


# --- big images do not ride through the model's batches with their pixels ----------------


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    from tests.conftest_models import write_tiny_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path, "eccv16-small", seed=7)
    return str(path)


def test_colorize_decodes_big_images_again_with_the_same_result(tmp_path, tiny_ckpt, monkeypatch):
    from pipeline import colorize
    from tests.conftest_models import job_args, one_thread

    one_thread()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the second decode must orient it the same way
    src = tmp_path / "scan.jpg"
    src.write_bytes(encode(Image.fromarray(smooth_colour_field(30, 44)), "JPEG", exif=exif))
    outs = {}
    for carry in (10**9, 0):
        monkeypatch.setattr(colorize, "CARRY_PIXELS", carry)
        out = tmp_path / f"out_{carry}.png"
        argv = [str(src), "-o", str(out), "--weights", tiny_ckpt, "--device", "cpu"]
        colorize.run(job_args(colorize, argv), [])
        outs[carry] = out.read_bytes()
    assert outs[0] == outs[10**9]


def test_evaluate_reloads_big_truth_after_the_batch(tmp_path, monkeypatch):
    from apache_beam.ml.inference.base import PredictionResult

    from pipeline import evaluate
    from tests.conftest_models import save_png

    path = save_png(tmp_path / "truth.png", smooth_colour_field(40, 56, seed=12))
    item = evaluate.load_truth(str(path), path.read_bytes(), None, 10**8)
    spec = evaluate.ModelSpec(name="eccv16-small", label="m")
    result = PredictionResult(None, np.full((4, 4, 2), 15.0, np.float32))
    want = evaluate.score_prediction((item, result), spec, None)
    assert evaluate.for_batch(item, None, 10**8) is item  # small: kept as is
    monkeypatch.setattr(evaluate, "CARRY_PIXELS", 0)
    light = evaluate.for_batch(item, None, 10**8)
    assert "rgb" not in light and "l" not in light
    got = evaluate.score_prediction((light, result), spec, None)
    for k, v in want.items():
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(got[k])
        else:
            assert got[k] == v, k
