"""H.265 helpers: hvcC records, SPS picture size and IRAP detection.

NAL unit framing is the same as H.264's (length-prefixed in FLV/MP4), so the framing helpers
are re-exported from :mod:`streamhive.codecs.h264` rather than duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader, unescape_rbsp
from streamhive.codecs.h264 import join_avcc, split_avcc

__all__ = [
    "HevcConfig",
    "SpsInfo",
    "is_keyframe_nalus",
    "join_avcc",
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
    """Picture size after the conformance window, from an H.265 SPS."""

    width: int
    height: int


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
    if chroma_format_idc == 3 and r.flag():  # separate_colour_plane_flag
        chroma_format_idc = 0
    width = r.ue()
    height = r.ue()
    if r.flag():  # conformance_window_flag
        sub_w = 2 if chroma_format_idc in (1, 2) else 1
        sub_h = 2 if chroma_format_idc == 1 else 1
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        raise CodecError("SPS gives an empty picture")
    return SpsInfo(width, height)


def is_keyframe_nalus(nalus: Iterable[bytes]) -> bool:
    """True when the access unit holds an IRAP picture (BLA, IDR or CRA: types 16..23)."""
    return any(len(unit) >= 2 and nal_type(unit) in _IRAP_TYPES for unit in nalus)
