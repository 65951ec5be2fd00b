"""The colour codec on synthetic hypotheses: round trip, determinism, rate control."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from transforms import bitstream
from transforms import colourcodec as cc
from transforms.bitstream import BitstreamError
from transforms.crop import resize_float
from transforms.regions import GridLayout, source_taps, upsample_fixed

SHA = "ab" * 32
SHIFTS = np.array([[0, 0], [15, 0], [-15, 0], [0, 15], [0, -15]], np.float32)


def _truth(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = 30 * np.sin(x / 9 + seed) + 10
    b = 20 * np.cos(y / 7) - 5
    ab = np.stack([a, b], -1)
    ab[h // 3 : h // 2, w // 4 : w // 2] = (45, -30)  # a saturated patch
    return (ab + rng.normal(0, 1.5, ab.shape)).astype(np.float32)


def _hyps(ab: np.ndarray, size: int = 12, gain: float = 0.6) -> np.ndarray:
    small = resize_float(ab, size, size) * np.float32(gain)
    return np.stack([small + s for s in SHIFTS]).astype(np.float32)


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


@pytest.mark.parametrize("shape", [(37, 53), (61, 29), (1, 1), (16, 16), (3, 200)])
def test_round_trip_odd_and_portrait_sizes(shape):
    ab = _truth(*shape)
    hyps = _hyps(ab)
    for quality in (0, 60):
        data = cc.encode(ab, hyps, "multihypothesis", SHA, quality=quality, cell=8)
        header = cc.read_header(data)
        # K = 5, or a model-free (gray-mode) stream, which names no model and no K
        assert (header.height, header.width) == shape
        assert header.k == (0 if header.model_free else 5)
        out = cc.decode(data, hyps, "t.cbc", "multihypothesis", SHA)
        assert out.shape == (*shape, 2) and out.dtype == np.float32


def test_refinement_improves_and_rate_is_monotone():
    ab = _truth(96, 128)
    hyps = _hyps(ab)
    sizes, errors = [], []
    for quality in range(0, 101, 10):
        data = cc.encode(ab, hyps, "m", SHA, quality=quality, cell=16)
        sizes.append(len(data))
        errors.append(_err(cc.decode(data, hyps), ab))
    assert sizes == sorted(sizes), sizes  # lower quality -> never more bytes
    assert errors[-1] < 0.8 * errors[0], errors
    fine = cc.encode(ab, hyps, "m", SHA, quality=100, cell=16, refine_cell=4)
    assert _err(cc.decode(fine, hyps), ab) < 3.5  # noise floor ~1.9


def test_index_layer_picks_the_right_hypothesis():
    # each 16x16 cell is exactly one of K constant colours; the hypotheses are those colours
    rng = np.random.default_rng(1)
    colours = np.array([[-40, 10], [0, 0], [30, 50], [60, -20]], np.float32)
    truth_idx = rng.integers(0, 4, (4, 6))
    ab = GridLayout(64, 96, 16).expand(colours[truth_idx])
    hyps = np.broadcast_to(colours[:, None, None], (4, 8, 8, 2)).astype(np.float32)
    data = cc.encode(ab, hyps, "m", SHA, quality=0, cell=16)
    _, idx, q = cc.decode_layers(data)
    assert q is None
    assert (idx == truth_idx).all()
    assert np.array_equal(cc.decode(data, hyps), ab)


def test_determinism_and_quantized_hypotheses_only():
    ab = _truth(50, 70, seed=3)
    hyps = np.rint(_hyps(ab)) + np.float32(0.2)  # 0.2 away from any rounding boundary
    a = cc.encode(ab, hyps, "m", SHA, quality=70)
    assert a == cc.encode(ab, hyps, "m", SHA, quality=70)
    out1, out2 = cc.decode(a, hyps), cc.decode(a, hyps)
    assert np.array_equal(out1, out2)
    # the decoder only uses the int8-quantized hypotheses: tiny float noise changes nothing
    noisy = hyps + np.random.default_rng(0).uniform(-0.05, 0.05, hyps.shape).astype(np.float32)
    assert np.array_equal(cc.decode(a, noisy), out1)
    assert np.array_equal(cc.decode(a, cc.quantize_hypotheses(hyps)), out1)


def test_max_bytes_respected():
    ab = _truth(120, 90, seed=2)
    hyps = _hyps(ab)
    full = len(cc.encode(ab, hyps, "m", SHA, quality=100))
    last_quality = -1
    for budget in sorted((60, 90, 140, full // 2, full)):
        data = cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=budget)
        assert len(data) <= budget
        quality = cc.read_header(data).quality
        assert quality >= last_quality
        last_quality = quality
    assert cc.read_header(cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=full)).quality == 100
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cc, "_MODES", (cc.MODE_GRAY,))
        plain = cc.encode(ab, hyps, "m", SHA, quality=0)  # model-free, all gray: the smallest
    assert cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=len(plain)) == plain
    with pytest.raises(cc.CodecError, match=r"no bitstream fits in 10 bytes \(smallest \d+\)"):
        cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=10)


def test_a_region_cell_larger_than_the_image_is_the_image():
    ab = _truth(40, 30)
    data = cc.encode(ab, _hyps(ab), "m", SHA, quality=0, cell=100_000)
    assert cc.read_header(data).cell == 40
    assert cc.decode(data, _hyps(ab)).shape == (40, 30, 2)


def test_max_bytes_keeps_the_streams_that_fit(monkeypatch):
    """Under a budget between the gray-base and the index-layer streams' sizes, the search
    finds the gray-base stream of the highest quality that fits (it once threw those away
    whenever the index stream was cheaper in D + lambda R but over the budget)."""
    ab = _truth(120, 90, seed=2)
    hyps = _hyps(ab)
    indexed = cc.encode(ab, hyps, "m", SHA, quality=1)
    for budget in (len(indexed) - 1, len(indexed) - 10):
        got = cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=budget)
        with monkeypatch.context() as m:
            m.setattr(cc, "_MODES", (cc.MODE_GRAY,))
            gray_only = cc.encode(ab, hyps, "m", SHA, quality=100, max_bytes=budget)
        assert len(got) <= budget
        assert cc.read_header(got).quality >= cc.read_header(gray_only).quality > 0, budget


def test_single_hypothesis_and_errors():
    ab = _truth(20, 30)
    hyps = _hyps(ab)[:1]
    data = cc.encode(ab, hyps, "m", SHA, quality=80)
    assert cc.decode(data, hyps).shape == (20, 30, 2)
    with pytest.raises(cc.CodecError):
        cc.decode(data, _hyps(ab))  # K = 5 but the stream says 1
    with pytest.raises(BitstreamError, match="wrong model"):
        cc.decode(data, hyps, "x.cbc", model_id="other")
    with pytest.raises(BitstreamError, match="checksum"):
        bad = bytearray(data)
        bad[-6] ^= 4
        cc.decode(bytes(bad), hyps)
    with pytest.raises(cc.CodecError):
        cc.encode(ab[..., :1], hyps, "m", SHA)


def test_upsample_fixed_is_bilinear_and_integer():
    x = np.arange(12, dtype=np.int16).reshape(3, 4, 1) * 16
    up = upsample_fixed(x, 3, 4, out_bits=0)
    assert np.array_equal(up, x)  # same size: identity
    up = upsample_fixed(x, 6, 8, out_bits=4) / 16.0
    i0, i1, w = source_taps(8, 4)
    assert (i0 <= i1).all() and (w < 64).all()
    # interior values lie between their neighbours; corners are the corner values
    assert up[0, 0, 0] == x[0, 0, 0] and up[-1, -1, 0] == x[-1, -1, 0]
    assert up.dtype == np.float64 and np.all(np.diff(up[..., 0], axis=1) >= 0)
    with pytest.raises(TypeError):
        upsample_fixed(x.astype(np.float32), 6, 8)


def test_grid_layout():
    g = GridLayout(37, 53, 16)
    assert (g.rows, g.cols, g.count) == (3, 4, 12)
    assert g.counts().sum() == 37 * 53
    x = np.ones((37, 53, 2))
    assert np.array_equal(g.sums(x)[..., 0], g.counts())
    assert g.labels().max() == 11 and g.expand(np.zeros((3, 4))).shape == (37, 53)


def test_gray_mode_decodes_without_the_model():
    # hypotheses far from a near-gray truth: the gray base wins, and needs no hypotheses
    ab = _truth(64, 80, seed=4) * np.float32(0.1)
    far = np.array([[80, 0], [-80, 0], [0, 70], [0, -70], [60, 60]], np.float32)
    bad = np.broadcast_to(far[:, None, None], (5, 8, 8, 2)).astype(np.float32)
    data = cc.encode(ab, bad, "m", SHA, quality=40)
    assert not cc.needs_hypotheses(data)
    _, idx, q = cc.decode_layers(data)
    assert idx is None and q is not None
    assert np.array_equal(cc.decode(data, None), cc.decode(data, bad))
    # exact hypotheses: the index layer wins, and decoding it without them is refused
    colours = np.array([[-40, 10], [30, 50]], np.float32)
    truth = GridLayout(32, 48, 16).expand(colours[np.array([[0, 1, 0], [1, 0, 1]])])
    hyps = np.broadcast_to(colours[:, None, None], (2, 4, 4, 2)).astype(np.float32)
    data = cc.encode(truth, hyps, "m", SHA, quality=0, cell=16)
    assert cc.needs_hypotheses(data)
    with pytest.raises(cc.CodecError, match="needs the model"):
        cc.decode(data, None)


def test_index_layer_has_a_gray_option():
    # left half gray, right half one hypothesis' colour; the other hypothesis is far from both
    colours = np.array([[50, 50], [-30, 20]], np.float32)
    ab = np.zeros((32, 64, 2), np.float32)
    ab[:, 32:] = colours[1]
    hyps = np.broadcast_to(colours[:, None, None], (2, 4, 4, 2)).astype(np.float32)
    data = cc.encode(ab, hyps, "m", SHA, quality=0, cell=16)
    _, idx, _ = cc.decode_layers(data)
    assert (idx[:, :2] == 2).all() and (idx[:, 2:] == 1).all()  # 2 = K = gray
    assert np.array_equal(cc.decode(data, hyps), ab)


def test_quality_ladder_is_monotone():
    params = [cc.quality_params(q) for q in range(1, 101)]
    cells = [p.refine_cell for p in params]
    assert cells == sorted(cells, reverse=True)  # the grid only gets finer
    for a, b in zip(params, params[1:], strict=False):
        if a.refine_cell == b.refine_cell:
            assert b.refine_step_q <= a.refine_step_q  # and, on one grid, the step finer
    assert cc.quality_params(100).refine_step_q == 4  # 1 ab unit


def test_refinement_values_sit_at_their_cell_centres():
    # 25 x 37 px in 5 px cells: the last column of cells is cut to 2 px; the field must still
    # put each value at its cell's centre (not stretch the grid over the image)
    rng = np.random.default_rng(5)
    q = rng.integers(-6, 7, (5, 8, 2))
    field = cc._refinement_field(q, 4, 25, 37, 5, None)
    assert field.shape == (25, 37, 2)
    centres = field[2::5, 2::5]  # pixel 5j + 2 is cell j's centre (cell 7 has no centre here)
    assert np.array_equal(centres, q[:, :7] * 4 * cc.UP_SCALE // 4)


def _edge_scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(L, ab) of flat discs whose colour edges are their luminance edges (not cell-aligned)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    l_full, ab = np.full((h, w), 40.0), np.zeros((h, w, 2))
    ab[:] = (10, 20)
    for _ in range(8):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(h / 12, h / 5)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        l_full[disc], ab[disc] = rng.uniform(15, 90), rng.uniform(-50, 50, 2)
    l_full += rng.normal(0, 0.5, l_full.shape)
    ab += rng.normal(0, 1, ab.shape)
    return l_full.astype(np.float32), ab.astype(np.float32)


def test_guided_stream_round_trip_and_errors():
    """A guide writes filter 1; decoding needs the same guide and is deterministic."""
    l_full, ab = _edge_scene(61, 83)
    guide, hyps = cc.guide_from_l(l_full), _hyps(ab)
    data = cc.encode(ab, hyps, "m", SHA, quality=70, guide=guide)
    assert cc.read_header(data).refine_filter == cc.FILTER_GUIDED
    assert cc.read_header(cc.encode(ab, hyps, "m", SHA, quality=70)).refine_filter == 0
    assert data == cc.encode(ab, hyps, "m", SHA, quality=70, guide=guide.copy())
    out = cc.decode(data, hyps, guide=guide)
    assert out.shape == (61, 83, 2) and out.dtype == np.float32
    assert np.array_equal(out, cc.decode(data, hyps, guide=guide.copy()))
    flat = np.full_like(guide, 128)  # another luminance: refused unless asked for
    with pytest.raises(BitstreamError, match="wrong luminance"):
        cc.decode(data, hyps, "x.cbc", guide=flat)
    assert not np.array_equal(out, cc.decode(data, hyps, guide=flat, any_luminance=True))
    with pytest.raises(cc.CodecError, match="guide"):
        cc.decode(data, hyps)
    for bad in (guide[:-1], guide.T, guide.astype(np.float32), guide[..., None]):
        with pytest.raises(cc.CodecError, match="guide"):
            cc.decode(data, hyps, guide=bad)
        with pytest.raises(cc.CodecError, match="guide"):
            cc.encode(ab, hyps, "m", SHA, quality=70, guide=bad)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("quality", [75, 90])
def test_guided_beats_bilinear_on_luminance_edges(seed, quality):
    """Same quality, colour edges on luminance edges: lower ab error, at most ~10% more bytes."""
    l_full, ab = _edge_scene(96, 128, seed)
    guide, hyps = cc.guide_from_l(l_full), _hyps(ab)
    plain = cc.encode(ab, hyps, "m", SHA, quality=quality)
    guided = cc.encode(ab, hyps, "m", SHA, quality=quality, guide=guide)
    err_plain = _err(cc.decode(plain, hyps), ab)
    err_guided = _err(cc.decode(guided, hyps, guide=guide), ab)
    assert err_guided < 0.95 * err_plain, (err_guided, err_plain)
    assert len(guided) <= 1.1 * len(plain), (len(guided), len(plain))


def test_gray_mode_streams_are_model_free():
    """A gray-mode stream names no model (any weights decode it, hypotheses are ignored and not
    needed); a model-free header over an index-layer payload is refused, not misread."""
    ab = _truth(40, 56, seed=4)
    data = cc.encode(ab, np.zeros((5, 8, 8, 2), np.float32), "multihypothesis", SHA, quality=60)
    header = cc.read_header(data)
    assert header.model_free and not cc.needs_hypotheses(data)
    out = cc.decode(data, None, "g.cbc", "multihypothesis", "ab" * 32)
    np.testing.assert_array_equal(out, cc.decode(data, _hyps(ab)))
    indexed = cc.encode(ab, _hyps(ab), "m", SHA, quality=0)
    assert cc.needs_hypotheses(indexed)
    _, payload = bitstream.unpack(indexed)
    forged = bitstream.pack(
        replace(cc.read_header(indexed), model_id="", weights_hash=b"", k=0, hyp_height=0,
                hyp_width=0),
        payload,
    )  # fmt: skip
    with pytest.raises(BitstreamError, match="invalid payload"):
        cc.decode(forged, _hyps(ab), "forged.cbc")


def test_version_2_stream_still_decodes_to_the_same_pixels():
    """tests/data/v2_gray_q95.cbc was written by the format-2 encoder (commit 43d9fc3: no
    filter byte, refinement coded without sign / magnitude contexts); today's decoder must
    give exactly the pixels that encoder's decoder gave (their SHA-256, recorded then)."""
    import hashlib
    from pathlib import Path

    data = (Path(__file__).parent / "data" / "v2_gray_q95.cbc").read_bytes()
    header = cc.read_header(data)
    assert header.version == 2 and header.refine_filter == 0 and header.refine_cell
    out = cc.decode(data, None)
    digest = hashlib.sha256(out.tobytes()).hexdigest()
    assert digest == "fc5bdeca99f8a6d53b62d8d1fa74916e9398c1ed67b5bf8973ad7cc1e9a52b54"


