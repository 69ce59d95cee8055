"""Room workers (servers/room_workers.py) and RoomClient (sfu/client.py): what the review found.

The front relays each participant's WebSocket and the rooms API to a worker process; these tests
check it against real servers: the API behind ``auth.api``, nothing opened upstream for a request
that is no WebSocket, a dead worker's close code, the per-address connection limit, and a worker
that never reports. RoomClient: errors fail only the offer they name, a failed subscribe
negotiation is tried again, a failed join closes its session, subscribe transceivers are reused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver

from streamhive.config import Config
from streamhive.servers import room_workers
from streamhive.sfu.client import RoomClient, RoomError
from tests.conftest import RunningServer
from tests.interop.test_rooms import _event, bot, ws_url
from tests.interop.webrtc_clients import PatternVideo, Received, SineAudio, _consume, use_loopback

pytestmark = [pytest.mark.interop]

WORKERS = "rooms:\n  workers: 2\n"
API_AUTH = (
    "auth:\n  api: [users]\n  users:\n    - user: admin\n      password: admin-secret\n      actions: [api]\n"
)
READY = re.compile(r"room worker (\d+) \(pid (\d+)\) ready, HTTP on 127\.0\.0\.1:(\d+)")


@pytest.fixture(autouse=True)
def _loopback() -> None:
    use_loopback()


def _workers(server: RunningServer, starts: int = 1) -> dict[int, tuple[int, int]]:
    """Worker index -> (pid, HTTP port) of its latest start, once ``starts`` starts are logged."""
    deadline = time.monotonic() + 20
    while True:
        found = READY.findall(server.log())
        if len(found) >= starts or time.monotonic() > deadline:
            return {int(index): (int(pid), int(port)) for index, pid, port in found}
        time.sleep(0.1)


def _worker_of(room: str) -> int:
    return zlib.crc32(room.encode()) % 2


async def _join(http: aiohttp.ClientSession, server: RunningServer, room: str, identity: str) -> Any:
    ws = await http.ws_connect(ws_url(server, room))
    await ws.send_str(json.dumps({"type": "join", "identity": identity}))
    joined = json.loads((await ws.receive(timeout=5)).data)
    assert joined["type"] == "joined", joined
    return ws


async def _until(check: Callable[[], bool], timeout: float = 15) -> bool:
    """Whether ``check`` came true within ``timeout`` (media takes its time on a busy machine)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def _decoding(got: dict[str, Received], key: str, audio: bool = False) -> Callable[[], bool]:
    def check() -> bool:
        item = got.get(key)
        return item is not None and (item.audio_samples >= 48000 if audio else item.video_frames >= 20)

    return check


