"""bench/run_webrtc.py end to end in a tiny configuration: 3 WHEP viewers of streamhive for 3 s (and
3 Janus viewers when ``janus`` is installed: it is a benchmark peer, not a test dependency).

Checks that the bench runs and that its viewers (bench/webrtcclient.py) got through ICE, DTLS and
SRTP to media; speed is the bench's business, so nothing here looks at timings or CPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_ffmpeg

pytestmark = [pytest.mark.interop, needs_ffmpeg]

ROOT = Path(__file__).resolve().parents[2]
VIEWERS = 3


def test_webrtc_bench_tiny(tmp_path: Path) -> None:
    servers = "streamhive,janus" if shutil.which("janus") else "streamhive"
    out = tmp_path / "webrtc.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "run_webrtc.py"), "--servers", servers, "--steps", str(VIEWERS),
        "--duration", "3", "--calibrate-seconds", "0", "--baseline-seconds", "0.5", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["server"] for r in report["servers"]] == servers.split(","), report["servers"]
    for res in report["servers"]:
        assert "error" not in res, res
        (step,) = res["steps"]
        s = step["summary"]
        assert s["viewers"] == s["signalled"] == s["dtls_connected"] == s["receiving"] == VIEWERS, s
        assert s["errors"] == {} and s["srtp_errors"] == 0, s
        assert s["packets"] > 0 and s["verified"] > 0, s
        viewers = json.loads((Path(report["work"]) / f"{res['server']}-{VIEWERS}.json").read_text())[
            "viewers"
        ]
        for v in viewers:
            assert v["video"]["packets"] > 0 and v["audio"]["packets"] > 0, v
            assert v["first_packet_s"] is not None and v["media_s"] > 0, v
