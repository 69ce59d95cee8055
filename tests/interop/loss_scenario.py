"""RTP over UDP with packet loss, run inside its own network namespace (``unshare -n``).

ffmpeg publishes H.264+AAC over RTSP/UDP to streamhive while nftables drops a share of the UDP
datagrams arriving at the server's RTP port; an ffmpeg player records the path over RTMP. Prints
one JSON line: what the player decoded, the decoder's error lines, and the server's exit status.
Run by test_rtsp_loss.py; it needs root (network namespace, nftables), hence its own process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import FFMPEG, FFPROBE, ffmpeg_publish_cmd, start_server, stop_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--loss", type=int, default=5, help="percent of RTP datagrams dropped")
    args = parser.parse_args()
    assert FFMPEG is not None and FFPROBE is not None
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = start_server(args.out, rtsp_options="  rtp_port: 8000\n  rtcp_port: 8001\n")
    nft = (
        "add table inet lossy\n"
        "add chain inet lossy input { type filter hook input priority 0; }\n"
        f"add rule inet lossy input udp dport 8000 numgen random mod 100 < {args.loss} counter drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=nft.encode(), check=True)
    publisher = subprocess.Popen(
        ffmpeg_publish_cmd(f"{server.rtsp}/live/lossy", 20, muxer=("-f", "rtsp", "-rtsp_transport", "udp")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server.wait_for_path("live/lossy")
        out = args.out / "player.flv"
        subprocess.run(
            [
                FFMPEG,
                "-v",
                "error",
                "-y",
                "-i",
                f"{server.rtmp}/live/lossy",
                "-t",
                "8",
                "-c",
                "copy",
                str(out),
            ],
            check=True,
            timeout=60,
        )
        paths = server.api("/api/v1/paths")
    finally:
        publisher.kill()
        publisher.wait()
    time.sleep(0.5)
    stop_server(server)
    decoded = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    counters = subprocess.run(
        ["nft", "list", "table", "inet", "lossy"], capture_output=True, text=True
    ).stdout
    print(
        json.dumps(
            {
                "video": json.loads(decoded.stdout)["streams"][0],
                "decode_errors": [line for line in decoded.stderr.splitlines() if line.strip()],
                "server_exit": server.process.returncode,
                "traceback": "Traceback" in server.log(),
                "dropped": counters,
                "paths": paths,
            }
        )
    )


if __name__ == "__main__":
    main()
