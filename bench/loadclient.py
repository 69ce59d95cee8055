"""A lightweight live-stream load client: many RTMP / HTTP-FLV players in one asyncio process.

Players never decode: they parse just enough of the wire format (RTMP chunks through
:class:`~streamhive.protocols.rtmp.client.RtmpClientConnection`, FLV tags through
:class:`~streamhive.formats.flv.FlvDemuxer`) to see each video frame's timestamp and whether it is
a sequence header. It only speaks the standard protocols, so it can be pointed at any server
(streamhive, nginx-rtmp, node-media-server, SRS...).

Per player it records the TCP connect time, the time to the first video frame (the first
non-config video tag), frames/bytes received, the media time received (last video timestamp
minus the first, plus one frame interval) against the wall time since the first frame, stalls
(more than ``STALL_S`` without a video frame, including one still running at the end) and
lateness (how much later than its own best the player saw a frame, in media-time terms).

A player is *real time* when its media time is at least 98% of its wall time and it never
stalled.

    python -m bench.loadclient rtmp://127.0.0.1:1935/live/cam1 --clients 200 --duration 20 --ramp 100
    python -m bench.loadclient http://127.0.0.1:8080/live/cam1.flv --clients 200 --duration 20 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from streamhive.formats.flv import TAG_AUDIO, TAG_VIDEO, FlvDemuxer, FlvError, parse_video_body
from streamhive.protocols.rtmp.client import ConnectResult, RtmpClientConnection, Status, StreamCreated
from streamhive.protocols.rtmp.connection import MediaReceived
from streamhive.protocols.rtmp.errors import RtmpError

STALL_S = 1.0
REALTIME_RATIO = 0.98
_MAX_HEADER = 64 * 1024


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rounded(v: float | None, digits: int = 1) -> float | None:
    """Rounded for the summaries, which say None where there were no values."""
    return None if v is None else round(v, digits)


def percentiles(values: list[float], *qs: int) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ...}`` for the given ``qs``, rounded to 0.1: every client reports its
    timings this way, so the reports read alike."""
    return {f"p{q}": rounded(percentile(values, q)) for q in qs}


def rate_spread(rates: list[float]) -> dict[str, float | None]:
    """The per-client rates' low end and middle: who fell behind shows in min and p5."""
    return {"min": rounded(min(rates, default=None)), **percentiles(rates, 5, 50, 95)}


def expected_rate(given: float | None, rates: list[float], who: str) -> tuple[float | None, str]:
    """The rate a client must reach to count as keeping up, and where it came from: the one given,
    else the median of ``rates`` (the clients that ended without error), which needs no knowledge
    of the stream but hides a slowdown that hits every client alike."""
    if given:
        return given, "given"
    return percentile(rates, 50), f"median {who}"


