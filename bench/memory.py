"""Benchmark of peak memory on big scans: is memory bounded by design, not by image size?

    python bench/memory.py                 # 48 MP and 0.2 MP JPEGs, shipped default model
    python bench/memory.py --check         # exit 1 if any target FAILs
    python bench/memory.py --megapixels 12 --jobs colorize   # a quicker look

It writes (in a temporary folder) one 8000x6000 JPEG (48 MP, a smooth colour field with
texture, q90) and one 500x400 JPEG (0.2 MP), then runs each job as a new user would, in its
own subprocess (`python -m pipeline.cli ...`, default options, embedded runner):
  colorize     `chromabeam colorize DIR/*.jpg OUT` (Beam, the one image)
  colorize -o  `chromabeam colorize IMAGE -o OUT.png` (single-image mode, no Beam)
  evaluate     `chromabeam evaluate DIR/*.jpg OUT` (the default model + both baselines, with
               the report)
and prints each run's peak RSS: the kernel's maximum resident set of the child
(os.wait4 rusage ru_maxrss, which includes any children it waited for) and the peak of its
whole process tree sampled from /proc every 50 ms (bench._common.TreeSampler; catches SDK
worker processes a runner leaves running). The inputs are written by a child process: a
forked child's ru_maxrss starts at its parent's RSS, so this process stays small. The larger
of the two is judged against the targets (issue 9): colorize <= 1.5 GB, evaluate <= 2.5 GB
at 48 MP, with the ratio to the same job's 0.2 MP figure. Options it does not know go to
every job (e.g. --direct_num_workers=2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import TreeSampler, mib, project_on_pythonpath, verdict  # noqa: E402

GB = 1e9
TARGETS = {"colorize": 1.5 * GB, "colorize -o": 1.5 * GB, "evaluate": 2.5 * GB}
SMALL = (500, 400)  # 0.2 MP


def scan_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colour field (bicubic from 60x80 random colours) with grain: compresses like a
    photo, not like a flat fill, and is made without full-size float arrays."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(img, grain, 0.15)


def _sizes(megapixels: float) -> dict[str, tuple[int, int]]:
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    return {f"{megapixels:g}MP": (width, int(round(width * 3 / 4))), "0.2MP": SMALL}


def _input_folders(root: Path, megapixels: float) -> dict[str, Path]:
    return {label: Path(root) / label for label in _sizes(megapixels)}


def write_inputs(root: str, megapixels: str) -> None:
    """ROOT/48MP/scan_8000x6000.jpg and ROOT/0.2MP/scan_500x400.jpg: one image per folder."""
    for label, (w, h) in _sizes(float(megapixels)).items():
        folder = Path(root) / label
        folder.mkdir()
        scan_like(w, h).save(folder / f"scan_{w}x{h}.jpg", quality=90)


def job_commands(folder: Path, out: Path, beam_args: list[str]) -> dict[str, list[str]]:
    image = next(folder.glob("*.jpg"))
    cli = [sys.executable, "-m", "pipeline.cli"]
    return {
        "colorize": [*cli, "colorize", f"{folder}/*.jpg", str(out / "colorize"), *beam_args],
        "colorize -o": [*cli, "colorize", str(image), "-o", str(out / "single.png")],
        "evaluate": [*cli, "evaluate", f"{folder}/*.jpg", str(out / "evaluate"), *beam_args],
    }


def peak_rss(cmd: list[str], err_path: Path) -> tuple[int, int, float, str]:
    """(ru_maxrss in bytes, sampled process-tree peak in bytes, seconds, error) of one run;
    error is '' or the exit code and last line of stderr (the peak is reported either way)."""
    start = time.perf_counter()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        with TreeSampler(proc.pid, 0.05) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    error = ""
    if proc.returncode != 0:
        lines = err_path.read_text().strip().splitlines() or [""]
        error = f"exit {proc.returncode}: {lines[-1][:200]}"
    return usage.ru_maxrss * 1024, sampler.peak, time.perf_counter() - start, error


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--megapixels", type=float, default=48.0, help="size of the big scan")
    p.add_argument(
        "--jobs", nargs="+", default=list(TARGETS), choices=list(TARGETS), help="jobs to run"
    )
    p.add_argument("--check", action="store_true", help="exit 1 if a target FAILs")
    args, beam_args = p.parse_known_args(argv)
    project_on_pythonpath()
    results: dict[tuple[str, str], tuple[int, int, float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="chromabeam-mem-") as tmp:
        root = Path(tmp)
        # A child writes the inputs: a forked child's ru_maxrss starts at its parent's RSS,
        # so this process must stay small (it never holds the big image itself).
        code = "import sys; from bench.memory import write_inputs; write_inputs(*sys.argv[1:])"
        subprocess.run(
            [sys.executable, "-c", code, tmp, str(args.megapixels)], cwd=ROOT, check=True
        )
        inputs = _input_folders(root, args.megapixels)
        runs = [(size, job) for size in inputs for job in args.jobs]
        for size, job in tqdm(runs, desc="runs", unit="run"):
            out = root / f"out-{size}"
            cmd = job_commands(inputs[size], out, beam_args)[job]
            results[(size, job)] = peak_rss(cmd, root / f"{size}-{job.replace(' ', '')}.err")
    big, small = list(inputs)
    print(f"\npeak RSS per run (ru_maxrss of the child / sampled process tree; {big} vs {small})")
    print(f"{'job':<12} {'size':>7} {'ru_maxrss':>11} {'tree':>11} {'seconds':>8}  target")
    failed = False
    for job in args.jobs:
        base = max(results[(small, job)][:2])
        for size in (big, small):
            rss, tree, secs, error = results[(size, job)]
            peak = max(rss, tree)
            line = f"{job:<12} {size:>7} {mib(rss):>11} {mib(tree):>11} {secs:>8.1f}"
            if size == big:
                ok = peak <= TARGETS[job] and not error
                failed |= not ok
                line += f"  {verdict(ok)} <= {TARGETS[job] / GB:.1f} GB, {peak / base:.2f}x {small}"
            print(line + (f"  (job failed, {error})" if error else ""))
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
