"""Benchmark of the `colorize` job: throughput against a plain per-image Python loop over the
same model, and peak memory as the input grows.

    python bench/colorize.py                          # 200 ImageNet samples, shipped weights
    python bench/colorize.py --limit 16 --weights /tmp/run/model.pt   # quick check
    python bench/colorize.py --check                  # exit 1 if any target FAILs

What it measures, all in one run (globs are relative to the repository root):
  loop       a plain Python loop in this process, one image at a time: read the bytes ->
             pipeline.colorize.prepare -> models.infer.predict_ab on a batch of 1 ->
             pipeline.colorize.finish (composes and writes the image into a temporary folder);
             torch uses as many threads as the machine has cores (torch.set_num_threads);
             timed after loading the model and one untimed warm-up prediction (both are
             reported apart), so the loop is measured at its best;
  pipeline   the whole `colorize` job (pipeline.colorize.run, in-process, default runner of
             pipeline.options: FnApiRunner, multi_processing) with --direct_num_workers
             --workers (default 2) and with 1 worker, --batch-size 8 (by default); wall time
             including start-up and model loading in every worker, after one untimed warm-up
             run on a few files; target: rate(--workers) / rate(loop) >= 1.3x;
             stats.json must count every input, as many `colorized` as the loop colorized,
             and that many images must be written;
             'procs' is the most child processes seen: 0 means the runner ignored the
             worker count and ran everything in this process;
  memory     peak RSS of the whole process tree (launcher + SDK workers) of `colorize` run as
             a subprocess on the files and on 4 symlinked copies of each (4x the inputs);
             target: flat, ratio <= 1.3x.
The pipeline always reads one glob over a temporary folder of symlinks to exactly the files
the loop reads. Outputs go to temporary folders, removed at the end. Options this script does
not know are passed on to Beam (e.g. --runner=...), for every pipeline run.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    RUNNER_LOGGER,
    RunnerLog,
    TreeSampler,
    link_folder,
    list_files,
    mib,
    project_on_pythonpath,
    read_stats,
    resolve_glob,
    run_sampled,
    verdict,
    warm_cache,
)
from models.infer import predict_ab, resolve_device  # noqa: E402
from models.registry import load_model, names  # noqa: E402
from pipeline import colorize  # noqa: E402
from transforms import schema  # noqa: E402
from transforms.compose import EXTENSIONS  # noqa: E402
from transforms.decode import ImageError  # noqa: E402
from transforms.fileio import read_bytes  # noqa: E402

log = logging.getLogger("bench.colorize")

DEFAULT_GLOB = "../shared/data/imagenet-samples/*.JPEG"
DEFAULT_LIMIT = 200
SPEEDUP_TARGET = 1.30  # pipeline rate (--workers) / loop rate
MEMORY_TARGET = 1.30  # peak RSS at 4x the inputs / peak RSS at 1x
MEMORY_COPIES = 4
WARMUP_FILES = 4
OPTIONS_LOGGER = "pipeline.options"  # logs the Beam options, --runner included

# Runs the colorize job in a fresh interpreter (the memory test measures that process tree).
RUNNER = """
import argparse, logging, sys
sys.path.insert(0, sys.argv[1])
from pipeline import colorize
logging.basicConfig(level=logging.WARNING)
p = argparse.ArgumentParser()
colorize.add_arguments(p)
args, rest = p.parse_known_args(sys.argv[2:])
colorize.run(args, rest)
"""


# ---------------------------------------------------------------- job arguments


def job_options(a: argparse.Namespace) -> list[str]:
    """The colorize options every run shares (loop and pipelines)."""
    argv = ["--batch-size", str(a.batch_size), "--format", a.format, "--device", a.device]
    if a.model:
        argv += ["--model", a.model]
    if a.weights:
        argv += ["--weights", a.weights]
    if a.render_size:
        argv += ["--render-size", str(a.render_size)]
    return argv


def parse_colorize_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    colorize.add_arguments(p)
    return p.parse_args(argv)


def count_outputs(out_dir: str, fmt: str) -> int:
    return len(glob.glob(os.path.join(out_dir, "*" + EXTENSIONS[fmt])))


# ---------------------------------------------------------------- the plain loop


def loop_rate(files: list[str], pattern: str, options: list[str], work: str) -> dict:
    """Images/s of the per-image loop (batch of 1) over the job's own functions."""
    out_dir = tempfile.mkdtemp(prefix="loop-", dir=work)
    args = parse_colorize_args([pattern, out_dir, *options])
    cfg = colorize.config_from_args(args, [pattern], out_dir)
    start = time.perf_counter()
    model, config = load_model(cfg.model, cfg.weights, str(resolve_device(args.device)))
    dummy = np.zeros((1, cfg.render_size, cfg.render_size), np.float32)
    predict_ab(model, dummy, cfg.settings)  # first call: allocations, kernel selection
    load_seconds = time.perf_counter() - start

    errors = 0
    start = time.perf_counter()
    for f in tqdm(files, desc="loop (batch 1)", unit="img", leave=False):
        try:
            item = colorize.prepare(f, read_bytes(f), cfg)
            ab = predict_ab(model, item["l_render"][None], cfg.settings)[0]
            colorize.finish(item, ab, cfg)
        except ImageError:
            errors += 1
    seconds = time.perf_counter() - start
    return {
        "rate": len(files) / seconds,
        "seconds": seconds,
        "load_seconds": load_seconds,
        "errors": errors,
        "written": count_outputs(out_dir, cfg.fmt),
        "cfg": cfg,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(next(model.parameters()).device),
    }


