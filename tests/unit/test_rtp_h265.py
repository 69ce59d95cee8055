"""H.265 over RTP (RFC 7798) with real libx265 bitstreams: packetize, lose, reorder, rebuild."""

from __future__ import annotations

import base64
import random

import pytest

from streamhive.codecs import CodecError, h265
from streamhive.formats.rtp import RtpError, SdpFormat
from streamhive.formats.rtp.h265 import CODEC, H265Depacketizer, H265Packetizer
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.formats.rtp.reorder import Reorderer
from streamhive.hub.frame import Track
from tests.media import encode_video
from tests.unit.test_rtp_h264 import (
    Frames,
    depacketize,
    frame_index,
    lose,
    packets_of,
    real_frames,
    to_packets,
    with_params,
)

av = pytest.importorskip("av")

BARE = Track("video", "h265")


def h265_type(unit: bytes) -> int:
    return (unit[0] >> 1) & 0x3F


def stream(width: int = 320, height: int = 240, params: str = "") -> tuple[Track, Frames]:
    config, frames = real_frames("libx265", width, height, h265.is_keyframe_nalus, params)
    return Track("video", "h265", config, width=width, height=height), frames


def param_sets(track: Track) -> list[bytes]:
    record = h265.parse_hvcc_record(track.config)
    return record.vps + record.sps + record.pps


def expected(track: Track, frames: Frames) -> Frames:
    return with_params(frames, param_sets(track), {32, 33, 34}, h265_type)


def assert_same_record(made: bytes, ffmpeg: bytes) -> None:
    """Equal to FFmpeg's hvcC but for the SEI array x265 adds (numOfArrays and what follows)."""
    assert made[:22] == ffmpeg[:22]
    assert h265.parse_hvcc_record(made) == h265.parse_hvcc_record(ffmpeg)


@pytest.mark.parametrize("mtu", [120, 1400])
def test_round_trip(mtu: int) -> None:
    track, frames = stream()
    packets = to_packets(CODEC.packetizer(track, mtu), frames)
    assert all(len(p.payload) <= mtu for p in packets)
    types = {h265_type(p.payload) for p in packets}
    assert {48, 49} <= types  # an AP for VPS+SPS+PPS, FUs for the slices
    assert [p.marker for p in packets].count(True) == len(frames)

    fmt = SdpFormat("H265", 90000)
    accesses = depacketize(CODEC.depacketizer(CODEC.track_from_sdp(fmt), fmt), packets)
    assert [(a.units, a.keyframe) for a in accesses] == expected(track, frames)
    assert [frame_index(a) for a in accesses] == list(range(len(frames)))
    new = accesses[0].track
    assert new is not None and all(a.track is None for a in accesses[1:])
    assert (new.codec, new.width, new.height) == ("h265", 320, 240)
    assert_same_record(new.config, track.config)


@pytest.mark.parametrize(
    ("frame", "where", "emitted"),
    [
        (2, "middle", [0, 1, 4]),  # a RASL picture: lost until the CRA of frame 4
        (1, "middle", [0, 4]),  # the CRA itself
        (1, "last", [0, 4]),
        (3, "first", [0, 1, 2, 4]),
        (1, "all", [0, 4]),
    ],
)
def test_loss_drops_until_next_keyframe(frame: int, where: str, emitted: list[int]) -> None:
    track, frames = stream(160, 120, "keyint=2")
    assert [k for _, k in frames] == [True, True, False, False, True]
    packets = to_packets(CODEC.packetizer(track, 200), frames)
    indexes = packets_of(packets, frame)
    middle = len(indexes) // 2
    lost = {"first": indexes[:1], "middle": indexes[middle : middle + 1], "last": indexes[-1:]}.get(
        where, indexes
    )
    accesses = depacketize(CODEC.depacketizer(track, CODEC.sdp_format(track)), lose(packets, lost))
    assert [frame_index(a) for a in accesses] == emitted
    want = expected(track, frames)
    assert all((a.units, a.keyframe) == want[frame_index(a)] for a in accesses)


