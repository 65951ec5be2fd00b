"""The colour codec on numpy arrays: K ab hypotheses + a few hundred bytes -> the true colours.

Encoder (`encode`), given the true ab (H, W, 2) of an image and the model's K hypotheses
(K, h, w, 2) at model resolution:
1. the hypotheses are quantized to int8 (1 ab unit; `quantize_hypotheses`) and upsampled to
   (H, W) with integer bilinear taps (transforms/regions.upsample_fixed) to 1/16 ab units:
   the decoder does exactly the same with the same integers;
2. mode (the payload's first bit, raw): index layer, or gray base (ab = 0, no index layer,
   and the decoder needs no model at all). The encoder codes both and keeps the one with the
   lower SSE + lambda * bits, the index layer only when it wins by INDEX_MODE_MARGIN (it costs
   the decoder a model run). Measured on 16 ImageNet samples with the shipped weights, every
   single hypothesis is farther from the truth than gray (CIEDE2000 9.4..21.8 vs 9.0), so the
   index layer pays mainly at low qualities;
   index layer: per grid cell (`cell` px) the index k in 0..K (K = gray) minimising
   SSE_k + lambda * bits_k (squared ab error over the cell plus the rate of k under the adaptive
   model in its current state, context = the left and upper cells' indices), coded with a
   range coder (transforms/rangecoder.py), one adaptive frequency model per context; a
   gray-mode stream is model-free (its header names no model: transforms/bitstream.py);
3. refinement layer (quality > 0): on a coarser grid (`refine_cell` px) the mean ab residual
   left by the chosen hypotheses, quantized to a step (dead-zone rounding, a few
   back-projection passes because the decoder interpolates the grid: guided by the luminance
   file's gray levels when the encoder has them, transforms/lumaguide.py, else bilinearly;
   the header's refinement filter says which), coded as
   signed integers (zero flag with the neighbours' zero-ness as context, sign, unary /
   Exp-Golomb magnitude), either directly or as differences from the left/upper values
   (DPCM), whichever is smaller (one raw bit says which).
The payload goes into a `.cbc` bitstream (transforms/bitstream.py) with the settings.

Rate knobs: `quality` 0..100 sets the refinement cell and step (QUALITY_SEGMENTS: 128 px cells
for quality 1..4, then 96, 64, 48, 32, 24, 16, 12 and 8 px for 83..100, the step falling
within each segment, from 12 ab units at quality 1 down to 1 at 100) and lambda (0.12 * step^2 *
refinement-cell pixels, at most LAMBDA_Q0 per index-cell pixel); quality 0 sends no refinement
layer (indices only, or gray). `max_bytes`
searches the highest quality whose bitstream fits (bisection), then coarser index cells at
quality 0, else raises CodecError.

Decoder (`decode`): parse and check the bitstream, read the mode; in index mode quantize +
upsample the hypotheses the same way and read the indices; read refinement values, add; all
integer until the final float32 ab (= integer / 16, exact). The entropy-coder contexts depend
only on decoded symbols, never on the hypotheses, so a model that drifts by a rounding step
changes a few pixels but can never desynchronise the stream. No torch, no Beam.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from transforms import bitstream
from transforms.bitstream import Header
from transforms.lumaguide import (  # noqa: F401 (guide_from_l re-exported)
    SIGNATURE_TOLERANCE,
    guide_from_l,
    guided_field,
    luminance_signature,
    signature_distance,
)
from transforms.rangecoder import (
    FrequencyModel,
    RangeDecoder,
    RangeEncoder,
    SignedIntCoder,
)
from transforms.regions import GridLayout, upsample_columns, upsample_fixed, upsample_select

log = logging.getLogger(__name__)

HYP_STEP = 1.0  # ab units per int8 level of a quantized hypothesis
UP_BITS = 4  # upsampled maps are in 1/16 ab units
UP_SCALE = 1 << UP_BITS
REFINE_PASSES = 3  # back-projection passes of the refinement estimate
DEAD_ZONE = 0.1  # rounding offset 0.5 - DEAD_ZONE on |residual| / step
LAMBDA_PER_STEP2 = 0.12  # lambda = this * step^2 * refinement-cell pixels (SSE in ab^2 per bit)
LAMBDA_Q0 = 16.0  # lambda per index bit, in ab^2 per cell pixel, when there is no refinement
DEFAULT_CELL = 16
FILTER_BILINEAR, FILTER_GUIDED = 0, 1  # the header's refinement filter (bitstream.FILTERS)
MAX_REFINEMENT_Q = 4 * 256  # |refinement| in 1/4 ab units: no colour is farther than this
MODE_INDEXED, MODE_GRAY = 0, 1  # the payload's first (raw) bit: index layer or gray base
_MODES = (MODE_INDEXED, MODE_GRAY)  # the modes the encoder tries (rate-distortion choice)
# the index layer makes the decoder run the model (~1 s per Kodak image on this CPU), so its
# rate-distortion cost D + lambda R must beat the gray mode's by this fraction to be chosen
INDEX_MODE_MARGIN = 0.05
# quality 1..100 in segments: (last quality, refinement cell px, step at the segment's first
# quality, step at its last) in ab units, the step geometric in between. Chosen with
# `python bench/codec_sweep.py` (gray base, luma-guided refinement, every (cell, step) pair on
# the 95 colour ImageNet samples of stage's 10% validation split, never Kodak): the segments
# follow the lower convex hull of (bytes, CIEDE2000), which favours coarse steps (6 to 3 ab
# units) on coarse grids, and each segment starts above the previous one's bytes, so the mean
# rate rises with quality.
QUALITY_SEGMENTS = (
    (4, 128, 12.0, 6.0),
    (10, 96, 8.0, 6.0),
    (18, 64, 8.0, 6.0),
    (28, 48, 6.0, 4.0),
    (40, 32, 6.0, 3.0),
    (54, 24, 4.0, 2.0),
    (68, 16, 4.0, 2.5),
    (82, 12, 4.0, 2.0),
    (100, 8, 3.0, 1.0),
)


class CodecError(ValueError):
    """Inputs the codec cannot handle, or a byte budget that nothing fits."""


@dataclass(frozen=True)
class QualityParams:
    refine_cell: int  # 0 = no refinement layer
    refine_step_q: int  # refinement step in 1/4 ab units
    lam: float  # lambda of the index choice, in squared ab per bit


def quality_params(
    quality: int, cell: int = DEFAULT_CELL, refine_cell: int | None = None
) -> QualityParams:
    """The refinement grid, step and lambda of a quality setting 0..100 (see QUALITY_SEGMENTS;
    `refine_cell` overrides the grid, keeping the step)."""
    if not 0 <= quality <= 100:
        raise CodecError(f"quality {quality} outside 0..100")
    if quality == 0:
        return QualityParams(0, 0, LAMBDA_Q0 * cell * cell)
    i = next(i for i, seg in enumerate(QUALITY_SEGMENTS) if quality <= seg[0])
    last, seg_cell, s0, s1 = QUALITY_SEGMENTS[i]
    start = QUALITY_SEGMENTS[i - 1][0] + 1 if i else 1
    t = (quality - start) / max(1, last - start)
    step = math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
    return refinement_params(refine_cell or seg_cell, step, cell)


def refinement_params(refine_cell: int, step: float, cell: int = DEFAULT_CELL) -> QualityParams:
    """The settings of one refinement grid and step (ab units, rounded to 1/4): lambda =
    LAMBDA_PER_STEP2 * step^2 * cell pixels, never above quality 0's (more quality never means
    fewer index bits)."""
    if refine_cell < 1 or step <= 0:
        raise CodecError(f"refinement cell {refine_cell} / step {step} must be positive")
    step_q = max(1, int(round(step * 4)))
    lam = LAMBDA_PER_STEP2 * (step_q / 4.0) ** 2 * refine_cell * refine_cell
    return QualityParams(refine_cell, step_q, min(lam, LAMBDA_Q0 * cell * cell))


def quantize_hypotheses(hyps: np.ndarray) -> np.ndarray:
    """(K, h, w, 2) ab hypotheses -> int8 in HYP_STEP units (integer input passes through
    after a range check). Encoder and decoder both call this on the model output."""
    hyps = np.asarray(hyps)
    if hyps.ndim != 4 or hyps.shape[-1] != 2:
        raise CodecError(f"hypotheses must be (K, h, w, 2), got {hyps.shape}")
    if np.issubdtype(hyps.dtype, np.integer):
        if hyps.min(initial=0) < -128 or hyps.max(initial=0) > 127:
            raise CodecError("integer hypotheses outside int8")
        return hyps.astype(np.int8)
    q = np.rint(np.clip(np.nan_to_num(hyps.astype(np.float32) / np.float32(HYP_STEP)), -128, 127))
    return q.astype(np.int8)


def upsample_hypothesis(q_hyp: np.ndarray, height: int, width: int) -> np.ndarray:
    """One quantized hypothesis (h, w, 2) int8 -> (height, width, 2) int32 in 1/16 ab."""
    return upsample_fixed(q_hyp, height, width, out_bits=UP_BITS)


def _columns(q_hyps: np.ndarray, width: int) -> np.ndarray:
    return np.stack([upsample_columns(h, width) for h in q_hyps])


def _index_context(idx: np.ndarray, r: int, c: int, k: int) -> int:
    left = idx[r, c - 1] if c else k
    up = idx[r - 1, c] if r else k
    return int(left) * (k + 1) + int(up)


def _zero_context(q: np.ndarray, r: int, c: int) -> int:
    return int(c > 0 and q[r, c - 1] != 0) + int(r > 0 and q[r - 1, c] != 0)


def _prediction(q: np.ndarray, r: int, c: int) -> int:
    """DPCM prediction: the mean of the left and upper values (floor), or the one present."""
    if r and c:
        return (int(q[r, c - 1]) + int(q[r - 1, c])) // 2
    if c:
        return int(q[r, c - 1])
    if r:
        return int(q[r - 1, c])
    return 0


class _Analysis:
    """Per-image work shared by every quality tried: the hypotheses' first upsampling pass and
    per-pixel squared errors (K x H x W float32), per-cell SSE for the current cell size, the
    guide's luminance signature."""

    def __init__(
        self, ab_true: np.ndarray, q_hyps: np.ndarray, cell: int, guide: np.ndarray | None
    ):
        self.height, self.width = ab_true.shape[:2]
        self.guide = guide
        self.signature = b"" if guide is None else luminance_signature(guide)
        self.k = q_hyps.shape[0]
        self.options = self.k + 1  # the K hypotheses and gray (index K)
        self.hyp_height, self.hyp_width = q_hyps.shape[1:3]
        self.ab16 = np.asarray(ab_true, dtype=np.float32) * np.float32(UP_SCALE)  # 1/16 units
        self.cols = _columns(_with_gray(q_hyps), self.width)
        self.err = []
        for j in range(self.options):
            up = upsample_select(self.cols[j : j + 1], np.zeros((self.height, self.width), int))
            self.err.append(((self.ab16 - up) ** 2).sum(-1, dtype=np.float32))
        self.set_cell(cell)

    def set_cell(self, cell: int) -> None:
        self.cell = cell
        self.layout = GridLayout(self.height, self.width, cell)
        sse = [self.layout.sums(e.astype(np.float64)) for e in self.err]
        self.sse = np.stack(sse, axis=-1) / (UP_SCALE * UP_SCALE)  # (rows, cols, K) in ab^2
        self._indices: dict[float, np.ndarray] = {}
        self._bases: dict[bytes, np.ndarray] = {}

    def indices(self, lam: float) -> np.ndarray:
        if lam not in self._indices:
            self._indices[lam] = _choose_indices(self, lam)
        return self._indices[lam]

    def base(self, idx: np.ndarray) -> np.ndarray:
        key = idx.tobytes()
        if key not in self._bases:
            self._bases = {key: _base_from(self.cols, idx, self.layout)}  # keep the last only
        return self._bases[key]