def test_luminance_signature_refuses_another_photo_and_passes_a_reencode():
    """A stream coded with a guide carries its signature: the same gray levels, or the
    luminance re-encoded as JPEG, decode; another scene of the same size is "wrong
    luminance" naming the file; a stream coded without a guide carries none."""
    import io

    from PIL import Image

    l_full, ab = _edge_scene(64, 96, seed=5)
    guide, hyps = cc.guide_from_l(l_full), _hyps(ab)
    data = cc.encode(ab, hyps, "m", SHA, quality=60, guide=guide)
    header = cc.read_header(data)
    assert header.luminance == cc.luminance_signature(guide) and header.version == 4
    buf = io.BytesIO()
    Image.fromarray(guide, "L").save(buf, "JPEG", quality=30)
    reencoded = np.asarray(Image.open(buf))
    assert not np.array_equal(reencoded, guide)
    cc.check_luminance(header, reencoded, "x.cbc")
    cc.decode(data, hyps, guide=reencoded)
    other = cc.guide_from_l(_edge_scene(64, 96, seed=6)[0])
    with pytest.raises(BitstreamError, match=r"^x.cbc: wrong luminance \(its quarters"):
        cc.check_luminance(header, other, "x.cbc")
    assert not cc.read_header(cc.encode(ab, hyps, "m", SHA, quality=60)).luminance


def test_version_3_stream_still_decodes_to_the_same_pixels():
    """tests/data/v3_guided_q70.cbc was written by the format-3 encoder (commit f5037a6: no
    luminance signature) with the guide tests/data/v3_guided_q70.l.png; today's decoder must
    give exactly the pixels that encoder's decoder gave (their SHA-256, recorded then), and
    checks no signature (the stream has none)."""
    import hashlib
    from pathlib import Path

    from PIL import Image

    folder = Path(__file__).parent / "data"
    data = (folder / "v3_guided_q70.cbc").read_bytes()
    guide = np.asarray(Image.open(folder / "v3_guided_q70.l.png"))
    header = cc.read_header(data)
    assert header.version == 3 and header.refine_filter == cc.FILTER_GUIDED
    assert header.luminance == b""
    out = cc.decode(data, None, guide=guide)
    digest = hashlib.sha256(out.tobytes()).hexdigest()
    assert digest == "beffa2ab497aa845dc1a46f93210594e2b78b15604a61797326b1e5ed7a737e0"
    cc.decode(data, None, guide=np.zeros_like(guide))  # nothing to check it against
