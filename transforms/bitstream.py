"""The `.cbc` colour bitstream: a small header, the range-coded payload, a CRC32.

Format version 4, byte by byte (varint = unsigned LEB128: 7 bits per byte, low bits first,
high bit set on every byte but the last; at most 5 bytes):

| offset | size | field |
|---|---|---|
| 0 | 4 | magic `43 42 43 1A` (`b"CBC\\x1a"`) |
| 4 | 1 | format version, `04` (`03`: no luminance signature; `02`: nor filter byte, filter 0; |
| | | version 1 is refused) |
| 5 | 1 | n = length of the model id (0..255; 0 = a model-free stream, see below) |
| 6 | n | model id, ASCII (the registry name, e.g. `multihypothesis`) |
| 6+n | 8 | weights hash: the first 8 bytes of the checkpoint file's SHA-256 (absent when n = 0) |
| ... | var | image width W in pixels (>= 1) |
| ... | var | image height H in pixels (>= 1) |
| ... | 1 | K, number of hypotheses (1..255; absent when n = 0) |
| ... | var | hypothesis map height h (the model's output rows, >= 1; absent when n = 0) |
| ... | var | hypothesis map width w (>= 1; absent when n = 0) |
| ... | 1 | region layout: `00` = square grid cells, row-major from the top left |
| ... | var | region cell size in full-image pixels (>= 1) |
| ... | 1 | quality setting used by the encoder (0..100; informative) |
| ... | var | refinement cell size in full-image pixels (0 = no refinement layer) |
| ... | var | refinement step in 1/4 ab units (>= 1 when there is a refinement layer) |
| ... | 1 | refinement filter: `00` bilinear, `01` luminance-guided (transforms/lumaguide.py) |
| ... | 1 | S = length of the luminance signature: 0 (none) or 4 |
| ... | S | luminance signature: the mean gray level of each quarter of the luminance file the |
| | | stream was coded against (lumaguide.luminance_signature); the decoder refuses a |
| | | luminance farther from it than lumaguide.SIGNATURE_TOLERANCE ("wrong luminance") |
| ... | var | P = payload length in bytes |
| ... | P | payload (transforms/colourcodec.py: one range-coder stream; its first raw bit is |
| | | the mode: 0 = index layer over the K hypotheses + gray, 1 = gray base, no index layer) |
| end-4 | 4 | CRC-32 (zlib/PNG polynomial), big-endian, of every byte before it |

A model-free stream (n = 0, version 3 and later) has a gray-mode payload: it decodes from the
bitstream and the luminance alone, with any model or none, so it names none (25 bytes fewer: at a
few hundred bytes an image that is a tenth of the file); its payload's mode bit must say gray.

Nothing follows the CRC. `unpack` checks, in this order: magic (a prefix of the magic is
"truncated"), version, that every field and the payload and CRC are present ("truncated"),
no trailing bytes, the CRC ("checksum mismatch"), field ranges ("invalid header"), then, if
asked, the model id ("wrong model") and weights hash ("wrong weights"); the luminance
signature is checked by the decoder once it has the luminance (colourcodec.check_luminance).
Every failure raises `BitstreamError` whose message starts with the file name and the reason.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"CBC\x1a"
VERSION = 4
READABLE_VERSIONS = (2, 3, 4)
HASH_BYTES = 8
SIGNATURE_BYTES = 4  # luminance signature, when a stream has one
LAYOUTS = {0: "grid"}
FILTERS = {0: "bilinear", 1: "luma-guided"}
_LAYOUT_CODES = {v: k for k, v in LAYOUTS.items()}
_MAX_VARINT_BYTES = 5
# region / refinement cells an encoder writes are at most twice the image's longest side
# (colourcodec's search doubles the cell while it is below that side) or this, whichever is
# more (the quality table's refinement cells reach 128 on any image, however small)
MAX_CELL = 256


class BitstreamError(ValueError):
    """A bitstream that cannot be decoded; `reason` is one of REASONS."""

    REASONS = (
        "truncated",
        "bad magic",
        "wrong version",
        "trailing bytes",
        "checksum mismatch",
        "invalid header",
        "wrong model",
        "wrong weights",
        "wrong luminance",
        "invalid payload",
    )

    def __init__(self, name: str, reason: str, detail: str = ""):
        self.name, self.reason, self.detail = name, reason, detail
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs besides the payload and the luminance."""

    model_id: str
    weights_hash: bytes  # HASH_BYTES bytes
    width: int
    height: int
    k: int
    hyp_height: int
    hyp_width: int
    cell: int
    quality: int = 0
    refine_cell: int = 0
    refine_step_q: int = 0  # refinement step in 1/4 ab units
    layout: str = "grid"
    refine_filter: int = 0  # FILTERS: how the decoder spreads the refinement values
    # the luminance file's signature (SIGNATURE_BYTES; b"": none, as in version 2 and 3)
    luminance: bytes = b""
    # the format version the stream was read from (pack always writes VERSION); it selects
    # the payload's entropy-coder contexts, so it is not part of a header's identity
    version: int = field(default=VERSION, compare=False)

    @property
    def model_free(self) -> bool:
        """A gray-mode stream that depends on no model (no model id, hash, K or map size)."""
        return not self.model_id

    @property
    def refine_step(self) -> float:
        return self.refine_step_q / 4.0


