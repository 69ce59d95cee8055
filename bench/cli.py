"""``streamhive bench``: load-test a live server from the command line.

    streamhive bench play rtmp://HOST:1935/live/cam1 --clients 2000 [--duration 30] [--ramp 200]
    streamhive bench play http://HOST:8080/live/cam1.flv --clients 500
    streamhive bench play ws://HOST:8080/live/cam1.flv --clients 500       (WS-FLV)
    streamhive bench play http://HOST:8080/live/cam1/index.m3u8 --clients 200 [--mode ll]
    streamhive bench play http://HOST:8080/live/cam1/whep --clients 100 [--ramp 50]   (WebRTC, WHEP)
    streamhive bench publish rtmp://HOST:1935/live/pub --publishers 20 [--file clip.flv]
    streamhive bench compare [--quick]     (bench/compare.py: streamhive vs nginx-rtmp vs NMS)
    streamhive bench profile               (bench/profile.py: py-spy flame graph of streamhive)

``play`` picks the client by URL: ``rtmp://``, ``http://...flv`` and ``ws://...flv`` use :mod:`bench.loadclient`,
``...m3u8`` uses :mod:`bench.hlsclient`, ``http://.../whep`` (or Janus's ``http://.../janus``) uses
:mod:`bench.webrtcclient`. A one-line progress display on stderr is refreshed every
second; the final summary goes to stdout, and ``--json`` / ``--markdown`` write a report.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import hlsclient, loadclient, publishclient, rtspclient, webrtcclient
from bench.loadclient import percentile


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


class Progress:
    """Prints one status line to stderr every second (``\\r``-rewritten on a terminal)."""

    def __init__(self, line: Callable[[float], str], stream: Any = None) -> None:
        self.line = line
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.last = time.monotonic()

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(1.0)
                self.show()
        except asyncio.CancelledError:
            self.show(final=True)
            raise

    def show(self, final: bool = False) -> None:
        if final and time.monotonic() - self.last < 0.5:
            if self.tty:
                self.stream.write("\n")
            return
        self.last = time.monotonic()
        text = f"[{time.monotonic() - self.t0:5.0f}s] {self.line(time.monotonic())}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class _Rate:
    def __init__(self) -> None:
        self.t, self.total = time.monotonic(), 0

    def mbit(self, total: int, now: float) -> float:
        dt_ = now - self.t
        rate = (total - self.total) * 8 / dt_ / 1e6 if dt_ > 0 else 0.0
        self.t, self.total = now, total
        return rate


def flv_line(stats: list[loadclient.PlayerStats], clients: int) -> Callable[[float], str]:
    rate = _Rate()

    def line(now: float) -> str:
        connected = receiving = rt = errors = 0
        first: list[float] = []
        total = 0
        for p in stats:
            total += p.bytes
            if p.connect_s is not None:
                connected += 1
            if p.error is not None:
                errors += 1
            if p.first_frame_s is not None:
                receiving += 1
                first.append(p.first_frame_s * 1000)
                wall = now - p.first_wall
                # real time so far: media received keeps up with the wall clock, no gap running
                if p.error is None and now - p.last_wall <= loadclient.STALL_S and p.max_gap_s <= 1.0:
                    media = p.media_ms / 1000 + 0.04
                    if wall < 2.0 or media >= loadclient.REALTIME_RATIO * (wall - (now - p.last_wall)):
                        rt += 1
        pct = 100 * rt / receiving if receiving else 0.0
        return (
            f"clients {connected}/{clients} connected, {receiving} receiving, real-time {pct:.1f}%, "
            f"{rate.mbit(total, now):.1f} Mbit/s, errors {errors}, first frame p50/p95 "
            f"{_ms(percentile(first, 50))}/{_ms(percentile(first, 95))} ms"
        )

    return line


def hls_line(stats: list[hlsclient.ViewerStats], viewers: int) -> Callable[[float], str]:
    rate = _Rate()

    def line(now: float) -> str:
        receiving = rt = errors = 0
        startup: list[float] = []
        total = 0
        for v in stats:
            total += v.bytes
            errors += sum(v.errors.values())
            if v.first_media is not None:
                receiving += 1
                if v.startup_s is not None:
                    startup.append(v.startup_s * 1000)
                wall = v.last_media - v.first_media
                if v.media_s >= hlsclient.REALTIME_RATIO * wall and now - v.last_media < 2 * 2.0 + 1:
                    rt += 1
        pct = 100 * rt / receiving if receiving else 0.0
        return (
            f"viewers {len(stats)}/{viewers} started, {receiving} receiving, real-time {pct:.1f}%, "
            f"{rate.mbit(total, now):.1f} Mbit/s, errors {errors}, first media p50/p95 "
            f"{_ms(percentile(startup, 50))}/{_ms(percentile(startup, 95))} ms"
        )

    return line


def publish_line(stats: list[publishclient.PublisherStats], publishers: int) -> Callable[[float], str]:
    rate = _Rate()

    def line(now: float) -> str:
        publishing = [p for p in stats if p.first_send is not None]
        errors = sum(1 for p in stats if p.error is not None)
        behind = sum(1 for p in publishing if p.max_behind_s > publishclient.MAX_BEHIND_S)
        start = [p.connect_s * 1000 for p in publishing if p.connect_s is not None]
        total = sum(p.bytes for p in stats)
        ok = len(publishing) - behind
        pct = 100 * ok / len(publishing) if publishing else 0.0
        return (
            f"publishers {len(publishing)}/{publishers} publishing, real-time {pct:.1f}%, "
            f"{rate.mbit(total, now):.1f} Mbit/s out, errors {errors}, publish start p50/p95 "
            f"{_ms(percentile(start, 50))}/{_ms(percentile(start, 95))} ms"
        )

    return line


def rtsp_line(stats: list[rtspclient.ReaderStats], readers: int) -> Callable[[float], str]:
    rate = _Rate()

    def line(now: float) -> str:
        receiving = sum(s.first_packet_s is not None for s in stats)
        errors = sum(s.error is not None for s in stats)
        first = [s.first_packet_s * 1000 for s in stats if s.first_packet_s is not None]
        total = sum(s.bytes for s in stats)
        return (
            f"readers {len(stats)}/{readers} started, {receiving} receiving, "
            f"{rate.mbit(total, now):.1f} Mbit/s, errors {errors}, first packet p50/p95 "
            f"{_ms(percentile(first, 50))}/{_ms(percentile(first, 95))} ms"
        )

    return line


def webrtc_line(stats: list[webrtcclient.ViewerStats], viewers: int) -> Callable[[float], str]:
    rate = _Rate()

    def line(now: float) -> str:
        connected = sum(s.dtls_s is not None for s in stats)
        receiving = sum(s.first_packet_s is not None for s in stats)
        errors = sum(s.error is not None for s in stats)
        frozen = sum(s.first_video > 0 and now - s.last_video > webrtcclient.FREEZE_S for s in stats)
        first = [s.first_packet_s * 1000 for s in stats if s.first_packet_s is not None]
        total = sum(s.bytes for s in stats)
        return (
            f"viewers {len(stats)}/{viewers} started, {connected} connected, {receiving} receiving, {frozen} frozen, "
            f"{rate.mbit(total, now):.1f} Mbit/s, errors {errors}, first packet p50/p95 "
            f"{_ms(percentile(first, 50))}/{_ms(percentile(first, 95))} ms"
        )

    return line


def kind_of(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.lower()
    if parts.scheme == "rtmp":
        return "rtmp"
    if parts.scheme == "rtsp":
        return "rtsp"
    if parts.scheme == "ws" and path.endswith(".flv"):
        return "ws-flv"
    if parts.scheme in ("http", "https"):
        if path.endswith(".m3u8"):
            return "hls"
        if path.rstrip("/").endswith(("/whep", "/janus")):
            return "webrtc"
        if path.endswith(".flv"):
            if parts.scheme == "https":
                raise ValueError("https:// FLV is not supported by the load client; use http://")
            return "http-flv"
    raise ValueError(
        f"cannot tell the protocol of {url!r}: rtmp://..., rtsp://..., http://....flv, ws://....flv, http://....m3u8, "
        "http://.../whep or http://.../janus"
    )


async def _with_progress(coro: Any, line: Callable[[float], str], quiet: bool) -> Any:
    progress = None if quiet else asyncio.create_task(Progress(line).run())
    try:
        return await coro
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)


async def play(args: argparse.Namespace) -> dict[str, Any]:
    kind = kind_of(args.url)
    if kind == "hls":
        vstats: list[hlsclient.ViewerStats] = []
        hres = await _with_progress(
            hlsclient.run_hls_load(
                args.url, args.clients, args.duration, args.mode, args.ramp, stats_sink=vstats
            ),
            hls_line(vstats, args.clients),
            args.quiet,
        )
        return {"kind": kind, "summary": hres.summary(), "text": hlsclient.format_summary(hres.summary())}
    if kind == "webrtc":
        wstats: list[webrtcclient.ViewerStats] = []
        wres = await _with_progress(
            webrtcclient.run_webrtc_load(args.url, args.clients, args.duration, args.ramp, stats_sink=wstats),
            webrtc_line(wstats, args.clients),
            args.quiet,
        )
        return {"kind": kind, "summary": wres.summary(), "text": webrtcclient.format_summary(wres.summary())}
    if kind == "rtsp":
        rstats: list[rtspclient.ReaderStats] = []
        rres = await _with_progress(
            rtspclient.run_rtsp_load(args.url, args.clients, args.duration, args.ramp, stats_sink=rstats),
            rtsp_line(rstats, args.clients),
            args.quiet,
        )
        return {"kind": kind, "summary": rres.summary(), "text": rtspclient.format_summary(rres.summary())}
    pstats: list[loadclient.PlayerStats] = []
    res = await _with_progress(
        loadclient.run_load(args.url, args.clients, args.duration, args.ramp, stats_sink=pstats),
        flv_line(pstats, args.clients),
        args.quiet,
    )
    return {"kind": kind, "summary": res.summary(), "text": loadclient.format_summary(res.summary())}


async def publish(args: argparse.Namespace) -> dict[str, Any]:
    clip = args.file or await asyncio.to_thread(publishclient.default_clip)
    stats: list[publishclient.PublisherStats] = []
    res = await _with_progress(
        publishclient.run_publish(
            args.url, args.publishers, args.duration, clip, args.ramp, stats_sink=stats
        ),
        publish_line(stats, args.publishers),
        args.quiet,
    )
    return {"kind": "publish", "summary": res.summary(), "text": publishclient.format_summary(res.summary())}


def markdown_report(command: str, report: dict[str, Any]) -> str:
    s = report["summary"]
    rows = []
    for key, value in s.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        rows.append(f"| {key} | {value} |")
    return "\n".join(
        [
            f"# streamhive bench {report['kind']} — {report['date']}",
            "",
            f"`{command}`",
            "",
            "| metric | value |",
            "|---|---|",
            *rows,
            "",
        ]
    )


def _run(coro: Any) -> Any:
    loadclient.prepare()
    return asyncio.run(coro)


def main(argv: Sequence[str] | None = None, prog: str = "streamhive bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description="Load-test a live media server (loopback or LAN).")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser(
        "play", help="N players of one stream (RTMP, RTSP, HTTP/WS-FLV, HLS or WebRTC, by URL)"
    )
    p.add_argument(
        "url",
        help="rtmp://HOST:PORT/APP/NAME, rtsp://HOST:PORT/PATH, http://HOST:PORT/PATH.flv, ws://HOST:PORT/PATH.flv, "
        ".../index.m3u8, http://HOST:PORT/PATH/whep (WHEP) or http://HOST:PORT/janus (Janus, mountpoint 1)",
    )
    p.add_argument("--clients", type=int, default=10, help="number of players (default 10)")
    p.add_argument("--mode", choices=("classic", "ll"), default="classic", help="HLS viewer mode")
    q = sub.add_parser("publish", help="N RTMP publishers of an FLV file, in real time")
    q.add_argument("url", help="rtmp://HOST:PORT/APP/NAME (NAME-0, NAME-1... with several publishers)")
    q.add_argument("--publishers", type=int, default=1)
    q.add_argument("--file", type=Path, help="FLV file (default: an ffmpeg testsrc clip, 600 kbit/s)")
    for sp in (p, q):
        sp.add_argument("--duration", type=float, default=30.0, help="seconds after the last one started")
        sp.add_argument("--ramp", type=float, default=0.0, help="started per second (0: all at once)")
        sp.add_argument("--json", type=Path, help="write the summary as JSON")
        sp.add_argument("--markdown", type=Path, help="write the summary as a Markdown table")
        sp.add_argument("--quiet", action="store_true", help="no progress line")
    c = sub.add_parser("compare", help="streamhive vs nginx-rtmp vs Node-Media-Server (bench/compare.py)")
    c.add_argument("rest", nargs=argparse.REMAINDER)
    f = sub.add_parser("profile", help="py-spy flame graph of streamhive under load (bench/profile.py)")
    f.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.action == "compare":
        from bench import compare

        return compare.main(args.rest)
    if args.action == "profile":
        from bench import profile

        return profile.main(args.rest)
    count = args.clients if args.action == "play" else args.publishers
    if count < 1 or args.duration <= 0:
        ap.error("the client count must be >= 1 and --duration > 0")
    try:
        report = _run(play(args) if args.action == "play" else publish(args))
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    report["date"] = dt.datetime.now().isoformat(timespec="seconds")
    command = " ".join([prog, *(argv if argv is not None else sys.argv[1:])])
    print(report.pop("text"), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": command, **report}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown_report(command, report))
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.cli"))
