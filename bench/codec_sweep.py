"""Choose the codec's quality ladder (transforms/colourcodec.QUALITY_SEGMENTS) on validation
photos: ImageNet samples in stage's validation split (transforms.staging.split_of), never
Kodak. Gray base (no model), luma-guided refinement, every (refinement cell, step) pair:

    python bench/codec_sweep.py                      # 10% validation split, about 5 min
    python bench/codec_sweep.py --cells 48,32 --steps 2,4 --limit 8   # quick look

Prints, per pair, mean bytes (whole .cbc) and mean CIEDE2000, then the pairs on the lower
convex hull of (bytes, CIEDE2000): the ladder's segments follow that hull.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import list_files  # noqa: E402
from bench.codec import load_images  # noqa: E402
from transforms import colourcodec as cc  # noqa: E402
from transforms.metrics import ciede2000  # noqa: E402
from transforms.staging import split_of, uri_key  # noqa: E402


def lower_hull(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The lower convex hull of (bytes, distortion, label) points, by increasing bytes."""
    hull: list[tuple[float, float, str]] = []
    for p in sorted(points):
        while len(hull) >= 2:
            (x1, y1, _), (x2, y2, _) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    best = [hull[0]]
    for p in hull[1:]:  # keep only the falling part
        if p[1] < best[-1][1]:
            best.append(p)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/imagenet-samples/*.JPEG")
    p.add_argument("--val-percent", type=float, default=10.0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--cells", default="128,96,64,48,32,24,16,12,8")
    p.add_argument("--steps", default="1,1.5,2,2.5,3,4,6")
    p.add_argument(
        "--dead-zone", type=float, default=cc.DEAD_ZONE, help="quantizer dead zone to try"
    )
    args = p.parse_args(argv)
    cc.DEAD_ZONE = args.dead_zone  # the encoder reads the module constant

    files = list_files(args.data, None)
    files = [f for f in files if split_of(uri_key(f), args.val_percent) == "val"]
    images = load_images(files[: args.limit])
    images = [im for im in images if np.abs(im["lab"][..., 1:]).mean() > 1]  # colour only
    hyps = np.zeros((1, 8, 8, 2), np.int8)  # unused: gray base
    pairs = [(int(c), float(s)) for c in args.cells.split(",") for s in args.steps.split(",")]
    res = {pair: ([], []) for pair in pairs}
    for img in tqdm(images, desc="sweep"):
        guide = cc.guide_from_l(img["lab"][..., 0])
        for cell, step in pairs:
            ab_true = img["lab"][..., 1:]
            data = cc.encode_settings(ab_true, hyps, "sweep", "00" * 32, cell, step, guide)
            ab = cc.decode(data, None, guide=guide)
            lab = np.concatenate([img["lab"][..., :1], ab], -1)
            res[(cell, step)][0].append(len(data))
            res[(cell, step)][1].append(ciede2000(img["lab"], lab))
    print(f"{len(images)} validation photos from {args.data}")
    print(f"{'cell':>5} {'step':>5} {'bytes':>8} {'CIEDE2000':>10}")
    points = []
    for (cell, step), (b, d) in res.items():
        points.append((float(np.mean(b)), float(np.mean(d)), f"{cell}px/step {step:g}"))
        print(f"{cell:5d} {step:5g} {np.mean(b):8.0f} {np.mean(d):10.3f}")
    print("lower convex hull (bytes, CIEDE2000):")
    for b, d, label in lower_hull(points):
        print(f"  {label:<16} {b:8.0f} {d:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
