"""VP9 over RTP (RFC 9628): a payload descriptor in front of each piece of a frame.

Sending uses non-flexible mode with one spatial and one temporal layer, shaped by what Chrome's
receiver demands before it decodes anything: a 15-bit picture ID, layer indices with a
TL0PICIDX that counts pictures (every picture is on the base layer), the P bit on every inter
frame, and on keyframes a scalability structure (V) with the resolution and a one-picture group
(each picture refers to the one before): a keyframe without it is dropped. A hub frame that is
a superframe (a hidden frame plus the one shown, as MP4 and FLV carry them) is sent as one
frame; VP9 decoders split superframes themselves.

Receiving accepts flexible and non-flexible mode. The descriptor's layer frames between B and E
are collected up to the marker bit, and a picture made of several (spatial layers, SVC) becomes
one access unit: a superframe with an index, so decoders behind the hub see one VP9 frame per
timestamp as MP4 does. The keyframe flag and size come from the bitstream's uncompressed header
(and the scalability structure, whose largest layer wins), not from the descriptor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader
from streamhive.formats.rtp import Access, RtpError, SdpFormat, register
from streamhive.formats.rtp.h264 import MAX_ACCESS_UNIT, lower_keys, video_track
from streamhive.hub.frame import Kind, Track

_I = 0x80
_P = 0x40
_L = 0x20
_F = 0x10
_B = 0x08
_E = 0x04
_V = 0x02
_M = 0x80
_MAX_REFERENCES = 3
_MAX_SUPERFRAME = 8
_MIN_MTU = 32
_SYNC_CODE = 0x498342
_CS_RGB = 7

#: VP9 levels by the largest picture (luma samples) and the longest side they allow (VP9 Annex A).
_LEVELS = (
    (10, 36864, 512),
    (11, 73728, 768),
    (20, 122880, 960),
    (21, 245760, 1344),
    (30, 552960, 2048),
    (31, 983040, 2752),
    (40, 2228224, 4160),
    (50, 8912896, 8384),
    (60, 35651584, 16832),
)
#: VP9 color_space to ISO/IEC 23091-2 colour primaries, transfer characteristics, matrix.
_CICP = {1: (6, 6, 6), 2: (1, 1, 1), 3: (6, 6, 6), 4: (7, 7, 7), 5: (9, 14, 9), 7: (1, 13, 0)}
#: (subsampling_x, subsampling_y) to vpcC's chromaSubsampling (4:2:0 as "colocated", FFmpeg's
#: choice when the location is unknown); 4:4:0 has no code and is written as 4:4:4.
_CHROMA = {(1, 1): 1, (1, 0): 2}


@dataclass(frozen=True, slots=True)
class KeyframeInfo:
    """What a VP9 keyframe's uncompressed header says about the stream."""

    profile: int
    bit_depth: int
    color_space: int
    full_range: bool
    subsampling_x: int
    subsampling_y: int
    width: int
    height: int

    def vpcc(self) -> bytes:
        """A vpcC box body (VP Codec ISO Media File Format 2.2), version 1 with its flags."""
        primaries, transfer, matrix = _CICP.get(self.color_space, (2, 2, 2))
        chroma = _CHROMA.get((self.subsampling_x, self.subsampling_y), 3)
        return bytes(
            (
                1, 0, 0, 0,  # FullBox version 1, flags
                self.profile,
                level_for(self.width, self.height),
                self.bit_depth << 4 | chroma << 1 | self.full_range,
                primaries,
                transfer,
                matrix,
                0, 0,  # codecIntializationDataSize
            )
        )  # fmt: skip


def level_for(width: int, height: int) -> int:
    """The lowest VP9 level whose picture size admits ``width`` x ``height``."""
    for level, samples, side in _LEVELS:
        if width * height <= samples and max(width, height) <= side:
            return level
    return 62


