"""From image bytes to one training-shard row (pure; `pipeline.stage` wraps it in a DoFn)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from transforms import schema
from transforms.bins import _LUT_HALF, _LUT_STEP, _lut_axis, gamut_bins, num_bins
from transforms.colour import RGB_TO_YUV, rgb8_lab_f, rgb8_to_lab_planes
from transforms.crop import fit_and_crop_image, thumbnail
from transforms.decode import DEFAULT_MAX_PIXELS, ImageError, decode_image
from transforms.fileio import PendingFile, row_ids_text, shard_uri
from transforms.filters import GrayThresholds, classify_tone_batch

SHARD_ZSTD_LEVEL = 1  # as small as zstd's default level 3 on ab bytes, at half the time
# ... but the L plane: level -1 makes it as small as level 1 on CIFAR-10 at 224 px in 0.7x the
# time, and 5% bigger on ImageNet photos (2% of a row: zstd shrinks their L bytes by 8% at any
# level); it also reads back in half the time
SHARD_ZSTD_LEVELS = {"l": -1}
FILTER_THUMBNAIL = 64  # side of the thumbnail (of the stored crop) the grayscale filter sees
SMALL_FILTER_THUMBNAIL = 32  # ... of a source smaller than FILTER_THUMBNAIL (CIFAR's 32 px)
VECTOR_PIXELS = 1 << 16  # stage_batch's array steps take this many crop / thumbnail pixels at most
# (bigger batches leave the CPU caches: 32 crops of 224 px at once ran 1.4x slower than one)
HELD_CROP_BYTES = 32 << 20  # stage_batch holds at most this many bytes of crops at once
# pixel bytes per row group of a shard (ShardFile: the shard writer holds a group's rows, not a
# shard's): 56 rows at --size 224, a whole 1,000-row shard at 32. The Beam-free stage loop in
# 2 processes at once (bench/stage.py's StageWork, 3 interleaved pairs): 499-532 img/s, system
# CPU 0.18-0.20 ms per image, against 474-513 and 0.39-0.53 writing each shard at once
ROW_GROUP_BYTES = 8 << 20
SPACES = ("lab", "yuv")  # colour spaces of the shards' l / ab columns (schema.SHARD_SCHEMA)
UV_SCALE = 200.0  # yuv shards: ab holds round(U * 200), round(V * 200) (|U| <= 0.44, |V| <= 0.62)


@dataclass(frozen=True)
class StageConfig:
    """Settings of the `stage` job that shape each row."""

    size: int = 224
    min_size: int = 32
    val_percent: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    thresholds: GrayThresholds = field(default_factory=GrayThresholds)
    space: str = "lab"  # "lab" or "yuv": what the l / ab columns hold


def uri_key(uri: str) -> str:
    """Stable 16-hex-digit id of a source URI."""
    return hashlib.sha1(uri.encode()).hexdigest()[:16]


def split_of(key: str, val_percent: float) -> str:
    """Deterministic train/val split: 'val' for val_percent% of keys, by hash."""
    bucket = int(key[:8], 16) % 10000
    return "val" if bucket < val_percent * 100 else "train"


def quantize_l(l: np.ndarray) -> bytes:
    """L in [0, 100] -> uint8 bytes (L * 2.55, rounded)."""
    return np.clip(np.rint(l * 2.55), 0, 255).astype(np.uint8).tobytes()


def quantize_ab(ab: np.ndarray) -> bytes:
    """ab -> int8 bytes (rounded, clipped to ±127)."""
    return np.clip(np.rint(ab), -127, 127).astype(np.int8).tobytes()


def quantize_uv(uv: np.ndarray) -> bytes:
    """UV (BT.601) -> int8 bytes: round(UV * UV_SCALE), clipped to ±127."""
    return np.clip(np.rint(uv * UV_SCALE), -127, 127).astype(np.int8).tobytes()


def quantize_pair(x: np.ndarray, y: np.ndarray, scale: float = 1.0) -> bytes:
    """Two float planes (...) -> int8 bytes of (..., 2), x and y interleaved: round(plane *
    scale), clipped to ±127: quantize_ab (scale 1) or quantize_uv (UV_SCALE) of the planes
    stacked, without the stacked copy (the pixel columns of stage_batch)."""
    return quantize_pair_array(x, y, scale).tobytes()


def quantize_pair_array(x: np.ndarray, y: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """quantize_pair as an int8 array (..., 2)."""
    out = np.empty(np.shape(x) + (2,), np.int8)
    for k, plane in enumerate((x, y)):
        t = np.asarray(np.rint(plane * scale if scale != 1.0 else plane))
        np.clip(t, -127, 127, out=t)
        out[..., k] = t  # integral and in range: the cast is exact
    return out


def dequantize_yuv(y_bytes: bytes, uv_bytes: bytes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """yuv shard bytes -> Y (size, size) in [0, 1] and UV (size, size, 2) float32."""
    y = np.frombuffer(y_bytes, np.uint8).reshape(size, size).astype(np.float32) / 255.0
    uv = np.frombuffer(uv_bytes, np.int8).reshape(size, size, 2).astype(np.float32) / UV_SCALE
    return y, uv


@lru_cache(maxsize=1)
def nearest_bin_table() -> np.ndarray:
    """Flat (257 * 257,) int16 table: the nearest in-gamut bin of each point of bins' 1-unit ab
    lattice, equal to bins.neighbour_table()[..., 0] (ties to the lower bin index) but built
    in a fraction of its time (an argmin in chunks instead of a sort of 5 neighbours), so
    that a worker's first image does not pay seconds (tests/test_filters_staging.py)."""
    # float64 holds these integer distances exactly (< 2^20), so ties stay exact, and its
    # matmul is BLAS (numpy's integer matmul is not).
    axis = _lut_axis().astype(np.float64)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    pts = np.stack([a.ravel(), b.ravel()], axis=1)
    bins = np.rint(gamut_bins()).astype(np.float64)
    c2 = (bins**2).sum(1)[None, :]
    out = np.empty(len(pts), np.int16)
    # chunks of 1024 points: each (1024, Q) float64 temporary stays under 4 MiB, above which
    # numpy madvises huge pages on memory that goes back to malloc's heap, whose later
    # allocations then fault in zeroed 2 MiB pages (`perf record` of the stage loop: page
    # zeroing 9.9% of its samples with chunks of 8192, 6.4% with these; its rate moved within
    # the noise); and 3x faster than chunks of 8192 (0.014 s against 0.04 s)
    step = 1024
    for i in range(0, len(pts), step):
        d2 = c2 - 2.0 * (pts[i : i + step] @ bins.T)  # |p|^2 left out: same ranking
        out[i : i + step] = np.argmin(d2, axis=1)
    out.setflags(write=False)
    return out


