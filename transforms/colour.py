"""Colour-space conversions on numpy arrays (sRGB, CIE Lab D65, YUV BT.601).

Images are float arrays with channels last. sRGB is in [0, 1]; L is in [0, 100] and
a, b are in Lab units. Every function is vectorised and has no Beam or torch dependency.
The formulas match `skimage.color` (checked in tests/test_colour.py).
"""

from __future__ import annotations

import numpy as np

# sRGB (linear) -> XYZ, IEC 61966-2-1, and the D65 reference white (2 degree observer).
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZN_TO_RGB = _XYZ_TO_RGB * D65_WHITE[None, :]  # (X/Xn, Y/Yn, Z/Zn) -> linear sRGB

# BT.601 YUV as in the seeds (Zhang/Billaut use YUV input, Cheong regresses UV).
RGB_TO_YUV = np.array(  # rows Y, U, V of sRGB in [0, 1]
    [
        [0.299, 0.587, 0.114],
        [-0.14714119, -0.28886916, 0.43601035],
        [0.61497538, -0.51496512, -0.10001026],
    ]
)
_YUV_TO_RGB = np.linalg.inv(RGB_TO_YUV)

_EPS = 216.0 / 24389.0  # (6/29)^3
_KAPPA = 24389.0 / 27.0


