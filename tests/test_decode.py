"""transforms.decode on images generated in memory with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import encode, smooth_colour_field
from transforms.decode import DEFAULT_MAX_PIXELS, DecodedImage, ImageError, decode_image


def _quadrants(h: int = 40, w: int = 60) -> np.ndarray:
    """Four flat, very different colours in the four quadrants (robust to JPEG)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (230, 30, 30)
    img[: h // 2, w // 2 :] = (30, 200, 30)
    img[h // 2 :, : w // 2] = (30, 30, 220)
    img[h // 2 :, w // 2 :] = (240, 240, 40)
    return img


def _png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose IHDR declares the given size, with no pixel data (cheap to make)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _outcome(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageError) as e:
        decode_image(data, **kwargs)
    return e.value.outcome


# --- good images of every kind -------------------------------------------------------------


def test_rgb_jpeg():
    rgb = smooth_colour_field(48, 64, seed=1)
    d = decode_image(encode(Image.fromarray(rgb), "JPEG", quality=95))
    assert isinstance(d, DecodedImage)
    assert d.rgb.shape == (48, 64, 3) and d.rgb.dtype == np.uint8
    assert (d.width, d.height) == (64, 48)
    assert d.mode == "RGB" and not d.grayscale_mode
    assert np.abs(d.rgb.astype(int) - rgb).mean() < 3


def test_decoded_image_holds_the_pillow_image_then_one_array():
    """DecodedImage.image is the decoded Pillow RGB image; .rgb is its array, made once (the
    same object after), after which .image is remade from that array: the same pixels."""
    rgb = smooth_colour_field(30, 40, seed=7)
    d = decode_image(encode(Image.fromarray(rgb), "PNG"))
    assert isinstance(d.image, Image.Image) and d.image.mode == "RGB"
    assert d.image.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(d.image), rgb)
    first = d.rgb
    assert first is d.rgb  # made once
    np.testing.assert_array_equal(first, rgb)
    np.testing.assert_array_equal(np.asarray(d.image), rgb)  # from the array now
    assert "_image" not in repr(d) and "_rgb" not in repr(d)


def test_grayscale_16_bit_image_is_an_rgb_pillow_image():
    """A 16-bit source's DecodedImage.image is RGB too (its gray levels in three channels)."""
    gray = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    d = decode_image(encode(Image.fromarray(gray), "PNG"))
    assert d.image.mode == "RGB" and d.grayscale_mode
    np.testing.assert_array_equal(d.rgb[..., 0], d.rgb[..., 2])


def test_rgb_png_is_lossless():
    rgb = smooth_colour_field(30, 20, seed=2)
    d = decode_image(encode(Image.fromarray(rgb), "PNG"))
    np.testing.assert_array_equal(d.rgb, rgb)


def test_png_alpha_composited_on_white():
    a = np.zeros((10, 12, 4), np.uint8)
    a[..., :3] = (200, 40, 10)
    a[..., 3] = 255
    a[0, 0, 3] = 0  # fully transparent
    a[0, 1, 3] = 128  # half transparent
    d = decode_image(encode(Image.fromarray(a, "RGBA"), "PNG"))
    assert d.mode == "RGBA" and not d.grayscale_mode
    assert d.rgb.shape == (10, 12, 3)
    np.testing.assert_array_equal(d.rgb[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(d.rgb[5, 5], [200, 40, 10])
    # half alpha: halfway between the colour and white
    np.testing.assert_allclose(d.rgb[0, 1], [227.5, 147.5, 132.5], atol=1.5)


def _palette_image(transparent: bool) -> bytes:
    idx = np.zeros((8, 8), np.uint8)
    idx[:, 4:] = 1
    idx[4:, :] = 2
    img = Image.fromarray(idx, "P")
    img.putpalette([10, 20, 30, 200, 100, 0, 0, 120, 250] + [0] * (256 - 3) * 3)
    return encode(img, "PNG", **({"transparency": 0} if transparent else {}))


def test_palette_png():
    d = decode_image(_palette_image(transparent=False))
    assert d.mode == "P" and not d.grayscale_mode
    np.testing.assert_array_equal(d.rgb[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(d.rgb[0, 7], [200, 100, 0])
    np.testing.assert_array_equal(d.rgb[7, 0], [0, 120, 250])


def test_palette_png_with_transparency():
    d = decode_image(_palette_image(transparent=True))
    assert d.mode == "P"
    np.testing.assert_array_equal(d.rgb[0, 0], [255, 255, 255])  # index 0 is transparent
    np.testing.assert_array_equal(d.rgb[0, 7], [200, 100, 0])
    np.testing.assert_array_equal(d.rgb[7, 0], [0, 120, 250])


def test_cmyk_jpeg():
    rgb = _quadrants()
    data = encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    d = decode_image(data)
    assert d.mode == "CMYK" and not d.grayscale_mode
    assert d.rgb.shape == rgb.shape
    # compare away from the JPEG block edges
    assert np.abs(d.rgb[5, 5].astype(int) - rgb[5, 5]).max() < 12
    assert np.abs(d.rgb.astype(int) - rgb).mean() < 10


def _profile(space: bytes) -> bytes:
    """Pillow's sRGB profile with its header's colour space set to `space` (a stand-in for a
    CMYK or gray profile: only the header field matters here)."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[16:20] = space
    return bytes(icc)


def test_only_an_rgb_profile_travels_with_the_rgb_pixels():
    rgb = Image.fromarray(_quadrants())
    srgb = _profile(b"RGB ")
    assert decode_image(encode(rgb, "PNG", icc_profile=srgb)).icc_profile == srgb
    cmyk = encode(rgb.convert("CMYK"), "JPEG", quality=95, icc_profile=_profile(b"CMYK"))
    assert Image.open(io.BytesIO(cmyk)).info["icc_profile"][16:20] == b"CMYK"
    assert decode_image(cmyk).icc_profile is None  # converted to RGB: the profile is dropped
    gray = encode(rgb.convert("L"), "PNG", icc_profile=_profile(b"GRAY"))
    assert decode_image(gray).icc_profile is None
    assert decode_image(encode(rgb, "PNG")).icc_profile is None


def test_16_bit_grayscale_png():
    arr = np.array([[0, 65535, 257 * 100], [1000, 32896, 65280]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    d = decode_image(encode(img, "PNG"))
    assert d.grayscale_mode
    assert d.rgb.dtype == np.uint8 and d.rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(d.rgb[..., 0], d.rgb[..., 2])  # gray in all channels
    np.testing.assert_array_equal(d.rgb[..., 0], [[0, 255, 100], [4, 128, 254]])


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[0.0, 0.5], [1.0, 0.25]], [[0, 128], [255, 64]]),  # [0, 1] floats
        ([[0.0, 127.0], [255.0, 300.0]], [[0, 127], [255, 255]]),  # [0, 255] floats, clipped
    ],
)
def test_float_tiff(values, expected):
    img = Image.fromarray(np.array(values, dtype=np.float32))
    assert img.mode == "F"
    d = decode_image(encode(img, "TIFF"))
    assert d.mode == "F" and d.grayscale_mode
    np.testing.assert_array_equal(d.rgb[..., 1], expected)


def test_la_png():
    arr = np.array([[[100, 255], [50, 0], [0, 255]]], dtype=np.uint8)
    d = decode_image(encode(Image.fromarray(arr, "LA"), "PNG"))
    assert d.mode == "LA" and d.grayscale_mode
    np.testing.assert_array_equal(d.rgb[0], [[100, 100, 100], [255, 255, 255], [0, 0, 0]])


def test_l_jpeg_is_grayscale_mode():
    gray = smooth_colour_field(32, 32)[..., 0]
    d = decode_image(encode(Image.fromarray(gray, "L"), "JPEG"))
    assert d.mode == "L" and d.grayscale_mode
    np.testing.assert_array_equal(d.rgb[..., 0], d.rgb[..., 1])


def test_exif_orientation_6_rotates():
    stored = _quadrants(40, 60)  # 60 wide, 40 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    d = decode_image(data)
    assert (d.width, d.height) == (40, 60)  # swapped
    assert d.rgb.shape == (60, 40, 3)
    cw = np.rot90(stored, k=-1)  # rotated 90 degrees clockwise
    assert np.abs(d.rgb.astype(int) - cw).mean() < 6
    assert np.abs(d.rgb.astype(int) - np.rot90(stored, k=1)).mean() > 50  # not the other way
    assert d.exif is not None


def test_exif_orientation_6_with_draft_keeps_full_size():
    stored = np.repeat(np.repeat(_quadrants(40, 60), 8, 0), 8, 1)  # 480 wide, 320 high
    exif = Image.Exif()
    exif[0x0112] = 6
    d = decode_image(encode(Image.fromarray(stored), "JPEG", exif=exif.tobytes()), draft_size=80)
    assert (d.width, d.height) == (320, 480)  # full size, after orientation
    h, w = d.rgb.shape[:2]
    assert h > w and min(h, w) >= 80 and min(h, w) < 320


# --- drafts --------------------------------------------------------------------------------


@pytest.mark.parametrize("draft", [50, 100, 224, 300])
def test_jpeg_draft_size(draft):
    rgb = smooth_colour_field(600, 800, seed=3)
    data = encode(Image.fromarray(rgb), "JPEG", quality=90)
    d = decode_image(data, draft_size=draft)
    h, w = d.rgb.shape[:2]
    assert min(h, w) >= draft
    assert min(h, w) < 600  # really decoded smaller
    assert abs(w / h - 800 / 600) < 0.02
    assert (d.width, d.height) == (800, 600)  # the reported size is the original one


def test_draft_ignored_for_png():
    rgb = smooth_colour_field(120, 160, seed=4)
    d = decode_image(encode(Image.fromarray(rgb), "PNG"), draft_size=30)
    assert d.rgb.shape == (120, 160, 3)


# --- bad inputs ----------------------------------------------------------------------------


def test_zero_bytes_is_empty():
    assert _outcome(b"") == "empty"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_are_undecodable(seed):
    assert _outcome(np.random.default_rng(seed).bytes(2000)) == "undecodable"


def test_text_is_undecodable():
    assert _outcome(b"this is not a JPEG, just text\n" * 10) == "undecodable"


@pytest.mark.parametrize("fraction", [0.5, 0.2, 0.9])
def test_truncated_jpeg(fraction):
    data = encode(Image.fromarray(smooth_colour_field(200, 300, seed=5)), "JPEG", quality=90)
    cut = data[: int(len(data) * fraction)]
    try:
        d = decode_image(cut)
    except ImageError as e:
        assert e.outcome in ("truncated", "undecodable")
    else:  # Pillow may decode what is there; then it must be a full-size image
        assert d.rgb.shape == (200, 300, 3)


def test_truncated_jpeg_half_is_truncated():
    data = encode(Image.fromarray(smooth_colour_field(200, 300, seed=5)), "JPEG", quality=90)
    assert _outcome(data[: len(data) // 2]) == "truncated"


def test_truncated_png():
    data = encode(Image.fromarray(smooth_colour_field(100, 100, seed=6)), "PNG")
    cut = data[: len(data) // 2]
    assert _outcome(cut) == "truncated"
    with pytest.raises(ImageError) as e:
        decode_image(cut)
    # the reason says what the header declared and how much of the file there is
    assert str(e.value).startswith(
        f"pixel data cut short or damaged (PNG 100x100, {len(cut)} bytes"
    )


def test_huge_header_beyond_pillow_bomb_limit_is_too_large():
    # 20000 x 20000 = 4e8 pixels: Pillow itself refuses it as a decompression bomb
    assert _outcome(_png_header(20000, 20000)) == "too_large"


def test_huge_header_beyond_max_pixels_is_too_large():
    # 17000 x 15000 = 2.55e8 pixels: just above DEFAULT_MAX_PIXELS
    assert 17000 * 15000 > DEFAULT_MAX_PIXELS
    assert _outcome(_png_header(17000, 15000)) == "too_large"


def test_real_mode_1_png_too_large():
    # a genuine 20000 x 20000 bilevel PNG (small on disk, 48 kB)
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 200_000
    assert _outcome(data) == "too_large"


def test_small_max_pixels():
    data = encode(Image.fromarray(smooth_colour_field(60, 80)), "JPEG")
    assert _outcome(data, max_pixels=80 * 60 - 1) == "too_large"
    assert decode_image(data, max_pixels=80 * 60).rgb.shape == (60, 80, 3)


def test_image_error_carries_outcome_and_detail():
    e = ImageError("empty", "zero-byte file")
    assert e.outcome == "empty" and str(e) == "zero-byte file"
