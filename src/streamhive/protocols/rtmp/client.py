"""The client side of an RTMP connection, sans-IO, for tests, pulls and the load tester.

It speaks just enough of the protocol to publish or play one or more streams: connect,
createStream, publish/play, media and metadata, with acknowledgements and pings answered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...formats import amf0
from . import messages as m
from .chunk import DEFAULT_MAX_CHUNK_SIZE, DEFAULT_MAX_MESSAGE_SIZE, Message, encode_message
from .connection import (
    DEFAULT_OUT_CHUNK_SIZE,
    MediaKind,
    MediaReceived,
    MetadataReceived,
    PingResponse,
    RtmpEndpoint,
    decode_amf,
    metadata_values,
)
from .errors import RtmpError
from .handshake import ClientHandshake, RandomSource

__all__ = ["ClientEvent", "ConnectResult", "RtmpClientConnection", "Status", "StreamCreated"]


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The server's answer to ``connect``."""

    success: bool
    code: str
    description: str
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """``createStream`` succeeded; publish or play on ``stream_id``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Status:
    """An ``onStatus`` (NetStream.Publish.Start, NetStream.Play.StreamNotFound...)."""

    stream_id: int
    level: str
    code: str
    description: str


ClientEvent = ConnectResult | StreamCreated | Status | MediaReceived | MetadataReceived | PingResponse


class RtmpClientConnection(RtmpEndpoint):
    """One connection, client side. Commands issued before the handshake ends are queued."""

    def __init__(
        self,
        *,
        out_chunk_size: int = DEFAULT_OUT_CHUNK_SIZE,
        digest_handshake: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        random: RandomSource = os.urandom,
    ) -> None:
        super().__init__(max_message_size=max_message_size, max_chunk_size=max_chunk_size)
        self._handshake = ClientHandshake(digest_handshake, random)
        self._wanted_chunk_size = out_chunk_size
        self._queued = bytearray()  # commands issued before the handshake completed
        self._transactions: dict[float, str] = {}
        self._next_transaction = 1.0
        self.stream_id: int | None = None  # the last stream created, the default for publish/play

    @property
    def handshake_done(self) -> bool:
        return self._handshake.done

    def initial_bytes(self) -> bytes:
        """C0+C1: write these first."""
        return self._handshake.initial()

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes from the socket; returns the events they complete."""
        if not self._handshake.done:
            self._out += self._handshake.receive_data(data)
            if not self._handshake.done:
                return []
            self._out += self._queued
            self._queued.clear()
            data = self._handshake.leftover
        events: list[ClientEvent] = []
        for msg in self._reader.feed(data):
            self._dispatch(msg, events)
        self._acknowledge()
        return events

    # -- commands --------------------------------------------------------------------------------

    def connect(self, app: str, tc_url: str | None = None, **extra: Any) -> None:
        """Send our chunk size and ``connect``; the answer arrives as :class:`ConnectResult`."""
        self.set_chunk_size(self._wanted_chunk_size)
        command_object: dict[str, Any] = {
            "app": app,
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (streamhive)",
        }
        if tc_url is not None:
            command_object["tcUrl"] = tc_url
        command_object.update(extra)
        self._call("connect", command_object)

    def create_stream(self) -> None:
        """Ask for a message stream; the answer arrives as :class:`StreamCreated`."""
        self._call("createStream", None)

    def publish(self, name: str, publish_type: str = "live", stream_id: int | None = None) -> None:
        """Publish ``name`` on a created stream; success is a ``NetStream.Publish.Start`` :class:`Status`."""
        sid = self._stream(stream_id)
        self._queue(
            m.command(m.STREAM_COMMAND_CSID, sid, self._chunk_size, "publish", 0, None, name, publish_type)
        )

    def play(self, name: str, start: float = -2, stream_id: int | None = None) -> None:
        """Play ``name`` on a created stream; media arrives as :class:`MediaReceived`."""
        sid = self._stream(stream_id)
        self._queue(
            m.command(m.STREAM_COMMAND_CSID, sid, self._chunk_size, "play", 0, None, name, float(start))
        )

    def delete_stream(self, stream_id: int | None = None) -> None:
        """Delete a stream (what clients send when they stop publishing or playing)."""
        sid = self._stream(stream_id)
        self._queue(m.command(m.COMMAND_CSID, 0, self._chunk_size, "deleteStream", 0, None, sid))

    def send_media(
        self, kind: MediaKind, timestamp: int, payload: bytes, stream_id: int | None = None
    ) -> None:
        """Send one audio or video message (an FLV tag body)."""
        if kind == "video":
            csid, type_id = m.VIDEO_CSID, m.VIDEO
        else:
            csid, type_id = m.AUDIO_CSID, m.AUDIO
        self._queue(
            encode_message(csid, type_id, self._stream(stream_id), timestamp, payload, self._chunk_size)
        )

    def send_metadata(self, values: dict[str, Any], stream_id: int | None = None) -> None:
        """Send ``@setDataFrame onMetaData`` the way encoders do."""
        payload = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(values))
        self._queue(
            encode_message(m.DATA_CSID, m.DATA_AMF0, self._stream(stream_id), 0, payload, self._chunk_size)
        )

    def set_chunk_size(self, size: int) -> None:
        """Announce and start using a new outgoing chunk size."""
        self._queue(m.set_chunk_size(size))
        self._chunk_size = size

    # -- internals -------------------------------------------------------------------------------

    def _stream(self, stream_id: int | None) -> int:
        sid = self.stream_id if stream_id is None else stream_id
        if sid is None:
            raise ValueError("no stream created yet; call create_stream() and wait for StreamCreated")
        return sid

    def _queue(self, data: bytes) -> None:
        if self._handshake.done:
            self._out += data
        else:
            self._queued += data

    def _call(self, name: str, command_object: dict[str, Any] | None) -> None:
        txn = self._next_transaction
        self._next_transaction += 1
        self._transactions[txn] = name
        self._queue(m.command(m.COMMAND_CSID, 0, self._chunk_size, name, txn, command_object))

    def _dispatch(self, msg: Message, events: list[ClientEvent]) -> None:
        t = msg.type_id
        if t == m.VIDEO or t == m.AUDIO:
            events.append(
                MediaReceived("video" if t == m.VIDEO else "audio", msg.stream_id, msg.timestamp, msg.payload)
            )
        elif t == m.COMMAND_AMF0 or t == m.COMMAND_AMF3:
            self._on_command(msg, events)
        elif t == m.DATA_AMF0 or t == m.DATA_AMF3:
            values = metadata_values(decode_amf(msg))
            if values is not None:
                events.append(MetadataReceived(msg.stream_id, values))
        else:
            self._control(msg, events)

    def _on_command(self, msg: Message, events: list[ClientEvent]) -> None:
        values = decode_amf(msg)
        if not values or not isinstance(values[0], str):
            raise RtmpError("command message without a command name")
        name = values[0]
        info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
        if name in ("_result", "_error"):
            txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
            method = self._transactions.pop(txn, None)
            if method == "connect":
                events.append(
                    ConnectResult(
                        name == "_result", str(info.get("code", "")), str(info.get("description", "")), info
                    )
                )
            elif method == "createStream":
                sid = values[3] if len(values) > 3 else None
                if name != "_result" or not isinstance(sid, float) or not 0 < sid < 2**32:
                    raise RtmpError(f"createStream failed: {info.get('description', name)}")
                self.stream_id = int(sid)
                events.append(StreamCreated(self.stream_id))
        elif name == "onStatus":
            events.append(
                Status(
                    msg.stream_id,
                    str(info.get("level", "")),
                    str(info.get("code", "")),
                    str(info.get("description", "")),
                )
            )
