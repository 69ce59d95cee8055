"""Enhanced RTMP: PyAV's FFmpeg (8.x) publishes HEVC / AV1 with FourCC headers; readers get the
same codec back over RTMP and HTTP-FLV and decode it."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import av
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.interop

ENCODERS = [c for c in ("libx265", "libsvtav1") if c in av.codecs_available]
DECODED_NAME = {"libx265": "hevc", "libsvtav1": "av1"}


def publish(url: str, encoder: str, seconds: float, stop: threading.Event) -> None:
    """A real-time publisher, as an application using FFmpeg's libraries would write one."""
    with av.open(url, mode="w", format="flv") as out:
        stream = out.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        if encoder == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": "log-level=error:keyint=25"}
        else:
            stream.options = {"preset": "12", "g": "25"}
        start = time.monotonic()
        for i in range(int(seconds * 25)):
            if stop.is_set():
                break
            frame = _picture(i)
            frame.pts, frame.time_base = i * 40, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
            time.sleep(max(0.0, start + (i + 1) / 25 - time.monotonic()))
        for packet in stream.encode(None):
            out.mux(packet)


def _picture(i: int) -> av.VideoFrame:
    """A moving gradient, so every frame differs."""
    frame = av.VideoFrame(320, 240, "yuv420p")
    for plane, fill in zip(frame.planes, (None, 128, 128), strict=True):
        size = plane.line_size * plane.height
        if fill is None:
            row = bytes((x + i * 4) % 256 for x in range(plane.line_size))
            plane.update(row * plane.height)
        else:
            plane.update(bytes((fill,)) * size)
    return frame


def read(url: str, seconds: float) -> tuple[str, int, int, int]:
    """Decode ``seconds`` of the stream: (codec, width, height, decoded frames)."""
    with av.open(url, options={"rw_timeout": "10000000"}) as container:
        video = container.streams.video[0]
        count, first = 0, None
        for frame in container.decode(video):
            count += 1
            t = float(frame.time)
            first = t if first is None else first
            if t - first >= seconds:
                break
        return (
            video.codec_context.codec.canonical_name,
            video.codec_context.width,
            video.codec_context.height,
            count,
        )


@pytest.mark.parametrize("encoder", ENCODERS)
async def test_enhanced_rtmp_codec_round_trip(server: RunningServer, encoder: str) -> None:
    path = f"live/{DECODED_NAME[encoder]}"
    stop = threading.Event()
    publisher = asyncio.ensure_future(asyncio.to_thread(publish, f"{server.rtmp}/{path}", encoder, 10, stop))
    try:
        info = await asyncio.to_thread(server.wait_for_path, path, 1)
        track = info["tracks"][0]  # type: ignore[index]
        assert track["codec"] == {"libx265": "h265", "libsvtav1": "av1"}[encoder]
        assert (track["width"], track["height"]) == (320, 240)
        results = await asyncio.gather(
            asyncio.to_thread(read, f"{server.rtmp}/{path}", 2),
            asyncio.to_thread(read, f"{server.http}/{path}.flv", 2),
        )
        for codec, width, height, frames in results:
            assert (codec, width, height) == (DECODED_NAME[encoder], 320, 240)
            assert frames >= 45  # 2 s at 25 fps, from the first decodable picture on
    finally:
        stop.set()
        await publisher
