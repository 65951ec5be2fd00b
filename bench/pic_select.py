"""Choose pic's decode settings on the ImageNet validation split (never on Kodak).

    python bench/pic_select.py runs/pic-imagenet/model.pt 24

Prints the bits per ab dimension of all validation rows of the staged shards (176 px, ab
area-averaged to the 44 x 44 grid, 1 Lab-unit bins), then for the first N rows the mean
CIEDE2000 (true L with strength x the decoded ab, before the gamut fit) and mean ab error of each
decode method x strength, next to "no colour".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.color import deltaE_ciede2000

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.base import normalize_l  # noqa: E402
from models.data import ShardStream, shard_files  # noqa: E402
from models.registry import load_model  # noqa: E402

METHODS = [("mean", 1.0), ("mode", 1.0), ("mc", 1.0), ("mc", 0.7)]
STRENGTHS = (1.0, 0.7, 0.5, 0.35)


def _de00(lab: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([deltaE_ciede2000(a, b).mean() for a, b in zip(lab, pred, strict=True)]))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("weights", help="a pic checkpoint")
    p.add_argument("n", type=int, nargs="?", default=24, help="validation rows to decode")
    p.add_argument("--stage", default=str(ROOT / "runs" / "stage-imagenet176"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, cfg = load_model("pic", args.weights)
    rows = list(ShardStream(shard_files(args.stage), "val", train=False))
    l, ab = (torch.stack(t) for t in zip(*rows, strict=True))
    print(f"{cfg.get('head', 'ar')} head, {len(l)} validation rows")
    with torch.inference_mode():
        feats = model(normalize_l(l))
        print(f"bits per ab dimension: {float(model.nll_bits(feats, ab).mean()):.3f}")
        feats, l, ab = feats[: args.n], l[: args.n], ab[: args.n]
        lab = torch.cat([l, ab], 1).permute(0, 2, 3, 1).numpy()
        gray = lab.copy()
        gray[..., 1:] = 0
        print(f"no colour: CIEDE2000 {_de00(lab, gray):.3f}")
        for method, t in METHODS:
            t0 = time.time()
            pred = model.decode(feats, size=ab.shape[-2:], temperature=t, method=method, seed=0)
            pred = pred.numpy().transpose(0, 2, 3, 1)
            for s in STRENGTHS:
                out = lab.copy()
                out[..., 1:] = s * pred
                err = np.linalg.norm(out[..., 1:] - lab[..., 1:], axis=-1).mean()
                print(f"{method} T={t} strength {s}: CIEDE2000 {_de00(lab, out):.3f}, ab {err:.2f}")
            print(f"  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
