"""A lightweight WebRTC load client: many receive-only viewers of one stream in one asyncio process.

Viewers never decode. Each is one UDP socket (:class:`asyncio.DatagramProtocol`) doing what a
browser does on the wire and no more:

- **ICE**, full agent: it sends STUN Binding checks (USERNAME ``remote:local``, PRIORITY,
  ICE-CONTROLLING or ICE-CONTROLLED, USE-CANDIDATE when controlling, MESSAGE-INTEGRITY with the
  remote password, FINGERPRINT; built with :mod:`aioice.stun`) to every UDP candidate of the
  remote SDP until one answers, then one every few seconds (consent freshness, RFC 7675), and it
  answers the server's own checks with its password (a full-ICE server such as Janus checks too).
  It is controlling when it made the offer (WHEP) or the server is ICE-lite, controlled otherwise
  (a full-ICE server that made the offer, RFC 8445 section 6.1.1); then it waits for the
  server's nomination.
- **DTLS** client (or server, if the answer says so) with streamhive's sans-IO
  :class:`~streamhive.protocols.webrtc.dtls.DtlsEndpoint`; one certificate for all viewers
  (WebRTC pins the fingerprint, so sharing it is legal and saves ~15 ms of CPU per viewer).
- **SRTP**: :class:`~streamhive.protocols.webrtc.srtp.SrtpContext` unprotects (decrypts and
  authenticates) every video packet until the first keyframe (an IDR or SPS NAL unit, looked for in
  the decrypted H.264 payload) and at least ``--verify`` packets of each media; after that
  packets are only counted from their clear RTP header (sequence number, marker, timestamp), which
  SRTP does not encrypt. Decrypting everything (``--verify -1``) costs the client about as much
  again as receiving, and with one core for hundreds of viewers the client must not be the limit.

Per viewer it records the signalling time, ICE and DTLS completion, the time to the first RTP
packet and to the first keyframe (all from the start of signalling), packets and bytes, loss (per
media, as RTCP counts it: expected from the extended sequence numbers minus received), freezes
(more than ``FREEZE_S`` without a video packet, the end of the run included), the received
bitrate over the steady window and the video media time (RTP timestamps of frame ends) against the
wall time. A viewer **kept up** when it has no error, no freeze, is real time (media time >= 98% of
wall time), lost at most ``--max-loss-pct`` (default 1) percent of its packets and received at
least ``--min-pct`` (default 90) percent of ``--expected-kbps`` (else of the median viewer's rate)
in the steady window.

Signalling, one of:

- **WHEP** (``URL`` ending in ``/whep``): POST a recvonly offer (H.264 packetization-mode=1 and
  Opus, ``a=setup:active``, our host candidate) and read the 201 answer; at the end, DELETE the
  session resource (``Location``).
- **Janus** streaming plugin over Janus's HTTP API (``URL`` ending in ``/janus``): create a
  session, attach ``janus.plugin.streaming``, ``watch`` the mountpoint (``--mountpoint``), long-poll
  the session for the event with Janus's JSEP offer, answer it (recvonly, ``a=setup:active``) with
  ``start``; keepalives every ``JANUS_KEEPALIVE_S``; at the end, ``destroy`` the session.

    python -m bench.webrtcclient http://127.0.0.1:8080/live/cam1/whep --viewers 100 --duration 15 --ramp 50
    python -m bench.webrtcclient http://127.0.0.1:8088/janus --mountpoint 1 --viewers 100 --json out.json

Janus itself: ``apt-get install janus`` (Debian 12: 1.1.2); ``bench/run_webrtc.py`` configures and
starts it from a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import os
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aioice import stun

from bench.loadclient import (
    cpu_pct_since,
    expected_rate,
    marker,
    percentiles,
    prepare,
    print_and_save,
    ramp_wait,
    rate_spread,
    rounded,
    steady_then_end,
)
from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.dtls import DtlsCertificate, DtlsEndpoint, DtlsError
from streamhive.protocols.webrtc.srtp import SrtpContext

Address = tuple[str, int]

FREEZE_S = 0.5
REALTIME_RATIO = 0.98
DEFAULT_MIN_PCT = 90.0
DEFAULT_MAX_LOSS_PCT = 1.0  # more, and the picture breaks up (no retransmissions: we send no NACK)
DEFAULT_VERIFY = 20  # packets per media unprotected (after the first keyframe for video)
CHECK_INTERVAL_S = 0.1  # ICE checks until one succeeds (RFC 8445's Ta is 50 ms, per pair)
CONSENT_INTERVAL_S = 4.0  # consent freshness checks afterwards (RFC 7675: 4-6 s)
DTLS_RESEND_S = 0.05  # first resend of an unanswered DTLS flight (then doubling, up to 1 s)
JANUS_KEEPALIVE_S = 25.0  # Janus drops sessions idle for session_timeout (default 60 s)
HOST_PRIORITY = 2130706431  # type preference 126, local preference 65535, component 1
PRFLX_PRIORITY = 1862270975  # type preference 110, what our checks advertise (RFC 8445 5.1.2.1)
USER_AGENT = "streamhive-webrtcclient"
DEFAULT_RCVBUF = 2 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux

_H264_KEY_NALS = frozenset((5, 7))  # IDR slice, SPS


class WebRtcClientError(ValueError):
    """Unusable signalling input: a malformed or incomplete remote SDP, a failed Janus request."""


# -- SDP ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class RemoteMedia:
    """One m-line of the remote SDP, as much of it as a receive-only viewer needs."""

    kind: str
    port: int
    mid: str | None
    pts: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # pt -> "H264/90000"
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_fb: dict[int, list[str]] = field(default_factory=dict)

    def pick(self, codec: str) -> int | None:
        """The first payload type of ``codec`` (case-insensitive encoding name), if offered."""
        for pt in self.pts:
            if self.rtpmap.get(pt, "").split("/")[0].lower() == codec:
                return pt
        return None


@dataclass(slots=True)
class RemoteDescription:
    """The remote peer's ICE credentials, DTLS fingerprint and role, candidates and media."""

    ufrag: str
    pwd: str
    fingerprint: str
    setup: str
    ice_lite: bool
    candidates: list[Address]
    media: list[RemoteMedia]


