"""Issue 14: the shared-model option of models.handler.ColorizerHandler, the train check on the
shards' colour space, the shard writer, the workers' garbage-collector freeze, and the bench
helpers that separate start-up from steady state."""

from __future__ import annotations

import os
import uuid

import fsspec
import numpy as np
import pytest

from tests.conftest_models import write_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny") / "model.pt"
    write_tiny_checkpoint(path)
    return str(path)


def test_handler_shares_the_model_only_when_asked(tiny_ckpt):
    from models.handler import ColorizerHandler, SharedPredictor
    from models.infer import DecodeSettings, predict

    plain = ColorizerHandler(None, tiny_ckpt, "cpu")
    assert not plain.share_model_across_processes()
    shared = ColorizerHandler(None, tiny_ckpt, "cpu", large_model=True)
    assert shared.share_model_across_processes() and shared.model_copies() == 1
    two = ColorizerHandler(None, tiny_ckpt, "cpu", model_copies=2)
    assert two.share_model_across_processes() and two.model_copies() == 2
    assert shared.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 8}

    model = plain.load_model()
    predictor = shared.load_model()
    assert isinstance(predictor, SharedPredictor)
    rng = np.random.default_rng(0)
    l_batch = [rng.uniform(0, 100, (32, 32)).astype(np.float32) for _ in range(2)]
    ref = [r.inference for r in plain.run_inference(l_batch, model)]
    got = [r.inference for r in shared.run_inference(l_batch, predictor)]
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        predictor.predict(np.stack(l_batch), DecodeSettings())[0],
        predict(model, np.stack(l_batch), DecodeSettings())[0],
    )


def test_shared_predictor_works_through_beams_process_proxy(tiny_ckpt):
    """What RunInference does with large_model=True: the handler's model served from another
    process by apache_beam.utils.multi_process_shared, called through a proxy."""
    from apache_beam.utils.multi_process_shared import MultiProcessShared

    from models.handler import ColorizerHandler

    handler = ColorizerHandler(None, tiny_ckpt, "cpu", large_model=True)
    shared = MultiProcessShared(handler.load_model, tag=uuid.uuid4().hex, always_proxy=True)
    proxy = shared.acquire()
    try:
        l_batch = [np.full((32, 32), 50.0, np.float32)]
        got = handler.run_inference(l_batch, proxy)[0].inference
        ref = handler.run_inference(l_batch, handler.load_model())[0].inference
        np.testing.assert_array_equal(got, ref)
    finally:
        shared.release(proxy)


def test_tick_sampler_startup_and_steady_rate():
    from bench._common import TickSampler

    s = TickSampler("stage")
    s.samples = [(0.5, 0), (1.0, 0), (2.0, 10), (3.0, 50), (4.0, 90), (5.0, 100)]
    assert s.first() == 2.0
    assert s.steady(100, 0.10, 0.90) == pytest.approx((90 - 10) / (4.0 - 2.0))
    assert s.steady(1000, 0.10, 0.90) is None  # never reached 90%


def _bare_files(folder) -> list[str]:
    """Four small JPEGs and one undecodable file."""
    from PIL import Image

    files = []
    for i in range(4):
        path = folder / f"{i}.jpg"
        Image.new("RGB", (48, 40), (40 * i, 90, 200)).save(path)
        files.append(str(path))
    (folder / "bad.jpg").write_bytes(b"not an image")
    return [*files, str(folder / "bad.jpg")]


def test_profile_breakdown_writes_only_the_first_files_rows(tmp_path, monkeypatch):
    """bench/stage.py's cProfile breakdown: every part of stage_batch measured, and the
    Parquet write timed on the kept rows of the first PARQUET_PROFILE_FILES files only (the
    profiled loop holds no rows, as the job's workers do not)."""
    from PIL import Image

    import bench.stage as bench_stage

    written = []
    real = bench_stage.write_as_the_job
    monkeypatch.setattr(bench_stage, "PARQUET_PROFILE_FILES", 2)
    monkeypatch.setattr(
        bench_stage, "write_as_the_job", lambda rows, d: written.append(len(rows)) or real(rows, d)
    )
    rng = np.random.default_rng(0)
    files = []
    for i in range(4):  # colourful noise: kept by the tone filter
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(files[-1])
    out = bench_stage.profile_breakdown(files, 32, str(tmp_path), batch=2)
    assert written == [2, 2]  # two writes (the second is timed) of the first 2 files' rows
    assert out["stage_batch total"] > 0 and out["decode"] > 0
    assert out["Parquet per kept row"] > 0
    assert all(v >= 0 for k, v in out.items() if k != "other (in stage_batch)")


