"""`chromabeam colorize`: grayscale (or colour) photos in, colour photos out at full resolution.

MatchFiles -> AssignNames (GroupByKey of candidate names, Reshuffle) -> resumed outputs split
off (--skip-existing) -> decode + L at render size (transforms.compose) ->
RunInference (models.handler.ColorizerHandler, batched, model loaded once per worker) ->
upsample ab, combine with the original L, write image (fsspec) ->
  <output>/<input's relative path>.<fmt> (named by transforms.naming: never two inputs on one
  output), results/*.parquet (schema.COLORIZE_SCHEMA), stats.json, errors/, filtered/,
  .chromabeam/done/<output>.json (finished markers: what --skip-existing trusts)

Every write is atomic (transforms.fileio.atomic_write) and one run at a time holds the output
folder (pipeline.locking), so a killed run resumes exactly with --skip-existing: outputs with
a finished marker whose size matches are kept, their results rows recovered from the markers.

`chromabeam colorize photo.jpg -o photo_color.png` colorizes single files without Beam.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import time
from dataclasses import dataclass, field

import numpy as np

from models.infer import DecodeSettings, predict_ab, resolve_device
from models.official import PIPELINES, PROJECT, model_input, model_output
from models.registry import (
    Checkpoint,
    applied_decode,
    can_sample,
    describe,
    load_model,
    names,
    takes_hints,
)
from pipeline import checks
from transforms import naming, schema
from transforms.colour import chroma, rgb_to_lab
from transforms.compose import EXTENSIONS, luminance, write_image
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.fileio import (
    absolute,
    exists,
    file_size,
    file_stamp,
    is_dir,
    join,
    read_bytes,
    read_json,
    write_bytes,
    write_json,
)
from transforms.hints import (
    HintError,
    hinted_strength,
    no_hints,
    parse_hints,
    sidecar_uri,
    with_hints,
)
from transforms.metrics import colorfulness
from transforms.staging import uri_key

log = logging.getLogger(__name__)
JOB = "colorize"
PROCESSES_FROM = 256  # inputs from which local runs use worker processes (local_mode)
# Larger images do not ride through RunInference's batches with their full-resolution L (a
# batch of 8 48 MP scans would hold 1.5 GB): finish() decodes them again instead.
CARRY_PIXELS = 4_000_000


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
        type=checks.temperature,
        default=None,
        help="annealed-mean T (default: the model's, 0.38 for Zhang)",
    )
    p.add_argument(
        "--decode",
        default=None,
        choices=["annealed", "mean", "mode", "median"],
        help="classification decoding: annealed mean (T), mean (T=1) or mode; median: "
        "hypercolumn's chroma median at T=1 "
        "(default: the model's; mean for the official eccv16, annealed otherwise)",
    )
    p.add_argument(
        "--samples",
        type=checks.non_negative_int,
        default=0,
        help="pic: write N diverse samples per image (name.s0.png ...) at --temperature "
        "(default 0: one deterministic colorization)",
    )
    p.add_argument("--seed", type=checks.non_negative_int, default=0, help="seed of the --samples")
    p.add_argument(
        "--pipeline",
        default=None,
        choices=list(PIPELINES),
        help="pre/post-processing: 'authors' (Zhang's: RGB resized bicubic to the model, ab "
        "bilinear, clipped; default for eccv16/siggraph17) or 'project' (L resized bicubic, "
        "ab bicubic, chroma-only gamut fit; default otherwise)",
    )
    p.add_argument(
        "--strength",
        type=checks.strength,
        default=None,
        help="factor on the predicted ab (default: the model's, chosen on validation data; "
        "an image with colour hints is always colorized at 1)",
    )
    p.add_argument(
        "--render-size",
        type=checks.render_size,
        default=None,
        help="model input side (default: the model's; 256 for eccv16)",
    )
    p.add_argument(
        "--format", default="png", choices=["png", "jpeg", "webp"], help="output image format"
    )
    p.add_argument("--quality", type=checks.quality, default=95, help="JPEG/WebP quality")
    p.add_argument(
        "--chroma-subsampling",
        default="auto",
        choices=["auto", "444", "420"],
        help="JPEG chroma resolution: 444 (full) or 420 (half); auto: 444 at --quality >= 90, "
        "else 420 (lossy WebP is always 4:2:0)",
    )
    p.add_argument(
        "--batch-size", type=checks.positive_int, default=8, help="largest inference batch"
    )
    p.add_argument(
        "--min-batch-size", type=checks.positive_int, default=1, help="smallest inference batch"
    )
    p.add_argument("--device", type=checks.device_name, default="auto", help="where the model runs")
    p.add_argument(
        "--share-model",
        action="store_true",
        help="one model per machine shared by the worker's processes (Beam large_model; "
        "GPU workers: one copy per GPU instead of one per process)",
    )
    p.add_argument(
        "--model-copies",
        type=checks.positive_int,
        default=None,
        help="with a shared model: this many copies per machine (e.g. one per GPU)",
    )
    checks.add_allow_empty(p)
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="resume: keep the outputs an earlier run finished (its marker present, size "
        "matching) and do the rest; tables and stats then cover all inputs",
    )
    p.add_argument(
        "--keep-original",
        action="store_true",
        help="also copy each input to OUTPUT/originals/ (for later evaluation)",
    )
    p.add_argument(
        "--max-pixels",
        type=checks.positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    p.add_argument(
        "--hints",
        default=None,
        metavar="FILE_OR_DIR",
        help="colour hints: a folder holding <relative path>.hints.json per input (default: "
        "the sidecar photo.hints.json next to photo.png), or with -o one hints file",
    )
    p.add_argument(
        "--no-hints", action="store_true", help="ignore hint sidecars (colorize unguided)"
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
    chroma_subsampling: str = "auto"  # JPEG/WebP chroma: auto | 444 | 420 (encode_image)
    pipeline: str = PROJECT  # models.official: "authors" or "project" pre/post-processing
    hints: str | None = None  # --hints: a folder of sidecars, or (-o mode) one sidecar file
    hints_is_file: bool = False
    use_hints: bool = True  # False: --no-hints
    takes_hints: bool = False  # the model takes hints (siggraph17, siggraph17-small)
    samples: int = 0  # --samples: outputs per input (pic), named <stem>.s<i><ext>
    # models.registry.applied_decode: {"decode", "temperature"}, each None where not applied
    applied: dict = field(default_factory=lambda: {"decode": None, "temperature": None})


def glob_base(pattern: str) -> str:
    """The folder outputs are named relative to: a folder input itself, else the folder part
    of the glob before its first wildcard ('scans/**/*.tif' -> 'scans'); naming.pattern_base."""
    folder = not any(c in pattern for c in naming.WILDCARDS) and is_dir(pattern)
    return naming.pattern_base(pattern, folder)


def output_uri(
    uri: str,
    cfg: ColorizeConfig,
    folder: str = "",
    ext: str | None = None,
    stem: str | None = None,
) -> str:
    """OUTPUT/[folder/]<stem><ext>: stem as transforms.naming assigned it (AssignNames), by
    default uri's path relative to its base without extension (an input that collides with
    no other); ext by default the format's."""
    if stem is None:
        stem = posixpath.splitext(naming.relative_name(uri, cfg.bases))[0]
    return join(cfg.output, folder, stem + (ext if ext is not None else EXTENSIONS[cfg.fmt]))


