"""The `chromabeam` command: one sub-command per job.

Each job's parser takes its own options; everything it does not know is handed to Beam's
PipelineOptions, so every Beam flag (--runner, --direct_num_workers, --project, ...) works.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

JOBS = {
    "stage": ("pipeline.stage", "photos -> Parquet training shards + colour priors"),
    "train": ("models.train", "train a colorization model on staged shards"),
    "colorize": ("pipeline.colorize", "colorize grayscale photos at full resolution"),
    "evaluate": ("pipeline.evaluate", "metrics + report of models and baselines"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per job."""
    parser = argparse.ArgumentParser(
        prog="chromabeam",
        description="Batch colorization of photo archives on Apache Beam + PyTorch. Options a "
        "job does not know are passed to Beam (e.g. --runner=DataflowRunner).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    for name, (module, help_text) in JOBS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        mod = importlib.import_module(module)
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Beam's local job service re-logs every worker's start-up warnings; keep errors only.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    unknown = [a for a in rest if a.startswith("-") and not a.startswith("--")]
    if unknown:
        parser.error(f"unrecognised options: {' '.join(unknown)}")
    args.func(args, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
