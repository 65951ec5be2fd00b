"""`chromabeam encode`: colour photos -> a luminance file + a colour bitstream (`.cbc`) each.

MatchFiles -> AssignNames (the naming rule colorize uses, transforms.naming: relative path
kept, same-stem collisions keep both; inputs inside OUTPUT skipped) -> decode, write the
luminance file (grayscale JPEG at --l-quality, or PNG) and read it back, so the model sees
exactly what the decoder will see -> RunInference (models.handler.ColorizerHandler with
hypotheses=True: the K ab hypotheses of the multihypothesis model; same batching and --device
as colorize) -> transforms.colourcodec (best hypothesis per --region cell + refinement layer,
--quality / --max-bytes; the refinement layer follows the luminance file's gray levels,
transforms.lumaguide) -> <output>/<stem>.cbc and <output>/<stem>.l.jpg|png; the round trip
is decoded and scored (CIEDE2000, RGB PSNR) -> results/*.parquet (schema.ENCODE_SCHEMA),
stats.json, errors/.

As the other jobs: mistakes (no input matched, an output that is a file, weights missing or
not a multihypothesis checkpoint) stop before any worker starts (pipeline.checks, exit code
2); one run at a time holds the output folder (pipeline.locking); every file is written to a
temporary name and renamed into place; the local runner logs progress lines. A rerun starts
again (no --skip-existing).

`chromabeam encode photo.jpg -o photo.cbc` encodes one image without Beam (luminance file
beside it: photo.l.jpg); a bad input there is one line naming the file, exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from models.handler import ColorizerHandler, KeyedColorizerHandler
from models.infer import predict_hypotheses, resolve_device
from models.registry import describe, load_model
from pipeline import checks
from pipeline.common import (
    OUTCOMES,
    AssignNames,
    MatchFiles,
    accounting_inputs,
    infer_and_finish,
    prepare_step,
    run_file_job,
    tick_each,
    write_results_and_stats,
)
from pipeline.options import make_pipeline_options, threads_per_worker
from transforms import colourcodec, schema
from transforms.colour import rgb_to_lab
from transforms.compose import render_l
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.fileio import (
    absolute,
    exists,
    is_dir,
    join,
    read_bytes,
    remove,
    write_bytes,
)
from transforms.luminance import FORMATS, SUFFIX, decode_luminance, encode_luminance
from transforms.metrics import ciede2000, psnr
from transforms.naming import pattern_base
from transforms.staging import uri_key

log = logging.getLogger(__name__)
JOB = "encode"
MODEL = "multihypothesis"
CBC = ".cbc"


# --quality 0 is meaningful here (hypothesis indices only), unlike an image quality
CODEC_QUALITY = checks.number_in(0, 100, integer=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `encode` job's options (every number range-checked by pipeline.checks)."""
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="INPUT_GLOB [INPUT_GLOB ...] OUTPUT_DIR, or one image with -o",
    )
    p.add_argument(
        "-o",
        "--out-file",
        default=None,
        help="single-image mode: write this .cbc, its luminance file beside it (no Beam)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=f"{MODEL} checkpoint path or URL (default: the shipped {MODEL})",
    )
    p.add_argument(
        "--quality",
        type=CODEC_QUALITY,
        default=50,
        help="colour quality: 0 = hypothesis indices only, higher = finer refinement layer",
    )
    p.add_argument(
        "--max-bytes",
        type=checks.positive_int,
        default=None,
        help="largest bitstream in bytes: the best quality up to --quality that fits "
        "(default: no limit)",
    )
    p.add_argument(
        "--region",
        type=checks.positive_int,
        default=16,
        help="side in pixels of the grid cells that each get a hypothesis index",
    )
    p.add_argument(
        "--l-format", default="jpeg", choices=list(FORMATS), help="luminance file format"
    )
    p.add_argument(
        "--l-quality",
        type=checks.quality,
        default=90,
        help="JPEG quality of the luminance file (--l-format jpeg)",
    )
    p.add_argument(
        "--render-size",
        type=checks.render_size,
        default=None,
        help="model input side (default: the checkpoint's)",
    )
    p.add_argument(
        "--batch-size", type=checks.positive_int, default=8, help="largest inference batch"
    )
    p.add_argument("--device", type=checks.device_name, default="auto", help="where the model runs")
    p.add_argument(
        "--max-pixels",
        type=checks.positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    checks.add_allow_empty(p)
    p.add_argument(
        "--base",
        default=None,
        help="input root for output naming (default: the folder given, or the glob's fixed prefix)",
    )


@dataclass(frozen=True)
class EncodeConfig:
    """Everything the per-image functions need (picklable)."""

    output: str
    model: str
    weights: str
    weights_sha256: str
    render_size: int
    quality: int = 50
    max_bytes: int | None = None
    region: int = 16
    l_format: str = "jpeg"
    l_quality: int = 90
    max_pixels: int = DEFAULT_MAX_PIXELS


def input_bases(inputs: list[str], base: str | None) -> list[str]:
    """--base, else each input's folder (a folder input) or its glob's fixed prefix."""
    if base:
        return [base]
    return [pattern_base(p, folder=is_dir(p)) for p in inputs]


def check_codec_weights(weights: str | None) -> None:
    """Fail fast (UsageError, one line naming the file) unless `weights` (default: the
    shipped ones) is a loadable checkpoint of the multihypothesis model."""
    checks.check_weights(MODEL, weights)  # a checkpoint of another model is refused there


def check_input_file(uri: str) -> None:
    """Single-file mode: the input exists and is a file (else UsageError, exit code 2)."""
    if not exists(uri) or is_dir(uri):
        raise checks.UsageError(f"{uri}: no such file")


def one_line(uri: str, e: Exception) -> str:
    """An error message that names the file (prefixed unless it already does)."""
    text = " ".join(str(e).split())
    return text if uri in text else f"{uri}: {text}"


def prepare(uri: str, data: bytes, stem_uri: str, cfg: EncodeConfig) -> dict:
    """Decode one colour photo, code its luminance file, and return the item that travels
    through RunInference (the model input is the L decoded back from that file's bytes;
    finish() writes the file once the colours are coded, so a failure writes nothing)."""
    t0 = time.time()
    img = decode_image(data, max_pixels=cfg.max_pixels)
    lab = rgb_to_lab(img.rgb)
    l_data = encode_luminance(lab[..., 0], cfg.l_format, cfg.l_quality)
    l_uri = stem_uri + SUFFIX + FORMATS[cfg.l_format]
    l_dec = decode_luminance(l_data)  # written by finish(), once the colours are coded
    return {
        "uri": uri,
        "bitstream_uri": stem_uri + CBC,
        "luminance_uri": l_uri,
        "luminance_bytes": len(l_data),
        "luminance_data": l_data,
        "rgb": img.rgb,
        "ab": lab[..., 1:],
        "l": l_dec,
        "guide": colourcodec.guide_from_l(l_dec),  # the decoder's guide: the file's gray levels
        "l_render": render_l(l_dec, cfg.render_size),
        "t0": t0,
    }


def remove_stale_luminance(cbc_uri: str, l_uri: str) -> None:
    """Remove the luminance file an earlier run wrote beside this .cbc in the other format
    (`<stem>.l.png` after a run with --l-format jpeg, and back): decode takes the first it
    finds (luminance_candidates), which must be the one this bitstream was coded against."""
    stem = cbc_uri[: -len(CBC)]
    for ext in FORMATS.values():
        other = stem + SUFFIX + ext
        if other != l_uri and exists(other):
            remove(other)


def finish(item: dict, hyps: np.ndarray, cfg: EncodeConfig) -> dict:
    """Code the colours, write the luminance file and the .cbc, decode it back and score the
    round trip."""
    try:
        data = colourcodec.encode(
            item["ab"],
            hyps,
            cfg.model,
            cfg.weights_sha256,
            quality=cfg.quality,
            cell=cfg.region,
            max_bytes=cfg.max_bytes,
            guide=item["guide"],
        )
    except colourcodec.CodecError as e:  # neither file written: an error row
        raise ImageError("codec_failed", f"{item['uri']}: {e}") from e
    write_bytes(item["luminance_uri"], item["luminance_data"])  # each atomic
    write_bytes(item["bitstream_uri"], data)
    remove_stale_luminance(item["bitstream_uri"], item["luminance_uri"])
    ab = colourcodec.decode(data, hyps, guide=item["guide"])
    rgb = colourcodec.reconstruct_rgb(item["l"], ab)
    height, width = rgb.shape[:2]
    f = np.float32(1 / 255)
    return {
        "key": uri_key(item["uri"]),
        "source_uri": item["uri"],
        "luminance_uri": item["luminance_uri"],
        "bitstream_uri": item["bitstream_uri"],
        "width": width,
        "height": height,
        "luminance_bytes": item["luminance_bytes"],
        "colour_bytes": len(data),
        "model": cfg.model,
        "weights_sha256": cfg.weights_sha256,
        "quality": colourcodec.read_header(data).quality,  # under --max-bytes: the one used
        "max_bytes": cfg.max_bytes or 0,
        "region": cfg.region,
        "l_format": cfg.l_format,
        "l_quality": cfg.l_quality if cfg.l_format == "jpeg" else 0,
        "ciede2000": ciede2000(rgb_to_lab(item["rgb"]), rgb_to_lab(rgb)),
        "psnr": psnr(item["rgb"].astype(np.float32) * f, rgb.astype(np.float32) * f),
        "seconds": time.time() - item["t0"],
    }


def config_from_args(args: argparse.Namespace, output: str) -> EncodeConfig:
    """Resolve the model's defaults (render size) from its checkpoint (which run() has
    checked: check_codec_weights)."""
    mc = describe(MODEL, args.weights)
    if mc["name"] != MODEL:
        raise checks.UsageError(f"encode needs a {MODEL} checkpoint, got a {mc['name']} model")
    if not 0 <= args.quality <= 100:  # callers outside argparse (bench/)
        raise checks.UsageError(f"--quality {args.quality}: must be 0..100")
    return EncodeConfig(
        output=output,
        model=mc["name"],
        weights=mc["weights"],
        weights_sha256=mc["weights_sha256"],
        render_size=args.render_size or int(mc["render_size"]),
        quality=args.quality,
        max_bytes=args.max_bytes,
        region=args.region,
        l_format=args.l_format,
        l_quality=args.l_quality,
        max_pixels=args.max_pixels,
    )


def build(p, cfg: EncodeConfig, inputs: list[str], args, threads: int | None = None) -> None:
    """Add the encode graph to pipeline p."""
    # (uri, output stem) by transforms.naming, as colorize; inputs inside OUTPUT are skipped
    named = (
        p
        | "Match" >> MatchFiles(inputs, exclude=cfg.output)
        | "Name" >> AssignNames(input_bases(inputs, args.base))
    )
    prep = prepare_step(
        named, lambda e: prepare(e[0], read_bytes(e[0]), join(cfg.output, e[1]), cfg), JOB
    )
    handler = KeyedColorizerHandler(
        ColorizerHandler(
            cfg.model,
            cfg.weights,
            args.device,
            max_batch_size=args.batch_size,
            threads=threads,
            hypotheses=True,
        )
    )
    done, model_errors = infer_and_finish(
        prep.rows, handler, partial(finish, cfg=cfg), JOB, "Code", "code", schema.ENCODED
    )
    settings = {k: v for k, v in cfg.__dict__.items() if k != "output"}
    acc = accounting_inputs(prep, done, failed=[model_errors])
    # progress: one tick per input done (rejected, coded, failed coding, or failed in the model)
    tick_each(JOB, prep[OUTCOMES], done[OUTCOMES], model_errors)
    extra = {"settings": {**settings, "inputs": inputs}}
    write_results_and_stats(done.rows, acc, cfg.output, JOB, schema.ENCODE_SCHEMA, extra)


def encode_file(uri: str, out_file: str, args) -> dict:
    """Single-image mode (no Beam): write out_file (.cbc) and its luminance file beside it."""
    stem = out_file[: -len(CBC)]  # encode_one: out_file ends in .cbc
    cfg = config_from_args(args, posixpath.dirname(out_file) or ".")
    item = prepare(uri, read_bytes(uri), stem, cfg)  # a bad input fails before the model loads
    model, _ = load_model(cfg.model, cfg.weights, str(resolve_device(args.device)))
    item["bitstream_uri"] = out_file
    row = finish(item, predict_hypotheses(model, item["l_render"][None])[0], cfg)
    log.info(
        "wrote %s (%d B colour, %d B luminance; round trip CIEDE2000 %.2f, %.2f dB) in %.2f s",
        out_file,
        row["colour_bytes"],
        row["luminance_bytes"],
        row["ciede2000"],
        row["psnr"],
        row["seconds"],
    )
    return row


def encode_one(paths: list[str], out_file: str, args: argparse.Namespace) -> dict:
    """`encode IMAGE -o FILE.cbc`: the fail-fast checks (exit code 2), then encode_file; a bad
    input or a bitstream that cannot fit --max-bytes is one line naming the file (exit 1)."""
    if len(paths) != 1:
        raise checks.UsageError("encode -o takes exactly one input image")
    check_input_file(paths[0])
    checks.check_output_file(out_file)
    if not out_file.endswith(CBC):
        raise checks.UsageError(f"-o {out_file}: a bitstream's name ends in {CBC}")
    l_uri = out_file[: -len(CBC)] + SUFFIX + FORMATS[args.l_format]
    checks.check_no_overwrite([out_file, l_uri], paths)
    check_codec_weights(args.weights)
    checks.check_device(args.device)
    try:
        return encode_file(paths[0], out_file, args)
    except ImageError as e:
        raise checks.JobFailed(one_line(paths[0], e)) from None


def run(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Run the encode job: fail-fast checks on the driver, then the pipeline under the output
    folder's lock, with progress lines on the local runner."""
    if args.out_file:
        encode_one(args.paths, args.out_file, args)
        return
    if len(args.paths) < 2:
        raise checks.UsageError(
            "encode needs INPUT_GLOB... OUTPUT_DIR (or an image and -o FILE.cbc)"
        )
    inputs, output = args.paths[:-1], absolute(args.paths[-1])  # results name it whole
    # fail fast, before any worker starts
    inputs, total = checks.match_inputs(inputs, getattr(args, "allow_empty", False), output)
    check_codec_weights(args.weights)
    checks.check_device(args.device)
    checks.check_output_dir(output)  # makes the folder: the last check
    cfg = config_from_args(args, output)
    log.info("model %s (%s), render size %d", cfg.model, cfg.weights, cfg.render_size)
    options = make_pipeline_options(beam_args, local_mode="multi_threading")
    threads = threads_per_worker(options)
    run_file_job(
        JOB, output, options, total,
        lambda p: build(p, cfg, inputs, args, threads), schema.ENCODED,
    )  # fmt: skip
    log.info("encoded into %s", output)