def parse_keyframe(frame: bytes) -> KeyframeInfo | None:
    """The uncompressed header of a key frame (VP9 6.2); None for any other frame.

    CodecError when the header is not VP9's or is truncated.
    """
    r = BitReader(frame[:16])  # a keyframe header's fields end within 10 bytes
    if r.u(2) != 2:
        raise CodecError("VP9 frame marker missing")
    profile = r.u(1) | r.u(1) << 1
    if profile == 3:
        r.skip(1)  # reserved_zero
    if r.flag():  # show_existing_frame
        return None
    if r.flag():  # frame_type: 1 = NON_KEY_FRAME
        return None
    r.skip(2)  # show_frame, error_resilient_mode
    if r.u(24) != _SYNC_CODE:
        raise CodecError("VP9 keyframe without its sync code")
    bit_depth = (12 if r.flag() else 10) if profile >= 2 else 8
    color_space = r.u(3)
    sub_x = sub_y = 1
    full_range = True
    if color_space != _CS_RGB:
        full_range = r.flag()
        if profile in (1, 3):
            sub_x, sub_y = r.u(1), r.u(1)
            r.skip(1)
    elif profile in (1, 3):
        sub_x = sub_y = 0
        r.skip(1)
    else:
        raise CodecError("VP9 RGB needs profile 1 or 3")
    width = r.u(16) + 1
    height = r.u(16) + 1
    return KeyframeInfo(profile, bit_depth, color_space, full_range, sub_x, sub_y, width, height)


def split_superframe(frame: bytes) -> list[bytes]:
    """The frames of a superframe (VP9 Annex B), or ``[frame]`` when it has no index."""
    if not frame:
        return [frame]
    marker = frame[-1]
    if marker & 0xE0 != 0xC0:
        return [frame]
    count = (marker & 0x07) + 1
    width = ((marker >> 3) & 0x03) + 1
    index_size = 2 + width * count
    if len(frame) < index_size or frame[-index_size] != marker:
        return [frame]
    frames = []
    pos = 0
    at = len(frame) - index_size + 1
    for i in range(count):
        size = int.from_bytes(frame[at + i * width : at + (i + 1) * width], "little")
        if pos + size > len(frame) - index_size:
            raise CodecError("VP9 superframe index overruns its frame")
        frames.append(frame[pos : pos + size])
        pos += size
    return frames


