"""Helpers shared by the model / train / colorize / evaluate tests (import explicitly).

Not a conftest: the test modules import these functions and wrap them in their own fixtures.
Everything here is small enough for the default (fast) test run on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.helpers import smooth_colour_field
from transforms.bins import num_bins

# In-process Beam: no worker subprocesses, one worker.
BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]

TINY_WIDTH = 0.125
TINY_RENDER = 32


def one_thread() -> None:
    """Keep torch to one CPU thread (the machine is shared with a training run)."""
    torch.set_num_threads(1)


def uniform_prior() -> list[float]:
    """A uniform distribution over the in-gamut bins."""
    q = num_bins()
    return [1.0 / q] * q


def tiny_config(name: str = "eccv16-small", **extra) -> dict:
    """The config of a tiny model (num_bins given explicitly: see test_models for why)."""
    cfg = {
        "name": name,
        "width": TINY_WIDTH,
        "render_size": TINY_RENDER,
        "temperature": 0.38,
        "prior": uniform_prior(),
    }
    if name == "eccv16-small":
        cfg["num_bins"] = num_bins()
    cfg.update(extra)
    return cfg


def build_tiny(name: str = "eccv16-small", seed: int = 0, **extra):
    """(model in eval mode, config) with deterministic random weights.

    BatchNorm running statistics are randomised too, so eval outputs are not trivially
    constant and a round trip that dropped a buffer would be noticed.
    """
    from models.registry import build

    one_thread()
    cfg = tiny_config(name, **extra)
    torch.manual_seed(seed)
    model = build(cfg)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return model.eval(), cfg


def write_tiny_checkpoint(
    path: str | Path, name: str = "eccv16-small", seed: int = 0, half: bool = False, **extra
) -> dict:
    """Save a tiny model's checkpoint at path; returns its config."""
    from models.registry import save_checkpoint

    model, cfg = build_tiny(name, seed, **extra)
    save_checkpoint(str(path), model, cfg, half=half)
    return cfg


def save_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 array as PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, "PNG")
    return path


def colour_images(folder: Path, n: int, h: int, w: int, seed: int = 0) -> list[Path]:
    """n smooth random colour-field PNGs (h x w) in folder, named img_00.png, ..."""
    return [
        save_png(folder / f"img_{i:02d}.png", smooth_colour_field(h, w, seed=seed + i))
        for i in range(n)
    ]


def stage_args(inputs: list[str], output: str, *extra: str) -> argparse.Namespace:
    """Parsed `stage` options."""
    from pipeline import stage

    p = argparse.ArgumentParser()
    stage.add_arguments(p)
    return p.parse_args([*inputs, output, *extra])


def run_stage(inputs: list[str], output: str, *extra: str) -> None:
    """Run the stage pipeline in-process."""
    from pipeline import stage

    stage.run(stage_args(inputs, output, *extra), list(BEAM_ARGS))


def job_args(module, argv: list[str]) -> argparse.Namespace:
    """Parse argv with a job module's own add_arguments."""
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)
