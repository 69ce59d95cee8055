"""G.711 over RTP (RFC 3551): PCMA (A-law, PT 8) and PCMU (mu-law, PT 0), one byte per sample.

IP cameras and SIP gateways send it; a packet is a block of samples, so one packet is one hub
Frame and back. Frames are never split: every packet of a frame carries the frame's timestamp,
and a G.711 frame (20-40 ms, 160-320 bytes at 8 kHz) is far below any MTU anyway.
The static payload types mean 8 kHz mono; other rates and channel counts come from rtpmap.
"""

from __future__ import annotations

from ...hub.frame import Kind, Track
from . import Access, RtpError, SdpFormat, register

DEFAULT_RATE = 8000


class _G711Packetizer:
    __slots__ = ()

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        return [(units[0] if len(units) == 1 else b"".join(units), False)]


class _G711Depacketizer:
    __slots__ = ("channels",)

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        if not payload or len(payload) % self.channels:
            raise RtpError(f"G.711 payload of {len(payload)} bytes for {self.channels} channels")
        return [Access(timestamp, (payload,), True)]

    def lost(self) -> None:
        """Nothing spans packets."""


class G711Codec:
    """One law of G.711; ``name`` is the hub codec, ``encoding`` the SDP name."""

    kind: Kind = "audio"

    def __init__(self, name: str, encoding: str, payload_type: int) -> None:
        self.name = name
        self.encodings: tuple[str, ...] = (encoding,)
        self.static_payload_type: int | None = payload_type

    def sdp_format(self, track: Track) -> SdpFormat:
        channels = track.channels or 1
        return SdpFormat(
            self.encodings[0], track.sample_rate or DEFAULT_RATE, channels if channels > 1 else None
        )

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        rate = fmt.clock_rate or DEFAULT_RATE
        channels = fmt.channels or 1
        if rate < 1 or channels < 1:
            raise RtpError(f"G.711 at {rate} Hz with {channels} channels is not usable")
        return Track("audio", self.name, sample_rate=rate, channels=channels)

    def packetizer(self, track: Track, mtu: int = 1400) -> _G711Packetizer:
        return _G711Packetizer()

    def depacketizer(self, track: Track, fmt: SdpFormat) -> _G711Depacketizer:
        return _G711Depacketizer(track.channels or 1)


PCMA = register(G711Codec("pcma", "PCMA", 8))
PCMU = register(G711Codec("pcmu", "PCMU", 0))
