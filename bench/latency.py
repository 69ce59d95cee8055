"""Server-added latency: publish pre-encoded frames and time them through the server.

A small RTMP publisher (:class:`~streamhive.protocols.rtmp.client.RtmpClientConnection`) sends the
tags of an FLV file (made by ffmpeg, parsed with :class:`~streamhive.formats.flv.FlvDemuxer`) in
real time, looping with increasing timestamps, and records the monotonic time each video frame was
written to the socket. Players from :mod:`bench.loadclient`, on the same event loop, record when
each video timestamp arrives. The latency of a frame is ``receive - send``; frames a player got
from the GOP cache (sent before it joined) are left out.

    python -m bench.latency --rtmp rtmp://127.0.0.1:1935 --http http://127.0.0.1:8080 \\
        --file clip.flv --players 3 --seconds 8 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadclient import install_uvloop, percentile, raise_fd_limit, run_load
from streamhive.formats.flv import TAG_AUDIO, TAG_VIDEO, FlvDemuxer, FlvTag, parse_video_body
from streamhive.protocols.rtmp.client import RtmpClientConnection, Status, StreamCreated

FPS = 25


def make_clip(path: Path, seconds: float = 10.0, bitrate: str = "500k") -> None:
    """A 640x360 25 fps H.264 (1 s GOP, no B-frames) + AAC FLV clip made by ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to make the latency clip")
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=640x360:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(FPS),
         "-b:v", bitrate, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip


def load_tags(path: Path) -> list[FlvTag]:
    return [t for t in FlvDemuxer().feed(path.read_bytes()) if t.tag_type in (TAG_AUDIO, TAG_VIDEO)]


class Publisher(asyncio.Protocol):
    """Publishes ``tags`` on ``rtmp://host:port/app/name`` in real time; keeps per-frame send times."""

    def __init__(self, app: str, name: str, tc_url: str) -> None:
        self.app, self.name, self.tc_url = app, name, tc_url
        self.conn = RtmpClientConnection()
        self.started = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.sent: dict[int, float] = {}  # video timestamp -> monotonic send time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.conn.initial_bytes())  # type: ignore[attr-defined]
        self.conn.connect(self.app, tc_url=self.tc_url)
        self.conn.create_stream()

    def data_received(self, data: bytes) -> None:
        for ev in self.conn.receive_data(data):
            if isinstance(ev, StreamCreated):
                self.conn.publish(self.name)
            elif isinstance(ev, Status) and not self.started.done():
                if ev.code == "NetStream.Publish.Start":
                    self.started.set_result(None)
                elif ev.level == "error":
                    self.started.set_exception(RuntimeError(f"publish refused: {ev.code}"))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.started.done():
            self.started.set_exception(RuntimeError(f"publisher connection lost: {exc}"))

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    async def send_loop(self, tags: list[FlvTag], seconds: float) -> None:
        """Send the clip's tags paced by their timestamps, looping, for ``seconds``."""
        loop_ms = max(t.timestamp for t in tags) + 1000 // FPS
        t0 = time.monotonic()
        end = t0 + seconds
        lap = 0
        while True:
            for tag in tags:
                kind = "video" if tag.tag_type == TAG_VIDEO else "audio"
                is_config = tag.body[1:2] == b"\x00" if len(tag.body) > 1 else False
                if lap and is_config:
                    continue  # sequence headers only once
                ts = lap * loop_ms + tag.timestamp
                delay = t0 + ts / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() >= end:
                    return
                self.conn.send_media(kind, ts, tag.body)
                self._flush()
                if kind == "video" and parse_video_body(tag.body).kind == "frame":
                    self.sent[ts] = time.monotonic()
            lap += 1


async def measure_latency(
    rtmp_base: str,
    http_base: str,
    clip: Path,
    *,
    name: str = "live/latency",
    rtmp_players: int = 3,
    flv_players: int = 3,
    seconds: float = 8.0,
) -> dict[str, Any]:
    """Publish ``clip`` to ``name`` and measure receive - send per video frame for a few players."""
    from urllib.parse import urlsplit

    tags = load_tags(clip)
    parts = urlsplit(rtmp_base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1935
    app, _, stream = name.partition("/")
    loop = asyncio.get_running_loop()
    _, pub = await loop.create_connection(
        lambda: Publisher(app, stream, f"rtmp://{host}:{port}/{app}"), host, port
    )
    await asyncio.wait_for(pub.started, 10)
    sender = asyncio.create_task(pub.send_loop(tags, seconds + 3.0))
    try:
        await asyncio.sleep(1.5)  # let the stream (and its GOP cache) exist
        runs = []
        if rtmp_players:
            runs.append(run_load(f"{rtmp_base}/{name}", rtmp_players, seconds, frame_log=True))
        if flv_players:
            runs.append(run_load(f"{http_base}/{name}.flv", flv_players, seconds, frame_log=True))
        results = await asyncio.gather(*runs)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if pub.transport is not None:
            pub.transport.close()
    out: dict[str, Any] = {"seconds": seconds, "frames_sent": len(pub.sent)}
    for result in results:
        samples: list[float] = []
        missing = 0
        for p in result.players:
            if not p.frame_log:
                continue
            joined = p.started_at + (p.first_frame_s or 0.0)
            for ts, received in p.frame_log:
                sent = pub.sent.get(ts)
                if sent is None:
                    missing += 1
                elif sent >= joined:  # not from the GOP cache
                    samples.append((received - sent) * 1000)
        proto = result.players[0].protocol if result.players else "?"
        out[proto] = {
            "players": result.clients,
            "samples": len(samples),
            "unmatched": missing,
            "p50_ms": _r(percentile(samples, 50)),
            "p99_ms": _r(percentile(samples, 99)),
            "max_ms": _r(max(samples, default=None)),
            "errors": result.summary()["errors"],
        }
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtmp", required=True, help="rtmp://HOST:PORT")
    ap.add_argument("--http", required=True, help="http://HOST:PORT")
    ap.add_argument("--file", type=Path, help="FLV clip to publish (made with ffmpeg when missing)")
    ap.add_argument("--name", default="live/latency")
    ap.add_argument("--players", type=int, default=3, help="players per protocol")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    clip = args.file or Path("latency-clip.flv")
    if not clip.exists():
        make_clip(clip)
    raise_fd_limit()
    install_uvloop()
    result = asyncio.run(
        measure_latency(
            args.rtmp.rstrip("/"), args.http.rstrip("/"), clip, name=args.name,
            rtmp_players=args.players, flv_players=args.players, seconds=args.seconds,
        )
    )  # fmt: skip
    print(json.dumps(result, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
