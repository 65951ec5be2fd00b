"""`chromabeam stage`: a glob of photos -> Parquet training shards, colour priors, accounting.

MatchFiles -> Reshuffle -> BatchElements (--batch-files) ->
  read + decode + filter + crop + Lab of each batch (transforms.staging.stage_batch; its rows
  travel on as one list per batch, an outcome per file) ->
  shards/part-*.parquet   (schema.SHARD_SCHEMA, at most --shard-rows rows and --shard-mb
                          MiB of pixels each; --space yuv:
                          l / ab hold BT.601 YUV, recorded in each row and in priors.json)
  priors.json, prior_*.npy, rebalance_weights.npy, ab_bins.npy, priors.png
  stats.json, errors/*.parquet, filtered/*.parquet
The rows (150 KB of pixel bytes each at --size 224) never cross a fusion break: the shard
writer and the histogram's partial sums run in the worker that staged them, so only small
values (outcome counts, histogram accumulators, shard paths) leave a worker. Each worker
writes its shards a row group (staging.ROW_GROUP_BYTES) at a time on one writer thread while
it stages the next batches (common.StreamShards, staging.ShardFile).
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Callable
from functools import partial

import apache_beam as beam
import numpy as np

from pipeline import checks, progress
from pipeline.common import (
    OUTCOMES,
    MatchFiles,
    StreamShards,
    SumArrays,
    WriteAccounting,
    accounting_inputs,
    safe_apply,
    tick_each,
)
from pipeline.locking import output_lock
from pipeline.options import is_local, log_counters, make_pipeline_options
from transforms import schema
from transforms.bins import GRID, gamut_bins, num_bins
from transforms.decode import DEFAULT_MAX_PIXELS
from transforms.fileio import clear_dirs, join, write_bytes, write_json
from transforms.filters import GrayThresholds
from transforms.priors import PRIOR_SIGMA, REBALANCE_LAMBDA, priors_from_counts
from transforms.staging import ROW_GROUP_BYTES, SPACES, ShardFile, StageConfig, stage_batch

log = logging.getLogger(__name__)
JOB = "stage"
LOCAL_MODE = "multi_processing"  # --direct_running_mode of local runs (bench/stage.py --mode)
# numpy's BLAS threads in each worker, on every runner: stage's matrix products are tiny (3x3
# colour matrices, the filter's 64-px smoothing), so more threads only spin, on the core the
# worker's shard writer thread would use (one stage loop: 294-299 img/s with one BLAS thread,
# 269-281 with two; 2 cores, docs/benchmarks.md), and N workers per machine would each start one
# per core
BLAS_THREADS = 1
PRIOR_FILES = (  # what write_priors writes (tests/test_stage_pipeline.py checks)
    "priors.json",
    "ab_bins.npy",
    "prior_empirical.npy",
    "prior_smoothed.npy",
    "rebalance_weights.npy",
    "priors.png",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `stage` job's own options."""
    p.add_argument("inputs", nargs="+", help="fsspec globs of images (local, gs://, memory://)")
    p.add_argument("output", help="output folder (fsspec URL)")
    p.add_argument(
        "--size", type=checks.crop_size, default=224, help="side of the stored square crop"
    )
    p.add_argument(
        "--min-size",
        type=checks.non_negative_int,
        default=32,
        help="drop images whose short side is less",
    )
    p.add_argument(
        "--val-percent",
        type=checks.percent,
        default=10.0,
        help="share of keys (percent) in the 'val' split",
    )
    p.add_argument(
        "--shard-rows",
        type=checks.positive_int,
        default=1000,
        help="rows per Parquet shard at most",
    )
    p.add_argument(
        "--shard-mb",
        type=checks.positive_int,
        default=64,
        help="pixel bytes (MiB, before compression) per Parquet shard at most (each worker "
        "holds two row groups of 8 MiB at most whatever this is: one filling, one being "
        "written on its writer thread)",
    )
    p.add_argument(
        "--max-pixels",
        type=checks.positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    p.add_argument(
        "--space",
        choices=SPACES,
        default="lab",
        help="colour space of the shards' l / ab columns: lab (CIE Lab) or yuv (BT.601, "
        "for your own models that take YUV: every model `chromabeam train` trains takes Lab "
        "and refuses YUV shards); the space is recorded in each row and in priors.json",
    )
    p.add_argument(
        "--batch-files",
        type=checks.positive_int,
        default=32,
        help="files per work item: one Beam element and one pass of the array maths over "
        "their crops (many small files then share the per-element cost)",
    )
    checks.add_allow_empty(p)
    p.add_argument(
        "--rebalance-lambda",
        type=checks.probability,
        default=REBALANCE_LAMBDA,
        help="λ of the class-rebalancing weights ((1-λ)·P̃ + λ/Q)^-1",
    )
    t = GrayThresholds()
    p.add_argument(
        "--gray-mean-chroma",
        type=checks.non_negative_float,
        default=t.mean_chroma,
        help="grayscale if mean chroma is below this ...",
    )
    p.add_argument(
        "--gray-high-chroma",
        type=checks.non_negative_float,
        default=t.high_chroma,
        help="... and the 99th percentile of chroma is below this",
    )
    p.add_argument(
        "--tone-residual",
        type=checks.non_negative_float,
        default=t.tone_residual,
        help="toned (sepia etc.) if ab strays less than this from one tone curve",
    )


def config_from_args(args: argparse.Namespace) -> StageConfig:
    """StageConfig from parsed options."""
    return StageConfig(
        size=args.size,
        min_size=args.min_size,
        val_percent=args.val_percent,
        max_pixels=args.max_pixels,
        space=getattr(args, "space", "lab"),
        thresholds=GrayThresholds(
            mean_chroma=args.gray_mean_chroma,
            high_chroma=args.gray_high_chroma,
            tone_residual=args.tone_residual,
        ),
    )


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def batch_histogram(rows: list[dict]) -> np.ndarray:
    """The summed bin histograms (Q,) int64 of a batch's shard rows."""
    return np.asarray([r["hist"] for r in rows], dtype=np.int64).sum(axis=0)


def write_priors(counts: np.ndarray, out_dir: str, lam: float, space: str = "lab") -> dict:
    """Write the priors as JSON + .npy + PNG; returns the JSON document. The priors are over
    Lab ab bins whatever the shards' `space`, which the document records."""
    from transforms.plots import priors_png  # matplotlib: imported by the one step that plots

    pri = priors_from_counts(counts, lam)
    centres = gamut_bins()
    doc = {
        "space": space,
        "num_bins": num_bins(),
        "grid": GRID,
        "sigma": PRIOR_SIGMA,
        "lambda": lam,
        "pixels": int(counts.sum()),
        "ab_bins": centres.tolist(),
        "counts": [int(c) for c in counts],
        **{k: v.tolist() for k, v in pri.items()},
    }
    files = {
        "ab_bins.npy": _npy(centres),
        "prior_empirical.npy": _npy(pri["empirical"]),
        "prior_smoothed.npy": _npy(pri["smoothed"]),
        "rebalance_weights.npy": _npy(pri["weights"]),
        "priors.png": priors_png(pri["smoothed"], pri["weights"], centres),
    }
    for name, data in files.items():
        write_bytes(join(out_dir, name), data)
    write_json(join(out_dir, "priors.json"), doc)  # last: the priors are complete
    return doc


def shard_writer(
    args: argparse.Namespace, out_dir: str, open_shard: Callable | None = None
) -> StreamShards:
    """The DoFn that writes the staged rows (lists of rows, one per batch) as shards in
    out_dir: at most --shard-rows rows and --shard-mb MiB of pixel bytes each, a row group of
    ROW_GROUP_BYTES at a time on the worker's writer thread (`open_shard`: staging.ShardFile
    if None)."""
    return StreamShards(
        out_dir,
        "part",
        args.shard_rows,
        open_shard or ShardFile,
        ROW_GROUP_BYTES,
        max_bytes=args.shard_mb << 20,
        batched=True,
    )


def build(p: beam.Pipeline, args: argparse.Namespace, threads: int | None = BLAS_THREADS) -> None:
    """Add the stage graph to pipeline p (`threads`: BLAS threads of each worker)."""
    cfg = config_from_args(args)
    uris = p | "Match" >> MatchFiles(args.inputs, exclude=args.output)
    batches = uris | "Batch" >> beam.BatchElements(
        min_batch_size=args.batch_files, max_batch_size=args.batch_files
    )
    stage_fn = partial(stage_batch, cfg=cfg)
    out = safe_apply(batches, stage_fn, JOB, "Stage", batch=True, stage="decode", threads=threads)
    tick_each(JOB, out[OUTCOMES])  # one outcome per input
    shards = out.rows | "Shards" >> beam.ParDo(shard_writer(args, join(args.output, "shards")))
    priors = (
        out.rows
        | "Hist" >> beam.Map(batch_histogram)
        | "SumHist" >> beam.CombineGlobally(SumArrays()).without_defaults()
        | "Priors" >> beam.Map(write_priors, args.output, args.rebalance_lambda, cfg.space)
    )
    settings = {k: v for k, v in vars(args).items() if k not in ("func",)}
    _ = accounting_inputs(out) | "Accounting" >> WriteAccounting(
        args.output,
        JOB,
        {"settings": settings},
        after=[shards, priors],
        empty_tables=[(shards, join(args.output, "shards"), schema.SHARD_SCHEMA)],
    )


def run(args: argparse.Namespace, beam_args: list[str]) -> None:
    """Run the job holding its output folder's lock (pipeline.locking: one run per folder)."""
    # fail fast, before any worker starts (and before the lock makes the output folder)
    allow_empty = getattr(args, "allow_empty", False)
    patterns, total = checks.match_inputs(args.inputs, allow_empty, args.output)
    checks.check_output_dir(args.output)
    checks.check_job_folder(args.output, JOB)
    with output_lock(args.output, JOB):
        return _run(args, beam_args, patterns, total)


def _run(args: argparse.Namespace, beam_args: list[str], patterns: list[str], total: int) -> None:
    """Run the stage job to completion (on the inputs that match: `patterns`, `total` files)."""
    if patterns != list(args.inputs):
        args = argparse.Namespace(**{**vars(args), "inputs": patterns})
    # the earlier run's outputs all go first: none may outlive it (a run that keeps nothing
    # writes no priors, and one killed before its end no stats.json: "not finished")
    clear_dirs(args.output, ["shards", "errors", "filtered", "stats.json", *PRIOR_FILES])
    options = make_pipeline_options(beam_args, local_mode=LOCAL_MODE)
    with progress.report(JOB, total, enabled=is_local(options)):
        with beam.Pipeline(options=options) as p:
            build(p, args)
    log_counters(p.result, JOB)
    # a run that kept nothing has an empty shards table (written before stats.json:
    # WriteAccounting's empty_tables) and fails
    if total and not checks.has_rows(join(args.output, "shards")):
        raise checks.JobFailed(
            f"no image was kept of the {total} inputs: the reasons are in "
            f"{join(args.output, 'errors')} and {join(args.output, 'filtered')}"
        )
    log.info("staged into %s", args.output)
