"""`chromabeam evaluate`: colour photos with ground truth -> per-image metrics + a report.

MatchFiles -> Reshuffle -> decode ground truth (full resolution, or short side + centre crop to
--size) -> for each model: L at its render size -> RunInference -> compose with the true L ->
metrics (transforms.metrics); the baselines "no colour" (a = b = 0) and "constant prior"
(every pixel the annealed mean of the training prior) are always scored.
Writes metrics/*.parquet (schema.METRICS_SCHEMA + cmf), stats.json, errors/, and then
report.md / report.html / summary.json with plots (transforms.report).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from models.infer import ColorizerHandler, DecodeSettings, predict, resolve_device
from models.registry import DEFAULT_MODEL, describe, load_model, names
from pipeline.common import (
    ERRORS,
    MatchFiles,
    WriteAccounting,
    WriteRowBatches,
    accounting_inputs,
    dead_letter_rows,
    safe_apply,
)
from pipeline.options import log_counters, make_pipeline_options, threads_per_worker
from transforms import schema
from transforms.bins import GRID, annealed_mean, hard_encode
from transforms.colour import rgb_to_lab
from transforms.compose import compose, render_l
from transforms.crop import fit_and_crop
from transforms.decode import DEFAULT_MAX_PIXELS, decode_image
from transforms.fileio import clear_dirs, join, read_bytes, read_json, read_table
from transforms.metrics import ab_errors, cmf, image_metrics
from transforms.report import build_report, load_summary, select_examples
from transforms.staging import uri_key

log = logging.getLogger(__name__)
JOB = "evaluate"
NO_COLOUR, CONSTANT_PRIOR = "no colour", "constant prior"
EVALUATED = "evaluated"


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: `--model name[,weights=URI][,temperature=T][,decode=M]
    [,strength=S][,render_size=N][,label=L]`."""

    name: str
    label: str
    weights: str = ""
    weights_sha256: str = ""
    render_size: int = 256
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    prior: tuple[float, ...] = ()


def parse_spec(text: str) -> ModelSpec:
    """Parse a --model argument and resolve its checkpoint defaults."""
    name, *opts = text.split(",")
    bad = [o for o in opts if "=" not in o]
    if bad:
        raise SystemExit(f"--model {text}: settings must be KEY=VALUE, got {bad}")
    kv = dict(o.split("=", 1) for o in opts)
    unknown = set(kv) - {"weights", "temperature", "decode", "strength", "render_size", "label"}
    if unknown:
        raise SystemExit(f"--model {text}: unknown settings {sorted(unknown)}")
    if name not in names():
        raise SystemExit(f"--model {name}: unknown model; known: {', '.join(names())}")
    cfg = describe(name, kv.get("weights"))
    return ModelSpec(
        name=cfg["name"],
        label=kv.get("label", name),
        weights=cfg["weights"],
        weights_sha256=cfg["weights_sha256"],
        render_size=int(kv.get("render_size", cfg["render_size"])),
        settings=DecodeSettings(
            temperature=float(kv.get("temperature", cfg["temperature"])),
            method=kv.get("decode", "annealed"),
            strength=float(kv.get("strength", cfg["strength"])),
        ),
        prior=tuple(cfg.get("prior") or ()),
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
        help="model to evaluate, repeatable: NAME[,weights=URI][,temperature=T]"
        "[,decode=annealed|mean|mode][,strength=S][,render_size=N][,label=L] "
        f"(default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--size",
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
        type=float,
        default=0.38,
        help="annealed-mean T of the constant-prior baseline",
    )
    p.add_argument("--compare", default=None, help="an earlier evaluate output to diff against")
    p.add_argument("--batch-size", type=int, default=4, help="largest inference batch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images"
    )
    p.add_argument("--no-report", action="store_true", help="metrics only")


def load_truth(uri: str, data: bytes, size: int | None, max_pixels: int) -> dict:
    """Ground truth at the evaluation resolution."""
    img = decode_image(data, draft_size=size, max_pixels=max_pixels)
    rgb = fit_and_crop(img.rgb, size) if size else img.rgb
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    return {
        "uri": uri,
        "key": uri_key(uri),
        "rgb": rgb,
        "lab": lab,
        "width": img.width,
        "height": img.height,
    }


