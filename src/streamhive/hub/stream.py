"""The Stream: one live path's tracks, GOP cache and fan-out to readers.

Mux once, write many: readers are grouped by output format (muxer + framing); a frame is muxed
once per group and the same bytes object is written to every reader of the group. A reader's
cost per frame is one non-blocking ``transport.write``.

Readers never block the publisher: a reader whose transport holds more than its backlog skips
to the next keyframe; one that stays behind longer than ``reader_max_lag`` is disconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from ..config import PathConfig
from .frame import Frame, Track
from .session import Session

if TYPE_CHECKING:
    from .hub import Hub
    from .views import AudioView

log = logging.getLogger("streamhive.stream")

#: Timestamp gap (90 kHz) inserted between the last frame of a publisher and the first frame of
#: the publisher that returns within the grace period, so readers see monotonic timestamps.
REBASE_GAP = 3600


class Muxer(Protocol):
    """A sans-IO output format for one stream: tracks and frames in, bytes out."""

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        """What a reader that joins now needs before any frame (container header, codec config)."""
        ...

    def frame(self, frame: Frame) -> bytes:
        """The bytes of one frame; b"" when the format cannot carry it."""
        ...

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        """What readers already attached need when codec configuration changes mid-stream."""
        ...


#: Called with the Stream's live track list (the muxer keeps the reference: tracks can change).
MuxerFactory = Callable[[list[Track]], Muxer]
Framing = Callable[[bytes], bytes]


def no_framing(data: bytes) -> bytes:
    return data


class Reader:
    """One reader attached to a Stream through an asyncio transport.

    The adapter creates it with the transport to write to and ``on_end`` (how to tell its client
    that the stream ended, then close). The hub calls ``offer`` for each frame.
    """

    __slots__ = (
        "session",
        "transport",
        "format",
        "framing",
        "on_end",
        "backlog",
        "max_lag",
        "waiting_key",
        "lag_since",
        "dropped",
        "stream",
        "closed",
    )

    def __init__(
        self,
        session: Session,
        transport: asyncio.WriteTransport,
        muxer_format: tuple[str, MuxerFactory],
        on_end: Callable[[str], None],
        framing: tuple[str, Framing] = ("raw", no_framing),
    ) -> None:
        self.session = session
        self.transport = transport
        self.format = muxer_format
        self.framing = framing
        self.on_end = on_end
        self.backlog = 0
        self.max_lag = 0.0
        self.waiting_key = False
        self.lag_since: float | None = None
        self.dropped = 0
        self.stream: Stream | None = None
        self.closed = False

    def offer(self, data: bytes, frames: list[bytes], first_key: int, now: float) -> int:
        """Write a batch of frames (``data`` = ``frames`` joined) unless behind; returns frames dropped.

        ``first_key`` is the index of the first keyframe in the batch (-1: none), where a reader
        that is skipping to a keyframe starts again.
        """
        transport = self.transport
        if transport.get_write_buffer_size() > self.backlog:
            if self.lag_since is None:
                self.lag_since = now
            elif now - self.lag_since > self.max_lag:
                self.close(f"slow reader: behind for more than {self.max_lag:g}s")
                if self.stream is not None:
                    self.stream.hub.stats.slow_readers_disconnected += 1
            self.waiting_key = True
            self.dropped += len(frames)
            return len(frames)
        self.lag_since = None
        skipped = 0
        if self.waiting_key:
            if first_key < 0:
                self.dropped += len(frames)
                return len(frames)
            self.waiting_key = False
            if first_key:
                skipped = first_key
                self.dropped += skipped
                data = b"".join(frames[first_key:])
        if transport.is_closing():  # the peer went away; HTTP adapters learn it here first
            self.close("client went away")
            return skipped
        transport.write(data)
        self.session.bytes_out += len(data)
        return skipped

    def close(self, reason: str, notify: bool = True) -> None:
        """Detach and tell the client through the adapter's on_end (which closes the connection).

        ``notify=False`` is for the adapter's own cleanup, when the connection is already going.
        """
        if self.closed:
            return
        self.closed = True
        if self.stream is not None:
            self.stream.detach(self)
        self.session.close_reason = self.session.close_reason or reason
        if notify:
            self.on_end(reason)


class FrameSink(Protocol):
    """A consumer of Frames inside the process (library iterators, HLS/DASH segmenters).

    ``offer`` is called synchronously from the publisher's ``write``: it must be quick and must
    never block or await.
    """

    def offer(self, frame: Frame, keyframe: bool) -> None: ...

    def tracks_changed(self) -> None: ...

    def end(self) -> None: ...


class FrameQueue:
    """A library consumer of Frames (``async for frame in stream.frames()``).

    Bounded: when the consumer is slower than the stream, frames are dropped up to the next
    keyframe instead of growing memory or slowing the publisher.
    """

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(size)
        self.waiting_key = False
        self.dropped = 0

    def offer(self, frame: Frame, keyframe: bool) -> None:
        if self.waiting_key and not keyframe:
            self.dropped += 1
            return
        if self.queue.full():
            self.waiting_key = True
            self.dropped += 1
            return
        self.waiting_key = False
        self.queue.put_nowait(frame)

    def tracks_changed(self) -> None:
        """Frames carry their track index; ``stream.tracks`` already holds the new config."""

    def end(self) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class _Group:
    """Readers that share one output format, and that format's muxed GOP cache."""

    __slots__ = ("muxer", "framing", "readers", "gop", "pending", "pending_key")

    def __init__(self, muxer: Muxer, framing: Framing) -> None:
        self.muxer = muxer
        self.framing = framing
        self.readers: list[Reader] = []
        self.gop: list[bytes] = []
        self.pending: list[bytes] = []  # muxed frames not yet written to the readers
        self.pending_key = -1  # index of the first keyframe in pending


