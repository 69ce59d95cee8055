"""AAC <-> Opus transcoding with real encoders: what comes out decodes to the same tone, on time."""

from __future__ import annotations

import array
import asyncio
import functools
import math
import struct
import threading
from fractions import Fraction

import pytest

from streamhive.codecs.aac import parse_audio_specific_config
from streamhive.formats.rtp.opus import opus_head
from streamhive.hub.frame import Frame, Track
from streamhive.transcode.audio import AsyncAudioTranscoder, AudioTranscoder, TranscodeError

av = pytest.importorskip("av")

TONE = 440.0
START = 123_456  # input pts of the first frame, 90 kHz: not zero, so alignment is really checked
MS = 90  # 90 kHz ticks per millisecond


def tone_frame(fmt: str, layout: str, rate: int, samples: int, start: int) -> av.AudioFrame:
    frame = av.AudioFrame(format=fmt, layout=layout, samples=samples)
    values = [0.3 * math.sin(2 * math.pi * TONE * (start + k) / rate) for k in range(samples)]
    channels = len(frame.layout.channels)
    if fmt == "fltp":
        for plane in frame.planes:
            plane.update(struct.pack(f"<{samples}f", *values))
    elif fmt == "flt":
        frame.planes[0].update(
            struct.pack(f"<{samples * channels}f", *(v for v in values for _ in range(channels)))
        )
    else:  # s16, mono
        frame.planes[0].update(struct.pack(f"<{samples}h", *(int(20000 * v) for v in values)))
    frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
    return frame


