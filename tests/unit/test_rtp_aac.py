"""AAC over RTP: RFC 3640 mpeg4-generic and RFC 6416 MP4A-LATM, with real AAC from PyAV and FFmpeg."""

from __future__ import annotations

import functools
import io
import math
import os
import socket
import struct
import subprocess
import tempfile
from fractions import Fraction

import pytest

from streamhive.formats.rtp import Access, RtpError, SdpFormat, codec_for_encoding, codec_for_track
from streamhive.formats.rtp.aac import AAC
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.hub.frame import Track
from tests.conftest import needs_ffmpeg

av = pytest.importorskip("av")


# --- helpers shared by the RTP audio/video tests --------------------------------------------


def sine_frame(fmt: str, layout: str, rate: int, samples: int, start: int) -> av.AudioFrame:
    """A quiet 440 Hz tone: real encoders make real-sized frames from it (noise would not do)."""
    frame = av.AudioFrame(format=fmt, layout=layout, samples=samples)
    values = [math.sin(2 * math.pi * 440 * (start + k) / rate) for k in range(samples)]
    channels = len(frame.layout.channels)
    for plane in frame.planes:
        if fmt == "fltp":
            plane.update(struct.pack(f"<{samples}f", *(0.3 * v for v in values)))
        else:  # s16, interleaved
            plane.update(
                struct.pack(
                    f"<{samples * channels}h", *(int(8000 * v) for v in values for _ in range(channels))
                )
            )
    frame.sample_rate, frame.pts = rate, start
    return frame


@functools.cache
def encode_audio(encoder: str, rate: int, layout: str, count: int = 12) -> tuple[bytes, tuple[bytes, ...]]:
    """(extradata, packets) from one of PyAV's audio encoders."""
    ctx = av.CodecContext.create(encoder, "w")
    ctx.sample_rate, ctx.layout = rate, layout
    ctx.format = "fltp" if encoder == "aac" else "s16"
    ctx.time_base = Fraction(1, rate)
    ctx.open()
    packets = []
    for i in range(count):
        packets += ctx.encode(sine_frame(ctx.format.name, layout, rate, ctx.frame_size, i * ctx.frame_size))
    packets += ctx.encode(None)
    return bytes(ctx.extradata or b""), tuple(bytes(p) for p in packets)


