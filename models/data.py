"""Stream staged Parquet shards into training batches (pyarrow, bounded memory).

Files are visited in a seeded random order, row batches are decoded on the fly and mixed in a
shuffle buffer; nothing loads a whole shard set into memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset

from transforms.fileio import join
from transforms.hints import simulate_training_hints
from transforms.staging import dequantize

COLUMNS = ["split", "size", "l", "ab"]


def shard_files(stage_dir: str) -> list[str]:
    """The Parquet shards written by `chromabeam stage` into stage_dir/shards."""
    fs, path = fsspec.core.url_to_fs(join(stage_dir, "shards"))
    files = sorted(f for f in fs.glob(path + "/*.parquet") if not f.endswith("part-empty.parquet"))
    if not files:
        raise FileNotFoundError(f"no shards in {stage_dir}/shards: run `chromabeam stage` first")
    return [fs.unstrip_protocol(f) if "://" in stage_dir else f for f in files]


MODEL_SPACE = "lab"  # every registered model takes L and predicts ab (CIE Lab)


def shard_space(priors: dict, files: list[str]) -> str:
    """The colour space of staged shards (`stage --space`): the shards' `space` column (read
    from the first shard) or priors.json's "space"; "lab" for stage outputs older than both."""
    with fsspec.open(files[0], "rb") as fh:
        pf = pq.ParquetFile(fh)
        if "space" in pf.schema_arrow.names and pf.metadata.num_rows:
            values = set(pf.read_row_group(0, columns=["space"]).column("space").to_pylist())
            values.discard(None)
            if values:
                return ",".join(sorted(values))
    return priors.get("space", "lab")


def check_space(priors: dict, files: list[str], model: str, takes: str = MODEL_SPACE) -> None:
    """Refuse shards in a colour space the model does not take (one clear line, exit 2)."""
    space = shard_space(priors, files)
    if space != takes:
        from pipeline.checks import UsageError

        raise UsageError(
            f"the shards are in {space.upper()} space but model {model!r} takes "
            f"{takes.upper()}: restage with `chromabeam stage --space {takes}`"
        )


def count_rows(files: list[str], split: str) -> int:
    """Rows of the given split (reads only the split column)."""
    n = 0
    for f in files:
        with fsspec.open(f, "rb") as fh:
            col = pq.read_table(fh, columns=["split"]).column("split")
            n += int(np.sum(np.asarray(col.to_pylist()) == split))
    return n


def staged_size(files: list[str]) -> int:
    """The smallest crop side (the `size` column) in the shards (0 without rows)."""
    sizes = []
    for f in files:
        with fsspec.open(f, "rb") as fh:
            sizes += pq.read_table(fh, columns=["size"]).column("size").to_pylist()
    return min(sizes, default=0)


def augment(l: np.ndarray, ab: np.ndarray, crop: int, rng: random.Random):
    """Random crop to crop x crop and random horizontal flip."""
    size = l.shape[0]
    if crop < size:
        y, x = rng.randrange(size - crop + 1), rng.randrange(size - crop + 1)
        l, ab = l[y : y + crop, x : x + crop], ab[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        l, ab = l[:, ::-1], ab[:, ::-1]
    return l, ab


def to_tensors(l: np.ndarray, ab: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) L and (H, W, 2) ab -> (1, H, W) and (2, H, W) float32 tensors."""
    return (
        torch.from_numpy(np.ascontiguousarray(l))[None],
        torch.from_numpy(np.ascontiguousarray(ab.transpose(2, 0, 1))),
    )


class ShardStream(IterableDataset):
    """Yields (L, ab) tensors of one split; `train=True` shuffles and augments. With
    `hints=True` it yields (L, ab, hint map (3, H, W)): Zhang 2017's simulated hints of the
    augmented crop (transforms.hints.simulate_training_hints), seeded like the crops."""

    def __init__(
        self,
        files: list[str],
        split: str,
        crop: int | None = None,
        train: bool = True,
        seed: int = 0,
        buffer: int = 2048,
        hints: bool = False,
    ):
        super().__init__()
        self.hints = hints
        self.files, self.split, self.crop, self.train = files, split, crop, train
        self.seed, self.buffer, self.epoch = seed, buffer, 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed file order and augmentation for an epoch."""
        self.epoch = epoch

    def _rows(self, rng: random.Random) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        files = list(self.files)
        if self.train:
            rng.shuffle(files)
        for f in files:
            with fsspec.open(f, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=256, columns=COLUMNS):
                    d = batch.to_pydict()
                    cols = (d["split"], d["size"], d["l"], d["ab"])
                    for split, size, lb, ab in zip(*cols, strict=True):
                        if split == self.split:
                            yield dequantize(lb, ab, size)

    def __iter__(self):
        rng = random.Random(self.seed * 1000 + self.epoch)
        self._hint_rng = np.random.default_rng([self.seed, self.epoch, 17])
        rows = self._rows(rng)
        if not self.train:
            for l, ab in rows:
                yield to_tensors(l, ab)
            return
        buf: list = []
        for item in rows:
            buf.append(item)
            if len(buf) >= self.buffer:
                yield self._emit(buf.pop(rng.randrange(len(buf))), rng)
        rng.shuffle(buf)
        for item in buf:
            yield self._emit(item, rng)

    def _emit(self, item, rng):
        l, ab = item
        l, ab = augment(l, ab, self.crop or l.shape[0], rng)
        if not self.hints:
            return to_tensors(l, ab)
        hint = simulate_training_hints(np.ascontiguousarray(ab), self._hint_rng)
        return (*to_tensors(l, ab), torch.from_numpy(hint.transpose(2, 0, 1).copy()))