def ab_histogram(abq: np.ndarray) -> np.ndarray:
    """Pixel counts per in-gamut bin (Q,) int64 of one image's quantized ab (..., 2) int8
    (quantize_ab's values, the shard's ab bytes): ab_histograms of one."""
    return ab_histograms(np.asarray(abq, np.int8).reshape(1, -1, 2))[0]


def ab_histograms(abq: np.ndarray) -> np.ndarray:
    """Pixel counts per in-gamut bin (N, Q) int64 of N images' quantized ab (N, P, 2) int8:
    the nearest bin (nearest_bin_table) of each stored ab pair, looked up on the pair's two
    bytes read as one uint16 (a 2^16-entry table), and one bincount. Counting the stored
    values, the histogram is the one of the ab a model trains on."""
    abq = np.ascontiguousarray(abq, np.int8)
    n = len(abq)
    codes = abq.reshape(n, -1, 2).view(np.uint16).reshape(n, -1)
    bins = _pair_bin_table().take(codes)
    q = num_bins()
    if n > 1:
        bins += (np.arange(n, dtype=np.intp) * q)[:, None]  # image k counts into k*Q ...
    return np.bincount(bins.ravel(), minlength=n * q).reshape(n, q).astype(np.int64)


@lru_cache(maxsize=1)
def _pair_bin_table() -> np.ndarray:
    """(65536,) np.intp (bincount's own index type): the nearest bin of each int8 ab pair,
    indexed by the pair's two bytes read as one uint16 in this machine's byte order."""
    if _LUT_STEP != 1.0 or _LUT_HALF < 128:
        raise AssertionError("the pair table needs bins' 1-unit lattice over [-128, 128]")
    pairs = np.stack(np.meshgrid(*(np.arange(-128, 128),) * 2, indexing="ij"), -1)
    pairs = np.ascontiguousarray(pairs.reshape(-1, 2).astype(np.int8))
    flat = (pairs[:, 0].astype(np.intp) + _LUT_HALF) * (2 * _LUT_HALF + 1) + pairs[:, 1] + _LUT_HALF
    out = np.empty(1 << 16, np.intp)
    out[pairs.view(np.uint16).ravel()] = nearest_bin_table()[flat]
    out.setflags(write=False)
    return out


