"""How the grayscale / toned filter of `stage` treats real colour photos and toned JPEGs.

    python bench/toned_filter.py                 # 1000 ImageNet samples + 44 photos toned
    python bench/toned_filter.py --size 32       # what the tests' StageConfig(size=32) sees
    python bench/toned_filter.py --limit 100     # quick look
    python bench/toned_filter.py --cifar         # 32 px files: native 32 px vs 64 px upsampled

Runs `transforms.staging.stage_image` (the function `stage` runs per image, thumbnail and
all) on:
  imagenet  every ImageNet sample: count per outcome (kept, grayscale, toned), the kept
            photos with the lowest smooth tone residual, and every toned one;
  toned     gray versions of the 24 Kodak photos and 20 ImageNet samples (fixed, seeded pick),
            toned sepia / cyanotype (tests/helpers.py: SEPIA, CYANOTYPE and a second
            cyanotype) and saved as PNG and JPEG q50, 60, 75, 85, 92, 95: per quality, how many
            were filtered as toned and the largest smooth tone residual.
  cifar     (--cifar) CIFAR-10's 32 px files, which `stage` measures at their own size
            (staging.filter_side: a 32 px thumbnail, small_tone_smoothing): the outcome of
            every CIFAR-10 training file (--cifar-files of them) measured so and on the 64 px
            thumbnail upsampled from it (as `stage` did before), and the same toned JPEGs made
            from --cifar-toned CIFAR photos, caught as toned by each.
The thresholds are `transforms.filters.GrayThresholds`' defaults unless given.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import CIFAR, CYANOTYPE, IMAGENET, KODAK, SEPIA, tone_curve  # noqa: E402
from transforms import staging  # noqa: E402
from transforms.colour import rgb_to_lab  # noqa: E402
from transforms.crop import fit_and_crop, thumbnail  # noqa: E402
from transforms.decode import ImageError, decode_image  # noqa: E402
from transforms.filters import GrayThresholds, colour_measures  # noqa: E402

TONES = {"sepia": SEPIA, "cyanotype": CYANOTYPE, "cyanotype2": ((20, 40, 100), (230, 240, 250))}
QUALITIES = (0, 50, 60, 75, 85, 92, 95)  # 0: PNG


def outcome(uri: str, data: bytes, cfg: staging.StageConfig) -> str:
    """stage_image's outcome: 'kept' or the ImageError outcome."""
    try:
        staging.stage_image(uri, data, cfg)
    except ImageError as e:
        return e.outcome
    return "kept"


def measures(data: bytes, cfg: staging.StageConfig) -> dict[str, float] | None:
    """colour_measures of the thumbnail stage_image classifies (None for single-channel)."""
    img = decode_image(data, draft_size=cfg.size, max_pixels=cfg.max_pixels)
    if img.grayscale_mode:
        return None
    side = staging.filter_side(img.width, img.height)
    thumb = staging.filter_thumbnail(img.image, fit_and_crop(img.image, cfg.size), side)
    lab = rgb_to_lab(thumb)
    return colour_measures(lab, staging.filter_thresholds(cfg.thresholds, side), rgb=thumb)