def parse_remote_sdp(text: str) -> RemoteDescription:
    """Read the fields a viewer needs from an offer or answer; WebRtcClientError if one is missing.

    Attributes are taken from the media or the session level, whichever has them (one transport:
    BUNDLE, or a single m-line). Only UDP IPv4 component-1 candidates are kept, the highest
    priority first; when there are none, the first m-line's connection address and port stand in for one.
    """
    attrs: dict[str, str] = {}
    ice_lite = False
    candidates: list[tuple[int, Address]] = []
    media: list[RemoteMedia] = []
    conn = ""
    current: RemoteMedia | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            port = _number(parts[1], 0xFFFF) if len(parts) >= 4 else None
            if port is None:
                raise WebRtcClientError(f"malformed m-line {line!r}")
            pts = [pt for pt in (_number(p, 127) for p in parts[3:]) if pt is not None]
            current = RemoteMedia(parts[0], port, None, pts)
            media.append(current)
        elif kind == "c" and not conn:
            conn = value.split()[-1] if value.split() else ""
        elif kind == "a":
            name, _, rest = value.partition(":")
            if name == "ice-lite":
                ice_lite = True
            elif name == "candidate":
                cand = _candidate(rest)
                if cand is not None:
                    candidates.append(cand)
            elif name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup"):
                attrs.setdefault(name, rest.strip())
            elif current is not None and name == "mid":
                current.mid = rest.strip()
            elif current is not None and name in ("rtpmap", "fmtp", "rtcp-fb"):
                pt_text, _, param = rest.partition(" ")
                pt = _number(pt_text, 127)
                if pt is None:
                    continue
                if name == "rtpmap":
                    current.rtpmap[pt] = param.strip()
                elif name == "fmtp":
                    current.fmtp[pt] = param.strip()
                else:
                    current.rtcp_fb.setdefault(pt, []).append(param.strip())
    missing = [n for n in ("ice-ufrag", "ice-pwd", "fingerprint") if not attrs.get(n)]
    if missing:
        raise WebRtcClientError(f"remote SDP has no {', '.join('a=' + n for n in missing)}")
    if not media:
        raise WebRtcClientError("remote SDP has no m-line")
    addresses = list(dict.fromkeys(addr for _, addr in sorted(candidates, key=lambda c: -c[0])))
    if not addresses and _ipv4(conn) and media[0].port > 9:
        addresses = [(conn, media[0].port)]
    if not addresses:
        raise WebRtcClientError("remote SDP has no UDP candidate")
    return RemoteDescription(
        attrs["ice-ufrag"],
        attrs["ice-pwd"],
        attrs["fingerprint"],
        attrs.get("setup", "actpass").lower(),
        ice_lite,
        addresses,
        media,
    )


def _candidate(value: str) -> tuple[int, Address] | None:
    """(priority, address) of a UDP component-1 IPv4 candidate line's value, else None (our
    sockets are IPv4)."""
    parts = value.split()
    if len(parts) < 8 or parts[1] != "1" or parts[2].lower() != "udp" or parts[6] != "typ":
        return None
    if not _ipv4(parts[4]):
        return None
    priority, port = _number(parts[3], 0xFFFFFFFF), _number(parts[5], 0xFFFF)
    if priority is None or not port:
        return None
    return priority, (parts[4], port)


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _number(text: str, limit: int) -> int | None:
    """A decimal of ASCII digits up to ``limit`` (str.isdigit alone also takes '³'), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if value <= limit else None


@dataclass(frozen=True, slots=True)
class LocalIce:
    """Our half of the transport: ICE credentials, DTLS fingerprint and the socket's address."""

    ufrag: str
    pwd: str
    fingerprint: str
    host: str
    port: int

    def lines(self, setup: str) -> list[str]:
        return [
            f"a=ice-ufrag:{self.ufrag}",
            f"a=ice-pwd:{self.pwd}",
            f"a=fingerprint:{self.fingerprint}",
            f"a=setup:{setup}",
            f"a=candidate:1 1 udp {HOST_PRIORITY} {self.host} {self.port} typ host",
            "a=end-of-candidates",
        ]


def _session_lines(bundle: list[str]) -> list[str]:
    lines = ["v=0", f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if bundle:
        lines.append("a=group:BUNDLE " + " ".join(bundle))
    return lines


def whep_offer(local: LocalIce) -> str:
    """A recvonly offer for H.264 (packetization-mode 1, constrained baseline) and Opus.

    ``a=setup:active``: we are the DTLS client, as browsers are towards ICE-lite servers; every
    attribute a WHEP server needs is on each m-line, so it reads the same bundled or not.
    """
    medias = [
        (
            "video",
            "0",
            96,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        ("audio", "1", 111, "opus/48000/2", "minptime=10;useinbandfec=1"),
    ]
    lines = _session_lines([mid for _, mid, *_ in medias])
    for kind, mid, pt, rtpmap, fmtp in medias:
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}",
            "c=IN IP4 0.0.0.0",
            f"a=mid:{mid}",
            "a=recvonly",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} {rtpmap}",
            f"a=fmtp:{pt} {fmtp}",
            f"a=rtcp-fb:{pt} nack",
            f"a=rtcp-fb:{pt} nack pli",
            *local.lines("active"),
        ]
    return "\r\n".join(lines) + "\r\n"


def answer_for(offer: RemoteDescription, local: LocalIce) -> str:
    """A recvonly answer to a sendonly offer (Janus's): H.264 and Opus where offered, other m-lines
    rejected (port 0); ``a=setup:active`` (we are the DTLS client)."""
    accepted: list[tuple[RemoteMedia, int | None]] = []
    for m in offer.media:
        want = {"video": "h264", "audio": "opus"}.get(m.kind)
        accepted.append((m, m.pick(want) if want and m.port else None))
    lines = _session_lines([m.mid for m, pt in accepted if pt is not None and m.mid is not None])
    for m, pt in accepted:
        if pt is None:
            lines += [f"m={m.kind} 0 UDP/TLS/RTP/SAVPF {m.pts[0] if m.pts else 0}", "c=IN IP4 0.0.0.0"]
            if m.mid is not None:
                lines.append(f"a=mid:{m.mid}")
            continue
        lines += [f"m={m.kind} 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0"]
        if m.mid is not None:
            lines.append(f"a=mid:{m.mid}")
        lines += ["a=recvonly", "a=rtcp-mux", f"a=rtpmap:{pt} {m.rtpmap[pt]}"]
        if pt in m.fmtp:
            lines.append(f"a=fmtp:{pt} {m.fmtp[pt]}")
        lines += [f"a=rtcp-fb:{pt} {fb}" for fb in m.rtcp_fb.get(pt, []) if fb.split()[0] in ("nack", "ccm")]
        lines += local.lines("active")
    return "\r\n".join(lines) + "\r\n"


