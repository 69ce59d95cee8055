"""RtmpClientConnection against RtmpServerConnection in memory, h11-style: no sockets, only bytes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamhive.formats import amf0
from streamhive.protocols.rtmp import messages as m
from streamhive.protocols.rtmp.chunk import ChunkReader, encode_message
from streamhive.protocols.rtmp.client import ConnectResult, RtmpClientConnection, Status, StreamCreated
from streamhive.protocols.rtmp.connection import (
    VIDEO_CSID,
    CommandIgnored,
    Connected,
    MediaReceived,
    MetadataReceived,
    PingResponse,
    PlayRequested,
    PublishRequested,
    RtmpServerConnection,
    StreamDeleted,
)
from streamhive.protocols.rtmp.errors import RtmpError


class Pair:
    """A client and a server wired back to back; ``split`` cuts every transfer at random points."""

    def __init__(self, split: random.Random | None = None, **server_options: Any) -> None:
        self.client = RtmpClientConnection(random=random.Random(1).randbytes)
        self.server = RtmpServerConnection(random=random.Random(2).randbytes, **server_options)
        self.split = split
        self.server_events: list[Any] = []
        self.client_events: list[Any] = []
        self.client_to_server = bytearray()  # everything the client sent, for the fuzz corpus
        self.server_events += self._deliver(self.server.receive_data, self.client.initial_bytes())

    def _deliver(self, receive: Any, data: bytes) -> list[Any]:
        if receive == self.server.receive_data:
            self.client_to_server += data
        if self.split is None:
            return list(receive(data))
        events: list[Any] = []
        pos = 0
        while pos < len(data):
            step = self.split.randint(1, 700)
            events += receive(data[pos : pos + step])
            pos += step
        return events

    def pump(self, extra_to_client: bytes = b"") -> None:
        if extra_to_client:
            self.client_events += self._deliver(
                self.client.receive_data, self.server.data_to_send() + extra_to_client
            )
        while True:
            up = self.client.data_to_send()
            if up:
                self.server_events += self._deliver(self.server.receive_data, up)
            down = self.server.data_to_send()
            if down:
                self.client_events += self._deliver(self.client.receive_data, down)
            if not up and not down:
                return

    def take(self) -> tuple[list[Any], list[Any]]:
        out = (self.server_events, self.client_events)
        self.server_events, self.client_events = [], []
        return out


def _connected_pair(split: random.Random | None = None, **server_options: Any) -> Pair:
    pair = Pair(split, **server_options)
    pair.client.connect("live?token=abc", "rtmp://example/live?token=abc", objectEncoding=0)
    pair.client.create_stream()
    pair.pump()
    server_events, client_events = pair.take()
    assert server_events == [
        Connected(
            "live",
            "rtmp://example/live?token=abc",
            "token=abc",
            {
                "app": "live?token=abc",
                "type": "nonprivate",
                "flashVer": "FMLE/3.0 (streamhive)",
                "tcUrl": "rtmp://example/live?token=abc",
                "objectEncoding": 0.0,
            },
        )
    ]
    result, created = client_events
    assert isinstance(result, ConnectResult) and result.success
    assert result.code == "NetConnection.Connect.Success"
    assert created == StreamCreated(1)
    assert pair.server.out_chunk_size == 4096
    return pair


def _publishing_pair(split: random.Random | None = None) -> Pair:
    pair = _connected_pair(split)
    pair.client.publish("cam1?sig=1")
    pair.pump()
    server_events, _ = pair.take()
    assert server_events == [PublishRequested(1, "cam1", "sig=1", "live")]
    pair.server.accept_publish(1, "cam1")
    pair.pump()
    _, client_events = pair.take()
    assert client_events == [Status(1, "status", "NetStream.Publish.Start", "cam1 is now published.")]
    return pair


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_publish_flow_with_media_metadata_chunk_size_change_and_extended_timestamps(seed: int | None) -> None:
    pair = _publishing_pair(random.Random(seed) if seed is not None else None)
    client = pair.client
    client.send_metadata({"width": 320.0, "videocodecid": 7.0})
    frames = [(i * 40, bytes([i % 256]) * (100 + i * 97)) for i in range(40)]
    for ts, payload in frames[:20]:
        client.send_media("video", ts, payload)
    client.set_chunk_size(300)  # mid-stream chunk size change
    for ts, payload in frames[20:]:
        client.send_media("video", ts, payload)
    client.send_media("audio", 0xFFFFFF, b"a" * 500)
    client.send_media("audio", 0x1_0000_0000 - 1, b"b" * 900)  # extended timestamps on continuations
    pair.pump()
    server_events, _ = pair.take()
    assert server_events[0] == MetadataReceived(1, {"width": 320.0, "videocodecid": 7.0})
    media = server_events[1:]
    assert media[:40] == [MediaReceived("video", 1, ts, payload) for ts, payload in frames]
    assert media[40:] == [
        MediaReceived("audio", 1, 0xFFFFFF, b"a" * 500),
        MediaReceived("audio", 1, 0xFFFFFFFF, b"b" * 900),
    ]


def test_bare_onmetadata_and_other_data_messages() -> None:
    pair = _publishing_pair()
    payload = amf0.encode("onMetaData", {"duration": 0.0})
    other = amf0.encode("onTextData", {"text": "hi"})
    pair.client._out += encode_message(5, m.DATA_AMF0, 1, 0, payload, 4096)
    pair.client._out += encode_message(5, m.DATA_AMF3, 1, 0, b"\x00" + other, 4096)
    pair.pump()
    assert pair.take()[0] == [MetadataReceived(1, {"duration": 0.0})]


def test_media_before_publish_is_accepted_is_dropped() -> None:
    pair = _connected_pair()
    pair.client.publish("cam1")
    pair.client.send_media("video", 0, b"early")
    pair.pump()
    assert pair.take()[0] == [PublishRequested(1, "cam1", "", "live")]


def test_reject_publish() -> None:
    pair = _connected_pair()
    pair.client.publish("bad")
    pair.pump()
    pair.server.reject_publish(1, "NetStream.Publish.Unauthorized", "no token")
    pair.pump()
    assert pair.take()[1][-1] == Status(1, "error", "NetStream.Publish.Unauthorized", "no token")


def test_play_flow_with_shared_media_and_eof() -> None:
    pair = _connected_pair(random.Random(5))
    pair.client.play("cam1", start=-1)
    pair.pump()
    assert pair.take()[0] == [PlayRequested(1, "cam1", "", -1.0)]
    pair.server.accept_play(1, "cam1")
    pair.server.send_metadata(1, {"width": 640.0})
    shared = encode_message(VIDEO_CSID, m.VIDEO, 1, 0x1234567, b"v" * 10000, pair.server.out_chunk_size)
    pair.pump(extra_to_client=shared)
    pair.server.send_stream_eof(1, "cam1")
    pair.pump()
    _, client_events = pair.take()
    codes = [e.code for e in client_events if isinstance(e, Status)]
    assert codes == [
        "NetStream.Play.Reset",
        "NetStream.Play.Start",
        "NetStream.Play.UnpublishNotify",
        "NetStream.Play.Stop",
    ]
    assert MetadataReceived(1, {"width": 640.0}) in client_events
    assert MediaReceived("video", 1, 0x1234567, b"v" * 10000) in client_events


def test_reject_play_then_play_again() -> None:
    pair = _connected_pair()
    pair.client.play("missing")
    pair.pump()
    pair.server.reject_play(1)
    pair.pump()
    assert pair.take()[1] == [Status(1, "error", "NetStream.Play.StreamNotFound", "Stream not found.")]
    pair.client.play("other")
    pair.pump()
    assert pair.take()[0] == [PlayRequested(1, "other", "", -2.0)]


def test_delete_stream_and_second_stream() -> None:
    pair = _publishing_pair()
    pair.client.create_stream()
    pair.pump()
    assert pair.take()[1] == [StreamCreated(2)]
    pair.client.delete_stream(1)
    pair.pump()
    assert pair.take()[0] == [StreamDeleted(1)]


def _raw_command(pair: Pair, name: str, txn: float, *args: Any, stream_id: int = 0) -> None:
    pair.client._out += m.command(3, stream_id, pair.client.out_chunk_size, name, txn, None, *args)


def test_auxiliary_commands() -> None:
    pair = _connected_pair()
    _raw_command(pair, "releaseStream", 5.0, "cam1")
    _raw_command(pair, "FCPublish", 6.0, "cam1")
    _raw_command(pair, "getStreamLength", 7.0, "cam1")
    _raw_command(pair, "_checkbw", 8.0)
    _raw_command(pair, "FCUnpublish", 9.0, "cam1")
    _raw_command(pair, "closeStream", 0.0, stream_id=1)
    _raw_command(pair, "fancyNewCommand", 10.0)
    pair.pump()
    server_events, _ = pair.take()
    assert server_events == [StreamDeleted(1), CommandIgnored("fancyNewCommand")]


def _server_commands(pair: Pair) -> list[list[Any]]:
    reader = ChunkReader()
    reader.chunk_size = pair.server.out_chunk_size
    return [
        amf0.decode(x.payload) for x in reader.feed(pair.server.data_to_send()) if x.type_id == m.COMMAND_AMF0
    ]


def test_auxiliary_command_replies_on_the_wire() -> None:
    pair = _connected_pair()
    _raw_command(pair, "releaseStream", 5.0, "cam1")
    _raw_command(pair, "FCPublish", 6.0, "cam1")
    _raw_command(pair, "getStreamLength", 7.0, "cam1")
    pair.server.receive_data(pair.client.data_to_send())
    assert _server_commands(pair) == [
        ["_result", 5.0, None, None],
        ["onFCPublish", 0.0, None, {"code": "NetStream.Publish.Start", "description": "cam1"}],
        ["_result", 7.0, None, 0.0],
    ]


def test_pings_both_ways() -> None:
    pair = _connected_pair()
    pair.server.ping(1234)
    pair.client.ping(99)
    pair.pump()
    server_events, client_events = pair.take()
    assert server_events == [PingResponse(1234)]  # each side answers the other's request
    assert client_events == [PingResponse(99)]


def test_server_acknowledges_per_window() -> None:
    pair = _publishing_pair()
    pair.client._out += m.window_ack_size(1000)
    pair.client.send_media("video", 0, bytes(3000))
    pair.server.receive_data(pair.client.data_to_send())
    reader = ChunkReader()
    reader.chunk_size = pair.server.out_chunk_size
    acks = [x for x in reader.feed(pair.server.data_to_send()) if x.type_id == m.ACKNOWLEDGEMENT]
    assert len(acks) == 1
    assert int.from_bytes(acks[0].payload, "big") == pair.server.bytes_received


def test_digest_handshake_pair() -> None:
    client = RtmpClientConnection(digest_handshake=True)
    server = RtmpServerConnection()
    server.receive_data(client.initial_bytes())
    client.connect("app")
    client.receive_data(server.data_to_send())
    (event,) = server.receive_data(client.data_to_send())
    assert isinstance(event, Connected) and event.app == "app" and event.tc_url is None
    assert server.digest_handshake


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: _raw_command(p, "createStream", 2.0), "before connect"),
        (
            lambda p: p.client._out.extend(m.command(3, 0, 128, "connect", 1.0, {"noapp": 1})),
            "without an app",
        ),
        (
            lambda p: p.client._out.extend(encode_message(3, m.COMMAND_AMF0, 0, 0, b"\x00\x00", 128)),
            "malformed AMF",
        ),
        (
            lambda p: p.client._out.extend(encode_message(3, m.COMMAND_AMF0, 0, 0, amf0.encode(1.0), 128)),
            "name",
        ),
    ],
)
def test_protocol_errors_before_connect(setup: Any, match: str) -> None:
    pair = Pair()
    pair.client.receive_data(pair.server.data_to_send())
    setup(pair)
    with pytest.raises(RtmpError, match=match):
        pair.server.receive_data(pair.client.data_to_send())


def test_protocol_errors_after_connect() -> None:
    pair = _connected_pair()
    pair.client.connect("again")
    with pytest.raises(RtmpError, match="twice"):
        pair.pump()
    pair = _connected_pair()
    pair.client.publish("x", stream_id=7)
    with pytest.raises(RtmpError, match="not created"):
        pair.pump()
    pair = _connected_pair()
    pair.client.publish("x")
    pair.client.play("x")
    with pytest.raises(RtmpError, match="already"):
        pair.pump()


def test_stream_limit() -> None:
    pair = _connected_pair(max_streams=2)
    pair.client.create_stream()
    pair.client.create_stream()
    with pytest.raises(RtmpError, match="more than 2 streams"):
        pair.pump()


def test_replies_for_a_stream_deleted_meanwhile_are_dropped() -> None:
    pair = _connected_pair()
    pair.client.publish("cam1")
    pair.client.delete_stream()
    pair.pump()
    assert pair.take()[0] == [PublishRequested(1, "cam1", "", "live"), StreamDeleted(1)]
    pair.server.accept_publish(1)
    pair.server.reject_play(1)
    pair.server.send_stream_eof(1)
    assert pair.server.data_to_send() == b""
