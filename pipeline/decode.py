"""`chromabeam decode`: colour bitstreams (`.cbc`) + their luminance files -> colour photos.

MatchFiles (the folder `encode` wrote, or a glob of .cbc files) -> AssignNames (the naming rule
colorize uses, transforms.naming: <stem>.png keeps the relative path) -> parse + check each
bitstream (transforms.bitstream: truncated, corrupted, wrong version / model / weights -> an
error row naming the file, no output) and pair it with its luminance file (<stem>.l.jpg /
.l.png, or the user's own grayscale <stem>.png/.jpg/...), refused when its signature is not
the one the stream was coded against (another photo; --any-luminance decodes anyway) ->
index-layer streams through RunInference (the same ColorizerHandler as encode,
hypotheses=True); gray-mode streams skip the model -> transforms.colourcodec.decode (integer
arithmetic; the refinement layer guided by the luminance file's gray levels) -> full-res
colour image -> <output>/<stem>.png, results/*.parquet (schema.DECODE_SCHEMA), stats.json,
errors/.

As the other jobs: mistakes (no input matched, an output that is a file, weights missing or
not a multihypothesis checkpoint) stop before any worker starts (pipeline.checks, exit code
2); one run at a time holds the output folder (pipeline.locking); every image is written to a
temporary name and renamed into place; the local runner logs progress lines. A rerun starts
again (no --skip-existing: decoding is cheap and deterministic).

`chromabeam decode photo.cbc -o photo.png [--luminance gray.png]` decodes one file (loading
the model only for an index-layer stream); a bad
bitstream there is one line naming the file, exit code 1, and no image is written.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from functools import partial

import apache_beam as beam
import numpy as np

from models.handler import ColorizerHandler, KeyedColorizerHandler
from models.infer import predict_hypotheses, resolve_device
from models.multihyp import STRIDE
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
    safe_apply,
    tick_each,
    write_results_and_stats,
)
from pipeline.encode import (
    CBC,
    MODEL,
    check_codec_weights,
    check_input_file,
    input_bases,
    one_line,
)
from pipeline.options import make_pipeline_options, threads_per_worker
from transforms import colourcodec, schema
from transforms.bitstream import BitstreamError, check_model
from transforms.compose import EXTENSIONS, render_l, write_image
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError
from transforms.fileio import absolute, exists, is_dir, join, read_bytes
from transforms.luminance import decode_luminance, luminance_candidates
from transforms.staging import uri_key

log = logging.getLogger(__name__)
JOB = "decode"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `decode` job's options (every number range-checked by pipeline.checks)."""
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="IN OUTPUT_DIR (IN: an encode output folder or a glob of .cbc files), "
        "or one .cbc with -o",
    )
    p.add_argument(
        "-o",
        "--out-file",
        default=None,
        help="single-file mode: write this image (format from its extension; no Beam)",
    )
    p.add_argument(
        "--luminance",
        default=None,
        help="single-file mode: the luminance (grayscale) image (default: found beside the .cbc)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=f"{MODEL} checkpoint path or URL: the encoder's (default: the shipped {MODEL})",
    )
    p.add_argument(
        "--format", default="png", choices=["png", "jpeg", "webp"], help="output image format"
    )
    p.add_argument(
        "--jpeg-quality", type=checks.quality, default=95, help="JPEG/WebP output quality"
    )
    p.add_argument(
        "--chroma-subsampling",
        default="auto",
        choices=["auto", "444", "420"],
        help="JPEG chroma resolution: 444 (full) or 420 (half); auto: 444 at --jpeg-quality "
        ">= 90, else 420 (lossy WebP is always 4:2:0)",
    )
    p.add_argument(
        "--batch-size", type=checks.positive_int, default=8, help="largest inference batch"
    )
    p.add_argument("--device", type=checks.device_name, default="auto", help="where the model runs")
    p.add_argument(
        "--max-pixels",
        type=checks.positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger luminance images (decompression bombs)",
    )
    p.add_argument(
        "--any-luminance",
        action="store_true",
        help="decode even where the luminance image is not the one the stream was encoded "
        "with (its signature differs: a grayscale of your own, converted otherwise); the "
        "colours are then only as right as its gray levels are close to the encoder's",
    )
    checks.add_allow_empty(p)
    p.add_argument(
        "--base",
        default=None,
        help="input root for output naming (default: the folder given, or the glob's fixed prefix)",
    )


@dataclass(frozen=True)
class DecodeConfig:
    """Everything the per-file functions need (picklable)."""

    output: str
    model: str
    weights: str
    weights_sha256: str
    fmt: str = "png"
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    chroma_subsampling: str = "auto"  # JPEG/WebP chroma: auto | 444 | 420 (encode_image)
    any_luminance: bool = False  # skip the luminance-signature check (--any-luminance)


def find_luminance_if_any(cbc_uri: str) -> str | None:
    """find_luminance, or None where there is none (prepare then names the problem)."""
    try:
        return find_luminance(cbc_uri)
    except ImageError:
        return None