@dataclass(slots=True)
class PlayerStats:
    """What one player saw. Times are seconds (``*_s``) or milliseconds (``*_ms``)."""

    index: int
    protocol: str
    started_at: float = 0.0  # monotonic time the connection attempt started
    connect_s: float | None = None  # TCP connect
    first_frame_s: float | None = None  # connect start -> first non-config video frame
    frames: int = 0  # non-config video frames
    keyframes: int = 0
    audio_frames: int = 0
    bytes: int = 0
    media_s: float = 0.0  # video timestamps spanned, plus one frame interval
    wall_s: float = 0.0  # first frame -> end of the run (or disconnect)
    max_gap_s: float = 0.0
    stalls: int = 0
    stall_s: float = 0.0
    max_late_ms: float = 0.0  # worst lateness relative to the player's best media/wall offset
    end_late_ms: float = 0.0  # lateness of the last frame
    discontinuities: int = 0  # timestamp jumps backwards or > 5 s forwards
    error: str | None = None
    realtime: bool = False
    # internals
    first_ts: int | None = None
    last_ts: int = 0
    media_ms: int = 0
    first_wall: float = 0.0
    last_wall: float = 0.0
    min_offset: float = float("inf")
    frame_log: list[tuple[int, float]] | None = None  # (video timestamp ms, monotonic receive time)

    def on_video(self, ts: int, keyframe: bool, now: float) -> None:
        if self.first_ts is None:
            self.first_ts = ts
            self.first_wall = now
            self.first_frame_s = now - self.started_at
        else:
            delta = ts - self.last_ts
            if 0 <= delta < 5000:
                self.media_ms += delta
            else:
                self.discontinuities += 1
            gap = now - self.last_wall
            if gap > self.max_gap_s:
                self.max_gap_s = gap
            if gap > STALL_S:
                self.stalls += 1
                self.stall_s += gap
        offset = (now - self.first_wall) - self.media_ms / 1000
        if offset < self.min_offset:
            self.min_offset = offset
        late = offset - self.min_offset
        if late * 1000 > self.max_late_ms:
            self.max_late_ms = late * 1000
        self.end_late_ms = late * 1000
        self.last_ts = ts
        self.last_wall = now
        self.frames += 1
        if keyframe:
            self.keyframes += 1
        if self.frame_log is not None:
            self.frame_log.append((ts, now))

    def finish(self, end: float) -> None:
        """Close the books at ``end`` (the end of the run, or when the connection was lost)."""
        if self.first_ts is None:
            if self.error is None:
                self.error = "no-video"
            return
        gap = end - self.last_wall
        if gap > STALL_S:  # a stall that was still running at the end
            self.stalls += 1
            self.stall_s += gap
            self.max_gap_s = max(self.max_gap_s, gap)
        interval = self.media_ms / (self.frames - 1) / 1000 if self.frames > 1 else 0.0
        self.media_s = self.media_ms / 1000 + interval
        self.wall_s = end - self.first_wall
        self.realtime = (
            self.error is None and self.media_s >= REALTIME_RATIO * self.wall_s and self.max_gap_s <= STALL_S
        )

    def public(self, with_log: bool = False) -> dict[str, Any]:
        d = asdict(self)
        for key in ("first_ts", "last_ts", "media_ms", "first_wall", "last_wall", "min_offset", "started_at"):
            d.pop(key)
        if not with_log:
            d.pop("frame_log")
        return d


class _Player(asyncio.Protocol):
    """Common bookkeeping; subclasses parse the wire format and call ``stats.on_video``."""

    def __init__(self, stats: PlayerStats, host: str, port: int, path: str) -> None:
        self.stats = stats
        self.host, self.port, self.path = host, port, path
        self.transport: asyncio.Transport | None = None
        self.finished = False
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        self.stats.connect_s = time.monotonic() - self.stats.started_at
        self.start()

    def start(self) -> None:
        raise NotImplementedError

    def fail(self, kind: str) -> None:
        if self.stats.error is None:
            self.stats.error = kind
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.finished = True
            if self.stats.error is None:
                self.stats.error = "closed-by-server" if exc is None else f"reset:{type(exc).__name__}"
            self.stats.finish(time.monotonic())
        if not self.lost.done():
            self.lost.set_result(None)

    def stop(self, end: float) -> None:
        if not self.finished:
            self.finished = True
            self.stats.finish(end)
        if self.transport is not None:
            self.transport.abort()


class RtmpPlayer(_Player):
    """``rtmp://host:port/app/name``: connect, createStream, play; counts video and audio messages."""

    def start(self) -> None:
        assert self.transport is not None
        app, _, name = self.path.lstrip("/").partition("/")
        self.name = name
        self.conn = RtmpClientConnection()
        self.transport.write(self.conn.initial_bytes())
        self.conn.connect(app, tc_url=f"rtmp://{self.host}:{self.port}/{app}")
        self.conn.create_stream()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        stats = self.stats
        stats.bytes += len(data)
        try:
            events = self.conn.receive_data(data)
        except RtmpError:
            self.fail("rtmp-protocol")
            return
        for ev in events:
            if type(ev) is MediaReceived:
                if ev.kind == "video":
                    self._video(ev.timestamp, ev.payload, now)
                else:
                    stats.audio_frames += 1
            elif type(ev) is StreamCreated:
                self.conn.play(self.name)
            elif type(ev) is Status:
                if ev.level == "error" or ev.code in (
                    "NetStream.Play.StreamNotFound",
                    "NetStream.Play.Failed",
                ):
                    self.fail(f"rtmp-status:{ev.code}")
                    return
            elif type(ev) is ConnectResult and not ev.success:
                self.fail(f"rtmp-connect:{ev.code}")
                return
        out = self.conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def _video(self, ts: int, body: bytes, now: float) -> None:
        try:
            pkt = parse_video_body(body)
        except FlvError:
            self.fail("bad-video")
            return
        if pkt.kind == "frame":
            self.stats.on_video(ts, pkt.keyframe, now)


