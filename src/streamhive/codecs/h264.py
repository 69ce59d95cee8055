"""H.264 helpers: NAL unit framing (AVCC and Annex B), avcC records and SPS parsing.

The hub carries H.264 as bare NAL units; FLV/MP4 use length-prefixed units (AVCC) and MPEG-TS
uses start codes (Annex B), so every muxer goes through these conversions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader, unescape_rbsp

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8

# Profiles whose SPS carries chroma format, bit depths and scaling lists (H.264 7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_LENGTH_SIZES = (1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """The fields of an AVCDecoderConfigurationRecord (avcC) that muxers need."""

    length_size: int
    sps: list[bytes]
    pps: list[bytes]
    profile: int
    level: int


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """Picture size (after cropping), profile/level and sample format from an H.264 SPS."""

    width: int
    height: int
    profile_idc: int
    level_idc: int
    chroma_format_idc: int = 1
    bit_depth_luma: int = 8
    bit_depth_chroma: int = 8


def split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split length-prefixed NAL units; a truncated unit raises CodecError."""
    if length_size not in _LENGTH_SIZES:
        raise CodecError(f"invalid NAL length size {length_size}")
    units = []
    pos = 0
    end = len(data)
    while pos < end:
        start = pos + length_size
        if start > end:
            raise CodecError("truncated NAL unit length")
        size = int.from_bytes(data[pos:start], "big")
        pos = start + size
        if pos > end:
            raise CodecError(f"NAL unit of {size} bytes overruns its buffer")
        units.append(data[start:pos])
    return units


def join_avcc(nalus: Iterable[bytes], length_size: int = 4) -> bytes:
    """Prefix each NAL unit with its big-endian length, the FLV/MP4 sample form."""
    parts = []
    for unit in nalus:
        parts.append(len(unit).to_bytes(length_size, "big"))
        parts.append(unit)
    return b"".join(parts)


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream on 3- and 4-byte start codes, dropping empty units."""
    units = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        unit = data[start:end]
        if nxt >= 0:
            # A 4-byte start code (or trailing_zero_8bits) leaves zeros at the unit's end.
            unit = unit.rstrip(b"\x00")
        if unit:
            units.append(unit)
        pos = nxt
    return units


def parse_avcc_record(config: bytes) -> AvcConfig:
    """Parse an avcC record into its parameter sets and NAL length size."""
    if len(config) < 7 or config[0] != 1:
        raise CodecError("not an AVCDecoderConfigurationRecord (version 1)")
    length_size = (config[4] & 0x03) + 1
    pos = 5
    lists: list[list[bytes]] = []
    for count_mask in (0x1F, 0xFF):
        if pos >= len(config):
            raise CodecError("avcC truncated")
        count = config[pos] & count_mask
        pos += 1
        sets = []
        for _ in range(count):
            if pos + 2 > len(config):
                raise CodecError("avcC truncated")
            size = int.from_bytes(config[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(config):
                raise CodecError("avcC parameter set overruns the record")
            sets.append(config[pos : pos + size])
            pos += size
        lists.append(sets)
    return AvcConfig(length_size, lists[0], lists[1], config[1], config[3])


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + r.se() + 256) % 256
        if next_scale:
            last = next_scale


def parse_sps(sps: bytes) -> SpsInfo:
    """Parse an SPS NAL unit (with its header byte) for the displayed picture size."""
    if not sps or sps[0] & 0x1F != NAL_SPS:
        raise CodecError("not an H.264 SPS NAL unit")
    r = BitReader(unescape_rbsp(sps[1:]))
    profile_idc = r.u(8)
    r.skip(8)  # constraint flags
    level_idc = r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    bit_depth_luma = bit_depth_chroma = 8
    separate_colour_plane = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise CodecError(f"invalid chroma_format_idc {chroma_format_idc}")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = 8 + r.ue()
        bit_depth_chroma = 8 + r.ue()
        if bit_depth_luma > 14 or bit_depth_chroma > 14:
            raise CodecError(f"invalid bit depth {bit_depth_luma}/{bit_depth_chroma}")
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > 255:
            raise CodecError("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            r.se()
    elif poc_type != 2:
        raise CodecError(f"invalid pic_order_cnt_type {poc_type}")
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if separate_colour_plane or chroma_format_idc == 0:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            crop_x = 1 if chroma_format_idc == 3 else 2
            crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise CodecError("SPS cropping leaves no picture")
    return SpsInfo(width, height, profile_idc, level_idc, chroma_format_idc, bit_depth_luma, bit_depth_chroma)


def record_entry(unit: bytes) -> bytes:
    """One parameter set as avcC/hvcC store it: a 16-bit length, then the NAL unit."""
    if len(unit) > 0xFFFF:
        raise CodecError(f"parameter set of {len(unit)} bytes is too big for a record")
    return len(unit).to_bytes(2, "big") + unit


def make_avcc_record(sps: list[bytes], pps: list[bytes]) -> bytes:
    """Build an avcC record with 4-byte NAL lengths, e.g. from RTP's sprop-parameter-sets.

    Profile and level come from the first SPS. Profiles other than Baseline/Main/Extended get
    the chroma format and bit depth trailer (ISO/IEC 14496-15 5.3.3.1), as FFmpeg writes it.
    """
    if not sps or not pps:
        raise CodecError("an avcC record needs at least one SPS and one PPS")
    if len(sps) > 31 or len(pps) > 255:
        raise CodecError("too many parameter sets for an avcC record")
    info = parse_sps(sps[0])
    parts = [bytes((1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)))]
    parts += map(record_entry, sps)
    parts.append(bytes((len(pps),)))
    parts += map(record_entry, pps)
    if info.profile_idc not in (66, 77, 88):
        chroma = 0xFC | info.chroma_format_idc
        depths = (0xF8 | (info.bit_depth_luma - 8), 0xF8 | (info.bit_depth_chroma - 8))
        parts.append(bytes((chroma, *depths, 0)))  # 0: no SPS extensions
    return b"".join(parts)


def is_keyframe_nalus(nalus: Iterable[bytes]) -> bool:
    """True when the access unit holds an IDR slice, i.e. decoding can start here."""
    return any(unit and unit[0] & 0x1F == NAL_IDR for unit in nalus)


#: Where lengthSizeMinusOne lives in an avcC / hvcC record.
AVCC_LENGTH_SIZE_OFFSET = 4
HVCC_LENGTH_SIZE_OFFSET = 21


def with_length_size_4(record: bytes, offset: int) -> bytes:
    """The avcC/hvcC record saying 4-byte NAL lengths: what every muxer here writes samples with."""
    if len(record) <= offset:
        raise CodecError("avcC/hvcC record is truncated")
    if record[offset] & 0x03 == 3:
        return record
    return record[:offset] + bytes((record[offset] | 0x03,)) + record[offset + 1 :]
