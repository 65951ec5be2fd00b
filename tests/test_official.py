"""The authors' released models, faithfully: the siggraph17 layout, and eccv16 / siggraph17 run
through `colorize` against an independent reference written here from the papers and the
authors' published pipeline (richzhang/colorization: preprocess_img / postprocess_tens).

The reference uses only torch.nn.functional ops on a state dict, PIL and skimage.color; none
of the project's models, colour maths or composition. Its layer lists below also give the
expected state_dict keys of the released checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color

from models import official, registry
from models.base import normalize_l
from models.eccv16 import ECCV16
from models.siggraph17 import SIGGRAPH17
from pipeline import colorize, evaluate
from tests.conftest_models import job_args, one_thread
from tests.helpers import KODAK, smooth_colour_field
from transforms.compose import compose, render_l

# --- the layouts, from the papers (Zhang 2016 Table 4; Zhang 2017 Fig. 2 / supplement) ------
# An op is ("conv", cin, cout, kernel, stride, dilation, bias) | ("deconv", cin, cout) |
# ("bn", c) | ("relu",) | ("lrelu",) | ("tanh",); a block is an nn.Sequential, so the
# state_dict key of op i of block B is "B.i.<param>".


def _convs(chans: list[int], last_stride: int = 1, dil: int = 1, pre_relu: bool = False):
    ops = [("relu",)] if pre_relu else []
    for j, (cin, cout) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
        stride = last_stride if j == len(chans) - 2 else 1
        ops += [("conv", cin, cout, 3, stride, dil, True), ("relu",)]
    return ops + [("bn", chans[-1])]


ECCV16_BLOCKS: dict[str, list[tuple]] = {
    "model1": _convs([1, 64, 64], 2),
    "model2": _convs([64, 128, 128], 2),
    "model3": _convs([128, 256, 256, 256], 2),
    "model4": _convs([256, 512, 512, 512]),
    "model5": _convs([512, 512, 512, 512], dil=2),
    "model6": _convs([512, 512, 512, 512], dil=2),
    "model7": _convs([512, 512, 512, 512]),
    "model8": [
        ("deconv", 512, 256),
        ("relu",),
        ("conv", 256, 256, 3, 1, 1, True),
        ("relu",),
        ("conv", 256, 256, 3, 1, 1, True),
        ("relu",),
        ("conv", 256, 313, 1, 1, 1, True),
    ],
}

# Zhang 2017: conv1..7 as eccv16 but 4 input channels (L, ab hint, mask) and downsampling by
# taking every other pixel between conv1-2, 2-3, 3-4; conv8..10 upsample (4x4 deconv, stride
# 2) and add a 3x3 conv of conv3 / conv2 / conv1 (the shortcuts); heads: 529-way class
# (1x1 on conv8) and regression (1x1 on conv10 + tanh).
SIGGRAPH17_BLOCKS: dict[str, list[tuple]] = {
    "model1": _convs([4, 64, 64]),
    "model2": _convs([64, 128, 128]),
    "model3": _convs([128, 256, 256, 256]),
    "model4": _convs([256, 512, 512, 512]),
    "model5": _convs([512, 512, 512, 512], dil=2),
    "model6": _convs([512, 512, 512, 512], dil=2),
    "model7": _convs([512, 512, 512, 512]),
    "model8up": [("deconv", 512, 256)],
    "model3short8": [("conv", 256, 256, 3, 1, 1, True)],
    "model8": _convs([256, 256, 256], pre_relu=True),
    "model9up": [("deconv", 256, 128)],
    "model2short9": [("conv", 128, 128, 3, 1, 1, True)],
    "model9": _convs([128, 128], pre_relu=True),
    "model10up": [("deconv", 128, 128)],
    "model1short10": [("conv", 64, 128, 3, 1, 1, True)],
    "model10": [("relu",), ("conv", 128, 128, 3, 1, 1, True), ("lrelu",)],
    "model_class": [("conv", 256, 529, 1, 1, 1, True)],
    "model_out": [("conv", 128, 2, 1, 1, 1, True), ("tanh",)],
}


def layout(blocks: dict[str, list[tuple]]) -> dict[str, tuple]:
    """Expected state_dict: key -> shape."""
    out: dict[str, tuple] = {}
    for name, ops in blocks.items():
        for i, op in enumerate(ops):
            p = f"{name}.{i}"
            if op[0] == "conv":
                _, cin, cout, k, _, _, bias = op
                out[f"{p}.weight"] = (cout, cin, k, k)
                if bias:
                    out[f"{p}.bias"] = (cout,)
            elif op[0] == "deconv":
                out[f"{p}.weight"] = (op[1], op[2], 4, 4)
                out[f"{p}.bias"] = (op[2],)
            elif op[0] == "bn":
                for s in ("weight", "bias", "running_mean", "running_var"):
                    out[f"{p}.{s}"] = (op[1],)
                out[f"{p}.num_batches_tracked"] = ()
    return out


ECCV16_LAYOUT = {**layout(ECCV16_BLOCKS), "model_out.weight": (2, 313, 1, 1)}
SIGGRAPH17_LAYOUT = layout(SIGGRAPH17_BLOCKS)


def n_params(lay: dict[str, tuple]) -> int:
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return sum(int(np.prod(s)) for k, s in lay.items() if not k.endswith(skip))


def random_state_dict(lay: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """He-normal convs (activations keep their scale through the depth), random BN."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in lay.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1000, dtype=torch.int64)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(".weight"):  # BN scale
            sd[k] = torch.rand(shape, generator=g) * 0.4 + 0.8
        else:  # biases, BN shift, running_mean
            sd[k] = (torch.rand(shape, generator=g) - 0.5) * 0.2
    return sd


