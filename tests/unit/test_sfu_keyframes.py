"""Keyframe detection on single RTP payloads (sfu/keyframes.py), on real encoder output.

Real frames from x264/x265/libvpx/SVT-AV1 go through the project's own packetizers at two MTUs
(so fragments and aggregates both occur); a frame must be found to be a keyframe exactly when
the encoder said so, and only from the packets a switch may start at.
"""

from __future__ import annotations

import pytest

from streamhive.formats.rtp import RtpCodec
from streamhive.formats.rtp.h264 import CODEC as H264
from streamhive.formats.rtp.h265 import CODEC as H265
from streamhive.hub.frame import Track
from streamhive.sfu.keyframes import is_keyframe

pytest.importorskip("av")

from tests.unit.test_rtp_h264 import stream as h264_stream  # noqa: E402  (needs av)
from tests.unit.test_rtp_h265 import stream as h265_stream  # noqa: E402
from tests.unit.test_rtp_vp8_vp9_av1 import CODECS, encoded  # noqa: E402

Frame = tuple[tuple[bytes, ...], bool]


def payloads(codec: RtpCodec, track: Track, frames: list[Frame], mtu: int) -> list[tuple[list[bytes], bool]]:
    """Each frame's packet payloads and whether the encoder made it a keyframe."""
    packetizer = codec.packetizer(track, mtu)
    return [([p for p, _ in packetizer.packetize(units, key)], key) for units, key in frames]


def real(name: str, mtu: int) -> list[tuple[list[bytes], bool]]:
    if name in ("h264", "h265"):
        track, frames = (h264_stream if name == "h264" else h265_stream)(params="keyint=2")
        return payloads(H264 if name == "h264" else H265, track, frames, mtu)
    frames = [((frame,), key) for frame, key in encoded(name)]
    return payloads(CODECS[name], Track("video", name), frames, mtu)


@pytest.mark.parametrize("mtu", [120, 1200])
@pytest.mark.parametrize("name", ["h264", "h265", "vp8", "vp9", "av1"])
def test_real_streams(name: str, mtu: int) -> None:
    stream = real(name, mtu)
    assert {key for _, key in stream} == {True, False}
    for packets, key in stream:
        found = [i for i, payload in enumerate(packets) if is_keyframe(name, payload)]
        if not key:
            assert found == []
        elif name in ("vp8", "vp9", "av1"):
            assert found == [0]  # the frame's first packet, and only it
        else:
            # The parameter sets' packet and the IDR/IRAP slice's first: no fragment after it, and
            # not the SEI fragments x264 puts between them at the small MTU.
            assert len(found) == 2 and found[0] == 0


def nal264(kind: int, size: int = 5) -> bytes:
    return bytes((0x60 | kind,)) + bytes(size - 1)


def stap_a(*units: bytes) -> bytes:
    return b"\x78" + b"".join(len(u).to_bytes(2, "big") + u for u in units)


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (nal264(5), True),
        (nal264(7), True),
        (nal264(8), False),  # a PPS alone decides nothing
        (nal264(1), False),
        (stap_a(nal264(6), nal264(7), nal264(8)), True),
        (stap_a(nal264(6), nal264(8)), False),
        (stap_a(nal264(6))[:-1] + b"", False),  # truncated: nothing complete inside
        (stap_a(nal264(6), nal264(7))[:-1], False),  # the SPS is the truncated one
        (bytes((0x7C, 0x85)) + bytes(10), True),  # FU-A, start, IDR
        (bytes((0x7C, 0x05)) + bytes(10), False),  # FU-A, middle of an IDR
        (bytes((0x7C, 0x81)) + bytes(10), False),  # FU-A, start, non-IDR slice
        (b"\x7c", False),
    ],
)
def test_h264_payloads(payload: bytes, key: bool) -> None:
    assert is_keyframe("h264", payload) is key


def nal265(kind: int) -> bytes:
    return bytes((kind << 1, 1, 0xAA, 0xBB))


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (nal265(19), True),  # IDR_W_RADL
        (nal265(21), True),  # CRA
        (nal265(32), True),  # VPS
        (nal265(33), True),  # SPS
        (nal265(34), False),  # PPS
        (nal265(1), False),
        (
            bytes((48 << 1, 1)) + b"".join(len(u).to_bytes(2, "big") + u for u in (nal265(39), nal265(32))),
            True,
        ),
        (
            bytes((48 << 1, 1)) + b"".join(len(u).to_bytes(2, "big") + u for u in (nal265(39), nal265(34))),
            False,
        ),
        (bytes((49 << 1, 1, 0x80 | 20)) + bytes(8), True),  # FU start of an IDR_N_LP
        (bytes((49 << 1, 1, 20)) + bytes(8), False),
        (bytes((49 << 1, 1, 0x80 | 1)) + bytes(8), False),
        (bytes((19 << 1, 1)), False),  # too short to be a payload
    ],
)
def test_h265_payloads(payload: bytes, key: bool) -> None:
    assert is_keyframe("h265", payload) is key


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (bytes((0x88, 0x80, 0x12)) + bytes(4), True),  # B, I (7-bit id): P clear
        (bytes((0xC8, 0x80, 0x12)) + bytes(4), False),  # P set: an inter picture
        (bytes((0x80, 0x12)) + bytes(4), False),  # not the start of a frame
        (bytes((0xA8, 0x92, 0x34, 0x00, 0x00)) + bytes(4), True),  # L, SID 0
        (bytes((0xA8, 0x92, 0x34, 0x02, 0x00)) + bytes(4), False),  # L, SID 1: needs SID 0
        (bytes((0xA8, 0x92)), False),  # truncated descriptor
    ],
)
def test_vp9_payloads(payload: bytes, key: bool) -> None:
    assert is_keyframe("vp9", payload) is key


def test_vp8_and_av1_payloads() -> None:
    assert is_keyframe("vp8", bytes((0x10, 0x00)))  # S, partition 0, tag P bit clear
    assert not is_keyframe("vp8", bytes((0x10, 0x01)))  # inter frame
    assert not is_keyframe("vp8", bytes((0x11, 0x00)))  # partition 1
    assert not is_keyframe("vp8", bytes((0x90, 0x80)))  # descriptor without frame data
    assert is_keyframe("av1", bytes((0x18,)) + bytes(6))  # N, one element
    assert not is_keyframe("av1", bytes((0x10,)) + bytes(6))


@pytest.mark.parametrize("codec", ["h264", "h265", "vp8", "vp9", "av1", "opus", "aac", "pcmu", "?"])
def test_nothing_to_see(codec: str) -> None:
    assert not is_keyframe(codec, b"")
    assert not is_keyframe(codec, b"\x00")
    if codec not in CODECS and codec not in ("h264", "h265"):
        assert not is_keyframe(codec, nal264(5))
