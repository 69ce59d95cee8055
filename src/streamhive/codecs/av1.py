"""AV1 helpers: OBU framing, the sequence header, frame types and the av1C record.

The hub carries AV1 as ISOBMFF samples (every OBU with its size field, no temporal delimiter);
RTP strips the size fields and FLV/MP4 need an AV1CodecConfigurationRecord (av1C) whose fields
copy the sequence header, so that header is parsed here once for every muxer.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamhive.codecs import CodecError
from streamhive.codecs.bits import BitReader

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_METADATA = 5
OBU_FRAME = 6
OBU_REDUNDANT_FRAME_HEADER = 7
OBU_TILE_LIST = 8
OBU_PADDING = 15

KEY_FRAME = 0

_HAS_EXTENSION = 0x04
_HAS_SIZE = 0x02
_MAX_LEB128_BYTES = 8


@dataclass(frozen=True, slots=True)
class Obu:
    """One OBU: its header byte(s) (extension included, size flag cleared) and its payload."""

    header: bytes
    payload: bytes

    @property
    def type(self) -> int:
        return (self.header[0] >> 3) & 0x0F

    def with_size(self) -> bytes:
        """The OBU in ISOBMFF/low-overhead form: size field present."""
        return b"".join(
            (bytes((self.header[0] | _HAS_SIZE,)), self.header[1:], leb128(len(self.payload)), self.payload)
        )

    def without_size(self) -> bytes:
        """The OBU as RTP carries it: no size field, the packet framing says where it ends."""
        return b"".join((bytes((self.header[0] & ~_HAS_SIZE,)), self.header[1:], self.payload))


@dataclass(frozen=True, slots=True)
class SequenceHeader:
    """The sequence header fields that av1C, codec strings and the API need."""

    profile: int
    level: int  # seq_level_idx of operating point 0
    tier: int
    bit_depth: int
    monochrome: bool
    subsampling_x: int
    subsampling_y: int
    chroma_sample_position: int
    width: int  # max_frame_width_minus_1 + 1
    height: int
    reduced_still_picture_header: bool


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """The value at ``pos`` and the position after it; CodecError if truncated or over 8 bytes."""
    value = 0
    for i in range(_MAX_LEB128_BYTES):
        if pos >= len(data):
            raise CodecError("truncated leb128")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise CodecError("leb128 longer than 8 bytes")


def parse_obu(data: bytes) -> Obu:
    """One whole OBU whose end is known from outside (RTP): a size field, if any, must agree."""
    if not data:
        raise CodecError("empty AV1 OBU")
    header_size = _header_size(data, 0)
    if header_size > len(data):
        raise CodecError("AV1 OBU header truncated")
    pos = header_size
    if data[0] & _HAS_SIZE:
        size, pos = read_leb128(data, pos)
        if pos + size != len(data):
            raise CodecError(f"AV1 OBU size field says {size} bytes, {len(data) - pos} present")
    return Obu(_header(data, 0, header_size), data[pos:])


def split_obus(data: bytes) -> list[Obu]:
    """The OBUs of a temporal unit in low-overhead form (the last one may lack a size field)."""
    obus = []
    pos = 0
    end = len(data)
    while pos < end:
        header_end = pos + _header_size(data, pos)
        if header_end > end:
            raise CodecError("AV1 OBU header truncated")
        if data[pos] & _HAS_SIZE:
            size, start = read_leb128(data, header_end)
            stop = start + size
            if stop > end:
                raise CodecError(f"AV1 OBU of {size} bytes overruns its {end}-byte temporal unit")
        else:
            start = header_end
            stop = end
        obus.append(Obu(_header(data, pos, header_end), data[start:stop]))
        pos = stop
    return obus


def _header(data: bytes, pos: int, end: int) -> bytes:
    """The header bytes without the size flag, so that equal OBUs compare equal."""
    header = data[pos:end]
    return header if not header[0] & _HAS_SIZE else bytes((header[0] & ~_HAS_SIZE,)) + header[1:]


def _header_size(data: bytes, pos: int) -> int:
    header = data[pos]
    if header & 0x80:
        raise CodecError("AV1 OBU forbidden bit set")
    return 2 if header & _HAS_EXTENSION else 1


def parse_sequence_header(payload: bytes) -> SequenceHeader:
    """Walk a sequence_header_obu payload (AV1 spec 5.5) up to its colour config."""
    r = BitReader(payload)
    profile = r.u(3)
    if profile > 2:
        raise CodecError(f"AV1 seq_profile {profile} is reserved")
    r.skip(1)  # still_picture
    reduced = r.flag()
    tier = 0
    if reduced:
        level = r.u(5)
    else:
        decoder_model_info = False
        buffer_delay_bits = 0
        if r.flag():  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.flag():  # equal_picture_interval
                _uvlc(r)  # num_ticks_per_picture_minus_1
            decoder_model_info = r.flag()
            if decoder_model_info:
                buffer_delay_bits = r.u(5) + 1
                r.skip(32 + 5 + 5)  # num_units_in_decoding_tick, two length fields
        initial_display_delay = r.flag()
        level = -1
        for _ in range(r.u(5) + 1):  # operating points; av1C describes the first
            r.skip(12)  # operating_point_idc
            op_level = r.u(5)
            op_tier = r.u(1) if op_level > 7 else 0
            if level < 0:
                level, tier = op_level, op_tier
            if decoder_model_info and r.flag():
                r.skip(2 * buffer_delay_bits + 1)
            if initial_display_delay and r.flag():
                r.skip(4)
    width_bits = r.u(4) + 1
    height_bits = r.u(4) + 1
    width = r.u(width_bits) + 1
    height = r.u(height_bits) + 1
    if not reduced and r.flag():  # frame_id_numbers_present_flag
        r.skip(4 + 3)
    r.skip(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced:
        r.skip(4)  # interintra, masked compound, warped motion, dual filter
        order_hint = r.flag()
        if order_hint:
            r.skip(2)  # enable_jnt_comp, enable_ref_frame_mvs
        force_screen_content_tools = 2 if r.flag() else r.u(1)  # 2: SELECT_SCREEN_CONTENT_TOOLS
        if force_screen_content_tools and not r.flag():  # seq_choose_integer_mv
            r.skip(1)  # seq_force_integer_mv
        if order_hint:
            r.skip(3)  # order_hint_bits_minus_1
    r.skip(3)  # enable_superres, enable_cdef, enable_restoration
    return _color_config(r, profile, level, tier, width, height, reduced)


def _uvlc(r: BitReader) -> None:
    zeros = 0
    while not r.flag():  # the reader raises at the end of the data, so this ends
        zeros += 1
    if zeros < 32:  # 32 or more zeros code the maximum value with no value bits
        r.skip(zeros)


def _color_config(
    r: BitReader, profile: int, level: int, tier: int, width: int, height: int, reduced: bool
) -> SequenceHeader:
    """AV1 spec 5.5.2, the part av1C copies."""
    high_bitdepth = r.flag()
    bit_depth = 8
    if profile == 2 and high_bitdepth:
        bit_depth = 12 if r.flag() else 10
    elif high_bitdepth:
        bit_depth = 10
    monochrome = False if profile == 1 else r.flag()
    primaries = transfer = matrix = 2  # unspecified
    if r.flag():  # color_description_present_flag
        primaries, transfer, matrix = r.u(8), r.u(8), r.u(8)
    position = 0
    if monochrome:
        r.skip(1)  # color_range
        sub_x = sub_y = 1
    elif primaries == 1 and transfer == 13 and matrix == 0:  # sRGB: 4:4:4 implied
        sub_x = sub_y = 0
    else:
        r.skip(1)  # color_range
        if profile == 0:
            sub_x = sub_y = 1
        elif profile == 1:
            sub_x = sub_y = 0
        elif bit_depth == 12:
            sub_x = r.u(1)
            sub_y = r.u(1) if sub_x else 0
        else:
            sub_x, sub_y = 1, 0
        if sub_x and sub_y:
            position = r.u(2)
    return SequenceHeader(
        profile, level, tier, bit_depth, monochrome, sub_x, sub_y, position, width, height, reduced
    )


def frame_type(payload: bytes, reduced_still_picture_header: bool = False) -> int | None:
    """The frame_type of a frame header / frame OBU payload; None for show_existing_frame.

    Only the first bits matter: a reduced-still-picture stream has key frames only.
    """
    if reduced_still_picture_header:
        return KEY_FRAME
    r = BitReader(payload[:1])
    if r.flag():  # show_existing_frame: shows a decoded frame, decodes nothing new
        return None
    return r.u(2)


def make_av1c_record(sequence_header: bytes) -> bytes:
    """An av1C (AV1-ISOBMFF 2.3) for a sequence header OBU, which it carries as its configOBUs."""
    obu = parse_obu(sequence_header)
    if obu.type != OBU_SEQUENCE_HEADER:
        raise CodecError(f"AV1 OBU type {obu.type} is not a sequence header")
    seq = parse_sequence_header(obu.payload)
    return (
        bytes(
            (
                0x81,  # marker, version 1
                seq.profile << 5 | seq.level,
                seq.tier << 7
                | (seq.bit_depth > 8) << 6
                | (seq.bit_depth == 12) << 5
                | seq.monochrome << 4
                | seq.subsampling_x << 3
                | seq.subsampling_y << 2
                | seq.chroma_sample_position,
                0,  # no initial_presentation_delay
            )
        )
        + obu.with_size()
    )


def av1c_sequence_header(record: bytes) -> Obu | None:
    """The sequence header OBU among an av1C's configOBUs, if it has one."""
    if len(record) < 4 or record[0] != 0x81:
        raise CodecError("not an AV1CodecConfigurationRecord (version 1)")
    for obu in split_obus(record[4:]):
        if obu.type == OBU_SEQUENCE_HEADER:
            return obu
    return None
