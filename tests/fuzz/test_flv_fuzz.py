"""FLV parsing survives random and mutated input with FlvError, never another exception."""

from __future__ import annotations

import contextlib
import functools
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.codecs import CodecError
from streamhive.formats import flv

av = pytest.importorskip("av")

FUZZ = settings(max_examples=250, deadline=None)


@functools.cache
def sample_flv() -> bytes:
    """A real, small H.264 + AAC FLV from FFmpeg's muxer."""
    av.logging.set_level(av.logging.ERROR)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as out:
        video = out.add_stream("libx264", rate=25, options={"x264-params": "log-level=none"})
        video.codec_context.thread_count = 1  # deterministic output, also on a loaded machine
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for i in range(3):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes((i * 37 + k) & 0xFF for k in range(plane.buffer_size)))
            frame.pts = i
            out.mux(video.encode(frame))
            sound = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in sound.planes:
                plane.update(bytes(plane.buffer_size))
            sound.sample_rate, sound.pts = 48000, i * 1024
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return buf.getvalue()


@functools.cache
def sample_bodies() -> list[tuple[int, bytes]]:
    bodies = [
        (t.tag_type, t.body) for t in flv.FlvDemuxer().feed(sample_flv()) if t.tag_type != flv.TAG_SCRIPT
    ]
    # Enhanced RTMP shapes that FFmpeg's H.264/AAC output does not have.
    bodies += [
        (flv.TAG_VIDEO, b"\x91hvc1\x00\x00\x28\x00\x00\x00\x02\x26\x01"),
        (flv.TAG_VIDEO, b"\x97\x02\x00\x01\x02\x03av01\x12\x00"),
        (flv.TAG_VIDEO, b"\x90av01\x81\x00\x0c\x00\x0a\x0b\x00\x00\x00\x04\x3c\xf7\xb4\x02\xf8\x00\x40"),
        (flv.TAG_AUDIO, b"\x90OpusOpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"),
        (flv.TAG_AUDIO, b"\x2f\xff\xfb\x94\xc0\x00"),
    ]
    return bodies


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes replaced, inserted or deleted, possibly truncated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(("set", "insert", "delete", "truncate")))
        if action == "set":
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[pos]
        else:
            del data[pos:]
    return bytes(data)


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[flv.FlvTag]:
    demuxer = flv.FlvDemuxer(max_tag_size=1 << 16)
    tags = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        tags += demuxer.feed(data[start:cut] if cut >= start else b"")
        start = max(start, cut)
    return tags


def exercise_body(tag_type: int, body: bytes) -> None:
    """Parse a body and push it through every conversion that applies; only FlvError may escape."""
    try:
        if tag_type == flv.TAG_VIDEO:
            pkt = flv.parse_video_body(body)
            if pkt.kind == "config":
                flv.track_from_video_config(pkt)
            elif pkt.kind == "frame":
                flv.frame_from_video(pkt, 0, 0)
        else:
            apkt = flv.parse_audio_body(body)
            if apkt.kind == "config":
                flv.track_from_audio_config(apkt)
            elif apkt.kind == "frame":
                flv.frame_from_audio(apkt, 0, 0)
                if apkt.codec == "mp3":
                    flv.track_from_mp3(body)
    except flv.FlvError:
        pass


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6))
def test_demuxer_random_bytes(data: bytes, cuts: list[int]) -> None:
    for prefix in (b"", b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"):
        with contextlib.suppress(flv.FlvError):
            feed_in_chunks(prefix + data, cuts)


@FUZZ
@given(st.data(), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_demuxer_mutated_file(data: st.DataObject, cuts: list[int]) -> None:
    stream = data.draw(mutated(sample_flv()))
    try:
        tags = feed_in_chunks(stream, cuts)
    except flv.FlvError:
        return
    for tag in tags:
        if tag.tag_type != flv.TAG_SCRIPT:
            exercise_body(tag.tag_type, tag.body)


@FUZZ
@given(st.lists(st.integers(0, 1 << 16), max_size=10))
def test_chunking_does_not_change_the_tags(cuts: list[int]) -> None:
    assert feed_in_chunks(sample_flv(), cuts) == flv.FlvDemuxer().feed(sample_flv())


@FUZZ
@given(st.sampled_from([flv.TAG_AUDIO, flv.TAG_VIDEO]), st.binary(max_size=64))
def test_bodies_random(tag_type: int, body: bytes) -> None:
    exercise_body(tag_type, body)


@FUZZ
@given(st.data())
def test_bodies_mutated(data: st.DataObject) -> None:
    tag_type, body = data.draw(st.sampled_from(sample_bodies()))
    exercise_body(tag_type, data.draw(mutated(body)))


def test_flv_error_is_a_value_error() -> None:
    assert issubclass(flv.FlvError, ValueError) and issubclass(CodecError, ValueError)
