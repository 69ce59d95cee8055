"""Pulled sources: a path fed by the server itself from another server, on demand or always."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import (
    PEERS,
    ffmpeg_publish_cmd,
    free_port,
    needs_ffmpeg,
    needs_gst,
    probe,
    publishing,
    record,
    run,
    terminate,
    video_dts,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


def wait_gone(server, name: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(item["name"] != name for item in server.api("/api/v1/paths")["items"]):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} still listed after {timeout}s:\n{server.log()}")


async def test_rtmp_source_on_demand(make_server, tmp_path: Path) -> None:
    origin = make_server()
    edge = make_server(
        "paths:\n"
        "  relay:\n"
        f"    source: {origin.rtmp}/live/src\n"
        "    source_on_demand: true\n"
        "    source_on_demand_close_after: 1\n"
    )
    async with publishing(origin, "live/src", 30):
        assert edge.api("/api/v1/paths")["items"] == []  # nobody reads: not pulled yet
        rc, _, _ = await run(ffmpeg_publish_cmd(f"{edge.rtmp}/relay", 2), 30)
        assert rc != 0  # a path fed by its source takes no other publisher
        await record(f"{edge.http}/relay.flv", tmp_path / "relay.flv", 4)
        info = await probe(tmp_path / "relay.flv")
        assert (info["video"]["codec_name"], info["video"]["width"]) == ("h264", 320)
        assert int(info["video"]["nb_read_frames"]) >= 60  # type: ignore[arg-type]
        assert info["audio"]["codec_name"] == "aac"
        await asyncio.to_thread(wait_gone, edge, "relay")  # idle: the pull stops by itself
        await record(f"{edge.http}/relay.flv", tmp_path / "again.flv", 2)  # and starts again
        assert int((await probe(tmp_path / "again.flv"))["video"]["nb_read_frames"]) >= 30  # type: ignore[arg-type]
    log = edge.log()
    assert "source relay: starting" in log and "stopping (no readers)" in log


GST_PEER = PEERS / "gst_rtsp_server.py"


class Camera:
    """The independent RTSP server (GStreamer) as an IP camera; can be restarted on its port."""

    def __init__(self, user: str = "admin", password: str = "s3cret", transports: str = "udp,tcp") -> None:
        self.user, self.password, self.transports = user, password, transports
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3", str(GST_PEER), "--port", str(self.port), "--host", "127.0.0.1",
            "--user", self.user, "--password", self.password, "--transports", self.transports,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert line.startswith(b"READY"), line

    async def stop(self) -> None:
        if self.proc is not None:
            await terminate(self.proc)
            self.proc = None

    def url(self, mount: str) -> str:
        return f"rtsp://{self.user}:{self.password}@127.0.0.1:{self.port}/{mount}"


@contextlib.asynccontextmanager
async def camera(transports: str = "udp,tcp") -> AsyncIterator[Camera]:
    cam = Camera(transports=transports)
    await cam.start()
    try:
        yield cam
    finally:
        await cam.stop()


@needs_gst
async def test_rtsp_camera_sources(make_server, tmp_path: Path) -> None:
    """H.264+AAC over TCP (always on), H.265+PCMA over UDP and H.264+PCMU over auto, on demand;
    Digest auth as the camera asks; read over RTMP, HTTP-FLV and RTSP."""
    async with camera() as cam:
        server = make_server(
            "paths:\n"
            "  cam1:\n"
            f"    source: {cam.url('h264aac')}\n"
            "    source_protocol: tcp\n"
            "  cam2:\n"
            f"    source: {cam.url('h265pcma')}\n"
            "    source_protocol: udp\n"
            "    source_on_demand: true\n"
            "  cam3:\n"
            f"    source: {cam.url('h264pcmu')}\n"
            "    source_on_demand: true\n"
        )
        info = await asyncio.to_thread(server.wait_for_path, "cam1")
        assert info["publisher"]["protocol"] == "rtsp-source"  # type: ignore[index]
        files = {
            name: tmp_path / f"{name}.mkv" for name in ("cam1_rtmp", "cam1_flv", "cam1_rtsp", "cam2", "cam3")
        }
        await asyncio.gather(
            record(f"{server.rtmp}/cam1", files["cam1_rtmp"], 4),
            record(f"{server.http}/cam1.flv", files["cam1_flv"], 4),
            record(f"{server.rtsp}/cam1", files["cam1_rtsp"], 4),
            record(f"{server.rtsp}/cam2", files["cam2"], 4),
            record(f"{server.rtsp}/cam3", files["cam3"], 4),
        )
    expected = {
        "cam1_rtmp": ("h264", "aac"),
        "cam1_flv": ("h264", "aac"),
        "cam1_rtsp": ("h264", "aac"),
        "cam2": ("hevc", "pcm_alaw"),
        "cam3": ("h264", "pcm_mulaw"),
    }
    for name, (vcodec, acodec) in expected.items():
        info = await probe(files[name])
        video, audio = info["video"], info["audio"]
        assert (video["codec_name"], video["width"], video["height"]) == (vcodec, 320, 240), (name, info)
        assert int(video["nb_read_frames"]) >= 60, (name, info)  # type: ignore[arg-type]
        assert audio["codec_name"] == acodec, (name, info)
    log = server.log()
    assert "playing rtsp://127.0.0.1" in log and "s3cret" not in log


@needs_gst
async def test_camera_reboot_keeps_readers(make_server, tmp_path: Path) -> None:
    cam = Camera()
    await cam.start()
    try:
        server = make_server(
            f"paths:\n  cam1:\n    source: {cam.url('h264aac')}\n    source_protocol: tcp\n    source_grace: 20\n"
        )
        await asyncio.to_thread(server.wait_for_path, "cam1")
        out = tmp_path / "through_reboot.flv"
        player = asyncio.ensure_future(record(f"{server.http}/cam1.flv", out, 10))
        await asyncio.sleep(3)
        await cam.stop()  # the camera reboots...
        await asyncio.sleep(2)
        await cam.start()  # ...and comes back on the same address
        await player
    finally:
        await cam.stop()
    info = await probe(out)
    # 10 s of media recorded through the reboot: both sides of the gap are in the file.
    assert int(info["video"]["nb_read_frames"]) >= 150, info  # type: ignore[arg-type]
    dts = await video_dts(out)
    assert all(b >= a for a, b in zip(dts, dts[1:], strict=False)), "timestamps went back across the reboot"
    log = server.log()
    assert "source cam1:" in log and "retrying" in log


@needs_gst
async def test_auto_falls_back_to_tcp(make_server, tmp_path: Path) -> None:
    """A camera that refuses UDP (as behind a firewall): "auto" retries over TCP at once."""
    async with camera(transports="tcp") as cam:
        server = make_server(f"paths:\n  cam1:\n    source: {cam.url('h264')}\n")
        await asyncio.to_thread(server.wait_for_path, "cam1", 1)
        out = tmp_path / "cam1.flv"
        await record(f"{server.rtmp}/cam1", out, 2)
    info = await probe(out)
    assert info["video"]["codec_name"] == "h264" and int(info["video"]["nb_read_frames"]) >= 30
    log = server.log()
    assert "refused RTP over UDP" in log and "over TCP" in log