def _with_gray(q_hyps: np.ndarray) -> np.ndarray:
    """The K quantized hypotheses plus an all-zero (gray) map as option K."""
    return np.concatenate([q_hyps, np.zeros((1,) + q_hyps.shape[1:], q_hyps.dtype)])


def _choose_indices(an: _Analysis, lam: float) -> np.ndarray:
    """Greedy rate-distortion choice in coding order, with the adaptive models' real costs."""
    k, layout = an.options, an.layout
    idx = np.zeros((layout.rows, layout.cols), np.int16)
    models = [FrequencyModel(k) for _ in range((k + 1) ** 2)]
    sse = an.sse
    for r in range(layout.rows):
        for c in range(layout.cols):
            model = models[_index_context(idx, r, c, k)]
            total = model.total
            costs = [sse[r, c, j] + lam * math.log2(total / model.freq[j]) for j in range(k)]
            best = min(range(k), key=costs.__getitem__)
            idx[r, c] = best
            model.update(best)
    return idx


def _code_indices(enc: RangeEncoder, idx: np.ndarray, k: int) -> None:
    """Indices in 0..k-1 (k = K + 1 options), adaptive model per (left, up) context."""
    models = [FrequencyModel(k) for _ in range((k + 1) ** 2)]
    rows, cols = idx.shape
    for r in range(rows):
        for c in range(cols):
            enc.encode(models[_index_context(idx, r, c, k)], int(idx[r, c]))


