"""The .cbc container: round trip and every corruption case names what is wrong."""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import replace

import pytest

from transforms.bitstream import (
    MAGIC,
    SIGNATURE_BYTES,
    VERSION,
    BitstreamError,
    Header,
    _varint,
    check_model,
    pack,
    unpack,
    weights_hash,
)

SHA = hashlib.sha256(b"weights").hexdigest()
HEADER = Header(
    model_id="multihypothesis",
    weights_hash=weights_hash(SHA),
    width=767,
    height=513,
    k=5,
    hyp_height=64,
    hyp_width=64,
    cell=16,
    quality=50,
    refine_cell=32,
    refine_step_q=16,
    luminance=bytes([10, 200, 37, 128]),
)
PAYLOAD = bytes(range(200)) * 2


def _reason(data: bytes, **kw) -> str:
    with pytest.raises(BitstreamError) as e:
        unpack(data, "img.cbc", **kw)
    assert str(e.value).startswith("img.cbc: ")
    return e.value.reason


def test_round_trip():
    data = pack(HEADER, PAYLOAD)
    assert data.startswith(MAGIC)
    header, payload = unpack(data, "x.cbc", model_id="multihypothesis", weights_sha256=SHA)
    assert header == HEADER and payload == PAYLOAD
    assert header.refine_step == 4.0
    empty = pack(HEADER, b"")
    assert unpack(empty)[1] == b""
    assert len(empty) == 52  # the header stays small next to a few hundred payload bytes


def test_truncated_at_every_byte():
    data = pack(HEADER, PAYLOAD)
    for n in range(len(data)):
        assert _reason(data[:n]) == "truncated", n


def test_flipped_payload_bits_fail_the_checksum():
    data = pack(HEADER, PAYLOAD)
    start = len(data) - 4 - len(PAYLOAD)
    for pos in (start, start + 17, len(data) - 5):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            assert _reason(bytes(bad)) == "checksum mismatch"
    bad = bytearray(data)
    bad[-1] ^= 1  # the CRC itself
    assert _reason(bytes(bad)) == "checksum mismatch"


def test_flipped_header_bits_never_pass():
    data = pack(HEADER, PAYLOAD)
    header_len = len(data) - 4 - len(PAYLOAD)
    for pos in range(header_len):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        assert _reason(bytes(bad)) in BitstreamError.REASONS


def test_bad_magic_wrong_version_trailing_bytes():
    data = pack(HEADER, PAYLOAD)
    assert _reason(b"\x89PNG" + data[4:]) == "bad magic"
    assert _reason(b"x") == "bad magic"
    for version in (0, 1, VERSION + 1, 255):  # version 1 (no mode bit) is refused, not misread
        assert _reason(data[:4] + bytes([version]) + data[5:]) == "wrong version"
    assert _reason(data + b"\0") == "trailing bytes"


def test_wrong_model_and_weights():
    data = pack(HEADER, PAYLOAD)
    assert _reason(data, model_id="eccv16-small") == "wrong model"
    other = hashlib.sha256(b"other").hexdigest()
    assert _reason(data, weights_sha256=other) == "wrong weights"
    header, _ = unpack(data)
    check_model(header, "x", "multihypothesis", SHA)
    with pytest.raises(BitstreamError, match="wrong weights"):
        check_model(header, "x", None, weights_hash(other))


def test_model_free_streams():
    """An empty model id is a model-free stream: no hash, K or map size (26 bytes fewer here),
    decodable with any model; in a version-2 stream it is an invalid header."""
    free = replace(HEADER, model_id="", weights_hash=b"", k=0, hyp_height=0, hyp_width=0)
    data = pack(free, PAYLOAD)
    header, payload = unpack(data, "f.cbc", model_id="other", weights_sha256="ab" * 32)
    assert header == free and header.model_free and payload == PAYLOAD
    assert len(pack(HEADER, PAYLOAD)) - len(data) == len(HEADER.model_id) + 8 + 1 + 1 + 1
    assert _reason(_downgrade(data, free, 2)) == "invalid header"
    header, _ = unpack(_downgrade(data, free, 3))
    assert header == replace(free, luminance=b"") and header.model_free


def test_invalid_fields_rejected():
    with pytest.raises(ValueError):
        pack(Header("m", b"123", 1, 1, 1, 1, 1, 1), b"")
    zero = pack(Header("m", HEADER.weights_hash, 0, 1, 1, 1, 1, 1), b"")
    assert _reason(zero) == "invalid header"


