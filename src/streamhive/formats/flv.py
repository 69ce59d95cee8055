"""FLV: the container, and the audio/video tag bodies that RTMP also carries as message payloads.

Covers legacy FLV (AVC, the common non-standard HEVC codec id 12, AAC, MP3) and Enhanced RTMP
v1/v2 (FourCC signalling for hvc1, av01, vp09, avc1, Opus, mp4a, .mp3). Parsing turns bodies into
small packet objects and then into hub Tracks/Frames; building goes the other way. All sans-IO.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from streamhive.codecs import CodecError, aac, av1, h264, h265
from streamhive.formats import amf0
from streamhive.hub.frame import Frame, Track

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
_TAG_TYPES = (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT)

MAX_TAG_SIZE = 16 * 1024 * 1024

PacketKind = Literal["config", "frame", "end", "metadata-ignored"]

_TAG_HEADER = struct.Struct(">IIBH")  # type+size, timestamp+extension, 3-byte stream id (0)
_U32 = struct.Struct(">I")

# Legacy video: frame type (high nibble) and codec id (low nibble).
_FRAME_KEY = 1
_FRAME_INTER = 2
_FRAME_COMMAND = 5
_LEGACY_VIDEO = {7: "h264", 12: "h265"}
_LEGACY_VIDEO_NAMES = {2: "Sorenson H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 6: "Screen video 2"}

# Enhanced RTMP.
_EX_HEADER = 0x80
_PKT_SEQUENCE_START = 0
_PKT_CODED_FRAMES = 1
_PKT_SEQUENCE_END = 2
_PKT_CODED_FRAMES_X = 3
_PKT_METADATA = 4
_PKT_MPEG2TS_SEQUENCE_START = 5
_PKT_VIDEO_MULTITRACK = 6
_PKT_MOD_EX = 7
_PKT_AUDIO_MULTICHANNEL_CONFIG = 4
_PKT_AUDIO_MULTITRACK = 5
_VIDEO_FOURCC = {b"avc1": "h264", b"hvc1": "h265", b"av01": "av1", b"vp09": "vp9"}
_AUDIO_FOURCC = {b"Opus": "opus", b"mp4a": "aac", b".mp3": "mp3"}
_FOURCC_FOR = {codec: fourcc for table in (_VIDEO_FOURCC, _AUDIO_FOURCC) for fourcc, codec in table.items()}

# Legacy audio sound formats.
_SOUND_MP3 = 2
_SOUND_EX_HEADER = 9
_SOUND_AAC = 10
_SOUND_MP3_8K = 14
_SOUND_NAMES = {
    0: "linear PCM",
    1: "ADPCM",
    3: "linear PCM little-endian",
    4: "Nellymoser 16 kHz",
    5: "Nellymoser 8 kHz",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    11: "Speex",
    15: "device-specific",
}
_FLV_RATES = (5512, 11025, 22050, 44100)
# AAC, 44 kHz, 16-bit, stereo (what the FLV spec says AAC always declares) + AACPacketType.
_AAC_CONFIG_HEAD = b"\xaf\x00"
_AAC_FRAME_HEAD = b"\xaf\x01"

_NUMERIC_CODEC_IDS = {"h264": 7.0, "aac": 10.0, "mp3": 2.0}


class FlvError(ValueError):
    """Malformed or unsupported FLV data."""


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One tag of an FLV stream; ``timestamp`` is in milliseconds."""

    tag_type: int
    timestamp: int
    body: bytes


@dataclass(frozen=True, slots=True)
class VideoPacket:
    """A parsed video tag body: ``data`` is the config record or the frame payload.

    ``cts`` is the composition time offset in milliseconds (pts - dts), for h264/h265 frames.
    """

    kind: PacketKind
    codec: str
    keyframe: bool = False
    cts: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """A parsed audio tag body: ``data`` is the config (ASC, OpusHead) or one audio frame."""

    kind: PacketKind
    codec: str
    data: bytes = b""