def find_luminance(cbc_uri: str) -> str:
    """The luminance file paired with a .cbc (first existing candidate)."""
    stem = cbc_uri[: -len(CBC)] if cbc_uri.endswith(CBC) else cbc_uri
    candidates = luminance_candidates(stem)
    for c in candidates:
        if exists(c):
            return c
    names = ", ".join(c.rsplit("/", 1)[-1] for c in candidates[:2])
    raise ImageError(schema.UNREADABLE, f"{cbc_uri}: no luminance file ({names}, ...)")


def prepare(uri: str, out_uri: str, cfg: DecodeConfig, luminance_uri: str | None = None) -> dict:
    """Read and check one bitstream, read its luminance file: the item for RunInference."""
    t0 = time.time()
    data = read_bytes(uri)
    try:
        header = colourcodec.read_header(data, uri)
        needs_model = colourcodec.needs_hypotheses(data, uri)  # gray mode: any weights do
        if needs_model:
            check_model(header, uri, cfg.model, cfg.weights_sha256)
    except BitstreamError as e:
        raise ImageError(schema.BAD_BITSTREAM, str(e)) from e
    render = header.hyp_height * STRIDE
    if needs_model and (header.hyp_height != header.hyp_width or not checks.is_render_size(render)):
        raise ImageError(
            schema.BAD_BITSTREAM,
            f"{uri}: invalid header: a {header.hyp_height}x{header.hyp_width} hypothesis map "
            "is none the model makes",
        )
    l_uri = luminance_uri or find_luminance(uri)
    try:
        l = decode_luminance(read_bytes(l_uri), cfg.max_pixels)
    except ImageError as e:  # name both files: the error is the luminance file's
        raise ImageError(e.outcome, f"{uri}: luminance {l_uri}: {e}") from None
    if l.shape != (header.height, header.width):
        raise ImageError(
            schema.BAD_BITSTREAM,
            f"{uri}: luminance {l_uri} is {l.shape[1]}x{l.shape[0]}, "
            f"the bitstream codes {header.width}x{header.height}",
        )
    guide = colourcodec.guide_from_l(l)  # the file's gray levels, as encode's item has them
    if not cfg.any_luminance:  # before the model runs: another photo decodes to wrong colours
        try:
            colourcodec.check_luminance(header, guide, uri)
        except BitstreamError as e:
            raise ImageError(schema.BAD_BITSTREAM, f"{e} (luminance {l_uri})") from e
    return {
        "uri": uri,
        "luminance_uri": l_uri,
        "output_uri": out_uri,
        "data": data,
        "quality": header.quality,
        "needs_model": needs_model,  # gray mode: decoded without the model
        "l": l,
        "guide": guide,
        "l_render": render_l(l, render) if needs_model else None,
        "t0": t0,
    }


def finish(item: dict, hyps: np.ndarray, cfg: DecodeConfig) -> dict:
    """Decode the colours, compose with the luminance, write the image; its results row."""
    try:
        ab = colourcodec.decode(
            item["data"],
            hyps,
            item["uri"],
            cfg.model,
            cfg.weights_sha256,
            guide=item["guide"],
            any_luminance=True,  # checked by prepare (or skipped with --any-luminance)
        )
    except (BitstreamError, colourcodec.CodecError) as e:
        raise ImageError(schema.BAD_BITSTREAM, str(e)) from e
    rgb = colourcodec.reconstruct_rgb(item["l"], ab)
    # streamed and atomic (a temporary name renamed into place): a kill leaves no partial image
    write_image(
        item["output_uri"], rgb, cfg.fmt, cfg.quality, chroma_subsampling=cfg.chroma_subsampling
    )
    return {
        "key": uri_key(item["uri"]),
        "bitstream_uri": item["uri"],
        "luminance_uri": item["luminance_uri"],
        "output_uri": item["output_uri"],
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "colour_bytes": len(item["data"]),
        "quality": item["quality"],
        "seconds": time.time() - item["t0"],
    }


def config_from_args(args: argparse.Namespace, output: str, fmt: str | None = None):
    """The decoder's model (its id and weights hash are checked against each bitstream)."""
    mc = describe(MODEL, args.weights)
    if mc["name"] != MODEL:
        raise checks.UsageError(f"decode needs a {MODEL} checkpoint, got a {mc['name']} model")
    return DecodeConfig(
        output=output,
        model=mc["name"],
        weights=mc["weights"],
        weights_sha256=mc["weights_sha256"],
        fmt=fmt or args.format,
        quality=args.jpeg_quality,
        max_pixels=args.max_pixels,
        chroma_subsampling=getattr(args, "chroma_subsampling", "auto"),
        any_luminance=getattr(args, "any_luminance", False),
    )


def cbc_pattern(path: str) -> str:
    """A folder -> every .cbc under it; anything else is a glob or a file."""
    return join(path.rstrip("/"), "**", "*" + CBC) if is_dir(path) else path


