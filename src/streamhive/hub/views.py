"""Transcoded views: a Stream's frames with the audio in a codec some output needs.

Browsers play Opus and G.711 over WebRTC, never AAC; legacy RTMP/FLV players and HLS players
want AAC, never Opus. Rather than transcode at ingest (and pay for it with no such reader), the
first reader that needs another audio codec creates a view: a Stream of its own (groups, GOP
cache, backlogs: everything readers expect) fed by the source Stream as a FrameSink, with video
passed through untouched and audio decoded and re-encoded in a worker thread. Every later reader
of that codec shares the view; when its last reader leaves, the transcoder stops.
"""

from __future__ import annotations

import asyncio
import logging

from .frame import Frame, Track
from .stream import Stream

log = logging.getLogger("streamhive.views")

#: Audio codecs the transcoder decodes, and the codecs it produces.
_SOURCES = frozenset(("aac", "opus", "mp3"))
_TARGETS = ("opus", "aac")
#: Seconds a view without readers lives on, so a player that reconnects finds it warm.
IDLE_LINGER = 5.0


def transcoded_view(stream: Stream, audio: frozenset[str]) -> Stream:
    """``stream`` when its audio (if any) is in ``audio``, else a view transcoding it."""
    track = next((t for t in stream.tracks if t.kind == "audio"), None)
    if track is None or track.codec in audio or track.codec not in _SOURCES or stream.ended:
        return stream
    if not stream.hub.config.webrtc.audio_transcode:
        return stream
    target = next((codec for codec in _TARGETS if codec in audio), None)
    if target is None:
        return stream
    view = stream.views.get(target)
    if view is None:
        view = stream.views[target] = AudioView(stream, target)
    # From now, not only when a reader leaves: a caller may never attach (a WebRTC peer that
    # never connects, an HTTP client gone before its response started).
    view.linger()
    return view.stream


class AudioView:
    """The view of ``source`` with its audio transcoded to ``target``; a FrameSink of the source."""

    def __init__(self, source: Stream, target: str) -> None:
        from ..transcode.audio import AsyncAudioTranscoder  # PyAV loads only when a view is made

        self._transcoder_class = AsyncAudioTranscoder
        self.source = source
        self.target = target
        self.stream = Stream(source.hub, source.path, source.config)
        self.stream.publisher = source.publisher
        self.stream.on_idle = self.linger
        self.transcoder: AsyncAudioTranscoder | None = None
        self._audio_index = -1
        self._source_audio: Track | None = None  # the source track the transcoder was made for
        self._linger: asyncio.TimerHandle | None = None
        self._tracks_from_source()
        source.add_sink(self)
        log.info("path %s: transcoding %s audio to %s for readers", source.path, self._codec(), target)

    def _codec(self) -> str:
        return self.source.tracks[self._audio_index].codec if self._audio_index >= 0 else "-"

    def _tracks_from_source(self) -> None:
        """Mirror the source's tracks, the audio one replaced by the transcoder's output.

        The transcoder is rebuilt only when the source's audio changed: a new video SPS must not
        cut the audio and resend its sequence header.
        """
        audio = next(
            (
                (index, track)
                for index, track in enumerate(self.source.tracks)
                if track.kind == "audio" and track.codec != self.target
            ),
            None,
        )
        if self.transcoder is not None and (audio is None or not self._same_audio(*audio)):
            self.transcoder.close()
            self.transcoder = None
        self._audio_index = -1
        if audio is not None:
            self._audio_index, source_audio = audio
            if self.transcoder is None:
                self._source_audio = source_audio
                self.transcoder = self._transcoder_class(
                    source_audio,
                    self.target,  # type: ignore[arg-type]
                    self._transcoded,
                    track_index=self._audio_index,
                )
        for index, track in enumerate(self.source.tracks):
            if index == self._audio_index and self.transcoder is not None:
                track = self.transcoder.track
            self._set_track(index, track)

    def _same_audio(self, index: int, track: Track) -> bool:
        old = self._source_audio
        return (
            index == self._audio_index
            and old is not None
            and (old.codec, old.config, old.sample_rate, old.channels)
            == (track.codec, track.config, track.sample_rate, track.channels)
        )

    def _set_track(self, index: int, track: Track) -> None:
        tracks = self.stream.tracks
        if index < len(tracks):
            if tracks[index] is not track:
                tracks[index] = track
                self.stream._tracks_changed()
        else:
            self.stream.set_track(track)

    # FrameSink ---------------------------------------------------------------------------------
    def offer(self, frame: Frame, keyframe: bool) -> None:
        if frame.track == self._audio_index and self.transcoder is not None:
            self.transcoder.submit(frame)
        elif not self.stream.ended:
            self.stream.write(frame)

    def _transcoded(self, frames: list[Frame]) -> None:
        stream = self.stream
        for frame in frames:
            if stream.ended:
                return
            stream.write(frame)

    def tracks_changed(self) -> None:
        self._tracks_from_source()

    def end(self) -> None:
        self._close()
        self.stream.end("publisher left")

    # Lifetime ----------------------------------------------------------------------------------
    def linger(self) -> None:
        """(Re)start the countdown after which the view stops unless it has readers by then."""
        if self.stream.ended:
            return
        if self._linger is not None:
            self._linger.cancel()
        self._linger = asyncio.get_running_loop().call_later(IDLE_LINGER, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._linger = None
        if self.stream.reader_count() or self.stream._sinks:
            return
        log.info("path %s: %s transcoding stopped (no readers)", self.source.path, self.target)
        self.source.remove_sink(self)
        self._close()
        self.stream.end("no readers")

    def _close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.transcoder is not None:
            self.transcoder.close()
            self.transcoder = None
        if self.source.views.get(self.target) is self:
            del self.source.views[self.target]
