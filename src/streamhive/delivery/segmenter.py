"""Cuts a Stream's frames into CMAF parts and segments (and optionally MPEG-TS segments).

One muxing pass feeds every HTTP variant: each part is one fMP4 fragment per track; LL-HLS
serves the parts, HLS/fMP4 serves each segment as its parts joined (all tracks), DASH serves a
segment per track (that track's fragments joined). MPEG-TS segments, for legacy players, are
cut at the same keyframes from the same frames.

With AES-128 (``keys``), each segment's HLS bytes (``ts`` for the MPEG-TS variant, else
``data``) are encrypted once, when the segment completes; parts and DASH's per-track data stay
clear, so the HTTP layer must not serve those for an encrypted path.

Sans-IO: frames in (``offer``), segments out; the wall clock is passed in for program dates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..formats import fmp4
from ..formats.mpegts import TsError, TsMuxer
from ..hub.frame import Frame, Track
from .crypto import SegmentKeys, encrypt_segment

CLOCK = 90000


@dataclass(slots=True)
class Part:
    index: int
    duration: float
    independent: bool
    tracks: dict[int, bytes]
    data: bytes


@dataclass(slots=True)
class Segment:
    msn: int
    start_dts: int
    program_time: float
    init_version: int
    discontinuity: bool
    parts: list[Part] = field(default_factory=list)
    duration: float = 0.0
    complete: bool = False
    ts: bytes = b""
    data: bytes = b""
    #: The AES-128 key period (see crypto.SegmentKeys) of an encrypted segment, else None.
    key_id: int | None = None

    def track_data(self, track: int) -> bytes:
        return b"".join(part.tracks.get(track, b"") for part in self.parts)


class Segmenter:
    """One per Stream and variant set; a FrameSink (see hub.stream.FrameSink)."""

    def __init__(
        self,
        tracks: list[Track],
        *,
        segment_duration: float,
        part_duration: float,
        window: int,
        with_ts: bool,
        clock: Callable[[], float],
        on_update: Callable[[], None] = lambda: None,
        keys: SegmentKeys | None = None,
    ) -> None:
        self.tracks = tracks
        self.segment_duration = segment_duration
        self.part_duration = part_duration
        self.window = window
        self.with_ts = with_ts
        self.clock = clock
        self.on_update = on_update
        self.keys = keys
        self.segments: deque[Segment] = deque()
        self.current: Segment | None = None
        self.ended = False
        self.init_version = 0
        self._interval = 0  # the key track's last frame interval, to keep parts within target
        self._pending: list[Frame] = []
        self._part_start = 0
        self._last_dts: dict[int, int] = {}
        self._discontinuity = False
        self._anchor: tuple[int, float] | None = None  # (dts, wall clock) of the first frame
        self._next_msn = 0
        #: Init segments by version, kept while a listed segment refers to one.
        self.inits: dict[int, bytes] = {}
        self._setup()

    # -- configuration ------------------------------------------------------------------------
    def _setup(self) -> None:
        usable = [i for i, t in enumerate(self.tracks) if t.config or t.codec == "mp3"]
        self.track_indexes = [i for i in usable if fmp4.supported(self.tracks[i])]
        video = [i for i in self.track_indexes if self.tracks[i].kind == "video"]
        self.key_track = video[0] if video else (self.track_indexes[0] if self.track_indexes else None)
        chosen = [self.tracks[i] for i in self.track_indexes]
        ids = [i + 1 for i in self.track_indexes]
        self.init = fmp4.init_segment(chosen, ids) if chosen else b""
        self.inits[self.init_version] = self.init
        self.track_inits = {i: fmp4.init_segment([self.tracks[i]], [i + 1]) for i in self.track_indexes}
        self._fragmenter = fmp4.FragmentMuxer(chosen, ids) if chosen else None
        self._position = {track: n for n, track in enumerate(self.track_indexes)}
        self._ts = None
        if self.with_ts and chosen:
            try:
                self._ts = TsMuxer(chosen)
            except TsError:
                self._ts = None  # e.g. AV1: the TS variant is not offered, CMAF still is
        self._ts_chunks: list[bytes] = []

    def tracks_changed(self) -> None:
        """New codec configuration: end the segment, start a new init, mark a discontinuity."""
        if self.current is not None:
            self._finish(self._estimate_end())
            self._discontinuity = True
        self.init_version += 1
        self._setup()
        self.on_update()

    def continue_from(self, previous: Segmenter) -> None:
        """Carry on the playlist of a path's previous publisher: same numbering, a discontinuity.

        Players polling the playlist across a publisher restart then see the media sequence go
        on instead of starting again at zero.
        """
        self.segments = deque(previous.segments)
        self.inits = {**previous.inits, **self.inits}
        self._next_msn = previous.next_msn
        if self.keys is not None and previous.keys is not None:
            self.keys.inherit(previous.keys)
        self.init_version = previous.init_version + 1
        self._discontinuity = True
        self._setup()

    # -- frames -------------------------------------------------------------------------------
    def offer(self, frame: Frame, keyframe: bool) -> None:
        if self.ended or frame.track not in self._position or self.key_track is None:
            return
        is_key_track = frame.track == self.key_track
        current = self.current
        if current is None:
            if not (is_key_track and keyframe):
                return
            self._start_segment(frame)
        elif is_key_track:
            previous = self._last_dts.get(frame.track)
            if previous is not None and frame.dts > previous:
                self._interval = frame.dts - previous
            if keyframe and (frame.dts - current.start_dts) / CLOCK >= self.segment_duration * 0.999:
                self._close_part(frame.dts)
                self._close_segment(frame.dts)
                self._start_segment(frame)
            elif (frame.dts + self._interval - self._part_start) / CLOCK > self.part_duration * 1.025:
                # Waiting for the next frame would make the part longer than its target.
                self._close_part(frame.dts)
        self._pending.append(frame)
        self._last_dts[frame.track] = frame.dts
        if self._ts is not None:
            self._ts_chunks.append(self._ts.frame(self._ts_frame(frame)))

    def end(self) -> None:
        """The stream ended: publish what is pending as the last segment."""
        if self.current is not None:
            self._finish(self._estimate_end())
        self.ended = True
        self.on_update()

    # -- cutting ------------------------------------------------------------------------------
    def _ts_frame(self, frame: Frame) -> Frame:
        index = self._position[frame.track]
        if index == frame.track:
            return frame
        return Frame(index, frame.pts, frame.dts, frame.keyframe, frame.units)

    def _estimate_end(self) -> int:
        """End time of the pending frames when no next frame will come: one more frame interval."""
        if not self._pending:
            return self._part_start
        key = [f.dts for f in self._pending if f.track == self.key_track] or [f.dts for f in self._pending]
        step = key[-1] - key[-2] if len(key) > 1 else CLOCK // 25
        return key[-1] + max(step, 1)

    def _start_segment(self, frame: Frame) -> None:
        if self._anchor is None:
            self._anchor = (frame.dts, self.clock())
        anchor_dts, anchor_wall = self._anchor
        self.current = Segment(
            msn=self._next_msn,
            start_dts=frame.dts,
            program_time=anchor_wall + (frame.dts - anchor_dts) / CLOCK,
            init_version=self.init_version,
            discontinuity=self._discontinuity,
            key_id=self.keys.key_id(self._next_msn) if self.keys is not None else None,
        )
        self._next_msn += 1
        self._discontinuity = False
        self._part_start = frame.dts
        if self._ts is not None:
            self._ts_chunks = [self._ts.header()]

    def _close_part(self, end_dts: int) -> None:
        current, pending = self.current, self._pending
        if current is None or not pending or self._fragmenter is None:
            return
        by_track: dict[int, list[Frame]] = {}
        for frame in pending:
            by_track.setdefault(frame.track, []).append(frame)
        fragments: dict[int, bytes] = {}
        for track in self.track_indexes:
            frames = by_track.get(track)
            if frames:
                position = self._position[track]
                next_dts = {position: end_dts} if track == self.key_track else None
                fragments[track] = self._fragmenter.fragment({position: frames}, next_dts)
        duration = (end_dts - self._part_start) / CLOCK
        first_key = next((f for f in pending if f.track == self.key_track), None)
        part = Part(
            index=len(current.parts),
            duration=duration,
            independent=first_key is not None and first_key.keyframe,
            tracks=fragments,
            data=b"".join(fragments[t] for t in self.track_indexes if t in fragments),
        )
        current.parts.append(part)
        self._pending = []
        self._part_start = end_dts
        self.on_update()

    def _close_segment(self, end_dts: int) -> None:
        current = self.current
        if current is None:
            return
        current.duration = (end_dts - current.start_dts) / CLOCK
        current.data = b"".join(part.data for part in current.parts)
        if self._ts is not None:
            current.ts = b"".join(self._ts_chunks)
            self._ts_chunks = []
        if self.keys is not None and current.key_id is not None:
            key = self.keys.keys[current.key_id]
            if self.with_ts:
                current.ts = encrypt_segment(current.ts, key, current.msn)
            else:
                current.data = encrypt_segment(current.data, key, current.msn)
        current.complete = True
        self.segments.append(current)
        while len(self.segments) > self.window:
            self.segments.popleft()
        referenced = {segment.init_version for segment in self.segments} | {self.init_version}
        for version in [v for v in self.inits if v not in referenced]:
            del self.inits[version]
        if self.keys is not None:
            self.keys.keep({segment.key_id for segment in self.segments})
        self.current = None

    def _finish(self, end_dts: int) -> None:
        self._close_part(end_dts)
        self._close_segment(end_dts)

    # -- lookups for the HTTP layer -----------------------------------------------------------
    def segment(self, msn: int) -> Segment | None:
        if self.current is not None and self.current.msn == msn:
            return self.current
        for segment in self.segments:
            if segment.msn == msn:
                return segment
        return None

    @property
    def next_msn(self) -> int:
        return self._next_msn

    @property
    def anchor(self) -> tuple[int, float] | None:
        return self._anchor
