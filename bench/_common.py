"""Helpers shared by the benchmarks in bench/: input files, symlink folders, page-cache
warm-up, peak RSS of a process tree (sampled from /proc), the engine DirectRunner picked,
and the formatting of the summary tables."""

from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from transforms.fileio import read_bytes  # noqa: E402
from transforms.threads import SDK_WORKER_MAIN  # noqa: E402

RUNNER_LOGGER = "apache_beam.runners.direct.direct_runner"  # says which engine DirectRunner picked


# ---------------------------------------------------------------- inputs


def resolve_glob(pattern: str) -> str:
    """A relative glob is relative to the repository root, not the current directory."""
    return pattern if os.path.isabs(pattern) else str((ROOT / pattern).resolve())


def list_files(pattern: str, limit: int | None) -> list[str]:
    files = sorted(glob.glob(resolve_glob(pattern)))
    if not files:
        sys.exit(f"no files match {resolve_glob(pattern)}")
    return files[:limit] if limit else files


def link_folder(files: list[str], folder: str, copies: int = 1) -> str:
    """Symlink `copies` differently named links to each file into folder; returns a glob."""
    os.makedirs(folder, exist_ok=True)
    for c in range(copies):
        for i, f in enumerate(files):
            os.symlink(os.path.abspath(f), os.path.join(folder, f"c{c}_{i:06d}{Path(f).suffix}"))
    return os.path.join(folder, "*")


def warm_cache(files: list[str]) -> None:
    """Read every file once so that every measurement reads from the page cache."""
    for f in files:
        read_bytes(f)


def project_on_pythonpath() -> None:
    """SDK worker subprocesses must import the project even when it is not installed."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )


def read_stats(out_dir: str) -> dict:
    """A job's stats.json in out_dir, or {} when there is none."""
    try:
        with open(os.path.join(out_dir, "stats.json")) as f:
            return json.load(f)
    except OSError:
        return {}


# ---------------------------------------------------------------- process-tree sampling


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int, pids: list[int] | None = None) -> tuple[int, int]:
    """(summed RSS in bytes, number of processes) of pid and all its descendants (`pids`:
    tree_pids(pid) when the caller has it, read from /proc without walking it again)."""
    if pids is not None:
        return sum(_rss_kib(p) for p in pids) * 1024, len(pids)
    try:
        import psutil  # optional; /proc is read directly when it is not installed
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return 0, 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total, len(procs)
    pids = tree_pids(pid)
    return sum(_rss_kib(p) for p in pids) * 1024, len(pids)


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    tree, todo, pids = _children(), [pid], []
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(tree.get(p, []))
    return pids


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds a process has used so far, from /proc; None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime


def process_role(pid: int, root: int) -> str:
    """'launcher' (the root of the tree), 'worker' (a Beam SDK worker: its command line runs
    threads.SDK_WORKER_MAIN, as threads.in_sdk_worker tells from inside), or 'other'."""
    if pid == root:
        return "launcher"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return "other"
    return "worker" if SDK_WORKER_MAIN.encode() in cmdline else "other"


class TreeSampler:
    """Samples tree_rss(pid) in a background thread: peak RSS and most processes seen; with
    `cpu`, also each process's CPU seconds as last seen (`cpu_by_role`: summed per
    process_role; a process's last `interval` before it exits is not seen), and their series
    over time (`cpu_between`)."""

    def __init__(self, pid: int, interval: float, cpu: bool = False):
        self.pid, self.interval, self.cpu = pid, interval, cpu
        self.peak = self.processes = 0
        self.seen: dict[int, tuple[str, float, float]] = {}  # pid -> (role, user, system)
        self.series: list[tuple[float, dict[str, tuple[float, float]]]] = []  # (time, by role)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            pids = tree_pids(self.pid) if self.cpu else None  # one walk of /proc a sample
            rss, n = tree_rss(self.pid, pids)
            self.peak, self.processes = max(self.peak, rss), max(self.processes, n)
            if pids is not None:
                self._sample_cpu(pids)
                self.series.append((time.perf_counter(), self.cpu_by_role()))
            if self._stop.wait(self.interval):
                return

    def _sample_cpu(self, pids: list[int]) -> None:
        for p in pids:
            times = cpu_seconds(p)
            if times is not None:
                role = self.seen[p][0] if p in self.seen else process_role(p, self.pid)
                self.seen[p] = (role, *times)

    def cpu_by_role(self) -> dict[str, tuple[float, float]]:
        """role -> (user, system) CPU seconds of its processes, summed."""
        out: dict[str, tuple[float, float]] = {}
        for role, user, system in self.seen.values():
            u, s = out.get(role, (0.0, 0.0))
            out[role] = (u + user, s + system)
        return out

    def cpu_between(self, t0: float, t1: float) -> dict[str, tuple[float, float]] | None:
        """role -> (user, system) CPU seconds its processes used from perf_counter time t0
        to t1 (cpu_by_role interpolated linearly between the samples around each), or None
        where the samples do not span [t0, t1]."""
        at0, at1 = self._cpu_at(t0), self._cpu_at(t1)
        if at0 is None or at1 is None:
            return None
        return {
            role: (u - at0.get(role, (0.0, 0.0))[0], s - at0.get(role, (0.0, 0.0))[1])
            for role, (u, s) in at1.items()
        }

    def _cpu_at(self, t: float) -> dict[str, tuple[float, float]] | None:
        after = next((i for i, (ts, _) in enumerate(self.series) if ts >= t), None)
        if not after:  # None (after the last sample) or 0 (before the first)
            return None
        (ta, a), (tb, b) = self.series[after - 1], self.series[after]
        w = (t - ta) / (tb - ta) if tb > ta else 1.0
        zero = (0.0, 0.0)
        return {
            role: tuple(x + w * (y - x) for x, y in zip(a.get(role, zero), b[role], strict=True))
            for role in b
        }

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


