"""The `chromabeam` command line: help texts, option passing, argparse validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli

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
}


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


def test_unknown_model_rejected_by_evaluate(tmp_path):
    with pytest.raises(SystemExit, match="unknown model"):
        cli.main(["evaluate", "x/*.png", str(tmp_path), "--model", "pix2pix"])


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
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "job")
    sub.choices["colorize"].set_defaults(func=fake_run)
    assert (
        cli.main(["colorize", "in/*.jpg", "out", "--runner=DirectRunner", "--log-level", "warning"])
        == 0
    )
    assert seen["rest"] == ["--runner=DirectRunner"]
    assert seen["args"].paths == ["in/*.jpg", "out"] and seen["args"].log_level == "warning"