def weights_hash(sha256_hex_or_bytes: str | bytes) -> bytes:
    """The header's weights hash from a hex SHA-256 string (as in a model config) or raw bytes
    of a checkpoint file."""
    if isinstance(sha256_hex_or_bytes, str):
        return bytes.fromhex(sha256_hex_or_bytes)[:HASH_BYTES]
    return hashlib.sha256(sha256_hex_or_bytes).digest()[:HASH_BYTES]


def _varint(value: int) -> bytes:
    if value < 0 or value >= 1 << (7 * _MAX_VARINT_BYTES):
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pack(header: Header, payload: bytes) -> bytes:
    """The complete bitstream of one image."""
    model = header.model_id.encode("ascii")
    if len(model) > 255:
        raise ValueError(f"model id must be 0..255 ASCII bytes: {header.model_id!r}")
    if not 0 <= header.quality <= 100:
        raise ValueError(f"quality {header.quality} out of range")
    if not header.model_free:
        if len(header.weights_hash) != HASH_BYTES:
            raise ValueError(f"weights hash must be {HASH_BYTES} bytes")
        if not 1 <= header.k <= 255:
            raise ValueError(f"K {header.k} out of range")
    out = bytearray(MAGIC)
    out.append(VERSION)
    out.append(len(model))
    out += model
    if not header.model_free:
        out += header.weights_hash
    for v in (header.width, header.height):
        out += _varint(v)
    if not header.model_free:
        out.append(header.k)
        out += _varint(header.hyp_height) + _varint(header.hyp_width)
    out.append(_LAYOUT_CODES[header.layout])
    out += _varint(header.cell)
    out.append(header.quality)
    out += _varint(header.refine_cell) + _varint(header.refine_step_q)
    if header.refine_filter not in FILTERS:
        raise ValueError(f"unknown refinement filter {header.refine_filter}")
    out.append(header.refine_filter)
    if len(header.luminance) not in (0, SIGNATURE_BYTES):
        raise ValueError(f"luminance signature must be 0 or {SIGNATURE_BYTES} bytes")
    out.append(len(header.luminance))
    out += header.luminance
    out += _varint(len(payload))
    out += payload
    out += struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.pos = data, name, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(
                self.name, "truncated", f"{len(self.data)} bytes, ends inside the {what}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            b = self.byte(what)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return value
        raise BitstreamError(self.name, "invalid header", f"{what}: varint longer than 5 bytes")


def unpack(
    data: bytes,
    name: str = "<bitstream>",
    model_id: str | None = None,
    weights_sha256: str | bytes | None = None,
) -> tuple[Header, bytes]:
    """Parse and check a bitstream; returns (header, payload).

    model_id / weights_sha256 (hex string as in a model config, or the 8-byte hash), when
    given, must match the header. Raises BitstreamError naming `name` and the reason.
    """
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise BitstreamError(name, "bad magic", f"starts with {data[:4].hex()}, not a .cbc file")
    r = _Reader(data, name)
    r.take(len(MAGIC), "magic")
    version = r.byte("format version")
    if version not in READABLE_VERSIONS:
        raise BitstreamError(
            name, "wrong version", f"format version {version}, expected {VERSION} (or 2, 3)"
        )
    n = r.byte("model id length")
    model_raw = r.take(n, "model id")
    free = n == 0  # a model-free stream: no hash, K or map size
    whash = b"" if free else r.take(HASH_BYTES, "weights hash")
    width = r.varint("width")
    height = r.varint("height")
    k, hyp_h, hyp_w = (
        (0, 0, 0)
        if free
        else (r.byte("K"), r.varint("hypothesis height"), r.varint("hypothesis width"))
    )
    layout_code = r.byte("region layout")
    cell = r.varint("region cell size")
    quality = r.byte("quality")
    refine_cell = r.varint("refinement cell size")
    refine_step_q = r.varint("refinement step")
    refine_filter = r.byte("refinement filter") if version >= 3 else 0
    signature = (
        r.take(r.byte("luminance signature length"), "luminance signature") if version >= 4 else b""
    )
    plen = r.varint("payload length")
    payload = r.take(plen, "payload")
    crc_pos = r.pos
    (crc,) = struct.unpack(">I", r.take(4, "checksum"))
    if r.pos != len(data):
        raise BitstreamError(name, "trailing bytes", f"{len(data) - r.pos} bytes after the CRC")
    actual = zlib.crc32(data[:crc_pos]) & 0xFFFFFFFF
    if actual != crc:
        raise BitstreamError(
            name, "checksum mismatch", f"stored {crc:08x}, computed {actual:08x}: corrupted"
        )
    try:
        model = model_raw.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError(name, "invalid header", "model id is not ASCII") from None
    problems = []
    if free and version < 3:
        problems.append("empty model id")
    if min(width, height, cell) < 1 or (not free and min(hyp_h, hyp_w) < 1):
        problems.append("zero size")
    if not free and k < 1:
        problems.append("K = 0")
    if layout_code not in LAYOUTS:
        problems.append(f"unknown region layout {layout_code}")
    if quality > 100:
        problems.append(f"quality {quality} > 100")
    if refine_cell and not refine_step_q:
        problems.append("refinement step 0")
    if refine_filter not in FILTERS:
        problems.append(f"unknown refinement filter {refine_filter}")
    if len(signature) not in (0, SIGNATURE_BYTES):
        problems.append(f"a {len(signature)}-byte luminance signature")
    longest = max(2 * max(width, height), MAX_CELL)  # what an encoder writes, at most
    for what, size in (("region cell", cell), ("refinement cell", refine_cell)):
        if size > longest:  # would make the decoder allocate size^2 values
            problems.append(f"{what} {size} larger than the {width}x{height} image allows")
    if problems:
        raise BitstreamError(name, "invalid header", ", ".join(problems))
    header = Header(
        model_id=model,
        weights_hash=whash,
        width=width,
        height=height,
        k=k,
        hyp_height=hyp_h,
        hyp_width=hyp_w,
        cell=cell,
        quality=quality,
        refine_cell=refine_cell,
        refine_step_q=refine_step_q,
        layout=LAYOUTS[layout_code],
        refine_filter=refine_filter,
        luminance=signature,
        version=version,
    )
    check_model(header, name, model_id, weights_sha256)
    return header, payload


def check_model(
    header: Header,
    name: str,
    model_id: str | None = None,
    weights_sha256: str | bytes | None = None,
) -> None:
    """Raise BitstreamError unless the header was written with this model and weights (a
    model-free stream decodes with any)."""
    if header.model_free:
        return
    if model_id is not None and header.model_id != model_id:
        raise BitstreamError(
            name, "wrong model", f"written with {header.model_id!r}, decoder has {model_id!r}"
        )
    if weights_sha256 is not None:
        expected = (
            weights_sha256
            if isinstance(weights_sha256, bytes) and len(weights_sha256) == HASH_BYTES
            else weights_hash(weights_sha256)
        )
        if expected != header.weights_hash:
            raise BitstreamError(
                name,
                "wrong weights",
                f"written with weights {header.weights_hash.hex()}…, decoder has {expected.hex()}…",
            )
