"""RTMPS: ffmpeg publishes over TLS on the second listener; a player reads it over plain RTMP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    RunningServer,
    ffmpeg_publish_cmd,
    free_port,
    needs_ffmpeg,
    probe,
    record,
    self_signed_cert,
    terminate,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


@pytest.fixture
def tls_server(tmp_path: Path, make_server: Callable[..., RunningServer]) -> tuple[RunningServer, int]:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    options = f"  rtmps:\n    listen: '127.0.0.1:{port}'\n    cert: '{cert}'\n    key: '{key}'\n"
    return make_server(rtmp_options=options), port


async def test_rtmps_publish(tls_server: tuple[RunningServer, int], tmp_path: Path) -> None:
    server, port = tls_server
    publisher = await asyncio.create_subprocess_exec(
        *ffmpeg_publish_cmd(f"rtmps://127.0.0.1:{port}/live/tls", 10)
    )
    try:
        info = await asyncio.to_thread(server.wait_for_path, "live/tls")
        assert info["publisher"]["protocol"] == "rtmps"  # type: ignore[index]
        out = tmp_path / "tls.flv"
        await record(f"{server.rtmp}/live/tls", out, 2)
        media = await probe(out)
        assert media["video"]["codec_name"] == "h264" and int(media["video"]["nb_read_frames"]) >= 40  # type: ignore[arg-type]
        assert media["audio"]["codec_name"] == "aac"
    finally:
        await terminate(publisher)
