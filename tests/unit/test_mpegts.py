"""MPEG-TS muxer: real H.264/H.265 + AAC/Opus frames muxed and checked with ffprobe."""

from __future__ import annotations

import functools
import io
import json
import math
import subprocess
from array import array
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from streamhive.codecs import h264, h265
from streamhive.formats.mpegts import (
    AUDIO_PID,
    PACKET_SIZE,
    PMT_PID,
    TIMESTAMP_OFFSET,
    VIDEO_PID,
    TsError,
    TsMuxer,
    crc32_mpeg2,
)
from streamhive.hub.frame import Frame, Track
from tests.conftest import FFPROBE, needs_ffmpeg

av = pytest.importorskip("av")

WIDTH, HEIGHT = 320, 240
GOP = 25
ENCODER_PARAMS = {
    "libx264": ("x264-params", "log-level=none:keyint=25:min-keyint=25:scenecut=0"),
    "libx265": (
        "x265-params",
        "log-level=none:keyint=25:min-keyint=25:scenecut=0:open-gop=0:pools=none:frame-threads=1",
    ),
}
CODEC_NAMES = {"h264": "h264", "h265": "hevc", "aac": "aac", "opus": "opus"}


def _to_90k(value: int, time_base: Fraction) -> int:
    scaled = value * time_base * 90000
    assert scaled.denominator == 1, "test clocks must convert to 90 kHz exactly"
    return int(scaled)


