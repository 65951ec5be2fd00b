"""`chromabeam evaluate`: colour photos with ground truth -> per-image metrics + a report.

MatchFiles -> Reshuffle -> decode ground truth (full resolution, or short side + centre crop to
--size) -> for each model: L at its render size -> RunInference -> compose with the true L ->
metrics (transforms.metrics); the baselines "no colour" (a = b = 0) and "constant prior"
(every pixel the annealed mean of the training prior) are always scored.
Writes metrics/*.parquet (schema.METRICS_SCHEMA + cmf), errors/, report.md / report.html /
summary.json with plots (transforms.report), and last stats.json: the pipeline writes its
stats as PENDING_STATS, published once the report (and --hints' sweep report) is written, so
a reader that waits for stats.json finds the whole run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import RunInference

from models.handler import ColorizerHandler, KeyedColorizerHandler
from models.infer import DecodeSettings, predict, resolve_device
from models.official import PIPELINES, PROJECT, model_input, model_output
from models.registry import (
    DEFAULT_MODEL,
    applied_decode,
    describe,
    has_likelihood,
    load_model,
    names,
)
from pipeline import checks, evaluate_hints, progress
from pipeline.common import (
    ERRORS,
    OUTCOMES,
    MatchFiles,
    WriteAccounting,
    WriteRowBatches,
    accounting_inputs,
    dead_letter_rows,
    safe_apply,
    tick_each,
)
from pipeline.locking import output_lock
from pipeline.options import is_local, log_counters, make_pipeline_options, threads_per_worker
from transforms import schema
from transforms.bins import GRID, annealed_mean, hard_encode, num_bins
from transforms.colour import rgb_to_lab
from transforms.compose import Composer, compose, luminance
from transforms.crop import STRIP_PIXELS, fit_and_crop
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.fileio import (
    clear_dirs,
    is_dir,
    join,
    read_bytes,
    read_json,
    read_table,
    remove,
    write_json,
)
from transforms.filters import classify_tone
from transforms.metrics import StripMetrics
from transforms.report import (
    CMF_PNG,
    EXAMPLES_PNG,
    HIST_PNG,
    REPORT_HTML,
    REPORT_MD,
    SUMMARY_JSON,
    build_report,
    load_summary,
    select_examples,
)
from transforms.staging import FILTER_THUMBNAIL, uri_key

log = logging.getLogger(__name__)
JOB = "evaluate"
NO_COLOUR, CONSTANT_PRIOR = "no colour", "constant prior"
EVALUATED = "evaluated"
PENDING_STATS = ".stats.json.pending"  # the pipeline's stats.json before the report is written
MIN_SIZE = 32  # ground truth whose short side is smaller is filtered (as `stage` --min-size)
CARRY_PIXELS = 4_000_000  # bigger truth waits in model batches without its pixels (for_batch)


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: `--model name[,weights=URI][,temperature=T][,decode=M]
    [,strength=S][,render_size=N][,pipeline=authors|project][,label=L]`."""

    name: str
    label: str
    weights: str = ""
    weights_sha256: str = ""
    render_size: int = 256
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    prior: tuple[float, ...] = ()
    pipeline: str = PROJECT  # models.official: the authors' or the project's pre/post


SPEC_KEYS = {  # the settings a --model spec takes, with what --help shows for the value
    "weights": "URI",
    "temperature": "T",
    "decode": "annealed|mean|median|mode",
    "strength": "S",
    "render_size": "N",
    "pipeline": "|".join(PIPELINES),
    "label": "L",
}
SPEC_VALUES = {  # the validated numeric settings of a --model spec
    "temperature": checks.temperature,
    "strength": checks.strength,
    "render_size": checks.render_size,
}