@pytest.mark.parametrize("work", ["bare", "stage"])
def test_loop_until_loops_for_its_seconds_and_counts_bad_files(tmp_path, work):
    """One process of bench/stage.py's concurrent loops: waits on the barrier, loops over
    the files until its deadline (more than one pass here), counts a bad file as done."""
    import queue
    import threading
    import time

    import bench.stage as bench_stage

    files, counts = _bare_files(tmp_path), queue.Queue()
    start = time.perf_counter()
    bench_stage._loop_until(files, 32, work, threading.Barrier(1), 0.3, counts)
    assert time.perf_counter() - start >= 0.3
    done, taken, user, system = counts.get_nowait()
    assert done > 2 * len(files)  # several passes, the bad file included in each
    assert taken >= 0.3
    assert user + system > 0.1  # the busy loop's CPU seconds (RUSAGE_SELF over its window)
    assert counts.empty()


def test_tree_sampler_reads_cpu_seconds_per_role(tmp_path):
    """TreeSampler(cpu=True) keeps each process's CPU seconds as last seen: the root of the
    tree is the launcher, a child whose command line names Beam's sdk_worker_main a worker."""
    import subprocess
    import sys

    from bench._common import TreeSampler, cpu_seconds, process_role
    from transforms.threads import SDK_WORKER_MAIN

    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 0.4: pass')"
    child = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {burn!r}, {SDK_WORKER_MAIN!r}])"
    )
    proc = subprocess.Popen([sys.executable, "-c", f"{burn}; {child}"])
    with TreeSampler(proc.pid, 0.02, cpu=True) as sampler:
        proc.wait()
    by_role = sampler.cpu_by_role()
    assert sum(by_role["launcher"]) > 0.2 and sum(by_role["worker"]) > 0.2
    assert sum(by_role["launcher"]) + sum(by_role["worker"]) < 2.0
    assert cpu_seconds(proc.pid) is None  # gone (reaped)
    user, system = cpu_seconds(os.getpid())
    assert user > 0 and system >= 0
    assert process_role(os.getpid(), os.getpid()) == "launcher"
    assert process_role(os.getpid(), 1) == "other"  # pytest's command line: not a worker
    from bench._common import tree_pids, tree_rss

    rss, n = tree_rss(os.getpid(), [os.getpid()])  # the pids given: no walk of /proc
    assert n == 1 and rss > 10 << 20 and os.getpid() in tree_pids(os.getpid())


def test_cpu_between_interpolates_the_samples_and_the_window_is_the_steady_rate_s():
    """TreeSampler.cpu_between: CPU seconds per role between two times, interpolated between
    the samples around each (None outside them); TickSampler.window: the samples the steady
    rate is taken between, on the same clock; steady_cpu: ms per input over that window."""
    import bench.stage as bench_stage
    from bench._common import TickSampler, TreeSampler

    sampler = TreeSampler(0, 0.1, cpu=True)
    sampler.series = [
        (10.0, {"worker": (1.0, 0.1)}),
        (11.0, {"worker": (2.0, 0.3), "launcher": (0.5, 0.0)}),
        (12.0, {"worker": (4.0, 0.5), "launcher": (0.6, 0.0)}),
    ]
    used = sampler.cpu_between(10.5, 11.5)
    assert used["worker"] == pytest.approx((1.5, 0.2))  # (1.5, 0.2) at 10.5 -> (3.0, 0.4)
    assert used["launcher"] == pytest.approx((0.3, 0.0))  # 0.25 -> 0.55 (none before: 0)
    assert sampler.cpu_between(9.0, 11.0) is None and sampler.cpu_between(10.5, 13.0) is None
    ticks = TickSampler("stage")
    ticks.t0, ticks.samples = 10.0, [(0.2, 0), (0.5, 10), (1.0, 50), (1.5, 95), (1.9, 100)]
    assert ticks.window(100, 0.1, 0.9) == ((10.5, 10), (11.5, 95))
    assert ticks.steady(100, 0.1, 0.9) == pytest.approx(85.0)
    assert TickSampler("stage").window(100, 0.1, 0.9) is None
    cpu = bench_stage.steady_cpu(sampler, ticks, 100)
    assert cpu["seconds"] == pytest.approx(1.0)
    assert cpu["roles"]["worker"] == pytest.approx((1500 / 85, 200 / 85))
    run = {"workers": 2, "space": "lab", "rate": 85.0, "steady_cpu": cpu}
    lines = bench_stage.steady_cpu_lines([run, {"workers": 1, "space": "lab"}])
    assert len(lines) == 3 and "SDK workers" in lines[1] and "launcher" in lines[2]
    # 1.7 CPU s per s over 2 workers: on a CPU 85% of the window
    assert lines[1].endswith("workers on a CPU 85% of the window")


