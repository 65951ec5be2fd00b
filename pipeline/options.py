"""Beam pipeline options: defaults a newcomer never has to set, every Beam flag passes through."""

from __future__ import annotations

import logging
import os

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.checks import UsageError

log = logging.getLogger(__name__)
DEFAULT_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def make_pipeline_options(
    beam_args: list[str], local_mode: str = "multi_processing"
) -> PipelineOptions:
    """PipelineOptions from the arguments the job's own parser did not consume.

    Default: the DirectRunner's batch engine (the FnApiRunner, named directly so that the
    DirectRunner does not first try to download the Prism runner) in multi_processing mode
    with one worker per core. Any `--runner`, `--direct_num_workers`, ... given wins.
    `local_mode` is the default running mode: evaluate, encode and decode run on
    "multi_threading" (their per-image work is numpy / Pillow / torch code that releases the
    GIL); colorize picks by the number of inputs (pipeline.colorize.local_mode: worker
    processes for large runs, where they measured faster).
    """
    args = list(beam_args)
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    if "--runner" not in given:
        args.append(f"--runner={DEFAULT_RUNNER}")
    runner = _flag(args, "--runner") or DEFAULT_RUNNER
    check_runner(runner)
    if runner in ("DirectRunner", "direct", DEFAULT_RUNNER):
        if "--direct_running_mode" not in given:
            args.append(f"--direct_running_mode={local_mode}")
        if "--direct_num_workers" not in given:
            args.append(f"--direct_num_workers={os.cpu_count() or 1}")
    log.debug("Beam options: %s", " ".join(args))
    return PipelineOptions(args)


def check_runner(runner: str) -> None:
    """UsageError (one line, exit code 2) for a --runner Beam does not know."""
    from apache_beam.runners.runner import create_runner

    try:
        create_runner(runner)
    except ValueError as e:
        raise UsageError(f"--runner {runner}: {e}") from None


def is_local(options: PipelineOptions) -> bool:
    """Whether the pipeline runs on this machine (the DirectRunner / FnApiRunner), where
    pipeline.progress can count what the workers finish."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    return runner in ("DirectRunner", "direct", DEFAULT_RUNNER)


def threads_per_worker(options: PipelineOptions) -> int | None:
    """CPU threads torch should use in each local worker so that the workers together use the
    cores once (with worker threads, torch's setting is per process and so shared; None on
    remote runners: keep torch's default there)."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    if runner not in ("DirectRunner", "direct", DEFAULT_RUNNER):
        return None
    workers = options.view_as(DirectOptions).direct_num_workers or 1
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _flag(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None


def log_counters(result, namespace: str) -> dict[str, int]:
    """Log and return the Beam counters of a finished pipeline in `namespace`."""
    counts: dict[str, int] = {}
    try:
        from apache_beam.metrics.metric import MetricsFilter

        metrics = result.metrics().query(MetricsFilter().with_namespace(namespace))
        for c in metrics["counters"]:
            counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    except Exception as e:  # some runners do not report metrics
        log.info("counters unavailable on this runner: %s", e)
    for name, value in sorted(counts.items()):
        log.info("%s.%s = %d", namespace, name, value)
    return counts
