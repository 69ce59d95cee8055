"""Fragmented MP4 (CMAF): init segments, moof+mdat fragments and RFC 6381 codec strings.

LL-HLS parts and DASH segments are both fragments of one CMAF track set, so the segmenter builds
one init segment per stream and one fragment per part/segment, shared by every reader (mux once,
write many). Sans-IO: hub Tracks and Frames in, bytes out.

Video tracks use a 90 kHz timescale (the hub's clock, so no conversion). Audio tracks use their
sample rate (48 kHz for Opus, as its mapping requires) so that sample durations are exact frame
sizes; 90 kHz timestamps are converted by rounding each absolute timestamp, which keeps the
running total exact however many fragments are written.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise

from streamhive.codecs import CodecError, aac, h264
from streamhive.hub.frame import Frame, Track

_HUB_CLOCK = 90000
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
# traf header + tfhd + tfdt (version 1) + trun header, up to its data_offset (the last field).
_TRAF_HEAD = struct.Struct(">I4sI4sIII4sIQI4sIIi")
_DATA_OFFSET_POS = _TRAF_HEAD.size - 4
_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4  # ISO 639-2 "und", packed as three 5-bit letters

# Sample flags (ISO 14496-12 8.8.3.1): a sync sample depends on no other; others set
# sample_depends_on=1 and sample_is_non_sync_sample.
_SYNC = 0x02000000
_NON_SYNC = 0x01010000

_TFHD_BASE_IS_MOOF = 0x020000
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIELDS = 0x000100 | 0x000200 | 0x000400  # duration, size, flags per sample
_TRUN_CTS = 0x000800

_SAMPLE_ENTRY = {
    "h264": b"avc1",
    "h265": b"hvc1",
    "av1": b"av01",
    "vp9": b"vp09",
    "aac": b"mp4a",
    "mp3": b"mp4a",
    "opus": b"Opus",
}
_NAL_CODECS = ("h264", "h265")
_MP3_OBJECT_TYPE = 0x6B  # MPEG-1 audio (esds objectTypeIndication)
_MPEG4_AUDIO_OBJECT_TYPE = 0x40
# Used for the last sample of a fragment only when neither next_dts nor an earlier duration is
# known (a first fragment of one sample): a typical frame, in the track's timescale.
_FALLBACK_DURATION = {"aac": 1024, "mp3": 1152, "opus": 960}
_FALLBACK_VIDEO_DURATION = 3000
_VPCC_RECORD_SIZE = 8  # a vpcC body without its FullBox version/flags


class Fmp4Error(ValueError):
    """A track or frame list that cannot be written as fragmented MP4."""


def timescale(track: Track) -> int:
    """The media timescale used for a track's trak/tfdt/trun (see the module docstring)."""
    if track.kind == "video":
        return _HUB_CLOCK
    if track.codec == "opus":
        return 48000
    rate = track.sample_rate
    if rate is None and track.codec == "aac":
        rate = aac.parse_audio_specific_config(track.config).output_sample_rate
    if not rate:
        raise Fmp4Error(f"{track.codec} track has no sample rate")
    return rate


