"""FLV container and tag bodies (legacy and Enhanced RTMP), checked against FFmpeg's FLV muxer."""

from __future__ import annotations

import functools
import io
import os

import pytest

from streamhive.formats import amf0, flv
from streamhive.hub.frame import Frame, Track

av = pytest.importorskip("av")

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise

VIDEO_OPTIONS = {
    "libx264": {"x264-params": "log-level=none"},
    "libx265": {"x265-params": "log-level=none:pools=none:frame-threads=1"},
    "libsvtav1": {},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}
COMBOS = [
    ("libx264", "aac", "h264", "aac"),
    ("libx265", "libopus", "h265", "opus"),
    ("libsvtav1", "libmp3lame", "av1", "mp3"),
    ("libvpx-vp9", "aac", "vp9", "aac"),
]


@functools.cache
def make_flv(video: str, audio: str, width: int = 320, height: int = 240) -> bytes:
    """A short FLV file written by FFmpeg's muxer (enhanced RTMP for HEVC/AV1/VP9/Opus)."""
    av.logging.set_level(av.logging.ERROR)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as out:
        vs = out.add_stream(video, rate=25, options=VIDEO_OPTIONS[video])
        vs.codec_context.thread_count = 1  # deterministic output, also on a loaded machine
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream(audio, rate=44100 if audio == "libmp3lame" else 48000)
        aus.layout = "stereo"
        for i in range(6):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes((i * 37 + k) & 0xFF for k in range(plane.buffer_size)))
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        ctx = aus.codec_context
        samples = ctx.frame_size or 1024
        for i in range(8):
            sound = av.AudioFrame(format=ctx.format.name, layout="stereo", samples=samples)
            for plane in sound.planes:
                plane.update(bytes(plane.buffer_size))
            sound.sample_rate, sound.pts = ctx.sample_rate, i * samples
            out.mux(aus.encode(sound))
        out.mux(aus.encode(None))
    return buf.getvalue()


def demux_all(data: bytes) -> list[flv.FlvTag]:
    return flv.FlvDemuxer().feed(data)


# --- container ------------------------------------------------------------------------------


def test_file_header() -> None:
    assert flv.file_header(True, True) == b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    assert flv.file_header(False, True)[4] == 0x01
    assert flv.file_header(True, False)[4] == 0x04


def test_encode_tag_layout() -> None:
    tag = flv.encode_tag(flv.TAG_VIDEO, 0x12345678, b"abc")
    assert tag == b"\x09\x00\x00\x03\x34\x56\x78\x12\x00\x00\x00abc\x00\x00\x00\x0e"
    assert flv.encode_tag(flv.TAG_AUDIO, 1 << 32 | 5, b"")[4:8] == b"\x00\x00\x05\x00"


def test_encode_tag_too_big() -> None:
    with pytest.raises(flv.FlvError):
        flv.encode_tag(flv.TAG_VIDEO, 0, bytes(1 << 24))


def test_demuxer_reads_what_encode_tag_writes() -> None:
    stream = flv.file_header(True, True) + b"".join(
        flv.encode_tag(kind, ts, body)
        for kind, ts, body in [
            (flv.TAG_SCRIPT, 0, b"s"),
            (flv.TAG_VIDEO, 0xFFFFFFFF, b"v" * 300),
            (8, 70000, b""),
        ]
    )
    demuxer = flv.FlvDemuxer()
    tags = [tag for i in range(0, len(stream), 5) for tag in demuxer.feed(stream[i : i + 5])]
    assert tags == [
        flv.FlvTag(flv.TAG_SCRIPT, 0, b"s"),
        flv.FlvTag(flv.TAG_VIDEO, 0xFFFFFFFF, b"v" * 300),
        flv.FlvTag(flv.TAG_AUDIO, 70000, b""),
    ]
    assert demuxer.has_audio and demuxer.has_video


