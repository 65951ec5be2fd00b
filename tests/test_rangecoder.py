"""The adaptive range coder: round trips of random and edge-case symbol streams."""

from __future__ import annotations

import random

import pytest

from transforms.rangecoder import (
    MAX_ALPHABET,
    BitModel,
    FrequencyModel,
    RangeCoderError,
    RangeDecoder,
    RangeEncoder,
    SignedIntCoder,
    decode_symbols,
    encode_symbols,
)


def _round_trip(symbols, alphabet, order=0):
    data = encode_symbols(symbols, alphabet, order)
    assert decode_symbols(data, len(symbols), alphabet, order) == list(symbols)
    return data


@pytest.mark.parametrize("seed", range(6))
def test_random_streams_round_trip(seed):
    rng = random.Random(seed)
    alphabet = rng.choice([2, 3, 5, 16, 61, 256])
    symbols = [rng.randrange(alphabet) for _ in range(rng.randrange(1, 800))]
    for order in (0, 1):
        _round_trip(symbols, alphabet, order)


def test_edge_cases():
    assert _round_trip([], 5) == b""
    _round_trip([3], 5)
    _round_trip([0], 1)
    _round_trip([0] * 500, 1)
    same = _round_trip([4] * 2000, 5)
    assert len(same) < 30  # adaptive: 2000 identical symbols cost a few bytes
    _round_trip([MAX_ALPHABET - 1, 0, MAX_ALPHABET // 2, MAX_ALPHABET - 1], MAX_ALPHABET)
    rng = random.Random(7)
    _round_trip([rng.randrange(MAX_ALPHABET) for _ in range(300)], MAX_ALPHABET)


def test_skewed_stream_compresses_near_entropy():
    rng = random.Random(3)
    symbols = [0 if rng.random() < 0.97 else rng.randrange(1, 8) for _ in range(20000)]
    data = _round_trip(symbols, 8)
    # entropy of this source is ~0.28 bits per symbol: 20000 symbols ~ 700 bytes
    assert len(data) < 900
    uniform = [rng.randrange(8) for _ in range(20000)]
    assert 7400 < len(_round_trip(uniform, 8)) < 7700  # 3 bits per symbol = 7500 bytes


def test_bad_symbols_and_alphabets_raise():
    with pytest.raises(RangeCoderError):
        encode_symbols([5], 5)
    with pytest.raises(RangeCoderError):
        FrequencyModel(MAX_ALPHABET + 1)
    with pytest.raises(RangeCoderError):
        FrequencyModel(0)


def test_mixed_models_bits_raw_and_signed_integers():
    rng = random.Random(11)
    values = [int(rng.gauss(0, 4)) if rng.random() < 0.4 else 0 for _ in range(1500)]
    values += [1, -1, 12, -13, 14, 1000, -70000, 2**30]
    bits = [int(rng.random() < 0.1) for _ in values]
    raws = [rng.randrange(1 << 13) for _ in values]
    enc = RangeEncoder()
    coder, bit_model, freq = SignedIntCoder(3), BitModel(), FrequencyModel(7)
    for v, b, r in zip(values, bits, raws, strict=True):
        coder.encode(enc, v, abs(v) % 3)
        enc.encode_bit(bit_model, b)
        enc.encode_raw(r, 13)
        enc.encode(freq, r % 7)
    data = enc.finish()
    dec = RangeDecoder(data)
    coder, bit_model, freq = SignedIntCoder(3), BitModel(), FrequencyModel(7)
    for v, b, r in zip(values, bits, raws, strict=True):
        assert coder.decode(dec, abs(v) % 3) == v
        assert dec.decode_bit(bit_model) == b
        assert dec.decode_raw(13) == r
        assert dec.decode(freq) == r % 7
    assert dec.overrun <= 4


def test_deterministic_bytes():
    rng = random.Random(5)
    symbols = [rng.randrange(9) for _ in range(1000)]
    assert encode_symbols(symbols, 9, 1) == encode_symbols(symbols, 9, 1)


def test_carry_propagation_streams():
    # long runs of the most probable symbol followed by the least probable one exercise the
    # pending-0xFF / carry path of the encoder
    rng = random.Random(13)
    for _ in range(20):
        symbols = []
        for _ in range(50):
            symbols += [0] * rng.randrange(0, 300) + [rng.randrange(1, 4)]
        _round_trip(symbols, 4)