def test_speedup_note_splits_the_speedup_into_cores_and_cpu_per_input():
    """2 workers vs 1 = (cores in use) x (CPU per input), with the ceiling that one worker's
    cores leave on the machine: hand-computed figures."""
    import bench.stage as bench_stage

    def run(workers, rate, user, system):
        return {
            "workers": workers,
            "rate": rate,
            "steady_cpu": {"roles": {"worker": (user, system)}},
        }

    one, two = run(1, 300.0, 3.5, 0.3), run(2, 480.0, 3.6, 0.4)
    assert bench_stage.worker_cores(one) == pytest.approx(1.14)  # 3.8 ms x 300 /s
    assert bench_stage.worker_cores(two) == pytest.approx(1.92)  # 4.0 ms x 480 /s
    note = bench_stage.speedup_note(one, two, 2)
    # 1.60x = 1.68x (1.92 / 1.14) x 0.95 (3.8 / 4.0); at most 2 / 1.14 = 1.75x
    assert note == (
        "2 worker(s) vs 1: 1.60x = 1.68x the cores in use (1.92 vs 1.14) x 0.95 (CPU per "
        "input 3.80 vs 4.00 ms); with one worker on 1.14 cores, 2 cores give at most 1.75x "
        "at its CPU per input"
    )
    assert "at most 2.00x" in bench_stage.speedup_note(run(1, 200.0, 3.5, 0.3), two, 4)
    assert bench_stage.speedup_note({"workers": 1, "rate": 300.0}, two, 2) is None


def test_cpu_lines_split_the_job_from_the_loop():
    """CPU ms per input from two runs' process trees (the bigger minus the smaller, over its
    extra inputs), beside the Beam-free loop's: hand-computed figures."""
    import bench.stage as bench_stage

    small = {"cpu": {"worker": (2.0, 1.0), "launcher": (1.0, 0.1)}}
    big = {"cpu": {"worker": (5.0, 1.6), "launcher": (1.3, 0.1)}}
    loop = bench_stage.LoopRun(rate=100.0, user_ms=0.9, system_ms=0.1)
    lines = bench_stage.cpu_lines(small, big, 3000, loop)
    cells = {line[:72].strip(): line[72:].split() for line in lines[1:]}
    assert cells["SDK workers"] == ["1.00", "0.20", "1.20"]
    assert cells["launcher (runner)"] == ["0.10", "0.00", "0.10"]
    assert cells["stage loop without Beam (the same processes at once)"] == ["0.90", "0.10", "1.00"]
    assert cells["Beam and the rest (job - loop)"] == ["0.30"]
    assert len(bench_stage.cpu_lines(small, big, 3000, None)) == 3


def _fake_shards(sleep: float = 0.0, fail: bool = False):
    """A stand-in for staging.ShardFile: (the class, the files it opened); each file records
    its row groups' keys and whether it was closed or aborted. `sleep`: each row group takes
    that long (the worker comes back meanwhile); `fail`: writing raises OSError."""
    import threading
    import time

    opened: list = []
    lock, state = threading.Lock(), {"in_flight": 0, "most": 0}

    class Fake:
        def __init__(self, out_dir, prefix):
            self.uri = f"{out_dir}/{prefix}-{len(opened)}"
            self.groups, self.closed, self.aborted = [], False, False
            opened.append(self)

        def write(self, rows):
            with lock:
                state["in_flight"] += 1
                state["most"] = max(state["most"], state["in_flight"])
            try:
                time.sleep(sleep)
                if fail:
                    raise OSError("disk full")
                self.groups.append([r["key"] for r in rows])
            finally:
                with lock:
                    state["in_flight"] -= 1

        def close(self):
            self.closed = True
            return self.uri

        def abort(self):
            self.aborted = True

    Fake.state = state
    return Fake, opened


