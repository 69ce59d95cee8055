"""Chromium as a WebRTC client, and the scenarios that need a network namespace of their own.

The helpers drive headless Chromium through Playwright: a WHIP publisher with Chromium's fake
camera and microphone, a WHEP player, and ``pc.getStats()`` summaries (what the browser
decoded, its NACKs, the ICE pair it selected). The JavaScript is inline so that the tests do not
depend on the server's own pages; it runs in a blank page of the server's origin, so the
WHIP/WHEP fetches are same-origin.

Run as a script (``unshare -n python webrtc_scenario.py --mode tcp|loss``, by
test_webrtc_browser.py, as root), it starts the server inside the new namespace, filters the
WebRTC port with nftables and prints one JSON line:

- ``tcp``: every UDP datagram to or from the port is dropped; an ffmpeg RTMP publisher feeds
  the path and a Chromium WHEP player must get it over ICE-TCP.
- ``loss``: a share of the UDP datagrams is dropped both ways while a Chromium publisher sends
  and a Chromium player watches: NACK and retransmission have to keep the picture going.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import (  # noqa: E402
    RunningServer,
    ffmpeg_publish_cmd,
    start_server,
    stop_server,
)
from tests.interop.chromium import BASE_FLAGS, headless_chromium  # noqa: E402
from tests.interop.chromium import CHROMIUM as CHROMIUM  # noqa: E402  (test_webrtc_browser's)

FLAGS = [
    *BASE_FLAGS,
    # The fake camera (a moving pattern with a frame counter) and microphone (beeps), no prompt.
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    # Without it Chromium gathers no loopback candidates, and the network namespaces have only lo.
    "--allow-loopback-in-peer-connection",
]

#: Installed in each page: window.publish(url, mime), window.play(url), window.summary().
CLIENT_JS = """
(() => {
  async function exchange(pc, url) {
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(url, {
      method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp,
    });
    const body = await response.text();
    if (response.status !== 201) throw new Error(`${url} answered ${response.status}: ${body}`);
    await pc.setRemoteDescription({type: 'answer', sdp: body});
    return response.headers.get('Location');
  }
  function watchState(pc) {
    window.states = [];
    pc.addEventListener('connectionstatechange', () => window.states.push(pc.connectionState));
  }
  window.publish = async ([url, mime]) => {
    const media = await navigator.mediaDevices.getUserMedia({
      video: {width: {exact: 640}, height: {exact: 480}, frameRate: 30}, audio: true,
    });
    const pc = window.pc = new RTCPeerConnection();
    watchState(pc);
    for (const track of media.getTracks()) {
      const transceiver = pc.addTransceiver(track, {direction: 'sendonly', streams: [media]});
      if (track.kind === 'video') {
        const codecs = RTCRtpSender.getCapabilities('video').codecs;
        const wanted = codecs.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
        transceiver.setCodecPreferences(wanted);
      }
    }
    return await exchange(pc, url);
  };
  window.play = async (url) => {
    const pc = window.pc = new RTCPeerConnection();
    watchState(pc);
    pc.addTransceiver('video', {direction: 'recvonly'});
    pc.addTransceiver('audio', {direction: 'recvonly'});
    const media = new MediaStream();
    const video = document.querySelector('video');
    pc.addEventListener('track', (event) => {
      media.addTrack(event.track);
      video.srcObject = media;
      video.play().catch(() => {});
    });
    return await exchange(pc, url);
  };
  // Enough to tell what went wrong from an assertion message, not only what the tests check.
  const INBOUND = ['packetsReceived', 'packetsLost', 'nackCount', 'pliCount', 'framesReceived',
    'framesDecoded', 'framesDropped', 'keyFramesDecoded', 'frameWidth', 'frameHeight', 'framesPerSecond',
    'freezeCount', 'totalFreezesDuration', 'jitterBufferDelay', 'jitterBufferEmittedCount',
    'totalSamplesReceived', 'concealedSamples'];
  const OUTBOUND = ['packetsSent', 'framesEncoded', 'keyFramesEncoded', 'frameWidth', 'frameHeight',
    'framesPerSecond', 'nackCount', 'pliCount', 'retransmittedPacketsSent', 'qualityLimitationReason'];
  const pick = (stats, keys) =>
    Object.fromEntries(keys.filter((k) => stats[k] !== undefined).map((k) => [k, stats[k]]));
  const candidate = (c) => c && {protocol: c.protocol, type: c.candidateType, tcpType: c.tcpType,
    address: c.address, port: c.port};
  window.summary = async () => {
    const report = await window.pc.getStats();
    const out = {time: performance.now() / 1000, state: window.pc.connectionState, states: window.states,
      inbound: {}, outbound: {}, pair: null};
    for (const s of report.values()) {
      const codec = s.codecId && report.get(s.codecId);
      if (s.type === 'inbound-rtp') {
        out.inbound[s.kind] = {...pick(s, INBOUND), codec: codec && codec.mimeType};
      } else if (s.type === 'outbound-rtp') {
        out.outbound[s.kind] = {...pick(s, OUTBOUND), codec: codec && codec.mimeType};
      } else if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        out.pair = {state: pair.state, nominated: pair.nominated,
          local: candidate(report.get(pair.localCandidateId)),
          remote: candidate(report.get(pair.remoteCandidateId))};
      }
    }
    return out;
  };
})();
"""


def chromium() -> contextlib.AbstractAsyncContextManager[BrowserContext]:
    """Headless Chromium with the fake camera and microphone."""
    return headless_chromium(FLAGS)


async def client_page(context: BrowserContext, server: RunningServer, console: list[str]) -> Page:
    """A blank page of the server's origin with CLIENT_JS; its console lines land in ``console``."""
    page = await context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    await page.goto(f"{server.http}/api/v1/paths")
    await page.set_content("<video muted autoplay playsinline></video>")
    await page.add_script_tag(content=CLIENT_JS)
    return page


