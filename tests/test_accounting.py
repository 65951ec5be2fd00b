"""stats.json is each job's last file: WriteAccounting waits for the job's other writes."""

from __future__ import annotations

import json
import os
import time

import apache_beam as beam

from pipeline.common import ERRORS, FILTERED, OUTCOMES, WriteAccounting
from tests.helpers import capture_pipelines, upstream_of

SLOW_S = 1.0


def _late_write(key_values, marker: str) -> str:
    """Sleep, then write `marker` holding the time it was written; its URI."""
    time.sleep(SLOW_S)
    with open(marker, "w") as f:
        json.dump({"at": time.time()}, f)
    return marker


def _accounting_run(out_dir: str, marker: str, wait: bool) -> None:
    """A pipeline whose one "output write" ends late (after three shuffles and a sleep), with
    WriteAccounting told to wait for it (`wait`) or not."""
    with beam.Pipeline() as p:
        outcomes = p | "Outcomes" >> beam.Create(["kept", "kept", "grayscale"])
        late = (
            p
            | "Rows" >> beam.Create([("k", 1)])
            | "G1" >> beam.GroupByKey()
            | "Flat1" >> beam.FlatMap(lambda kv: [(kv[0], v) for v in kv[1]])
            | "G2" >> beam.GroupByKey()
            | "Flat2" >> beam.FlatMap(lambda kv: [(kv[0], v) for v in kv[1]])
            | "G3" >> beam.GroupByKey()
            | "Late" >> beam.Map(_late_write, marker)
        )
        empty = p | "NoRows" >> beam.Create([])
        acc = {OUTCOMES: outcomes, ERRORS: empty, FILTERED: empty | "NoFiltered" >> beam.Map(str)}
        _ = acc | WriteAccounting(out_dir, "test", after=[late] if wait else [])


def test_stats_json_is_written_after_the_writes_it_waits_for(tmp_path, monkeypatch):
    marker, out = str(tmp_path / "late.json"), str(tmp_path / "out")
    pipelines = capture_pipelines(monkeypatch)
    _accounting_run(out, marker, wait=True)
    waits_for = upstream_of(pipelines[0], "WriteStats")
    assert "Late" in waits_for
    assert {"WriteAccounting/Writeerrors/Write", "WriteAccounting/Writefiltered/Write"} <= waits_for
    stats_path = os.path.join(out, "stats.json")
    with open(stats_path) as f:
        stats = json.load(f)
    assert stats["outcomes"] == {"grayscale": 1, "kept": 2}
    with open(marker) as f:
        late_at = json.load(f)["at"]
    assert os.stat(stats_path).st_mtime >= late_at
    # ... and after its own tables (written empty here)
    for tag in (ERRORS, FILTERED):
        names = os.listdir(os.path.join(out, tag))
        assert names == ["part-empty.parquet"], names


def test_stats_json_counts_an_empty_set_of_writes(tmp_path):
    """Nothing to wait for (a run whose every input failed): stats.json is still written."""
    out = str(tmp_path / "out")
    with beam.Pipeline() as p:
        none = p | "Nothing" >> beam.Create([])
        outcomes = p | "Outcomes" >> beam.Create(["undecodable"])
        acc = {OUTCOMES: outcomes, ERRORS: none, FILTERED: none | "F" >> beam.Map(str)}
        _ = acc | WriteAccounting(out, "test", after=[none | "NoFiles" >> beam.Map(str)])
    with open(os.path.join(out, "stats.json")) as f:
        assert json.load(f)["outcomes"] == {"undecodable": 1}


def test_without_after_stats_json_waits_for_its_own_tables_only(tmp_path, monkeypatch):
    """The graph check above can fail: with nothing in `after`, the late write is not upstream."""
    pipelines = capture_pipelines(monkeypatch)
    _accounting_run(str(tmp_path / "out"), str(tmp_path / "late.json"), wait=False)
    waits_for = upstream_of(pipelines[0], "WriteStats")
    assert "Late" not in waits_for and "WriteAccounting/Writeerrors/Write" in waits_for


def test_a_table_whose_writer_wrote_nothing_gets_an_empty_part_before_stats_json(tmp_path):
    """empty_tables: the table written in no file gets part-empty.parquet (its schema) before
    stats.json; the one written in a file is left alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = str(tmp_path / "out")
    schema_a = pa.schema([("x", pa.int32())])
    written = tmp_path / "b" / "part-1.parquet"
    written.parent.mkdir()
    pq.write_table(pa.table({"y": [1]}), written)
    with beam.Pipeline() as p:
        none = p | "Nothing" >> beam.Create([])
        outcomes = p | "Outcomes" >> beam.Create(["undecodable"])
        acc = {OUTCOMES: outcomes, ERRORS: none, FILTERED: none | "F" >> beam.Map(str)}
        a_uris = none | "NoFiles" >> beam.Map(str)
        b_uris = p | "OneFile" >> beam.Create([str(written)])
        _ = acc | WriteAccounting(
            out,
            "test",
            after=[a_uris, b_uris],
            empty_tables=[
                (a_uris, str(tmp_path / "a"), schema_a),
                (b_uris, str(tmp_path / "b"), None),
            ],
        )
    empty = tmp_path / "a" / "part-empty.parquet"
    assert pq.read_schema(empty) == schema_a and pq.read_table(empty).num_rows == 0
    assert sorted(os.listdir(tmp_path / "b")) == ["part-1.parquet"]
    assert os.stat(os.path.join(out, "stats.json")).st_mtime_ns >= empty.stat().st_mtime_ns
