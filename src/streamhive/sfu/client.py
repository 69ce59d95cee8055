"""A Python room participant on aiortc: bots, tests and tools join rooms with it.

It speaks the signaling protocol of docs/rooms.md exactly as the browser SDK does: a publish and
a subscribe PeerConnection, the client offering on both; every track others publish is
subscribed to (a ``recvonly`` transceiver each) and handed to ``on_track`` with the
``MediaStreamTrack`` aiortc decodes. When a track goes away its transceiver is kept aside
(inactive) and reused, mid included, for the next track of the same kind, so the subscribe
connection does not grow by a section per track ever published; as in browsers, a reused
transceiver's track object is handed to ``on_track`` again for the new track. Example::

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
    RTCRtpCodecCapability,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS

log = logging.getLogger("streamhive.rooms.client")

#: Seconds before a failed subscribe negotiation is tried again (once).
RETRY_DELAY = 1.0

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
        self._spare: list[RTCRtpTransceiver] = []  # inactive, their track gone: reused first
        self._started: set[str] = set()  # mids whose receiver started (codec and SSRC fixed then)
        self._answered: set[str] | None = set()  # the tracks of the last answered subscribe offer
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
        """Open the WebSocket and join; the ``joined`` event, or RoomError with the close code.

        Whatever fails (a refused upgrade, a refused join) closes what was opened.
        """
        self._http = aiohttp.ClientSession()
        try:
            joined = await self._join(self._http)
            self.identity = joined["identity"]
            for participant in joined["participants"]:
                self.participants[participant["identity"]] = participant
            self._reader = asyncio.ensure_future(self._read())
            self._resubscribe()
            if self.data_channel:
                await self._negotiate_publish()
        except BaseException:
            await self._close_transport()
            raise
        return joined

    async def _join(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        ws = self._ws = await http.ws_connect(self.url)
        join: dict[str, Any] = {"type": "join"}
        for key in ("token", "identity", "name"):
            if getattr(self, key) is not None:
                join[key] = getattr(self, key)
        await ws.send_str(json.dumps(join))
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RoomError(f"join refused: {message.extra or message.type}", ws.close_code)
        joined: dict[str, Any] = json.loads(message.data)
        if joined.get("type") != "joined":
            raise RoomError(f"unexpected first event {joined}")
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
    def _resubscribe(self, delay: float = 0.0, retry: bool = True) -> None:
        if self.auto_subscribe:
            task = asyncio.ensure_future(self._subscribe(delay, retry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, delay: float, retry: bool) -> None:
        """Negotiate the subscribe connection; a failure is tried again once, ``RETRY_DELAY`` later
        (the server may have refused a track that just went away, or been slow)."""
        await asyncio.sleep(delay)
        async with self._subscribe_lock:  # one negotiation at a time; the last one sees all changes
            try:
                while await self._renegotiate():
                    pass
            except (TimeoutError, RoomError, ConnectionError) as exc:
                if retry and self._ws is not None and not self._ws.closed:
                    log.info("subscribe negotiation failed (%s); trying again in %g s", exc, RETRY_DELAY)
                    self._resubscribe(RETRY_DELAY, retry=False)
                else:
                    log.warning("subscribe negotiation failed: %s", exc)

    async def _renegotiate(self) -> bool:
        """One subscribe offer and answer for the tracks others publish now; True when it must go
        again (a reused transceiver could not take its track: the track's codec is another)."""
        wanted = {track["id"]: track for p in self.participants.values() for track in p.get("tracks", [])}
        if set(wanted) == self._answered:
            return False
        if self.subscribe_pc is None:
            self.subscribe_pc = RTCPeerConnection(self.config)
            self.subscribe_pc.on("track", self._track)
        pc = self.subscribe_pc
        reused = self._assign(pc, wanted)
        await pc.setLocalDescription(await pc.createOffer())
        self._receiving = {t.mid: track_id for track_id, t in self._transceivers.items() if t.mid}
        tracks = [{"mid": mid, "track": track_id} for mid, track_id in self._receiving.items()]
        answer = await self._negotiate("subscribe", pc.localDescription.sdp, tracks)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._answered = set(wanted)
        refused = self._take_answer(answer, reused)
        # aiortc starts the transceivers of an answer in a task that walks the list: adding
        # one before it is done breaks it, so the next negotiation waits for the connection.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected(pc), 10)
        for track_id in refused:  # a spare of another codec could not take it: a new one will
            transceiver = self._transceivers[track_id]
            self._set_aside(transceiver)
            self._transceivers[track_id] = pc.addTransceiver(transceiver.kind, direction="recvonly")
            self._answered = None
        return bool(refused)

    def _assign(
        self, pc: RTCPeerConnection, wanted: dict[str, dict[str, Any]]
    ) -> dict[str, RTCRtpTransceiver]:
        """Give each wanted track a transceiver, a spare one of its kind first; the reused ones."""
        for track_id in [t for t in self._transceivers if t not in wanted]:
            self._set_aside(self._transceivers.pop(track_id))
        reused: dict[str, RTCRtpTransceiver] = {}
        for track_id, info in wanted.items():
            if track_id in self._transceivers:
                continue
            transceiver = next((t for t in self._spare if t.kind == info["kind"]), None)
            if transceiver is None:
                transceiver = pc.addTransceiver(info["kind"], direction="recvonly")
            else:
                self._spare.remove(transceiver)
                transceiver.direction = "recvonly"
                reused[track_id] = transceiver
            self._transceivers[track_id] = transceiver
        return reused

    def _set_aside(self, transceiver: RTCRtpTransceiver) -> None:
        transceiver.direction = "inactive"  # left out of ``tracks`` too: the server answers it inactive
        self._spare.append(transceiver)

    def _take_answer(self, answer: str, reused: dict[str, RTCRtpTransceiver]) -> list[str]:
        """Fit aiortc to the answer where it cannot on its own; the reused tracks it refused.

        aiortc fixes a receiver's codec and SSRCs when it starts. So a transceiver that starts is
        pinned to its codec (a reused one is offered only that one: a track of another codec is
        answered inactive there, and must move to a new transceiver), and the new SSRC of a reused one
        is routed to it; aiortc fires no ``track`` event for it either, so ``on_track`` is called.
        """
        sections = {media.rtp.muxId: media for media in aiortc_sdp.SessionDescription.parse(answer).media}
        refused: list[str] = []
        for track_id, transceiver in self._transceivers.items():
            media = sections.get(transceiver.mid or "")
            if media is None or transceiver.currentDirection != "recvonly" or not media.rtp.codecs:
                if track_id in reused:
                    refused.append(track_id)
                continue
            if transceiver.mid not in self._started:
                self._started.add(transceiver.mid or "")
                _pin(transceiver, media.rtp.codecs[0].payloadType)
            elif track_id in reused:
                receiver = transceiver.receiver
                # private: aiortc registers a receiver's SSRCs once, when it starts
                receiver.transport._rtp_router.register_receiver(
                    receiver, ssrcs=[s.ssrc for s in media.ssrc], payload_types=[]
                )
                if receiver.track is not None:
                    self._deliver(track_id, receiver.track)
        return refused

    @staticmethod
    async def _connected(pc: RTCPeerConnection) -> None:
        while pc.connectionState not in ("connected", "failed", "closed"):
            await asyncio.sleep(0.02)

    def _track(self, track: MediaStreamTrack) -> None:
        assert self.subscribe_pc is not None
        for transceiver in self.subscribe_pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid in self._receiving:
                self._deliver(self._receiving[transceiver.mid], track)
                return

    def _deliver(self, track_id: str, track: MediaStreamTrack) -> None:
        identity = track_id.rpartition("/")[0]
        info = next(
            (t for t in self.participants.get(identity, {}).get("tracks", []) if t["id"] == track_id),
            {"id": track_id, "kind": track.kind},
        )
        if self.on_track is not None:
            self.on_track(identity, info, track)

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
            # only the offer it names failed: an error about another message leaves offers alone
            future = self._answers.pop(event["pc"], None) if isinstance(event.get("pc"), str) else None
            if future is not None and not future.done():
                future.set_exception(RoomError(event.get("message", "error")))
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


def _pin(transceiver: RTCRtpTransceiver, payload_type: int) -> None:
    """Offer only the codec a transceiver's receiver started with (aiortc's payload types are fixed)."""
    for codec in CODECS[transceiver.kind]:
        if codec.payloadType == payload_type:
            capability = RTCRtpCodecCapability(
                codec.mimeType, codec.clockRate, codec.channels, codec.parameters
            )
            transceiver.setCodecPreferences([capability])
            return
