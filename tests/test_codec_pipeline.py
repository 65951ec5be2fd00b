"""The encode / decode jobs: single-file round trips (determinism, bad bitstreams, the user's
own grayscale file), the hypotheses handler, and (slow) the Beam pipelines end to end."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from models.handler import ColorizerHandler
from models.infer import predict_hypotheses
from pipeline import decode, encode
from tests.conftest_models import BEAM_ARGS, job_args, one_thread, write_tiny_checkpoint
from tests.helpers import capture_pipelines, smooth_colour_field, upstream_of
from transforms import colourcodec
from transforms.colour import rgb_to_lab
from transforms.decode import ImageError
from transforms.luminance import decode_luminance, encode_luminance


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mh") / "mh.pt"
    write_tiny_checkpoint(path, "multihypothesis", k=3, temperature=1.0)
    return str(path)


def _photo(path: Path, h: int, w: int, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = smooth_colour_field(h, w, seed=seed)
    if mode == "I;16":  # a 16-bit grayscale PNG
        g = (rgb.mean(-1) * 257).astype(np.uint16)
        Image.fromarray(g).save(path)  # Pillow writes mode I;16
    else:
        Image.fromarray(rgb).save(path)
    return path


def _encode(src: Path, out: Path, weights: str, *extra: str) -> dict:
    args = job_args(encode, [str(src), "-o", str(out), "--weights", weights, *extra])
    return encode.encode_file(str(src), str(out), args)


def _decode(src: Path, out: Path, weights: str, *extra: str) -> np.ndarray:
    args = job_args(decode, [str(src), "-o", str(out), "--weights", weights, *extra])
    decode.decode_file(str(src), str(out), args)
    return np.asarray(Image.open(out))


def test_luminance_file_round_trip():
    l = rgb_to_lab(smooth_colour_field(20, 30, seed=1))[..., 0]
    png = decode_luminance(encode_luminance(l, "png"))
    assert png.shape == l.shape and np.abs(png - l).max() < 0.5  # 8-bit gray steps
    jpg = decode_luminance(encode_luminance(l, "jpeg", 90))
    assert np.abs(jpg - l).mean() < 1.0
    with pytest.raises(ValueError):
        encode_luminance(l, "gif")


def test_handler_returns_k_hypotheses_independent_of_batching(weights):
    handler = ColorizerHandler("multihypothesis", weights, "cpu", hypotheses=True)
    model = handler.load_model()
    batch = [
        np.random.default_rng(i).uniform(0, 100, (32, 32)).astype(np.float32) for i in range(3)
    ]
    together = [r.inference for r in handler.run_inference(batch, model)]
    alone = predict_hypotheses(model, batch[1][None])[0]
    assert together[1].shape == (3, 8, 8, 2)
    np.testing.assert_array_equal(together[1], alone)


def test_encode_twice_same_bytes_decode_twice_same_pixels(tmp_path, weights):
    src = _photo(tmp_path / "in" / "odd.png", 37, 53, seed=2)
    a = _encode(src, tmp_path / "a" / "odd.cbc", weights, "--quality", "60")
    b = _encode(src, tmp_path / "b" / "odd.cbc", weights, "--quality", "60")
    assert (tmp_path / "a" / "odd.cbc").read_bytes() == (tmp_path / "b" / "odd.cbc").read_bytes()
    assert (tmp_path / "a" / "odd.l.jpg").exists()
    assert a["colour_bytes"] == b["colour_bytes"] > 0 and (a["width"], a["height"]) == (53, 37)
    one = _decode(tmp_path / "a" / "odd.cbc", tmp_path / "one.png", weights)
    two = _decode(tmp_path / "a" / "odd.cbc", tmp_path / "two.png", weights)
    assert one.shape == (37, 53, 3)
    np.testing.assert_array_equal(one, two)
    # the decoder reproduces the encoder's own round trip: its CIEDE2000 is the reported one
    from transforms.metrics import ciede2000

    truth = np.asarray(Image.open(src).convert("RGB"))
    assert ciede2000(rgb_to_lab(truth), rgb_to_lab(one)) == pytest.approx(a["ciede2000"], abs=1e-6)


def test_quality_and_max_bytes(tmp_path, weights):
    src = _photo(tmp_path / "p.png", 64, 48, seed=3)
    lo = _encode(src, tmp_path / "lo.cbc", weights, "--quality", "0")
    hi = _encode(src, tmp_path / "hi.cbc", weights, "--quality", "90")
    assert lo["colour_bytes"] < hi["colour_bytes"]
    assert hi["ciede2000"] < lo["ciede2000"]
    cap = _encode(src, tmp_path / "cap.cbc", weights, "--quality", "90", "--max-bytes", "120")
    assert cap["colour_bytes"] <= 120


def test_bad_bitstreams_name_the_file_and_write_nothing(tmp_path, weights):
    src = _photo(tmp_path / "in" / "p.png", 40, 40, seed=4)
    _encode(src, tmp_path / "p.cbc", weights)
    good = (tmp_path / "p.cbc").read_bytes()
    cases = {
        "truncated": good[: len(good) // 2],
        "corrupt": good[:-6] + bytes([good[-6] ^ 0x10]) + good[-5:],
        "version": good[:4] + b"\x09" + good[5:],
        "notcbc": b"\x89PNG\r\n\x1a\n" + good[8:],
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.cbc").write_bytes(data)
        shutil.copy(tmp_path / "p.l.jpg", tmp_path / f"{name}.l.jpg")
        with pytest.raises(ImageError) as e:
            _decode(tmp_path / f"{name}.cbc", tmp_path / f"{name}.png", weights)
        assert f"{name}.cbc" in str(e.value)
        assert not (tmp_path / f"{name}.png").exists()
    other = tmp_path / "other.pt"
    write_tiny_checkpoint(other, "multihypothesis", seed=1, k=3)
    # the tiny model's hypotheses lose to gray: a model-free stream, which any weights decode
    assert colourcodec.read_header(good).model_free
    _decode(tmp_path / "p.cbc", tmp_path / "w.png", str(other))
    # an index-layer stream (hypotheses = the truth, so the index layer wins) names its weights
    lab = rgb_to_lab(np.asarray(Image.open(src).convert("RGB")))
    hyps = np.stack([lab[::5, ::5, 1:] + d for d in (0.0, 20.0, -20.0)])
    sha = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    data = colourcodec.encode(lab[..., 1:], hyps, "multihypothesis", sha, quality=0)
    assert colourcodec.needs_hypotheses(data)
    (tmp_path / "idx.cbc").write_bytes(data)
    shutil.copy(tmp_path / "p.l.jpg", tmp_path / "idx.l.jpg")
    with pytest.raises(ImageError, match="wrong weights"):
        _decode(tmp_path / "idx.cbc", tmp_path / "w2.png", str(other))
    assert not (tmp_path / "w2.png").exists()
    (tmp_path / "p.l.jpg").unlink()
    with pytest.raises(ImageError, match="no luminance file"):
        _decode(tmp_path / "p.cbc", tmp_path / "x.png", weights)


def test_rerun_in_the_other_luminance_format_leaves_one_luminance_file(tmp_path, weights):
    src = _photo(tmp_path / "p.png", 30, 44, seed=5)
    _encode(src, tmp_path / "o" / "p.cbc", weights)
    row = _encode(src, tmp_path / "o" / "p.cbc", weights, "--l-format", "png")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p.cbc", "p.l.png"]
    assert decode.find_luminance(str(tmp_path / "o" / "p.cbc")) == row["luminance_uri"]
    capped = _encode(src, tmp_path / "c.cbc", weights, "--quality", "90", "--max-bytes", "60")
    coded = colourcodec.read_header((tmp_path / "c.cbc").read_bytes()).quality
    assert capped["quality"] == coded < 90  # the quality used, not the one asked for


def test_crafted_hypothesis_maps_and_gray_streams_of_other_weights(tmp_path, weights):
    """A header with a valid CRC but a hypothesis map no model makes is a bad bitstream (not
    a crash in the model); a version-2 gray-mode stream names its model yet needs none."""
    from dataclasses import replace

    from transforms import bitstream

    src = _photo(tmp_path / "in" / "p.png", 40, 40, seed=4)
    _encode(src, tmp_path / "p.cbc", weights)
    lab = rgb_to_lab(np.asarray(Image.open(src).convert("RGB")))
    hyps = np.stack([lab[::5, ::5, 1:] + d for d in (0.0, 20.0, -20.0)])
    sha = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    good = colourcodec.encode(lab[..., 1:], hyps, "multihypothesis", sha, quality=0)
    header, payload = bitstream.unpack(good)
    for hyp in (33, 20000):
        crafted = bitstream.pack(replace(header, hyp_height=hyp, hyp_width=hyp), payload)
        (tmp_path / f"h{hyp}.cbc").write_bytes(crafted)
        shutil.copy(tmp_path / "p.l.jpg", tmp_path / f"h{hyp}.l.jpg")
        with pytest.raises(ImageError, match=f"a {hyp}x{hyp} hypothesis map is none the model"):
            _decode(tmp_path / f"h{hyp}.cbc", tmp_path / f"h{hyp}.png", weights)
    v2 = tmp_path / "v2.cbc"
    v2.write_bytes((Path(__file__).parent / "data" / "v2_gray_q95.cbc").read_bytes())
    v2_header = colourcodec.read_header(v2.read_bytes())
    assert not v2_header.model_free and v2_header.weights_hash != bitstream.weights_hash(sha)
    gray = np.full((v2_header.height, v2_header.width), 128, np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "v2.l.png")
    out = _decode(v2, tmp_path / "v2.png", weights)
    assert out.shape == (v2_header.height, v2_header.width, 3)


def test_decode_with_the_users_own_grayscale_file(tmp_path, weights):
    src = _photo(tmp_path / "p.png", 30, 44, seed=5)
    _encode(src, tmp_path / "p.cbc", weights, "--l-format", "png")
    gray = np.asarray(Image.open(tmp_path / "p.l.png"))
    own = tmp_path / "scan.png"
    Image.fromarray(gray, "L").save(own)
    out = _decode(tmp_path / "p.cbc", tmp_path / "c.png", weights, "--luminance", str(own))
    l_out = rgb_to_lab(out)[..., 0]
    assert np.abs(l_out - decode_luminance(own.read_bytes())).mean() < 1.0
    wrong = tmp_path / "small.png"
    Image.fromarray(gray[:20], "L").save(wrong)
    with pytest.raises(ImageError, match="luminance"):
        _decode(tmp_path / "p.cbc", tmp_path / "d.png", weights, "--luminance", str(wrong))


def test_decode_refuses_another_photos_luminance(tmp_path, weights):
    """The luminance file of another photo of the same size is refused before any output is
    written ("wrong luminance", both files named); --any-luminance decodes with it anyway."""
    _encode(_photo(tmp_path / "a.png", 40, 52, seed=1), tmp_path / "a.cbc", weights)
    _encode(_photo(tmp_path / "b.png", 40, 52, seed=2), tmp_path / "b.cbc", weights)
    other = str(tmp_path / "b.l.jpg")
    with pytest.raises(ImageError, match=r"a.cbc: wrong luminance .*b.l.jpg"):
        _decode(tmp_path / "a.cbc", tmp_path / "a-out.png", weights, "--luminance", other)
    assert not (tmp_path / "a-out.png").exists()
    out = _decode(
        tmp_path / "a.cbc", tmp_path / "a-any.png", weights, "--luminance", other, "--any-luminance"
    )
    assert out.shape == (40, 52, 3)
    own = _decode(tmp_path / "a.cbc", tmp_path / "a-own.png", weights)  # its own: no question
    assert own.shape == (40, 52, 3) and not np.array_equal(own, out)


def test_stats_json_waits_for_the_results_tables(tmp_path, weights, monkeypatch):
    pipelines = capture_pipelines(monkeypatch)
    _photo(tmp_path / "photos" / "a.png", 30, 40, seed=3)
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    encode.run(job_args(encode, [str(tmp_path / "photos"), str(enc), "--weights", weights]),
               list(BEAM_ARGS))  # fmt: skip
    decode.run(job_args(decode, [str(enc), str(dec), "--weights", weights]), list(BEAM_ARGS))
    assert json.loads((dec / "stats.json").read_text())["outcomes"] == {"decoded": 1}
    for p in pipelines:
        assert {"Results/Write", "Accounting/Writeerrors/Write"} <= upstream_of(p, "WriteStats")


@pytest.mark.slow
def test_encode_decode_pipelines_end_to_end(tmp_path, weights, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="chromabeam.progress")
    src = tmp_path / "photos"
    _photo(src / "odd.png", 45, 67, seed=6)
    _photo(src / "sub" / "portrait.png", 71, 40, seed=7)
    _photo(src / "sub" / "portrait.jpg", 71, 40, seed=8)  # same stem: both kept
    _photo(src / "deep.png", 50, 50, seed=9, mode="I;16")
    enc = tmp_path / "enc"
    encode.run(job_args(encode, [str(src), str(enc), "--weights", weights]), list(BEAM_ARGS))
    stats = json.loads((enc / "stats.json").read_text())
    assert stats["outcomes"] == {"encoded": 4}, stats
    assert "encode: 4/4 images in " in caplog.text  # the closing progress line
    assert not (enc / ".chromabeam.lock").exists()  # released
    assert not list(enc.rglob("*.partial"))  # every write renamed into place
    rows = pq.read_table(enc / "results").to_pylist()
    assert {Path(r["bitstream_uri"]).name for r in rows} == {
        "odd.cbc", "portrait.png.cbc", "portrait.jpg.cbc", "deep.cbc"
    }  # fmt: skip
    assert all(r["colour_bytes"] > 0 and np.isfinite(r["ciede2000"]) for r in rows)
    # one index-layer stream, which the decode pipeline sends through RunInference, and one
    # model-free (gray-mode) stream, which skips the model (modes forced)
    singles = {}
    for name, mode in (("forced", colourcodec.MODE_INDEXED), ("plain", colourcodec.MODE_GRAY)):
        with monkeypatch.context() as m:
            m.setattr(colourcodec, "_MODES", (mode,))
            _encode(src / "odd.png", enc / f"{name}.cbc", weights)
        data = (enc / f"{name}.cbc").read_bytes()
        assert colourcodec.needs_hypotheses(data) == (mode == colourcodec.MODE_INDEXED)
        singles[name] = _decode(enc / f"{name}.cbc", tmp_path / f"{name}-single.png", weights)
    (enc / "broken.cbc").write_bytes((enc / "odd.cbc").read_bytes()[:-3])
    shutil.copy(enc / "odd.l.jpg", enc / "broken.l.jpg")
    # a stream beside another photo's luminance file of the same size: refused, not decoded
    _encode(
        _photo(tmp_path / "other" / "o.png", 45, 67, seed=10), tmp_path / "other" / "o.cbc", weights
    )
    shutil.copy(enc / "odd.cbc", enc / "swapped.cbc")
    shutil.copy(tmp_path / "other" / "o.l.jpg", enc / "swapped.l.jpg")
    dec = tmp_path / "dec"
    decode.run(job_args(decode, [str(enc), str(dec), "--weights", weights]), list(BEAM_ARGS))
    stats = json.loads((dec / "stats.json").read_text())
    assert stats["outcomes"] == {"decoded": 6, "bad_bitstream": 2}, stats
    assert "decode: 8/8 images in " in caplog.text
    for name, single in singles.items():  # the pipeline decodes as the single-file form
        np.testing.assert_array_equal(np.asarray(Image.open(dec / f"{name}.png")), single)
    assert not (dec / ".chromabeam.lock").exists()
    errors = pq.read_table(dec / "errors").to_pylist()
    reasons = sorted(e["reason"] for e in errors)
    assert len(errors) == 2 and "broken.cbc: truncated" in reasons[0], reasons
    assert "swapped.cbc: wrong luminance" in reasons[1], reasons
    sizes = {
        "odd.png": (67, 45),
        "sub/portrait.png.png": (40, 71),
        "sub/portrait.jpg.png": (40, 71),
        "deep.png": (50, 50),
        "forced.png": (67, 45),
        "plain.png": (67, 45),
    }
    for name, size in sizes.items():
        assert Image.open(dec / name).size == size
    assert not (dec / "broken.png").exists() and not (dec / "swapped.png").exists()
    again = tmp_path / "dec2"
    decode.run(job_args(decode, [str(enc), str(again), "--weights", weights]), list(BEAM_ARGS))
    for name in sizes:
        np.testing.assert_array_equal(
            np.asarray(Image.open(dec / name)), np.asarray(Image.open(again / name))
        )
