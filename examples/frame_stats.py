"""Embed streamhive in your own asyncio program and look at every frame of a live stream.

Run it, then publish: ffmpeg -re -f lavfi -i testsrc -c:v libx264 -f flv rtmp://127.0.0.1:1935/live/cam1
It prints one line per second of video with the frame rate and bitrate it saw, and stops after
``--seconds`` of media (or when the publisher leaves).
"""

from __future__ import annotations

import argparse
import asyncio

import streamhive
from streamhive.config import Config, HttpConfig, RtmpConfig


async def main(path: str, seconds: float, rtmp: str, http: str) -> None:
    config = Config(rtmp=RtmpConfig(listen=rtmp), http=HttpConfig(listen=http))
    async with streamhive.Server(config) as server:
        server.on("publish", lambda p, session: print(f"publish {p} from {session.remote}", flush=True))
        server.authorize(lambda request: ".." not in request.query)  # any Python callable can decide
        print(f"ready: rtmp://127.0.0.1:{server.rtmp_port}/{path}", flush=True)
        stream_view = server.stream(path)
        frames = size = 0
        first = last = None
        async for frame in stream_view.frames():
            track = stream_view.live.tracks[frame.track]  # type: ignore[union-attr]
            if track.kind != "video":
                continue
            first = frame.dts if first is None else first
            frames, size = frames + 1, size + frame.size
            if last is None or frame.dts - last >= 90000:
                elapsed = (frame.dts - first) / 90000
                print(f"t={elapsed:5.1f}s {track.codec} {track.width}x{track.height} frames={frames}", flush=True)
                last = frame.dts
            if (frame.dts - first) / 90000 >= seconds:
                break
        print(f"done: {frames} video frames, {size * 8 / max(seconds, 1e-9) / 1000:.0f} kbit/s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="live/cam1")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rtmp", default=":1935")
    parser.add_argument("--http", default=":8080")
    args = parser.parse_args()
    asyncio.run(main(args.path, args.seconds, args.rtmp, args.http))