def test_cells_larger_than_any_encoder_writes_are_refused():
    """A crafted header (valid CRC) must not make the decoder allocate cell^2 values."""
    for field, what in (("cell", "region cell"), ("refine_cell", "refinement cell")):
        with pytest.raises(BitstreamError, match=f"{what} 150000 larger than the 767x513 image"):
            unpack(pack(replace(HEADER, **{field: 150_000}), PAYLOAD))
    longest = 2 * max(HEADER.width, HEADER.height)
    assert unpack(pack(replace(HEADER, cell=longest), PAYLOAD))[0].cell == longest
    tiny = replace(HEADER, width=1, height=1, refine_cell=128)  # the quality table's cells
    assert unpack(pack(tiny, PAYLOAD))[0] == tiny


def test_large_sizes_use_varints():
    big = Header("m", HEADER.weights_hash, 100_000, 3, 1, 1, 1, 4096)
    assert unpack(pack(big, b"ab"))[0] == big


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _filter_pos(data: bytes, header: Header = HEADER) -> int:
    """Offset of the refinement filter byte: just before the luminance signature's length
    byte and the signature, which the payload length varint follows."""
    return len(data) - 4 - len(PAYLOAD) - len(_varint(len(PAYLOAD))) - 2 - len(header.luminance)


def _downgrade(data: bytes, header: Header, version: int) -> bytes:
    """The version-4 stream `data` (packed from `header`) in the layout of version 3 (no
    luminance signature) or 2 (no refinement filter byte either), CRC recomputed."""
    pos = _filter_pos(data, header)
    keep = pos + 1 if version == 3 else pos
    return _with_crc(
        data[:4] + bytes([version]) + data[5:keep] + data[pos + 2 + len(header.luminance) : -4]
    )


def test_refine_filter_round_trips_and_unknown_is_refused():
    """Filter 1 survives pack/unpack; an unknown filter byte (valid CRC) is an invalid header."""
    guided = replace(HEADER, refine_filter=1)
    assert unpack(pack(guided, PAYLOAD))[0] == guided
    with pytest.raises(ValueError):
        pack(replace(HEADER, refine_filter=7), PAYLOAD)
    data = bytearray(pack(HEADER, PAYLOAD))
    pos = _filter_pos(data)
    assert data[pos] == 0 and pack(guided, PAYLOAD)[pos] == 1
    data[pos] = 7
    assert _reason(_with_crc(bytes(data[:-4]))) == "invalid header"


def test_version_2_streams_read_as_bilinear():
    """A version-2 stream (no filter byte) parses to the same header, with filter 0."""
    data = pack(HEADER, PAYLOAD)
    pos = _filter_pos(data)
    v2 = _downgrade(data, HEADER, 2)
    assert len(v2) == len(data) - 2 - len(HEADER.luminance)
    header, payload = unpack(v2, "old.cbc", model_id="multihypothesis", weights_sha256=SHA)
    assert header == replace(HEADER, luminance=b"") and header.refine_filter == 0
    assert payload == PAYLOAD and header.version == 2
    # the version byte decides the layout: the same bytes labelled 4 do not parse
    assert _reason(_with_crc(data[:4] + bytes([VERSION]) + v2[5:-4])) in BitstreamError.REASONS
    assert data[pos] == 0


def test_version_3_streams_have_no_luminance_signature():
    guided = replace(HEADER, refine_filter=1)
    v3 = _downgrade(pack(guided, PAYLOAD), guided, 3)
    header, payload = unpack(v3, "v3.cbc")
    assert header == replace(guided, luminance=b"") and header.version == 3
    assert payload == PAYLOAD


def test_luminance_signature_round_trips_and_bad_lengths_are_refused():
    """0 or SIGNATURE_BYTES bytes; another length (valid CRC) is an invalid header."""
    assert len(HEADER.luminance) == SIGNATURE_BYTES
    none = replace(HEADER, luminance=b"")
    assert unpack(pack(none, PAYLOAD))[0] == none
    assert len(pack(HEADER, PAYLOAD)) == len(pack(none, PAYLOAD)) + SIGNATURE_BYTES
    for bad in (b"\1", b"\1\2\3\4\5"):
        with pytest.raises(ValueError, match="signature"):
            pack(replace(HEADER, luminance=bad), PAYLOAD)
    data = pack(HEADER, PAYLOAD)
    pos = _filter_pos(data) + 1
    assert data[pos] == SIGNATURE_BYTES and data[pos + 1 : pos + 5] == HEADER.luminance
    for length in (1, 2, 3, 5, 255):  # well-formed streams with a signature of that length
        forged = data[:pos] + bytes([length]) + bytes(length) + data[pos + 1 + SIGNATURE_BYTES :]
        assert _reason(_with_crc(forged[:-4])) == "invalid header"