def build(p, cfg: DecodeConfig, inputs: list[str], args, threads: int | None = None) -> None:
    """Add the decode graph to pipeline p."""
    ext = EXTENSIONS[cfg.fmt]
    # (uri, output stem) by transforms.naming, as colorize; inputs inside OUTPUT are skipped
    named = (
        p
        | "Match" >> MatchFiles([cbc_pattern(i) for i in inputs], exclude=cfg.output)
        | "Name" >> AssignNames(input_bases(inputs, args.base))
    )
    prep = prepare_step(
        named, lambda e: prepare(e[0], join(cfg.output, e[1] + ext), cfg), JOB, stage="read"
    )
    # index-layer streams need the model's hypotheses; gray-mode streams decode from the
    # bitstream and luminance alone, so they skip RunInference (and its batching) entirely
    indexed, gray = prep.rows | "NeedsModel" >> beam.Partition(
        lambda item, _: 0 if item["needs_model"] else 1, 2
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
        indexed, handler, partial(finish, cfg=cfg), JOB, "Decode", "decode", schema.DECODED
    )
    done_gray = safe_apply(
        gray,
        lambda item: finish(item, None, cfg),
        JOB,
        "DecodeGray",
        stage="decode",
        read=False,
        success=schema.DECODED,
    )
    rows = (done.rows, done_gray.rows) | "AllDecoded" >> beam.Flatten()
    acc = accounting_inputs(prep, done, done_gray, failed=[model_errors])
    # progress: one tick per input done (rejected, decoded, failed decoding, or in the model)
    tick_each(JOB, prep[OUTCOMES], done[OUTCOMES], done_gray[OUTCOMES], model_errors)
    settings = {
        "model": cfg.model,
        "weights": cfg.weights,
        "inputs": inputs,
        "format": cfg.fmt,
        "quality": cfg.quality,
        "chroma_subsampling": cfg.chroma_subsampling,
        "any_luminance": cfg.any_luminance,
    }
    write_results_and_stats(
        rows, acc, cfg.output, JOB, schema.DECODE_SCHEMA, {"settings": settings}
    )


def decode_file(uri: str, out_file: str, args) -> dict:
    """Single-file mode (no Beam). A bad bitstream raises ImageError naming the file."""
    cfg = config_from_args(args, ".", checks.image_format(out_file, args.format))
    item = prepare(uri, out_file, cfg, args.luminance)  # header checks before the model loads
    hyps = None  # a gray-mode stream needs no model
    if item["needs_model"]:
        model, _ = load_model(cfg.model, cfg.weights, str(resolve_device(args.device)))
        hyps = predict_hypotheses(model, item["l_render"][None])[0]
    row = finish(item, hyps, cfg)
    log.info("wrote %s (%dx%d) in %.2f s", out_file, row["width"], row["height"], row["seconds"])
    return row


def decode_one(paths: list[str], out_file: str, args: argparse.Namespace) -> dict:
    """`decode FILE.cbc -o IMAGE`: the fail-fast checks (exit code 2), then decode_file; a bad
    bitstream or luminance file is one line naming the file (exit 1), and nothing is written."""
    if len(paths) != 1:
        raise checks.UsageError("decode -o takes exactly one .cbc file")
    check_input_file(paths[0])
    if args.luminance and (not exists(args.luminance) or is_dir(args.luminance)):
        raise checks.UsageError(f"--luminance {args.luminance}: no such file")
    checks.check_output_file(out_file)
    checks.image_format(out_file, args.format)  # an extension no writer takes: UsageError
    reads = [paths[0], args.luminance or find_luminance_if_any(paths[0])]
    checks.check_no_overwrite([out_file], [r for r in reads if r])
    check_codec_weights(args.weights)
    checks.check_device(args.device)
    try:
        return decode_file(paths[0], out_file, args)
    except ImageError as e:
        raise checks.JobFailed(one_line(paths[0], e)) from None


def run(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Run the decode job: fail-fast checks on the driver, then the pipeline under the output
    folder's lock, with progress lines on the local runner."""
    if args.out_file:
        decode_one(args.paths, args.out_file, args)
        return
    if len(args.paths) < 2:
        raise checks.UsageError("decode needs IN OUTPUT_DIR (or a .cbc file and -o FILE)")
    if args.luminance:
        raise checks.UsageError(
            "--luminance names the luminance file of one .cbc: use it with -o (a batch "
            "finds each .cbc's own beside it)"
        )
    inputs, output = args.paths[:-1], absolute(args.paths[-1])  # results name it whole
    # fail fast, before any worker starts
    patterns = {cbc_pattern(i): i for i in inputs}
    matched, total = checks.match_inputs(patterns, getattr(args, "allow_empty", False), output)
    inputs = [patterns[m] for m in matched]
    check_codec_weights(args.weights)
    checks.check_device(args.device)
    checks.check_output_dir(output)  # makes the folder: the last check
    cfg = config_from_args(args, output)
    options = make_pipeline_options(beam_args, local_mode="multi_threading")
    threads = threads_per_worker(options)
    run_file_job(
        JOB, output, options, total,
        lambda p: build(p, cfg, inputs, args, threads), schema.DECODED,
    )  # fmt: skip
    log.info("decoded into %s", output)
