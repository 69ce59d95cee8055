"""RTP packets (RFC 3550 section 5.1): parsing, serializing, and the header muxers prepend.

Almost every packet a server sees or sends is version 2 with no padding, CSRCs or extension, so
both directions have a fast path for exactly that shape and do the general work only otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamhive.formats.rtp import RtpError

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_PLAIN_V2 = 0x80  # version 2, no padding, no extension, no CSRC


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet; ``payload`` excludes padding, which parse() strips and serialize() omits."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    payload: bytes = b""
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None  # (profile, data); data a multiple of 4 bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; every length it declares is checked against its size."""
        if len(data) < 12:
            raise RtpError(f"RTP packet of {len(data)} bytes is shorter than its 12-byte header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first == _PLAIN_V2:
            return cls(second & 0x7F, sequence, timestamp, ssrc, second > 0x7F, data[12:])
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6}, expected 2")
        size = len(data)
        count = first & 0x0F
        pos = 12 + 4 * count
        if pos > size:
            raise RtpError(f"RTP header with {count} CSRCs overruns the {size}-byte packet")
        csrc = struct.unpack_from(f"!{count}I", data, 12) if count else ()
        extension = None
        if first & 0x10:
            if pos + 4 > size:
                raise RtpError("RTP header extension overruns the packet")
            profile, words = _EXTENSION.unpack_from(data, pos)
            start = pos + 4
            pos = start + 4 * words
            if pos > size:
                raise RtpError(f"RTP header extension of {words} words overruns the packet")
            extension = (profile, data[start:pos])
        end = size
        if first & 0x20:
            if data[-1] == 0:
                raise RtpError("RTP padding count of zero")
            end -= data[-1]
            if pos > end:
                raise RtpError(f"RTP padding of {data[-1]} bytes overruns the payload")
        return cls(second & 0x7F, sequence, timestamp, ssrc, second > 0x7F, data[pos:end], csrc, extension)

    def serialize(self) -> bytes:
        if not self.csrc and self.extension is None:
            header = rtp_header(self.payload_type, self.sequence, self.timestamp, self.ssrc, self.marker)
            return header + self.payload
        count = len(self.csrc)
        if count > 15:
            raise RtpError(f"an RTP packet holds at most 15 CSRCs, not {count}")
        first = _PLAIN_V2 | count
        extension = b""
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise RtpError("RTP header extension data must be a multiple of 4 bytes")
            first |= 0x10
            extension = _EXTENSION.pack(profile, len(data) // 4) + data
        second = self.payload_type | 0x80 if self.marker else self.payload_type
        header = _HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)
        return b"".join((header, struct.pack(f"!{count}I", *self.csrc), extension, self.payload))


def rtp_header(payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The 12-byte header of a plain packet; sequence and timestamp wrap here, not at the caller."""
    return _HEADER.pack(
        _PLAIN_V2,
        payload_type | 0x80 if marker else payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on an rtcp-mux port is RTCP (RFC 5761 section 4).

    The second byte is RTCP's packet type where RTP has its marker and payload type; RFC 5761
    keeps RTP payload types 64-95 free so that RTCP types 192-223 are unambiguous. The whole
    range is taken, not only 200-204: reduced-size feedback (RFC 5506), e.g. a lone PLI (206),
    arrives without a leading SR/RR.
    """
    return len(data) > 1 and 192 <= data[1] <= 223
