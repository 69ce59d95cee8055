"""HLS (LL-HLS, fMP4, MPEG-TS) and DASH from an RTMP publish, read back by ffmpeg and ffprobe."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import (
    RunningServer,
    needs_ffmpeg,
    probe,
    publishing,
    record,
    video_dts,
)
from tests.interop.test_enhanced_rtmp import publish as publish_with_pyav

pytestmark = [pytest.mark.interop, needs_ffmpeg]

VARIANTS = "paths:\n  ~^fmp4/:\n    hls_variant: fmp4\n  ~^ts/:\n    hls_variant: mpegts\n"


@pytest.fixture
def hls_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(VARIANTS)


def assert_continuous(times: list[float], frame: float = 0.04) -> None:
    """No gap or overlap of more than one frame between consecutive packets (across segments)."""
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert steps and all(0 < step <= 2 * frame + 0.001 for step in steps), steps


@pytest.mark.parametrize(
    ("path", "url_suffix"),
    [("live/ll", "index.m3u8"), ("fmp4/a", "index.m3u8"), ("ts/a", "index.m3u8"), ("live/dash", "index.mpd")],
)
async def test_variant_plays_in_ffmpeg(
    hls_server: RunningServer, tmp_path: Path, path: str, url_suffix: str
) -> None:
    server = hls_server
    async with publishing(server, path, 16):
        out = tmp_path / "out.mkv"
        await record(f"{server.http}/{path}/{url_suffix}", out, 5, 40)
        media = await probe(out)
        assert (media["video"]["codec_name"], media["video"]["width"], media["video"]["height"]) == (
            "h264",
            320,
            240,
        )
        assert int(media["video"]["nb_read_frames"]) >= 110  # type: ignore[arg-type]  # 5 s at 25 fps
        assert media["audio"]["codec_name"] == "aac" and int(media["audio"]["nb_read_frames"]) >= 180  # type: ignore[arg-type]
        assert_continuous(await video_dts(out))
        info = server.api(f"/api/v1/paths/{path}")
        assert info["hls_viewers"] >= 1  # type: ignore[index]


async def test_hevc_over_ll_hls(hls_server: RunningServer, tmp_path: Path) -> None:
    server = hls_server
    stop = threading.Event()
    publisher = asyncio.ensure_future(
        asyncio.to_thread(publish_with_pyav, f"{server.rtmp}/live/hevc", "libx265", 14, stop)
    )
    try:
        await asyncio.to_thread(server.wait_for_path, "live/hevc", 1)
        async with aiohttp.ClientSession() as http, http.get(f"{server.http}/live/hevc/index.m3u8") as resp:
            master = await resp.text()
        assert 'CODECS="hvc1.' in master and "RESOLUTION=320x240" in master, master
        out = tmp_path / "hevc.mkv"
        await record(f"{server.http}/live/hevc/index.m3u8", out, 3)
        media = await probe(out)
        assert (media["video"]["codec_name"], media["video"]["width"]) == ("hevc", 320)
        assert int(media["video"]["nb_read_frames"]) >= 65  # type: ignore[arg-type]
        assert_continuous(await video_dts(out))
    finally:
        stop.set()
        await publisher


def preload_hint(playlist: str) -> str:
    line = next(x for x in playlist.splitlines() if x.startswith("#EXT-X-PRELOAD-HINT"))
    return line.split('URI="')[1].rstrip('"')


async def test_blocking_reload_and_bad_requests(hls_server: RunningServer) -> None:
    server = hls_server
    base = f"{server.http}/live/block"
    async with publishing(server, "live/block", 14):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/stream.m3u8") as resp:
                text = await resp.text()
                assert resp.status == 200 and "#EXT-X-PART:" in text and "CAN-BLOCK-RELOAD=YES" in text
            uri = preload_hint(text)  # seg{M}.{P}.m4s
            msn, part = (int(x) for x in uri[3:].split(".")[:2])
            async with http.get(f"{base}/stream.m3u8?_HLS_msn={msn}&_HLS_part={part}") as resp:
                blocked = await resp.text()
            assert resp.status == 200 and f'URI="{uri}"' in blocked.split("#EXT-X-PRELOAD-HINT")[0], blocked
            async with http.get(f"{base}/{uri}") as resp:  # the hinted part, now published
                assert resp.status == 200 and len(await resp.read()) > 0
            # Preload-hint style request for the next part: held until it exists.
            async with http.get(f"{base}/stream.m3u8") as resp:
                hinted = preload_hint(await resp.text())
            async with http.get(f"{base}/{hinted}") as resp:
                assert resp.status == 200
            for query, status in (
                ("_HLS_msn=abc", 400),
                ("_HLS_msn=99999", 400),
                ("_HLS_part=1", 400),
                ("_HLS_msn=-1", 400),
            ):
                async with http.get(f"{base}/stream.m3u8?{query}") as resp:
                    assert resp.status == status, query
            for url in (
                "seg99999.m4s",
                "seg0.99.m4s",
                "init7.mp4",
                "nothing.txt",
                "seg1.ts",
                "dash-t9-1.m4s",
            ):
                async with http.get(f"{base}/{url}") as resp:
                    assert resp.status == 404, url
            for url in ("/live/..%2F..%2Fetc/index.m3u8", "/live/%2e%2e/x/index.m3u8", "/a%5Cb/index.m3u8"):
                async with http.get(f"{server.http}{url}") as resp:
                    assert resp.status in (400, 404), url
            async with http.get(f"{server.http}/live/none/index.m3u8") as resp:
                assert resp.status == 404
        # A thousand blocked reloads at once: all held, all answered when the part appears.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as many:
            async with many.get(f"{base}/stream.m3u8") as resp:
                ahead = preload_hint(await resp.text())
            msn, part = (int(x) for x in ahead[3:].split(".")[:2])
            far = f"{base}/stream.m3u8?_HLS_msn={msn}&_HLS_part={part}"
            results = await asyncio.gather(*(many.get(far) for _ in range(1000)))
            assert [r.status for r in results] == [200] * 1000
            for r in results:
                r.release()
