"""RFC 7983 demultiplexing: which protocol a datagram on the shared ICE port carries.

STUN, DTLS and SRTP/SRTCP all arrive on one 5-tuple (and over ICE-TCP in one stream), so every
packet is sorted by its first byte before anything parses it. This runs once per packet on the
media path, so it is a handful of integer comparisons and nothing else.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["stun", "dtls", "rtp", "rtcp", "other"]


def classify(data: bytes) -> Kind:
    """Sort a packet by RFC 7983's first-byte ranges; RTP vs RTCP by RFC 5761's second byte.

    ZRTP (16..19), TURN channel data (64..79) and anything else we do not speak are "other". An RTCP
    packet type (200..207 and the feedback types) seen through RTP's marker+PT byte lands in
    192..223, the range RFC 5761 section 4 reserves so the two never collide when muxed.
    """
    if not data:
        return "other"
    first = data[0]
    if first >= 128:
        if first > 191 or len(data) < 2:
            return "other"
        return "rtcp" if 192 <= data[1] <= 223 else "rtp"
    if first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    return "other"
