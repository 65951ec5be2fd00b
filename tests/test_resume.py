"""Writes a kill cannot corrupt, --skip-existing that checks what it skips, exact resume, and
one run per output folder (issue 9). The real-kill tests run `chromabeam colorize` in
subprocesses and are marked slow, except one quick SIGKILL during a large write."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# colorize's Beam graph is imported lazily by colorize.run; importing it here keeps the
# in-process concurrent run of the kill test quick to reach the lock, as a second shell
# command that has paid its imports would be
from pipeline import colorize, colorize_graph, locking  # noqa: F401
from tests.conftest_models import BEAM_ARGS, job_args, one_thread, write_tiny_checkpoint
from tests.helpers import ROOT, gray_photo, sigint_as_a_terminal_sends_it
from transforms import fileio, naming
from transforms.fileio import atomic_write, read_table, remove_partials, write_bytes

N_GOOD = 30
BAD = {"bad/empty.png": b"", "bad/notes.jpg": b"not a picture\n" * 20}


@pytest.fixture(autouse=True)
def _threads():
    one_thread()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path, seed=5)
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    base = gray_photo(48)
    for i in range(N_GOOD):
        p = root / f"d{i % 3}" / f"img_{i:02d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, 3 * i, axis=i % 2)).save(p)
    for rel, data in BAD.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _argv(inputs: Path, out: Path, ckpt: str, *extra: str, glob: str = "**") -> list[str]:
    return [f"{inputs}/{glob}", str(out), "--weights", ckpt, "--device", "cpu", *extra]


def _run(inputs: Path, out: Path, ckpt: str, *extra: str, glob: str = "**") -> None:
    argv = _argv(inputs, out, ckpt, *extra, glob=glob)
    colorize.run(job_args(colorize, argv), list(BEAM_ARGS))


def _images(out: Path) -> dict[str, Path]:
    """Output images by relative path (not the tables, markers or temporary files)."""
    return {
        str(p.relative_to(out)): p
        for p in out.rglob("*.png")
        if not {".chromabeam", "results", "errors", "filtered"} & set(p.relative_to(out).parts)
        and not p.name.startswith(".")
    }


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def _pixels(p: Path) -> np.ndarray:
    with Image.open(p) as img:
        return np.asarray(img.convert("RGB"))


# --- atomic writes ------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.png"
    write_bytes(str(target), b"old content")
    with pytest.raises(RuntimeError), atomic_write(str(target)) as f:
        f.write(b"new, half written")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]
    with pytest.raises(KeyboardInterrupt), atomic_write(str(tmp_path / "b.parquet")) as f:
        f.write(b"x" * 1000)
        raise KeyboardInterrupt
    assert not (tmp_path / "b.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(fileio.PARTIAL)] == []


def test_atomic_write_to_memory_and_object_store_paths(monkeypatch):
    write_bytes("memory://h1-atomic/x/a.bin", b"abc")
    assert fileio.read_bytes("memory://h1-atomic/x/a.bin") == b"abc"
    # object stores: nothing is visible until the block completes, and no temporary object
    monkeypatch.setattr(fileio, "OBJECT_STORES", fileio.OBJECT_STORES | {"memory"})
    with atomic_write("memory://h1-atomic/x/b.bin") as f:
        f.write(b"part")
        assert not fileio.exists("memory://h1-atomic/x/b.bin")
        f.write(b"s")
    assert fileio.read_bytes("memory://h1-atomic/x/b.bin") == b"parts"
    with pytest.raises(RuntimeError), atomic_write("memory://h1-atomic/x/c.bin") as f:
        f.write(b"half")
        raise RuntimeError
    assert not fileio.exists("memory://h1-atomic/x/c.bin")
    assert sorted(fileio.expand_glob("memory://h1-atomic/x/*")) == [
        "memory:///h1-atomic/x/a.bin",
        "memory:///h1-atomic/x/b.bin",
    ]


def test_remove_partials_removes_only_temporaries(tmp_path):
    (tmp_path / "d").mkdir()
    keep = [tmp_path / "a.png", tmp_path / "d" / ".hidden.png", tmp_path / "d" / "x.partial"]
    drop = [tmp_path / f".a.png.0123456789ab{fileio.PARTIAL}", tmp_path / "d" / ".b.json.1.partial"]
    for p in keep + drop:
        p.write_bytes(b"1")
    assert remove_partials(str(tmp_path)) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in drop)


_KILL_WRITER = """
import io, sys, time
import numpy as np
from PIL import Image
from transforms.fileio import atomic_write
rgb = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
buf = io.BytesIO()
Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
data = buf.getvalue()
with atomic_write(sys.argv[1]) as f:
    for i in range(0, len(data), 1 << 18):
        f.write(data[i : i + (1 << 18)])
        f.flush()
        if i == 0:
            print(len(data), flush=True)
        time.sleep(0.02)