def marker_uri(cfg: ColorizeConfig, stem: str) -> str:
    """The finished marker of the output with this stem."""
    return join(cfg.output, naming.done_marker(stem + EXTENSIONS[cfg.fmt]))


def resumed_row(uri: str, stem: str, cfg: ColorizeConfig) -> dict | list[dict] | None:
    """The results row of uri's output if an earlier run finished it, else None: its marker
    exists, was written for this input (same relative path, and the input and its hints
    sidecar the same size and version as then: input_stamps) and output name with this run's
    settings (made_with), and the output file has the size the marker recorded (a truncated
    or replaced file is redone). --samples: the list of the sample outputs' rows, if the
    marker holds as many samples of the same seed and every sample file is whole."""
    try:
        marker = read_json(marker_uri(cfg, stem))
    except (FileNotFoundError, ValueError, OSError):
        return None
    out = output_uri(uri, cfg, stem=stem)
    if (
        not isinstance(marker, dict)
        or marker.get("source") != naming.relative_name(uri, cfg.bases)
        or marker.get("output") != stem + EXTENSIONS[cfg.fmt]
        or marker.get("stamps") != input_stamps(uri, cfg)
    ):
        return None
    outs = [sample_uri(out, i) for i in range(cfg.samples)] if cfg.samples else [out]
    rows, sizes = marker.get("row"), marker.get("bytes")
    if not cfg.samples:
        rows, sizes = [rows], [sizes]
    if (
        marker.get("seed") != (cfg.settings.seed if cfg.samples else None)
        or not isinstance(rows, list)
        or not isinstance(sizes, list)
        or len(rows) != len(outs)
        or len(sizes) != len(outs)
        or not all(isinstance(r, dict) and made_with(r, cfg) for r in rows)
        or any(n is None or file_size(o) != n for o, n in zip(outs, sizes, strict=True))
    ):
        return None
    done = [
        {**r, "key": uri_key(uri), "source_uri": uri, "output_uri": o}
        for r, o in zip(rows, outs, strict=True)
    ]
    return done if cfg.samples else done[0]


