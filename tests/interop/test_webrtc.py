"""WHIP and WHEP with aiortc, an independent WebRTC stack, against the real server.

Every test decodes what it received: aiortc decodes WHEP media itself, ffprobe decodes what
RTMP/HLS players recorded of a WHIP publish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.conftest import FFMPEG, RunningServer, probe, publishing, record
from tests.interop.webrtc_clients import exchange, use_loopback, whep_play, whip_publish

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


async def _sessions(server: RunningServer) -> list[dict[str, object]]:
    return await asyncio.to_thread(lambda: server.api("/api/v1/sessions")["items"])  # type: ignore[index, no-any-return]


async def _eventually(check: object, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def test_session_ends_on_api_kick_on_delete_and_when_the_publisher_leaves(
    server: RunningServer,
) -> None:
    url = f"{server.http}/live/life"

    def readers(sessions: list[dict[str, object]]) -> list[dict[str, object]]:
        return [s for s in sessions if s["role"] == "reader" and s["path"] == "live/life"]

    async with contextlib.AsyncExitStack() as players, contextlib.AsyncExitStack() as publisher:
        stack = players
        await publisher.enter_async_context(whip_publish(f"{url}/whip"))
        await asyncio.to_thread(server.wait_for_path, "live/life", 2)
        kicked = await stack.enter_async_context(whep_play(f"{url}/whep"))
        await asyncio.sleep(1)
        assert kicked.video_frames > 0, server.log()
        (reader,) = readers(await _sessions(server))
        async with aiohttp.ClientSession() as http:
            async with http.delete(f"{server.http}/api/v1/sessions/{reader['id']}") as r:
                assert r.status in (200, 204), await r.text()

            async def kick_done() -> bool:
                return not readers(await _sessions(server))

            assert await _eventually(kick_done), await _sessions(server)

            # A WHEP resource: DELETE ends the session, a second DELETE finds nothing.
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            status, _body, headers = await exchange(pc, f"{url}/whep")
            assert status == 201 and headers["Location"].startswith("/live/life/whep/"), headers
            async with http.delete(f"{server.http}{headers['Location']}") as r:
                assert r.status == 200
            async with http.delete(f"{server.http}{headers['Location']}") as r:
                assert r.status == 404
            await pc.close()
        # A player still watching when the publisher leaves is closed by the server.
        last = await stack.enter_async_context(whep_play(f"{url}/whep"))
        await asyncio.sleep(1)
        assert last.video_frames > 0
        await publisher.aclose()

        async def player_closed() -> bool:
            return not readers(await _sessions(server))

        assert await _eventually(player_closed), await _sessions(server)
    log = server.log()
    assert "reason=kicked through the API" in log, log
    assert "reason=client ended the session (DELETE)" in log, log
    assert "role=reader" in log and "reason=publisher left" in log, log


async def test_bad_input_on_the_media_port_and_in_offers(server: RunningServer) -> None:
    """Junk datagrams, forged STUN, fake DTLS/SRTP and junk ICE-TCP leave a live player untouched;
    bad offers get a 4xx with the reason."""
    import os
    import re
    import socket
    import struct

    from aioice import stun

    url = f"{server.http}/live/bad"
    async with whip_publish(f"{url}/whip"), contextlib.AsyncExitStack() as stack:
        await asyncio.to_thread(server.wait_for_path, "live/bad", 2)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        stack.push_async_callback(pc.close)
        pc.addTransceiver("video", direction="recvonly")
        status, answer, _ = await exchange(pc, f"{url}/whep")
        assert status == 201
        ufrag = re.search(r"a=ice-ufrag:(\S+)", answer).group(1)  # type: ignore[union-attr]
        got = await stack.enter_async_context(whep_play(f"{url}/whep"))
        await asyncio.sleep(1)
        before = got.video_frames
        assert before > 0

        target = ("127.0.0.1", server.webrtc_port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        forged = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        forged.attributes["USERNAME"] = f"{ufrag}:whoever"
        forged.attributes["PRIORITY"] = 1
        forged.add_message_integrity(b"not the password")
        forged.add_fingerprint()
        junk = [
            b"",
            b"\x00",
            os.urandom(3),
            bytes(forged),
            bytes(forged)[:30],  # truncated
            b"\x16\xfe\xfd" + os.urandom(200),  # a "DTLS" record from nowhere
            b"\x80\x60" + os.urandom(300),  # "SRTP" from an unknown address
            b"\x81\xc9" + struct.pack("!H", 0xFFFF) + os.urandom(20),  # RTCP with a lying length
        ]
        for _ in range(300):
            junk.append(os.urandom(1 + os.urandom(1)[0] * 4))
        for datagram in junk:
            sock.sendto(datagram, target)
        sock.close()
        # A DTLS handshake flood and junk framing over ICE-TCP.
        reader, writer = await asyncio.open_connection(*target)
        writer.write(struct.pack("!H", 40) + os.urandom(40) + struct.pack("!H", 65000) + os.urandom(100))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
        writer.close()

        async with aiohttp.ClientSession() as http:
            sdp = {"Content-Type": "application/sdp"}
            async with http.post(f"{url}/whep", data="v=0\r\n" + "a=x\r\n" * 20000, headers=sdp) as r:
                assert r.status == 413, await r.text()
            no_common = pc.localDescription.sdp.replace("H264", "XYZ1").replace("VP8", "XYZ2")
            no_common = re.sub(r"a=rtpmap:(\d+) (rtx|red|ulpfec)/", r"a=rtpmap:\1 XYZ3/", no_common)
            async with http.post(f"{url}/whep", data=no_common, headers=sdp) as r:
                body = await r.json()
                assert r.status == 400 and "codec" in body["error"].lower(), body
            async with http.post(f"{url}/whip", data="v=0\r\nm=video", headers=sdp) as r:
                assert r.status in (400, 409), await r.text()  # busy path or bad SDP, never a 500
        await asyncio.sleep(1.5)
        assert got.video_frames > before + 20, (before, got.video_frames)
    metrics = await asyncio.to_thread(
        lambda: __import__("urllib.request").request.urlopen(f"{server.http}/metrics").read().decode()
    )
    assert 'streamhive_webrtc_events_total{event="unknown_datagrams"}' in metrics, metrics


async def test_whip_and_whep_take_bearer_tokens(make_server: Callable[..., RunningServer]) -> None:
    import time

    import jwt

    secret = "webrtc-jwt-secret-0123456789abcdef"
    server = make_server(
        f"auth:\n  jwt:\n    secret: {secret}\npath_defaults:\n  publish_auth: [jwt]\n  read_auth: [jwt]\n"
    )

    def token(actions: list[str], paths: list[str]) -> str:
        return jwt.encode({"exp": time.time() + 60, "actions": actions, "paths": paths}, secret, "HS256")

    url = f"{server.http}/live/secret"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    assert (await exchange(pc, f"{url}/whip"))[0] == 401
    assert (await exchange(pc, f"{url}/whip", token(["read"], ["live/*"])))[0] == 403
    assert (await exchange(pc, f"{url}/whip", token(["publish"], ["other/*"])))[0] == 403
    await pc.close()
    async with whip_publish(f"{url}/whip", token=token(["publish"], ["live/*"])):
        await asyncio.to_thread(server.wait_for_path, "live/secret", 2)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        assert (await exchange(pc, f"{url}/whep"))[0] == 401
        await pc.close()
        async with whep_play(f"{url}/whep", token=token(["read"], ["live/secret"])) as got:
            await asyncio.sleep(2)
    assert got.video_frames > 20, server.log()
