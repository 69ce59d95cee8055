"""The hub's data model: a Track describes one elementary stream, a Frame is one access unit of it.

Every protocol converts its wire format into these and back, so that a stream published over one
protocol can be read over any other. Timestamps are integers on the track's clock (90 kHz for
every track the RTMP/FLV side creates, which converts milliseconds exactly); payloads are in one
canonical form per codec so that muxers never have to guess:

- h264 / h265: ``units`` are the NAL units of the access unit, without start codes or lengths.
- aac: one raw AAC frame (no ADTS header).  opus: one Opus packet.  mp3: one MPEG audio frame.
- av1: one temporal unit in the ISOBMFF sample form (OBUs with size fields).  vp9: one frame.
- mjpeg: one complete baseline JPEG (SOI to EOI, tables included); every frame is a keyframe and
  the config is empty.
- pcma / pcmu: G.711 A-law / mu-law samples, one byte per sample (channels interleaved); the
  config is empty and sample_rate/channels say how to play them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["video", "audio"]

VIDEO_CODECS = ("h264", "h265", "av1", "vp9", "vp8", "mjpeg")
AUDIO_CODECS = ("aac", "opus", "mp3", "pcma", "pcmu")


@dataclass(slots=True)
class Track:
    """One elementary stream of a Stream.

    ``config`` is the codec configuration in its ISOBMFF record form (avcC, hvcC, av1C, vpcC,
    AudioSpecificConfig, OpusHead); it is what FLV sequence headers and MP4 sample entries carry,
    so every muxer can use it as is. Width/height/sample rate are parsed from it for the API.
    """

    kind: Kind
    codec: str
    config: bytes = b""
    clock_rate: int = 90000
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """The JSON shape used by the API."""
        out: dict[str, object] = {"kind": self.kind, "codec": self.codec}
        if self.kind == "video":
            out.update(width=self.width, height=self.height)
        else:
            out.update(sample_rate=self.sample_rate, channels=self.channels)
        return out


@dataclass(slots=True, frozen=True)
class Frame:
    """One access unit of the track at index ``track`` in its Stream's track list."""

    track: int
    pts: int
    dts: int
    keyframe: bool
    units: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(map(len, self.units))