# --- the reference network: plain functional ops on the state dict --------------------------


def run_block(sd: dict, name: str, ops: list[tuple], x: torch.Tensor) -> torch.Tensor:
    for i, op in enumerate(ops):
        p = f"{name}.{i}"
        if op[0] == "conv":
            _, _, _, k, stride, dil, _ = op
            pad = dil * (k // 2)
            x = F.conv2d(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"), stride, pad, dil)
        elif op[0] == "deconv":
            x = F.conv_transpose2d(x, sd[f"{p}.weight"], sd[f"{p}.bias"], stride=2, padding=1)
        elif op[0] == "bn":
            x = F.batch_norm(
                x,
                sd[f"{p}.running_mean"],
                sd[f"{p}.running_var"],
                sd[f"{p}.weight"],
                sd[f"{p}.bias"],
                training=False,
                eps=1e-5,
            )
        elif op[0] == "relu":
            x = F.relu(x)
        elif op[0] == "lrelu":
            x = F.leaky_relu(x, 0.2)
        elif op[0] == "tanh":
            x = torch.tanh(x)
    return x


def eccv16_features(sd: dict, l_norm: torch.Tensor) -> torch.Tensor:
    """conv1 .. conv8_2 (everything before the 313-way 1x1 conv)."""
    x = l_norm
    for name, ops in ECCV16_BLOCKS.items():
        x = run_block(sd, name, ops[:-1] if name == "model8" else ops, x)
    return x


def eccv16_ab(sd: dict, feats: torch.Tensor) -> torch.Tensor:
    """Logits -> softmax (T = 1) -> expectation over the checkpoint's centres x 110, upsample4."""
    logits = F.conv2d(feats, sd["model8.6.weight"], sd["model8.6.bias"])
    p = torch.softmax(logits, dim=1)
    ab = torch.einsum("nqhw,cq->nchw", p, sd["model_out.weight"][:, :, 0, 0]) * 110.0
    return F.interpolate(ab, scale_factor=4, mode="bilinear")


def siggraph17_features(sd, l_norm, ab_hint=None, mask=None) -> torch.Tensor:
    """conv10 of Zhang 2017 (input: L, ab hints / 110, mask; zeros = no hints)."""
    n, _, h, w = l_norm.shape
    ab_hint = torch.zeros(n, 2, h, w) if ab_hint is None else ab_hint
    mask = torch.zeros(n, 1, h, w) if mask is None else mask
    b = SIGGRAPH17_BLOCKS

    def blk(name, x):
        return run_block(sd, name, b[name], x)

    c1 = blk("model1", torch.cat([l_norm, ab_hint, mask], 1))
    c2 = blk("model2", c1[:, :, ::2, ::2])
    c3 = blk("model3", c2[:, :, ::2, ::2])
    c7 = blk("model7", blk("model6", blk("model5", blk("model4", c3[:, :, ::2, ::2]))))
    c8 = blk("model8", blk("model8up", c7) + blk("model3short8", c3))
    c9 = blk("model9", blk("model9up", c8) + blk("model2short9", c2))
    return blk("model10", blk("model10up", c9) + blk("model1short10", c1))


def siggraph17_ab(sd: dict, feats: torch.Tensor) -> torch.Tensor:
    return torch.tanh(F.conv2d(feats, sd["model_out.0.weight"], sd["model_out.0.bias"])) * 110.0


def reference_colorize(model: str, sd: dict, rgb: np.ndarray, size: int):
    """The authors' pipeline: (Lab float64 (H, W, 3) before clipping, ab at model size)."""
    rs = np.asarray(Image.fromarray(rgb).resize((size, size), resample=Image.BICUBIC))
    l_rs = torch.tensor(color.rgb2lab(rs)[..., 0], dtype=torch.float32)[None, None]
    l_norm = (l_rs - 50.0) / 100.0
    if model == "eccv16":
        ab = eccv16_ab(sd, eccv16_features(sd, l_norm))
    else:
        ab = siggraph17_ab(sd, siggraph17_features(sd, l_norm))
    ab_full = F.interpolate(ab, size=rgb.shape[:2], mode="bilinear")[0].permute(1, 2, 0)
    l_orig = color.rgb2lab(rgb)[..., :1]
    return np.concatenate([l_orig, ab_full.double().numpy()], -1), ab


def in_gamut(lab: np.ndarray) -> np.ndarray:
    """Pixels whose colour survives lab2rgb -> rgb2lab unchanged (sRGB clipping left it)."""
    return np.abs(color.rgb2lab(color.lab2rgb(lab)) - lab).max(-1) < 0.05


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


def _photo() -> np.ndarray:
    """A real photo at an odd, non-square size (ab is upsampled in x, downsampled in y)."""
    path = KODAK / "kodim23.png"
    if path.exists():
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((301, 203), Image.LANCZOS))
    return smooth_colour_field(203, 301, seed=3)


def _scaled(model: str, size: int, seed: int, rgb: np.ndarray) -> dict:
    """Random official weights whose last layer is scaled on this photo so that ab varies by
    tens of units across it (eccv16: logits std 3; siggraph17: tanh input std 0.3)."""
    if model == "eccv16":
        sd = random_state_dict(ECCV16_LAYOUT, seed)
        # 313 centres on Zhang's grid of 10 (the 313 grid points nearest gray: a stand-in
        # for the released gamut's, which the checkpoint carries in model_out)
        grid = np.stack(np.meshgrid(np.arange(-110, 111, 10), np.arange(-110, 111, 10)), -1)
        grid = grid.reshape(-1, 2)
        centres = grid[np.argsort(np.hypot(grid[:, 0], grid[:, 1]), kind="stable")[:313]]
        sd["model_out.weight"] = torch.tensor(centres.T / 110.0).float()[..., None, None]
        key, bkey, target = "model8.6.weight", "model8.6.bias", 3.0
    else:
        sd = random_state_dict(SIGGRAPH17_LAYOUT, seed)
        key, bkey, target = "model_out.0.weight", "model_out.0.bias", 0.3
    rs = np.asarray(Image.fromarray(rgb).resize((size, size), resample=Image.BICUBIC))
    l_norm = (torch.tensor(color.rgb2lab(rs)[..., 0]).float()[None, None] - 50.0) / 100.0
    with torch.no_grad():
        feats = (eccv16_features if model == "eccv16" else siggraph17_features)(sd, l_norm)
        raw = F.conv2d(feats, sd[key])
        sd[key] = sd[key] * (target / raw.std())
        sd[bkey] = sd[bkey] * 0  # keep the colours centred near gray
    return sd


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo()


@pytest.fixture(scope="module")
def sg_sd() -> dict[str, torch.Tensor]:
    """Random weights in the released siggraph17 layout."""
    return random_state_dict(SIGGRAPH17_LAYOUT, seed=1)


@pytest.fixture(scope="module")
def sg_model(sg_sd) -> SIGGRAPH17:
    """The project's siggraph17 with sg_sd loaded strictly (built once: 34 M parameters)."""
    one_thread()
    model = SIGGRAPH17().eval()
    model.load_state_dict(sg_sd, strict=True)
    return model


@pytest.fixture(scope="module")
def released(tmp_path_factory, photo):
    """get(model, size) -> (state dict, path of it saved bare in fp16, as released files are
    bare state dicts); built once per (model, size). The reference uses the fp16 values."""
    cache: dict[tuple[str, int], tuple[dict, Path]] = {}
    folder = tmp_path_factory.mktemp("released")

    def get(model: str, size: int) -> tuple[dict, Path]:
        if (model, size) not in cache:
            sd = _scaled(model, size, seed=7, rgb=photo)
            half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
            path = folder / f"{model}-{size}.pth"
            torch.save(half, path)
            cache[model, size] = ({k: v.float() for k, v in half.items()}, path)
        return cache[model, size]

    return get


def _colorize(tmp_path, model: str, weights: Path, rgb: np.ndarray, *extra: str) -> np.ndarray:
    """The project's single-image `colorize -o` on a bare (released-style) state dict."""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rgb).save(src)
    argv = [str(src), "-o", str(out), "--model", model, "--weights", str(weights), *extra]
    colorize.run(job_args(colorize, [*argv, "--device", "cpu"]), [])
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"))


