"""VP8 (RFC 7741), VP9 (RFC 9628) and AV1 over RTP with real libvpx / SVT-AV1 bitstreams.

Each round trip packetizes real frames, rebuilds them and decodes the result with PyAV, so the
payload format is checked against a decoder and not only against itself.
"""

from __future__ import annotations

import fractions
import functools
import io

import pytest

from streamhive.codecs import CodecError, av1
from streamhive.formats.rtp import (
    RtpCodec,
    RtpError,
    SdpFormat,
    codec_for_encoding,
    codec_for_track,
)
from streamhive.formats.rtp import av1 as rtp_av1
from streamhive.formats.rtp import vp8 as rtp_vp8
from streamhive.formats.rtp import vp9 as rtp_vp9
from streamhive.hub.frame import VIDEO_CODECS, Track

av = pytest.importorskip("av")

Frames = list[tuple[bytes, bool]]
Packets = list[tuple[bytes, int, bool]]

ENCODERS = {
    "vp8": ("libvpx", {}),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", {"preset": "12", "svtav1-params": "pred-struct=1"}),
}
DECODERS = {"vp8": "vp8", "vp9": "vp9", "av1": "libdav1d"}
CODECS: dict[str, RtpCodec] = {"vp8": rtp_vp8.CODEC, "vp9": rtp_vp9.CODEC, "av1": rtp_av1.CODEC}


def picture(i: int, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes((i * 37 + k) & 0xFF for k in range(plane.buffer_size)))
    frame.pts = i
    return frame


