"""Fragmented MP4 from real encodes, read back by ffprobe and PyAV; RFC 6381 codec strings."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from streamhive.codecs import aac, h264
from streamhive.formats import fmp4
from streamhive.hub.frame import Frame, Track

av = pytest.importorskip("av")

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise

FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")

VIDEO_OPTIONS = {
    "libx264": {"x264-params": "log-level=none"},  # defaults: B-frames, so pts != dts
    "libx265": {"x265-params": "log-level=none:pools=none:frame-threads=1"},
    "libsvtav1": {},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}
# A vpcC (version 1): profile 0, level 1, 8-bit 4:2:0 colocated, BT.709; MP4 demuxing drops it.
VP9_VPCC = bytes((1, 0, 0, 0, 0, 10, 8 << 4 | 1 << 1, 1, 1, 1, 0, 0))
WIDTH, HEIGHT = 160, 96
PART = 18000  # 200 ms at 90 kHz: one LL-HLS part per fragment


@dataclass(frozen=True)
class Encoded:
    """One encoded stream as the hub sees it: its Track and 90 kHz (unshifted) packets."""

    track: Track
    packets: list[tuple[int, int, bool, bytes]]  # pts, dts, keyframe, data


def to_90k(value: int, time_base: Fraction) -> int:
    return round(value * time_base * 90000)


def demux(buf: bytes, kind: str) -> tuple[bytes, object, list[tuple[int, int, bool, bytes]]]:
    with av.open(io.BytesIO(buf)) as inp:
        stream = inp.streams.video[0] if kind == "video" else inp.streams.audio[0]
        tb = Fraction(stream.time_base)
        packets = [
            (to_90k(p.pts, tb), to_90k(p.dts, tb), p.is_keyframe, bytes(p))
            for p in inp.demux(stream)
            if p.size
        ]
        return stream.codec_context.extradata or b"", stream.codec_context, packets


@functools.cache
def encode_video(encoder: str, frames: int = 12) -> Encoded:
    """Encode into MP4 with PyAV and demux, keeping each packet's pts/dts/keyframe flag."""
    av.logging.set_level(av.logging.ERROR)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(encoder, rate=25, options=VIDEO_OPTIONS[encoder])
        stream.codec_context.thread_count = 1  # deterministic output, also on a loaded machine
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes((i * 37 + k) & 0xFF for k in range(plane.buffer_size)))
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    extradata, _, packets = demux(buf.getvalue(), "video")
    codec = {"libx264": "h264", "libx265": "h265", "libsvtav1": "av1", "libvpx-vp9": "vp9"}[encoder]
    config = VP9_VPCC if codec == "vp9" else extradata
    return Encoded(Track("video", codec, config, width=WIDTH, height=HEIGHT), packets)


@functools.cache
def encode_audio(encoder: str, rate: int, frames: int = 20) -> Encoded:
    av.logging.set_level(av.logging.ERROR)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(encoder, rate=rate)
        stream.layout = "stereo"
        ctx = stream.codec_context
        size = ctx.frame_size or 1152
        for i in range(frames):
            sound = av.AudioFrame(format=ctx.format.name, layout="stereo", samples=size)
            for plane in sound.planes:
                plane.update(bytes((i * 11 + k) & 0x3F for k in range(plane.buffer_size)))
            sound.sample_rate, sound.pts = rate, i * size
            out.mux(stream.encode(sound))
        out.mux(stream.encode(None))
    extradata, ctx, packets = demux(buf.getvalue(), "audio")
    codec = {"aac": "aac", "libopus": "opus", "libmp3lame": "mp3"}[encoder]
    return Encoded(Track("audio", codec, extradata, sample_rate=ctx.sample_rate, channels=2), packets)


def hub_frames(streams: list[Encoded]) -> list[list[Frame]]:
    """Frames per track, shifted together so that the earliest dts is 0 (A/V sync kept)."""
    origin = min(p[1] for s in streams for p in s.packets)
    out = []
    for index, s in enumerate(streams):
        frames = []
        for pts, dts, key, data in s.packets:
            units = tuple(h264.split_avcc(data)) if s.track.codec in ("h264", "h265") else (data,)
            frames.append(Frame(index, pts - origin, dts - origin, key or s.track.kind == "audio", units))
        out.append(frames)
    return out


