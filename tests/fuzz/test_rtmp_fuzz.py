"""Fuzz the RTMP cores: random and mutated byte streams may only raise RtmpError.

The mutated inputs start from a real client session (connect, createStream, publish, metadata and
media with a chunk size change and extended timestamps), so mutations reach deep parser states.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.protocols.rtmp.chunk import ChunkReader
from streamhive.protocols.rtmp.client import RtmpClientConnection
from streamhive.protocols.rtmp.connection import PlayRequested, PublishRequested, RtmpServerConnection
from streamhive.protocols.rtmp.errors import RtmpError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _record_session() -> tuple[bytes, bytes]:
    """(handshake bytes, chunk stream bytes) a client sends for a short publish session."""
    client = RtmpClientConnection(out_chunk_size=256, random=random.Random(1).randbytes)
    server = RtmpServerConnection(random=random.Random(2).randbytes)
    sent = bytearray(client.initial_bytes())
    server.receive_data(bytes(sent))
    client.connect("live?k=v", "rtmp://h/live")
    client.create_stream()
    client.receive_data(server.data_to_send())
    upstream = client.data_to_send()
    sent += upstream
    server.receive_data(upstream)
    client.receive_data(server.data_to_send())
    client.publish("cam")
    client.send_metadata({"width": 320.0, "tags": ["a", {"b": None}]})
    client.set_chunk_size(100)
    for i in range(6):
        client.send_media("video", i * 40, bytes([i]) * (50 + 90 * i))
    client.send_media("audio", 0x1000000, b"a" * 250)
    client.play("other")
    client.delete_stream()
    client.ping(7)
    sent += client.data_to_send()
    return bytes(sent[: 1 + 2 * 1536]), bytes(sent[1 + 2 * 1536 :])


HANDSHAKE, STREAM = _record_session()

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete"]), st.integers(0, len(STREAM) - 1), st.integers(0, 255)
    ),
    min_size=1,
    max_size=8,
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, pos, value in ops:
        pos %= max(len(out), 1)
        if op == "flip":
            out[pos] ^= value or 1
        elif op == "insert":
            out.insert(pos, value)
        elif out:
            del out[pos]
    return bytes(out)


def _splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 400)
        pieces.append(data[pos : pos + step])
        pos += step
    return pieces


def _feed_server(pieces: list[bytes]) -> None:
    server = RtmpServerConnection(random=random.Random(3).randbytes)
    try:
        for piece in pieces:
            for event in server.receive_data(piece):
                if isinstance(event, PublishRequested):
                    server.accept_publish(event.stream_id)
                elif isinstance(event, PlayRequested):
                    server.accept_play(event.stream_id)
            server.data_to_send()
    except RtmpError:
        pass


def test_recorded_session_is_valid() -> None:
    reader = ChunkReader()
    assert len(reader.feed(STREAM)) > 10
    _feed_server([HANDSHAKE, STREAM])


@FUZZ
@given(ops=mutations, seed=st.integers(0, 2**16))
def test_chunk_reader_mutated(ops: list[tuple[str, int, int]], seed: int) -> None:
    reader = ChunkReader()
    try:
        for piece in _splits(_mutate(STREAM, ops), seed):
            reader.feed(piece)
    except RtmpError:
        pass


@FUZZ
@given(data=st.binary(max_size=2000), seed=st.integers(0, 2**16))
def test_chunk_reader_random(data: bytes, seed: int) -> None:
    reader = ChunkReader()
    try:
        for piece in _splits(data, seed):
            reader.feed(piece)
    except RtmpError:
        pass


@FUZZ
@given(ops=mutations, seed=st.integers(0, 2**16))
def test_server_connection_mutated(ops: list[tuple[str, int, int]], seed: int) -> None:
    _feed_server(_splits(HANDSHAKE + _mutate(STREAM, ops), seed))


@FUZZ
@given(data=st.binary(max_size=2000), seed=st.integers(0, 2**16))
def test_server_connection_random_after_handshake(data: bytes, seed: int) -> None:
    _feed_server([HANDSHAKE, *_splits(data, seed)])


@FUZZ
@given(data=st.binary(min_size=1, max_size=4000))
def test_server_connection_random_from_start(data: bytes) -> None:
    _feed_server([b"\x03" + data])
