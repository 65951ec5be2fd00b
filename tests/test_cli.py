"""The `chromabeam` command line: help texts, option passing, argparse validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import cli
from tests.helpers import sigint_as_a_terminal_sends_it

ROOT = Path(__file__).resolve().parents[1]

# Options each job's --help must mention.
JOB_OPTIONS = {
    "stage": ["--size", "--val-percent", "--shard-rows", "--min-size", "--rebalance-lambda"],
    "train": [
        "--model",
        "--width",
        "--epochs",
        "--batch-size",
        "--resume",
        "--no-rebalance",
        "--max-minutes",
        "--init",
        "--half",
    ],  # fmt: skip
    "colorize": [
        "--out-file",
        "--model",
        "--weights",
        "--temperature",
        "--format",
        "--skip-existing",
        "--strength",
        "--render-size",
    ],  # fmt: skip
    "evaluate": ["--model", "--size", "--priors", "--compare", "--no-report"],
    "encode": ["--out-file", "--weights", "--max-bytes", "--batch-size", "--device"],
    "decode": ["--out-file", "--weights", "--batch-size", "--device"],
}
CHECKED_JOBS = tuple(cli.JOBS)  # every job: each numeric option range-checked


def _fail(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr), whether argparse exits or main returns."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    """The single `chromabeam: error:` line of a failed command (and no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("chromabeam: error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0][len("chromabeam: error: ") :]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_the_jobs(capsys):
    out = _help(["--help"], capsys)
    assert out.startswith("usage: chromabeam")
    for job in cli.JOBS:
        assert job in out
    assert "Beam" in out


@pytest.mark.parametrize("job", sorted(JOB_OPTIONS))
def test_job_help_mentions_its_options(job, capsys):
    out = _help([job, "--help"], capsys)
    assert out.startswith(f"usage: chromabeam {job}")
    for opt in JOB_OPTIONS[job] + ["--log-level"]:
        assert opt in out, (job, opt)


def test_every_job_has_a_help_test():
    assert set(JOB_OPTIONS) == set(cli.JOBS)


@pytest.mark.slow
def test_help_through_python_m():
    """The module entry point in a fresh interpreter (slow: imports Beam and torch twice)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv in (["--help"], ["colorize", "--help"]):
        res = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert "usage: chromabeam" in res.stdout


@pytest.mark.parametrize("job, argv", [
    ("colorize", ["in/*.jpg", "out", "--model", "pix2pix"]),
    ("train", ["stage", "run", "--model", "pix2pix"]),
])  # fmt: skip
def test_unknown_model_rejected_by_argparse(job, argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([job, *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'pix2pix'" in err
    assert "eccv16-small" in err


def test_unknown_model_rejected_by_evaluate(tmp_path, capsys):
    code, err = _fail(
        ["evaluate", str(ROOT / "samples" / "*.jpg"), str(tmp_path), "--model", "pix2pix"], capsys
    )
    assert code == 2 and "--model pix2pix: unknown model; known:" in err


def test_missing_job_is_an_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    assert "JOB" in capsys.readouterr().err


def test_single_dash_unknown_options_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["colorize", "in/*.jpg", "out", "-x"])
    assert e.value.code == 2
    assert "unrecognised options: -x" in capsys.readouterr().err


def test_unknown_double_dash_options_reach_the_job(monkeypatch):
    seen = {}

    def fake_run(args, rest):
        seen["args"], seen["rest"] = args, rest

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda *_: parser)
    sub = next(a for a in parser._actions if a.dest == "job")
    sub.choices["colorize"].set_defaults(func=fake_run)
    assert (
        cli.main(["colorize", "in/*.jpg", "out", "--runner=DirectRunner", "--log-level", "warning"])
        == 0
    )
    assert seen["rest"] == ["--runner=DirectRunner"]
    assert seen["args"].paths == ["in/*.jpg", "out"] and seen["args"].log_level == "WARNING"


# --- mistakes stop with one line and a non-zero exit (issue 10) ------------------------------

SAMPLES = str(ROOT / "samples" / "*.jpg")

# argv -> the message (after "chromabeam: error: "); every case exits 2 at parse time
RANGE_CASES = [
    (["colorize", SAMPLES, "o", "--strength", "nan"],
     "argument --strength: expected a number >= 0, got 'nan'"),
    (["colorize", SAMPLES, "o", "--temperature", "0"],
     "argument --temperature: expected a number > 0, got '0'"),
    (["stage", SAMPLES, "o", "--size", "0"],
     "argument --size: expected an integer from 8 to 4096, got '0'"),
    (["stage", SAMPLES, "o", "--size", "-5"],
     "argument --size: expected an integer from 8 to 4096, got '-5'"),
    (["colorize", SAMPLES, "o", "--render-size", "0"],
     "argument --render-size: expected an integer from 16 to 4096 and a multiple of 8, got '0'"),
    (["colorize", SAMPLES, "o", "--batch-size", "0"],
     "argument --batch-size: expected an integer >= 1, got '0'"),
    (["colorize", SAMPLES, "o", "--batch-size", "-1"],
     "argument --batch-size: expected an integer >= 1, got '-1'"),
    (["colorize", SAMPLES, "o", "--quality", "500"],
     "argument --quality: expected an integer from 1 to 100, got '500'"),
    (["stage", SAMPLES, "o", "--val-percent", "150"],
     "argument --val-percent: expected a number from 0 to 100, got '150'"),
    (["stage", SAMPLES, "o", "--shard-rows", "0"],
     "argument --shard-rows: expected an integer >= 1, got '0'"),
    (["stage", SAMPLES, "o", "--rebalance-lambda", "2"],
     "argument --rebalance-lambda: expected a number from 0 to 1, got '2'"),
    (["stage", SAMPLES, "o", "--gray-mean-chroma", "-1"],
     "argument --gray-mean-chroma: expected a number >= 0, got '-1'"),
    (["colorize", SAMPLES, "o", "--max-pixels", "0"],
     "argument --max-pixels: expected an integer >= 1, got '0'"),
    (["colorize", SAMPLES, "o", "--device", "gpu"],
     "argument --device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["evaluate", SAMPLES, "o", "--size", "0"],
     "argument --size: expected 'full' or an integer >= 16, got '0'"),
    (["evaluate", SAMPLES, "o", "--baseline-temperature", "inf"],
     "argument --baseline-temperature: expected a number > 0, got 'inf'"),
    (["train", "s", "o", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got '0'"),
    (["train", "s", "o", "--lr", "nan"], "argument --lr: expected a number >= 0, got 'nan'"),
    (["train", "s", "o", "--width", "0"],
     "argument --width: expected a number > 0 and <= 4, got '0'"),
    (["train", "s", "o", "--crop", "30"],
     "argument --crop: expected an integer from 16 to 4096 and a multiple of 8, got '30'"),
    (["train", "s", "o", "--max-minutes", "-1"],
     "argument --max-minutes: expected a number > 0, got '-1'"),
    (["train", "s", "o", "--mh-relax", "1"],
     "argument --mh-relax: expected a number >= 0 and < 1, got '1'"),
    (["colorize", SAMPLES, "o", "--render-szie", "256"],
     "unrecognised option --render-szie; did you mean --render-size?"),
    (["stage", SAMPLES, "o", "--frobnicate"],
     "unrecognised option --frobnicate (neither chromabeam nor Beam knows it)"),
    (["stage", SAMPLES, "o", "--direct_num_worker=2"],
     "unrecognised option --direct_num_worker; did you mean --direct_num_workers?"),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, message", RANGE_CASES, ids=[" ".join(c[0][3:]) for c in RANGE_CASES]
)
def test_bad_options_stop_at_parse_time(argv, message, capsys):
    code, err = _fail(argv, capsys)
    assert code == 2
    line = _one_error_line(err)
    assert line == f"{message} (see: chromabeam {argv[0]} --help)"
    assert len(err.splitlines()) == 1, err  # no usage block, no log line: nothing ran


def test_every_numeric_option_has_a_validator():
    """No job option takes a bare int/float: each is range-checked by a pipeline.checks type."""
    parser = cli.build_parser()
    for job in CHECKED_JOBS:
        for action in cli._job_parser(parser, job)._actions:
            assert action.type not in (int, float), (job, action.option_strings)


@pytest.mark.parametrize("job", CHECKED_JOBS)
def test_help_shows_defaults_and_ranges(job, capsys):
    out = " ".join(_help([job, "--help"], capsys).split())
    for opt in cli._job_parser(cli.build_parser(), job)._actions:
        if opt.option_strings and opt.help and opt.default not in (None, False, "==SUPPRESS=="):
            name = opt.option_strings[-1]
            assert f"(default: {opt.default})" in out or "(default:" in out, (job, name)
        if getattr(opt.type, "range_text", None):
            assert f"[{opt.type.range_text}]" in out, (job, opt.option_strings)
    assert "(default: INFO)" in out and "-v, --verbose" in out


def test_help_shows_these_defaults(capsys):
    out = " ".join(_help(["colorize", "--help"], capsys).split())
    assert "JPEG/WebP quality [an integer from 1 to 100] (default: 95)" in out
    assert "(default: 8)" in out and "(default: auto)" in out
    out = " ".join(_help(["stage", "--help"], capsys).split())
    assert "[a number from 0 to 100] (default: 10.0)" in out and "(default: 224)" in out


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    from tests.conftest_models import write_tiny_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path, "eccv16-small", seed=3)
    return str(path)


def test_no_input_matched(tmp_path, capsys):
    for job in ("stage", "colorize", "evaluate"):
        pattern = str(tmp_path / "nothing" / "*.png")
        code, err = _fail([job, pattern, str(tmp_path / "out")], capsys)
        assert code == 2, job
        assert _one_error_line(err) == (
            f"no input matches '{pattern}' (pass --allow-empty to accept that)"
        )
        assert not (tmp_path / "out").exists()  # failed before any output was made


def test_allow_empty_writes_empty_tables(tmp_path, capsys):
    import pyarrow.parquet as pq

    from transforms import schema

    out = tmp_path / "out"
    argv = ["stage", str(tmp_path / "none-*.png"), str(out), "--allow-empty"]
    assert cli.main(argv + ["--direct_running_mode=in_memory"]) == 0
    assert pq.read_table(out / "shards").schema.equals(schema.SHARD_SCHEMA)
    assert pq.read_table(out / "shards").num_rows == 0
    assert pq.read_table(out / "errors").num_rows == 0


@pytest.mark.parametrize("case", ["missing", "text", "foreign"])
def test_bad_weights(case, tmp_path, capsys):
    import torch

    path = tmp_path / {"missing": "none.pt", "text": "notes.txt", "foreign": "other.pt"}[case]
    if case == "text":
        path.write_text("not weights\n")
    if case == "foreign":
        torch.save({"w": torch.zeros(3)}, path)
    code, err = _fail(["colorize", SAMPLES, str(tmp_path / "o"), "--weights", str(path)], capsys)
    assert code == 2
    line = _one_error_line(err)
    expected = {
        "missing": f"--weights {path}: no such file",
        "text": f"--weights {path}: not a checkpoint (not a torch file: it starts with "
        'b\'not weig\'); expected a torch checkpoint {"config", "state_dict"} or a state '
        "dict of model eccv16-small",
        "foreign": f"--weights {path}: not a state dict of model eccv16-small: ",
    }[case]
    assert line.startswith(expected), line
    code, err = _fail(
        ["evaluate", SAMPLES, str(tmp_path / "o"), "--model", f"eccv16-small,weights={path}"],
        capsys,
    )
    assert code == 2
    assert _one_error_line(err).startswith(f"--model eccv16-small,weights={path}: ")


def test_output_is_a_file_or_not_writable(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for job in ("stage", "colorize", "evaluate"):
        code, err = _fail([job, SAMPLES, str(f)], capsys)
        assert (code, _one_error_line(err)) == (2, f"output {f} is a file, not a folder"), job
        code, err = _fail([job, SAMPLES, str(f / "sub")], capsys)
        assert code == 2
        assert _one_error_line(err) == f"output {f / 'sub'} is not writable: Not a directory"


def test_evaluate_with_nothing_to_score(tmp_path, capsys, tiny_ckpt):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    (tmp_path / "in" / "notes.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    argv = [
        "evaluate",
        f"{tmp_path}/in/*.png",
        str(out),
        "--model",
        f"eccv16-small,weights={tiny_ckpt}",
    ]
    code, err = _fail(argv + ["--device", "cpu", "--direct_running_mode=in_memory"], capsys)
    assert code == 1
    assert _one_error_line(err) == (
        f"nothing to score: none of the 2 inputs is usable ground truth "
        f"(see {out}/errors and {out}/filtered)"
    )


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "zero-byte file"), (b"GIF89a\x01\x00", "not a readable image")],
    ids=["zero-byte", "corrupt"],
)
def test_single_image_mode_bad_input(content, reason, tmp_path, capsys, tiny_ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(content)
    argv = ["colorize", "photo.jpg", "-o", "photo_color.png", "--weights", tiny_ckpt]
    code, err = _fail(argv, capsys)
    assert code == 1
    assert _one_error_line(err).startswith(f"photo.jpg: {reason}")
    assert not (tmp_path / "photo_color.png").exists()
    code, err = _fail(["colorize", "nothere.jpg", "-o", "x.png", "--weights", tiny_ckpt], capsys)
    assert (code, _one_error_line(err)) == (2, "nothere.jpg: no such file")


def _patched_job(monkeypatch, job: str, fn):
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda *_: parser)
    cli._job_parser(parser, job).set_defaults(func=fn)


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    def interrupted(args, rest):
        from pipeline import progress

        with progress.report("colorize", total=400, interval=60):
            progress.tick("colorize", 120)
            raise KeyboardInterrupt

    _patched_job(monkeypatch, "colorize", interrupted)
    code, err = _fail(["colorize", "in/*.jpg", "out"], capsys)
    assert code == 130
    assert _one_error_line(err) == (
        "colorize interrupted after 120/400 inputs; rerun with --skip-existing to resume"
    )
    _patched_job(monkeypatch, "stage", interrupted)
    code, err = _fail(["stage", "in/*.jpg", "out"], capsys)
    assert code == 130 and _one_error_line(err).endswith("rerun the same command to start again")
    _patched_job(monkeypatch, "colorize", interrupted)  # -o: one image, nothing to resume
    code, err = _fail(["colorize", "in.jpg", "-o", "out.png"], capsys)
    assert code == 130 and _one_error_line(err).endswith("rerun the same command to start again")


def test_ctrl_c_in_train_names_the_saved_epoch(monkeypatch, capsys):
    from models import train
    from pipeline import progress

    def interrupted_after(epochs_done):
        def job(args, rest):
            saved = train._saved_note(Path("run/checkpoint.pt"), epochs_done, 10)
            progress.note_saved("train", saved)
            raise KeyboardInterrupt

        return job

    _patched_job(monkeypatch, "train", interrupted_after(3))
    code, err = _fail(["train", "staged", "run"], capsys)
    assert code == 130
    assert _one_error_line(err) == (
        "train interrupted; run/checkpoint.pt holds epoch 3/10; rerun with --resume to continue"
    )
    _patched_job(monkeypatch, "train", interrupted_after(0))
    code, err = _fail(["train", "staged", "run"], capsys)
    assert _one_error_line(err) == (
        "train interrupted; no epoch finished yet, none saved; rerun with --resume to continue"
    )


def test_unexpected_failures_are_one_line_unless_verbose(monkeypatch, capsys):
    def broken(args, rest):
        raise ValueError("something\nbroke")

    _patched_job(monkeypatch, "stage", broken)
    code, err = _fail(["stage", "in/*.jpg", "out"], capsys)
    assert code == 1
    assert _one_error_line(err) == (
        "stage failed: ValueError: something broke (run with -v for the traceback)"
    )
    for flag in ("-v", "--debug"):
        code, err = _fail(["stage", "in/*.jpg", "out", flag], capsys)
        assert code == 1 and "Traceback (most recent call last)" in err and "ValueError" in err


def test_beam_info_logs_only_with_verbose():
    import logging

    cli.setup_logging("INFO")
    assert logging.getLogger("apache_beam").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("pipeline.colorize").getEffectiveLevel() == logging.INFO
    cli.setup_logging("INFO", verbose=True)
    assert logging.getLogger("apache_beam").getEffectiveLevel() == logging.INFO
    cli.setup_logging("WARNING", debug=True)
    assert logging.getLogger("apache_beam.runners").getEffectiveLevel() == logging.DEBUG
    cli.setup_logging("INFO")


@pytest.mark.slow
@pytest.mark.parametrize("to", ["group", "process"])
def test_ctrl_c_of_a_real_run(tmp_path, to):
    """SIGINT to the whole process group, as a terminal sends it, or to the main process
    alone (kill -INT PID: Beam's shutdown once waited for the workers forever) during a
    multi-process stage run: one line, exit code 130, no traceback, no worker left."""
    import re
    import signal
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHROMABEAM_PROGRESS_SECONDS": "1"}
    # 4,000 inputs (each sample through 4 symlinks): 1,000 staged in 2-3 s, between two ticks
    folder = tmp_path / "in"
    folder.mkdir()
    for src in sorted((ROOT.parent / "shared" / "data" / "imagenet-samples").glob("*.JPEG")):
        for k in range(4):
            (folder / f"{k}_{src.name}").symlink_to(src)
    data = str(folder / "*.JPEG")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "stage", data, str(tmp_path / "out")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=sigint_as_a_terminal_sends_it,
    )  # fmt: skip
    lines: list[str] = []
    working = threading.Event()  # a progress line says some (not all) images are done

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"stage: (\d+)/4000 images", line)
            if m and 0 < int(m.group(1)) < 2000:
                working.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert working.wait(timeout=120), "".join(lines)  # mid-run, whatever the machine's speed
    workers = cli.descendants(proc.pid)
    assert workers  # Beam's worker processes (and the shells that start them)
    if to == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=30)
    err = "".join(lines)
    assert proc.returncode == 130, err
    time.sleep(2)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}")], "workers outlived the run"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1].startswith("chromabeam: error: stage interrupted after "), err


def test_descendants_lists_the_processes_below_one():
    if not os.path.exists("/proc/self/task"):
        pytest.skip("no /proc")
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30; wait"])
    try:
        for _ in range(100):  # until the shell has started both
            below = cli.descendants(shell.pid)
            if len(below) == 2:
                break
            time.sleep(0.05)
        assert len(below) == 2
        mine = cli.descendants(os.getpid())
        assert shell.pid in mine and set(below) <= set(mine)
        assert mine.index(shell.pid) < min(mine.index(b) for b in below)  # children first
    finally:
        for pid in cli.descendants(shell.pid):
            os.kill(pid, 9)
        shell.kill()
        shell.wait()


def test_make_before_after_writes_to_out_by_default(tmp_path, monkeypatch):
    """docs/make_before_after.py never rewrites the tracked docs/before_after.jpg unless told."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("mba", ROOT / "docs" / "make_before_after.py")
    mba = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mba)
    colour = tmp_path / "colour"
    colour.mkdir()
    for gray in sorted((ROOT / "samples").glob("*.jpg")):
        Image.new("RGB", (40, 30), (200, 90, 40)).save(colour / f"{gray.stem}.png")
    tracked = ROOT / "docs" / "before_after.jpg"
    before = tracked.stat().st_mtime_ns
    monkeypatch.setattr(mba, "DEFAULT_OUT", tmp_path / "out" / "before_after.jpg")
    assert mba.main(str(colour)) == tmp_path / "out" / "before_after.jpg"
    assert Image.open(tmp_path / "out" / "before_after.jpg").size[1] > 0
    assert mba.main(str(colour), str(tmp_path / "x.jpg")) == tmp_path / "x.jpg"
    assert tracked.stat().st_mtime_ns == before


def test_an_unknown_runner_is_a_usage_error(tmp_path, capsys):
    code, err = _fail(["colorize", SAMPLES, str(tmp_path / "o"), "--runner", "Bogus"], capsys)
    line = _one_error_line(err)
    assert code == 2 and line.startswith("--runner Bogus: Unexpected pipeline runner: Bogus.")
    assert line.endswith("or the fully qualified name of a PipelineRunner subclass.")


def test_train_needs_a_stage_output(tmp_path, capsys):
    code, err = _fail(["train", str(tmp_path / "none"), str(tmp_path / "run")], capsys)
    assert code == 2
    assert _one_error_line(err) == (
        f"{tmp_path / 'none'}: no such folder (expected the output of `chromabeam stage`)"
    )
    code, err = _fail(
        ["train", str(tmp_path), str(tmp_path / "run"), "--runner=DirectRunner"], capsys
    )
    assert (code, _one_error_line(err)) == (
        2,
        "train runs without Beam: unrecognised --runner=DirectRunner",
    )


def test_only_the_named_job_is_imported_and_given_options():
    assert cli.job_named(["colorize", "a.jpg", "-o", "b.png"]) == "colorize"
    assert cli.job_named(["--help"]) is None and cli.job_named(["colourise", "x"]) is None
    parser = cli.build_parser("stage")
    assert "--size" in {
        s for a in cli._job_parser(parser, "stage")._actions for s in a.option_strings
    }
    assert {s for a in cli._job_parser(parser, "colorize")._actions for s in a.option_strings} <= {
        "-h", "--help", "--log-level", "-v", "--verbose", "--debug",
    }  # fmt: skip


CTRL_C_IN_A_THREAD = """
import os, signal, sys, time
from pipeline import cli

def job(args, rest):  # Ctrl-C lands while a runner thread turns it into its own error
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        raise RuntimeError("bundle failed: KeyboardInterrupt in a worker thread") from None

parser = cli.build_parser()
cli.build_parser = lambda *_: parser
cli._job_parser(parser, "colorize").set_defaults(func=job)
sys.argv = ["chromabeam", "colorize", "in/*.jpg", "out"]
sys.exit(cli.main())
"""


def test_ctrl_c_that_fails_the_run_elsewhere_still_exits_130():
    """The console script's stderr gate hides everything after SIGINT: an interrupt that comes
    back as another exception (a Beam thread's) must still say so, never exit 1 silently."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_A_THREAD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=sigint_as_a_terminal_sends_it,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "chromabeam: error: colorize interrupted; rerun with --skip-existing to resume"
    )
    assert "RuntimeError" not in done.stderr


EXIT_WITHOUT_TEARDOWN = """
import atexit, sys, threading, time
from pipeline import cli

atexit.register(lambda: print("atexit ran", flush=True))
if sys.argv[1] == "thread":  # a non-daemon thread still running: exit must wait for it
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread done"))).start()
if sys.argv[1] == "profile":  # as cProfile: it writes its file after the script raised
    sys.setprofile(lambda *a: None)
if sys.argv[1] == "trace":  # as coverage
    sys.settrace(lambda *a: None)
print("buffered", end=" ")
try:
    cli.exit_without_teardown(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
finally:
    print("unwound", end=" ")
"""


@pytest.mark.parametrize(
    "mode, code, rc, out, err",
    [
        ("none", "0", 0, "buffered atexit ran", ""),
        ("none", "3", 3, "buffered atexit ran", ""),
        ("none", "boom", 1, "buffered atexit ran", "boom"),
        ("thread", "4", 4, "buffered unwound thread done\natexit ran", ""),
        ("profile", "5", 5, "buffered unwound atexit ran", ""),
        ("trace", "boom", 1, "buffered unwound atexit ran", "boom"),
    ],
)
def test_exit_without_teardown_keeps_sys_exits_contract(mode, code, rc, out, err):
    """The console script's exit: the code (a message -> stderr and 1), atexit handlers,
    buffered output flushed; a live non-daemon thread waited for and a profiler or tracer
    left to write its results after the script: plain sys.exit (the stack unwinds)."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_TEARDOWN, mode, code],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == rc, done.stderr
    assert done.stdout.strip() == out
    assert done.stderr.strip() == err


def test_console_main_exits_with_mains_code(monkeypatch):
    """console_main hands main()'s return value, or the code of a SystemExit it raised
    (argparse's --help, usage errors), to exit_without_teardown."""
    codes = []
    monkeypatch.setattr(cli, "exit_without_teardown", codes.append)
    monkeypatch.setattr(cli, "main", lambda: 7)
    cli.console_main()

    def usage_error():
        raise SystemExit(2)

    monkeypatch.setattr(cli, "main", usage_error)
    cli.console_main()
    assert codes == [7, 2]
