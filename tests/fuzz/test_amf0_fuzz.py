"""Fuzz AMF0 decoding: random, mutated, deeply nested and huge-length inputs may only raise AmfError."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.formats import amf0
from streamhive.formats.amf0 import AmfError, EcmaArray

FUZZ = settings(max_examples=200, deadline=None)

scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4).map(EcmaArray)
    ),
    max_leaves=20,
)


def _decode_safely(data: bytes) -> None:
    with contextlib.suppress(AmfError):
        amf0.decode(data)


@FUZZ
@given(value=values)
def test_round_trip(value: Any) -> None:
    assert amf0.decode(amf0.encode(value)) == [value]


@FUZZ
@given(data=st.binary(max_size=500))
def test_random_bytes(data: bytes) -> None:
    _decode_safely(data)


@FUZZ
@given(value=values, pos=st.integers(0, 10_000), byte=st.integers(0, 255), cut=st.integers(0, 10_000))
def test_mutated_valid_encodings(value: Any, pos: int, byte: int, cut: int) -> None:
    data = bytearray(amf0.encode("onMetaData", value))
    data[pos % len(data)] = byte
    _decode_safely(bytes(data))
    _decode_safely(bytes(data[: cut % (len(data) + 1)]))


@FUZZ
@given(
    markers=st.lists(
        st.sampled_from([b"\x03\x00\x01k", b"\x0a\x00\x00\x00\x01", b"\x08\x00\x00\x00\x01\x00\x01k"]),
        min_size=1,
    ),
    depth=st.integers(1, 5000),
)
def test_deep_nesting(markers: list[bytes], depth: int) -> None:
    data = b"".join(markers[i % len(markers)] for i in range(depth)) + b"\x05"
    _decode_safely(data)


@FUZZ
@given(
    marker=st.sampled_from([b"\x02", b"\x0c", b"\x0f", b"\x0a", b"\x08", b"\x11\x06"]),
    size=st.integers(0, 2**32 - 1),
    tail=st.binary(max_size=50),
)
def test_huge_lengths(marker: bytes, size: int, tail: bytes) -> None:
    length = struct.pack(">H", size & 0xFFFF) if marker == b"\x02" else struct.pack(">I", size)
    if marker == b"\x11\x06":
        length = bytes(
            (0x80 | (size >> 21) & 0x7F, 0x80 | (size >> 14) & 0x7F, 0x80 | (size >> 7) & 0x7F, size & 0xFF)
        )
    _decode_safely(marker + length + tail)