@functools.cache
def encoded(codec: str, rate: int, layout: str, seconds: float = 1.0) -> tuple[Track, tuple[Frame, ...]]:
    """A source Track and its Frames (90 kHz, starting at START) made by one of PyAV's encoders."""
    name = {"aac": "aac", "opus": "libopus", "pcmu": "pcm_mulaw"}[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.sample_rate, ctx.layout, ctx.time_base = rate, layout, Fraction(1, rate)
    ctx.format = {"aac": "fltp", "opus": "flt", "pcmu": "s16"}[codec]
    ctx.open()
    size = ctx.frame_size or 160
    packets = []
    for start in range(0, int(rate * seconds), size):
        packets += ctx.encode(tone_frame(ctx.format.name, layout, rate, size, start))
    packets += ctx.encode(None)
    channels = len(ctx.layout.channels)
    config = {"aac": bytes(ctx.extradata or b""), "opus": opus_head(channels), "pcmu": b""}[codec]
    track = Track("audio", codec, config, sample_rate=rate, channels=channels)
    first = packets[0].pts
    frames = tuple(
        Frame(0, ts, ts, True, (bytes(p),))
        for p in packets
        for ts in [START + (p.pts - first) * 90000 // rate]
    )
    return track, frames


def transcode(
    track: Track, frames: tuple[Frame, ...] | list[Frame], target: str
) -> tuple[AudioTranscoder, list[Frame]]:
    transcoder = AudioTranscoder(track, target, track_index=2)  # type: ignore[arg-type]
    out = [o for frame in frames for o in transcoder.push(frame)]
    return transcoder, out + transcoder.flush()


def decode(track: Track, frames: list[Frame]) -> tuple[int, int, list[float]]:
    """(sample rate, channels, first channel's samples) of the output, decoded by FFmpeg."""
    ctx = av.CodecContext.create("opus" if track.codec == "opus" else "aac", "r")
    ctx.extradata = track.config
    samples = array.array("f")
    rate = channels = 0
    for frame in frames:
        for audio in ctx.decode(av.Packet(frame.units[0])):
            assert audio.format.name == "fltp"
            rate, channels = audio.sample_rate, len(audio.layout.channels)
            samples.frombytes(bytes(audio.planes[0])[: audio.samples * 4])
    return rate, channels, samples.tolist()


def frequency(samples: list[float], rate: int) -> float:
    """The tone's frequency from its upward zero crossings, away from the (primed) start."""
    middle = samples[rate // 10 : -rate // 10]
    ups = [i for i in range(1, len(middle)) if middle[i - 1] < 0 <= middle[i]]
    return (len(ups) - 1) * rate / (ups[-1] - ups[0])


def frame_ticks(track: Track) -> int:
    return (960 if track.codec == "opus" else 1024) * 90000 // (track.sample_rate or 0)


@pytest.mark.parametrize(
    ("codec", "rate", "layout", "target", "out_rate", "out_channels"),
    [
        ("aac", 44100, "stereo", "opus", 48000, 2),
        ("aac", 48000, "mono", "opus", 48000, 1),
        ("opus", 48000, "stereo", "aac", 48000, 2),
        ("opus", 48000, "mono", "aac", 48000, 1),
        ("aac", 44100, "stereo", "aac", 44100, 2),  # AAC keeps an AAC rate: no resampling
        ("pcmu", 8000, "mono", "opus", 48000, 1),  # G.711 cameras to WebRTC
    ],
)
def test_transcode_keeps_tone_duration_and_timing(
    codec: str, rate: int, layout: str, target: str, out_rate: int, out_channels: int
) -> None:
    track, frames = encoded(codec, rate, layout)
    transcoder, out = transcode(track, frames, target)
    assert transcoder.decode_errors == transcoder.resyncs == 0

    assert (transcoder.track.codec, transcoder.track.sample_rate) == (target, out_rate)
    assert (transcoder.track.channels, transcoder.track.clock_rate) == (out_channels, 90000)
    if target == "opus":
        head = transcoder.track.config
        assert head[:8] == b"OpusHead" and head[9] == out_channels and head[18] == 0
    else:
        asc = parse_audio_specific_config(transcoder.track.config)
        assert (asc.object_type, asc.sample_rate, asc.channels) == (2, out_rate, out_channels)
        assert len(transcoder.track.config) == 2

    got_rate, got_channels, samples = decode(transcoder.track, out)
    assert (got_rate, got_channels) == (out_rate, out_channels)
    step = frame_ticks(transcoder.track)
    # The input's length, as decoded (its priming included), plus the output encoder's priming
    # where the decoder keeps it (AAC; Opus decoders trim the OpusHead's pre-skip).
    in_frame = {"aac": 1024, "opus": 960, "pcmu": 160}[codec] / rate
    expected = (frames[-1].pts - START) / 90000 + in_frame + (1024 / out_rate if target == "aac" else 0)
    assert abs(len(samples) / out_rate - expected) <= step / 90000 + 0.007  # ± a frame, pre-skip
    assert abs(frequency(samples, out_rate) - TONE) < TONE * 0.05

    assert all(f.track == 2 and f.keyframe and f.pts == f.dts for f in out)
    assert abs(out[0].pts - START) <= 30 * MS
    gaps = {b.pts - a.pts for a, b in zip(out, out[1:-1], strict=False)}  # the last may be short
    assert gaps <= {step, step + 1}  # 1024 samples at 44.1 kHz is 2089.8 ticks


def test_gap_is_filled_and_jump_reanchors() -> None:
    track, frames = encoded("aac", 48000, "stereo", 2.0)
    third = len(frames) // 3
    # A 3-frame hole (64 ms, as a lost packet burst would make), then a jump of 10 s ahead.
    jump = 10 * 90000
    pushed = list(frames[:third]) + [
        Frame(0, f.pts + jump * (i >= 2 * third), f.dts, True, f.units)
        for i, f in enumerate(frames[third + 3 :], third + 3)
    ]
    transcoder, out = transcode(track, pushed, "opus")
    assert transcoder.resyncs == 1
    before = [f for f in out if f.pts < START + jump]
    after = [f for f in out if f.pts >= START + jump]
    # Silence filled the hole, so frames before the jump stay on 20 ms steps up to the jump...
    assert {b.pts - a.pts for a, b in zip(before, before[1:], strict=False)} == {1800}
    assert abs(before[-1].pts + 1800 - (frames[2 * third].pts)) <= 30 * MS
    # ...and after it the timeline restarts at the new input time.
    resumed = next(f.pts for f in pushed if f.pts >= START + jump)
    assert abs(after[0].pts - resumed) <= 30 * MS
    assert {b.pts - a.pts for a, b in zip(after, after[1:-1], strict=False)} == {1800}
    assert abs(after[-1].pts - pushed[-1].pts) <= 30 * MS


def test_backwards_step_reanchors() -> None:
    track, frames = encoded("opus", 48000, "stereo")
    half = len(frames) // 2
    restarted = [Frame(0, f.pts - frames[half].pts, f.dts, True, f.units) for f in frames[half:]]
    transcoder, out = transcode(track, list(frames[:half]) + restarted, "aac")
    assert transcoder.resyncs == 1
    drop = next(i for i in range(1, len(out)) if out[i].pts < out[i - 1].pts)
    assert abs(out[drop].pts) <= 30 * MS
    assert all(a.pts < b.pts for a, b in zip(out[drop:], out[drop + 1 :], strict=False))


def test_bad_frames_are_counted_and_skipped() -> None:
    track, frames = encoded("aac", 44100, "stereo")
    bad = [
        Frame(0, f.pts, f.dts, True, (b"\x00\x01\x02\x03",) if i % 10 == 5 else f.units)
        for i, f in enumerate(frames)
    ]
    bad[7] = Frame(0, bad[7].pts, bad[7].dts, True, (b"",))  # would end the decoder's input for good
    transcoder, out = transcode(track, bad, "opus")
    assert transcoder.decode_errors == 1 + sum(1 for i in range(len(frames)) if i % 10 == 5)
    rate, _, samples = decode(transcoder.track, out)
    assert abs(len(samples) / rate - (frames[-1].pts - START) / 90000) <= 0.05  # holes filled
    assert abs(out[-1].pts - frames[-1].pts) <= 30 * MS


def test_errors() -> None:
    track, frames = encoded("aac", 48000, "mono")
    with pytest.raises(TranscodeError, match="h264"):
        AudioTranscoder(Track("video", "h264"), "opus")
    with pytest.raises(TranscodeError, match="mp3"):
        AudioTranscoder(track, "mp3")  # type: ignore[arg-type]
    with pytest.raises(TranscodeError, match="bad aac config"):
        AudioTranscoder(Track("audio", "aac", b"\x00\x00"), "opus")
    transcoder = AudioTranscoder(track, "opus")
    transcoder.push(frames[0])
    transcoder.flush()
    assert transcoder.flush() == []
    with pytest.raises(TranscodeError, match="flushed"):
        transcoder.push(frames[1])


async def test_async_transcoder_delivers_on_the_loop() -> None:
    track, frames = encoded("aac", 44100, "stereo")
    loop_thread = threading.get_ident()
    got: list[Frame] = []
    done = asyncio.Event()

    def deliver(out: list[Frame]) -> None:
        assert threading.get_ident() == loop_thread
        got.extend(out)
        if got[-1].pts >= frames[-1].pts - 50 * MS:
            done.set()

    transcoder = AsyncAudioTranscoder(track, "opus", deliver, track_index=1)
    assert transcoder.track.codec == "opus"
    for frame in frames:
        transcoder.submit(frame)
    await asyncio.wait_for(done.wait(), 5)
    transcoder.close()
    await transcoder.wait_closed()
    assert transcoder.dropped == 0 and transcoder.error is None
    assert all(f.track == 1 for f in got)
    assert all(a.pts < b.pts for a, b in zip(got, got[1:], strict=False))
    transcoder.submit(frames[0])  # ignored once closed


async def test_async_transcoder_drops_oldest_when_behind() -> None:
    track, frames = encoded("opus", 48000, "mono")
    got: list[Frame] = []
    transcoder = AsyncAudioTranscoder(track, "aac", got.extend, max_pending=10)
    entered, release = threading.Event(), threading.Event()
    push = transcoder.transcoder.push

    def slow_push(frame: Frame) -> list[Frame]:
        entered.set()
        release.wait(5)
        return push(frame)

    transcoder.transcoder.push = slow_push  # type: ignore[method-assign]
    transcoder.submit(frames[0])
    assert await asyncio.to_thread(entered.wait, 5)  # the thread is busy with frame 0
    for frame in frames[1:31]:
        transcoder.submit(frame)
    assert transcoder.dropped == 20
    release.set()
    # Frames 1-20 were dropped: the hole (> 200 ms) re-anchors the timeline at frame 21.
    for _ in range(500):
        if any(abs(f.pts - frames[21].pts) <= 30 * MS for f in got):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"no output near frame 21 ({frames[21].pts}): {[f.pts for f in got]}")
    assert transcoder.transcoder.resyncs == 1
    transcoder.close()
    await transcoder.wait_closed()
