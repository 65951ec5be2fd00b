"""`chromabeam colorize`: grayscale (or colour) photos in, colour photos out at full resolution.

MatchFiles -> Reshuffle -> decode + L at render size (transforms.compose) ->
RunInference (models.infer.ColorizerHandler, batched, model loaded once per worker) ->
upsample ab, combine with the original L, write image (fsspec) ->
  <output>/<input's relative path>.<fmt>, results/*.parquet (schema.COLORIZE_SCHEMA),
  stats.json, errors/, filtered/ (skipped files)

`chromabeam colorize photo.jpg -o photo_color.png` colorizes single files without Beam.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import time
from dataclasses import dataclass
from functools import partial

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from models.infer import ColorizerHandler, DecodeSettings, predict_ab, resolve_device
from models.registry import describe, load_model, names
from pipeline.common import (
    MatchFiles,
    WriteAccounting,
    WriteRowBatches,
    accounting_inputs,
    dead_letter_rows,
    safe_apply,
)
from pipeline.options import log_counters, make_pipeline_options, threads_per_worker
from transforms import schema
from transforms.colour import chroma, rgb_to_lab
from transforms.compose import EXTENSIONS, compose, encode_image, luminance, render_l
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.fileio import clear_dirs, exists, is_dir, join, read_bytes, write_bytes
from transforms.metrics import colorfulness
from transforms.staging import uri_key

log = logging.getLogger(__name__)
JOB = "colorize"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `colorize` job's options."""
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="INPUT_GLOB [INPUT_GLOB ...] OUTPUT_DIR, or image files with -o",
    )
    p.add_argument(
        "-o",
        "--out-file",
        default=None,
        help="single-image mode: write the colorized INPUT here (no Beam)",
    )
    p.add_argument(
        "--model",
        default=None,
        choices=names(),
        help="model name (default: the shipped eccv16-small)",
    )
    p.add_argument("--weights", default=None, help="checkpoint path or URL (fsspec)")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="annealed-mean T (default: the model's, 0.38 for Zhang)",
    )
    p.add_argument(
        "--decode",
        default="annealed",
        choices=["annealed", "mean", "mode"],
        help="classification decoding: annealed mean (T), mean (T=1) or mode",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=None,
        help="factor on the predicted ab (default: the model's, chosen on validation data)",
    )
    p.add_argument(
        "--render-size",
        type=int,
        default=None,
        help="model input side (default: the model's; 256 for eccv16)",
    )
    p.add_argument(
        "--format", default="png", choices=["png", "jpeg", "webp"], help="output image format"
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality")
    p.add_argument("--batch-size", type=int, default=8, help="largest inference batch")
    p.add_argument("--min-batch-size", type=int, default=1, help="smallest inference batch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs already written")
    p.add_argument(
        "--keep-original",
        action="store_true",
        help="also copy each input to OUTPUT/originals/ (for later evaluation)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    p.add_argument(
        "--base",
        default=None,
        help="input root for output naming (default: the glob's fixed prefix)",
    )


@dataclass(frozen=True)
class ColorizeConfig:
    """Everything the per-image functions need (picklable)."""

    output: str
    bases: tuple[str, ...]
    model: str
    weights: str
    weights_sha256: str
    render_size: int
    settings: DecodeSettings
    fmt: str = "png"
    quality: int = 95
    skip_existing: bool = False
    keep_original: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


def glob_base(pattern: str) -> str:
    """The folder outputs are named relative to: a folder input itself, else the folder part
    of the glob before its first wildcard ('scans/**/*.tif' -> 'scans')."""
    if not any(c in pattern for c in "*?[") and is_dir(pattern):
        return pattern.rstrip("/")
    cut = min((pattern.find(c) for c in "*?[" if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head.rstrip("/") if head.endswith("/") else posixpath.dirname(head)


def output_uri(uri: str, cfg: ColorizeConfig, folder: str = "", ext: str | None = None) -> str:
    """OUTPUT/<path of uri relative to its base, extension replaced>."""
    rel = posixpath.basename(uri)
    for base in sorted(cfg.bases, key=len, reverse=True):
        if base and uri.startswith(base.rstrip("/") + "/"):
            rel = uri[len(base.rstrip("/")) + 1 :]
            break
    stem = posixpath.splitext(rel)[0]
    return join(cfg.output, folder, stem + (ext if ext is not None else EXTENSIONS[cfg.fmt]))


def prepare(uri: str, data: bytes, cfg: ColorizeConfig) -> dict:
    """Decode one file into the item that travels through RunInference."""
    t0 = time.time()
    out = output_uri(uri, cfg)
    if cfg.skip_existing and exists(out):
        raise ImageError(schema.SKIPPED, f"output exists: {out}")
    img = decode_image(data, max_pixels=cfg.max_pixels)
    l_full = luminance(img.rgb)
    if cfg.keep_original:
        write_bytes(output_uri(uri, cfg, "originals", posixpath.splitext(uri)[1]), data)
    return {
        "uri": uri,
        "output_uri": out,
        "l_full": l_full,
        "l_render": render_l(l_full, cfg.render_size),
        "width": img.width,
        "height": img.height,
        "exif": img.exif,
        "icc": img.icc_profile if not img.grayscale_mode else None,
        "t0": t0,
    }


def finish(item: dict, ab_small: np.ndarray, cfg: ColorizeConfig) -> dict:
    """Compose the full-resolution colour image, write it, return its results row."""
    rgb = compose(item["l_full"], ab_small, cfg.settings.strength)
    write_bytes(
        item["output_uri"], encode_image(rgb, cfg.fmt, cfg.quality, item["exif"], item["icc"])
    )
    ab_out = rgb_to_lab(rgb[::4, ::4].astype(np.float32) / 255.0)[..., 1:]
    return {
        "key": uri_key(item["uri"]),
        "source_uri": item["uri"],
        "output_uri": item["output_uri"],
        "width": item["width"],
        "height": item["height"],
        "model": cfg.model,
        "weights_sha256": cfg.weights_sha256,
        "temperature": cfg.settings.temperature,
        "strength": cfg.settings.strength,
        "render_size": cfg.render_size,
        "mean_chroma": float(chroma(ab_out).mean()),
        "colorfulness": colorfulness(rgb),
        "seconds": time.time() - item["t0"],
    }


def config_from_args(args: argparse.Namespace, inputs: list[str], output: str) -> ColorizeConfig:
    """Resolve model defaults (render size, temperature) from the checkpoint's config."""
    mc = describe(args.model, args.weights)
    settings = DecodeSettings(
        temperature=args.temperature if args.temperature is not None else mc["temperature"],
        method=args.decode,
        strength=args.strength if args.strength is not None else mc["strength"],
    )
    return ColorizeConfig(
        output=output,
        bases=tuple([args.base] if args.base else [glob_base(p) for p in inputs]),
        model=mc["name"],
        weights=mc["weights"],
        weights_sha256=mc["weights_sha256"],
        render_size=args.render_size or int(mc["render_size"]),
        settings=settings,
        fmt=args.format,
        quality=args.quality,
        skip_existing=args.skip_existing,
        keep_original=args.keep_original,
        max_pixels=args.max_pixels,
    )


def build(
    p: beam.Pipeline, cfg: ColorizeConfig, inputs: list[str], args, threads: int | None = None
) -> None:
    """Add the colorize graph to pipeline p."""
    uris = p | "Match" >> MatchFiles(inputs)
    prep = safe_apply(uris, partial(prepare, cfg=cfg), JOB, "Prepare", stage="decode", success=None)
    handler = KeyedModelHandler(
        ColorizerHandler(
            cfg.model,
            cfg.weights,
            args.device,
            cfg.settings,
            min_batch_size=args.min_batch_size,
            max_batch_size=args.batch_size,
            threads=threads,
        )
    )
    predictions, dlq = (
        prep.rows
        | "Key" >> beam.Map(lambda it: (it, it["l_render"]))
        | "Infer" >> RunInference(handler).with_exception_handling()
    )
    done = safe_apply(
        predictions,
        lambda kv: finish(kv[0], kv[1].inference, cfg),
        JOB,
        "Finish",
        stage="write",
        read=False,
        success=schema.COLORIZED,
        uri_of=lambda kv: kv[0]["uri"],
    )
    model_errors = dlq.failed_inferences | "ModelErrors" >> beam.FlatMap(dead_letter_rows, "model")
    _ = done.rows | "Results" >> WriteRowBatches(
        join(cfg.output, "results"), "part", schema.COLORIZE_SCHEMA, 10000
    )
    settings = {
        "model": cfg.model,
        "weights": cfg.weights,
        "weights_sha256": cfg.weights_sha256,
        "render_size": cfg.render_size,
        "temperature": cfg.settings.temperature,
        "decode": cfg.settings.method,
        "strength": cfg.settings.strength,
        "inputs": inputs,
        "format": cfg.fmt,
    }
    acc = accounting_inputs(prep, done, extra_errors=[model_errors])
    _ = acc | "Accounting" >> WriteAccounting(cfg.output, JOB, {"settings": settings})


def colorize_files(inputs: list[str], out_file: str, args) -> None:
    """Single-image mode: colorize each input file directly (no Beam)."""
    if len(inputs) != 1:
        raise SystemExit("colorize -o takes exactly one input image")
    cfg = config_from_args(args, inputs, posixpath.dirname(out_file) or ".")
    fmt = posixpath.splitext(out_file)[1].lower().lstrip(".") or cfg.fmt
    cfg = ColorizeConfig(**{**cfg.__dict__, "fmt": "jpeg" if fmt == "jpg" else fmt})
    model, _ = load_model(cfg.model, cfg.weights, str(resolve_device(args.device)))
    item = prepare(inputs[0], read_bytes(inputs[0]), cfg)
    item["output_uri"] = out_file
    ab = predict_ab(model, item["l_render"][None], cfg.settings)[0]
    row = finish(item, ab, cfg)
    log.info("wrote %s (%dx%d) in %.2f s", out_file, row["width"], row["height"], row["seconds"])


def run(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Run the colorize job."""
    if args.out_file:
        colorize_files(args.paths, args.out_file, args)
        return
    if len(args.paths) < 2:
        raise SystemExit("colorize needs INPUT_GLOB... OUTPUT_DIR (or an image and -o FILE)")
    inputs, output = args.paths[:-1], args.paths[-1]
    cfg = config_from_args(args, inputs, output)
    log.info(
        "model %s (%s), render size %d, T=%.2f",
        cfg.model,
        cfg.weights,
        cfg.render_size,
        cfg.settings.temperature,
    )
    # --skip-existing resumes a run: keep its results table, add the new rows beside it.
    clear_dirs(output, ["errors", "filtered"] + ([] if args.skip_existing else ["results"]))
    options = make_pipeline_options(beam_args, local_mode="multi_threading")
    with beam.Pipeline(options=options) as p:
        build(p, cfg, inputs, args, threads_per_worker(options))
    log_counters(p.result, JOB)
    log.info("colorized into %s", output)
