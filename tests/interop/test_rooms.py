"""Rooms with aiortc participants (streamhive.sfu.client): each decodes every other's media."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import MediaStreamTrack

from streamhive.sfu.client import RoomClient
from tests.conftest import RunningServer
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
async def bot(server: RunningServer, room: str, identity: str, publish: bool = True) -> AsyncIterator[Bot]:
    client = RoomClient(ws_url(server, room), identity=identity)
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


async def _event(client: RoomClient, kind: str, timeout: float = 5) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            event = await client.events.get()
            if event["type"] == kind:
                return event

    return await asyncio.wait_for(find(), timeout)
