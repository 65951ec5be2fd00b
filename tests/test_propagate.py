"""Hint propagation baselines: inverse-distance weighting and Levin et al. 2004."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.hints import Hints, hint_map
from transforms.propagate import idw, levin, propagate, work_shape

RED, BLUE = (40.0, 10.0), (-30.0, -20.0)


def _two_sides():
    """L 40 left of column 15, 80 right of it; a red hint on the left, a blue one on the right."""
    l = np.full((20, 30), 40.0, np.float32)
    l[:, 15:] = 80.0
    h = Hints(np.array([[3, 10], [26, 10]], np.float32), np.array([RED, BLUE], np.float32), 0.0)
    return l, h


@pytest.mark.parametrize("method", ["idw", "levin"])
def test_one_hint_gives_a_constant(method):
    rng = np.random.default_rng(0)
    l = rng.uniform(0, 100, (24, 36)).astype(np.float32)
    h = Hints(np.array([[7, 5]], np.float32), np.array([RED], np.float32), 1.0)
    ab = propagate(method, l, h)
    assert ab.shape == (24, 36, 2)
    np.testing.assert_allclose(ab, np.broadcast_to(RED, ab.shape), atol=1e-3)


def test_levin_keeps_each_side_of_an_edge_idw_blends():
    l, h = _two_sides()
    lev = levin(l, hint_map(h, 30, 20, 30, 20))
    inv = idw(h.xy, h.ab, 30, 20)
    # Levin: every pixel within 2 ab units of its own side's hint.
    assert np.abs(lev[:, :15] - RED).max() < 2.0
    assert np.abs(lev[:, 15:] - BLUE).max() < 2.0
    # IDW ignores the edge: next to it the colours are a blend far from both hints.
    edge = inv[10, 14:16]
    assert np.all(np.abs(edge - RED).max(-1) > 15) and np.all(np.abs(edge - BLUE).max(-1) > 15)
    np.testing.assert_allclose(inv[10, 3], RED, atol=1e-4)  # exact at a hint centre


def test_no_hints_give_no_colour():
    l = np.full((8, 8), 50.0, np.float32)
    empty = Hints(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    for method in ("idw", "levin"):
        assert not propagate(method, l, empty).any()


def test_reduced_resolution_and_unknown_method():
    assert work_shape(768, 512) == (384, 256)
    assert work_shape(100, 50) == (100, 50)  # never upscaled
    l = np.full((64, 96), 50.0, np.float32)
    h = Hints(np.array([[90, 60]], np.float32), np.array([BLUE], np.float32), 3.0)
    for method in ("idw", "levin"):
        ab = propagate(method, l, h, work_size=32)
        assert ab.shape == (32, 48, 2)
        np.testing.assert_allclose(ab, np.broadcast_to(BLUE, ab.shape), atol=1e-3)
    with pytest.raises(ValueError, match="unknown propagation"):
        propagate("nearest", l, h)
