"""transforms.colour against scikit-image's reference implementations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from tests.helpers import KODAK
from transforms import colour

TOL = 1e-3


@pytest.fixture(scope="module")
def kodim23() -> np.ndarray:
    return np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"), dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def random_rgb() -> np.ndarray:
    rng = np.random.default_rng(1234)
    rgb = rng.random((50, 40, 3))
    rgb[0, :8] = [  # the cube's corners and some extremes
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
    ]
    rgb[1, :4] = [[0.01, 0.01, 0.01], [0.04, 0.04, 0.04], [0.05, 0.0, 0.02], [0.5, 0.5, 0.5]]
    return rgb


def test_rgb_to_lab_matches_skimage_random(random_rgb):
    ours = colour.rgb_to_lab(random_rgb)
    assert ours.shape == random_rgb.shape
    assert ours.dtype == np.float32
    assert np.abs(ours - skcolor.rgb2lab(random_rgb)).max() < TOL


def test_rgb_to_lab_matches_skimage_kodak(kodim23):
    assert np.abs(colour.rgb_to_lab(kodim23) - skcolor.rgb2lab(kodim23)).max() < TOL


def test_rgb_to_lab_known_values():
    # White is L=100, a=b=0 (D65); black is 0; pure sRGB red is about (53.24, 80.09, 67.20).
    lab = colour.rgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)


def test_lab_to_rgb_matches_skimage_random(random_rgb):
    lab = skcolor.rgb2lab(random_rgb)
    ours = colour.lab_to_rgb(lab)
    assert ours.dtype == np.float32
    assert np.abs(ours - skcolor.lab2rgb(lab)).max() < TOL


def test_lab_to_rgb_matches_skimage_kodak(kodim23):
    lab = skcolor.rgb2lab(kodim23)
    assert np.abs(colour.lab_to_rgb(lab) - skcolor.lab2rgb(lab)).max() < TOL


def test_lab_to_rgb_matches_skimage_out_of_gamut():
    # Arbitrary Lab values, many outside sRGB: both clip to [0, 1] the same way.
    rng = np.random.default_rng(7)
    lab = np.stack(
        [rng.uniform(0, 100, 2000), rng.uniform(-110, 110, 2000), rng.uniform(-110, 110, 2000)],
        -1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about negative Z values
        ref = skcolor.lab2rgb(lab)
    ours = colour.lab_to_rgb(lab)
    assert ours.min() >= 0.0 and ours.max() <= 1.0
    assert np.abs(ours - ref).max() < TOL
    unclipped = colour.lab_to_rgb(lab, clip=False)
    assert (unclipped > 1.0).any()  # clip=False really leaves values outside [0, 1]


def test_lab_round_trip(random_rgb, kodim23):
    for rgb in (random_rgb, kodim23):
        back = colour.lab_to_rgb(colour.rgb_to_lab(rgb))
        assert np.abs(back - rgb).max() < TOL


def test_lab_in_gamut():
    lab = colour.rgb_to_lab(np.random.default_rng(3).random((500, 3)))
    assert colour.lab_in_gamut(lab, tol=1e-4).all()
    outside = np.array([[50.0, 100.0, -100.0], [95.0, -80.0, 0.0], [10.0, 0.0, 100.0]])
    assert not colour.lab_in_gamut(outside).any()


def test_rgb_to_yuv_matches_skimage(random_rgb, kodim23):
    for rgb in (random_rgb, kodim23):
        yuv = colour.rgb_to_yuv(rgb)
        assert np.abs(yuv - skcolor.rgb2yuv(rgb)).max() < TOL
        assert np.abs(colour.yuv_to_rgb(yuv) - skcolor.yuv2rgb(yuv)).max() < TOL
        assert np.abs(colour.yuv_to_rgb(yuv) - rgb).max() < TOL


def test_yuv_ranges():
    yuv = colour.rgb_to_yuv(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(yuv[0], [1.0, 0.0, 0.0], atol=1e-5)
    assert yuv[1, 1] == pytest.approx(0.436, abs=1e-3)  # U max at blue
    assert yuv[2, 2] == pytest.approx(0.615, abs=1e-3)  # V max at red


def test_gray_to_l_matches_lab_of_gray():
    g = np.linspace(0.0, 1.0, 256)
    rgb = np.repeat(g[:, None], 3, axis=1)
    ref = skcolor.rgb2lab(rgb)
    assert np.abs(colour.gray_to_l(g) - ref[:, 0]).max() < TOL
    assert np.abs(ref[:, 1:]).max() < 1e-2  # a gray really has a = b = 0 (sanity of the claim)


def test_l_to_gray_inverts_gray_to_l():
    g = np.linspace(0.0, 1.0, 1001)
    assert np.abs(colour.l_to_gray(colour.gray_to_l(g)) - g).max() < 1e-4
    l = np.linspace(0.0, 100.0, 1001)
    assert np.abs(colour.gray_to_l(colour.l_to_gray(l)) - l).max() < 1e-2


def test_l_to_gray_is_lab_to_rgb_of_neutral():
    l = np.linspace(0.0, 100.0, 101)
    lab = np.stack([l, np.zeros_like(l), np.zeros_like(l)], -1)
    rgb = skcolor.lab2rgb(lab)
    gray = colour.l_to_gray(l)
    for k in range(3):
        assert np.abs(gray - rgb[:, k]).max() < TOL


def test_chroma():
    ab = np.array([[3.0, 4.0], [0.0, 0.0], [-6.0, 8.0], [-5.0, -12.0]])
    np.testing.assert_allclose(colour.chroma(ab), [5.0, 0.0, 10.0, 13.0], rtol=1e-6)
    img = np.random.default_rng(0).normal(size=(4, 5, 2)) * 30
    c = colour.chroma(img)
    assert c.shape == (4, 5)
    np.testing.assert_allclose(c, np.hypot(img[..., 0], img[..., 1]), rtol=1e-5)


def test_chroma_of_kodak_matches_skimage_lch(kodim23):
    lab = skcolor.rgb2lab(kodim23)
    lch = skcolor.lab2lch(lab)
    assert np.abs(colour.chroma(colour.rgb_to_lab(kodim23)[..., 1:]) - lch[..., 1]).max() < TOL


# --- the uint8 fast paths of `stage` (rgb8_to_lab_planes; the YUV bytes of --space yuv) ------


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    """200,000 random 8-bit colours + every gray level + the cube's corners, (N, 3) uint8."""
    rng = np.random.default_rng(14)
    gray = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    corners = np.array(np.meshgrid([0, 255], [0, 255], [0, 255])).reshape(3, -1).T
    rand = rng.integers(0, 256, (200_000, 3))
    return np.concatenate([gray, corners, rand]).astype(np.uint8)


