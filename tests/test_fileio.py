"""fsspec helpers: shard naming and table round trips."""

from __future__ import annotations

import pyarrow as pa

from transforms.fileio import read_table, write_shard

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