def _decode_indices(dec: RangeDecoder, layout: GridLayout, k: int) -> np.ndarray:
    idx = np.zeros((layout.rows, layout.cols), np.int16)
    models = [FrequencyModel(k) for _ in range((k + 1) ** 2)]
    for r in range(layout.rows):
        for c in range(layout.cols):
            idx[r, c] = dec.decode(models[_index_context(idx, r, c, k)])
    return idx


def _base_from(cols: np.ndarray, idx: np.ndarray, layout: GridLayout) -> np.ndarray:
    """Per-pixel int32 base ab (1/16 units): each cell's chosen hypothesis, upsampled."""
    return upsample_select(cols, layout.expand(idx), out_bits=UP_BITS)


def _refinement_field(
    q: np.ndarray,
    step_q: int,
    height: int,
    width: int,
    cell: int,
    guide: np.ndarray | None = None,
) -> np.ndarray:
    """Refinement values (rows, cols, 2) int -> per-pixel int32 in 1/16 ab units. Each value
    sits at its cell's centre: with a guide (the luminance file's gray levels, (H, W) uint8)
    the field follows the luminance (transforms/lumaguide.py, filter 1), else the grid is
    interpolated bilinearly over the padded rows*cell x cols*cell area (where cells tile
    exactly) and cut to the image (filter 0)."""
    values = q.astype(np.int32) * step_q  # 1/4 ab units
    if guide is not None:
        return guided_field(values, guide, cell, UP_BITS - 2)
    rows, cols = q.shape[:2]
    full = upsample_fixed(values, rows * cell, cols * cell, UP_BITS - 2)
    return full[:height, :width]


