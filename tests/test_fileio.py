"""fsspec helpers: shard naming and table round trips."""

from __future__ import annotations

import os

import pyarrow as pa

from transforms.fileio import read_table, write_bytes, write_shard

SCHEMA = pa.schema([("key", pa.string()), ("model", pa.string()), ("value", pa.float64())])


def test_batches_sharing_keys_get_distinct_shards(tmp_path):
    # One image scored by two models: same keys, different rows -> two files, no overwrite.
    a = [{"key": "k1", "model": "a", "value": 1.0}, {"key": "k2", "model": "a", "value": 2.0}]
    b = [{"key": "k1", "model": "b", "value": 3.0}, {"key": "k2", "model": "b", "value": 4.0}]
    pa_, pb = (
        write_shard(a, str(tmp_path), "part", SCHEMA),
        write_shard(b, str(tmp_path), "part", SCHEMA),
    )
    assert pa_ != pb
    assert sorted(read_table(str(tmp_path)).column("value").to_pylist()) == [1.0, 2.0, 3.0, 4.0]


def test_same_batch_gets_the_same_name(tmp_path):
    rows = [{"key": "k1", "model": "a", "value": 1.0}]
    assert write_shard(rows, str(tmp_path), "p", SCHEMA) == write_shard(
        rows, str(tmp_path), "p", SCHEMA
    )
    assert len(list(tmp_path.iterdir())) == 1


def test_file_stamp_changes_with_the_file_and_not_otherwise(tmp_path):
    from transforms.fileio import file_stamp

    path = tmp_path / "a.png"
    path.write_bytes(b"first")
    first = file_stamp(str(path))
    assert first["bytes"] == 5 and first["version"]
    assert file_stamp(str(path)) == first  # read again, nothing changed: the same
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert file_stamp(str(path)) != first  # same bytes, another modification time
    path.write_bytes(b"other!")
    assert file_stamp(str(path))["bytes"] == 6
    assert file_stamp(str(tmp_path / "none.png")) is None
    assert file_stamp(str(tmp_path)) is None  # a folder is no file
    write_bytes("memory://stamp/a.png", b"abc")
    mem = file_stamp("memory://stamp/a.png")
    assert mem["bytes"] == 3 and mem["version"]  # memory:// reports its creation time
