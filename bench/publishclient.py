"""Publish load: N RTMP publishers in one asyncio process, each sending a pre-encoded FLV in real time.

Each publisher is :class:`bench.latency.Publisher` (``RtmpClientConnection``: connect,
createStream, publish) sending the audio and video tags of an FLV file (parsed once with
``FlvDemuxer``) paced by their timestamps, looping with increasing timestamps, on its own stream
name. Like a real encoder it does not queue without bound: while more than ``MAX_BUFFER`` bytes
wait in its socket buffer (the server is not reading fast enough) it waits. Per publisher it
records the media time sent against the wall time, how far behind its own schedule it fell
(``max_behind_s``) and errors. A publisher is **real time** when it sent at least 98% of the
media time of its wall time and never fell more than 1 s behind.

    python -m bench.publishclient rtmp://127.0.0.1:1935/live/pub --publishers 20 --duration 20 \\
        [--file clip.flv] [--ramp 10] [--json out.json]

With one publisher it publishes to the URL's stream name; with more, to ``NAME-0``, ``NAME-1``...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.latency import FPS, Publisher, load_tags, make_clip
from bench.loadclient import (
    cpu_pct_since,
    marker,
    percentiles,
    prepare,
    print_and_save,
    ramp_wait,
    rounded,
    steady_then_end,
)
from streamhive.formats.flv import TAG_VIDEO, FlvTag

REALTIME_RATIO = 0.98
MAX_BEHIND_S = 1.0
MAX_BUFFER = 256 * 1024  # bytes queued in the socket before the publisher waits for the server


@dataclass(slots=True)
class PublisherStats:
    index: int
    name: str
    started_at: float = 0.0
    connect_s: float | None = None  # connect start -> NetStream.Publish.Start
    first_send: float | None = None
    media_ms: int = 0  # timestamp of the last tag sent (from the first)
    bytes: int = 0
    tags: int = 0
    wall_s: float = 0.0
    max_behind_s: float = 0.0
    waits: int = 0  # times it waited for the socket buffer to drain
    error: str | None = None
    realtime: bool = False

    @property
    def media_s(self) -> float:
        return self.media_ms / 1000

    def finish(self, end: float) -> None:
        if self.first_send is None:
            if self.error is None:
                self.error = "not-publishing"
            return
        self.wall_s = end - self.first_send
        self.realtime = (
            self.error is None
            and self.media_s + 1 / FPS >= REALTIME_RATIO * self.wall_s
            and self.max_behind_s <= MAX_BEHIND_S
        )

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("started_at")
        d.pop("first_send")
        d["media_s"] = round(self.media_s, 3)
        d["wall_s"] = round(self.wall_s, 3)
        d["max_behind_s"] = round(self.max_behind_s, 3)
        return d


class _LoadPublisher(Publisher):
    """The latency probe's publisher, with connection-loss bookkeeping."""

    def __init__(self, stats: PublisherStats, app: str, name: str, tc_url: str) -> None:
        super().__init__(app, name, tc_url)
        self.stats = stats
        self.stopping = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.error is None and not self.stopping:
            self.stats.error = "closed-by-server" if exc is None else f"reset:{type(exc).__name__}"
        super().connection_lost(exc)


async def _publish_one(
    stats: PublisherStats, host: str, port: int, app: str, stream: str, tags: list[FlvTag], end: float
) -> None:
    loop = asyncio.get_running_loop()
    stats.started_at = time.monotonic()
    pub: _LoadPublisher | None = None
    try:
        _, pub = await asyncio.wait_for(
            loop.create_connection(
                lambda: _LoadPublisher(stats, app, stream, f"rtmp://{host}:{port}/{app}"), host, port
            ),
            10,
        )
        await asyncio.wait_for(pub.started, 10)
    except TimeoutError:
        stats.error = stats.error or "connect-timeout"
    except ConnectionRefusedError:
        stats.error = "connect-refused"
    except (OSError, RuntimeError) as exc:
        stats.error = stats.error or f"publish-{type(exc).__name__}"
    if stats.error is not None or pub is None:
        if pub is not None and pub.transport is not None:
            pub.transport.abort()
        return
    stats.connect_s = time.monotonic() - stats.started_at
    transport = pub.transport
    assert transport is not None
    loop_ms = max(t.timestamp for t in tags) + 1000 // FPS
    first_ts = tags[0].timestamp
    t0 = time.monotonic()
    stats.first_send = t0
    lap = 0
    try:
        while True:
            for tag in tags:
                if lap and tag.body[1:2] == b"\x00" and len(tag.body) > 1:
                    continue  # sequence headers only once
                ts = lap * loop_ms + tag.timestamp
                due = t0 + (ts - first_ts) / 1000
                now = time.monotonic()
                if now >= end or stats.error is not None or transport.is_closing():
                    return
                if due > now:
                    await asyncio.sleep(due - now)
                while transport.get_write_buffer_size() > MAX_BUFFER:
                    stats.waits += 1
                    await asyncio.sleep(0.01)
                    if time.monotonic() >= end or transport.is_closing():
                        return
                behind = time.monotonic() - due
                if behind > stats.max_behind_s:
                    stats.max_behind_s = behind
                pub.conn.send_media("video" if tag.tag_type == TAG_VIDEO else "audio", ts, tag.body)
                out = pub.conn.data_to_send()
                if out:
                    transport.write(out)
                    stats.bytes += len(out)
                stats.tags += 1
                stats.media_ms = ts - first_ts
            lap += 1
    finally:
        pub.stopping = True
        transport.abort()


