"""Beam building blocks shared by the jobs: matching files, naming per-input outputs, applying a
pure function to each file with error capture, writing row batches as Parquet, and the
accounting (stats + errors)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipeline import progress
from transforms import naming, schema
from transforms.decode import ImageError
from transforms.fileio import expand_glob, join, read_bytes, write_json, write_shard, write_table
from transforms.hints import is_sidecar
from transforms.threads import freeze_long_lived, limit_threads

log = logging.getLogger(__name__)

ERRORS = "errors"
FILTERED = "filtered"
OUTCOMES = "outcomes"
RESUMED = "resumed"  # outcome codes of inputs whose output an earlier run finished
TICK_FLUSH_SECONDS = 0.1  # progress ticks are recorded this often (and at each bundle's end)
BATCH_READ_BYTES = 16 << 20  # SafeApplyBatch hands fn the files of a batch in runs of this size
FILTER_OUTCOMES = frozenset({schema.GRAYSCALE, schema.TONED, schema.TOO_SMALL, schema.SKIPPED})


class MatchFiles(beam.PTransform):
    """An fsspec glob (or several) -> PCollection of distinct file URLs, reshuffled across
    workers.

    Uses fsspec rather than Beam's FileSystems so that every fsspec protocol works
    (local, gs://, s3://, memory://). A file matched by several patterns is one input (Distinct:
    no row staged or image colorized twice); the Reshuffle spreads the files over workers.
    Files inside `exclude` (the job's own output folder) are never inputs: dropped with a
    warning, so that `colorize 'photos/**' photos/colour` does not colorize its own outputs and
    markers, nor `stage` / `evaluate` read back their own plots and lock file; nor are hints
    sidecars (*.hints.json, read beside their image). checks.match_inputs counts the same set.
    """

    def __init__(self, patterns: list[str], exclude: str | None = None):
        super().__init__()
        self.patterns, self.exclude = list(patterns), exclude

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "Expand" >> beam.FlatMap(_expand_or_keep)
            | "Keep" >> beam.Filter(_not_under, self.exclude)
            | "NoSidecars" >> beam.Filter(lambda u: not is_sidecar(u))
            | "Distinct" >> beam.Distinct()
            | "Reshuffle" >> beam.Reshuffle()
        )


def _expand_or_keep(pattern: str) -> list[str]:
    """The files of a pattern; a pattern matching nothing is kept as is, so reading it fails
    and it is accounted for as 'unreadable' (file not found) instead of vanishing."""
    files = expand_glob(pattern)
    if not files:
        log.warning("no file matches %s", pattern)
    return files or [pattern]


class SafeApply(beam.DoFn):
    """Apply a pure function to each element; never raise on bad data.

    With `read=True` the element is a URI and fn gets (uri, bytes); else fn gets the element,
    and `uri_of(element)` names it in error rows; `threads`: CPU threads of each worker
    (transforms.threads.limit_threads). Main output: fn's result. Tagged outputs:
    OUTCOMES (one code per rejected input, and `success` per result when it is set),
    FILTERED / ERRORS (rows of schema.ERROR_SCHEMA). Beam counters in namespace `job`.
    """

    def __init__(
        self,
        fn: Callable,
        job: str,
        stage: str,
        read: bool = True,
        success: str | None = schema.KEPT,
        uri_of: Callable = lambda e: e["uri"],
        threads: int | None = None,
    ):
        self.fn, self.job, self.stage, self.read = fn, job, stage, read
        self.success, self.uri_of, self.threads = success, uri_of, threads

    def setup(self):
        limit_threads(self.threads)  # numpy's BLAS: local workers share the cores
        freeze_long_lived()
        self._success = Metrics.counter(self.job, self.success) if self.success else None

    def process(self, element):
        uri = element if self.read else self.uri_of(element)
        try:
            result = self.fn(uri, read_bytes(uri)) if self.read else self.fn(element)
        except Exception as e:  # noqa: BLE001 - a bad input must never fail the job
            yield from reject_exception(self.job, self.stage, uri, e)
            return
        if self.success:
            self._success.inc()
            yield beam.pvalue.TaggedOutput(OUTCOMES, self.success)
        yield result


class SafeApplyBatch(SafeApply):
    """SafeApply over a batch of URIs (a list, from beam.BatchElements): `fn(items)` takes
    [(uri, bytes)] of files that could be read and returns one result or exception per item,
    so the per-element cost of many small files is paid once per batch. The files are read
    and handed to fn in runs of at most BATCH_READ_BYTES (a batch of large scans is then one
    file at a time, not all their bytes at once). Each item is accounted for as with
    SafeApply (an outcome per item); the main output is one list per run: its results, in
    input order (WriteRowBatches(batched=True) takes such lists). Should fn fail on a whole
    run, each of its items is retried alone."""

    def __init__(self, fn: Callable, job: str, stage: str, threads: int | None = None):
        super().__init__(fn, job, stage, read=True, success=schema.KEPT, threads=threads)

    def process(self, uris):
        items, size = [], 0
        for uri in uris:
            try:
                data = read_bytes(uri)
            except Exception as e:  # noqa: BLE001
                yield from reject_exception(self.job, self.stage, uri, e)
                continue
            items.append((uri, data))
            size += len(data)
            if size >= BATCH_READ_BYTES:
                yield from self._apply(items)
                items, size = [], 0
        yield from self._apply(items)

    def _apply(self, items: list[tuple[str, bytes]]):
        if not items:
            return
        try:
            results = self.fn(items)
        except Exception:  # noqa: BLE001 - retry one by one: only the culprit fails
            log.warning("batch of %d failed; retrying item by item", len(items), exc_info=True)
            results = []
            for item in items:
                try:
                    (r,) = self.fn([item])
                except Exception as e:  # noqa: BLE001
                    r = e
                results.append(r)
        kept = []
        for (uri, _), result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                yield from reject_exception(self.job, self.stage, uri, result)
                continue
            self._success.inc()
            yield beam.pvalue.TaggedOutput(OUTCOMES, self.success)
            kept.append(result)
        if kept:
            yield kept


def reject_exception(job: str, stage: str, uri: str, exc: Exception):
    """The tagged outputs of an input whose step raised `exc`: ImageError's outcome,
    'unreadable' for a missing or unreadable file, else 'failed' (logged with its traceback)."""
    if isinstance(exc, ImageError):
        outcome, reason = exc.outcome, str(exc)
    elif isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        outcome, reason = schema.UNREADABLE, unreadable_reason(uri, exc)
    else:
        log.warning("unexpected failure on %s", uri, exc_info=exc)
        outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
    yield from reject(job, stage, uri, outcome, reason)


def unreadable_reason(uri: str, exc: OSError) -> str:
    """Why a file could not be read: a symbolic link whose target is gone says so, else the
    error's own words."""
    if isinstance(exc, FileNotFoundError) and os.path.islink(uri):
        return f"broken symbolic link: its target {os.readlink(uri)} does not exist"
    return str(exc)


def reject(job: str, stage: str, uri: str, outcome: str, reason: str):
    """The tagged outputs that account for one rejected input."""
    Metrics.counter(job, outcome).inc()
    yield beam.pvalue.TaggedOutput(OUTCOMES, outcome)
    tag = FILTERED if outcome in FILTER_OUTCOMES else ERRORS
    row = {
        "uri": uri,
        "stage": "filter" if tag == FILTERED else stage,
        "outcome": outcome,
        "reason": reason,
    }
    yield beam.pvalue.TaggedOutput(tag, row)


def dead_letter_rows(failure, stage: str) -> list[dict]:
    """RunInference's failed batches `(batch, exception)` -> one error row per image; the
    batch elements are (item, example) pairs whose item carries the "uri"."""
    batch, exc = failure if isinstance(failure, tuple) and len(failure) == 2 else (failure, "")
    items = batch if isinstance(batch, list) else [batch]
    return [
        {
            "uri": it[0]["uri"] if isinstance(it, tuple) else str(it),
            "stage": stage,
            "outcome": schema.MODEL_FAILED,
            "reason": failure_reason(exc),
        }
        for it in items
    ]


def failure_reason(exc, limit: int = 500) -> str:
    """One line for a dead-lettered exception: Beam gives `(type, repr, traceback lines)`,
    whose last traceback line is 'Kind: message' (the traceback itself goes to the log)."""
    if isinstance(exc, tuple) and len(exc) == 3:
        kind, text, tb = exc
        log.warning("model failure: %s", "".join(tb) if isinstance(tb, list) else text)
        name = getattr(kind, "__name__", kind)
        text = tb[-1] if isinstance(tb, list) and tb else f"{name}: {text}"
    else:
        text = str(exc)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_apply(pcoll, fn, job: str, label: str, batch: bool = False, **kwargs):
    """pcoll | SafeApply(fn, ...) (SafeApplyBatch with `batch`: pcoll holds lists of URIs)
    with all tagged outputs; returns the DoOutputsTuple."""
    stage = kwargs.pop("stage", label.lower())
    dofn = (SafeApplyBatch if batch else SafeApply)(fn, job, stage, **kwargs)
    return pcoll | label >> beam.ParDo(dofn).with_outputs(OUTCOMES, ERRORS, FILTERED, main="rows")


def prepare_step(named, fn: Callable, job: str, stage: str = "decode"):
    """(uri, output stem) pairs -> `fn(pair)`, the item RunInference takes, under SafeApply
    (a failure is an error row naming the uri; success is counted later, by finish): the
    "Prepare" step colorize, encode and decode share."""
    return safe_apply(
        named, fn, job, "Prepare", stage=stage, read=False, success=None, uri_of=lambda e: e[0]
    )


def infer_and_finish(prep_rows, handler, finish: Callable, job: str, label: str, stage: str,
                     success: str):  # fmt: skip
    """Prepared items (dicts with "uri" and "l_render") -> RunInference with a keyed handler ->
    `finish(item, inference)` under SafeApply. Returns (the finish step's outputs, the error
    rows of batches the model failed on): the graph colorize, encode and decode share."""
    from apache_beam.ml.inference.base import RunInference

    predictions, dlq = (
        prep_rows
        | "Key" >> beam.Map(lambda it: (it, it["l_render"]))
        | "Infer" >> RunInference(handler).with_exception_handling()
    )
    done = safe_apply(
        predictions,
        lambda kv: finish(kv[0], kv[1].inference),
        job,
        label,
        stage=stage,
        read=False,
        success=success,
        uri_of=lambda kv: kv[0]["uri"],
    )
    model_errors = dlq.failed_inferences | "ModelErrors" >> beam.FlatMap(dead_letter_rows, "model")
    return done, model_errors


def run_file_job(job: str, output: str, options, total: int, build: Callable, success: str):
    """Run a per-file job (colorize, encode, decode) into `output` under its lock: temporary
    files of a killed run removed, the tables and stats.json rebuilt (no stats.json = an
    unfinished run; a folder holding another job's stats.json is refused), a progress line on
    local runners, `build(pipeline)` adds the graph (whose WriteAccounting gives a results
    table written in no file an empty part, so readers always find one). JobFailed (exit
    code 1) when inputs were there but none came out `success`."""
    from pipeline import checks, progress
    from pipeline.locking import output_lock
    from pipeline.options import is_local, log_counters
    from transforms.fileio import clear_dirs, read_json, remove_partials

    checks.check_job_folder(output, job)
    with output_lock(output, job):
        remove_partials(output)
        clear_dirs(output, ["errors", "filtered", "results", "stats.json"])
        with progress.report(job, total, enabled=is_local(options)):
            with beam.Pipeline(options=options) as p:
                build(p)
    log_counters(p.result, job)
    outcomes = read_json(join(output, "stats.json"))["outcomes"] if total else {}
    if total and not outcomes.get(success):
        counts = ", ".join(f"{n} {o}" for o, n in outcomes.items())
        raise checks.JobFailed(
            f"no input was {success} ({counts}): the reasons are in {join(output, 'errors')}"
        )


def accounting_inputs(*outputs, extra_errors=(), failed=()) -> dict:
    """The tagged outputs of one or more SafeApply steps, flattened per tag, as the dict
    WriteAccounting takes; `extra_errors`: more error rows (of inputs already counted),
    `failed`: error rows of inputs no step counted (the model's failed batches), each also
    counted under its outcome."""
    merged = {}
    extra = {
        OUTCOMES: [
            f | f"FailedOutcome{i}" >> beam.Map(lambda row: row["outcome"])
            for i, f in enumerate(failed)
        ],
        ERRORS: [*extra_errors, *failed],
        FILTERED: [],
    }
    for tag in (OUTCOMES, ERRORS, FILTERED):
        parts = [o[tag] for o in outputs] + extra[tag]
        merged[tag] = parts[0] if len(parts) == 1 else parts | f"Merge{tag}" >> beam.Flatten()
    return merged


def row_bytes(row: dict) -> int:
    """The bytes a row's binary fields hold (its pixel payload): what a shard buffers."""
    return sum(len(v) for v in row.values() if isinstance(v, (bytes, bytearray)))


class _WriteShards(beam.DoFn):
    """Buffer rows and write a Parquet file (`write(rows, out_dir, prefix, schema) -> uri`)
    every `n` rows and at the end of each bundle; a file's URI is output once it is written."""

    def __init__(self, out_dir: str, prefix: str, pa_schema, n: int, write: Callable = write_shard):
        self.out_dir, self.prefix, self.schema, self.n = out_dir, prefix, pa_schema, n
        self.write = write
        self.buffer: list[dict] = []

    def start_bundle(self):
        self.buffer = []

    def process(self, element):
        self.buffer.append(element)
        if len(self.buffer) >= self.n:
            yield self._flush()

    def finish_bundle(self):
        yield from _in_global_window([self._flush()] if self.buffer else [])

    def _flush(self) -> str:
        rows, self.buffer = self.buffer, []
        return self.write(rows, self.out_dir, self.prefix, self.schema)


def _in_global_window(values: list) -> Iterator:
    """finish_bundle's outputs: each value in the global window."""
    for v in values:
        yield beam.utils.windowed_value.WindowedValue(
            v,
            beam.transforms.window.GlobalWindow().max_timestamp(),
            [beam.transforms.window.GlobalWindow()],
        )


class StreamShards(beam.DoFn):
    """Write dict rows as files of at most `n` rows and `max_bytes` of binary fields (and at
    the end of each bundle), each written a row group at a time on one writer thread:
    `open_shard(out_dir, prefix)` gives a file with write(rows) (one row group), close() ->
    its URI and abort() (staging.ShardFile). The rows go to the writer thread in groups of
    `group_bytes` of binary fields (or a file's last rows), at most one group in flight, so
    a worker holds two groups' rows rather than two files' (_WriteShards), while compression
    and the fsync overlap the next rows' work. A file's URI is output once it is closed, and a
    bundle ends only when its files are: a failed write fails its bundle, and its open file
    is dropped. `batched`: the elements are lists of rows."""

    def __init__(
        self,
        out_dir: str,
        prefix: str,
        n: int,
        open_shard: Callable,
        group_bytes: int,
        max_bytes: int | None = None,
        batched: bool = False,
    ):
        self.out_dir, self.prefix, self.n, self.open_shard = out_dir, prefix, n, open_shard
        self.group_bytes, self.max_bytes, self.batched = group_bytes, max_bytes, batched
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._shard = None  # the file open on the writer thread

    def setup(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")

    def start_bundle(self):
        if self._pending is not None:  # left by a failed bundle: let it end, its rows are retried
            self._pending.exception()
            self._pending = None
        self._drop_shard()
        self.group: list[dict] = []
        self.group_size = self.rows = self.size = 0  # the group's bytes; the file's rows, bytes

    def process(self, element):
        for row in element if self.batched else (element,):
            nbytes = row_bytes(row)
            self.group.append(row)
            self.group_size += nbytes
            self.rows, self.size = self.rows + 1, self.size + nbytes
            if self.rows >= self.n or (self.max_bytes and self.size >= self.max_bytes):
                yield from self._send(close=True)
            elif self.group_size >= self.group_bytes:
                yield from self._send(close=False)

    def finish_bundle(self):
        uris = list(self._send(close=True)) if self.rows else []
        yield from _in_global_window(uris + self._written())

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._drop_shard()

    def _send(self, close: bool) -> Iterator[str]:
        """Hand the group to the writer thread (closing the file after it if `close`), once
        the write in flight has ended; yields the URI of a file that write closed."""
        group, self.group, self.group_size = self.group, [], 0
        if close:
            self.rows = self.size = 0
        yield from self._written()
        self._pending = self._pool.submit(self._write, group, close)

    def _written(self) -> list[str]:
        """The URI of the file the write in flight closed, once it has ended (its error
        raised), or []."""
        if self._pending is None:
            return []
        pending, self._pending = self._pending, None
        uri = pending.result()
        return [uri] if uri else []

    def _write(self, rows: list[dict], close: bool) -> str | None:
        """On the writer thread: rows as the open file's next row group (a file opened
        first if none is), then the file closed if `close`; its URI, or None."""
        try:
            if self._shard is None:
                self._shard = self.open_shard(self.out_dir, self.prefix)
            if rows:  # none when the file's last group went before its close
                self._shard.write(rows)
            if not close:
                return None
            shard, self._shard = self._shard, None
            return shard.close()
        except BaseException:
            self._drop_shard()
            raise

    def _drop_shard(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.abort()


class WriteRowBatches(beam.PTransform):
    """Write dict rows as Parquet files of at most `rows_per_file` rows (never empty).

    Each worker buffers the rows of its bundle (so memory is bounded by rows_per_file) and
    writes a file when the buffer is full or the bundle ends. No GroupIntoBatches: its
    real-time timer makes the DirectRunner fall back to a single process.
    `write(rows, out_dir, prefix, pa_schema) -> uri` writes one file (default
    fileio.write_shard). `stage`'s shards, big and many, go through StreamShards instead.
    """

    def __init__(
        self,
        out_dir: str,
        prefix: str,
        pa_schema,
        rows_per_file: int,
        write: Callable = write_shard,
    ):
        super().__init__()
        self.out_dir, self.prefix, self.schema = out_dir, prefix, pa_schema
        self.n, self.write = rows_per_file, write

    def expand(self, rows):
        return rows | "Write" >> beam.ParDo(
            _WriteShards(self.out_dir, self.prefix, self.schema, self.n, self.write)
        )


class SumArrays(beam.CombineFn):
    """Element-wise sum of equally shaped arrays (numpy arrays or lists of ints), as int64."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, x):
        if acc is None:
            return np.array(x, dtype=np.int64)  # a copy: the accumulator is ours to add into
        acc += x
        return acc

    def merge_accumulators(self, accs):
        accs = [a for a in accs if a is not None]
        return sum(accs[1:], accs[0].copy()) if accs else None

    def extract_output(self, acc):
        return acc


def _write_stats(
    counts: list[tuple[tuple[str, bool], int]],
    out_dir: str,
    job: str,
    extra: dict,
    with_resumed: bool = False,
    outputs_written: int = 0,
    tables: list[tuple[str, object]] = (),
    files_per_table: dict[int, int] | None = None,
    name: str = "stats.json",
) -> dict:
    """stats.json from ((outcome, resumed), count) pairs: `outcomes` counts every input under
    its outcome, whether this run or an earlier one (resumed) produced it, so a resumed run's
    stats equal a clean run's; `resumed` says how many of them an earlier run did.
    `outputs_written`: how many files the job's writes ended with (WriteAccounting's side
    input, which makes stats.json wait for them), unused here. `tables`: (folder, schema) of
    the job's tables, `files_per_table`: how many files each (by index) was written in; one
    written in none gets an empty part first. `name`: the file written in out_dir (a job
    with steps after its pipeline writes it under another name and publishes it last)."""
    outcomes: dict[str, int] = {}
    resumed = 0
    for (outcome, was_resumed), n in counts:
        outcomes[outcome] = outcomes.get(outcome, 0) + n
        resumed += n if was_resumed else 0
    stats = {
        "job": job,
        "total": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        **({"resumed": resumed} if with_resumed else {}),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    for tag in (ERRORS, FILTERED):  # an empty table, so readers always find one
        write_table(join(out_dir, tag, "part-empty.parquet"), [], schema.ERROR_SCHEMA)
    for i, (folder, pa_schema) in enumerate(tables):
        if not (files_per_table or {}).get(i):
            write_table(join(folder, "part-empty.parquet"), [], pa_schema)
    write_json(join(out_dir, name), stats)  # last: the run is finished
    return stats


class WriteAccounting(beam.PTransform):
    """stats.json (count per outcome) + errors/ and filtered/ Parquet tables in out_dir.

    Takes the dict of accounting_inputs; an optional RESUMED entry (outcome codes of inputs an
    earlier run finished) is counted under those outcomes and in stats' `resumed` field.
    stats.json is the run's last file: it is written once the errors/ and filtered/ tables
    and every PCollection in `after` (the job's other writes: shards, results, priors) are
    complete, through a side input, so a run killed before its end leaves no stats.json
    ("not finished") rather than one beside missing outputs. `empty_tables`: (URIs a table's
    writer output, its folder, its schema) of the job's own tables: a table whose writer
    wrote no file (every input rejected) gets an empty part (part-empty.parquet) before
    stats.json, so that readers always find one. `stats_name`: the stats file's name in
    out_dir (evaluate's is published as stats.json after its report).
    """

    def __init__(
        self,
        out_dir: str,
        job: str,
        extra: dict | None = None,
        after=(),
        empty_tables=(),
        stats_name: str = "stats.json",
    ):
        super().__init__()
        self.out_dir, self.job, self.extra = out_dir, job, extra or {}
        self.after, self.empty_tables = list(after), list(empty_tables)
        self.stats_name = stats_name

    def expand(self, outputs):
        written = [
            outputs[tag]
            | f"Write{tag}"
            >> WriteRowBatches(join(self.out_dir, tag), "part", schema.ERROR_SCHEMA, 10000)
            for tag in (ERRORS, FILTERED)
        ]
        done = (
            [*written, *self.after]
            | "AllWritten" >> beam.Flatten()
            | "CountWritten" >> beam.combiners.Count.Globally()
        )
        outcomes = outputs[OUTCOMES] | "Fresh" >> beam.Map(lambda o: (o, False))
        with_resumed = outputs.get(RESUMED) is not None
        if with_resumed:
            resumed = outputs[RESUMED] | "Resumed" >> beam.Map(lambda o: (o, True))
            outcomes = (outcomes, resumed) | "AllOutcomes" >> beam.Flatten()
        tables = [(folder, pa_schema) for _, folder, pa_schema in self.empty_tables]
        files_per_table = {}
        if tables:
            files_per_table = beam.pvalue.AsDict(
                [
                    uris | f"TableIndex{i}" >> beam.Map(lambda _, i=i: i)
                    for i, (uris, _, _) in enumerate(self.empty_tables)
                ]
                | "AllTables" >> beam.Flatten()
                | "FilesPerTable" >> beam.combiners.Count.PerElement()
            )
        return (
            outcomes
            | "CountOutcomes" >> beam.combiners.Count.PerElement()
            | "AllCounts" >> beam.combiners.ToList()
            | "WriteStats"
            >> beam.Map(
                _write_stats,
                self.out_dir,
                self.job,
                self.extra,
                with_resumed,
                beam.pvalue.AsSingleton(done),
                tables,
                files_per_table,
                self.stats_name,
            )
        )


def write_results_and_stats(rows, acc: dict, output: str, job: str, results_schema, extra: dict):
    """The file jobs' last steps (colorize, encode, decode): `rows` into results/ (Parquet of
    `results_schema`, an empty part if no row came out) and WriteAccounting of `acc` (with
    `extra` in stats.json), whose stats.json waits for the results."""
    folder = join(output, "results")
    results = rows | "Results" >> WriteRowBatches(folder, "part", results_schema, 10000)
    return acc | "Accounting" >> WriteAccounting(
        output, job, extra, after=[results], empty_tables=[(results, folder, results_schema)]
    )


class AssignNames(beam.PTransform):
    """URIs -> (uri, output stem) by transforms.naming's rule, with the global view it needs:
    key by naming.group_key, GroupByKey (only inputs sharing a key can collide), resolve each
    group, then Reshuffle so the per-image work spreads over the workers again.
    """

    def __init__(self, bases: list[str] | tuple[str, ...]):
        super().__init__()
        self.bases = tuple(bases)

    def expand(self, uris):
        return (
            uris
            | "ByGroup" >> beam.Map(_keyed, self.bases)
            | "Group" >> beam.GroupByKey()
            | "Resolve" >> beam.FlatMap(lambda kv: sorted(naming.resolve_group(kv[1]).items()))
            | "Spread" >> beam.Reshuffle()
        )


def _keyed(uri: str, bases: tuple[str, ...]) -> tuple[str, tuple[str, str]]:
    rel = naming.relative_name(uri, bases)
    return naming.group_key(rel), (uri, rel)


def _not_under(uri: str, folder: str | None) -> bool:
    if folder and naming.is_under(uri, folder):
        log.warning("not an input: %s is inside the output folder", uri)
        return False
    return True


class _TickFn(beam.DoFn):
    """Counts elements and records them (progress.tick, a file append) at most every
    TICK_FLUSH_SECONDS and at the end of each bundle, not once per element."""

    def __init__(self, job: str, weight: int):
        self.job, self.weight = job, weight
        self.pending, self.flushed = 0, 0.0

    def start_bundle(self):
        self.pending, self.flushed = 0, 0.0  # a bundle's first element is recorded at once

    def process(self, element):
        self.pending += self.weight
        now = time.monotonic()
        if now - self.flushed >= TICK_FLUSH_SECONDS:
            self._flush(now)
        return ()

    def finish_bundle(self):
        self._flush(time.monotonic())

    def _flush(self, now: float) -> None:
        progress.tick(self.job, self.pending)
        self.pending, self.flushed = 0, now


class Ticks(beam.PTransform):
    """`pcoll | Ticks(job)`: one tick (or `weight` ticks) per element; outputs nothing.
    Apply it where the elements are produced (see tick_each), not after a Flatten."""

    def __init__(self, job: str, weight: int = 1):
        super().__init__()
        self.job, self.weight = job, weight

    def expand(self, pcoll):
        return pcoll | beam.ParDo(_TickFn(self.job, self.weight))


def tick_each(job: str, *pcolls, weight: int = 1, label: str = "Progress") -> None:
    """Apply Ticks(job) to each PCollection separately. (Not to their Flatten: the local
    runner materialises a Flatten's inputs, so its consumer would tick only at the end.)"""
    for i, pc in enumerate(pcolls):
        _ = pc | f"{label}{i}" >> Ticks(job, weight)
