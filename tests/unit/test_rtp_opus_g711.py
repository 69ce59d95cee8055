"""Opus (RFC 7587) and G.711 (RFC 3551) over RTP, with real libopus / G.711 and FFmpeg's RTP muxer."""

from __future__ import annotations

import struct
from fractions import Fraction

import pytest

from streamhive.formats.rtp import Access, RtpError, SdpFormat, codec_for_encoding, codec_for_track
from streamhive.formats.rtp.g711 import PCMA, PCMU
from streamhive.formats.rtp.opus import OPUS, opus_head
from streamhive.hub.frame import Track
from tests.conftest import needs_ffmpeg
from tests.unit.test_rtp_aac import depacketize_rtp, encode_audio, ffmpeg_rtp, sine_frame

av = pytest.importorskip("av")


def decode(codec: str, packets: list[bytes], extradata: bytes = b"", rate: int = 0, layout: str = "") -> list:
    ctx = av.CodecContext.create(codec, "r")
    if extradata:
        ctx.extradata = extradata
    if rate:
        ctx.sample_rate, ctx.layout = rate, layout
    return [f for data in packets for f in ctx.decode(av.Packet(data))]


# --- Opus -----------------------------------------------------------------------------------


def test_opus_registry_and_sdp() -> None:
    stereo = Track("audio", "opus", opus_head(2), sample_rate=48000, channels=2)
    assert codec_for_track(stereo) is OPUS and codec_for_encoding("opus") is OPUS
    fmt = OPUS.sdp_format(stereo)
    assert (fmt.encoding, fmt.clock_rate, fmt.channels) == ("opus", 48000, 2)
    assert fmt.fmtp == {"sprop-stereo": "1", "stereo": "1"}
    mono = OPUS.sdp_format(Track("audio", "opus", opus_head(1)))
    assert (mono.channels, mono.fmtp["sprop-stereo"]) == (2, "0")  # rtpmap always says /2
    for track in (stereo, Track("audio", "opus", opus_head(1))):
        back = OPUS.track_from_sdp(OPUS.sdp_format(track))
        assert back.config == track.config and back.sample_rate == 48000


@pytest.mark.parametrize(
    ("channels", "fmtp", "expected"),
    [
        (2, {"sprop-stereo": "1"}, 2),
        (2, {"sprop-stereo": "0", "stereo": "1"}, 1),  # the sender's word wins
        (2, {"stereo": "0"}, 1),
        (2, {"minptime": "10", "useinbandfec": "1"}, 2),  # no word: stereo decoding is safe
        (None, {}, 2),
        (1, {}, 1),
    ],
)
def test_opus_channels_from_sdp(channels: int | None, fmtp: dict[str, str], expected: int) -> None:
    track = OPUS.track_from_sdp(SdpFormat("OPUS", 48000, channels, fmtp))
    assert track.channels == expected
    assert track.config == b"OpusHead" + struct.pack("<BBHIhB", 1, expected, 312, 48000, 0, 0)


def test_opus_round_trip_real_packets_and_decode() -> None:
    head, packets = encode_audio("libopus", 48000, "stereo")
    track = OPUS.track_from_sdp(SdpFormat("opus", 48000, 2, {"sprop-stereo": "1"}))
    packetizer = OPUS.packetizer(track)
    depacketizer = OPUS.depacketizer(track, SdpFormat("opus", 48000, 2))
    out: list[Access] = []
    for i, packet in enumerate(packets):
        assert packetizer.packetize((packet,), True) == [(packet, False)]
        out += depacketizer.push(packet, i * 960, False)
    depacketizer.lost()  # nothing to drop: every packet stands alone
    assert [a.units for a in out] == [(p,) for p in packets]
    assert [a.timestamp for a in out] == [i * 960 for i in range(len(packets))]
    frames = decode("libopus", [a.units[0] for a in out], extradata=track.config)
    assert sum(f.samples for f in frames) == 960 * len(packets) - 312  # the OpusHead's pre-skip
    assert all(f.sample_rate == 48000 and len(f.layout.channels) == 2 for f in frames)


def test_opus_errors() -> None:
    track = Track("audio", "opus", opus_head(2))
    with pytest.raises(RtpError, match="MTU"):
        OPUS.packetizer(track, 100).packetize((bytes(200),), True)
    with pytest.raises(RtpError, match="empty"):
        OPUS.depacketizer(track, SdpFormat("opus", 48000, 2)).push(b"", 0, False)
    with pytest.raises(RtpError, match="48000"):
        OPUS.track_from_sdp(SdpFormat("opus", 16000, 2))
    surround = b"OpusHead" + struct.pack("<BBHIhB", 1, 6, 312, 48000, 0, 1) + bytes(8)
    with pytest.raises(RtpError, match="mapping family"):
        OPUS.sdp_format(Track("audio", "opus", surround))