# --- container ------------------------------------------------------------------------------


def file_header(has_audio: bool, has_video: bool) -> bytes:
    """The 9-byte FLV file header followed by PreviousTagSize0."""
    flags = (0x04 if has_audio else 0) | (0x01 if has_video else 0)
    return b"FLV\x01" + bytes((flags,)) + b"\x00\x00\x00\x09\x00\x00\x00\x00"


def encode_tag(tag_type: int, timestamp_ms: int, body: bytes) -> bytes:
    """One FLV tag: header (timestamp wraps at 32 bits), body and its PreviousTagSize."""
    size = len(body)
    if size > 0xFFFFFF:
        raise FlvError(f"FLV tag body of {size} bytes exceeds 16 MiB")
    ts = timestamp_ms & 0xFFFFFFFF
    header = _TAG_HEADER.pack((tag_type << 24) | size, ((ts & 0xFFFFFF) << 8) | (ts >> 24), 0, 0)
    return b"".join((header, body, _U32.pack(size + 11)))


class FlvDemuxer:
    """Incremental FLV parser: feed any chunks of the byte stream, get complete tags back.

    ``max_tag_size`` bounds the memory a peer can make us buffer for one tag. After an error the
    stream position is lost, so every later feed raises the same error.
    """

    def __init__(self, max_tag_size: int = MAX_TAG_SIZE) -> None:
        self.max_tag_size = max_tag_size
        self.has_audio = False
        self.has_video = False
        self._buf = bytearray()
        self._header_done = False
        self._error: FlvError | None = None

    def feed(self, data: bytes) -> list[FlvTag]:
        """Add bytes; return every tag now complete. Raises FlvError on malformed input."""
        if self._error is not None:
            raise self._error
        self._buf += data
        try:
            return self._parse()
        except FlvError as exc:
            self._error = exc
            raise

    def _parse(self) -> list[FlvTag]:
        buf = self._buf
        pos = 0
        if not self._header_done:
            if buf[:3] != b"FLV"[: len(buf)]:
                raise FlvError("not an FLV stream (bad signature)")
            if len(buf) < 9:
                return []
            offset = _U32.unpack_from(buf, 5)[0]
            if not 9 <= offset <= 9 + self.max_tag_size:
                raise FlvError(f"invalid FLV header size {offset}")
            if len(buf) < offset + 4:
                return []
            self.has_audio = bool(buf[4] & 0x04)
            self.has_video = bool(buf[4] & 0x01)
            self._header_done = True
            pos = offset + 4  # skip PreviousTagSize0
        tags = []
        end = len(buf)
        while end - pos >= 11:
            head, stamp = _TAG_HEADER.unpack_from(buf, pos)[:2]
            tag_type = head >> 24
            if tag_type & 0x20:
                raise FlvError("encrypted (filtered) FLV tags are not supported")
            tag_type &= 0x1F
            if tag_type not in _TAG_TYPES:
                raise FlvError(f"unknown FLV tag type {tag_type}")
            size = head & 0xFFFFFF
            if size > self.max_tag_size:
                raise FlvError(f"FLV tag of {size} bytes exceeds the {self.max_tag_size}-byte limit")
            if end - pos < size + 15:
                break
            timestamp = ((stamp & 0xFF) << 24) | (stamp >> 8)
            tags.append(FlvTag(tag_type, timestamp, bytes(buf[pos + 11 : pos + 11 + size])))
            pos += size + 15
        del buf[:pos]
        return tags


# --- parsing tag bodies ---------------------------------------------------------------------


def _si24(data: bytes, pos: int) -> int:
    value = int.from_bytes(data[pos : pos + 3], "big")
    return value - (1 << 24) if value & 0x800000 else value