# --- the siggraph17 layout ------------------------------------------------------------------


def test_siggraph17_layout_counts():
    assert len(SIGGRAPH17_LAYOUT) == 107
    assert n_params(SIGGRAPH17_LAYOUT) == 34_187_027
    assert len(ECCV16_LAYOUT) == 82 and n_params(ECCV16_LAYOUT) == 32_236_011


def test_siggraph17_matches_the_layout_and_loads_strictly(sg_sd):
    model = SIGGRAPH17()
    sd = model.state_dict()
    assert len(sd) == 107
    assert sum(p.numel() for p in model.parameters()) == 34_187_027
    assert {k: tuple(v.shape) for k, v in sd.items()} == SIGGRAPH17_LAYOUT
    official_sd = sg_sd
    res = model.load_state_dict(official_sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    assert torch.equal(model.model_class[0].weight, official_sd["model_class.0.weight"])
    assert model.takes_hints and model.kind == "regression"
    bad = dict(official_sd)
    bad["model1.0.weight"] = torch.zeros(64, 1, 3, 3)  # an eccv16-style 1-channel input
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(bad, strict=True)
    with pytest.raises(
        RuntimeError, match="Missing key"
    ):  # e.g. a checkpoint without the class head
        model.load_state_dict(
            {k: v for k, v in official_sd.items() if not k.startswith("model_class")}, strict=True
        )


def test_eccv16_matches_the_layout():
    assert {k: tuple(v.shape) for k, v in ECCV16().state_dict().items()} == ECCV16_LAYOUT


@torch.no_grad()
def test_siggraph17_forward_equals_reference_with_and_without_hints(sg_sd, sg_model):
    sd, model = sg_sd, sg_model
    g = torch.Generator().manual_seed(0)
    l_norm = torch.rand(1, 1, 32, 48, generator=g) - 0.5
    out = model(l_norm)
    assert out.shape == (1, 2, 32, 48)
    torch.testing.assert_close(out, siggraph17_ab(sd, siggraph17_features(sd, l_norm)) / 110)
    mask = torch.zeros(1, 1, 32, 48)
    mask[..., 10:14, 20:24] = 1.0
    ab_hint = mask * torch.tensor([0.5, -0.3]).view(1, 2, 1, 1)  # ab / 110 at the hint
    hinted = model(l_norm, ab_hint, mask)
    ref = siggraph17_ab(sd, siggraph17_features(sd, l_norm, ab_hint, mask)) / 110
    torch.testing.assert_close(hinted, ref)
    assert (hinted - out).abs().max() > 1e-3  # the hint channels are wired in


def test_registry_siggraph17_bare_state_dict_defaults_to_the_authors(tmp_path, sg_sd):
    path = tmp_path / "siggraph17-df00044c.pth"
    torch.save(sg_sd, path)
    model, cfg = registry.load_model("siggraph17", str(path))
    assert isinstance(model, SIGGRAPH17) and not model.training and cfg["name"] == "siggraph17"
    d = registry.describe("siggraph17", str(path))
    assert d["pipeline"] == official.AUTHORS and d["decode"] == "mean"
    assert d["render_size"] == 256
    assert "siggraph17" in registry.names()
    assert official.defaults("eccv16-small") == {"pipeline": "project", "decode": "annealed"}


# --- the authors' pre/post-processing, as pure functions -----------------------------------


def test_authors_preprocess_is_bicubic_rgb_then_l(photo):
    l_256 = official.authors_preprocess(photo)
    rs = np.asarray(Image.fromarray(photo).resize((256, 256), resample=Image.BICUBIC))
    assert l_256.shape == (256, 256) and l_256.dtype == np.float32
    np.testing.assert_allclose(l_256, color.rgb2lab(rs)[..., 0], atol=0.02)
    # not the project's render (bicubic on full-resolution L): they differ
    assert np.abs(l_256 - render_l(color.rgb2lab(photo)[..., 0].astype(np.float32), 256)).max() > 1


@pytest.mark.parametrize("shape", [(64, 64, 256, 256), (256, 256, 203, 301), (5, 7, 13, 2)])
def test_bilinear_resize_is_torch_interpolate(shape):
    h, w, hh, ww = shape
    ab = np.random.default_rng(0).normal(0, 30, (h, w, 2)).astype(np.float32)
    t = F.interpolate(torch.from_numpy(ab).permute(2, 0, 1)[None], size=(hh, ww), mode="bilinear")
    np.testing.assert_allclose(
        official.bilinear_resize(ab, hh, ww), t[0].permute(1, 2, 0).numpy(), atol=1e-2
    )


def test_authors_postprocess_strips_equal_whole_and_keep_l(photo):
    l_full = color.rgb2lab(photo)[..., 0].astype(np.float32)
    ab = np.random.default_rng(1).normal(0, 20, (64, 64, 2)).astype(np.float32)
    whole = official.authors_postprocess(l_full, ab, 256, strip_rows=10_000)
    strips = official.authors_postprocess(l_full, ab, 256, strip_rows=7)
    assert whole.shape == photo.shape and np.array_equal(whole, strips)
    ref_ab = F.interpolate(
        F.interpolate(torch.from_numpy(ab).permute(2, 0, 1)[None], scale_factor=4, mode="bilinear"),
        size=l_full.shape,
        mode="bilinear",
    )[0].permute(1, 2, 0)
    lab = np.concatenate([l_full[..., None], ref_ab.numpy()], -1).astype(np.float64)
    expect = np.clip(np.rint(color.lab2rgb(lab) * 255), 0, 255)
    assert np.abs(whole.astype(int) - expect).max() <= 1
    # the project's pipeline is still there, unchanged
    proj = official.model_output(official.PROJECT, l_full, ab)
    assert np.array_equal(proj, compose(l_full, ab))


# --- fidelity: the project's `colorize -o` vs the reference ---------------------------------


def _fidelity(tmp_path, released, model: str, size: int, photo) -> tuple[float, float, float]:
    """(mean |Δab| on in-gamut pixels, share in gamut, spatial std of the reference ab)."""
    sd, weights = released(model, size)
    with torch.no_grad():
        lab_ref, _ = reference_colorize(model, sd, photo, size)
    extra = [] if size == 256 else ["--render-size", str(size)]
    out = _colorize(tmp_path, model, weights, photo, *extra)
    ab_out = color.rgb2lab(out)[..., 1:]
    ok = in_gamut(lab_ref)
    err = np.abs(ab_out - lab_ref[..., 1:]).mean(-1)
    return float(err[ok].mean()), float(ok.mean()), float(lab_ref[..., 1:].std((0, 1)).mean())


@pytest.mark.parametrize("model", ["eccv16", "siggraph17"])
def test_colorize_matches_the_authors_pipeline_small(tmp_path, released, model, photo):
    """Fast: the same pipeline at a 64 px model input (--render-size 64)."""
    err, share, spread = _fidelity(tmp_path, released, model, 64, photo)
    assert spread > 8 and share > 0.3  # the colours vary across the image; most are usable
    assert err <= 0.5, (err, share, spread)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["eccv16", "siggraph17"])
