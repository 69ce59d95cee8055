"""RTP packet parsing and serializing (RFC 3550 5.1), and RTP/RTCP demultiplexing (RFC 5761)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.packet import RtpPacket, is_rtcp, rtp_header

# Hand-assembled: V=2, M=1, PT=96, seq 0x1234, ts 0xdeadbeef, SSRC 0x01020304, payload "hi".
PLAIN = bytes.fromhex("80e01234deadbeef01020304") + b"hi"


def test_parse_plain_fixture() -> None:
    packet = RtpPacket.parse(PLAIN)
    assert packet == RtpPacket(96, 0x1234, 0xDEADBEEF, 0x01020304, True, b"hi")
    assert packet.serialize() == PLAIN


def test_parse_csrc_extension_padding() -> None:
    data = (
        bytes.fromhex("b20800010000000200000003")  # P, X, CC=2, PT 8
        + bytes.fromhex("0000000a0000000b")  # CSRCs
        + bytes.fromhex("bede000110aa0000")  # one-byte header extension, one word
        + b"payload"
        + b"\x00\x00\x03"  # three bytes of padding
    )
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 8 and not packet.marker
    assert packet.csrc == (10, 11)
    assert packet.extension == (0xBEDE, bytes.fromhex("10aa0000"))
    assert packet.payload == b"payload"
    # serialize() omits padding; everything else survives.
    assert RtpPacket.parse(packet.serialize()) == packet
    assert packet.serialize() == data[:-3].replace(b"\xb2", b"\x92", 1)


@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.booleans(),
    st.binary(max_size=40),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))),
)
def test_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    payload: bytes,
    csrc: tuple[int, ...],
    extension: tuple[int, bytes] | None,
) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, marker, payload, csrc, extension)
    assert RtpPacket.parse(packet.serialize()) == packet


def test_rtp_header_matches_serialize_and_wraps() -> None:
    assert rtp_header(96, 0x1234, 0xDEADBEEF, 0x01020304, True) == PLAIN[:12]
    header = rtp_header(0, 0x10001, 0x100000005, 7, False)
    assert RtpPacket.parse(header) == RtpPacket(0, 1, 5, 7, False, b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x60\x00", "shorter than its 12-byte header"),
        (b"\x40" + PLAIN[1:], "version 1"),
        (b"\x83" + PLAIN[1:12] + b"\x00" * 8, "3 CSRCs overruns"),
        (b"\x90" + PLAIN[1:12] + b"\xbe\xde", "extension overruns"),
        (b"\x90" + PLAIN[1:12] + b"\xbe\xde\x00\x02" + b"\x00" * 4, "2 words overruns"),
        (b"\xa0" + PLAIN[1:12] + b"ab\x00", "padding count of zero"),
        (b"\xa0" + PLAIN[1:12] + b"ab\x04", "padding of 4 bytes overruns"),
        (b"\xb0" + PLAIN[1:12] + b"\xbe\xde\x00\x01abcd\x02", "overruns"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        RtpPacket.parse(data)


def test_padding_may_consume_the_whole_payload() -> None:
    assert RtpPacket.parse(b"\xa0" + PLAIN[1:12] + b"\x00\x00\x03").payload == b""


def test_serialize_errors() -> None:
    with pytest.raises(RtpError, match="15 CSRCs"):
        RtpPacket(96, 0, 0, 0, csrc=tuple(range(16))).serialize()
    with pytest.raises(RtpError, match="multiple of 4"):
        RtpPacket(96, 0, 0, 0, extension=(0xBEDE, b"abc")).serialize()


def test_is_rtcp() -> None:
    for packet_type in (200, 201, 202, 203, 204, 205, 206, 207):
        assert is_rtcp(bytes((0x81, packet_type, 0, 1, 0, 0, 0, 0)))
    assert not is_rtcp(PLAIN)  # PT 96 with the marker: 0xe0
    assert not is_rtcp(rtp_header(96, 0, 0, 0, False))
    assert not is_rtcp(rtp_header(0, 0, 0, 0, True))  # 0x80: below the RTCP range
    assert not is_rtcp(rtp_header(127, 0, 0, 0, True))
    assert not is_rtcp(b"\x80")