def parse_spec(text: str) -> ModelSpec:
    """Parse a --model argument and resolve its checkpoint defaults."""
    name, *opts = text.split(",")
    bad = [o for o in opts if "=" not in o]
    if bad:
        raise SystemExit(f"--model {text}: settings must be KEY=VALUE, got {bad}")
    kv = dict(o.split("=", 1) for o in opts)
    unknown = set(kv) - set(SPEC_KEYS)
    if unknown:
        raise SystemExit(f"--model {text}: unknown settings {sorted(unknown)}")
    if name not in names():
        raise SystemExit(f"--model {name}: unknown model; known: {', '.join(names())}")
    if kv.get("pipeline", PROJECT) not in PIPELINES:
        raise SystemExit(f"--model {text}: pipeline must be one of {', '.join(PIPELINES)}")
    for key, kind in SPEC_VALUES.items():
        if key in kv:
            kv[key] = checks.check_value(f"--model {text}: {key}", kv[key], kind)
    checkpoint = checks.check_weights(name, kv.get("weights"), f"--model {text}")
    checks.check_decode(name, kv.get("decode"), kv.get("temperature"), f"--model {text}")
    cfg = describe(name, kv.get("weights"), checkpoint=checkpoint)
    method = kv.get("decode", cfg["decode"])
    checks.check_temperature_applies(name, method, kv.get("temperature"), f"--model {text}")
    return ModelSpec(
        name=cfg["name"],
        label=kv.get("label", name),
        weights=cfg["weights"],
        weights_sha256=cfg["weights_sha256"],
        render_size=int(kv.get("render_size", cfg["render_size"])),
        settings=DecodeSettings(
            temperature=float(kv.get("temperature", cfg["temperature"])),
            method=method,
            strength=float(kv.get("strength", cfg["strength"])),
        ),
        prior=tuple(cfg.get("prior") or ()),
        pipeline=kv.get("pipeline", cfg["pipeline"]),
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `evaluate` job's options."""
    p.add_argument("inputs", nargs="+", help="fsspec globs of colour images (ground truth)")
    p.add_argument("output", help="output folder: metrics/, report.md, report.html, ...")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="SPEC",
        help="model to evaluate, repeatable: NAME"
        + "".join(f"[,{k}={v}]" for k, v in SPEC_KEYS.items())
        + f" (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--size",
        type=checks.eval_size,
        default="full",
        help="'full' (original resolution) or N: short side to N + centre crop",
    )
    p.add_argument(
        "--priors",
        default=None,
        help="priors.json from `stage` for the constant-prior baseline and the "
        "rebalanced AuC (default: the prior stored in the first model)",
    )
    p.add_argument(
        "--baseline-temperature",
        type=checks.temperature,
        default=0.38,
        help="annealed-mean T of the constant-prior baseline",
    )
    p.add_argument("--compare", default=None, help="an earlier evaluate output to diff against")
    p.add_argument(
        "--batch-size", type=checks.positive_int, default=4, help="largest inference batch"
    )
    p.add_argument("--device", type=checks.device_name, default="auto", help="where models run")
    p.add_argument(
        "--max-pixels",
        type=checks.positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    checks.add_allow_empty(p)
    p.add_argument(
        "--min-size",
        type=checks.non_negative_int,
        default=MIN_SIZE,
        help="ground truth whose short side is smaller is filtered, not scored",
    )
    p.add_argument("--no-report", action="store_true", help="metrics only")
    evaluate_hints.add_arguments(p)


def load_truth(
    uri: str, data: bytes, size: int | None, max_pixels: int, min_size: int = MIN_SIZE
) -> dict:
    """Ground truth at the evaluation resolution: uint8 RGB + its L (float32), no full Lab.

    Only real colour truth is scored: like `stage`, an image whose short side is below
    `min_size`, a single-channel one, or one that classify_tone (on a thumbnail) calls
    grayscale or toned raises an ImageError with that filter outcome (-> filtered/).
    """
    img = decode_image(data, draft_size=size, max_pixels=max_pixels)
    if min(img.width, img.height) < min_size:
        raise ImageError(
            schema.TOO_SMALL, f"{img.width}x{img.height} is below --min-size {min_size}"
        )
    if img.grayscale_mode:
        raise ImageError(schema.GRAYSCALE, f"single-channel source (mode {img.mode})")
    rgb = fit_and_crop(img.image, size) if size else img.rgb
    thumb = fit_and_crop(rgb, FILTER_THUMBNAIL)
    tone = classify_tone(rgb_to_lab(thumb), rgb=thumb)
    if tone != "colour":
        raise ImageError(tone, f"{tone} photo: no colour truth")
    return {
        "uri": uri,
        "key": uri_key(uri),
        "rgb": rgb,
        "l": luminance(rgb, as_float=True),
        "width": img.width,
        "height": img.height,
    }


def _probability_grid(probs: np.ndarray, height: int, width: int):
    """(probs, fy, fx): the map (sampled down where the image is smaller) and the size of
    the image blocks each of its cells averages."""
    h, w = probs.shape[:2]
    if height < h:  # image smaller than the probability map: sample the map down
        probs, h = probs[np.arange(height) * h // height], height
    if width < w:
        probs, w = probs[:, np.arange(width) * w // width], width
    return probs, height // h, width // w


def _bits(probs: np.ndarray, ab_mean: np.ndarray) -> float:
    p = np.take_along_axis(probs, hard_encode(ab_mean)[..., None].astype(np.int64), -1)[..., 0]
    return float(np.mean(-np.log2(np.clip(p, 1e-12, None) / GRID**2)) / 2.0)


def bits_per_dim(probs: np.ndarray, ab_true: np.ndarray) -> float:
    """Mean negative log2-likelihood of the true ab per ab dimension, at 1 Lab-unit resolution:
    −log2(P(bin) / GRID²) / 2, with ab_true area-averaged to the probability map's size."""
    probs, fy, fx = _probability_grid(probs, *ab_true.shape[:2])
    h, w = probs.shape[:2]
    ab = ab_true[: h * fy, : w * fx].reshape(h, fy, w, fx, 2).mean((1, 3))
    return _bits(probs, ab)


class _BlockMeans:
    """bits_per_dim from bands of rows: the true ab summed per cell of the probability map."""

    def __init__(self, probs: np.ndarray, height: int, width: int):
        self.probs, self.fy, self.fx = _probability_grid(probs, height, width)
        h, w = self.probs.shape[:2]
        self.sums = np.zeros((h, w, 2))

    def add(self, r0: int, ab_rows: np.ndarray) -> None:
        h, w = self.sums.shape[:2]
        n = max(0, min(len(ab_rows), h * self.fy - r0))
        if n == 0:
            return
        cols = ab_rows[:n, : w * self.fx].reshape(n, w, self.fx, 2).sum(2, dtype=np.float64)
        np.add.at(self.sums, (r0 + np.arange(n)) // self.fy, cols)

    def bits(self) -> float:
        return _bits(self.probs, (self.sums / (self.fy * self.fx)).astype(np.float32))


def _prediction_rows(
    pipeline: str,
    l_full: np.ndarray,
    ab_small: np.ndarray,
    strength: float,
    render_size: int | None,
):
    """rows(a, b) -> uint8 rows a..b of the predicted image: the project's composition band
    by band (never whole), another pipeline's output (models.official) made once."""
    if pipeline == PROJECT:
        return Composer(l_full, ab_small, strength).rows
    rgb = model_output(pipeline, l_full, ab_small, strength, render_size)
    return lambda a, b: rgb[a:b]


def score(
    item: dict,
    ab_small: np.ndarray,
    label: str,
    strength: float,
    prior: np.ndarray | None,
    probs: np.ndarray | None = None,
    pipeline: str = PROJECT,
    render_size: int | None = None,
    pixels: int = STRIP_PIXELS,
) -> dict:
    """Metrics of one prediction against the ground truth (a METRICS_SCHEMA row + cmf);
    `pipeline` says how the ab becomes an image (models.official.model_output). Computed in
    bands of about `pixels` pixels (transforms.metrics.StripMetrics): memory does not grow
    with the image."""
    l_full, rgb = item["l"], item["rgb"]
    height, width = l_full.shape
    pred_rows = _prediction_rows(pipeline, l_full, ab_small, strength, render_size)
    acc = StripMetrics(height, width, prior)
    blocks = _BlockMeans(probs, height, width) if probs is not None else None
    for a, r0, r1, b in acc.bands(pixels):
        rgb_true = rgb[a:b].astype(np.float32) / 255.0
        rgb_pred = pred_rows(a, b).astype(np.float32) / 255.0
        lab_true = rgb_to_lab(rgb_true)
        acc.add(a, r0, r1, rgb_true, rgb_pred, lab_true, rgb_to_lab(rgb_pred))
        if blocks is not None:
            blocks.add(r0, lab_true[r0 - a : r1 - a, :, 1:])
    return {
        "key": item["key"],
        "source_uri": item["uri"],
        "model": label,
        "width": item["width"],
        "height": item["height"],
        **acc.result(),
        "bits_per_dim": blocks.bits() if blocks is not None else float("nan"),
        "cmf": acc.cmf().astype(float).tolist(),
    }


def baseline_ab(label: str, prior: np.ndarray, temperature: float) -> np.ndarray:
    """The 1x1 ab map of a baseline: zeros, or the annealed mean of the prior."""
    if label == NO_COLOUR:
        return np.zeros((1, 1, 2), np.float32)
    return annealed_mean(prior, temperature)[None, None, :].astype(np.float32)


def for_batch(item: dict, size: int | None, max_pixels: int, min_size: int = MIN_SIZE) -> dict:
    """The item as it waits in RunInference's batches: a big image (over CARRY_PIXELS)
    without its pixels (score_prediction loads it again), so that a batch of big scans does
    not hold them all."""
    if item["l"].size <= CARRY_PIXELS:
        return item
    light = {k: v for k, v in item.items() if k not in ("rgb", "l")}
    return {**light, "reload": (size, max_pixels, min_size)}


def score_prediction(kv, spec: ModelSpec, prior: np.ndarray | None) -> dict:
    """Score a RunInference result (item, PredictionResult) of one model."""
    item, result = kv
    if "reload" in item:  # for_batch dropped its pixels
        item = load_truth(item["uri"], read_bytes(item["uri"]), *item["reload"])
    ab, probs = (
        result.inference if isinstance(result.inference, tuple) else (result.inference, None)
    )
    bits = None
    if probs is not None and np.ndim(probs) == 0:  # a likelihood model's own bits per dim
        bits, probs = float(probs), None
    row = score(
        item, ab, spec.label, spec.settings.strength, prior, probs, spec.pipeline, spec.render_size
    )
    if bits is not None:
        row["bits_per_dim"] = bits
    return row


def with_true_ab(l_render: np.ndarray, rgb: np.ndarray, stride: int = 4) -> np.ndarray:
    """The input of a model with a likelihood (pic): (S, S) L -> (S, S, 3) L + true ab.

    The true ab is averaged over the cells of the model's (S / stride)² output grid exactly as
    bits_per_dim averages it for the classification models' probability maps (image blocks of
    H // g x W // g, the remainder cropped), then held constant over each cell, so both score
    the same numbers at 1 Lab-unit resolution. Lab is computed one band of cells at a time."""
    s = l_render.shape[0]
    g = s // stride
    height, width = rgb.shape[:2]
    if height >= g and width >= g:
        fy, fx = height // g, width // g
        bands = (rgb[i * fy : (i + 1) * fy, : g * fx].astype(np.float32) / 255.0 for i in range(g))
        cells = np.stack([rgb_to_lab(b)[..., 1:].reshape(fy, g, fx, 2).mean((0, 2)) for b in bands])
    else:  # smaller than the grid: the nearest pixel per cell
        small = rgb[np.arange(g) * height // g][:, np.arange(g) * width // g]
        cells = rgb_to_lab(small.astype(np.float32) / 255.0)[..., 1:]
    ab = np.repeat(np.repeat(cells, stride, 0), stride, 1)[:s, :s]
    return np.concatenate([l_render[..., None], ab.astype(np.float32)], axis=-1)


def build(
    p, args, specs: list[ModelSpec], prior: np.ndarray, size: int | None, threads: int | None = None
) -> None:
    """Add the evaluate graph to pipeline p."""
    uris = p | "Match" >> MatchFiles(args.inputs, exclude=args.output)  # no *.hints.json
    truth = safe_apply(
        uris,
        partial(load_truth, size=size, max_pixels=args.max_pixels, min_size=args.min_size),
        JOB,
        "Truth",
        stage="decode",
        success=EVALUATED,
    )
    scored, steps, dead = [], [truth], []
    for base in (NO_COLOUR, CONSTANT_PRIOR):
        ab = baseline_ab(base, prior, args.baseline_temperature)
        out = safe_apply(
            truth.rows,
            partial(score, ab_small=ab, label=base, strength=1.0, prior=prior),
            JOB,
            f"Score[{base}]",
            stage=f"score:{base}",
            read=False,
            success=None,
        )
        scored.append(out.rows)
        steps.append(out)
    for spec in specs:
        handler = KeyedColorizerHandler(
            ColorizerHandler(
                spec.name,
                spec.weights,
                args.device,
                spec.settings,
                max_batch_size=args.batch_size,
                with_probs=True,
                threads=threads,
                per_image=True,  # reproducible metrics: independent of how images are batched
            )
        )
        likely = has_likelihood(spec.name)  # pic: scores the true ab itself (bits per dim)
        preds, dlq = (
            truth.rows
            | f"Render[{spec.label}]"
            >> beam.Map(
                lambda it, n=spec.render_size, pl=spec.pipeline, lk=likely: (
                    for_batch(it, size, args.max_pixels, args.min_size),
                    with_true_ab(model_input(pl, it["rgb"], it["l"], n), it["rgb"])
                    if lk
                    else model_input(pl, it["rgb"], it["l"], n),
                )
            )
            | f"Infer[{spec.label}]" >> RunInference(handler).with_exception_handling()
        )
        out = safe_apply(
            preds,
            partial(score_prediction, spec=spec, prior=prior),
            JOB,
            f"Score[{spec.label}]",
            stage=f"score:{spec.label}",
            read=False,
            success=None,
            uri_of=lambda kv: kv[0]["uri"],
        )
        scored.append(out.rows)
        steps.append(out)
        dead.append(
            dlq.failed_inferences
            | f"Dead[{spec.label}]" >> beam.FlatMap(dead_letter_rows, f"model:{spec.label}")
        )
    # progress: an image is done when every model scored it (or failed on it): one tick per
    # model and image; an image rejected at decode ticks once per model at once
    rejected = truth[OUTCOMES] | "Rejected" >> beam.Filter(lambda o: o != EVALUATED)
    tick_each(JOB, rejected, weight=len(specs), label="ProgressRejected")
    model_steps = steps[-len(specs) :] if specs else []
    tick_each(JOB, *[st.rows for st in model_steps], label="ProgressScored")
    tick_each(JOB, *[st[ERRORS] for st in model_steps], *dead, label="ProgressFailed")
    written = []  # the URIs of the tables written: stats.json waits for them
    if getattr(args, "hints", None):
        hint_steps, hint_dead, hint_files = evaluate_hints.build_sweep(
            truth.rows, args, specs, prior, threads
        )
        steps, dead, written = steps + hint_steps, dead + hint_dead, [hint_files]
    rows = scored | "AllRows" >> beam.Flatten()
    metrics_dir = join(args.output, "metrics")
    metrics = rows | "Metrics" >> WriteRowBatches(metrics_dir, "part", schema.METRICS_SCHEMA, 10000)
    # One outcome per image (from the ground-truth step); a model's failures are error rows.
    _ = accounting_inputs(
        truth, extra_errors=[step[ERRORS] for step in steps[1:]] + dead
    ) | "Accounting" >> WriteAccounting(
        args.output,
        JOB,
        {"models": [s.label for s in specs]},
        after=[*written, metrics],
        empty_tables=[(metrics, metrics_dir, schema.METRICS_SCHEMA)],
        stats_name=PENDING_STATS,
    )


def publish_stats(output: str) -> None:
    """The run's last file: the pipeline's stats (PENDING_STATS) as stats.json."""
    pending = join(output, PENDING_STATS)
    write_json(join(output, "stats.json"), read_json(pending))
    remove(pending)


def read_priors(uri: str) -> np.ndarray:
    """The empirical prior (Q,) of --priors: a stage run's priors.json, or its folder;
    UsageError (one line, exit code 2) for anything else."""
    path = join(uri, "priors.json") if is_dir(uri) else uri
    try:
        prior = np.asarray(read_json(path)["empirical"], dtype=np.float64)
    except FileNotFoundError:
        raise checks.UsageError(f"--priors {uri}: no such file") from None
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise checks.UsageError(
            f"--priors {uri}: not the priors.json of `chromabeam stage` ({type(e).__name__}: {e})"
        ) from None
    if prior.shape != (num_bins(),) or not np.isfinite(prior).all():
        raise checks.UsageError(
            f"--priors {uri}: expected {num_bins()} finite bin probabilities, got {prior.shape}"
        )
    return prior


def stale_report_files(output: str, compare: str | None) -> list[str]:
    """The report files of an earlier run in `output`, which this run replaces (and which
    must not outlive it: a --no-report or failed rerun would leave them describing other
    data); summary.json stays while --compare reads it from this very folder."""
    names = [REPORT_MD, REPORT_HTML, CMF_PNG, HIST_PNG, EXAMPLES_PNG, "stats.json", PENDING_STATS]
    keep = compare is not None and checks.same_file(compare, output)
    return names + ([] if keep else [SUMMARY_JSON])


def check_compare(uri: str) -> None:
    """--compare names an earlier report folder with a summary.json (else UsageError)."""
    try:
        load_summary(uri)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise checks.UsageError(f"--compare {uri}: {e}") from None


def resolve_prior(args, specs: list[ModelSpec]) -> np.ndarray:
    """The prior for the constant baseline and rebalanced AuC: --priors, else the first
    model's stored training prior."""
    if args.priors:
        return read_priors(args.priors)
    for spec in specs:
        if spec.prior:
            return np.asarray(spec.prior, dtype=np.float64)
    raise SystemExit("no prior: pass --priors PRIORS_JSON (from `chromabeam stage`)")


def render_examples(
    rows: list[dict],
    specs: list[ModelSpec],
    prior: np.ndarray,
    args,
    size: int | None,
    max_side: int = 384,
) -> list[dict]:
    """Re-colorize the example images in this process for the report's grid."""
    if not specs:
        return []
    device = str(resolve_device(args.device))
    models = {s.label: load_model(s.name, s.weights, device)[0] for s in specs}
    examples = []
    for label, r in select_examples(rows, specs[0].label):
        item = load_truth(r["source_uri"], read_bytes(r["source_uri"]), size, args.max_pixels, 1)
        scale = max(1, int(np.ceil(max(item["rgb"].shape[:2]) / max_side)))
        l_full = item["l"]
        images = {"gray input": compose(l_full, np.zeros((1, 1, 2), np.float32), step=scale)}
        images[CONSTANT_PRIOR] = compose(
            l_full, baseline_ab(CONSTANT_PRIOR, prior, args.baseline_temperature), step=scale
        )
        for s in specs:
            l_in = model_input(s.pipeline, item["rgb"], l_full, s.render_size)
            ab, _ = predict(models[s.label], l_in[None], s.settings)
            if s.pipeline == PROJECT:  # every scale-th pixel of the composition, made alone
                images[s.label] = compose(l_full, ab[0], s.settings.strength, step=scale)
            else:
                rgb = model_output(s.pipeline, l_full, ab[0], s.settings.strength, s.render_size)
                images[s.label] = rgb[::scale, ::scale]
        images["ground truth"] = item["rgb"][::scale, ::scale]
        de = {x["model"]: x["ciede2000"] for x in rows if x["key"] == r["key"]}
        examples.append(
            {
                "label": label,
                "key": r["key"],
                "source_uri": r["source_uri"],
                "images": images,
                "ciede2000": de,
            }
        )
    return examples


def run(args: argparse.Namespace, beam_args: list[str]) -> dict | None:
    """Run the job holding its output folder's lock (pipeline.locking: one run per folder)."""
    # fail fast, before any worker starts (and before the lock makes the output folder)
    allow_empty = getattr(args, "allow_empty", False)
    patterns, total = checks.match_inputs(args.inputs, allow_empty, args.output)
    if args.priors:
        read_priors(args.priors)
    if args.compare:
        check_compare(args.compare)
    checks.check_output_dir(args.output)
    checks.check_job_folder(args.output, JOB)
    checks.check_device(args.device)
    with output_lock(args.output, JOB):
        return _run(args, beam_args, patterns, total)


def _run(
    args: argparse.Namespace, beam_args: list[str], patterns: list[str], total: int
) -> dict | None:
    """Run the evaluate job on the inputs that match (`patterns`, `total` files), write the
    report, then stats.json (publish_stats; a run whose report fails leaves none: unfinished)."""
    size = None if str(args.size).lower() == "full" else int(args.size)
    if patterns != list(args.inputs):
        args = argparse.Namespace(**{**vars(args), "inputs": patterns})
    specs = [parse_spec(s) for s in (args.model or [DEFAULT_MODEL])]
    if len({s.label for s in specs}) != len(specs):
        raise SystemExit("two --model entries share a label: add ,label=NAME")
    prior = resolve_prior(args, specs)
    clear_dirs(args.output, ["metrics", "errors", "filtered", evaluate_hints.HINTS_DIR])
    clear_dirs(args.output, stale_report_files(args.output, args.compare))
    t0 = time.time()
    options = make_pipeline_options(beam_args, local_mode="multi_threading")
    with progress.report(JOB, total, per_item=len(specs), enabled=is_local(options)):
        with beam.Pipeline(options=options) as p:
            build(p, args, specs, prior, size, threads_per_worker(options))
    log_counters(p.result, JOB)
    if args.hints:
        hint_summary = evaluate_hints.report(args, specs)
        log.info("hint sweep: %s", join(args.output, "hints.md"))
        for model, t in hint_summary["targets"].items():
            log.info("%s: %s", model, json.dumps(t, default=str))
    if not checks.has_rows(join(args.output, "metrics")):  # (an empty table: WriteAccounting)
        publish_stats(args.output)
        if not total:  # --allow-empty
            log.info("no input: empty tables, no report")
            return None
        raise checks.JobFailed(
            f"nothing to score: none of the {total} inputs is usable ground truth "
            f"(see {join(args.output, 'errors')} and {join(args.output, 'filtered')})"
        )
    if args.no_report:
        publish_stats(args.output)
        return None
    rows = read_table(join(args.output, "metrics")).to_pylist()
    outcomes = read_json(join(args.output, PENDING_STATS))["outcomes"]
    meta = {
        "data": list(args.inputs),
        "images": len({r["key"] for r in rows}),
        "left_out": {o: n for o, n in sorted(outcomes.items()) if o != EVALUATED},
        "size": args.size,
        "models": {
            s.label: {
                "name": s.name,
                "weights": s.weights,
                "weights_sha256": s.weights_sha256,
                "render_size": s.render_size,
                **applied_decode(s.name, s.settings.method, s.settings.temperature),
                "pipeline": s.pipeline,
                "strength": s.settings.strength,
            }
            for s in specs
        },
        "baselines": {
            NO_COLOUR: "a = b = 0",
            CONSTANT_PRIOR: f"annealed mean of the prior, T={args.baseline_temperature}",
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": round(time.time() - t0, 1),
    }
    examples = render_examples(rows, specs, prior, args, size)
    summary = build_report(  # models in the command line's order, then the baselines
        rows, examples, meta, args.output, args.compare, models=[s.label for s in specs]
    )
    log.info("report: %s", join(args.output, "report.html"))
    publish_stats(args.output)
    return summary