def test_demuxer_skips_a_longer_header() -> None:
    stream = b"FLV\x01\x01\x00\x00\x00\x0cXYZ\x00\x00\x00\x00" + flv.encode_tag(flv.TAG_VIDEO, 1, b"x")
    demuxer = flv.FlvDemuxer()
    assert demuxer.feed(stream) == [flv.FlvTag(flv.TAG_VIDEO, 1, b"x")]
    assert demuxer.has_video and not demuxer.has_audio


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"FX", "signature"),
        (b"FLV\x01\x05\x00\x00\x00\x05\x00\x00\x00\x00", "header size"),
        (flv.file_header(True, True) + flv.encode_tag(7, 0, b""), "tag type"),
        (flv.file_header(True, True) + flv.encode_tag(0x20 | 9, 0, b""), "encrypted"),
        (flv.file_header(True, True) + b"\x09\x01\x00\x01" + bytes(7), "exceeds"),
    ],
)
def test_demuxer_errors(stream: bytes, message: str) -> None:
    demuxer = flv.FlvDemuxer(max_tag_size=65536)
    with pytest.raises(flv.FlvError, match=message):
        demuxer.feed(stream)
    with pytest.raises(flv.FlvError, match=message):  # the error sticks
        demuxer.feed(b"")


def test_demuxer_waits_for_a_partial_signature() -> None:
    demuxer = flv.FlvDemuxer()
    assert demuxer.feed(b"FL") == []
    assert demuxer.feed(b"V\x01\x01\x00\x00") == []
    assert demuxer.feed(b"\x00\x09\x00\x00\x00\x00") == []


# --- real files -----------------------------------------------------------------------------