def test_colorize_matches_the_authors_pipeline_256(tmp_path, released, model, photo):
    """The authors' own setting (256x256 input) through `colorize -o` with the defaults."""
    err, share, spread = _fidelity(tmp_path, released, model, 256, photo)
    assert spread > 8 and share > 0.3
    assert err <= 0.5, (err, share, spread)


@pytest.mark.slow
def test_project_pipeline_stays_an_option(tmp_path, released, photo):
    """--pipeline project (L resized from full-res L, bicubic ab, gamut fit; same T=1 mean
    decoding) is still available, and it is further from the authors' colours."""
    sd, weights = released("eccv16", 64)
    with torch.no_grad():
        lab_ref, _ = reference_colorize("eccv16", sd, photo, 64)
    small = ["--render-size", "64"]
    authors = _colorize(tmp_path, "eccv16", weights, photo, *small)
    project = _colorize(tmp_path, "eccv16", weights, photo, *small, "--pipeline", "project")
    assert not np.array_equal(authors, project)
    ok = in_gamut(lab_ref)
    d_proj = np.abs(color.rgb2lab(project)[..., 1:] - lab_ref[..., 1:]).mean(-1)[ok].mean()
    d_auth = np.abs(color.rgb2lab(authors)[..., 1:] - lab_ref[..., 1:]).mean(-1)[ok].mean()
    assert d_proj > d_auth


