"""The server side of an RTMP connection as a sans-IO state machine, in the style of h11.

``receive_data(bytes)`` returns events; the adapter answers with method calls (``accept_publish``...)
and writes whatever ``data_to_send()`` returns. The connection answers everything that needs no
decision of the application by itself (handshake, control messages, connect, createStream...), so
an adapter only has to authorize and route publish and play.

Media for players is not written through this class: the adapter writes bytes made once per frame
with :func:`~streamhive.protocols.rtmp.chunk.encode_message` on the fixed media chunk stream ids
(:data:`AUDIO_CSID`, :data:`VIDEO_CSID`, :data:`DATA_CSID`), which the connection never uses itself.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Literal

from ...formats import amf0
from . import messages as m
from .chunk import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_CHUNK_SIZE, DEFAULT_MAX_MESSAGE_SIZE, ChunkReader, Message
from .errors import RtmpError
from .handshake import RandomSource, ServerHandshake
from .messages import AUDIO_CSID, DATA_CSID, VIDEO_CSID

__all__ = [
    "AUDIO_CSID",
    "DATA_CSID",
    "VIDEO_CSID",
    "CommandIgnored",
    "Connected",
    "Event",
    "MediaReceived",
    "MetadataReceived",
    "PingResponse",
    "PlayRequested",
    "PublishRequested",
    "RtmpServerConnection",
    "StreamDeleted",
]

MediaKind = Literal["audio", "video"]

DEFAULT_OUT_CHUNK_SIZE = 4096
DEFAULT_WINDOW_ACK_SIZE = 2_500_000
DEFAULT_MAX_STREAMS = 16

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class Connected:
    """The client sent ``connect`` and it was accepted; ``app`` has its ``?query`` split off."""

    app: str
    tc_url: str | None
    query: str
    command_object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """The client wants to publish; answer with ``accept_publish`` or ``reject_publish``."""

    stream_id: int
    name: str
    query: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class PlayRequested:
    """The client wants to play; answer with ``accept_play`` or ``reject_play``."""

    stream_id: int
    name: str
    query: str
    start: float


@dataclass(frozen=True, slots=True)
class StreamDeleted:
    """The client closed or deleted a stream it was publishing or playing on."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """An audio or video message (an FLV tag body) on a publishing stream."""

    kind: MediaKind
    stream_id: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """``onMetaData``, with or without the ``@setDataFrame`` wrapper encoders add."""

    stream_id: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandIgnored:
    """A command this core does not handle; worth a log line, not a disconnect."""

    name: str


@dataclass(frozen=True, slots=True)
class PingResponse:
    """The peer answered a ``ping``; ``timestamp`` is the value that was sent."""

    timestamp: int


Event = (
    Connected
    | PublishRequested
    | PlayRequested
    | StreamDeleted
    | MediaReceived
    | MetadataReceived
    | CommandIgnored
    | PingResponse
)


def status_object(level: str, code: str, description: str, **extra: Any) -> dict[str, Any]:
    """The info object of ``onStatus`` and connect ``_result``."""
    return {"level": level, "code": code, "description": description, **extra}


def decode_amf(msg: Message) -> list[Any]:
    """Decode a command or data message body (AMF3 variants carry a leading format byte)."""
    payload = msg.payload
    if msg.type_id in (m.COMMAND_AMF3, m.DATA_AMF3):
        payload = payload[1:]
    try:
        return amf0.decode(payload)
    except amf0.AmfError as exc:
        raise RtmpError(f"malformed AMF in message type {msg.type_id}: {exc}") from exc


def metadata_values(values: list[Any]) -> dict[str, Any] | None:
    """The ``onMetaData`` dict of a data message, or None if it is some other data message."""
    if values and values[0] == "@setDataFrame":
        values = values[1:]
    if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
        return dict(values[1])
    return None


class RtmpEndpoint:
    """What both sides share: the chunk reader, the output buffer, acknowledgements and pings."""

    def __init__(self, *, max_message_size: int, max_chunk_size: int) -> None:
        self._reader = ChunkReader(max_message_size=max_message_size, max_chunk_size=max_chunk_size)
        self._out = bytearray()
        self._chunk_size = DEFAULT_CHUNK_SIZE  # what we told the peer; 128 until we say otherwise
        self._peer_window = 0  # the peer's Window Acknowledgement Size; 0 = never acknowledge
        self._acked = 0

    @property
    def out_chunk_size(self) -> int:
        """The chunk size the peer expects from us now; pre-encoded media must use it."""
        return self._chunk_size

    @property
    def bytes_received(self) -> int:
        """Chunk stream bytes received (after the handshake)."""
        return self._reader.bytes_received

    def data_to_send(self) -> bytes:
        """Return and clear the bytes the connection wants written."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def ping(self, timestamp: int) -> None:
        """Send a ping request; the peer's answer arrives as :class:`PingResponse`."""
        self._out += m.ping_request(timestamp)

    def _acknowledge(self) -> None:
        """Acknowledge once a window's worth of bytes arrived (after dispatch: the window may be new)."""
        if self._peer_window and self._reader.bytes_received - self._acked >= self._peer_window:
            self._acked = self._reader.bytes_received
            self._out += m.acknowledgement(self._acked)

    def _control(self, msg: Message, events: list[Any]) -> None:
        """Handle protocol control messages; other types (shared objects, aggregates) are ignored.

        Set Chunk Size and Abort were applied by the reader; Acknowledgement and Set Peer
        Bandwidth need no answer.
        """
        t = msg.type_id
        if t == m.WINDOW_ACK_SIZE:
            if len(msg.payload) < 4:
                raise RtmpError("Window Acknowledgement Size message shorter than 4 bytes")
            self._peer_window = _U32.unpack_from(msg.payload)[0]
        elif t == m.USER_CONTROL:
            if len(msg.payload) < 2:
                raise RtmpError("User Control message shorter than 2 bytes")
            (event,) = _U16.unpack_from(msg.payload)
            if event in (m.PING_REQUEST, m.PING_RESPONSE):
                if len(msg.payload) < 6:
                    raise RtmpError("ping message shorter than 6 bytes")
                (timestamp,) = _U32.unpack_from(msg.payload, 2)
                if event == m.PING_REQUEST:
                    self._out += m.ping_response(timestamp)
                else:
                    events.append(PingResponse(timestamp))

    def _command(self, csid: int, stream_id: int, name: str, transaction: float, *args: Any) -> None:
        self._out += m.command(csid, stream_id, self._chunk_size, name, transaction, *args)