def settings_columns(cfg: ColorizeConfig, hints: int) -> dict:
    """The results columns that record how an image with `hints` hints is colorized."""
    return {
        "model": cfg.model,
        "weights_sha256": cfg.weights_sha256,
        **cfg.applied,  # decode, temperature: None where the model does not apply them
        "strength": hinted_strength(cfg.settings.strength, hints),  # hints: 1
        "render_size": cfg.render_size,
    }


def made_with(row: dict, cfg: ColorizeConfig) -> bool:
    """Whether a finished output's results row was made with this run's model, weights and
    decode settings (else --skip-existing redoes it: one folder, one set of settings). A
    temperature or decode method that does not apply (recorded None) matches any recorded one."""
    want = settings_columns(cfg, row.get("hints", 0))
    unused = {k for k, v in cfg.applied.items() if v is None}
    return all(row.get(k) == v for k, v in want.items() if k not in unused)


def finish_and_mark(item: dict, ab_small: np.ndarray, cfg: ColorizeConfig) -> dict | list[dict]:
    """finish(), then the output's finished marker (written only once the image is in place):
    its results row, its size in bytes, the input's relative path and the output's name
    (--samples: the rows and sizes of the input's sample files, and the seed)."""
    row = finish(item, ab_small, cfg)
    stem = item["stem"]
    marker = {
        "source": naming.relative_name(item["uri"], cfg.bases),
        "output": stem + EXTENSIONS[cfg.fmt],
        "bytes": file_size(item["output_uri"]),
        "row": row,
        "stamps": item.get("stamps"),
    }
    if isinstance(row, list):  # --samples: one marker for the input's sample files
        marker["bytes"] = [file_size(r["output_uri"]) for r in row]
        marker["seed"] = cfg.settings.seed
    write_json(marker_uri(cfg, stem), marker)
    return row


def prepare_named(element: tuple[str, str], cfg: ColorizeConfig) -> dict:
    """prepare() for an (uri, output stem) pair: reads the file itself."""
    uri, stem = element
    stamps = input_stamps(uri, cfg)  # before reading: a file changed meanwhile is redone
    return {**prepare(uri, read_bytes(uri), cfg, stem), "stamps": stamps}


