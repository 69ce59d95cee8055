"""hls.js (LL-HLS) and dash.js in headless Chromium play a stream published over RTMP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, needs_ffmpeg, publishing
from tests.interop.chromium import BASE_FLAGS, CHROMIUM, headless_chromium

pytestmark = [pytest.mark.interop, needs_ffmpeg]

WEB = Path(__file__).parents[1] / "web" / "node_modules"
HLS_JS = WEB / "hls.js" / "dist" / "hls.min.js"
DASH_JS = WEB / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js"
MPEGTS_JS = WEB / "mpegts.js" / "dist" / "mpegts.js"
pytest.importorskip("playwright.async_api")

if os.environ.get("CI") and (CHROMIUM is None or not HLS_JS.exists()):
    raise RuntimeError("CI must have Chromium and tests/web/node_modules: run scripts/test.sh")
pytestmark.append(
    pytest.mark.skipif(CHROMIUM is None or not HLS_JS.exists(), reason="Chromium/players missing")
)

FLAGS = [*BASE_FLAGS, "--disable-quic"]

HLS_START = """
(url) => {
  const video = document.querySelector('video');
  window.errors = [];
  const hls = new Hls({ lowLatencyMode: true });
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.errors.push(d.type + ':' + d.details); });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.addEventListener('error', () => window.errors.push('video:' + (video.error && video.error.message)));
  video.play().catch(e => window.errors.push('play:' + e));
  window.player = hls;
}
"""
DASH_START = """
(url) => {
  const video = document.querySelector('video');
  window.errors = [];
  const player = dashjs.MediaPlayer().create();
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.errors.push('dash:' + JSON.stringify(e.error)));
  player.initialize(video, url, true);
  video.addEventListener('error', () => window.errors.push('video:' + (video.error && video.error.message)));
  window.player = player;
}
"""

MPEGTS_START = """
(url) => {
  const video = document.querySelector('video');
  window.errors = [];
  const player = mpegts.createPlayer({ type: 'flv', isLive: true, url: url });
  player.on(mpegts.Events.ERROR, (type, detail) => window.errors.push(type + ':' + detail));
  player.attachMediaElement(video);
  player.load();
  video.play().catch(e => window.errors.push('play:' + e));
  window.player = player;
}
"""


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with headless_chromium(FLAGS) as context:
        yield context


async def watch(context: object, script: Path, start: str, url: str, seconds: float) -> dict[str, object]:
    page = await context.new_page()  # type: ignore[attr-defined]
    await page.set_content("<video muted playsinline></video>")
    await page.add_script_tag(path=str(script))
    await page.evaluate(start, url)
    samples = []
    for _ in range(int(seconds * 2)):
        await asyncio.sleep(0.5)
        samples.append(await page.evaluate("document.querySelector('video').currentTime"))
    state = await page.evaluate(
        """() => { const v = document.querySelector('video');
        return { errors: window.errors, width: v.videoWidth, height: v.videoHeight,
                 latency: window.player.getCurrentLiveLatency ? window.player.getCurrentLiveLatency()
                          : window.player.latency,
                 frames: v.getVideoPlaybackQuality().totalVideoFrames }; }"""
    )
    state["samples"] = samples
    await page.close()
    return state  # type: ignore[no-any-return]


def assert_played(state: dict[str, object], seconds: float) -> None:
    print("PLAYER", state)
    samples = state["samples"]
    assert not state["errors"], state
    assert (state["width"], state["height"]) == (320, 240), state
    advancing = samples[-1] - next(s for s in samples if s > 0)  # type: ignore[operator, union-attr]
    assert advancing >= seconds - 2, state  # played on without stalling for the whole window
    assert int(state["frames"]) >= 25 * (seconds - 2), state  # type: ignore[call-overload]


async def test_hls_js_low_latency(server: RunningServer, browser: object) -> None:
    async with publishing(server, "live/web"):
        state = await watch(browser, HLS_JS, HLS_START, f"{server.http}/live/web/index.m3u8", 12)
    assert_played(state, 10)
    assert state["latency"] is not None and 0 < state["latency"] < 3, state  # type: ignore[operator]


async def test_dash_js(server: RunningServer, browser: object) -> None:
    async with publishing(server, "live/dash"):
        state = await watch(browser, DASH_JS, DASH_START, f"{server.http}/live/dash/index.mpd", 12)
    assert_played(state, 10)
    assert state["latency"] is not None and 0 < state["latency"] < 8, state  # type: ignore[operator]


async def test_mpegts_js_over_ws_flv(server: RunningServer, browser: object) -> None:
    async with publishing(server, "live/wsflv"):
        url = f"ws://127.0.0.1:{server.http_port}/live/wsflv.flv"
        state = await watch(browser, MPEGTS_JS, MPEGTS_START, url, 12)
    assert_played(state, 10)
    assert "protocol=ws-flv" in server.log()