def bits(*fields: tuple[int, int]) -> bytes:
    """(value, width) fields packed MSB first, zero-padded to whole bytes."""
    value = nbits = 0
    for field, width in fields:
        value, nbits = (value << width) | field, nbits + width
    pad = -nbits % 8
    return (value << pad).to_bytes((nbits + pad) // 8, "big")


def push_all(depacketizer: object, packets: list[tuple[bytes, bool]], timestamp: int) -> list[Access]:
    out: list[Access] = []
    for payload, marker in packets:
        out += depacketizer.push(payload, timestamp, marker)  # type: ignore[attr-defined]
    return out


def parse_sdp(text: str) -> tuple[int, SdpFormat]:
    """The payload type and format of the first m= section of an SDP (what a session does)."""
    pt = -1
    rtpmap: dict[int, str] = {}
    fmtp: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("m=") and pt < 0:
            pt = int(line.split()[3])
        elif line.startswith("a=rtpmap:"):
            key, value = line[9:].split(" ", 1)
            rtpmap[int(key)] = value.strip()
        elif line.startswith("a=fmtp:"):
            key, value = line[7:].split(" ", 1)
            params = (p.strip().split("=", 1) for p in value.split(";") if "=" in p)
            fmtp[int(key)] = {k: v for k, v in params}
    static = {0: "PCMU/8000", 8: "PCMA/8000", 26: "JPEG/90000"}
    encoding, clock, *channels = rtpmap.get(pt, static.get(pt, "")).split("/")
    return pt, SdpFormat(encoding, int(clock), int(channels[0]) if channels else None, fmtp.get(pt, {}))


def ffmpeg_rtp(*args: str) -> tuple[SdpFormat, list[RtpPacket]]:
    """What FFmpeg's RTP muxer sends for the given input/codec arguments: SDP format and packets."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with sock, tempfile.TemporaryDirectory() as tmp:
        sdp_path = os.path.join(tmp, "out.sdp")
        url = f"rtp://127.0.0.1:{port}?rtcpport={port}"
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *args, "-f", "rtp", "-sdp_file", sdp_path, url]
        subprocess.run(cmd, check=True, timeout=60)
        with open(sdp_path) as f:
            pt, fmt = parse_sdp(f.read())
        sock.setblocking(False)
        datagrams = []
        while True:
            try:
                datagrams.append(sock.recv(65536))
            except BlockingIOError:
                break
    packets = [RtpPacket.parse(d) for d in datagrams if d[1] & 0x7F == pt]  # not the RTCP reports
    return fmt, packets


def depacketize_rtp(fmt: SdpFormat, packets: list[RtpPacket]) -> tuple[Track, list[Access]]:
    codec = codec_for_encoding(fmt.encoding)
    assert codec is not None
    track = codec.track_from_sdp(fmt)
    depacketizer = codec.depacketizer(track, fmt)
    out: list[Access] = []
    for packet in sorted(packets, key=lambda p: p.sequence):
        out += depacketizer.push(packet.payload, packet.timestamp, packet.marker)
    return track, out


def decode_aac(asc: bytes, frames: list[bytes]) -> int:
    """Samples per channel PyAV's decoder gets from raw AAC frames (it raises on garbage)."""
    ctx = av.CodecContext.create("aac", "r")
    ctx.extradata = asc
    return sum(f.samples for data in frames for f in ctx.decode(av.Packet(data)))


# --- mpeg4-generic --------------------------------------------------------------------------

HBR = {"mode": "AAC-hbr", "sizelength": "13", "indexlength": "3", "indexdeltalength": "3"}
ASC_48K_STEREO = bytes.fromhex("1190")


def generic(asc: bytes = ASC_48K_STEREO, clock: int = 48000, **params: str) -> tuple[Track, object]:
    fmt = SdpFormat("mpeg4-generic", clock, 2, {**HBR, "config": asc.hex(), **params})
    track = AAC.track_from_sdp(fmt)
    return track, AAC.depacketizer(track, fmt)


def hbr_packet(*aus: bytes, sizes: list[int] | None = None) -> bytes:
    sizes = sizes if sizes is not None else [len(au) for au in aus]
    headers = b"".join(struct.pack(">H", size << 3) for size in sizes)
    return struct.pack(">H", 16 * len(sizes)) + headers + b"".join(aus)


def test_registry_and_sdp_format() -> None:
    asc, _ = encode_audio("aac", 44100, "mono")
    track = Track("audio", "aac", asc, sample_rate=44100, channels=1)
    assert codec_for_track(track) is AAC
    assert codec_for_encoding("mpeg4-generic") is AAC and codec_for_encoding("mp4a-latm") is AAC
    fmt = AAC.sdp_format(track)
    assert (fmt.encoding, fmt.clock_rate, fmt.channels) == ("mpeg4-generic", 44100, 1)
    assert ";".join(f"{k}={v}" for k, v in fmt.fmtp.items()) == (
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;"
        f"config={asc.hex()}"
    )
    back = AAC.track_from_sdp(fmt)
    assert (back.codec, back.config, back.sample_rate, back.channels) == ("aac", asc, 44100, 1)


@pytest.mark.parametrize("mtu", [1400, 120])
def test_round_trip_real_frames(mtu: int) -> None:
    """Real encoder frames come back byte for byte, one Access per frame; small MTUs fragment."""
    asc, frames = encode_audio("aac", 48000, "stereo")
    track = Track("audio", "aac", asc, sample_rate=48000, channels=2)
    fmt = AAC.sdp_format(track)
    packetizer = AAC.packetizer(track, mtu)
    depacketizer = AAC.depacketizer(AAC.track_from_sdp(fmt), fmt)
    out = []
    for i, frame in enumerate(frames):
        packets = packetizer.packetize((frame,), True)
        assert all(len(p) <= mtu for p, _ in packets)
        assert [m for _, m in packets] == [False] * (len(packets) - 1) + [True]
        if mtu < 1400:
            assert len(packets) == -(-len(frame) // (mtu - 4))
        out += push_all(depacketizer, packets, i * 1024)
    assert [a.units for a in out] == [(f,) for f in frames]
    assert [a.timestamp for a in out] == [i * 1024 for i in range(len(frames))]
    assert all(a.keyframe and a.track is None for a in out)
    assert decode_aac(asc, [a.units[0] for a in out]) == 1024 * len(frames)


def test_several_aus_per_packet_follow_one_frame_apart() -> None:
    """RFC 3640 3.3.6: AU-headers-length in bits, one 16-bit header per AU, then the AUs."""
    _, depacketizer = generic()
    payload = hbr_packet(b"\x21" * 5, b"\x22" * 7, b"\x23" * 3)
    assert payload[:8] == bytes.fromhex("0030 0028 0038 0018")
    out = depacketizer.push(payload, 0xFFFFFC00, True)
    assert [a.units for a in out] == [(b"\x21" * 5,), (b"\x22" * 7,), (b"\x23" * 3,)]
    assert [a.timestamp for a in out] == [0xFFFFFC00, 0, 1024]  # wraps like RTP timestamps


@pytest.mark.parametrize(
    ("asc", "clock", "step"),
    [
        (bits((2, 5), (3, 4), (2, 4), (1, 1), (0, 2)), 48000, 960),  # frameLengthFlag: 960 samples
        (bits((5, 5), (6, 4), (2, 4), (3, 4), (2, 5), (0, 3)), 48000, 2048),  # HE-AAC at output rate
        (bits((5, 5), (6, 4), (2, 4), (3, 4), (2, 5), (0, 3)), 24000, 1024),  # ... at core rate
        (bits((23, 5), (3, 4), (2, 4), (0, 3), (0, 2)), 48000, 512),  # AAC-LD
        (bits((31, 5), (7, 6), (3, 4), (1, 4), (1, 1)), 48000, 480),  # AAC-ELD (escaped), 480
    ],
)
def test_timestamp_step_comes_from_the_config(asc: bytes, clock: int, step: int) -> None:
    _, depacketizer = generic(asc, clock)
    out = depacketizer.push(hbr_packet(b"\x01", b"\x02"), 1000, True)
    assert [a.timestamp for a in out] == [1000, 1000 + step]


def test_fragmented_au_is_reassembled_and_loss_drops_it() -> None:
    _, depacketizer = generic()
    au = bytes(range(256)) * 3
    parts = [au[:300], au[300:600], au[600:]]
    packets = [(hbr_packet(part, sizes=[len(au)]), i == 2) for i, part in enumerate(parts)]
    assert push_all(depacketizer, packets, 5000) == [Access(5000, (au,), True)]
    # The middle fragment lost: nothing, and the next whole AU is unaffected.
    assert depacketizer.push(packets[0][0], 6000, False) == []
    depacketizer.lost()
    assert depacketizer.push(packets[2][0], 6000, True) == []
    assert depacketizer.push(hbr_packet(b"ok"), 7024, True) == [Access(7024, (b"ok",), True)]
    # A fragment whose end never came is dropped when the next timestamp starts.
    assert depacketizer.push(packets[0][0], 8000, False) == []
    assert [a.units for a in push_all(depacketizer, packets, 9000)] == [(au,)]


def test_fragments_that_overrun_the_au_size_are_an_error() -> None:
    _, depacketizer = generic()
    assert depacketizer.push(hbr_packet(b"a" * 10, sizes=[15]), 0, False) == []
    with pytest.raises(RtpError, match="add up"):
        depacketizer.push(hbr_packet(b"b" * 10, sizes=[15]), 0, True)


def test_aac_lbr_and_explicit_lengths_are_honoured() -> None:
    """AAC-lbr: 6-bit sizes, 2-bit indexes, so one byte per AU-header."""
    _, depacketizer = generic(mode="AAC-lbr", sizelength="6", indexlength="2", indexdeltalength="2")
    payload = bits((16, 16), (20, 6), (0, 2), (30, 6), (0, 2)) + b"a" * 20 + b"b" * 30
    out = depacketizer.push(payload, 0, True)
    assert [a.units for a in out] == [(b"a" * 20,), (b"b" * 30,)]
    assert [a.timestamp for a in out] == [0, 1024]


def test_optional_au_header_fields_and_auxiliary_section_are_skipped() -> None:
    """CTS/DTS flags and deltas, RAP flag and stream state sit between AU-size and the next one."""
    params = {
        "ctsdeltalength": "4",
        "dtsdeltalength": "5",
        "randomaccessindication": "1",
        "streamstateindication": "2",
        "auxiliarydatasizelength": "8",
    }
    _, depacketizer = generic(**params)
    first = [(3, 13), (0, 3), (0, 1), (1, 1), (7, 5), (1, 1), (2, 2)]  # no CTS, a DTS delta
    second = [(2, 13), (0, 3), (1, 1), (9, 4), (0, 1), (0, 1), (1, 2)]  # a CTS delta, no DTS
    width = sum(w for _, w in first + second)
    payload = bits((width, 16), *first, *second) + bits((16, 8), (0xABCD, 16)) + b"xyz" + b"pq"
    out = depacketizer.push(payload, 100, True)
    assert [a.units for a in out] == [(b"xyz",), (b"pq",)]


def test_interleaving_is_refused() -> None:
    _, depacketizer = generic()
    payload = struct.pack(">HHH", 32, 1 << 3, (1 << 3) | 1) + b"ab"
    with pytest.raises(RtpError, match="interleaved"):
        depacketizer.push(payload, 0, True)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x00\x00",  # no AU-headers
        b"\x00\x10\x00",  # header cut off
        b"\x00\x11\x00\x08\x00",  # 17 bits: not whole 16-bit headers
        hbr_packet(b"abc", sizes=[3, 5]),  # AUs longer than the payload
    ],
)
def test_malformed_generic_payloads_raise(payload: bytes) -> None:
    _, depacketizer = generic()
    with pytest.raises(RtpError):
        depacketizer.push(payload, 0, True)


