"""Every Parquet schema the jobs write, in one place.

Staged shards (`stage` -> `train`), one row per kept image:
  key          string   stable id: first 16 hex digits of sha1(source_uri)
  source_uri   string   the fsspec URL the image was read from
  split        string   "train" or "val", by key hash (see transforms.staging.split_of)
  width/height int32    original size after EXIF orientation
  sha256       string   of the source file's bytes
  size         int32    side of the square crop stored in l / ab
  l            binary   size*size uint8, row-major: L * 255 / 100 rounded (L in [0, 100]);
                        space "yuv": BT.601 Y * 255 rounded (Y in [0, 1])
  ab           binary   size*size*2 int8, row-major (a, b interleaved): round(ab) clipped to ±127;
                        space "yuv": (U, V) interleaved, round(UV * 200) clipped to ±127
  hist         list<int32>  pixel counts over the Q in-gamut ab bins (dense, Q = num_bins());
                        always of the crop's Lab ab, whatever the space
  mean_chroma  float32  mean sqrt(a^2 + b^2) (Lab) over the crop
  space        string   "lab" or "yuv" (`stage --space`): what l / ab hold; shards written
                        before the column existed are Lab (read a missing column as "lab")

Errors (every job): one row per input that produced no output.
  uri, stage (decode/filter/model/write...), outcome (short code), reason (human-readable)

Colorize results: one row per output image (see COLORIZE_SCHEMA): its decode settings
(temperature: null where the decode applies none, decode method, strength, render size), and
for multi-frame inputs (animated GIF, multi-page TIFF) which frame was colorized (`frame`,
always 0: the first) of how many (`frames`).
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
        ("space", pa.string()),
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
        ("decode", pa.string()),  # classification decoding: annealed | mean | mode
        ("strength", pa.float32()),
        ("render_size", pa.int32()),
        ("frame", pa.int32()),  # the frame / page colorized (0: the first)
        ("frames", pa.int32()),  # frames / pages in the input (animated GIF, multi-page TIFF)
        ("mean_chroma", pa.float32()),
        ("colorfulness", pa.float32()),
        ("seconds", pa.float32()),
        ("hints", pa.int32()),  # colour hints the model used (0: none / not a hint model)
        ("sample", pa.int32()),  # colorize --samples: the sample's index (null: not sampled)
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

# evaluate --hints: METRICS_SCHEMA + the number of simulated hint points (transforms.hints).
HINT_METRICS_SCHEMA = METRICS_SCHEMA.append(pa.field("points", pa.int32()))

# encode (the colour codec): one row per encoded image. luminance_bytes / colour_bytes are the
# sizes of <stem>.l.jpg|png and <stem>.cbc; quality the one coded (below --quality when
# --max-bytes asked for less); max_bytes (0: none) / region / l_format / l_quality the
# settings; ciede2000 (mean over pixels) and psnr (RGB, dB) score the decoded round trip
# (luminance file + bitstream) against the input.
ENCODE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_uri", pa.string()),
        ("luminance_uri", pa.string()),
        ("bitstream_uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("luminance_bytes", pa.int64()),
        ("colour_bytes", pa.int64()),
        ("model", pa.string()),
        ("weights_sha256", pa.string()),
        ("quality", pa.int32()),
        ("max_bytes", pa.int64()),
        ("region", pa.int32()),
        ("l_format", pa.string()),
        ("l_quality", pa.int32()),
        ("ciede2000", pa.float64()),
        ("psnr", pa.float64()),
        ("seconds", pa.float32()),
    ]
)

# decode: one row per reconstructed image.
DECODE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("bitstream_uri", pa.string()),
        ("luminance_uri", pa.string()),
        ("output_uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("colour_bytes", pa.int64()),
        ("quality", pa.int32()),
        ("seconds", pa.float32()),
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
BAD_HINTS = "bad_hints"  # a malformed hints sidecar (colorize): an error row for that image
ENCODED = "encoded"  # encode: bitstream + luminance file written
DECODED = "decoded"  # decode: colour image written
BAD_BITSTREAM = "bad_bitstream"  # decode: truncated / corrupted / wrong version or model
MODEL_FAILED = "model_failed"  # the model raised, or predicted non-finite colours, on the input