def test_keyframe_after_a_loss_must_start_its_picture() -> None:
    track, frames = stream(160, 120, "keyint=2")
    packets = to_packets(CODEC.packetizer(track, 200), frames)
    first = packets_of(packets, 1)[0]
    assert h265_type(packets[first].payload) == 48  # the AP of parameter sets
    accesses = depacketize(CODEC.depacketizer(track, CODEC.sdp_format(track)), lose(packets, [first]))
    assert [frame_index(a) for a in accesses] == [0, 1, 2, 3, 4]
    second_segment = b"\x26\x01\x40" + bytes(10)  # IDR_W_RADL, not the first slice segment
    dp = H265Depacketizer(track, ((), (), ()), False)
    dp.lost()
    assert dp.push(second_segment, 0, True) == []
    assert len(dp.push(b"\x26\x01\xc0" + bytes(10), 3600, True)) == 1


def test_reordered_bursts_through_the_reorderer() -> None:
    track, frames = stream()
    packets = to_packets(CODEC.packetizer(track, 150), frames, seq=65530)
    rnd = random.Random(3)
    shuffled = packets[:1]
    for start in range(1, len(packets), 5):
        burst = packets[start : start + 5]
        rnd.shuffle(burst)
        shuffled += burst
    reorderer = Reorderer()
    ordered = [item for packet in shuffled for item in reorderer.push(packet)]
    assert None not in ordered
    accesses = depacketize(CODEC.depacketizer(track, CODEC.sdp_format(track)), ordered)
    assert [(a.units, a.keyframe) for a in accesses] == expected(track, frames)


def test_inband_parameter_change_gives_a_new_track() -> None:
    track_a, _ = stream(320, 240)
    track_b, frames_b = stream(160, 120, "keyint=2")
    depacketizer = CODEC.depacketizer(track_a, CODEC.sdp_format(track_a))
    accesses = depacketize(depacketizer, to_packets(CODEC.packetizer(track_b, 1400), frames_b))
    assert len(accesses) == len(frames_b)
    new = accesses[0].track
    assert new is not None and (new.width, new.height) == (160, 120)
    assert_same_record(new.config, track_b.config)
    assert all(a.track is None for a in accesses[1:])


def test_sdp_format_and_back() -> None:
    track, _ = stream()
    fmt = CODEC.sdp_format(track)
    record = h265.parse_hvcc_record(track.config)
    assert (fmt.encoding, fmt.clock_rate) == ("H265", 90000)
    assert (fmt.fmtp["profile-id"], fmt.fmtp["tier-flag"], fmt.fmtp["level-id"]) == (
        "1",
        "0",
        str(track.config[12]),
    )
    assert [base64.b64decode(fmt.fmtp[k]) for k in ("sprop-vps", "sprop-sps", "sprop-pps")] == [
        record.vps[0],
        record.sps[0],
        record.pps[0],
    ]
    back = CODEC.track_from_sdp(fmt)
    assert (back.codec, back.width, back.height) == ("h265", 320, 240)
    assert_same_record(back.config, track.config)
    empty = CODEC.track_from_sdp(SdpFormat("H265", 90000))
    assert (empty.config, empty.width) == (b"", None)
    assert CODEC.sdp_format(empty).fmtp == {}
    sps_only = CODEC.track_from_sdp(SdpFormat("H265", 90000, fmtp={"SPROP-SPS": fmt.fmtp["sprop-sps"]}))
    assert (sps_only.config, sps_only.width) == (b"", 320)


@pytest.mark.parametrize(
    "fmtp",
    [
        {"sprop-sps": "QgEB*"},
        {"sprop-sps": "QgEBAWAA"},  # cut short
        {"sprop-max-don-diff": "x"},
        {"sprop-max-don-diff": "-1"},
        {"sprop-max-don-diff": "40000"},
    ],
)
def test_track_from_sdp_errors(fmtp: dict[str, str]) -> None:
    with pytest.raises(RtpError):
        CODEC.track_from_sdp(SdpFormat("H265", 90000, fmtp=fmtp))


