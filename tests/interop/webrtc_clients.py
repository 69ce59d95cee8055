"""aiortc as an independent WebRTC client: WHIP publisher and WHEP player for the interop tests.

aioice leaves 127.0.0.1 out when gathering host candidates; the tests run on loopback (or in a
network namespace with nothing else), so its address lookup is patched to loopback.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack


def use_loopback() -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]


class PatternVideo(VideoStreamTrack):
    """Frames with a moving gradient at the track's 30 fps pacing (an encoder has work to do)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height, self.count = width, height, 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = self.count * 4
        self.count += 1
        row = bytes((x + shift) & 0xFF for x in range(frame.planes[0].line_size))
        frame.planes[0].update(row * self.height)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class SineAudio(AudioStreamTrack):
    """A 440 Hz tone in 20 ms frames at 48 kHz, paced in real time."""

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.time()
        n, first = 960, self.samples
        self.samples += n
        await asyncio.sleep(max(0.0, self.start + first / 48000 - time.time()))
        tone = array.array(
            "h", (int(8000 * math.sin(2 * math.pi * 440 * (first + i) / 48000)) for i in range(n))
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(tone.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = 48000, first, fractions.Fraction(1, 48000)
        return frame


def prefer(pc: RTCPeerConnection, kind: str, mime: str) -> None:
    for transceiver in pc.getTransceivers():
        if transceiver.kind == kind:
            codecs = RTCRtpSender.getCapabilities(kind).codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == mime.lower()])


async def exchange(
    pc: RTCPeerConnection, url: str, token: str | None = None
) -> tuple[int, str, dict[str, str]]:
    """POST our offer; on 201 apply the answer. Returns (status, body, headers)."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pc.localDescription.sdp, headers=headers) as r,
    ):
        body = await r.text()
        if r.status == 201:
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        return r.status, body, dict(r.headers)


@dataclass
class Received:
    """What a WHEP player decoded."""

    video_frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    audio_samples: int = 0
    audio_rates: set[int] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def _consume(track: MediaStreamTrack, got: Received) -> None:
    with contextlib.suppress(Exception):  # MediaStreamError when the track ends
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                got.video_frames += 1
                got.sizes.add((frame.width, frame.height))
            else:
                got.audio_samples += frame.samples
                got.audio_rates.add(frame.sample_rate)


@contextlib.asynccontextmanager
async def whip_publish(
    url: str, video: bool = True, audio: bool = True, codec: str = "video/H264", token: str | None = None
) -> AsyncIterator[RTCPeerConnection]:
    """An aiortc publisher with a test pattern and a tone, live inside the block."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if video:
            pc.addTransceiver(PatternVideo(), direction="sendonly")
            prefer(pc, "video", codec)
        if audio:
            pc.addTransceiver(SineAudio(), direction="sendonly")
        status, body, _headers = await exchange(pc, url, token)
        assert status == 201, f"WHIP answered {status}: {body}"
        yield pc
    finally:
        await pc.close()


@contextlib.asynccontextmanager
async def whep_play(url: str, token: str | None = None) -> AsyncIterator[Received]:
    """An aiortc player decoding what it gets (counted in the yielded Received)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = Received()
    pc.on("track", lambda track: got.tasks.append(asyncio.ensure_future(_consume(track, got))))
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        status, body, _headers = await exchange(pc, url, token)
        assert status == 201, f"WHEP answered {status}: {body}"
        yield got
    finally:
        await pc.close()
        for task in got.tasks:
            task.cancel()