def test_stage_work_writes_a_shard_at_the_jobs_row_limit(tmp_path):
    """The Beam-free stage loop hands the kept rows to the job's shard writer, which closes a
    shard once the job's --shard-rows is reached; by default each shard is removed once
    written."""
    import bench.stage as bench_stage

    fake, opened = _fake_shards()
    work = bench_stage.StageWork(32, str(tmp_path), shard_rows=4, open_shard=fake)
    from PIL import Image

    from tests.helpers import smooth_colour_field

    files = [str(tmp_path / "bad.jpg")]
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    for i in range(3):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(smooth_colour_field(40, 48, seed=i)).save(files[-1])
    work(files)  # 3 kept, 1 error: a row group of 3 rows (under 8 MiB) waits
    assert opened == []
    work(files)  # the 4th row fills a shard: its rows go to the writer thread, as in the job
    work(files)
    work.flush()  # the write in flight, then the rows left
    assert [sum(map(len, f.groups)) for f in opened] == [4, 4, 1]
    assert all(f.closed and not f.aborted for f in opened)
    real = bench_stage.StageWork(32, str(tmp_path / "real"))
    real(files)
    real.flush()
    assert not list((tmp_path / "real").glob("*.parquet"))  # RemovedShard: written, removed


@pytest.mark.slow
def test_concurrent_rate_runs_processes_at_once(tmp_path):
    import bench.stage as bench_stage

    files = _bare_files(tmp_path)
    assert bench_stage.concurrent_rate(files, 32, 2, 0.3) > 0
    assert bench_stage.concurrent_rate(files, 32, 2, 0.3, "stage") > 0


def test_single_image_colorize_imports_no_beam(tmp_path):
    """`colorize IMAGE -o OUT` (and the CLI's option checks) never import Beam: about 1 s of the
    single-image start-up (issue 14's < 3 s target)."""
    import subprocess
    import sys

    from PIL import Image

    from tests.helpers import smooth_colour_field

    src = tmp_path / "p.png"
    Image.fromarray(smooth_colour_field(40, 48, seed=1)).save(src)
    code = (
        "import sys; from pipeline import cli; "
        f"rc = cli.main(['colorize', {str(src)!r}, '-o', {str(tmp_path / 'o.png')!r}]); "
        "print(rc, 'apache_beam' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"], out.stdout + out.stderr
    assert (tmp_path / "o.png").exists()


def _stream(fake, n=4, group_bytes=10**9, **kw):
    from pipeline.common import StreamShards

    fn = StreamShards("o", "part", n, fake, group_bytes, **kw)
    fn.setup()
    fn.start_bundle()
    return fn


def _run_bundle(fn, elements) -> list[str]:
    out = [u for e in elements for u in fn.process(e)]
    out += [w.value for w in fn.finish_bundle()]
    fn.teardown()
    return out


def test_shard_writer_cuts_files_by_rows_or_pixel_bytes_and_groups_by_bytes():
    """A file holds at most n rows and max_bytes of the rows' binary fields (--shard-mb);
    within it, row groups of group_bytes; every row is written once, in order."""
    from pipeline.common import row_bytes

    rows = [{"key": str(i), "l": b"x" * 10, "ab": b"y" * 20} for i in range(10)]
    assert row_bytes(rows[0]) == 30
    fake, opened = _fake_shards()
    out = _run_bundle(_stream(fake, max_bytes=70), rows)
    assert [sum(map(len, f.groups)) for f in opened] == [3, 3, 3, 1]  # 90 B >= 70 after 3
    assert [k for f in opened for g in f.groups for k in g] == [str(i) for i in range(10)]
    assert out == [f.uri for f in opened] and all(f.closed for f in opened)
    fake, opened = _fake_shards()
    _run_bundle(_stream(fake, group_bytes=50), rows)  # rows only; groups of 2 rows (60 B)
    assert [[len(g) for g in f.groups] for f in opened] == [[2, 2], [2, 2], [2]]