class FlvPlayer(_Player):
    """``http://host:port/path.flv``: one GET, then an endless FLV (chunked or not)."""

    def start(self) -> None:
        assert self.transport is not None
        self.head = bytearray()
        self.headers_done = False
        self.chunked = False
        self.chunk_left = 0
        self.skip_crlf = 0
        self.size_line = bytearray()
        self.demuxer = FlvDemuxer()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "User-Agent: streamhive-loadclient\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.stats.bytes += len(data)
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > _MAX_HEADER:
                    self.fail("http-bad-response")
                return
            head = bytes(self.head[:end]).decode("latin-1")
            data = bytes(self.head[end + 4 :])
            self.head.clear()
            self.headers_done = True
            status_line, *lines = head.split("\r\n")
            parts = status_line.split()
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                self.fail("http-bad-response")
                return
            if parts[1] != self.expected_status:
                self.fail(f"http-{parts[1]}")
                return
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
            if not data:
                return
        data = self._body(data)
        if data is not None:
            self._flv(data, now)

    expected_status = "200"

    def _body(self, data: bytes) -> bytes | None:
        """The FLV bytes in what arrived after the headers (HTTP chunking removed)."""
        return self._dechunk(data) if self.chunked else data

    def _flv(self, data: bytes, now: float) -> None:
        try:
            tags = self.demuxer.feed(data)
        except FlvError:
            self.fail("flv-protocol")
            return
        stats = self.stats
        for tag in tags:
            if tag.tag_type == TAG_VIDEO:
                try:
                    pkt = parse_video_body(tag.body)
                except FlvError:
                    self.fail("bad-video")
                    return
                if pkt.kind == "frame":
                    stats.on_video(tag.timestamp, pkt.keyframe, now)
            elif tag.tag_type == TAG_AUDIO:
                stats.audio_frames += 1

    def _dechunk(self, data: bytes) -> bytes | None:
        out = []
        pos, n = 0, len(data)
        while pos < n:
            if self.chunk_left:
                take = min(self.chunk_left, n - pos)
                out.append(data[pos : pos + take])
                pos += take
                self.chunk_left -= take
                if not self.chunk_left:
                    self.skip_crlf = 2
            elif self.skip_crlf:
                take = min(self.skip_crlf, n - pos)
                pos += take
                self.skip_crlf -= take
            else:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    self.size_line += data[pos:]
                    if len(self.size_line) > 1024:
                        self.fail("http-bad-chunk")
                        return None
                    break
                self.size_line += data[pos:nl]
                pos = nl + 1
                try:
                    size = int(bytes(self.size_line).split(b";")[0].strip(), 16)
                except ValueError:
                    self.fail("http-bad-chunk")
                    return None
                self.size_line.clear()
                if size == 0:
                    break  # end of body; the server will close
                self.chunk_left = size
        return b"".join(out)


class WsFlvPlayer(FlvPlayer):
    """``ws://host:port/path.flv``: the same FLV, as binary WebSocket messages (WS-FLV)."""

    expected_status = "101"

    def start(self) -> None:
        assert self.transport is not None
        self.head = bytearray()
        self.headers_done = False
        self.chunked = False
        self.frames = bytearray()
        self.demuxer = FlvDemuxer()
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "User-Agent: streamhive-loadclient\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.transport.write(request.encode())

    def _body(self, data: bytes) -> bytes | None:
        """Unwrap server-to-client (unmasked) WebSocket frames; binary payloads are FLV."""
        buf = self.frames
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 2:
            opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < head + size:
                break
            if opcode == 0x8:
                self.fail("ws-closed")
                return None
            if opcode in (0x0, 0x2):
                out.append(bytes(buf[pos + head : pos + head + size]))
            pos += head + size
        del buf[:pos]
        return b"".join(out)


