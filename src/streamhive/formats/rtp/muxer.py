"""Hub Frames to RTP for readers: one packetizer per track, shared by every reader of a group.

The output is RTSP-interleaved (``$`` channel length packet), all packets of a frame in one bytes
object, so a TCP reader costs one write per frame (ZLMediaKit measured that writing a frame's
packets in one send quadruples RTSP throughput). UDP readers get the same bytes and their
adapter splits them per channel into datagrams. RTCP sender reports go out on the odd channel
after a track's first frame and every few seconds, so players can sync audio and video.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

from ...hub.frame import Frame, Track
from . import RtpCodec, codec_for_track
from .packet import rtp_header
from .rtcp import SenderReport, unix_to_ntp

#: Seconds between sender reports per track (RFC 3550 suggests ~5 s for low-rate sessions).
SR_INTERVAL = 5.0
DYNAMIC_PT = 96


def payload_type(codec: RtpCodec, track: Track, index: int) -> int:
    """The payload type a track gets in our SDP: the static one, else dynamic by track index.

    Static types mean one clock rate and mono (PCMA = 8 kHz mono): other variants go dynamic.
    """
    static = codec.static_payload_type
    if static is not None:
        fmt = codec.sdp_format(track)
        if fmt.clock_rate in (8000, 90000) and (fmt.channels or 1) == 1:
            return static
    return DYNAMIC_PT + index


def media_sections(tracks: list[Track], control: Callable[[int], str]) -> list[str]:
    """SDP m= sections (CRLF lines) for every track RTP can carry, as the muxer will send them."""
    lines: list[str] = []
    for index, track in enumerate(tracks):
        codec = codec_for_track(track)
        if codec is None:
            continue
        fmt = codec.sdp_format(track)
        pt = payload_type(codec, track, index)
        lines.append(f"m={track.kind} 0 RTP/AVP {pt}")
        encoding = f"{fmt.encoding}/{fmt.clock_rate}" + (f"/{fmt.channels}" if fmt.channels else "")
        lines.append(f"a=rtpmap:{pt} {encoding}")
        if fmt.fmtp:
            lines.append(f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in fmt.fmtp.items()))
        lines.append(f"a=control:{control(index)}")
    return lines


class _TrackOut:
    __slots__ = (
        "codec",
        "packetizer",
        "channel",
        "pt",
        "ssrc",
        "seq",
        "ts_base",
        "clock",
        "packets",
        "octets",
        "next_sr",
        "last_ts",
    )

    def __init__(
        self, track: Track, index: int, channel: int, mtu: int, pt: int | None, ssrc: int | None
    ) -> None:
        codec = codec_for_track(track)
        assert codec is not None
        self.codec = codec
        self.packetizer = codec.packetizer(track, mtu)
        self.channel = channel
        self.pt = payload_type(codec, track, index) if pt is None else pt
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        self.seq = random.getrandbits(16)
        self.ts_base = random.getrandbits(32)
        self.clock = codec.sdp_format(track).clock_rate
        self.packets = 0
        self.octets = 0
        self.next_sr = 0.0
        self.last_ts = self.ts_base


class RtpMuxer:
    """A hub Muxer producing interleaved RTP for the tracks in ``channels`` (index -> RTP channel).

    ``clock`` gives wall time for sender reports; the NTP time of a frame is fixed by the first
    frame this muxer sees, so every track's reports agree with each other (that is all lip sync
    needs), whatever the publisher's pacing.

    WebRTC fixes what SDP negotiated: ``payload_types`` and ``ssrcs`` (by track index) replace
    our own choice, and ``history(ssrc, seq, packet)`` sees each packet once, for NACK answers.
    """

    def __init__(
        self,
        tracks: list[Track],
        channels: dict[int, int],
        mtu: int = 1400,
        clock: Callable[[], float] = time.time,
        payload_types: dict[int, int] | None = None,
        ssrcs: dict[int, int] | None = None,
        history: Callable[[int, int, bytes], None] | None = None,
    ) -> None:
        self.tracks = tracks
        self.channels = channels
        self.mtu = mtu
        self.clock = clock
        self.payload_types = payload_types if payload_types is not None else {}
        self.ssrcs = ssrcs if ssrcs is not None else {}
        self.history = history
        self.outs: dict[int, _TrackOut] = {}
        self.origin: tuple[float, int] | None = None  # (wall time, hub pts) of the first frame
        self._build()

    def _build(self) -> None:
        old = self.outs
        self.outs = {}
        for index, channel in self.channels.items():
            if index < len(self.tracks) and codec_for_track(self.tracks[index]) is not None:
                out = _TrackOut(
                    self.tracks[index],
                    index,
                    channel,
                    self.mtu,
                    self.payload_types.get(index),
                    self.ssrcs.get(index),
                )
                if index in old:  # same RTP stream continues: players keep their state
                    prev = old[index]
                    out.ssrc, out.seq, out.ts_base = prev.ssrc, prev.seq, prev.ts_base
                self.outs[index] = out

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return b""

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        self.tracks = tracks
        self._build()
        return b""

    def frame(self, frame: Frame) -> bytes:
        out = self.outs.get(frame.track)
        if out is None:
            return b""
        if self.origin is None:
            self.origin = (self.clock(), frame.pts)
        ts = (out.ts_base + frame.pts * out.clock // 90000) & 0xFFFFFFFF
        out.last_ts = ts
        payloads = out.packetizer.packetize(frame.units, frame.keyframe)
        parts: list[bytes] = []
        seq, channel, pt, ssrc = out.seq, out.channel, out.pt, out.ssrc
        octets = 0
        history = self.history
        for payload, marker in payloads:
            size = 12 + len(payload)
            parts.append(struct.pack(">BBH", 0x24, channel, size))
            header = rtp_header(pt, seq, ts, ssrc, marker)
            if history is not None:
                history(ssrc, seq, header + payload)
            parts.append(header)
            parts.append(payload)
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
        out.seq = seq
        out.packets += len(payloads)
        out.octets += octets
        wall = self.origin[0] + (frame.pts - self.origin[1]) / 90000
        if wall >= out.next_sr:
            out.next_sr = wall + SR_INTERVAL
            parts.append(self._sender_report(out, wall, ts))
        return b"".join(parts)

    def _sender_report(self, out: _TrackOut, wall: float, ts: int) -> bytes:
        report = SenderReport(
            ssrc=out.ssrc,
            ntp_timestamp=unix_to_ntp(wall),
            rtp_timestamp=ts,
            packet_count=out.packets & 0xFFFFFFFF,
            octet_count=out.octets & 0xFFFFFFFF,
        ).serialize()
        return struct.pack(">BBH", 0x24, out.channel + 1, len(report)) + report