@needs_ffmpeg
def test_ffmpeg_rtp_opus() -> None:
    fmt, packets = ffmpeg_rtp("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "libopus")
    track, out = depacketize_rtp(fmt, packets)
    assert len(out) == len(packets) > 40
    frames = decode("libopus", [a.units[0] for a in out], extradata=track.config)
    assert sum(f.samples for f in frames) == 960 * len(out) - 312


# --- G.711 ----------------------------------------------------------------------------------


def test_g711_registry_and_sdp() -> None:
    for codec, name, pt in ((PCMA, "PCMA", 8), (PCMU, "PCMU", 0)):
        track = Track("audio", codec.name, sample_rate=8000, channels=1)
        assert codec_for_track(track) is codec and codec_for_encoding(name.lower()) is codec
        assert codec.static_payload_type == pt
        assert codec.sdp_format(track) == SdpFormat(name, 8000)
        assert codec.sdp_format(Track("audio", codec.name, sample_rate=16000, channels=2)) == SdpFormat(
            name, 16000, 2
        )
        back = codec.track_from_sdp(SdpFormat(name, 8000))
        assert (back.kind, back.codec, back.config, back.sample_rate, back.channels) == (
            "audio",
            codec.name,
            b"",
            8000,
            1,
        )
    assert PCMA.track_from_sdp(SdpFormat("PCMA", 16000, 2)).channels == 2
    with pytest.raises(RtpError):
        PCMU.track_from_sdp(SdpFormat("PCMU", 8000, -1))


def test_g711_frame_is_one_packet() -> None:
    """Splitting would give later packets the wrong timestamp: one frame, one packet."""
    track = Track("audio", "pcma", sample_rate=8000, channels=1)
    samples = bytes(range(160))
    assert PCMA.packetizer(track, 400).packetize((samples[:80], samples[80:]), True) == [(samples, False)]


@pytest.mark.parametrize(("codec", "encoder"), [(PCMA, "pcm_alaw"), (PCMU, "pcm_mulaw")])
def test_g711_round_trip_real_samples(codec: object, encoder: str) -> None:
    ctx = av.CodecContext.create(encoder, "w")
    ctx.sample_rate, ctx.layout, ctx.format = 8000, "mono", "s16"
    ctx.time_base = Fraction(1, 8000)
    ctx.open()
    blocks = [bytes(p) for i in range(10) for p in ctx.encode(sine_frame("s16", "mono", 8000, 160, i * 160))]
    track = codec.track_from_sdp(SdpFormat(codec.encodings[0], 8000))  # type: ignore[attr-defined]
    depacketizer = codec.depacketizer(track, SdpFormat(codec.encodings[0], 8000))  # type: ignore[attr-defined]
    out: list[Access] = []
    for i, block in enumerate(blocks):
        for payload, marker in codec.packetizer(track).packetize((block,), True):  # type: ignore[attr-defined]
            out += depacketizer.push(payload, i * 160, marker)
    assert [a.units[0] for a in out] == blocks and len(blocks) == 10
    decoded = decode(encoder, [a.units[0] for a in out], rate=8000, layout="mono")
    assert sum(f.samples for f in decoded) == 1600


def test_g711_depacketizer_errors() -> None:
    stereo = Track("audio", "pcmu", sample_rate=8000, channels=2)
    depacketizer = PCMU.depacketizer(stereo, SdpFormat("PCMU", 8000, 2))
    assert depacketizer.push(b"\x01\x02", 3, True) == [Access(3, (b"\x01\x02",), True)]
    for payload in (b"", b"\x01\x02\x03"):
        with pytest.raises(RtpError):
            depacketizer.push(payload, 0, False)


@needs_ffmpeg
@pytest.mark.parametrize(("encoder", "encoding"), [("pcm_alaw", "PCMA"), ("pcm_mulaw", "PCMU")])
def test_ffmpeg_rtp_g711(encoder: str, encoding: str) -> None:
    """FFmpeg uses the static payload types: no rtpmap, 8 kHz mono implied."""
    fmt, packets = ffmpeg_rtp(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", encoder, "-ar", "8000"
    )
    assert fmt.encoding == encoding
    track, out = depacketize_rtp(fmt, packets)
    assert (track.codec, track.sample_rate, track.channels) == (encoding.lower(), 8000, 1)
    assert sum(len(a.units[0]) for a in out) == 8000
    for a, b in zip(out, out[1:], strict=False):  # one tick per sample, whatever the block size
        assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == len(a.units[0])
