"""RTMP message type ids, user control events, and builders for protocol control messages.

Control messages are tiny (at most 10 bytes of payload), so the builders return finished chunk
bytes on chunk stream 2, which the protocol reserves for them.
"""

from __future__ import annotations

import struct
from typing import Any

from ...formats import amf0
from .chunk import encode_message

# message type ids
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

# user control event types
STREAM_BEGIN = 0
STREAM_EOF = 1
STREAM_DRY = 2
SET_BUFFER_LENGTH = 3
STREAM_IS_RECORDED = 4
PING_REQUEST = 6
PING_RESPONSE = 7

# set peer bandwidth limit types
LIMIT_HARD = 0
LIMIT_SOFT = 1
LIMIT_DYNAMIC = 2

# chunk stream ids: 2 is reserved for protocol control; media use fixed ids so that shared,
# pre-encoded media (always format-0 first) never collides with a connection's own messages
CONTROL_CSID = 2
COMMAND_CSID = 3
AUDIO_CSID = 4
DATA_CSID = 5
VIDEO_CSID = 6
STREAM_COMMAND_CSID = 8

_U32 = struct.Struct(">I")
_USER_CONTROL = struct.Struct(">HI")
_CONTROL_CHUNK_SIZE = 128  # control payloads are far below any chunk size


def _control(type_id: int, payload: bytes) -> bytes:
    return encode_message(CONTROL_CSID, type_id, 0, 0, payload, _CONTROL_CHUNK_SIZE)


def set_chunk_size(size: int) -> bytes:
    """Set Chunk Size: every later chunk we send may carry up to ``size`` payload bytes."""
    if not 1 <= size <= 0x7FFFFFFF:
        raise ValueError(f"chunk size {size} outside 1..2^31-1")
    return _control(SET_CHUNK_SIZE, _U32.pack(size))


def abort(csid: int) -> bytes:
    """Abort: the peer drops the partial message on ``csid``."""
    return _control(ABORT, _U32.pack(csid))


def acknowledgement(sequence: int) -> bytes:
    """Acknowledgement of ``sequence`` bytes received (wraps at 2^32)."""
    return _control(ACKNOWLEDGEMENT, _U32.pack(sequence & 0xFFFFFFFF))


def window_ack_size(size: int) -> bytes:
    """Window Acknowledgement Size: how many bytes the peer may receive between acknowledgements."""
    return _control(WINDOW_ACK_SIZE, _U32.pack(size))


def set_peer_bandwidth(size: int, limit_type: int = LIMIT_DYNAMIC) -> bytes:
    """Set Peer Bandwidth: the peer's output window, as clients expect right after connect."""
    return _control(SET_PEER_BANDWIDTH, _U32.pack(size) + bytes((limit_type,)))


def user_control(event: int, value: int) -> bytes:
    """A user control event with one 32-bit argument (a stream id or a timestamp)."""
    return _control(USER_CONTROL, _USER_CONTROL.pack(event, value & 0xFFFFFFFF))


def stream_begin(stream_id: int) -> bytes:
    return user_control(STREAM_BEGIN, stream_id)


def stream_eof(stream_id: int) -> bytes:
    return user_control(STREAM_EOF, stream_id)


def ping_request(timestamp: int) -> bytes:
    return user_control(PING_REQUEST, timestamp)


def ping_response(timestamp: int) -> bytes:
    return user_control(PING_RESPONSE, timestamp)


def command(csid: int, stream_id: int, chunk_size: int, name: str, transaction: float, *args: Any) -> bytes:
    """An AMF0 command message (``_result``, ``onStatus``, ``connect``...)."""
    return encode_message(csid, COMMAND_AMF0, stream_id, 0, amf0.encode(name, transaction, *args), chunk_size)


def data(csid: int, stream_id: int, chunk_size: int, *values: Any, timestamp: int = 0) -> bytes:
    """An AMF0 data message (``onMetaData``, ``|RtmpSampleAccess``)."""
    return encode_message(csid, DATA_AMF0, stream_id, timestamp, amf0.encode(*values), chunk_size)


def encode_metadata(stream_id: int, values: dict[str, Any], chunk_size: int, timestamp: int = 0) -> bytes:
    """``onMetaData`` as players expect it (an ECMA array), on the data chunk stream, shareable."""
    return data(DATA_CSID, stream_id, chunk_size, "onMetaData", amf0.EcmaArray(values), timestamp=timestamp)
