"""An adaptive range coder (pure Python, no numpy needed): multi-symbol and binary models.

The coder is the carry-propagating 32-bit range coder of LZMA (Subbotin/Schindler family):
`low` keeps 32 bits plus a carry, `range` is renormalised to >= 2^24 by shifting out bytes,
and pending 0xFF bytes absorb a late carry. Two adaptive models drive it:

- `FrequencyModel(n)`: counts over an alphabet of n <= MAX_ALPHABET symbols (start at 1,
  +INCREMENT per coded symbol, halved when the total passes FREQ_LIMIT = 2^16, so that
  range // total >= 2^8 keeps the precision).
- `BitModel`: a 12-bit probability of a 0 bit, moved 1/2^BIT_SHIFT toward each coded bit.

`SignedIntCoder` builds signed integers from bit models (zero flag per context, sign,
unary magnitude up to UNARY_MAX then Exp-Golomb bits), the code the colour codec uses for
its refinement values.

Stream trimming: the always-zero first byte is not written, the final value is chosen in
[low, low + range) with as many trailing zero bytes as possible, and trailing zero bytes are
dropped; the decoder reads zeros past the end. An empty message is b"". The byte stream does
not know its own length in symbols: the container (transforms/bitstream.py) stores counts.

The encoder and decoder use only integer arithmetic, so a stream decodes to the same symbols
on every machine. `encode_symbols` / `decode_symbols` code a plain sequence with one adaptive
model (order 0) or with the previous symbol as context (order 1).
"""

from __future__ import annotations

from collections.abc import Sequence

TOP = 1 << 24
MASK32 = 0xFFFFFFFF
FREQ_LIMIT = 1 << 16
INCREMENT = 32
MAX_ALPHABET = 4096
BIT_PRECISION = 11  # probabilities in 1/2048 (LZMA's kNumBitModelTotalBits)
BIT_SHIFT = 4  # adaptation speed of a BitModel (LZMA uses 5; 4 adapts faster on short streams)
UNARY_MAX = 12  # magnitudes >= this continue in Exp-Golomb bits


class RangeCoderError(ValueError):
    """A model or symbol outside what the coder supports."""


class FrequencyModel:
    """Adaptive frequencies over symbols 0..n-1."""

    __slots__ = ("freq", "total", "increment")

    def __init__(self, n: int, increment: int = INCREMENT):
        if not 1 <= n <= MAX_ALPHABET:
            raise RangeCoderError(f"alphabet size {n} outside 1..{MAX_ALPHABET}")
        self.freq = [1] * n
        self.total = n
        self.increment = increment

    def update(self, symbol: int) -> None:
        self.freq[symbol] += self.increment
        self.total += self.increment
        if self.total > FREQ_LIMIT:
            self.freq = [(f + 1) >> 1 for f in self.freq]
            self.total = sum(self.freq)

    def cost_bits(self, symbol: int) -> float:
        """-log2 p(symbol) under the current counts (for rate estimates, not for coding)."""
        from math import log2

        return log2(self.total / self.freq[symbol])


class BitModel:
    """Adaptive probability of a 0 bit, 11-bit fixed point."""

    __slots__ = ("p0",)

    def __init__(self):
        self.p0 = 1 << (BIT_PRECISION - 1)

    def cost_bits(self, bit: int) -> float:
        from math import log2

        p = self.p0 if bit == 0 else (1 << BIT_PRECISION) - self.p0
        return log2((1 << BIT_PRECISION) / p)


