"""`evaluate --hints N [N ...]`: the hint sweep (Zhang et al. 2017's protocol).

Per ground-truth image, max(N) hint points are simulated once (seeded by --hint-seed and the
image key: reproducible, independent of order and workers; transforms.hints.simulate_points:
6 px patches at 256 px scaled to the evaluation resolution, uniform placement, colour = the
patch's mean ab), and the first N are used for each N, so the curves are nested. Every model
that takes hints and the two propagation baselines (IDW, Levin et al. 2004;
transforms.propagate) colour the image from the same points; each result is scored like the
main evaluation (original L kept). Rows: schema.HINT_METRICS_SCHEMA in OUTPUT/hints/, then
hints.md, hints.json and hints_curve.png (transforms.hint_report).
"""

from __future__ import annotations

import logging
from functools import partial

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import RunInference

from models.handler import ColorizerHandler, KeyedColorizerHandler
from models.official import model_input
from models.registry import takes_hints
from pipeline import checks
from pipeline.common import WriteRowBatches, dead_letter_rows, safe_apply
from transforms import schema
from transforms.colour import rgb_to_lab
from transforms.fileio import join, read_table
from transforms.hint_report import write_hint_report
from transforms.hints import (
    HINTED_STRENGTH,
    hinted_strength,
    seeded_rng,
    simulate_points,
    sweep_patch,
    with_hints,
)
from transforms.propagate import propagate

log = logging.getLogger(__name__)
JOB = "evaluate"
HINTS_DIR = "hints"
PROPAGATIONS = {"idw": "IDW propagation", "levin": "Levin propagation"}


def add_arguments(p) -> None:
    """The hint-sweep options of `evaluate`."""
    p.add_argument(
        "--hints",
        type=checks.non_negative_int,
        nargs="+",
        default=None,
        metavar="N",
        help="hint sweep: simulate N ground-truth colour points per image for each N "
        "(e.g. 0 1 2 5 10 20 50); scores hint models + IDW / Levin propagation",
    )
    p.add_argument(
        "--hint-seed", type=checks.non_negative_int, default=0, help="seed of the simulated hints"
    )
    p.add_argument(
        "--hinted-strength",
        type=checks.strength,
        default=HINTED_STRENGTH,
        help="output strength of a hint model on images with hints (default 1: hint colours "
        "are not scaled; the model's strength applies with 0 points)",
    )


def expand(item: dict, counts: tuple[int, ...], seed: int) -> list[dict]:
    """One item per N with the first N of max(N) simulated points ("points", "sim")."""
    h, w = item["l"].shape[:2]
    ab = rgb_to_lab(item["rgb"].astype(np.float32) / 255.0)[..., 1:]  # truth keeps no Lab
    sim = simulate_points(ab, max(counts), seeded_rng(item["key"], seed), sweep_patch(w, h))
    return [{**item, "points": n, "sim": sim.head(n)} for n in counts]


def _row(item: dict, ab: np.ndarray, label: str, prior, strength=1.0, probs=None, spec=None):
    from pipeline.evaluate import score  # evaluate imports this module

    if spec is None:
        r = score(item, ab, label, strength, prior, probs)
    else:
        r = score(item, ab, label, strength, prior, probs, spec.pipeline, spec.render_size)
    return {**r, "points": int(item["points"])}


def score_propagation(item: dict, method: str, prior) -> dict:
    """Propagate the item's simulated hints over its L and score the result."""
    ab = propagate(method, item["l"], item["sim"])
    return _row(item, ab, PROPAGATIONS[method], prior)


def render(item: dict, spec) -> tuple[dict, np.ndarray]:
    """(item, the model's input with the hint map) for RunInference."""
    l_in = model_input(spec.pipeline, item["rgb"], item["l"], spec.render_size)
    h, w = item["l"].shape[:2]
    return item, with_hints(l_in, item["sim"], w, h)


def score_hinted(kv, spec, prior, hinted: float = HINTED_STRENGTH) -> dict:
    """Score a RunInference result of a hint model (strength: hinted_strength)."""
    item, result = kv
    ab = result.inference[0] if isinstance(result.inference, tuple) else result.inference
    strength = hinted_strength(spec.settings.strength, int(item["points"]), hinted)
    return _row(item, ab, spec.label, prior, strength, spec=spec)


def build_sweep(truth_rows, args, specs, prior, threads: int | None = None):
    """Add the sweep to the evaluate graph; returns (SafeApply outputs, dead-letter rows, the
    URIs of the hint-metrics files written)."""
    sims = truth_rows | "SimulateHints" >> beam.FlatMap(
        expand, counts=tuple(args.hints), seed=args.hint_seed
    )
    scored, steps, dead = [], [], []
    for method, label in PROPAGATIONS.items():
        out = safe_apply(
            sims,
            partial(score_propagation, method=method, prior=prior),
            JOB,
            f"Hints[{label}]",
            stage=f"hints:{method}",
            read=False,
            success=None,
        )
        scored.append(out.rows)
        steps.append(out)
    for spec in [s for s in specs if takes_hints(s.name)]:
        handler = KeyedColorizerHandler(
            ColorizerHandler(
                spec.name,
                spec.weights,
                args.device,
                spec.settings,
                max_batch_size=args.batch_size,
                threads=threads,
            )
        )
        preds, dlq = (
            sims
            | f"HintRender[{spec.label}]" >> beam.Map(render, spec=spec)
            | f"HintInfer[{spec.label}]" >> RunInference(handler).with_exception_handling()
        )
        out = safe_apply(
            preds,
            partial(
                score_hinted,
                spec=spec,
                prior=prior,
                hinted=getattr(args, "hinted_strength", HINTED_STRENGTH),
            ),
            JOB,
            f"HintScore[{spec.label}]",
            stage=f"hints:{spec.label}",
            read=False,
            success=None,
            uri_of=lambda kv: kv[0]["uri"],
        )
        scored.append(out.rows)
        steps.append(out)
        dead.append(
            dlq.failed_inferences
            | f"HintDead[{spec.label}]" >> beam.FlatMap(dead_letter_rows, f"hints:{spec.label}")
        )
    written = (
        scored
        | "HintRows" >> beam.Flatten()
        | "HintMetrics"
        >> WriteRowBatches(join(args.output, HINTS_DIR), "part", schema.HINT_METRICS_SCHEMA, 10000)
    )
    return steps, dead, written


def report(args, specs) -> dict:
    """hints.md / hints.json / hints_curve.png from the sweep's rows."""
    rows = read_table(join(args.output, HINTS_DIR)).to_pylist()
    models = [s.label for s in specs if takes_hints(s.name)]
    return write_hint_report(rows, args.output, models, list(PROPAGATIONS.values()))