def _estimate_refinement(
    an: _Analysis, base: np.ndarray, params: QualityParams
) -> tuple[GridLayout, np.ndarray]:
    grid = GridLayout(an.height, an.width, params.refine_cell)
    residual = an.ab16.astype(np.float64) - base  # 1/16 units
    step16 = params.refine_step_q * UP_SCALE / 4.0
    target = grid.means(residual) / step16  # in steps
    estimate = target.copy()
    q = np.zeros(target.shape, np.int32)
    limit = MAX_REFINEMENT_Q // params.refine_step_q
    for _ in range(REFINE_PASSES):
        q = (np.sign(estimate) * np.floor(np.abs(estimate) + 0.5 - DEAD_ZONE)).astype(np.int32)
        q = np.clip(q, -limit, limit)  # the decoder refuses values beyond the ab range
        field = _refinement_field(q, params.refine_step_q, an.height, an.width, grid.cell, an.guide)
        miss = grid.means(residual - field) / step16
        estimate = q + miss
    return grid, q


def _residuals(q: np.ndarray, dpcm: bool) -> np.ndarray:
    """The values coded for q (rows, cols, 2): q itself, or q minus the DPCM prediction."""
    if not dpcm:
        return q
    out = q.copy()
    rows, cols = q.shape[:2]
    for ch in range(2):
        plane = q[..., ch]
        for r in range(rows):
            for c in range(cols):
                out[r, c, ch] -= _prediction(plane, r, c)
    return out


