"""UDP packet loss on an RTSP publish: the stream recovers at each keyframe and nothing broken
reaches the players (the decoder reports no error), run in a network namespace of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_ffmpeg

pytestmark = [pytest.mark.interop, needs_ffmpeg]
SCENARIO = Path(__file__).with_name("loss_scenario.py")


@pytest.mark.skipif(
    not os.environ.get("CI") and (os.geteuid() != 0 or shutil.which("nft") is None),
    reason="needs root and nftables for a network namespace with packet loss",
)
def test_rtsp_udp_publish_with_5_percent_loss(tmp_path: Path) -> None:
    result = subprocess.run(
        ["unshare", "-n", sys.executable, str(SCENARIO), "--out", str(tmp_path), "--loss", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "packets" in report["dropped"] and " 0 bytes" not in report["dropped"], report["dropped"]
    video = report["video"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    # 8 s at 25 fps; with 5% of packets lost most GOPs lose a frame, so whole GOPs are skipped
    # until the next keyframe: fewer frames, but every one decodes.
    assert int(video["nb_read_frames"]) >= 30, report
    assert report["decode_errors"] == [], report["decode_errors"]
    assert report["server_exit"] == 0 and not report["traceback"]
