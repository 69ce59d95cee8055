"""Audio transcoding (AAC, Opus, MP3, G.711 in; Opus or AAC out) for the hub's Frames.

:class:`AudioTranscoder` is the synchronous core: Frames in, Frames out, no threads or clocks, so
it can be tested with byte strings and run anywhere. :class:`AsyncAudioTranscoder` runs one in a
dedicated thread for an asyncio server: PyAV releases the GIL while FFmpeg decodes, resamples
and encodes, so the loop keeps running on another core meanwhile.

Output timestamps are derived from the input's, not from the encoder: the first input frame's
pts anchors the output timeline, which then advances by the samples produced. Encoders work in
fixed frame sizes (20 ms for Opus, 1024 samples for AAC) that do not line up with the input's,
and a per-sample timeline keeps those frames evenly spaced with no rounding drift. Input that
skips ahead a little (a lost packet) is filled with silence so audio stays in sync with video;
input that jumps by more than :data:`RESYNC_TICKS` or goes backwards (a publisher restart)
re-anchors the timeline at the new input time.

Output pts are those of the encoder's frames without its delay (priming), as live encoders
stamp them: the content is that delay (21 ms for AAC, 6.5 ms for Opus) later than the input.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Literal, NamedTuple

import av
from av.audio.codeccontext import AudioCodecContext

from ..codecs import CodecError
from ..codecs.aac import SAMPLE_RATES, make_audio_specific_config, parse_audio_specific_config
from ..hub.frame import Frame, Track

logger = logging.getLogger(__name__)

TargetCodec = Literal["opus", "aac"]

CLOCK = 90000
#: A jump in input time larger than this (200 ms), or any step backwards, re-anchors the output
#: timeline instead of filling or ignoring the difference.
RESYNC_TICKS = CLOCK // 5
#: Input time running ahead of the audio produced by more than this (15 ms: above RTMP's 1 ms
#: rounding and Opus's 6.5 ms pre-skip, below one lost frame) is filled with silence.
FILL_TICKS = CLOCK * 15 // 1000
OPUS_RATE = 48000
#: 64 kbit/s Opus is transparent for most music and generous for speech; 128 kbit/s is where
#: FFmpeg's native AAC encoder stops having audible artefacts on stereo music.
DEFAULT_BIT_RATE = {"opus": 64000, "aac": 128000}
_DECODERS = {"aac": "aac", "opus": "opus", "mp3": "mp3", "pcma": "pcm_alaw", "pcmu": "pcm_mulaw"}


class TranscodeError(ValueError):
    """A transcoder cannot be built for this input, or is used after it was flushed."""


class _Anchor(NamedTuple):
    """Output sample ``position`` (counted from the transcoder's start) plays at ``ticks``."""

    position: int
    ticks: int


def _source_channels(source: Track) -> int:
    """The channel count the source's config announces (what the output track must declare
    before any frame is decoded)."""
    if source.codec == "aac" and source.config:
        channels = parse_audio_specific_config(source.config).channels
        return channels or 2  # 0: the layout is in a program config element; stereo at most
    if source.codec == "opus" and len(source.config) >= 19 and source.config[:8] == b"OpusHead":
        return source.config[9]
    return source.channels or 1


def _source_rate(source: Track) -> int:
    if source.codec == "opus":
        return OPUS_RATE  # Opus always decodes to 48 kHz here, whatever OpusHead's input rate says
    if source.codec == "aac" and source.config:
        return parse_audio_specific_config(source.config).output_sample_rate
    return source.sample_rate or (8000 if source.codec in ("pcma", "pcmu") else 48000)


def _open_decoder(source: Track, rate: int) -> AudioCodecContext:
    decoder = av.CodecContext.create(_DECODERS[source.codec], "r")
    if source.config:
        decoder.extradata = source.config
    if source.codec in ("pcma", "pcmu"):  # no config: the track says how to play the bytes
        decoder.sample_rate = rate
        decoder.layout = "stereo" if source.channels == 2 else "mono"
    return decoder


def _open_encoder(codec: TargetCodec, rate: int, layout: str, bit_rate: int) -> AudioCodecContext:
    encoder = av.CodecContext.create("libopus" if codec == "opus" else "aac", "w")
    encoder.sample_rate, encoder.layout, encoder.bit_rate = rate, layout, bit_rate
    encoder.format = "flt" if codec == "opus" else "fltp"
    encoder.time_base = Fraction(1, rate)
    if codec == "opus":
        # "audio" rather than "voip": voip high-passes and favours intelligibility, which hurts
        # music; streams carry both.
        encoder.options = {"application": "audio"}
    encoder.open()
    return encoder


class AudioTranscoder:
    """Decode one audio track and re-encode it as Opus (48 kHz) or AAC-LC.

    Opus output is mono for a mono source and stereo otherwise (the OpusHead says which; SDP
    says ``opus/48000/2`` either way and browsers play mono packets). AAC output keeps the
    source's sample rate when AAC has it, so nothing is resampled, else 48 kHz. Not thread-safe:
    one thread drives an instance.
    """

    def __init__(
        self,
        source: Track,
        target_codec: TargetCodec,
        *,
        track_index: int = 0,
        bit_rate: int | None = None,
    ) -> None:
        if source.kind != "audio" or source.codec not in _DECODERS:
            raise TranscodeError(f"cannot decode {source.kind} codec {source.codec!r}")
        if target_codec not in DEFAULT_BIT_RATE:
            raise TranscodeError(f"cannot encode audio to {target_codec!r}; opus and aac are supported")
        try:
            channels = min(max(_source_channels(source), 1), 2)
            source_rate = _source_rate(source)
        except CodecError as exc:
            raise TranscodeError(f"bad {source.codec} config: {exc}") from exc
        rate = OPUS_RATE if target_codec == "opus" or source_rate not in SAMPLE_RATES else source_rate
        self._layout = "stereo" if channels == 2 else "mono"
        self._decoder = _open_decoder(source, source_rate)
        self._encoder = _open_encoder(
            target_codec, rate, self._layout, bit_rate or DEFAULT_BIT_RATE[target_codec]
        )
        extradata = bytes(self._encoder.extradata or b"")
        if target_codec == "aac":
            # FFmpeg appends an explicit "no SBR" extension; the plain 2-byte form is what every
            # other publisher sends and what simple parsers expect.
            asc = parse_audio_specific_config(extradata)
            extradata = make_audio_specific_config(asc.object_type, asc.sample_rate, asc.channels)
        self.track = Track("audio", target_codec, extradata, CLOCK, sample_rate=rate, channels=channels)
        self._index = track_index
        self._source_clock = source.clock_rate
        self._rate = rate
        self._frame_size = self._encoder.frame_size
        self._delay: int | None = None  # the encoder's priming samples, seen on its first packet
        self._resampler: av.AudioResampler | None = None
        self._resampler_input: tuple[str, str, int] | None = None
        self._fifo = av.AudioFifo()
        self._written = 0  # output samples written to the FIFO since the start (the timeline)
        self._encoded = 0  # output samples handed to the encoder
        self._anchors: deque[_Anchor] = deque()
        self._last_pts: int | None = None
        self._flushed = False
        #: Input frames the decoder rejected (skipped; the gap is filled with silence).
        self.decode_errors = 0
        #: Times the output timeline was re-anchored on an input jump or step backwards.
        self.resyncs = 0

    def push(self, frame: Frame) -> list[Frame]:
        """Transcode one input frame; returns the output frames it completed (often none)."""
        if self._flushed:
            raise TranscodeError("the transcoder was flushed; make a new one")
        out = self._follow_timeline(frame.pts)
        payload = frame.units[0] if len(frame.units) == 1 else b"".join(frame.units)
        if not payload:  # an empty packet would tell the decoder the input ended, for good
            self.decode_errors += 1
            return out
        try:
            decoded = self._decoder.decode(av.Packet(payload))
        except av.FFmpegError:
            self.decode_errors += 1
            return out
        for audio in decoded:
            self._resample(audio)
        return out + self._encode_ready()

    def flush(self) -> list[Frame]:
        """End of input: encode what is buffered, down to a short last frame."""
        if self._flushed:
            return []
        self._flushed = True
        try:
            for audio in self._decoder.decode(None):
                self._resample(audio)
        except av.FFmpegError:
            self.decode_errors += 1
        if self._resampler is not None:
            self._write(self._resampler.resample(None))
        out = self._encode_ready()
        if self._fifo.samples:
            out += self._encode(self._fifo.read())
        return out + self._encode(None)

    def _follow_timeline(self, pts: int) -> list[Frame]:
        """Anchor, fill or re-anchor the output timeline for an input frame at ``pts``."""
        ticks = pts if self._source_clock == CLOCK else pts * CLOCK // self._source_clock
        backwards = self._last_pts is not None and pts < self._last_pts
        self._last_pts = pts
        if not self._anchors:
            self._anchors.append(_Anchor(self._written, ticks))
            return []
        anchor = self._anchors[-1]
        ahead = ticks - (anchor.ticks + (self._written - anchor.position) * CLOCK // self._rate)
        if backwards or abs(ahead) > RESYNC_TICKS:
            self.resyncs += 1
            # Finish the old segment on a frame boundary so no encoded frame straddles two.
            pad = -self._written % self._frame_size
            if pad:
                self._write([self._silence(pad)])
            out = self._encode_ready()
            if self._anchors[-1].position == self._written:  # nothing came out since the last one
                self._anchors.pop()
            self._anchors.append(_Anchor(self._written, ticks))
            return out
        if ahead > FILL_TICKS:
            self._write([self._silence(ahead * self._rate // CLOCK)])
        return []

    def _resample(self, audio: av.AudioFrame) -> None:
        shape = (audio.format.name, audio.layout.name, audio.sample_rate)
        if shape != self._resampler_input:  # first frame, or the decoder changed its output
            if self._resampler is not None:
                self._write(self._resampler.resample(None))
            self._resampler = av.AudioResampler(self._encoder.format.name, self._layout, self._rate)
            self._resampler_input = shape
        assert self._resampler is not None
        self._write(self._resampler.resample(audio))

    def _write(self, frames: list[av.AudioFrame]) -> None:
        for audio in frames:
            audio.pts = None  # the FIFO would check continuity; the timeline is ours
            self._fifo.write(audio)
            self._written += audio.samples

    def _silence(self, samples: int) -> av.AudioFrame:
        audio = av.AudioFrame(format=self._encoder.format.name, layout=self._layout, samples=samples)
        for plane in audio.planes:
            plane.update(bytes(plane.buffer_size))
        audio.sample_rate = self._rate
        return audio

    def _encode_ready(self) -> list[Frame]:
        out: list[Frame] = []
        while self._fifo.samples >= self._frame_size:
            out += self._encode(self._fifo.read(self._frame_size))
        return out

    def _encode(self, audio: av.AudioFrame | None) -> list[Frame]:
        if audio is not None:
            audio.pts, audio.time_base = self._encoded, self._encoder.time_base
            self._encoded += audio.samples
        return [self._frame(packet) for packet in self._encoder.encode(audio)]

    def _frame(self, packet: av.Packet) -> Frame:
        assert packet.pts is not None
        if self._delay is None:
            # The first input frame has pts 0, so the first packet's pts is minus the priming
            # (AVCodecContext.initial_padding, which PyAV does not expose).
            self._delay = max(-packet.pts, 0)
        position = packet.pts + self._delay
        anchors = self._anchors
        while len(anchors) > 1 and anchors[1].position <= position:
            anchors.popleft()
        ticks = anchors[0].ticks + (position - anchors[0].position) * CLOCK // self._rate
        return Frame(self._index, ticks, ticks, True, (bytes(packet),))


class AsyncAudioTranscoder:
    """An :class:`AudioTranscoder` in its own thread, fed from and delivering to an event loop.

    ``submit`` never blocks the loop: input waits in a bounded queue and, when the thread falls
    behind by more than ``max_pending`` frames, the oldest are dropped (live audio that late is
    worth less than the loop's time; the transcoder fills the hole with silence). Output frames
    reach ``callback`` on the loop, a list per batch of input the thread took at once.
    """

    def __init__(
        self,
        source: Track,
        target_codec: TargetCodec,
        callback: Callable[[list[Frame]], object],
        *,
        track_index: int = 0,
        bit_rate: int | None = None,
        max_pending: int = 50,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.transcoder = AudioTranscoder(source, target_codec, track_index=track_index, bit_rate=bit_rate)
        self._callback = callback
        self._loop = loop or asyncio.get_running_loop()
        self._max_pending = max_pending
        self._pending: deque[Frame] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        #: Input frames dropped because the thread was more than ``max_pending`` frames behind.
        self.dropped = 0
        #: The exception that stopped the thread, if one did (it is also logged).
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"transcode-{source.codec}-{target_codec}", daemon=True
        )
        self._thread.start()

    @property
    def track(self) -> Track:
        return self.transcoder.track

    def submit(self, frame: Frame) -> None:
        """Queue one input frame (call from the loop; returns at once)."""
        with self._wakeup:
            if self._closed:
                return
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(frame)
            self._wakeup.notify()

    def close(self) -> None:
        """Stop: queued input is discarded and nothing more is delivered; the thread ends after
        the frame it is working on."""
        with self._wakeup:
            self._closed = True
            self._pending.clear()
            self._wakeup.notify()

    async def wait_closed(self) -> None:
        """Wait for the thread to end (after :meth:`close`)."""
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                batch = list(self._pending)
                self._pending.clear()
            try:
                out = [output for frame in batch for output in self.transcoder.push(frame)]
            except Exception as exc:  # a bug, not bad input (that is counted and skipped)
                logger.exception("audio transcoder to %s stopped", self.track.codec)
                self.error = exc
                return
            if out:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, out)
                except RuntimeError:  # the loop is closed: nobody left to deliver to
                    return

    def _deliver(self, frames: list[Frame]) -> None:
        if not self._closed:
            self._callback(frames)