class RangeEncoder:
    """Encode symbols with adaptive models; `finish()` returns the bytes."""

    def __init__(self):
        self.low = 0
        self.range = MASK32
        self.cache = 0
        self.cache_size = 1
        self.out = bytearray()
        self._done = False

    def _shift_low(self) -> None:
        low = self.low
        if (low & MASK32) < 0xFF000000 or low > MASK32:
            carry = low >> 32
            temp = self.cache
            while True:
                self.out.append((temp + carry) & 0xFF)
                temp = 0xFF
                self.cache_size -= 1
                if self.cache_size == 0:
                    break
            self.cache = (low >> 24) & 0xFF
        self.cache_size += 1
        self.low = (low << 8) & MASK32

    def _code(self, cum: int, freq: int, total: int) -> None:
        r = self.range // total
        self.low += r * cum
        self.range = r * freq
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def encode(self, model: FrequencyModel, symbol: int) -> None:
        """Code `symbol` with `model` and update the model."""
        freq = model.freq
        if not 0 <= symbol < len(freq):
            raise RangeCoderError(f"symbol {symbol} outside alphabet 0..{len(freq) - 1}")
        self._code(sum(freq[:symbol]), freq[symbol], model.total)
        model.update(symbol)

    def encode_bit(self, model: BitModel, bit: int) -> None:
        """Code one bit (0 or 1) with an adaptive BitModel."""
        bound = (self.range >> BIT_PRECISION) * model.p0
        if bit:
            self.low += bound
            self.range -= bound
            model.p0 -= model.p0 >> BIT_SHIFT
        else:
            self.range = bound
            model.p0 += ((1 << BIT_PRECISION) - model.p0) >> BIT_SHIFT
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def encode_raw(self, value: int, nbits: int) -> None:
        """Code `nbits` equiprobable bits of a non-negative value (most significant first)."""
        for i in range(nbits - 1, -1, -1):
            self.range >>= 1
            if (value >> i) & 1:
                self.low += self.range
            while self.range < TOP:
                self.range <<= 8
                self._shift_low()

    def finish(self) -> bytes:
        """Flush and return the trimmed stream; the encoder cannot be used afterwards."""
        if self._done:
            return bytes(self.out)
        end = self.low + self.range  # any value in [low, end) decodes the same symbols
        for shift in (32, 24, 16, 8, 0):
            v = ((self.low + (1 << shift) - 1) >> shift) << shift
            if v < end:
                self.low = v
                break
        for _ in range(5):
            self._shift_low()
        self._done = True
        out = self.out
        assert out[0] == 0, "first range-coder byte is always zero"
        del out[0]
        while out and out[-1] == 0:
            out.pop()
        return bytes(out)