@functools.cache
def encoded(
    codec: str, width: int = 320, height: int = 240, count: int = 6
) -> tuple[tuple[bytes, bool], ...]:
    """(frame, keyframe) from the real encoder, a keyframe every third frame."""
    av.logging.set_level(av.logging.ERROR)
    name, options = ENCODERS[codec]
    context = av.CodecContext.create(name, "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    context.framerate = 30
    context.gop_size = 3
    context.thread_count = 1
    context.options = options
    packets = []
    for i in range(count):
        packets += context.encode(picture(i, width, height))
    packets += context.encode(None)
    return tuple((bytes(p), p.is_keyframe) for p in packets)


@functools.cache
def mp4_config(codec: str) -> bytes:
    """The vpcC / av1C body FFmpeg's MP4 muxer writes for the same encoder."""
    av.logging.set_level(av.logging.ERROR)
    name, options = ENCODERS[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(name, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(2):
            out.mux(stream.encode(picture(i, 320, 240)))
        out.mux(stream.encode(None))
    data = buf.getvalue()
    box = b"vpcC" if codec == "vp9" else b"av1C"
    at = data.index(box)
    return data[at + 4 : at - 4 + int.from_bytes(data[at - 4 : at], "big")]


def hub_form(codec: str, frame: bytes) -> bytes:
    """What the hub should get back: AV1 without temporal delimiters, size fields everywhere."""
    if codec != "av1":
        return frame
    return b"".join(
        obu.with_size() for obu in av1.split_obus(frame) if obu.type != av1.OBU_TEMPORAL_DELIMITER
    )


def to_packets(
    codec: str, frames: Frames | tuple[tuple[bytes, bool], ...], mtu: int, track: Track | None = None
) -> Packets:
    packetizer = CODECS[codec].packetizer(track or Track("video", codec), mtu)
    out = []
    for i, (frame, keyframe) in enumerate(frames):
        for payload, marker in packetizer.packetize((frame,), keyframe):
            assert len(payload) <= mtu
            out.append((payload, i * 3000, marker))
    return out


def depacketize(codec: str, packets: Packets, track: Track | None = None) -> list[rtp_vp8.Access]:
    depacketizer = CODECS[codec].depacketizer(track or Track("video", codec), SdpFormat(codec.upper(), 90000))
    out = []
    for payload, timestamp, marker in packets:
        if not payload:
            depacketizer.lost()
            continue
        out += depacketizer.push(payload, timestamp, marker)
    return out


def decode(codec: str, accesses: list[rtp_vp8.Access]) -> list[tuple[int, int]]:
    decoder = av.CodecContext.create(DECODERS[codec], "r")
    sizes = []
    for access in accesses:
        sizes += [(f.width, f.height) for f in decoder.decode(av.Packet(b"".join(access.units)))]
    sizes += [(f.width, f.height) for f in decoder.decode(None)]
    return sizes


# --- round trips with real encoders ---------------------------------------------------------


@pytest.mark.parametrize("codec", ["vp8", "vp9", "av1"])
@pytest.mark.parametrize("mtu", [200, 1200])
def test_round_trip_decodes(codec: str, mtu: int) -> None:
    frames = encoded(codec)
    packets = to_packets(codec, frames, mtu)
    assert len(packets) > len(frames)  # keyframes at 320x240 do not fit one packet
    accesses = depacketize(codec, packets)
    assert [a.units for a in accesses] == [(hub_form(codec, f),) for f, _ in frames]
    assert [a.keyframe for a in accesses] == [k for _, k in frames]
    assert [a.timestamp for a in accesses] == [i * 3000 for i in range(len(frames))]
    first = accesses[0].track
    assert first is not None and (first.codec, first.width, first.height) == (codec, 320, 240)
    assert all(a.track is None for a in accesses[1:])  # same size again: nothing to report
    assert decode(codec, accesses) == [(320, 240)] * len(frames)


@pytest.mark.parametrize("codec", ["vp8", "vp9", "av1"])
def test_loss_waits_for_the_next_keyframe(codec: str) -> None:
    frames = encoded(codec)
    packets = to_packets(codec, frames, 1200)
    starts = [i for i, (_, ts, _) in enumerate(packets) if i == 0 or packets[i - 1][1] != ts]
    # Lose the first packet of frame 1: frames 1 and 2 are gone, keyframe 3 restarts.
    lossy = packets[: starts[1]] + [(b"", 0, False)] + packets[starts[1] + 1 :]
    accesses = depacketize(codec, lossy)
    assert [a.timestamp // 3000 for a in accesses] == [0, 3, 4, 5]
    assert decode(codec, accesses) == [(320, 240)] * 4


@pytest.mark.parametrize("codec", ["vp8", "vp9", "av1"])
def test_nothing_before_the_first_keyframe(codec: str) -> None:
    frames = encoded(codec)
    packets = to_packets(codec, frames, 1200)
    skip = next(i for i, (_, ts, _) in enumerate(packets) if ts == 3000)
    accesses = depacketize(codec, packets[skip:])
    assert [a.timestamp // 3000 for a in accesses] == [3, 4, 5]
    assert accesses[0].keyframe and accesses[0].track is not None


@pytest.mark.parametrize("codec", ["vp8", "vp9", "av1"])
def test_frames_end_on_timestamp_change_without_marker(codec: str) -> None:
    frames = encoded(codec)
    packets = [(p, ts, False) for p, ts, _ in to_packets(codec, frames, 1200)]
    accesses = depacketize(codec, packets)
    assert [a.units for a in accesses] == [(hub_form(codec, f),) for f, _ in frames[:-1]]


@pytest.mark.parametrize("codec", ["vp8", "vp9", "av1"])
def test_registry_and_sdp(codec: str) -> None:
    rtp = codec_for_encoding(codec.lower())
    assert rtp is CODECS[codec] and codec_for_track(Track("video", codec)) is rtp
    assert codec in VIDEO_CODECS
    fmt = rtp.sdp_format(Track("video", codec))
    assert (fmt.encoding, fmt.clock_rate) == (codec.upper(), 90000)
    track = rtp.track_from_sdp(fmt)
    assert (track.kind, track.codec, track.config) == ("video", codec, b"")
    with pytest.raises(RtpError, match="clock"):
        rtp.track_from_sdp(SdpFormat(codec.upper(), 48000))
    with pytest.raises(RtpError, match="too small"):
        rtp.packetizer(track, 4)


def test_sdp_fmtp() -> None:
    assert rtp_vp8.CODEC.sdp_format(Track("video", "vp8")).fmtp == {}
    assert rtp_vp9.CODEC.sdp_format(Track("video", "vp9")).fmtp == {"profile-id": "0"}
    vpcc = bytes.fromhex("01000000 02140a02020200 00")
    assert rtp_vp9.CODEC.sdp_format(Track("video", "vp9", vpcc)).fmtp == {"profile-id": "2"}
    assert rtp_av1.CODEC.sdp_format(Track("video", "av1")).fmtp == {
        "profile": "0",
        "level-idx": "5",
        "tier": "0",
    }
    av1c = bytes.fromhex("81280c00")  # profile 1, level 8
    assert rtp_av1.CODEC.sdp_format(Track("video", "av1", av1c)).fmtp["profile"] == "1"
    with pytest.raises(RtpError, match="profile-id"):
        rtp_vp9.CODEC.track_from_sdp(SdpFormat("VP9", 90000, fmtp={"profile-id": "4"}))
    with pytest.raises(RtpError, match="profile"):
        rtp_av1.CODEC.track_from_sdp(SdpFormat("AV1", 90000, fmtp={"profile": "3"}))


# --- VP8 ------------------------------------------------------------------------------------


def test_vp8_packetizer_descriptor() -> None:
    frame, _ = encoded("vp8")[0]
    packetizer = rtp_vp8.Vp8Packetizer(300, picture_id=0x7FFF)
    packets = packetizer.packetize((frame,), True)
    assert packets[0][0][:4] == bytes.fromhex("90 80 ff ff")  # X S, I, M + 15-bit PictureID
    assert all(p[:4] == bytes.fromhex("80 80 ff ff") for p, _ in packets[1:])
    assert [m for _, m in packets] == [False] * (len(packets) - 1) + [True]
    assert b"".join(p[4:] for p, _ in packets) == frame
    assert packetizer.packetize((frame,), True)[0][0][:4] == bytes.fromhex("90 80 80 00")  # wraps
    assert packetizer.packetize((b"",), False) == []


@pytest.mark.parametrize(
    ("descriptor", "start"),
    [
        ("10", True),  # S, PID 0
        ("11", False),  # S, PID 1: a later partition
        ("00", False),
        ("90 00", True),  # X without fields
        ("90 80 05", True),  # 7-bit PictureID
        ("90 80 81 23", True),  # 15-bit PictureID
        ("90 c0 81 23 07", True),  # + TL0PICIDX
        ("90 f0 81 23 07 40", True),  # + TID/Y/KEYIDX
        ("90 10 40", True),  # K alone
    ],
)
def test_vp8_descriptor_fields(descriptor: str, start: bool) -> None:
    data = bytes.fromhex(descriptor)
    assert rtp_vp8.parse_descriptor(data + b"\x01\x02") == (start, len(data))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty"),
        ("80", "extension"),
        ("90 80", "PictureID"),
        ("90 80 81", "without frame data"),
        ("90 f0 81 23 07", "without frame data"),
        ("10", "without frame data"),
    ],
)
def test_vp8_descriptor_errors(payload: str, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        rtp_vp8.parse_descriptor(bytes.fromhex(payload))


def vp8_keyframe(width: int, height: int) -> bytes:
    """A frame tag (keyframe, shown, size 0), the start code and the size: enough to parse."""
    return (
        bytes.fromhex("100000 9d012a")
        + width.to_bytes(2, "little")
        + height.to_bytes(2, "little")
        + b"\0" * 4
    )


def test_vp8_keyframe_size() -> None:
    assert rtp_vp8.keyframe_size(vp8_keyframe(640, 360)) == (640, 360)
    assert rtp_vp8.keyframe_size(vp8_keyframe(640 | 0x4000, 360 | 0x8000)) == (640, 360)  # scaling bits
    assert rtp_vp8.keyframe_size(b"\x11\x00\x00") is None  # P = 1: an inter frame
    with pytest.raises(RtpError, match="start code"):
        rtp_vp8.keyframe_size(b"\x10\x00\x00\x9d\x01\x2b" + bytes(4))


def test_vp8_size_change_gives_a_new_track() -> None:
    depacketizer = rtp_vp8.Vp8Depacketizer(Track("video", "vp8", width=640, height=360))
    assert depacketizer.push(b"\x10" + vp8_keyframe(640, 360), 0, True)[0].track is None
    (access,) = depacketizer.push(b"\x10" + vp8_keyframe(320, 180), 1, True)
    assert access.keyframe and access.track is not None
    assert (access.track.width, access.track.height, access.track.config) == (320, 180, b"")


def test_vp8_frame_rules() -> None:
    key = b"\x10" + vp8_keyframe(64, 48)
    depacketizer = rtp_vp8.Vp8Depacketizer(Track("video", "vp8"))
    assert depacketizer.push(b"\x00" + b"\x01tail", 0, True) == []  # no start: dropped
    assert depacketizer.push(key[:6], 1, False) == []
    assert depacketizer.push(key, 1, True) == []  # a second start inside a frame: broken
    assert depacketizer.push(b"\x10\x01inter", 2, True) == []  # waits for a keyframe
    assert depacketizer.push(b"\x10\x10\x00\x00\x9d\x01\x2b" + bytes(10), 3, True) == []  # bad start code
    assert [a.timestamp for a in depacketizer.push(key, 4, True)] == [4]
    assert [a.keyframe for a in depacketizer.push(b"\x10\x01inter", 5, True)] == [False]


# --- VP9 ------------------------------------------------------------------------------------


def test_vp9_packetizer_descriptor() -> None:
    (key, _), (inter, _) = encoded("vp9")[:2]
    packetizer = rtp_vp9.Vp9Packetizer(Track("video", "vp9"), 1000, picture_id=0x1234)
    packetizer.tl0 = 0xFF
    packets = packetizer.packetize((key,), True)
    # I L B V; M + picture ID; T0 U0 S0 D0; TL0PICIDX; SS: N_S=0 Y G, 320x240, N_G=1 (T0 R=1, P_DIFF 1)
    head = bytes.fromhex("aa 9234 00 ff 18 0140 00f0 01 04 01")
    assert packets[0][0][: len(head)] == head
    assert all(p[:5] == bytes.fromhex("a0 9234 00 ff") for p, _ in packets[1:-1])
    assert packets[-1][0][:5] == bytes.fromhex("a4 9234 00 ff") and packets[-1][1]
    size = len(head) + (len(packets) - 1) * 5
    assert sum(len(p) for p, _ in packets) == size + len(key)
    (only,) = packetizer.packetize((inter[:100],), False)  # P, B and E in one packet, counters on
    assert only[0][:5] == bytes.fromhex("ec 9235 00 00")


def test_vp9_descriptor_without_size_uses_the_track() -> None:
    packetizer = rtp_vp9.Vp9Packetizer(Track("video", "vp9", width=64, height=48), 100, picture_id=1)
    packetizer.tl0 = 0
    (payload, _), *_ = packetizer.packetize((b"\x00not a vp9 header",), True)
    assert payload == bytes.fromhex("ae 8001 00 00 18 0040 0030 01 04 01") + b"\x00not a vp9 header"
    packetizer = rtp_vp9.Vp9Packetizer(Track("video", "vp9"), 100, picture_id=1)
    packetizer.tl0 = 0
    (payload, _), *_ = packetizer.packetize((b"\x00not a vp9 header",), True)
    assert payload.startswith(bytes.fromhex("ae 8001 00 00 08 01 04 01 00"))  # no Y without a size


@pytest.mark.parametrize(
    ("descriptor", "begins", "ends", "size"),
    [
        ("08", True, False, None),
        ("04", False, True, None),
        ("88 05", True, False, None),  # 7-bit picture ID
        ("ac 8001 00 07", True, True, None),  # non-flexible: layer indices + TL0PICIDX
        ("bc 8001 20", True, True, None),  # flexible: layer indices only
        ("dc 8001 03 05 02", True, True, None),  # flexible inter: three P_DIFFs (N chains them)
        ("0a 10 0280 01e0", True, False, (640, 480)),  # SS with a size
        ("0a 30 00a0 0078 0140 00f0", True, False, (320, 240)),  # two layers: the larger wins
        ("0a 18 0140 00f0 02 04 01 24 01", True, False, (320, 240)),  # + group of 2 pictures
        ("0a 08 01 09 02 03", True, False, None),  # group without sizes
    ],
)
def test_vp9_descriptor_fields(
    descriptor: str, begins: bool, ends: bool, size: tuple[int, int] | None
) -> None:
    data = bytes.fromhex(descriptor)
    desc = rtp_vp9.parse_descriptor(data + b"\x82")
    assert (desc.begins, desc.ends, desc.size, desc.data) == (begins, ends, size, len(data))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty"),
        ("80", "picture ID"),
        ("d8 01 03 03 03 03", "more than 3"),
        ("d8 01 03", "reference indices"),
        ("0a", "scalability structure truncated"),
        ("0a 18 0140", "resolutions"),
        ("0a 08", "picture group"),
        ("0a 08 01 08 01", "picture group"),
        ("08", "without frame data"),
    ],
)
def test_vp9_descriptor_errors(payload: str, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        rtp_vp9.parse_descriptor(bytes.fromhex(payload))


def test_vp9_config_matches_ffmpeg() -> None:
    (access, *_) = depacketize("vp9", to_packets("vp9", encoded("vp9"), 1200))
    assert access.track is not None and access.track.config == mp4_config("vp9")
    info = rtp_vp9.parse_keyframe(encoded("vp9")[0][0])
    assert info == rtp_vp9.KeyframeInfo(0, 8, 0, False, 1, 1, 320, 240)
    assert rtp_vp9.parse_keyframe(encoded("vp9")[1][0]) is None


def test_vp9_levels() -> None:
    assert rtp_vp9.level_for(320, 240) == 20
    assert rtp_vp9.level_for(1280, 720) == 31
    assert rtp_vp9.level_for(1920, 1080) == 40
    assert rtp_vp9.level_for(4096, 2176) == 50
    assert rtp_vp9.level_for(600, 16) == 11  # the longest side counts too
    assert rtp_vp9.level_for(20000, 20000) == 62


def test_vp9_keyframe_header_errors() -> None:
    with pytest.raises(CodecError, match="frame marker"):
        rtp_vp9.parse_keyframe(b"\x00" * 10)
    with pytest.raises(CodecError, match="sync code"):
        rtp_vp9.parse_keyframe(b"\x82\x49\x83\x43" + bytes(6))
    with pytest.raises(CodecError, match="truncated"):
        rtp_vp9.parse_keyframe(b"\x82\x49")


def test_vp9_superframes() -> None:
    frames = [b"a" * 3, b"b" * 300, b"c"]
    joined = rtp_vp9.join_superframe(frames)
    assert joined[-1] == joined[-8] == 0xCA  # 2-byte sizes, 3 frames
    assert rtp_vp9.split_superframe(joined) == frames
    assert rtp_vp9.join_superframe([b"x"]) == b"x"
    assert rtp_vp9.split_superframe(b"plain") == [b"plain"]
    assert rtp_vp9.split_superframe(b"\xc0") == [b"\xc0"]  # looks like a marker, has no index
    with pytest.raises(CodecError, match="overruns"):
        rtp_vp9.split_superframe(b"ab\xc0\x09\xc0")
    with pytest.raises(CodecError, match="at most 8"):
        rtp_vp9.join_superframe([b"x"] * 9)


def test_vp9_spatial_layers_become_one_superframe() -> None:
    """Two layer frames at one timestamp (SVC) come out as one picture with an index."""
    (key, _), (inter, _) = encoded("vp9")[:2]
    depacketizer = rtp_vp9.Vp9Depacketizer(Track("video", "vp9"))
    # Layer 0 with an SS naming two layers, then layer 1 (S=1, D=1, a superframe) ends it.
    layer0 = bytes.fromhex("ae 8001 00 07 30 00a0 0078 0280 01e0") + key
    layer1 = bytes.fromhex("ac 8001 03 07") + rtp_vp9.join_superframe([inter, inter])
    assert depacketizer.push(layer0, 90, False) == []
    (access,) = depacketizer.push(layer1, 90, True)
    assert access.units == (rtp_vp9.join_superframe([key, inter, inter]),)  # no nested superframe
    assert access.keyframe and access.track is not None
    assert (access.track.width, access.track.height) == (640, 480)  # from the SS, largest layer


def test_vp9_layer_frame_rules() -> None:
    key, _ = encoded("vp9")[0]
    depacketizer = rtp_vp9.Vp9Depacketizer(Track("video", "vp9"))
    assert depacketizer.push(b"\x04" + key, 0, True) == []  # an end without a beginning
    assert depacketizer.push(b"\x08" + key[:50], 1, True) == []  # a picture ending inside a frame
    assert depacketizer.push(b"\x08" + key[:50], 2, False) == []
    assert depacketizer.push(b"\x08" + key[50:], 2, True) == []  # two beginnings in a row
    assert depacketizer.push(b"\x0c\x00garbage", 3, True) == []  # not VP9: nothing decodable
    assert [a.timestamp for a in depacketizer.push(b"\x0c" + key, 4, True)] == [4]


# --- AV1 ------------------------------------------------------------------------------------


def aggregation(payload: bytes) -> tuple[int, int, int, int]:
    """(Z, Y, W, N) of a packet."""
    head = payload[0]
    return head >> 7, (head >> 6) & 1, (head >> 4) & 3, (head >> 3) & 1


def test_av1_packetizer_headers() -> None:
    key, _ = encoded("av1")[0]
    obus = av1.split_obus(key)
    assert [o.type for o in obus] == [av1.OBU_TEMPORAL_DELIMITER, av1.OBU_SEQUENCE_HEADER, av1.OBU_FRAME]
    packets = rtp_av1.Av1Packetizer(None, 400).packetize((key,), True)
    heads = [aggregation(p) for p, _ in packets]
    # Sequence header whole, the frame OBU cut: W=2 then one fragment per packet.
    assert heads[0] == (0, 1, 2, 1)
    assert heads[1:-1] == [(1, 1, 1, 0)] * (len(packets) - 2)
    assert heads[-1] == (1, 0, 1, 0)
    first = packets[0][0]
    size, pos = av1.read_leb128(first, 1)
    assert first[pos : pos + size] == obus[1].without_size()  # no size field, no delimiter
    assert [m for _, m in packets] == [False] * (len(packets) - 1) + [True]
    inter = rtp_av1.Av1Packetizer(None, 65000).packetize((encoded("av1")[2][0],), False)
    assert [aggregation(p) for p, _ in inter] == [(0, 0, 1, 0)]


def test_av1_many_small_obus_use_w_zero() -> None:
    seq = av1.split_obus(encoded("av1")[0][0])[1]
    metadata = av1.Obu(bytes((av1.OBU_METADATA << 3,)), b"\x01\x02")
    tu = seq.with_size() + metadata.with_size() * 4
    (payload, marker), *rest = rtp_av1.Av1Packetizer(None, 1400).packetize((tu,), False)
    assert not rest and marker and aggregation(payload) == (0, 0, 0, 0)
    elements, z, y = rtp_av1.parse_payload(payload)
    assert (len(elements), z, y) == (5, False, False)
    assert elements[1] == metadata.without_size()


def test_av1_keyframe_gets_the_track_sequence_header() -> None:
    frames = encoded("av1")
    key = frames[0][0]
    track = Track("video", "av1", mp4_config("av1"))
    bare = b"".join(o.with_size() for o in av1.split_obus(key) if o.type == av1.OBU_FRAME)
    packets = rtp_av1.CODEC.packetizer(track, 1400).packetize((bare,), True)
    assert aggregation(packets[0][0])[3] == 1
    header = av1.av1c_sequence_header(track.config)
    assert header is not None and rtp_av1.parse_payload(packets[0][0])[0][0] == header.without_size()
    plain = rtp_av1.CODEC.packetizer(Track("video", "av1"), 1400).packetize((bare,), True)
    assert aggregation(plain[0][0])[3] == 0  # nothing to insert: not a new coded video sequence


def test_av1_config_matches_ffmpeg() -> None:
    header = av1.av1c_sequence_header(mp4_config("av1"))
    assert header is not None and av1.make_av1c_record(header.with_size()) == mp4_config("av1")
    key = encoded("av1")[0][0]
    (access, *_) = depacketize("av1", to_packets("av1", encoded("av1"), 1200))
    assert access.track is not None
    assert access.track.config == av1.make_av1c_record(av1.split_obus(key)[1].with_size())
    seq = av1.parse_sequence_header(header.payload)
    assert (seq.profile, seq.bit_depth, seq.width, seq.height, seq.subsampling_x) == (0, 8, 320, 240, 1)


def test_av1_depacketizer_accepts_size_fields_and_w_zero() -> None:
    """Other senders keep obu_size and count no elements: the result is the same."""
    frames = encoded("av1")
    packets = []
    for i, (frame, _) in enumerate(frames):
        obus = [o.with_size() for o in av1.split_obus(frame)]  # delimiter and size fields kept
        payload = b"\x08" + b"".join(av1.leb128(len(o)) + o for o in obus)
        packets.append((payload, i * 3000, True))
    accesses = depacketize("av1", packets)
    assert [a.units for a in accesses] == [(hub_form("av1", f),) for f, _ in frames]
    assert decode("av1", accesses) == [(320, 240)] * len(frames)


def test_av1_sequence_header_in_the_track_lets_decoding_start() -> None:
    """A keyframe without a sequence header is enough when the track has one."""
    key = b"".join(o.with_size() for o in av1.split_obus(encoded("av1")[0][0]) if o.type == av1.OBU_FRAME)
    payload = b"\x10" + av1.split_obus(key)[0].without_size()
    bare = rtp_av1.Av1Depacketizer(Track("video", "av1"))
    assert bare.push(payload, 0, True) == []
    known = rtp_av1.Av1Depacketizer(Track("video", "av1", mp4_config("av1")))
    (access,) = known.push(payload, 0, True)
    assert access.keyframe and access.track is None and access.units == (key,)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty"),
        ("00 05 0a", "overruns"),
        ("00 ff ff ff ff ff ff ff ff ff", "longer than 8"),
        ("00 80", "truncated"),
        ("30 01 0a", "says 3 OBU elements"),
    ],
)
def test_av1_payload_errors(payload: str, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        rtp_av1.parse_payload(bytes.fromhex(payload))


def test_av1_fragment_rules() -> None:
    keyframe = [p for p in to_packets("av1", encoded("av1"), 300) if p[1] == 0]
    assert len(keyframe) > 3

    def whole(depacketizer: rtp_av1.Av1Depacketizer, timestamp: int) -> list[int]:
        return [a.timestamp for p, _, m in keyframe for a in depacketizer.push(p, timestamp, m)]

    depacketizer = rtp_av1.Av1Depacketizer(Track("video", "av1"))
    assert depacketizer.push(keyframe[1][0], 0, False) == []  # Z=1 with no OBU open
    assert whole(depacketizer, 1) == [1]
    assert depacketizer.push(keyframe[0][0], 2, False) == []
    assert depacketizer.push(keyframe[0][0], 2, False) == []  # Z=0 while an OBU is open
    assert depacketizer.push(keyframe[-1][0], 2, True) == []
    assert depacketizer.push(keyframe[0][0], 3, False) == []  # ends (new timestamp) inside an OBU
    assert whole(depacketizer, 4) == [4]
    assert depacketizer.push(b"\x10\x10", 5, True) == []  # a lone temporal delimiter: nothing


def test_av1_obu_helpers() -> None:
    assert [av1.leb128(v) for v in (0, 127, 128, 300)] == [b"\x00", b"\x7f", b"\x80\x01", b"\xac\x02"]
    assert av1.read_leb128(b"\xac\x02", 0) == (300, 2)
    obu = av1.Obu(b"\x34\x08", b"xyz")  # frame OBU with an extension header
    assert obu.type == av1.OBU_FRAME
    assert obu.with_size() == b"\x36\x08\x03xyz" and obu.without_size() == b"\x34\x08xyz"
    assert av1.parse_obu(b"\x36\x08\x03xyz") == obu and av1.parse_obu(b"\x34\x08xyz") == obu
    assert av1.split_obus(b"\x12\x00" + b"\x34\x08xyz") == [av1.Obu(b"\x10", b""), obu]
    with pytest.raises(CodecError, match="forbidden"):
        av1.parse_obu(b"\x80")
    with pytest.raises(CodecError, match="says 4 bytes"):
        av1.parse_obu(b"\x36\x08\x04xyz")
    with pytest.raises(CodecError, match="overruns"):
        av1.split_obus(b"\x32\x05ab")
    with pytest.raises(CodecError, match="header truncated"):
        av1.split_obus(b"\x34")
    with pytest.raises(CodecError, match="not a sequence header"):
        av1.make_av1c_record(b"\x32\x00")
    with pytest.raises(CodecError, match="version 1"):
        av1.av1c_sequence_header(b"\x01\x00\x00\x00")
    assert av1.av1c_sequence_header(b"\x81\x00\x0c\x00") is None
    assert av1.frame_type(b"\x80") is None  # show_existing_frame
    assert av1.frame_type(b"\x20") == 1  # INTER_FRAME
    assert av1.frame_type(b"\xff", reduced_still_picture_header=True) == av1.KEY_FRAME
