"""``streamhive bench`` end to end on loopback (small counts, a few seconds), and the HLS load client."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from bench.hlsclient import run_hls_load

from streamhive import benchcli
from tests.conftest import RunningServer, ffmpeg_publish_cmd, needs_ffmpeg, terminate

pytestmark = [pytest.mark.interop, needs_ffmpeg]

ROOT = Path(__file__).resolve().parents[2]
STREAMHIVE = Path(sys.executable).parent / "streamhive"


async def test_hls_client_viewers(server: RunningServer) -> None:
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/hlsbench", 12))
    try:
        await asyncio.to_thread(server.wait_for_path, "live/hlsbench")
        result = await run_hls_load(f"{server.http}/live/hlsbench/index.m3u8", 10, 6.0)
    finally:
        await terminate(publisher)
    summary = result.summary()
    assert summary["viewers"] == summary["receiving"] == 10, summary
    assert summary["errors"] == {}, summary
    for v in result.stats:
        assert v.playlists >= 2 and v.segments >= 2, v.public()  # it followed the live playlist
        assert v.bytes > 0 and v.media_s > 0 and v.startup_s is not None, v.public()


async def _cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    cmd = [str(STREAMHIVE)] if STREAMHIVE.exists() else [sys.executable, "-m", "streamhive"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "bench", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            await terminate(proc)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_bench_publish_and_play_end_to_end(server: RunningServer, tmp_path: Path) -> None:
    """``bench publish`` feeds two streams; ``bench play`` watches one over RTMP and HTTP-FLV."""
    publish = asyncio.create_task(
        _cli(
            "publish",
            f"{server.rtmp}/live/clibench",
            "--publishers",
            "2",
            "--duration",
            "7",
            "--json",
            str(tmp_path / "pub.json"),
        )  # fmt: skip
    )
    await asyncio.to_thread(server.wait_for_path, "live/clibench-0", 2, 20.0)
    await asyncio.to_thread(server.wait_for_path, "live/clibench-1", 2, 20.0)
    rtmp, flv = await asyncio.gather(
        _cli("play", f"{server.rtmp}/live/clibench-0", "--clients", "5", "--duration", "3",
             "--json", str(tmp_path / "rtmp.json"), "--markdown", str(tmp_path / "rtmp.md")),
        _cli("play", f"{server.http}/live/clibench-1.flv", "--clients", "5", "--duration", "3",
             "--json", str(tmp_path / "flv.json")),
    )  # fmt: skip
    pub = await publish
    for code, out, err in (rtmp, flv, pub):
        assert code == 0, (out, err)
    # the progress line, refreshed every second on stderr, then the summary on stdout
    assert "clients 5/5 connected, 5 receiving" in rtmp[2], rtmp[2]
    assert "clients 5/5 connected, 5 receiving" in flv[2], flv[2]
    assert "publishers 2/2 publishing" in pub[2], pub[2]
    assert "real-time clients" in rtmp[1]
    for name, kind in (("rtmp", "rtmp"), ("flv", "http-flv")):
        report = json.loads((tmp_path / f"{name}.json").read_text())
        s = report["summary"]
        assert report["kind"] == kind and report["command"].startswith("streamhive bench play")
        assert s["connected"] == s["receiving"] == 5 and s["errors"] == {}, s
        assert s["frames"] > 0 and s["audio_frames"] > 0 and s["first_frame_ms"]["p50"] is not None, s
    assert "| receiving | 5 |" in (tmp_path / "rtmp.md").read_text()
    p = json.loads((tmp_path / "pub.json").read_text())["summary"]
    assert p["publishing"] == 2 and p["errors"] == {} and p["bytes"] > 0, p


async def test_bench_play_rejects_an_unknown_url() -> None:
    code, _, err = await _cli("play", "ftp://127.0.0.1/x", "--duration", "1")
    assert code == 2 and "cannot tell the protocol" in err, err


def test_bench_outside_a_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(benchcli, "find_checkout", lambda: None)
    assert benchcli.main(["play", "rtmp://127.0.0.1/live/x"]) == 2
    assert "streamhive bench needs the bench/ folder of a source checkout" in capsys.readouterr().err