@dataclass
class LoadResult:
    url: str
    clients: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    players: list[PlayerStats] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ps = self.players
        connected = [p for p in ps if p.connect_s is not None]
        receiving = [p for p in ps if p.first_frame_s is not None]
        realtime = [p for p in ps if p.realtime]
        first = [p.first_frame_s * 1000 for p in receiving if p.first_frame_s is not None]
        conn = [p.connect_s * 1000 for p in connected if p.connect_s is not None]
        late = [p.max_late_ms for p in receiving]
        total_bytes = sum(p.bytes for p in ps)
        errors = Counter(p.error for p in ps if p.error is not None)

        return {
            "url": self.url,
            "clients": self.clients,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "connected": len(connected),
            "receiving": len(receiving),
            "realtime": len(realtime),
            "realtime_ratio": round(len(realtime) / self.clients, 4) if self.clients else 0.0,
            "frames": sum(p.frames for p in ps),
            "audio_frames": sum(p.audio_frames for p in ps),
            "bytes": total_bytes,
            "mbit_s_in": round(total_bytes * 8 / self.wall_s / 1e6, 2) if self.wall_s else 0.0,
            "stalls": sum(p.stalls for p in ps),
            "players_with_stall": sum(1 for p in ps if p.stalls),
            "max_gap_s": rounded(max((p.max_gap_s for p in ps), default=0.0)),
            "connect_ms": percentiles(conn, 50, 95),
            "first_frame_ms": percentiles(first, 50, 95, 99),
            "max_late_ms": {**percentiles(late, 50, 99), "max": rounded(max(late, default=None))},
            "errors": dict(errors),
            "client_cpu_pct": round(self.client_cpu_pct, 1),
        }

    def to_json(self, with_players: bool = True, with_log: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary()}
        if with_players:
            out["players"] = [p.public(with_log) for p in self.players]
        return out


