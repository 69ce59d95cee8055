"""RTMP chunk stream, sans-IO: a reader that reassembles messages and an encoder for whole messages.

This is the ingest hot path, so the reader works on offsets into one buffer with
``struct.unpack_from`` and copies each payload byte at most twice; the encoder produces one
self-contained byte string per message (a format-0 header, then format-3 continuations) so the same
bytes can be written to every reader of a stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtmpError

__all__ = [
    "ChunkReader",
    "Message",
    "encode_message",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_CHUNK_SIZE",
    "MAX_CSID",
]

DEFAULT_CHUNK_SIZE = 128
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_CHUNK_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_PARTIAL_STREAMS = 64
MAX_CSID = 65599
EXTENDED = 0xFFFFFF

_SET_CHUNK_SIZE = 1
_ABORT = 2

_U32 = struct.Struct(">I")
_LE32 = struct.Struct("<I")


@dataclass(slots=True)
class Message:
    """One reassembled RTMP message; ``timestamp`` is absolute, in milliseconds (32-bit wrapping)."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


class _ChunkStream:
    """What the previous header on one chunk stream id said, plus the message being assembled."""

    __slots__ = ("timestamp", "delta", "length", "type_id", "stream_id", "extended", "parts", "remaining")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.parts = bytearray()
        self.remaining = 0  # payload bytes of the current message not yet received; 0 = between messages