@dataclass
class PublishResult:
    url: str
    publishers: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    stats: list[PublisherStats] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ps = self.stats
        publishing = [p for p in ps if p.connect_s is not None]
        realtime = [p for p in ps if p.realtime]
        connect = [p.connect_s * 1000 for p in publishing if p.connect_s is not None]
        behind = [p.max_behind_s * 1000 for p in publishing]
        total = sum(p.bytes for p in ps)

        return {
            "url": self.url,
            "publishers": self.publishers,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "publishing": len(publishing),
            "realtime": len(realtime),
            "realtime_ratio": round(len(realtime) / self.publishers, 4) if self.publishers else 0.0,
            "bytes": total,
            "mbit_s_out": round(total * 8 / self.wall_s / 1e6, 2) if self.wall_s else 0.0,
            "publish_start_ms": percentiles(connect, 50, 95),
            "max_behind_ms": {**percentiles(behind, 50), "max": rounded(max(behind, default=None))},
            "waits": sum(p.waits for p in ps),
            "errors": dict(Counter(p.error for p in ps if p.error is not None)),
            "client_cpu_pct": round(self.client_cpu_pct, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "publishers": [p.public() for p in self.stats]}


def stream_names(name: str, publishers: int) -> list[str]:
    return [name] if publishers == 1 else [f"{name}-{i}" for i in range(publishers)]


async def run_publish(
    url: str,
    publishers: int,
    duration: float,
    clip: Path,
    ramp: float = 0.0,
    *,
    on_mark: Callable[[str], None] | None = None,
    stats_sink: list[PublisherStats] | None = None,
) -> PublishResult:
    """``publishers`` RTMP publishers of ``clip`` to ``url`` (rtmp://HOST:PORT/APP/NAME), started at
    ``ramp`` per second (0: all at once), for ``duration`` s after the last one started."""
    parts = urlsplit(url)
    if parts.scheme != "rtmp":
        raise ValueError(f"publish load needs an rtmp:// URL, not {url!r}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 1935
    app, _, name = parts.path.lstrip("/").partition("/")
    if not app or not name:
        raise ValueError(f"{url!r}: expected rtmp://HOST:PORT/APP/NAME")
    tags = load_tags(clip)
    if not tags:
        raise ValueError(f"{clip}: no audio or video tags")
    ramp_s = publishers / ramp if ramp > 0 else 0.0
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + ramp_s + duration
    all_stats: list[PublisherStats] = []
    tasks: list[asyncio.Task[None]] = []
    for i, stream in enumerate(stream_names(name, publishers)):
        await ramp_wait(t0, i, ramp)
        stats = PublisherStats(i, f"{app}/{stream}")
        all_stats.append(stats)
        if stats_sink is not None:
            stats_sink.append(stats)
        tasks.append(asyncio.create_task(_publish_one(stats, host, port, app, stream, tags, end)))
    stop_at = await steady_then_end(t0, ramp_s, min(1.0, duration / 4), end, on_mark)
    await asyncio.wait(tasks, timeout=5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for stats in all_stats:
        stats.finish(stop_at)
    wall = stop_at - t0
    return PublishResult(url, publishers, duration, ramp, wall, cpu_pct_since(cpu0, wall), all_stats)


def default_clip() -> Path:
    """The benchmark clip (640x360 25 fps H.264 ~500 kbps + AAC 64 kbps, 1 s GOP), made once."""
    clip = Path(tempfile.gettempdir()) / "streamhive-bench-clip.flv"
    if not clip.exists():
        tmp = clip.with_suffix(f".{os.getpid()}.flv")
        make_clip(tmp, 10.0)
        tmp.replace(clip)
    return clip


def format_summary(s: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"url                 {s['url']}",
            f"publishers          {s['publishers']} (publishing {s['publishing']})",
            f"real-time           {s['realtime']} ({100 * s['realtime_ratio']:.1f}%)",
            f"throughput out      {s['mbit_s_out']} Mbit/s over {s['wall_s']} s",
            f"publish start ms    p50 {s['publish_start_ms']['p50']}  p95 {s['publish_start_ms']['p95']}",
            f"max behind ms       p50 {s['max_behind_ms']['p50']}  max {s['max_behind_ms']['max']} "
            f"({s['waits']} waits for the server to read)",
            f"errors              {s['errors'] or 'none'}",
            f"load client CPU     {s['client_cpu_pct']}%",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.publishclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="rtmp://HOST:PORT/APP/NAME")
    ap.add_argument("--publishers", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the last publisher started")
    ap.add_argument("--ramp", type=float, default=0.0, help="publishers started per second (0: all at once)")
    ap.add_argument("--file", type=Path, help="FLV file to publish (default: a made ffmpeg testsrc clip)")
    ap.add_argument("--json", help="write the summary and per-publisher stats to this file")
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines")
    args = ap.parse_args(argv)
    if args.publishers < 1 or args.duration <= 0:
        ap.error("--publishers must be >= 1 and --duration > 0")
    prepare()
    clip = args.file or default_clip()
    result = asyncio.run(
        run_publish(args.url, args.publishers, args.duration, clip, args.ramp, on_mark=marker(args.marks))
    )
    print_and_save(result, format_summary, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
