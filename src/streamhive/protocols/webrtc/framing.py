"""RFC 4571 framing: datagrams over ICE-TCP as a 2-byte big-endian length and the packet.

Browsers fall back to ICE-TCP (RFC 6544) when UDP is blocked; every STUN, DTLS and SRTP packet then
travels as one framed record on the stream, and the receiver cuts the stream back into packets.
"""

from __future__ import annotations

from streamhive.protocols.webrtc import WebRtcError

MAX_LENGTH = 0xFFFF

# Every packet on ICE-TCP is one that would have been a UDP datagram on an MTU-sized path; a
# declared length far beyond that means the stream lost sync (or is not ICE-TCP at all), and
# buffering up to 64 KiB per connection for it would only let a peer hold memory.
DEFAULT_MAX_PACKET = 4096


def frame(packet: bytes) -> bytes:
    """Prefix `packet` with its RFC 4571 length."""
    if len(packet) > MAX_LENGTH:
        raise WebRtcError(f"packet of {len(packet)} bytes does not fit RFC 4571 framing (max {MAX_LENGTH})")
    return len(packet).to_bytes(2, "big") + packet


class StreamDeframer:
    """Cuts a TCP byte stream into RFC 4571 packets, holding at most one partial packet.

    RFC 4571 does not forbid LENGTH 0; no STUN, DTLS or RTP packet is empty, so such a frame is
    skipped rather than handed on. A length above `max_packet` raises: the connection is unusable.
    """

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        if not 1 <= max_packet <= MAX_LENGTH:
            raise ValueError(f"max_packet must be 1..{MAX_LENGTH}, not {max_packet}")
        self.max_packet = max_packet
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for a packet not yet complete (at most max_packet + 1)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream and return the packets now complete."""
        buffer = self._buffer
        buffer += data
        packets: list[bytes] = []
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            length = (buffer[pos] << 8) | buffer[pos + 1]
            if length > self.max_packet:
                buffer.clear()
                raise WebRtcError(
                    f"RFC 4571 frame of {length} bytes exceeds the {self.max_packet}-byte limit"
                )
            if end - pos - 2 < length:
                break
            if length:
                packets.append(bytes(buffer[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        if pos:
            del buffer[:pos]
        return packets