def test_shard_writer_writes_one_group_at_a_time_and_outputs_closed_files():
    """`stage`'s writer thread: never two row groups in flight (memory: two groups' rows at
    most), each URI output only once its file is closed, and the bundle ends only when its
    last file is."""
    fake, opened = _fake_shards(sleep=0.02)
    fn = _stream(fake, n=3, group_bytes=1)  # a row group per row
    out = []
    for i in range(10):
        for uri in fn.process({"key": str(i), "l": b"x"}):
            assert [f.closed for f in opened if f.uri == uri] == [True]
            out.append(uri)
    out += [w.value for w in fn.finish_bundle()]
    assert all(f.closed for f in opened)
    fn.teardown()
    assert out == [f.uri for f in opened] and len(out) == 4
    assert [k for f in opened for g in f.groups for k in g] == [str(i) for i in range(10)]
    assert fake.state["most"] == 1


def test_shard_writer_failure_fails_the_bundle_and_drops_its_file():
    """A write that fails on the writer thread raises in the worker (the bundle fails and is
    retried), not silently; the file it was writing is aborted, none is closed."""
    fake, opened = _fake_shards(fail=True)
    fn = _stream(fake, n=3, group_bytes=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(4):  # the next row waits for the failed write of row 0
            list(fn.process({"key": str(i), "l": b"x"}))
        list(fn.finish_bundle())
    fn.start_bundle()  # the retried bundle starts clean
    assert fn._pending is None and fn.group == [] and fn.rows == 0
    fn.teardown()
    assert opened and all(f.aborted and not f.closed for f in opened)


def test_stage_shards_written_by_row_groups_are_write_shard_rows_files(tmp_path):
    """The shards `stage` writes a row group at a time (StreamShards + ShardFile) hold the
    rows of one write_shard_rows call each, under the same names."""
    import pyarrow.parquet as pq

    from tests.helpers import IMAGENET
    from transforms.staging import ShardFile, StageConfig, stage_batch, write_shard_rows

    items = [(str(p), p.read_bytes()) for p in sorted(IMAGENET.glob("*.JPEG"))[:7]]
    rows = [r for r in stage_batch(items, StageConfig(size=32)) if isinstance(r, dict)]
    from pipeline.common import StreamShards

    fn = StreamShards(str(tmp_path / "s"), "part", 3, ShardFile, 2 * 32 * 32 * 3)  # 2 rows
    fn.setup()
    fn.start_bundle()
    uris = _run_bundle(fn, rows)
    assert len(uris) == 3 and sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        u.rsplit("/", 1)[1] for u in uris
    )  # no temporary file left
    for i, uri in enumerate(uris):
        want = write_shard_rows(rows[3 * i : 3 * i + 3], str(tmp_path / "w"), "part")
        assert want.rsplit("/", 1)[1] == uri.rsplit("/", 1)[1]
        assert pq.read_table(uri).equals(pq.read_table(want))
    assert pq.ParquetFile(uris[0]).metadata.num_row_groups == 2  # rows 2 + 1


def test_batch_bytes_are_counted_without_pickling():
    """RunInference's byte counter: the arrays' bytes (Beam's default pickles every key, and the
    jobs' keys carry full-resolution L), the same total whatever the nesting."""
    from apache_beam.ml.inference.base import KeyedModelHandler

    from models.handler import ColorizerHandler, KeyedColorizerHandler, num_bytes

    l_full = np.zeros((375, 500), np.float32)
    example = np.zeros((128, 128), np.float32)
    item = {"uri": "a/b.jpg", "l_full": l_full, "l_render": example, "hints": 0, "exif": b"xy"}
    assert num_bytes(item) == len("a/b.jpg") + l_full.nbytes + example.nbytes + 8 + 2
    assert num_bytes([item, (example, None)]) == num_bytes(item) + example.nbytes + 8
    handler = KeyedColorizerHandler(ColorizerHandler("eccv16-small", None))
    batch = [(item, example)] * 3
    assert handler.get_num_bytes(batch) == 3 * (num_bytes(item) + example.nbytes)
    assert isinstance(handler, KeyedModelHandler)
    assert ColorizerHandler("eccv16-small", None).get_num_bytes([example] * 2) == 2 * example.nbytes


