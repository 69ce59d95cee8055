"""docs/library.md's example, run as a user would: embed the server, publish with ffmpeg, read Frames."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_publish_cmd, free_port, needs_ffmpeg, terminate

pytestmark = [pytest.mark.interop, needs_ffmpeg]
EXAMPLE = Path(__file__).parents[2] / "examples" / "frame_stats.py"


async def test_library_example_sees_frames() -> None:
    rtmp, http = free_port(), free_port()
    example = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--seconds", "3", "--rtmp", f"127.0.0.1:{rtmp}", "--http", f"127.0.0.1:{http}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert example.stdout is not None
    line = await asyncio.wait_for(example.stdout.readline(), 20)
    assert line.startswith(b"ready:"), line
    publisher = await asyncio.create_subprocess_exec(
        *ffmpeg_publish_cmd(f"rtmp://127.0.0.1:{rtmp}/live/cam1", 8)
    )
    try:
        out, _ = await asyncio.wait_for(example.communicate(), 30)
    finally:
        await terminate(publisher)
    text = out.decode()
    assert example.returncode == 0, text
    assert "publish live/cam1" in text
    assert "h264 320x240" in text
    done = text.strip().splitlines()[-1]
    assert done.startswith("done:") and int(done.split()[1]) >= 70, text  # 3 s at 25 fps
