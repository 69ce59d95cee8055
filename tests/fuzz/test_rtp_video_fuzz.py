"""RTP, RTCP and H.264/H.265 depacketizers survive random and mutated input with RtpError only."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.codecs import h264, h265
from streamhive.formats.rtp import Access, RtpError, SdpFormat
from streamhive.formats.rtp import h264 as rtp_h264
from streamhive.formats.rtp import h265 as rtp_h265
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.formats.rtp.reorder import Reorderer
from streamhive.formats.rtp.rtcp import (
    Bye,
    OtherRtcp,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    parse_compound,
    serialize_compound,
)
from streamhive.hub.frame import Track
from tests.fuzz.test_codecs_fuzz import mutated
from tests.media import encode_video

av = pytest.importorskip("av")

FUZZ = settings(max_examples=200, deadline=None)
CODECS = {"h264": rtp_h264.CODEC, "h265": rtp_h265.CODEC}


@functools.cache
def real_payloads(codec: str) -> list[tuple[bytes, int, bool]]:
    """(payload, timestamp, marker) of a real stream cut small: single NALs, STAP/AP, FUs."""
    encoder, module = ("libx264", h264) if codec == "h264" else ("libx265", h265)
    config, samples = encode_video(encoder, 64, 48, params="keyint=2")
    packetizer = CODECS[codec].packetizer(Track("video", codec, config), 60)
    out = []
    for i, sample in enumerate(samples):
        units = tuple(h264.split_avcc(sample))
        for payload, marker in packetizer.packetize(units, module.is_keyframe_nalus(units)):
            out.append((payload, i * 3600, marker))
    return out


@functools.cache
def real_packets() -> list[bytes]:
    plain = [
        RtpPacket(96, i, ts, 0x1234, marker, payload).serialize()
        for i, (payload, ts, marker) in enumerate(real_payloads("h264")[:4])
    ]
    rich = RtpPacket(97, 7, 9, 5, True, b"payload", (1, 2), (0xBEDE, b"\x10\xaa\x00\x00")).serialize()
    padded = bytes((rich[0] | 0x20,)) + rich[1:] + b"\x00\x00\x03"
    return [*plain, rich, padded]


COMPOUND = serialize_compound(
    [
        SenderReport(1, 2, 3, 4, 5, (ReportBlock(6, 7, -8, 9, 10, 11, 12),)),
        ReceiverReport(1, (ReportBlock(6, 7, 8, 9, 10, 11, 12),) * 2),
        SourceDescription.with_cname(1, "cname@host"),
        OtherRtcp(206, 1, bytes(8)),
        Bye((1, 2), "bye"),
    ]
)


def only_rtp_errors(func: Callable[..., object], *args: object) -> object:
    with contextlib.suppress(RtpError):
        return func(*args)
    return None


@FUZZ
@given(st.binary(max_size=80))
def test_random_bytes(data: bytes) -> None:
    only_rtp_errors(RtpPacket.parse, data)
    only_rtp_errors(parse_compound, data)
    only_rtp_errors(parse_compound, b"\x80" + data)


@FUZZ
@given(st.data())
def test_mutated_rtp_packets(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(real_packets()))
    packet = only_rtp_errors(RtpPacket.parse, data.draw(mutated(base)))
    if isinstance(packet, RtpPacket):
        assert RtpPacket.parse(packet.serialize()) == packet


@FUZZ
@given(st.data())
def test_mutated_rtcp(data: st.DataObject) -> None:
    packets = only_rtp_errors(parse_compound, data.draw(mutated(COMPOUND)))
    if packets is not None:
        with contextlib.suppress(RtpError):  # e.g. a cumulative count that no longer fits
            assert parse_compound(serialize_compound(packets)) == packets  # type: ignore[arg-type]


def check(accesses: list[Access]) -> None:
    for access in accesses:
        assert access.units and all(isinstance(u, bytes) and u for u in access.units)


def feed(codec: str, steps: list[tuple[bytes | None, int, bool]], fmtp: dict[str, str] | None = None) -> None:
    fmt = SdpFormat(codec.upper(), 90000, fmtp=fmtp or {})
    depacketizer = CODECS[codec].depacketizer(Track("video", codec), fmt)
    for payload, timestamp, marker in steps:
        if payload is None:
            depacketizer.lost()
            continue
        try:
            check(depacketizer.push(payload, timestamp, marker))
        except RtpError:
            depacketizer.lost()


STEP = st.tuples(st.binary(max_size=40) | st.none(), st.integers(0, 3), st.booleans())


@FUZZ
@given(st.sampled_from(sorted(CODECS)), st.lists(STEP, max_size=20), st.booleans())
def test_depacketizers_random(codec: str, steps: list[tuple[bytes | None, int, bool]], don: bool) -> None:
    feed(codec, steps, {"sprop-max-don-diff": "1"} if don and codec == "h265" else None)


@FUZZ
@given(st.data())
def test_depacketizers_mutated(data: st.DataObject) -> None:
    codec = data.draw(st.sampled_from(sorted(CODECS)))
    real = real_payloads(codec)
    start = data.draw(st.integers(0, len(real) - 1))
    steps: list[tuple[bytes | None, int, bool]] = []
    for payload, timestamp, marker in real[start : start + 12]:
        action = data.draw(st.sampled_from(("keep", "keep", "mutate", "drop", "flip-marker")))
        if action == "mutate":
            payload = data.draw(mutated(payload))
        elif action == "drop":
            steps.append((None, 0, False))
            continue
        elif action == "flip-marker":
            marker = not marker
        steps.append((payload, timestamp, marker))
    feed(codec, steps)


@FUZZ
@given(
    st.sampled_from(sorted(CODECS)),
    st.dictionaries(
        st.sampled_from(
            [
                "sprop-parameter-sets",
                "packetization-mode",
                "sprop-vps",
                "sprop-sps",
                "sprop-pps",
                "sprop-max-don-diff",
            ]
        ),
        st.text(max_size=30),
    ),
)
def test_track_from_sdp(codec: str, fmtp: dict[str, str]) -> None:
    only_rtp_errors(CODECS[codec].track_from_sdp, SdpFormat(codec.upper(), 90000, fmtp=fmtp))


@FUZZ
@given(st.data())
def test_track_from_sdp_mutated_sets(data: st.DataObject) -> None:
    codec = data.draw(st.sampled_from(sorted(CODECS)))
    encoder = "libx264" if codec == "h264" else "libx265"
    fmt = CODECS[codec].sdp_format(Track("video", codec, encode_video(encoder, 64, 48, params="keyint=2")[0]))
    key = data.draw(st.sampled_from(sorted(k for k in fmt.fmtp if k.startswith("sprop"))))
    fmtp = {**fmt.fmtp, key: data.draw(mutated(fmt.fmtp[key].encode())).decode("latin-1")}
    track = only_rtp_errors(CODECS[codec].track_from_sdp, SdpFormat(fmt.encoding, 90000, fmtp=fmtp))
    if isinstance(track, Track) and track.config:
        CODECS[codec].sdp_format(track)  # whatever it accepted, it can describe again


@FUZZ
@given(st.lists(st.integers(0, 0xFFFF) | st.integers(0, 40), max_size=200), st.integers(1, 16))
def test_reorderer_any_sequence(sequences: list[int], size: int) -> None:
    reorderer = Reorderer(size)
    out = [item for seq in sequences for item in reorderer.push(RtpPacket(96, seq, 0, 0))]
    out += reorderer.flush()
    emitted = sum(1 for p in out if p is not None)
    pending = reorderer._jump is not None  # a far-off packet still waiting for its successor
    # Every packet is emitted once or counted as dropped.
    assert emitted + reorderer.duplicates + reorderer.late + pending == len(sequences)