def test_rgb8_to_lab_planes_matches_rgb_to_lab_and_skimage(rgb8):
    l, a, b = colour.rgb8_to_lab_planes(rgb8)
    assert l.shape == a.shape == b.shape == (len(rgb8),)
    assert l.dtype == a.dtype == b.dtype == np.float32
    fast = np.stack([l, a, b], -1)
    # the same formulas in float64: both float32 paths lie within 1.2e-4 of them (1.10e-4 and
    # 1.18e-4 measured over all 2^24 colours), in opposite directions at worst
    lin = colour._srgb_curve(rgb8 / 255.0)  # float64
    t = lin @ (colour._RGB_TO_XYZ / colour.D65_WHITE[:, None]).T
    f = np.where(t > colour._EPS, np.cbrt(t), (colour._KAPPA * t + 16.0) / 116.0)
    exact = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], -1)
    assert np.abs(fast - exact).max() <= 1.2e-4
    assert np.abs(fast - colour.rgb_to_lab(rgb8)).max() <= 2.4e-4
    assert np.abs(fast - skcolor.rgb2lab(rgb8[None])[0]).max() <= 5e-4
    np.testing.assert_allclose(fast[255], [100.0, 0.0, 0.0], atol=1e-2)  # white


def test_rgb8_planes_keep_the_image_shape_and_take_only_uint8():
    img = np.random.default_rng(2).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    planes = colour.rgb8_to_lab_planes(img)
    assert all(p.shape == (7, 5) for p in planes)
    np.testing.assert_allclose(np.stack(planes, -1), colour.rgb_to_lab(img), atol=1e-4)
    with pytest.raises(TypeError):
        colour.rgb8_to_lab_planes(img / 255.0)


