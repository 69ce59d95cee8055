"""Rooms with aiortc participants (streamhive.sfu.client): each decodes every other's media."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiortc import MediaStreamTrack

from streamhive.sfu.client import RoomClient, RoomError
from tests.conftest import FFMPEG, RunningServer, probe, publishing, record
from tests.interop.webrtc_clients import PatternVideo, Received, SineAudio, _consume, use_loopback

pytestmark = [pytest.mark.interop]


@pytest.fixture(autouse=True)
def _loopback() -> None:
    use_loopback()


def ws_url(server: RunningServer, room: str) -> str:
    return f"ws://127.0.0.1:{server.http_port}/rooms/{room}/ws"


class Bot:
    """A participant that decodes what it receives, per publisher identity."""

    def __init__(self, client: RoomClient) -> None:
        self.client = client
        self.got: dict[str, Received] = {}
        client.on_track = self._track

    def _track(self, identity: str, info: dict[str, Any], track: MediaStreamTrack) -> None:
        got = self.got.setdefault(identity, Received())
        got.tasks.append(asyncio.ensure_future(_consume(track, got)))

    def stop(self) -> None:
        for got in self.got.values():
            for task in got.tasks:
                task.cancel()


@contextlib.asynccontextmanager
async def bot(
    server: RunningServer, room: str, identity: str | None, publish: bool = True, token: str | None = None
) -> AsyncIterator[Bot]:
    client = RoomClient(ws_url(server, room), identity=identity, token=token)
    participant = Bot(client)
    await client.join()
    try:
        if publish:
            await client.publish(
                {"camera": PatternVideo(), "microphone": SineAudio()}, sizes={"camera": (320, 240)}
            )
        yield participant
    finally:
        participant.stop()
        await client.leave()


async def test_three_aiortc_participants_receive_each_other(server: RunningServer) -> None:
    async with bot(server, "demo", "alice") as alice, bot(server, "demo", "bob") as bob:
        await asyncio.sleep(1)
        async with bot(server, "demo", "carol") as carol:  # a late joiner gets everyone
            await asyncio.sleep(5)
            for me, others in (
                (alice, ("bob", "carol")),
                (bob, ("alice", "carol")),
                (carol, ("alice", "bob")),
            ):
                for other in others:
                    got = me.got.get(other)
                    assert got is not None, (me.client.identity, other, server.log())
                    assert got.video_frames >= 40 and got.sizes == {(320, 240)}, (
                        me.client.identity,
                        other,
                        got,
                    )
                    assert got.audio_samples >= 48000, (me.client.identity, other, got)
        left = await _event(alice.client, "participant_left")
        assert left["identity"] == "carol"
    # the audio-level header extension aiortc sends names a speaker
    speaking = [e for e in _drain(bob.client) if e["type"] == "active_speaker"]
    assert speaking and speaking[0]["speakers"][0] in ("alice", "bob", "carol"), speaking


def _drain(client: RoomClient) -> list[dict[str, Any]]:
    events = []
    while not client.events.empty():
        events.append(client.events.get_nowait())
    return events


async def _event(client: RoomClient, kind: str, timeout: float = 5) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            event = await client.events.get()
            if event["type"] == kind:
                return event

    return await asyncio.wait_for(find(), timeout)


SECRET = "room-secret-0123456789-0123456789-abcdef"
ROOMS_JWT = f"rooms:\n  auth: jwt\n  jwt:\n    secret: {SECRET}\n"


def token(room: str = "standup", sub: str = "alice", secret: str = SECRET, **claims: Any) -> str:
    body = {"sub": sub, "room": room, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


async def _refused(server: RunningServer, room: str, **join: Any) -> tuple[int | None, str]:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server, room)) as ws:
        await ws.send_str(json.dumps({"type": "join", **join}))
        message = await ws.receive()
        return ws.close_code, str(message.extra)


async def test_room_tokens_refuse_each_bypass(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(ROOMS_JWT)
    expired = token(exp=int(time.time()) - 60)
    cases = {
        "missing": ({}, 4001),
        "expired": ({"token": expired}, 4001),
        "other room": ({"token": token(room="other")}, 4003),
        "forged": ({"token": token(secret="x" * 40)}, 4001),
        "malformed": ({"token": "not.a.jwt"}, 4001),
        "alg none": (
            {"token": jwt.encode({"sub": "a", "room": "standup", "exp": 2**40}, None, "none")},
            4001,
        ),
    }
    for name, (join, code) in cases.items():
        closed, reason = await _refused(server, "standup", **join)
        assert closed == code, (name, closed, reason)
    async with bot(server, "standup", None, publish=False, token=token()) as alice:
        assert alice.client.identity == "alice"
    # grants exceeded: a token without camera may not publish one
    viewer = token(sub="viewer", grants={"sources": ["microphone"]})
    client = RoomClient(ws_url(server, "standup"), token=viewer)
    await client.join()
    try:
        with pytest.raises(RoomError, match="may not publish camera"):
            await client.publish({"camera": PatternVideo()})
    finally:
        await client.leave()


async def test_bad_signaling_is_refused_and_the_room_carries_on(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("rooms:\n  join_timeout: 1\n  max_message_bytes: 4096\n")
    async with bot(server, "demo", "alice") as alice, bot(server, "demo", "bob", publish=False) as bob:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws_url(server, "demo")) as ws:  # never joins
                message = await ws.receive(timeout=5)
                assert ws.close_code == 4008, message
            async with http.ws_connect(ws_url(server, "demo")) as ws:
                await ws.send_bytes(b"\x00\x01")
                await ws.receive(timeout=5)
                assert ws.close_code == 4400
            async with http.ws_connect(ws_url(server, "demo")) as ws:
                await ws.send_str(json.dumps({"type": "join", "identity": "mallory"}))
                assert json.loads((await ws.receive()).data)["type"] == "joined"
                for junk in (
                    "{",
                    "[]",
                    '{"type": 5}',
                    '{"type": "nope"}',
                    '{"type": "offer", "pc": "x"}',
                    '{"type": "offer", "pc": "publish", "sdp": "v=0", "tracks": []}',
                    '{"type": "mute", "track": "alice/camera", "muted": true}',
                ):
                    await ws.send_str(junk)
                    event = json.loads((await ws.receive(timeout=5)).data)
                    while event["type"] != "error":
                        event = json.loads((await ws.receive(timeout=5)).data)
                await ws.send_str(json.dumps({"type": "data", "data": "x" * 5000}))  # over max_message_bytes
                await ws.receive(timeout=5)
                assert ws.close_code is not None
            async with http.ws_connect(ws_url(server, "demo")) as ws:  # a flood
                await ws.send_str(json.dumps({"type": "join", "identity": "flood"}))
                for _ in range(300):
                    await ws.send_str('{"type": "ping"}')
                while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
                    pass
                assert ws.close_code == 4029
        before = bob.got["alice"].video_frames
        await asyncio.sleep(2)
        assert bob.got["alice"].video_frames > before + 20, server.log()
        assert alice.client.close_code is None


async def test_admin_api_mutes_removes_and_closes(server: RunningServer) -> None:
    async with bot(server, "demo", "alice") as alice, bot(server, "demo", "bob") as bob:
        await asyncio.sleep(2)
        listing = await asyncio.to_thread(server.api, "/api/v1/rooms")
        (room,) = listing["items"]  # type: ignore[index]
        assert room["name"] == "demo" and {p["identity"] for p in room["participants"]} == {"alice", "bob"}
        async with aiohttp.ClientSession() as http, http.get(f"{server.http}/metrics") as r:
            metrics = await r.text()
        assert 'streamhive_room_participants{room="demo"} 2.0' in metrics, metrics
        assert 'streamhive_room_subscriptions{room="demo"} 4.0' in metrics, metrics
        async with aiohttp.ClientSession(headers=server.api_headers) as http:
            url = f"{server.http}/api/v1/rooms/demo/participants/alice/tracks/camera/mute"
            async with http.post(url) as r:
                assert r.status == 200 and (await r.json())["muted"] is True
            muted = await _event(bob.client, "track_muted")
            assert muted["track"] == "alice/camera" and muted["muted"] is True
            frozen = bob.got["alice"].video_frames
            await asyncio.sleep(1.5)
            assert bob.got["alice"].video_frames <= frozen + 2  # nothing forwarded while muted
            async with http.delete(f"{server.http}/api/v1/rooms/demo/participants/bob") as r:
                assert r.status == 200
            await asyncio.sleep(0.5)
            assert bob.client.close_code == 4010
            left = await _event(alice.client, "participant_left")
            assert left["identity"] == "bob"
            async with http.delete(f"{server.http}/api/v1/rooms/demo") as r:
                assert r.status == 200
            closed = await _event(alice.client, "room_closed")
            assert closed["reason"]
            await asyncio.sleep(0.5)
            assert alice.client.close_code == 4004
            async with http.get(f"{server.http}/api/v1/rooms/demo") as r:
                assert r.status == 404


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
async def test_room_tracks_are_hub_paths(server: RunningServer, tmp_path: Path) -> None:
    async with bot(server, "demo", "alice"):
        path = await asyncio.to_thread(server.wait_for_path, "rooms/demo/alice", 2)
        assert {t["codec"] for t in path["tracks"]} == {"h264", "opus"}, path  # type: ignore[index, union-attr]
        out = tmp_path / "alice.mkv"
        await record(f"rtsp://127.0.0.1:{server.rtsp_port}/rooms/demo/alice", out, 3)
    media = await probe(out)
    assert media["video"]["codec_name"] == "h264" and media["video"]["width"] == 320, media
    assert int(media["video"]["nb_read_frames"]) > 30, media  # type: ignore[call-overload]
    assert media["audio"]["codec_name"] == "opus", media


async def test_chat_messages_are_relayed(server: RunningServer) -> None:
    async with (
        bot(server, "demo", "alice", publish=False) as alice,
        bot(server, "demo", "bob", publish=False) as bob,
        bot(server, "demo", "carol", publish=False) as carol,
    ):
        await alice.client.send_data({"text": "hello"})
        await alice.client.send_data("just bob", to=["bob"])
        first = await _event(bob.client, "data")
        assert first == {"type": "data", "from": "alice", "data": {"text": "hello"}}
        assert (await _event(bob.client, "data"))["data"] == "just bob"
        assert (await _event(carol.client, "data"))["data"] == {"text": "hello"}
        with pytest.raises(TimeoutError):
            await _event(carol.client, "data", timeout=0.5)


def _ice_port(client: RoomClient) -> int:
    assert client.publish_pc is not None and client.publish_pc.remoteDescription is not None
    line = next(
        x for x in client.publish_pc.remoteDescription.sdp.splitlines() if x.startswith("a=candidate:")
    )
    return int(line.split()[5])


async def test_rooms_in_two_worker_processes(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("rooms:\n  workers: 2\n")
    rooms = ("alpha", "beta")  # crc32 sends them to different workers
    async with (
        bot(server, rooms[0], "alice") as alice,
        bot(server, rooms[0], "bob") as bob,
        bot(server, rooms[1], "carol") as carol,
        bot(server, rooms[1], "dave") as dave,
    ):
        await asyncio.sleep(4)
        for me, other in ((alice, "bob"), (bob, "alice"), (carol, "dave"), (dave, "carol")):
            got = me.got.get(other)
            assert got is not None and got.video_frames >= 30 and got.audio_samples >= 48000, (other, got)
        ports = {_ice_port(alice.client), _ice_port(carol.client)}
        assert len(ports) == 2 and server.webrtc_port not in ports, ports
        listing = await asyncio.to_thread(server.api, "/api/v1/rooms")
        assert [room["name"] for room in listing["items"]] == ["alpha", "beta"]  # type: ignore[index]
        async with aiohttp.ClientSession(headers=server.api_headers) as http:
            async with http.delete(f"{server.http}/api/v1/rooms/beta/participants/dave") as r:
                assert r.status == 200, await r.text()
            await asyncio.sleep(0.5)
            assert dave.client.close_code == 4010  # the worker's close code, through the front
    closed, _reason = await _refused(server, "alpha", identity="not valid!")
    assert closed == 4400


async def test_chat_over_data_channels_and_websockets(server: RunningServer) -> None:
    alice = RoomClient(ws_url(server, "demo"), identity="alice", data_channel=True)
    bob = RoomClient(ws_url(server, "demo"), identity="bob", data_channel=True)
    carol = RoomClient(ws_url(server, "demo"), identity="carol")  # WebSocket only
    for client in (alice, bob, carol):
        await client.join()
    try:
        for _ in range(100):
            if alice.channel_open and bob.channel_open:
                break
            await asyncio.sleep(0.05)
        assert alice.channel_open and bob.channel_open
        await asyncio.sleep(0.3)  # the server's side of the channel opens with the client's DCEP open
        await alice.send_data({"text": "over SCTP"})
        assert (await _event(bob, "data")) == {"type": "data", "from": "alice", "data": {"text": "over SCTP"}}
        assert (await _event(carol, "data"))["data"] == {"text": "over SCTP"}
        await carol.send_data("over the WebSocket")
        assert (await _event(alice, "data"))["data"] == "over the WebSocket"
        assert (await _event(bob, "data"))["from"] == "carol"
        async with aiohttp.ClientSession() as http, http.get(f"{server.http}/metrics") as r:
            metrics = await r.text()
        assert 'streamhive_webrtc_events_total{event="room_data_over_sctp"} 3.0' in metrics, metrics
    finally:
        for client in (alice, bob, carol):
            await client.leave()


async def test_abrupt_disconnects_free_their_sessions(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("max_connections_per_ip: 3\n")
    for n in range(6):  # twice the limit: each must give its slot back
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server, "demo")) as ws:
            await ws.send_str(json.dumps({"type": "join", "identity": f"p{n}"}))
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "joined"
        # closed without a leave
    await asyncio.sleep(0.5)
    sessions = await asyncio.to_thread(server.api, "/api/v1/sessions")
    assert sessions["count"] == 0, sessions  # type: ignore[index]


async def test_a_source_must_carry_its_kind(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(ROOMS_JWT)
    mic_only = token(sub="mic", grants={"sources": ["microphone"]})
    client = RoomClient(ws_url(server, "standup"), token=mic_only)
    await client.join()
    try:
        with pytest.raises(RoomError, match="microphone must be audio"):
            await client.publish({"microphone": PatternVideo()})
    finally:
        await client.leave()


async def test_address_rules_apply_to_rooms(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("auth:\n  ip_deny: [127.0.0.0/8]\n")
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/rooms/demo/ws") as response:
        assert response.status == 403


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
async def test_a_hub_path_joins_a_room_as_a_participant(server: RunningServer) -> None:
    async with publishing(server, "live/cam", 30), bot(server, "demo", "alice", publish=False) as alice:
        async with aiohttp.ClientSession(headers=server.api_headers) as http:
            url = f"{server.http}/api/v1/rooms/demo/streams"
            async with http.post(url, json={"path": "live/cam", "identity": "lobby-cam"}) as r:
                assert r.status == 201, await r.text()
            async with http.post(url, json={"path": "live/none"}) as r:
                assert r.status == 404
        joined = await _event(alice.client, "participant_joined")
        assert joined["participant"]["identity"] == "lobby-cam"
        await asyncio.sleep(5)
        got = alice.got.get("lobby-cam")
        assert got is not None and got.video_frames >= 40 and got.sizes == {(320, 240)}, (got, server.log())
        assert got.audio_samples >= 48000 and got.audio_rates == {48000}, got  # AAC became Opus
        remove = f"{server.http}/api/v1/rooms/demo/participants/lobby-cam"
        async with aiohttp.ClientSession(headers=server.api_headers) as http, http.delete(remove) as r:
            assert r.status == 200
        left = await _event(alice.client, "participant_left")
        assert left["identity"] == "lobby-cam"


async def test_last_n_forwards_only_the_recent_speakers_video(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("rooms:\n  last_n: 1\n")
    async with (
        bot(server, "demo", "alice") as alice,
        bot(server, "demo", "bob") as bob,
        bot(server, "demo", "dave", publish=False) as dave,
    ):
        speaking = await _event(dave.client, "active_speaker", timeout=10)
        speaker = speaking["speakers"][0]
        await asyncio.sleep(2)  # the other's video stops at its next packet
        before = {who: got.video_frames for who, got in dave.got.items()}
        await asyncio.sleep(2)
        grew = {who for who, got in dave.got.items() if got.video_frames > before[who] + 10}
        assert grew == {speaker}, (speaker, before, {w: g.video_frames for w, g in dave.got.items()})
        assert all(got.audio_samples >= 48000 for got in dave.got.values())  # audio is never cut
        assert alice.client.close_code is None and bob.client.close_code is None


async def test_a_renegotiation_storm_is_refused_and_the_room_carries_on(server: RunningServer) -> None:
    async with bot(server, "demo", "alice") as alice, bot(server, "demo", "bob", publish=False) as bob:
        await asyncio.sleep(1)
        pc = alice.client.publish_pc
        assert pc is not None and pc.localDescription is not None
        same = list(alice.client._published.values())  # the same offer again and again
        storm = {"type": "offer", "pc": "publish", "sdp": pc.localDescription.sdp, "tracks": same}
        for _ in range(15):
            await alice.client.send(storm)
        refused = await _event(alice.client, "error")
        assert "too fast" in refused["message"] and refused["pc"] == "publish", refused
        before = bob.got["alice"].video_frames
        await asyncio.sleep(2)
        assert bob.got["alice"].video_frames > before + 20  # media carried on through it
