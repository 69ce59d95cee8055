"""The RTMP/RTMPS adapter: a socket, the sans-IO RtmpServerConnection, and the hub.

An asyncio.Protocol rather than streams: the ingest path is a callback per read with no task
switches, and players are written to directly by the hub (see hub.stream.Reader).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..formats.flvmux import PLAYER_AUDIO
from ..hub import Reader, Refused, Session, Stream
from ..hub.frame import Track
from ..protocols.rtmp import connection as rc
from ..protocols.rtmp.errors import RtmpError
from ..protocols.rtmp.mux import RtmpMuxer
from .connection import ClientConnection
from .flv_ingest import FlvIngest

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.rtmp")

#: How the hub's refusal codes read on the wire (NetStream status codes players understand).
PUBLISH_CODES = {
    "busy": "NetStream.Publish.BadName",
    "unauthorized": "NetStream.Publish.Unauthorized",
    "forbidden": "NetStream.Publish.Unauthorized",
    "bad_path": "NetStream.Publish.BadName",
}
PLAY_CODES = {
    "not_found": "NetStream.Play.StreamNotFound",
    "unauthorized": "NetStream.Play.Unauthorized",
    "forbidden": "NetStream.Play.Unauthorized",
    "bad_path": "NetStream.Play.StreamNotFound",
    "too_many": "NetStream.Play.Failed",
}


class RtmpSession(ClientConnection):
    def __init__(self, server: Server, protocol_name: str = "rtmp") -> None:
        self.server = server
        self.hub = server.hub
        self.protocol_name = protocol_name
        cfg = server.config.rtmp
        self.conn = rc.RtmpServerConnection(
            out_chunk_size=cfg.chunk_size,
            max_message_size=cfg.max_message_size,
            max_chunk_size=cfg.max_chunk_size,
        )
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.app = ""
        self.connect_query = ""
        self.stream: Stream | None = None
        self.publish_id: int | None = None
        self.reader: Reader | None = None
        self.play_id: int | None = None
        self.ingest: FlvIngest | None = None
        self.claimed = False  # a publish or play is being set up or running
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.open_session(transport, self.hub, self.protocol_name):
            return
        timeout = self.server.config.rtmp.handshake_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        assert self.session is not None
        self.session.bytes_in += len(data)
        if self.stream is not None and self.publish_id is not None:
            self.stream.bytes_in += len(data)
        try:
            events = self.conn.receive_data(data)
            for event in events:
                self._handle(event)
        except (RtmpError, ValueError) as exc:
            self.close(f"protocol error: {exc}")
            return
        self._flush()

    # -- events from the core -------------------------------------------------------------------
    def _handle(self, event: object) -> None:
        if isinstance(event, rc.MediaReceived):
            if event.stream_id == self.publish_id and self.ingest is not None:
                self._media(event)
        elif isinstance(event, rc.Connected):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.app, self.connect_query = event.app, event.query
        elif isinstance(event, rc.PublishRequested):
            self._spawn(self._publish(event))
        elif isinstance(event, rc.PlayRequested):
            self._spawn(self._play(event))
        elif isinstance(event, rc.MetadataReceived):
            if event.stream_id == self.publish_id and self.stream is not None:
                self.stream.set_metadata(dict(event.values))
        elif isinstance(event, rc.StreamDeleted):
            if event.stream_id == self.publish_id:
                self._stop_publishing()
            elif event.stream_id == self.play_id and self.reader is not None:
                self.reader.close("player stopped")
        elif isinstance(event, rc.CommandIgnored):
            log.debug("session %s: ignored command %s", self.session.id if self.session else "?", event.name)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _path(self, name: str) -> str:
        return f"{self.app}/{name}" if self.app else name

    def _claim(self) -> bool:
        """One publish or play per connection: claimed before the first await, so two pipelined
        requests cannot both pass while authorization is still running."""
        if self.stream is not None or self.claimed:
            return False
        self.claimed = True
        return True

    def _query(self, stream_query: str) -> str:
        """Credentials may be on the stream name, the app (connect URL), or both."""
        return "&".join(q for q in (stream_query, self.connect_query) if q)

    async def _publish(self, event: rc.PublishRequested) -> None:
        assert self.session is not None
        if not self._claim():
            self.conn.reject_publish(
                event.stream_id, "NetStream.Publish.BadName", "already publishing or playing"
            )
            self._flush()
            return
        self.session.query = self._query(event.query)
        try:
            stream = await self.hub.publish(self._path(event.name), self.session)
        except Refused as refused:
            self.claimed = False
            self._refuse(self.conn.reject_publish, event.stream_id, PUBLISH_CODES[refused.code], refused)
            return
        if self.closed:
            self.hub.unpublish(stream, self.session)
            return
        self.stream, self.publish_id = stream, event.stream_id
        self.ingest = FlvIngest(stream)
        self.conn.accept_publish(event.stream_id)
        self._flush()

    async def _play(self, event: rc.PlayRequested) -> None:
        assert self.session is not None and self.transport is not None
        if not self._claim():
            self.conn.reject_play(event.stream_id, "NetStream.Play.Failed", "already publishing or playing")
            self._flush()
            return
        self.session.query = self._query(event.query)
        try:
            stream = await self.hub.read(self._path(event.name), self.session)
        except Refused as refused:
            self.claimed = False
            self._refuse(self.conn.reject_play, event.stream_id, PLAY_CODES[refused.code], refused)
            return
        if self.closed:
            return
        stream = stream.readable_with(PLAYER_AUDIO)
        self.stream, self.play_id = stream, event.stream_id
        self.conn.accept_play(event.stream_id)
        self._flush()
        chunk_size, stream_id = self.conn.out_chunk_size, event.stream_id

        def factory(tracks: list[Track]) -> RtmpMuxer:
            return RtmpMuxer(tracks, chunk_size, stream_id)

        self.reader = Reader(
            self.session, self.transport, (f"rtmp:{chunk_size}:{stream_id}", factory), self._reader_end
        )
        stream.attach(self.reader)

    def _refuse(
        self, reply: Callable[[int, str, str], None], stream_id: int, code: str, refused: Refused
    ) -> None:
        """Send the refusal status, then close once it is written (players show the status)."""
        log.info("session %s refused: %s", self.session.id if self.session else "?", refused)
        reply(stream_id, code, str(refused))
        self._flush()
        asyncio.get_running_loop().call_later(0.2, self.close, f"refused: {refused}")

    def _media(self, event: rc.MediaReceived) -> None:
        assert self.ingest is not None
        self.ingest.media(event.kind, event.payload, event.timestamp)

    # -- output and closing ---------------------------------------------------------------------
    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)
            if self.session is not None:
                self.session.bytes_out += len(data)

    def _reader_end(self, reason: str) -> None:
        """The stream ended (or this player was dropped): say so the RTMP way, then close."""
        if self.closed or self.transport is None:
            return
        if reason.startswith("slow reader"):
            self.transport.abort()  # its unsent backlog is dropped, not flushed
        elif self.play_id is not None:
            self.conn.send_stream_eof(self.play_id)
            self._flush()
        self.close(reason)

    def _handshake_timeout(self) -> None:
        self.close("handshake/connect timeout")

    def _stop_publishing(self) -> None:
        if self.stream is not None and self.session is not None and self.publish_id is not None:
            self.hub.unpublish(self.stream, self.session)
        self.stream, self.publish_id, self.ingest = None, None, None
        self.claimed = False

    def _cleanup(self, reason: str) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks:
            task.cancel()
        self._stop_publishing()
        if self.reader is not None:
            reader, self.reader = self.reader, None
            reader.close(reason, notify=False)
            self.hub.read_ended(reader.session)
        if self.session is not None:
            if self.session.close_reason is None:
                self.session.close_reason = reason
            self.hub.remove_session(self.session)
