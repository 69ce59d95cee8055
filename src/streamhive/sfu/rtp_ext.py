"""RTP header extensions (RFC 8285) read straight from packet bytes.

The SFU needs three extension values per publisher packet (mid and rid to route a simulcast
layer, the audio level to find the speaker) and must drop the block before forwarding, since the
ids are the publisher's negotiation and mean nothing, or something else, to a subscriber. This
runs on every packet, so it indexes the bytes in place rather than parsing the whole packet.
"""

from __future__ import annotations

from streamhive.formats.rtp import RtpError

_ONE_BYTE = 0xBEDE
_TWO_BYTE_MASK = 0xFFF0
_TWO_BYTE = 0x1000  # 0x100 plus four "appbits" the receiver ignores
_X = 0x10
_ONE_BYTE_STOP = 15  # RFC 8285 section 4.2: id 15 ends the block, its length is meaningless


def extension_span(packet: bytes) -> tuple[int, int]:
    """(start, end) of the extension block, its 4-byte header included; (n, n) when there is none.

    ``n`` is then where the payload begins (after the CSRCs). RtpError when the header, the CSRCs
    or the block overrun the packet.
    """
    size = len(packet)
    if size < 12:
        raise RtpError(f"RTP packet of {size} bytes is shorter than its 12-byte header")
    first = packet[0]
    if first >> 6 != 2:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    start = 12 + 4 * (first & 0x0F)
    if not first & _X:
        if start > size:
            raise RtpError(f"RTP header with {first & 0x0F} CSRCs overruns the {size}-byte packet")
        return start, start
    if start + 4 > size:
        raise RtpError("RTP header extension overruns the packet")
    end = start + 4 + 4 * (packet[start + 2] << 8 | packet[start + 3])
    if end > size:
        raise RtpError(f"RTP header extension of {end - start} bytes overruns the packet")
    return start, end


def extensions(packet: bytes) -> dict[int, bytes]:
    """The extension elements by id: one-byte (0xBEDE) and two-byte (0x100X) forms.

    {} when the X bit is clear or the block has another profile (not RFC 8285, nothing we read).
    Padding bytes between elements are skipped; RtpError when an element overruns the block.
    """
    start, end = extension_span(packet)
    if start == end:
        return {}
    profile = packet[start] << 8 | packet[start + 1]
    if profile == _ONE_BYTE:
        return _one_byte(packet, start + 4, end)
    if profile & _TWO_BYTE_MASK == _TWO_BYTE:
        return _two_byte(packet, start + 4, end)
    return {}


def _one_byte(packet: bytes, pos: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos < end:
        head = packet[pos]
        if not head:  # padding
            pos += 1
            continue
        ident = head >> 4
        if ident == _ONE_BYTE_STOP:
            break
        pos += 1
        stop = pos + (head & 0x0F) + 1
        if stop > end:
            raise RtpError(f"RTP header extension element {ident} overruns its block")
        out[ident] = packet[pos:stop]
        pos = stop
    return out


def _two_byte(packet: bytes, pos: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos < end:
        ident = packet[pos]
        if not ident:  # padding
            pos += 1
            continue
        if pos + 2 > end:
            raise RtpError(f"RTP header extension element {ident} truncated in its length")
        stop = pos + 2 + packet[pos + 1]
        if stop > end:
            raise RtpError(f"RTP header extension element {ident} overruns its block")
        out[ident] = packet[pos + 2 : stop]
        pos = stop
    return out


def strip_extensions(packet: bytes) -> bytes:
    """The packet without its extension block and with X cleared; the same object if it has none.

    CSRCs, padding and payload are kept byte for byte. RtpError as for :func:`extension_span`.
    """
    start, end = extension_span(packet)
    if start == end:
        return packet
    return b"".join((bytes((packet[0] & ~_X,)), packet[1:start], packet[end:]))


def audio_level(value: bytes) -> tuple[int, bool]:
    """(level in -dBov, 0 loudest .. 127 silence; voice activity) of an RFC 6464 element."""
    if not value:
        raise RtpError("empty audio level header extension")
    return value[0] & 0x7F, value[0] > 0x7F
