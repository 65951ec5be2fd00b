"""pipeline.progress: ticks summed across processes, progress lines, and a small run's lines."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import threading
import time

import pytest
from PIL import Image

from pipeline import cli, progress
from tests.conftest_models import BEAM_ARGS
from tests.helpers import smooth_colour_field


def _worker(n: int) -> None:
    for _ in range(n):
        progress.tick("job")


def test_ticks_from_several_processes_are_summed(monkeypatch):
    with progress.report("job", total=100, interval=60) as rep:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_worker, args=(n,)) for n in (7, 11)]
        for p in procs:
            p.start()
        _worker(5)  # the driver's own process (threads of the local runner)
        for p in procs:
            p.join(timeout=30)
        assert {p.exitcode for p in procs} == {0}
        assert rep.done() == 23
        names = os.listdir(rep.folder)
        assert len(names) == 3 and all(n.startswith("job.") for n in names)  # one per process
        assert progress.count(rep.folder, "other") == 0
    assert os.environ.get(progress.ENV) is None and not os.path.exists(rep.folder)
    progress.tick("job")  # no reporter: a no-op, no error


def test_done_is_capped_and_counts_items_of_several_ticks():
    with progress.report("ev", total=3, per_item=4, interval=60) as rep:
        progress.tick("ev", 4 * 2 + 3)
        assert rep.done() == 2  # two whole items, the third not yet
        progress.tick("ev", 40)  # a retried bundle ticks again
        assert rep.done() == 3
    assert progress.last_state() == ("ev", 3, 3)


def test_line_format():
    assert (
        progress.line("colorize", 120, 400, 9.8) == "colorize: 120/400 images, 9.8 img/s, ETA 29 s"
    )
    assert progress.line("stage", 0, 10, None) == "stage: 0/10 images"
    assert progress.line("stage", 10, 1000, 1.0).endswith("ETA 16 min 30 s")
    assert progress.line("stage", 5, 5, 2.0) == "stage: 5/5 images, 2 img/s"


def test_reporter_logs_periodic_lines(caplog):
    caplog.set_level(logging.INFO, logger="chromabeam.progress")
    stop = threading.Event()

    def work():
        while not stop.is_set():
            progress.tick("job")
            time.sleep(0.01)

    with progress.report("job", total=10_000, interval=0.1):
        t = threading.Thread(target=work)
        t.start()
        time.sleep(0.6)
        stop.set()
        t.join()
    lines = [r.getMessage() for r in caplog.records if r.name == "chromabeam.progress"]
    periodic = [ln for ln in lines if re.fullmatch(r"job: \d+/10000 images.*", ln)]
    assert len(periodic) >= 3, lines
    assert any("img/s, ETA" in ln for ln in periodic), lines
    assert re.fullmatch(r"job: \d+/10000 images in \d+ s \([\d.]+ img/s\)", lines[-1]), lines
    done = [int(re.match(r"job: (\d+)/", ln).group(1)) for ln in periodic]
    assert done == sorted(done) and done[-1] > 0


def test_disabled_or_empty_reports_nothing():
    with progress.report("job", total=5, enabled=False) as rep:
        assert rep is None and os.environ.get(progress.ENV) is None
    with progress.report("job", total=0) as rep:
        assert rep is None


@pytest.fixture
def fast_progress(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0.05")


def test_a_small_stage_run_prints_progress(tmp_path, capsys, fast_progress):
    for i in range(4):
        Image.fromarray(smooth_colour_field(48, 40, seed=i)).save(tmp_path / f"c{i}.png")
    code = cli.main(
        ["stage", f"{tmp_path}/*.png", str(tmp_path / "out"), "--size", "32", *BEAM_ARGS]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert re.search(r"chromabeam\.progress: stage: 4/4 images in \d+ s", err), err
    # quiet: Beam's own INFO lines are hidden, the run prints a handful of lines
    assert "apache_beam" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) <= 12, err


def test_a_small_colorize_run_records_decode_and_frames(tmp_path, capsys, fast_progress):
    """colorize through the CLI: progress lines, and the results table's decode / frame
    columns (an animated GIF: frame 0 of 3 is colorized)."""
    import numpy as np

    from tests.conftest_models import write_tiny_checkpoint
    from transforms.fileio import read_table

    ckpt = tmp_path / "tiny.pt"
    write_tiny_checkpoint(ckpt, "eccv16-small", seed=1)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_colour_field(30, 40)).convert("L").save(src / "still.png")
    frames = [Image.fromarray(np.full((24, 32), 60 * i + 20, np.uint8)) for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    argv = ["colorize", f"{src}/*", str(out), "--weights", str(ckpt), "--device", "cpu"]
    assert cli.main(argv + ["--decode", "mode", *BEAM_ARGS]) == 0
    err = capsys.readouterr().err
    assert re.search(r"colorize: 2/2 images in \d+ s", err), err
    assert "apache_beam" not in err, err
    rows = {
        r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(str(out / "results")).to_pylist()
    }
    assert rows["anim.gif"]["frames"] == 3 and rows["anim.gif"]["frame"] == 0
    assert rows["still.png"]["frames"] == 1 and rows["still.png"]["frame"] == 0
    assert {r["decode"] for r in rows.values()} == {"mode"}