# -- the front -------------------------------------------------------------------------------------
async def test_rooms_api_behind_api_auth(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(WORKERS + API_AUTH)
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:admin-secret").decode()}
    async with aiohttp.ClientSession() as http:
        ws = await _join(http, server, "demo", "alice")
        async with http.get(f"{server.http}/api/v1/rooms", headers=auth) as r:
            assert r.status == 200, await r.text()
            assert [room["name"] for room in (await r.json())["items"]] == ["demo"]
        async with http.get(f"{server.http}/api/v1/rooms/demo", headers=auth) as r:
            assert r.status == 200, await r.text()
            assert [p["identity"] for p in (await r.json())["participants"]] == ["alice"]
        async with http.get(f"{server.http}/api/v1/rooms/demo") as r:
            assert r.status == 401  # the front checks the credentials
        async with http.delete(f"{server.http}/api/v1/rooms/demo/participants/alice", headers=auth) as r:
            assert r.status == 200, await r.text()
        await ws.receive(timeout=5)
        assert ws.close_code == 4010
    assert "RuntimeWarning" not in server.log()  # the worker's entry module is imported once


async def test_no_upstream_for_a_request_that_is_no_websocket(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(WORKERS)
    _pid, port = _workers(server, 2)[_worker_of("demo")]
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(ws_url(server, "demo").replace("ws://", "http://")) as r:
                assert r.status == 400
        async with http.get(f"http://127.0.0.1:{port}/api/v1/sessions") as r:
            assert (await r.json())["count"] == 0
        async with http.get(f"{server.http}/api/v1/sessions") as r:
            assert (await r.json())["count"] == 0


async def test_a_dead_worker_closes_with_1012_and_comes_back(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(WORKERS)
    pid, _port = _workers(server, 2)[_worker_of("demo")]
    async with aiohttp.ClientSession() as http:
        ws = await _join(http, server, "demo", "alice")
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):  # messages racing the break: a failed relay send is no stray exception
            if ws.closed:
                break
            await ws.send_str(json.dumps({"type": "ping"}))
            await asyncio.sleep(0.005)
        message = await ws.receive(timeout=10)
        while message.type == aiohttp.WSMsgType.TEXT:
            message = await ws.receive(timeout=10)
        assert ws.close_code == 1012, (message, server.log())
        assert message.extra == "room worker restarted"
    await asyncio.to_thread(_workers, server, 3)
    # the new worker bound the same ICE port: media flows again
    async with bot(server, "demo", "alice") as alice, bot(server, "demo", "bob") as bob:
        for me, other in ((alice, "bob"), (bob, "alice")):
            assert await _until(_decoding(me.got, other)), (other, me.got)
    assert "never retrieved" not in server.log()


async def test_the_front_limits_connections_per_client_address(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("max_connections_per_ip: 1\n" + WORKERS)
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession(connector=other) as http2:
        first = await _join(http, server, "alpha", "alice")
        second = await _join(http2, server, "alpha", "bob")  # one worker, two client addresses
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(server, "beta"))
        assert refused.value.status == 503
        async with http.get(f"{server.http}/api/v1/sessions") as r:
            remotes = sorted(s["remote"].rpartition(":")[0] for s in (await r.json())["items"])
        assert remotes == ["127.0.0.1", "127.0.0.2"]
        await first.close()
        await second.close()


async def test_more_than_100_participants_through_the_front(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(WORKERS + "  join_timeout: 30\n")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        waiting = [await http.ws_connect(ws_url(server, f"room{i}")) for i in range(100)]  # no join yet
        # participant 101 needs an upstream connection of its own, at once
        last = await asyncio.wait_for(_join(http, server, "room100", "alice"), 5)
        for ws in (*waiting, last):
            await ws.close()


async def test_a_worker_that_does_not_report_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    silent = tmp_path / "silent-worker"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(room_workers, "START_TIMEOUT", 0.5)
    monkeypatch.setattr(sys, "executable", str(silent))  # started as the worker: never reports
    worker = room_workers.Worker(0, Config())
    with pytest.raises(TimeoutError):
        await worker._start()
    assert worker.process is not None and worker.process.returncode is not None


# -- RoomClient ------------------------------------------------------------------------------------
def _vp8_publisher(client: RoomClient) -> None:
    """Make ``client`` publish its video as VP8 (the server picks H.264 when offered)."""
    pc = client.publish_pc = RTCPeerConnection(client.config)
    add = pc.addTransceiver
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]

    def add_vp8(track: MediaStreamTrack, direction: str) -> RTCRtpTransceiver:
        transceiver = add(track, direction=direction)
        if track.kind == "video":
            transceiver.setCodecPreferences(vp8)
        return transceiver

    pc.addTransceiver = add_vp8  # type: ignore[assignment,method-assign]


async def _publisher(
    server: RunningServer,
    identity: str,
    vp8: bool = False,
    sources: tuple[str, ...] = ("camera", "microphone"),
) -> RoomClient:
    client = RoomClient(ws_url(server, "demo"), identity=identity, auto_subscribe=False)
    await client.join()
    if vp8:
        _vp8_publisher(client)
    tracks = {"camera": PatternVideo(), "microphone": SineAudio()}
    await client.publish({source: tracks[source] for source in sources})
    return client


async def test_an_error_fails_only_the_offer_it_names(server: RunningServer) -> None:
    client = RoomClient(ws_url(server, "demo"), identity="bot", auto_subscribe=False)
    await client.join()
    try:
        sent = client.send

        async def send(message: dict[str, Any]) -> None:  # another message's error comes first
            if message.get("type") == "offer":
                await sent({"type": "subscription", "track": "nobody/camera", "height": 100})
            await sent(message)

        client.send = send  # type: ignore[method-assign]
        await client.publish({"camera": PatternVideo()})
        assert client.publish_pc is not None and client.publish_pc.signalingState == "stable"
        started = time.monotonic()
        with pytest.raises(RoomError, match="source must be"):
            await client.publish({"bogus": PatternVideo()})
        assert time.monotonic() - started < 5  # refused at once, not after the answer timeout
    finally:
        await client.leave()


async def test_a_failed_subscribe_negotiation_is_tried_again(server: RunningServer) -> None:
    async with bot(server, "demo", "bob", publish=False) as bob:
        sent = bob.client.send
        broken: list[str] = []

        async def send(message: dict[str, Any]) -> None:  # the server refuses the first offer
            if message.get("pc") == "subscribe" and not broken:
                broken.append(message["sdp"])
                message = {**message, "sdp": "v=0\r\n"}
            await sent(message)

        bob.client.send = send  # type: ignore[method-assign]
        alice = await _publisher(server, "alice", sources=("camera",))  # one event: one negotiation
        try:
            assert await _until(_decoding(bob.got, "alice")), bob.got
        finally:
            await alice.leave()
        assert broken


async def test_a_failed_join_closes_its_session(server: RunningServer) -> None:
    refused = RoomClient(ws_url(server, "demo"), identity="not valid!")
    with pytest.raises(RoomError):
        await refused.join()
    assert refused._http is not None and refused._http.closed
    unreachable = RoomClient(ws_url(server, "bad name!"))
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await unreachable.join()
    assert unreachable._http is not None and unreachable._http.closed


class Latest:
    """What a subscriber decodes per track id; a reused track object moves to its new track."""

    def __init__(self, client: RoomClient) -> None:
        self.got: dict[str, Received] = {}
        self._readers: dict[int, asyncio.Task[None]] = {}
        client.on_track = self._track

    def _track(self, identity: str, info: dict[str, Any], track: MediaStreamTrack) -> None:
        old = self._readers.pop(id(track), None)
        if old is not None:
            old.cancel()
        self._readers[id(track)] = asyncio.ensure_future(
            _consume(track, self.got.setdefault(info["id"], Received()))
        )

    def stop(self) -> None:
        for task in self._readers.values():
            task.cancel()


async def test_subscribe_transceivers_are_reused(server: RunningServer) -> None:
    carol = RoomClient(ws_url(server, "demo"), identity="carol")
    seen = Latest(carol)
    await carol.join()
    try:
        for identity, vp8, sections in (("alice", False, 2), ("bob", False, 2), ("dave", True, 3)):
            publisher = await _publisher(server, identity, vp8)
            try:
                assert await _until(_decoding(seen.got, f"{identity}/camera")), (identity, seen.got)
                assert await _until(_decoding(seen.got, f"{identity}/microphone", audio=True)), seen.got
            finally:
                await publisher.leave()
            await _event(carol, "participant_left")
            assert carol.subscribe_pc is not None
            # bob's tracks took alice's transceivers; dave's VP8 camera could not take an H.264 one
            assert len(carol.subscribe_pc.getTransceivers()) == sections, identity
    finally:
        seen.stop()
        await carol.leave()