class Stream:
    """One live path. Created by the Hub when a publisher arrives; ended when it leaves."""

    def __init__(self, hub: Hub, path: str, config: PathConfig) -> None:
        self.hub = hub
        self.path = path
        self.config = config
        self.tracks: list[Track] = []
        self.metadata: dict[str, object] = {}
        self.publisher: Session | None = None
        self.bytes_in = 0
        self.frames_in = 0
        self.keyframes_in = 0  # lets a publisher that was asked for one see it arrive
        self.dropped = 0
        self._groups: dict[tuple[str, str], _Group] = {}
        self._sinks: set[FrameSink] = set()
        self._gop: list[Frame] = []
        self._gop_bytes = 0
        self._gop_active = False
        self._has_video = False
        self._last_dts = 0
        self._offset = 0
        self._rebase = False
        self._grace: asyncio.TimerHandle | None = None
        self._flush_handle: asyncio.Handle | None = None
        self.ended = False
        #: Set once an H.264/H.265 track shows B-frames (pts != dts): WebRTC players show them
        #: out of order, so the API and the log say so.
        self.bframes = False
        #: Transcoded variants of this stream by target audio codec (see hub/views.py).
        self.views: dict[str, AudioView] = {}
        #: Called when the last reader or sink leaves (a view then stops its transcoder).
        self.on_idle: Callable[[], None] | None = None
        self._bitrate_window: list[tuple[float, int]] = [(hub.now(), 0)]

    # -- publisher side -------------------------------------------------------------------
    def set_track(self, track: Track) -> int:
        """Add a track, or replace the one of the same kind (new codec config); returns its index."""
        for index, old in enumerate(self.tracks):
            if old.kind == track.kind:
                if old.config == track.config and old.codec == track.codec:
                    return index
                self.tracks[index] = track
                self._tracks_changed()
                return index
        self.tracks.append(track)
        self._has_video = any(t.kind == "video" for t in self.tracks)
        self._tracks_changed()
        return len(self.tracks) - 1

    def set_metadata(self, metadata: dict[str, object]) -> None:
        self.metadata = metadata

    def add_sink(self, sink: FrameSink, with_gop: bool = True) -> None:
        """Feed ``sink`` every frame from now on (after the cached GOP when ``with_gop``)."""
        if with_gop and self._gop_active:
            for frame in self._gop:
                sink.offer(frame, frame.keyframe and self._is_key_track(frame))
        self._sinks.add(sink)

    def remove_sink(self, sink: FrameSink) -> None:
        self._sinks.discard(sink)
        self._check_idle()

    def _check_idle(self) -> None:
        if self.on_idle is not None and not self._groups and not self._sinks:
            self.on_idle()

    def readable_with(self, audio: frozenset[str]) -> Stream:
        """This stream, or a view of it with its audio transcoded to a codec in ``audio``.

        Outputs call it with the audio codecs they can carry (RTMP/FLV/HLS: AAC; WebRTC: Opus,
        G.711). The view exists while it has readers; video and other tracks pass untouched.
        """
        from .views import transcoded_view  # views import this module

        return transcoded_view(self, audio)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, when its protocol can (WebRTC); else nothing."""
        publisher = self.publisher
        if publisher is not None and publisher.request_keyframe is not None:
            publisher.request_keyframe()

    def _is_key_track(self, frame: Frame) -> bool:
        return self.tracks[frame.track].kind == "video" or not self._has_video

    def _tracks_changed(self) -> None:
        self.flush()  # frames of the old configuration go out before the new one
        for sink in list(self._sinks):
            sink.tracks_changed()
        self._gop.clear()
        self._gop_bytes = 0
        self._gop_active = False
        for group in self._groups.values():
            group.gop.clear()
            if group.readers:
                data = group.framing(group.muxer.tracks_changed(self.tracks, self.metadata))
                if data:
                    for reader in list(group.readers):
                        reader.transport.write(data)
                        reader.session.bytes_out += len(data)

    def write(self, frame: Frame) -> None:
        """Hand one frame to every reader. Never blocks, never waits for a reader."""
        if self._rebase:
            self._offset = self._last_dts + REBASE_GAP - frame.dts
            self._rebase = False
        if self._offset:
            frame = Frame(
                frame.track, frame.pts + self._offset, frame.dts + self._offset, frame.keyframe, frame.units
            )
        if frame.dts > self._last_dts:
            self._last_dts = frame.dts
        if frame.pts != frame.dts and not self.bframes:
            self._saw_bframes(frame)
        size = frame.size
        self.frames_in += 1
        if self.frames_in & 63 == 0 and self.config.max_publish_bitrate:
            self._check_bitrate()
        keyframe = frame.keyframe and self._is_key_track(frame)
        starts_gop = keyframe
        if keyframe:
            self.keyframes_in += 1
        config = self.config
        if config.gop_cache:
            if starts_gop:
                self._gop.clear()
                self._gop_bytes = 0
                self._gop_active = True
                for group in self._groups.values():
                    group.gop.clear()
            if self._gop_active:
                self._gop.append(frame)
                self._gop_bytes += size
                if (
                    len(self._gop) > config.gop_cache_max_frames
                    or self._gop_bytes > config.gop_cache_max_bytes
                ):
                    self._gop_active = False
                    self._gop.clear()
                    for group in self._groups.values():
                        group.gop.clear()
        for group in self._groups.values():
            data = group.framing(group.muxer.frame(frame))
            if not data:
                continue
            if self._gop_active:
                group.gop.append(data)
            if keyframe and group.pending_key < 0:
                group.pending_key = len(group.pending)
            group.pending.append(data)
        if self._flush_handle is None and self._groups:
            loop, delay = asyncio.get_running_loop(), config.write_coalesce
            self._flush_handle = loop.call_later(delay, self.flush) if delay else loop.call_soon(self.flush)
        for sink in self._sinks:
            sink.offer(frame, keyframe)

    def flush(self) -> None:
        """Write what ``write`` queued: one write per reader for all frames of this loop turn.

        A publisher's read often carries several frames (audio and video); batching them the
        way nginx-rtmp's posted writes do saves a send() per frame per reader, at the cost of
        one event-loop turn of latency.
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        now = self.hub.now()
        dropped = 0
        for group in list(self._groups.values()):
            frames = group.pending
            if not frames:
                continue
            first_key = group.pending_key
            group.pending, group.pending_key = [], -1
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            for reader in tuple(group.readers):  # a slow reader may detach itself
                dropped += reader.offer(data, frames, first_key, now)
        if dropped:
            self.dropped += dropped
            self.hub.stats.dropped_frames += dropped

    def _saw_bframes(self, frame: Frame) -> None:
        if self.tracks[frame.track].kind == "video":
            self.bframes = True
            log.warning(
                "path %s: the video has B-frames; WebRTC players show frames out of order "
                "(publish without B-frames, e.g. x264 -bf 0 or the baseline profile)",
                self.path,
            )

    def _check_bitrate(self) -> None:
        """Disconnect a publisher above ``max_publish_bitrate`` (averaged over at least 2 s)."""
        limit = self.config.max_publish_bitrate
        rate = self.bitrate()
        if rate <= limit or self.hub.now() - self._bitrate_window[0][0] < 2:
            return
        publisher = self.publisher
        if publisher is not None and publisher.kick is not None:
            self.hub.stats.refused("bitrate")
            log.warning(
                "path %s: publisher %s sends %.0f bit/s, over max_publish_bitrate=%d",
                self.path,
                publisher.id,
                rate,
                limit,
            )
            publisher.kick(f"publish bitrate {rate:.0f} bit/s over max_publish_bitrate {limit}")

    def bitrate(self) -> float:
        """Incoming bits per second over the last few seconds (for the API)."""
        now = self.hub.now()
        window = self._bitrate_window
        if now - window[-1][0] >= 0.5:
            window.append((now, self.bytes_in))
        while len(window) > 2 and now - window[1][0] > 5:
            window.pop(0)
        t0, b0 = window[0]
        return (self.bytes_in - b0) * 8 / (now - t0) if now > t0 else 0.0

    # -- reader side ----------------------------------------------------------------------
    @property
    def readers(self) -> list[Reader]:
        return [r for g in self._groups.values() for r in g.readers]

    def reader_count(self) -> int:
        """Connected readers and library consumers (segmenters count their viewers themselves)."""
        queues = sum(isinstance(sink, FrameQueue) for sink in self._sinks)
        views = sum(view.stream.reader_count() for view in self.views.values())
        return sum(len(g.readers) for g in self._groups.values()) + queues + views

    def attach(self, reader: Reader, prefix: bytes = b"", gop: bool = True) -> None:
        """Start a reader: header, codec config and the GOP cache in one go, then live frames.

        ``gop=False`` starts it at the next keyframe instead, for readers whose publisher can
        make one now (WebRTC): a burst of cached frames would become their playout delay.
        """
        self.flush()  # queued frames are already in the GOP cache this reader gets
        (mux_name, factory), (framing_name, framing) = reader.format, reader.framing
        key = (mux_name, framing_name)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(factory(self.tracks), framing)
            group.gop = [data for f in self._gop if (data := framing(group.muxer.frame(f)))]
        reader.stream = self
        reader.backlog = self.config.reader_backlog_bytes
        reader.max_lag = self.config.reader_max_lag
        head = prefix + framing(group.muxer.header(self.tracks, self.metadata))
        from_gop = gop and self._gop_active
        parts = [head, *group.gop] if from_gop else [head]
        reader.waiting_key = not from_gop
        # writelines: uvloop hands the parts to the kernel as they are (writev), where a join
        # would copy the whole GOP (~0.5 MB at 2 Mbit/s) for every joining reader.
        reader.transport.writelines(parts)
        reader.session.bytes_out += sum(map(len, parts))
        group.readers.append(reader)

    def detach(self, reader: Reader) -> None:
        mux_name, framing_name = reader.format[0], reader.framing[0]
        group = self._groups.get((mux_name, framing_name))
        if group is not None and reader in group.readers:
            group.readers.remove(reader)
            if not group.readers:
                del self._groups[(mux_name, framing_name)]
                self._check_idle()
        if reader.dropped:
            log.debug("reader %s dropped %d frames", reader.session.id, reader.dropped)

    async def frames(self) -> AsyncIterator[Frame]:
        """Every frame from now on (starting at the cached GOP), until the stream ends."""
        queue = FrameQueue(self.config.frames_buffer)
        queue.waiting_key = not self._gop_active
        self.add_sink(queue)
        try:
            while (frame := await queue.queue.get()) is not None:
                yield frame
        finally:
            self._sinks.discard(queue)

    # -- lifecycle ------------------------------------------------------------------------
    def publisher_left(self, grace: float | None = None) -> None:
        """The publisher went away: end now, or wait ``grace`` (``publisher_grace``) for it to come back."""
        self.publisher = None
        if grace is None:
            grace = self.config.publisher_grace
        if grace > 0 and not self.ended:
            self._grace = asyncio.get_running_loop().call_later(grace, self.end, "publisher left")
            self._rebase = True
        else:
            self.end("publisher left")

    def publisher_returned(self, session: Session) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self.publisher = session

    def end(self, reason: str) -> None:
        """Tell every reader the stream ended and leave the registry."""
        if self.ended:
            return
        self.flush()
        self.ended = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        for reader in self.readers:
            reader.close(reason)
        for sink in list(self._sinks):
            sink.end()
        self.hub.remove_stream(self)

    def describe(self) -> dict[str, object]:
        pub = self.publisher
        return {
            "name": self.path,
            "ready": pub is not None,
            "tracks": [t.describe() for t in self.tracks],
            "publisher": {"id": pub.id, "protocol": pub.protocol, "remote": pub.remote} if pub else None,
            "readers": self.reader_count(),
            "bytes_in": self.bytes_in,
            "bytes_out": sum(r.session.bytes_out for r in self.readers)
            + sum(r.session.bytes_out for v in self.views.values() for r in v.stream.readers),
            "bitrate": round(self.bitrate()),
            "frames_in": self.frames_in,
            "dropped_frames": self.dropped,
            "bframes": self.bframes,
            "transcoding": sorted(self.views),
        }
