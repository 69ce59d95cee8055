"""RTP payload formats: hub Frames to RTP payloads and back, one module per codec.

Shared by RTSP (publish, read, pull) and WebRTC (WHIP/WHEP): nothing here knows about sockets,
sessions or SDP text. Each codec module defines one object satisfying :class:`RtpCodec`; the
registry below maps hub codec names and SDP encoding names to them.

Timestamps here are RTP timestamps on the codec's own clock (90 kHz video, the sample rate for
most audio, 48 kHz for Opus), as 32-bit values that wrap: unwrapping them and mapping them to the
hub's 90 kHz clock is the job of the session that owns the RTP stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ...hub.frame import Kind, Track


class RtpError(ValueError):
    """Malformed RTP, RTCP or payload data, or an SDP format this module cannot use."""


@dataclass(slots=True, frozen=True)
class SdpFormat:
    """One payload format as SDP describes it (``a=rtpmap`` and ``a=fmtp``), without the PT."""

    encoding: str  # "H264", "mpeg4-generic", "PCMA" ... (compare case-insensitively)
    clock_rate: int
    channels: int | None = None
    fmtp: dict[str, str] = field(default_factory=dict)  # keys as sent; compare case-insensitively


@dataclass(slots=True)
class Access:
    """One access unit rebuilt from RTP packets.

    ``units``: the hub's canonical payload for the codec (see hub/frame.py): NAL units without
    start codes for H.264/H.265, one raw AAC frame, one Opus packet, G.711 samples, one JPEG.
    ``track`` is set only when the stream's codec configuration changed in-band (new SPS/PPS, an
    LATM StreamMuxConfig, a new JPEG size): the session replaces its hub Track with it before
    writing this access unit.
    """

    timestamp: int
    units: tuple[bytes, ...]
    keyframe: bool
    track: Track | None = None


class Packetizer(Protocol):
    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        """RTP payloads and their marker bits for one access unit, each at most ``mtu`` bytes."""
        ...


class Depacketizer(Protocol):
    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        """Feed one packet's payload in sequence order; returns the access units it completes.

        Raises RtpError for a malformed payload (the caller drops the packet and calls lost()).
        """
        ...

    def lost(self) -> None:
        """Packets were lost before the next push: drop the partial access unit; video also
        drops access units until the next keyframe, so nothing broken reaches the hub."""
        ...


class RtpCodec(Protocol):
    name: str  # hub codec name: "h264", "h265", "vp8", "vp9", "av1", "aac", "opus", "pcma", "pcmu", "mjpeg"
    encodings: tuple[str, ...]  # SDP encoding names it accepts, upper case: ("MPEG4-GENERIC", "MP4A-LATM")
    kind: Kind
    static_payload_type: int | None  # 0 PCMU, 8 PCMA, 26 JPEG; None for dynamic

    def sdp_format(self, track: Track) -> SdpFormat:
        """How to describe ``track`` in SDP (what an RTSP DESCRIBE answer or WHEP offer says)."""
        ...

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        """The hub Track an SDP format describes; raises RtpError when it is unusable.

        The config may be empty when SDP has none (H.264 without sprop-parameter-sets, LATM with
        cpresent=1, MJPEG's size): the depacketizer then reports the track through Access.track
        once the stream itself says. A packetizer belongs to one Track: build a new one when the
        track changes, since it inserts the parameter sets of that track's config.
        """
        ...

    def packetizer(self, track: Track, mtu: int = 1400) -> Packetizer: ...

    def depacketizer(self, track: Track, fmt: SdpFormat) -> Depacketizer: ...


_CODECS: dict[str, RtpCodec] = {}
_loaded = False


def register(codec: RtpCodec) -> RtpCodec:
    _CODECS[codec.name] = codec
    return codec


def codec_for_track(track: Track) -> RtpCodec | None:
    """The payload format for a hub track, or None when RTP cannot carry its codec."""
    _load()
    return _CODECS.get(track.codec)


def codec_for_encoding(encoding: str) -> RtpCodec | None:
    """The payload format for an SDP encoding name (case-insensitive), or None if unsupported."""
    _load()
    upper = encoding.upper()
    for codec in _CODECS.values():
        if upper in codec.encodings:
            return codec
    return None


def _load() -> None:
    global _loaded
    if not _loaded:  # a module imported directly registers only itself
        from . import aac, av1, g711, h264, h265, mjpeg, opus, vp8, vp9  # noqa: F401  (each registers itself)

        _loaded = True
