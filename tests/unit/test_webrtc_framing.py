"""RFC 4571 framing for ICE-TCP, and RFC 7983 first-byte demultiplexing on the shared port."""

from __future__ import annotations

import pytest
from aioice import stun

from streamhive.formats.rtp.packet import RtpPacket
from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.demux import classify
from streamhive.protocols.webrtc.framing import StreamDeframer, frame

PACKETS = [b"\x00\x01" + bytes(18), b"\x16\xfe\xfd" + bytes(100), b"\x80" * 1200, b"x"]


def test_frame_prefixes_the_length() -> None:
    assert frame(b"abc") == b"\x00\x03abc"
    assert frame(b"") == b"\x00\x00"
    assert frame(bytes(65535))[:2] == b"\xff\xff"
    with pytest.raises(WebRtcError):
        frame(bytes(65536))


def test_deframer_rebuilds_packets_from_any_split() -> None:
    stream = b"".join(frame(p) for p in PACKETS)
    for size in (1, 2, 3, 7, 1000, len(stream)):
        deframer = StreamDeframer()
        out = []
        for pos in range(0, len(stream), size):
            out += deframer.feed(stream[pos : pos + size])
        assert out == PACKETS
        assert deframer.buffered == 0


def test_deframer_holds_a_partial_packet() -> None:
    deframer = StreamDeframer()
    assert deframer.feed(frame(b"hello") + b"\x00\x05he") == [b"hello"]
    assert deframer.buffered == 4
    assert deframer.feed(b"llo") == [b"hello"]


def test_zero_length_frames_are_skipped() -> None:
    assert StreamDeframer().feed(b"\x00\x00" + frame(b"a") + b"\x00\x00") == [b"a"]


def test_oversized_frame_is_refused_before_buffering_it() -> None:
    deframer = StreamDeframer(max_packet=1500)
    assert deframer.feed(frame(bytes(1500))) == [bytes(1500)]
    with pytest.raises(WebRtcError, match="1501"):
        deframer.feed(b"\x05\xdd")  # 1501: refused on the length alone
    assert deframer.buffered == 0
    with pytest.raises(ValueError):
        StreamDeframer(max_packet=0)
    assert StreamDeframer(max_packet=65535).feed(frame(bytes(65535))) == [bytes(65535)]


def test_classify_by_first_byte() -> None:
    request = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    assert classify(request) == "stun"
    assert classify(b"\x16\xfe\xfd" + bytes(10)) == "dtls"  # handshake
    assert classify(b"\x17\xfe\xfd") == "dtls"  # application data
    assert classify(RtpPacket(96, 1, 2, 3, True, b"x").serialize()) == "rtp"  # marker set: 0xE0
    assert classify(RtpPacket(111, 1, 2, 3, False, b"x").serialize()) == "rtp"
    assert classify(bytes.fromhex("81cb000100000001")) == "rtcp"  # a BYE
    for pt in (192, 200, 205, 206, 223):
        assert classify(bytes([0x80, pt])) == "rtcp"
    assert classify(bytes([0x80, 224])) == "rtp"
    for junk in (b"", b"\x10zrtp", b"\x40turn", b"\x04", b"\xc0\xc8", b"\x80", b"\xff\xff"):
        assert classify(junk) == "other"