# --- init segment ---------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    return b"".join((_U32.pack(8 + sum(map(len, parts))), kind, *parts))


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, _U32.pack(version << 24 | flags), *parts)


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor with its expandable (7 bits per byte) size field."""
    size = len(body)
    length = [size & 0x7F]
    size >>= 7
    while size:
        length.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes((tag, *reversed(length))) + body


def _esds(object_type: int, decoder_specific: bytes) -> bytes:
    config = struct.pack(">BB3sII", object_type, 0x15, b"\0\0\0", 0, 0)  # audio stream, upstream=0
    if decoder_specific:
        config += _descriptor(5, decoder_specific)
    es = struct.pack(">HB", 0, 0) + _descriptor(4, config) + _descriptor(6, b"\x02")  # ES_ID 0 in files
    return _full_box(b"esds", 0, 0, _descriptor(3, es))


def _dops(opus_head: bytes) -> bytes:
    """dOps from an OpusHead: the same fields, big-endian, without the magic and with version 0."""
    if len(opus_head) < 19 or opus_head[:8] != b"OpusHead":
        raise Fmp4Error("Opus track config is not an OpusHead")
    channels = opus_head[9]
    pre_skip, rate, gain = struct.unpack_from("<HIh", opus_head, 10)
    family = opus_head[18]
    mapping = opus_head[19 : 21 + channels] if family else b""
    if len(mapping) != (2 + channels if family else 0):
        raise Fmp4Error("OpusHead channel mapping table is truncated")
    return _box(b"dOps", struct.pack(">BBHIhB", 0, channels, pre_skip, rate, gain, family), mapping)


def _length_size_4(record: bytes, offset: int) -> bytes:
    try:
        return h264.with_length_size_4(record, offset)
    except CodecError as exc:
        raise Fmp4Error(f"bad track config: {exc}") from None


def _video_entry(track: Track) -> bytes:
    config = track.config
    if track.codec == "h264":
        box = _box(b"avcC", _length_size_4(config, h264.AVCC_LENGTH_SIZE_OFFSET))
    elif track.codec == "h265":
        box = _box(b"hvcC", _length_size_4(config, h264.HVCC_LENGTH_SIZE_OFFSET))
    elif track.codec == "vp9":
        # vpcC is a FullBox (version 1); accept the config with or without that header.
        box = _box(b"vpcC", b"\x01\0\0\0" + config if len(config) == _VPCC_RECORD_SIZE else config)
    else:
        box = _box(b"av1C", config)
    width, height = track.width or 0, track.height or 0
    # reserved, data_reference_index, pre_defined/reserved, size, 72 dpi, frame_count, name, depth
    fields = struct.pack(">6xH16xHHIIIH32sHh", 1, width, height, 0x480000, 0x480000, 0, 1, b"", 0x18, -1)
    return _box(_SAMPLE_ENTRY[track.codec], fields, box)


def _audio_entry(track: Track, rate: int) -> bytes:
    if track.codec == "aac":
        config = _esds(_MPEG4_AUDIO_OBJECT_TYPE, track.config)
        channels = track.channels or aac.parse_audio_specific_config(track.config).channels
    elif track.codec == "mp3":
        config = _esds(_MP3_OBJECT_TYPE, b"")
        channels = track.channels or 2
    else:
        config = _dops(track.config)
        channels = track.config[9]
    fields = struct.pack(">6xH8xHHHHI", 1, channels, 16, 0, 0, rate << 16 if rate < 0x10000 else 0)
    return _box(_SAMPLE_ENTRY[track.codec], fields, config)


def _trak(track: Track, track_id: int) -> bytes:
    if track.codec not in _SAMPLE_ENTRY:
        raise Fmp4Error(f"codec {track.codec!r} cannot be carried in fragmented MP4")
    video = track.kind == "video"
    rate = timescale(track)
    width, height = (track.width or 0, track.height or 0) if video else (0, 0)
    tkhd = _full_box(
        b"tkhd",
        0,
        0x3,  # enabled, in movie
        struct.pack(">IIIII8xhhhH", 0, 0, track_id, 0, 0, 0, 0, 0 if video else 0x0100, 0),
        _UNITY_MATRIX,
        _U32X2.pack(width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, rate, 0, _LANGUAGE_UND, 0))
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name)
    media_header = (
        _full_box(b"vmhd", 0, 1, struct.pack(">HHHH", 0, 0, 0, 0))
        if video
        else _full_box(b"smhd", 0, 0, struct.pack(">hH", 0, 0))
    )
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, _U32.pack(1), _full_box(b"url ", 0, 1)))
    entry = _video_entry(track) if video else _audio_entry(track, rate)
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, _U32.pack(1), entry),
        _full_box(b"stts", 0, 0, _U32.pack(0)),
        _full_box(b"stsc", 0, 0, _U32.pack(0)),
        _full_box(b"stsz", 0, 0, _U32X2.pack(0, 0)),
        _full_box(b"stco", 0, 0, _U32.pack(0)),
    )
    minf = _box(b"minf", media_header, dinf, stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def supported(track: Track) -> bool:
    """Whether fragmented MP4 can carry this track's codec."""
    return track.codec in _SAMPLE_ENTRY


def _ids(tracks: list[Track], track_ids: list[int] | None) -> list[int]:
    """Track IDs: index + 1 unless given (a per-track DASH init keeps the muxed ID)."""
    ids = track_ids if track_ids is not None else [i + 1 for i in range(len(tracks))]
    if len(ids) != len(tracks) or len(set(ids)) != len(ids) or min(ids, default=1) < 1:
        raise Fmp4Error("track_ids must be distinct positive integers, one per track")
    return ids


