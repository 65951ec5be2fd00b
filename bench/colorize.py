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
             pipeline.options: FnApiRunner, in colorize's running mode for the inputs:
             worker processes from pipeline.colorize.PROCESSES_FROM inputs, threads below;
             --also-threads times worker threads too) with --direct_num_workers
             --workers (default 2) and with 1 worker, --batch-size 8 (by default), on
             --inputs inputs (default 800: the files repeated through symlinks), after one
             untimed warm-up run on a few files. Reported: start-up (seconds to the first
             finished input, model loading in every worker included), the steady rate between
             10% and 90% of the inputs (from pipeline.progress's ticks) and the wall rate;
             target: steady(--workers) / rate(loop) >= 1.6x (the loop, too, is timed after
             its model load); stats.json must count every input, `colorized` as many times
             the loop's count as there are copies, and that many images must be written;
             'procs' is the most child processes seen: 0 means the runner ignored the
             worker count and ran everything in this process;
  memory     peak RSS of the whole process tree (launcher + SDK workers) of `colorize` run as
             a subprocess on the files and on 4 symlinked copies of each (4x the inputs),
             both in the running mode of the larger run;
             target: flat, ratio <= 1.3x;
  outputs    every image the pipeline (--workers) wrote against the loop's (batch 1 vs
             batches: float rounding only): max |difference| in 8-bit levels <= 2;
  single     `chromabeam colorize IMAGE -o OUT` from the shell (a fresh interpreter, imports
             and model load included), wall time of the fastest of 2 runs; target < 3 s.
The loop's time is split into read + prepare (decode, resize, L), the model (predict_ab) and
finish (compose at full resolution, encode, write).
--device cuda runs everything on the GPU; where none is present (`auto` falls back to the
CPU) the header says so.
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
    TickSampler,
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
DEFAULT_INPUTS = 800  # pipeline inputs: steady state long enough that start-up is apart
SPEEDUP_TARGET = 1.60  # pipeline rate (--workers) / loop rate
SINGLE_TARGET = 3.0  # seconds: `chromabeam colorize IMAGE -o OUT` from the shell
PIXEL_TOLERANCE = 2  # 8-bit levels between the pipeline's and the loop's outputs
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
    if a.share_model or a.model_copies:  # the pipeline runs' handler (the loop has its own)
        argv += ["--share-model"]
    if a.model_copies:
        argv += ["--model-copies", str(a.model_copies)]
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
    parts = {"read + prepare": 0.0, "model": 0.0, "finish + write": 0.0}
    outputs: dict[str, str] = {}
    start = time.perf_counter()
    for f in tqdm(files, desc="loop (batch 1)", unit="img", leave=False):
        try:
            t0 = time.perf_counter()
            item = colorize.prepare(f, read_bytes(f), cfg)
            t1 = time.perf_counter()
            ab = predict_ab(model, item["l_render"][None], cfg.settings)[0]
            t2 = time.perf_counter()
            colorize.finish(item, ab, cfg)
            t3 = time.perf_counter()
            outputs[os.path.realpath(f)] = item["output_uri"]
            parts["read + prepare"] += t1 - t0
            parts["model"] += t2 - t1
            parts["finish + write"] += t3 - t2
        except ImageError:
            errors += 1
    seconds = time.perf_counter() - start
    return {
        "rate": len(files) / seconds,
        "seconds": seconds,
        "load_seconds": load_seconds,
        "errors": errors,
        "written": count_outputs(out_dir, cfg.fmt),
        "outputs": outputs,
        "parts_ms": {k: 1e3 * v / len(files) for k, v in parts.items()},
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
    return found[-1].rsplit(".", 1)[-1] if found else "FnApiRunner"  # the job's default


def given_mode(beam_args: list[str]) -> str | None:
    """The --direct_running_mode among the Beam options given on the command line, if any
    (the last one given wins)."""
    modes = [x.split("=", 1)[1] for x in beam_args if x.startswith("--direct_running_mode=")]
    return modes[-1] if modes else None


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
        with TreeSampler(os.getpid(), interval) as sampler, TickSampler(colorize.JOB) as ticks:
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
        "startup": ticks.first(),
        "steady": ticks.steady(n_files, 0.10, 0.90),
        "out_dir": out_dir,
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


def _outputs_by_source(out_dir: str) -> dict[str, str]:
    """{real path of the source: output path} from a colorize run's results table."""
    import pyarrow.parquet as pq

    table = pq.read_table(os.path.join(out_dir, "results"), columns=["source_uri", "output_uri"])
    return {
        os.path.realpath(src): out
        for src, out in zip(
            table.column("source_uri").to_pylist(),
            table.column("output_uri").to_pylist(),
            strict=True,
        )
    }


def compare_outputs(loop_outputs: dict[str, str], run_dir: str) -> tuple[int, int, int]:
    """(images compared, loop images the run did not write, max |difference| in 8-bit levels)
    between the loop's outputs {real source path: output} and a pipeline run's."""
    from PIL import Image

    run_outputs = _outputs_by_source(run_dir)
    compared = missing = worst = 0
    for src, path in sorted(loop_outputs.items()):
        other = run_outputs.get(src)
        if other is None or not os.path.exists(other):
            missing += 1
            continue
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(other).convert("RGB"), dtype=np.int16)
        worst = max(worst, int(np.abs(a - b).max()) if a.shape == b.shape else 255)
        compared += 1
    return compared, missing, worst