class _TooLong(Exception):
    """A trial encoding passed its byte limit."""


def _zero_contexts(q: np.ndarray) -> np.ndarray:
    """_zero_context of every position at once (the encoder knows all values)."""
    nz = (q != 0).astype(np.int8)
    ctx = np.zeros(q.shape, np.int8)
    ctx[:, 1:] += nz[:, :-1]
    ctx[1:, :] += nz[:-1, :]
    return ctx


SIGN_CONTEXTS = 9  # (sign of the left value, sign of the upper value), each -1 / 0 / +1
MAG_CONTEXTS = 3  # min(2, |left| + |upper|)


def _coders(version: int) -> list[SignedIntCoder]:
    """The refinement layer's coders for a and b: from format version 3 with sign and
    magnitude contexts (the neighbours' signs predict a colour region's sign: about a quarter
    of the bytes at mid rates), version 2 without."""
    if version >= 3:
        return [SignedIntCoder(z, SIGN_CONTEXTS, MAG_CONTEXTS) for z in (3, 6)]
    return [SignedIntCoder(3), SignedIntCoder(6)]


def _sign_mag_context(plane: np.ndarray, r: int, c: int) -> tuple[int, int]:
    left = int(plane[r, c - 1]) if c else 0
    up = int(plane[r - 1, c]) if r else 0
    sign = 3 * ((left > 0) - (left < 0) + 1) + (up > 0) - (up < 0) + 1
    return sign, min(2, abs(left) + abs(up))


