"""Shared fixtures: free ports, a real `streamhive serve` process, and an ffmpeg test publisher."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None or (FFPROBE is None and not os.environ.get("CI")),
    reason="ffmpeg/ffprobe not installed (scripts/test.sh installs them)",
)
if os.environ.get("CI") and (FFMPEG is None or FFPROBE is None):
    raise RuntimeError("CI must have ffmpeg and ffprobe: run scripts/test.sh")


PEERS = Path(__file__).parent / "peers"


def _gst_available() -> bool:
    if not Path("/usr/bin/python3").exists():
        return False
    check = [str(PEERS / "gst_rtsp_server.py"), "--check"]
    return subprocess.run(["/usr/bin/python3", *check], capture_output=True).returncode == 0


#: GStreamer (system Python with gi) runs the independent RTSP camera and player in tests/peers.
needs_gst = pytest.mark.skipif(
    not os.environ.get("CI") and not _gst_available(),
    reason="GStreamer's RTSP server is not installed (scripts/test.sh installs it)",
)


@pytest.fixture(autouse=True)
def _normal_scheduling(request: pytest.FixtureRequest) -> None:
    """Keep the test process (and the servers and clients it starts) out of real-time scheduling.

    On the development machine the pytest process was found at SCHED_FIFO 99 midway through a
    run (cause not found; Chromium running as root uses real-time threads), and every server it
    started inherited it: one spinning process at that priority starves the whole machine.
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        print(f"\n[conftest] test process was in real-time scheduling before {request.node.nodeid}; reset")
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    rtmp_port: int
    http_port: int
    log_path: Path
    rtsp_port: int = 0
    webrtc_port: int = 0
    #: Sent with API requests (Authorization) when the config protects the API.
    api_headers: dict[str, str] = field(default_factory=dict)

    @property
    def rtmp(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}"

    @property
    def rtsp(self) -> str:
        return f"rtsp://127.0.0.1:{self.rtsp_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def api(self, path: str) -> object:
        request = urllib.request.Request(f"{self.http}{path}", headers=self.api_headers)
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_path(self, name: str, tracks: int = 2, timeout: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.api("/api/v1/paths")["items"]:  # type: ignore[index]
                if item["name"] == name and len(item["tracks"]) >= tracks:
                    return item  # type: ignore[no-any-return]
            time.sleep(0.1)
        raise AssertionError(f"{name} not published within {timeout}s; server log:\n{self.log()}")


def start_server(
    tmp_path: Path,
    extra_config: str = "",
    rtmp_options: str = "",
    rtsp_options: str = "",
    webrtc_options: str = "",
) -> RunningServer:
    """``extra_config``: more top-level YAML; ``rtmp_options``/``rtsp_options``/``webrtc_options``:
    more keys under ``rtmp:``/``rtsp:``/``webrtc:`` (indented two spaces, one per line)."""
    rtmp_port, http_port, rtsp_port, webrtc_port = free_port(), free_port(), free_port(), free_port()
    config = tmp_path / "streamhive.yaml"
    config.write_text(
        f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"\n{rtmp_options}'
        f'rtsp:\n  listen: "127.0.0.1:{rtsp_port}"\n  rtp_port: 0\n  rtcp_port: 0\n{rtsp_options}'
        f'webrtc:\n  listen: "127.0.0.1:{webrtc_port}"\n{webrtc_options}'
        f'http:\n  listen: "127.0.0.1:{http_port}"\n{extra_config}'
    )
    log_path = tmp_path / "server.log"
    exe = Path(sys.executable).parent / "streamhive"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "streamhive"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*cmd, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    server = RunningServer(process, rtmp_port, http_port, log_path, rtsp_port, webrtc_port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", http_port), timeout=0.2):
            return server
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server did not start:\n{server.log()}")


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 (TLS listeners in tests)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start real servers with extra config; at teardown each must exit cleanly, without a traceback."""
    started: list[RunningServer] = []

    def make(
        extra_config: str = "", rtmp_options: str = "", rtsp_options: str = "", webrtc_options: str = ""
    ) -> RunningServer:
        folder = tmp_path / f"server{len(started)}"
        folder.mkdir()
        srv = start_server(folder, extra_config, rtmp_options, rtsp_options, webrtc_options)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        stop_server(srv)
        assert srv.process.returncode == 0, f"server did not exit cleanly:\n{srv.log()}"
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


def ffmpeg_publish_cmd(
    url: str,
    seconds: float,
    size: str = "320x240",
    rate: int = 25,
    extra: tuple[str, ...] = (),
    muxer: tuple[str, ...] = ("-f", "flv"),
) -> list[str]:
    """A real-time H.264 + AAC test publisher (1 s GOP), as a user would run ffmpeg."""
    assert FFMPEG is not None
    return [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(rate), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", *extra,
        *muxer, url,
    ]  # fmt: skip


async def run(cmd: list[str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def record(
    url: str, out: Path, seconds: float, timeout: float = 60, input_options: tuple[str, ...] = ()
) -> None:
    """What a player gets: copy ``seconds`` of the stream at ``url`` to a file with ffmpeg."""
    assert FFMPEG is not None
    cmd = [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        *input_options,
        "-i",
        url,
        "-t",
        str(seconds),
        "-c",
        "copy",
        str(out),
    ]
    rc, _, err = await run(cmd, timeout)
    assert rc == 0, f"{url}: {err}"


async def probe(path: str | Path) -> dict[str, dict[str, object]]:
    """Decode a file with ffprobe: per codec type, the codec, size and decoded frame count."""
    assert FFPROBE is not None
    rc, out, err = await run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,width,height,sample_rate,channels,nb_read_frames", "-of", "json", str(path)]
    )  # fmt: skip
    assert rc == 0, err
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


async def video_dts(path: Path) -> list[float]:
    """Every video packet's decode time in a recording, in order (ffprobe must report no error)."""
    assert FFPROBE is not None
    cmd = [
        FFPROBE,
        "-v",
        "error",
        "-select_streams",
        "v",
        "-show_entries",
        "packet=dts_time",
        "-of",
        "json",
        str(path),
    ]
    rc, out, err = await run(cmd)
    assert rc == 0 and not err.strip(), err
    return [float(p["dts_time"]) for p in json.loads(out)["packets"] if "dts_time" in p]


@contextlib.asynccontextmanager
async def publishing(
    server: RunningServer, path: str, seconds: float = 30, **options: Any
) -> AsyncIterator[asyncio.subprocess.Process]:
    """An ffmpeg test publisher on ``path``, already live (listed by the API) inside the block."""
    url = options.pop("url", f"{server.rtmp}/{path}")
    proc = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(url, seconds, **options))
    try:
        await asyncio.to_thread(server.wait_for_path, path)
        yield proc
    finally:
        await terminate(proc)


async def terminate(proc: asyncio.subprocess.Process) -> None:
    """End a client process we started (it may have exited already)."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