def test_rgb8_lab_f_takes_the_linear_segment_only_where_it_applies():
    # f(t) = t^(1/3) above (6/29)^3, (kappa t + 16) / 116 below; all dark, none dark, mixed
    dark = np.array([[0, 0, 0], [1, 2, 3], [5, 0, 9], [0, 7, 0]], np.uint8)
    bright = np.full((4, 3), 200, np.uint8)
    for rgb in (dark, bright, np.concatenate([dark, bright])):
        f = colour.rgb8_lab_f(rgb)
        assert f.shape == (3, len(rgb)) and f.dtype == np.float32
        lab = colour.rgb_to_lab(rgb)
        np.testing.assert_allclose(116.0 * f[1] - 16.0, lab[:, 0], atol=1e-4)
        np.testing.assert_allclose(np.stack(colour.lab_f_to_ab(f), -1), lab[:, 1:], atol=1e-4)
    np.testing.assert_allclose(colour.rgb8_lab_f(dark[:1])[:, 0], 16.0 / 116.0, atol=1e-7)
    with pytest.raises(TypeError):
        colour.rgb8_lab_f(dark.astype(np.float32))


def test_yuv_pixel_columns_are_the_bt601_maths_rounded_once(rgb8):
    from transforms import staging

    y_bytes, uv_bytes = staging.yuv_pixel_columns(rgb8[None])  # one "crop" of N pixels
    y = np.frombuffer(y_bytes, np.uint8).astype(np.int64)
    uv = np.frombuffer(uv_bytes, np.int8).reshape(-1, 2).astype(np.int64)
    # Y * 255 = 0.299 R + 0.587 G + 0.114 B exactly: in thousandths, an integer; rounded half
    # to even, but an exact tie (x.5) may go either way (float64 decides)
    thousandths = rgb8.astype(np.int64) @ np.array([299, 587, 114])
    whole, rest = np.divmod(thousandths, 1000)
    want = whole + (rest > 500) + ((rest == 500) & (whole % 2 == 1))
    tie = rest == 500
    assert tie.any() and (y[~tie] == want[~tie]).all()
    assert np.isin(y[tie] - whole[tie], [0, 1]).all()
    # U, V * UV_SCALE against skimage's BT.601 (float64): the same integers but within 1e-6
    # of a tie, and never more than 1 off
    ref = skcolor.rgb2yuv(rgb8[None])[0][:, 1:] * staging.UV_SCALE
    near_tie = np.abs(np.abs(ref - np.floor(ref)) - 0.5) < 1e-6
    assert (uv[~near_tie] == np.rint(ref[~near_tie])).all()
    assert np.abs(uv - ref).max() <= 1.0
    assert y.min() == 0 and y.max() == 255 and np.abs(uv).max() < 127  # BT.601 stays in range


def test_yuv_pixel_columns_clip_to_the_stored_range():
    from transforms import lab_kernels, staging

    m = np.diag([2.0, 1.0, -1.0])  # a matrix that overflows both: Y 2 R, U G, V -B
    rgb = np.array([[200, 200, 200], [10, 100, 20]], np.uint8)
    y, uv = lab_kernels.yuv_columns(rgb, m)
    assert y.tolist() == [255, 20] and uv.tolist() == [[127, -127], [100, -20]]
    with pytest.raises(TypeError):
        staging.yuv_pixel_columns(rgb.astype(np.float32))
