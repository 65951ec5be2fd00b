"""Models: the official eccv16 layout, output shapes, decoding, the registry and checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from models import registry
from models.base import AB_SCALE, ClassificationColorizer, normalize_l
from models.eccv16 import ECCV16
from models.small import ECCV16Small, Regression
from tests.conftest_models import build_tiny, one_thread, write_tiny_checkpoint
from transforms.bins import gamut_bins, num_bins


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _bn(prefix: str, c: int) -> list[tuple[str, tuple]]:
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


# The state_dict of richzhang/colorization `colorizers/eccv16.py` (ECCVGenerator), i.e. of
# colorization_release_v2-9b330a0b.pth, written out key by key.
OFFICIAL_ECCV16_LAYOUT: list[tuple[str, tuple]] = [
    # model1: conv1_1, conv1_2 (stride 2), BN
    ("model1.0.weight", (64, 1, 3, 3)),
    ("model1.0.bias", (64,)),
    ("model1.2.weight", (64, 64, 3, 3)),
    ("model1.2.bias", (64,)),
    *_bn("model1.4", 64),
    # model2
    ("model2.0.weight", (128, 64, 3, 3)),
    ("model2.0.bias", (128,)),
    ("model2.2.weight", (128, 128, 3, 3)),
    ("model2.2.bias", (128,)),
    *_bn("model2.4", 128),
    # model3
    ("model3.0.weight", (256, 128, 3, 3)),
    ("model3.0.bias", (256,)),
    ("model3.2.weight", (256, 256, 3, 3)),
    ("model3.2.bias", (256,)),
    ("model3.4.weight", (256, 256, 3, 3)),
    ("model3.4.bias", (256,)),
    *_bn("model3.6", 256),
    # model4
    ("model4.0.weight", (512, 256, 3, 3)),
    ("model4.0.bias", (512,)),
    ("model4.2.weight", (512, 512, 3, 3)),
    ("model4.2.bias", (512,)),
    ("model4.4.weight", (512, 512, 3, 3)),
    ("model4.4.bias", (512,)),
    *_bn("model4.6", 512),
    # model5 (dilation 2)
    ("model5.0.weight", (512, 512, 3, 3)),
    ("model5.0.bias", (512,)),
    ("model5.2.weight", (512, 512, 3, 3)),
    ("model5.2.bias", (512,)),
    ("model5.4.weight", (512, 512, 3, 3)),
    ("model5.4.bias", (512,)),
    *_bn("model5.6", 512),
    # model6 (dilation 2)
    ("model6.0.weight", (512, 512, 3, 3)),
    ("model6.0.bias", (512,)),
    ("model6.2.weight", (512, 512, 3, 3)),
    ("model6.2.bias", (512,)),
    ("model6.4.weight", (512, 512, 3, 3)),
    ("model6.4.bias", (512,)),
    *_bn("model6.6", 512),
    # model7
    ("model7.0.weight", (512, 512, 3, 3)),
    ("model7.0.bias", (512,)),
    ("model7.2.weight", (512, 512, 3, 3)),
    ("model7.2.bias", (512,)),
    ("model7.4.weight", (512, 512, 3, 3)),
    ("model7.4.bias", (512,)),
    *_bn("model7.6", 512),
    # model8: ConvTranspose2d(512, 256, 4) (weight is in x out), two convs, 1x1 to 313 bins
    ("model8.0.weight", (512, 256, 4, 4)),
    ("model8.0.bias", (256,)),
    ("model8.2.weight", (256, 256, 3, 3)),
    ("model8.2.bias", (256,)),
    ("model8.4.weight", (256, 256, 3, 3)),
    ("model8.4.bias", (256,)),
    ("model8.6.weight", (313, 256, 1, 1)),
    ("model8.6.bias", (313,)),
    # the 313 bin centres (ab / 110), no bias
    ("model_out.weight", (2, 313, 1, 1)),
]


def _random_official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in OFFICIAL_ECCV16_LAYOUT:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000, dtype=torch.int64)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.02
    return sd


@pytest.fixture(scope="module")
def official_sd() -> dict[str, torch.Tensor]:
    return _random_official_state_dict()


# --- the eccv16 layout ------------------------------------------------------------------


def test_official_layout_has_82_entries():
    assert len(OFFICIAL_ECCV16_LAYOUT) == 82
    assert len({k for k, _ in OFFICIAL_ECCV16_LAYOUT}) == 82


def test_eccv16_state_dict_matches_official_layout():
    sd = ECCV16().state_dict()
    # same keys and shapes (registration order does not matter to load_state_dict)
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(OFFICIAL_ECCV16_LAYOUT)
    assert sd["model1.4.num_batches_tracked"].dtype == torch.int64


def test_eccv16_parameter_count():
    assert sum(p.numel() for p in ECCV16().parameters()) == 32_236_011
    learnable = sum(
        int(np.prod(s))
        for k, s in OFFICIAL_ECCV16_LAYOUT
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert learnable == 32_236_011


def test_eccv16_loads_official_state_dict_strictly(official_sd):
    model = ECCV16()
    result = model.load_state_dict(official_sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.model_out.weight, official_sd["model_out.weight"])
    # the checkpoint's own bin centres are used for decoding
    expect = official_sd["model_out.weight"].reshape(2, 313).T * AB_SCALE
    torch.testing.assert_close(model.bin_centres, expect)


def test_eccv16_wrong_shape_fails(official_sd):
    bad = dict(official_sd)
    bad["model8.6.weight"] = torch.zeros(312, 256, 1, 1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ECCV16().load_state_dict(bad, strict=True)
    missing = {k: v for k, v in official_sd.items() if k != "model_out.weight"}
    with pytest.raises(RuntimeError, match="Missing key"):
        ECCV16().load_state_dict(missing, strict=True)


def test_raw_official_state_dict_loads_through_registry(official_sd, tmp_path):
    path = tmp_path / "colorization_release_v2.pth"
    torch.save(official_sd, path)  # a bare state_dict, as released
    model, config = registry.load_model("eccv16", weights=str(path))
    assert isinstance(model, ECCV16) and not model.training
    assert config["name"] == "eccv16"
    assert config["weights"] == str(path) and len(config["weights_sha256"]) == 64
    for k, v in model.state_dict().items():
        assert torch.equal(v.to(official_sd[k].dtype), official_sd[k]), k
    desc = registry.describe("eccv16", str(path))
    assert desc["render_size"] == 256 and desc["temperature"] == pytest.approx(0.38)


def test_raw_state_dict_with_wrong_shape_fails_through_registry(official_sd, tmp_path):
    bad = dict(official_sd)
    bad["model1.0.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        registry.load_model("eccv16", weights=str(path))


# --- output shapes -----------------------------------------------------------------------


@torch.no_grad()
def test_eccv16_output_shape_256(official_sd):
    model = ECCV16()
    model.load_state_dict(official_sd)
    logits = model.eval()(normalize_l(torch.full((1, 1, 256, 256), 50.0)))
    assert logits.shape == (1, 313, 64, 64)
    ab = model.decode(logits, size=(256, 256))
    assert ab.shape == (1, 2, 256, 256)


@pytest.mark.parametrize("name", ["eccv16-small", "regression"])
@torch.no_grad()
def test_small_models_quarter_resolution(name):
    model, _ = build_tiny(name)
    out = model(normalize_l(torch.rand(2, 1, 32, 48) * 100))
    q = num_bins() if name == "eccv16-small" else 2
    assert out.shape == (2, q, 8, 12)
    ab = model.decode(out, size=(32, 48))
    assert ab.shape == (2, 2, 32, 48)
    assert ab.dtype == torch.float32 and torch.isfinite(ab).all()


@torch.no_grad()
def test_regression_decode_scales_by_110():
    model, _ = build_tiny("regression")
    out = torch.rand(1, 2, 4, 4) - 0.5
    torch.testing.assert_close(model.decode(out), out * AB_SCALE)


# --- decoding ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    one_thread()
    return build_tiny("eccv16-small")[0]


def test_small_bin_centres_are_the_gamut_bins(small_model):
    assert isinstance(small_model, ClassificationColorizer)
    assert small_model.bin_centres.shape == (num_bins(), 2)
    np.testing.assert_allclose(small_model.bin_centres.numpy(), gamut_bins(), atol=1e-4)
    assert not small_model.model_out.weight.requires_grad


@torch.no_grad()
def test_annealed_decode_t1_equals_model_out_of_softmax(small_model):
    logits = torch.randn(2, num_bins(), 5, 7) * 3
    expect = small_model.model_out(torch.softmax(logits, dim=1)) * AB_SCALE
    for kw in ({"temperature": 1.0}, {"method": "mean"}):
        torch.testing.assert_close(small_model.decode(logits, **kw), expect)
    # the expectation of the bin centres under softmax(logits)
    p = torch.softmax(logits, 1)
    manual = torch.einsum("nqhw,qc->nchw", p, small_model.bin_centres)
    torch.testing.assert_close(expect, manual, atol=1e-3, rtol=1e-4)


@torch.no_grad()
def test_annealed_decode_sharpens_toward_the_mode(small_model):
    torch.manual_seed(0)
    logits = torch.randn(1, num_bins(), 3, 3) * 2
    mode = small_model.decode(logits, method="mode")
    err = {
        t: (small_model.decode(logits, temperature=t) - mode).abs().mean().item()
        for t in (1.0, 0.38, 0.01)
    }
    assert err[0.01] < 0.1 < err[0.38] < err[1.0]


@torch.no_grad()
def test_mode_decode_returns_bin_centres(small_model):
    logits = torch.randn(2, num_bins(), 4, 6)
    ab = small_model.decode(logits, method="mode")
    assert ab.shape == (2, 2, 4, 6)
    expect = small_model.bin_centres[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(ab, expect)
    centres = {tuple(np.round(c, 3)) for c in gamut_bins().tolist()}
    pix = ab.permute(0, 2, 3, 1).reshape(-1, 2).numpy()
    assert all(tuple(np.round(p, 3)) in centres for p in pix.tolist())


@torch.no_grad()
def test_decode_upsamples_to_size(small_model):
    logits = torch.randn(1, num_bins(), 8, 8)
    for method in ("annealed", "mean", "mode"):
        assert small_model.decode(logits, size=(33, 17), method=method).shape == (1, 2, 33, 17)


# --- registry and checkpoints ------------------------------------------------------------


def test_unknown_name_raises_listing_known_names():
    with pytest.raises(ValueError) as e:
        registry.build({"name": "pix2pix"})
    msg = str(e.value)
    assert "pix2pix" in msg
    for name in registry.names():
        assert name in msg
    assert {"eccv16", "eccv16-small", "regression", "siggraph17"} <= set(registry.names())
    assert registry.names() == sorted(registry.names())


def test_build_eccv16_small_without_num_bins_uses_the_gamut():
    """A config without "num_bins" (e.g. one written by hand) builds over the gamut bins
    (regression test: models/small.py once looked `num_bins` up in its own globals())."""
    model = registry.build({"name": "eccv16-small", "width": 0.125})
    assert isinstance(model, ECCV16Small)
    assert model.classifier.out_channels == num_bins()


def test_build_from_config():
    m = registry.build({"name": "regression", "width": 0.125})
    assert isinstance(m, Regression)
    m = registry.build({"name": "eccv16-small", "width": 0.125, "num_bins": num_bins()})
    assert m.trunk.out_channels == 32  # 256 x 0.125


@pytest.mark.parametrize("name", ["eccv16-small", "regression"])
def test_checkpoint_round_trip_identical(name, tmp_path):
    model, cfg = build_tiny(name, seed=3)
    path = tmp_path / "m.pt"
    registry.save_checkpoint(str(path), model, cfg, note="extra")
    loaded, config = registry.load_model(None, weights=str(path))
    assert type(loaded) is type(model) and not loaded.training
    assert config["name"] == name and config["width"] == cfg["width"]
    assert config["weights"] == str(path) and len(config["weights_sha256"]) == 64
    x = normalize_l(torch.rand(2, 1, 32, 32) * 100)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"config", "state_dict", "note"}


def test_checkpoint_interrupted_while_saving_keeps_the_previous_one(tmp_path, monkeypatch):
    """A run stopped while it writes checkpoint.pt (Ctrl-C, kill) leaves the last epoch's
    checkpoint whole and no partial file: the write is all or nothing."""
    from transforms import fileio

    model, cfg = build_tiny("regression", seed=5)
    path = tmp_path / "checkpoint.pt"
    registry.save_checkpoint(str(path), model, cfg, epoch=1)
    before = path.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "fsync", interrupted)  # the new bytes written, not yet moved
    with pytest.raises(KeyboardInterrupt):
        registry.save_checkpoint(str(path), model, cfg, epoch=2)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_checkpoint_round_trip_fp16(tmp_path):
    model, cfg = build_tiny("eccv16-small", seed=4)
    path = tmp_path / "half.pt"
    registry.save_checkpoint(str(path), model, cfg, half=True)
    obj = torch.load(path, weights_only=True)
    floats = [v for v in obj["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert obj["state_dict"]["trunk.block1.4.num_batches_tracked"].dtype == torch.int64
    full = tmp_path / "full.pt"
    registry.save_checkpoint(str(full), model, cfg)
    assert path.stat().st_size < 0.7 * full.stat().st_size
    loaded, _ = registry.load_model("eccv16-small", weights=str(path))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = normalize_l(torch.rand(1, 1, 32, 32) * 100)
    with torch.no_grad():
        a = model.decode(model(x), size=(32, 32))
        b = loaded.decode(loaded(x), size=(32, 32))
        la, lb = model(x), loaded(x)
    torch.testing.assert_close(lb, la, atol=5e-2, rtol=1e-2)
    assert (a - b).abs().max().item() < 1.0  # ab units


def test_load_model_name_mismatch_uses_checkpoint_config(tmp_path, caplog):
    path = tmp_path / "r.pt"
    write_tiny_checkpoint(path, "regression")
    model, config = registry.load_model("eccv16-small", weights=str(path))
    assert isinstance(model, Regression) and config["name"] == "regression"
    assert "ignored" in caplog.text


def test_load_model_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="--weights"):
        registry.load_model("eccv16")
    with pytest.raises(FileNotFoundError, match="--weights"):
        registry.describe("regression")


def test_describe_defaults_and_stored_values(tmp_path):
    bare = tmp_path / "bare.pt"
    model, _ = build_tiny("regression")
    buf = io.BytesIO()
    torch.save({"config": {"name": "regression", "width": 0.125}, "state_dict": {}}, buf)
    bare.write_bytes(buf.getvalue())
    d = registry.describe(None, str(bare))
    assert d["name"] == "regression"
    assert d["render_size"] == 256 and d["temperature"] == pytest.approx(0.38)
    assert d["weights"] == str(bare) and len(d["weights_sha256"]) == 64

    stored = tmp_path / "stored.pt"
    write_tiny_checkpoint(stored, "eccv16-small", render_size=48, temperature=0.5)
    d = registry.describe("eccv16-small", str(stored))
    assert d["render_size"] == 48 and d["temperature"] == 0.5
    assert d["prior"] and len(d["prior"]) == num_bins()


@pytest.mark.parametrize("name", registry.names())
def test_skeleton_has_builds_names_and_shapes_on_meta(name):
    """registry.skeleton (what the weight checks and takes_hints use): the same parameter and
    buffer names and shapes as build, and no memory (every tensor on the meta device)."""
    built, bare = registry.build({"name": name}), registry.skeleton({"name": name})
    assert {k: v.shape for k, v in bare.state_dict().items()} == {
        k: v.shape for k, v in built.state_dict().items()
    }
    assert {p.device.type for p in bare.parameters()} == {"meta"}
    assert registry.takes_hints(name) == bool(getattr(built, "takes_hints", False))
    assert registry.has_likelihood(name) == hasattr(built, "nll_bits")


def _meta_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the meta tensors a model holds: parameters, buffers, tensor attributes."""
    found = [k for k, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    for prefix, module in model.named_modules():
        found += [
            f"{prefix}.{k}" for k, v in vars(module).items()
            if isinstance(v, torch.Tensor) and v.is_meta
        ]  # fmt: skip
    return found


@pytest.mark.parametrize("name", registry.names())
def test_build_loaded_holds_exactly_the_state_and_nothing_on_meta(name):
    """build_loaded (load_model's build on meta + assign): the state given, each tensor in
    the model's dtype (fp16 in, fp32 out; integer counters stay integer), and no meta tensor
    left anywhere in the model."""
    torch.manual_seed(1)
    ref = registry.build({"name": name}).state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in ref.items()}
    model = registry.build_loaded({"name": name}, half)
    assert not _meta_tensors(model)
    got = model.state_dict()
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k].dtype == v.dtype, k
        assert torch.equal(got[k], half[k].to(v.dtype)), k


