"""ffmpeg publishes over RTMP; ffmpeg and a WebSocket client read it back over RTMP, HTTP-FLV and
WS-FLV; ffprobe decodes what they received."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import (
    FFMPEG,
    RunningServer,
    ffmpeg_publish_cmd,
    needs_ffmpeg,
    probe,
    record,
    run,
    terminate,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


async def record_ws(url: str, out: Path, seconds: float) -> None:
    data = bytearray()
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            try:
                msg = await asyncio.wait_for(ws.receive(), deadline - loop.time())
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            data += msg.data
    out.write_bytes(bytes(data))


def check_av(info: dict[str, dict[str, object]], min_frames: int) -> None:
    video, audio = info["video"], info["audio"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert int(video["nb_read_frames"]) >= min_frames  # type: ignore[arg-type]
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 44100  # type: ignore[arg-type]
    assert int(audio["nb_read_frames"]) >= min_frames  # type: ignore[arg-type]


async def test_rtmp_publish_read_over_rtmp_httpflv_wsflv(server: RunningServer, tmp_path: Path) -> None:
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/cam1", 12))
    try:
        info = await asyncio.to_thread(server.wait_for_path, "live/cam1")
        assert info["publisher"]["protocol"] == "rtmp"  # type: ignore[index]
        assert {t["codec"] for t in info["tracks"]} == {"h264", "aac"}  # type: ignore[union-attr]
        video = next(t for t in info["tracks"] if t["kind"] == "video")  # type: ignore[union-attr]
        assert (video["width"], video["height"]) == (320, 240)
        files = {name: tmp_path / f"{name}.flv" for name in ("rtmp", "httpflv", "wsflv")}
        await asyncio.gather(
            record(f"{server.rtmp}/live/cam1", files["rtmp"], 4),
            record(f"{server.http}/live/cam1.flv", files["httpflv"], 4),
            record_ws(f"ws://127.0.0.1:{server.http_port}/live/cam1.flv", files["wsflv"], 4),
        )
        for path in files.values():
            info_av = await probe(path)
            check_av(info_av, min_frames=60)  # 4 s at 25 fps, a little slack for joins
        paths = server.api("/api/v1/paths")["items"]  # type: ignore[index]
        assert paths[0]["bytes_in"] > 0
        sessions = server.api("/api/v1/sessions")["items"]  # type: ignore[index]
        assert any(s["role"] == "publisher" for s in sessions)
    finally:
        await terminate(publisher)
    log = server.log()
    assert "session end" in log and "protocol=http-flv" in log and "protocol=ws-flv" in log


async def test_read_unknown_path_is_not_found(server: RunningServer, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/live/nothing.flv") as resp:
        assert resp.status == 404
    assert FFMPEG is not None
    rc, _, err = await run(
        [FFMPEG, "-hide_banner", "-i", f"{server.rtmp}/live/nothing", "-t", "1", "-f", "null", "-"], 20
    )
    assert rc != 0
    assert "StreamNotFound" in err or "not found" in err.lower(), err


async def test_second_publisher_is_refused(server: RunningServer, tmp_path: Path) -> None:
    first = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/one", 10))
    try:
        await asyncio.to_thread(server.wait_for_path, "live/one")
        rc, _, err = await run(ffmpeg_publish_cmd(f"{server.rtmp}/live/one", 3), 30)
        assert rc != 0, "a second publisher on a busy path must be refused"
        info = server.api("/api/v1/paths/live/one")
        assert info["publisher"]["id"]  # type: ignore[index]
        assert first.returncode is None, "the first publisher must carry on"
    finally:
        await terminate(first)
    assert "already has a publisher" in server.log()