def input_stamps(uri: str, cfg: ColorizeConfig) -> dict:
    """The size and version (fileio.file_stamp) of what an output is made from: the input
    and, for a model that takes hints, its sidecar (None: none). A finished marker records
    them; --skip-existing redoes an output whose input or sidecar has changed since."""
    hints = cfg.takes_hints and cfg.use_hints
    return {"input": file_stamp(uri), "hints": file_stamp(hints_uri(uri, cfg)) if hints else None}


def prepare(uri: str, data: bytes, cfg: ColorizeConfig, stem: str | None = None) -> dict:
    """Decode one file into the item that travels through RunInference (its output named by
    stem, see output_uri)."""
    t0 = time.time()
    if stem is None:
        stem = posixpath.splitext(naming.relative_name(uri, cfg.bases))[0]
    out = output_uri(uri, cfg, stem=stem)
    img = decode_image(data, max_pixels=cfg.max_pixels)
    l_full = luminance(img.rgb)
    # a model without hint input never reads a sidecar: a malformed one costs it no output
    hints = load_hints(uri, cfg, img.width, img.height) if cfg.takes_hints else None
    if cfg.keep_original:
        ext = posixpath.splitext(uri)[1]
        write_bytes(output_uri(uri, cfg, "originals", ext, stem), data)
    l_render = model_input(cfg.pipeline, img.rgb, l_full, cfg.render_size)
    if cfg.takes_hints:  # always (S, S, 4), so batches stack
        l_render = with_hints(l_render, hints or no_hints(), img.width, img.height)
    elif cfg.use_hints and exists(hints_uri(uri, cfg)):
        log.warning("%s: hints sidecar ignored: model %s takes no hints", uri, cfg.model)
    return {
        "uri": uri,
        "output_uri": out,
        "stem": stem,
        "l_full": l_full if l_full.size <= CARRY_PIXELS else None,
        "l_render": l_render,
        "hints": len(hints) if hints is not None else 0,
        "width": img.width,
        "height": img.height,
        "frames": img.n_frames,
        "exif": img.exif,
        "icc": img.icc_profile if not img.grayscale_mode else None,
        "t0": t0,
    }


def hints_uri(uri: str, cfg: ColorizeConfig) -> str:
    """The sidecar of an input: --hints FILE, else its relative path under --hints DIR, else
    next to the input (photo.png -> photo.hints.json)."""
    if cfg.hints and cfg.hints_is_file:
        return cfg.hints
    if not cfg.hints:
        return sidecar_uri(uri)
    return sidecar_uri(uri, cfg.hints, naming.relative_name(uri, cfg.bases))


def load_hints(uri: str, cfg: ColorizeConfig, width: int, height: int):
    """The input's hints (transforms.hints.Hints), or None without a sidecar / --no-hints.
    A malformed sidecar raises ImageError(BAD_HINTS): an error row, not a silent skip."""
    if not cfg.use_hints:
        return None
    path = hints_uri(uri, cfg)
    if not exists(path):
        if cfg.hints_is_file:
            raise ImageError(schema.BAD_HINTS, f"hints file not found: {path}")
        return None
    if is_dir(path):
        raise ImageError(schema.BAD_HINTS, f"{path}: a folder, not a hints file")
    try:
        return parse_hints(read_bytes(path), width, height)
    except HintError as e:
        raise ImageError(schema.BAD_HINTS, f"{path}: {e}") from None


def sample_uri(uri: str, index: int) -> str:
    """The output of sample `index`: photo.png -> photo.s0.png."""
    root, ext = posixpath.splitext(uri)
    return f"{root}.s{index}{ext}"


