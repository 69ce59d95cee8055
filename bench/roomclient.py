"""A lightweight SFU load client: P publishers and S subscribers of one room, in one asyncio process.

Nobody encodes or decodes. Every participant is one UDP socket with bench/webrtcclient.py's
:class:`~bench.webrtcclient.Viewer` machinery (full-ICE client, DTLS with streamhive's sans-IO
endpoint, one certificate for all):

- a **publisher** sends a clip encoded once (bench/run_webrtc.py's: testsrc2 1280x720 30 fps
  H.264 constrained baseline 1 Mbit/s, 2 s GOP, Opus 32 kbit/s), demuxed with PyAV and packetized
  once with streamhive's RTP packetizers (1200-byte packets); per publisher only the RTP header
  (its SSRCs, sequence numbers, timestamps), SRTP protect and ``sendto`` are done live, paced by
  the clip's timestamps and looped. A live 720p encode would take ~30% of a core per publisher.
  Publishers ignore the server's RTCP (PLI included: a new subscriber waits for the next keyframe,
  at most one GOP).
- a **subscriber** receives every publisher's audio and video on one subscribe connection and
  does what bench/webrtcclient.py's viewers do, per SSRC: SRTP-unprotect each stream's packets
  until its first keyframe and ``--verify`` more, then count from the clear RTP header only.

Per subscriber: loss per stream (extended sequence numbers, as RTCP counts it), freezes (more
than ``FREEZE_S`` without a packet of one publisher's video, the end of the run included), the
received bitrate over the steady window, and the time to the first packet and to a keyframe of
every video. A subscriber **kept up** when it has no error, got every stream, no freeze, at most
``--max-loss-pct`` (default 1) percent loss and at least ``--min-pct`` (default 90) percent of the
expected bitrate: what the publishers sent in the same window (SRTP bytes), so the clip's
bitrate changing over time does not count against anyone.

Signalling, by URL:

- **streamhive** (``ws://HOST:PORT/rooms/NAME/ws``, docs/rooms.md): a WebSocket per participant;
  publishers ``join`` and offer their publish connection (``tracks``: camera 1280x720 and
  microphone); subscribers ``join``, collect the tracks from ``joined`` and ``track_published``
  until all ``2 x P`` are there, and offer one ``recvonly`` m-line per track (``tracks: [{mid,
  track}]``). The WebSocket stays open (and read) for the whole run; ``leave`` at the end.
- **Janus videoroom** (``http://HOST:PORT/janus``, ``--janus-room``, default 1234) over Janus's
  HTTP API: a session and a ``janus.plugin.videoroom`` handle per participant; publishers
  ``joinandconfigure`` with their offer, subscribers ``join`` (``ptype`` subscriber) with one
  ``streams`` entry per publisher feed and answer Janus's offer with ``start``.

    python -m bench.roomclient ws://127.0.0.1:8080/rooms/bench/ws --publishers 2 --subscribers 50
    python -m bench.roomclient http://127.0.0.1:8088/janus --publishers 2 --subscribers 50
    streamhive bench room ws://127.0.0.1:8080/rooms/bench/ws --publishers 2 --subscribers 50 \\
        --seconds 15 --server-pid PID [--profile]

With ``--server-pid`` the server's CPU (utime + stime of /proc/PID/stat, all threads) over the
steady window gives subscribers and forwarded streams (publisher -> subscriber, audio + video,
like one WHEP viewer) per core; ``--profile`` also samples it with py-spy over that window and
splits the busy time into SRTP protect, ``Rewriter.rewrite``, sending and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import linecache
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadclient import (  # noqa: E402
    cpu_pct_since,
    marker,
    percentiles,
    prepare,
    ramp_wait,
    rate_spread,
    rounded,
    steady_then_end,
)
from bench.webrtcclient import (  # noqa: E402
    DEFAULT_MAX_LOSS_PCT,
    DEFAULT_MIN_PCT,
    DEFAULT_RCVBUF,
    DEFAULT_VERIFY,
    FREEZE_S,
    JANUS_KEEPALIVE_S,
    Janus,
    LocalIce,
    LoopLag,
    RemoteDescription,
    SeqCounter,
    Viewer,
    ViewerStats,
    WebRtcClientError,
    _h264_keyframe,
    _session_lines,
    answer_for,
    parse_remote_sdp,
    socket_drops,
    viewer_socket,
)
from streamhive.codecs.h264 import parse_avcc_record, split_annexb, split_avcc  # noqa: E402
from streamhive.formats.rtp.h264 import H264Packetizer  # noqa: E402
from streamhive.formats.rtp.packet import rtp_header  # noqa: E402
from streamhive.protocols.webrtc import WebRtcError  # noqa: E402
from streamhive.protocols.webrtc.dtls import DtlsCertificate  # noqa: E402

MTU = 1200  # RTP packet size, as streamhive's webrtc.mtu and bench/run_webrtc.py's Janus feed
VIDEO_PT = 96
AUDIO_PT = 111
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
H264_FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
OPUS_FMTP = "minptime=10;useinbandfec=1"
PUBLISH_SIZE = (1280, 720)  # the clip's, told to streamhive in the publish offer's tracks
JANUS_ROOM = 1234
MAX_STREAMS = 64  # SSRCs one subscriber keeps counters for (a stray SSRC cannot grow the table)
SETTLE_S = 3.0  # after the last subscriber started: ICE, DTLS and the next keyframe (2 s GOP)
PUBLISHERS_READY_S = 10.0  # publishers must be sending within this, or the run stops


# -- the clip, packetized once --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClipFrame:
    """One access unit: when it is due (seconds from the clip's start), its RTP timestamp on its
    media clock (from the clip's start) and its RTP payloads with their marker bits."""

    at: float
    video: bool
    timestamp: int
    payloads: tuple[tuple[bytes, bool], ...]


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip's access units in send order, and how long one loop of it lasts."""

    frames: tuple[ClipFrame, ...]
    length: float

    def loop_ticks(self, video: bool) -> int:
        """What RTP timestamps advance by from one loop to the next."""
        return round(self.length * (VIDEO_CLOCK if video else AUDIO_CLOCK))


def packetize_clip(
    video: Iterable[tuple[float, bool, list[bytes]]],
    audio: Iterable[tuple[float, bytes]],
    params: list[bytes],
    mtu: int = MTU,
) -> Clip:
    """Build a :class:`Clip` from demuxed media: video as ``(seconds, keyframe, NAL units)``,
    audio as ``(seconds, Opus packet)``, in any order. ``params`` (SPS, PPS) go in front of
    keyframes that lack them. Times are shifted so the earliest is 0; a loop lasts until the later
    media's last frame plus its last frame interval, so a looped clip keeps its pace."""
    packetizer = H264Packetizer(params, mtu)
    frames: list[tuple[float, bool, tuple[tuple[bytes, bool], ...]]] = []
    for at, keyframe, units in video:
        payloads = packetizer.packetize(tuple(units), keyframe)
        if payloads:
            frames.append((at, True, tuple((bytes(p), m) for p, m in payloads)))
    for at, packet in audio:
        if packet and len(packet) <= mtu:
            frames.append((at, False, ((packet, False),)))
    if not frames:
        raise ValueError("the clip has no audio or video")
    start = min(at for at, _, _ in frames)
    frames.sort(key=lambda f: (f[0], not f[1]))
    length = max(_media_end([at for at, v, _ in frames if v == video]) for video in (True, False)) - start
    return Clip(
        tuple(
            ClipFrame(
                at - start, video, round((at - start) * (VIDEO_CLOCK if video else AUDIO_CLOCK)), payloads
            )
            for at, video, payloads in frames
        ),
        length,
    )


def _media_end(times: list[float]) -> float:
    """The last time plus the last interval (one media of a clip); -inf for no times."""
    if not times:
        return float("-inf")
    return times[-1] + (times[-1] - times[-2] if len(times) > 1 else 0.0)


def load_clip(path: Path, mtu: int = MTU) -> Clip:
    """Demux an H.264 + Opus file with PyAV (no decoding) and packetize it (:func:`packetize_clip`)."""
    import av  # PyAV: only publishers need it

    video: list[tuple[float, bool, list[bytes]]] = []
    audio: list[tuple[float, bytes]] = []
    params: list[bytes] = []
    with av.open(str(path)) as container:
        vstream = next((s for s in container.streams if s.type == "video"), None)
        length_size = 0
        if vstream is not None:
            extradata = vstream.codec_context.extradata or b""
            if extradata[:1] == b"\x01":
                config = parse_avcc_record(extradata)
                length_size, params = config.length_size, [*config.sps, *config.pps]
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            at = float(packet.pts * packet.time_base)
            data = bytes(packet)
            if packet.stream.type == "video" and packet.stream.codec_context.name == "h264":
                units = split_avcc(data, length_size) if length_size else split_annexb(data)
                video.append((at, bool(packet.is_keyframe), units))
            elif packet.stream.type == "audio" and packet.stream.codec_context.name == "opus":
                audio.append((at, data))
    if not video or not audio:
        raise ValueError(f"{path}: need an H.264 and an Opus stream")
    return packetize_clip(video, audio, params, mtu)


def default_clip() -> Path:
    """bench/run_webrtc.py's clip (made once with ffmpeg, kept in the temp folder)."""
    from bench.run_webrtc import clip_path

    return clip_path()


# -- SDP ------------------------------------------------------------------------------------------
def _media_lines(kind: str, mid: str, direction: str, local: LocalIce) -> list[str]:
    """One bundled m-line of ours: H.264 (packetization-mode 1, constrained baseline) or Opus,
    with every transport attribute repeated, ``a=setup:active`` (we are the DTLS client, as
    browsers are towards ICE-lite servers)."""
    pt, rtpmap, fmtp = (
        (VIDEO_PT, "H264/90000", H264_FMTP) if kind == "video" else (AUDIO_PT, "opus/48000/2", OPUS_FMTP)
    )
    return [
        f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}",
        "c=IN IP4 0.0.0.0",
        f"a=mid:{mid}",
        f"a={direction}",
        "a=rtcp-mux",
        f"a=rtpmap:{pt} {rtpmap}",
        f"a=fmtp:{pt} {fmtp}",
        *([f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli"] if kind == "video" else []),
        *local.lines("active"),
    ]


def publish_offer(local: LocalIce, video_ssrc: int, audio_ssrc: int) -> str:
    """A sendonly offer: mid 0 video (H.264), mid 1 audio (Opus), each with its SSRC."""
    lines = _session_lines(["0", "1"])
    for mid, kind, ssrc in (("0", "video", video_ssrc), ("1", "audio", audio_ssrc)):
        lines += _media_lines(kind, mid, "sendonly", local)
        lines += [f"a=ssrc:{ssrc} cname:bench", f"a=ssrc:{ssrc} msid:bench bench-{kind}"]
    return "\r\n".join(lines) + "\r\n"


def subscribe_offer(local: LocalIce, kinds: list[str]) -> str:
    """A recvonly offer with one m-line per track, mids ``0``, ``1``... in the order of ``kinds``."""
    lines = _session_lines([str(i) for i in range(len(kinds))])
    for i, kind in enumerate(kinds):
        lines += _media_lines(kind, str(i), "recvonly", local)
    return "\r\n".join(lines) + "\r\n"


# -- publishers -----------------------------------------------------------------------------------
def _close_window(stats: ViewerStats, end: float) -> None:
    """The steady window's bytes, packets and kbit/s, from the counts at its start (what
    ViewerStats.finish does first; publishers and subscribers count other things)."""
    if stats.steady_bytes is not None and end > stats.steady_at:
        stats.window_bytes = stats.bytes - stats.steady_bytes
        stats.window_packets = stats.packets - stats.steady_packets
        stats.window_kbps = round(stats.window_bytes * 8 / (end - stats.steady_at) / 1000, 1)


@dataclass(slots=True)
class PublisherStats(ViewerStats):
    """A publisher's handshake (the ViewerStats fields) and what it sent."""

    sent_packets: int = 0
    sent_bytes: int = 0  # SRTP bytes on the wire
    late_ms: float = 0.0  # the most a frame went out after its time (the client's loop was busy)

    @property
    def bytes(self) -> int:
        return self.sent_bytes

    @property
    def packets(self) -> int:
        return self.sent_packets

    def finish(self, end: float) -> None:
        """The send rate over the steady window (a publisher has no receive side to judge)."""
        _close_window(self, end)
        if self.error is None and self.dtls_s is None:
            self.error = "never-sent"

    def public(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "signal_s": rounded(self.signal_s, 4),
            "ice_s": rounded(self.ice_s, 4),
            "dtls_s": rounded(self.dtls_s, 4),
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "window_kbps": self.window_kbps,
            "late_ms": round(self.late_ms, 1),
            "rtcp_packets": self.rtcp_packets,
            "error": self.error,
        }


class RoomPublisher(Viewer):
    """Viewer's ICE and DTLS, then the clip sent as live SRTP once DTLS is up."""

    def __init__(
        self, stats: PublisherStats, cert: DtlsCertificate, clip: Clip, handshake_timeout: float
    ) -> None:
        super().__init__(stats, cert, 0, handshake_timeout)
        self.pstats = stats
        self.clip = clip
        self.ssrcs = (_ssrc(), _ssrc())  # video, audio
        self.seqs = [secrets.randbits(16), secrets.randbits(16)]
        self.ts_base = (secrets.randbits(32), secrets.randbits(32))
        self.pts = (VIDEO_PT, AUDIO_PT)
        self.sender: asyncio.Task[None] | None = None

    def begin(self, remote: RemoteDescription, we_offered: bool) -> None:
        """The answer's payload types (the ones we offered, unless the server renumbers)."""
        video = next((m.pick("h264") for m in remote.media if m.kind == "video"), None)
        audio = next((m.pick("opus") for m in remote.media if m.kind == "audio"), None)
        self.pts = (video if video is not None else VIDEO_PT, audio if audio is not None else AUDIO_PT)
        super().begin(remote, we_offered)

    def _dtls(self, data: bytes) -> None:
        super()._dtls(data)
        if self.srtp is not None and self.sender is None and not self.finished:
            self.sender = asyncio.ensure_future(self._send_clip())

    async def _send_clip(self) -> None:
        """The clip's frames at their times from now, looped; a late frame goes at once (the
        pace catches up, nothing is skipped)."""
        clip, st = self.clip, self.pstats
        t0 = time.monotonic()
        loop = 0
        while not self.finished:
            base = t0 + loop * clip.length
            for frame in clip.frames:
                delay = base + frame.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif -delay * 1000 > st.late_ms:
                    st.late_ms = -delay * 1000
                if self.finished:
                    return
                self._send_frame(frame, loop)
            loop += 1

    def _send_frame(self, frame: ClipFrame, loop: int) -> None:
        assert self.srtp is not None and self.transport is not None and self.selected is not None
        media = 0 if frame.video else 1
        pt, ssrc = self.pts[media], self.ssrcs[media]
        ts = self.ts_base[media] + loop * self.clip.loop_ticks(frame.video) + frame.timestamp
        seq = self.seqs[media]
        st = self.pstats
        for payload, mark in frame.payloads:
            try:
                data = self.srtp.protect(rtp_header(pt, seq, ts, ssrc, mark) + payload)
            except WebRtcError:
                self.fail("srtp-protect")
                return
            self.transport.sendto(data, self.selected)
            seq = (seq + 1) & 0xFFFF
            st.sent_packets += 1
            st.sent_bytes += len(data)
        self.seqs[media] = seq

    def stop(self, end: float) -> None:
        if self.sender is not None:
            self.sender.cancel()
        super().stop(end)


def _ssrc() -> int:
    return secrets.randbits(32) or 1


# -- subscribers ----------------------------------------------------------------------------------
@dataclass(slots=True)
class StreamStats:
    """One received SSRC (one publisher's audio or video)."""

    video: bool
    verify: int  # packets still to SRTP-unprotect (after the first keyframe, for video)
    seq: SeqCounter = field(default_factory=SeqCounter)
    keyframe: bool = False  # video: a keyframe was seen (audio: True from the start)
    first: float = 0.0  # monotonic, first packet
    last: float = 0.0
    max_gap: float = 0.0
    freezes: int = 0

    def add(self, seq: int, size: int, now: float) -> None:
        """Count one packet; for video, a gap over FREEZE_S since the last one is a freeze."""
        self.seq.add(seq, size)
        if self.first == 0.0:
            self.first = self.last = now
            return
        gap = now - self.last
        if gap > self.max_gap:
            self.max_gap = gap
        if gap > FREEZE_S and self.video:
            self.freezes += 1
        self.last = now

    def close(self, end: float) -> None:
        """A video gap still running at ``end`` counts as a freeze too."""
        if self.first == 0.0:
            return
        gap = end - self.last
        self.max_gap = max(self.max_gap, gap)
        if gap > FREEZE_S and self.video:
            self.freezes += 1


@dataclass(slots=True)
class SubscriberStats(ViewerStats):
    """A subscriber: the ViewerStats handshake and timing fields, with counters per SSRC.

    ``first_keyframe_s`` is when every expected video stream had shown a keyframe (a full
    picture of everyone); ``freezes``/``max_gap_s`` sum and max over the video streams."""

    expected_streams: int = 0
    streams: dict[bytes, StreamStats] = field(default_factory=dict)  # SSRC (4 bytes) -> counters

    @property
    def bytes(self) -> int:
        return sum(s.seq.bytes for s in self.streams.values())

    @property
    def packets(self) -> int:
        return sum(s.seq.received for s in self.streams.values())

    def lost(self) -> tuple[int, int]:
        """(lost, expected) packets over every stream."""
        return (
            sum(s.seq.lost for s in self.streams.values()),
            sum(s.seq.expected for s in self.streams.values()),
        )

    def loss_pct(self) -> float:
        lost, expected = self.lost()
        return 100 * lost / expected if expected else 0.0

    def finish(self, end: float) -> None:
        _close_window(self, end)
        for s in self.streams.values():
            s.close(end)
        videos = [s for s in self.streams.values() if s.video]
        self.freezes = sum(s.freezes for s in videos)
        self.max_gap_s = max((s.max_gap for s in videos), default=0.0)
        if self.error is None and len(self.streams) < self.expected_streams:
            self.error = "no-media" if not self.streams else "missing-streams"
        self.realtime = self.error is None and self.freezes == 0

    def public(self) -> dict[str, Any]:
        lost, expected = self.lost()
        return {
            "index": self.index,
            "signal_s": rounded(self.signal_s, 4),
            "ice_s": rounded(self.ice_s, 4),
            "dtls_s": rounded(self.dtls_s, 4),
            "first_packet_s": rounded(self.first_packet_s, 4),
            "first_keyframe_s": rounded(self.first_keyframe_s, 4),
            "streams": len(self.streams),
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": lost,
            "expected": expected,
            "window_kbps": self.window_kbps,
            "freezes": self.freezes,
            "max_gap_s": round(self.max_gap_s, 4),
            "verified": self.verified,
            "srtp_errors": self.srtp_errors,
            "error": self.error,
        }


class RoomSubscriber(Viewer):
    """Viewer's ICE and DTLS; RTP counted per SSRC (several publishers share one connection)."""

    def __init__(
        self, stats: SubscriberStats, cert: DtlsCertificate, verify: int, handshake_timeout: float
    ) -> None:
        super().__init__(stats, cert, verify, handshake_timeout)
        self.sstats = stats
        self.verify = verify
        self.videos_with_keyframe = 0

    def _rtp(self, data: bytes) -> None:
        """The hot path: a dict lookup and a few integer operations once a stream is verified."""
        stream = self.sstats.streams.get(data[8:12])
        if stream is None or stream.verify or not stream.keyframe:
            stream = self._check(data, stream)
            if stream is None:
                return
        stream.add((data[2] << 8) | data[3], len(data), time.monotonic())

    def _check(self, data: bytes, stream: StreamStats | None) -> StreamStats | None:
        """Unprotect a packet of a new or not yet verified stream: a new SSRC becomes a stream
        only once one of its packets authenticates; video looks for its first keyframe."""
        st = self.sstats
        if self.srtp is None:
            st.srtp_errors += 1
            return None
        try:
            rtp = self.srtp.unprotect(data)
        except WebRtcError:
            st.srtp_errors += 1
            return None
        st.verified += 1
        now = time.monotonic()
        if stream is None:
            pt = data[1] & 0x7F
            video = pt in self.video_pts
            if not (video or pt in self.audio_pts) or len(st.streams) >= MAX_STREAMS:
                st.other_packets += 1
                return None
            stream = st.streams[data[8:12]] = StreamStats(video, self.verify, keyframe=not video)
            if st.first_packet_s is None:
                st.first_packet_s = now - st.started_at
        if not stream.keyframe:
            if _h264_keyframe(rtp):
                stream.keyframe = True
                self.videos_with_keyframe += 1
                if self.videos_with_keyframe == st.expected_streams // 2:
                    st.first_keyframe_s = now - st.started_at
        elif stream.verify > 0:
            stream.verify -= 1
        return stream


# -- signalling -----------------------------------------------------------------------------------
class RoomSignalling(Protocol):
    """How participants join a room and negotiate: :class:`StreamhiveRoom` or :class:`JanusVideoRoom`."""

    kind: str

    async def publish(self, http: aiohttp.ClientSession, viewer: RoomPublisher, index: int) -> None:
        """Join as publisher ``index`` and negotiate; starts the viewer's ICE. Raises on failure."""

    async def subscribe(
        self, http: aiohttp.ClientSession, viewer: RoomSubscriber, index: int, publishers: int
    ) -> None:
        """Join as subscriber ``index``, receive all of ``publishers``' tracks; starts ICE."""

    async def keepalive(self, http: aiohttp.ClientSession) -> None: ...

    async def hangup(self, http: aiohttp.ClientSession) -> int:
        """Leave with every participant; returns how many hang-ups failed."""


class StreamhiveRoom:
    """docs/rooms.md: a WebSocket per participant, the client offers on both connections."""

    kind = "streamhive"

    def __init__(self, url: str, handshake_timeout: float) -> None:
        self.url = url
        self.timeout = handshake_timeout
        self.host = urlsplit(url).hostname or "127.0.0.1"
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        self.closing = False

    async def _join(
        self, http: aiohttp.ClientSession, identity: str
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        ws = await http.ws_connect(self.url, max_msg_size=0)
        self.sockets.append(ws)
        await ws.send_json({"type": "join", "identity": identity})
        return ws, await self._event(ws, "joined")

    async def _event(self, ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
        """The next event of ``kind``; an ``error`` event or a close raises WebRtcClientError."""
        async with asyncio.timeout(self.timeout):
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event: dict[str, Any] = json.loads(message.data)
                if event.get("type") == kind:
                    return event
                if event.get("type") == "error":
                    raise WebRtcClientError(f"room-error: {event.get('message')}")
        raise WebRtcClientError(f"room-closed-{ws.close_code}")

    def _read_rest(self, ws: aiohttp.ClientWebSocketResponse, viewer: Viewer) -> None:
        """Keep reading (events, pings) until the end; a close before it fails the participant."""

        async def read() -> None:
            async for _ in ws:
                pass
            if not self.closing:
                viewer.fail(f"room-closed-{ws.close_code}")

        self.readers.append(asyncio.ensure_future(read()))

    async def publish(self, http: aiohttp.ClientSession, viewer: RoomPublisher, index: int) -> None:
        ws, _ = await self._join(http, f"pub-{index}")
        width, height = PUBLISH_SIZE
        tracks = [
            {"mid": "0", "source": "camera", "width": width, "height": height},
            {"mid": "1", "source": "microphone"},
        ]
        offer = publish_offer(viewer.local(self.host), *viewer.ssrcs)
        await ws.send_json({"type": "offer", "pc": "publish", "sdp": offer, "tracks": tracks})
        answer = await self._event(ws, "answer")
        viewer.begin(parse_remote_sdp(answer["sdp"]), we_offered=True)
        self._read_rest(ws, viewer)

    async def subscribe(
        self, http: aiohttp.ClientSession, viewer: RoomSubscriber, index: int, publishers: int
    ) -> None:
        ws, joined = await self._join(http, f"sub-{index}")
        tracks = {t["id"]: t["kind"] for p in joined["participants"] for t in p.get("tracks", [])}
        while len(tracks) < 2 * publishers:
            event = await self._event(ws, "track_published")
            tracks[event["track"]["id"]] = event["track"]["kind"]
        ids = sorted(tracks)
        offer = subscribe_offer(viewer.local(self.host), [tracks[i] for i in ids])
        wanted = [{"mid": str(mid), "track": track} for mid, track in enumerate(ids)]
        await ws.send_json({"type": "offer", "pc": "subscribe", "sdp": offer, "tracks": wanted})
        answer = await self._event(ws, "answer")
        viewer.begin(parse_remote_sdp(answer["sdp"]), we_offered=True)
        self._read_rest(ws, viewer)

    async def keepalive(self, http: aiohttp.ClientSession) -> None:
        return None  # ICE consent keeps the connections, the WebSocket's own pings the signalling

    async def hangup(self, http: aiohttp.ClientSession) -> int:
        self.closing = True

        async def leave(ws: aiohttp.ClientWebSocketResponse) -> None:
            if not ws.closed:
                await ws.send_json({"type": "leave"})
            await ws.close()

        results = await asyncio.gather(*(leave(ws) for ws in self.sockets), return_exceptions=True)
        for reader in self.readers:
            reader.cancel()
        return sum(1 for r in results if isinstance(r, BaseException))


class JanusVideoRoom:
    """Janus's videoroom plugin over its HTTP API: a session and a handle per participant."""

    kind = "janus"

    def __init__(self, url: str, room: int, poll_timeout: float) -> None:
        self.api = Janus(url, room, poll_timeout)  # its requests, keepalives and hang-ups
        self.url = self.api.url
        self.room = room
        self.poll_timeout = poll_timeout
        self.sessions: list[str] = []
        self.feeds: list[int] = []  # publishers' ids, for the subscribers' streams

    async def _handle(self, http: aiohttp.ClientSession) -> tuple[str, str]:
        """A new session (kept for keepalives and the hang-up) and a videoroom handle on it."""
        created = await self.api._request(http, self.url, {"janus": "create"})
        session = f"{self.url}/{created['data']['id']}"
        self.sessions.append(session)
        attached = await self.api._request(
            http, session, {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        return session, f"{session}/{attached['data']['id']}"

    async def _until_jsep(
        self, http: aiohttp.ClientSession, session: str, handle: str, request: dict[str, Any], jsep: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a plugin request on ``handle``; returns the plugin data and the JSEP of type
        ``jsep`` from the reply or the session's long poll. The first plugin data with a feed
        ``id`` is kept (Janus may send ``joined`` and the answer apart)."""
        reply = await self.api._request(http, handle, request)
        found: dict[str, Any] = {}
        events = [reply]
        deadline = time.monotonic() + self.poll_timeout
        while True:
            for event in events:
                data = (event.get("plugindata") or {}).get("data") or {}
                if data.get("error_code") is not None:
                    raise WebRtcClientError(f"janus-videoroom-{data['error_code']}: {data.get('error')}")
                if "id" in data and "id" not in found:
                    found = data
                if (event.get("jsep") or {}).get("type") == jsep:
                    return {**data, **found}, event["jsep"]
            if time.monotonic() > deadline:
                raise WebRtcClientError(f"timeout-janus-{jsep}")
            async with http.get(session, params={"maxev": "1"}) as resp:
                if resp.status != 200:
                    raise WebRtcClientError(f"http-{resp.status}")
                polled = await resp.json(content_type=None)
            events = polled if isinstance(polled, list) else [polled]

    async def publish(self, http: aiohttp.ClientSession, viewer: RoomPublisher, index: int) -> None:
        session, handle = await self._handle(http)
        offer = publish_offer(viewer.local(urlsplit(self.url).hostname or "127.0.0.1"), *viewer.ssrcs)
        body = {"request": "joinandconfigure", "room": self.room, "ptype": "publisher",
                "display": f"pub-{index}", "audio": True, "video": True}  # fmt: skip
        request = {"janus": "message", "body": body, "jsep": {"type": "offer", "sdp": offer}}
        data, jsep = await self._until_jsep(http, session, handle, request, "answer")
        self.feeds.append(int(data["id"]))
        viewer.begin(parse_remote_sdp(jsep["sdp"]), we_offered=True)

    async def subscribe(
        self, http: aiohttp.ClientSession, viewer: RoomSubscriber, index: int, publishers: int
    ) -> None:
        if len(self.feeds) < publishers:
            raise WebRtcClientError(f"janus-publishers-{len(self.feeds)}/{publishers}")
        session, handle = await self._handle(http)
        body = {"request": "join", "room": self.room, "ptype": "subscriber",
                "streams": [{"feed": feed} for feed in self.feeds[:publishers]]}  # fmt: skip
        request = {"janus": "message", "body": body}
        _, offer = await self._until_jsep(http, session, handle, request, "offer")
        remote = parse_remote_sdp(offer["sdp"])
        local = viewer.local(remote.candidates[0][0])
        jsep = {"type": "answer", "sdp": answer_for(remote, local), "trickle": False}
        await self.api._request(
            http, handle, {"janus": "message", "body": {"request": "start"}, "jsep": jsep}
        )
        viewer.begin(remote, we_offered=False)

    async def keepalive(self, http: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self.api.keepalive(http, s) for s in self.sessions), return_exceptions=True)

    async def hangup(self, http: aiohttp.ClientSession) -> int:
        results = await asyncio.gather(
            *(self.api.hangup(http, s) for s in self.sessions), return_exceptions=True
        )
        return sum(1 for r in results if isinstance(r, BaseException))


def signalling_for(url: str, janus_room: int, handshake_timeout: float) -> RoomSignalling:
    """Janus's videoroom for a URL whose path ends in ``/janus``, streamhive's rooms for ``ws://``."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/janus"):
        return JanusVideoRoom(url, janus_room, handshake_timeout + 15)
    if parts.scheme in ("ws", "wss") and parts.path.endswith("/ws"):
        return StreamhiveRoom(url, handshake_timeout)
    raise ValueError(f"{url!r} is neither ws://HOST:PORT/rooms/NAME/ws nor http://HOST:PORT/janus")


# -- where the server's time goes (py-spy) --------------------------------------------------------
#: Parts of forwarding: (name, functions as py-spy names them, a piece of their file's path). A
#: sample belongs to the first part with a frame anywhere in its stack; the first three are
#: siblings under ``Peer.send_rtp``, so the order only matters for the last: the rest of
#: forwarding (the subscription's checks, its NACK history, the loop over subscriptions).
PROFILE_PARTS: tuple[tuple[str, frozenset[str], str], ...] = (
    ("srtp protect", frozenset({"SrtpContext.protect"}), "webrtc/srtp.py"),
    ("Rewriter.rewrite", frozenset({"Rewriter.rewrite"}), "sfu/rewrite.py"),
    ("send", frozenset({"UdpRoute.send", "UdpRoute.send_many", "UdpRoute._segmented"}), "servers/webrtc.py"),
    ("forwarding, rest", frozenset({"Subscription.forward", "Peer.send_rtp"}), ""),
)
REST = PROFILE_PARTS[-1][0]
#: A forwarding sample whose stack names none of the first three may still be theirs: py-spy
#: puts the cost of entering a call (and frames it missed) on the calling line, or shows a
#: helper without its caller. (name, innermost frame's file pieces, a call on its source line)
LEAF_PARTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("srtp protect", ("pylibsrtp/", "webrtc/srtp.py"), ".protect("),
    ("Rewriter.rewrite", ("sfu/rewrite.py",), ".rewrite("),
    ("send", (), ".send("),
)
OTHER = "other"  # receiving and unprotecting publishers' packets, signalling, timers, the event loop


def _frame(text: str) -> tuple[str, str]:
    """``func (path/file.py:12)`` -> (``func``, ``path/file.py:12``)."""
    func, _, rest = text.strip().rpartition(" (")
    return (func, rest.rstrip(")")) if func else (text.strip(), "")


def source_line(where: str) -> str:
    """The source of ``path/file.py:12`` (a path as py-spy shortens it: relative to an entry of
    sys.path), or "" when it cannot be found here."""
    path, _, line = where.rpartition(":")
    if not line.isdigit():
        return ""
    for root in sys.path:
        text = linecache.getline(os.path.join(root, path), int(line))
        if text:
            return text
    return ""


def _part(frames: list[tuple[str, str]], line_of: Callable[[str], str]) -> str:
    name = next(
        (n for n, funcs, path in PROFILE_PARTS if any(f in funcs and path in w for f, w in frames)), OTHER
    )
    if name != REST or not frames:
        return name
    where = frames[-1][1]
    code = line_of(where)
    for part, files, call in LEAF_PARTS:
        if any(piece in where for piece in files) or call in code:
            return part
    return name


def profile_shares(raw: str, line_of: Callable[[str], str] = source_line) -> dict[str, Any]:
    """Busy samples per part of forwarding (:data:`PROFILE_PARTS`, :data:`LEAF_PARTS`) from
    py-spy's raw collapsed stacks (``frame;frame;... COUNT``), as percentages of all samples and
    of the forwarding ones; ``line_of`` reads a frame's source line."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[_part([_frame(f) for f in stack.split(";")], line_of)] += int(count)
    total = sum(counts.values())
    forwarding = total - counts[OTHER]
    names = [name for name, _, _ in PROFILE_PARTS]
    return {
        "samples": total,
        "pct_of_busy": {n: round(100 * counts[n] / total, 1) if total else 0.0 for n in [*names, OTHER]},
        "pct_of_forwarding": {
            n: round(100 * counts[n] / forwarding, 1) if forwarding else 0.0 for n in names
        },
    }


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else None


class ServerWatch:
    """The server's CPU over the steady window (/proc/PID/stat, all threads) and, with
    ``profile``, a py-spy recording of the same window (raw collapsed stacks to that file)."""

    def __init__(self, pid: int, profile: Path | None, rate: int) -> None:
        from bench.run_spine import cpu_seconds

        self.pid = pid
        self.cpu_seconds = cpu_seconds
        self.profile = profile
        self.rate = rate
        self.t = self.c = 0.0
        self.spy: subprocess.Popen[bytes] | None = None
        self.result: dict[str, Any] = {"pid": pid}

    def steady(self, seconds: float) -> None:
        self.t, self.c = time.monotonic(), self.cpu_seconds(self.pid)
        if self.profile is None:
            return
        spy = py_spy()
        if spy is None:
            self.result["profile_error"] = "py-spy not installed next to this Python"
            return
        self.spy = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--duration", str(max(1, int(seconds))), "--rate",
             str(self.rate), "--nonblocking", "--format", "raw", "-o", str(self.profile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def end(self) -> None:
        wall = time.monotonic() - self.t
        if self.t and wall > 0:
            self.result["cpu_pct"] = round(100 * (self.cpu_seconds(self.pid) - self.c) / wall, 2)

    async def finish(self) -> dict[str, Any]:
        if self.spy is not None:
            _, err = await asyncio.to_thread(self.spy.communicate, None, 120)
            if self.spy.returncode == 0 and self.profile is not None and self.profile.exists():
                self.result["profile"] = {
                    "raw": str(self.profile),
                    **profile_shares(self.profile.read_text()),
                }
            else:
                self.result["profile_error"] = err.decode(errors="replace").strip()[-300:]
        return self.result


# -- a run ----------------------------------------------------------------------------------------
@dataclass
class RoomLoadResult:
    url: str
    signalling: str
    publishers: int
    subscribers: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    verify: int
    min_pct: float
    max_loss_pct: float
    pub_stats: list[PublisherStats]
    sub_stats: list[SubscriberStats]
    hangup_errors: int = 0
    steady_s: float = 0.0
    socket_drops: int = 0
    loop_lag: dict[str, float] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)

    def expected_kbps(self) -> float | None:
        """What each subscriber should receive: everything the publishers sent in the window."""
        rates = [p.window_kbps for p in self.pub_stats if p.window_kbps is not None]
        return round(sum(rates), 1) if rates else None

    def kept_up(self) -> list[SubscriberStats]:
        expected = self.expected_kbps()
        floor = expected * self.min_pct / 100 if expected else None
        return [
            s
            for s in self.sub_stats
            if s.realtime
            and s.loss_pct() <= self.max_loss_pct
            and floor is not None
            and s.window_kbps is not None
            and s.window_kbps >= floor
        ]

    def summary(self) -> dict[str, Any]:
        subs, pubs = self.sub_stats, self.pub_stats
        kept = self.kept_up()
        lost = sum(s.lost()[0] for s in subs)
        expected_packets = sum(s.lost()[1] for s in subs)
        rates = [s.window_kbps for s in subs if s.window_kbps is not None and s.first_packet_s is not None]
        streams = self.subscribers * self.publishers  # publisher -> subscriber, audio + video
        cpu = self.server.get("cpu_pct")

        def ms(seconds: list[float | None]) -> dict[str, float | None]:
            return percentiles([x * 1000 for x in seconds if x is not None], 50, 95)

        def per_core(n: int) -> int | None:
            return round(n / (cpu / 100)) if cpu and n else None

        return {
            "url": self.url,
            "signalling": self.signalling,
            "publishers": self.publishers,
            "publishers_sending": sum(1 for p in pubs if p.error is None and p.sent_packets),
            "publisher_kbps": [p.window_kbps for p in pubs],
            "publisher_late_ms": round(max((p.late_ms for p in pubs), default=0.0), 1),
            "subscribers": self.subscribers,
            "forwarded_streams": streams,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "steady_s": round(self.steady_s, 2),
            "signalled": sum(1 for s in subs if s.signal_s is not None),
            "dtls_connected": sum(1 for s in subs if s.dtls_s is not None),
            "all_streams": sum(1 for s in subs if len(s.streams) >= s.expected_streams),
            "expected_kbps": self.expected_kbps(),
            "min_pct": self.min_pct,
            "max_loss_pct": self.max_loss_pct,
            "kept_up": len(kept),
            "kept_up_ratio": round(len(kept) / self.subscribers, 4) if self.subscribers else 0.0,
            "subscriber_kbps": rate_spread(rates),
            "steady_mbit_s": round(sum(s.window_bytes or 0 for s in subs) * 8 / self.steady_s / 1e6, 2)
            if self.steady_s
            else 0.0,
            "steady_packets_per_s": round(sum(s.window_packets or 0 for s in subs) / self.steady_s)
            if self.steady_s
            else 0,
            "lost": lost,
            "loss_pct": round(100 * lost / expected_packets, 3) if expected_packets else 0.0,
            "subscribers_with_loss": sum(1 for s in subs if s.lost()[0]),
            "freezes": sum(s.freezes for s in subs),
            "subscribers_with_freeze": sum(1 for s in subs if s.freezes),
            "max_gap_s": rounded(max((s.max_gap_s for s in subs), default=0.0), 2),
            "signal_ms": ms([s.signal_s for s in subs]),
            "dtls_ms": ms([s.dtls_s for s in subs]),
            "first_packet_ms": ms([s.first_packet_s for s in subs]),
            "all_keyframes_ms": ms([s.first_keyframe_s for s in subs]),
            "verified": sum(s.verified for s in subs),
            "srtp_errors": sum(s.srtp_errors for s in subs),
            "errors": dict(Counter(s.error for s in [*pubs, *subs] if s.error is not None)),
            "hangup_errors": self.hangup_errors,
            "socket_drops": self.socket_drops,
            "loop_lag": self.loop_lag,
            "client_cpu_pct": round(self.client_cpu_pct, 1),
            "server_cpu_pct": cpu,
            "subscribers_per_core": per_core(self.subscribers),
            "streams_per_core": per_core(streams),
            "profile": self.server.get("profile"),
            "profile_error": self.server.get("profile_error"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "publishers": [p.public() for p in self.pub_stats],
            "subscribers": [s.public() for s in self.sub_stats],
        }


async def run_room_load(
    url: str,
    publishers: int,
    subscribers: int,
    duration: float,
    ramp: float = 50.0,
    *,
    clip: Clip,
    janus_room: int = JANUS_ROOM,
    verify: int = DEFAULT_VERIFY,
    min_pct: float = DEFAULT_MIN_PCT,
    max_loss_pct: float = DEFAULT_MAX_LOSS_PCT,
    handshake_timeout: float = 15.0,
    settle: float = SETTLE_S,
    rcvbuf: int = DEFAULT_RCVBUF,
    server_pid: int | None = None,
    profile: Path | None = None,
    profile_rate: int = 100,
    on_mark: Callable[[str], None] | None = None,
) -> RoomLoadResult:
    """``publishers`` publishers of ``clip`` (all at once, until each sends or fails), then
    ``subscribers`` subscribers started at ``ramp`` per second (0: all at once), for ``duration``
    seconds after the last one started; the steady window starts ``settle`` seconds after it.
    Always stops by itself, and leaves the room with everyone at the end (after the 'end' mark)."""
    sig = signalling_for(url, janus_room, handshake_timeout)
    loop = asyncio.get_running_loop()
    cert = DtlsCertificate.generate()
    watch = ServerWatch(server_pid, profile, profile_rate) if server_pid else None
    cpu0 = os.times()
    t0 = time.monotonic()
    viewers: list[Viewer] = []
    pending: set[asyncio.Task[None]] = set()
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200),
        timeout=aiohttp.ClientTimeout(total=handshake_timeout + 30),
    )

    async def start(stats: ViewerStats, make: Callable[[], Viewer], signal: Callable[[Any], Any]) -> None:
        stats.started_at = time.monotonic()
        try:
            _, viewer = await loop.create_datagram_endpoint(make, sock=viewer_socket(rcvbuf))
        except OSError as exc:
            stats.error = f"socket-{type(exc).__name__}"
            return
        viewers.append(viewer)
        try:
            await signal(viewer)
        except WebRtcClientError as exc:
            viewer.fail(str(exc)[:100])
        except (aiohttp.ClientError, OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            viewer.fail(f"signal-{type(exc).__name__}")  # TimeoutError is an OSError

    def spawn(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def keepalives() -> None:
        while True:
            await asyncio.sleep(JANUS_KEEPALIVE_S)
            spawn(sig.keepalive(http))

    pub_stats = [PublisherStats(i) for i in range(publishers)]
    sub_stats = [SubscriberStats(i, expected_streams=2 * publishers) for i in range(subscribers)]
    steady_at = [0.0]
    ramp_s = subscribers / ramp if ramp > 0 else 0.0
    settle = min(settle, duration)

    def mark(name: str) -> None:
        now = time.monotonic()
        if name == "steady":
            steady_at[0] = now
            for s in [*pub_stats, *sub_stats]:
                s.mark_steady(now)
            if watch is not None:
                watch.steady(duration - settle)
        elif watch is not None:
            watch.end()
        if on_mark is not None:
            on_mark(name)

    keeper = asyncio.create_task(keepalives())
    lag = LoopLag(t0)
    lagger = asyncio.create_task(lag.run())
    try:
        for i, pst in enumerate(pub_stats):
            spawn(
                start(
                    pst,
                    functools.partial(RoomPublisher, pst, cert, clip, handshake_timeout),
                    lambda v, i=i: sig.publish(http, v, i),
                )
            )
        await _publishers_ready(pub_stats, handshake_timeout + PUBLISHERS_READY_S)
        t1 = time.monotonic()
        for i, sst in enumerate(sub_stats):
            await ramp_wait(t1, i, ramp)
            spawn(
                start(
                    sst,
                    functools.partial(RoomSubscriber, sst, cert, verify, handshake_timeout),
                    lambda v, i=i: sig.subscribe(http, v, i, publishers),
                )
            )
        stop_at = await steady_then_end(t1, ramp_s, settle, t1 + ramp_s + duration, mark)
        drops = socket_drops({v.port for v in viewers})
        for stats in [*pub_stats, *sub_stats]:
            if stats.signal_s is None and stats.error is None:
                stats.error = "timeout-signal"
        for v in viewers:
            v.stop(stop_at)
        keeper.cancel()
        lagger.cancel()
        for task in list(pending):
            task.cancel()
        wall = stop_at - t0
        cpu = cpu_pct_since(cpu0, wall)
        hangup_errors = await sig.hangup(http)
        server = await watch.finish() if watch is not None else {}
    finally:
        keeper.cancel()
        lagger.cancel()
        await http.close()
    return RoomLoadResult(
        url,
        sig.kind,
        publishers,
        subscribers,
        duration,
        ramp,
        wall,
        cpu,
        verify,
        min_pct,
        max_loss_pct,
        pub_stats,
        sub_stats,
        hangup_errors,
        stop_at - steady_at[0] if steady_at[0] else 0.0,
        drops,
        lag.result(),
        server,
    )


async def _publishers_ready(stats: list[PublisherStats], timeout: float) -> None:
    """Until every publisher has DTLS up (it sends from then on) or has failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.dtls_s is not None or s.error is not None for s in stats):
            return
        await asyncio.sleep(0.05)


def format_summary(s: dict[str, Any]) -> str:
    kb = s["subscriber_kbps"]

    def pp(d: dict[str, float | None]) -> str:
        return f"p50 {d['p50']}  p95 {d['p95']}"

    lines = [
        f"url                 {s['url']} ({s['signalling']})",
        f"publishers          {s['publishers']} ({s['publishers_sending']} sending, kbit/s {s['publisher_kbps']}, "
        f"late by up to {s['publisher_late_ms']} ms)",
        f"subscribers         {s['subscribers']} (signalled {s['signalled']}, DTLS {s['dtls_connected']}, "
        f"every stream {s['all_streams']}); forwarded streams {s['forwarded_streams']}",
        f"kept up             {s['kept_up']} ({100 * s['kept_up_ratio']:.1f}%): no freeze, loss <= "
        f"{s['max_loss_pct']:g}%, >= {s['min_pct']:g}% of {s['expected_kbps']} kbit/s (what the publishers sent)",
        f"subscriber kbit/s   min {kb['min']}  p5 {kb['p5']}  p50 {kb['p50']}  p95 {kb['p95']}",
        f"steady              {s['steady_mbit_s']} Mbit/s, {s['steady_packets_per_s']} packets/s over "
        f"{s['steady_s']} s",
        f"loss                {s['loss_pct']}% ({s['lost']} packets, {s['subscribers_with_loss']} subscribers; "
        f"client socket drops {s['socket_drops']})",
        f"freezes             {s['freezes']} in {s['subscribers_with_freeze']} subscribers (max gap {s['max_gap_s']} s)",
        f"signalling ms       {pp(s['signal_ms'])}; DTLS done {pp(s['dtls_ms'])}",
        f"first packet ms     {pp(s['first_packet_ms'])}; every video's keyframe {pp(s['all_keyframes_ms'])}",
        f"errors              {s['errors'] or 'none'}"
        + (f", hang-up errors {s['hangup_errors']}" if s["hangup_errors"] else ""),
        f"load client CPU     {s['client_cpu_pct']}%; its loop late by up to {s['loop_lag'].get('max_ms')} ms",
    ]
    if s["server_cpu_pct"] is not None:
        lines.append(
            f"server CPU          {s['server_cpu_pct']}%: {s['subscribers_per_core']} subscribers, "
            f"{s['streams_per_core']} forwarded streams per core"
        )
    profile = s.get("profile")
    if profile:
        busy = ", ".join(f"{k} {v}%" for k, v in profile["pct_of_busy"].items())
        fwd = ", ".join(f"{k} {v}%" for k, v in profile["pct_of_forwarding"].items())
        lines += [
            f"server profile      {profile['samples']} busy samples: {busy}",
            f"forwarding split    {fwd}",
        ]
    elif s.get("profile_error"):
        lines.append(f"server profile      failed: {s['profile_error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m bench.roomclient") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("url", help="ws://HOST:PORT/rooms/NAME/ws (streamhive) or http://HOST:PORT/janus (Janus)")
    ap.add_argument("--publishers", type=int, default=2, help="publishers (default 2)")
    ap.add_argument("--subscribers", type=int, default=10, help="subscribers (default 10)")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds after the last subscriber started")
    ap.add_argument(
        "--ramp", type=float, default=50.0, help="subscribers started per second (0: all at once)"
    )
    ap.add_argument("--janus-room", type=int, default=JANUS_ROOM, help=f"videoroom id (default {JANUS_ROOM})")
    ap.add_argument("--clip", type=Path, help="H.264 + Opus file (default: bench/run_webrtc.py's clip)")
    ap.add_argument(
        "--verify",
        type=int,
        default=DEFAULT_VERIFY,
        help=f"packets per stream to SRTP-unprotect after its first keyframe (default {DEFAULT_VERIFY})",
    )
    ap.add_argument(
        "--min-pct", type=float, default=DEFAULT_MIN_PCT, help="of the expected rate (default 90)"
    )
    ap.add_argument("--max-loss-pct", type=float, default=DEFAULT_MAX_LOSS_PCT, help="(default 1)")
    ap.add_argument("--handshake-timeout", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=SETTLE_S, help="seconds after the ramp before the window")
    ap.add_argument("--rcvbuf", type=int, default=DEFAULT_RCVBUF, help="socket receive buffer bytes")
    ap.add_argument("--server-pid", type=int, help="the server's PID: CPU over the steady window, per core")
    ap.add_argument("--profile", type=Path, help="py-spy the server (needs --server-pid) into this raw file")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (default 100)")
    ap.add_argument("--json", help="write the summary and per-participant stats to this file")
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines (for run_room)")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if args.publishers < 1 or args.subscribers < 0 or args.seconds <= 0:
        ap.error("--publishers must be >= 1, --subscribers >= 0 and --seconds > 0")
    if args.profile and not args.server_pid:
        ap.error("--profile needs --server-pid")
    try:
        signalling_for(args.url, args.janus_room, args.handshake_timeout)
    except ValueError as exc:
        ap.error(str(exc))
    clip = load_clip(args.clip or default_clip())
    uv = prepare(args.no_uvloop)
    result = asyncio.run(
        run_room_load(
            args.url,
            args.publishers,
            args.subscribers,
            args.seconds,
            args.ramp,
            clip=clip,
            janus_room=args.janus_room,
            verify=args.verify,
            min_pct=args.min_pct,
            max_loss_pct=args.max_loss_pct,
            handshake_timeout=args.handshake_timeout,
            settle=args.settle,
            rcvbuf=args.rcvbuf,
            server_pid=args.server_pid,
            profile=args.profile,
            profile_rate=args.profile_rate,
            on_mark=marker(args.marks),
        )
    )
    summary = result.summary()
    summary["uvloop"] = uv
    print(format_summary(summary), flush=True)
    if args.json:
        data = result.to_json()
        data["summary"] = summary
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
