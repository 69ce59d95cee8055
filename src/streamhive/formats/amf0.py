"""AMF0 encoding and decoding, the value format of RTMP commands and FLV script data.

The decoder is hardened for untrusted input: nesting depth and the total number of values are
bounded, every length is checked against the bytes actually present, and any malformed input
raises :class:`AmfError` (never ``IndexError``, ``struct.error`` or ``RecursionError``), so a
protocol core can turn it into one clean protocol error.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["AmfError", "EcmaArray", "decode", "decode_one", "encode", "MAX_DEPTH", "MAX_ELEMENTS"]

MAX_DEPTH = 32
MAX_ELEMENTS = 65536

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AMF3_SWITCH = 0x11

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")


class AmfError(ValueError):
    """Malformed or unsupported AMF data."""


class EcmaArray(dict[str, Any]):
    """A dict that encodes as an AMF0 ECMA array; players expect ``onMetaData`` in this form."""


class _Decoder:
    """One decoding pass: holds the input and the budget shared by all nested values."""

    __slots__ = ("data", "end", "elements")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = bytes(data)
        self.end = len(self.data)
        self.elements = 0

    def need(self, offset: int, size: int) -> None:
        if offset + size > self.end:
            raise AmfError(
                f"truncated AMF data: need {size} bytes at offset {offset}, have {self.end - offset}"
            )

    def string(self, offset: int, size: int) -> str:
        self.need(offset, size)
        try:
            return self.data[offset : offset + size].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmfError(f"invalid UTF-8 in AMF string at offset {offset}") from exc

    def short_string(self, offset: int) -> tuple[str, int]:
        self.need(offset, 2)
        (size,) = _U16.unpack_from(self.data, offset)
        return self.string(offset + 2, size), offset + 2 + size

    def value(self, offset: int, depth: int) -> tuple[Any, int]:
        self.need(offset, 1)
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise AmfError(f"too many AMF values (limit {MAX_ELEMENTS})")
        marker = self.data[offset]
        offset += 1
        if marker == NUMBER:
            self.need(offset, 8)
            return _DOUBLE.unpack_from(self.data, offset)[0], offset + 8
        if marker == BOOLEAN:
            self.need(offset, 1)
            return self.data[offset] != 0, offset + 1
        if marker == STRING:
            return self.short_string(offset)
        if marker in (LONG_STRING, XML_DOCUMENT):
            self.need(offset, 4)
            (size,) = _U32.unpack_from(self.data, offset)
            return self.string(offset + 4, size), offset + 4 + size
        if marker in (NULL, UNDEFINED, UNSUPPORTED):
            return None, offset
        if marker == DATE:
            self.need(offset, 10)
            return _DATE.unpack_from(self.data, offset)[0], offset + 10
        if depth >= MAX_DEPTH:
            raise AmfError(f"AMF nesting deeper than {MAX_DEPTH}")
        if marker == OBJECT:
            return self.properties(offset, depth + 1, {})
        if marker == TYPED_OBJECT:
            _class_name, offset = self.short_string(offset)
            return self.properties(offset, depth + 1, {})
        if marker == ECMA_ARRAY:
            self.need(offset, 4)  # the count is advisory; encoders get it wrong, the end marker rules
            return self.properties(offset + 4, depth + 1, EcmaArray(), lenient_end=True)
        if marker == STRICT_ARRAY:
            self.need(offset, 4)
            (count,) = _U32.unpack_from(self.data, offset)
            offset += 4
            if count > self.end - offset:  # every value takes at least one byte
                raise AmfError(f"AMF strict array announces {count} values, more than the input holds")
            items = []
            for _ in range(count):
                item, offset = self.value(offset, depth + 1)
                items.append(item)
            return items, offset
        if marker == AMF3_SWITCH:
            return _decode_amf3(self, offset)
        if marker == OBJECT_END:
            raise AmfError(f"unexpected AMF object end marker at offset {offset - 1}")
        raise AmfError(f"unsupported AMF0 marker 0x{marker:02x} at offset {offset - 1}")

    def properties(
        self, offset: int, depth: int, out: dict[str, Any], lenient_end: bool = False
    ) -> tuple[dict[str, Any], int]:
        while True:
            if lenient_end and offset == self.end:
                return out, offset  # some encoders end the last ECMA array without a marker
            key, offset = self.short_string(offset)
            self.need(offset, 1)
            if not key and self.data[offset] == OBJECT_END:
                return out, offset + 1
            out[key], offset = self.value(offset, depth)


def _u29(dec: _Decoder, offset: int) -> tuple[int, int]:
    """AMF3's variable-length 29-bit integer: up to three 7-bit groups then one full byte."""
    result = 0
    for _ in range(3):
        dec.need(offset, 1)
        byte = dec.data[offset]
        offset += 1
        result = (result << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return result, offset
    dec.need(offset, 1)
    return (result << 8) | dec.data[offset], offset + 1


def _decode_amf3(dec: _Decoder, offset: int) -> tuple[Any, int]:
    """Decode the scalar AMF3 values some encoders switch to; complex ones are refused."""
    dec.need(offset, 1)
    marker = dec.data[offset]
    offset += 1
    if marker in (0x00, 0x01):
        return None, offset
    if marker in (0x02, 0x03):
        return marker == 0x03, offset
    if marker == 0x04:
        value, offset = _u29(dec, offset)
        return (value - (1 << 29) if value & (1 << 28) else value), offset
    if marker == 0x05:
        dec.need(offset, 8)
        return _DOUBLE.unpack_from(dec.data, offset)[0], offset + 8
    if marker == 0x06:
        header, offset = _u29(dec, offset)
        if not header & 1:
            raise AmfError("AMF3 string references are not supported")
        size = header >> 1
        return dec.string(offset, size), offset + size
    raise AmfError(f"unsupported AMF3 marker 0x{marker:02x}")


def decode_one(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode the value at ``offset``; returns it and the offset just after it."""
    dec = _Decoder(data)
    if not 0 <= offset <= dec.end:
        raise AmfError(f"offset {offset} outside the data")
    return dec.value(offset, 0)


def decode(data: bytes | bytearray | memoryview) -> list[Any]:
    """Decode every value in ``data`` (an RTMP command or data message body)."""
    dec = _Decoder(data)
    values: list[Any] = []
    offset = 0
    while offset < dec.end:
        value, offset = dec.value(offset, 0)
        values.append(value)
    return values


def _encode_key(key: str, out: list[bytes]) -> None:
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfError("AMF property name longer than 65535 bytes")
    out.append(_U16.pack(len(raw)))
    out.append(raw)


def _encode_properties(obj: dict[str, Any], out: list[bytes], depth: int) -> None:
    for key, value in obj.items():
        if not isinstance(key, str):
            raise AmfError(f"AMF property names must be str, not {type(key).__name__}")
        _encode_key(key, out)
        _encode_value(value, out, depth)
    out.append(b"\x00\x00\x09")


def _encode_value(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfError(f"AMF nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append(b"\x05")
    elif value is True:
        out.append(b"\x01\x01")
    elif value is False:
        out.append(b"\x01\x00")
    elif isinstance(value, int | float):
        out.append(b"\x00" + _DOUBLE.pack(float(value)))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out.append(b"\x02" + _U16.pack(len(raw)))
        else:
            out.append(b"\x0c" + _U32.pack(len(raw)))
        out.append(raw)
    elif isinstance(value, EcmaArray):
        out.append(b"\x08" + _U32.pack(len(value)))
        _encode_properties(value, out, depth + 1)
    elif isinstance(value, dict):
        out.append(b"\x03")
        _encode_properties(value, out, depth + 1)
    elif isinstance(value, list | tuple):
        out.append(b"\x0a" + _U32.pack(len(value)))
        for item in value:
            _encode_value(item, out, depth + 1)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode(*values: Any) -> bytes:
    """Encode values back to back, as a command or data message body."""
    out: list[bytes] = []
    for value in values:
        _encode_value(value, out, 0)
    return b"".join(out)