# ---------------------------------------------------------------- pipeline runs


def _engine(direct: RunnerLog, options: RunnerLog) -> str:
    """The engine DirectRunner picked, or the --runner the job's options named."""
    if direct.messages:
        return direct.engine()
    found = re.findall(r"--runner=(\S+)", "\n".join(options.messages))
    return found[-1].rsplit(".", 1)[-1] if found else "?"


def pipeline_rate(
    pattern: str,
    n_files: int,
    workers: int,
    options: list[str],
    extra_beam: list[str],
    work: str,
    interval: float,
) -> dict:
    """Run `colorize` in-process with `workers` workers; images/s over the whole wall time."""
    out_dir = tempfile.mkdtemp(prefix=f"colorize-w{workers}-", dir=work)
    args = parse_colorize_args([pattern, out_dir, *options])
    log.warning("colorize pipeline, %d worker(s), %d files ...", workers, n_files)
    direct, opts = RunnerLog(), RunnerLog()
    watched = [
        (logging.getLogger(RUNNER_LOGGER), direct),
        (logging.getLogger(OPTIONS_LOGGER), opts),
    ]
    old_levels = [logger.level for logger, _ in watched]
    for logger, handler in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        with TreeSampler(os.getpid(), interval) as sampler:
            start = time.perf_counter()
            colorize.run(args, [f"--direct_num_workers={workers}", *extra_beam])
            seconds = time.perf_counter() - start
    finally:
        for (logger, handler), level in zip(watched, old_levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    stats = read_stats(out_dir)
    return {
        "workers": workers,
        "seconds": seconds,
        "rate": n_files / seconds,
        "children": sampler.processes - 1,
        "engine": _engine(direct, opts),
        "total": stats.get("total"),
        "outcomes": stats.get("outcomes", {}),
        "written": count_outputs(out_dir, args.format),
    }


def peak_memory(
    pattern: str,
    workers: int,
    options: list[str],
    extra_beam: list[str],
    work: str,
    interval: float,
) -> dict:
    """Run `colorize` as a subprocess and sample the RSS of its process tree until it exits."""
    out_dir = tempfile.mkdtemp(prefix="colorize-mem-", dir=work)
    cmd = [
        sys.executable,
        "-c",
        RUNNER,
        str(ROOT),
        pattern,
        out_dir,
        *options,
        f"--direct_num_workers={workers}",
        *extra_beam,
    ]
    log.warning("colorize subprocess for peak memory: %s", pattern)
    sampler, seconds = run_sampled(cmd, ROOT, out_dir + ".stderr", interval, "colorize")
    stats = read_stats(out_dir)
    return {
        "peak": sampler.peak,
        "processes": sampler.processes,
        "seconds": seconds,
        "total": stats.get("total"),
        "colorized": stats.get("outcomes", {}).get(schema.COLORIZED),
    }


# ---------------------------------------------------------------- report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/colorize.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run it on an idle machine: the numbers mean little while anything else "
        "competes for the cores.",
    )
    parser.add_argument(
        "pattern", nargs="?", default=DEFAULT_GLOB, help=f"glob of images (default {DEFAULT_GLOB})"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"use only the first N files (default {DEFAULT_LIMIT}; 0 = all)",
    )
    parser.add_argument(
        "--model", default=None, choices=names(), help="model name (default: the shipped one)"
    )
    parser.add_argument(
        "--weights", default=None, help="checkpoint path or URL (default: the shipped weights)"
    )
    parser.add_argument(
        "--render-size", type=int, default=None, help="model input side (default: the model's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="pipeline inference batch (default 8)"
    )
    parser.add_argument(
        "--format", default="png", choices=["png", "jpeg", "webp"], help="output format"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="--direct_num_workers of the pipeline run held to the target (default 2); "
        "a 1-worker run is timed too",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed warm-up pipeline run"
    )
    parser.add_argument(
        "--memory-workers", type=int, default=2, help="workers of the peak-memory runs (default 2)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--sample-interval",
        type=float,
        default=0.1,
        help="seconds between process-tree samples (default 0.1)",
    )
    parser.add_argument("--work-dir", help="where temporary inputs/outputs go (default $TMPDIR)")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target FAILs")
    parser.add_argument("--log-level", default="WARNING", help="default WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    a, extra_beam = build_parser().parse_known_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    project_on_pythonpath()  # SDK worker subprocesses must import the project
    cores = os.cpu_count() or 1
    default_threads = torch.get_num_threads()  # what each SDK worker's torch uses
    torch.set_num_threads(cores)
    load = os.getloadavg()
    files = list_files(a.pattern, a.limit or None)
    options = job_options(a)
    lines: list[str] = []
    notes: list[str] = []
    failed = False

    with tempfile.TemporaryDirectory(prefix="bench-colorize-", dir=a.work_dir) as work:
        # -- throughput
        pattern = link_folder(files, os.path.join(work, "in-1x"))
        warm_cache(files)
        loop = loop_rate(files, pattern, options, work)
        cfg = loop["cfg"]
        expected = len(files) - loop["errors"]
        if not a.no_warmup:
            warm = files[:WARMUP_FILES]
            log.warning("warm-up run (untimed) on %d files", len(warm))
            pipeline_rate(
                link_folder(warm, os.path.join(work, "in-warmup")),
                len(warm),
                1,
                options,
                extra_beam,
                work,
                a.sample_interval,
            )
        worker_counts = [a.workers] + ([1] if a.workers != 1 else [])
        runs = [
            pipeline_rate(pattern, len(files), w, options, extra_beam, work, a.sample_interval)
            for w in worker_counts
        ]
        rate_1 = next((r["rate"] for r in runs if r["workers"] == 1), None)

        lines.append(
            f"input     {len(files)} files  {resolve_glob(a.pattern)}"
            + (f"  (--limit {a.limit})" if a.limit else "")
        )
        lines.append(
            f"machine   {cores} CPUs; load average before the runs "
            f"{' '.join(f'{x:.2f}' for x in load)} (should be ~0)"
        )
        lines.append(
            f"model     {cfg.model}  {cfg.weights}  ({loop['parameters']:,} parameters)  "
            f"render size {cfg.render_size}  T={cfg.settings.temperature:.2f}  "
            f"device {loop['device']}"
        )
        lines.append(
            f"threads   torch: loop {torch.get_num_threads()} (= cores); each pipeline worker "
            f"torch's default ({default_threads})"
        )
        lines.append(f"output    {cfg.fmt}; pipeline --batch-size {a.batch_size}")
        lines.append("")
        lines.append(f"{'run':<28}{'img/s':>8}{'s':>8}  {'procs':>5}  {'vs loop':<24}engine")
        lines.append(
            f"{'loop, batch 1':<28}{loop['rate']:>8.2f}{loop['seconds']:>8.1f}  {'-':>5}  "
            f"{'1.00':<24}model load + first call {loop['load_seconds']:.2f} s"
            + (f"; {loop['errors']} undecodable" if loop["errors"] else "")
        )
        for r in runs:
            n = r["workers"]
            ratio = r["rate"] / loop["rate"]
            if n == a.workers:
                ok = ratio >= SPEEDUP_TARGET
                failed |= not ok
                cell = f"{ratio:.2f}x {verdict(ok)} (>= {SPEEDUP_TARGET:.1f}x)"
            else:
                cell = f"{ratio:.2f}x"
            extra = ""
            if rate_1 and n > 1:
                extra = f"  ({r['rate'] / rate_1:.2f}x the 1-worker run)"
            lines.append(
                f"{f'pipeline, {n} worker(s)':<28}{r['rate']:>8.2f}{r['seconds']:>8.1f}  "
                f"{r['children']:>5}  {cell:<24}{r['engine']}{extra}"
            )
            if n > 1 and r["children"] < 1:
                notes.append(
                    f"--direct_num_workers={n} had no effect: no worker process was "
                    f"started ({r['engine']} ran the job in this process)"
                )
        if a.workers * default_threads > cores:
            notes.append(
                f"{a.workers} workers x {default_threads} torch threads on {cores} cores: "
                "the pipeline's workers compete for the cores"
            )

        # -- counts
        lines.append("")
        lines.append(
            f"counts    expected {len(files)} inputs, {expected} colorized "
            f"(the loop wrote {loop['written']})"
        )
        ok_loop = loop["written"] == expected
        failed |= not ok_loop
        if not ok_loop:
            notes.append(f"the loop wrote {loop['written']} images, expected {expected}")
        for r in runs:
            colorized = r["outcomes"].get(schema.COLORIZED, 0)
            ok = r["total"] == len(files) and colorized == expected and r["written"] == expected
            failed |= not ok
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())) or "-"
            lines.append(
                f"  {r['workers']} worker(s): stats.json total {r['total']}, {outcomes}; "
                f"{r['written']} images written  {verdict(ok)}"
            )

        # -- memory
        if not a.no_memory:
            small = peak_memory(
                pattern, a.memory_workers, options, extra_beam, work, a.sample_interval
            )
            big_pattern = link_folder(files, os.path.join(work, "in-4x"), MEMORY_COPIES)
            big = peak_memory(
                big_pattern, a.memory_workers, options, extra_beam, work, a.sample_interval
            )
            ratio = big["peak"] / max(small["peak"], 1)
            ok_mem = ratio <= MEMORY_TARGET
            failed |= not ok_mem
            lines.append("")
            lines.append(
                f"peak RSS of the process tree, colorize as a subprocess, "
                f"{a.memory_workers} workers"
            )
            for k, m in ((1, small), (MEMORY_COPIES, big)):
                ok_count = m["total"] == len(files) * k and m["colorized"] == expected * k
                failed |= not ok_count
                lines.append(
                    f"  {len(files) * k:>6} inputs  {mib(m['peak']):>10}  "
                    f"{m['processes']} process(es)  {m['seconds']:6.1f} s  "
                    f"(stats.json total {m['total']}, colorized {m['colorized']}  "
                    f"{verdict(ok_count)})"
                )
            lines.append(
                f"  ratio {MEMORY_COPIES}x / 1x   {ratio:.2f}x  {verdict(ok_mem)} "
                f"(<= {MEMORY_TARGET:.1f}x)"
            )

    print("\n==== chromabeam colorize benchmark " + "=" * 55)
    print("\n".join(lines))
    for note in notes:
        print(f"NOTE: {note}")
    print("=" * 90)
    print(f"overall: {'FAIL' if failed else 'PASS'}")
    return 1 if failed and a.check else 0


if __name__ == "__main__":
    sys.exit(main())
