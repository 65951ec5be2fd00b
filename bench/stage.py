"""Benchmark of the `stage` job: throughput against a bare Python loop, scaling over workers,
and peak memory as the input grows.

    python bench/stage.py                 # 1000 ImageNet samples as 4000 inputs, 1 and 2 workers
    python bench/stage.py --limit 60 --inputs 240   # quick check on a few files
    python bench/stage.py --cifar         # + the CIFAR-10 files (--cifar-files) on 2 workers

What it measures, all in one run (globs are relative to the repository root):
  bare       a single-process loop doing the core of `stage` per image: read the bytes,
             decode with JPEG draft to --size (transforms.decode.decode_image), convert to RGB,
             fit the short side to --size and centre-crop (transforms.crop.fit_and_crop);
  stage_image  the same loop over the whole per-image function of `stage`
             (transforms.staging.stage_image = stage_batch of one: + filters, Lab, histogram,
             hashing); its first call, which builds the ab-bin tables, is reported apart:
             every worker pays it;
  stage_batch  the same files through transforms.staging.stage_batch in batches of
             --batch-files (what the job runs: the array maths once per batch);
  profile    cProfile of the stage_batch loop on --profile-files files, split into decode,
             resize + crop, grayscale/toned filter, Lab (+ YUV), the compiled pass for the
             L / ab bytes + histogram + mean chroma, hashing (numba's compiled functions
             show in cProfile as functions of their files); Parquet writing (the job's own
             shard writer) timed on the rows it produced;
  worker     the job itself in this process on one worker thread (in_memory) over the files,
             stage_batch and the shard writer timed where the job calls them: ms per input
             of each, and the rest (Beam's per-element work, reading, accounting);
  pipeline   the whole `stage` job (pipeline.stage.run, in-process, DirectRunner with
             --direct_running_mode --mode, the job's default) for each --workers count on --inputs
             inputs (the files repeated through symlinks), after one untimed warm-up run on
             a few files. From the progress ticks the workers write (pipeline.progress):
             start-up = seconds to the first finished input; steady = the rate between 10%
             and 90% of the inputs; wall = inputs / whole wall time. Targets on steady:
             per worker = steady / (workers x bare rate) >= 0.60, the bare rate of the
             bare loop run again just before and just after the run, the faster of the
             two (this machine's speed drifts by a third within minutes); speed-up = steady(n) /
             steady(1) >= 0.85 x n (1.7x for 2 workers); `--space yuv` on the most workers
             runs at the Lab rate (>= 0.9x). 'procs' is the most child processes
             seen: 0 means the runner ignored the worker count and ran all in this process.
             Over each run's steady window, the CPU per input of its SDK workers and of
             this process (/proc, sampled every --sample-interval s), and the share of the
             window the workers were on a CPU (under 100% per worker: they waited);
             the speed-up split into the cores the workers kept busy and the CPU per
             input, with the most the machine's cores allow at one worker's CPU per input
             (one worker's shard writer thread runs beside it: over a core);
  at once    after each run on n > 1 workers, the bare loop in n processes at once, all busy
             for the same time: what n busy cores of this machine give the bare loop (its
             ratio to n single loops is the machine's own scaling: two vCPUs that share a
             core, or a noisy neighbour, show here), printed beside the targets as
             information; the targets stay against the single-core loop; and the job's
             own work without Beam (stage_batch over batches of --batch-files, Parquet
             shards written on a writer thread, as the job does) in n processes at once:
             the most n workers could reach on this machine were Beam free, so what is
             left splits into Beam's share and the per-image maths + Parquet (each
             process warms up on one batch, untimed, before the timed loops start);
  memory     peak RSS of the whole process tree (launcher + SDK workers) of `stage` run as a
             subprocess on the files and on 4 symlinked copies of each (4x the inputs);
             target: flat, ratio <= 1.3x; and the CPU seconds (user, system) of each
             process of those two trees: their difference over the 3x more inputs is the
             CPU per input of the SDK workers and of the launcher with start-up cancelled,
             printed beside the Beam-free stage loop's (what is left is Beam's);
  CIFAR      (--cifar) many small files: steady rate on --cifar-workers workers against the
             bare loop on one core (the fastest of 3 loops over --cifar-sample files before
             the run and one after it), target
             >= 0.5x, at each --cifar-size (default 32, CIFAR's own size, and --size);
             the bare loop in --cifar-workers processes at once beside it (information);
No GPU is used: `stage` is CPU work (decode, resize, colour maths, Parquet).
The pipeline always reads one glob over a temporary folder of symlinks to exactly the files
the loops read. Outputs go to temporary folders, removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    RUNNER_LOGGER,
    RunnerLog,
    TickSampler,
    Timed,
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
from pipeline.options import DEFAULT_RUNNER  # noqa: E402
from transforms.crop import fit_and_crop  # noqa: E402
from transforms.decode import ImageError, decode_image  # noqa: E402
from transforms.fileio import read_bytes  # noqa: E402
from transforms.staging import ShardFile, stage_batch  # noqa: E402
from transforms.threads import limit_threads  # noqa: E402

log = logging.getLogger("bench.stage")

DEFAULT_GLOB = "../shared/data/imagenet-samples/*.JPEG"
CIFAR_GLOB = "../shared/data/cifar10/train/*/*.jpg"
PER_WORKER_TARGET = 0.60  # pipeline rate per worker / bare-loop rate
SPEEDUP_TARGET = 0.85  # rate(n) / rate(1) >= SPEEDUP_TARGET * n, i.e. 1.7x for 2 workers
CIFAR_TARGET = 0.50  # CIFAR pipeline rate on --cifar-workers / bare-loop rate on one core
PARQUET_PROFILE_FILES = 500  # files whose kept rows profile_breakdown writes (75 MB at 224 px)
CIFAR_BARE_REPEATS = 3  # CIFAR's bare loop: the fastest of this many runs over the sample
SPACE_TARGET = 0.90  # --space yuv rate / --space lab rate (same workers)
STEADY_FROM, STEADY_TO = 0.10, 0.90  # share of inputs done between which the rate is steady
MEMORY_TARGET = 1.30  # peak RSS at 4x the inputs / peak RSS at 1x
MEMORY_COPIES = 4
WARMUP_FILES = 8
BARE_AT_ONCE_SECONDS = 5.0  # least duration of the bare loop run in n processes at once
# ... and of the Beam-free stage loop: long enough for several shards (one per --shard-mb of
# rows, about 430 rows at 224 px) so that the last one, written after the deadline, is small
STAGE_AT_ONCE_SECONDS = 12.0

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


def bare_one(path: str, size: int) -> bool:
    """The bare loop's work on one file: read + draft decode + RGB + fit + centre crop;
    False if the file is undecodable."""
    try:
        fit_and_crop(decode_image(read_bytes(path), draft_size=size).image, size)
    except ImageError:
        return False
    return True


def bare_rate(files: list[str], size: int, label: str) -> tuple[float, int]:
    """Images/s of bare_one over the files; (rate, undecodable files)."""
    errors = 0
    start = time.perf_counter()
    for f in tqdm(files, desc=label, unit="img", leave=False):
        errors += not bare_one(f, size)
    return len(files) / (time.perf_counter() - start), errors


class StageWork:
    """The job's per-file work without Beam, for one process of concurrent_rate: stage_batch
    over a batch of files (read included), the kept rows given to the job's own shard writer
    (stage.shard_writer, as stage.build sets it up: the job's --shard-rows / --shard-mb
    defaults, or `shard_rows`; row groups written on one writer thread), into `out_dir`,
    each shard removed once written (`open_shard`: how a shard file is made). `flush()`
    writes the rows left, as the end of a bundle does."""

    def __init__(self, size: int, out_dir: str, shard_rows: int | None = None, open_shard=None):
        argv = ["unused", "unused", "--size", str(size)]
        if shard_rows:
            argv += ["--shard-rows", str(shard_rows)]
        args = parse_stage_args(argv)
        self.cfg = stage.config_from_args(args)
        self.writer = stage.shard_writer(args, out_dir, open_shard or RemovedShard)
        self.writer.setup()
        self.writer.start_bundle()

    def __call__(self, files: list[str]) -> None:
        rows = stage_batch([(f, read_bytes(f)) for f in files], self.cfg)
        list(self.writer.process([r for r in rows if isinstance(r, dict)]))

    def flush(self) -> None:
        """Write the rows left, once the write in flight has ended (the bundle's end)."""
        list(self.writer.finish_bundle())
        self.writer.start_bundle()


class RemovedShard(ShardFile):
    """StageWork's shard file: staging.ShardFile, removed once written."""

    def close(self) -> str:
        uri = super().close()
        os.remove(uri)
        return uri


def write_as_the_job(rows: list[dict], out_dir: str) -> list[str]:
    """Write rows as shards through the job's own shard writer (stage.shard_writer, one
    bundle: row groups of ROW_GROUP_BYTES on its writer thread, waited for at the end); the
    shards' URIs."""
    writer = stage.shard_writer(parse_stage_args(["unused", "unused"]), out_dir)
    writer.setup()
    writer.start_bundle()
    try:
        return list(writer.process(rows)) + [w.value for w in writer.finish_bundle()]
    finally:
        writer.teardown()


def _call(fn, *args):
    return fn(*args)


class TimedShard(ShardFile):
    """staging.ShardFile whose row-group writes and close are timed (TIMER's totals)."""

    TIMER = Timed("shard writes", _call)

    def write(self, rows: list[dict]) -> None:
        self.TIMER(super().write, rows)

    def close(self) -> str:
        return self.TIMER(super().close)


def _bare_files(files: list[str], size: int) -> None:
    for f in files:
        bare_one(f, size)


def _loop_until(files: list[str], size: int, work: str, start, seconds: float, counts) -> None:
    """One process of concurrent_rate: after `start` (a Barrier), the loop `work` ('bare':
    bare_one per file; 'stage': StageWork per batch of the job's --batch-files) over the
    files again and again for `seconds`, with numpy's BLAS on the threads the job's workers
    give it (stage.BLAS_THREADS); the files done (undecodable ones included, as in bare_rate)
    and the seconds taken, with the process's user and system CPU seconds over them (its
    threads together: the shard writer's too), go on `counts` (a Queue): StageWork's last
    shard, of the rows left at the deadline, is written and timed. One untimed pass over the
    first batch comes before the barrier (the first call builds lookup tables and imports)."""
    limit_threads(stage.BLAS_THREADS)  # as in the job's workers
    with tempfile.TemporaryDirectory(prefix="bench-stage-loop-") as out_dir:
        if work == "stage":
            batch, step = parse_stage_args(["a", "b"]).batch_files, StageWork(size, out_dir)
        else:
            batch, step = 1, partial(_bare_files, size=size)
        step(files[:batch])  # warm-up, untimed: the first call builds lookup tables
        if work == "stage":
            step.flush()
        start.wait()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for i in range(0, len(files), batch):
                step(files[i : i + batch])
                done += len(files[i : i + batch])
                if time.perf_counter() >= deadline:
                    break
        if work == "stage":  # the rows left: their shard is part of the work timed
            step.flush()
        taken = time.perf_counter() - (deadline - seconds)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        user, system = cpu.ru_utime - cpu_before.ru_utime, cpu.ru_stime - cpu_before.ru_stime
        counts.put((done, taken, user, system))


class LoopRun(NamedTuple):
    """concurrent_loop's result: images/s of all processes, and the CPU ms per image they
    used (user, system; summed over the processes and their threads)."""

    rate: float
    user_ms: float
    system_ms: float


def concurrent_rate(
    files: list[str], size: int, processes: int, seconds: float, work: str = "bare"
) -> float:
    """Images/s of concurrent_loop."""
    return concurrent_loop(files, size, processes, seconds, work).rate


def concurrent_loop(
    files: list[str], size: int, processes: int, seconds: float, work: str = "bare"
) -> LoopRun:
    """Images/s and CPU per image (LoopRun) of a loop (`work`: 'bare', the bare loop, or
    'stage', the job's stage_batch + Parquet on a writer thread without Beam: StageWork) in
    `processes` processes at once, all busy for the same `seconds` (started together on a
    barrier): what this machine's cores give when all are busy, against which 'n workers' can
    be read beside the single-core target."""
    ctx = multiprocessing.get_context("spawn")
    start, counts = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_loop_until, args=(files, size, work, start, seconds, counts))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    results = [counts.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    return LoopRun(
        done / max(r[1] for r in results),
        1000 * sum(r[2] for r in results) / max(done, 1),
        1000 * sum(r[3] for r in results) / max(done, 1),
    )


def stage_loop_rate(files: list[str], size: int, batch: int) -> tuple[float, float]:
    """(images/s of transforms.staging.stage_batch over the files in batches of `batch` (as
    the job's --batch-files; 1: stage_image, which is stage_batch of one), read included,
    after its first call; that first call in s: it builds the ab-bin tables)."""
    cfg = stage.config_from_args(parse_stage_args([files[0], "unused", "--size", str(size)]))
    start = time.perf_counter()
    stage_batch([(files[0], read_bytes(files[0]))], cfg)
    first = time.perf_counter() - start
    rest = files[1:] or files
    start = time.perf_counter()
    for i in tqdm(range(0, len(rest), batch), desc=f"stage_batch loop ({batch})", leave=False):
        stage_batch([(f, read_bytes(f)) for f in rest[i : i + batch]], cfg)
    return len(rest) / (time.perf_counter() - start), first


# ---------------------------------------------------------------- pipeline runs


def parse_stage_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    stage.add_arguments(p)
    return p.parse_args(argv)


def beam_args(workers: int, mode: str = stage.LOCAL_MODE) -> list[str]:
    # The job's default runner: the FnApiRunner named directly (DirectRunner would first try
    # to download Prism, a second of start-up, and fail offline).
    return [
        f"--runner={DEFAULT_RUNNER}",
        f"--direct_running_mode={mode}",
        f"--direct_num_workers={workers}",
    ]


def stage_argv(pattern: str, out_dir: str, size: int, space: str = "lab") -> list[str]:
    return [pattern, out_dir, "--size", str(size), "--space", space]


def profile_breakdown(files: list[str], size: int, work: str, batch: int = 1) -> dict[str, float]:
    """Milliseconds per image of each part of stage_batch over the files in batches of `batch`
    (cProfile, cumulative time of the functions that do it; rows starting with two spaces are
    parts of the row above), and of writing the kept rows of the first PARQUET_PROFILE_FILES
    files as one Parquet shard.

    Those rows are staged and written first (which also builds the job's tables and imports
    before the profile) and dropped before the profiled loop, which drops its own rows as the
    job does (its writer writes and frees each row group): holding 2,000 rows of 224 px
    (300 MB) made every batch's temporaries fault in fresh pages, 51 faults and 0.89 ms of
    system CPU per CIFAR-10 file: 1.8x the time of the same profiled loop without them."""
    import cProfile
    import pstats

    cfg = stage.config_from_args(parse_stage_args([files[0], "unused", "--size", str(size)]))
    datas = [(f, read_bytes(f)) for f in files]
    rows = [r for r in stage_batch(datas[:PARQUET_PROFILE_FILES], cfg) if isinstance(r, dict)]
    parquet_ms = parquet_ms_per_row(rows, work)
    del rows
    prof = cProfile.Profile()
    prof.enable()
    for i in range(0, len(datas), batch):
        stage_batch(datas[i : i + batch], cfg)
    prof.disable()
    stats = pstats.Stats(prof).stats
    parts = {
        "decode": ["decode_image"],
        # the crop and the filter's thumbnail (fit_and_crop calls it too)
        "resize + crop (+ thumbnail)": ["fit_and_crop_image"],
        "filter (classify_tone_batch)": ["classify_tone_batch"],
        "  tone residuals": ["batch_tone_residuals"],
        "  smoothed tone residuals": ["batch_smooth_tone_residuals"],
        # rgb8_to_lab_planes (the filter's thumbnails) is counted by the three it calls
        "Lab / YUV": [
            "rgb8_lab_f",
            "lab_f_to_l",
            "lab_f_to_ab",
            "rgb_to_lab",
        ],
        # the compiled passes: quantized L and ab, their histogram, mean chroma (and with
        # --space yuv the Y / UV bytes, from the crops: their Lab is still converted above)
        "L / ab bytes + histogram + mean chroma": ["lab_pixel_columns", "yuv_pixel_columns"],
        "hash": [
            "<built-in method _hashlib.openssl_sha256>",
            "<method 'hexdigest' of '_hashlib.HASH' objects>",
            "uri_key",
        ],
        "stage_batch total": ["stage_batch"],
    }
    cum: dict[str, float] = {}
    for (_, _, name), (_, _, _, ct, _) in stats.items():
        cum[name] = cum.get(name, 0.0) + ct
    n = len(datas)
    out = {k: 1e3 * sum(cum.get(f, 0.0) for f in names) / n for k, names in parts.items()}
    out["other (in stage_batch)"] = out["stage_batch total"] - sum(
        v for k, v in out.items() if k != "stage_batch total" and not k.startswith("  ")
    )
    out["Parquet per kept row"] = parquet_ms
    return out


def parquet_ms_per_row(rows: list[dict], work: str) -> float:
    """Milliseconds per row of writing rows as the job does (write_as_the_job), the second of
    two writes: a worker's first shard also pays one-off set-up."""
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        if rows:
            write_as_the_job(rows, tempfile.mkdtemp(prefix="stage-prof-", dir=work))
        seconds = time.perf_counter() - start
    return 1e3 * seconds / max(len(rows), 1)


def worker_breakdown(pattern: str, n_files: int, size: int, work: str) -> dict[str, float]:
    """Milliseconds per input inside one worker of the real job: `stage` in this process on
    one worker thread (--direct_running_mode=in_memory), with stage_batch and the shard writer
    timed where the job calls them; the rest of the time from the first stage_batch call to
    the last shard written is Beam's per-element work (input, outputs, counters, ticks, the
    histogram sum), reading the bytes and waiting on the shard writer, which runs on the
    worker's writer thread (its own time is shown apart: it overlaps the staging)."""
    out_dir = tempfile.mkdtemp(prefix="stage-prof-run-", dir=work)
    timed_stage = Timed("stage_batch", stage.stage_batch)
    timed_write = TimedShard.TIMER  # its writes and closes
    timed_write.reset()
    saved = stage.stage_batch, stage.ShardFile
    stage.stage_batch, stage.ShardFile = timed_stage, TimedShard
    log.warning("stage in this process, 1 worker thread, %d files (timed parts) ...", n_files)
    try:
        stage.run(
            parse_stage_args(stage_argv(pattern, out_dir, size)),
            [
                f"--runner={DEFAULT_RUNNER}",
                "--direct_running_mode=in_memory",
                "--direct_num_workers=1",
            ],
        )
    finally:
        stage.stage_batch, stage.ShardFile = saved
    seconds, _, first, last = timed_stage.totals()
    end = max(last or 0.0, timed_write.totals()[3] or 0.0)  # the last row written
    n = max(n_files, 1)
    wall = 1e3 * (end - (first or end)) / n
    stage_ms = 1e3 * seconds / n
    return {
        "stage_batch (per file)": stage_ms,
        # the shard writer runs on the worker's writer thread, beside the next batches
        "Beam per element + read + waits on the writer": wall - stage_ms,
        "per input in the worker": wall,
        "Parquet on the writer thread (overlapped)": 1e3 * timed_write.totals()[0] / n,
    }


def pipeline_rate(
    pattern: str,
    n_files: int,
    size: int,
    workers: int,
    work: str,
    interval: float,
    space: str = "lab",
    mode: str = stage.LOCAL_MODE,
) -> dict:
    """Run `stage` in-process with `workers` workers: wall rate, start-up and steady rate."""
    out_dir = tempfile.mkdtemp(prefix=f"stage-w{workers}-", dir=work)
    args = parse_stage_args(stage_argv(pattern, out_dir, size, space))
    log.warning("stage pipeline, %d worker(s), %d files, %s ...", workers, n_files, space)
    runner_log = RunnerLog()
    logger = logging.getLogger(RUNNER_LOGGER)
    old_level = logger.level
    logger.addHandler(runner_log)
    logger.setLevel(logging.INFO)
    try:
        with (
            TreeSampler(os.getpid(), interval, cpu=True) as sampler,
            TickSampler(stage.JOB) as ticks,
        ):
            start = time.perf_counter()
            stage.run(args, beam_args(workers, mode))
            seconds = time.perf_counter() - start
    finally:
        logger.removeHandler(runner_log)
        logger.setLevel(old_level)
    stats = read_stats(out_dir)
    if stats.get("total") != n_files:
        log.warning("stats.json counts %s inputs, expected %d", stats.get("total"), n_files)
    steady = ticks.steady(n_files, STEADY_FROM, STEADY_TO)
    return {
        "steady_cpu": steady_cpu(sampler, ticks, n_files),
        "workers": workers,
        "space": space,
        "seconds": seconds,
        "wall_rate": n_files / seconds,
        "startup": ticks.first(),
        "rate": steady or n_files / seconds,  # steady state (wall rate if too few ticks)
        "children": sampler.processes - 1,
        "engine": runner_log.engine() if runner_log.messages else "FnApiRunner",
        "outcomes": stats.get("outcomes", {}),
    }


def steady_cpu(sampler: TreeSampler, ticks: TickSampler, n_files: int) -> dict | None:
    """CPU ms per input of each process role over a run's steady window (the inputs from
    STEADY_FROM to STEADY_TO done): {"roles": {role: (user, system)}, "seconds": the
    window's length}; None where the samples do not cover it. 'launcher' is this process:
    the runner and the bench's own samplers."""
    win = ticks.window(n_files, STEADY_FROM, STEADY_TO)
    used = None if win is None else sampler.cpu_between(win[0][0], win[1][0])
    if not used or win[1][1] <= win[0][1]:
        return None
    n = win[1][1] - win[0][1]
    return {
        "roles": {role: (1000 * u / n, 1000 * s / n) for role, (u, s) in used.items()},
        "seconds": win[1][0] - win[0][0],
    }


def peak_memory(
    pattern: str, size: int, workers: int, work: str, interval: float, mode: str = stage.LOCAL_MODE
) -> dict:
    """Run `stage` as a subprocess and sample the RSS and CPU seconds of its process tree
    until it exits (`cpu`: TreeSampler.cpu_by_role)."""
    out_dir = tempfile.mkdtemp(prefix="stage-mem-", dir=work)
    cmd = [
        sys.executable,
        "-c",
        RUNNER,
        str(ROOT),
        *stage_argv(pattern, out_dir, size),
        *beam_args(workers, mode),
    ]
    log.warning("stage subprocess for peak memory: %s", pattern)
    sampler, seconds = run_sampled(cmd, ROOT, out_dir + ".stderr", interval, "stage", cpu=True)
    return {
        "cpu": sampler.cpu_by_role(),
        "peak": sampler.peak,
        "processes": sampler.processes,
        "seconds": seconds,
        "total": read_stats(out_dir).get("total"),
    }


# ---------------------------------------------------------------- report


def cpu_lines(small: dict, big: dict, extra_inputs: int, loop: LoopRun | None) -> list[str]:
    """CPU ms per input of the job's processes from two peak_memory runs (the bigger one's
    CPU minus the smaller's, over the `extra_inputs` it had: start-up cancels), per role and
    user / system, beside the Beam-free stage loop's (`loop`, None when not measured): the
    split of a worker's cost into the job's own work, Beam and the kernel."""
    out = [
        f"CPU per input, ms (the {extra_inputs} more inputs of the bigger run; start-up "
        "cancels)     user  system   total"
    ]
    total = 0.0
    for role in ("worker", "launcher", "other"):
        u1, s1 = small["cpu"].get(role, (0.0, 0.0))
        u2, s2 = big["cpu"].get(role, (0.0, 0.0))
        user, system = 1000 * (u2 - u1) / extra_inputs, 1000 * (s2 - s1) / extra_inputs
        if role == "other" and not (user or system):
            continue
        total += user + system
        name = {"worker": "SDK workers", "launcher": "launcher (runner)"}.get(role, role)
        out.append(f"  {name:<70}{user:>6.2f}{system:>8.2f}{user + system:>8.2f}")
    if loop is not None:
        own = loop.user_ms + loop.system_ms
        out.append(
            f"  {'stage loop without Beam (the same processes at once)':<70}"
            f"{loop.user_ms:>6.2f}{loop.system_ms:>8.2f}{own:>8.2f}"
        )
        out.append(f"  {'Beam and the rest (job - loop)':<70}{'':>14}{total - own:>8.2f}")
    return out


ROLE_LABELS = {"worker": "SDK workers", "launcher": "launcher (runner + bench)"}


def worker_cores(run: dict) -> float | None:
    """CPU seconds per second the run's SDK workers used over its steady window (the cores
    they kept busy): their CPU per input times the steady rate; None where not sampled."""
    cpu = run.get("steady_cpu")
    if not cpu or "worker" not in cpu["roles"]:
        return None
    return sum(cpu["roles"]["worker"]) / 1000 * run["rate"]


def steady_cpu_lines(runs: list[dict]) -> list[str]:
    """CPU ms per input of each pipeline run's steady window (steady_cpu), per role, with the
    share of the window its workers were on a CPU: what the workers' time goes to, and how
    much of it they waited."""
    out = [
        "CPU per input in each run's steady state (the window of its steady rate), ms"
        "                user  system   total"
    ]
    for r in runs:
        cpu = r.get("steady_cpu")
        if not cpu:
            continue
        name = f"stage{' --space yuv' if r['space'] != 'lab' else ''}, {r['workers']} worker(s)"
        for role in ("worker", "launcher", "other"):
            if role not in cpu["roles"]:
                continue
            user, system = cpu["roles"][role]
            if role == "other" and abs(user) + abs(system) < 0.005:
                continue
            label = ROLE_LABELS.get(role, role)
            extra = ""
            if role == "worker":  # the cores they kept busy, over the workers
                busy = worker_cores(r) / max(r["workers"], 1)
                extra = f"  workers on a CPU {100 * busy:.0f}% of the window"
            out.append(
                f"  {name + ': ' + label:<80}{user:>6.2f}{system:>8.2f}{user + system:>8.2f}{extra}"
            )
    return out if len(out) > 1 else []


def speedup_note(one: dict, many: dict, cpus: int) -> str | None:
    """The speed-up of run `many` over the 1-worker run `one`, split into its two factors:
    the cores its workers kept busy (many's over one's) and the CPU per input (one's over
    many's; under 1 where the workers cost more per input side by side), with the most it
    can reach on `cpus` cores at one's CPU per input: cpus / one's cores (one worker's shard
    writer thread runs beside it, so one worker may keep more than a core busy)."""
    c1, cn = worker_cores(one), worker_cores(many)
    if not c1 or not cn:
        return None
    ms1, msn = (sum(r["steady_cpu"]["roles"]["worker"]) for r in (one, many))
    n = many["workers"]
    return (
        f"{n} worker(s) vs 1: {many['rate'] / one['rate']:.2f}x = {cn / c1:.2f}x the cores "
        f"in use ({cn:.2f} vs {c1:.2f}) x {ms1 / msn:.2f} (CPU per input {ms1:.2f} vs "
        f"{msn:.2f} ms); with one worker on {c1:.2f} cores, {cpus} cores give at most "
        f"{min(n, cpus / c1):.2f}x at its CPU per input"
    )


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


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
    parser.add_argument(
        "--inputs",
        type=int,
        default=4000,
        help="inputs of the pipeline runs: the files repeated through symlinks (default 4000)",
    )
    parser.add_argument(
        "--profile-files", type=int, default=200, help="files of the cProfile breakdown (200)"
    )
    parser.add_argument("--no-yuv", action="store_true", help="skip the --space yuv run")
    parser.add_argument("--size", type=int, default=224, help="crop side (default 224)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="--direct_num_workers values to time (default: 1 2)",
    )
    parser.add_argument(
        "--mode",
        choices=["multi_processing", "multi_threading"],
        default=stage.LOCAL_MODE,
        help=f"--direct_running_mode of the pipeline runs (default: the job's, {stage.LOCAL_MODE})",
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
        "--cifar-files",
        type=int,
        help="CIFAR files the pipeline stages (default: all 50,000)",
    )
    parser.add_argument(
        "--cifar-sample",
        type=int,
        default=5000,
        help="files the CIFAR bare loop reads (default 5000)",
    )
    parser.add_argument(
        "--cifar-size",
        type=int,
        nargs="+",
        help="--size of the CIFAR runs, bare loop and stage alike, one run per size (default: "
        "32, CIFAR's native size, where the per-file overhead shows, and --size)",
    )
    parser.add_argument(
        "--batch-files",
        type=int,
        default=32,
        help="stage's --batch-files in the stage_batch loop (the job's default: 32)",
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
        copies = max(1, -(-a.inputs // len(files)))
        n_inputs = copies * len(files)
        big_inputs = link_folder(files, os.path.join(work, "in-many"), copies)
        warm_cache(files)
        bare, bare_errors = bare_rate(files, a.size, "bare loop")
        full, first_call = stage_loop_rate(files, a.size, 1)
        batched, _ = stage_loop_rate(files, a.size, a.batch_files)
        breakdown = profile_breakdown(files[: a.profile_files], a.size, work, a.batch_files)
        in_worker = worker_breakdown(pattern, len(files), a.size, work)
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
        # the bare loop again around each run: each run is held to the faster of the loops
        # just before and just after it, not to one run minutes earlier
        around = [bare_rate(files, a.size, "bare loop (before the runs)")[0]]
        runs = []
        for w in a.workers:
            runs.append(
                pipeline_rate(big_inputs, n_inputs, a.size, w, work, a.sample_interval, mode=a.mode)
            )
            around.append(bare_rate(files, a.size, f"bare loop (after {w} worker(s))")[0])
            if w > 1:  # what w busy cores give this loop, measured beside the run
                seconds = max(BARE_AT_ONCE_SECONDS, len(files) / around[-1])
                runs[-1]["bare_at_once"] = concurrent_rate(files, a.size, w, seconds)
                # ... and the job's own work without Beam: the most n workers could reach
                loop = concurrent_loop(
                    files, a.size, w, max(STAGE_AT_ONCE_SECONDS, seconds), "stage"
                )
                runs[-1]["stage_loop"] = loop
        for r, before, after in zip(runs, around[:-1], around[1:], strict=True):
            r["bare"], r["bare_around"] = max(before, after), (before, after)
        one = next((r for r in runs if r["workers"] == 1), None)  # the 1-worker run
        yuv = None
        if not a.no_yuv and runs:
            w = max(a.workers)
            yuv = pipeline_rate(
                big_inputs, n_inputs, a.size, w, work, a.sample_interval, "yuv", mode=a.mode
            )

        lines.append(
            f"input     {len(files)} files  {resolve_glob(a.pattern)}"
            + (f"  (--limit {a.limit})" if a.limit else "")
            + f"; pipeline runs on {n_inputs} inputs ({copies} symlinks per file)"
        )
        lines.append(
            f"machine   {os.cpu_count()} CPUs; load average before the runs "
            f"{' '.join(f'{x:.2f}' for x in load)} (should be ~0)"
        )
        lines.append(f"size      {a.size}; CPU only (no GPU: stage does no model work)")
        lines.append(f"workers   --direct_running_mode={a.mode}")
        lines.append("")
        lines.append(
            f"profile of stage_batch, {min(a.profile_files, len(files))} files in batches of "
            f"{a.batch_files} "
            "(cProfile, ms per image; cProfile adds its own overhead)"
        )
        for k, v in breakdown.items():
            lines.append(f"  {k:<28}{v:8.2f}")
        lines.append("")
        lines.append(
            f"inside one worker of the job ({len(files)} files, in-process, 1 worker thread; "
            "ms per input, measured where the job calls them)"
        )
        for k, v in in_worker.items():
            lines.append(
                f"  {k:<46}{v:8.2f}  ({100 * v / in_worker['per input in the worker']:.0f}%)"
            )
        lines.append("")
        lines.append(
            "img/s: loops over all files; pipeline runs: steady state (10%-90% of inputs); "
            "start-up = s to the first finished input; wall = inputs / wall time"
        )
        lines.append(
            f"{'run':<24}{'img/s':>8}{'s':>7}  {'procs':>5}  {'per worker/bare':<23}"
            f"{'speed-up vs 1':<21}{'start-up':>8}  {'wall':>6}  engine"
        )
        lines.append(
            f"{'bare loop':<24}{bare:>8.1f}{len(files) / bare:>7.1f}  {'-':>5}  "
            f"{'1.00':<23}{'':<21}" + (f"({bare_errors} undecodable)" if bare_errors else "")
        )
        lines.append(
            f"{'stage_image loop':<24}{full:>8.1f}{len(files) / full:>7.1f}  {'-':>5}  "
            f"{full / bare:<23.2f}{'':<21}first call {first_call:.2f} s"
        )
        lines.append(
            f"{f'stage_batch loop ({a.batch_files})':<24}{batched:>8.1f}"
            f"{len(files) / batched:>7.1f}  {'-':>5}  {batched / bare:<23.2f}"
        )
        for r in runs:
            n = r["workers"]
            per = r["rate"] / (n * r["bare"])
            ok_per = per >= PER_WORKER_TARGET
            cell_per = f"{per:.2f} {verdict(ok_per)} (>= {PER_WORKER_TARGET:.2f})"
            cell_up, ok_up = "", True
            if one and n > 1:
                up = r["rate"] / one["rate"]
                ok_up = up >= SPEEDUP_TARGET * n
                cell_up = f"{up:.2f}x {verdict(ok_up)} (>= {SPEEDUP_TARGET * n:.1f}x)"
                split = speedup_note(one, r, os.cpu_count() or n)
                if split:
                    notes.append(split)
            failed |= not (ok_per and ok_up)
            if "bare_at_once" in r:
                at_once = r["bare_at_once"]
                scaling = at_once / r["bare"]  # the machine's own speed-up on n busy cores
                lines.append(
                    f"{f'bare loop, {n} at once':<24}{at_once:>8.1f}{'':>7}  {n:>5}  "
                    f"{f'{scaling / n:.2f} (the machine)':<23}"
                    f"{f'{scaling:.2f}x one bare loop':<21}"
                )
                notes.append(
                    f"{n} worker(s) against the bare loop run in {n} processes at once just "
                    f"after (all {n} busy: {at_once:.1f} img/s, {scaling:.2f}x one "
                    f"loop): {r['rate'] / at_once:.2f} of what the busy cores give the bare "
                    "loop (information: the targets stay per single-core loop)"
                )
            if "stage_loop" in r:
                loop = r["stage_loop"].rate
                per_loop = loop / (n * r["bare"])
                lines.append(
                    f"{f'stage loop, {n} at once':<24}{loop:>8.1f}{'':>7}  {n:>5}  "
                    f"{f'{per_loop:.2f} (no Beam)':<23}"
                )
                notes.append(
                    f"{n} worker(s) against the job's own work without Beam (stage_batch + "
                    f"Parquet on a writer thread, {n} processes at once: {loop:.1f} img/s, "
                    f"{per_loop:.2f} of the bare loop per process): "
                    f"{r['rate'] / loop:.2f} of it; the rest of the gap to the bare loop is "
                    "the per-image maths and Parquet (profile above)"
                )
            lines.append(
                f"{f'stage, {n} worker(s)':<24}{r['rate']:>8.1f}{r['seconds']:>7.1f}  "
                f"{r['children']:>5}  {cell_per:<23}{cell_up:<21}"
                f"{_secs(r['startup']):>8}  {r['wall_rate']:>6.1f}  {r['engine']}"
            )
            notes.append(
                f"{n} worker(s): {1e3 * n / r['rate']:.2f} ms per input per worker against the "
                f"bare loop's {1e3 / r['bare']:.2f} (per worker/bare {per:.2f}; the bare loop "
                f"just before / after this run: {' / '.join(f'{b:.1f}' for b in r['bare_around'])}"
                " img/s, the faster taken)"
            )
        if n_inputs < 50 * a.batch_files:
            notes.append(
                f"{n_inputs} inputs are only {n_inputs // a.batch_files} batches of "
                f"{a.batch_files}: inputs finish a batch at a time, so the steady rates above "
                "rest on few ticks; trust the wall rates or use --inputs 4000"
            )
        maths = 1e3 / batched - 1e3 / bare  # the two loops ran back to back
        beam_etc = in_worker["Beam per element + read + waits on the writer"]
        notes.append(
            f"left between a worker and the bare loop, {maths + beam_etc:.2f} ms per input: "
            f"the per-image maths beyond decode + crop {maths:.2f} (stage_batch loop - bare "
            "loop; filter, Lab, histogram, hashing: the profile above), Beam per element + "
            f"read + waits on the shard writer {beam_etc:.2f} (inside the worker; the writer "
            f"thread's Parquet, {in_worker['Parquet on the writer thread (overlapped)']:.2f}, "
            "overlaps the staging)"
            + (
                " - below zero: the machine's speed changed between the loops, rerun"
                if maths < 0
                else ""
            )
        )
        if yuv:
            lab = next(r for r in runs if r["workers"] == yuv["workers"])
            ratio = yuv["rate"] / lab["rate"]
            ok = ratio >= SPACE_TARGET
            failed |= not ok
            label = f"stage --space yuv, {yuv['workers']} w"
            lines.append(
                f"{label:<24}{yuv['rate']:>8.1f}{yuv['seconds']:>7.1f}  {yuv['children']:>5}  "
                f"{'yuv/lab ' + f'{ratio:.2f} {verdict(ok)} (>= {SPACE_TARGET:.2f})':<44}"
                f"{_secs(yuv['startup']):>8}  {yuv['wall_rate']:>6.1f}  {yuv['engine']}"
            )
            if n > 1 and r["children"] < 1 and a.mode == "multi_processing":
                notes.append(
                    f"--direct_num_workers={n} had no effect: no worker process was "
                    f"started ({r['engine']} ran the job in this process)"
                )
        if runs:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(runs[-1]["outcomes"].items()))
            lines.append(f"outcomes  {outcomes}")
            lines += steady_cpu_lines(runs + ([yuv] if yuv else []))

        # -- memory
        if not a.no_memory:
            small = peak_memory(pattern, a.size, a.memory_workers, work, a.sample_interval, a.mode)
            big_pattern = link_folder(files, os.path.join(work, "in-4x"), MEMORY_COPIES)
            big = peak_memory(
                big_pattern, a.size, a.memory_workers, work, a.sample_interval, a.mode
            )
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
            loop = next(
                (r.get("stage_loop") for r in runs if r["workers"] == a.memory_workers), None
            )
            lines += cpu_lines(small, big, (MEMORY_COPIES - 1) * len(files), loop)

        # -- CIFAR: many small files
        if a.cifar:
            cifar = list_files(CIFAR_GLOB, a.cifar_files)
            cifar_pattern = link_folder(cifar, os.path.join(work, "in-cifar"))
            warm_cache(cifar)
            sample = cifar[: a.cifar_sample]
            lines.append("")
            lines.append(f"CIFAR-10  {len(cifar)} files  {resolve_glob(CIFAR_GLOB)}")
            for csize in a.cifar_size or sorted({32, a.size}):
                # the fastest of a few short loops: one 0.5 s loop swung 9,400-13,800 img/s
                bares = [
                    bare_rate(sample, csize, f"bare loop (CIFAR, {csize})")[0]
                    for _ in range(CIFAR_BARE_REPEATS)
                ]
                cbatch, _ = stage_loop_rate(sample, csize, a.batch_files)
                cprof = profile_breakdown(sample[:2000], csize, work, a.batch_files)
                crun = pipeline_rate(
                    cifar_pattern,
                    len(cifar),
                    csize,
                    a.cifar_workers,
                    work,
                    a.sample_interval,
                    mode=a.mode,
                )
                bares.append(bare_rate(sample, csize, f"bare loop (CIFAR, {csize}, after)")[0])
                cbare = max(bares)
                c_at_once = concurrent_rate(sample, csize, a.cifar_workers, BARE_AT_ONCE_SECONDS)
                ratio = crun["rate"] / cbare
                ok = ratio >= CIFAR_TARGET
                failed |= not ok
                lines.append(
                    f"  --size {csize}: bare loop, first {len(sample)} files, fastest of "
                    f"{len(bares)} (the last after the run) {cbare:8.1f} img/s "
                    f"({' / '.join(f'{b:.0f}' for b in bares)}); "
                    f"stage_batch loop {cbatch:.1f} ({cbatch / cbare:.2f}x bare); "
                    f"{a.cifar_workers} bare loops at once {c_at_once:.1f} "
                    f"({c_at_once / cbare:.2f}x one)"
                )
                lines.append(
                    f"  --size {csize}: stage, {a.cifar_workers} worker(s), all files  "
                    f"{crun['rate']:8.1f} img/s steady ({crun['wall_rate']:.1f} wall, start-up "
                    f"{_secs(crun['startup'])})  {crun['seconds']:.1f} s  procs "
                    f"{crun['children']}  rate/bare {ratio:.2f} {verdict(ok)} (>= "
                    f"{CIFAR_TARGET:.2f}; per worker {ratio / a.cifar_workers:.2f}; "
                    f"{crun['rate'] / c_at_once:.2f} of the bare loops at once)  "
                    f"{crun['engine']}"
                )
                lines.append(
                    f"  --size {csize}: profile of stage_batch, {min(2000, len(sample))} files "
                    "(cProfile, ms per file): "
                    + ", ".join(f"{k.strip()} {v:.3f}" for k, v in cprof.items())
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