def test_colorize_config_defaults_and_override(tmp_path, released):
    _, weights = released("eccv16", 64)
    base = ["in.png", "-o", str(tmp_path / "o.png"), "--model", "eccv16", "--weights", str(weights)]
    cfg = colorize.config_from_args(job_args(colorize, base), ["in.png"], str(tmp_path))
    assert cfg.pipeline == "authors" and cfg.settings.method == "mean" and cfg.render_size == 256
    argv = [*base, "--pipeline", "project", "--decode", "annealed"]
    cfg = colorize.config_from_args(job_args(colorize, argv), ["in.png"], str(tmp_path))
    assert cfg.pipeline == "project" and cfg.settings.method == "annealed"


def test_evaluate_spec_defaults_and_override(tmp_path, sg_sd):
    path = tmp_path / "w.pth"
    torch.save({k: v.half() for k, v in sg_sd.items()}, path)
    spec = evaluate.parse_spec(f"siggraph17,weights={path}")
    assert spec.pipeline == "authors" and spec.settings.method == "mean"
    spec = evaluate.parse_spec(f"siggraph17,weights={path},pipeline=project,decode=annealed")
    assert spec.pipeline == "project" and spec.settings.method == "annealed"
    with pytest.raises(SystemExit):
        evaluate.parse_spec(f"siggraph17,weights={path},pipeline=fancy")


