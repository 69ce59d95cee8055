"""A small MSB-first bit reader with exp-Golomb codes, shared by the SPS parsers."""

from __future__ import annotations

from streamhive.codecs import CodecError

_MAX_GOLOMB_ZEROS = 31


class BitReader:
    """Reads big-endian bit fields from bytes; reading past the end raises CodecError.

    The whole input is held as one integer, so a field of any width is one shift and mask.
    Parameter sets are tens of bytes, which keeps that integer small.
    """

    __slots__ = ("_value", "_total", "_pos")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self._pos = 0

    @property
    def bits_left(self) -> int:
        return self._total - self._pos

    def u(self, n: int) -> int:
        """Read an ``n``-bit unsigned field."""
        end = self._pos + n
        if end > self._total:
            raise CodecError("bitstream truncated")
        self._pos = end
        return (self._value >> (self._total - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._total:
            raise CodecError("bitstream truncated")
        self._pos += n

    def ue(self) -> int:
        """Read an unsigned exp-Golomb code (ue(v))."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > _MAX_GOLOMB_ZEROS:
                raise CodecError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Read a signed exp-Golomb code (se(v))."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def unescape_rbsp(data: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 -> 00 00) so fields can be read in order."""
    if b"\x00\x00\x03" not in data:
        return data
    out = bytearray()
    start = 0
    while True:
        i = data.find(b"\x00\x00\x03", start)
        if i < 0:
            out += data[start:]
            return bytes(out)
        out += data[start : i + 2]
        start = i + 3