# -- per-viewer state -----------------------------------------------------------------------------
@dataclass(slots=True)
class SeqCounter:
    """Packets of one media: received, and expected from the extended sequence numbers (RFC 3550
    A.3), so ``lost`` is what the RTCP receiver report would say. A jump of more than
    ``RESTART_GAP`` either way is a new sequence (a restarted source), not loss."""

    RESTART_GAP = 3000

    received: int = 0
    bytes: int = 0
    base: int = -1  # extended sequence number of the first packet of the current sequence
    max_ext: int = -1
    expected_before: int = 0  # expected packets of the sequences before the current one
    restarts: int = 0

    def add(self, seq: int, size: int) -> None:
        self.received += 1
        self.bytes += size
        if self.base < 0:
            self.base = self.max_ext = seq
            return
        delta = (seq - (self.max_ext & 0xFFFF)) & 0xFFFF
        if delta < 0x8000:
            if delta > self.RESTART_GAP:
                self._restart(seq)
            else:
                self.max_ext += delta
        elif 0x10000 - delta > self.RESTART_GAP:
            self._restart(seq)

    def _restart(self, seq: int) -> None:
        self.restarts += 1
        self.expected_before += self.max_ext - self.base + 1
        self.base = self.max_ext = seq

    @property
    def expected(self) -> int:
        return self.expected_before + (self.max_ext - self.base + 1 if self.base >= 0 else 0)

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)


@dataclass(slots=True)
class ViewerStats:
    """What one viewer saw. Times are seconds from the start of its signalling (``*_s``)."""

    index: int
    started_at: float = 0.0  # monotonic
    signal_s: float | None = None  # the remote SDP parsed
    ice_s: float | None = None  # first successful check (either direction)
    dtls_s: float | None = None  # DTLS connected, SRTP keyed
    first_packet_s: float | None = None  # first RTP packet (any media)
    first_keyframe_s: float | None = None  # first video packet carrying an IDR or SPS
    video: SeqCounter = field(default_factory=SeqCounter)
    audio: SeqCounter = field(default_factory=SeqCounter)
    other_packets: int = 0  # RTP of a payload type we did not negotiate
    rtcp_packets: int = 0
    stun_in: int = 0
    verified: int = 0  # packets SRTP-unprotected
    srtp_errors: int = 0
    frames: int = 0  # video packets with the marker bit (frame ends)
    freezes: int = 0
    max_gap_s: float = 0.0  # longest time without a video packet after the first
    max_gap_at_s: float | None = None  # when it ended (from the start of signalling)
    media_s: float = 0.0  # video RTP timestamps spanned, plus one frame interval
    wall_s: float = 0.0  # first video packet -> end of the run (or the error)
    window_bytes: int | None = None
    window_packets: int | None = None
    window_kbps: float | None = None
    error: str | None = None
    realtime: bool = False
    # internals
    first_video: float = 0.0
    last_video: float = 0.0
    last_ts: int = -1
    ts_ticks: int = 0  # video timestamp ticks spanned
    min_delta: int = 0  # smallest forward timestamp step between frames: about one frame interval
    steady_bytes: int | None = None
    steady_packets: int = 0
    steady_at: float = 0.0

    @property
    def bytes(self) -> int:
        return self.video.bytes + self.audio.bytes

    @property
    def packets(self) -> int:
        return self.video.received + self.audio.received

    def loss_pct(self) -> float:
        expected = self.video.expected + self.audio.expected
        return 100 * (self.video.lost + self.audio.lost) / expected if expected else 0.0

    def mark_steady(self, now: float) -> None:
        self.steady_bytes, self.steady_packets, self.steady_at = self.bytes, self.packets, now

    def finish(self, end: float) -> None:
        """Close the books at ``end`` (the end of the run, or the viewer's failure)."""
        if self.steady_bytes is not None and end > self.steady_at:
            self.window_bytes = self.bytes - self.steady_bytes
            self.window_packets = self.packets - self.steady_packets
            self.window_kbps = round(self.window_bytes * 8 / (end - self.steady_at) / 1000, 1)
        if self.first_video == 0.0:
            if self.error is None:
                self.error = "no-video" if self.audio.received else "no-media"
            return
        gap = end - self.last_video
        if gap > FREEZE_S:  # a freeze still running at the end
            self.freezes += 1
        self.max_gap_s = max(self.max_gap_s, gap)
        self.media_s = (self.ts_ticks + self.min_delta) / 90000
        self.wall_s = end - self.first_video
        self.realtime = (
            self.error is None and self.media_s >= REALTIME_RATIO * self.wall_s and self.max_gap_s <= FREEZE_S
        )

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for key in (
            "first_video", "last_video", "last_ts", "ts_ticks", "min_delta",
            "steady_bytes", "steady_packets", "steady_at",
        ):  # fmt: skip
            d.pop(key)
        for name in ("video", "audio"):
            c: SeqCounter = getattr(self, name)
            d[name] = {"packets": c.received, "bytes": c.bytes, "lost": c.lost, "restarts": c.restarts}
        for key in (
            "signal_s", "ice_s", "dtls_s", "first_packet_s", "first_keyframe_s", "media_s", "wall_s", "max_gap_at_s",
        ):  # fmt: skip
            if d[key] is not None:
                d[key] = round(d[key], 4)
        d["max_gap_s"] = round(d["max_gap_s"], 4)
        d["started_at"] = round(d["started_at"], 3)  # monotonic: lines the viewers' max_gap_at_s up
        return d


def _h264_keyframe(rtp: bytes) -> bool:
    """Whether a decrypted H.264 RTP packet starts or carries an IDR slice or an SPS (RFC 6184)."""
    if len(rtp) < 13:
        return False
    pos = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:  # header extension
        if len(rtp) < pos + 4:
            return False
        pos += 4 + 4 * int.from_bytes(rtp[pos + 2 : pos + 4], "big")
    if len(rtp) <= pos:
        return False
    nal = rtp[pos] & 0x1F
    if nal in _H264_KEY_NALS:
        return True
    if nal == 24:  # STAP-A: 2-byte sizes, then the units
        pos += 1
        while pos + 3 <= len(rtp):
            if rtp[pos + 2] & 0x1F in _H264_KEY_NALS:
                return True
            pos += 2 + int.from_bytes(rtp[pos : pos + 2], "big")
        return False
    if nal == 28 and len(rtp) > pos + 1:  # FU-A: the start fragment names the unit's type
        return bool(rtp[pos + 1] & 0x80) and rtp[pos + 1] & 0x1F in _H264_KEY_NALS
    return False


