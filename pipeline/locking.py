"""One run per output folder: `OUT/.chromabeam.lock`, taken before a job's pipeline starts.

The lock is a small JSON file (pid, host, job, start time, a random token) created
exclusively; it is removed when the run ends, also on an exception or Ctrl-C. A second run
into the same folder refuses with one line naming the owner and exits non-zero. A lock whose
owner is gone (same host, pid no longer running: a killed run) is taken over with a warning;
a lock from another host is never taken over (its pid cannot be checked from here): remove
the file by hand if that run is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec

from transforms.fileio import join
from transforms.naming import LOCK_NAME

log = logging.getLogger(__name__)


def lock_uri(output: str) -> str:
    """Where the lock of an output folder lives."""
    return join(output, LOCK_NAME)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # Linux: a zombie has exited
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _read(fs, path: str) -> dict | None:
    try:
        with fs.open(path, "rb") as f:
            doc = json.loads(f.read() or b"{}")
        return doc if isinstance(doc, dict) else {}
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {}  # unreadable: treated as a lock whose owner is unknown


def _create(fs, path: str, doc: dict) -> bool:
    """Create the lock file exclusively; False if it exists."""
    data = json.dumps(doc, indent=2).encode()
    try:
        with fs.open(path, "xb") as f:
            f.write(data)
        return True
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError):  # no exclusive mode (some object stores)
        if fs.exists(path):
            return False
        fs.pipe_file(path, data)
        return (_read(fs, path) or {}).get("token") == doc["token"]


def describe_owner(doc: dict) -> str:
    """'pid 123 on host, since 2026-11-24T10:00:00Z' for a lock document (an unreadable or
    foreign lock file, which names no owner, says so)."""
    if not any(k in doc for k in ("pid", "host", "started")):
        return "chromabeam run (its lock file is unreadable or names no owner)"
    return (
        f"{doc.get('job', 'chromabeam')} run, pid {doc.get('pid', '?')} on "
        f"{doc.get('host', '?')}, since {doc.get('started', '?')}"
    )


def _is_stale(doc: dict, host: str) -> bool:
    pid = doc.get("pid")
    return doc.get("host") == host and isinstance(pid, int) and not pid_alive(pid)


def acquire(output: str, job: str) -> dict:
    """Take the lock of an output folder; returns the lock document (its token releases it).

    Raises SystemExit with one line naming the owner when another live run holds it.
    """
    fs, path = fsspec.core.url_to_fs(lock_uri(output))
    fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    host = socket.gethostname()
    doc = {
        "pid": os.getpid(),
        "host": host,
        "job": job,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "token": uuid.uuid4().hex,
    }
    for _ in range(5):
        if _create(fs, path, doc):
            return doc
        held = _read(fs, path)
        if held is None:
            continue  # released meanwhile: try again
        if not _is_stale(held, host):
            raise SystemExit(
                f"{output} is in use by another {describe_owner(held)}; wait for it to end "
                f"or, if no such run exists, delete {lock_uri(output)}"
            )
        # Move the stale lock aside (only one taker succeeds), check it is the one judged
        # stale (not a lock just created by another taker), then create ours.
        aside = f"{path}.stale-{doc['token']}"
        try:
            fs.mv(path, aside)
        except FileNotFoundError:
            continue
        moved = _read(fs, aside) or {}
        if moved.get("token") != held.get("token"):
            fs.mv(aside, path)  # another run's fresh lock: put it back, then see it live
            continue
        fs.rm(aside)
        log.warning("taking over the lock of a %s that is no longer running", describe_owner(held))
    raise SystemExit(f"could not take the lock {lock_uri(output)}; try again")


def release(output: str, doc: dict) -> None:
    """Remove the lock if it is still ours."""
    fs, path = fsspec.core.url_to_fs(lock_uri(output))
    held = _read(fs, path)
    if held and held.get("token") == doc.get("token"):
        fs.rm(path)
    elif held is not None:
        log.warning("the lock %s is no longer ours; left in place", lock_uri(output))


@contextmanager
def output_lock(output: str, job: str) -> Iterator[dict]:
    """`with output_lock(OUT, "colorize"):` hold OUT's lock for the block (released on any
    exit, KeyboardInterrupt included)."""
    doc = acquire(output, job)
    try:
        yield doc
    finally:
        release(output, doc)
