"""Incoming RTP to hub Frames: reordering, depacketizing and one clock for every track.

Used by RTSP publishers (RECORD) and pulled sources alike. Each track's RTP timestamps start at a
random value on their own clock; hub Frames need one 90 kHz timeline shared by all tracks, or
audio and video drift apart in every other protocol. The reference that ties tracks together is,
in order of preference: RTCP sender reports (NTP time of an RTP timestamp), the RTP-Info of a
PLAY answer (the RTP timestamps of all tracks at the same instant), and arrival time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...hub.frame import Frame, Track
from . import Access, RtpCodec, RtpError, SdpFormat
from .packet import RtpPacket
from .reorder import Reorderer
from .rtcp import ReceiverStats

#: Seconds an out-of-order packet waits for the gap before it to fill, judged on the arrival of
#: later packets: reordering on a LAN is a matter of microseconds, a lost packet never comes.
REORDER_WAIT = 0.05

#: Hub timestamps start here rather than at 0, so a track whose first packet is a little earlier
#: than the first packet of the session (audio before video, say) never goes negative.
HEADROOM = 90000


class RtpReceiver:
    """One incoming RTP stream: packets in (any order), complete access units out."""

    def __init__(
        self,
        codec: RtpCodec,
        track: Track,
        fmt: SdpFormat,
        payload_type: int,
        reorder: bool,
    ) -> None:
        self.codec = codec
        self.track = track
        self.payload_type = payload_type
        self.clock_rate = fmt.clock_rate
        self.depacketizer = codec.depacketizer(track, fmt)
        self.reorderer = Reorderer() if reorder else None
        self.stats = ReceiverStats()
        self.ssrc: int | None = None
        self.errors = 0
        self.held_since: float | None = None
        #: Seconds a gap may stay open: longer where lost packets come back (WebRTC NACK).
        self.reorder_wait = REORDER_WAIT

    def packet(self, data: bytes, arrival: float) -> list[Access]:
        """Feed one RTP packet (raises RtpError for a malformed header)."""
        pkt = RtpPacket.parse(data)
        if pkt.payload_type != self.payload_type:
            return []  # comfort noise, FEC or a stray stream: not ours to decode
        self.ssrc = pkt.ssrc
        self.stats.update(pkt.sequence, pkt.timestamp, int(arrival * self.clock_rate))
        reorderer = self.reorderer
        if reorderer is None:
            return self._depacketize(pkt)
        items = reorderer.push(pkt)
        if not reorderer.held:
            self.held_since = None
        elif self.held_since is None:
            self.held_since = arrival
        elif arrival - self.held_since > self.reorder_wait:
            items += reorderer.flush()
            self.held_since = None
        out: list[Access] = []
        for item in items:
            if item is None:
                self.depacketizer.lost()
            else:
                out += self._depacketize(item)
        return out

    def _depacketize(self, pkt: RtpPacket) -> list[Access]:
        if not pkt.payload:  # padding only (a WebRTC sender probing bandwidth): no media
            return []
        try:
            return self.depacketizer.push(pkt.payload, pkt.timestamp, pkt.marker)
        except RtpError:
            self.errors += 1
            self.depacketizer.lost()
            return []


@dataclass(slots=True)
class _TrackClock:
    clock_rate: int
    last: int | None = None  # last extended RTP timestamp
    sr: tuple[float, int] | None = None  # (NTP seconds, extended RTP timestamp) of the last SR
    info: int | None = None  # extended RTP timestamp at npt 0 (RTP-Info)
    anchor: tuple[int, int] | None = None  # (extended RTP timestamp, hub timestamp)
    last_dts: int = -(1 << 62)
    max_pts: int = -(1 << 62)
    reorder: int = 0  # how far behind the latest PTS a frame has come (B-frames), in hub ticks
    step: int = 0  # the shortest PTS interval seen between consecutive frames (one frame)
    last_pts: int | None = None

    def extend(self, ts: int) -> int:
        last = self.last
        if last is None:
            ext = ts
        else:
            delta = (ts - last) & 0xFFFFFFFF
            ext = last + delta if delta < 0x80000000 else last + delta - 0x100000000
        self.last = ext
        return ext


class ClockSync:
    """Maps every track's RTP timestamps onto one hub timeline (90 kHz).

    A track's mapping is fixed by its first packet and never changes afterwards, so readers never
    see a jump; sender reports that arrive later only help tracks that have not started yet.
    """

    def __init__(self, clock_rates: list[int]) -> None:
        self.tracks = [_TrackClock(rate) for rate in clock_rates]
        self.base: str | None = None  # "ntp" | "npt" | "arrival": what the first anchor used
        self.origin: tuple[float, float] | None = None  # (reference seconds, arrival) of the origin

    def sender_report(self, index: int, ntp_seconds: float, rtp_ts: int) -> None:
        track = self.tracks[index]
        track.sr = (ntp_seconds, track.extend(rtp_ts) if track.last is not None else rtp_ts)

    def rtp_info(self, index: int, rtp_ts: int) -> None:
        """The RTP timestamp this track had at the PLAY range start (the same instant for all)."""
        self.tracks[index].info = rtp_ts

    def to_hub(self, index: int, rtp_ts: int, arrival: float) -> int:
        track = self.tracks[index]
        ext = track.extend(rtp_ts)
        anchor = track.anchor
        if anchor is None:
            anchor = track.anchor = (ext, self._anchor(track, ext, arrival))
        return anchor[1] + (ext - anchor[0]) * 90000 // track.clock_rate

    def frame(self, index: int, access: Access, arrival: float, track_index: int) -> Frame:
        """The hub Frame (for hub track ``track_index``) of media ``index``'s access unit.

        RTP carries no DTS. Without B-frames DTS = PTS. With them, frames arrive in decode order
        with PTS going back by up to the reorder depth R, so no later frame can have a PTS
        below (highest PTS so far) - R: DTS = min(PTS, that - one frame), kept strictly
        increasing, is a valid decode time anchored to the stream (no drift). Until the first
        B-frames show R, a frame or two may get DTS > PTS (a negative composition offset).
        """
        pts = self.to_hub(index, access.timestamp, arrival)
        track = self.tracks[index]
        if track.last_pts is not None and pts != track.last_pts:
            delta = abs(pts - track.last_pts)
            track.step = delta if not track.step else min(track.step, delta)
        track.last_pts = pts
        if pts < track.max_pts:
            track.reorder = max(track.reorder, track.max_pts - pts)
        else:
            track.max_pts = pts
        dts = pts
        if track.reorder:  # no later frame can have a PTS below max PTS - R
            dts = min(pts, track.max_pts - track.reorder - track.step)
        if dts <= track.last_dts:
            dts = track.last_dts + 1
        track.last_dts = dts
        return Frame(track_index, pts, dts, access.keyframe, access.units)

    def _anchor(self, track: _TrackClock, ext: int, arrival: float) -> int:
        if track.sr is not None:
            kind, ref = "ntp", track.sr[0] + (ext - track.sr[1]) / track.clock_rate
        elif track.info is not None:
            kind, ref = "npt", (ext - track.info) / track.clock_rate
        else:
            kind, ref = "arrival", arrival
        if self.origin is None:
            self.base, self.origin = kind, (ref, arrival)
        elif kind != self.base:  # no common reference: place it by arrival time
            ref = self.origin[0] + (arrival - self.origin[1])
        return HEADROOM + round((ref - self.origin[0]) * 90000)
