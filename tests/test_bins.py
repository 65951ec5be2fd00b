"""transforms.bins: the derived ab gamut and the hard / soft encodings onto it."""

from __future__ import annotations

import numpy as np
import pytest

from transforms import bins
from transforms.colour import rgb_to_lab

# The sRGB (D65) gamut quantized on a grid of 10 has 261 bins. Zhang et al.'s released
# table (pts_in_hull.npy) has 313 entries: it also holds 52 bins outside sRGB, because it was
# collected from data rather than derived from the gamut. 261 is the right count here.
EXPECTED_BINS = 261


def _grid_codes(ab: np.ndarray) -> np.ndarray:
    """Integer code of the grid cell each ab value rounds to (one int per point, fast unique)."""
    ij = np.round(np.asarray(ab) / bins.GRID).astype(np.int64) + 64
    return ij[..., 0] * 1000 + ij[..., 1]


def _bin_codes() -> set[int]:
    return set(_grid_codes(bins.gamut_bins()).tolist())


def _brute_d2(ab: np.ndarray) -> np.ndarray:
    """Squared distances (N, Q) from each ab point to every bin centre, in float64."""
    c = bins.gamut_bins().astype(np.float64)
    return ((np.asarray(ab, dtype=np.float64)[:, None, :] - c[None]) ** 2).sum(-1)


def _all_srgb_chunks(chunk_r: int = 32):
    v = np.arange(256, dtype=np.float32) / 255.0
    g, b = (x.ravel() for x in np.meshgrid(v, v, indexing="ij"))
    for r0 in range(0, 256, chunk_r):
        r = np.repeat(np.arange(r0, r0 + chunk_r, dtype=np.float32) / 255.0, g.size)
        yield np.stack([r, np.tile(g, chunk_r), np.tile(b, chunk_r)], -1)


# --- the gamut -----------------------------------------------------------------------------


def test_gamut_bin_count():
    assert bins.gamut_bins().shape == (EXPECTED_BINS, 2)
    assert bins.num_bins() == EXPECTED_BINS


def test_gamut_bins_on_grid_and_in_range():
    c = bins.gamut_bins()
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, np.round(c / 10.0) * 10.0)  # multiples of 10
    assert c.min() >= -bins.AB_RANGE and c.max() <= bins.AB_RANGE
    assert len({tuple(x) for x in c.tolist()}) == len(c)  # no duplicates


def test_gamut_bins_sorted_by_a_then_b():
    c = bins.gamut_bins()
    order = np.lexsort((c[:, 1], c[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(c)))


def test_gamut_bins_read_only():
    with pytest.raises(ValueError):
        bins.gamut_bins()[0, 0] = 1.0


def test_gamut_contains_known_colours():
    # neutral, and the rounded ab of the sRGB primaries / secondaries
    prim = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.5] * 3])
    codes = _grid_codes(rgb_to_lab(prim.astype(np.float32))[:, 1:])
    assert set(codes.tolist()) <= _bin_codes()
    assert _grid_codes(np.array([0.0, 0.0])) in _bin_codes()
    # far corners of the ab square are outside sRGB
    for corner in ([-110, -110], [110, 110], [110, -110], [-110, 110]):
        assert _grid_codes(np.array(corner, dtype=float)) not in _bin_codes()


def test_random_srgb_colours_round_into_the_gamut():
    rgb = np.random.default_rng(0).integers(0, 256, (200_000, 3)).astype(np.float32) / 255.0
    codes = set(_grid_codes(rgb_to_lab(rgb)[:, 1:]).tolist())
    assert codes <= _bin_codes()


@pytest.mark.slow
def test_face_and_interior_sampling_equals_all_srgb_colours():
    """The derivation's cube sampling reaches exactly the bins that all 2^24 colours reach."""
    reached: set[int] = set()
    for rgb in _all_srgb_chunks():
        reached |= set(np.unique(_grid_codes(rgb_to_lab(rgb)[:, 1:])).tolist())
    assert len(reached) == EXPECTED_BINS
    assert reached == _bin_codes()