def viewer_socket(rcvbuf: int) -> socket.socket:
    """A UDP socket on every address with a receive buffer of ``rcvbuf`` bytes.

    The kernel's default (~208 KiB) overflows when a server sends a GOP cache (two seconds of
    video) at once, and the client would count its own drops as the server's loss; as root,
    SO_RCVBUFFORCE passes net.core.rmem_max, otherwise SO_RCVBUF is capped by it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@functools.cache
def source_address(host: str) -> str:
    """The local address packets to ``host`` leave from (a route lookup; nothing is sent).

    Janus gathers no candidate on loopback interfaces, so against it the viewers talk to the
    machine's own address, and their candidate must be that address too, not 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return str(s.getsockname()[0])


class Viewer(asyncio.DatagramProtocol):
    """One viewer's UDP socket: ICE, DTLS and counting SRTP, whatever the signalling was."""

    def __init__(
        self, stats: ViewerStats, cert: DtlsCertificate, verify: int, handshake_timeout: float
    ) -> None:
        self.stats = stats
        self.cert = cert
        self.handshake_timeout = handshake_timeout
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.tiebreaker = secrets.randbits(64)
        self.remote: RemoteDescription | None = None
        self.remote_key = b""
        self.controlling = True
        self.selected: Address | None = None
        self.transactions: dict[bytes, Address] = {}
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpContext | None = None
        self.flight: list[bytes] = []  # our last DTLS flight, for _resend
        self.resend_delay = DTLS_RESEND_S
        self.video_pts: frozenset[int] = frozenset()
        self.audio_pts: frozenset[int] = frozenset()
        self.video_verify = verify  # packets still to unprotect; < 0: every packet
        self.audio_verify = verify
        self.keyframe_seen = False
        self.finished = False
        self.timers: dict[str, asyncio.TimerHandle] = {}

    # -- set-up --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.DatagramTransport
        self.port = int(transport.get_extra_info("sockname")[1])

    def local(self, toward: str) -> LocalIce:
        """Our credentials and host candidate: the socket listens on every address, so the
        candidate is the one the kernel sends from to ``toward`` (the server's host)."""
        return LocalIce(self.ufrag, self.pwd, self.cert.fingerprint, source_address(toward), self.port)

    def begin(self, remote: RemoteDescription, we_offered: bool) -> None:
        """Signalling is done: start ICE checks (and DTLS once a pair works)."""
        if self.finished:
            return
        st = self.stats
        st.signal_s = time.monotonic() - st.started_at
        self.remote = remote
        self.remote_key = remote.pwd.encode()
        self.controlling = we_offered or remote.ice_lite
        role = "server" if remote.setup == "active" else "client"
        self.dtls = DtlsEndpoint(self.cert, role, remote.fingerprint)
        for m in remote.media:
            if m.kind == "video":
                self.video_pts |= frozenset(m.pts)
            elif m.kind == "audio":
                self.audio_pts |= frozenset(m.pts)
        self._timer("handshake", self.handshake_timeout, self._handshake_timeout)
        self._checks()

    # -- ICE -----------------------------------------------------------------------------------
    def _checks(self) -> None:
        """Checks to every candidate until a pair works, then consent checks on the selected one."""
        if self.finished or self.remote is None:
            return
        if self.selected is None:
            for addr in self.remote.candidates:
                self._send_check(addr)
            self._timer("ice", CHECK_INTERVAL_S, self._checks)
        else:
            self._send_check(self.selected)
            self._timer("ice", CONSENT_INTERVAL_S, self._checks)

    def _send_check(self, addr: Address) -> None:
        assert self.remote is not None and self.transport is not None
        attributes: dict[str, Any] = {
            "USERNAME": f"{self.remote.ufrag}:{self.ufrag}",
            "PRIORITY": PRFLX_PRIORITY,
        }
        if self.controlling:
            attributes["ICE-CONTROLLING"] = self.tiebreaker
            attributes["USE-CANDIDATE"] = None  # aggressive nomination: the first pair that works
        else:
            attributes["ICE-CONTROLLED"] = self.tiebreaker
        msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=attributes)
        msg.add_message_integrity(self.remote_key)
        if len(self.transactions) > 64:  # unanswered old checks
            self.transactions.clear()
        self.transactions[msg.transaction_id] = addr
        self.transport.sendto(bytes(msg), addr)

    def _stun(self, data: bytes, addr: Address) -> None:
        self.stats.stun_in += 1
        try:
            msg = stun.parse_message(data)
        except ValueError:
            return
        if msg.message_method != stun.Method.BINDING:
            return
        if msg.message_class == stun.Class.REQUEST:
            self._answer_check(msg, addr)
        elif msg.message_class == stun.Class.RESPONSE:
            if self.transactions.pop(msg.transaction_id, None) == addr and msg.check_message_integrity(
                self.remote_key
            ):
                if self.controlling:
                    self._pair_works(addr)
                elif self.stats.ice_s is None:
                    self.stats.ice_s = time.monotonic() - self.stats.started_at
        elif msg.message_class == stun.Class.ERROR and msg.error_code == 487:
            # role conflict: the server wants the other role (RFC 8445 section 7.3.1.1)
            self.transactions.pop(msg.transaction_id, None)
            self.controlling = not self.controlling

    def _answer_check(self, msg: stun.Message, addr: Address) -> None:
        """A full-ICE server checks us too: answer with our password, learn its nomination."""
        assert self.transport is not None
        if self.remote is None or msg.attributes.get("USERNAME") != f"{self.ufrag}:{self.remote.ufrag}":
            return
        if not msg.check_message_integrity(self.pwd.encode()):
            return
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            transaction_id=msg.transaction_id,
            attributes={"XOR-MAPPED-ADDRESS": addr},
        )
        response.add_message_integrity(self.pwd.encode())
        self.transport.sendto(bytes(response), addr)
        if self.selected is None:
            if not self.controlling and "USE-CANDIDATE" in msg.attributes:
                self._pair_works(addr)
            else:
                self._send_check(addr)  # a triggered check (RFC 8445 section 7.3.1.4)

    def _pair_works(self, addr: Address) -> None:
        """A pair is usable: when we control, the first check answered; when the server
        controls, its nomination. Starting DTLS before the server has selected a pair would lose
        the ClientHello to it, and OpenSSL's first retransmission is only after a second."""
        if self.selected is not None or self.dtls is None:
            return
        self.selected = addr
        if self.stats.ice_s is None:
            self.stats.ice_s = time.monotonic() - self.stats.started_at
        self._timer("ice", CONSENT_INTERVAL_S, self._checks)
        self._send_dtls(self.dtls.start(time.monotonic()))

    # -- DTLS ----------------------------------------------------------------------------------
    def _dtls(self, data: bytes) -> None:
        if self.dtls is None or self.selected is None:
            return
        now = time.monotonic()
        self._cancel("resend")  # the server heard us; OpenSSL's own timer does the rest
        try:
            out = self.dtls.receive(data, now)
        except DtlsError as exc:
            self._send_dtls(exc.datagrams)
            self.fail(f"dtls: {exc}")
            return
        self._send_dtls(out)
        if self.srtp is None and self.dtls.connected:
            try:
                self.srtp = SrtpContext(self.dtls.srtp_keys)
            except WebRtcError as exc:
                self.fail(f"srtp-setup: {exc}")
                return
            self.stats.dtls_s = now - self.stats.started_at
            self._cancel("handshake")
            self._cancel("dtls")

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        if self.transport is None or self.selected is None:
            return
        for d in datagrams:
            self.transport.sendto(d, self.selected)
        if self.dtls is not None and not self.dtls.connected:
            if datagrams:
                self.flight, self.resend_delay = datagrams, DTLS_RESEND_S
                self._timer("resend", self.resend_delay, self._resend)
            deadline = self.dtls.next_timeout()
            if deadline is not None:
                self._timer("dtls", max(0.0, deadline - time.monotonic()), self._dtls_timer)

    def _resend(self) -> None:
        """Send our last flight again, 50, 100, 200... ms after it went unanswered.

        A server may drop the ClientHello that races its own ICE completion (Janus does, its DTLS
        starts when libnice reports the pair selected), and OpenSSL's first retransmission comes
        only after a second; browsers start at 50 ms (WebRTC's DTLS timer) for the same reason."""
        if self.finished or self.dtls is None or self.dtls.connected or self.selected is None:
            return
        assert self.transport is not None
        for d in self.flight:
            self.transport.sendto(d, self.selected)
        self.resend_delay *= 2
        if self.resend_delay < 1.0:
            self._timer("resend", self.resend_delay, self._resend)

    def _dtls_timer(self) -> None:
        if self.dtls is not None and not self.finished and not self.dtls.connected:
            self._send_dtls(self.dtls.handle_timer(time.monotonic()))

    # -- media ---------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        first = data[0] if data else 0
        if 127 < first < 192:
            if len(data) < 12 or 191 < data[1] < 224:
                self.stats.rtcp_packets += 1
            elif not self.finished:
                self._rtp(data)
        elif first < 4:
            self._stun(data, addr)
        elif 19 < first < 64 and not self.finished:
            self._dtls(data)

    def _rtp(self, data: bytes) -> None:
        """The hot path: a handful of integer operations per packet once verification is over."""
        st = self.stats
        now = time.monotonic()
        pt = data[1] & 0x7F
        seq = (data[2] << 8) | data[3]
        if pt in self.video_pts:
            if (self.video_verify or not self.keyframe_seen) and not self._verify(data, True, now):
                return
            st.video.add(seq, len(data))
            if st.first_video == 0.0:
                st.first_video = st.last_video = now
                if st.first_packet_s is None:
                    st.first_packet_s = now - st.started_at
            else:
                gap = now - st.last_video
                if gap > st.max_gap_s:
                    st.max_gap_s = gap
                    st.max_gap_at_s = now - st.started_at
                if gap > FREEZE_S:
                    st.freezes += 1
                st.last_video = now
            if data[1] & 0x80:  # marker: the last packet of a frame
                st.frames += 1
                ts = int.from_bytes(data[4:8], "big")
                if st.last_ts >= 0:
                    delta = (ts - st.last_ts) & 0xFFFFFFFF
                    if 0 < delta < 5 * 90000:
                        st.ts_ticks += delta
                        if delta < st.min_delta or not st.min_delta:
                            st.min_delta = delta
                st.last_ts = ts
        elif pt in self.audio_pts:
            if self.audio_verify and not self._verify(data, False, now):
                return
            st.audio.add(seq, len(data))
            if st.first_packet_s is None:
                st.first_packet_s = now - st.started_at
        else:
            st.other_packets += 1

    def _verify(self, data: bytes, video: bool, now: float) -> bool:
        """Unprotect one packet; False (and counted) when it does not authenticate."""
        if self.srtp is None:
            self.stats.srtp_errors += 1
            return False
        try:
            rtp = self.srtp.unprotect(data)
        except WebRtcError:
            self.stats.srtp_errors += 1
            return False
        self.stats.verified += 1
        if video:
            if not self.keyframe_seen and _h264_keyframe(rtp):
                self.keyframe_seen = True
                self.stats.first_keyframe_s = now - self.stats.started_at
            if self.video_verify > 0:
                self.video_verify -= 1
        elif self.audio_verify > 0:
            self.audio_verify -= 1
        return True

    # -- timers and ending ---------------------------------------------------------------------
    def _timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel(name)
        self.timers[name] = self.loop.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _handshake_timeout(self) -> None:
        if self.selected is None:
            self.fail("timeout-ice")
        elif self.srtp is None:
            self.fail("timeout-dtls")

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable before the server listens, or after it left: checks go on

    def fail(self, kind: str) -> None:
        if self.stats.error is None:
            self.stats.error = kind
        self.stop(time.monotonic())

    def stop(self, end: float) -> None:
        for name in list(self.timers):
            self._cancel(name)
        if not self.finished:
            self.finished = True
            self.stats.finish(end)
        if self.transport is not None:
            self.transport.close()


