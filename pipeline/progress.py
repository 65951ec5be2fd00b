"""Progress lines for local runs: `colorize: 120/400 images, 9.8 img/s, ETA 28 s`.

Workers call `tick(job)` once per finished input (or apply `Ticks(job)`, in pipeline/common.py
with the rest of the Beam side, to a PCollection with one element per finished input). Each
tick appends one byte to a file named after the worker's process id in a run-local folder
named by the CHROMABEAM_PROGRESS_DIR environment variable;
the driver's `report(...)` creates that folder, sets the variable (worker processes the local
runner starts inherit it) and runs a thread that sums the file sizes every few seconds. So
the count crosses processes (stage's multi_processing mode) as well as threads. Without the
variable (remote runners, tests that call the DoFns directly) a tick does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator

log = logging.getLogger("chromabeam.progress")
ENV = "CHROMABEAM_PROGRESS_DIR"
INTERVAL_ENV = "CHROMABEAM_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 5.0
HEARTBEAT = 30.0  # seconds between identical lines (nothing finished meanwhile)
_lock = threading.Lock()


def tick(job: str, n: int = 1) -> None:
    """Count n finished inputs of `job` (no-op unless a driver is reporting)."""
    folder = os.environ.get(ENV)
    if not folder or n <= 0:
        return
    path = os.path.join(folder, f"{job}.{os.getpid()}")
    try:
        with _lock, open(path, "ab") as f:  # noqa: PTH123 - a run-local temp file, not a user path
            f.write(b"." * n)
    except OSError:  # the driver finished and removed the folder: nothing to report to
        pass


def count(folder: str, job: str) -> int:
    """Ticks recorded so far in folder for job (all processes)."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.startswith(job + "."):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    return total


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _per(unit: str) -> str:
    return {"images": "img", "inputs": "inputs"}.get(unit, unit)


def line(job: str, done: int, total: int, rate: float | None, unit: str = "images") -> str:
    """`job: done/total unit, R img/s, ETA T` (rate and ETA when known)."""
    text = f"{job}: {done}/{total} {unit}"
    if rate:
        text += f", {rate:.3g} {_per(unit)}/s"
        if total > done:
            text += f", ETA {_duration((total - done) / rate)}"
    return text


class Reporter:
    """Sums the ticks of one job and logs a progress line every `interval` seconds."""

    def __init__(self, job: str, total: int, unit: str, per_item: int, interval: float):
        self.job, self.total, self.unit = job, total, unit
        self.per_item, self.interval = max(1, per_item), interval
        self.folder = tempfile.mkdtemp(prefix=f"chromabeam-{job}-progress-")
        self.t0 = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque(maxlen=12)
        self.lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chromabeam-progress", daemon=True)

    def done(self) -> int:
        """Inputs finished so far (capped at the total: retried bundles tick twice)."""
        return min(self.total, count(self.folder, self.job) // self.per_item)

    def rate(self, now: float, done: int) -> float | None:
        """Inputs per second over the last samples, from the first one with progress (so the
        start-up time does not count), or None before there is any."""
        moving = [(t, d) for t, d in self.samples if d > 0]
        if not moving:
            return None
        t_old, d_old = moving[0]
        return (done - d_old) / (now - t_old) if done > d_old and now > t_old else None

    def _loop(self) -> None:
        last_done, last_time = -1, 0.0
        while not self._stop.wait(self.interval):
            now, done = time.monotonic(), self.done()
            self.samples.append((now, done))
            if done == last_done and (done >= self.total or now - last_time < HEARTBEAT):
                continue  # nothing moved: a line again only as a heartbeat
            if done >= self.total:
                text = f"{self.job}: {done}/{self.total} {self.unit}, finishing"
            else:
                text = line(self.job, done, self.total, self.rate(now, done), self.unit)
            log.info(text)
            self.lines += 1
            last_done, last_time = done, now

    def summary(self) -> str:
        """The closing line: done/total, elapsed time and mean rate."""
        elapsed = time.monotonic() - self.t0
        done = self.done()
        text = f"{self.job}: {done}/{self.total} {self.unit} in {_duration(elapsed)}"
        if done and elapsed > 0:
            text += f" ({done / elapsed:.3g} {_per(self.unit)}/s)"
        return text


_current: Reporter | None = None
_last: tuple[str, int, int] | None = None


_saved: dict[str, str] = {}


def note_saved(job: str, what: str | None) -> None:
    """Record what `job` has safely written so far (`what`: e.g. "out/checkpoint.pt holds
    epoch 3/10"; None: nothing yet), for the Ctrl-C line."""
    if what is None:
        _saved.pop(job, None)
    else:
        _saved[job] = what


def last_saved(job: str) -> str | None:
    """What note_saved last recorded for `job` in this process, or None."""
    return _saved.get(job)


def last_state() -> tuple[str, int, int] | None:
    """(job, done, total) of the job reporting now or last in this process (for the Ctrl-C
    line), or None."""
    if _current is not None:
        return _current.job, _current.done(), _current.total
    return _last


@contextlib.contextmanager
def report(
    job: str,
    total: int,
    unit: str = "images",
    per_item: int = 1,
    interval: float | None = None,
    enabled: bool = True,
) -> Iterator[Reporter | None]:
    """Report progress of `job` while the block runs: `total` inputs, `per_item` ticks each.

    interval: seconds between lines (default $CHROMABEAM_PROGRESS_SECONDS or 5). A closing line
    is logged when the block ends normally. enabled=False (remote runners) does nothing.
    """
    global _current, _last
    _last = None
    if not enabled or total <= 0:
        yield None
        return
    if interval is None:
        interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    rep = Reporter(job, total, unit, per_item, interval)
    old = os.environ.get(ENV)
    os.environ[ENV] = rep.folder
    _current = rep
    rep._thread.start()
    finished = False
    try:
        yield rep
        finished = True
    finally:
        rep._stop.set()
        rep._thread.join(timeout=2)  # its last periodic line comes before the closing one
        if finished:
            log.info(rep.summary())
        _last = (job, rep.done(), total)
        _current = None
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
        shutil.rmtree(rep.folder, ignore_errors=True)