def write_fmp4(path: Path, tracks: list[Track], frames: list[list[Frame]]) -> int:
    """Init segment + one fragment per 200 ms of dts; returns the number of fragments."""
    muxer = fmp4.FragmentMuxer(tracks)
    end = max(f.dts for fs in frames for f in fs) + 1
    count = 0
    with path.open("wb") as out:
        out.write(fmp4.init_segment(tracks))
        for start in range(0, end, PART):
            part = {i: [f for f in fs if start <= f.dts < start + PART] for i, fs in enumerate(frames)}
            following = {
                i: next((f.dts for f in fs if f.dts >= start + PART), None) for i, fs in enumerate(frames)
            }
            next_dts = {i: dts for i, dts in following.items() if dts is not None}
            if any(part.values()):
                out.write(muxer.fragment(part, next_dts))
                count += 1
    return count


def ffprobe(path: Path) -> dict:
    result = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-count_frames", "-show_packets", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    assert result.stderr == b"", result.stderr.decode()
    return json.loads(result.stdout)


def on_timescale(ts: int, rate: int) -> int:
    return ts if rate == 90000 else (ts * rate + 45000) // 90000


COMBOS = [
    ("libx264", "aac", 44100, "h264", "aac"),
    ("libx265", "libopus", 48000, "hevc", "opus"),
    ("libsvtav1", "aac", 48000, "av1", "aac"),
    ("libvpx-vp9", "libmp3lame", 44100, "vp9", "mp3"),
]


