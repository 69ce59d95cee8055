"""A reader that stops reading is bounded: it skips GOPs, is then disconnected, and neither the
publisher nor a normal reader notice."""

from __future__ import annotations

import asyncio
import re
import socket
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
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


@pytest.fixture
def tight_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server("path_defaults:\n  reader_backlog_bytes: 65536\n  reader_max_lag: 2\n")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def metric(server: RunningServer, name: str) -> float:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def test_stalled_reader_is_bounded_and_does_not_delay_others(
    tight_server: RunningServer, tmp_path: Path
) -> None:
    server = tight_server
    # ~6 Mbit/s of noise: enough to fill the kernel's socket buffers within a few seconds.
    noisy = ("-vf", "noise=alls=40:allf=t", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "1M")
    cmd = ffmpeg_publish_cmd(f"{server.rtmp}/live/big", 20, size="640x480", extra=noisy)
    publisher = await asyncio.create_subprocess_exec(*cmd)
    stalled = socket.socket()
    try:
        await asyncio.to_thread(server.wait_for_path, "live/big")
        baseline = rss_kib(server.process.pid)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.http_port))
        stalled.sendall(b"GET /live/big.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stalled.recv(100).startswith(b"HTTP/1.1 200")
        # ...and never reads again. A normal player meanwhile gets every frame in real time.
        out = tmp_path / "normal.flv"
        await record(f"{server.http}/live/big.flv", out, 6)
        info = await probe(out)
        assert int(info["video"]["nb_read_frames"]) >= 140  # type: ignore[arg-type]  # 6 s at 25 fps
        for _ in range(50):
            if metric(server, "streamhive_slow_readers_disconnected_total") >= 1:
                break
            await asyncio.sleep(0.2)
        assert metric(server, "streamhive_slow_readers_disconnected_total") == 1
        assert metric(server, "streamhive_dropped_frames_total") > 0
        assert rss_kib(server.process.pid) - baseline < 64 * 1024, "server memory grew with a stalled reader"
        assert publisher.returncode is None, "the publisher must not notice"
    finally:
        stalled.close()
        await terminate(publisher)
    assert "reason=slow reader: behind for more than 2s" in server.log()
