"""Benchmark of the `stage` job: throughput against a bare Python loop, scaling over workers,
and peak memory as the input grows.

    python bench/stage.py                      # 1000 ImageNet samples, workers 1 and 2
    python bench/stage.py --limit 60           # quick check on a few files
    python bench/stage.py --cifar              # + 50,000 CIFAR-10 files with 2 workers

What it measures, all in one run (globs are relative to the repository root):
  bare       a single-process loop doing the core of `stage` per image: read the bytes,
             decode with JPEG draft to --size (transforms.decode.decode_image), convert to RGB,
             fit the short side to --size and centre-crop (transforms.crop.fit_and_crop);
  stage_image  the same loop over the whole per-image function of `stage`
             (transforms.staging.stage_image: + filters, Lab, histogram, hashing); its first
             call, which builds the ab-bin tables, is reported apart: every worker pays it;
  pipeline   the whole `stage` job (pipeline.stage.run, in-process, DirectRunner with
             --direct_running_mode=multi_processing) for each --workers count, wall time
             including start-up, after one untimed warm-up run on a few files;
             per worker = rate / (workers x bare rate), target >= 0.60;
             speed-up = rate(n) / rate(1), target >= 0.8 x n (1.6x for 2 workers);
             'procs' is the most child processes seen: 0 means the runner ignored the
             worker count and ran everything in this process;
  memory     peak RSS of the whole process tree (launcher + SDK workers) of `stage` run as a
             subprocess on the files and on 4 symlinked copies of each (4x the inputs);
             target: flat, ratio <= 1.3x.
The pipeline always reads one glob over a temporary folder of symlinks to exactly the files
the loops read. Outputs go to temporary folders, removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

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
from pipeline import stage  # noqa: E402
from transforms.crop import fit_and_crop  # noqa: E402
from transforms.decode import ImageError, decode_image  # noqa: E402
from transforms.fileio import read_bytes  # noqa: E402
from transforms.staging import stage_image  # noqa: E402

log = logging.getLogger("bench.stage")

DEFAULT_GLOB = "../shared/data/imagenet-samples/*.JPEG"
CIFAR_GLOB = "../shared/data/cifar10/train/*/*.jpg"
PER_WORKER_TARGET = 0.60  # pipeline rate per worker / bare-loop rate
SPEEDUP_TARGET = 0.80  # rate(n) / rate(1) >= SPEEDUP_TARGET * n, i.e. 1.6x for 2 workers
MEMORY_TARGET = 1.30  # peak RSS at 4x the inputs / peak RSS at 1x
MEMORY_COPIES = 4
WARMUP_FILES = 8

# Runs the stage job in a fresh interpreter (the memory test measures that process tree).
RUNNER = """
import argparse, logging, sys
sys.path.insert(0, sys.argv[1])
from pipeline import stage
logging.basicConfig(level=logging.WARNING)
p = argparse.ArgumentParser()
stage.add_arguments(p)
args, rest = p.parse_known_args(sys.argv[2:])
stage.run(args, rest)
"""


# ---------------------------------------------------------------- single-process loops


def bare_rate(files: list[str], size: int, label: str) -> tuple[float, int]:
    """Images/s of read + draft decode + RGB + fit + centre crop; (rate, undecodable files)."""
    errors = 0
    start = time.perf_counter()
    for f in tqdm(files, desc=label, unit="img", leave=False):
        try:
            fit_and_crop(decode_image(read_bytes(f), draft_size=size).rgb, size)
        except ImageError:
            errors += 1
    return len(files) / (time.perf_counter() - start), errors


def stage_image_rate(files: list[str], size: int) -> tuple[float, float]:
    """(images/s of transforms.staging.stage_image after its first call, first call in s)."""
    cfg = stage.config_from_args(parse_stage_args([files[0], "unused", "--size", str(size)]))

    def one(f: str) -> None:
        try:
            stage_image(f, read_bytes(f), cfg)
        except ImageError:
            pass  # filtered or bad: stage_image did the work of deciding that

    start = time.perf_counter()
    one(files[0])
    first = time.perf_counter() - start
    rest = files[1:] or files
    start = time.perf_counter()
    for f in tqdm(rest, desc="stage_image loop", unit="img", leave=False):
        one(f)
    return len(rest) / (time.perf_counter() - start), first


# ---------------------------------------------------------------- pipeline runs


def parse_stage_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    stage.add_arguments(p)
    return p.parse_args(argv)


def beam_args(workers: int) -> list[str]:
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers}",
    ]


def stage_argv(pattern: str, out_dir: str, size: int) -> list[str]:
    return [pattern, out_dir, "--size", str(size)]


def pipeline_rate(
    pattern: str, n_files: int, size: int, workers: int, work: str, interval: float
) -> dict:
    """Run `stage` in-process with `workers` workers; images/s over the whole wall time."""
    out_dir = tempfile.mkdtemp(prefix=f"stage-w{workers}-", dir=work)
    args = parse_stage_args(stage_argv(pattern, out_dir, size))
    log.warning("stage pipeline, %d worker(s), %d files ...", workers, n_files)
    runner_log = RunnerLog()
    logger = logging.getLogger(RUNNER_LOGGER)
    old_level = logger.level
    logger.addHandler(runner_log)
    logger.setLevel(logging.INFO)
    try:
        with TreeSampler(os.getpid(), interval) as sampler:
            start = time.perf_counter()
            stage.run(args, beam_args(workers))
            seconds = time.perf_counter() - start
    finally:
        logger.removeHandler(runner_log)
        logger.setLevel(old_level)
    stats = read_stats(out_dir)
    if stats.get("total") != n_files:
        log.warning("stats.json counts %s inputs, expected %d", stats.get("total"), n_files)
    return {
        "workers": workers,
        "seconds": seconds,
        "rate": n_files / seconds,
        "children": sampler.processes - 1,
        "engine": runner_log.engine(),
        "outcomes": stats.get("outcomes", {}),
    }


def peak_memory(pattern: str, size: int, workers: int, work: str, interval: float) -> dict:
    """Run `stage` as a subprocess and sample the RSS of its process tree until it exits."""
    out_dir = tempfile.mkdtemp(prefix="stage-mem-", dir=work)
    cmd = [
        sys.executable,
        "-c",
        RUNNER,
        str(ROOT),
        *stage_argv(pattern, out_dir, size),
        *beam_args(workers),
    ]
    log.warning("stage subprocess for peak memory: %s", pattern)
    sampler, seconds = run_sampled(cmd, ROOT, out_dir + ".stderr", interval, "stage")
    return {
        "peak": sampler.peak,
        "processes": sampler.processes,
        "seconds": seconds,
        "total": read_stats(out_dir).get("total"),
    }


# ---------------------------------------------------------------- report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/stage.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run it on an idle machine: the numbers mean little while anything else "
        "competes for the cores.",
    )
    parser.add_argument(
        "pattern", nargs="?", default=DEFAULT_GLOB, help=f"glob of images (default {DEFAULT_GLOB})"
    )
    parser.add_argument("--limit", type=int, help="use only the first N files (quick checks)")
    parser.add_argument("--size", type=int, default=224, help="crop side (default 224)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="--direct_num_workers values to time (default: 1 2)",
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
    parser.add_argument(
        "--cifar", action="store_true", help=f"also time {CIFAR_GLOB} (50,000 small files)"
    )
    parser.add_argument(
        "--cifar-sample",
        type=int,
        default=5000,
        help="files the CIFAR bare loop reads (default 5000)",
    )
    parser.add_argument(
        "--cifar-workers", type=int, default=2, help="workers of the CIFAR pipeline run (default 2)"
    )
    parser.add_argument("--work-dir", help="where temporary inputs/outputs go (default $TMPDIR)")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target FAILs")
    parser.add_argument("--log-level", default="WARNING", help="default WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    project_on_pythonpath()  # SDK worker subprocesses must import the project
    load = os.getloadavg()
    files = list_files(a.pattern, a.limit)
    lines: list[str] = []
    notes: list[str] = []
    failed = False

    with tempfile.TemporaryDirectory(prefix="bench-stage-", dir=a.work_dir) as work:
        # -- throughput
        pattern = link_folder(files, os.path.join(work, "in-1x"))
        warm_cache(files)
        bare, bare_errors = bare_rate(files, a.size, "bare loop")
        full, first_call = stage_image_rate(files, a.size)
        if not a.no_warmup:
            warm = files[:WARMUP_FILES]
            log.warning("warm-up run (untimed) on %d files", len(warm))
            pipeline_rate(
                link_folder(warm, os.path.join(work, "in-warmup")),
                len(warm),
                a.size,
                1,
                work,
                a.sample_interval,
            )
        runs = [
            pipeline_rate(pattern, len(files), a.size, w, work, a.sample_interval)
            for w in a.workers
        ]
        rate_1 = next((r["rate"] for r in runs if r["workers"] == 1), None)

        lines.append(
            f"input     {len(files)} files  {resolve_glob(a.pattern)}"
            + (f"  (--limit {a.limit})" if a.limit else "")
        )
        lines.append(
            f"machine   {os.cpu_count()} CPUs; load average before the runs "
            f"{' '.join(f'{x:.2f}' for x in load)} (should be ~0)"
        )
        lines.append(f"size      {a.size}")
        lines.append("")
        lines.append(
            f"{'run':<24}{'img/s':>8}{'s':>7}  {'procs':>5}  {'per worker/bare':<23}"
            f"{'speed-up vs 1':<21}engine"
        )
        lines.append(
            f"{'bare loop':<24}{bare:>8.1f}{len(files) / bare:>7.1f}  {'-':>5}  "
            f"{'1.00':<23}{'':<21}" + (f"({bare_errors} undecodable)" if bare_errors else "")
        )
        lines.append(
            f"{'stage_image loop':<24}{full:>8.1f}{len(files) / full:>7.1f}  {'-':>5}  "
            f"{full / bare:<23.2f}{'':<21}first call {first_call:.2f} s"
        )
        for r in runs:
            n = r["workers"]
            per = r["rate"] / (n * bare)
            ok_per = per >= PER_WORKER_TARGET
            cell_per = f"{per:.2f} {verdict(ok_per)} (>= {PER_WORKER_TARGET:.2f})"
            cell_up, ok_up = "", True
            if rate_1 and n > 1:
                up = r["rate"] / rate_1
                ok_up = up >= SPEEDUP_TARGET * n
                cell_up = f"{up:.2f}x {verdict(ok_up)} (>= {SPEEDUP_TARGET * n:.1f}x)"
            failed |= not (ok_per and ok_up)
            lines.append(
                f"{f'stage, {n} worker(s)':<24}{r['rate']:>8.1f}{r['seconds']:>7.1f}  "
                f"{r['children']:>5}  {cell_per:<23}{cell_up:<21}{r['engine']}"
            )
            if n > 1 and r["children"] < 1:
                notes.append(
                    f"--direct_num_workers={n} had no effect: no worker process was "
                    f"started ({r['engine']} ran the job in this process)"
                )
        if runs:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(runs[-1]["outcomes"].items()))
            lines.append(f"outcomes  {outcomes}")

        # -- memory
        if not a.no_memory:
            small = peak_memory(pattern, a.size, a.memory_workers, work, a.sample_interval)
            big_pattern = link_folder(files, os.path.join(work, "in-4x"), MEMORY_COPIES)
            big = peak_memory(big_pattern, a.size, a.memory_workers, work, a.sample_interval)
            ratio = big["peak"] / max(small["peak"], 1)
            ok_mem = ratio <= MEMORY_TARGET
            failed |= not ok_mem
            lines.append("")
            lines.append(
                f"peak RSS of the process tree, stage as a subprocess, {a.memory_workers} workers"
            )
            for k, m in ((1, small), (MEMORY_COPIES, big)):
                lines.append(
                    f"  {len(files) * k:>6} inputs  {mib(m['peak']):>10}  "
                    f"{m['processes']} process(es)  {m['seconds']:6.1f} s  "
                    f"(stats.json total {m['total']})"
                )
            lines.append(
                f"  ratio {MEMORY_COPIES}x / 1x   {ratio:.2f}x  {verdict(ok_mem)} "
                f"(<= {MEMORY_TARGET:.1f}x)"
            )

        # -- CIFAR: many small files
        if a.cifar:
            cifar = list_files(CIFAR_GLOB, a.limit)
            cifar_pattern = link_folder(cifar, os.path.join(work, "in-cifar"))
            warm_cache(cifar)
            sample = cifar[: a.cifar_sample]
            cbare, _ = bare_rate(sample, a.size, "bare loop (CIFAR)")
            crun = pipeline_rate(
                cifar_pattern, len(cifar), a.size, a.cifar_workers, work, a.sample_interval
            )
            per = crun["rate"] / (a.cifar_workers * cbare)
            ok = per >= PER_WORKER_TARGET
            failed |= not ok
            lines.append("")
            lines.append(f"CIFAR-10  {len(cifar)} files  {resolve_glob(CIFAR_GLOB)}")
            lines.append(f"  bare loop, first {len(sample)} files   {cbare:8.1f} img/s")
            lines.append(
                f"  stage, {a.cifar_workers} worker(s), all files  {crun['rate']:8.1f} "
                f"img/s  {crun['seconds']:.1f} s  procs {crun['children']}  "
                f"per worker/bare {per:.2f} {verdict(ok)} "
                f"(>= {PER_WORKER_TARGET:.2f})  {crun['engine']}"
            )

    print("\n==== chromabeam stage benchmark " + "=" * 58)
    print("\n".join(lines))
    for note in notes:
        print(f"NOTE: {note}")
    print("=" * 90)
    print(f"overall: {'FAIL' if failed else 'PASS'}")
    return 1 if failed and a.check else 0


if __name__ == "__main__":
    sys.exit(main())
