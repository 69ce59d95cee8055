"""RFC 8285 header extensions read from and stripped off RTP packet bytes (sfu/rtp_ext.py)."""

from __future__ import annotations

import pytest

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.sfu.rtp_ext import audio_level, extension_span, extensions, strip_extensions

CSRC = (0x11111111, 0x22222222)


def words(data: bytes) -> bytes:
    """Zero padding up to a 32-bit boundary, as senders end an extension block."""
    return data + bytes(-len(data) % 4)


# One-byte form: mid "0" (id 1), padding, rid "hi" (id 10), audio level (id 3).
ONE_BYTE = words(bytes((0x10, ord("0"), 0x00, 0xA1)) + b"hi" + bytes((0x30, 0x80 | 42)))
# Two-byte form: id 1 empty, padding, id 200 with 3 bytes, id 7 with 17 bytes.
TWO_BYTE = words(bytes((1, 0, 0, 200, 3)) + b"abc" + bytes((7, 17)) + bytes(range(17)))


def packet(extension: tuple[int, bytes] | None, padding: int = 0, csrc: tuple[int, ...] = CSRC) -> bytes:
    data = RtpPacket(111, 65535, 0xFFFFFFF0, 0xABCDEF01, True, b"payload!", csrc, extension).serialize()
    if padding:
        data = bytes((data[0] | 0x20,)) + data[1:] + bytes(padding - 1) + bytes((padding,))
    return data


def test_one_byte_form() -> None:
    assert extensions(packet((0xBEDE, ONE_BYTE))) == {1: b"0", 10: b"hi", 3: bytes((0x80 | 42,))}


def test_two_byte_form_with_appbits_and_empty_element() -> None:
    assert extensions(packet((0x1005, TWO_BYTE))) == {1: b"", 200: b"abc", 7: bytes(range(17))}


def test_no_extension() -> None:
    data = packet(None, padding=4)
    assert extensions(data) == {}
    assert strip_extensions(data) is data
    assert extension_span(data) == (20, 20)  # after the two CSRCs


def test_other_profiles_and_empty_blocks() -> None:
    assert extensions(packet((0xABAC, b"\x10\x01\x02\x03"))) == {}
    assert extensions(packet((0xBEDE, b""))) == {}
    assert extensions(packet((0xBEDE, bytes(8)))) == {}  # all padding


def test_one_byte_id_15_ends_the_block() -> None:
    data = bytes((0x20, 7, 0xF5, 0x10)) + bytes((0x30, 9, 0, 0))
    assert extensions(packet((0xBEDE, data))) == {2: b"\x07"}


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ((0xBEDE, bytes((0x13, 1, 2, 3))), "element 1 overruns"),  # 4 bytes announced, 3 there
        ((0x1000, bytes((5, 9, 1, 2))), "element 5 overruns"),
        ((0x1000, bytes((0, 0, 0, 5))), "element 5 truncated"),
    ],
)
def test_elements_overrunning_their_block(extension: tuple[int, bytes], message: str) -> None:
    with pytest.raises(RtpError, match=message):
        extensions(packet(extension))


def test_truncated_packets() -> None:
    data = packet((0xBEDE, ONE_BYTE), csrc=())
    for size in range(len(data) - len(b"payload!")):  # any cut inside header or extension block
        with pytest.raises(RtpError):
            extensions(data[:size])
        with pytest.raises(RtpError):
            strip_extensions(data[:size])
    with pytest.raises(RtpError, match="CSRCs overruns"):
        extensions(packet(None)[:16])
    with pytest.raises(RtpError, match="version"):
        extensions(b"\x40" + packet(None)[1:])


@pytest.mark.parametrize("padding", [0, 1, 7])
@pytest.mark.parametrize("extension", [(0xBEDE, ONE_BYTE), (0x1000, TWO_BYTE)])
def test_strip_keeps_everything_else(extension: tuple[int, bytes], padding: int) -> None:
    data = packet(extension, padding)
    stripped = strip_extensions(data)
    assert stripped == packet(None, padding)
    assert isinstance(stripped, bytes)
    assert stripped[0] & 0x10 == 0
    assert stripped.endswith(data[-(len(b"payload!") + padding) :])  # payload and padding intact
    parsed = RtpPacket.parse(stripped)
    assert (parsed.csrc, parsed.payload, parsed.extension, parsed.marker) == (CSRC, b"payload!", None, True)


def test_audio_level() -> None:
    assert audio_level(bytes((0x80 | 42,))) == (42, True)
    assert audio_level(b"\x7f") == (127, False)
    assert audio_level(b"\x00\xff") == (0, False)  # two-byte form may pad the element
    with pytest.raises(RtpError):
        audio_level(b"")
