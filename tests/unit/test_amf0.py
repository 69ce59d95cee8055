"""AMF0: round trips, wire fixtures, AMF3 switch values, and hardening against malformed input."""

from __future__ import annotations

import struct

import pytest

from streamhive.formats import amf0
from streamhive.formats.amf0 import AmfError, EcmaArray


def test_round_trip_all_encodable_types() -> None:
    values = [
        1.5,
        3,
        True,
        False,
        "hé",
        None,
        {"a": 1.0, "b": {"c": "d"}},
        EcmaArray(x=2.0),
        [1.0, "two", None],
    ]
    decoded = amf0.decode(amf0.encode(*values))
    assert decoded == [
        1.5,
        3.0,
        True,
        False,
        "hé",
        None,
        {"a": 1.0, "b": {"c": "d"}},
        {"x": 2.0},
        [1.0, "two", None],
    ]
    assert isinstance(decoded[7], EcmaArray)
    assert isinstance(decoded[1], float)


def test_known_wire_bytes() -> None:
    assert amf0.encode("connect", 1) == b"\x02\x00\x07connect\x00" + struct.pack(">d", 1.0)
    assert amf0.encode({"a": True}) == b"\x03\x00\x01a\x01\x01\x00\x00\x09"
    assert amf0.encode(EcmaArray(a=None)) == b"\x08\x00\x00\x00\x01\x00\x01a\x05\x00\x00\x09"


def test_long_string_encoding_and_decoding() -> None:
    text = "x" * 70000
    data = amf0.encode(text)
    assert data[0] == 0x0C
    assert amf0.decode(data) == [text]


def test_decode_one_returns_offset() -> None:
    data = amf0.encode("a", 2.0)
    value, offset = amf0.decode_one(data, 0)
    assert value == "a"
    assert amf0.decode_one(data, offset) == (2.0, len(data))


def test_undefined_date_typed_object_xml_and_unsupported() -> None:
    data = (
        b"\x06"
        + b"\x0b" + struct.pack(">dh", 1234.0, 0)
        + b"\x10\x00\x03Foo\x00\x01k\x02\x00\x01v\x00\x00\x09"
        + b"\x0f\x00\x00\x00\x03<a>"
        + b"\x0d"
    )  # fmt: skip
    assert amf0.decode(data) == [None, 1234.0, {"k": "v"}, "<a>", None]


def test_ecma_array_count_is_advisory_and_end_marker_may_be_missing() -> None:
    wrong_count = b"\x08\x00\x00\x00\x09\x00\x01a\x00" + struct.pack(">d", 1.0) + b"\x00\x00\x09"
    assert amf0.decode(wrong_count) == [{"a": 1.0}]
    assert amf0.decode(wrong_count[:-3]) == [{"a": 1.0}]


@pytest.mark.parametrize(
    ("amf3", "expected"),
    [
        (b"\x00", None),
        (b"\x01", None),
        (b"\x02", False),
        (b"\x03", True),
        (b"\x04\x05", 5),
        (b"\x04\x81\x00", 128),
        (b"\x04\xff\xff\xff\xff", -1),
        (b"\x05" + struct.pack(">d", 2.5), 2.5),
        (b"\x06\x07abc", "abc"),
    ],
)
def test_amf3_switch_scalars(amf3: bytes, expected: object) -> None:
    assert amf0.decode(b"\x11" + amf3) == [expected]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00",  # truncated number
        b"\x02\x00\x05ab",  # string longer than input
        b"\x0c\xff\xff\xff\xffab",  # huge long string
        b"\x03\x00\x01a",  # object without value
        b"\x03\x00\x01a\x05",  # object without end
        b"\x0a\xff\xff\xff\xff\x05",  # strict array count beyond input
        b"\x09",  # stray object end
        b"\x07\x00\x01",  # reference
        b"\x04",  # movieclip
        b"\x02\x00\x02\xff\xfe",  # invalid utf-8
        b"\x11\x06\x00",  # AMF3 string reference
        b"\x11\x0a",  # AMF3 object
        b"\x11\x04\xff",  # truncated AMF3 integer
        b"\xff",
    ],
)
def test_malformed_raises_amf_error(data: bytes) -> None:
    with pytest.raises(AmfError):
        amf0.decode(data)


def test_deep_nesting_is_refused() -> None:
    deep = b"\x0a\x00\x00\x00\x01" * 10000 + b"\x05"
    with pytest.raises(AmfError, match="nesting"):
        amf0.decode(deep)
    ok = b"\x0a\x00\x00\x00\x01" * amf0.MAX_DEPTH + b"\x05"
    assert amf0.decode(ok)


def test_too_many_elements_is_refused() -> None:
    data = b"\x0a" + struct.pack(">I", 100000) + b"\x05" * 100000
    with pytest.raises(AmfError, match="too many"):
        amf0.decode(data)


def test_decode_one_offset_out_of_range() -> None:
    with pytest.raises(AmfError):
        amf0.decode_one(b"\x05", 5)


def test_encode_rejects_unknown_types_and_bad_keys() -> None:
    with pytest.raises(AmfError):
        amf0.encode(object())
    with pytest.raises(AmfError):
        amf0.encode({1: 2})
    nested: list[object] = []
    for _ in range(amf0.MAX_DEPTH + 2):
        nested = [nested]
    with pytest.raises(AmfError):
        amf0.encode(nested)