def join_superframe(frames: list[bytes]) -> bytes:
    """Frames as one superframe with an index (VP9 Annex B); a single frame stays as it is."""
    if len(frames) == 1:
        return frames[0]
    if len(frames) > _MAX_SUPERFRAME:
        raise CodecError(f"a VP9 superframe holds at most {_MAX_SUPERFRAME} frames, not {len(frames)}")
    width = max(1, (max(map(len, frames)).bit_length() + 7) // 8)
    if width > 4:
        raise CodecError("VP9 frame too large for a superframe index")
    marker = bytes((0xC0 | (width - 1) << 3 | (len(frames) - 1),))
    sizes = b"".join(len(frame).to_bytes(width, "little") for frame in frames)
    return b"".join((*frames, marker, sizes, marker))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """The parts of a VP9 payload descriptor a receiver acts on."""

    begins: bool  # B: the first packet of a layer frame
    ends: bool  # E: the last packet of a layer frame
    size: tuple[int, int] | None  # the largest spatial layer's size, from a scalability structure
    data: int  # where the VP9 data begins


def parse_descriptor(payload: bytes) -> Descriptor:
    """RFC 9628 section 4.2, both modes; RtpError when a field overruns the packet."""
    if not payload:
        raise RtpError("empty VP9 RTP payload")
    first = payload[0]
    end = len(payload)
    pos = 1
    if first & _I:
        if pos >= end:
            raise RtpError("VP9 payload descriptor truncated in its picture ID")
        pos += 2 if payload[pos] & _M else 1
    if first & _L:
        pos += 1 if first & _F else 2  # layer indices, plus TL0PICIDX in non-flexible mode
    if first & _F and first & _P:
        for count in range(1, _MAX_REFERENCES + 2):
            if pos >= end:
                raise RtpError("VP9 payload descriptor truncated in its reference indices")
            more = payload[pos] & 0x01
            pos += 1
            if not more:
                break
            if count == _MAX_REFERENCES:
                raise RtpError(f"VP9 picture with more than {_MAX_REFERENCES} references")
    size = None
    if first & _V:
        size, pos = _scalability_structure(payload, pos)
    if pos >= end:
        raise RtpError("VP9 RTP payload without frame data")
    return Descriptor(first & _B != 0, first & _E != 0, size, pos)


def _scalability_structure(payload: bytes, pos: int) -> tuple[tuple[int, int] | None, int]:
    end = len(payload)
    if pos >= end:
        raise RtpError("VP9 scalability structure truncated")
    head = payload[pos]
    pos += 1
    layers = (head >> 5) + 1
    size = None
    if head & 0x10:  # Y: resolutions
        if pos + 4 * layers > end:
            raise RtpError("VP9 scalability structure truncated in its resolutions")
        sizes = [
            (int.from_bytes(payload[at : at + 2], "big"), int.from_bytes(payload[at + 2 : at + 4], "big"))
            for at in range(pos, pos + 4 * layers, 4)
        ]
        size = max(sizes, key=lambda wh: wh[0] * wh[1])
        pos += 4 * layers
    if head & 0x08:  # G: picture group description
        if pos >= end:
            raise RtpError("VP9 scalability structure truncated in its picture group")
        pictures = payload[pos]
        pos += 1
        for _ in range(pictures):
            if pos >= end:
                raise RtpError("VP9 scalability structure truncated in its picture group")
            pos += 1 + ((payload[pos] >> 2) & 0x03)  # T/U/R byte and R reference indices
        if pos > end:
            raise RtpError("VP9 scalability structure truncated in its picture group")
    return size, pos


class Vp9Packetizer:
    """One hub frame into packets; see the module docstring for the descriptor's shape."""

    __slots__ = ("mtu", "picture_id", "tl0", "_size")

    def __init__(self, track: Track, mtu: int, picture_id: int | None = None) -> None:
        if mtu < _MIN_MTU:
            raise RtpError(f"RTP payload size {mtu} is too small")
        self.mtu = mtu
        # Random starts, as RFC 9628 advises, so a new sender is not mistaken for the old one.
        self.picture_id = random.getrandbits(15) if picture_id is None else picture_id & 0x7FFF
        self.tl0 = random.getrandbits(8)
        self._size = (track.width or 0, track.height or 0)

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        frame = units[0] if len(units) == 1 else b"".join(units)
        if not frame:
            return []
        pid = self.picture_id
        tl0 = self.tl0
        self.picture_id = (pid + 1) & 0x7FFF
        self.tl0 = (tl0 + 1) & 0xFF
        fields = bytes((_M | pid >> 8, pid & 0xFF, 0, tl0))  # picture ID; T=0 U=0 S=0 D=0; TL0PICIDX
        flags = _I | _L
        if keyframe:
            ss = self._scalability_structure(frame)
            first = bytes((flags | _B | _V,)) + fields + ss
        else:
            flags |= _P
            first = bytes((flags | _B,)) + fields
        middle = bytes((flags,)) + fields
        view = memoryview(frame)
        step = self.mtu - len(first)
        out = [(first + view[:step], False)]
        step = self.mtu - len(middle)
        for pos in range(self.mtu - len(first), len(frame), step):
            out.append((middle + view[pos : pos + step], False))
        last = out[-1][0]
        out[-1] = (bytes((last[0] | _E,)) + last[1:], True)
        return out

    def _scalability_structure(self, frame: bytes) -> bytes:
        """One spatial layer, its size when known, a group of one picture referring to the last."""
        try:
            info = parse_keyframe(split_superframe(frame)[0])
        except CodecError:
            info = None
        if info is not None:
            self._size = (info.width, info.height)
        width, height = self._size
        group = b"\x01\x04\x01"  # N_G=1; T=0 U=0 R=1; P_DIFF=1
        if not width or not height:
            return b"\x08" + group  # N_S=0, G
        return b"\x18" + width.to_bytes(2, "big") + height.to_bytes(2, "big") + group  # N_S=0, Y, G


class Vp9Depacketizer:
    """Rebuilds pictures; drops everything from a loss (or a layer frame without its start) to
    the next keyframe, so a decoder behind the hub never sees a broken reference chain."""

    __slots__ = (
        "_track",
        "_info",
        "_ts",
        "_frames",
        "_parts",
        "_size",
        "_ss_size",
        "_dropping",
        "_need_keyframe",
    )

    def __init__(self, track: Track) -> None:
        self._track = track
        # The last (vpcC, width, height) reported, so an unchanged keyframe reports nothing.
        self._info = (track.config, track.width, track.height) if track.config else None
        self._ts: int | None = None
        self._frames: list[bytes] = []  # complete layer frames of the picture being built
        self._parts: list[bytes] | None = None  # pieces of the layer frame being built
        self._size = 0
        self._ss_size: tuple[int, int] | None = None
        self._dropping = False
        self._need_keyframe = True

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        desc = parse_descriptor(payload)
        out: list[Access] = []
        self._size += len(payload)
        if self._size > MAX_ACCESS_UNIT and not self._dropping:
            self.lost()
            raise RtpError(f"VP9 picture over {MAX_ACCESS_UNIT} bytes")
        if timestamp != self._ts:
            if self._ts is not None:
                self._finish(out, self._ts)  # a sender that never sets the marker
            self._ts = timestamp
            self._dropping = False
        if not self._dropping:
            self._add(payload, desc)
        if marker:
            self._finish(out, timestamp)
            self._ts = None
        return out

    def lost(self) -> None:
        self._frames = []
        self._parts = None
        self._size = 0
        self._dropping = True
        self._need_keyframe = True

    def _add(self, payload: bytes, desc: Descriptor) -> None:
        if desc.begins != (self._parts is None):
            self.lost()  # a layer frame without its start, or one whose end went missing
            return
        if desc.size is not None:
            self._ss_size = desc.size
        data = payload[desc.data :]
        if self._parts is None:
            self._parts = [data]
        else:
            self._parts.append(data)
        if desc.ends:
            self._frames.append(b"".join(self._parts))
            self._parts = None

    def _finish(self, out: list[Access], timestamp: int) -> None:
        frames = self._frames
        self._frames = []
        self._size = 0
        if self._parts is not None:  # the picture ended inside a layer frame
            self._parts = None
            self._need_keyframe = True
            return
        if self._dropping or not frames:
            return
        try:
            layers = [part for frame in frames for part in split_superframe(frame)]
            info = parse_keyframe(layers[0])
            picture = frames[0] if len(frames) == 1 else join_superframe(layers)
        except CodecError:
            self._need_keyframe = True
            return
        if info is None and self._need_keyframe:
            return
        self._need_keyframe = False
        out.append(Access(timestamp, (picture,), info is not None, self._track_for(info)))

    def _track_for(self, info: KeyframeInfo | None) -> Track | None:
        """A new Track when a keyframe changes the configuration or the size."""
        if info is None:
            return None
        width, height = self._ss_size or (info.width, info.height)
        self._ss_size = None
        state = (info.vpcc(), width, height)
        if state == self._info:
            return None
        self._info = state
        self._track = video_track(self._track, *state)
        return self._track


class Vp9Codec:
    name = "vp9"
    encodings: tuple[str, ...] = ("VP9",)
    kind: Kind = "video"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        record = track.config[4:] if len(track.config) > 8 else track.config  # vpcC without version
        return SdpFormat("VP9", 90000, None, {"profile-id": str(record[0] if record else 0)})

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        """The configuration is in-band only: the first keyframe reports it (Access.track)."""
        if fmt.clock_rate != 90000:
            raise RtpError(f"VP9 RTP clock must be 90000, not {fmt.clock_rate}")
        profile = lower_keys(fmt.fmtp).get("profile-id", "0")
        if profile not in ("0", "1", "2", "3"):
            raise RtpError(f"VP9 profile-id {profile[:20]!r} is not supported")
        return Track("video", "vp9")

    def packetizer(self, track: Track, mtu: int = 1400) -> Vp9Packetizer:
        return Vp9Packetizer(track, mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> Vp9Depacketizer:
        return Vp9Depacketizer(track)


CODEC = register(Vp9Codec())