async def publish(page: Page, url: str, mime: str = "video/H264") -> str:
    """Start a WHIP publish of the fake camera and microphone; returns the session's Location."""
    return str(await page.evaluate("(args) => publish(args)", [url, mime]))


async def play(page: Page, url: str) -> str:
    """Start a WHEP player (video and audio); returns the session's Location."""
    return str(await page.evaluate("(url) => play(url)", url))


async def summary(page: Page) -> dict[str, Any]:
    return await page.evaluate("() => summary()")  # type: ignore[no-any-return]


async def watch(page: Page, seconds: float, first_frame_within: float = 10) -> tuple[dict[str, Any], ...]:
    """Stats once the first video frame is decoded and again ``seconds`` later."""
    deadline = time.monotonic() + first_frame_within
    first = await summary(page)
    while first["inbound"].get("video", {}).get("framesDecoded", 0) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no video frame decoded within {first_frame_within}s: {first}")
        await asyncio.sleep(0.1)
        first = await summary(page)
    await asyncio.sleep(seconds)
    return first, await summary(page)


def grown(first: dict[str, Any], last: dict[str, Any], kind: str, key: str) -> float:
    """How much an inbound counter grew between two summaries."""
    return float(last["inbound"][kind].get(key, 0) - first["inbound"][kind].get(key, 0))


# -- the network-namespace scenarios ------------------------------------------------------------


def _nft(rules: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)


def _drop_rules(port: int, loss: int | None) -> str:
    """Input-hook rules on lo (every packet passes it once): both directions of ``port``'s UDP."""
    chance = f"numgen random mod 100 < {loss} " if loss is not None else ""
    return (
        "add table inet webrtc\n"
        "add chain inet webrtc input { type filter hook input priority 0; }\n"
        f"add rule inet webrtc input udp dport {port} {chance}counter drop\n"
        f"add rule inet webrtc input udp sport {port} {chance}counter drop\n"
        f"add rule inet webrtc input udp dport {port} counter\n"
        f"add rule inet webrtc input udp sport {port} counter\n"
    )


def _counters() -> list[int]:
    """Packets counted by each rule, in order: dropped to/from the server, then passed to/from."""
    listing = subprocess.run(
        ["nft", "list", "table", "inet", "webrtc"], capture_output=True, text=True
    ).stdout
    return [int(n) for n in re.findall(r"counter packets (\d+)", listing)]


def _webrtc_events(server: RunningServer) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^streamhive_webrtc_events_total\{event="([^"]+)"\} (\S+)$', text, re.M)
    }


async def _scenario(args: argparse.Namespace, server: RunningServer) -> dict[str, Any]:
    console: list[str] = []
    result: dict[str, Any] = {"mode": args.mode, "console": console}
    whip, whep = f"{server.http}/live/net/whip", f"{server.http}/live/net/whep"
    publisher: subprocess.Popen[bytes] | None = None
    async with chromium() as context:
        try:
            if args.mode == "tcp":
                publisher = subprocess.Popen(
                    ffmpeg_publish_cmd(f"{server.rtmp}/live/net", args.seconds + 20),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            else:
                sender = await client_page(context, server, console)
                await publish(sender, whip)
            await asyncio.to_thread(server.wait_for_path, "live/net", 2)
            player = await client_page(context, server, console)
            await play(player, whep)
            first, last = await watch(player, args.seconds, first_frame_within=20)
            result["player"] = {"first": first, "last": last}
            if args.mode == "loss":
                result["publisher"] = await summary(sender)
            result["server_events"] = _webrtc_events(server)
        finally:
            if publisher is not None:
                publisher.kill()
                publisher.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("tcp", "loss"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--loss", type=int, default=5, help="percent of UDP datagrams dropped each way")
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = start_server(args.out)
    try:
        _nft(_drop_rules(server.webrtc_port, None if args.mode == "tcp" else args.loss))
        result = asyncio.run(_scenario(args, server))
        result["nft"] = dict(
            zip(("dropped_in", "dropped_out", "passed_in", "passed_out"), _counters(), strict=True)
        )
    finally:
        stop_server(server)
    log = server.log()
    result["server_exit"] = server.process.returncode
    result["traceback"] = "Traceback" in log
    result["server_log"] = [line for line in log.splitlines() if "webrtc" in line or "whip" in line][-30:]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
