"""VP8/VP9/AV1 depacketizers, RTCP feedback and the NACK tracker survive random and mutated input.

Only RtpError escapes the RTP side and only CodecError the codec helpers; whatever a
depacketizer lets through is well formed for the hub (AV1 OBUs that split again, VP9 frames
or superframes whose index holds).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.codecs import CodecError, av1
from streamhive.formats.rtp import Access, RtpError, SdpFormat
from streamhive.formats.rtp import vp8 as rtp_vp8
from streamhive.formats.rtp import vp9 as rtp_vp9
from streamhive.formats.rtp.nack import NackTracker
from streamhive.formats.rtp.rtcp import (
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    TransportCc,
    parse_compound,
    serialize_compound,
)
from streamhive.hub.frame import Track
from tests.fuzz.test_codecs_fuzz import mutated

pytest.importorskip("av")

from tests.unit.test_rtp_vp8_vp9_av1 import CODECS, encoded, to_packets  # noqa: E402  (needs av)

FUZZ = settings(max_examples=200, deadline=None)
NAMES = sorted(CODECS)


@functools.cache
def real_payloads(codec: str) -> list[tuple[bytes, int, bool]]:
    """A real stream cut into small packets: fragments, aggregates, descriptors with SS."""
    return to_packets(codec, encoded(codec)[:3], 160)


@functools.cache
def sequence_header() -> bytes:
    return av1.split_obus(encoded("av1")[0][0])[1].with_size()


FEEDBACK = serialize_compound(
    [
        ReceiverReport(1),
        Nack(1, 2, (10, 11, 30, 65535)),
        Pli(1, 2),
        Fir(1, ((2, 7), (3, 8))),
        Remb(1, 1_500_000, (2, 3)),
        TransportCc(1, 2, bytes.fromhex("000100052000050040")),
    ]
)


def only(error: type[Exception], func: Callable[..., object], *args: object) -> object:
    with contextlib.suppress(error):
        return func(*args)
    return None


def check(codec: str, accesses: list[Access]) -> None:
    for access in accesses:
        (unit,) = access.units
        assert isinstance(unit, bytes) and unit
        if codec == "av1":
            assert av1.split_obus(unit)
        elif codec == "vp9":
            rtp_vp9.split_superframe(unit)
        if access.track is not None:
            assert access.track.codec == codec and access.track.width and access.track.height


def feed(codec: str, steps: list[tuple[bytes | None, int, bool]]) -> None:
    depacketizer = CODECS[codec].depacketizer(Track("video", codec), SdpFormat(codec.upper(), 90000))
    for payload, timestamp, marker in steps:
        if payload is None:
            depacketizer.lost()
            continue
        try:
            check(codec, depacketizer.push(payload, timestamp, marker))
        except RtpError:
            depacketizer.lost()


STEP = st.tuples(st.binary(max_size=40) | st.none(), st.integers(0, 3), st.booleans())


@FUZZ
@given(st.sampled_from(NAMES), st.lists(STEP, max_size=20))
def test_depacketizers_random(codec: str, steps: list[tuple[bytes | None, int, bool]]) -> None:
    feed(codec, steps)


@FUZZ
@given(st.data())
def test_depacketizers_mutated(data: st.DataObject) -> None:
    codec = data.draw(st.sampled_from(NAMES))
    real = real_payloads(codec)
    start = data.draw(st.sampled_from([0, len(real) // 3, len(real) - 12]))
    steps: list[tuple[bytes | None, int, bool]] = []
    for payload, timestamp, marker in real[start : start + 12]:
        action = data.draw(st.sampled_from(("keep", "keep", "mutate", "mutate-head", "drop", "flip-marker")))
        if action == "mutate":
            payload = data.draw(mutated(payload))
        elif action == "mutate-head":  # the descriptor / aggregation header and what follows it
            payload = data.draw(mutated(payload[:24])) + payload[24:]
        elif action == "drop":
            steps.append((None, 0, False))
            continue
        elif action == "flip-marker":
            marker = not marker
        steps.append((payload, timestamp, marker))
    feed(codec, steps)


@FUZZ
@given(
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(["profile-id", "profile", "level-idx", "tier"]), st.text(max_size=8)),
)
def test_track_from_sdp(codec: str, fmtp: dict[str, str]) -> None:
    track = only(RtpError, CODECS[codec].track_from_sdp, SdpFormat(codec.upper(), 90000, fmtp=fmtp))
    if isinstance(track, Track):
        CODECS[codec].sdp_format(track)


@FUZZ
@given(st.binary(max_size=40))
def test_bitstream_parsers_random(data: bytes) -> None:
    only(RtpError, rtp_vp8.keyframe_size, data)
    only(RtpError, rtp_vp8.parse_descriptor, data)
    only(RtpError, rtp_vp9.parse_descriptor, data)
    only(CodecError, rtp_vp9.parse_keyframe, data)
    only(CodecError, rtp_vp9.split_superframe, data)
    only(CodecError, av1.split_obus, data)
    only(CodecError, av1.parse_obu, data)
    only(CodecError, av1.parse_sequence_header, data)
    only(CodecError, av1.make_av1c_record, data)
    only(CodecError, av1.av1c_sequence_header, b"\x81\x00\x0c\x00" + data)
    only(CodecError, av1.frame_type, data)


@FUZZ
@given(st.data())
def test_bitstream_parsers_mutated(data: st.DataObject) -> None:
    header = data.draw(mutated(sequence_header()))
    record = only(CodecError, av1.make_av1c_record, header)
    if isinstance(record, bytes):
        assert av1.av1c_sequence_header(record) is not None
    only(CodecError, av1.split_obus, data.draw(mutated(encoded("av1")[0][0][:64])))
    frames = [frame for frame, _ in encoded("vp9")[:2]]
    only(CodecError, rtp_vp9.parse_keyframe, data.draw(mutated(frames[0][:16])))
    only(
        CodecError, rtp_vp9.split_superframe, data.draw(mutated(rtp_vp9.join_superframe([b"ab", b"c" * 300])))
    )


@FUZZ
@given(st.sampled_from([205, 206]), st.integers(0, 31), st.integers(0, 12), st.binary(max_size=60))
def test_feedback_random(packet_type: int, fmt: int, words: int, body: bytes) -> None:
    """Any feedback type and FMT, with a length field that may lie about the body."""
    header = bytes((0x80 | fmt, packet_type)) + words.to_bytes(2, "big")
    for data in (header + body, bytes((header[0] | 0x20,)) + header[1:] + body):
        packets = only(RtpError, parse_compound, data)
        if packets is not None:
            with contextlib.suppress(RtpError):  # e.g. an empty NACK cannot be sent again
                assert parse_compound(serialize_compound(packets)) == packets  # type: ignore[arg-type]


@FUZZ
@given(st.data())
def test_feedback_mutated(data: st.DataObject) -> None:
    packets = only(RtpError, parse_compound, data.draw(mutated(FEEDBACK)))
    if packets is not None:
        with contextlib.suppress(RtpError):
            assert parse_compound(serialize_compound(packets)) == packets  # type: ignore[arg-type]


@FUZZ
@given(
    st.lists(st.sampled_from([1, 2, 5, 600, 3001, 0x8000, 0xFFFF]), max_size=30),
    st.lists(st.integers(0, 0xFFFF) | st.integers(0, 40), max_size=200),
)
def test_nack_tracker_any_sequence(steps: list[int], sequences: list[int]) -> None:
    tracker = NackTracker(max_age=100)
    now = 0.0
    seq = 0
    for i, value in enumerate(sequences + steps):
        seq = (seq + value) & 0xFFFF if i >= len(sequences) else value
        tracker.packet(seq, now)
        now += 0.003
        lost = tracker.due(now)
        assert all(0 <= s <= 0xFFFF for s in lost) and len(set(lost)) == len(lost)
        assert tracker.missing <= 100
    assert tracker.due(now + 2.0) == [] and tracker.missing == 0  # all given up by time