@pytest.mark.slow
def test_every_srgb_colour_nearest_centre_is_a_bin():
    """For every 8-bit colour, hard_encode picks a bin as near as its own grid cell centre."""
    centres = bins.gamut_bins().astype(np.float64)
    worst = 0.0
    for rgb in _all_srgb_chunks():
        ab = rgb_to_lab(rgb)[:, 1:].astype(np.float64)
        cell = np.round(ab / bins.GRID) * bins.GRID  # the nearest grid centre
        d_cell = np.hypot(*(ab - cell).T)
        d_hard = np.hypot(*(ab - centres[bins.hard_encode(ab)]).T)
        # hard_encode works on ab rounded to the 1-unit lattice: at most sqrt(2)/2 off,
        # so it can lose at most twice that against the exact nearest centre.
        worst = max(worst, float((d_hard - d_cell).max()))
    assert worst <= np.sqrt(2.0) + 1e-6


# --- hard encoding -------------------------------------------------------------------------


def test_neighbour_table_shape():
    t = bins.neighbour_table()
    assert t.shape == (257, 257, bins.SOFT_NEIGHBOURS)
    assert t.min() >= 0 and t.max() < bins.num_bins()


def test_hard_encode_equals_brute_force_on_integer_points():
    rng = np.random.default_rng(42)
    ab = rng.integers(-115, 116, (3000, 2)).astype(np.float32)
    got = bins.hard_encode(ab)
    assert got.shape == (3000,)
    d2 = _brute_d2(ab)
    best = d2.min(1)
    # the chosen bin is at the minimum distance (ties are allowed to go either way) ...
    np.testing.assert_allclose(d2[np.arange(len(ab)), got], best, atol=1e-6)
    # ... and where the minimum is unique it is exactly the brute-force argmin
    unique = (np.isclose(d2, best[:, None])).sum(1) == 1
    assert unique.mean() > 0.5
    np.testing.assert_array_equal(got[unique], d2.argmin(1)[unique])


def test_hard_encode_of_bin_centres_is_identity():
    c = bins.gamut_bins()
    np.testing.assert_array_equal(bins.hard_encode(c), np.arange(len(c)))


def test_hard_encode_keeps_image_shape():
    ab = np.random.default_rng(1).uniform(-60, 60, (7, 9, 2))
    assert bins.hard_encode(ab).shape == (7, 9)


# --- soft encoding -------------------------------------------------------------------------


def test_soft_encode_indices_are_the_five_nearest_on_integer_points():
    rng = np.random.default_rng(5)
    ab = rng.integers(-100, 101, (2000, 2)).astype(np.float32)
    idx, w = bins.soft_encode(ab)
    k = bins.SOFT_NEIGHBOURS
    assert idx.shape == (2000, k) and w.shape == (2000, k)
    d2 = _brute_d2(ab)
    ranked = np.sort(d2, axis=1)
    got = np.take_along_axis(d2, idx, axis=1)
    # distances of the chosen bins are the K smallest, nearest first
    np.testing.assert_allclose(got, ranked[:, :k], atol=1e-6)
    # where the K-th and (K+1)-th distances differ, the chosen set is the brute-force set
    clear = ranked[:, k] - ranked[:, k - 1] > 1e-6
    assert clear.mean() > 0.5
    brute = np.argsort(d2, axis=1, kind="stable")[:, :k]
    for row in np.flatnonzero(clear):
        assert set(idx[row].tolist()) == set(brute[row].tolist())
    # no bin appears twice
    assert all(len(set(r)) == k for r in idx.tolist())


def test_soft_encode_weights_sum_to_one_and_decrease_on_lattice():
    ab = np.random.default_rng(9).integers(-80, 81, (500, 2)).astype(np.float32)
    _, w = bins.soft_encode(ab)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert (w > 0).all()
    assert (np.diff(w, axis=-1) <= 1e-6).all()  # nearest first => largest weight first