_TIMES: dict[str, list] = {}  # Timed's totals: [seconds, calls, first start, last end]


class Timed:
    """A stand-in for a function of a job's graph that adds up its calls' seconds under
    `name` (for a job run in this process; the totals live in this module, not in the
    instance, which the runner pickles and copies)."""

    def __init__(self, name: str, fn):
        self.name, self.fn = name, fn
        self.reset()

    def reset(self) -> None:
        """Zero the totals kept under the name."""
        _TIMES[self.name] = [0.0, 0, None, None]

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        totals = _TIMES[self.name]
        totals[2] = totals[2] or start
        try:
            return self.fn(*args, **kwargs)
        finally:
            end = time.perf_counter()
            totals[0] += end - start
            totals[1] += 1
            totals[3] = end

    def totals(self) -> tuple[float, int, float | None, float | None]:
        """(seconds in the calls, number of calls, start of the first, end of the last)."""
        return tuple(_TIMES[self.name])


class TickSampler:
    """Samples the progress ticks of `job` (pipeline.progress: one per finished input, from
    every worker process) every `interval` s while a job runs in this process; from them:
    start-up (time to the first finished input) and the steady rate between two shares of the
    inputs, so a figure is not dominated by a fixed few seconds of start-up and shut-down."""

    def __init__(self, job: str, interval: float = 0.1):
        self.job, self.interval = job, interval
        self.samples: list[tuple[float, int]] = []  # (seconds since t0, inputs done)
        self.t0 = time.perf_counter()  # set again on entering
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from pipeline import progress

        while True:
            folder = os.environ.get(progress.ENV)
            if folder:
                done = progress.count(folder, self.job)
                self.samples.append((time.perf_counter() - self.t0, done))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TickSampler:
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def first(self) -> float | None:
        """Seconds from the start to the first finished input (None: no tick seen)."""
        return next((t for t, n in self.samples if n > 0), None)

    def steady(self, total: int, lo: float, hi: float) -> float | None:
        """Inputs/s between the first samples with >= lo x total and >= hi x total done."""
        win = self.window(total, lo, hi)
        return None if win is None else (win[1][1] - win[0][1]) / (win[1][0] - win[0][0])

    def window(
        self, total: int, lo: float, hi: float
    ) -> tuple[tuple[float, int], tuple[float, int]] | None:
        """The first samples with >= lo x total and >= hi x total done, as (perf_counter
        time, inputs done) each; None if there are not two such samples apart in time."""
        a = next(((t, n) for t, n in self.samples if n >= lo * total), None)
        b = next(((t, n) for t, n in self.samples if n >= hi * total), None)
        if a is None or b is None or b[0] <= a[0]:
            return None
        return (self.t0 + a[0], a[1]), (self.t0 + b[0], b[1])


class RunnerLog(logging.Handler):
    """Collects what DirectRunner logs about the engine it picked (Prism, FnApi, legacy)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def engine(self) -> str:
        text = "\n".join(self.messages)
        if "Running pipeline with DirectRunner." in text:
            return "legacy DirectRunner"  # BundleBasedDirectRunner: in-process, ignores workers
        if "Running pipeline with PrismRunner." in text and "Falling back" not in text:
            return "PrismRunner"
        return "FnApiRunner" if self.messages else "?"


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def run_sampled(
    cmd: list[str], cwd: Path, err_path: str, interval: float, what: str, cpu: bool = False
):
    """Run cmd, sampling its process tree's RSS (and with `cpu` its CPU seconds: TreeSampler)
    until it exits; returns (sampler, seconds).

    Raises RuntimeError with the tail of its stderr (kept in err_path) if it fails.
    """
    start = time.perf_counter()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        with TreeSampler(proc.pid, interval, cpu) as sampler:
            proc.wait()
    if proc.returncode != 0:
        tail = Path(err_path).read_text()[-3000:]
        raise RuntimeError(f"{what} subprocess failed ({proc.returncode}):\n{tail}")
    return sampler, time.perf_counter() - start
