"""MPEG-TS muxer for HLS segments: hub Frames in, 188-byte transport packets out.

Sans-IO and stateful: one muxer per Stream keeps the continuity counters, so the segments it
produces concatenate into one continuous transport stream, while each segment (PAT/PMT first,
then frames from a keyframe) also decodes alone. The layout is the one HLS players know from
FFmpeg's muxer: one program, PMT on PID 0x1000, video on 0x100, audio on 0x101.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamhive.codecs import CodecError, aac, h264, h265
from streamhive.hub.frame import Frame, Track

PACKET_SIZE = 188
PAT_PID = 0x0000
PMT_PID = 0x1000
VIDEO_PID = 0x100
AUDIO_PID = 0x101
# Added to every PTS/DTS so that frames shortly before zero (B-frame DTS, AAC priming) stay
# positive; FFmpeg's muxer starts its streams at 1.4 s for the same reason.
TIMESTAMP_OFFSET = 126000

STREAM_TYPE_AAC = 0x0F
STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_H265 = 0x24
STREAM_TYPE_PRIVATE = 0x06  # Opus, identified by its registration descriptor

_MASK33 = (1 << 33) - 1
# The PCR runs this far behind DTS, the decoder buffering delay (FFmpeg's default max_delay).
_PCR_DELAY = 63000
# A PCR goes out once this much DTS has passed since the last one (80 ms), which keeps the gap
# within the 100 ms that ISO 13818-1 allows at 24-30 fps.
_PCR_INTERVAL = 7200
_START_CODE = b"\x00\x00\x00\x01"
_TS_HEADER = struct.Struct(">BHB")
_PES_HEADER = struct.Struct(">3sBHBBB")
_TS_FIELD = struct.Struct(">BHH")
_AF_RANDOM_ACCESS = 0x40
_AF_PCR = 0x10

_H264_AUD = b"\x09\xf0"  # nal_unit_type 9, primary_pic_type 7 (any slice type)
_H265_AUD = b"\x46\x01\x50"  # nal_unit_type 35, layer 0, tid 1; pic_type 2 (any)
_H264_NAL_AUD = 9
_H265_NAL_AUD = 35
_OPUS_DESCRIPTORS = b"\x05\x04Opus" + b"\x7f\x02\x80"  # registration + DVB extension (Opus)


class TsError(ValueError):
    """The tracks or a frame cannot be carried in MPEG-TS."""


def _crc32_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc32_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (unreflected, no final XOR), the checksum every PSI section ends with."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def _section(table_id: int, extension: int, body: bytes) -> bytes:
    """A long-form PSI section (version 0, current) with its CRC."""
    head = struct.pack(">BHHBBB", table_id, 0xB000 | (len(body) + 9), extension, 0xC1, 0, 0)
    data = head + body
    return data + crc32_mpeg2(data).to_bytes(4, "big")


def _h264_nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def _ts_field(prefix: int, ts: int) -> bytes:
    """A 5-byte PTS or DTS field: 4-bit prefix, 33-bit value split by marker bits."""
    return _TS_FIELD.pack(
        (prefix << 4) | ((ts >> 29) & 0x0E) | 1, ((ts >> 14) & 0xFFFE) | 1, ((ts << 1) & 0xFFFE) | 1
    )


def _stuffed(adaptation: bytes, stuff: int) -> bytes:
    """Grow (or create) an adaptation field by ``stuff`` bytes so the packet is exactly full."""
    if adaptation:
        return bytes((adaptation[0] + stuff,)) + adaptation[1:] + b"\xff" * stuff
    if stuff == 1:
        return b"\x00"  # a zero-length adaptation field is the only 1-byte filler
    return bytes((stuff - 1, 0)) + b"\xff" * (stuff - 2)


def _opus_channel_code(track: Track) -> int:
    """The Opus descriptor's channel_config_code; only RTP mapping (family 0) is supported."""
    head = track.config
    if len(head) < 19 or head[:8] != b"OpusHead":
        raise TsError("Opus in MPEG-TS needs the track's OpusHead")
    channels, family = head[9], head[18]
    if family != 0 or not 1 <= channels <= 2:
        raise TsError(f"Opus channel mapping family {family} with {channels} channels is not supported in TS")
    return channels


