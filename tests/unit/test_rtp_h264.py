"""H.264 over RTP (RFC 6184) with real libx264 bitstreams: packetize, lose, reorder, rebuild."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable

import pytest

from streamhive.codecs import CodecError, h264
from streamhive.formats.rtp import Access, Depacketizer, Packetizer, RtpError, SdpFormat
from streamhive.formats.rtp.h264 import CODEC, H264Depacketizer, H264Packetizer
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.formats.rtp.reorder import Reorderer
from streamhive.hub.frame import Track
from tests.media import encode_video

av = pytest.importorskip("av")

Frames = list[tuple[tuple[bytes, ...], bool]]


def real_frames(
    encoder: str, width: int, height: int, keyframe: Callable[[list[bytes]], bool], params: str = ""
) -> tuple[bytes, Frames]:
    """A real stream as (config record, [(NAL units, keyframe)]) in decoding order."""
    config, samples = encode_video(encoder, width, height, params=params)
    units = [h264.split_avcc(sample) for sample in samples]
    return config, [(tuple(u), keyframe(u)) for u in units]


def to_packets(packetizer: Packetizer, frames: Frames, seq: int = 0) -> list[RtpPacket]:
    """RTP packets for the frames, one frame every 3600 ticks (25 fps), through the wire format."""
    out = []
    for i, (units, keyframe) in enumerate(frames):
        for payload, marker in packetizer.packetize(units, keyframe):
            packet = RtpPacket(96, seq & 0xFFFF, 1_000_000 + i * 3600, 0xCAFE, marker, payload)
            out.append(RtpPacket.parse(packet.serialize()))
            seq += 1
    return out


def depacketize(depacketizer: Depacketizer, packets: Iterable[RtpPacket | None]) -> list[Access]:
    """Feed packets in order; None is a loss, as a Reorderer reports it."""
    out: list[Access] = []
    for packet in packets:
        if packet is None:
            depacketizer.lost()
        else:
            out += depacketizer.push(packet.payload, packet.timestamp, packet.marker)
    return out


def frame_index(access: Access) -> int:
    return (access.timestamp - 1_000_000) // 3600


def with_params(
    frames: Frames, params: list[bytes], param_types: set[int], nal_type: Callable[[bytes], int]
) -> Frames:
    """What a packetizer should send: parameter sets in front of keyframes that lack them."""
    out = []
    for units, keyframe in frames:
        if keyframe and not param_types & {nal_type(u) for u in units}:
            units = (*params, *units)
        out.append((units, keyframe))
    return out


def h264_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def stream(width: int = 320, height: int = 240, params: str = "") -> tuple[Track, Frames]:
    config, frames = real_frames("libx264", width, height, h264.is_keyframe_nalus, params)
    return Track("video", "h264", config, width=width, height=height), frames


def expected(track: Track, frames: Frames) -> Frames:
    record = h264.parse_avcc_record(track.config)
    return with_params(frames, record.sps + record.pps, {7, 8}, h264_type)


@pytest.mark.parametrize("mtu", [120, 1400])
def test_round_trip(mtu: int) -> None:
    track, frames = stream()
    packets = to_packets(CODEC.packetizer(track, mtu), frames)
    assert all(len(p.payload) <= mtu for p in packets)
    types = {h264_type(p.payload) for p in packets}
    assert {24, 28} <= types if mtu < 200 else 24 in types  # STAP-A for SPS+PPS, FU-A for slices
    assert [p.marker for p in packets].count(True) == len(frames)
    assert packets[-1].marker

    # A receiver that knows nothing from SDP learns the configuration in-band.
    fmt = SdpFormat("H264", 90000, fmtp={"packetization-mode": "1"})
    bare = CODEC.track_from_sdp(fmt)
    accesses = depacketize(CODEC.depacketizer(bare, fmt), packets)
    assert [(a.units, a.keyframe) for a in accesses] == expected(track, frames)
    assert [frame_index(a) for a in accesses] == list(range(len(frames)))
    assert accesses[0].track is not None and all(a.track is None for a in accesses[1:])
    assert accesses[0].track.config == track.config  # byte for byte what FFmpeg wrote
    assert (accesses[0].track.width, accesses[0].track.height) == (320, 240)


def test_access_units_end_on_timestamp_change_without_marker() -> None:
    track, frames = stream()
    packets = to_packets(CODEC.packetizer(track, 300), frames)
    for packet in packets:
        packet.marker = False
    depacketizer = CODEC.depacketizer(track, CODEC.sdp_format(track))
    accesses = depacketize(depacketizer, packets)
    assert [(a.units, a.keyframe) for a in accesses] == expected(track, frames)[:-1]
    # The last one completes when the next access unit starts.
    last = depacketizer.push(b"\x09\xf0", packets[-1].timestamp + 3600, False)
    assert [frame_index(a) for a in last] == [len(frames) - 1]


def lose(packets: list[RtpPacket], indexes: list[int]) -> list[RtpPacket | None]:
    """The packets with those (consecutive) ones replaced by one loss mark."""
    return [*packets[: indexes[0]], None, *packets[indexes[-1] + 1 :]]


def packets_of(packets: list[RtpPacket], frame: int) -> list[int]:
    return [i for i, p in enumerate(packets) if (p.timestamp - 1_000_000) // 3600 == frame]


@pytest.mark.parametrize(
    ("frame", "where", "emitted"),
    [
        (1, "middle", [0, 2, 3, 4]),  # a P frame: lost until the IDR of frame 2
        (3, "first", [0, 1, 2, 4]),
        (2, "middle", [0, 1, 4]),  # the IDR: it and frame 3, which refers to it, are lost
        (2, "last", [0, 1, 4]),  # the marker packet: frame 2 would end at the next timestamp
        (2, "all", [0, 1, 4]),
    ],
)
def test_loss_drops_until_next_keyframe(frame: int, where: str, emitted: list[int]) -> None:
    track, frames = stream(160, 120, "keyint=2")
    assert [k for _, k in frames] == [True, False, True, False, True]
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
    # Losing only the parameter sets in front of the IDR keeps it: the sets are known already.
    first = packets_of(packets, 2)[0]
    assert h264_type(packets[first].payload) == 24
    accesses = depacketize(CODEC.depacketizer(track, CODEC.sdp_format(track)), lose(packets, [first]))
    assert [frame_index(a) for a in accesses] == [0, 1, 2, 3, 4]
    assert accesses[2].units == frames[2][0]
    # Losing the first slice of a two-slice IDR does not: the picture would be half missing.
    first_slice, second_slice = b"\x65\x88" + bytes(20), b"\x65\x40" + bytes(20)
    dp = H264Depacketizer(track, ((), ()))
    assert dp.push(first_slice, 0, False) == []
    assert len(dp.push(second_slice, 0, True)) == 1
    dp.lost()
    assert dp.push(second_slice, 3600, True) == []
    assert (
        len(
            depacketize(
                dp, [RtpPacket(96, 0, 7200, 0, m, s) for s, m in ((first_slice, False), (second_slice, True))]
            )
        )
        == 1
    )


def test_reordered_bursts_through_the_reorderer() -> None:
    track, frames = stream()
    packets = to_packets(CODEC.packetizer(track, 150), frames, seq=65500)  # wraps on the way
    rnd = random.Random(7)
    shuffled = packets[:1]  # the first packet to arrive sets the reorderer's start
    for start in range(1, len(packets), 6):
        burst = packets[start : start + 6]
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
    assert new is not None and new is not track_a
    assert (new.codec, new.width, new.height, new.config) == ("h264", 160, 120, track_b.config)
    assert all(a.track is None for a in accesses[1:])  # the same sets again change nothing
    # The original track is untouched: the session swaps in the new one.
    assert (track_a.width, track_a.config) == (320, stream(320, 240)[0].config)


def test_sdp_format_and_back() -> None:
    track, _ = stream()
    fmt = CODEC.sdp_format(track)
    record = h264.parse_avcc_record(track.config)
    assert (fmt.encoding, fmt.clock_rate, fmt.channels) == ("H264", 90000, None)
    assert fmt.fmtp["packetization-mode"] == "1"
    assert fmt.fmtp["profile-level-id"] == record.sps[0][1:4].hex()
    sets = fmt.fmtp["sprop-parameter-sets"].split(",")
    assert [base64.b64decode(s) for s in sets] == record.sps + record.pps
    back = CODEC.track_from_sdp(fmt)
    assert (back.kind, back.codec, back.config, back.width, back.height) == (
        "video",
        "h264",
        track.config,
        320,
        240,
    )


def test_track_from_sdp_variants() -> None:
    track, _ = stream()
    record = h264.parse_avcc_record(track.config)
    unpadded = ",".join(base64.b64encode(u).decode().rstrip("=") for u in record.sps + record.pps)
    fmt = SdpFormat("h264", 90000, fmtp={"Sprop-Parameter-Sets": unpadded, "PACKETIZATION-MODE": "1"})
    assert CODEC.track_from_sdp(fmt).config == track.config
    sps_only = CODEC.track_from_sdp(
        SdpFormat("H264", 90000, fmtp={"sprop-parameter-sets": unpadded.split(",")[0]})
    )
    assert (sps_only.config, sps_only.width) == (b"", 320)
    empty = CODEC.track_from_sdp(SdpFormat("H264", 90000))
    assert (empty.config, empty.width, empty.height) == (b"", None, None)
    assert CODEC.sdp_format(empty).fmtp == {"packetization-mode": "1"}


@pytest.mark.parametrize(
    "fmtp",
    [
        {"packetization-mode": "2"},
        {"sprop-parameter-sets": "Z2QADaz!ZQUH6,aOvjyyLA"},
        {"sprop-parameter-sets": "Z2Q=AAA,aOvjyyLA"},
        {"sprop-parameter-sets": "Z2Q,aOvjyyLA"},  # an SPS cut short
        {"sprop-parameter-sets": "é"},
    ],
)
def test_track_from_sdp_errors(fmtp: dict[str, str]) -> None:
    with pytest.raises(RtpError):
        CODEC.track_from_sdp(SdpFormat("H264", 90000, fmtp=fmtp))


def test_packetizer_inserts_parameter_sets() -> None:
    track, _ = stream()
    record = h264.parse_avcc_record(track.config)
    packetizer = CODEC.packetizer(track, 1400)
    aud, sei, idr, slice_ = b"\x09\xf0", b"\x06\x05\x01\x80", b"\x65\x88" + bytes(50), b"\x41\x9a" + bytes(50)

    def units_sent(units: tuple[bytes, ...], keyframe: bool) -> tuple[bytes, ...]:
        packets = packetizer.packetize(units, keyframe)
        return depacketize(
            H264Depacketizer(track, ((), ())),
            [RtpPacket(96, i, 0, 0, m, p) for i, (p, m) in enumerate(packets)],
        )[0].units

    sets = (*record.sps, *record.pps)
    assert units_sent((aud, sei, idr), True) == (aud, *sets, sei, idr)
    assert units_sent((idr,), True) == (*sets, idr)
    assert units_sent((*sets, idr), True) == (*sets, idr)
    assert units_sent((record.sps[0], idr), True) == (*record.pps, record.sps[0], idr)
    assert packetizer.packetize((slice_,), False) == [(slice_, True)]
    assert CODEC.packetizer(Track("video", "h264"), 1400).packetize((idr,), True) == [(idr, True)]


def test_packetizer_headers() -> None:
    packetizer = H264Packetizer([], 100)
    small = [b"\x67" + bytes(10), b"\x68" + bytes(5), b"\x06" + bytes(3)]
    big = b"\x65" + bytes(range(256)) * 2  # NRI 3, type 5
    packets = packetizer.packetize((*small, big), True)
    stap, *fus = packets
    assert stap == (b"\x78" + b"".join(len(u).to_bytes(2, "big") + u for u in small), False)
    assert [m for _, m in fus] == [False] * (len(fus) - 1) + [True]
    assert [p[:2] for p, _ in fus] == [b"\x7c\x85"] + [b"\x7c\x05"] * (len(fus) - 2) + [b"\x7c\x45"]
    assert b"".join(p[2:] for p, _ in fus) == big[1:]
    assert all(len(p) <= 100 for p, _ in packets)
    assert packetizer.packetize((b"\x41" + bytes(99),), False) == [(b"\x41" + bytes(99), True)]
    assert packetizer.packetize((b"",), False) == []
    with pytest.raises(RtpError):
        H264Packetizer([], 8)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\x19\x00\x01\x00", "STAP-B"),
        (b"\x1a\x00", "MTAP16"),
        (b"\x1b\x00", "MTAP24"),
        (b"\x1d\x80", "FU-B"),
        (b"\x00abc", "reserved NAL unit type 0"),
        (b"\x1eabc", "reserved NAL unit type 30"),
        (b"\x1c", "FU-A without its FU header"),
        (b"\x18", "truncated in a NAL unit size"),
        (b"\x18\x00\x05\x67\x00", "does not fit"),
        (b"\x18\x00\x01\x67\x00", "truncated in a NAL unit size"),
        (b"\x18\x00\x00", "0 bytes does not fit"),
    ],
)
def test_depacketizer_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        H264Depacketizer(Track("video", "h264"), ((), ())).push(payload, 0, True)


def test_depacketizer_fragment_rules() -> None:
    track, _ = stream()
    idr = (b"\x65\x88" + bytes(range(200)),)
    keyframe = [
        RtpPacket(96, i, 9000, 0, m, p)
        for i, (p, m) in enumerate(H264Packetizer([], 64).packetize(idr, True))
    ]
    assert len(keyframe) > 3

    # Joining mid-fragment: the orphan fragments are dropped, then the next keyframe plays.
    dp = H264Depacketizer(track, ((), ()))
    assert depacketize(dp, keyframe[1:]) == []
    assert [a.units for a in depacketize(dp, keyframe)] == [idr]

    # A missing middle fragment is noticed by the caller (lost()); a missing end by the marker.
    dp = H264Depacketizer(track, ((), ()))
    assert depacketize(dp, [*keyframe[:2], None, *keyframe[3:]]) == []
    assert depacketize(dp, keyframe[:-1]) == []
    assert dp.push(keyframe[0].payload, 12000, False) == []  # new timestamp: the unit had no end
    # A fragment of another NAL type in the middle, or a new unit mid-fragment, breaks the unit.
    dp = H264Depacketizer(track, ((), ()))
    fake_middle = bytes((keyframe[1].payload[0], 0x01)) + b"x"
    assert depacketize(dp, [keyframe[0], RtpPacket(96, 0, 9000, 0, False, fake_middle), *keyframe[1:]]) == []
    assert depacketize(dp, [keyframe[0], RtpPacket(96, 0, 18000, 0, False, b"\x41x"), *keyframe[1:]]) == []
    # Start and end in one fragment (a sender quirk) is accepted as a whole unit.
    dp = H264Depacketizer(track, ((), ()))
    assert dp.push(b"\x7c\xc5\x88bc", 0, True)[0].units == (b"\x65\x88bc",)


def test_unparseable_inband_sps_keeps_the_track() -> None:
    track, _ = stream()
    dp = H264Depacketizer(track, ((), ()))
    accesses = dp.push(b"\x18\x00\x02\x67\x00\x00\x02\x68\x00\x00\x02\x65\x88", 0, True)
    assert len(accesses) == 1 and accesses[0].track is None and accesses[0].keyframe


@pytest.mark.parametrize(
    ("pix_fmt", "profile"),
    [("yuv420p", ""), ("yuv420p", "baseline"), ("yuv444p", ""), ("gray", ""), ("yuv420p10le", "")],
)
def test_make_avcc_record(pix_fmt: str, profile: str) -> None:
    config, samples = encode_video("libx264", 160, 120, pix_fmt, "", profile)
    record = h264.parse_avcc_record(config)
    made = h264.make_avcc_record(record.sps, record.pps)
    assert made == config  # the same bytes FFmpeg's MP4 muxer wrote
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = made
    pictures = [f for sample in samples for f in decoder.decode(av.Packet(sample))] + list(
        decoder.decode(None)
    )
    assert len(pictures) == len(samples) and (pictures[0].width, pictures[0].height) == (160, 120)


def test_make_avcc_record_errors() -> None:
    config, _ = encode_video("libx264", 160, 120)
    record = h264.parse_avcc_record(config)
    for sps, pps in (
        ([], record.pps),
        (record.sps, []),
        ([b"\x67\x64"], record.pps),
        ([b"\x41abc"], record.pps),
    ):
        with pytest.raises(CodecError):
            h264.make_avcc_record(sps, pps)


def test_resent_subsets_of_known_sets_change_nothing() -> None:
    track, _ = stream()
    record = h264.parse_avcc_record(track.config)
    sps, pps = record.sps[0], record.pps[0]
    other_pps = b"\x68\xce\x38\x80"
    idr = b"\x65\x88" + bytes(20)
    dp = H264Depacketizer(track, ((sps,), (pps,)))
    first = depacketize(
        dp, [RtpPacket(96, i, 0, 0, i == 3, u) for i, u in enumerate((sps, pps, other_pps, idr))]
    )
    assert first[0].track is not None  # a second PPS is news
    again = depacketize(dp, [RtpPacket(96, i, 3600, 0, i == 2, u) for i, u in enumerate((sps, pps, idr))])
    assert again[0].track is None  # one of the two PPS again is not


def test_an_access_unit_that_never_ends_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender repeating one timestamp without a marker must not grow memory without bound."""
    from streamhive.formats.rtp import h264 as rtp_h264

    monkeypatch.setattr(rtp_h264, "MAX_ACCESS_UNIT", 10_000)
    depack = CODEC.depacketizer(Track("video", "h264"), SdpFormat("H264", 90000))
    start = bytes([0x7C, 0x85]) + bytes(1000)  # FU-A start of an IDR slice
    middle = bytes([0x7C, 0x05]) + bytes(1000)
    depack.push(start, 1, False)
    with pytest.raises(RtpError, match="over 10000 bytes"):
        for _ in range(20):
            depack.push(middle, 1, False)
    assert depack.push(middle, 1, False) == []  # the rest of that unit is dropped quietly
