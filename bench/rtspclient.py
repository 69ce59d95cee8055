"""A lightweight RTSP load client: many TCP-interleaved readers of one URL in one asyncio process.

Readers never decode. Each is one :class:`asyncio.Protocol` that sends OPTIONS, DESCRIBE, one
SETUP per RTP media of the SDP (``RTP/AVP/TCP;unicast;interleaved=0-1``, ``2-3``...) and PLAY,
then counts what arrives: bytes in ``data_received`` and RTP/RTCP packets by walking the ``$``
frame headers (4 bytes each; payloads are skipped by length, never copied). The RTP timestamp of
the last video packet of each read gives the media time received. RTSP messages are parsed with
streamhive's sans-IO :class:`~streamhive.protocols.rtsp.message.RtspParser` (only the few that
arrive: the handshake answers, and any request the server sends, which gets a 501), SDP with
:func:`~streamhive.formats.sdp.parse_sdp`, and controls are resolved with
:func:`~streamhive.protocols.rtsp.url.resolve_control`, so it works against any RTSP server.

Per reader it records the TCP connect time, the time to the PLAY answer and to the first RTP
packet, bytes and packets, the received bitrate over the steady window (from the 'steady' mark
to the end), the video media time received against the wall time, and gaps between video reads.
A reader *kept up* when it is real time (video media time >= 98% of the wall time since its
first video packet, no gap over 1 s, no error) and received at least ``--min-pct`` (default 90)
percent of the expected bytes in the steady window: ``--expected-kbps``, or else the median
reader's rate (which cannot see a server that slows every reader alike; the real-time test can).

    python -m bench.rtspclient rtsp://127.0.0.1:8554/live/cam1 --readers 200 --duration 15 --ramp 200
    python -m bench.rtspclient rtsp://127.0.0.1:8554/live/cam1 --readers 50 --expected-kbps 2200 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.loadclient import (
    connect,
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
from streamhive.formats.sdp import SdpError, parse_sdp
from streamhive.protocols.rtsp.message import Headers, Request, Response, RtspError, RtspParser
from streamhive.protocols.rtsp.url import RtspUrl, resolve_control

STALL_S = 1.0
REALTIME_RATIO = 0.98
DEFAULT_MIN_PCT = 90.0
USER_AGENT = "streamhive-rtspclient"
_MAX_MESSAGE = 256 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)")
_DOLLAR = 0x24


@dataclass(slots=True)
class ReaderStats:
    """What one reader saw. Times are seconds (``*_s``) unless named ``*_ms``."""

    index: int
    started_at: float = 0.0  # monotonic time the connection attempt started
    connect_s: float | None = None  # TCP connect
    play_s: float | None = None  # connect start -> PLAY answered
    first_packet_s: float | None = None  # connect start -> first RTP packet
    bytes: int = 0  # everything received (RTSP answers, $ headers, RTP, RTCP)
    packets: int = 0  # RTP packets (even channels)
    video_packets: int = 0
    rtcp_packets: int = 0  # odd channels
    media_s: float = 0.0  # video RTP timestamps spanned, plus one frame interval
    wall_s: float = 0.0  # first video packet -> end of the run (or disconnect)
    window_bytes: int | None = None  # received between the 'steady' mark and the end
    window_kbps: float | None = None
    max_gap_s: float = 0.0  # longest time between two reads with video packets (the end included)
    stalls: int = 0  # gaps over STALL_S
    discontinuities: int = 0  # video timestamp jumps of more than 5 s either way
    medias: int = 0  # media set up
    error: str | None = None
    realtime: bool = False
    # internals
    clock: int = 90000
    first_wall: float = 0.0  # first video packet
    last_video_wall: float = 0.0
    last_ts: int = 0
    ext_ts: int = 0  # unwrapped timestamp of the last video packet
    first_ext: int = 0
    max_ext: int = 0
    media_ticks: int = 0  # media time before the last discontinuity
    min_delta: int = 0  # smallest forward step between reads: about one frame interval
    steady_bytes: int | None = None
    steady_at: float = 0.0

    def on_video(self, ts: int, now: float) -> None:
        """The timestamp of the last video packet of one read at ``now``."""
        if self.first_wall == 0.0:
            self.first_wall = self.last_video_wall = now
            self.last_ts = ts
            self.ext_ts = self.first_ext = self.max_ext = ts
            return
        delta = (ts - self.last_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        self.last_ts = ts
        if abs(delta) > 5 * self.clock:
            self.discontinuities += 1
            self.media_ticks += self.max_ext - self.first_ext
            self.ext_ts = self.first_ext = self.max_ext = ts
        else:
            self.ext_ts += delta
            if self.ext_ts > self.max_ext:
                self.max_ext = self.ext_ts
            if delta > 0 and (delta < self.min_delta or not self.min_delta):
                self.min_delta = delta
        gap = now - self.last_video_wall
        if gap > self.max_gap_s:
            self.max_gap_s = gap
        if gap > STALL_S:
            self.stalls += 1
        self.last_video_wall = now

    def mark_steady(self, now: float) -> None:
        self.steady_bytes, self.steady_at = self.bytes, now

    def finish(self, end: float) -> None:
        """Close the books at ``end`` (the end of the run, or when the connection was lost)."""
        if self.steady_bytes is not None and end > self.steady_at:
            self.window_bytes = self.bytes - self.steady_bytes
            self.window_kbps = round(self.window_bytes * 8 / (end - self.steady_at) / 1000, 1)
        if self.first_wall == 0.0:
            if self.error is None:
                self.error = "no-video" if self.packets else "no-media"
            return
        gap = end - self.last_video_wall
        if gap > STALL_S:  # a stall still running at the end
            self.stalls += 1
        self.max_gap_s = max(self.max_gap_s, gap)
        # the span of timestamps, plus the last frame's own duration (as the RTMP/FLV client does)
        self.media_s = (self.media_ticks + self.max_ext - self.first_ext + self.min_delta) / self.clock
        self.wall_s = end - self.first_wall
        self.realtime = (
            self.error is None and self.media_s >= REALTIME_RATIO * self.wall_s and self.max_gap_s <= STALL_S
        )

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for key in (
            "clock", "first_wall", "last_video_wall", "last_ts", "ext_ts", "first_ext", "max_ext",
            "media_ticks", "min_delta", "steady_bytes", "steady_at", "started_at",
        ):  # fmt: skip
            d.pop(key)
        for key in ("connect_s", "play_s", "first_packet_s", "media_s", "wall_s", "max_gap_s"):
            if d[key] is not None:
                d[key] = round(d[key], 4)
        return d


class RtspReader(asyncio.Protocol):
    """One reader: the handshake as a small state machine driven by answers, then counting."""

    def __init__(self, stats: ReaderStats, url: str, handshake_timeout: float) -> None:
        self.stats = stats
        self.url = url
        self.transport: asyncio.Transport | None = None
        self.finished = False
        self.playing = False
        self.cseq = 0
        self.waiting: str | None = None  # the method whose answer is due
        self.session: str | None = None
        self.setups: list[str] = []  # control URLs still to SETUP
        self.play_url = url
        self.video_channel = -1
        self.skip = 0  # bytes of the current $ frame still to come in later reads
        self.pending = b""  # an incomplete $ header or RTSP message, put before the next read
        self.timer = asyncio.get_running_loop().call_later(handshake_timeout, self._handshake_timeout)

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        self.stats.connect_s = time.monotonic() - self.stats.started_at
        self._request("OPTIONS", self.url)

    def data_received(self, data: bytes) -> None:
        n = len(data)
        st = self.stats
        st.bytes += n
        skip = self.skip
        if skip >= n:
            self.skip = skip - n
            return
        if self.pending:
            data = self.pending + data
            self.pending = b""
            n = len(data)
        pos = skip
        packets = rtcp = video = 0
        last_video = -1
        vch = self.video_channel
        while pos < n:
            if data[pos] == _DOLLAR:
                if pos + 4 > n:
                    self.pending = data[pos:]
                    pos = n
                    break
                channel = data[pos + 1]
                if channel & 1:
                    rtcp += 1
                else:
                    packets += 1
                    if channel == vch:
                        video += 1
                        if pos + 16 <= n:
                            last_video = pos
                pos += 4 + ((data[pos + 2] << 8) | data[pos + 3])
            elif data[pos] == 13 or data[pos] == 10:
                pos += 1
            else:
                used = self._message(data, pos, n)
                if used < 0:  # incomplete (kept in self.pending) or failed
                    pos = n
                    break
                pos = used
        self.skip = pos - n
        if packets or rtcp:
            now = time.monotonic()
            if packets and st.first_packet_s is None:
                st.first_packet_s = now - st.started_at
            st.packets += packets
            st.rtcp_packets += rtcp
            st.video_packets += video
            if last_video >= 0:
                st.on_video(int.from_bytes(data[last_video + 8 : last_video + 12], "big"), now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        if not self.finished:
            self.finished = True
            if self.stats.error is None:
                self.stats.error = "closed-by-server" if exc is None else f"reset:{type(exc).__name__}"
            self.stats.finish(time.monotonic())

    # -- RTSP ----------------------------------------------------------------------------------
    def _message(self, data: bytes, pos: int, n: int) -> int:
        """Parse the RTSP message at ``pos``; returns where the next item starts, or -1 when the
        message is incomplete (kept for the next read) or broken (the reader failed)."""
        head = _HEAD_END.search(data, pos, min(n, pos + _MAX_MESSAGE))
        if head is None:
            if n - pos >= _MAX_MESSAGE:
                self.fail("rtsp-protocol")
            else:
                self.pending = data[pos:]
            return -1
        length = _CONTENT_LENGTH.search(data, pos, head.start())
        end = head.end() + (int(length.group(1)) if length else 0)
        if end > n:
            if end - pos > _MAX_MESSAGE:
                self.fail("rtsp-protocol")
            else:
                self.pending = data[pos:]
            return -1
        try:
            items = RtspParser(max_body_bytes=_MAX_MESSAGE).feed(data[pos:end])
        except RtspError:
            self.fail("rtsp-protocol")
            return -1
        for item in items:
            if isinstance(item, Response):
                self._response(item)
            elif isinstance(item, Request):  # a server's request (GET_PARAMETER, ANNOUNCE...)
                cseq = item.headers.get("CSeq") or "0"
                self._write(Response(501, "", Headers([("CSeq", cseq)])).encode())
            if self.finished:
                return -1
        return end

    def _request(self, method: str, uri: str, *extra: tuple[str, str]) -> None:
        self.cseq += 1
        headers = Headers([("CSeq", str(self.cseq)), ("User-Agent", USER_AGENT), *extra])
        if self.session is not None:
            headers.add("Session", self.session)
        self.waiting = method
        self._write(Request(method, uri, headers).encode())

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.finished:
            self.transport.write(data)

    def _response(self, resp: Response) -> None:
        method = self.waiting
        if method is None:
            return  # an answer to nothing we asked (a keep-alive of someone else's?)
        if resp.status != 200:
            self.fail(f"rtsp-{resp.status}-{method}")
            return
        self.waiting = None
        if method == "OPTIONS":
            self._request("DESCRIBE", self.url, ("Accept", "application/sdp"))
        elif method == "DESCRIBE":
            self._describe(resp)
        elif method == "SETUP":
            if self.session is None:
                value = resp.headers.get("Session")
                if value:
                    self.session = value.split(";", 1)[0].strip()
            self._next_setup()
        elif method == "PLAY":
            self.playing = True
            self.timer.cancel()
            self.stats.play_s = time.monotonic() - self.stats.started_at

    def _describe(self, resp: Response) -> None:
        try:
            sdp = parse_sdp(resp.body)
        except SdpError:
            self.fail("bad-sdp")
            return
        base = resp.headers.get("Content-Base") or resp.headers.get("Content-Location") or self.url
        medias = [m for m in sdp.media if "RTP/AVP" in m.proto.upper()]
        if not medias:
            self.fail("no-rtp-media")
            return
        for i, m in enumerate(medias):
            if m.kind == "video" and self.video_channel < 0:
                self.video_channel = 2 * i
                rtpmap = m.rtpmap()
                fmt = m.formats[0] if m.formats else ""
                if fmt.isdigit() and int(fmt) in rtpmap:
                    self.stats.clock = rtpmap[int(fmt)].clock_rate or 90000
            self.setups.append(resolve_control(base, m.control or ""))
        if self.video_channel < 0:  # audio only: time the first media instead
            self.video_channel = 0
            rtpmap = medias[0].rtpmap()
            fmt = medias[0].formats[0] if medias[0].formats else ""
            if fmt.isdigit() and int(fmt) in rtpmap:
                self.stats.clock = rtpmap[int(fmt)].clock_rate or 90000
        self.stats.medias = len(medias)
        self.play_url = resolve_control(base, sdp.control) if sdp.control else self.url
        self._next_setup()

    def _next_setup(self) -> None:
        done = self.stats.medias - len(self.setups)
        if self.setups:
            channel = 2 * done
            self._request(
                "SETUP",
                self.setups.pop(0),
                ("Transport", f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"),
            )
        else:
            self._request("PLAY", self.play_url, ("Range", "npt=0.000-"))

    # -- ending --------------------------------------------------------------------------------
    def _handshake_timeout(self) -> None:
        if not self.playing and not self.finished:
            self.fail(f"timeout-{(self.waiting or 'connect').lower()}")

    def fail(self, kind: str) -> None:
        if self.stats.error is None:
            self.stats.error = kind
        if not self.finished:
            self.finished = True
            self.stats.finish(time.monotonic())
        if self.transport is not None:
            self.transport.abort()

    def stop(self, end: float) -> None:
        self.timer.cancel()
        if not self.finished:
            self.finished = True
            self.stats.finish(end)
        if self.transport is not None:
            self.transport.abort()


@dataclass
class RtspLoadResult:
    url: str
    readers: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    expected_kbps: float | None = None  # None: relative to the median reader
    min_pct: float = DEFAULT_MIN_PCT
    stats: list[ReaderStats] = field(default_factory=list)

    def expected(self) -> tuple[float | None, str]:
        rates = [s.window_kbps for s in self.stats if s.window_kbps is not None and s.error is None]
        return expected_rate(self.expected_kbps, rates, "reader")

    def summary(self) -> dict[str, Any]:
        ss = self.stats
        expected, source = self.expected()
        floor = expected * self.min_pct / 100 if expected else None
        got = [s for s in ss if floor is not None and s.window_kbps is not None and s.window_kbps >= floor]
        realtime = [s for s in ss if s.realtime]
        got_ids = {s.index for s in got}
        kept = [s for s in realtime if s.index in got_ids]
        receiving = [s for s in ss if s.first_packet_s is not None]
        rates = [s.window_kbps for s in receiving if s.window_kbps is not None]
        first = [s.first_packet_s * 1000 for s in receiving if s.first_packet_s is not None]
        play = [s.play_s * 1000 for s in ss if s.play_s is not None]
        total = sum(s.bytes for s in ss)

        return {
            "url": self.url,
            "readers": self.readers,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "connected": sum(1 for s in ss if s.connect_s is not None),
            "playing": len(play),
            "receiving": len(receiving),
            "realtime": len(realtime),
            "expected_kbps": rounded(expected),
            "expected_from": source,
            "min_pct": self.min_pct,
            "got_min_pct": len(got),
            "kept_up": len(kept),
            "kept_up_ratio": round(len(kept) / self.readers, 4) if self.readers else 0.0,
            "packets": sum(s.packets for s in ss),
            "rtcp_packets": sum(s.rtcp_packets for s in ss),
            "bytes": total,
            "mbit_s_in": round(total * 8 / self.wall_s / 1e6, 2) if self.wall_s else 0.0,
            "min_reader_bytes": min((s.bytes for s in ss), default=0),
            "min_reader_packets": min((s.packets for s in ss), default=0),
            "reader_kbps": rate_spread(rates),
            "play_ms": percentiles(play, 50, 95),
            "first_packet_ms": percentiles(first, 50, 95, 99),
            "stalls": sum(s.stalls for s in ss),
            "readers_with_stall": sum(1 for s in ss if s.stalls),
            "max_gap_s": rounded(max((s.max_gap_s for s in ss), default=0.0), 2),
            "errors": dict(Counter(s.error for s in ss if s.error is not None)),
            "client_cpu_pct": round(self.client_cpu_pct, 1),
        }

    def to_json(self, with_players: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary()}
        if with_players:
            out["readers"] = [s.public() for s in self.stats]
        return out


async def run_rtsp_load(
    url: str,
    readers: int,
    duration: float,
    ramp: float = 0.0,
    *,
    expected_kbps: float | None = None,
    min_pct: float = DEFAULT_MIN_PCT,
    connect_timeout: float = 10.0,
    handshake_timeout: float = 15.0,
    settle: float | None = None,
    on_mark: Callable[[str], None] | None = None,
    stats_sink: list[ReaderStats] | None = None,
) -> RtspLoadResult:
    """Run ``readers`` RTSP readers of ``url``, started at ``ramp`` per second (0: all at once),
    for ``duration`` seconds after the last one started; always stops by itself.

    The steady window (per-reader rates) starts ``settle`` seconds after the last reader started
    (default: a quarter of ``duration``, at most 1 s)."""
    parsed = RtspUrl.parse(url)
    if parsed.scheme != "rtsp":
        raise ValueError(f"only rtsp:// URLs (TCP interleaved, no TLS): {url!r}")
    if parsed.user is not None:
        raise ValueError("the RTSP load client does not authenticate: use a URL without credentials")
    host, port = parsed.host, parsed.port
    ramp_s = readers / ramp if ramp > 0 else 0.0
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + ramp_s + duration
    protocols: list[RtspReader] = []
    pending: set[asyncio.Task[None]] = set()
    all_stats: list[ReaderStats] = []

    async def start_one(stats: ReaderStats) -> None:
        stats.started_at = time.monotonic()
        box: list[RtspReader] = []

        def factory() -> RtspReader:
            p = RtspReader(stats, url, handshake_timeout)
            box.append(p)
            protocols.append(p)
            return p

        stats.error = await connect(factory, host, port, connect_timeout)
        if stats.error is not None and box:
            box[0].finished = True
            box[0].timer.cancel()

    def mark(name: str) -> None:
        if name == "steady":
            now = time.monotonic()
            for s in all_stats:
                s.mark_steady(now)
        if on_mark is not None:
            on_mark(name)

    for i in range(readers):
        await ramp_wait(t0, i, ramp)
        stats = ReaderStats(i)
        all_stats.append(stats)
        if stats_sink is not None:
            stats_sink.append(stats)
        task = asyncio.create_task(start_one(stats))
        pending.add(task)
        task.add_done_callback(pending.discard)
    settle = min(1.0, duration / 4) if settle is None else min(settle, duration)
    stop_at = await steady_then_end(t0, ramp_s, settle, end, mark)
    for p in protocols:
        p.stop(stop_at)
    for task in list(pending):
        task.cancel()
    for stats in all_stats:
        if stats.connect_s is None and stats.error is None:
            stats.error = "connect-timeout"
            stats.finish(stop_at)
    await asyncio.sleep(0)
    wall = stop_at - t0
    return RtspLoadResult(
        url, readers, duration, ramp, wall, cpu_pct_since(cpu0, wall), expected_kbps, min_pct, all_stats
    )


def format_summary(s: dict[str, Any]) -> str:
    fp, kb = s["first_packet_ms"], s["reader_kbps"]
    lines = [
        f"url                 {s['url']}",
        f"readers             {s['readers']} (connected {s['connected']}, playing {s['playing']}, "
        f"receiving {s['receiving']})",
        f"kept up             {s['kept_up']} ({100 * s['kept_up_ratio']:.1f}%): real time {s['realtime']}, "
        f">= {s['min_pct']:g}% of {s['expected_kbps']} kbit/s ({s['expected_from']}) {s['got_min_pct']}",
        f"reader kbit/s       min {kb['min']}  p5 {kb['p5']}  p50 {kb['p50']}  p95 {kb['p95']}",
        f"packets             {s['packets']} RTP, {s['rtcp_packets']} RTCP",
        f"throughput in       {s['mbit_s_in']} Mbit/s over {s['wall_s']} s",
        f"first packet ms     p50 {fp['p50']}  p95 {fp['p95']}  p99 {fp['p99']}",
        f"PLAY answered ms    p50 {s['play_ms']['p50']}  p95 {s['play_ms']['p95']}",
        f"stalls              {s['stalls']} in {s['readers_with_stall']} readers (max gap {s['max_gap_s']} s)",
        f"errors              {s['errors'] or 'none'}",
        f"load client CPU     {s['client_cpu_pct']}%",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rtspclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="rtsp://HOST:PORT/PATH")
    ap.add_argument("--readers", type=int, default=10, help="number of readers (default 10)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the last reader started")
    ap.add_argument("--ramp", type=float, default=0.0, help="readers started per second (0: all at once)")
    ap.add_argument("--expected-kbps", type=float, help="the stream's rate as a reader receives it")
    ap.add_argument(
        "--min-pct", type=float, default=DEFAULT_MIN_PCT, help="of the expected rate (default 90)"
    )
    ap.add_argument("--json", help="write the summary and per-reader stats to this file")
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--handshake-timeout", type=float, default=15.0, help="connect start to PLAY answered")
    ap.add_argument("--settle", type=float, help="seconds after the last start before the steady window")
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines (for run_rtsp)")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if args.readers < 1 or args.duration <= 0:
        ap.error("--readers must be >= 1 and --duration > 0")
    uv = prepare(args.no_uvloop)
    try:
        result = asyncio.run(
            run_rtsp_load(
                args.url,
                args.readers,
                args.duration,
                args.ramp,
                expected_kbps=args.expected_kbps,
                min_pct=args.min_pct,
                connect_timeout=args.connect_timeout,
                handshake_timeout=args.handshake_timeout,
                settle=args.settle,
                on_mark=marker(args.marks),
            )
        )
    except ValueError as exc:
        print(f"rtspclient: {exc}", file=sys.stderr)
        return 2
    print_and_save(result, format_summary, args.json, uvloop=uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