def single_image_seconds(image: str, options: list[str], work: str, runs: int = 2) -> float:
    """Fastest wall time of `chromabeam colorize IMAGE -o OUT` in a fresh interpreter."""
    script = Path(sys.executable).with_name("chromabeam")  # the installed console script
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    return min(
        fresh_seconds([*command, "colorize", image, "-o", os.path.join(work, f"single-{i}.png"),
                       *options])
        for i in range(runs)
    )  # fmt: skip


def fresh_seconds(cmd: list[str]) -> float:
    """Wall time of one command in a fresh process (from the repository root)."""
    import subprocess

    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


# ---------------------------------------------------------------- report


def _steady(run: dict) -> float:
    """A pipeline run's steady rate (its wall rate when too few progress ticks were seen)."""
    return run["steady"] or run["rate"]


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
        "--inputs",
        type=int,
        default=DEFAULT_INPUTS,
        help="inputs of the pipeline runs: the files repeated through symlinks (default "
        f"{DEFAULT_INPUTS})",
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
        "--share-model",
        action="store_true",
        help="the pipeline runs share one model per machine across their worker processes "
        "(colorize --share-model; GPU workers: deploy/dataflow/README.md)",
    )
    parser.add_argument(
        "--model-copies",
        type=int,
        default=None,
        help="... with this many shared copies (colorize --model-copies; implies --share-model)",
    )
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
        "--also-threads",
        action="store_true",
        help="also time --workers worker threads (--direct_running_mode=multi_threading, "
        "colorize's mode for runs under pipeline.colorize.PROCESSES_FROM inputs)",
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
        copies = max(1, -(-a.inputs // len(files)))
        n_inputs = copies * len(files)
        many = link_folder(files, os.path.join(work, "in-many"), copies)
        worker_counts = [a.workers] + ([1] if a.workers != 1 else [])
        runs = [
            pipeline_rate(many, n_inputs, w, options, extra_beam, work, a.sample_interval)
            for w in worker_counts
        ]
        rate_1 = next((_steady(r) for r in runs if r["workers"] == 1), None)
        threads_run = None
        if a.also_threads:
            threads_beam = [*extra_beam, "--direct_running_mode=multi_threading"]
            threads_run = pipeline_rate(
                many, n_inputs, a.workers, options, threads_beam, work, a.sample_interval
            )

        lines.append(
            f"input     {len(files)} files  {resolve_glob(a.pattern)}"
            + (f"  (--limit {a.limit})" if a.limit else "")
            + f"; pipeline runs on {n_inputs} inputs ({copies} symlinks per file)"
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
        mode = given_mode(extra_beam) or colorize.local_mode(n_inputs)  # colorize's default
        lines.append(
            f"threads   torch: loop {torch.get_num_threads()} (= cores); pipeline runs: "
            f"--direct_running_mode={mode}, torch threads max(1, cores // workers) "
            "(pipeline.options.threads_per_worker)"
        )
        lines.append(f"output    {cfg.fmt}; pipeline --batch-size {a.batch_size}")
        if a.share_model or a.model_copies:
            lines.append(
                f"sharing   pipeline runs: --share-model, model copies per machine "
                f"{a.model_copies or 1}, served to the worker processes (multi_process_shared)"
            )
        if not torch.cuda.is_available():
            lines.append(
                "GPU       none on this machine: every figure is CPU (no --device cuda figure)"
            )
        lines.append("")
        lines.append(
            "loop time per image (ms): "
            + ", ".join(f"{k} {v:.1f}" for k, v in loop["parts_ms"].items())
        )
        lines.append("")
        lines.append(
            f"{'run':<28}{'img/s':>8}{'s':>8}  {'procs':>5}  {'steady vs loop':<24}"
            f"{'start-up':>9}{'wall':>8}  engine"
        )
        lines.append(
            "  (pipeline img/s: steady state, 10%-90% of the inputs; wall = inputs / wall time)"
        )
        lines.append(
            f"{'loop, batch 1':<28}{loop['rate']:>8.2f}{loop['seconds']:>8.1f}  {'-':>5}  "
            f"{'1.00':<24}model load + first call {loop['load_seconds']:.2f} s"
            + (f"; {loop['errors']} undecodable" if loop["errors"] else "")
        )
        for r in runs:
            n = r["workers"]
            ratio = _steady(r) / loop["rate"]
            if n == a.workers:
                ok = ratio >= SPEEDUP_TARGET
                failed |= not ok
                cell = f"{ratio:.2f}x {verdict(ok)} (>= {SPEEDUP_TARGET:.1f}x)"
            else:
                cell = f"{ratio:.2f}x"
            extra = ""
            if rate_1 and n > 1:
                extra = f"  ({_steady(r) / rate_1:.2f}x the 1-worker run)"
            startup = "-" if r["startup"] is None else f"{r['startup']:.1f} s"
            lines.append(
                f"{f'pipeline, {n} worker(s)':<28}{_steady(r):>8.2f}{r['seconds']:>8.1f}  "
                f"{r['children']:>5}  {cell:<24}{startup:>9}{r['rate']:>8.2f}  "
                f"{r['engine']}{extra}"
            )
            if n > 1 and r["children"] < 1 and mode == "multi_processing":
                notes.append(
                    f"--direct_num_workers={n} had no effect: no worker process was "
                    f"started ({r['engine']} ran the job in this process)"
                )
        if mode != "multi_processing":
            notes.append(
                f"the {a.workers} workers are threads of this process ({mode}): 'procs' 0 is "
                "expected; pass --direct_running_mode=multi_processing for worker processes"
            )

        # -- counts
        lines.append("")
        lines.append(
            f"counts    expected {n_inputs} inputs, {copies * expected} colorized "
            f"(the loop wrote {loop['written']} of {len(files)} files)"
        )
        ok_loop = loop["written"] == expected
        failed |= not ok_loop
        if not ok_loop:
            notes.append(f"the loop wrote {loop['written']} images, expected {expected}")
        for r in runs:
            colorized = r["outcomes"].get(schema.COLORIZED, 0)
            ok = (
                r["total"] == n_inputs
                and colorized == copies * expected
                and r["written"] == copies * expected
            )
            failed |= not ok
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())) or "-"
            lines.append(
                f"  {r['workers']} worker(s): stats.json total {r['total']}, {outcomes}; "
                f"{r['written']} images written  {verdict(ok)}"
            )

        if threads_run:
            r = threads_run
            startup = "-" if r["startup"] is None else f"{r['startup']:.1f} s"
            label = f"{a.workers} worker threads"
            lines.append(
                f"{label:<28}{_steady(r):>8.2f}{r['seconds']:>8.1f}  {r['children']:>5}  "
                f"{_steady(r) / loop['rate']:.2f}x{'':<19}{startup:>9}{r['rate']:>8.2f}  "
                "multi_threading (not held to the target)"
            )

        # -- the same outputs as the loop
        main_run = next(r for r in runs if r["workers"] == a.workers)
        compared, missing, worst = compare_outputs(loop["outputs"], main_run["out_dir"])
        ok_same = compared == loop["written"] and not missing and worst <= PIXEL_TOLERANCE
        failed |= not ok_same
        lines.append(
            f"outputs   {a.workers} worker(s) vs loop: {compared} images compared, {missing} "
            f"missing, max |diff| {worst} levels  {verdict(ok_same)} (<= {PIXEL_TOLERANCE})"
        )

        # -- one image from the shell
        torch_alone = min(fresh_seconds([sys.executable, "-c", "import torch"]) for _ in "ab")
        single = single_image_seconds(files[0], options, work)
        ok_single = single < SINGLE_TARGET
        failed |= not ok_single
        lines.append(
            f"single    `chromabeam colorize {Path(files[0]).name} -o out.png`: {single:.2f} s "
            f"wall (fresh interpreter, best of 2)  {verdict(ok_single)} (< {SINGLE_TARGET:.0f} s)"
        )
        lines.append(
            f"          of which no less than `python -c 'import torch'` takes here: "
            f"{torch_alone:.2f} s (best of 2, just before)"
        )

        # -- memory
        if not a.no_memory:
            # both runs in the mode of the larger one, so the ratio compares like with like
            mem_mode = given_mode(extra_beam) or colorize.local_mode(len(files) * MEMORY_COPIES)
            mem_beam = [*extra_beam, f"--direct_running_mode={mem_mode}"]
            small = peak_memory(
                pattern, a.memory_workers, options, mem_beam, work, a.sample_interval
            )
            big_pattern = link_folder(files, os.path.join(work, "in-4x"), MEMORY_COPIES)
            big = peak_memory(
                big_pattern, a.memory_workers, options, mem_beam, work, a.sample_interval
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
