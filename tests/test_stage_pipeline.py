"""End-to-end runs of the `stage` job on small generated folders (and, slow, on real data)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.helpers import (
    IMAGENET,
    ROOT,
    SEPIA,
    capture_pipelines,
    encode,
    gray_photo,
    smooth_colour_field,
    tone_curve,
    upstream_of,
)
from transforms import fileio, schema
from transforms.bins import gamut_bins, num_bins
from transforms.fileio import expand_glob

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
SIZE = 32
SHARD_ROWS = 4


def _inputs() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, expected outcome) for a small, mixed archive."""
    files: dict[str, tuple[bytes, str]] = {}
    shapes = [(80, 120), (96, 64), (72, 72), (100, 150)]
    for i, (h, w) in enumerate(shapes):
        rgb = smooth_colour_field(h, w, seed=100 + i)
        files[f"colour{i}.jpg"] = (encode(Image.fromarray(rgb), "JPEG", quality=90), schema.KEPT)
    for i in range(2):
        rgb = smooth_colour_field(64, 90, seed=200 + i)
        files[f"colour_png{i}.png"] = (encode(Image.fromarray(rgb), "PNG"), schema.KEPT)
    gray = gray_photo(160)
    files["gray_mode_l.jpg"] = (encode(Image.fromarray(gray), "JPEG"), schema.GRAYSCALE)
    gray_rgb = np.repeat(gray[..., None], 3, -1)
    files["gray_as_rgb.png"] = (encode(Image.fromarray(gray_rgb), "PNG"), schema.GRAYSCALE)
    files["sepia.png"] = (encode(Image.fromarray(tone_curve(gray, *SEPIA)), "PNG"), schema.TONED)
    tiny = smooth_colour_field(10, 10, seed=300)
    files["tiny.png"] = (encode(Image.fromarray(tiny), "PNG"), schema.TOO_SMALL)
    files["empty.jpg"] = (b"", "empty")
    files["notes.jpg"] = (b"shopping list: milk, eggs\nthis is not a JPEG\n", "undecodable")
    big = encode(Image.fromarray(smooth_colour_field(200, 300, seed=400)), "JPEG", quality=90)
    files["truncated.jpg"] = (big[: len(big) // 2], "truncated")
    return files


INPUTS = _inputs()
KEPT_NAMES = sorted(n for n, (_, o) in INPUTS.items() if o == schema.KEPT)
FILTERED_NAMES = sorted(
    n for n, (_, o) in INPUTS.items() if o in (schema.GRAYSCALE, schema.TONED, schema.TOO_SMALL)
)
ERROR_NAMES = sorted(set(INPUTS) - set(KEPT_NAMES) - set(FILTERED_NAMES))


def _expected_outcomes() -> dict[str, int]:
    out: dict[str, int] = {}
    for _, outcome in INPUTS.values():
        out[outcome] = out.get(outcome, 0) + 1
    return out


def _run_stage(inputs: str, output: str, beam_args: list[str], *extra: str) -> None:
    from pipeline import stage

    p = argparse.ArgumentParser()
    stage.add_arguments(p)
    args = p.parse_args(
        [inputs, output, "--size", str(SIZE), "--shard-rows", str(SHARD_ROWS), *extra]
    )
    stage.run(args, beam_args)


def _read_parquet_files(output: str, sub: str) -> list[tuple[str, list[dict]]]:
    """(file name, rows) for every Parquet file in output/sub, via fsspec."""
    fs, root = fsspec.core.url_to_fs(output.rstrip("/") + "/" + sub)
    if not fs.exists(root):
        return []
    out = []
    for path in sorted(fs.glob(root + "/*.parquet")):
        with fs.open(path, "rb") as f:
            out.append((path.rsplit("/", 1)[-1], pq.read_table(f).to_pylist()))
    return out


def _read_json(url: str) -> dict:
    with fsspec.open(url, "rb") as f:
        return json.load(f)


def _read_npy(url: str) -> np.ndarray:
    with fsspec.open(url, "rb") as f:
        return np.load(f)


def _name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _kept_rows(output: str) -> list[dict]:
    return [r for _, rows in _read_parquet_files(output, "shards") for r in rows]


def _row_set(rows: list[dict]) -> set[tuple]:
    """Rows as comparable tuples (source file name, split, size, hashes and pixel bytes)."""
    return {
        (_name(r["source_uri"]), r["split"], r["width"], r["height"], r["sha256"], r["l"], r["ab"])
        for r in rows
    }


def _check_output(output: str, input_prefix: str) -> None:
    """Everything the small archive must produce, whatever the runner."""
    stats = _read_json(output.rstrip("/") + "/stats.json")
    assert stats["job"] == "stage"
    assert stats["total"] == len(INPUTS)
    assert sum(stats["outcomes"].values()) == stats["total"]
    assert stats["outcomes"] == _expected_outcomes()

    # shards: exactly the colour images, never empty, never more than --shard-rows rows
    shard_files = _read_parquet_files(output, "shards")
    assert shard_files, "no shards were written"
    for name, rows in shard_files:
        assert 1 <= len(rows) <= SHARD_ROWS, (name, len(rows))
    rows = [r for _, rs in shard_files for r in rs]
    uris = [r["source_uri"] for r in rows]
    assert len(uris) == len(set(uris))  # each image once
    assert sorted(_name(u) for u in uris) == KEPT_NAMES
    assert all(u.startswith(input_prefix) for u in uris)
    for r in rows:
        assert r["size"] == SIZE
        assert len(r["l"]) == SIZE * SIZE and len(r["ab"]) == 2 * SIZE * SIZE
        assert sum(r["hist"]) == SIZE * SIZE
        assert r["sha256"] == hashlib.sha256(INPUTS[_name(r["source_uri"])][0]).hexdigest()
    with fsspec.open(output.rstrip("/") + "/shards/" + shard_files[0][0], "rb") as f:
        assert pq.read_schema(f).equals(schema.SHARD_SCHEMA)

    # errors and filtered tables (each also holds an empty part so readers always find one)
    errors = [r for _, rs in _read_parquet_files(output, "errors") for r in rs]
    filtered = [r for _, rs in _read_parquet_files(output, "filtered") for r in rs]
    assert sorted(_name(r["uri"]) for r in errors) == ERROR_NAMES
    assert sorted(_name(r["uri"]) for r in filtered) == FILTERED_NAMES
    for r in errors + filtered:
        assert r["outcome"] == INPUTS[_name(r["uri"])][1]
        assert r["reason"]  # a human-readable reason
    assert {r["stage"] for r in filtered} == {"filter"}
    assert "filter" not in {r["stage"] for r in errors}

    # priors over the Q in-gamut bins
    pri = _read_json(output.rstrip("/") + "/priors.json")
    q = num_bins()
    assert pri["num_bins"] == q
    assert pri["pixels"] == len(KEPT_NAMES) * SIZE * SIZE
    assert sum(pri["counts"]) == pri["pixels"]
    for key in ("empirical", "smoothed"):
        assert len(pri[key]) == q
        assert sum(pri[key]) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_array_equal(np.asarray(pri["ab_bins"]), gamut_bins())
    smoothed = _read_npy(output.rstrip("/") + "/prior_smoothed.npy")
    weights = _read_npy(output.rstrip("/") + "/rebalance_weights.npy")
    assert smoothed.shape == weights.shape == (q,)
    assert float((smoothed * weights).sum()) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(weights, pri["weights"])
    # the counts are the sum of the rows' histograms
    np.testing.assert_array_equal(np.sum([r["hist"] for r in rows], axis=0), pri["counts"])
    with fsspec.open(output.rstrip("/") + "/priors.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("stage_in")
    for name, (data, _) in INPUTS.items():
        (d / name).write_bytes(data)
    return d


@pytest.fixture(scope="module")
def in_memory_run(input_dir, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("stage_out") / "staged")
    _run_stage(str(input_dir / "*"), out, IN_MEMORY)
    return out


# --- fast end-to-end runs ------------------------------------------------------------------


def test_inputs_match_expected_outcomes():
    """The generated archive really is what the pipeline tests assume (checked without Beam)."""
    from transforms.decode import ImageError
    from transforms.staging import StageConfig, stage_image

    for name, (data, expected) in INPUTS.items():
        try:
            stage_image(name, data, StageConfig(size=SIZE))
            got = schema.KEPT
        except ImageError as e:
            got = e.outcome
        assert got == expected, name


def test_stage_in_memory(in_memory_run, input_dir):
    _check_output(in_memory_run, str(input_dir))


def test_stats_json_waits_for_the_shards_and_priors(input_dir, tmp_path, monkeypatch):
    """stats.json ("finished") is written after every shard, the priors and the error tables."""
    pipelines = capture_pipelines(monkeypatch)
    out = tmp_path / "staged"
    _run_stage(str(input_dir / "*"), str(out), IN_MEMORY)
    waits_for = upstream_of(pipelines[0], "WriteStats")
    assert {"Shards", "Priors", "Accounting/Writeerrors/Write"} <= waits_for, waits_for
    stats_at = (out / "stats.json").stat().st_mtime
    later = [p for p in out.rglob("*") if p.is_file() and p.stat().st_mtime > stats_at]
    assert later == []


def test_stage_from_fsspec_memory():
    root = f"memory://chromabeam-test-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    try:
        for name, (data, _) in INPUTS.items():
            with fsspec.open(f"{root}/in/{name}", "wb") as f:
                f.write(data)
        assert len(expand_glob(f"{root}/in/*")) == len(INPUTS)
        _run_stage(f"{root}/in/*", f"{root}/out", IN_MEMORY)  # memory:// is per process
        _check_output(f"{root}/out", "memory://")
    finally:
        fs.rm(fs._strip_protocol(root), recursive=True)


def test_stage_space_yuv_and_train_refuses_it(in_memory_run, input_dir, tmp_path):
    """--space yuv: the same rows and priors as Lab but l / ab in BT.601 YUV, the space in
    every row and in priors.json; train's check refuses the shards in one line."""
    from models.data import check_space, shard_files
    from pipeline.checks import UsageError

    out = str(tmp_path / "staged_yuv")
    _run_stage(str(input_dir / "*"), out, IN_MEMORY, "--space", "yuv")
    _check_output(out, str(input_dir))  # same accounting, shards, priors
    lab_rows = {r["key"]: r for r in _kept_rows(in_memory_run)}
    yuv_rows = {r["key"]: r for r in _kept_rows(out)}
    assert yuv_rows.keys() == lab_rows.keys()
    for key, r in yuv_rows.items():
        assert r["space"] == "yuv" and lab_rows[key]["space"] == "lab"
        assert r["hist"] == lab_rows[key]["hist"]  # priors stay over Lab bins
        assert r["l"] != lab_rows[key]["l"]  # Y * 255, not L * 2.55
    pri = _read_json(out + "/priors.json")
    assert pri["space"] == "yuv"
    assert _read_json(in_memory_run + "/priors.json")["space"] == "lab"
    assert pri["counts"] == _read_json(in_memory_run + "/priors.json")["counts"]

    check_space(_read_json(in_memory_run + "/priors.json"), shard_files(in_memory_run), "m")
    with pytest.raises(UsageError) as e:
        check_space(pri, shard_files(out), "eccv16-small")
    msg = str(e.value)
    assert "\n" not in msg and "YUV" in msg and "--space lab" in msg


def test_rerun_replaces_previous_output(in_memory_run, input_dir, tmp_path):
    """A second run into the same folder leaves the same set of rows, not twice as many."""
    out = str(tmp_path / "staged")
    _run_stage(str(input_dir / "*"), out, IN_MEMORY)
    _run_stage(str(input_dir / "*"), out, IN_MEMORY)
    _check_output(out, str(input_dir))
    assert _row_set(_kept_rows(out)) == _row_set(_kept_rows(in_memory_run))


def test_output_inside_the_inputs_is_never_read_back(tmp_path):
    """stage 'in/**' in/staged, twice: its own shards, plots and lock are never inputs."""
    src = tmp_path / "in"
    src.mkdir()
    for name, (data, _) in INPUTS.items():
        (src / name).write_bytes(data)
    for _ in range(2):
        _run_stage(str(src / "**"), str(src / "staged"), IN_MEMORY)
        _check_output(str(src / "staged"), str(src))
    rows = _kept_rows(str(src / "staged"))
    assert sorted(_name(r["source_uri"]) for r in rows) == KEPT_NAMES


def test_a_file_matched_twice_is_staged_once_and_sidecars_never(tmp_path):
    """Overlapping globs stage each file once (no duplicate rows in the shards or the
    priors), and hints sidecars (*.hints.json) are not inputs."""
    from pipeline import stage

    src = tmp_path / "in"
    src.mkdir()
    for name, (data, _) in INPUTS.items():
        (src / name).write_bytes(data)
    (src / "colour_a.hints.json").write_text('{"points": []}')
    p = argparse.ArgumentParser()
    stage.add_arguments(p)
    out = tmp_path / "out"
    globs = [str(src / "*"), str(src / "colour_*"), str(src / "*")]
    stage.run(p.parse_args([*globs, str(out), "--size", str(SIZE)]), IN_MEMORY)
    rows = _kept_rows(str(out))
    assert sorted(_name(r["source_uri"]) for r in rows) == KEPT_NAMES
    stats = _read_json(str(out / "stats.json"))
    assert stats["total"] == len(INPUTS) and stats["outcomes"] == _expected_outcomes()
    hist = np.asarray([r["hist"] for r in rows]).sum(axis=0)
    assert _read_json(str(out / "priors.json"))["counts"] == hist.tolist()


def test_a_rerun_that_keeps_nothing_leaves_no_earlier_priors(in_memory_run, tmp_path):
    from pipeline import checks
    from pipeline.stage import PRIOR_FILES

    out = tmp_path / "staged"
    out.mkdir()
    for name in os.listdir(in_memory_run):
        if not os.path.isdir(os.path.join(in_memory_run, name)):
            (out / name).write_bytes(Path(in_memory_run, name).read_bytes())
    top = {p.name for p in Path(in_memory_run).iterdir()}
    assert top == {*PRIOR_FILES, "stats.json", "shards", "errors", "filtered"}
    gray = tmp_path / "gray"
    gray.mkdir()
    (gray / "g.jpg").write_bytes(INPUTS["gray_mode_l.jpg"][0])
    with pytest.raises(checks.JobFailed, match="no image was kept of the 1 inputs"):
        _run_stage(str(gray / "*"), str(out), IN_MEMORY)
    assert not any((out / name).exists() for name in PRIOR_FILES)
    assert pq.read_table(out / "shards").num_rows == 0  # an empty table, for readers
    empty, stats = out / "shards" / "part-empty.parquet", out / "stats.json"
    assert empty.stat().st_mtime_ns <= stats.stat().st_mtime_ns  # stats.json stays the last
    assert _read_json(str(out / "stats.json"))["outcomes"] == {"grayscale": 1}


@pytest.mark.parametrize("batch_files", ["1", "3"])
def test_batch_files_give_the_same_output(in_memory_run, input_dir, tmp_path, batch_files):
    """--batch-files changes how many files one work item holds, never what comes out."""
    out = str(tmp_path / f"staged_b{batch_files}")
    _run_stage(str(input_dir / "*"), out, IN_MEMORY, "--batch-files", batch_files)
    _check_output(out, str(input_dir))
    assert _row_set(_kept_rows(out)) == _row_set(_kept_rows(in_memory_run))
    want = _read_json(in_memory_run + "/priors.json")["counts"]
    assert _read_json(out + "/priors.json")["counts"] == want


def test_a_batch_that_fails_as_a_whole_loses_only_its_culprit(tmp_path):
    """SafeApplyBatch: when fn raises on the whole batch, each item is retried alone, so the
    one that fails is an error row and the others still come out; unreadable files are
    accounted for before fn sees the batch."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.common import ERRORS, OUTCOMES, safe_apply

    for name in ("a", "b", "bad"):
        (tmp_path / name).write_bytes(name.encode())

    def fn(items):
        if any(data == b"bad" for _, data in items):
            raise RuntimeError("boom")
        return [data.decode().upper() for _, data in items]

    uris = [str(tmp_path / n) for n in ("a", "b", "bad", "missing")]
    with beam.Pipeline() as p:
        out = safe_apply(p | beam.Create([uris]), fn, "test", "Apply", batch=True)
        assert_that(out.rows, equal_to([["A", "B"]]), label="rows")  # one list per run
        assert_that(
            out[OUTCOMES], equal_to(["kept", "kept", "failed", "unreadable"]), label="outcomes"
        )
        errors = out[ERRORS] | beam.Map(lambda r: (r["uri"].rsplit("/", 1)[-1], r["outcome"]))
        assert_that(
            errors, equal_to([("bad", "failed"), ("missing", "unreadable")]), label="errors"
        )


def test_glob_patterns_select_files(input_dir):
    everything = expand_glob(str(input_dir / "*"))
    assert len(everything) == len(INPUTS)
    assert [_name(u) for u in expand_glob(str(input_dir / "colour?.jpg"))] == [
        f"colour{i}.jpg" for i in range(4)
    ]
    assert [_name(u) for u in expand_glob(str(input_dir / "colour[02].jpg"))] == [
        "colour0.jpg",
        "colour2.jpg",
    ]
    assert expand_glob(str(input_dir / "nothing-*.png")) == []
    assert expand_glob(str(input_dir / "sepia.png")) == [str(input_dir / "sepia.png")]


LOCAL_GLOBS = [
    "*", "*.jpg", "**", "**/*.jpg", "**/.*", "*/*.jpg", "*/x/*.jpg", "a/[12].*", "a/[!1].*",
    "?op.jpg", "a/**", "a/**/c/*.jpg", "a/*/*/*", "**/b/*", ".hid/*", "c d/*", "*/", "dl/**",
    "", "a", "dl", "top.jpg", "broken.jpg", "none*", "missing.jpg",
]  # fmt: skip


def test_local_globs_match_fsspecs_own(tmp_path):
    """expand_glob lists local files with os.walk (fast) and must give what fsspec's
    LocalFileSystem globs / finds: hidden names, names with spaces, nested folders, a
    symlinked file, a symlinked folder (not entered below the root, entered as the root),
    a broken symlink, a folder whose name matches."""
    for d in ("a/b/c", ".hid", "c d", "target/x", "dir.jpg"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for f in ("a/1.jpg", "a/2.png", "a/b/3.jpg", "a/b/c/9.jpg", ".hid/4.jpg", "a/.5.jpg",
              "c d/6 7.jpg", "target/x/8.jpg", "top.jpg"):  # fmt: skip
        (tmp_path / f).write_bytes(b"x")
    (tmp_path / "a/link.jpg").symlink_to(tmp_path / "top.jpg")
    (tmp_path / "dl").symlink_to(tmp_path / "target")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere")
    fs = fsspec.filesystem("file")
    for pat in LOCAL_GLOBS:
        pattern = str(tmp_path / pat) if pat else str(tmp_path)
        want = sorted(fileio._fs_files(fs, fs._strip_protocol(pattern)))
        assert expand_glob(pattern) == want, pat
        assert expand_glob("file://" + pattern) == ["file://" + w for w in want], pat
    assert len(expand_glob(str(tmp_path / "**"))) == 11  # the tree's files, once each


# --- slow: other runners, real data --------------------------------------------------------


@pytest.mark.slow
def test_stage_multi_processing_matches_in_memory(in_memory_run, input_dir, tmp_path):
    out = str(tmp_path / "staged_mp")
    _run_stage(str(input_dir / "*"), out, ["--direct_num_workers=2"])  # default runner/mode
    _check_output(out, str(input_dir))
    assert _row_set(_kept_rows(out)) == _row_set(_kept_rows(in_memory_run))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker pool exited early with {proc.returncode}")
        try:
            with socket.create_connection(("localhost", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"worker pool did not listen on port {port}")


@pytest.mark.slow
def test_stage_portable_runner_with_worker_pool(in_memory_run, input_dir, tmp_path):
    """PortableRunner (embedded job server) with an EXTERNAL Beam worker pool, as on Flink."""
    port = _free_port()
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")  # the pool runs `python` from PATH
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    log = open(tmp_path / "pool.log", "wb")  # closed in finally
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={port}",
        ],
        env=env,
        cwd=str(ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, pool)
        out = str(tmp_path / "staged_portable")
        _run_stage(
            str(input_dir / "*"),
            out,
            [
                "--runner=PortableRunner",
                "--job_endpoint=embed",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{port}",
            ],
        )
        _check_output(out, str(input_dir))
        got = {r["source_uri"] for r in _kept_rows(out)}
        assert got == {r["source_uri"] for r in _kept_rows(in_memory_run)}
        assert _row_set(_kept_rows(out)) == _row_set(_kept_rows(in_memory_run))
    finally:
        # the pool and the SDK workers it started share its process group
        try:
            os.killpg(pool.pid, 15)
        except ProcessLookupError:
            pass
        try:
            pool.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, 9)
            pool.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_stage_imagenet_samples(tmp_path):
    """The 1000 ImageNet samples: 23 mode-L and 3 RGB-encoded grayscale photos are filtered,
    and one sepia portrait (n03929855_pickelhaube) is toned (the JPEG-robust tone measure,
    transforms/filters.py)."""
    out = str(tmp_path / "imagenet")
    _run_stage(str(IMAGENET / "*.JPEG"), out, [])  # the default runner
    stats = _read_json(out + "/stats.json")
    assert stats["total"] == 1000
    assert stats["outcomes"] == {schema.KEPT: 973, schema.GRAYSCALE: 26, schema.TONED: 1}
    filtered = [r for _, rs in _read_parquet_files(out, "filtered") for r in rs]
    assert len(filtered) == 27
    toned = [r for r in filtered if r["outcome"] == schema.TONED]
    assert [_name(r["uri"]) for r in toned] == ["n03929855_pickelhaube.JPEG"]
    gray = [r for r in filtered if r not in toned]
    single_channel = [r for r in gray if "single-channel" in r["reason"]]
    assert len(single_channel) == 23
    assert {_name(r["uri"]) for r in gray if r not in single_channel} == {
        "n03532672_hook.JPEG",
        "n04487394_trombone.JPEG",
        "n03141823_crutch.JPEG",
    }
    assert [r for _, rs in _read_parquet_files(out, "errors") for r in rs] == []
    shard_files = _read_parquet_files(out, "shards")
    assert sum(len(rows) for _, rows in shard_files) == 973
    assert all(1 <= len(rows) <= SHARD_ROWS for _, rows in shard_files)
    pri = _read_json(out + "/priors.json")
    assert pri["pixels"] == 973 * SIZE * SIZE
    assert sum(pri["smoothed"]) == pytest.approx(1.0)


def test_a_batch_is_read_in_runs_of_bounded_bytes(tmp_path, monkeypatch):
    """SafeApplyBatch never holds a whole batch of large files: fn gets them in runs of at most
    BATCH_READ_BYTES (one file at a time when each is that large), outputs in input order."""
    import apache_beam as beam

    from pipeline import common

    for name in "abcde":
        (tmp_path / name).write_bytes(name.encode() * 10)
    calls: list[int] = []

    def fn(items):
        calls.append(len(items))
        return [data[:1].decode() for _, data in items]

    monkeypatch.setattr(common, "BATCH_READ_BYTES", 25)
    dofn = common.SafeApplyBatch(fn, "test", "decode")
    dofn.setup()
    out = list(dofn.process([str(tmp_path / n) for n in "abcde"]))
    assert calls == [3, 2]  # 30 bytes reach the cap after three files
    rows = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    assert rows == [list("abc"), list("de")]  # one list per run, in input order