def test_item_model_input_follows_the_pipeline(photo):
    l_full = color.rgb2lab(photo)[..., 0].astype(np.float32)
    a = official.model_input("authors", photo, l_full, 64)
    p = official.model_input("project", photo, l_full, 64)
    np.testing.assert_array_equal(p, render_l(l_full, 64))
    np.testing.assert_array_equal(a, official.authors_preprocess(photo, 64))
    assert normalize_l(torch.from_numpy(a)).abs().max() <= 0.5 + 1e-6


@pytest.mark.slow
def test_siggraph17_takes_hints_in_colorize(tmp_path, released, photo):
    """A sidecar next to the input guides the released-layout siggraph17 in `colorize -o`:
    the colour near the hint moves toward the hint's, far pixels barely move."""
    _, weights = released("siggraph17", 64)
    x, y, rgb_hint = 150, 100, (20, 200, 40)
    (tmp_path / "in.hints.json").write_text(
        json.dumps({"points": [[x, y, *rgb_hint]], "radius": 12})
    )
    small = ["--render-size", "64"]
    guided = _colorize(tmp_path, "siggraph17", weights, photo, *small)
    plain = _colorize(tmp_path, "siggraph17", weights, photo, *small, "--no-hints")
    target = color.rgb2lab(np.array(rgb_hint, np.uint8)[None, None])[0, 0, 1:]
    ab_g = color.rgb2lab(guided)[y - 3 : y + 4, x - 3 : x + 4, 1:].mean((0, 1))
    ab_p = color.rgb2lab(plain)[y - 3 : y + 4, x - 3 : x + 4, 1:].mean((0, 1))
    assert np.linalg.norm(ab_g - target) < np.linalg.norm(ab_p - target) - 1
    moved = np.abs(color.rgb2lab(guided)[..., 1:] - color.rgb2lab(plain)[..., 1:]).mean(-1)
    assert moved[:50, :50].mean() < 0.1 * moved[y - 10 : y + 10, x - 10 : x + 10].mean()