# -- signalling -----------------------------------------------------------------------------------
class Whep:
    """WHEP: one POST of our offer, a 201 with the answer; DELETE of the resource at the end."""

    kind = "whep"

    def __init__(self, url: str) -> None:
        self.url = url

    async def signal(self, http: aiohttp.ClientSession, viewer: Viewer) -> tuple[str | None, str | None]:
        """Returns (error, resource URL) and starts the viewer's ICE on success."""
        headers = {"Content-Type": "application/sdp", "User-Agent": USER_AGENT}
        offer = whep_offer(viewer.local(urlsplit(self.url).hostname or "127.0.0.1"))
        async with http.post(self.url, data=offer.encode(), headers=headers) as resp:
            body = await resp.text()
            if resp.status != 201:
                return f"http-{resp.status}", None
            location = resp.headers.get("Location")
        viewer.begin(parse_remote_sdp(body), we_offered=True)
        return None, urljoin(self.url, location) if location else None

    async def keepalive(self, http: aiohttp.ClientSession, resource: str) -> None:
        return None  # WHEP keeps a session alive by ICE consent alone

    async def hangup(self, http: aiohttp.ClientSession, resource: str) -> None:
        async with http.delete(resource, headers={"User-Agent": USER_AGENT}) as resp:
            await resp.read()


