"""fsspec helpers: globbing, reading, and writing Parquet / JSON / bytes to any URL."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def expand_glob(pattern: str) -> list[str]:
    """All files matching an fsspec glob (`*`, `?`, `[..]`, `**`), a file, or every file under
    a folder, as URLs in the pattern's form, sorted. A pattern matching nothing -> []."""
    fs, path = fsspec.core.url_to_fs(pattern)
    if any(ch in path for ch in "*?["):
        paths = fs.glob(path)
    elif fs.isdir(path):
        paths = fs.find(path)
    else:
        paths = [path] if fs.exists(path) else []
    files = [p for p in paths if not fs.isdir(p)]
    return sorted(fs.unstrip_protocol(p) if "://" in pattern else p for p in files)


def read_bytes(uri: str) -> bytes:
    """The whole content of a file at an fsspec URL."""
    with fsspec.open(uri, "rb") as f:
        return f.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write bytes to an fsspec URL, creating parent folders."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)


def is_dir(uri: str) -> bool:
    """Whether an fsspec URL is a folder."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.isdir(path)


def exists(uri: str) -> bool:
    """Whether a file exists at an fsspec URL."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def clear_dirs(base: str, names: list[str]) -> None:
    """Delete the given subfolders of base (a job's previous tables), so a re-run into the
    same output does not mix old and new Parquet parts."""
    for name in names:
        fs, path = fsspec.core.url_to_fs(join(base, name))
        if fs.exists(path):
            fs.rm(path, recursive=True)


def join(base: str, *parts: str) -> str:
    """Join URL/path components with '/'."""
    return posixpath.join(base.rstrip("/"), *parts) if base else posixpath.join(*parts)


def write_json(uri: str, obj: object) -> None:
    """Write an object as indented JSON."""
    write_bytes(uri, json.dumps(obj, indent=2, sort_keys=True, default=float).encode())


def read_json(uri: str) -> object:
    """Read a JSON file."""
    return json.loads(read_bytes(uri))


def write_table(uri: str, rows: Sequence[dict], schema: pa.Schema) -> str:
    """Write rows (dicts matching `schema`) as one Parquet file (zstd); returns the URI."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    return uri


def write_shard(rows: Sequence[dict], out_dir: str, prefix: str, schema: pa.Schema) -> str:
    """Write a non-empty batch as `<prefix>-<hash of its keys>.parquet` in out_dir.

    The name depends only on the rows' contents, so a retried bundle overwrites its own
    shard and two different batches never share a name.
    """
    if not rows:
        raise ValueError("refusing to write an empty shard")
    digest = hashlib.sha1("\n".join(_row_ids(rows)).encode()).hexdigest()[:16]
    return write_table(join(out_dir, f"{prefix}-{digest}.parquet"), rows, schema)


def _row_ids(rows: Iterable[dict]) -> Iterable[str]:
    """A stable identity per row: its scalar fields (binary and list columns left out), so
    rows that share a key (e.g. one image scored by several models) still differ."""
    for r in rows:
        yield "|".join(f"{k}={v}" for k, v in r.items() if isinstance(v, (str, int, float)))


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file or a folder of Parquet files at an fsspec URL."""
    fs, path = fsspec.core.url_to_fs(uri)
    return pq.read_table(path, filesystem=fs, columns=columns)
