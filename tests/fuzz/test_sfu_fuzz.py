"""The SFU's byte readers survive random and mutated input.

Header extension parsing and stripping, and the rewriter built on them, raise only RtpError;
keyframe detection raises nothing at all (it runs on every packet a subscriber waits on).
"""

from __future__ import annotations

import contextlib
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.sfu.keyframes import is_keyframe
from streamhive.sfu.rewrite import Rewriter
from streamhive.sfu.rtp_ext import audio_level, extensions, strip_extensions
from tests.fuzz.test_codecs_fuzz import mutated

pytest.importorskip("av")

from tests.unit.test_sfu_keyframes import real  # noqa: E402  (needs av)

FUZZ = settings(max_examples=300, deadline=None)
VIDEO = ["h264", "h265", "vp8", "vp9", "av1"]
ONE_BYTE = bytes((0x10, ord("0"), 0x00, 0xA1)) + b"hi" + bytes((0x30, 0xAA, 0, 0, 0, 0))
TWO_BYTE = bytes((1, 0, 0, 200, 3)) + b"abc" + bytes((7, 2, 9, 9, 0, 0, 0, 0))
SAMPLES = [
    RtpPacket(111, 65535, 1, 2, True, b"payload", (3, 4), (0xBEDE, ONE_BYTE)).serialize(),
    RtpPacket(96, 7, 1, 2, False, b"x" * 20, (), (0x1000, TWO_BYTE)).serialize() + b"\x00\x02",
]


def check(data: bytes) -> None:
    """Only RtpError; and whatever parses strips to a packet with no extension left."""
    found = None
    with contextlib.suppress(RtpError):
        found = extensions(data)
    stripped = None
    with contextlib.suppress(RtpError):
        stripped = strip_extensions(data)
    if found is not None:
        assert stripped is not None
        assert extensions(stripped) == {}
        assert all(isinstance(value, bytes) for value in found.values())
        for value in found.values():
            with contextlib.suppress(RtpError):
                level, voice = audio_level(value)
                assert 0 <= level <= 127 and isinstance(voice, bool)
    rewriter = Rewriter(0xABC, 100, 90000)
    for source in (1, 2, 1):
        with contextlib.suppress(RtpError):
            out = rewriter.rewrite(data, source, 0.0)
            assert out is None or extensions(out) == {}


@FUZZ
@given(st.binary(max_size=64))
def test_extensions_random(data: bytes) -> None:
    check(bytes((0x90 | (data[0] & 0x0F),)) + data[1:] if data else data)  # mostly X set, v2
    check(data)


@FUZZ
@given(st.data())
def test_extensions_mutated(data: st.DataObject) -> None:
    check(data.draw(mutated(data.draw(st.sampled_from(SAMPLES)))))


@functools.cache
def real_payloads(codec: str) -> list[bytes]:
    return [payload for packets, _ in real(codec, 120)[:3] for payload in packets]


@FUZZ
@given(st.sampled_from([*VIDEO, "opus"]), st.binary(max_size=48))
def test_keyframes_random(codec: str, payload: bytes) -> None:
    assert isinstance(is_keyframe(codec, payload), bool)


@FUZZ
@given(st.data())
def test_keyframes_mutated(data: st.DataObject) -> None:
    codec = data.draw(st.sampled_from(VIDEO))
    payload = data.draw(st.sampled_from(real_payloads(codec)))
    for name in VIDEO:  # also each codec's reader on the others' payloads
        assert isinstance(is_keyframe(name, data.draw(mutated(payload[:32]))), bool)