class RangeDecoder:
    """Decode a stream written by RangeEncoder with the same sequence of models."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.range = MASK32
        self.code = 0
        for _ in range(4):
            self.code = (self.code << 8) | self._byte()

    def _byte(self) -> int:
        pos = self.pos
        self.pos = pos + 1
        return self.data[pos] if pos < len(self.data) else 0

    def _normalize(self) -> None:
        while self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._byte()) & MASK32

    @property
    def overrun(self) -> int:
        """Bytes read past the end of the stream (zeros); a valid stream reads at most 4."""
        return max(0, self.pos - len(self.data))

    def decode(self, model: FrequencyModel) -> int:
        """The next symbol under `model` (which is updated)."""
        freq = model.freq
        total = model.total
        r = self.range // total
        target = min(self.code // r, total - 1)
        cum = 0
        symbol = 0
        for symbol, f in enumerate(freq):  # noqa: B007 - symbol is used after the loop
            if cum + f > target:
                break
            cum += f
        self.code -= r * cum
        self.range = r * freq[symbol]
        self._normalize()
        model.update(symbol)
        return symbol

    def decode_bit(self, model: BitModel) -> int:
        """The next bit under `model` (which is updated)."""
        bound = (self.range >> BIT_PRECISION) * model.p0
        if self.code < bound:
            self.range = bound
            model.p0 += ((1 << BIT_PRECISION) - model.p0) >> BIT_SHIFT
            bit = 0
        else:
            self.code -= bound
            self.range -= bound
            model.p0 -= model.p0 >> BIT_SHIFT
            bit = 1
        self._normalize()
        return bit

    def decode_raw(self, nbits: int) -> int:
        """`nbits` equiprobable bits, most significant first."""
        value = 0
        for _ in range(nbits):
            self.range >>= 1
            bit = 1 if self.code >= self.range else 0
            if bit:
                self.code -= self.range
            value = (value << 1) | bit
            self._normalize()
        return value


class SignedIntCoder:
    """Adaptive code for signed integers: a zero flag per context, a sign bit per sign
    context, a unary magnitude (one bit model per position, one set per magnitude context)
    up to UNARY_MAX, then Exp-Golomb raw bits. With one sign and one magnitude context (the
    defaults) it is the coder of format version 2."""

    def __init__(self, contexts: int = 1, sign_contexts: int = 1, mag_contexts: int = 1):
        self.zero = [BitModel() for _ in range(contexts)]
        self.sign = [BitModel() for _ in range(sign_contexts)]
        self.unary = [[BitModel() for _ in range(UNARY_MAX)] for _ in range(mag_contexts)]

    def encode(
        self,
        enc: RangeEncoder,
        value: int,
        context: int = 0,
        sign_context: int = 0,
        mag_context: int = 0,
    ) -> None:
        enc.encode_bit(self.zero[context], 1 if value else 0)
        if not value:
            return
        enc.encode_bit(self.sign[sign_context], 1 if value < 0 else 0)
        unary = self.unary[mag_context]
        mag = abs(value) - 1
        for i in range(UNARY_MAX):
            if mag == i:
                enc.encode_bit(unary[i], 0)
                return
            enc.encode_bit(unary[i], 1)
        rest = mag - UNARY_MAX + 1  # >= 1: Exp-Golomb order 0
        n = rest.bit_length()
        enc.encode_raw(0, n - 1)
        enc.encode_raw(rest, n)

    def decode(
        self, dec: RangeDecoder, context: int = 0, sign_context: int = 0, mag_context: int = 0
    ) -> int:
        if not dec.decode_bit(self.zero[context]):
            return 0
        negative = dec.decode_bit(self.sign[sign_context])
        unary = self.unary[mag_context]
        mag = 0
        while mag < UNARY_MAX and dec.decode_bit(unary[mag]):
            mag += 1
        if mag == UNARY_MAX:
            zeros = 0
            while dec.decode_raw(1) == 0:
                zeros += 1
                if zeros > 40:
                    raise RangeCoderError("corrupt stream: Exp-Golomb prefix too long")
            rest = (1 << zeros) | dec.decode_raw(zeros)
            mag = rest + UNARY_MAX - 1
        value = mag + 1
        return -value if negative else value

    def cost_bits(
        self, value: int, context: int = 0, sign_context: int = 0, mag_context: int = 0
    ) -> float:
        """Estimated bits of `value` under the current state (no update)."""
        bits = self.zero[context].cost_bits(1 if value else 0)
        if not value:
            return bits
        bits += self.sign[sign_context].cost_bits(1 if value < 0 else 0)
        unary = self.unary[mag_context]
        mag = abs(value) - 1
        for i in range(min(mag + 1, UNARY_MAX)):
            bits += unary[i].cost_bits(0 if i == mag else 1)
        if mag >= UNARY_MAX:
            bits += 2 * (mag - UNARY_MAX + 1).bit_length() - 1
        return bits


def encode_symbols(symbols: Sequence[int], alphabet: int, order: int = 0) -> bytes:
    """Range-code a symbol sequence with one adaptive model (order 0) or one model per
    previous symbol (order 1). The count is not stored."""
    if order not in (0, 1):
        raise RangeCoderError(f"order must be 0 or 1, not {order}")
    models = [FrequencyModel(alphabet) for _ in range(alphabet if order else 1)]
    enc = RangeEncoder()
    prev = 0
    for s in symbols:
        enc.encode(models[prev], int(s))
        if order:
            prev = int(s)
    return enc.finish()


def decode_symbols(data: bytes, count: int, alphabet: int, order: int = 0) -> list[int]:
    """Inverse of encode_symbols given the number of symbols."""
    if order not in (0, 1):
        raise RangeCoderError(f"order must be 0 or 1, not {order}")
    models = [FrequencyModel(alphabet) for _ in range(alphabet if order else 1)]
    dec = RangeDecoder(data)
    out = []
    prev = 0
    for _ in range(count):
        s = dec.decode(models[prev])
        out.append(s)
        if order:
            prev = s
    return out
