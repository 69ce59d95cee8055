"""A Python room participant on aiortc: bots, tests and tools join rooms with it.

It speaks the signaling protocol of docs/rooms.md exactly as the browser SDK does: a publish and
a subscribe PeerConnection, the client offering on both; every track others publish is
subscribed to (a ``recvonly`` transceiver each) and handed to ``on_track`` with the
``MediaStreamTrack`` aiortc decodes. Example::

    async with RoomClient("ws://127.0.0.1:8080/rooms/demo/ws", identity="bot") as room:
        room.on_track = lambda who, info, track: print(who, info["source"])
        await room.publish({"camera": my_video_track, "microphone": my_audio_track})
        await asyncio.sleep(60)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

log = logging.getLogger("streamhive.rooms.client")

TrackHandler = Callable[[str, dict[str, Any], MediaStreamTrack], None]


class RoomError(Exception):
    """The server refused something: an ``error`` event, or a close with a code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RoomClient:
    """One participant. ``events`` receives every server event (for tests and tools)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        identity: str | None = None,
        name: str | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        auto_subscribe: bool = True,
        data_channel: bool = False,
    ) -> None:
        self.url = url
        self.token = token
        self.identity = identity
        self.name = name
        # max-bundle: with aiortc's default ("balanced") the first audio section gets a transport
        # of its own, which a later BUNDLE answer leaves unstarted.
        self.config = RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.auto_subscribe = auto_subscribe
        self.data_channel = data_channel
        self._channel: RTCDataChannel | None = None
        self.on_track: TrackHandler | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.participants: dict[str, dict[str, Any]] = {}
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.close_code: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._receiving: dict[str, str] = {}  # subscribe mid -> track id
        self._transceivers: dict[str, RTCRtpTransceiver] = {}  # track id -> its recvonly transceiver
        self._subscribe_lock = asyncio.Lock()
        self._published: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RoomClient:
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    # -- joining and leaving -------------------------------------------------------------------
    async def join(self) -> dict[str, Any]:
        """Open the WebSocket and join; the ``joined`` event, or RoomError with the close code."""
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url)
        join: dict[str, Any] = {"type": "join"}
        for key in ("token", "identity", "name"):
            if getattr(self, key) is not None:
                join[key] = getattr(self, key)
        await self._ws.send_str(json.dumps(join))
        message = await self._ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            code = self._ws.close_code
            await self._close_transport()
            raise RoomError(f"join refused: {message.extra or message.type}", code)
        joined = json.loads(message.data)
        if joined.get("type") != "joined":
            await self._close_transport()
            raise RoomError(f"unexpected first event {joined}")
        self.identity = joined["identity"]
        for participant in joined["participants"]:
            self.participants[participant["identity"]] = participant
        self._reader = asyncio.ensure_future(self._read())
        self._resubscribe()
        if self.data_channel:
            await self._negotiate_publish()
        return joined

    async def leave(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(json.dumps({"type": "leave"}))
        await self._close_transport()

    async def _close_transport(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._http is not None:
            await self._http.close()

    # -- publishing ----------------------------------------------------------------------------
    async def publish(
        self, tracks: dict[str, MediaStreamTrack], sizes: dict[str, tuple[int, int]] | None = None
    ) -> None:
        """Publish tracks by source ("camera", "microphone", "screen", "screen_audio")."""
        await self._negotiate_publish(tracks, sizes or {})

    async def _negotiate_publish(
        self,
        tracks: dict[str, MediaStreamTrack] | None = None,
        sizes: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        if self.publish_pc is None:
            self.publish_pc = RTCPeerConnection(self.config)
            if self.data_channel:  # chat and app messages ride the publish connection
                self._channel = self.publish_pc.createDataChannel("data")
                self._channel.on("message", self._channel_message)
        pc = self.publish_pc
        added: dict[str, RTCRtpTransceiver] = {}
        for source, track in (tracks or {}).items():
            added[source] = pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        for source, transceiver in added.items():
            item: dict[str, Any] = {"mid": transceiver.mid, "source": source}
            if sizes and source in sizes:
                item["width"], item["height"] = sizes[source]
            self._published[source] = item
        answer = await self._negotiate("publish", pc.localDescription.sdp, list(self._published.values()))
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def _channel_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            with contextlib.suppress(ValueError):
                event = json.loads(message)
                if isinstance(event, dict):
                    self.events.put_nowait(event)

    async def send_data(self, data: Any, to: list[str] | None = None) -> None:
        """A chat/app message: on the data channel when it is open, else on the WebSocket."""
        message: dict[str, Any] = {"type": "data", "data": data}
        if to is not None:
            message["to"] = to
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(json.dumps(message))
        else:
            await self.send(message)

    @property
    def channel_open(self) -> bool:
        return self._channel is not None and self._channel.readyState == "open"

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def _negotiate(self, pc: str, sdp: str, tracks: list[dict[str, Any]]) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answers[pc] = future
        await self.send({"type": "offer", "pc": pc, "sdp": sdp, "tracks": tracks})
        return await asyncio.wait_for(future, 10)

    # -- subscribing ---------------------------------------------------------------------------
    def _resubscribe(self) -> None:
        if self.auto_subscribe:
            task = asyncio.ensure_future(self._subscribe())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _subscribe(self) -> None:
        async with self._subscribe_lock:  # one negotiation at a time; the last one sees all changes
            wanted = {track["id"]: track for p in self.participants.values() for track in p.get("tracks", [])}
            if set(wanted) == set(self._transceivers):
                return
            if self.subscribe_pc is None:
                if not wanted:
                    return
                self.subscribe_pc = RTCPeerConnection(self.config)
                self.subscribe_pc.on("track", self._track)
            pc = self.subscribe_pc
            for track_id in list(self._transceivers):
                if track_id not in wanted:
                    del self._transceivers[track_id]
            for track_id, info in wanted.items():
                if track_id not in self._transceivers:
                    self._transceivers[track_id] = pc.addTransceiver(info["kind"], direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            self._receiving = {t.mid: track_id for track_id, t in self._transceivers.items() if t.mid}
            tracks = [{"mid": mid, "track": track_id} for mid, track_id in self._receiving.items()]
            try:
                answer = await self._negotiate("subscribe", pc.localDescription.sdp, tracks)
            except (TimeoutError, RoomError, ConnectionError) as exc:
                log.info("subscribe negotiation failed: %s", exc)
                return
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            # aiortc starts the transceivers of an answer in a task that walks the list: adding
            # one before it is done breaks it, so the next negotiation waits for the connection.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected(pc), 10)

    @staticmethod
    async def _connected(pc: RTCPeerConnection) -> None:
        while pc.connectionState not in ("connected", "failed", "closed"):
            await asyncio.sleep(0.02)

    def _track(self, track: MediaStreamTrack) -> None:
        assert self.subscribe_pc is not None
        for transceiver in self.subscribe_pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid in self._receiving:
                track_id = self._receiving[transceiver.mid]
                identity = track_id.rpartition("/")[0]
                info = next(
                    (t for t in self.participants.get(identity, {}).get("tracks", []) if t["id"] == track_id),
                    {"id": track_id, "kind": track.kind},
                )
                if self.on_track is not None:
                    self.on_track(identity, info, track)
                return

    # -- events --------------------------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            self._apply(event)
            self.events.put_nowait(event)
        self.close_code = self._ws.close_code
        self.events.put_nowait({"type": "closed", "code": self._ws.close_code})
        for future in self._answers.values():
            if not future.done():
                future.set_exception(RoomError("the room closed", self._ws.close_code))

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if event.get("identity") == self.identity and kind != "answer":
            return  # our own tracks: nothing to subscribe to
        if kind == "answer":
            future = self._answers.pop(event["pc"], None)
            if future is not None and not future.done():
                future.set_result(event["sdp"])
        elif kind == "error":
            log.info("room error: %s", event.get("message"))
            for future in self._answers.values():
                if not future.done():
                    future.set_exception(RoomError(event.get("message", "error")))
            self._answers.clear()
        elif kind == "participant_joined":
            participant = event["participant"]
            self.participants[participant["identity"]] = participant
            self._resubscribe()
        elif kind == "participant_left":
            self.participants.pop(event["identity"], None)
            self._resubscribe()
        elif kind == "track_published":
            participant = self.participants.setdefault(
                event["identity"], {"identity": event["identity"], "tracks": []}
            )
            participant["tracks"] = [t for t in participant["tracks"] if t["id"] != event["track"]["id"]]
            participant["tracks"].append(event["track"])
            self._resubscribe()
        elif kind == "track_unpublished":
            participant = self.participants.get(event["identity"])
            if participant is not None:
                participant["tracks"] = [t for t in participant["tracks"] if t["id"] != event["track"]]
            self._resubscribe()
        elif kind == "track_muted":
            participant = self.participants.get(event["identity"], {})
            for track in participant.get("tracks", []):
                if track["id"] == event["track"]:
                    track["muted"] = event["muted"]