@pytest.mark.parametrize(
    ("fmtp", "message"),
    [
        ({**HBR}, "without fmtp config"),
        ({**HBR, "config": "zz"}, "not hex"),
        ({"mode": "generic", "config": "1190"}, "sizelength"),
        ({**HBR, "sizelength": "99", "config": "1190"}, "bit length"),
        ({**HBR, "config": "4188"}, "object type 8 is not AAC"),  # CELP
        ({**HBR, "config": "00"}, "AudioSpecificConfig"),
    ],
)
def test_unusable_generic_sdp_raises(fmtp: dict[str, str], message: str) -> None:
    with pytest.raises(RtpError, match=message):
        AAC.track_from_sdp(SdpFormat("MPEG4-GENERIC", 48000, 2, fmtp))


def test_packetizer_limits() -> None:
    track = Track("audio", "aac", ASC_48K_STEREO)
    with pytest.raises(RtpError, match="13-bit"):
        AAC.packetizer(track).packetize((bytes(9000),), True)
    with pytest.raises(RtpError, match="AudioSpecificConfig"):
        AAC.sdp_format(Track("audio", "aac"))


# --- MP4A-LATM ------------------------------------------------------------------------------

#: RFC 6416's AAC-LC example config: 24 kHz stereo, one subframe, cpresent=0.
LATM_24K_STEREO = "400026203fc0"