def _skip_mod_ex(body: bytes, pos: int, packet_type: int) -> tuple[int, int]:
    """Skip Enhanced RTMP v2 ModEx extensions (e.g. nanosecond offsets); return the real type."""
    while packet_type == _PKT_MOD_EX:
        if pos >= len(body):
            raise FlvError("truncated ModEx extension")
        size = body[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > len(body):
                raise FlvError("truncated ModEx extension")
            size = int.from_bytes(body[pos : pos + 2], "big") + 1
            pos += 2
        pos += size
        if pos >= len(body):
            raise FlvError("truncated ModEx extension")
        packet_type = body[pos] & 0x0F
        pos += 1
    return pos, packet_type


def _fourcc(body: bytes, pos: int, table: dict[bytes, str], what: str) -> str:
    fourcc = body[pos : pos + 4]
    if len(fourcc) < 4:
        raise FlvError(f"truncated enhanced {what} header")
    codec = table.get(fourcc)
    if codec is None:
        raise FlvError(f"unsupported enhanced {what} FourCC {fourcc!r}")
    return codec


def parse_video_body(body: bytes) -> VideoPacket:
    """Parse a video tag body (legacy or Enhanced RTMP) into a VideoPacket."""
    if not body:
        raise FlvError("empty video tag")
    first = body[0]
    if first & _EX_HEADER:
        return _parse_ex_video(body)
    frame_type, codec_id = first >> 4, first & 0x0F
    codec = _LEGACY_VIDEO.get(codec_id)
    if codec is None:
        name = _LEGACY_VIDEO_NAMES.get(codec_id, "unknown")
        raise FlvError(f"unsupported FLV video codec id {codec_id} ({name})")
    if frame_type == _FRAME_COMMAND:
        return VideoPacket("metadata-ignored", codec)
    if len(body) < 5:
        raise FlvError(f"truncated {codec} video tag")
    packet_type = body[1]
    if packet_type == 0:
        return VideoPacket("config", codec, frame_type == _FRAME_KEY, 0, body[5:])
    if packet_type == 1:
        return VideoPacket("frame", codec, frame_type == _FRAME_KEY, _si24(body, 2), body[5:])
    if packet_type == 2:
        return VideoPacket("end", codec)
    raise FlvError(f"unknown AVC packet type {packet_type}")


def _parse_ex_video(body: bytes) -> VideoPacket:
    frame_type = (body[0] >> 4) & 0x07
    pos, packet_type = _skip_mod_ex(body, 1, body[0] & 0x0F)
    if packet_type == _PKT_VIDEO_MULTITRACK:
        raise FlvError("multitrack enhanced video is not supported")
    if frame_type == _FRAME_COMMAND and packet_type != _PKT_METADATA:
        return VideoPacket("metadata-ignored", "")  # a video command: no FourCC, no payload
    codec = _fourcc(body, pos, _VIDEO_FOURCC, "video")
    pos += 4
    keyframe = frame_type == _FRAME_KEY
    if packet_type == _PKT_SEQUENCE_START:
        return VideoPacket("config", codec, keyframe, 0, body[pos:])
    if packet_type == _PKT_CODED_FRAMES:
        if codec not in ("h264", "h265"):
            return VideoPacket("frame", codec, keyframe, 0, body[pos:])
        if pos + 3 > len(body):
            raise FlvError(f"truncated enhanced {codec} frame")
        return VideoPacket("frame", codec, keyframe, _si24(body, pos), body[pos + 3 :])
    if packet_type == _PKT_CODED_FRAMES_X:
        return VideoPacket("frame", codec, keyframe, 0, body[pos:])
    if packet_type == _PKT_SEQUENCE_END:
        return VideoPacket("end", codec)
    if packet_type in (_PKT_METADATA, _PKT_MPEG2TS_SEQUENCE_START):
        return VideoPacket("metadata-ignored", codec)
    raise FlvError(f"unknown enhanced video packet type {packet_type}")


def parse_audio_body(body: bytes) -> AudioPacket:
    """Parse an audio tag body (legacy or Enhanced RTMP) into an AudioPacket."""
    if not body:
        raise FlvError("empty audio tag")
    sound_format = body[0] >> 4
    if sound_format == _SOUND_EX_HEADER:
        return _parse_ex_audio(body)
    if sound_format == _SOUND_AAC:
        if len(body) < 2:
            raise FlvError("truncated AAC audio tag")
        if body[1] == 0:
            return AudioPacket("config", "aac", body[2:])
        if body[1] == 1:
            return AudioPacket("frame", "aac", body[2:])
        raise FlvError(f"unknown AAC packet type {body[1]}")
    if sound_format in (_SOUND_MP3, _SOUND_MP3_8K):
        return AudioPacket("frame", "mp3", body[1:])
    name = _SOUND_NAMES.get(sound_format, "unknown")
    raise FlvError(f"unsupported FLV sound format {sound_format} ({name})")


def _parse_ex_audio(body: bytes) -> AudioPacket:
    pos, packet_type = _skip_mod_ex(body, 1, body[0] & 0x0F)
    if packet_type == _PKT_AUDIO_MULTITRACK:
        raise FlvError("multitrack enhanced audio is not supported")
    codec = _fourcc(body, pos, _AUDIO_FOURCC, "audio")
    pos += 4
    if packet_type == _PKT_SEQUENCE_START:
        return AudioPacket("config", codec, body[pos:])
    if packet_type == _PKT_CODED_FRAMES:
        return AudioPacket("frame", codec, body[pos:])
    if packet_type == _PKT_SEQUENCE_END:
        return AudioPacket("end", codec)
    if packet_type == _PKT_AUDIO_MULTICHANNEL_CONFIG:
        return AudioPacket("metadata-ignored", codec)
    raise FlvError(f"unknown enhanced audio packet type {packet_type}")


# --- building tag bodies from hub objects ---------------------------------------------------


def _fourcc_for(codec: str) -> bytes:
    fourcc = _FOURCC_FOR.get(codec)
    if fourcc is None:
        raise FlvError(f"codec {codec!r} cannot be carried in FLV")
    return fourcc


def video_config_body(track: Track) -> bytes:
    """The sequence-header body: legacy AVC for h264, Enhanced RTMP for h265/av1/vp9."""
    if track.codec == "h264":
        return b"\x17\x00\x00\x00\x00" + track.config
    return (
        bytes((_EX_HEADER | _FRAME_KEY << 4 | _PKT_SEQUENCE_START,)) + _fourcc_for(track.codec) + track.config
    )


def audio_config_body(track: Track) -> bytes:
    """The sequence-header body: legacy for AAC, Enhanced RTMP for Opus; empty for MP3 (none)."""
    if track.codec == "aac":
        return _AAC_CONFIG_HEAD + track.config
    if track.codec == "mp3":
        return b""
    return bytes((_SOUND_EX_HEADER << 4 | _PKT_SEQUENCE_START,)) + _fourcc_for(track.codec) + track.config


def video_frame_body(track: Track, frame: Frame) -> bytes:
    """A coded-frame body; h264/h265 units are joined with 4-byte lengths (the config says 4)."""
    frame_type = _FRAME_KEY if frame.keyframe else _FRAME_INTER
    codec = track.codec
    if codec == "h264" or codec == "h265":
        cts = (frame.pts - frame.dts + 45) // 90
        payload = h264.join_avcc(frame.units)
        if codec == "h264":
            return b"".join((bytes((frame_type << 4 | 7, 1)), (cts & 0xFFFFFF).to_bytes(3, "big"), payload))
        if cts:
            head = bytes((_EX_HEADER | frame_type << 4 | _PKT_CODED_FRAMES,)) + b"hvc1"
            return b"".join((head, (cts & 0xFFFFFF).to_bytes(3, "big"), payload))
        return b"".join((bytes((_EX_HEADER | frame_type << 4 | _PKT_CODED_FRAMES_X,)), b"hvc1", payload))
    head = bytes((_EX_HEADER | frame_type << 4 | _PKT_CODED_FRAMES_X,)) + _fourcc_for(codec)
    return b"".join((head, *frame.units))


def audio_frame_body(track: Track, frame: Frame) -> bytes:
    """A coded-frame body: legacy for AAC and MP3, Enhanced RTMP for Opus."""
    codec = track.codec
    if codec == "aac":
        return b"".join((_AAC_FRAME_HEAD, *frame.units))
    if codec == "mp3":
        return b"".join((bytes((_mp3_flags(track),)), *frame.units))
    return b"".join((bytes((_SOUND_EX_HEADER << 4 | _PKT_CODED_FRAMES,)), _fourcc_for(codec), *frame.units))


def _mp3_flags(track: Track) -> int:
    """Legacy MP3 header byte; 48 kHz is declared as 44 kHz, as ffmpeg does (no code for it)."""
    rate = track.sample_rate or 44100
    rate_bits = 3 if rate > 22050 else 2 if rate > 11025 else 1 if rate > 5512 else 0
    stereo = 1 if (track.channels or 2) >= 2 else 0
    return _SOUND_MP3 << 4 | rate_bits << 2 | 0x02 | stereo


def script_tag_body(name: str, value: dict[str, object]) -> bytes:
    """A script data body such as onMetaData; the dict goes as an ECMA array, as players expect."""
    return amf0.encode(name, amf0.EcmaArray(value))


def metadata_for(tracks: list[Track]) -> dict[str, object]:
    """onMetaData for the first video and audio track; codec ids are FourCC numbers when enhanced."""
    meta: dict[str, object] = {"duration": 0.0}
    video = next((t for t in tracks if t.kind == "video"), None)
    audio = next((t for t in tracks if t.kind == "audio"), None)
    if video is not None:
        if video.width is not None and video.height is not None:
            meta["width"] = float(video.width)
            meta["height"] = float(video.height)
        meta["videocodecid"] = _codec_id(video.codec)
    if audio is not None:
        meta["audiocodecid"] = _codec_id(audio.codec)
        if audio.sample_rate is not None:
            meta["audiosamplerate"] = float(audio.sample_rate)
        meta["audiosamplesize"] = 16.0
        meta["stereo"] = (audio.channels or 0) >= 2
    meta["encoder"] = "streamhive"
    return meta


def _codec_id(codec: str) -> float:
    numeric = _NUMERIC_CODEC_IDS.get(codec)
    return numeric if numeric is not None else float(int.from_bytes(_fourcc_for(codec), "big"))


# --- packets to hub objects -----------------------------------------------------------------


def track_from_video_config(pkt: VideoPacket) -> Track:
    """A video Track from a sequence header, with the picture size parsed where possible.

    For h264/h265 the record is normalised to 4-byte NAL lengths (what the frame bodies use) and
    the publisher's own length size is kept in ``extra["nal_length_size"]`` for frame_from_video.
    """
    if pkt.kind != "config":
        raise FlvError(f"expected a video sequence header, got a {pkt.kind} packet")
    track = Track("video", pkt.codec, pkt.data)
    try:
        if pkt.codec == "h264":
            avc = h264.parse_avcc_record(pkt.data)
            track.config = h264.with_length_size_4(pkt.data, h264.AVCC_LENGTH_SIZE_OFFSET)
            track.extra["nal_length_size"] = avc.length_size
            if avc.sps:
                info = h264.parse_sps(avc.sps[0])
                track.width, track.height = info.width, info.height
        elif pkt.codec == "h265":
            hevc = h265.parse_hvcc_record(pkt.data)
            track.config = h264.with_length_size_4(pkt.data, h264.HVCC_LENGTH_SIZE_OFFSET)
            track.extra["nal_length_size"] = hevc.length_size
            if hevc.sps:
                size = h265.parse_sps(hevc.sps[0])
                track.width, track.height = size.width, size.height
        elif pkt.codec == "av1":
            obu = av1.av1c_sequence_header(pkt.data)
            if obu is not None:
                sequence = av1.parse_sequence_header(obu.payload)
                track.width, track.height = sequence.width, sequence.height
    except CodecError as exc:
        raise FlvError(f"bad {pkt.codec} sequence header: {exc}") from exc
    return track


def track_from_audio_config(pkt: AudioPacket) -> Track:
    """An audio Track from a sequence header (AAC AudioSpecificConfig or OpusHead)."""
    if pkt.kind != "config":
        raise FlvError(f"expected an audio sequence header, got a {pkt.kind} packet")
    if pkt.codec == "aac":
        try:
            asc = aac.parse_audio_specific_config(pkt.data)
        except CodecError as exc:
            raise FlvError(f"bad AAC sequence header: {exc}") from exc
        return Track(
            "audio", "aac", pkt.data, sample_rate=asc.output_sample_rate, channels=asc.channels or None
        )
    if pkt.codec == "opus":
        head = pkt.data
        if len(head) < 19 or head[:8] != b"OpusHead":
            raise FlvError("bad Opus sequence header: not an OpusHead")
        return Track("audio", "opus", head, sample_rate=48000, channels=head[9])
    raise FlvError(f"{pkt.codec} has no sequence header; use track_from_mp3")


def track_from_mp3(body: bytes) -> Track:
    """An MP3 Track from its first audio tag body (MP3 has no sequence header).

    The MPEG audio frame header is preferred, since the FLV rate bits cannot say 48 kHz.
    """
    if not body or body[0] >> 4 not in (_SOUND_MP3, _SOUND_MP3_8K):
        raise FlvError("not a legacy MP3 audio tag")
    rate = 8000 if body[0] >> 4 == _SOUND_MP3_8K else _FLV_RATES[(body[0] >> 2) & 3]
    channels = 2 if body[0] & 1 else 1
    header = _mpeg_audio_header(body[1:5])
    if header is not None:
        rate, channels = header
    return Track("audio", "mp3", sample_rate=rate, channels=channels)


def _mpeg_audio_header(data: bytes) -> tuple[int, int] | None:
    """(sample rate, channels) from an MPEG audio frame header, or None if it is not one."""
    if len(data) < 4:
        return None
    word = int.from_bytes(data, "big")
    version, layer, rate_index = (word >> 19) & 3, (word >> 17) & 3, (word >> 10) & 3
    if word >> 21 != 0x7FF or version == 1 or layer == 0 or rate_index == 3:
        return None
    rate = (44100, 48000, 32000)[rate_index] >> {3: 0, 2: 1, 0: 2}[version]
    return rate, 1 if (word >> 6) & 3 == 3 else 2


def frame_from_video(pkt: VideoPacket, track_index: int, timestamp_ms: int, length_size: int = 4) -> Frame:
    """A hub Frame from a coded-frame packet: 90 kHz timestamps, h264/h265 split into NAL units."""
    if pkt.kind != "frame":
        raise FlvError(f"expected a video frame, got a {pkt.kind} packet")
    dts = timestamp_ms * 90
    if pkt.codec == "h264" or pkt.codec == "h265":
        try:
            units = tuple(h264.split_avcc(pkt.data, length_size))
        except CodecError as exc:
            raise FlvError(f"bad {pkt.codec} frame: {exc}") from exc
    else:
        units = (pkt.data,)
    return Frame(track_index, dts + pkt.cts * 90, dts, pkt.keyframe, units)


def frame_from_audio(pkt: AudioPacket, track_index: int, timestamp_ms: int) -> Frame:
    """A hub Frame from a coded audio packet (every audio frame is a sync point)."""
    if pkt.kind != "frame":
        raise FlvError(f"expected an audio frame, got a {pkt.kind} packet")
    ts = timestamp_ms * 90
    return Frame(track_index, ts, ts, True, (pkt.data,))