class Janus:
    """Janus's streaming plugin over its HTTP (REST) API: watch, read the offer, answer with start."""

    kind = "janus"

    def __init__(self, url: str, mountpoint: int | str, poll_timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.mountpoint = mountpoint
        self.poll_timeout = poll_timeout

    async def _request(self, http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body["transaction"] = secrets.token_hex(6)
        async with http.post(url, json=body) as resp:
            if resp.status != 200:
                raise WebRtcClientError(f"http-{resp.status}")
            data: dict[str, Any] = await resp.json(content_type=None)
        if data.get("janus") == "error":
            raise WebRtcClientError(f"janus-{data.get('error', {}).get('code', '?')}")
        return data

    async def signal(self, http: aiohttp.ClientSession, viewer: Viewer) -> tuple[str | None, str | None]:
        """Returns (error, session URL) and starts the viewer's ICE on success."""
        session = (
            self.url + "/" + str((await self._request(http, self.url, {"janus": "create"}))["data"]["id"])
        )
        try:
            attached = await self._request(
                http, session, {"janus": "attach", "plugin": "janus.plugin.streaming"}
            )
            handle = f"{session}/{attached['data']['id']}"
            watch = {"request": "watch", "id": self.mountpoint}
            reply = await self._request(http, handle, {"janus": "message", "body": watch})
            offer = reply.get("jsep") or await self._wait_offer(http, session)
            remote = parse_remote_sdp(offer["sdp"])
            local = viewer.local(remote.candidates[0][0])
            jsep = {"type": "answer", "sdp": answer_for(remote, local), "trickle": False}
            await self._request(
                http, handle, {"janus": "message", "body": {"request": "start"}, "jsep": jsep}
            )
        except (WebRtcClientError, KeyError, TypeError) as exc:
            await self.hangup(http, session)
            return str(exc) if isinstance(exc, WebRtcClientError) else "janus-protocol", None
        viewer.begin(remote, we_offered=False)
        return None, session

    async def _wait_offer(self, http: aiohttp.ClientSession, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.poll_timeout
        while time.monotonic() < deadline:
            async with http.get(session, params={"maxev": "1"}) as resp:
                if resp.status != 200:
                    raise WebRtcClientError(f"http-{resp.status}")
                data = await resp.json(content_type=None)
            for event in data if isinstance(data, list) else [data]:
                if event.get("jsep", {}).get("type") == "offer":
                    return event["jsep"]  # type: ignore[no-any-return]
                error = (event.get("plugindata") or {}).get("data", {}).get("error_code")
                if error is not None:
                    raise WebRtcClientError(f"janus-streaming-{error}")
        raise WebRtcClientError("timeout-janus-offer")

    async def keepalive(self, http: aiohttp.ClientSession, resource: str) -> None:
        await self._request(http, resource, {"janus": "keepalive"})

    async def hangup(self, http: aiohttp.ClientSession, resource: str) -> None:
        await self._request(http, resource, {"janus": "destroy"})


Signalling = Whep | Janus


def signalling_for(url: str, mountpoint: int | str = 1) -> Signalling:
    """Janus for a URL whose path ends in ``/janus``, WHEP otherwise."""
    return Janus(url, mountpoint) if url.rstrip("/").endswith("/janus") else Whep(url)


# -- a run ----------------------------------------------------------------------------------------
@dataclass
class WebRtcLoadResult:
    url: str
    signalling: str
    viewers: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    verify: int
    expected_kbps: float | None = None  # None: relative to the median viewer
    min_pct: float = DEFAULT_MIN_PCT
    max_loss_pct: float = DEFAULT_MAX_LOSS_PCT
    stats: list[ViewerStats] = field(default_factory=list)
    hangup_errors: int = 0
    steady_s: float = 0.0  # the steady window: from the 'steady' mark to the end
    socket_drops: int = 0  # dropped by the kernel on the viewers' sockets (-1: unknown)
    loop_lag: dict[str, float] = field(default_factory=dict)  # LoopLag.result()

    def expected(self) -> tuple[float | None, str]:
        rates = [s.window_kbps for s in self.stats if s.window_kbps is not None and s.error is None]
        return expected_rate(self.expected_kbps, rates, "viewer")

    def summary(self) -> dict[str, Any]:
        ss = self.stats
        expected, source = self.expected()
        floor = expected * self.min_pct / 100 if expected else None
        got = {
            s.index for s in ss if floor is not None and s.window_kbps is not None and s.window_kbps >= floor
        }
        intact = {s.index for s in ss if s.loss_pct() <= self.max_loss_pct}
        kept = [s for s in ss if s.realtime and s.freezes == 0 and s.index in got and s.index in intact]
        receiving = [s for s in ss if s.first_packet_s is not None]
        rates = [s.window_kbps for s in receiving if s.window_kbps is not None]
        packets = sum(s.video.received + s.audio.received for s in ss)
        expected_packets = sum(s.video.expected + s.audio.expected for s in ss)
        lost = sum(s.video.lost + s.audio.lost for s in ss)
        total = sum(s.bytes for s in ss)
        window_packets = sum(s.window_packets or 0 for s in ss)

        def ms(seconds: list[float | None]) -> dict[str, float | None]:
            return percentiles([x * 1000 for x in seconds if x is not None], 50, 95)

        return {
            "url": self.url,
            "signalling": self.signalling,
            "viewers": self.viewers,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "signalled": sum(1 for s in ss if s.signal_s is not None),
            "ice_connected": sum(1 for s in ss if s.ice_s is not None),
            "dtls_connected": sum(1 for s in ss if s.dtls_s is not None),
            "receiving": len(receiving),
            "keyframe": sum(1 for s in ss if s.first_keyframe_s is not None),
            "realtime": sum(1 for s in ss if s.realtime),
            "expected_kbps": rounded(expected),
            "expected_from": source,
            "min_pct": self.min_pct,
            "got_min_pct": len(got),
            "max_loss_pct": self.max_loss_pct,
            "within_max_loss": len(intact),
            "kept_up": len(kept),
            "kept_up_ratio": round(len(kept) / self.viewers, 4) if self.viewers else 0.0,
            "packets": packets,
            "packets_per_s": round(packets / self.wall_s) if self.wall_s else 0,
            "steady_s": round(self.steady_s, 2),
            "steady_packets_per_s": round(window_packets / self.steady_s) if self.steady_s else 0,
            "steady_mbit_s": round(sum(s.window_bytes or 0 for s in ss) * 8 / self.steady_s / 1e6, 2)
            if self.steady_s
            else 0.0,
            "lost": lost,
            "loss_pct": round(100 * lost / expected_packets, 3) if expected_packets else 0.0,
            "viewers_with_loss": sum(1 for s in ss if s.video.lost + s.audio.lost),
            "rtcp_packets": sum(s.rtcp_packets for s in ss),
            "verified": sum(s.verified for s in ss),
            "srtp_errors": sum(s.srtp_errors for s in ss),
            "bytes": total,
            "mbit_s_in": round(total * 8 / self.wall_s / 1e6, 2) if self.wall_s else 0.0,
            "viewer_kbps": rate_spread(rates),
            "signal_ms": ms([s.signal_s for s in ss]),
            "ice_ms": ms([s.ice_s for s in ss]),
            "dtls_ms": ms([s.dtls_s for s in ss]),
            "first_packet_ms": ms([s.first_packet_s for s in ss]),
            "first_keyframe_ms": ms([s.first_keyframe_s for s in ss]),
            "freezes": sum(s.freezes for s in ss),
            "viewers_with_freeze": sum(1 for s in ss if s.freezes),
            "max_gap_s": rounded(max((s.max_gap_s for s in ss), default=0.0), 2),
            "errors": dict(Counter(s.error for s in ss if s.error is not None)),
            "hangup_errors": self.hangup_errors,
            "socket_drops": self.socket_drops,
            "loop_lag": self.loop_lag,
            "verify": self.verify,
            "client_cpu_pct": round(self.client_cpu_pct, 1),
        }

    def to_json(self, with_players: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary()}
        if with_players:
            out["viewers"] = [s.public() for s in self.stats]
        return out


async def run_webrtc_load(
    url: str,
    viewers: int,
    duration: float,
    ramp: float = 0.0,
    *,
    mountpoint: int | str = 1,
    verify: int = DEFAULT_VERIFY,
    expected_kbps: float | None = None,
    min_pct: float = DEFAULT_MIN_PCT,
    max_loss_pct: float = DEFAULT_MAX_LOSS_PCT,
    handshake_timeout: float = 15.0,
    settle: float | None = None,
    rcvbuf: int = DEFAULT_RCVBUF,
    on_mark: Callable[[str], None] | None = None,
    stats_sink: list[ViewerStats] | None = None,
) -> WebRtcLoadResult:
    """Run ``viewers`` WebRTC viewers of ``url`` (WHEP, or Janus's API for ``.../janus``), started
    at ``ramp`` per second (0: all at once), for ``duration`` seconds after the last one started;
    always stops by itself, and hangs every session up at the end (after the 'end' mark).

    The steady window (per-viewer rates) starts ``settle`` seconds after the last viewer started
    (default: a quarter of ``duration``, at most 3 s: ICE and DTLS take a few round trips)."""
    sig = signalling_for(url, mountpoint)
    loop = asyncio.get_running_loop()
    cert = DtlsCertificate.generate()
    ramp_s = viewers / ramp if ramp > 0 else 0.0
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + ramp_s + duration
    all_stats: list[ViewerStats] = []
    protocols: list[Viewer] = []
    resources: list[str] = []
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=200, force_close=False)
    timeout = aiohttp.ClientTimeout(total=handshake_timeout + 30)
    http = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def start_one(stats: ViewerStats) -> None:
        stats.started_at = time.monotonic()
        try:
            _, viewer = await loop.create_datagram_endpoint(
                lambda: Viewer(stats, cert, verify, handshake_timeout), sock=viewer_socket(rcvbuf)
            )
        except OSError as exc:
            stats.error = f"socket-{type(exc).__name__}"
            return
        protocols.append(viewer)
        try:
            error, resource = await sig.signal(http, viewer)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error, resource = f"http-{type(exc).__name__}", None
        except WebRtcClientError as exc:
            error, resource = f"bad-sdp: {exc}", None
        if resource is not None:
            resources.append(resource)
        if error is not None:
            viewer.fail(error)

    async def keepalives() -> None:
        while True:
            await asyncio.sleep(JANUS_KEEPALIVE_S)
            for resource in list(resources):
                with_task(sig.keepalive(http, resource))

    def with_task(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        pending.add(task)
        task.add_done_callback(_quiet_done)

    def _quiet_done(task: asyncio.Future[Any]) -> None:
        pending.discard(task)  # type: ignore[arg-type]
        if not task.cancelled():
            task.exception()  # a keepalive that failed: the session's own error shows it

    steady_at = [0.0]

    def mark(name: str) -> None:
        if name == "steady":
            now = steady_at[0] = time.monotonic()
            for s in all_stats:
                s.mark_steady(now)
        if on_mark is not None:
            on_mark(name)

    keeper = asyncio.create_task(keepalives())
    lag = LoopLag(t0)
    lagger = asyncio.create_task(lag.run())
    try:
        for i in range(viewers):
            await ramp_wait(t0, i, ramp)
            stats = ViewerStats(i)
            all_stats.append(stats)
            if stats_sink is not None:
                stats_sink.append(stats)
            with_task(start_one(stats))
        settle = min(3.0, duration / 4) if settle is None else min(settle, duration)
        stop_at = await steady_then_end(t0, ramp_s, settle, end, mark)
        drops = socket_drops({p.port for p in protocols})
        for p in protocols:
            p.stop(stop_at)
        for stats in all_stats:
            if stats.signal_s is None and stats.error is None:
                stats.error = "timeout-signal"
        keeper.cancel()
        lagger.cancel()
        for task in list(pending):
            task.cancel()
        wall = stop_at - t0
        cpu = cpu_pct_since(cpu0, wall)
        hangups = await asyncio.gather(*(sig.hangup(http, r) for r in resources), return_exceptions=True)
    finally:
        keeper.cancel()
        lagger.cancel()
        await http.close()
    return WebRtcLoadResult(
        url,
        sig.kind,
        viewers,
        duration,
        ramp,
        wall,
        cpu,
        verify,
        expected_kbps,
        min_pct,
        max_loss_pct,
        all_stats,
        sum(1 for h in hangups if isinstance(h, BaseException)),
        stop_at - steady_at[0] if steady_at[0] else 0.0,
        drops,
        lag.result(),
    )


class LoopLag:
    """How late the client's own event loop ran a 10 ms sleep: when every viewer sees the same gap
    at the same moment, this says whether the client stalled or the server did."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.max_s = 0.0
        self.max_at = 0.0
        self.over_100ms = 0

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            now = time.monotonic()
            late = now - t - 0.01
            if late > self.max_s:
                self.max_s, self.max_at = late, now - self.t0
            self.over_100ms += late > 0.1

    def result(self) -> dict[str, float]:
        return {
            "max_ms": round(1000 * self.max_s, 1),
            "at_s": round(self.max_at, 2),
            "over_100ms": self.over_100ms,
        }


def socket_drops(ports: set[int]) -> int:
    """Datagrams the kernel dropped on our sockets (the ``drops`` column of /proc/net/udp): a
    viewer's socket that was not read in time, i.e. loss caused by the client, not the server."""
    total = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 13 and int(fields[1].rpartition(":")[2], 16) in ports:
                    total += int(fields[12])
    except (OSError, ValueError, StopIteration):
        return -1
    return total


def format_summary(s: dict[str, Any]) -> str:
    kb = s["viewer_kbps"]

    def pp(d: dict[str, float | None]) -> str:
        return f"p50 {d['p50']}  p95 {d['p95']}"

    lines = [
        f"url                 {s['url']} ({s['signalling']})",
        f"viewers             {s['viewers']} (signalled {s['signalled']}, ICE {s['ice_connected']}, "
        f"DTLS {s['dtls_connected']}, receiving {s['receiving']}, keyframe {s['keyframe']})",
        f"kept up             {s['kept_up']} ({100 * s['kept_up_ratio']:.1f}%): real time {s['realtime']}, "
        f">= {s['min_pct']:g}% of {s['expected_kbps']} kbit/s ({s['expected_from']}) {s['got_min_pct']}, "
        f"loss <= {s['max_loss_pct']:g}% {s['within_max_loss']}",
        f"viewer kbit/s       min {kb['min']}  p5 {kb['p5']}  p50 {kb['p50']}  p95 {kb['p95']}",
        f"packets             {s['packets']} RTP ({s['packets_per_s']}/s), {s['rtcp_packets']} RTCP, "
        f"{s['verified']} unprotected, {s['srtp_errors']} SRTP errors",
        f"loss                {s['loss_pct']}% ({s['lost']} packets, {s['viewers_with_loss']} viewers)",
        f"throughput in       {s['mbit_s_in']} Mbit/s over {s['wall_s']} s; steady {s['steady_mbit_s']} Mbit/s, "
        f"{s['steady_packets_per_s']} packets/s",
        f"client socket drops {s['socket_drops']} (loss caused by this client, included above)",
        f"signalling ms       {pp(s['signal_ms'])}",
        f"ICE / DTLS done ms  {pp(s['ice_ms'])} / {pp(s['dtls_ms'])}",
        f"first packet ms     {pp(s['first_packet_ms'])}",
        f"first keyframe ms   {pp(s['first_keyframe_ms'])}",
        f"freezes             {s['freezes']} in {s['viewers_with_freeze']} viewers (max gap {s['max_gap_s']} s)",
        f"errors              {s['errors'] or 'none'}"
        + (f", hang-up errors {s['hangup_errors']}" if s["hangup_errors"] else ""),
        f"load client CPU     {s['client_cpu_pct']}%; its loop late by up to {s['loop_lag'].get('max_ms')} ms "
        f"(at {s['loop_lag'].get('at_s')} s), {s['loop_lag'].get('over_100ms')} times over 100 ms",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.webrtcclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="http://HOST:PORT/PATH/whep (WHEP) or http://HOST:PORT/janus (Janus)")
    ap.add_argument("--viewers", type=int, default=10, help="number of viewers (default 10)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the last viewer started")
    ap.add_argument("--ramp", type=float, default=0.0, help="viewers started per second (0: all at once)")
    ap.add_argument("--mountpoint", default="1", help="Janus streaming mountpoint id (default 1)")
    ap.add_argument(
        "--verify",
        type=int,
        default=DEFAULT_VERIFY,
        help=f"packets per media to SRTP-unprotect after the first keyframe (default {DEFAULT_VERIFY}; -1: all)",
    )
    ap.add_argument("--expected-kbps", type=float, help="the stream's rate as one viewer receives it")
    ap.add_argument(
        "--min-pct", type=float, default=DEFAULT_MIN_PCT, help="of the expected rate (default 90)"
    )
    ap.add_argument(
        "--max-loss-pct",
        type=float,
        default=DEFAULT_MAX_LOSS_PCT,
        help=f"most packet loss %% of a viewer that kept up (default {DEFAULT_MAX_LOSS_PCT:g})",
    )
    ap.add_argument("--handshake-timeout", type=float, default=15.0, help="signalling done to DTLS connected")
    ap.add_argument("--settle", type=float, help="seconds after the last start before the steady window")
    ap.add_argument(
        "--rcvbuf",
        type=int,
        default=DEFAULT_RCVBUF,
        help=f"socket receive buffer bytes (default {DEFAULT_RCVBUF})",
    )
    ap.add_argument("--json", help="write the summary and per-viewer stats to this file")
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines (for run_webrtc)")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if args.viewers < 1 or args.duration <= 0:
        ap.error("--viewers must be >= 1 and --duration > 0")
    mountpoint: int | str = int(args.mountpoint) if args.mountpoint.isdigit() else args.mountpoint
    uv = prepare(args.no_uvloop)
    result = asyncio.run(
        run_webrtc_load(
            args.url,
            args.viewers,
            args.duration,
            args.ramp,
            mountpoint=mountpoint,
            verify=args.verify,
            expected_kbps=args.expected_kbps,
            min_pct=args.min_pct,
            max_loss_pct=args.max_loss_pct,
            handshake_timeout=args.handshake_timeout,
            settle=args.settle,
            rcvbuf=args.rcvbuf,
            on_mark=marker(args.marks),
        )
    )
    print_and_save(result, format_summary, args.json, uvloop=uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
