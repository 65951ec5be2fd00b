"""Shared helpers for the tests: data paths and in-memory image generators."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KODAK = DATA / "kodak"
IMAGENET = DATA / "imagenet-samples"
CIFAR = DATA / "cifar10" / "train"  # 50,000 32 px JPEGs, one folder per class

# The three ImageNet samples that are stored as RGB but carry no colour.
RGB_ENCODED_GRAY = (
    "n03532672_hook.JPEG",
    "n04487394_trombone.JPEG",
    "n03141823_crutch.JPEG",
)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    """Pillow image -> bytes in the given format."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def smooth_colour_field(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A colourful (H, W, 3) uint8 image: smooth, random, independent R, G, B gradients.

    Hue varies across the image independently of brightness, so it is neither gray nor
    a one-hue toned photo.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    chans = []
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 2.0, 2)
        px, py = rng.uniform(0, 2 * np.pi, 2)
        wave = np.sin(2 * np.pi * fx * xx + px) * np.cos(2 * np.pi * fy * yy + py)
        chans.append(0.5 + 0.45 * wave)
    return np.clip(np.rint(np.stack(chans, -1) * 255), 0, 255).astype(np.uint8)


def gray_photo(size: int | None = None) -> np.ndarray:
    """A real photo (Kodak 23) as (H, W) uint8 luminance, optionally thumbnailed."""
    img = Image.open(KODAK / "kodim23.png").convert("L")
    if size is not None:
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img)


def tone_curve(gray: np.ndarray, dark: tuple, light: tuple) -> np.ndarray:
    """Map a gray (H, W) uint8 image onto a linear ramp between two RGB colours (toning)."""
    t = gray.astype(np.float64)[..., None] / 255.0
    dark = np.asarray(dark, dtype=np.float64)
    light = np.asarray(light, dtype=np.float64)
    return np.clip(np.rint(dark + t * (light - dark)), 0, 255).astype(np.uint8)


SEPIA = ((60, 35, 15), (250, 235, 205))  # dark brown -> cream
CYANOTYPE = ((15, 35, 90), (200, 235, 245))  # dark blue -> light cyan


def sigint_as_a_terminal_sends_it() -> None:
    """preexec_fn of a child that a test interrupts: SIGINT back to its default disposition.
    A shell's background job (`cmd &`, as CI may run the tests) ignores SIGINT, children inherit
    that, and Python then installs no KeyboardInterrupt handler, so the Ctrl-C never lands."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def capture_pipelines(monkeypatch) -> list:
    """Record every beam.Pipeline run from now on (in the list returned), still running it."""
    import apache_beam as beam

    seen: list = []
    run = beam.Pipeline.run

    def recording_run(self, *args, **kwargs):
        seen.append(self)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(beam.Pipeline, "run", recording_run)
    return seen


def transform_nodes(pipeline, composites: bool = False) -> list:
    """The applied transform nodes of a pipeline: its leaves, and with `composites` the
    composite transforms (RunInference, ...) too."""
    import apache_beam as beam

    nodes: list = []

    class Visit(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            nodes.append(node)

        def enter_composite_transform(self, node):
            if composites:
                nodes.append(node)

    pipeline.visit(Visit())
    return nodes


def upstream_of(pipeline, label_end: str) -> set[str]:
    """The full labels of every transform the one whose full label ends with `label_end` waits
    for: its producers, through main and side inputs, transitively."""
    (start,) = [t for t in transform_nodes(pipeline) if t.full_label.endswith(label_end)]
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        inputs = [*node.main_inputs.values(), *(s.pvalue for s in node.side_inputs)]
        for pcoll in inputs:
            producer = getattr(pcoll, "producer", None)
            if producer is not None and producer.full_label not in seen:
                seen.add(producer.full_label)
                todo.append(producer)
    return seen
