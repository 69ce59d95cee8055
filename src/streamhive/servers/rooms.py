"""Room signaling: one WebSocket per participant at ``/rooms/{room}/ws``, and ``/api/v1/rooms``.

The protocol is in docs/rooms.md. Each participant has a publish and a subscribe PeerConnection
on the shared WebRTC transport (servers/webrtc.py); the client always offers and we answer, on
the same ICE/DTLS session when it renegotiates. What flows between them is sfu/room.py's.

Every client message is checked before it is acted on: size (aiohttp refuses larger frames),
JSON object, known type, field types; bad ones get an ``error`` event, and a client that sends
too many (or too many bad ones) is closed with 4029. Events to a participant go through a
bounded queue written by one task: a participant that stops reading its WebSocket is closed
rather than buffered without limit, and never slows the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..auth import AuthRequest
from ..auth.access import AccessDenied
from ..hub import Refused, Session
from ..protocols.webrtc import WebRtcError
from ..protocols.webrtc.sdp import LocalIce, SendTrack, answer_play, answer_publish, parse_offer
from ..sfu.bridge import GROUPS, Bridge, bridge_path
from ..sfu.grants import SOURCES, GrantError, RoomTokens, valid_identity, valid_room_name
from ..sfu.room import Participant, PublishedTrack, Publisher, Room, Subscriber, Subscription
from ..sfu.stream_participant import StreamParticipant
from .datachannel import DataChannels
from .http_auth import credentials_of, refusal, remote_of
from .webrtc import Peer, WebRtcService
from .whip import PUBLISH_CODECS, WEBRTC_AUDIO

#: The data channel label that carries chat/app messages (docs/rooms.md).
DATA_LABEL = "data"

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.rooms")

#: Events queued for one participant before it counts as not reading (and is closed).
MAX_QUEUED_EVENTS = 1000
#: Bad messages one participant may send before it is closed.
MAX_BAD_MESSAGES = 20
#: The most m-sections a room offer may have, whatever the room size allows.
MAX_ROOM_SECTIONS = 1024
#: The media kind each source carries.
SOURCE_KINDS = {"camera": "video", "microphone": "audio", "screen": "video", "screen_audio": "audio"}
#: Seconds between room housekeeping passes (speakers, quality, empty rooms).
ROOM_TICK = 0.1
_PCS = ("publish", "subscribe")


class BadMessage(Exception):
    """A signaling message we refuse; the text goes back in an ``error`` event."""


class Channel:
    """A participant's WebSocket: the bounded event queue and its writer."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closing: tuple[int, str] | None = None
        self.writer = asyncio.ensure_future(self._write())

    def send(self, event: dict[str, Any]) -> None:
        if self.closing is not None:
            return
        if self.queue.qsize() >= MAX_QUEUED_EVENTS:
            self.close(4029, "not reading its events")
            return
        self.queue.put_nowait(event)

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.queue.put_nowait(None)

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while (event := await self.queue.get()) is not None:
                await self.ws.send_str(json.dumps(event, separators=(",", ":")))
        code, reason = self.closing or (1000, "")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode()[:120])