def test_colorize_runs_large_jobs_on_worker_processes():
    """Local colorize runs of PROCESSES_FROM inputs or more use worker processes (the GIL held
    two worker threads to the rate of one), smaller ones threads (no process start-up); a
    --direct_running_mode given on the command line wins."""
    from apache_beam.options.pipeline_options import DirectOptions

    from pipeline import colorize
    from pipeline.options import make_pipeline_options

    assert colorize.local_mode(colorize.PROCESSES_FROM) == "multi_processing"
    assert colorize.local_mode(colorize.PROCESSES_FROM - 1) == "multi_threading"
    assert colorize.local_mode(0) == "multi_threading"
    big = make_pipeline_options([], local_mode=colorize.local_mode(10_000))
    assert big.view_as(DirectOptions).direct_running_mode == "multi_processing"
    given = make_pipeline_options(
        ["--direct_running_mode=in_memory"], local_mode=colorize.local_mode(10_000)
    )
    assert given.view_as(DirectOptions).direct_running_mode == "in_memory"


@pytest.mark.parametrize("object_store", [False, True])
def test_shard_file_is_invisible_until_closed_and_leaves_nothing_when_aborted(
    monkeypatch, object_store
):
    """ShardFile on an fsspec URL, a rename file system (memory://) or an object store (one
    upload at close): no shard is visible before close, nothing at all after abort."""
    import uuid

    import pyarrow.parquet as pq

    from transforms import fileio
    from transforms.staging import ShardFile

    if object_store:
        monkeypatch.setattr(fileio, "OBJECT_STORES", fileio.OBJECT_STORES | {"memory"})
    name = f"shardfile-{uuid.uuid4().hex[:8]}"
    root, fs = f"memory://{name}", fsspec.filesystem("memory")

    def files(folder: str = "") -> list[str]:  # every file below root (hidden ones too)
        path = f"/{name}{folder}"
        return sorted(fs.find(path)) if fs.exists(path) else []

    rows = [_shard_row(i) for i in range(5)]
    shard = ShardFile(root, "part")
    shard.write(rows[:3])
    shard.write(rows[3:])
    assert not [f for f in files() if f.endswith(".parquet")]
    uri = shard.close()
    assert files() == [f"/{name}/" + uri.rsplit("/", 1)[1]]  # the shard alone: no temporary
    with fsspec.open(uri, "rb") as f:
        table = pq.read_table(f)
    assert table.column("key").to_pylist() == [r["key"] for r in rows]
    assert pq.ParquetFile(fsspec.open(uri, "rb").open()).metadata.num_row_groups == 2
    dropped = ShardFile(root + "/b", "part")
    dropped.write(rows)
    dropped.abort()
    assert files("/b") == []
    fs.rm(f"/{name}", recursive=True)


def _shard_row(i: int) -> dict:
    """A shard row (schema.SHARD_SCHEMA) of a 2x2 crop."""
    return {
        "key": f"k{i}",
        "source_uri": f"s{i}.jpg",
        "split": "train",
        "width": 2,
        "height": 2,
        "sha256": "0" * 64,
        "size": 2,
        "l": bytes(4),
        "ab": bytes(8),
        "hist": [0, 4],
        "mean_chroma": 0.0,
        "space": "lab",
    }


def test_shard_writer_takes_lists_of_rows_as_it_takes_rows():
    """StreamShards(batched=True), as `stage` uses it on SafeApplyBatch's lists: the same
    files, cut at the same rows, as one row per element."""
    rows = [{"key": str(i), "l": b"x" * 10} for i in range(10)]
    files = {}
    for batched, elements in ((False, rows), (True, [rows[:4], rows[4:5], rows[5:]])):
        fake, opened = _fake_shards()
        _run_bundle(_stream(fake, n=3, max_bytes=25, batched=batched), elements)
        files[batched] = [[k for g in f.groups for k in g] for f in opened]
    assert files[True] == files[False]
    assert [len(w) for w in files[True]] == [3, 3, 3, 1]


def test_freeze_long_lived_freezes_only_in_a_beam_sdk_worker(monkeypatch):
    import gc
    import importlib.machinery
    import sys

    from transforms import threads

    before = gc.get_freeze_count()
    assert not threads.in_sdk_worker()  # pytest's own process
    assert threads.freeze_long_lived() is False
    assert gc.get_freeze_count() == before
    spec = importlib.machinery.ModuleSpec(threads.SDK_WORKER_MAIN, None)
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", spec, raising=False)
    assert threads.in_sdk_worker()
    try:
        assert threads.freeze_long_lived() is True
        assert gc.get_freeze_count() > before + 10_000  # pytest's, Beam's, numpy's objects
    finally:
        gc.unfreeze()