def dequantize(l_bytes: bytes, ab_bytes: bytes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shard bytes -> L (size, size) and ab (size, size, 2) float32."""
    l = np.frombuffer(l_bytes, np.uint8).reshape(size, size).astype(np.float32) / 2.55
    ab = np.frombuffer(ab_bytes, np.int8).reshape(size, size, 2).astype(np.float32)
    return l, ab


def stage_image(uri: str, data: bytes, cfg: StageConfig) -> dict:
    """Decode, filter and crop one image into a shard row (schema.SHARD_SCHEMA).

    Raises ImageError whose outcome is an error code (undecodable, truncated, ...) or a
    filter outcome (grayscale, toned, too_small). (stage_batch of one item.)
    """
    (result,) = stage_batch([(uri, data)], cfg)
    if isinstance(result, Exception):
        raise result
    return result


def _decode_and_crop(data: bytes, cfg: StageConfig) -> tuple:
    """(DecodedImage, size x size crop, RGB thumbnail for the filter: filter_side of the
    source) of one image's bytes; raises ImageError (an error code, or too_small / grayscale
    from the source alone)."""
    img = decode_image(data, draft_size=cfg.size, max_pixels=cfg.max_pixels)
    if min(img.width, img.height) < cfg.min_size:
        raise ImageError(
            schema.TOO_SMALL, f"{img.width}x{img.height} is below --min-size {cfg.min_size}"
        )
    if img.grayscale_mode:
        raise ImageError(schema.GRAYSCALE, f"single-channel source (mode {img.mode})")
    # Pillow images throughout: no array of the source is made, nor a copy of the crop
    crop_image = fit_and_crop_image(img.image, cfg.size)
    crop = np.asarray(crop_image)
    # a source at the crop's size is its own crop (CIFAR at 32): that array serves its thumbnail
    source = crop if crop_image is img.image else img.image
    return img, crop, filter_thumbnail(source, crop_image, filter_side(img.width, img.height))


def filter_side(width: int, height: int) -> int:
    """Side of the thumbnail the tone filter measures for a source of width x height (its
    full size): FILTER_THUMBNAIL, or SMALL_FILTER_THUMBNAIL for a source smaller than that, so
    a 32 px file (CIFAR) is measured at its own size rather than upsampled 4x in pixels."""
    return FILTER_THUMBNAIL if min(width, height) >= FILTER_THUMBNAIL else SMALL_FILTER_THUMBNAIL


def filter_thumbnail(
    rgb: np.ndarray | Image.Image, crop: np.ndarray | Image.Image, side: int = FILTER_THUMBNAIL
) -> np.ndarray:
    """The sRGB uint8 side x side thumbnail the tone filter sees: of the stored crop (cheap),
    or of the decoded image `rgb` (each an array or a Pillow RGB image) when the crop is smaller
    than the thumbnail (upsampling the crop would blur the tone measures) or the thumbnail
    is a small source's (filter_side)."""
    crop_side = crop.size[0] if isinstance(crop, Image.Image) else crop.shape[0]
    use_crop = side == FILTER_THUMBNAIL and crop_side >= side
    return thumbnail(crop if use_crop else rgb, side)