def _sign_mag_contexts(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_sign_mag_context of every position at once (the encoder knows all values)."""
    left = np.zeros_like(q)
    left[:, 1:] = q[:, :-1]
    up = np.zeros_like(q)
    up[1:, :] = q[:-1, :]
    sign = 3 * (np.sign(left) + 1) + np.sign(up) + 1
    return sign, np.minimum(2, np.abs(left) + np.abs(up))


def _code_values(enc: RangeEncoder, q: np.ndarray, values: np.ndarray, limit: int) -> None:
    coders = _coders(bitstream.VERSION)
    ctx = _zero_contexts(q).tolist()
    sign_ctx, mag_ctx = (x.tolist() for x in _sign_mag_contexts(q))
    vals = values.tolist()
    for r, row in enumerate(vals):
        for c, pair in enumerate(row):
            s, m = sign_ctx[r][c], mag_ctx[r][c]
            coders[0].encode(enc, pair[0], ctx[r][c][0], s[0], m[0])
            # b's zero flag also sees whether a at the same place was coded as non-zero
            coders[1].encode(enc, pair[1], ctx[r][c][1] + 3 * (pair[0] != 0), s[1], m[1])
        if len(enc.out) > limit:
            raise _TooLong


def _code_refinement(enc: RangeEncoder, q: np.ndarray, limit: int) -> None:
    """DPCM or not, whichever codes shorter on its own (one raw bit says which), then the
    values. Raises _TooLong as soon as the stream passes `limit` bytes."""
    trials = []
    for dpcm in (False, True):
        values = _residuals(q, dpcm)
        trial = RangeEncoder()
        try:
            _code_values(trial, q, values, limit)
        except _TooLong:
            continue
        trials.append((len(trial.finish()), dpcm, values))
    if not trials:
        raise _TooLong
    _, dpcm, values = min(trials, key=lambda t: t[:2])
    enc.encode_raw(int(dpcm), 1)
    _code_values(enc, q, values, limit)


def _decode_refinement(dec: RangeDecoder, grid: GridLayout, version: int) -> np.ndarray:
    dpcm = dec.decode_raw(1)
    coders = _coders(version)
    contexts = version >= 3
    q = np.zeros((grid.rows, grid.cols, 2), np.int32)
    for r in range(grid.rows):
        for c in range(grid.cols):
            coded_a = 0
            for ch in range(2):
                plane = q[..., ch]
                s, m = _sign_mag_context(plane, r, c) if contexts else (0, 0)
                v = coders[ch].decode(dec, _zero_context(plane, r, c) + 3 * coded_a, s, m)
                coded_a = int(v != 0)
                plane[r, c] = v + (_prediction(plane, r, c) if dpcm else 0)
    return q


def _encode_once(
    an: _Analysis,
    quality: int,
    params: QualityParams,
    model_id: str,
    whash: bytes,
    limit: int | None = None,
) -> bytes:
    """One bitstream at these settings: of the modes' trials, the one of least D + lambda R
    among those within `limit` bytes (all of them when none is); with `limit`, a trial is
    abandoned (_TooLong if all are) once its payload alone passes it."""
    limit = limit if limit is not None else 1 << 62
    trials = []
    for mode in _MODES:
        enc = RangeEncoder()
        enc.encode_raw(mode, 1)
        if mode == MODE_INDEXED:
            idx = an.indices(params.lam)
            _code_indices(enc, idx, an.options)
            base = an.base(idx)
        else:
            base = np.zeros((an.height, an.width, 2), np.int32)
        if params.refine_cell:
            _, q = _estimate_refinement(an, base, params)
            try:
                _code_refinement(enc, q, limit)
            except _TooLong:
                continue
            field = _refinement_field(
                q, params.refine_step_q, an.height, an.width, params.refine_cell, an.guide
            )
            base = base + field
        payload = enc.finish()
        data = bitstream.pack(_header(an, quality, params, mode, model_id, whash), payload)
        sse = float(((an.ab16 - base) ** 2).sum(dtype=np.float64)) / (UP_SCALE * UP_SCALE)
        cost = sse + params.lam * 8 * len(data)  # the whole file: headers differ by mode
        if mode == MODE_INDEXED:
            cost *= 1.0 + INDEX_MODE_MARGIN
        trials.append((cost, mode, data))
    if not trials:
        raise _TooLong
    fitting = [t for t in trials if len(t[2]) <= limit]  # a budget is met where it can be
    return min(fitting or trials)[2]


def _header(
    an: _Analysis, quality: int, params: QualityParams, mode: int, model_id: str, whash: bytes
) -> Header:
    """The header of a stream in `mode`: a gray-mode stream depends on no model, so its header
    names none (bitstream: model-free, 25 bytes fewer)."""
    free = mode == MODE_GRAY
    guided = an.guide is not None and params.refine_cell > 0
    return Header(
        model_id="" if free else model_id,
        weights_hash=b"" if free else whash,
        width=an.width,
        height=an.height,
        k=0 if free else an.k,
        hyp_height=0 if free else an.hyp_height,
        hyp_width=0 if free else an.hyp_width,
        cell=an.cell,
        quality=quality,
        refine_cell=params.refine_cell,
        refine_step_q=params.refine_step_q,
        refine_filter=FILTER_GUIDED if guided else FILTER_BILINEAR,
        luminance=an.signature,
    )


def encode(
    ab_true: np.ndarray,
    hyps: np.ndarray,
    model_id: str,
    weights_sha256: str | bytes,
    quality: int = 50,
    cell: int = DEFAULT_CELL,
    max_bytes: int | None = None,
    refine_cell: int | None = None,
    guide: np.ndarray | None = None,
) -> bytes:
    """Encode the colours of one image as a `.cbc` bitstream.

    ab_true: (H, W, 2) true ab; hyps: (K, h, w, 2) the model's hypotheses (float ab, or int8
    already quantized); model_id / weights_sha256: the registry name and the checkpoint's
    SHA-256 (hex) the decoder must use; quality 0..100; cell: index-region size in pixels;
    max_bytes: if given, the highest quality <= `quality` whose bitstream fits (the result
    is never longer); refine_cell: override the quality's refinement cell size; guide: the
    gray levels (H, W) uint8 the decoder will have (`guide_from_l` of the luminance file's L):
    with it the refinement layer follows the luminance (about a tenth lower CIEDE2000 at the
    same bytes), and the decoder needs the same guide.
    """
    ab_true = np.asarray(ab_true)
    if ab_true.ndim != 3 or ab_true.shape[-1] != 2 or min(ab_true.shape[:2]) < 1:
        raise CodecError(f"ab must be (H, W, 2), got {ab_true.shape}")
    if cell < 1:
        raise CodecError(f"cell size {cell} < 1")
    cell = min(cell, max(ab_true.shape[:2]))  # a cell larger than the image is the image
    q_hyps = quantize_hypotheses(hyps)
    if q_hyps.shape[0] > 255:
        raise CodecError(f"K = {q_hyps.shape[0]} > 255")
    whash = bitstream.weights_hash(weights_sha256)
    an = _Analysis(ab_true, q_hyps, cell, _checked_guide(guide, ab_true.shape[:2]))

    def at(qual: int, limit: int | None = max_bytes) -> bytes | None:
        params = quality_params(qual, an.cell, refine_cell)
        try:
            return _encode_once(an, qual, params, model_id, whash, limit)
        except _TooLong:
            return None

    data = at(quality)
    if data is not None and (max_bytes is None or len(data) <= max_bytes):
        return data
    lo, hi = 0, quality  # invariant: hi does not fit
    best = at(0) or at(0, None)
    if len(best) > max_bytes:
        c = cell
        while len(best) > max_bytes and c < max(an.height, an.width):
            c *= 2
            an.set_cell(c)
            best = at(0, None)
        if len(best) > max_bytes:
            raise CodecError(f"no bitstream fits in {max_bytes} bytes (smallest {len(best)})")
        return best
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = at(mid)
        if trial is not None and len(trial) <= max_bytes:
            lo, best = mid, trial
        else:
            hi = mid
    return best


def _checked_guide(guide: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if guide is None:
        return None
    guide = np.asarray(guide)
    if guide.dtype != np.uint8 or guide.shape != tuple(shape):
        raise CodecError(
            f"guide must be {shape} uint8 gray levels, got {guide.shape} {guide.dtype}"
        )
    return guide


def encode_settings(
    ab_true: np.ndarray,
    hyps: np.ndarray,
    model_id: str,
    weights_sha256: str | bytes,
    refine_cell: int,
    refine_step: float,
    guide: np.ndarray | None = None,
    cell: int = DEFAULT_CELL,
) -> bytes:
    """A bitstream at an explicit refinement cell and step (ab units) instead of a quality
    setting: what bench/codec_sweep.py measures to choose QUALITY_SEGMENTS."""
    q_hyps = quantize_hypotheses(hyps)
    an = _Analysis(np.asarray(ab_true), q_hyps, cell, _checked_guide(guide, ab_true.shape[:2]))
    params = refinement_params(refine_cell, refine_step, cell)
    return _encode_once(an, 0, params, model_id, bitstream.weights_hash(weights_sha256))


def read_header(data: bytes, name: str = "<bitstream>") -> Header:
    """Parse and check a bitstream's header (CRC included) without decoding the payload:
    the decoder's caller learns the model id, weights hash, image and hypothesis sizes."""
    return bitstream.unpack(data, name)[0]


def decode_layers(
    data: bytes, name: str = "<bitstream>"
) -> tuple[Header, np.ndarray | None, np.ndarray | None]:
    """The coded symbols of a bitstream, no hypotheses needed: (header, indices (rows, cols)
    int16 in 0..K (K = gray) or None in gray mode, refinement values (rows, cols, 2) int32 or
    None). For inspection and benchmarks."""
    header, payload = bitstream.unpack(data, name)
    dec = RangeDecoder(payload)
    idx = None
    if dec.decode_raw(1) == MODE_INDEXED:
        layout = GridLayout(header.height, header.width, header.cell)
        idx = _decode_indices(dec, layout, header.k + 1)
    q = None
    if header.refine_cell:
        grid = GridLayout(header.height, header.width, header.refine_cell)
        q = _decode_refinement(dec, grid, header.version)
    return header, idx, q


def check_luminance(header: Header, guide: np.ndarray, name: str = "<bitstream>") -> None:
    """Raise BitstreamError ("wrong luminance") unless `guide` (the luminance file's gray
    levels, (H, W) uint8) is within SIGNATURE_TOLERANCE of the signature the stream was coded
    against: another photo of the same size would decode to wrong colours without a word. A
    stream without a signature (version 2 and 3, or coded without a guide) passes."""
    if not header.luminance:
        return
    found = luminance_signature(guide)
    if signature_distance(found, header.luminance) > SIGNATURE_TOLERANCE:
        raise bitstream.BitstreamError(
            name,
            "wrong luminance",
            f"its quarters' mean gray levels are {list(found)}, the stream was coded against "
            f"{list(header.luminance)}: not the luminance file it was encoded with (for a "
            "grayscale of your own, decode with --any-luminance)",
        )


def needs_hypotheses(data: bytes, name: str = "<bitstream>") -> bool:
    """Whether decoding this bitstream needs the model's hypotheses (index-layer mode); a
    gray-mode stream decodes from the bitstream alone, so a decoder can skip the model."""
    header, payload = bitstream.unpack(data, name)
    return not header.model_free and RangeDecoder(payload).decode_raw(1) == MODE_INDEXED


def decode(
    data: bytes,
    hyps: np.ndarray | None,
    name: str = "<bitstream>",
    model_id: str | None = None,
    weights_sha256: str | bytes | None = None,
    guide: np.ndarray | None = None,
    any_luminance: bool = False,
) -> np.ndarray:
    """Bitstream + the model's hypotheses for the same L -> ab (H, W, 2) float32.

    `hyps` may be None for a gray-mode stream (`needs_hypotheses` is False; a model-free
    stream ignores them); `guide` (the
    luminance file's gray levels, `guide_from_l`) is needed by a luma-guided stream and, when
    given, checked against the stream's luminance signature (check_luminance) unless
    `any_luminance`. Raises
    bitstream.BitstreamError (naming `name`) on a bad bitstream, a wrong luminance or, when
    given, a model id / weights hash that differ from the header's of a stream that needs the
    model (index layer), and CodecError when the hypotheses are missing or do not have the
    header's shape.
    """
    header, payload = bitstream.unpack(data, name)
    h, w = header.height, header.width
    if guide is not None and not any_luminance:
        check_luminance(header, _checked_guide(guide, (h, w)), name)
    layout = GridLayout(h, w, header.cell)
    dec = RangeDecoder(payload)
    if dec.decode_raw(1) == MODE_INDEXED:
        if header.model_free:
            raise bitstream.BitstreamError(
                name, "invalid payload", "index layer in a model-free stream"
            )
        # only the index layer depends on the model: a gray-mode stream (a version-2 one
        # names its model) decodes with any weights
        bitstream.check_model(header, name, model_id, weights_sha256)
        expected = (header.k, header.hyp_height, header.hyp_width, 2)
        q_hyps = None if hyps is None else quantize_hypotheses(hyps)
        if q_hyps is not None and q_hyps.shape != expected:
            raise CodecError(f"{name}: hypotheses {q_hyps.shape}, bitstream expects {expected}")
        if q_hyps is None:
            raise CodecError(f"{name}: this bitstream needs the model's hypotheses")
        idx = _decode_indices(dec, layout, header.k + 1)
        base = _base_from(_columns(_with_gray(q_hyps), w), idx, layout)
    else:
        base = np.zeros((h, w, 2), np.int32)
    if header.refine_cell:
        grid = GridLayout(h, w, header.refine_cell)
        q = _decode_refinement(dec, grid, header.version)
        if np.abs(q).max(initial=0) * header.refine_step_q > MAX_REFINEMENT_Q:
            raise bitstream.BitstreamError(
                name, "invalid payload", "refinement values outside the ab range"
            )
        if header.refine_filter == FILTER_GUIDED:
            if guide is None:
                raise CodecError(f"{name}: this bitstream needs the luminance (a guide)")
            guide = _checked_guide(guide, (h, w))
        else:
            guide = None
        base += _refinement_field(q, header.refine_step_q, h, w, header.refine_cell, guide)
    return (base.astype(np.float32) / np.float32(UP_SCALE)).astype(np.float32)


def reconstruct_rgb(l_full: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L (H, W) + decoded ab (H, W, 2) -> sRGB uint8, chroma pulled toward
    gray only where it would leave the gamut (as `colorize` composes)."""
    from transforms.colour import lab_to_rgb
    from transforms.compose import fit_into_gamut

    lab = fit_into_gamut(np.concatenate([np.asarray(l_full, np.float32)[..., None], ab], -1))
    return np.clip(np.rint(lab_to_rgb(lab) * 255.0), 0, 255).astype(np.uint8)