def init_segment(tracks: list[Track], track_ids: list[int] | None = None) -> bytes:
    """ftyp + moov for the tracks (track ID = index + 1 unless given), with no samples."""
    if not tracks:
        raise Fmp4Error("an init segment needs at least one track")
    ids = _ids(tracks, track_ids)
    ftyp = _box(b"ftyp", b"iso6", _U32.pack(0), b"iso6cmfcisomdashmp41")
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x10000, 0x0100),
        _UNITY_MATRIX,
        bytes(24),  # pre_defined
        _U32.pack(max(ids) + 1),
    )
    traks = [_trak(track, track_id) for track, track_id in zip(tracks, ids, strict=True)]
    trexs = [_full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0)) for track_id in ids]
    return ftyp + _box(b"moov", mvhd, *traks, _box(b"mvex", *trexs))


# --- fragments ------------------------------------------------------------------------------


@dataclass(slots=True)
class _TrackState:
    track_id: int
    timescale: int
    nal: bool
    video: bool
    last_duration: int

    def convert(self, ts: int) -> int:
        """A hub (90 kHz) timestamp on this track's timescale, rounded half up."""
        if self.timescale == _HUB_CLOCK:
            return ts
        return (ts * self.timescale + _HUB_CLOCK // 2) // _HUB_CLOCK


class FragmentMuxer:
    """Builds moof+mdat fragments for the tracks of one init segment.

    Stateful only in what fragments must carry across calls: the moof sequence number and each
    track's last sample duration (the fallback for a fragment's last sample).
    """

    def __init__(self, tracks: list[Track], track_ids: list[int] | None = None) -> None:
        self._states = [
            _TrackState(
                track_id=track_id,
                timescale=timescale(track),
                nal=track.codec in _NAL_CODECS,
                video=track.kind == "video",
                last_duration=_FALLBACK_DURATION.get(track.codec, _FALLBACK_VIDEO_DURATION),
            )
            for track, track_id in zip(tracks, _ids(tracks, track_ids), strict=True)
        ]
        self._sequence = 0

    def fragment(
        self, frames_by_track: dict[int, list[Frame]], next_dts: dict[int, int] | None = None
    ) -> bytes:
        """One moof (a traf per track with frames) and one mdat holding the samples.

        ``frames_by_track`` maps a track index to its frames in decode order; ``next_dts`` gives
        the dts of the frame that follows each list, which sets the last sample's duration
        exactly (otherwise it repeats the previous duration). Timestamps must not be negative.
        """
        trafs: list[tuple[bytearray, int]] = []  # each traf and where its samples start in mdat
        payloads: list[bytes] = []
        data_size = 0
        for index in sorted(frames_by_track):
            frames = frames_by_track[index]
            if not frames:
                continue
            if not 0 <= index < len(self._states):
                raise Fmp4Error(f"no track with index {index}")
            state = self._states[index]
            following = None if next_dts is None else next_dts.get(index)
            traf, samples_size = self._traf(state, frames, following, payloads)
            trafs.append((traf, data_size))
            data_size += samples_size
        if not trafs:
            raise Fmp4Error("a fragment needs at least one frame")
        self._sequence += 1
        moof_size = 8 + 16 + sum(len(traf) for traf, _ in trafs)
        moof = bytearray(_U32.pack(moof_size) + b"moof")
        moof += struct.pack(">I4sII", 16, b"mfhd", 0, self._sequence)
        for traf, data_start in trafs:
            # data_offset counts from the moof's first byte (default-base-is-moof).
            struct.pack_into(">i", traf, _DATA_OFFSET_POS, moof_size + 8 + data_start)
            moof += traf
        moof += _U32.pack(8 + data_size) + b"mdat"
        return b"".join((moof, *payloads))

    def _traf(
        self, state: _TrackState, frames: list[Frame], following: int | None, payloads: list[bytes]
    ) -> tuple[bytearray, int]:
        """A traf for one track's frames; appends their sample bytes to ``payloads``."""
        convert = state.convert
        dts = [convert(f.dts) for f in frames]
        if dts[0] < 0:
            raise Fmp4Error(f"track {state.track_id}: negative dts {frames[0].dts}")
        durations = [b - a for a, b in pairwise(dts)]
        if following is not None:
            durations.append(convert(following) - dts[-1])
        else:
            durations.append(durations[-1] if durations else state.last_duration)
        if min(durations) < 0:
            raise Fmp4Error(f"track {state.track_id}: dts goes backwards")
        state.last_duration = durations[-1]
        offsets = [convert(f.pts) - d for f, d in zip(frames, dts, strict=True)]
        with_cts = any(offsets)

        values: list[int] = []
        total = 0
        for frame, duration, offset in zip(frames, durations, offsets, strict=True):
            if state.nal:
                sample = h264.join_avcc(frame.units)
                payloads.append(sample)
                size = len(sample)
            else:
                payloads.extend(frame.units)
                size = frame.size
            total += size
            flags = _SYNC if frame.keyframe or not state.video else _NON_SYNC
            values += (duration, size, flags, offset & 0xFFFFFFFF) if with_cts else (duration, size, flags)
        trun_flags = _TRUN_DATA_OFFSET | _TRUN_FIELDS | (_TRUN_CTS if with_cts else 0)
        trun_size = 20 + 4 * len(values)
        traf = bytearray(
            _TRAF_HEAD.pack(
                _TRAF_HEAD.size + 4 * len(values),
                b"traf",
                16,
                b"tfhd",
                _TFHD_BASE_IS_MOOF,
                state.track_id,
                20,
                b"tfdt",
                1 << 24,  # version 1: 64-bit base media decode time
                dts[0],
                trun_size,
                b"trun",
                (1 << 24 if with_cts else 0) | trun_flags,  # version 1: signed composition offsets
                len(frames),
                0,  # data_offset, set once the moof size is known
            )
        )
        traf += struct.pack(f">{len(values)}I", *values)
        return traf, total


# --- codec strings --------------------------------------------------------------------------


def codecs_string(track: Track) -> str:
    """The RFC 6381 ``CODECS`` value (HLS) / ``codecs`` attribute (DASH) for a track."""
    config = track.config
    codec = track.codec
    try:
        if codec == "h264":
            return f"avc1.{config[1]:02x}{config[2]:02x}{config[3]:02x}"
        if codec == "h265":
            return _hevc_string(config)
        if codec == "av1":
            return _av1_string(config)
        if codec == "vp9":
            record = config[4:] if len(config) > _VPCC_RECORD_SIZE else config  # skip version/flags
            return f"vp09.{record[0]:02d}.{record[1]:02d}.{record[2] >> 4:02d}"
        if codec == "aac":
            # The signalled object type (5/29 for explicit HE-AAC), not the core one.
            aot = config[0] >> 3
            if aot == 31:
                aot = 32 + ((config[0] & 0x07) << 3 | config[1] >> 5)
            return f"mp4a.40.{aot}"
    except IndexError:
        raise Fmp4Error(f"{codec} track config is truncated") from None
    if codec == "mp3":
        return "mp4a.6B"  # the esds objectTypeIndication written for MP3
    if codec == "opus":
        return "opus"
    raise Fmp4Error(f"no codec string for {codec!r}")


def _hevc_string(hvcc: bytes) -> str:
    """hvc1.<space><profile>.<compat, bit-reversed>.<tier><level>[.<constraint bytes>] (14496-15 E.3)."""
    space, tier, profile = hvcc[1] >> 6, (hvcc[1] >> 5) & 1, hvcc[1] & 0x1F
    compat = int(f"{int.from_bytes(hvcc[2:6], 'big'):032b}"[::-1], 2)
    constraints = "".join(f".{b:02X}" for b in hvcc[6:12].rstrip(b"\0"))
    level = hvcc[12]
    return f"hvc1.{('', 'A', 'B', 'C')[space]}{profile}.{compat:X}.{'H' if tier else 'L'}{level}{constraints}"


def _av1_string(av1c: bytes) -> str:
    """av01.<profile>.<level><tier>.<bit depth> (AV1-ISOBMFF, codecs parameter string)."""
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier, high_bitdepth, twelve_bit = av1c[2] >> 7, (av1c[2] >> 6) & 1, (av1c[2] >> 5) & 1
    depth = 12 if twelve_bit else 10 if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{'MH'[tier]}.{depth:02d}"
