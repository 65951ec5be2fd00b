"""The colorize job's Beam graph (pipeline/colorize.py holds the per-image work, the options and
the single-file form, which imports no Beam)."""

from __future__ import annotations

from functools import partial

import apache_beam as beam

from models.handler import ColorizerHandler, KeyedColorizerHandler
from pipeline.colorize import (
    JOB,
    ColorizeConfig,
    finish_and_mark,
    prepare_named,
    resumed_row,
)
from pipeline.common import (
    OUTCOMES,
    RESUMED,
    AssignNames,
    MatchFiles,
    accounting_inputs,
    infer_and_finish,
    prepare_step,
    tick_each,
    write_results_and_stats,
)
from transforms import schema


class SplitResumed(beam.DoFn):
    """(uri, stem) -> main: the inputs still to do; RESUMED: the results rows of outputs an
    earlier run finished (--skip-existing)."""

    def __init__(self, cfg: ColorizeConfig):
        self.cfg = cfg

    def process(self, element):
        uri, stem = element
        row = resumed_row(uri, stem, self.cfg) if self.cfg.skip_existing else None
        if row is None:
            yield element
        else:
            beam.metrics.Metrics.counter(JOB, RESUMED).inc()
            yield beam.pvalue.TaggedOutput(RESUMED, row)


def build(
    p: beam.Pipeline, cfg: ColorizeConfig, inputs: list[str], args, threads: int | None = None
) -> None:
    """Add the colorize graph to pipeline p."""
    uris = p | "Match" >> MatchFiles(inputs, exclude=cfg.output)  # no *.hints.json
    # (uri, output stem): collisions resolved with a global view (transforms.naming)
    named = uris | "Name" >> AssignNames(cfg.bases)
    split = named | "Resume" >> beam.ParDo(SplitResumed(cfg)).with_outputs(RESUMED, main="todo")
    prep = prepare_step(split.todo, partial(prepare_named, cfg=cfg), JOB)
    handler = KeyedColorizerHandler(
        ColorizerHandler(
            cfg.model,
            cfg.weights,
            args.device,
            cfg.settings,
            min_batch_size=args.min_batch_size,
            max_batch_size=args.batch_size,
            threads=threads,
            large_model=getattr(args, "share_model", False),
            model_copies=getattr(args, "model_copies", None),
        )
    )
    done, model_errors = infer_and_finish(
        prep.rows,
        handler,
        partial(finish_and_mark, cfg=cfg),
        JOB,
        "Finish",
        "write",
        schema.COLORIZED,
    )
    # results/ is rebuilt every run: this run's rows + the rows of the resumed outputs
    # (--samples: a list of rows per input, done or resumed)
    rows = (
        (done.rows, split[RESUMED])
        | "AllRows" >> beam.Flatten()
        | "Samples" >> beam.FlatMap(lambda r: r if isinstance(r, list) else [r])
    )
    settings = {
        "model": cfg.model,
        "weights": cfg.weights,
        "weights_sha256": cfg.weights_sha256,
        "render_size": cfg.render_size,
        **cfg.applied,  # decode, temperature: None where the model does not apply them
        "pipeline": cfg.pipeline,
        "strength": cfg.settings.strength,
        "inputs": inputs,
        "format": cfg.fmt,
    }
    acc = accounting_inputs(prep, done, failed=[model_errors])
    acc[RESUMED] = split[RESUMED] | "ResumedOutcome" >> beam.Map(lambda _: schema.COLORIZED)
    # progress: one tick per input done (an outcome, a resumed output or a model failure)
    tick_each(JOB, prep[OUTCOMES], done[OUTCOMES], split[RESUMED], model_errors)
    write_results_and_stats(
        rows, acc, cfg.output, JOB, schema.COLORIZE_SCHEMA, {"settings": settings}
    )
