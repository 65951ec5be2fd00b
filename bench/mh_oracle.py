"""The multihypothesis model on Kodak: selector vs oracle, and codec encode / decode times.

    python bench/mh_oracle.py                       # shipped weights, all 24 Kodak images
    python bench/mh_oracle.py --weights runs/mh-imagenet/model.pt --cells 8,16,32

Per image (original L kept, the convention of bench/codec.py and ../shared/data/README.md:
CIEDE2000 in Lab, PSNR on the sRGB uint8 image), mean over images of:
  selector     the model's own choice, no side information (its shipped decode setting);
  oracle/N     the best hypothesis per N x N cell by squared ab error, hypotheses quantized and
               upsampled exactly as the codec does (transforms/colourcodec.py): the codec's
               zero-refinement point without its rate term;
  mean of K    the plain mean of the K hypotheses.
Then one image's single-file encode and decode (pipeline/encode.py, pipeline/decode.py: JPEG
luminance, model, codec, round-trip scoring / PNG writing), seconds with the model loaded once
and imports excluded, best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import list_files  # noqa: E402
from bench.codec import load_images, score  # noqa: E402
from models.infer import DecodeSettings, predict, predict_hypotheses  # noqa: E402
from models.registry import describe, load_model  # noqa: E402
from transforms import colourcodec as cc  # noqa: E402
from transforms.compose import render_l  # noqa: E402
from transforms.crop import resize_float  # noqa: E402
from transforms.fileio import read_bytes  # noqa: E402
from transforms.regions import GridLayout  # noqa: E402


def oracle_ab(ab_true: np.ndarray, hyps: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """(ab (H, W, 2), chosen index per cell): the best quantized hypothesis per cell."""
    h, w = ab_true.shape[:2]
    ups = [cc.upsample_hypothesis(q, h, w).astype(np.float32) / cc.UP_SCALE
           for q in cc.quantize_hypotheses(hyps)]  # fmt: skip
    layout = GridLayout(h, w, cell)
    sse = np.stack([layout.sums(((ab_true - u) ** 2).sum(-1)) for u in ups], -1)
    idx = sse.argmin(-1)
    labels = layout.expand(idx)
    ab = np.zeros_like(ab_true, dtype=np.float32)
    for k, u in enumerate(ups):
        ab[labels == k] = u[labels == k]
    return ab, idx


def time_codec(weights: str | None, src: str, repeat: int) -> tuple[float, float, int]:
    """Best-of-`repeat` seconds of one image's encode and decode (model loaded once)."""
    import tempfile

    from pipeline import decode, encode

    out = Path(tempfile.mkdtemp())
    p = argparse.ArgumentParser()
    encode.add_arguments(p)
    eargs = p.parse_args(
        [src, "-o", str(out / "x.cbc")] + (["--weights", weights] if weights else [])
    )
    p = argparse.ArgumentParser()
    decode.add_arguments(p)
    dargs = p.parse_args(
        [str(out / "x.cbc"), "-o", str(out / "x.png")] + (["--weights", weights] if weights else [])
    )
    ecfg = encode.config_from_args(eargs, str(out))
    dcfg = decode.config_from_args(dargs, str(out), "png")
    model, _ = load_model(ecfg.model, ecfg.weights)
    enc_s, dec_s, nbytes = [], [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        item = encode.prepare(src, read_bytes(src), str(out / "x"), ecfg)
        item["bitstream_uri"] = str(out / "x.cbc")
        row = encode.finish(item, predict_hypotheses(model, item["l_render"][None])[0], ecfg)
        enc_s.append(time.perf_counter() - t)
        nbytes = row["colour_bytes"]
        t = time.perf_counter()
        it = decode.prepare(str(out / "x.cbc"), str(out / "x.png"), dcfg)
        decode.finish(it, predict_hypotheses(model, it["l_render"][None])[0], dcfg)
        dec_s.append(time.perf_counter() - t)
    return min(enc_s), min(dec_s), nbytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data/kodak/*.png")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--weights", default=None, help="multihypothesis checkpoint (default: shipped)")
    p.add_argument("--cells", default="16", help="oracle cell sizes, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=3, help="timing runs (best is printed)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    mc = describe("multihypothesis", args.weights)
    model, _ = load_model("multihypothesis", args.weights)
    render = int(mc["render_size"])
    settings = DecodeSettings(mc["temperature"], mc["decode"], mc["strength"])
    cells = [int(c) for c in args.cells.split(",") if c]
    files = list_files(args.data, args.limit)
    results: dict[str, list] = {}
    for img in tqdm(load_images(files), desc="images"):
        h, w = img["lab"].shape[:2]
        l_in = render_l(img["lab"][..., 0], render)
        ab_true = img["lab"][..., 1:]
        hyps = predict_hypotheses(model, l_in[None])[0]
        sel = predict(model, l_in[None], settings)[0][0] * np.float32(settings.strength)
        rows = {"selector": resize_float(sel, w, h), "mean of K": resize_float(hyps.mean(0), w, h)}
        for c in cells:
            rows[f"oracle/{c}"] = oracle_ab(ab_true, hyps, c)[0]
        for name, ab in rows.items():
            results.setdefault(name, []).append(score(img, ab))
    print(f"\n{len(files)} images from {args.data}; weights {mc['weights']}")
    print(f"decode setting of the selector: {settings}")
    print(f"{'method':<12} {'CIEDE2000':>10} {'PSNR dB':>8}")
    for name, vals in results.items():
        v = np.array(vals)
        print(f"{name:<12} {v[:, 0].mean():10.3f} {v[:, 1].mean():8.2f}")
    enc, dec, nbytes = time_codec(args.weights, files[0], args.repeat)
    print(
        f"\n{Path(files[0]).name}: encode {enc:.2f} s (quality 50, {nbytes} B), decode {dec:.2f} s "
        f"(model loaded, imports excluded; best of {args.repeat}, {args.threads} torch thread)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