@functools.cache
def encode_av(
    video: str = "libx264", audio: str = "aac", frames: int = 2 * GOP, bframes: bool = True
) -> tuple[tuple[Track, ...], tuple[Frame, ...]]:
    """Encode video + audio into MP4 with PyAV and read back hub Tracks and Frames in DTS order."""
    av.logging.set_level(av.logging.ERROR)
    key, params = ENCODER_PARAMS[video]
    options = {key: params + ("" if bframes else ":bframes=0")}
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream(video, rate=25, options=options)
        vs.codec_context.thread_count = 1  # deterministic output, also on a loaded machine
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        aus = out.add_stream(audio, rate=48000)
        aus.layout = "stereo"
        pattern = bytes(range(256)) * (WIDTH * HEIGHT // 256 + 64)
        for i in range(frames):
            picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for plane in picture.planes:
                plane.update(pattern[i * 3 : i * 3 + plane.buffer_size])
            picture.pts = i
            out.mux(vs.encode(picture))
        out.mux(vs.encode(None))
        ctx = aus.codec_context
        samples = ctx.frame_size or 960
        for i in range(frames * 48000 // 25 // samples):
            sound = av.AudioFrame(format=ctx.format.name, layout="stereo", samples=samples)
            tone = array(
                "f",
                (0.3 * math.sin(n * 440 * math.tau / 48000) for n in range(i * samples, (i + 1) * samples)),
            )
            for plane in sound.planes:
                plane.update(tone.tobytes())
            sound.sample_rate, sound.pts = 48000, i * samples
            out.mux(aus.encode(sound))
        out.mux(aus.encode(None))
    with av.open(io.BytesIO(buf.getvalue())) as inp:
        v, a = inp.streams.video[0], inp.streams.audio[0]
        vconfig, aconfig = bytes(v.codec_context.extradata), bytes(a.codec_context.extradata)
        codec = "h264" if video == "libx264" else "h265"
        parse = h264.parse_avcc_record if codec == "h264" else h265.parse_hvcc_record
        length_size = parse(vconfig).length_size
        tracks = (
            Track("video", codec, vconfig, width=WIDTH, height=HEIGHT),
            Track("audio", "opus" if audio == "libopus" else "aac", aconfig, sample_rate=48000, channels=2),
        )
        out_frames = []
        for packet in inp.demux(v, a):
            if not packet.size:
                continue
            index = 0 if packet.stream is v else 1
            data = bytes(packet)
            units = tuple(h264.split_avcc(data, length_size)) if index == 0 else (data,)
            pts = _to_90k(packet.pts, packet.time_base)
            dts = _to_90k(packet.dts, packet.time_base)
            out_frames.append(Frame(index, pts, dts, packet.is_keyframe, units))
    out_frames.sort(key=lambda f: (f.dts, f.track))
    return tracks, tuple(out_frames)


def mux(tracks: tuple[Track, ...], segments: list[list[Frame]], muxer: TsMuxer | None = None) -> list[bytes]:
    """One TS byte string per segment, all from one muxer."""
    muxer = muxer or TsMuxer(list(tracks))
    return [muxer.header() + b"".join(muxer.frame(f) for f in seg) for seg in segments]


def split_at_keyframes(frames: tuple[Frame, ...]) -> list[list[Frame]]:
    """Segments that each start at a video keyframe (audio before it stays in the previous one)."""
    segments: list[list[Frame]] = []
    for f in frames:
        if not segments or (f.track == 0 and f.keyframe):
            segments.append([])
        segments[-1].append(f)
    return segments


def ts_packets(data: bytes) -> Iterator[tuple[int, bool, int, bytes, bytes]]:
    """(pid, unit_start, continuity, adaptation field, payload) per TS packet."""
    assert len(data) % PACKET_SIZE == 0
    for pos in range(0, len(data), PACKET_SIZE):
        packet = data[pos : pos + PACKET_SIZE]
        assert packet[0] == 0x47
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        control = packet[3] >> 4 & 3
        assert control in (1, 3)  # this muxer never sends adaptation-only packets
        body = 4
        adaptation = b""
        if control == 3:
            body = 5 + packet[4]
            assert body <= PACKET_SIZE
            adaptation = packet[5:body]
        yield pid, bool(packet[1] & 0x40), packet[3] & 0x0F, adaptation, packet[body:]


def assert_continuous(data: bytes) -> None:
    last: dict[int, int] = {}
    for pid, _, cc, _, _ in ts_packets(data):
        if pid in last:
            assert cc == (last[pid] + 1) % 16, f"PID {pid:#x}: continuity {last[pid]} -> {cc}"
        last[pid] = cc


def pes_units(data: bytes, pid: int) -> list[bytes]:
    """Reassembled PES packets of one PID."""
    pes: list[bytearray] = []
    for p, start, _, _, payload in ts_packets(data):
        if p == pid:
            if start:
                pes.append(bytearray())
            pes[-1] += payload
    return [bytes(p) for p in pes]


def read_ts_field(field: bytes) -> int:
    return (
        ((field[0] >> 1) & 7) << 30
        | (int.from_bytes(field[1:3], "big") >> 1) << 15
        | int.from_bytes(field[3:5], "big") >> 1
    )


def ffprobe(path: Path) -> dict:
    """ffprobe's streams (with decoded frame counts) and packets; any error output fails the test."""
    assert FFPROBE is not None
    result = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-count_frames", "-show_packets", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def assert_probe_matches(probe: dict, tracks: tuple[Track, ...], frames: list[Frame]) -> None:
    streams = probe["streams"]
    assert [s["codec_name"] for s in streams] == [CODEC_NAMES[t.codec] for t in tracks]
    video, audio = streams
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert (int(audio["sample_rate"]), audio["channels"]) == (48000, 2)
    for index, stream in enumerate(streams):
        ours = [f for f in frames if f.track == index]
        assert int(stream["nb_read_frames"]) == len(ours)
        got = [(p["pts"], p["dts"]) for p in probe["packets"] if p["stream_index"] == index]
        want = [(f.pts + TIMESTAMP_OFFSET, f.dts + TIMESTAMP_OFFSET) for f in ours]
        assert got == want


COMBOS = [
    ("libx264", "aac", False),
    ("libx264", "aac", True),
    ("libx265", "aac", False),
    ("libx265", "aac", True),
    ("libx264", "libopus", True),
]


@needs_ffmpeg
@pytest.mark.parametrize(("video", "audio", "bframes"), COMBOS)
def test_ffprobe_reads_what_we_muxed(tmp_path: Path, video: str, audio: str, bframes: bool) -> None:
    tracks, frames = encode_av(video, audio, bframes=bframes)
    assert any(f.pts != f.dts for f in frames if f.track == 0) == bframes
    path = tmp_path / "out.ts"
    path.write_bytes(b"".join(mux(tracks, split_at_keyframes(frames))))
    assert_probe_matches(ffprobe(path), tracks, list(frames))


@needs_ffmpeg
@pytest.mark.parametrize("video", ["libx264", "libx265"])
def test_segments_continue_and_decode_alone(tmp_path: Path, video: str) -> None:
    tracks, frames = encode_av(video)
    segments = split_at_keyframes(frames)
    assert len(segments) == 2
    data = mux(tracks, segments)
    assert_continuous(b"".join(data))
    for i, (segment, frames_in) in enumerate(zip(data, segments, strict=True)):
        assert [pid for pid, *_ in ts_packets(segment[: 2 * PACKET_SIZE])] == [0, PMT_PID]
        path = tmp_path / f"seg{i}.ts"
        path.write_bytes(segment)
        assert_probe_matches(ffprobe(path), tracks, frames_in)


def test_pat_pmt_layout_and_crc() -> None:
    tracks, _ = encode_av()
    header = TsMuxer(list(tracks)).header()
    assert len(header) == 2 * PACKET_SIZE
    (pat_pid, _, _, _, pat), (pmt_pid, _, _, _, pmt) = ts_packets(header)
    assert (pat_pid, pmt_pid) == (0, PMT_PID)
    for payload, table_id in ((pat, 0), (pmt, 2)):
        assert payload[0] == 0  # pointer_field
        length = ((payload[2] & 0x0F) << 8) | payload[3]
        section = payload[1 : 4 + length]
        assert section[0] == table_id
        assert crc32_mpeg2(section) == 0  # a section including its own CRC checks to zero
        assert set(payload[4 + length :]) == {0xFF}
    assert pat[9:11] == b"\x00\x01" and int.from_bytes(pat[11:13], "big") & 0x1FFF == PMT_PID
    assert int.from_bytes(pmt[9:11], "big") & 0x1FFF == VIDEO_PID  # PCR_PID
    assert pmt[13:18] == bytes((0x1B, 0xE1, 0x00, 0xF0, 0x00))
    assert pmt[18:23] == bytes((0x0F, 0xE1, 0x01, 0xF0, 0x00))


def test_crc32_mpeg2_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7


@pytest.mark.parametrize("video", ["libx264", "libx265"])
def test_access_units_get_aud_and_parameter_sets(video: str) -> None:
    tracks, frames = encode_av(video)
    muxer = TsMuxer(list(tracks))
    nal_type = (lambda u: u[0] & 0x1F) if video == "libx264" else h265.nal_type
    aud, sps = (9, 7) if video == "libx264" else (35, 33)
    key = next(f for f in frames if f.track == 0 and f.keyframe)
    delta = next(f for f in frames if f.track == 0 and not f.keyframe)
    assert sps not in map(nal_type, key.units)

    def annexb_types(frame: Frame) -> list[int]:
        pes = pes_units(muxer.frame(frame), VIDEO_PID)[0]
        return [nal_type(u) for u in h264.split_annexb(pes[9 + pes[8] :])]

    key_types = annexb_types(key)
    assert key_types[0] == aud and key_types.count(aud) == 1
    params = [7, 8] if video == "libx264" else [32, 33, 34]
    assert key_types[1 : 1 + len(params)] == params
    assert key_types[1 + len(params) :] == list(map(nal_type, key.units))
    assert annexb_types(delta) == [aud, *map(nal_type, delta.units)]
    # A keyframe that already carries its parameter sets (and an AUD) is not given copies.
    pes = pes_units(muxer.frame(key), VIDEO_PID)[0]
    inband = Frame(0, key.pts, key.dts, True, tuple(h264.split_annexb(pes[9 + pes[8] :])))
    assert annexb_types(inband) == key_types


def test_pes_timestamps_pcr_and_random_access() -> None:
    tracks, frames = encode_av()
    data = mux(tracks, split_at_keyframes(frames))[0]
    video = [f for f in frames if f.track == 0][:GOP]
    audio = [f for f in frames if f.track == 1 and f.dts < video[-1].dts]
    pcrs = []
    starts = 0
    for pid, start, _, adaptation, _ in ts_packets(data):
        if pid == VIDEO_PID and start:
            frame = video[starts]
            starts += 1
            assert bool(adaptation and adaptation[0] & 0x40) == frame.keyframe
            if adaptation and adaptation[0] & 0x10:
                base = int.from_bytes(adaptation[1:7], "big") >> 15
                assert base <= frame.dts + TIMESTAMP_OFFSET
                pcrs.append(base)
        elif pid == AUDIO_PID and adaptation:
            assert not adaptation[0] & 0x10  # PCR only on the video PID
    assert starts == len(video)
    assert pcrs[0] == video[0].dts + TIMESTAMP_OFFSET - 63000
    assert max(b - a for a, b in zip(pcrs, pcrs[1:], strict=False)) <= 9000  # <= 100 ms
    for pes, frame in zip(pes_units(data, VIDEO_PID), video, strict=True):
        assert pes[:4] == b"\x00\x00\x01\xe0" and pes[4:6] == b"\x00\x00"
        assert read_ts_field(pes[9:14]) == frame.pts + TIMESTAMP_OFFSET
        if frame.pts != frame.dts:
            assert pes[7] == 0xC0 and read_ts_field(pes[14:19]) == frame.dts + TIMESTAMP_OFFSET
        else:
            assert pes[7] == 0x80
    for pes, frame in zip(pes_units(data, AUDIO_PID), audio, strict=False):
        assert pes[3] == 0xC0 and int.from_bytes(pes[4:6], "big") == len(pes) - 6
        assert pes[7] == 0x80 and read_ts_field(pes[9:14]) == frame.pts + TIMESTAMP_OFFSET
        assert pes[14:16] == b"\xff\xf1" and pes[21:] == frame.units[0]


def test_timestamps_wrap_at_33_bits() -> None:
    tracks, frames = encode_av()
    frame = frames[0]
    late = Frame(
        frame.track, (1 << 33) - TIMESTAMP_OFFSET + 5, (1 << 33) - TIMESTAMP_OFFSET + 5, True, frame.units
    )
    pes = pes_units(TsMuxer(list(tracks)).frame(late), VIDEO_PID)[0]
    assert read_ts_field(pes[9:14]) == 5


def test_audio_only_puts_pcr_on_audio() -> None:
    tracks, frames = encode_av()
    muxer = TsMuxer([tracks[1]])
    pmt = list(ts_packets(muxer.header()))[1][4]
    assert int.from_bytes(pmt[9:11], "big") & 0x1FFF == AUDIO_PID
    audio = Frame(0, 0, 0, True, next(f for f in frames if f.track == 1).units)
    (_, _, _, adaptation, _), *_ = ts_packets(muxer.frame(audio))
    assert adaptation[0] & 0x50 == 0x50


@pytest.mark.parametrize(
    ("tracks", "message"),
    [
        ([Track("video", "av1")], "av1"),
        ([Track("audio", "mp3")], "mp3"),
        ([Track("audio", "aac")], "ADTS"),
        ([Track("audio", "opus", b"OpusHead\x01\x06" + bytes(8) + b"\x01")], "family 1"),
        ([Track("video", "h264", b"\x02junk")], "h264"),
        ([Track("video", "h264"), Track("video", "h264")], "one video"),
        ([], "at least one"),
    ],
)
def test_unsupported_tracks_raise(tracks: list[Track], message: str) -> None:
    with pytest.raises(TsError, match=message):
        TsMuxer(tracks)


def test_bad_frames_raise() -> None:
    tracks, _ = encode_av()
    muxer = TsMuxer(list(tracks))
    with pytest.raises(TsError, match="track 5"):
        muxer.frame(Frame(5, 0, 0, True, (b"x",)))
    with pytest.raises(TsError, match="too large"):
        muxer.frame(Frame(1, 0, 0, True, (bytes(9000),)))


@pytest.mark.parametrize("keyframe", [False, True])
def test_every_payload_size_around_packet_boundaries(keyframe: bool) -> None:
    """Stuffing covers the 1- and 2-byte cases and the PES comes back byte for byte."""
    muxer = TsMuxer([Track("video", "h264")])  # no config: nothing inserted, PES size is exact
    unit = bytes((0x41,)) + bytes(range(1, 256)) * 3
    muxer.frame(Frame(0, 0, 0, True, (unit,)))  # the PCR is not due again at the same DTS
    for size in range(150, 600):
        frame = Frame(0, 0, 0, keyframe, (unit[:size],))
        data = muxer.frame(frame)
        pes = pes_units(data, VIDEO_PID)
        assert len(pes) == 1
        assert pes[0][9 + pes[0][8] :] == b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01" + unit[:size]
        assert len(data) == PACKET_SIZE * -(-(len(pes[0]) + (8 if keyframe else 0)) // 184)


@pytest.mark.parametrize("codec", ["mjpeg", "pcma", "pcmu"])
def test_codecs_ts_cannot_carry_are_refused_by_name(codec: str) -> None:
    """TsMuxer takes the tracks it is given as required (the segmenter passes only the CMAF ones,
    and drops the TS variant on TsError), so it names what it cannot carry rather than skip it."""
    kind = "video" if codec == "mjpeg" else "audio"
    with pytest.raises(TsError, match=codec):
        TsMuxer([Track(kind, codec, sample_rate=8000)])


def test_segmenter_ts_variant_skips_mjpeg_and_g711() -> None:
    from streamhive.delivery.segmenter import Segmenter

    tracks, frames = encode_av("libx264", "aac")
    mixed = [Track("video", "mjpeg"), tracks[0], Track("audio", "pcma", sample_rate=8000), tracks[1]]
    seg = Segmenter(
        mixed, segment_duration=0.1, part_duration=0.05, window=10, with_ts=True, clock=lambda: 0.0
    )
    assert seg.track_indexes == [1, 3]
    for f in frames:  # shifted by 1 s: B-frames start below zero, which fMP4 refuses
        pts, dts = f.pts + 90000, f.dts + 90000
        seg.offer(Frame(1 if f.track == 0 else 3, pts, dts, f.keyframe, f.units), f.keyframe)
        seg.offer(Frame(0, dts, dts, True, (b"\xff\xd8\xff\xd9",)), True)
        seg.offer(Frame(2, dts, dts, True, (bytes(160),)), True)
    seg.end()
    data = b"".join(s.ts for s in seg.segments)
    assert data and {pid for pid, *_ in ts_packets(data)} == {0, PMT_PID, VIDEO_PID, AUDIO_PID}