def finish(
    item: dict, ab_small: np.ndarray, cfg: ColorizeConfig, sample: int | None = None
) -> dict | list[dict]:
    """Compose the full-resolution colour image, write it, return its results row; for
    --samples (ab_small (K, h, w, 2)) one image and row per sample (`sample` = its index)."""
    if ab_small.ndim == 4:
        return [
            finish({**item, "output_uri": sample_uri(item["output_uri"], i)}, ab, cfg, i)
            for i, ab in enumerate(ab_small)
        ]
    if not np.isfinite(ab_small).all():  # NaN would turn the whole image black, L included
        raise ImageError(schema.MODEL_FAILED, "the model predicted NaN or infinite colours")
    l_full = item["l_full"]
    if l_full is None:  # a big scan: decoded again rather than held in the batch (CARRY_PIXELS)
        l_full = luminance(decode_image(read_bytes(item["uri"]), max_pixels=cfg.max_pixels).rgb)
    strength = hinted_strength(cfg.settings.strength, item.get("hints", 0))  # hints: 1
    rgb = model_output(cfg.pipeline, l_full, ab_small, strength, cfg.render_size)
    del l_full
    write_image(  # streamed: the encoded image is never held whole in memory
        item["output_uri"],
        rgb,
        cfg.fmt,
        cfg.quality,
        item["exif"],
        item["icc"],
        cfg.chroma_subsampling,
    )
    ab_out = rgb_to_lab(rgb[::4, ::4].astype(np.float32) / 255.0)[..., 1:]
    return {
        "key": uri_key(item["uri"]),
        "source_uri": item["uri"],
        "output_uri": item["output_uri"],
        "width": item["width"],
        "height": item["height"],
        **settings_columns(cfg, item.get("hints", 0)),
        "frame": 0,
        "frames": item.get("frames", 1),
        "mean_chroma": float(chroma(ab_out).mean()),
        "colorfulness": colorfulness(rgb),
        "seconds": time.time() - item["t0"],
        "hints": item.get("hints", 0),
        "sample": sample,
    }


def config_from_args(
    args: argparse.Namespace, inputs: list[str], output: str, checkpoint: Checkpoint | None = None
) -> ColorizeConfig:
    """Resolve model defaults (render size, temperature) from the checkpoint's config
    (`checkpoint`: what check_weights read, else the file is read)."""
    mc = describe(args.model, args.weights, checkpoint=checkpoint)
    checks.check_decode(mc["name"], args.decode, args.temperature, "--decode / --temperature")
    samples = getattr(args, "samples", 0)
    if samples and not can_sample(mc["name"]):
        raise checks.UsageError(f"--samples: model {mc['name']} does not sample (use pic)")
    settings = DecodeSettings(
        temperature=args.temperature if args.temperature is not None else mc["temperature"],
        method="sample" if samples else args.decode or mc["decode"],
        strength=args.strength  # samples: full strength unless --strength says otherwise
        if args.strength is not None
        else (1.0 if samples else mc["strength"]),
        samples=samples,
        seed=getattr(args, "seed", 0),
    )
    checks.check_temperature_applies(mc["name"], settings.method, args.temperature, "--temperature")
    if args.base and not any(naming.is_under(join(glob_base(p), "x"), args.base) for p in inputs):
        log.warning("--base %s holds none of the inputs: outputs are named by file name", args.base)
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
        chroma_subsampling=getattr(args, "chroma_subsampling", "auto"),
        skip_existing=args.skip_existing,
        keep_original=args.keep_original,
        max_pixels=args.max_pixels,
        pipeline=args.pipeline or mc["pipeline"],
        hints=args.hints,
        hints_is_file=bool(args.hints) and not is_dir(args.hints),
        use_hints=not args.no_hints,
        takes_hints=takes_hints(mc["name"]),
        samples=samples,
        applied=applied_decode(mc["name"], settings.method, settings.temperature),
    )


