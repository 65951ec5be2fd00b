"""Every Parquet schema the jobs write, in one place.

Staged shards (`stage` -> `train`), one row per kept image:
  key          string   stable id: first 16 hex digits of sha1(source_uri)
  source_uri   string   the fsspec URL the image was read from
  split        string   "train" or "val", by key hash (see transforms.staging.split_of)
  width/height int32    original size after EXIF orientation
  sha256       string   of the source file's bytes
  size         int32    side of the square crop stored in l / ab
  l            binary   size*size uint8, row-major: L * 255 / 100 rounded (L in [0, 100])
  ab           binary   size*size*2 int8, row-major (a, b interleaved): round(ab) clipped to ±127
  hist         list<int32>  pixel counts over the Q in-gamut ab bins (dense, Q = num_bins())
  mean_chroma  float32  mean sqrt(a^2 + b^2) over the crop

Errors (every job): one row per input that produced no output.
  uri, stage (decode/filter/model/write...), outcome (short code), reason (human-readable)

Colorize results: one row per output image (see COLORIZE_SCHEMA).
Evaluate metrics: one row per (image, model) (see METRICS_SCHEMA): the metrics of
transforms.metrics.image_metrics, bits_per_dim (NaN unless the model has a likelihood) and
cmf, the share of pixels with ab error <= t for t = 0..150 (151 values).
"""

from __future__ import annotations

import pyarrow as pa

SHARD_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_uri", pa.string()),
        ("split", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),
        ("size", pa.int32()),
        ("l", pa.binary()),
        ("ab", pa.binary()),
        ("hist", pa.list_(pa.int32())),
        ("mean_chroma", pa.float32()),
    ]
)

ERROR_SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
    ]
)

COLORIZE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_uri", pa.string()),
        ("output_uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("model", pa.string()),
        ("weights_sha256", pa.string()),
        ("temperature", pa.float32()),
        ("strength", pa.float32()),
        ("render_size", pa.int32()),
        ("mean_chroma", pa.float32()),
        ("colorfulness", pa.float32()),
        ("seconds", pa.float32()),
    ]
)

METRICS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_uri", pa.string()),
        ("model", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("psnr", pa.float64()),
        ("ssim", pa.float64()),
        ("ciede2000", pa.float64()),
        ("auc", pa.float64()),
        ("auc_rebalanced", pa.float64()),
        ("colorfulness", pa.float64()),
        ("colorfulness_truth", pa.float64()),
        ("delta_colorfulness", pa.float64()),
        ("bits_per_dim", pa.float64()),
        ("cmf", pa.list_(pa.float32())),
    ]
)

# Outcome codes written to stats.json and the errors table.
KEPT = "kept"
GRAYSCALE = "grayscale"
TONED = "toned"
TOO_SMALL = "too_small"
UNREADABLE = "unreadable"
SKIPPED = "skipped"  # colorize --skip-existing: the output is already there
COLORIZED = "colorized"