print("done", flush=True)
"""


def test_sigkill_during_a_large_png_write_leaves_nothing_resume_trusts(tmp_path):
    """A real SIGKILL while a ~9 MB PNG is being written: no file under the final name, so
    neither the image nor its (never written) marker can be trusted; the rerun cleans up."""
    out = tmp_path / "out"
    cfg = colorize.ColorizeConfig(
        output=str(out),
        bases=(str(tmp_path),),
        model="m",
        weights="w",
        weights_sha256="",
        render_size=32,
        settings=None,
        skip_existing=True,
    )
    target = colorize.output_uri(str(tmp_path / "big.tif"), cfg)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_WRITER, target], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    size = int(proc.stdout.readline())
    time.sleep(random.Random(0).uniform(0.05, 0.3))  # somewhere in the ~36 chunks
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and size > 5_000_000
    partial = [p for p in out.iterdir() if p.name.endswith(fileio.PARTIAL)]
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < size  # killed mid-write
    assert not Path(target).exists()
    assert colorize.resumed_row(str(tmp_path / "big.tif"), "big", cfg) is None
    assert remove_partials(str(out)) == 1 and list(out.iterdir()) == []


# --- --skip-existing checks what it skips ---------------------------------------------------


def test_skip_existing_redoes_truncated_unmarked_and_mismatched_outputs(inputs, ckpt, tmp_path):
    out, glob = tmp_path / "out", "d[01]/img_0*.png"  # 7 images
    _run(inputs, out, ckpt, glob=glob)
    clean = {rel: _pixels(p) for rel, p in _images(out).items()}
    clean_rows = read_table(str(out / "results")).to_pylist()
    assert len(clean) == 7 and _stats(out)["resumed"] == 0
    trunc_no_marker, trunc_marked, no_marker = "d0/img_00.png", "d1/img_01.png", "d0/img_06.png"
    for rel in (trunc_no_marker, trunc_marked):  # what a kill mid-write used to leave
        data = (out / rel).read_bytes()
        (out / rel).write_bytes(data[: len(data) // 3])
    for rel in (trunc_no_marker, no_marker):
        (out / naming.done_marker(rel)).unlink()
    leftover = out / "d0" / f".img_03.png.0123456789ab{fileio.PARTIAL}"
    leftover.write_bytes(b"\x89PNG half")
    redo = {trunc_no_marker, trunc_marked, no_marker}
    mtimes = {rel: p.stat().st_mtime_ns for rel, p in _images(out).items()}

    _run(inputs, out, ckpt, "--skip-existing", glob=glob)
    images = _images(out)
    assert set(images) == set(clean) and not leftover.exists()
    for rel, p in images.items():
        np.testing.assert_array_equal(_pixels(p), clean[rel], err_msg=rel)
        assert (p.stat().st_mtime_ns == mtimes[rel]) == (rel not in redo), rel
    stats = _stats(out)
    assert stats["resumed"] == len(clean) - len(redo)
    assert stats["outcomes"] == {"colorized": len(clean)}
    rows = read_table(str(out / "results")).to_pylist()
    assert sorted(r["output_uri"] for r in rows) == sorted(r["output_uri"] for r in clean_rows)


def test_skip_existing_redoes_outputs_made_with_other_settings(inputs, ckpt, tmp_path):
    out, glob = tmp_path / "out", "d0/img_0[03].png"  # d0 holds every third image
    _run(inputs, out, ckpt, glob=glob)
    _run(inputs, out, ckpt, "--skip-existing", glob=glob)
    assert _stats(out)["resumed"] == 2  # same settings: kept
    _run(inputs, out, ckpt, "--skip-existing", "--strength", "0.5", glob=glob)
    assert _stats(out)["resumed"] == 0  # another strength: redone
    rows = read_table(str(out / "results")).to_pylist()
    assert {r["strength"] for r in rows} == {0.5}


def test_a_temperature_the_decode_does_not_apply_is_recorded_as_none(inputs, ckpt, tmp_path):
    """--decode mean (the annealed mean at T = 1) applies no --temperature: the results record
    none, and a rerun with another temperature keeps the outputs (their colours are the same)."""
    out, glob = tmp_path / "out", "d0/img_0[03].png"
    _run(inputs, out, ckpt, "--decode", "mean", glob=glob)
    rows = read_table(str(out / "results")).to_pylist()
    assert [(r["decode"], r["temperature"]) for r in rows] == [("mean", None)] * 2
    again = ("--skip-existing", "--decode", "mean", "--temperature", "0.2")
    _run(inputs, out, ckpt, *again, glob=glob)
    assert _stats(out)["resumed"] == 2
    _run(inputs, out, ckpt, "--skip-existing", "--temperature", "0.2", glob=glob)  # annealed
    assert _stats(out)["resumed"] == 0
    rows = read_table(str(out / "results")).to_pylist()
    assert [(r["decode"], round(r["temperature"], 4)) for r in rows] == [("annealed", 0.2)] * 2


def test_a_model_that_predicts_ab_records_no_decode_settings(inputs, tmp_path):
    """regression predicts ab directly: neither a decode method nor a temperature shapes its
    colours, so results/ and stats.json record none (not the defaults it ignores)."""
    ckpt = tmp_path / "reg.pt"
    write_tiny_checkpoint(ckpt, "regression")
    out = tmp_path / "out"
    _run(inputs, out, str(ckpt), glob="d0/img_0[03].png")
    rows = read_table(str(out / "results")).to_pylist()
    assert [(r["decode"], r["temperature"]) for r in rows] == [(None, None)] * 2
    settings = _stats(out)["settings"]
    assert settings["decode"] is None and settings["temperature"] is None
    _run(inputs, out, str(ckpt), "--skip-existing", glob="d0/img_0[03].png")
    assert _stats(out)["resumed"] == 2


def test_skip_existing_redoes_outputs_whose_input_changed(inputs, ckpt, tmp_path):
    """A marker records its input's size and version (fileio.file_stamp): an input replaced
    by another photo, or by a broken file, since the earlier run is redone, not kept."""
    src = tmp_path / "in" / "d"
    src.mkdir(parents=True)
    for i in (0, 3, 6):
        shutil.copy(inputs / "d0" / f"img_{i:02d}.png", src / f"img_{i:02d}.png")
    out = tmp_path / "out"
    _run(src.parent, out, ckpt)
    shutil.copy(src / "img_03.png", src / "img_00.png")  # another photo under the same name
    (src / "img_06.png").write_bytes(b"broken now")
    _run(src.parent, out, ckpt, "--skip-existing")
    stats = _stats(out)
    assert stats["resumed"] == 1 and stats["outcomes"] == {"colorized": 2, "undecodable": 1}
    np.testing.assert_array_equal(
        _pixels(out / "d" / "img_00.png"), _pixels(out / "d" / "img_03.png")
    )
    errors = read_table(str(out / "errors")).to_pylist()
    assert [r["uri"] for r in errors] == [str(src / "img_06.png")]
    # the earlier output of the now broken input stays (as a rerun with fewer inputs leaves
    # the others'), but results/ lists only what this run's inputs made
    rows = read_table(str(out / "results")).to_pylist()
    assert sorted(r["source_uri"].rsplit("/", 1)[1] for r in rows) == ["img_00.png", "img_03.png"]


# --- one run per output folder --------------------------------------------------------------


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _write_lock(out: Path, **doc) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / naming.LOCK_NAME
    path.write_text(json.dumps({"job": "colorize", "started": "2026-11-24T10:00:00Z", **doc}))
    return path


def test_a_second_run_refuses_with_the_owner(inputs, ckpt, tmp_path, live_pid):
    out = tmp_path / "out"
    lock = _write_lock(out, pid=live_pid, host=socket.gethostname(), token="t")
    with pytest.raises(SystemExit) as e:
        _run(inputs, out, ckpt)
    msg = str(e.value)
    assert "\n" not in msg and f"pid {live_pid}" in msg and socket.gethostname() in msg
    assert "2026-11-24T10:00:00Z" in msg and str(lock) in msg
    assert sorted(p.name for p in out.iterdir()) == [naming.LOCK_NAME]  # nothing written
    assert json.loads(lock.read_text())["pid"] == live_pid  # and the lock left alone


def test_lock_is_exclusive_and_released_on_any_exit(tmp_path):
    out = str(tmp_path / "out")
    with locking.output_lock(out, "stage") as doc:
        held = json.loads((tmp_path / "out" / naming.LOCK_NAME).read_text())
        assert held["pid"] == os.getpid() and held["token"] == doc["token"]
        assert held["host"] == socket.gethostname() and held["job"] == "stage"
        with pytest.raises(SystemExit, match=f"pid {os.getpid()}"):
            locking.acquire(out, "colorize")  # this process is alive: a second run refuses
    assert not (tmp_path / "out" / naming.LOCK_NAME).exists()
    for exc in (KeyboardInterrupt, RuntimeError):
        with pytest.raises(exc), locking.output_lock(out, "colorize"):
            raise exc
        assert not (tmp_path / "out" / naming.LOCK_NAME).exists()


def test_stale_lock_is_taken_over_other_hosts_are_not(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _write_lock(out, pid=dead.pid, host=socket.gethostname(), token="old")
    with locking.output_lock(str(out), "colorize") as doc:
        assert json.loads((out / naming.LOCK_NAME).read_text())["token"] == doc["token"]
    assert "no longer running" in caplog.text and f"pid {dead.pid}" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == []
    _write_lock(out, pid=dead.pid, host="some-other-host", token="other")
    with pytest.raises(SystemExit, match="some-other-host"):
        locking.acquire(str(out), "colorize")


# --- real kills and concurrent runs (subprocesses) ------------------------------------------


def _cli(inputs: Path, out: Path, ckpt: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "colorize",
        *_argv(inputs, out, ckpt, "--batch-size", "4", *extra),
        *BEAM_ARGS,
    ]


def _markers(out: Path) -> int:
    return len(list((out / naming.DONE_DIR).rglob("*.json"))) if out.exists() else 0


@pytest.mark.slow
def test_kill_and_resume_equals_a_clean_run(inputs, ckpt, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    clean, out = tmp_path / "clean", tmp_path / "resumed"
    subprocess.run(_cli(inputs, clean, ckpt), cwd=ROOT, env=env, check=True, capture_output=True)
    rng = random.Random(9)
    kills, refused = [], False
    for attempt in range(4):
        proc = subprocess.Popen(
            _cli(inputs, out, ckpt, "--skip-existing"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=sigint_as_a_terminal_sends_it,
        )
        sig = signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT
        if attempt == 0:
            # the first run is killed while a second run into the same folder is refused: it
            # is paused as soon as it holds the lock (alive, so the second run must refuse)
            while proc.poll() is None and not (out / naming.LOCK_NAME).exists():
                time.sleep(0.01)
        else:
            target = _markers(out) + rng.randint(1, 6)  # a random point in the run
            while proc.poll() is None and _markers(out) < target:
                time.sleep(0.01)
        if proc.poll() is None and sig == signal.SIGKILL:
            # paused where it is, so that 30 tiny images cannot all finish before the kill
            # lands (a stopped process still takes SIGKILL)
            proc.send_signal(signal.SIGSTOP)
            if attempt == 0:
                try:
                    with pytest.raises(SystemExit, match=f"pid {proc.pid}"):
                        _run(inputs, out, ckpt, "--skip-existing")
                finally:
                    refused = True
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)
        elif proc.poll() is None:  # Ctrl-C as a user gives it, to a running process
            proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # an interrupt that does not end the run is a bug
            proc.kill()
            proc.wait()
            pytest.fail(f"{sig.name} did not stop the run")
        kills.append((sig.name, proc.returncode, _markers(out)))
        stderr = proc.stderr.read().decode()
        if sig == signal.SIGINT and proc.returncode != 0:
            # Ctrl-C, wherever it lands: exit 130 and the one line (never a silent exit 1)
            assert proc.returncode == 130, stderr[-500:]
            assert "colorize interrupted" in stderr.splitlines()[-1], stderr[-500:]
            assert not (out / naming.LOCK_NAME).exists()  # released on Ctrl-C
    finished_before = _markers(out)
    print("kills (signal, exit code, outputs finished):", kills)
    assert 0 < finished_before < N_GOOD, kills  # some work was interrupted
    assert refused  # the concurrent run was tried while the first one held the folder

    subprocess.run(
        _cli(inputs, out, ckpt, "--skip-existing"),
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    a, b = _images(clean), _images(out)
    assert set(a) == set(b) and len(a) == N_GOOD
    for rel in a:
        np.testing.assert_array_equal(_pixels(a[rel]), _pixels(b[rel]), err_msg=rel)
    same_bytes = sum(a[rel].read_bytes() == b[rel].read_bytes() for rel in a)
    print(f"{same_bytes}/{N_GOOD} outputs byte-identical to the clean run")
    rows_a = read_table(str(clean / "results")).to_pylist()
    rows_b = read_table(str(out / "results")).to_pylist()
    assert len(rows_b) == N_GOOD == len({r["output_uri"] for r in rows_b})
    rel_of = lambda rows, o: sorted(os.path.relpath(r["output_uri"], o) for r in rows)  # noqa: E731
    assert rel_of(rows_a, clean) == rel_of(rows_b, out)
    assert read_table(str(out / "errors")).num_rows == len(BAD)
    sa, sb = _stats(clean), _stats(out)
    assert sb["outcomes"] == sa["outcomes"] and sb["total"] == sa["total"] == N_GOOD + len(BAD)
    assert sb["resumed"] == finished_before  # a marker is written only for a complete image
    assert not [p for p in out.rglob("*") if p.name.endswith(fileio.PARTIAL)]
    assert not (out / naming.LOCK_NAME).exists()


def test_an_unreadable_lock_file_says_so(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / naming.LOCK_NAME).write_bytes(b"\x00garbage")
    with pytest.raises(SystemExit, match="its lock file is unreadable or names no owner"):
        locking.acquire(str(out), "colorize")
    assert (out / naming.LOCK_NAME).read_bytes() == b"\x00garbage"  # left for the user


def test_a_broken_symlink_is_named_as_one(tmp_path):
    from pipeline.common import unreadable_reason

    link = tmp_path / "photo.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    try:
        open(link, "rb")
    except FileNotFoundError as e:
        reason = unreadable_reason(str(link), e)
    assert reason == f"broken symbolic link: its target {tmp_path / 'gone.jpg'} does not exist"
    missing = tmp_path / "missing.jpg"
    err = FileNotFoundError(2, "No such file or directory", str(missing))
    assert unreadable_reason(str(missing), err) == str(err)