def _opus_access_unit(packet: bytes) -> bytes:
    """An Opus packet behind its control header (prefix 0x3ff, no trimming, au_size in 255s)."""
    return b"\x7f\xe0" + b"\xff" * (len(packet) // 255) + bytes((len(packet) % 255,)) + packet


@dataclass(slots=True)
class _Stream:
    """Per-track muxing state fixed at construction."""

    codec: str
    pid: int
    stream_id: int
    stream_type: int
    descriptors: bytes = b""
    parameter_sets: tuple[bytes, ...] = ()
    aac_config: aac.AacConfig | None = None


def _video_stream(track: Track) -> _Stream:
    try:
        if track.codec == "h264":
            avc = h264.parse_avcc_record(track.config) if track.config else None
            params = (*avc.sps, *avc.pps) if avc else ()
            return _Stream("h264", VIDEO_PID, 0xE0, STREAM_TYPE_H264, parameter_sets=params)
        if track.codec == "h265":
            hevc = h265.parse_hvcc_record(track.config) if track.config else None
            params = (*hevc.vps, *hevc.sps, *hevc.pps) if hevc else ()
            return _Stream("h265", VIDEO_PID, 0xE0, STREAM_TYPE_H265, parameter_sets=params)
    except CodecError as exc:
        raise TsError(f"bad {track.codec} configuration record: {exc}") from exc
    raise TsError(f"video codec {track.codec!r} is not supported in MPEG-TS (h264, h265)")


def _audio_stream(track: Track) -> _Stream:
    if track.codec == "aac":
        try:
            config = aac.parse_audio_specific_config(track.config)
            aac.adts_header(config, 0)  # fail now, not on the first frame, if ADTS cannot say it
        except CodecError as exc:
            raise TsError(f"AAC track cannot be carried with ADTS headers: {exc}") from exc
        return _Stream("aac", AUDIO_PID, 0xC0, STREAM_TYPE_AAC, aac_config=config)
    if track.codec == "opus":
        descriptors = _OPUS_DESCRIPTORS + bytes((_opus_channel_code(track),))
        return _Stream("opus", AUDIO_PID, 0xBD, STREAM_TYPE_PRIVATE, descriptors=descriptors)
    raise TsError(f"audio codec {track.codec!r} is not supported in MPEG-TS (aac, opus)")


class TsMuxer:
    """One MPEG-TS byte stream per Stream: ``header()`` opens a segment, ``frame()`` adds one.

    A segment is ``header() + b"".join(frame(f) for f in frames)`` starting at a keyframe; the
    continuity counters carry on across segments, so consecutive segments also play as one.
    """

    def __init__(self, tracks: list[Track]) -> None:
        self._streams: dict[int, _Stream] = {}
        for index, track in enumerate(tracks):
            stream = _video_stream(track) if track.kind == "video" else _audio_stream(track)
            if any(s.pid == stream.pid for s in self._streams.values()):
                raise TsError(f"MPEG-TS segments carry one {track.kind} track, got more")
            self._streams[index] = stream
        if not self._streams:
            raise TsError("MPEG-TS needs at least one track")
        ordered = sorted(self._streams.values(), key=lambda s: s.pid)
        self._pcr_pid = ordered[0].pid  # video when there is video
        self._continuity = {PAT_PID: 0, PMT_PID: 0} | {s.pid: 0 for s in ordered}
        self._last_pcr: int | None = None
        pat = _section(0x00, 1, struct.pack(">HH", 1, 0xE000 | PMT_PID))
        pmt_body = bytearray(struct.pack(">HH", 0xE000 | self._pcr_pid, 0xF000))
        for s in ordered:
            pmt_body += struct.pack(">BHH", s.stream_type, 0xE000 | s.pid, 0xF000 | len(s.descriptors))
            pmt_body += s.descriptors
        pmt = _section(0x02, 1, bytes(pmt_body))
        self._tables = ((PAT_PID, pat), (PMT_PID, pmt))

    def header(self) -> bytes:
        """PAT and PMT, which open every segment; the next frame on the PCR PID carries a PCR."""
        out = bytearray()
        for pid, section in self._tables:
            out += _TS_HEADER.pack(0x47, 0x4000 | pid, 0x10 | self._next_cc(pid))
            out += b"\x00" + section  # pointer_field 0
            out += b"\xff" * (PACKET_SIZE - 5 - len(section))
        self._last_pcr = None
        return bytes(out)

    def frame(self, frame: Frame) -> bytes:
        """One PES packet for the frame, split into TS packets."""
        stream = self._streams.get(frame.track)
        if stream is None:
            raise TsError(f"frame for track {frame.track}, which the muxer does not carry")
        if stream.codec == "aac":
            payload = self._adts(stream, frame)
        elif stream.codec == "opus":
            payload = b"".join(map(_opus_access_unit, frame.units))
        else:
            payload = self._annexb(stream, frame)
        pts = (frame.pts + TIMESTAMP_OFFSET) & _MASK33
        dts = (frame.dts + TIMESTAMP_OFFSET) & _MASK33
        if pts == dts:
            flags, fields = 0x80, _ts_field(0x2, pts)
        else:
            flags, fields = 0xC0, _ts_field(0x3, pts) + _ts_field(0x1, dts)
        length = 0
        if stream.pid == AUDIO_PID:  # video may leave the length unset (0), and often must
            length = 3 + len(fields) + len(payload)
            if length > 0xFFFF:
                raise TsError(f"audio frame of {len(payload)} bytes does not fit one PES packet")
        pes = _PES_HEADER.pack(b"\x00\x00\x01", stream.stream_id, length, 0x84, flags, len(fields))
        return self._packetize(stream.pid, pes + fields + payload, self._adaptation(stream.pid, frame, dts))

    def _adts(self, stream: _Stream, frame: Frame) -> bytes:
        assert stream.aac_config is not None
        try:
            return b"".join(aac.adts_header(stream.aac_config, len(unit)) + unit for unit in frame.units)
        except CodecError as exc:
            raise TsError(str(exc)) from exc

    def _annexb(self, stream: _Stream, frame: Frame) -> bytes:
        """The access unit in Annex B: our AUD first, parameter sets on keyframes that lack them."""
        if stream.codec == "h264":
            nal_type, aud_type, sps_type, aud = _h264_nal_type, _H264_NAL_AUD, h264.NAL_SPS, _H264_AUD
        else:
            nal_type, aud_type, sps_type, aud = h265.nal_type, _H265_NAL_AUD, h265.NAL_SPS, _H265_AUD
        units = [aud]
        if frame.keyframe and not any(u and nal_type(u) == sps_type for u in frame.units):
            units += stream.parameter_sets
        units += (u for u in frame.units if u and nal_type(u) != aud_type)
        return _START_CODE + _START_CODE.join(units)

    def _adaptation(self, pid: int, frame: Frame, dts: int) -> bytes:
        """The first packet's adaptation field: random access on keyframes, PCR when due."""
        flags = _AF_RANDOM_ACCESS if frame.keyframe else 0
        pcr = b""
        if pid == self._pcr_pid and (
            frame.keyframe or self._last_pcr is None or (dts - self._last_pcr) & _MASK33 >= _PCR_INTERVAL
        ):
            self._last_pcr = dts
            flags |= _AF_PCR
            base = (dts - _PCR_DELAY) & _MASK33
            pcr = ((base << 15) | 0x7E00).to_bytes(6, "big")  # 6 reserved bits, extension 0
        if not flags:
            return b""
        return bytes((1 + len(pcr), flags)) + pcr

    def _packetize(self, pid: int, pes: bytes, adaptation: bytes) -> bytes:
        """Split a PES packet into TS packets, stuffing the last one through its adaptation field."""
        out = bytearray()
        view = memoryview(pes)
        pos, end = 0, len(pes)
        cc = self._continuity[pid]
        unit_start = 0x4000
        while pos < end:
            room = 184 - len(adaptation)
            chunk = view[pos : pos + room]
            pos += len(chunk)
            if len(chunk) < room:
                adaptation = _stuffed(adaptation, room - len(chunk))
            out += _TS_HEADER.pack(0x47, unit_start | pid, (0x30 if adaptation else 0x10) | cc)
            out += adaptation
            out += chunk
            cc = (cc + 1) & 0x0F
            unit_start = 0
            adaptation = b""
        self._continuity[pid] = cc
        return bytes(out)

    def _next_cc(self, pid: int) -> int:
        cc = self._continuity[pid]
        self._continuity[pid] = (cc + 1) & 0x0F
        return cc