def _target(url: str) -> tuple[type[_Player], str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme == "rtmp":
        cls: type[_Player] = RtmpPlayer
        protocol, default_port = "rtmp", 1935
    elif parts.scheme == "http":
        cls, protocol, default_port = FlvPlayer, "http-flv", 80
    elif parts.scheme == "ws":
        cls, protocol, default_port = WsFlvPlayer, "ws-flv", 80
    else:
        raise ValueError(f"unsupported URL scheme in {url!r} (rtmp://, http://...flv or ws://...flv)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return cls, protocol, parts.hostname or "127.0.0.1", parts.port or default_port, path


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one (many players need many sockets)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def ramp_wait(t0: float, i: int, ramp: float) -> None:
    """Wait for the start time of the ``i``-th client of a ramp of ``ramp`` per second from ``t0``
    (no wait when ``ramp`` is 0: all at once)."""
    if ramp > 0:
        delay = t0 + i / ramp - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def steady_then_end(
    t0: float, ramp_s: float, settle: float, end: float, on_mark: Callable[[str], None] | None
) -> float:
    """Mark 'steady' ``settle`` s after the ramp, 'end' at ``end``; returns the monotonic stop time."""
    await asyncio.sleep(max(0.0, t0 + ramp_s + settle - time.monotonic()))
    if on_mark is not None:
        on_mark("steady")
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    if on_mark is not None:
        on_mark("end")
    return time.monotonic()


def cpu_pct_since(cpu0: os.times_result, wall: float) -> float:
    """This process's CPU% (user + system) since ``cpu0 = os.times()`` over ``wall`` seconds."""
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return 100 * cpu / wall if wall else 0.0


async def connect(
    factory: Callable[[], asyncio.Protocol], host: str, port: int, timeout: float
) -> str | None:
    """Open one client connection; None, or the error name the load reports count."""
    try:
        await asyncio.wait_for(asyncio.get_running_loop().create_connection(factory, host, port), timeout)
    except TimeoutError:
        return "connect-timeout"
    except ConnectionRefusedError:
        return "connect-refused"
    except OSError as exc:
        return f"connect-{type(exc).__name__}"
    return None


async def run_load(
    url: str,
    clients: int,
    duration: float,
    ramp: float = 0.0,
    *,
    frame_log: bool = False,
    connect_timeout: float = 10.0,
    on_mark: Callable[[str], None] | None = None,
    stats_sink: list[PlayerStats] | None = None,
) -> LoadResult:
    """Run ``clients`` players against ``url``, started at ``ramp`` per second (0: all at once),
    for ``duration`` seconds after the last one started; always stops by itself.

    ``stats_sink``, when given, gets each player's live :class:`PlayerStats` as it starts (for a
    progress display reading them while the run goes on)."""
    cls, protocol, host, port, path = _target(url)
    ramp_s = clients / ramp if ramp > 0 else 0.0
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + ramp_s + duration
    players: list[_Player] = []
    pending: set[asyncio.Task[None]] = set()

    async def start_one(stats: PlayerStats) -> None:
        stats.started_at = time.monotonic()
        player_box: list[_Player] = []

        def factory() -> _Player:
            p = cls(stats, host, port, path)
            player_box.append(p)
            players.append(p)
            return p

        stats.error = await connect(factory, host, port, connect_timeout)
        if stats.error is not None and player_box:
            player_box[0].finished = True

    all_stats = []
    for i in range(clients):
        await ramp_wait(t0, i, ramp)
        stats = PlayerStats(i, protocol, frame_log=[] if frame_log else None)
        all_stats.append(stats)
        if stats_sink is not None:
            stats_sink.append(stats)
        task = asyncio.create_task(start_one(stats))
        pending.add(task)
        task.add_done_callback(pending.discard)
    stop_at = await steady_then_end(t0, ramp_s, min(1.0, duration / 4), end, on_mark)
    for p in players:
        p.stop(stop_at)
    for task in list(pending):
        task.cancel()
    for stats in all_stats:
        if stats.connect_s is None and stats.error is None:
            stats.error = "connect-timeout"
    await asyncio.sleep(0)
    wall = stop_at - t0
    return LoadResult(url, clients, duration, ramp, wall, cpu_pct_since(cpu0, wall), all_stats)


def format_summary(s: dict[str, Any]) -> str:
    ff = s["first_frame_ms"]
    lines = [
        f"url                 {s['url']}",
        f"clients             {s['clients']} (connected {s['connected']}, receiving video {s['receiving']})",
        f"real-time clients   {s['realtime']} ({100 * s['realtime_ratio']:.1f}%)",
        f"frames              {s['frames']} video, {s['audio_frames']} audio",
        f"throughput in       {s['mbit_s_in']} Mbit/s over {s['wall_s']} s",
        f"first frame ms      p50 {ff['p50']}  p95 {ff['p95']}  p99 {ff['p99']}",
        f"connect ms          p50 {s['connect_ms']['p50']}  p95 {s['connect_ms']['p95']}",
        f"stalls              {s['stalls']} in {s['players_with_stall']} players (max gap {s['max_gap_s']} s)",
        f"max lateness ms     p50 {s['max_late_ms']['p50']}  p99 {s['max_late_ms']['p99']}  max {s['max_late_ms']['max']}",
        f"errors              {s['errors'] or 'none'}",
        f"load client CPU     {s['client_cpu_pct']}%",
    ]
    return "\n".join(lines)


def install_uvloop() -> bool:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def prepare(no_uvloop: bool = False) -> bool:
    """Before a client run: lift the open-files limit and install uvloop; True if it is in use."""
    raise_fd_limit()
    return False if no_uvloop else install_uvloop()


def marker(enabled: bool) -> Callable[[str], None]:
    """The ``on_mark`` callback of the clients' ``--marks`` option: prints 'MARK name time'."""

    def mark(name: str) -> None:
        if enabled:
            print(f"MARK {name} {time.monotonic():.3f}", flush=True)

    return mark


def print_and_save(
    result: Any, format_summary: Callable[[dict[str, Any]], str], json_path: str | None, **extra: Any
) -> None:
    """Print a client result's summary (with ``extra`` fields) and write it, with the per-client
    stats of ``result.to_json()``, to ``json_path`` when given."""
    summary = result.summary()
    summary.update(extra)
    print(format_summary(summary), flush=True)
    if json_path:
        data = result.to_json()
        data["summary"] = summary
        with open(json_path, "w") as f:
            json.dump(data, f, indent=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="rtmp://HOST:PORT/APP/NAME or http://HOST:PORT/PATH.flv")
    ap.add_argument("--clients", type=int, default=10, help="number of players (default 10)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the last player started")
    ap.add_argument("--ramp", type=float, default=0.0, help="players started per second (0: all at once)")
    ap.add_argument("--json", help="write the summary and per-player stats to this file")
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines (for run_spine)")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        ap.error("--clients must be >= 1 and --duration > 0")
    uv = prepare(args.no_uvloop)
    result = asyncio.run(
        run_load(
            args.url,
            args.clients,
            args.duration,
            args.ramp,
            connect_timeout=args.connect_timeout,
            on_mark=marker(args.marks),
        )
    )
    print_and_save(result, format_summary, args.json, uvloop=uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
