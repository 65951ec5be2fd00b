"""Models by name, and checkpoints that build their model from their own config.

A checkpoint is `{"config": {...}, "state_dict": {...}}`; `config["name"]` picks the builder.
A bare state_dict (e.g. Zhang's released `colorization_release_v2-9b330a0b.pth`) loads too,
given the model name.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from pathlib import Path

import fsspec
import torch

from models.base import DEFAULT_TEMPERATURE, Colorizer
from models.eccv16 import ECCV16
from models.guided import SiggraphSmall
from models.hypercolumn import Hypercolumn
from models.multihyp import MultiHypothesis
from models.official import defaults as official_defaults
from models.pic import PIC
from models.siggraph17 import SIGGRAPH17
from models.small import ECCV16Small, Regression
from transforms.fileio import write_bytes

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "eccv16-small"

BUILDERS: dict[str, Callable[..., Colorizer]] = {
    "eccv16": lambda cfg: ECCV16(num_bins=cfg.get("num_bins", 313)),
    "eccv16-small": lambda cfg: ECCV16Small(
        width=cfg.get("width", 0.25), num_bins=cfg.get("num_bins")
    ),
    "regression": lambda cfg: Regression(width=cfg.get("width", 0.25)),
    "siggraph17": lambda cfg: SIGGRAPH17(classes=cfg.get("classes", 529)),
    "siggraph17-small": lambda cfg: SiggraphSmall(
        width=cfg.get("width", 0.25), residual=cfg.get("residual", False)
    ),
    "multihypothesis": lambda cfg: MultiHypothesis(
        width=cfg.get("width", 0.25),
        k=cfg.get("k", 5),
        split=cfg.get("split", 1),
        prior=cfg.get("prior"),
    ),
    "pic": lambda cfg: PIC(
        width=cfg.get("width", 0.25),
        head=cfg.get("head", "ar"),
        channels=cfg.get("channels", 48),
        blocks=cfg.get("blocks", 4),
        mix=cfg.get("mix", 10),
        kernel=cfg.get("kernel", 3),
        freeze_trunk=cfg.get("freeze_trunk", False),
    ),
    "hypercolumn": lambda cfg: Hypercolumn(
        width=cfg.get("width", 0.25),
        hidden=cfg.get("hidden", 128),
        points=cfg.get("points", 256),
        out_stride=cfg.get("out_stride", 2),
        chroma_decode=cfg.get("chroma_decode", "median"),
        hue_decode=cfg.get("hue_decode", "mean"),
    ),
}

# The weights this project trained and ships (models/weights/<file>, with a model card).
SHIPPED = {
    "eccv16-small": "eccv16-small.pt",
    "regression": "regression.pt",
    "multihypothesis": "multihypothesis.pt",
    "siggraph17-small": "siggraph17-small.pt",
    "hypercolumn": "hypercolumn.pt",
    "pic": "pic.pt",
}


def takes_hints(model_or_name) -> bool:
    """Whether a model (instance, or registered name) takes colour hints (L, ab hints, mask)."""
    if isinstance(model_or_name, str):
        if model_or_name not in BUILDERS:
            return False
        model_or_name = skeleton({"name": model_or_name})
    return bool(getattr(model_or_name, "takes_hints", False))


def decode_methods(name: str) -> tuple[str, ...]:
    """The --decode methods of the registered model `name` (Colorizer.decode_methods; none:
    it predicts ab directly, and takes no temperature either)."""
    return tuple(skeleton({"name": name}).decode_methods) if name in BUILDERS else ()


def uses_temperature(name: str, method: str) -> bool:
    """Whether the colours of the registered model `name` decoded with `method` depend on the
    temperature (Colorizer.temperature_methods): else the results record none."""
    return name in BUILDERS and method in skeleton({"name": name}).temperature_methods


def applied_decode(name: str, method: str, temperature: float) -> dict:
    """The decode settings results record for model `name`: {"decode", "temperature"}, each
    None where the model does not apply it (no decode methods: ab predicted directly; a method
    without temperature), so runs that differ only in an unused setting match."""
    return {
        "decode": method if decode_methods(name) else None,
        "temperature": temperature if uses_temperature(name, method) else None,
    }


def has_likelihood(name: str) -> bool:
    """Whether the registered model `name` scores the true ab itself (pic: nll_bits)."""
    return name in BUILDERS and hasattr(skeleton({"name": name}), "nll_bits")


def can_sample(name: str) -> bool:
    """Whether the registered model `name` draws diverse samples (colorize --samples)."""
    return has_likelihood(name)


def names() -> list[str]:
    """Registered model names."""
    return sorted(BUILDERS)


def build(config: dict) -> Colorizer:
    """A fresh model from a config dict (needs at least "name")."""
    name = config.get("name")
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(names())}")
    return BUILDERS[name](config)


def skeleton(config: dict) -> Colorizer:
    """The model of `config` built on torch's meta device: its modules, attributes and the
    names and shapes of its parameters, with no memory and no initialisation (about 15 ms;
    `build` of the official eccv16 took 0.36-0.48 s here). For checks and build_loaded."""
    with torch.device("meta"):
        return build(config)


def default_weights(name: str) -> str | None:
    """Path of the shipped weights for `name`, or None if none ship."""
    fname = SHIPPED.get(name)
    path = WEIGHTS_DIR / fname if fname else None
    return str(path) if path and path.exists() else None


Checkpoint = tuple[object, str]  # read_checkpoint's (object torch loaded, sha256 of the file)


def read_checkpoint(uri: str) -> Checkpoint:
    """Load a checkpoint from any fsspec URL on CPU; returns (object, sha256 of the bytes)."""
    with fsspec.open(uri, "rb") as f:
        data = f.read()
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return obj, hashlib.sha256(data).hexdigest()


def load_model(
    name: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
) -> tuple[Colorizer, dict]:
    """Build a model and load its weights; returns (model in eval mode, config).

    weights=None uses the shipped weights of `name` (default model if name is None).
    `checkpoint`: what read_checkpoint already returned for that file (not read again).
    The config gains "weights" (URI) and "weights_sha256".
    """
    name = name or DEFAULT_MODEL
    uri = weights or default_weights(name)
    if uri is None:
        raise FileNotFoundError(
            f"no weights for {name!r}: pass --weights PATH_OR_URL (shipped: {sorted(SHIPPED)})"
        )
    obj, sha = checkpoint or read_checkpoint(uri)
    if isinstance(obj, dict) and "state_dict" in obj and "config" in obj:
        config, state = dict(obj["config"]), obj["state_dict"]
        if weights and name and config.get("name") != name:
            log.warning("checkpoint is a %s model; --model %s ignored", config["name"], name)
    else:
        config, state = {"name": name}, obj
    model = build_loaded(config, state)
    config.update(weights=uri, weights_sha256=sha)
    return model.to(device).eval(), config


def build_loaded(config: dict, state: dict[str, torch.Tensor]) -> Colorizer:
    """The model of `config` holding `state` (every key, exactly: strict), each tensor in the
    model's dtype (fp16 weights come back fp32) and not copied where it already is, built
    without the random initialisation `state` replaces (see skeleton): built on the meta
    device, the tensors assigned; a model that would keep a meta tensor (a buffer outside its
    state dict) is built and loaded the plain way."""
    model = skeleton(config)
    want = model.state_dict()
    state = {k: v.to(want[k].dtype).contiguous() if k in want else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = build(config)
        model.load_state_dict(state, strict=True)
    return model


def save_checkpoint(path: str, model: Colorizer, config: dict, half: bool = False, **extra) -> None:
    """Write {"config", "state_dict", **extra} (state_dict in fp16 when half), all or nothing
    (fileio.write_bytes): a run killed while saving leaves the previous checkpoint whole."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v)
        for k, v in model.state_dict().items()
    }
    buf = io.BytesIO()
    torch.save({"config": config, "state_dict": state, **extra}, buf)
    write_bytes(path, buf.getvalue())


def describe(
    name: str | None = None, weights: str | None = None, checkpoint: Checkpoint | None = None
) -> dict:
    """The config a model would load with (name, weights URI and sha256, decode defaults),
    without building it; `checkpoint` as in load_model. Defaults: render_size 256 (the eccv16
    input size), temperature 0.38, strength 1 (the factor on predicted ab); pipeline and
    decode from models.official (official eccv16/siggraph17: the authors' pipeline, T=1 mean;
    others: project, annealed)."""
    name = name or DEFAULT_MODEL
    uri = weights or default_weights(name)
    if uri is None:
        raise FileNotFoundError(f"no weights for {name!r}: pass --weights PATH_OR_URL")
    obj, sha = checkpoint or read_checkpoint(uri)
    config = dict(obj["config"]) if isinstance(obj, dict) and "config" in obj else {"name": name}
    config.setdefault("render_size", 256)
    config.setdefault("temperature", DEFAULT_TEMPERATURE)
    config.setdefault("strength", 1.0)
    for key, value in official_defaults(config["name"]).items():  # pipeline, decode
        config.setdefault(key, value)
    config.update(weights=uri, weights_sha256=sha)
    return config