class RtmpServerConnection(RtmpEndpoint):
    """One client connection, server side. Raises :class:`RtmpError` on any protocol violation.

    ``out_chunk_size`` is announced in the connect reply and used for everything sent after it;
    ``random`` fills the handshake (inject a seeded one for reproducible tests).
    """

    def __init__(
        self,
        *,
        out_chunk_size: int = DEFAULT_OUT_CHUNK_SIZE,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
        peer_bandwidth: int = DEFAULT_WINDOW_ACK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_streams: int = DEFAULT_MAX_STREAMS,
        random: RandomSource = os.urandom,
    ) -> None:
        super().__init__(max_message_size=max_message_size, max_chunk_size=max_chunk_size)
        if not 1 <= out_chunk_size <= 0x7FFFFFFF:
            raise ValueError(f"out_chunk_size {out_chunk_size} outside 1..2^31-1")
        self._handshake = ServerHandshake(random)
        self._configured_chunk_size = out_chunk_size
        self._window_ack_size = window_ack_size
        self._peer_bandwidth = peer_bandwidth
        self._max_streams = max_streams
        self._connected = False
        self._next_stream_id = 1
        self._streams: dict[int, str] = {}  # stream id -> "idle" | "pending" | "publishing" | "playing"
        self.app = ""

    @property
    def handshake_done(self) -> bool:
        return self._handshake.done

    @property
    def digest_handshake(self) -> bool:
        """Whether the client used (and got) the digest handshake."""
        return self._handshake.digest_schema is not None

    @property
    def connected(self) -> bool:
        return self._connected

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the socket; returns the events they complete."""
        if not self._handshake.done:
            self._out += self._handshake.receive_data(data)
            if not self._handshake.done:
                return []
            data = self._handshake.leftover
        events: list[Event] = []
        for msg in self._reader.feed(data):
            self._dispatch(msg, events)
        self._acknowledge()
        return events

    # -- replies the adapter makes -------------------------------------------------------------
    # Each is a no-op when the stream is no longer waiting for it: the client may have closed or
    # deleted it while the adapter was deciding (an auth hook is asynchronous).

    def accept_publish(self, stream_id: int, name: str = "") -> None:
        """Tell the client its publish started; media will follow as :class:`MediaReceived`."""
        if self._transition(stream_id, "pending", "publishing"):
            self._status(
                stream_id, "status", "NetStream.Publish.Start", f"{name or 'Stream'} is now published."
            )

    def reject_publish(
        self,
        stream_id: int,
        code: str = "NetStream.Publish.BadName",
        description: str = "Publish refused.",
    ) -> None:
        """Refuse a publish (e.g. ``NetStream.Publish.Unauthorized``); the adapter then closes."""
        if self._transition(stream_id, "pending", "idle"):
            self._status(stream_id, "error", code, description)

    def accept_play(self, stream_id: int, name: str = "") -> None:
        """Start playback: Stream Begin, Play.Reset, Play.Start and ``|RtmpSampleAccess``."""
        if not self._transition(stream_id, "pending", "playing"):
            return
        self._out += m.stream_begin(stream_id)
        self._status(stream_id, "status", "NetStream.Play.Reset", f"Playing and resetting {name}.")
        self._status(stream_id, "status", "NetStream.Play.Start", f"Started playing {name}.")
        self._out += m.data(
            m.STREAM_COMMAND_CSID, stream_id, self._chunk_size, "|RtmpSampleAccess", True, True
        )

    def reject_play(
        self,
        stream_id: int,
        code: str = "NetStream.Play.StreamNotFound",
        description: str = "Stream not found.",
    ) -> None:
        """Refuse a play request (e.g. ``NetStream.Play.StreamNotFound``)."""
        if self._transition(stream_id, "pending", "idle"):
            self._status(stream_id, "error", code, description)

    def send_stream_eof(self, stream_id: int, name: str = "") -> None:
        """Tell a player the publisher went away: UnpublishNotify, Play.Stop and Stream EOF."""
        if not self._transition(stream_id, "playing", "idle"):
            return
        self._status(stream_id, "status", "NetStream.Play.UnpublishNotify", f"{name} is now unpublished.")
        self._status(stream_id, "status", "NetStream.Play.Stop", f"Stopped playing {name}.")
        self._out += m.stream_eof(stream_id)

    def send_metadata(self, stream_id: int, values: dict[str, Any]) -> None:
        """Queue ``onMetaData`` for a player (shared media paths use ``messages.encode_metadata``)."""
        self._out += m.encode_metadata(stream_id, values, self._chunk_size)

    # -- internals -----------------------------------------------------------------------------

    def _transition(self, stream_id: int, expected: str, new: str) -> bool:
        if self._streams.get(stream_id) != expected:
            return False
        self._streams[stream_id] = new
        return True

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        self._command(
            m.STREAM_COMMAND_CSID, stream_id, "onStatus", 0, None, status_object(level, code, description)
        )

    def _dispatch(self, msg: Message, events: list[Event]) -> None:
        t = msg.type_id
        if t == m.VIDEO or t == m.AUDIO:
            if self._streams.get(msg.stream_id) == "publishing":
                kind: MediaKind = "video" if t == m.VIDEO else "audio"
                events.append(MediaReceived(kind, msg.stream_id, msg.timestamp, msg.payload))
        elif t == m.COMMAND_AMF0 or t == m.COMMAND_AMF3:
            self._on_command(msg, events)
        elif t == m.DATA_AMF0 or t == m.DATA_AMF3:
            values = metadata_values(decode_amf(msg))
            if values is not None and self._streams.get(msg.stream_id) == "publishing":
                events.append(MetadataReceived(msg.stream_id, values))
        else:
            self._control(msg, events)

    def _on_command(self, msg: Message, events: list[Event]) -> None:
        values = decode_amf(msg)
        if not values or not isinstance(values[0], str):
            raise RtmpError("command message without a command name")
        name: str = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[3:]
        if name == "connect":
            self._on_connect(txn, values[2] if len(values) > 2 else None, events)
            return
        if not self._connected:
            raise RtmpError(f"command {name!r} before connect")
        if name == "createStream":
            if len(self._streams) >= self._max_streams:
                raise RtmpError(f"more than {self._max_streams} streams on one connection")
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._streams[stream_id] = "idle"
            self._command(m.COMMAND_CSID, 0, "_result", txn, None, stream_id)
        elif name == "publish" or name == "play":
            self._on_publish_or_play(name, msg.stream_id, args, events)
        elif name == "deleteStream" or name == "closeStream":
            if name == "deleteStream":
                stream_id = (
                    int(args[0]) if args and isinstance(args[0], float) and 0 <= args[0] < 2**32 else -1
                )
                state = self._streams.pop(stream_id, None)
            else:
                stream_id = msg.stream_id
                state = self._streams.get(stream_id)
                if state is not None:
                    self._streams[stream_id] = "idle"
            if state is not None:
                events.append(StreamDeleted(stream_id))
        elif name == "releaseStream" or name == "FCUnpublish":
            if txn:
                self._command(m.COMMAND_CSID, 0, "_result", txn, None, None)
        elif name == "FCPublish":
            stream_name = args[0] if args and isinstance(args[0], str) else ""
            self._command(
                m.COMMAND_CSID,
                0,
                "onFCPublish",
                0,
                None,
                {"code": "NetStream.Publish.Start", "description": stream_name},
            )
        elif name == "getStreamLength":
            self._command(m.COMMAND_CSID, 0, "_result", txn, None, 0)
        elif name not in ("_checkbw", "_result", "_error"):  # known and harmless without an answer
            events.append(CommandIgnored(name))

    def _on_connect(self, txn: float, command_object: Any, events: list[Event]) -> None:
        if self._connected:
            raise RtmpError("connect sent twice")
        if not isinstance(command_object, dict) or not isinstance(command_object.get("app"), str):
            raise RtmpError("connect without an app name")
        app, _, query = command_object["app"].partition("?")
        tc_url = command_object.get("tcUrl")
        encoding = command_object.get("objectEncoding", 0.0)
        self._out += m.window_ack_size(self._window_ack_size)
        self._out += m.set_peer_bandwidth(self._peer_bandwidth, m.LIMIT_DYNAMIC)
        self._out += m.set_chunk_size(self._configured_chunk_size)
        self._chunk_size = self._configured_chunk_size
        self._command(
            m.COMMAND_CSID,
            0,
            "_result",
            txn,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            status_object(
                "status",
                "NetConnection.Connect.Success",
                "Connection succeeded.",
                objectEncoding=encoding if isinstance(encoding, float) else 0.0,
            ),
        )
        self._connected = True
        self.app = app
        events.append(Connected(app, tc_url if isinstance(tc_url, str) else None, query, command_object))

    def _on_publish_or_play(self, name: str, stream_id: int, args: list[Any], events: list[Event]) -> None:
        state = self._streams.get(stream_id)
        if state is None:
            raise RtmpError(f"{name} on stream {stream_id}, which was not created")
        if state != "idle":
            raise RtmpError(f"{name} on stream {stream_id}, which is already {state}")
        stream_name, _, query = (args[0] if args and isinstance(args[0], str) else "").partition("?")
        self._streams[stream_id] = "pending"
        if name == "publish":
            publish_type = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
            events.append(PublishRequested(stream_id, stream_name, query, publish_type))
        else:
            start = args[1] if len(args) > 1 and isinstance(args[1], float) else -2.0
            events.append(PlayRequested(stream_id, stream_name, query, start))