def test_soft_encode_off_lattice_is_near_the_true_neighbours():
    """Off the 1-unit lattice the neighbours are those of the rounded point: each of the K
    chosen distances is within sqrt(2) (twice the rounding error) of the true K-th nearest."""
    ab = np.random.default_rng(10).uniform(-80, 80, (500, 2)).astype(np.float32)
    idx, w = bins.soft_encode(ab)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert (w > 0).all()
    d = np.sqrt(_brute_d2(ab))
    k = bins.SOFT_NEIGHBOURS
    chosen = np.sort(np.take_along_axis(d, idx, axis=1), axis=1)
    true = np.sort(d, axis=1)[:, :k]
    assert (chosen - true).max() <= np.sqrt(2.0) + 1e-4
    # the weights follow the true distances of the chosen bins
    g = np.exp(-(np.take_along_axis(d, idx, axis=1) ** 2) / 50.0)
    np.testing.assert_allclose(w, g / g.sum(-1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize(
    "point, expected_d2",
    [
        # (0, 0): itself, then the four axis neighbours at distance 10
        ((0.0, 0.0), [0.0, 100.0, 100.0, 100.0, 100.0]),
        # (2, 0): (0,0) 4, (10,0) 64, (0,±10) 104, (-10,0) 144
        ((2.0, 0.0), [4.0, 64.0, 104.0, 104.0, 144.0]),
    ],
)
def test_soft_encode_matches_hand_computed_gaussian(point, expected_d2):
    idx, w = bins.soft_encode(np.array(point, dtype=np.float32))
    d2 = ((bins.gamut_bins()[idx] - np.array(point)) ** 2).sum(-1)
    np.testing.assert_allclose(np.sort(d2), expected_d2, atol=1e-4)
    g = np.exp(-np.array(expected_d2) / (2 * 5.0**2))  # sigma = 5
    np.testing.assert_allclose(np.sort(w)[::-1], g / g.sum(), rtol=1e-5)
    # e.g. at (0,0): 1 / (1 + 4 e^-2) ~= 0.6488
    if point == (0.0, 0.0):
        assert w.max() == pytest.approx(1.0 / (1.0 + 4.0 * np.exp(-2.0)), rel=1e-5)


def test_soft_encode_uses_true_distance_for_weights():
    # 0.4 rounds to the lattice point 0, but the weights use the exact ab value
    idx0, w0 = bins.soft_encode(np.array([0.0, 0.0], dtype=np.float32))
    idx1, w1 = bins.soft_encode(np.array([0.4, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(idx0, idx1)
    d2 = ((bins.gamut_bins()[idx1] - np.array([0.4, 0.0])) ** 2).sum(-1)
    g = np.exp(-d2 / 50.0)
    np.testing.assert_allclose(w1, g / g.sum(), rtol=1e-5)
    assert not np.allclose(w0, w1)


# --- histogram and decoding ----------------------------------------------------------------


def test_histogram_counts_pixels():
    ab = np.random.default_rng(2).normal(scale=30, size=(16, 20, 2))
    h = bins.histogram(ab)
    assert h.shape == (bins.num_bins(),)
    assert h.dtype == np.int64
    assert h.sum() == 16 * 20
    np.testing.assert_array_equal(h, np.bincount(bins.hard_encode(ab).ravel(), minlength=261))


def test_histogram_of_constant_image():
    ab = np.full((5, 5, 2), [20.0, -30.0])
    h = bins.histogram(ab)
    k = int(np.flatnonzero(h)[0])
    assert h[k] == 25 and np.count_nonzero(h) == 1
    np.testing.assert_array_equal(bins.gamut_bins()[k], [20.0, -30.0])


def test_annealed_mean_t1_is_the_mean():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(bins.num_bins()), size=(4, 6))
    got = bins.annealed_mean(p, temperature=1.0)
    assert got.shape == (4, 6, 2)
    np.testing.assert_allclose(got, p @ bins.gamut_bins().astype(np.float64), atol=1e-3)


def test_annealed_mean_small_t_is_the_mode():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(bins.num_bins()) * 0.5, size=50)
    rows = np.arange(len(p))
    p[rows, p.argmax(-1)] *= 1.5  # a clear mode: 1.5^100 at T = 0.01
    p /= p.sum(-1, keepdims=True)
    mode = bins.gamut_bins()[p.argmax(-1)]
    mean = bins.annealed_mean(p, temperature=1.0)
    cold = bins.annealed_mean(p, temperature=0.01)
    np.testing.assert_allclose(cold, mode, atol=0.5)
    # the default T = 0.38 lies between mean and mode
    mid = bins.annealed_mean(p)
    d_mid = np.linalg.norm(mid - mode, axis=-1)
    d_mean = np.linalg.norm(mean - mode, axis=-1)
    assert (d_mid < d_mean).mean() > 0.9


def test_annealed_mean_custom_centres():
    centres = np.array([[0.0, 0.0], [10.0, 20.0]])
    got = bins.annealed_mean(np.array([0.25, 0.75]), temperature=1.0, centres=centres)
    np.testing.assert_allclose(got, [7.5, 15.0], atol=1e-5)
    # T = 0.5 squares the probabilities: 1/16 vs 9/16 -> 0.1, 0.9
    got = bins.annealed_mean(np.array([0.25, 0.75]), temperature=0.5, centres=centres)
    np.testing.assert_allclose(got, [9.0, 18.0], atol=1e-4)