def test_packetizer_headers() -> None:
    packetizer = H265Packetizer([], 100)
    vps, sps = b"\x40\x01" + bytes(10), b"\x42\x01" + bytes(8)
    sei = b"\x4e\x0b" + bytes(4)  # layer 1, TID 3: the AP takes the lowest ids
    big = b"\x26\x01" + bytes(range(250))  # IDR_W_RADL
    packets = packetizer.packetize((vps, sps, sei, big), True)
    ap, *fus = packets
    assert ap == (b"\x60\x01" + b"".join(len(u).to_bytes(2, "big") + u for u in (vps, sps, sei)), False)
    assert [p[:3] for p, _ in fus] == [b"\x62\x01\x93"] + [b"\x62\x01\x13"] * (len(fus) - 2) + [
        b"\x62\x01\x53"
    ]
    assert b"".join(p[3:] for p, _ in fus) == big[2:]
    assert [m for _, m in packets] == [False] * (len(packets) - 1) + [True]
    assert all(len(p) <= 100 for p, _ in packets)


def test_packetizer_inserts_parameter_sets_after_aud() -> None:
    track, _ = stream()
    aud, idr = b"\x46\x01\x10", b"\x26\x01\xc0" + bytes(30)
    packets = CODEC.packetizer(track, 1400).packetize((aud, idr), True)
    dp = H265Depacketizer(BARE, ((), (), ()), False)
    accesses = depacketize(dp, [RtpPacket(96, i, 0, 0, m, p) for i, (p, m) in enumerate(packets)])
    assert accesses[0].units == (aud, *param_sets(track), idr)


def test_donl_fields_are_skipped() -> None:
    vps, idr = b"\x40\x01abc", b"\x26\x01\xc0" + bytes(range(40))
    fmt = SdpFormat("H265", 90000, fmtp={"sprop-max-don-diff": "2"})
    dp = CODEC.depacketizer(BARE, fmt)
    ap = b"\x60\x01" + b"\x00\x07" + b"\x00\x05" + vps + b"\x01" + len(idr).to_bytes(2, "big") + idr
    assert dp.push(ap, 0, True)[0].units == (vps, idr)
    fu = [b"\x62\x01\x93\x00\x08" + idr[2:20], b"\x62\x01\x13" + idr[20:30], b"\x62\x01\x53" + idr[30:]]
    accesses = depacketize(dp, [RtpPacket(96, i, 3600, 0, i == 2, p) for i, p in enumerate(fu)])
    assert accesses[0].units == (idr,)
    with pytest.raises(RtpError, match="DONL"):
        dp.push(b"\x62\x01\x93\x00", 7200, False)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x40", "too short"),
        (b"\x64\x01\x00\x00", "PACI"),
        (b"\x66\x01abc", "reserved type 51"),
        (b"\x7e\x01abc", "reserved type 63"),
        (b"\x60\x01\x00", "truncated"),
        (b"\x60\x01\x00\x09\x40\x01", "does not fit"),
        (b"\x60\x01\x00\x01\x40", "does not fit"),  # a unit shorter than its header
    ],
)
def test_depacketizer_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        H265Depacketizer(BARE, ((), (), ()), False).push(payload, 0, True)


@pytest.mark.parametrize(
    ("pix_fmt", "params"),
    [("yuv420p", ""), ("yuv444p", ""), ("yuv420p", "temporal-layers=3"), ("yuv420p10le", "")],
)
def test_make_hvcc_record(pix_fmt: str, params: str) -> None:
    config, samples = encode_video("libx265", 160, 120, pix_fmt, params)
    record = h265.parse_hvcc_record(config)
    made = h265.make_hvcc_record(record.vps, record.sps, record.pps)
    assert_same_record(made, config)
    decoder = av.CodecContext.create("hevc", "r")
    decoder.extradata = made
    pictures = [f for sample in samples for f in decoder.decode(av.Packet(sample))] + list(
        decoder.decode(None)
    )
    assert len(pictures) == len(samples) and (pictures[0].width, pictures[0].height) == (160, 120)


def test_make_hvcc_record_errors() -> None:
    config, _ = encode_video("libx265", 160, 120)
    r = h265.parse_hvcc_record(config)
    for vps, sps, pps in (
        ([], r.sps, r.pps),
        (r.vps, [], r.pps),
        (r.vps, r.sps, []),
        (r.vps, [r.sps[0][:8]], r.pps),
    ):
        with pytest.raises(CodecError):
            h265.make_hvcc_record(vps, sps, pps)
