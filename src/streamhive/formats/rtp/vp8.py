"""VP8 over RTP (RFC 7741): a payload descriptor in front of each piece of a frame.

The descriptor's S bit and partition index mark where a frame starts; its optional extension
carries a PictureID (and temporal layering fields this server never produces). The sender side
always includes a 15-bit PictureID: Chrome decodes without one, but WebRTC receivers use its
continuity to tell a lost frame from a late one. A frame ends at the marker bit.

The hub's VP8 form is one frame; VP8 has no codec configuration, so the Track's config is empty
and only the size, read from each keyframe's header, can change.
"""

from __future__ import annotations

import random
from dataclasses import replace

from streamhive.formats.rtp import Access, RtpError, SdpFormat, register
from streamhive.formats.rtp.h264 import MAX_ACCESS_UNIT
from streamhive.hub.frame import Kind, Track

_X = 0x80
_S = 0x10
_PARTITION = 0x07
_I = 0x80
_L = 0x40
_T = 0x20
_K = 0x10
_M = 0x80
_MIN_MTU = 8
_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


def keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) of a keyframe from its 10-byte header; None for an inter frame.

    RtpError when the frame says keyframe but lacks the start code: it cannot be decoded.
    """
    if not frame or frame[0] & 0x01:  # the P bit of the frame tag: 1 = inter frame
        return None
    if len(frame) < 10 or frame[3:6] != _KEYFRAME_START_CODE:
        raise RtpError("VP8 keyframe without its start code")
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF  # the top 2 bits are a scaling mode
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


def parse_descriptor(payload: bytes) -> tuple[bool, int]:
    """(frame start, where the VP8 data begins); RtpError if the descriptor overruns it."""
    if not payload:
        raise RtpError("empty VP8 RTP payload")
    first = payload[0]
    pos = 1
    if first & _X:
        if len(payload) < 2:
            raise RtpError("VP8 payload descriptor truncated in its extension")
        ext = payload[1]
        pos = 2
        if ext & _I:
            if pos >= len(payload):
                raise RtpError("VP8 payload descriptor truncated in its PictureID")
            pos += 2 if payload[pos] & _M else 1
        if ext & _L:
            pos += 1  # TL0PICIDX
        if ext & (_T | _K):
            pos += 1  # TID/Y/KEYIDX
    if pos >= len(payload):
        raise RtpError("VP8 RTP payload without frame data")
    return first & _S != 0 and first & _PARTITION == 0, pos


class Vp8Packetizer:
    """One frame into packets with a 4-byte descriptor: X, S on the first, a 15-bit PictureID."""

    __slots__ = ("mtu", "picture_id")

    def __init__(self, mtu: int, picture_id: int | None = None) -> None:
        if mtu < _MIN_MTU:
            raise RtpError(f"RTP payload size {mtu} is too small")
        self.mtu = mtu
        # A random start, as RFC 7741 advises, so a new sender is not mistaken for the old one.
        self.picture_id = random.getrandbits(15) if picture_id is None else picture_id & 0x7FFF

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        frame = units[0] if len(units) == 1 else b"".join(units)
        if not frame:
            return []
        pid = self.picture_id
        self.picture_id = (pid + 1) & 0x7FFF
        tail = bytes((_I, _M | pid >> 8, pid & 0xFF))
        first = bytes((_X | _S,)) + tail
        middle = bytes((_X,)) + tail
        step = self.mtu - len(first)
        view = memoryview(frame)
        out = [(first + view[:step], False)]
        for pos in range(step, len(frame), step):
            out.append((middle + view[pos : pos + step], False))
        out[-1] = (out[-1][0], True)
        return out


class Vp8Depacketizer:
    """Rebuilds frames; drops everything from a loss (or a frame without its start) to the
    next keyframe, so a decoder behind the hub never sees a broken reference chain."""

    __slots__ = ("_track", "_ts", "_parts", "_size", "_dropping", "_need_keyframe")

    def __init__(self, track: Track) -> None:
        self._track = track
        self._ts: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._dropping = False
        self._need_keyframe = True

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        start, pos = parse_descriptor(payload)
        out: list[Access] = []
        if timestamp != self._ts:
            if self._ts is not None:
                self._finish(out, self._ts)  # a sender that never sets the marker
            self._ts = timestamp
            self._dropping = False
        if not self._dropping:
            if start != (not self._parts):
                self.lost()  # a frame without its start, or a second start inside one
            else:
                self._parts.append(payload[pos:])
                self._size += len(payload) - pos
                if self._size > MAX_ACCESS_UNIT:
                    self.lost()
                    raise RtpError(f"VP8 frame over {MAX_ACCESS_UNIT} bytes")
        if marker:
            self._finish(out, timestamp)
            self._ts = None
        return out

    def lost(self) -> None:
        self._parts = []
        self._size = 0
        self._dropping = True
        self._need_keyframe = True

    def _finish(self, out: list[Access], timestamp: int) -> None:
        parts = self._parts
        self._parts = []
        self._size = 0
        if self._dropping or not parts:
            return
        frame = b"".join(parts)
        try:
            size = keyframe_size(frame)
        except RtpError:
            self._need_keyframe = True
            return
        if size is None and self._need_keyframe:
            return
        self._need_keyframe = False
        track = None
        if size is not None and size != (self._track.width, self._track.height):
            track = self._track = replace(
                self._track, width=size[0], height=size[1], extra=dict(self._track.extra)
            )
        out.append(Access(timestamp, (frame,), size is not None, track))


class Vp8Codec:
    name = "vp8"
    encodings: tuple[str, ...] = ("VP8",)
    kind: Kind = "video"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        return SdpFormat("VP8", 90000)

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        """The size is only in keyframes: the first one reports it (Access.track)."""
        if fmt.clock_rate != 90000:
            raise RtpError(f"VP8 RTP clock must be 90000, not {fmt.clock_rate}")
        return Track("video", "vp8")

    def packetizer(self, track: Track, mtu: int = 1400) -> Vp8Packetizer:
        return Vp8Packetizer(mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> Vp8Depacketizer:
        return Vp8Depacketizer(track)


CODEC = register(Vp8Codec())
