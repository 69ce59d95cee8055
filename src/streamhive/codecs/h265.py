"""H.265 helpers: hvcC records, SPS picture size and IRAP detection.

NAL unit framing is the same as H.264's (length-prefixed in FLV/MP4), so the framing helpers
are re-exported from :mod:`streamhive.codecs.h264` rather than duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader, unescape_rbsp
from streamhive.codecs.h264 import join_avcc, record_entry, split_avcc

__all__ = [
    "HevcConfig",
    "SpsInfo",
    "is_keyframe_nalus",
    "join_avcc",
    "make_hvcc_record",
    "parse_hvcc_record",
    "parse_sps",
    "split_avcc",
]

NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34
_IRAP_TYPES = range(16, 24)
_HVCC_HEADER = 23


@dataclass(frozen=True, slots=True)
class HevcConfig:
    """The parameter sets and NAL length size of an HEVCDecoderConfigurationRecord (hvcC)."""

    length_size: int
    vps: list[bytes] = field(default_factory=list)
    sps: list[bytes] = field(default_factory=list)
    pps: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """Picture size after the conformance window, and the sample format, from an H.265 SPS."""

    width: int
    height: int
    chroma_format_idc: int = 1
    bit_depth_luma: int = 8
    bit_depth_chroma: int = 8


def nal_type(unit: bytes) -> int:
    """The nal_unit_type of an H.265 NAL unit (from its 2-byte header)."""
    return (unit[0] >> 1) & 0x3F


def parse_hvcc_record(config: bytes) -> HevcConfig:
    """Parse an hvcC record into VPS/SPS/PPS lists (other NAL arrays, e.g. SEI, are skipped)."""
    if len(config) < _HVCC_HEADER or config[0] != 1:
        raise CodecError("not an HEVCDecoderConfigurationRecord (version 1)")
    out = HevcConfig((config[21] & 0x03) + 1)
    by_type = {NAL_VPS: out.vps, NAL_SPS: out.sps, NAL_PPS: out.pps}
    pos = _HVCC_HEADER
    for _ in range(config[22]):
        if pos + 3 > len(config):
            raise CodecError("hvcC truncated")
        target = by_type.get(config[pos] & 0x3F)
        count = int.from_bytes(config[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(config):
                raise CodecError("hvcC truncated")
            size = int.from_bytes(config[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(config):
                raise CodecError("hvcC NAL unit overruns the record")
            if target is not None:
                target.append(config[pos : pos + size])
            pos += size
    return out


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    r.skip(96)  # general profile space/tier/idc, compatibility and constraint flags, level
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        if profile_present:
            r.skip(88)
        if level_present:
            r.skip(8)


def parse_sps(sps: bytes) -> SpsInfo:
    """Parse an SPS NAL unit (with its 2-byte header) for the displayed picture size."""
    if len(sps) < 2 or nal_type(sps) != NAL_SPS:
        raise CodecError("not an H.265 SPS NAL unit")
    r = BitReader(unescape_rbsp(sps[2:]))
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 == 7:
        raise CodecError("invalid sps_max_sub_layers_minus1")
    r.skip(1)  # sps_temporal_id_nesting_flag
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    r.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = r.ue()
    if chroma_format_idc > 3:
        raise CodecError(f"invalid chroma_format_idc {chroma_format_idc}")
    # Separate colour planes are coded as monochrome pictures: crop units as for 4:0:0.
    chroma_array_type = 0 if chroma_format_idc == 3 and r.flag() else chroma_format_idc
    width = r.ue()
    height = r.ue()
    if r.flag():  # conformance_window_flag
        sub_w = 2 if chroma_array_type in (1, 2) else 1
        sub_h = 2 if chroma_array_type == 1 else 1
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        raise CodecError("SPS gives an empty picture")
    bit_depth_luma = 8 + r.ue()
    bit_depth_chroma = 8 + r.ue()
    if bit_depth_luma > 16 or bit_depth_chroma > 16:
        raise CodecError(f"invalid bit depth {bit_depth_luma}/{bit_depth_chroma}")
    return SpsInfo(width, height, chroma_format_idc, bit_depth_luma, bit_depth_chroma)


def make_hvcc_record(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    """Build an hvcC record with 4-byte NAL lengths, e.g. from RTP's sprop-vps/sps/pps.

    The general profile, tier, compatibility and constraint flags and level are the first
    twelve bytes of the SPS's profile_tier_level, copied as they are. Fields that need the VUI
    or the whole stream (min_spatial_segmentation_idc, parallelismType, frame rates) say
    "unknown", which ISO/IEC 14496-15 allows.
    """
    if not vps or not sps or not pps:
        raise CodecError("an hvcC record needs at least one VPS, SPS and PPS")
    info = parse_sps(sps[0])  # also proves that the profile_tier_level bytes below exist
    if info.bit_depth_luma > 15 or info.bit_depth_chroma > 15:
        raise CodecError("hvcC cannot describe bit depths above 15")
    rbsp = unescape_rbsp(sps[0][2:])
    layers = ((rbsp[0] >> 1) & 0x07) + 1  # sps_max_sub_layers_minus1 + 1
    nested = rbsp[0] & 0x01  # sps_temporal_id_nesting_flag
    parts = [
        b"\x01",
        rbsp[1:13],
        b"\xf0\x00\xfc",  # min_spatial_segmentation_idc 0, parallelismType 0
        bytes(
            (
                0xFC | info.chroma_format_idc,
                0xF8 | (info.bit_depth_luma - 8),
                0xF8 | (info.bit_depth_chroma - 8),
                0,  # avgFrameRate (16 bits): unknown
                0,
                (layers << 3) | (nested << 2) | 0x03,  # constantFrameRate 0, 4-byte lengths
                3,  # numOfArrays
            )
        ),
    ]
    for nal_unit_type, units in ((NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)):
        parts.append(bytes((nal_unit_type,)) + len(units).to_bytes(2, "big"))
        parts += map(record_entry, units)
    return b"".join(parts)


def is_keyframe_nalus(nalus: Iterable[bytes]) -> bool:
    """True when the access unit holds an IRAP picture (BLA, IDR or CRA: types 16..23)."""
    return any(len(unit) >= 2 and nal_type(unit) in _IRAP_TYPES for unit in nalus)
