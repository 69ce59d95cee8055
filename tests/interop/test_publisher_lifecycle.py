"""A publisher that comes back within the grace period: the player carries on, with monotonic
timestamps. And a session kicked through the API is closed."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    RunningServer,
    ffmpeg_publish_cmd,
    needs_ffmpeg,
    probe,
    record,
    terminate,
    video_dts,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


@pytest.fixture
def grace_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server("path_defaults:\n  publisher_grace: 5\n")


async def test_player_survives_publisher_restart_within_grace(
    grace_server: RunningServer, tmp_path: Path
) -> None:
    server = grace_server
    url = f"{server.rtmp}/live/re"
    first = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(url, 4))
    out = tmp_path / "player.flv"
    second: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(server.wait_for_path, "live/re")
        player = asyncio.ensure_future(record(f"{server.http}/live/re.flv", out, 7))
        assert await first.wait() == 0  # the first publisher ends...
        await asyncio.sleep(1)
        second = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(url, 8))  # ...another takes over
        await player
    finally:
        await terminate(first)
        if second is not None:
            await terminate(second)
    media = await probe(out)
    assert int(media["video"]["nb_read_frames"]) >= 140  # type: ignore[arg-type]  # ~7 s, minus the gap
    dts = await video_dts(out)
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False)), "timestamps must stay monotonic"
    assert "reason=publisher left" not in server.log()


async def test_kick_session_through_api(server: RunningServer) -> None:
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/kick", 30))
    try:
        info = await asyncio.to_thread(server.wait_for_path, "live/kick")
        session_id = info["publisher"]["id"]  # type: ignore[index]
        request = urllib.request.Request(f"{server.http}/api/v1/sessions/{session_id}", method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read()) == {"kicked": session_id}
        assert await asyncio.wait_for(publisher.wait(), 10) != 0  # ffmpeg sees its connection closed
        assert server.api("/api/v1/paths")["count"] == 0  # type: ignore[index]
    finally:
        await terminate(publisher)
    assert "reason=kicked through the API" in server.log()
