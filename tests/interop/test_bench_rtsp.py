"""bench/run_rtsp.py end to end in a tiny configuration: 5 RTSP readers for 2 s, and 1 pulled camera.

Checks that the bench runs and that its readers (bench/rtspclient.py) received media; speed is
the bench's business, so nothing here looks at timings or CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_ffmpeg

pytestmark = [pytest.mark.interop, needs_ffmpeg]

ROOT = Path(__file__).resolve().parents[2]
GST_PEER = ROOT / "tests" / "peers" / "gst_rtsp_server.py"
READERS = 5


def gst_available() -> bool:
    if not Path("/usr/bin/python3").exists():
        return False
    return subprocess.run(["/usr/bin/python3", str(GST_PEER), "--check"], capture_output=True).returncode == 0


def test_rtsp_bench_tiny(tmp_path: Path) -> None:
    cameras = "1" if os.environ.get("CI") or gst_available() else "0"
    out = tmp_path / "rtsp.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "run_rtsp.py"), "--steps", str(READERS), "--duration", "2",
        "--calibrate-seconds", "0", "--baseline-seconds", "0.5", "--cameras", cameras, "--camera-seconds", "1",
        "--no-peer", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())

    (series,) = report["readers"]
    assert series["server"] == "streamhive"
    (step,) = series["steps"]
    s = step["summary"]
    assert s["readers"] == s["connected"] == s["playing"] == s["receiving"] == READERS, s
    assert s["errors"] == {}, s
    assert s["bytes"] > 0 and s["packets"] > 0, s
    assert s["min_reader_bytes"] > 0 and s["min_reader_packets"] > 0, s
    readers = json.loads((Path(report["work"]) / f"streamhive-{READERS}.json").read_text())["readers"]
    assert len(readers) == READERS
    for r in readers:
        assert r["medias"] == 2, r  # H.264 + AAC set up on interleaved 0-1 and 2-3
        assert r["bytes"] > 0 and r["packets"] > 0 and r["video_packets"] > 0, r
        assert r["media_s"] > 0 and r["first_packet_s"] is not None, r

    if cameras == "1":
        cams = report["cameras"]
        assert not cams.get("skipped"), cams
        (row,) = cams["steps"]
        assert row["cameras"] == 1 and row["frames_per_s_per_camera"] > 0, row
    assert not any("Traceback" in w for w in report["server_log_warnings"]), report["server_log_warnings"]