def bits_per_dim(probs: np.ndarray, ab_true: np.ndarray) -> float:
    """Mean negative log2-likelihood of the true ab per ab dimension, at 1 Lab-unit resolution:
    −log2(P(bin) / GRID²) / 2, with ab_true area-averaged to the probability map's size."""
    h, w = probs.shape[:2]
    H, W = ab_true.shape[:2]
    if H < h:  # image smaller than the probability map: sample the map down
        probs, h = probs[np.arange(H) * h // H], H
    if W < w:
        probs, w = probs[:, np.arange(W) * w // W], W
    fy, fx = H // h, W // w
    ab = ab_true[: h * fy, : w * fx].reshape(h, fy, w, fx, 2).mean((1, 3))
    p = np.take_along_axis(probs, hard_encode(ab)[..., None].astype(np.int64), -1)[..., 0]
    return float(np.mean(-np.log2(np.clip(p, 1e-12, None) / GRID**2)) / 2.0)


def score(
    item: dict,
    ab_small: np.ndarray,
    label: str,
    strength: float,
    prior: np.ndarray | None,
    probs: np.ndarray | None = None,
) -> dict:
    """Metrics of one prediction against the ground truth (a METRICS_SCHEMA row + cmf)."""
    rgb_pred = compose(item["lab"][..., 0], ab_small, strength)
    lab_pred = rgb_to_lab(rgb_pred.astype(np.float32) / 255.0)
    m = image_metrics(
        item["rgb"].astype(np.float32) / 255.0,
        rgb_pred.astype(np.float32) / 255.0,
        item["lab"],
        lab_pred,
        prior,
    )
    return {
        "key": item["key"],
        "source_uri": item["uri"],
        "model": label,
        "width": item["width"],
        "height": item["height"],
        **m,
        "bits_per_dim": bits_per_dim(probs, item["lab"][..., 1:])
        if probs is not None
        else float("nan"),
        "cmf": cmf(ab_errors(item["lab"][..., 1:], lab_pred[..., 1:])).astype(float).tolist(),
    }


def baseline_ab(label: str, prior: np.ndarray, temperature: float) -> np.ndarray:
    """The 1x1 ab map of a baseline: zeros, or the annealed mean of the prior."""
    if label == NO_COLOUR:
        return np.zeros((1, 1, 2), np.float32)
    return annealed_mean(prior, temperature)[None, None, :].astype(np.float32)


def score_prediction(kv, spec: ModelSpec, prior: np.ndarray | None) -> dict:
    """Score a RunInference result (item, PredictionResult) of one model."""
    item, result = kv
    ab, probs = (
        result.inference if isinstance(result.inference, tuple) else (result.inference, None)
    )
    return score(item, ab, spec.label, spec.settings.strength, prior, probs)


def build(
    p, args, specs: list[ModelSpec], prior: np.ndarray, size: int | None, threads: int | None = None
) -> None:
    """Add the evaluate graph to pipeline p."""
    uris = p | "Match" >> MatchFiles(args.inputs)
    truth = safe_apply(
        uris,
        partial(load_truth, size=size, max_pixels=args.max_pixels),
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
        handler = KeyedModelHandler(
            ColorizerHandler(
                spec.name,
                spec.weights,
                args.device,
                spec.settings,
                max_batch_size=args.batch_size,
                with_probs=True,
                threads=threads,
            )
        )
        preds, dlq = (
            truth.rows
            | f"Render[{spec.label}]"
            >> beam.Map(lambda it, n=spec.render_size: (it, render_l(it["lab"][..., 0], n)))
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
    rows = scored | "AllRows" >> beam.Flatten()
    _ = rows | "Metrics" >> WriteRowBatches(
        join(args.output, "metrics"), "part", schema.METRICS_SCHEMA, 10000
    )
    # One outcome per image (from the ground-truth step); a model's failures are error rows.
    _ = accounting_inputs(
        truth, extra_errors=[step[ERRORS] for step in steps[1:]] + dead
    ) | "Accounting" >> WriteAccounting(args.output, JOB, {"models": [s.label for s in specs]})


def resolve_prior(args, specs: list[ModelSpec]) -> np.ndarray:
    """The prior for the constant baseline and rebalanced AuC: --priors, else the first
    model's stored training prior."""
    if args.priors:
        return np.asarray(read_json(args.priors)["empirical"], dtype=np.float64)
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
        item = load_truth(r["source_uri"], read_bytes(r["source_uri"]), size, args.max_pixels)
        scale = max(1, int(np.ceil(max(item["rgb"].shape[:2]) / max_side)))
        l_full = item["lab"][..., 0]
        images = {"gray input": compose(l_full, np.zeros((1, 1, 2), np.float32))[::scale, ::scale]}
        images[CONSTANT_PRIOR] = compose(
            l_full, baseline_ab(CONSTANT_PRIOR, prior, args.baseline_temperature)
        )[::scale, ::scale]
        for s in specs:
            ab, _ = predict(models[s.label], render_l(l_full, s.render_size)[None], s.settings)
            images[s.label] = compose(l_full, ab[0], s.settings.strength)[::scale, ::scale]
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
    """Run the evaluate job, then write the report."""
    size = None if str(args.size).lower() == "full" else int(args.size)
    specs = [parse_spec(s) for s in (args.model or [DEFAULT_MODEL])]
    if len({s.label for s in specs}) != len(specs):
        raise SystemExit("two --model entries share a label: add ,label=NAME")
    prior = resolve_prior(args, specs)
    if args.compare:
        load_summary(args.compare)  # fail now, not after the inference, if it is missing
    clear_dirs(args.output, ["metrics", "errors", "filtered"])
    t0 = time.time()
    options = make_pipeline_options(beam_args, local_mode="multi_threading")
    with beam.Pipeline(options=options) as p:
        build(p, args, specs, prior, size, threads_per_worker(options))
    log_counters(p.result, JOB)
    if args.no_report:
        return None
    rows = read_table(join(args.output, "metrics")).to_pylist()
    meta = {
        "data": list(args.inputs),
        "images": len({r["key"] for r in rows}),
        "size": args.size,
        "models": {
            s.label: {
                "name": s.name,
                "weights": s.weights,
                "weights_sha256": s.weights_sha256,
                "render_size": s.render_size,
                "temperature": s.settings.temperature,
                "decode": s.settings.method,
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
    summary = build_report(rows, examples, meta, args.output, args.compare)
    log.info("report: %s", join(args.output, "report.html"))
    return summary
