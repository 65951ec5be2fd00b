"""Dataflow Flex Template entry point: template parameters -> the `chromabeam` CLI.

The template launcher runs this file (FLEX_TEMPLATE_PYTHON_PY_FILE in deploy/Dockerfile) with
the parameters of flex_template_metadata.json as `--name=value` flags, plus the Dataflow
pipeline options (project, region, temp_location, ...), which pass through to Beam.

    --job=colorize --inputs=gs://b/scans/**/*.tif --output=gs://b/out
    [--model=eccv16] [--weights=gs://b/weights/zhang.pth]

`inputs` may hold several globs separated by commas. For `evaluate`, --model/--weights make
one model spec `NAME,weights=URI` (the evaluate job's own --model syntax).
"""

from __future__ import annotations

import argparse
import sys

BEAM_JOBS = ("stage", "colorize", "evaluate")  # `train` is plain PyTorch, not a Beam job


def to_cli(argv: list[str]) -> list[str]:
    """Template flags -> `chromabeam` arguments (unknown flags are kept for Beam)."""
    p = argparse.ArgumentParser(prog="launch.py")
    p.add_argument("--job", required=True, choices=BEAM_JOBS)
    p.add_argument("--inputs", required=True, help="comma-separated fsspec globs")
    p.add_argument("--output", required=True)
    p.add_argument("--model", default="")
    p.add_argument("--weights", default="")
    args, beam_args = p.parse_known_args(argv)

    cli = [args.job, *[g.strip() for g in args.inputs.split(",") if g.strip()], args.output]
    if args.job == "stage" and (args.model or args.weights):
        p.error("stage takes no --model/--weights")
    if args.job == "colorize":
        cli += [f"--model={args.model}"] if args.model else []
        cli += [f"--weights={args.weights}"] if args.weights else []
    if args.job == "evaluate" and (args.model or args.weights):
        if not args.model:
            p.error("evaluate: --weights needs --model")
        spec = args.model + (f",weights={args.weights}" if args.weights else "")
        cli.append(f"--model={spec}")
    if not any(a.startswith("--runner") for a in beam_args):
        beam_args.append("--runner=DataflowRunner")  # chromabeam defaults to DirectRunner
    return cli + beam_args


def main() -> int:
    from pipeline.cli import main as chromabeam

    return chromabeam(to_cli(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