@needs_ffprobe
@pytest.mark.parametrize(("video", "audio", "rate", "vname", "aname"), COMBOS)
def test_ffprobe_and_pyav_read_fragments(
    tmp_path: Path, video: str, audio: str, rate: int, vname: str, aname: str
) -> None:
    streams = [encode_video(video), encode_audio(audio, rate)]
    tracks = [s.track for s in streams]
    frames = hub_frames(streams)
    path = tmp_path / "out.mp4"
    assert write_fmp4(path, tracks, frames) >= 3

    probe = ffprobe(path)
    vs, aus = probe["streams"]
    assert (vs["codec_name"], vs["width"], vs["height"]) == (vname, WIDTH, HEIGHT)
    assert (aus["codec_name"], int(aus["sample_rate"]), aus["channels"]) == (aname, rate, 2)
    assert int(vs["nb_read_frames"]) == len(frames[0])
    assert int(aus["nb_read_packets"]) == len(frames[1])
    for index, stream in enumerate((vs, aus)):
        timescale = fmp4.timescale(tracks[index])
        assert stream["time_base"] == f"1/{timescale}"
        packets = [p for p in probe["packets"] if p["stream_index"] == index]
        got = [(p["pts"], p["dts"], p["flags"][0] == "K") for p in packets]
        want = [
            (on_timescale(f.pts, timescale), on_timescale(f.dts, timescale), f.keyframe)
            for f in frames[index]
        ]
        assert got == want
    if video == "libx264":
        assert any(f.pts != f.dts for f in frames[0])  # the B-frame case is really covered

    with av.open(str(path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == len(frames[0])


def test_fragment_layout_and_sequence_numbers() -> None:
    stream = encode_video("libx264")
    muxer = fmp4.FragmentMuxer([stream.track])
    frames = hub_frames([stream])[0]
    first = muxer.fragment({0: frames[:3]}, {0: frames[3].dts})
    second = muxer.fragment({0: frames[3:4]})  # one sample, no next dts: repeats the last duration
    for data, seq in ((first, 1), (second, 2)):
        moof_size, kind = struct.unpack_from(">I4s", data)
        assert kind == b"moof"
        assert struct.unpack_from(">I4sII", data, 8) == (16, b"mfhd", 0, seq)
        mdat_size, mdat = struct.unpack_from(">I4s", data, moof_size)
        assert mdat == b"mdat" and moof_size + mdat_size == len(data)
    # trun of the second fragment: version 1 with composition offsets, one sample.
    trun = second.index(b"trun") - 4
    _, _, flags, count, offset, duration, size = struct.unpack_from(">I4sIIiII", second, trun)
    assert (flags >> 24, count, duration) == (1, 1, frames[1].dts - frames[0].dts)
    assert second[offset : offset + size] == h264.join_avcc(frames[3].units)


def test_audio_timescale_has_no_drift() -> None:
    """44.1 kHz AAC on a 90 kHz hub clock: tfdt + durations stay exact over many fragments."""
    track = Track("audio", "aac", aac.make_audio_specific_config(2, 44100, 2), sample_rate=44100, channels=2)
    frames = [
        Frame(0, round(i * 1024 * 90000 / 44100), round(i * 1024 * 90000 / 44100), True, (b"x",))
        for i in range(400)
    ]
    muxer = fmp4.FragmentMuxer([track])
    for start in range(0, 391, 9):
        data = muxer.fragment({0: frames[start : start + 9]}, {0: frames[start + 9].dts})
        tfdt = struct.unpack_from(">Q", data, data.index(b"tfdt") + 8)[0]
        assert tfdt == start * 1024
        trun = data.index(b"trun") + 4
        count = struct.unpack_from(">I", data, trun + 4)[0]
        durations = struct.unpack_from(f">{count * 3}I", data, trun + 12)[::3]
        assert durations == (1024,) * 9


def test_opus_dops_is_big_endian_opus_head() -> None:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 44100, -256, 0)
    init = fmp4.init_segment([Track("audio", "opus", head, sample_rate=48000, channels=2)])
    pos = init.index(b"dOps")
    size = struct.unpack_from(">I", init, pos - 4)[0]
    assert init[pos + 4 : pos - 4 + size] == struct.pack(">BBHIhB", 0, 2, 312, 44100, -256, 0)
    assert fmp4.timescale(Track("audio", "opus", head, sample_rate=44100)) == 48000


def test_codecs_strings_from_real_configs() -> None:
    avcc = encode_video("libx264").track.config
    assert fmp4.codecs_string(encode_video("libx264").track) == f"avc1.{avcc[1:4].hex()}"
    assert avcc[1] == 0x64  # High profile: x264's default
    hevc = fmp4.codecs_string(encode_video("libx265").track)
    assert hevc.startswith("hvc1.1.6.L") and hevc.endswith(".90")  # Main; progressive + frame-only
    assert fmp4.codecs_string(encode_video("libsvtav1").track) == "av01.0.00M.08"
    assert fmp4.codecs_string(encode_video("libvpx-vp9").track) == "vp09.00.10.08"
    assert fmp4.codecs_string(encode_audio("aac", 48000).track) == "mp4a.40.2"
    assert fmp4.codecs_string(encode_audio("libopus", 48000).track) == "opus"
    assert fmp4.codecs_string(encode_audio("libmp3lame", 44100).track) == "mp4a.6B"


@pytest.mark.parametrize(
    ("codec", "config", "expected"),
    [
        ("h264", bytes.fromhex("0164001fffe1"), "avc1.64001f"),
        ("h264", bytes.fromhex("0142e01eff"), "avc1.42e01e"),
        # Apple's HLS authoring examples: Main and Main 10, main tier, level 3.1/4.
        ("h265", bytes.fromhex("0101600000009000000000005d") + bytes(10), "hvc1.1.6.L93.90"),
        ("h265", bytes.fromhex("010220000000b0000000000078") + bytes(10), "hvc1.2.4.L120.B0"),
        ("h265", bytes.fromhex("01224000000000000000000099") + bytes(10), "hvc1.2.2.H153"),
        ("av1", bytes.fromhex("81084c00"), "av01.0.08M.10"),
        ("av1", bytes.fromhex("81338c00"), "av01.1.19H.08"),
        ("vp9", bytes((2, 31, 10 << 4 | 1 << 1, 2, 2, 2, 0, 0)), "vp09.02.31.10"),
        ("aac", bytes.fromhex("2b920800"), "mp4a.40.5"),  # explicit HE-AAC
        ("aac", bytes.fromhex("f940"), "mp4a.40.42"),  # escaped object type (USAC)
    ],
)
def test_codecs_string_known_values(codec: str, config: bytes, expected: str) -> None:
    kind = "audio" if codec == "aac" else "video"
    assert fmp4.codecs_string(Track(kind, codec, config)) == expected


def test_errors_are_fmp4_errors() -> None:
    video = Track("video", "h264", bytes.fromhex("0164001fffe100"), width=16, height=16)
    with pytest.raises(fmp4.Fmp4Error):
        fmp4.init_segment([Track("video", "mpeg2", b"")])
    with pytest.raises(fmp4.Fmp4Error):
        fmp4.init_segment([Track("audio", "opus", b"OpusHea")])
    muxer = fmp4.FragmentMuxer([video])
    with pytest.raises(fmp4.Fmp4Error):
        muxer.fragment({0: []})
    with pytest.raises(fmp4.Fmp4Error):
        muxer.fragment({1: [Frame(1, 0, 0, True, (b"\x65",))]})
    with pytest.raises(fmp4.Fmp4Error):
        muxer.fragment({0: [Frame(0, 0, 3000, True, (b"\x65",)), Frame(0, 0, 0, False, (b"\x41",))]})


def test_tracks_cmaf_cannot_carry_are_left_out_of_hls_and_dash() -> None:
    """An RTSP camera's MJPEG + G.711 next to AAC: HLS/DASH serve the AAC, nothing raises."""
    from streamhive.delivery import playlists
    from streamhive.delivery.segmenter import Segmenter

    tracks = [
        Track("video", "mjpeg", width=64, height=48),
        Track("audio", "pcma", sample_rate=8000, channels=1),
        Track("audio", "aac", bytes.fromhex("1190"), sample_rate=48000, channels=2),
        Track("audio", "pcmu", sample_rate=8000, channels=1),
    ]
    assert [fmp4.supported(t) for t in tracks] == [False, False, True, False]
    seg = Segmenter(
        tracks, segment_duration=1.0, part_duration=0.5, window=5, with_ts=True, clock=lambda: 0.0
    )
    assert seg.track_indexes == [2] and seg.key_track == 2
    for i in range(150):  # 3.2 s of AAC, with JPEG and G.711 frames in between
        dts = i * 1920
        seg.offer(Frame(0, dts, dts, True, (b"\xff\xd8\xff\xd9",)), True)
        seg.offer(Frame(1, dts, dts, True, (bytes(341),)), True)
        seg.offer(Frame(2, dts, dts, True, (bytes(200),)), True)
        seg.offer(Frame(3, dts, dts, True, (bytes(341),)), True)
    seg.end()
    assert len(seg.segments) >= 3 and all(s.ts for s in seg.segments)
    assert playlists.codecs(seg) == "mp4a.40.2"
    assert "stream.m3u8" in playlists.master_playlist(seg, "stream.m3u8", ts=False)
    assert "#EXT-X-PART" in playlists.media_playlist(seg, low_latency=True, ts=False)
    assert playlists.mpd(seg, 10.0, "http://x/time").count("<AdaptationSet") == 1


def test_a_stream_with_only_uncarried_tracks_makes_no_segments() -> None:
    from streamhive.delivery.segmenter import Segmenter

    tracks = [Track("video", "mjpeg"), Track("audio", "pcmu", sample_rate=8000, channels=1)]
    seg = Segmenter(
        tracks, segment_duration=1.0, part_duration=0.5, window=5, with_ts=True, clock=lambda: 0.0
    )
    assert seg.track_indexes == [] and seg.key_track is None and seg.init == b""
    seg.offer(Frame(0, 0, 0, True, (b"\xff\xd8\xff\xd9",)), True)
    seg.tracks_changed()
    seg.end()
    assert not seg.segments
