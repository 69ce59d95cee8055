"""Opus over RTP (RFC 7587): one Opus packet per RTP packet, 48 kHz clock whatever the input.

The SDP always says ``opus/48000/2``; whether the stream is stereo is in fmtp (``sprop-stereo``
from a sender, ``stereo`` as a receiver's wish). The hub Track needs an OpusHead, which FLV and
MP4 carry as the Opus config, so one is built here with that channel count.
"""

from __future__ import annotations

import struct

from ...hub.frame import Kind, Track
from . import Access, RtpError, SdpFormat, register

CLOCK_RATE = 48000
#: libopus's encoder delay at 48 kHz: what players trim from the start when the sender does not
#: say (RTP has no field for it).
_PRE_SKIP = 312


def opus_head(channels: int) -> bytes:
    """An OpusHead (RFC 7845 section 5.1) for mapping family 0: mono or stereo, 48 kHz input."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, _PRE_SKIP, CLOCK_RATE, 0, 0)


def _channels(fmt: SdpFormat) -> int:
    """Stereo unless the SDP says mono: a stereo decoder plays mono packets, not the reverse."""
    fmtp = {key.strip().lower(): value.strip() for key, value in fmt.fmtp.items()}
    flag = fmtp.get("sprop-stereo", fmtp.get("stereo"))
    if flag is not None:
        return 2 if flag == "1" else 1
    return 1 if fmt.channels == 1 else 2


class _OpusPacketizer:
    __slots__ = ("mtu",)

    def __init__(self, mtu: int) -> None:
        self.mtu = mtu

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        packet = units[0] if len(units) == 1 else b"".join(units)
        if len(packet) > self.mtu:
            raise RtpError(f"Opus packet of {len(packet)} bytes exceeds the {self.mtu}-byte MTU")
        return [(packet, False)]


class _OpusDepacketizer:
    __slots__ = ()

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        if not payload:
            raise RtpError("empty Opus payload")
        return [Access(timestamp, (payload,), True)]

    def lost(self) -> None:
        """Nothing spans packets; the decoder conceals the gap."""


class OpusCodec:
    """Opus (RFC 7587); multistream (surround) Opus has no RTP mapping here and is refused."""

    name = "opus"
    encodings: tuple[str, ...] = ("OPUS",)
    kind: Kind = "audio"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        head = track.config
        if len(head) >= 19 and head[:8] == b"OpusHead":
            if head[18] != 0:
                raise RtpError("Opus with a channel mapping family (multistream) cannot go over RTP")
            channels = head[9]
        else:
            channels = track.channels or 2
        stereo = "1" if channels == 2 else "0"
        return SdpFormat("opus", CLOCK_RATE, 2, {"sprop-stereo": stereo, "stereo": stereo})

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        if fmt.clock_rate != CLOCK_RATE:
            raise RtpError(f"Opus RTP clock must be 48000, not {fmt.clock_rate}")
        channels = _channels(fmt)
        return Track("audio", "opus", opus_head(channels), sample_rate=CLOCK_RATE, channels=channels)

    def packetizer(self, track: Track, mtu: int = 1400) -> _OpusPacketizer:
        return _OpusPacketizer(mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> _OpusDepacketizer:
        return _OpusDepacketizer()


OPUS = register(OpusCodec())
