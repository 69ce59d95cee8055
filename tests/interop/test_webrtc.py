"""WHIP and WHEP with aiortc, an independent WebRTC stack, against the real server.

Every test decodes what it received: aiortc decodes WHEP media itself, ffprobe decodes what
RTMP/HLS players recorded of a WHIP publish.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import FFMPEG, RunningServer, probe, publishing, record
from tests.interop.webrtc_clients import use_loopback, whep_play, whip_publish

pytestmark = [pytest.mark.interop, pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")]


@pytest.fixture(autouse=True)
def _loopback() -> None:
    use_loopback()


async def test_whip_publish_whep_play_aiortc(server: RunningServer) -> None:
    async with whip_publish(f"{server.http}/live/web/whip"):
        path = await asyncio.to_thread(server.wait_for_path, "live/web", 2)
        async with whep_play(f"{server.http}/live/web/whep") as got:
            await asyncio.sleep(4)
    assert {t["codec"] for t in path["tracks"]} == {"h264", "opus"}, path  # type: ignore[index, union-attr]
    assert got.sizes == {(320, 240)}, server.log()
    assert got.video_frames >= 60, (got, server.log())
    assert got.audio_samples >= 2 * 48000 and got.audio_rates == {48000}, (got, server.log())


async def test_whip_vp8_publish_whep_play(server: RunningServer) -> None:
    async with whip_publish(f"{server.http}/live/vp8/whip", codec="video/VP8"):
        await asyncio.to_thread(server.wait_for_path, "live/vp8", 2)
        async with whep_play(f"{server.http}/live/vp8/whep") as got:
            await asyncio.sleep(3)
    assert got.sizes == {(320, 240)} and got.video_frames >= 45, (got, server.log())
    assert got.audio_samples >= 48000, got


async def test_whip_to_rtmp_and_hls_get_aac(server: RunningServer, tmp_path: Path) -> None:
    """A WebRTC publisher's Opus reaches RTMP and HLS players as AAC; video is not transcoded."""
    async with whip_publish(f"{server.http}/live/tohls/whip"):
        await asyncio.to_thread(server.wait_for_path, "live/tohls", 2)
        rtmp_out, hls_out = tmp_path / "rtmp.flv", tmp_path / "hls.ts"
        await asyncio.gather(
            record(f"{server.rtmp}/live/tohls", rtmp_out, 4),
            record(f"{server.http}/live/tohls/index.m3u8", hls_out, 4),
        )
    for out in (rtmp_out, hls_out):
        streams = await probe(out)
        assert streams["video"]["codec_name"] == "h264", (out, streams)
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
        assert int(streams["video"]["nb_read_frames"]) >= 45, (out, streams)  # type: ignore[call-overload]
        assert streams["audio"]["codec_name"] == "aac", (out, streams)
        assert int(streams["audio"]["nb_read_frames"]) >= 90, (out, streams)  # type: ignore[call-overload]
    assert "transcoding opus audio to aac" in server.log()


async def test_rtmp_publish_whep_play_transcodes_aac_to_opus(server: RunningServer) -> None:
    async with publishing(server, "live/cam"), whep_play(f"{server.http}/live/cam/whep") as got:
        await asyncio.sleep(4)
    assert got.sizes == {(320, 240)} and got.video_frames >= 50, (got, server.log())
    assert got.audio_samples >= 2 * 48000 and got.audio_rates == {48000}, (got, server.log())
    assert "transcoding aac audio to opus" in server.log()


async def test_whep_refusals(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.http}/live/none/whep", data="v=0\r\n", headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 404
        async with http.post(f"{server.http}/live/x/whip", data="hello") as r:
            assert r.status == 415
        async with http.post(
            f"{server.http}/live/x/whip", data="v=0\r\nbogus", headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 400 and "SDP" in (await r.json())["error"]
        async with http.options(f"{server.http}/live/x/whip") as r:
            assert r.status == 204 and "application/sdp" in r.headers["Accept-Post"]
        async with http.delete(f"{server.http}/live/x/whip/nope") as r:
            assert r.status == 404