def colorize_files(inputs: list[str], out_file: str, args) -> None:
    """Single-image mode: colorize each input file directly (no Beam)."""
    if len(inputs) != 1:
        raise checks.UsageError("colorize -o takes exactly one input image")
    if not exists(inputs[0]) or is_dir(inputs[0]):
        raise checks.UsageError(f"{inputs[0]}: no such file")
    checks.check_output_file(out_file)
    checks.check_no_overwrite([out_file], inputs)
    fmt = checks.image_format(out_file, args.format)
    check_hints_option(args, batch=False)
    if args.skip_existing:
        log.warning("--skip-existing: -o colorizes its one image whatever is there")
    checkpoint = checks.check_weights(args.model, args.weights)  # read once, used thrice
    checks.check_device(args.device)
    cfg = config_from_args(args, inputs, posixpath.dirname(out_file) or ".", checkpoint)
    cfg = ColorizeConfig(**{**cfg.__dict__, "fmt": fmt})
    device = str(resolve_device(args.device))
    try:
        item = prepare(inputs[0], read_bytes(inputs[0]), cfg)
        model, _ = load_model(cfg.model, cfg.weights, device, checkpoint=checkpoint)
        item["output_uri"] = out_file
        ab = predict_ab(model, item["l_render"][None], cfg.settings)[0]
        rows = finish(item, ab, cfg)
    except ImageError as e:
        raise checks.JobFailed(f"{inputs[0]}: {e}") from None
    for row in rows if isinstance(rows, list) else [rows]:
        log.info(
            "wrote %s (%dx%d) in %.2f s",
            row["output_uri"],
            row["width"],
            row["height"],
            row["seconds"],
        )


def check_hints_option(args: argparse.Namespace, batch: bool) -> None:
    """--hints names what exists (a batch: a folder of sidecars; -o: that, or one file) and
    is not given with --no-hints; else UsageError (exit code 2)."""
    if not args.hints:
        return
    if args.no_hints:
        raise checks.UsageError("--hints and --no-hints contradict each other: pass one")
    if not exists(args.hints):
        raise checks.UsageError(f"--hints {args.hints}: no such file or folder")
    if batch and not is_dir(args.hints):
        raise checks.UsageError(f"--hints {args.hints}: a batch run takes a folder of sidecars")


def local_mode(total: int) -> str:
    """The local runner's --direct_running_mode for `total` inputs: worker processes from
    PROCESSES_FROM inputs (2 processes ran 33.1 img/s steady against 19.5 for 2 threads, which
    the GIL holds to the rate of one: bench/colorize.py --also-threads), threads below (a
    process's start-up, torch and the model, is about 5 s more)."""
    return "multi_processing" if total >= PROCESSES_FROM else "multi_threading"


def run(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Run the colorize job."""
    if args.out_file:
        colorize_files(args.paths, args.out_file, args)
        return
    if len(args.paths) < 2:
        raise checks.UsageError("colorize needs INPUT_GLOB... OUTPUT_DIR (or an image and -o FILE)")
    inputs, output = args.paths[:-1], absolute(args.paths[-1])  # results name it whole
    # fail fast, before any worker starts
    inputs, total = checks.match_inputs(inputs, getattr(args, "allow_empty", False), output)
    checks.check_output_dir(output)
    checkpoint = checks.check_weights(args.model, args.weights)
    checks.check_device(args.device)
    if args.min_batch_size > args.batch_size:
        raise checks.UsageError(
            f"--min-batch-size {args.min_batch_size} exceeds --batch-size {args.batch_size}"
        )
    check_hints_option(args, batch=True)
    cfg = config_from_args(args, inputs, output, checkpoint)
    del checkpoint  # the workers read their own
    log.info(
        "model %s (%s), render size %d, %s%s",
        cfg.model,
        cfg.weights,
        cfg.render_size,
        f"decode {cfg.applied['decode']}" if cfg.applied["decode"] else "ab predicted directly",
        f" T={cfg.applied['temperature']:.2f}" if cfg.applied["temperature"] is not None else "",
    )
    # Beam only here: `colorize IMAGE -o OUT` never imports it (start-up)
    from pipeline.colorize_graph import build
    from pipeline.common import run_file_job
    from pipeline.options import make_pipeline_options, threads_per_worker

    options = make_pipeline_options(beam_args, local_mode=local_mode(total))
    threads = threads_per_worker(options)
    run_file_job(
        JOB, output, options, total,
        lambda p: build(p, cfg, inputs, args, threads), schema.COLORIZED,
    )  # fmt: skip
    log.info("colorized into %s", output)