@pytest.mark.parametrize(("video", "audio", "vcodec", "acodec"), COMBOS)
def test_real_file(video: str, audio: str, vcodec: str, acodec: str) -> None:
    data = make_flv(video, audio)
    tags = demux_all(data)
    demuxer = flv.FlvDemuxer()
    assert [t for i in range(0, len(data), 777) for t in demuxer.feed(data[i : i + 777])] == tags

    with av.open(io.BytesIO(data)) as inp:
        reference = {
            s.type: [(bytes(p), p.dts, p.pts) for p in inp.demux(s) if p.size]
            for s in (inp.streams.video[0],)
        }
    with av.open(io.BytesIO(data)) as inp:
        reference["audio"] = [bytes(p) for p in inp.demux(inp.streams.audio[0]) if p.size]

    assert tags[0].tag_type == flv.TAG_SCRIPT
    name, meta = amf0.decode(tags[0].body)
    assert name == "onMetaData" and meta["width"] == 320.0

    video_tracks, audio_tracks, video_frames, audio_frames = [], [], [], []
    for tag in tags[1:]:
        if tag.tag_type == flv.TAG_VIDEO:
            pkt = flv.parse_video_body(tag.body)
            assert pkt.codec == vcodec
            if pkt.kind == "config":
                video_tracks.append(flv.track_from_video_config(pkt))
            elif pkt.kind == "frame":
                video_frames.append((flv.frame_from_video(pkt, 0, tag.timestamp), tag.body))
        elif tag.tag_type == flv.TAG_AUDIO:
            pkt = flv.parse_audio_body(tag.body)
            assert pkt.codec == acodec
            if pkt.kind == "config":
                audio_tracks.append(flv.track_from_audio_config(pkt))
            elif pkt.kind == "frame":
                if not audio_tracks:
                    audio_tracks.append(flv.track_from_mp3(tag.body))
                audio_frames.append((flv.frame_from_audio(pkt, 1, tag.timestamp), tag.body))

    (vtrack,) = video_tracks
    (atrack,) = audio_tracks
    assert vtrack.codec == vcodec and atrack.codec == acodec
    if vcodec != "vp9":
        assert (vtrack.width, vtrack.height) == (320, 240)
    assert (atrack.sample_rate, atrack.channels) == (44100 if acodec == "mp3" else 48000, 2)

    assert len(video_frames) == len(reference["video"])
    assert video_frames[0][0].keyframe and not any(f.keyframe for f, _ in video_frames[1:])
    for (frame, _), (payload, dts, pts) in zip(video_frames, reference["video"], strict=True):
        assert (frame.dts, frame.pts) == (dts * 90, pts * 90)
        expected = flv.h264.join_avcc(frame.units) if vcodec in ("h264", "h265") else frame.units[0]
        assert expected == payload
    assert [f.units[0] for f, _ in audio_frames] == reference["audio"]

    # Rebuilding bodies from hub objects gives back what FFmpeg wrote (AV1/VP9 differ only in
    # using CodedFramesX instead of CodedFrames, so compare those as packets).
    for frame, body in video_frames:
        rebuilt = flv.video_frame_body(vtrack, frame)
        if vcodec in ("h264", "h265"):
            assert rebuilt == body
        else:
            assert flv.parse_video_body(rebuilt) == flv.parse_video_body(body)
        assert flv.frame_from_video(flv.parse_video_body(rebuilt), 0, frame.dts // 90) == frame
    for frame, body in audio_frames:
        assert flv.audio_frame_body(atrack, frame) == body
    config_tags = [t.body for t in tags if t.body and flv.TAG_AUDIO <= t.tag_type <= flv.TAG_VIDEO]
    assert flv.video_config_body(vtrack) in config_tags
    if acodec != "mp3":
        assert flv.audio_config_body(atrack) in config_tags
    else:
        assert flv.audio_config_body(atrack) == b""


@pytest.mark.parametrize(("video", "audio", "vcodec", "acodec"), COMBOS)
def test_ffmpeg_decodes_what_we_mux(video: str, audio: str, vcodec: str, acodec: str) -> None:
    """Parse FFmpeg's FLV into hub objects, write a new FLV from them, and decode it with FFmpeg."""
    tags = demux_all(make_flv(video, audio))
    tracks: list[Track] = []
    frames: list[Frame] = []
    for tag in tags:
        if tag.tag_type == flv.TAG_VIDEO:
            pkt = flv.parse_video_body(tag.body)
            if pkt.kind == "config":
                tracks.insert(0, flv.track_from_video_config(pkt))
            elif pkt.kind == "frame":
                frames.append(flv.frame_from_video(pkt, 0, tag.timestamp))
        elif tag.tag_type == flv.TAG_AUDIO:
            apkt = flv.parse_audio_body(tag.body)
            if apkt.kind == "config":
                tracks.append(flv.track_from_audio_config(apkt))
            elif apkt.kind == "frame":
                if len(tracks) < 2 and acodec == "mp3":
                    tracks.append(flv.track_from_mp3(tag.body))
                frames.append(flv.frame_from_audio(apkt, 1, tag.timestamp))
    out = [flv.file_header(True, True)]
    out.append(flv.encode_tag(flv.TAG_SCRIPT, 0, flv.script_tag_body("onMetaData", flv.metadata_for(tracks))))
    out.append(flv.encode_tag(flv.TAG_VIDEO, 0, flv.video_config_body(tracks[0])))
    if tracks[1].config:
        out.append(flv.encode_tag(flv.TAG_AUDIO, 0, flv.audio_config_body(tracks[1])))
    for frame in sorted(frames, key=lambda f: f.dts):
        track = tracks[frame.track]
        body = (
            flv.video_frame_body(track, frame)
            if track.kind == "video"
            else flv.audio_frame_body(track, frame)
        )
        out.append(
            flv.encode_tag(flv.TAG_VIDEO if track.kind == "video" else flv.TAG_AUDIO, frame.dts // 90, body)
        )

    with av.open(io.BytesIO(b"".join(out)), format="flv") as inp:
        vstream, astream = inp.streams.video[0], inp.streams.audio[0]
        expected = {"h264": "h264", "h265": "hevc", "av1": "av1", "vp9": "vp9"}[vcodec]
        assert vstream.codec_context.codec.canonical_name == expected
        pictures = list(inp.decode(vstream))
        assert astream.codec_context.sample_rate == tracks[1].sample_rate
    assert len(pictures) == sum(1 for f in frames if f.track == 0)
    assert (pictures[0].width, pictures[0].height) == (320, 240)


# --- packet parsing edge cases --------------------------------------------------------------


def test_enhanced_hevc_negative_composition_time() -> None:
    body = b"\x91hvc1\xff\xff\xfe" + b"\x00\x00\x00\x02\x26\x01"
    pkt = flv.parse_video_body(body)
    assert (pkt.kind, pkt.codec, pkt.keyframe, pkt.cts) == ("frame", "h265", True, -2)
    frame = flv.frame_from_video(pkt, 3, 1000)
    assert (frame.track, frame.dts, frame.pts, frame.units) == (3, 90000, 89820, (b"\x26\x01",))
    assert flv.video_frame_body(Track("video", "h265"), frame) == body


def test_legacy_avc_composition_time() -> None:
    pkt = flv.parse_video_body(b"\x27\x01\x00\x00\x50" + b"\x00\x00\x00\x01\x41")
    assert (pkt.kind, pkt.keyframe, pkt.cts, pkt.data) == ("frame", False, 80, b"\x00\x00\x00\x01\x41")


def test_enhanced_avc1_and_coded_frames_x() -> None:
    assert flv.parse_video_body(b"\x91avc1\x00\x00\x28abc").cts == 40
    pkt = flv.parse_video_body(b"\xa3avc1abc")
    assert (pkt.kind, pkt.codec, pkt.keyframe, pkt.cts, pkt.data) == ("frame", "h264", False, 0, b"abc")
    assert flv.parse_video_body(b"\x91av01\x12\x00").data == b"\x12\x00"  # no cts for AV1


def test_mod_ex_is_skipped() -> None:
    # ModEx (7) with a 3-byte TimestampOffsetNano, then CodedFramesX.
    body = bytes((0x80 | 0x10 | 7, 2)) + b"\x00\x01\x02" + bytes((0x03,)) + b"hvc1data"
    assert flv.parse_video_body(body) == flv.VideoPacket("frame", "h265", True, 0, b"data")
    long_ex = bytes((0x97, 255)) + (299).to_bytes(2, "big") + bytes(300) + b"\x01Opus\x01\x02"
    assert flv.parse_audio_body(long_ex) == flv.AudioPacket("frame", "opus", b"\x01\x02")


@pytest.mark.parametrize(
    "body",
    [
        b"\x96hvc1",
        b"\x97",
        b"\x97\x05ab",
        b"\x91hvc1\x00",
        b"\x91vp08",
        b"\x9fhvc1",
        b"\x17",
        b"\x27\x03\x00\x00\x00",
        b"\x12\x00",
        b"",
    ],
)
def test_video_errors(body: bytes) -> None:
    with pytest.raises(flv.FlvError):
        flv.parse_video_body(body)


def test_video_error_messages() -> None:
    with pytest.raises(flv.FlvError, match="multitrack"):
        flv.parse_video_body(b"\x96\x00hvc1")
    with pytest.raises(flv.FlvError, match="H.263"):
        flv.parse_video_body(b"\x22\x00")
    with pytest.raises(flv.FlvError, match="FourCC"):
        flv.parse_video_body(b"\x90xxxx")


def test_ignored_video_packets() -> None:
    assert flv.parse_video_body(b"\xd4hvc1amf").kind == "metadata-ignored"
    assert flv.parse_video_body(b"\x95av01").kind == "metadata-ignored"
    assert flv.parse_video_body(b"\xd1\x01").kind == "metadata-ignored"  # enhanced command frame
    assert flv.parse_video_body(b"\x57\x00").kind == "metadata-ignored"  # legacy command frame
    assert flv.parse_video_body(b"\x17\x02\x00\x00\x00").kind == "end"
    assert flv.parse_video_body(b"\x82vp09").kind == "end"


@pytest.mark.parametrize(
    "body", [b"", b"\xaf", b"\xaf\x02", b"\xb2\x00", b"\x95Opus", b"\x91mp3 ", b"\x93Opus", b"\x90Op"]
)
def test_audio_errors(body: bytes) -> None:
    with pytest.raises(flv.FlvError):
        flv.parse_audio_body(body)


def test_audio_packets() -> None:
    assert flv.parse_audio_body(b"\x92mp4a").kind == "end"
    assert flv.parse_audio_body(b"\x94Opus\x00\x02").kind == "metadata-ignored"
    assert flv.parse_audio_body(b"\x90mp4a\x11\x90") == flv.AudioPacket("config", "aac", b"\x11\x90")
    assert flv.parse_audio_body(b"\x91.mp3\xff\xfb") == flv.AudioPacket("frame", "mp3", b"\xff\xfb")
    assert flv.parse_audio_body(b"\xe2\xff\xfb") == flv.AudioPacket("frame", "mp3", b"\xff\xfb")
    with pytest.raises(flv.FlvError, match="Speex"):
        flv.parse_audio_body(b"\xb6\x00")
    with pytest.raises(flv.FlvError, match="multitrack"):
        flv.parse_audio_body(b"\x95\x00Opus")


# --- conversions ----------------------------------------------------------------------------


def test_length_size_is_normalised() -> None:
    pkt = next(
        p
        for t in demux_all(make_flv("libx264", "aac"))
        if t.tag_type == flv.TAG_VIDEO and (p := flv.parse_video_body(t.body)).kind == "config"
    )
    two_byte = pkt.data[:4] + bytes((pkt.data[4] & 0xFC | 1,)) + pkt.data[5:]
    track = flv.track_from_video_config(flv.VideoPacket("config", "h264", True, 0, two_byte))
    assert track.extra["nal_length_size"] == 2
    assert track.config == pkt.data  # rewritten to 4-byte lengths, as the frame bodies use
    frame = flv.frame_from_video(flv.VideoPacket("frame", "h264", True, 0, b"\x00\x02\x65\x88"), 0, 0, 2)
    assert frame.units == (b"\x65\x88",)
    assert flv.video_frame_body(track, frame).endswith(b"\x00\x00\x00\x02\x65\x88")


def test_conversion_errors() -> None:
    frame_pkt = flv.VideoPacket("frame", "h264", True, 0, b"\x00\x00\x00\x09ab")
    for call in (
        lambda: flv.track_from_video_config(frame_pkt),
        lambda: flv.track_from_video_config(flv.VideoPacket("config", "h264", data=b"\x01\x02")),
        lambda: flv.track_from_video_config(flv.VideoPacket("config", "h265", data=bytes(30))),
        lambda: flv.track_from_video_config(
            flv.VideoPacket("config", "av1", data=b"\x81\x00\x00\x00\x0a\x05")
        ),
        lambda: flv.frame_from_video(frame_pkt, 0, 0),
        lambda: flv.frame_from_video(flv.VideoPacket("config", "h264"), 0, 0),
        lambda: flv.track_from_audio_config(flv.AudioPacket("config", "aac", b"")),
        lambda: flv.track_from_audio_config(flv.AudioPacket("config", "opus", b"OpusHead")),
        lambda: flv.track_from_audio_config(flv.AudioPacket("frame", "aac", b"\x12\x10")),
        lambda: flv.track_from_audio_config(flv.AudioPacket("config", "mp3", b"")),
        lambda: flv.frame_from_audio(flv.AudioPacket("end", "aac"), 0, 0),
        lambda: flv.track_from_mp3(b"\xaf\x01"),
        lambda: flv.video_config_body(Track("video", "mpeg2")),
    ):
        with pytest.raises(flv.FlvError):
            call()


def test_av1_config_without_sequence_header() -> None:
    track = flv.track_from_video_config(flv.VideoPacket("config", "av1", True, 0, b"\x81\x00\x0c\x00"))
    assert (track.width, track.height) == (None, None)


def test_track_from_mp3_prefers_the_frame_header() -> None:
    # Flags say 44 kHz stereo (all FLV can say), the MPEG-1 Layer III header says 48 kHz mono.
    track = flv.track_from_mp3(b"\x2f\xff\xfb\x94\xc0")
    assert (track.sample_rate, track.channels) == (48000, 1)
    assert flv.track_from_mp3(b"\x2e\x00\x00").sample_rate == 44100
    assert flv.track_from_mp3(b"\x26").channels == 1
    assert flv.track_from_mp3(b"\xe2").sample_rate == 8000
    mp3_48k = Track("audio", "mp3", sample_rate=48000, channels=1)
    assert flv.audio_frame_body(mp3_48k, Frame(0, 0, 0, True, (b"x",))) == b"\x2ex"
    mp3_22k = Track("audio", "mp3", sample_rate=22050, channels=2)
    assert flv.audio_frame_body(mp3_22k, Frame(0, 0, 0, True, (b"x",)))[0] == 0x2B


def test_metadata_for() -> None:
    tracks = [
        Track("video", "h264", width=1280, height=720),
        Track("audio", "aac", sample_rate=44100, channels=2),
    ]
    meta = flv.metadata_for(tracks)
    assert meta["width"] == 1280.0 and isinstance(meta["width"], float)
    assert (meta["videocodecid"], meta["audiocodecid"], meta["audiosamplerate"], meta["stereo"]) == (
        7.0,
        10.0,
        44100.0,
        True,
    )
    enhanced = flv.metadata_for(
        [Track("video", "h265"), Track("audio", "opus", sample_rate=48000, channels=1)]
    )
    assert enhanced["videocodecid"] == float(int.from_bytes(b"hvc1", "big"))
    assert enhanced["audiocodecid"] == float(int.from_bytes(b"Opus", "big"))
    assert enhanced["stereo"] is False and "width" not in enhanced
    assert flv.metadata_for([]) == {"duration": 0.0, "encoder": "streamhive"}


def test_script_tag_body() -> None:
    body = flv.script_tag_body("onMetaData", {"width": 320.0, "stereo": True})
    assert body[:13] == b"\x02\x00\x0aonMetaData"
    assert body[13] == 0x08  # ECMA array
    assert amf0.decode(body) == ["onMetaData", {"width": 320.0, "stereo": True}]


# --- FlvMuxer with tracks FLV cannot carry ---------------------------------------------------


def test_flv_muxer_leaves_out_mjpeg_and_muxes_g711() -> None:
    """A Stream from an RTSP camera (MJPEG + G.711 A-law): FLV readers get the audio, FFmpeg
    decodes it as 8 kHz mono A-law, and the MJPEG track is skipped, not an error."""
    from streamhive.formats.flvmux import FlvMuxer

    tracks = [
        Track("video", "mjpeg", width=64, height=48),
        Track("audio", "pcma", sample_rate=8000, channels=1),
    ]
    muxer = FlvMuxer(tracks)
    head = muxer.header(tracks, {})
    assert head[4] == 0x04  # audio only
    samples = [bytes((i * 7 + k) & 0xFF for k in range(160)) for i in range(10)]
    assert muxer.frame(Frame(0, 0, 0, True, (b"\xff\xd8jpeg\xff\xd9",))) == b""
    body = b"".join(muxer.frame(Frame(1, i * 1800, i * 1800, True, (s,))) for i, s in enumerate(samples))
    tags = demux_all(head + body)
    meta = amf0.decode(tags[0].body)[1]
    assert (meta["audiocodecid"], meta["audiosamplerate"], meta["stereo"]) == (7.0, 8000.0, False)
    assert "videocodecid" not in meta
    assert [t.body[0] for t in tags[1:]] == [0x72] * 10
    with av.open(io.BytesIO(head + body), format="flv") as inp:
        stream = inp.streams.audio[0]
        assert stream.codec_context.name == "pcm_alaw"
        assert (stream.codec_context.sample_rate, len(stream.codec_context.layout.channels)) == (8000, 1)
        assert [bytes(p) for p in inp.demux(stream) if p.size] == samples


@pytest.mark.parametrize(
    "audio",
    [
        Track("audio", "pcmu", sample_rate=16000, channels=1),  # FLV's G.711 is 8 kHz only
        Track("audio", "pcma", sample_rate=8000, channels=2),
    ],
)
def test_flv_muxer_skips_g711_it_cannot_describe(audio: Track) -> None:
    from streamhive.formats.flvmux import FlvMuxer, stream_metadata

    tracks = [Track("video", "mjpeg"), audio]
    muxer = FlvMuxer(tracks)
    assert muxer.header(tracks, {})[4] == 0
    assert muxer.frame(Frame(1, 0, 0, True, (b"\x00" * 160,))) == b""
    assert muxer.tracks_changed(tracks, {}) == b""
    assert "audiocodecid" not in stream_metadata(tracks, {})
    mu_law = stream_metadata([Track("audio", "pcmu", sample_rate=8000)], {})
    assert mu_law["audiocodecid"] == 8.0