class ChunkReader:
    """Reassemble RTMP messages from the chunk stream (everything after the handshake).

    Set Chunk Size and Abort are applied as soon as they are read, because they change how the
    very next chunk is parsed; they are still returned so the caller sees every message.
    """

    __slots__ = (
        "chunk_size",
        "max_chunk_size",
        "max_message_size",
        "max_partial_streams",
        "bytes_received",
        "_buf",
        "_streams",
        "_partial",
        "_current",
        "_chunk_left",
    )

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_partial_streams: int = DEFAULT_MAX_PARTIAL_STREAMS,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_chunk_size = max_chunk_size
        self.max_message_size = max_message_size
        self.max_partial_streams = max_partial_streams
        self.bytes_received = 0  # every byte fed, for acknowledgements
        self._buf = b""
        self._streams: dict[int, _ChunkStream] = {}
        self._partial = 0  # chunk streams with a message in progress
        self._current: _ChunkStream | None = None  # a chunk whose payload is still arriving
        self._chunk_left = 0

    def feed(self, data: bytes) -> list[Message]:
        """Consume bytes and return the messages they complete, in order."""
        self.bytes_received += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        view = memoryview(buf)
        end = len(buf)
        pos = 0
        out: list[Message] = []
        streams = self._streams
        while True:
            cs = self._current
            if cs is not None:  # payload of a chunk whose header is already parsed
                take = min(self._chunk_left, end - pos)
                cs.parts += view[pos : pos + take]
                pos += take
                self._chunk_left -= take
                cs.remaining -= take
                if self._chunk_left:
                    break
                self._current = None
                if cs.remaining == 0:
                    payload = bytes(cs.parts)
                    cs.parts.clear()
                    self._partial -= 1
                    self._emit(cs, payload, out)
                continue
            if pos >= end:
                break
            # basic header
            b0 = buf[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            p = pos + 1
            if csid == 0:
                if end - p < 1:
                    break
                csid = buf[p] + 64
                p += 1
            elif csid == 1:
                if end - p < 2:
                    break
                csid = buf[p] + (buf[p + 1] << 8) + 64
                p += 2
            cs = streams.get(csid)
            if cs is None:
                if fmt >= 2:
                    raise RtmpError(f"chunk stream {csid} starts with a format-{fmt} header")
                cs = streams[csid] = _ChunkStream()
            new_message = cs.remaining == 0
            if not new_message and fmt != 3:
                raise RtmpError(f"format-{fmt} header on chunk stream {csid} in the middle of a message")
            # message header
            if fmt == 0:
                if end - p < 11:
                    break
                ts = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
                length = (buf[p + 3] << 16) | (buf[p + 4] << 8) | buf[p + 5]
                type_id = buf[p + 6]
                (stream_id,) = _LE32.unpack_from(buf, p + 7)
                p += 11
            elif fmt == 1:
                if end - p < 7:
                    break
                ts = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
                length = (buf[p + 3] << 16) | (buf[p + 4] << 8) | buf[p + 5]
                type_id = buf[p + 6]
                stream_id = cs.stream_id
                p += 7
            elif fmt == 2:
                if end - p < 3:
                    break
                ts = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
                length, type_id, stream_id = cs.length, cs.type_id, cs.stream_id
                p += 3
            else:
                ts = -1
                length, type_id, stream_id = cs.length, cs.type_id, cs.stream_id
            extended = cs.extended if fmt == 3 else ts == EXTENDED
            if extended:  # format 3 repeats the extended field, as ffmpeg and librtmp send it
                if end - p < 4:
                    break
                (ext,) = _U32.unpack_from(buf, p)
                p += 4
                if fmt != 3:
                    ts = ext
            # the header is complete: commit it
            if new_message:
                if length > self.max_message_size:
                    raise RtmpError(f"message of {length} bytes exceeds the limit of {self.max_message_size}")
                if fmt == 0:
                    cs.timestamp = ts
                    cs.delta = ts  # ffmpeg's reading: a later format-3 message adds this again
                elif fmt == 3:
                    cs.timestamp = (cs.timestamp + cs.delta) & 0xFFFFFFFF
                else:
                    cs.delta = ts
                    cs.timestamp = (cs.timestamp + ts) & 0xFFFFFFFF
                if fmt != 3:
                    cs.extended = extended
                cs.length, cs.type_id, cs.stream_id = length, type_id, stream_id
            pos = p
            if new_message:
                if length == 0:
                    self._emit(cs, b"", out)
                    continue
                size = length if length < self.chunk_size else self.chunk_size
                if end - pos >= size and size == length:  # fast path: a whole single-chunk message
                    payload = buf[pos : pos + size]
                    pos += size
                    self._emit(cs, payload, out)
                    continue
                if self._partial >= self.max_partial_streams:
                    raise RtmpError(
                        f"more than {self.max_partial_streams} chunk streams with partial messages"
                    )
                self._partial += 1
                cs.remaining = length
            else:
                size = cs.remaining if cs.remaining < self.chunk_size else self.chunk_size
            self._current = cs
            self._chunk_left = size
        self._buf = buf[pos:]
        return out

    def _emit(self, cs: _ChunkStream, payload: bytes, out: list[Message]) -> None:
        type_id = cs.type_id
        if type_id == _SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise RtmpError("Set Chunk Size message shorter than 4 bytes")
            (size,) = _U32.unpack_from(payload)
            if size & 0x80000000 or size == 0:
                raise RtmpError(f"invalid chunk size 0x{size:08x}")
            if size > self.max_chunk_size:
                raise RtmpError(f"chunk size {size} exceeds the limit of {self.max_chunk_size}")
            self.chunk_size = size
        elif type_id == _ABORT:
            if len(payload) < 4:
                raise RtmpError("Abort message shorter than 4 bytes")
            aborted = self._streams.get(_U32.unpack_from(payload)[0])
            if aborted is not None and aborted.remaining:
                aborted.remaining = 0
                aborted.parts.clear()
                self._partial -= 1
        out.append(Message(type_id, cs.stream_id, cs.timestamp, payload))


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid < 64:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid < 320:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= MAX_CSID:
        return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))
    raise ValueError(f"chunk stream id {csid} outside 2..{MAX_CSID}")


def encode_message(
    csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes, chunk_size: int
) -> bytes:
    """Encode one whole message: a format-0 chunk, then format-3 continuation chunks.

    Always format 0 first so the result does not depend on what was sent before on ``csid``,
    which is what lets one encoding be shared by many connections.
    """
    timestamp &= 0xFFFFFFFF
    length = len(payload)
    if length > 0xFFFFFF:
        raise ValueError(f"message of {length} bytes does not fit RTMP's 24-bit length")
    extended = timestamp >= EXTENDED
    ts_field = EXTENDED if extended else timestamp
    header = (
        _basic_header(0, csid)
        + _U32.pack(ts_field)[1:]
        + _U32.pack(length)[1:]
        + bytes((type_id,))
        + _LE32.pack(stream_id)
    )
    ext = _U32.pack(timestamp) if extended else b""
    if length <= chunk_size:
        return b"".join((header, ext, payload))
    cont = _basic_header(3, csid) + ext
    view = memoryview(payload)
    parts = [header, ext, view[:chunk_size]]
    for start in range(chunk_size, length, chunk_size):
        parts.append(cont)
        parts.append(view[start : start + chunk_size])
    return b"".join(parts)
