"""RTMP chunk stream: header formats, extended timestamps, chunk size changes, abort and limits."""

from __future__ import annotations

import random
import struct

import pytest

from streamhive.protocols.rtmp import messages as m
from streamhive.protocols.rtmp.chunk import ChunkReader, Message, encode_message
from streamhive.protocols.rtmp.errors import RtmpError


def _header(fmt: int, csid: int, ts: int | None = None, length: int | None = None, type_id: int | None = None,
            stream_id: int | None = None, ext: int | None = None) -> bytes:  # fmt: skip
    """Hand-built chunk header, independent of encode_message."""
    out = bytes(((fmt << 6) | csid,))
    if fmt <= 2:
        assert ts is not None
        out += struct.pack(">I", ts)[1:]
    if fmt <= 1:
        assert length is not None and type_id is not None
        out += struct.pack(">I", length)[1:] + bytes((type_id,))
    if fmt == 0:
        assert stream_id is not None
        out += struct.pack("<I", stream_id)
    if ext is not None:
        out += struct.pack(">I", ext)
    return out


def _feed_in_pieces(reader: ChunkReader, data: bytes, rng: random.Random) -> list[Message]:
    out: list[Message] = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 300)
        out += reader.feed(data[pos : pos + step])
        pos += step
    return out


@pytest.mark.parametrize("csid", [2, 3, 63, 64, 319, 320, 65599])
@pytest.mark.parametrize("timestamp", [0, 1000, 0xFFFFFE, 0xFFFFFF, 0x12345678])
def test_encode_then_read_round_trip(csid: int, timestamp: int) -> None:
    payload = bytes(range(256)) * 3
    data = encode_message(csid, m.VIDEO, 1, timestamp, payload, 100)
    reader = ChunkReader()
    reader.chunk_size = 100
    assert reader.feed(data) == [Message(m.VIDEO, 1, timestamp, payload)]
    reader2 = ChunkReader()
    reader2.chunk_size = 100
    assert _feed_in_pieces(reader2, data, random.Random(csid)) == [Message(m.VIDEO, 1, timestamp, payload)]
    assert reader.bytes_received == len(data)


def test_encode_layout_repeats_extended_timestamp_in_continuations() -> None:
    data = encode_message(6, m.VIDEO, 1, 0x01000000, b"a" * 5, 2)
    ext = struct.pack(">I", 0x01000000)
    assert data == (
        _header(0, 6, 0xFFFFFF, 5, m.VIDEO, 1, ext=0x01000000) + b"aa"
        + b"\xc6" + ext + b"aa" + b"\xc6" + ext + b"a"
    )  # fmt: skip


def test_encode_rejects_bad_csid_and_oversized_payload() -> None:
    with pytest.raises(ValueError):
        encode_message(1, m.VIDEO, 1, 0, b"", 128)
    with pytest.raises(ValueError):
        encode_message(65600, m.VIDEO, 1, 0, b"", 128)
    with pytest.raises(ValueError):
        encode_message(4, m.VIDEO, 1, 0, bytes(0x1000000), 128)


def test_all_header_formats_accumulate_deltas() -> None:
    data = (
        _header(0, 4, 1000, 2, m.AUDIO, 1) + b"a0"
        + _header(1, 4, 20, 3, m.AUDIO) + b"a1x"
        + _header(2, 4, 30) + b"a2x"
        + _header(3, 4) + b"a3x"  # new message, same delta as before
    )  # fmt: skip
    msgs = ChunkReader().feed(data)
    assert [(x.timestamp, x.payload, x.stream_id) for x in msgs] == [
        (1000, b"a0", 1),
        (1020, b"a1x", 1),
        (1050, b"a2x", 1),
        (1080, b"a3x", 1),
    ]


def test_type3_after_type0_reuses_the_absolute_timestamp_as_delta() -> None:
    """ffmpeg's reading: after a format-0 header the 'delta' for a format-3 message is its timestamp."""
    data = _header(0, 4, 40, 1, m.AUDIO, 1) + b"a" + _header(3, 4) + b"b"
    assert [x.timestamp for x in ChunkReader().feed(data)] == [40, 80]