def filter_thresholds(t: GrayThresholds, side: int) -> GrayThresholds:
    """The filter's thresholds for a side x side thumbnail: on the small one the smoothing
    is `t.small_tone_smoothing` pixels (filters.GrayThresholds; the other measures do not
    depend on the size)."""
    if side == FILTER_THUMBNAIL:
        return t
    return replace(t, tone_smoothing=t.small_tone_smoothing)


def lab_pixel_columns(f: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """The Lab columns of n images from their rgb8_lab_f planes f (3, n * P) float32, in one
    compiled pass (lab_kernels.lab_columns): L bytes (n, P) uint8 (quantize_l), ab bytes
    (n, P, 2) int8 (quantize_ab), their counts per ab bin (n, Q) int64 (ab_histograms) and
    the mean chroma (n,) float64 of the unrounded ab."""
    from transforms import lab_kernels  # numba: imported by the jobs that stage

    return lab_kernels.lab_columns(
        np.ascontiguousarray(f, np.float32), n, _pair_bin_table(), num_bins()
    )


def yuv_byte_matrix() -> np.ndarray:
    """The BT.601 matrix (3, 3) float64 from uint8 sRGB to the stored YUV units: Y * 255
    and U, V * UV_SCALE (what yuv_pixel_columns rounds)."""
    return RGB_TO_YUV * np.array([[255.0], [UV_SCALE], [UV_SCALE]]) / 255.0


def yuv_pixel_columns(crops: np.ndarray) -> tuple[bytes, bytes]:
    """The `--space yuv` l / ab bytes of N crops (N, size, size, 3) uint8: Y bytes
    round(Y * 255) and UV bytes round(UV * UV_SCALE) clipped to +-127, interleaved, in one
    compiled pass (lab_kernels.yuv_columns, the float64 maths rounded once)."""
    from transforms import lab_kernels  # numba: imported by the jobs that stage

    if crops.dtype != np.uint8:
        raise TypeError(f"yuv_pixel_columns takes uint8 crops, not {crops.dtype}")
    y, uv = lab_kernels.yuv_columns(np.ascontiguousarray(crops), yuv_byte_matrix())
    return y.tobytes(), uv.tobytes()


def _pixel_columns(crops: np.ndarray, cfg: StageConfig) -> dict[str, list]:
    """The pixel columns (l, ab, hist, mean_chroma) of N crops (N, size, size, 3) uint8: one
    Lab conversion (colour.rgb8_lab_f, the uint8 fast path) and lab_pixel_columns of it, the
    statistics in Lab whatever the space."""
    n = len(crops)
    l_q, ab_q, hist, mean_chroma = lab_pixel_columns(rgb8_lab_f(crops), n)
    if cfg.space == "yuv":
        lq, abq_bytes = yuv_pixel_columns(crops)
    elif cfg.space == "lab":
        lq, abq_bytes = l_q.tobytes(), ab_q.tobytes()
    else:
        raise ValueError(f"unknown colour space {cfg.space!r} ({', '.join(SPACES)})")
    l_size, ab_size = len(lq) // n, len(abq_bytes) // n
    return {
        "l": [lq[i * l_size : (i + 1) * l_size] for i in range(n)],
        "ab": [abq_bytes[i * ab_size : (i + 1) * ab_size] for i in range(n)],
        "hist": hist.astype(np.int32).tolist(),
        "mean_chroma": mean_chroma.tolist(),
    }


def stage_batch(items: list[tuple[str, bytes]], cfg: StageConfig) -> list[dict | ImageError]:
    """stage_image of each (uri, bytes) item: its shard row, or the ImageError it raises.

    Decoding and cropping are per image; the tone filter runs once over chunks of the batch's
    thumbnails and the pixel maths once over chunks of its kept crops (VECTOR_PIXELS per
    chunk: 16 thumbnails, 1 crop of 224 px, 64 of 32 px), so neither many small files (CIFAR)
    nor the filter's small thumbnails pay numpy's fixed per-call cost image by image. The
    crops wait for the filter's verdict in groups of at most HELD_CROP_BYTES (the whole batch
    at --size 224, one crop at a time at 4096). A batch of one is stage_image itself.
    """
    group = max(1, HELD_CROP_BYTES // (3 * cfg.size * cfg.size))
    out: list = []
    for g in range(0, len(items), group):
        out += _stage_group(items[g : g + group], cfg)
    return out


def _stage_group(items: list[tuple[str, bytes]], cfg: StageConfig) -> list[dict | ImageError]:
    """stage_batch of items whose crops are held together."""
    out: list = [None] * len(items)
    done = []  # (index, width, height, crop, thumbnail) of the images decoded
    for i, (_, data) in enumerate(items):
        try:
            img, crop, thumb = _decode_and_crop(data, cfg)
        except ImageError as e:
            out[i] = e
        else:
            done.append((i, img.width, img.height, crop, thumb))
    tones = thumbnail_tones([d[4] for d in done], cfg.thresholds)
    for (i, *_), tone in zip(done, tones, strict=True):
        if tone != "colour":
            out[i] = ImageError(tone, f"{tone} photo: no colour truth")
    kept = [d for d, tone in zip(done, tones, strict=True) if tone == "colour"]
    step = _chunk(cfg.size)
    for c in range(0, len(kept), step):
        chunk = kept[c : c + step]
        crops = chunk[0][3][None] if len(chunk) == 1 else np.stack([d[3] for d in chunk])
        pixels = _pixel_columns(crops, cfg)  # one crop (224 px and up) is not copied
        for j, (i, width, height, *_) in enumerate(chunk):
            uri, data = items[i]
            key = uri_key(uri)
            out[i] = {
                "key": key,
                "source_uri": uri,
                "split": split_of(key, cfg.val_percent),
                "width": width,
                "height": height,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": cfg.size,
                **{k: v[j] for k, v in pixels.items()},
                "space": cfg.space,
            }
    return out


def _chunk(side: int) -> int:
    """Images of side x side pixels per array step: VECTOR_PIXELS of them, at least one."""
    return max(1, VECTOR_PIXELS // (side * side))


def thumbnail_tones(thumbs: list[np.ndarray], t: GrayThresholds) -> list[str]:
    """The filter's verdict ('grayscale', 'toned', 'colour') on each RGB uint8 thumbnail (each
    (T, T, 3), T one of the filter_side values): classify_tone_batch with filter_thresholds of
    the side, the thumbnails of each side together in chunks of VECTOR_PIXELS."""
    out: list[str] = [""] * len(thumbs)
    for side in sorted({len(x) for x in thumbs}):
        which = [k for k, x in enumerate(thumbs) if len(x) == side]
        ts, step = filter_thresholds(t, side), _chunk(side)
        for c in range(0, len(which), step):
            chunk = which[c : c + step]
            rgb = np.stack([thumbs[k] for k in chunk])
            lab = np.stack(rgb8_to_lab_planes(rgb), -1)  # the uint8 fast path
            for k, tone in zip(chunk, classify_tone_batch(lab, ts, rgb=rgb), strict=True):
                out[k] = tone
    return out


def shard_table(rows: list[dict]) -> pa.Table:
    """Shard rows (stage_image's dicts) -> a pyarrow Table of schema.SHARD_SCHEMA, built column
    by column (the `hist` lists as one flat int32 array: pa.Table.from_pylist converts them
    int by int, which cost more than the rest of the row)."""
    cols = {}
    for f in schema.SHARD_SCHEMA:
        if f.name == "hist":
            hists = [np.asarray(r["hist"], dtype=np.int32) for r in rows]
            offsets = np.zeros(len(hists) + 1, dtype=np.int32)
            np.cumsum([len(h) for h in hists], out=offsets[1:])
            flat = np.concatenate(hists) if hists else np.zeros(0, np.int32)
            cols[f.name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
        else:
            cols[f.name] = pa.array([r[f.name] for r in rows], type=f.type)
    return pa.Table.from_arrays(list(cols.values()), schema=schema.SHARD_SCHEMA)


def shard_zstd_levels(columns: list[str]) -> dict[str, int]:
    """The zstd level of each shard column."""
    return {c: SHARD_ZSTD_LEVELS.get(c, SHARD_ZSTD_LEVEL) for c in columns}


def _parquet_options(columns: list[str]) -> dict:
    """pq.write_table / ParquetWriter options of a shard: zstd at SHARD_ZSTD_LEVELS, else
    SHARD_ZSTD_LEVEL; no dictionary and no min/max statistics for the unique pixel bytes /
    histograms (never used; the statistics of 150 KB values cost a third of the write)."""
    small = [c for c in columns if c not in ("l", "ab", "hist")]
    return {
        "compression": "zstd",
        "compression_level": shard_zstd_levels(columns),
        "use_dictionary": small,
        "write_statistics": small,
    }


def write_shard_rows(rows: list[dict], out_dir: str, prefix: str) -> str:
    """Write shard rows as one Parquet file of one row group (ShardFile), named
    `<prefix>-<hash of the rows' ids>.parquet` in out_dir (fileio.shard_uri); returns the URI."""
    if not rows:
        raise ValueError("refusing to write an empty shard")
    shard = ShardFile(out_dir, prefix)
    shard.write(rows)
    return shard.close()


class ShardFile:
    """One shard written a row group at a time (`write`), named and made visible by `close`
    (fileio.shard_uri: the name depends on its rows alone, not on how they were grouped,
    as fileio.write_shard names its files). A worker
    then holds a row group's rows, not a whole shard's, and its memory is reused from group
    to group instead of a shard's 60 MB being allocated afresh (and faulted in page by page)
    for each file."""

    def __init__(self, out_dir: str, prefix: str):
        self.out_dir, self.prefix = out_dir, prefix
        self._file = PendingFile(out_dir, prefix)
        try:
            self._writer = pq.ParquetWriter(
                self._file.f, schema.SHARD_SCHEMA, **_parquet_options(schema.SHARD_SCHEMA.names)
            )
        except BaseException:
            self._file.abort()
            raise
        self._digest = hashlib.sha1()
        self.rows = 0

    def write(self, rows: list[dict]) -> None:
        """Append rows (stage_image's dicts) as one row group."""
        if not rows:
            return
        try:
            self._writer.write_table(shard_table(rows))
        except BaseException:
            self.abort()
            raise
        self._digest.update((b"\n" if self.rows else b"") + row_ids_text(rows))
        self.rows += len(rows)

    def close(self) -> str:
        """Finish the file and put it under its name (fileio.shard_uri); returns the URI."""
        if not self.rows:
            self.abort()
            raise ValueError("refusing to write an empty shard")
        try:
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        uri = shard_uri(self.out_dir, self.prefix, self._digest.hexdigest())
        self._file.commit(uri)
        return uri

    def abort(self) -> None:
        """Drop the file: nothing of it is left."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the file is dropped anyway
            pass
        self._file.abort()