def test_build_loaded_predicts_as_build_and_load_state_dict():
    model, cfg = build_tiny("eccv16-small", seed=5)
    loaded = registry.build_loaded(cfg, model.state_dict()).eval()
    x = normalize_l(torch.rand(2, 1, 32, 32) * 100)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    state = dict(model.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(RuntimeError, match="Missing key"):
        registry.build_loaded(cfg, state)


def test_build_loaded_builds_plainly_a_model_with_a_buffer_outside_its_state(monkeypatch):
    """A non-persistent buffer would stay on meta after assign: such a model is built and
    loaded the plain way, the buffer as its constructor made it."""

    class WithTable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 1)
            self.register_buffer("table", torch.arange(4.0), persistent=False)

    monkeypatch.setitem(registry.BUILDERS, "with-table", lambda cfg: WithTable())
    state = {k: torch.full_like(v, 0.5) for k, v in WithTable().state_dict().items()}
    model = registry.build_loaded({"name": "with-table"}, state)
    assert not _meta_tensors(model)
    assert torch.equal(model.table, torch.arange(4.0))
    assert torch.equal(model.conv.weight, state["conv.weight"])


def test_load_model_and_describe_take_a_checkpoint_already_read(tmp_path):
    """With `checkpoint` (what check_weights read), neither reads the file again."""
    path = tmp_path / "m.pt"
    write_tiny_checkpoint(path, "regression")
    checkpoint = registry.read_checkpoint(str(path))
    path.unlink()
    model, config = registry.load_model(None, str(path), checkpoint=checkpoint)
    assert isinstance(model, Regression) and config["weights_sha256"] == checkpoint[1]
    assert registry.describe(None, str(path), checkpoint=checkpoint)["name"] == "regression"
    with pytest.raises(FileNotFoundError):
        registry.load_model(None, str(path))