def encode(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    if quality:
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    else:
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def toned_sources(n_imagenet: int = 20, seed: int = 0) -> list[Path]:
    inet = sorted(IMAGENET.glob("*.JPEG"))
    return sorted(KODAK.glob("*.png")) + random.Random(seed).sample(inet, n_imagenet)


def small_outcomes(datas: list[bytes], t: GrayThresholds) -> dict[int, list[str]]:
    """Filter outcome of 32 px files at each thumbnail side: 32 (natively, as `stage` does)
    and 64 (upsampled), staging.thumbnail_tones (the thresholds of the side); 'grayscale' for
    one channel."""
    thumbs: dict[int, list] = {32: [], 64: []}
    single = []
    for data in datas:
        img = decode_image(data, draft_size=32)
        single.append(img.grayscale_mode)
        for side in thumbs:
            thumbs[side].append(thumbnail(img.rgb, side))
    out = {}
    for side, xs in thumbs.items():
        tones = staging.thumbnail_tones(xs, t)
        out[side] = ["grayscale" if g else o for g, o in zip(single, tones, strict=True)]
    return out


def cifar_report(n_files: int | None, n_toned: int, t: GrayThresholds, seed: int = 0) -> None:
    """Print how the 32 px thumbnail decides against the 64 px one on CIFAR-10 (real files and
    toned JPEGs of them)."""
    files = sorted(CIFAR.glob("*/*.jpg"))
    files = files if n_files is None else random.Random(seed).sample(files, n_files)
    pairs: Counter = Counter()
    for i in range(0, len(files), 1000):
        got = small_outcomes([f.read_bytes() for f in files[i : i + 1000]], t)
        pairs.update(zip(got[64], got[32], strict=True))
    same = sum(n for (a, b), n in pairs.items() if a == b)
    print(f"cifar: {len(files)} files, the same outcome at 32 and 64 px: {same}")
    for (a, b), n in sorted(pairs.items()):
        if a != b:
            print(f"  {n} file(s): {a} at 64 px (upsampled), {b} at 32 px (native)")
    print(f"cifar toned: {n_toned} CIFAR photos per toning, toned at 64 px / at 32 px")
    sources = random.Random(seed + 1).sample(sorted(CIFAR.glob("*/*.jpg")), n_toned)
    grays = [np.asarray(Image.open(f).convert("L")) for f in sources]
    for tone_name, tone in TONES.items():
        for q in QUALITIES:
            got = small_outcomes([encode(tone_curve(g, *tone), q) for g in grays], t)
            n64, n32 = (sum(o == "toned" for o in got[s]) for s in (64, 32))
            print(f"  {tone_name:10s} {'PNG' if q == 0 else f'q{q}':4s} {n64}/{n_toned} / {n32}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224, help="stage --size (default 224)")
    p.add_argument("--limit", type=int, default=None, help="first N ImageNet samples only")
    p.add_argument("--smooth-threshold", type=float, default=None)
    p.add_argument("--cifar", action="store_true", help="only the CIFAR-10 comparison")
    p.add_argument("--cifar-files", type=int, default=None, help="a sample (default: all)")
    p.add_argument("--cifar-toned", type=int, default=300, help="CIFAR photos toned")
    args = p.parse_args(argv)
    t = GrayThresholds()
    if args.smooth_threshold is not None:
        t = GrayThresholds(smooth_tone_residual=args.smooth_threshold)
    if args.cifar:
        cifar_report(args.cifar_files, args.cifar_toned, t)
        return
    cfg = staging.StageConfig(size=args.size, thresholds=t)

    files = sorted(IMAGENET.glob("*.JPEG"))[: args.limit]
    counts: Counter = Counter()
    kept = []
    for f in files:
        data = f.read_bytes()
        o = outcome(str(f), data, cfg)
        counts[o] += 1
        if o in ("kept", "toned"):
            m = measures(data, cfg)
            kept.append((m["smooth_tone_residual"], m["tone_chroma"], f.name, o))
    print(f"imagenet (size {args.size}): {len(files)} files, {dict(sorted(counts.items()))}")
    for r, c, name, o in sorted(kept)[:8]:
        print(f"  {o:6s} smooth residual {r:.3f}  tone chroma {c:5.2f}  {name}")

    rows: dict[tuple[str, int], list[tuple[float, str]]] = {}
    for src in toned_sources():
        gray = np.asarray(Image.open(src).convert("L"))
        for tone_name, tone in TONES.items():
            rgb = tone_curve(gray, *tone)
            for q in QUALITIES:
                data = encode(rgb, q)
                o = outcome(src.name, data, cfg)
                r = measures(data, cfg)["smooth_tone_residual"]
                rows.setdefault((tone_name, q), []).append((r, o, src.name))
    print(f"toned (size {args.size}): {len(toned_sources())} photos x {len(TONES)} tones")
    for (tone_name, q), items in rows.items():
        n_toned = sum(o == "toned" for _, o, _ in items)
        worst = max(items)
        print(
            f"  {tone_name:10s} {'PNG' if q == 0 else f'q{q}':4s} toned {n_toned}/{len(items)}"
            f"  max smooth residual {worst[0]:.3f} ({worst[2]})"
        )


if __name__ == "__main__":
    main()