def latm(
    config: str | None = LATM_24K_STEREO, clock: int = 24000, cpresent: str = "0"
) -> tuple[Track, object]:
    fmtp = {"profile-level-id": "1", "object": "2", "cpresent": cpresent}
    if config is not None:
        fmtp["config"] = config
    fmt = SdpFormat("MP4A-LATM", clock, 2, fmtp)
    track = AAC.track_from_sdp(fmt)
    return track, AAC.depacketizer(track, fmt)


def length_info(size: int) -> bytes:
    """PayloadLengthInfo: 0xFF for every full 255, then the rest."""
    return b"\xff" * (size // 255) + bytes((size % 255,))


def test_latm_config_from_sdp_gives_the_audio_specific_config() -> None:
    track, _ = latm()
    assert (track.codec, track.config, track.sample_rate, track.channels) == (
        "aac",
        bytes.fromhex("1310"),
        24000,
        2,
    )


def test_latm_payload_length_runs_and_several_elements() -> None:
    _, depacketizer = latm()
    big, small = bytes(range(256)) * 2 + b"!", b"tiny"
    payload = length_info(len(big)) + big + length_info(len(small)) + small
    assert payload[:3] == b"\xff\xff\x03"
    out = depacketizer.push(payload, 240, True)
    assert [a.units for a in out] == [(big,), (small,)]
    assert [a.timestamp for a in out] == [240, 240 + 1024]


def test_latm_element_fragmented_over_packets() -> None:
    _, depacketizer = latm()
    au = bytes(range(200)) * 4
    element = length_info(len(au)) + au
    assert depacketizer.push(element[:300], 7, False) == []
    assert depacketizer.push(element[300:600], 7, False) == []
    assert depacketizer.push(element[600:], 7, True) == [Access(7, (au,), True)]
    # Loss in the middle: the rest of that element is dropped, not parsed as an element.
    depacketizer.push(element[:300], 8, False)
    depacketizer.lost()
    assert depacketizer.push(element[600:], 8, True) == []
    # A start whose end never came is dropped when the next timestamp begins.
    depacketizer.push(element[:300], 9, False)
    assert depacketizer.push(length_info(2) + b"ok", 10, True) == [Access(10, (b"ok",), True)]
    assert [a.units for a in push_all(depacketizer, [(element, True)], 11)] == [(au,)]


def test_latm_several_subframes_per_element() -> None:
    """numSubFrames=1: two AUs per audioMuxElement, the second one frame later."""
    config = bits(
        (0, 1), (1, 1), (1, 6), (0, 4), (0, 3), (2, 5), (6, 4), (2, 4), (0, 3), (0, 3), (0xFF, 8), (0, 2)
    )
    _, depacketizer = latm(config.hex())
    out = depacketizer.push(length_info(3) + b"one" + length_info(3) + b"two", 0, True)
    assert [(a.timestamp, a.units) for a in out] == [(0, (b"one",)), (1024, (b"two",))]


def test_latm_mux_version_1_config() -> None:
    """audioMuxVersion 1: lengths by LatmGetValue, the ASC with its bit length in front."""
    config = bits(
        (1, 1), (0, 1), (0, 2), (0, 8),  # version 1, versionA 0, taraBufferFullness 0
        (1, 1), (0, 6), (0, 4), (0, 3),  # same framing, one subframe, program, layer
        (0, 2), (16, 8), (0x1190, 16),  # ascLen 16, then the ASC
        (0, 3), (0xFF, 8), (0, 1), (0, 1),
    )  # fmt: skip
    track, depacketizer = latm(config.hex(), 48000)
    assert track.config == ASC_48K_STEREO
    assert depacketizer.push(length_info(2) + b"hi", 5, True) == [Access(5, (b"hi",), True)]


def test_latm_config_with_the_sbr_sync_extension() -> None:
    """FFmpeg's AAC extradata ends in a backward-compatible SBR extension: part of the ASC."""
    asc, _ = encode_audio("aac", 48000, "stereo")
    assert asc == bytes.fromhex("119056e500")
    config = bits(
        (0, 1),
        (1, 1),
        (0, 6),
        (0, 4),
        (0, 3),
        (int.from_bytes(asc, "big") >> 7, 33),
        (0, 3),
        (0xFF, 8),
        (0, 2),
    )
    track, _ = latm(config.hex(), 48000)
    assert track.config == asc


def test_latm_in_band_config_from_ffmpeg_loas() -> None:
    """cpresent=1: FFmpeg's LOAS muxer writes AudioMuxElement(1) with an in-band StreamMuxConfig
    every 20 frames; without the 3-byte sync header each one is an RTP payload."""
    buf = io.BytesIO()
    frames = []
    with av.open(buf, "w", format="latm") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        for i in range(30):
            for packet in stream.encode(sine_frame("fltp", "stereo", 48000, 1024, i * 1024)):
                frames.append(bytes(packet))
                out.mux(packet)
    data = buf.getvalue()
    elements = []
    while data:
        header = int.from_bytes(data[:3], "big")
        assert header >> 13 == 0x2B7
        elements.append(data[3 : 3 + (header & 0x1FFF)])
        data = data[3 + (header & 0x1FFF) :]
    track, depacketizer = latm(None, 48000, "1")
    assert track.config == b"" and track.sample_rate == 48000
    out = []
    for i, element in enumerate(elements):
        out += depacketizer.push(element, i * 1024, True)
    assert [a.units[0] for a in out] == list(frames)
    assert out[0].track is not None and out[0].track.config == bytes.fromhex("1190")
    assert all(a.track is None for a in out[1:])


def test_latm_element_without_a_config_yet_raises() -> None:
    _, depacketizer = latm(None, 48000, "1")
    with pytest.raises(RtpError, match="never received"):
        depacketizer.push(bits((1, 1), (2, 8)) + b"ab", 0, True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "without fmtp config"),
        ("40", "truncated"),
        ("c0", "audioMuxVersionA"),
        (bits((0, 1), (1, 1), (0, 6), (1, 4), (0, 3)).hex(), "several programs"),
        (bits((0, 1), (1, 1), (0, 6), (0, 4), (0, 3), (8, 5), (3, 4), (1, 4)).hex(), "object type 8"),
        (
            bits((0, 1), (1, 1), (0, 6), (0, 4), (0, 3), (2, 5), (3, 4), (0, 4), (0, 3)).hex(),
            "program_config",
        ),
        (bits((0, 1), (1, 1), (0, 6), (0, 4), (0, 3), (0x1190, 16), (1, 3)).hex(), "frameLengthType"),
    ],
)
def test_unusable_latm_configs_raise(config: str | None, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        latm(config)


# --- against FFmpeg's RTP muxer -------------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize("latm_mode", [False, True])
def test_ffmpeg_rtp_aac(latm_mode: bool) -> None:
    """FFmpeg packs several AUs per mpeg4-generic packet, and sends LATM with cpresent=0."""
    flags = ["-rtpflags", "latm"] if latm_mode else []
    fmt, packets = ffmpeg_rtp("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", *flags)
    assert fmt.encoding.upper() == ("MP4A-LATM" if latm_mode else "MPEG4-GENERIC")
    track, out = depacketize_rtp(fmt, packets)
    assert track.sample_rate == 44100 and track.channels == 1
    assert len(out) > len(packets) or latm_mode  # FFmpeg aggregates AUs in mpeg4-generic
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(out, out[1:], strict=False)}
    assert steps == {1024}
    assert decode_aac(track.config, [a.units[0] for a in out]) == 1024 * len(out)