def test_extended_timestamp_on_type3_continuation_and_new_message() -> None:
    ts = 0x01000000
    data = (
        _header(0, 6, 0xFFFFFF, 130, m.VIDEO, 1, ext=ts) + b"v" * 128
        + _header(3, 6, ext=ts) + b"vv"
        + _header(1, 6, 0xFFFFFF, 1, m.VIDEO, ext=0x01000000) + b"w"  # delta in the extended field
        + _header(3, 6, ext=0x01000000) + b"z"  # new message via format 3 repeats the extended delta
    )  # fmt: skip
    msgs = ChunkReader().feed(data)
    assert [(x.timestamp, len(x.payload)) for x in msgs] == [(ts, 130), (2 * ts, 1), (3 * ts, 1)]


def test_interleaved_chunk_streams() -> None:
    data = (
        _header(0, 4, 0, 200, m.AUDIO, 1) + b"a" * 128
        + _header(0, 6, 5, 130, m.VIDEO, 1) + b"v" * 128
        + _header(3, 4) + b"a" * 72
        + _header(3, 6) + b"v" * 2
    )  # fmt: skip
    msgs = ChunkReader().feed(data)
    assert [(x.type_id, x.payload) for x in msgs] == [(m.AUDIO, b"a" * 200), (m.VIDEO, b"v" * 130)]


def test_set_chunk_size_applies_to_the_next_chunk_in_the_same_feed() -> None:
    data = m.set_chunk_size(4096) + encode_message(6, m.VIDEO, 1, 0, b"x" * 3000, 4096)
    reader = ChunkReader()
    msgs = reader.feed(data)
    assert reader.chunk_size == 4096
    assert [x.type_id for x in msgs] == [m.SET_CHUNK_SIZE, m.VIDEO]
    assert msgs[1].payload == b"x" * 3000


@pytest.mark.parametrize("size", [0, 0x80000000, 0x7FFFFFFF])
def test_invalid_or_too_large_chunk_size(size: int) -> None:
    payload = struct.pack(">I", size)
    with pytest.raises(RtmpError, match="chunk size"):
        ChunkReader(max_chunk_size=65536).feed(encode_message(2, m.SET_CHUNK_SIZE, 0, 0, payload, 128))


def test_abort_discards_partial_message() -> None:
    data = (
        _header(0, 4, 0, 200, m.AUDIO, 1) + b"a" * 128
        + m.abort(4)
        + _header(0, 4, 10, 3, m.AUDIO, 1) + b"new"
    )  # fmt: skip
    msgs = ChunkReader().feed(data)
    assert [(x.type_id, x.payload) for x in msgs[1:]] == [(m.AUDIO, b"new")]
    assert msgs[0].type_id == m.ABORT


def test_zero_length_message() -> None:
    assert ChunkReader().feed(_header(0, 3, 7, 0, m.COMMAND_AMF0, 0)) == [Message(m.COMMAND_AMF0, 0, 7, b"")]


def test_limits() -> None:
    with pytest.raises(RtmpError, match="exceeds"):
        ChunkReader(max_message_size=1000).feed(_header(0, 4, 0, 1001, m.AUDIO, 1))
    reader = ChunkReader(max_partial_streams=3)
    with pytest.raises(RtmpError, match="partial"):
        for csid in range(3, 10):
            reader.feed(_header(0, csid, 0, 500, m.AUDIO, 1) + b"x" * 128)


def test_header_violations() -> None:
    with pytest.raises(RtmpError, match="starts with"):
        ChunkReader().feed(_header(2, 5, 0))
    with pytest.raises(RtmpError, match="middle"):
        ChunkReader().feed(_header(0, 4, 0, 200, m.AUDIO, 1) + b"a" * 128 + _header(1, 4, 0, 5, m.AUDIO))


def test_byte_at_a_time_many_messages() -> None:
    stream = b"".join(
        encode_message(4 + i % 3, m.AUDIO, 1, i * 23, bytes([i]) * (i * 7), 128) for i in range(60)
    )
    reader = ChunkReader()
    msgs = [x for b in range(len(stream)) for x in reader.feed(stream[b : b + 1])]
    assert [(x.timestamp, x.payload) for x in msgs] == [(i * 23, bytes([i]) * (i * 7)) for i in range(60)]
