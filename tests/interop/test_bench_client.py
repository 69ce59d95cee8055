"""bench/loadclient.py against the real server: it counts frames like ffprobe does, and sees stalls."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from bench.loadclient import LoadResult, run_load

from tests.conftest import FFMPEG, RunningServer, ffmpeg_publish_cmd, needs_ffmpeg, probe, terminate

pytestmark = [pytest.mark.interop, needs_ffmpeg]

FPS = 25


def frames_in_first(log: list[tuple[int, float]], media_ms: int) -> int:
    """Video frames whose timestamp is within ``media_ms`` of the player's first one."""
    first = log[0][0]
    return sum(1 for ts, _ in log if ts - first < media_ms)


async def test_load_client_counts_frames(server: RunningServer, tmp_path: Path) -> None:
    assert FFMPEG is not None
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/bench", 9))
    try:
        await asyncio.to_thread(server.wait_for_path, "live/bench")
        recording = tmp_path / "recorded.flv"
        recorder = await asyncio.create_subprocess_exec(
            FFMPEG, "-hide_banner", "-loglevel", "error", "-i", f"{server.rtmp}/live/bench",
            "-t", "4", "-c", "copy", "-y", str(recording),
        )  # fmt: skip
        rtmp, flv, wsflv = await asyncio.gather(
            run_load(f"{server.rtmp}/live/bench", 20, 4.0, frame_log=True),
            run_load(f"{server.http}/live/bench.flv", 20, 4.0, frame_log=True),
            run_load(f"ws://127.0.0.1:{server.http_port}/live/bench.flv", 10, 4.0, frame_log=True),
        )
        assert await asyncio.wait_for(recorder.wait(), 15) == 0
    finally:
        await terminate(publisher)
    recorded = int((await probe(recording))["video"]["nb_read_frames"])  # type: ignore[arg-type]
    assert recorded >= 0.9 * 4 * FPS, recorded

    result: LoadResult
    for result, clients in ((rtmp, 20), (flv, 20), (wsflv, 10)):
        summary = result.summary()
        assert summary["connected"] == summary["receiving"] == clients, summary
        assert summary["errors"] == {}, summary
        for p in result.players:
            assert p.frame_log is not None and p.frames == len(p.frame_log)
            # every frame of the media time received was counted, once (25 fps, 40 ms apart)
            assert abs(p.frames - FPS * p.media_s) <= 2, p.public()
            assert p.audio_frames > 0 and p.bytes > 0
            assert p.keyframes >= 3, p.public()  # 1 s GOP
            # over the same 4 s of media as ffmpeg's recording, the same count within 10%
            counted = frames_in_first(p.frame_log, 4000)
            assert abs(counted - recorded) <= 0.1 * recorded, (p.protocol, counted, recorded)


async def test_load_client_detects_a_stall(server: RunningServer) -> None:
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/stall", 12))
    try:
        await asyncio.to_thread(server.wait_for_path, "live/stall")

        async def pause_publisher() -> None:
            await asyncio.sleep(1.5)
            publisher.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(2.2)
            finally:
                publisher.send_signal(signal.SIGCONT)

        rtmp, flv, _ = await asyncio.gather(
            run_load(f"{server.rtmp}/live/stall", 3, 5.5),
            run_load(f"{server.http}/live/stall.flv", 3, 5.5),
            pause_publisher(),
        )
    finally:
        await terminate(publisher)
    for result in (rtmp, flv):
        for p in result.players:
            assert p.error is None, p.public()
            assert p.stalls >= 1 and p.max_gap_s > 1.0, p.public()
            assert not p.realtime
            assert p.frames > 2 * FPS  # it kept playing after the pause
