"""WebRTC sessions that go wrong on the client's side leave nothing running on the server:
offers never followed by ICE, silent ICE-TCP connections, streams that end while an offer waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.conftest import FFMPEG, RunningServer, publishing
from tests.interop.webrtc_clients import use_loopback

pytestmark = [pytest.mark.interop, pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")]


@pytest.fixture(autouse=True)
def _loopback() -> None:
    use_loopback()


async def _offer_only(url: str, kinds: tuple[str, ...] = ("video", "audio")) -> tuple[int, str]:
    """POST an offer and walk away: no ICE, no DTLS."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pc.localDescription.sdp, headers=headers) as r,
    ):
        body = await r.text()
    await pc.close()
    return r.status, body


def _threads(server: RunningServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/task"))


async def test_offers_without_ice_stop_their_transcoder_and_silent_ice_tcp_is_closed(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(webrtc_options="  handshake_timeout: 1\n")
    silent = socket.create_connection(("127.0.0.1", server.webrtc_port))
    async with publishing(server, "live/cam"):
        before = _threads(server)
        status, _ = await _offer_only(f"{server.http}/live/cam/whep")
        assert status == 201
        (path,) = (await asyncio.to_thread(server.api, "/api/v1/paths"))["items"]  # type: ignore[index]
        assert path["transcoding"] == ["opus"]
        await asyncio.sleep(7)  # the handshake timeout, then the view's linger
        (path,) = (await asyncio.to_thread(server.api, "/api/v1/paths"))["items"]  # type: ignore[index]
        assert path["transcoding"] == [], server.log()
        assert _threads(server) <= before, server.log()
        sessions = (await asyncio.to_thread(server.api, "/api/v1/sessions"))["items"]  # type: ignore[index]
        assert [s["protocol"] for s in sessions] == ["rtmp"], sessions
    silent.settimeout(1)
    with contextlib.suppress(ConnectionResetError):
        assert silent.recv(16) == b""  # closed by the server: no valid ICE check within the timeout
    silent.close()
    assert "transcoding stopped (no readers)" in server.log()


async def test_offer_for_a_stream_that_ends_meanwhile_and_audio_only_streams(server: RunningServer) -> None:
    assert FFMPEG is not None
    cmd = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "30",
        "-c:a", "libopus", "-f", "rtsp", f"{server.rtsp}/live/radio",
    ]  # fmt: skip
    for attempt in range(2):
        proc = await asyncio.create_subprocess_exec(*cmd)
        try:
            await asyncio.to_thread(server.wait_for_path, "live/radio", 1)
            if attempt == 0:
                # A just-started publisher's video may still come: the offer waits, and the
                # stream ends meanwhile.
                offer = asyncio.ensure_future(_offer_only(f"{server.http}/live/radio/whep", ("audio",)))
                await asyncio.sleep(0.3)
                proc.kill()
                status, body = await offer
                assert status == 404 and "ended" in body, body
            else:
                await asyncio.sleep(3.2)  # audio only, and live for a while: no waiting for video
                started = time.monotonic()
                status, body = await _offer_only(f"{server.http}/live/radio/whep", ("audio",))
                assert status == 201, body
                assert time.monotonic() - started < 1.5
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