def _srgb_curve(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


# uint8 input goes through a 256-entry table: the power curve is most of rgb_to_lab's cost.
_LINEAR_OF_UINT8 = _srgb_curve(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer curve; uint8 input is read as value / 255."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return _LINEAR_OF_UINT8[rgb]
    return _srgb_curve(rgb.astype(np.float32, copy=False))


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve (input clipped at 0)."""
    lin = np.clip(lin, 0.0, None)
    return np.where(lin > 0.0031308, 1.055 * np.power(lin, 1 / 2.4) - 0.055, 12.92 * lin)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3), float in [0, 1] or uint8, -> CIE Lab D65 (..., 3) float32."""
    xyz = srgb_to_linear(rgb) @ _RGB_TO_XYZ.T.astype(np.float32)
    xyz = xyz / D65_WHITE.astype(np.float32)
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab.astype(np.float32)


# The uint8 fast path: the table above, then the XYZ matrix with the white point folded in,
# on channel planes (contiguous rows: each step is one vectorised pass over the pixels).
_RGB_TO_XYZN = _RGB_TO_XYZ / D65_WHITE[:, None]
_LINEAR64_OF_UINT8 = _LINEAR_OF_UINT8.astype(np.float64)  # the table's values, for float64 sums


def rgb8_lab_f(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> (3, P) float32 planes fx, fy, fz of its P pixels: CIE Lab's
    companding f of X/Xn, Y/Yn, Z/Zn, from which L = 116 fy - 16, a = 500 (fx - fy),
    b = 200 (fy - fz) (lab_f_to_l, lab_f_to_ab).

    The fast path of `stage`: the 256-entry linearisation table and the XYZ matrix with the
    white point folded in in one compiled pass (lab_kernels.xyzn_planes), numpy's cube root,
    and the linear segment (X/Xn <= (6/29)^3, a few percent of the values) in another.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb8_lab_f takes uint8, not {rgb.dtype}")
    from transforms import lab_kernels  # numba: imported by the jobs that take this path

    pixels = np.ascontiguousarray(rgb.reshape(-1, 3))
    xyz = lab_kernels.xyzn_planes(pixels, _LINEAR64_OF_UINT8, _RGB_TO_XYZN)
    f = np.cbrt(xyz)  # numpy's SIMD cube root
    lab_kernels.linear_segment(f, xyz, _EPS, _KAPPA)
    return f


def lab_f_to_l(f: np.ndarray) -> np.ndarray:
    """(3, P) planes of rgb8_lab_f -> the L plane (P,) float32."""
    l = f[1] * np.float32(116.0)
    l -= np.float32(16.0)
    return l


def lab_f_to_ab(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3, P) planes of rgb8_lab_f -> the a and b planes (P,) float32."""
    fx, fy, fz = f
    a = fx - fy
    a *= np.float32(500.0)
    b = fy - fz
    b *= np.float32(200.0)
    return a, b


def rgb8_to_lab_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 sRGB (..., 3) -> CIE Lab D65 as three float32 planes L, a, b, each (...).

    rgb8_lab_f's planes combined: the same maths as rgb_to_lab (256-entry linearisation
    table, float32 planes; the matrix summed in float64), within 1.2e-4 of those formulas in
    float64 (1.10e-4 measured over all 2^24 colours; rgb_to_lab 1.18e-4), so within 2.4e-4
    of rgb_to_lab and 5e-4 of skimage.color.rgb2lab (tests/test_colour.py).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb8_to_lab_planes takes uint8, not {rgb.dtype}")
    shape = rgb.shape[:-1]
    f = rgb8_lab_f(rgb)
    l = lab_f_to_l(f)
    a, b = lab_f_to_ab(f)
    return l.reshape(shape), a.reshape(shape), b.reshape(shape)


def lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """CIE Lab D65 (..., 3) -> sRGB (..., 3) float32, clipped to [0, 1] unless `clip=False`."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = np.maximum(fy - lab[..., 2] / 200.0, 0.0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, (116.0 * f - 16.0) / _KAPPA)
    xyz = xyz * D65_WHITE.astype(np.float32)
    rgb = linear_to_srgb(xyz @ _XYZ_TO_RGB.T.astype(np.float32)).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


def lab_in_gamut(lab: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Boolean mask of Lab colours whose sRGB lies inside [0, 1] (with tolerance `tol`)."""
    lab = np.asarray(lab)
    return lab_planes_in_gamut(lab[..., 0], lab[..., 1], lab[..., 2], tol)


def lab_planes_in_gamut(
    l: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float = 0.0
) -> np.ndarray:
    """lab_in_gamut of L, a, b given as planes (float64 maths, one linear-RGB channel at a
    time: no (..., 3) temporaries, so fit_into_gamut's bisection steps stay cheap)."""
    fy = (np.asarray(l, np.float64) + 16.0) / 116.0
    xyz = [
        _f_inverse(fy + np.asarray(a, np.float64) / 500.0),
        _f_inverse(fy),
        _f_inverse(fy - np.asarray(b, np.float64) / 200.0),
    ]
    inside = np.ones(fy.shape, bool)
    for row in _XYZN_TO_RGB:
        lin = row[0] * xyz[0] + row[1] * xyz[1] + row[2] * xyz[2]
        inside &= lin >= -tol
        inside &= lin <= 1.0 + tol
    return inside


def _f_inverse(f: np.ndarray) -> np.ndarray:
    """CIE Lab's inverse companding: f -> X/Xn (Y/Yn, Z/Zn)."""
    return np.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / _KAPPA)


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> YUV BT.601 (Y in [0, 1], U in ±0.436, V in ±0.615)."""
    return (np.asarray(rgb, dtype=np.float32) @ RGB_TO_YUV.T.astype(np.float32)).astype(np.float32)


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """YUV BT.601 -> sRGB (not clipped)."""
    return (np.asarray(yuv, dtype=np.float32) @ _YUV_TO_RGB.T.astype(np.float32)).astype(np.float32)


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """A gray sRGB intensity in [0, 1] -> L in [0, 100] (a = b = 0)."""
    y = srgb_to_linear(gray)
    return np.where(y > _EPS, 116.0 * np.cbrt(y) - 16.0, _KAPPA * y).astype(np.float32)


def l_to_gray(l: np.ndarray) -> np.ndarray:
    """L in [0, 100] -> the sRGB gray level in [0, 1] of the colour (L, 0, 0)."""
    fy = (np.asarray(l, dtype=np.float32) + 16.0) / 116.0
    y = np.where(fy > 6.0 / 29.0, fy**3, (116.0 * fy - 16.0) / _KAPPA)
    return np.clip(linear_to_srgb(y), 0.0, 1.0).astype(np.float32)


def chroma(ab: np.ndarray) -> np.ndarray:
    """Chroma sqrt(a^2 + b^2) of an (..., 2) ab array."""
    ab = np.asarray(ab, dtype=np.float32)
    return np.sqrt(ab[..., 0] ** 2 + ab[..., 1] ** 2)
