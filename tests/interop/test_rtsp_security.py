"""RTSPS (RTSP over TLS) with ffmpeg on both ends, and RTSP credentials (Basic and Digest) handed
to the server's authorization hook, refused with 401 and a challenge when they do not match."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import streamhive
from streamhive.auth import AuthRequest
from streamhive.config import load_config
from tests.conftest import (
    FFPROBE,
    ffmpeg_publish_cmd,
    free_port,
    needs_ffmpeg,
    probe,
    record,
    run,
    self_signed_cert,
    terminate,
)
from tests.interop.test_rtsp import record_rtsp

pytestmark = [pytest.mark.interop, needs_ffmpeg]

RTSP_TCP = ("-f", "rtsp", "-rtsp_transport", "tcp")


async def wait_live(server: streamhive.Server, path: str) -> None:
    stream = await asyncio.wait_for(server.stream(path).wait_live(), 20)
    while len(stream.tracks) < 2:
        await asyncio.sleep(0.05)


async def test_rtsps_publish_and_read(make_server, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    server = make_server(
        rtsp_options=f"  rtsps:\n    listen: '127.0.0.1:{port}'\n    cert: '{cert}'\n    key: '{key}'\n"
    )
    url = f"rtsps://127.0.0.1:{port}/live/tls"
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(url, 15, muxer=RTSP_TCP))
    try:
        info = await asyncio.to_thread(server.wait_for_path, "live/tls")
        assert info["publisher"]["protocol"] == "rtsps"  # type: ignore[index]
        out = tmp_path / "tls.mkv"
        await record_rtsp(url, out, 3)
        # Another server pulls the same stream as an rtsps:// source (self-signed: not verified).
        edge = make_server(f"paths:\n  relay:\n    source: {url}\n")
        await asyncio.to_thread(edge.wait_for_path, "relay")
        pulled = tmp_path / "pulled.flv"
        await record(f"{edge.rtmp}/relay", pulled, 2)
    finally:
        await terminate(publisher)
    for path, frames in ((out, 50), (pulled, 30)):
        media = await probe(path)
        assert media["video"]["codec_name"] == "h264" and int(media["video"]["nb_read_frames"]) >= frames  # type: ignore[arg-type]
        assert media["audio"]["codec_name"] == "aac"


async def test_rtsp_credentials_reach_the_auth_hook(tmp_path: Path) -> None:
    """Publishing needs publisher:pub-secret, reading viewer:view-secret; ffmpeg answers the
    Digest challenge (the password never travels), Basic works through the same hook."""
    seen: list[tuple[str, str, str | None]] = []

    def check(request: AuthRequest) -> bool:
        seen.append((request.action, request.protocol, request.user))
        if request.protocol not in ("rtsp",):
            return True
        wanted = {"publish": ("publisher", "pub-secret"), "read": ("viewer", "view-secret")}[request.action]
        return request.user == wanted[0] and request.password_matches(wanted[1])

    rtsp, http, rtmp = free_port(), free_port(), free_port()
    config = load_config(
        text=f"rtsp:\n  listen: '127.0.0.1:{rtsp}'\n  rtp_port: 0\n  rtcp_port: 0\n"
        f"http:\n  listen: '127.0.0.1:{http}'\nrtmp:\n  listen: '127.0.0.1:{rtmp}'\n"
        f"webrtc:\n  listen: '127.0.0.1:{free_port()}'\n"
    )
    base = f"rtsp://127.0.0.1:{rtsp}/live/secure"
    assert FFPROBE is not None
    async with streamhive.Server(config) as server:
        server.authorize(check)
        refused = await run(
            [FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-i", base.replace("rtsp://", "rtsp://x:y@")]
        )
        assert refused[0] != 0
        publisher = await asyncio.create_subprocess_exec(
            *ffmpeg_publish_cmd(base.replace("rtsp://", "rtsp://publisher:pub-secret@"), 20, muxer=RTSP_TCP)
        )
        try:
            await wait_live(server, "live/secure")
            anonymous = await run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", base])
            assert anonymous[0] != 0 and "401" in anonymous[2], anonymous
            wrong = await run(
                [
                    FFPROBE,
                    "-v",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    base.replace("rtsp://", "rtsp://viewer:nope@"),
                ]
            )
            assert wrong[0] != 0 and "401" in wrong[2], wrong
            out = tmp_path / "viewer.mkv"
            await record_rtsp(base.replace("rtsp://", "rtsp://viewer:view-secret@"), out, 2)
        finally:
            await terminate(publisher)
    media = await probe(out)
    assert media["video"]["codec_name"] == "h264" and int(media["video"]["nb_read_frames"]) >= 30  # type: ignore[arg-type]
    assert ("publish", "rtsp", "publisher") in seen and ("read", "rtsp", "viewer") in seen


def test_basic_credentials_use_the_same_hook() -> None:
    request = AuthRequest("live/x", "read", "rtsp", "127.0.0.1:1", user="viewer", password="view-secret")
    assert request.password_matches("view-secret") and not request.password_matches("other")