class RoomService:
    """The rooms of this server and their signaling."""

    def __init__(self, server: Server, transport: WebRtcService) -> None:
        self.server = server
        self.transport = transport
        self.config = server.config.rooms
        self.tokens = RoomTokens(self.config)
        self.rooms: dict[str, Room] = {}
        self.bridges: dict[tuple[str, str, str], Bridge] = {}  # (room, identity, group)
        self.streams: dict[tuple[str, str], StreamParticipant] = {}  # (room, identity)
        self._ticker: asyncio.Task[None] | None = None
        self.counters = transport.counters

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/rooms/{room}/ws", self.websocket)
        app.router.add_get("/api/v1/rooms", self.api_list)
        app.router.add_get("/api/v1/rooms/{room}", self.api_room)
        app.router.add_delete("/api/v1/rooms/{room}", self.api_close)
        app.router.add_delete("/api/v1/rooms/{room}/participants/{identity}", self.api_remove)
        app.router.add_post(
            "/api/v1/rooms/{room}/participants/{identity}/tracks/{source}/mute", self.api_mute
        )
        app.router.add_post("/api/v1/rooms/{room}/streams", self.api_add_stream)

    # -- the WebSocket -----------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["room"]
        if not valid_room_name(name):
            raise web.HTTPNotFound(text="invalid room name")
        hub = self.server.hub
        remote = remote_of(request)
        if hub.access is not None:  # the address rules (auth.ip_allow / ip_deny, blocked clients)
            try:
                await hub.access.check(AuthRequest(f"rooms/{name}", "read", "room", remote), ["open"])
            except AccessDenied as exc:
                raise web.HTTPForbidden(text=exc.reason) from None
        session = Session("room", remote, query=request.query_string)
        if not hub.add_session(session):
            raise web.HTTPServiceUnavailable(text="too many connections")
        ws = web.WebSocketResponse(max_msg_size=self.config.max_message_bytes, heartbeat=20.0)
        channel: Channel | None = None
        participant: Participant | None = None
        reason = "left"
        try:
            await ws.prepare(request)
            channel = Channel(ws)
            participant = await self._join(request, ws, channel, name, session)
            if participant is not None:
                reason = await self._serve(participant, ws, channel)
        except ConnectionError:  # the client went away mid-handshake or mid-message
            reason = "connection lost"
        except Exception:
            log.exception("room %s: signaling failed for %s", name, remote)
            reason = "internal error"
            if channel is not None:
                channel.close(1011, reason)
        finally:
            try:
                if participant is not None:
                    self._leave(participant, reason)
                if channel is not None:
                    channel.close(1000, reason)  # a no-op when a close is already on its way
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError, ConnectionError):
                        await asyncio.wait_for(asyncio.shield(channel.writer), 2.0)
                    channel.writer.cancel()
            finally:
                session.close_reason = session.close_reason or reason
                hub.remove_session(session)
        return ws

    async def _join(
        self, request: web.Request, ws: web.WebSocketResponse, channel: Channel, name: str, session: Session
    ) -> Participant | None:
        try:
            message = await asyncio.wait_for(ws.receive(), self.config.join_timeout)
        except TimeoutError:
            channel.close(4008, f"no join within {self.config.join_timeout:g}s")
            return None
        if message.type != WSMsgType.TEXT:
            channel.close(4400, "the first message must be a join (text)")
            return None
        try:
            data = _message(message.data)
            if data["type"] != "join":
                raise BadMessage("the first message must be a join")
            token = _optional_str(data, "token") or request.query.get("token") or None
            grant = self.tokens.grant(
                name, token, _optional_str(data, "identity"), _optional_str(data, "name")
            )
        except BadMessage as exc:
            channel.close(4400, str(exc))
            return None
        except GrantError as exc:
            self.counters["room_joins_refused"] += 1
            log.info("room %s: join from %s refused (%d): %s", name, session.remote, exc.code, exc.reason)
            channel.close(exc.code, exc.reason)
            return None
        room = self.rooms.get(name)
        if room is None:
            if len(self.rooms) >= self.config.max_rooms:
                channel.close(4009, "too many rooms")
                return None
            room = self.rooms[name] = Room(name, self.config, self.server.config.webrtc.publish_bitrate)
            self._start_ticker()
        old = room.participants.get(grant.identity)
        if old is not None and old.grant.expires is not None and grant.expires is None:
            channel.close(4003, "that identity is in use by a token holder")  # no guest takeovers
            return None
        if old is not None:
            old.close(4010, "the same identity joined again")
            self._leave(old, "the same identity joined again")
        if len(room.participants) >= self.config.max_participants:
            channel.close(4009, "room full")
            return None
        participant = Participant(room, grant, channel.send, channel.close)
        session.path = f"rooms/{name}"
        session.kick = lambda why: participant.close(4010, why)
        channel.send(
            {
                "type": "joined",
                "room": name,
                "identity": grant.identity,
                "name": grant.name,
                "participants": [p.info() for p in room.participants.values()],
                "grants": {
                    "publish": grant.publish,
                    "subscribe": grant.subscribe,
                    "data": grant.data,
                    "sources": sorted(grant.sources),
                    "admin": grant.admin,
                },
                "ice_servers": [
                    s.model_dump(exclude_none=True) for s in self.server.config.webrtc.ice_servers
                ],
            }
        )
        room.add(participant)
        self.counters["room_joins"] += 1
        log.info("room %s: %s joined from %s", name, grant.identity, session.remote)
        return participant

    async def _serve(self, participant: Participant, ws: web.WebSocketResponse, channel: Channel) -> str:
        bad = 0
        rate = self.config.max_messages_per_second
        async for message in ws:
            if channel.closing is not None:
                return channel.closing[1]
            if not participant.count_message(time.monotonic(), rate):
                participant.close(4029, "too many messages")
                return "too many messages"
            if message.type != WSMsgType.TEXT:
                participant.close(4400, "binary frames are not part of the protocol")
                return "binary frame"
            data: Any = None
            try:
                data = _message(message.data)
                if data["type"] == "leave":
                    participant.close(1000, "left")
                    return "left"
                await self._handle(participant, data)
            except (BadMessage, WebRtcError, ValueError, RecursionError) as exc:
                bad += 1
                self.counters["room_bad_messages"] += 1
                error: dict[str, Any] = {"type": "error", "message": str(exc)[:300]}
                if isinstance(data, dict) and data.get("type") == "offer" and data.get("pc") in _PCS:
                    error["pc"] = data["pc"]  # lets the client roll that offer back at once
                participant.send(error)
                if bad > MAX_BAD_MESSAGES:
                    participant.close(4029, "too many bad messages")
                    return "too many bad messages"
        return "WebSocket closed" if channel.closing is None else channel.closing[1]

    async def _handle(self, participant: Participant, data: dict[str, Any]) -> None:
        kind = data["type"]
        if kind == "offer":
            await self._offer(participant, data)
        elif kind == "candidate":
            _pc(data)  # ICE-lite: addresses come from the client's checks
        elif kind == "subscription":
            self._subscription(participant, data)
        elif kind == "mute":
            track = participant.tracks.get(_track_source(participant, data))
            if track is None:
                raise BadMessage("no such track of yours")
            self.set_muted(track, _bool(data, "muted"))
        elif kind == "data":
            self._data(participant, data)
        elif kind == "ping":
            participant.send({"type": "pong"})
        else:
            raise BadMessage(f"unknown message type {kind!r}")

    # -- offers ------------------------------------------------------------------------------------
    async def _offer(self, participant: Participant, data: dict[str, Any]) -> None:
        pc = _pc(data)
        sdp = data.get("sdp")
        tracks = data.get("tracks", [])
        # A subscriber's offer has a section per track it receives: sized for a full room.
        sections = self.config.max_participants * self.config.max_tracks + 16
        if not isinstance(sdp, str) or not isinstance(tracks, list) or len(tracks) > sections:
            raise BadMessage("an offer needs sdp (string) and tracks (a list)")
        if not participant.allow_offer(pc, time.monotonic()):
            raise BadMessage("renegotiating too fast: wait before the next offer")
        offer = parse_offer(sdp, self.config.max_message_bytes, max_media=min(sections, MAX_ROOM_SECTIONS))
        peer = participant.publish_peer if pc == "publish" else participant.subscribe_peer
        fresh = peer is None or peer.closed
        if peer is None or peer.closed:
            session = Session("webrtc", "room", query="")
            peer = Peer(self.transport, session, offer.ice.ufrag, offer.ice.fingerprint)
        elif offer.ice.ufrag != peer.ice.remote_ufrag or offer.ice.fingerprint != peer.remote_fingerprint:
            raise BadMessage("ICE restarts are not supported: leave and join again")
        local = LocalIce(
            peer.ufrag, peer.pwd, self.transport.cert.fingerprint, tuple(self.transport.candidates())
        )
        if pc == "publish":
            answer = await self._publish(participant, peer, offer, local, tracks)
        else:
            answer = self._subscribe(participant, peer, offer, local, tracks)
        if fresh:
            peer.start_dtls(answer.dtls_role)
            if pc == "publish":
                participant.publish_peer = peer
            else:
                participant.subscribe_peer = peer
            self.transport.add(peer)
        participant.send({"type": "answer", "pc": pc, "sdp": answer.sdp})

    async def _publish(
        self, participant: Participant, peer: Peer, offer: Any, local: LocalIce, tracks: list[Any]
    ) -> Any:
        grant = participant.grant
        if not grant.publish:
            raise BadMessage("this token may not publish")
        described: dict[str, dict[str, Any]] = {}
        for item in tracks:
            if not isinstance(item, dict) or not isinstance(item.get("mid"), str):
                raise BadMessage("publish tracks are {mid, source, width?, height?}")
            source = item.get("source")
            if source not in SOURCES:
                raise BadMessage(f"source must be one of {', '.join(SOURCES)}")
            if not grant.allows_source(source):
                raise BadMessage(f"this token may not publish {source}")
            described[item["mid"]] = item
        if len({item["source"] for item in described.values()}) != len(described):
            raise BadMessage("one track per source")
        if len(described) > self.config.max_tracks:
            raise BadMessage(f"at most {self.config.max_tracks} tracks")
        room = participant.room
        if not participant.tracks and described and room.publishers() >= self.config.max_publishers:
            raise BadMessage("the room has its maximum number of publishers")
        answer = answer_publish(
            offer, PUBLISH_CODECS, local, simulcast=True, datachannel=True, allow_empty=True
        )
        negotiated = {media.mid: media for media in answer.media}
        for mid, item in described.items():
            media = negotiated.get(mid)
            if media is not None and media.kind != SOURCE_KINDS[item["source"]]:
                raise BadMessage(f"{item['source']} must be {SOURCE_KINDS[item['source']]}, not {media.kind}")
        previous = participant.tracks
        current: dict[str, PublishedTrack] = {}
        for mid, item in described.items():
            media = negotiated.get(mid)
            if media is None:
                continue
            old = previous.get(item["source"])
            if old is not None and old.media.mid == mid and old.media.payload_type == media.payload_type:
                old.media = media
                current[old.source] = old
            else:
                current[item["source"]] = PublishedTrack(
                    participant, item["source"], media, item, self.server.config.webrtc.nack_history
                )
        publisher = participant.publisher
        if publisher is None:
            publisher = participant.publisher = Publisher(participant, peer)
            peer.handler = publisher
        if answer.datachannel is not None and publisher.channels is None:
            sctp = answer.datachannel
            publisher.channels = DataChannels(
                peer, sctp.port, sctp.max_message_size, on_message=partial(self._channel_message, participant)
            )
            if peer.srtp is not None:  # added by a renegotiation: DTLS is up already
                publisher.channels.start()
        publisher.set_tracks(list(current.values()))
        participant.tracks = current
        for source, track in previous.items():
            if current.get(source) is not track:
                self._unpublished(participant, track)
        for source, track in current.items():
            if previous.get(source) is not track:
                room.broadcast(
                    {"type": "track_published", "identity": participant.identity, "track": track.info()}
                )
        await self._rebridge(participant, previous)
        return answer

    def _unpublished(self, participant: Participant, track: PublishedTrack) -> None:
        for subscription in list(track.subscriptions):
            subscription.detach()
        participant.room.broadcast(
            {"type": "track_unpublished", "identity": participant.identity, "track": track.id}
        )

    def _subscribe(
        self, participant: Participant, peer: Peer, offer: Any, local: LocalIce, tracks: list[Any]
    ) -> Any:
        if not participant.grant.subscribe:
            raise BadMessage("this token may not subscribe")
        room_tracks = participant.room.tracks()
        wanted: dict[str, str] = {}  # mid -> track id
        for item in tracks:
            if not isinstance(item, dict) or not isinstance(item.get("mid"), str):
                raise BadMessage("subscribe tracks are {mid, track}")
            track_id = item.get("track")
            if not isinstance(track_id, str):
                raise BadMessage("subscribe tracks are {mid, track}")
            if track_id in room_tracks and room_tracks[track_id].participant is not participant:
                wanted[item["mid"]] = track_id
        subscriber = participant.subscriber
        if subscriber is None:
            subscriber = participant.subscriber = Subscriber(participant, peer)
            peer.handler = subscriber
        subscriptions: dict[str, Subscription] = {}
        send: list[SendTrack] = []
        for mid, track_id in wanted.items():
            track = room_tracks[track_id]
            subscription = participant.subscriptions.get(track_id)
            if subscription is None or subscription.track is not track:
                subscription = Subscription(subscriber, track, _new_ssrc(participant))
            subscriptions[track_id] = subscription
            send.append(
                SendTrack(
                    track.kind,
                    (track.codec,),
                    subscription.ssrc,
                    track.track,
                    _msid(track.participant.identity),
                    _msid(track.source),
                    mid=mid,
                )
            )
        answer = answer_play(offer, send, local, extensions=False, allow_empty=True)
        by_ssrc = {media.ssrcs[0]: media for media in answer.media}
        for track_id, subscription in list(subscriptions.items()):
            media = by_ssrc.get(subscription.ssrc)
            if media is None:
                del subscriptions[track_id]
                continue
            subscription.mid = media.mid
            subscription.set_payload_type(media.payload_type)
        for track_id, subscription in list(participant.subscriptions.items()):
            if subscriptions.get(track_id) is not subscription:
                subscription.detach()
        for subscription in subscriptions.values():
            if subscription not in subscription.track.subscriptions:
                subscription.track.subscriptions.append(subscription)
                subscription.request_keyframe()
        participant.subscriptions = subscriptions
        subscriber.set_subscriptions(list(subscriptions.values()))
        return answer

    # -- other messages ----------------------------------------------------------------------------
    def _subscription(self, participant: Participant, data: dict[str, Any]) -> None:
        track = data.get("track")
        subscription = participant.subscriptions.get(track) if isinstance(track, str) else None
        if subscription is None:
            raise BadMessage("not subscribed to that track")
        height = data.get("height")
        if height is not None:
            if isinstance(height, bool) or not isinstance(height, int) or not 0 < height <= 16384:
                raise BadMessage("height must be a positive integer")
            subscription.max_height = height
        if "paused" in data:
            subscription.set_paused(_bool(data, "paused"), self.transport.now())

    def _data(self, participant: Participant, data: dict[str, Any]) -> None:
        """A chat/app message, from the WebSocket or a data channel: relayed to each receiver on
        its data channel when it has one open, else on its WebSocket, in the same form."""
        if not participant.grant.data:
            raise BadMessage("this token may not send data")
        payload = data.get("data")
        encoded = json.dumps(payload)
        if len(encoded) > self.config.max_data_bytes:
            raise BadMessage(f"data over {self.config.max_data_bytes} bytes")
        to = data.get("to")
        if to is not None and (not isinstance(to, list) or not all(isinstance(x, str) for x in to)):
            raise BadMessage("to must be a list of identities")
        event = {"type": "data", "from": participant.identity, "data": payload}
        text = json.dumps(event, separators=(",", ":"))
        for other in participant.room.participants.values():
            if other is participant or (to is not None and other.identity not in to):
                continue
            channels = other.publisher.channels if other.publisher is not None else None
            if channels is not None and DATA_LABEL in channels.labels:
                channels.send(DATA_LABEL, text)
                self.counters["room_data_over_sctp"] += 1
            else:
                other.send(event)
                self.counters["room_data_over_websocket"] += 1

    def _channel_message(self, participant: Participant, label: str, message: str | bytes) -> None:
        """A message on a participant's data channel: the ``data`` label carries the signaling
        protocol's ``data`` messages (``{"data", "to"?}``), counted against the same rate limit."""
        if label != DATA_LABEL or participant.left:
            return
        try:
            if not isinstance(message, str):
                raise BadMessage("data channel messages are JSON text")
            if not participant.count_message(time.monotonic(), self.config.max_messages_per_second):
                participant.close(4029, "too many messages")
                return
            body = json.loads(message)
            if not isinstance(body, dict):
                raise BadMessage("a data channel message is a JSON object")
            self._data(participant, body)
        except (BadMessage, ValueError, TypeError) as exc:
            self.counters["room_bad_messages"] += 1
            participant.send({"type": "error", "message": f"data channel: {str(exc)[:200]}"})

    def set_muted(self, track: PublishedTrack, muted: bool) -> None:
        if track.muted == muted:
            return
        track.muted = muted
        if not muted:
            now = self.transport.now()
            for subscription in track.subscriptions:
                subscription.restart(now)
        participant = track.participant
        participant.room.broadcast(
            {"type": "track_muted", "identity": participant.identity, "track": track.id, "muted": muted}
        )

    # -- bridges -----------------------------------------------------------------------------------
    async def _rebridge(self, participant: Participant, previous: dict[str, PublishedTrack]) -> None:
        if not self.config.bridge:
            return
        room, identity = participant.room.name, participant.identity
        for group in set(GROUPS.values()):
            tracks = [t for t in participant.tracks.values() if GROUPS[t.source] == group]
            key = (room, identity, group)
            bridge = self.bridges.get(key)
            if bridge is not None and bridge.tracks == tracks:
                continue
            if bridge is not None:
                bridge.stop()
                del self.bridges[key]
            if tracks:
                bridge = self.bridges[key] = Bridge(self.server.hub, bridge_path(*key), tracks, "room")
                await bridge.start()
        publisher = participant.publisher
        if publisher is not None:
            bridges = {t.id: b for b in self._bridges_of(participant) for t in b.tracks}
            publisher.bridge = (lambda t, p, now: bridges[t.id].rtp(t, p, now)) if bridges else None
            publisher.bridge_report = (
                (lambda t, r, now: bridges[t.id].sender_report(t, r, now)) if bridges else None
            )

    def _bridges_of(self, participant: Participant) -> list[Bridge]:
        room, identity = participant.room.name, participant.identity
        return [b for (r, i, _g), b in self.bridges.items() if (r, i) == (room, identity)]

    # -- leaving -----------------------------------------------------------------------------------
    def _leave(self, participant: Participant, reason: str) -> None:
        if participant.left:
            return
        participant.left = True
        room = participant.room
        for bridge in self._bridges_of(participant):
            bridge.stop()
        self.bridges = {k: b for k, b in self.bridges.items() if k[:2] != (room.name, participant.identity)}
        for peer in (participant.publish_peer, participant.subscribe_peer):
            if peer is not None:
                peer.close(f"left the room: {reason}")
        room.remove(participant, reason)
        log.info("room %s: %s left (%s)", room.name, participant.identity, reason)

    def close_room(self, room: Room, reason: str) -> None:
        for key in [k for k in self.streams if k[0] == room.name]:
            self._stop_stream(key, reason)
        for participant in list(room.participants.values()):
            participant.send({"type": "room_closed", "reason": reason})
            participant.close(4004, reason)
            self._leave(participant, reason)
        self.rooms.pop(room.name, None)

    # -- housekeeping ------------------------------------------------------------------------------
    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self.rooms:
            await asyncio.sleep(ROOM_TICK)
            now, mono = loop.time(), time.monotonic()
            for stream in list(self.streams.values()):
                stream.tick(now)
            for room in list(self.rooms.values()):
                room.tick(now)
                if room.empty_since is not None and mono - room.empty_since >= self.config.empty_timeout:
                    self.rooms.pop(room.name, None)

    def stop(self) -> None:
        for room in list(self.rooms.values()):
            self.close_room(room, "server shutting down")
        if self._ticker is not None:
            self._ticker.cancel()

    # -- admin API ---------------------------------------------------------------------------------
    def describe(self, room: Room) -> dict[str, Any]:
        return {
            "name": room.name,
            "created": room.created,
            "participants": [
                {
                    **p.info(),
                    "joined": p.joined,
                    "quality": p.quality,
                    "subscriptions": sorted(p.subscriptions),
                    "bridges": [b.path for b in self._bridges_of(p) if b.stream is not None],
                }
                for p in room.participants.values()
            ],
            "active_speakers": room.active_speakers,
        }

    def _room(self, request: web.Request) -> Room:
        room = self.rooms.get(request.match_info["room"])
        if room is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "room not found"}), content_type="application/json"
            )
        return room

    def _participant(self, request: web.Request) -> Participant:
        participant = self._room(request).participants.get(request.match_info["identity"])
        if participant is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "participant not found"}), content_type="application/json"
            )
        return participant

    async def api_list(self, request: web.Request) -> web.Response:
        items = [self.describe(room) for _, room in sorted(self.rooms.items())]
        return web.json_response({"items": items, "count": len(items)})

    async def api_room(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe(self._room(request)))

    async def api_close(self, request: web.Request) -> web.Response:
        room = self._room(request)
        self.close_room(room, "closed through the API")
        return web.json_response({"closed": room.name})

    async def api_remove(self, request: web.Request) -> web.Response:
        participant = self._participant(request)
        participant.close(4010, "removed through the API")
        if (participant.room.name, participant.identity) not in self.streams:
            self._leave(participant, "removed through the API")
        return web.json_response({"removed": participant.identity})

    async def api_add_stream(self, request: web.Request) -> web.Response:
        """Publish a hub path into a room as a participant (``{"path", "identity"?, "name"?}``);
        the room is created when needed. Removed like any participant (DELETE .../participants/ID)."""
        name = request.match_info["room"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            return web.json_response({"error": 'the body is {"path": ..., "identity"?, "name"?}'}, status=400)
        path = body["path"].strip("/")
        identity = body.get("identity") or path.replace("/", "-")
        if not valid_room_name(name) or not valid_identity(identity):
            return web.json_response({"error": "invalid room name or identity"}, status=400)
        room = self.rooms.get(name)
        if room is None:
            if len(self.rooms) >= self.config.max_rooms:
                return web.json_response({"error": "too many rooms"}, status=503)
            room = self.rooms[name] = Room(name, self.config, self.server.config.webrtc.publish_bitrate)
            self._start_ticker()
        if identity in room.participants:
            return web.json_response({"error": f"{identity!r} is already in the room"}, status=409)
        session = Session("room", f"stream:{path}")
        try:
            stream = await self.server.hub.read(path, session, credentials_of(request))
        except Refused as refused:
            self.server.hub.read_ended(session)
            return refusal(refused)
        stream = stream.readable_with(WEBRTC_AUDIO)
        webrtc = self.server.config.webrtc
        participant = StreamParticipant(
            room, stream, identity, body.get("name") or path, self.counters, webrtc.nack_history, webrtc.mtu
        )
        if not participant.participant.tracks:
            self.server.hub.read_ended(session)
            return web.json_response({"error": f"{path!r} has no track a browser can play"}, status=422)
        key = (name, identity)
        self.streams[key] = participant
        participant.participant.close = lambda code, reason: self._stop_stream(key, reason)  # type: ignore[method-assign]
        participant.start()
        return web.json_response(participant.info(), status=201)

    def _stop_stream(self, key: tuple[str, str], reason: str) -> None:
        participant = self.streams.pop(key, None)
        if participant is not None:
            participant.stop(reason)
            self.server.hub.read_ended(participant.session)

    async def api_mute(self, request: web.Request) -> web.Response:
        participant = self._participant(request)
        track = participant.tracks.get(request.match_info["source"])
        if track is None:
            return web.json_response({"error": "track not found"}, status=404)
        muted = True
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
                if isinstance(body, dict) and isinstance(body.get("muted"), bool):
                    muted = body["muted"]
        self.set_muted(track, muted)
        return web.json_response({"track": track.id, "muted": track.muted})


# -- message checks --------------------------------------------------------------------------------
def _message(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise BadMessage("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadMessage("a message is a JSON object with a string type")
    return data


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadMessage(f"{key} must be a string")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise BadMessage(f"{key} must be true or false")
    return value


def _pc(data: dict[str, Any]) -> str:
    pc = data.get("pc")
    if pc not in _PCS:
        raise BadMessage('pc must be "publish" or "subscribe"')
    return pc


def _new_ssrc(participant: Participant) -> int:
    used = {s.ssrc for s in participant.subscriptions.values()}
    while (ssrc := secrets.randbits(32)) in used or ssrc == 0:
        pass
    return ssrc


def _msid(text: str) -> str:
    """An a=msid part (an RFC 8866 token) naming an identity or a source."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:64] or "x"


def _track_source(participant: Participant, data: dict[str, Any]) -> str:
    """A ``track`` field naming one of the participant's own tracks, as a source."""
    track = data.get("track")
    if not isinstance(track, str):
        raise BadMessage("track must be a track id")
    identity, _, source = track.rpartition("/")
    if identity != participant.identity:
        raise BadMessage("you may only mute your own tracks")
    return source
