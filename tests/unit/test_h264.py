"""H.264 framing, avcC and SPS parsing, checked against real libx264 bitstreams."""

from __future__ import annotations

import pytest

from streamhive.codecs import CodecError, h264
from streamhive.codecs.bits import BitReader, unescape_rbsp
from tests.media import encode_video

av = pytest.importorskip("av")


def encode_h264(
    width: int, height: int, pix_fmt: str = "yuv420p", params: str = "", profile: str = ""
) -> tuple[bytes, list[bytes]]:
    return encode_video("libx264", width, height, pix_fmt, params, profile)


@pytest.mark.parametrize(
    ("width", "height", "pix_fmt", "params", "profile"),
    [
        (320, 240, "yuv420p", "", ""),
        (318, 238, "yuv420p", "", ""),
        (318, 238, "yuv420p", "", "baseline"),
        (318, 238, "yuv420p", "cqm=jvt", ""),  # scaling lists in the SPS
        (318, 236, "yuv420p", "interlaced=1", ""),  # frame_mbs_only_flag = 0
        (317, 237, "yuv444p", "", ""),  # High 4:4:4, chroma crop unit 1
        (318, 237, "yuv422p", "", ""),  # High 4:2:2, vertical crop unit 1
        (317, 237, "gray", "", ""),  # chroma_format_idc 0
    ],
)
def test_parse_sps_real_streams(width: int, height: int, pix_fmt: str, params: str, profile: str) -> None:
    config, _ = encode_h264(width, height, pix_fmt, params, profile)
    record = h264.parse_avcc_record(config)
    assert record.length_size == 4
    assert len(record.sps) == 1 and len(record.pps) == 1
    info = h264.parse_sps(record.sps[0])
    assert (info.width, info.height) == (width, height)
    assert info.profile_idc == record.profile == record.sps[0][1]
    assert info.level_idc == record.level


def test_keyframes_and_nal_types() -> None:
    config, samples = encode_h264(320, 240)
    units = [h264.split_avcc(s) for s in samples]
    assert h264.is_keyframe_nalus(units[0])
    assert not any(h264.is_keyframe_nalus(u) for u in units[1:])
    assert all(h264.join_avcc(u) == s for u, s in zip(units, samples, strict=True))


@pytest.mark.parametrize("length_size", [1, 2, 3, 4])
def test_avcc_round_trip(length_size: int) -> None:
    units = [b"\x65abc", b"\x06", b"\x41" + bytes(200)]
    joined = h264.join_avcc(units, length_size)
    assert len(joined) == sum(map(len, units)) + length_size * len(units)
    assert h264.split_avcc(joined, length_size) == units


@pytest.mark.parametrize("data", [b"\x00\x00", b"\x00\x00\x00\x05abc", b"\x00\x00\x00\x01a\x00"])
def test_split_avcc_truncated(data: bytes) -> None:
    with pytest.raises(CodecError):
        h264.split_avcc(data)


def test_split_avcc_bad_length_size() -> None:
    with pytest.raises(CodecError):
        h264.split_avcc(b"\x00\x01a", 5)


def test_split_annexb() -> None:
    stream = b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x68de\x00\x00\x00\x01\x65fgh\x00"
    assert h264.split_annexb(stream) == [b"\x67abc", b"\x68de", b"\x65fgh\x00"]
    assert h264.split_annexb(b"") == []
    assert h264.split_annexb(b"\x00\x00\x01\x00\x00\x01\x09\xf0") == [b"\x09\xf0"]


def test_split_annexb_matches_avcc_of_real_stream() -> None:
    _, samples = encode_h264(320, 240)
    units = h264.split_avcc(samples[0])
    annexb = b"".join(b"\x00\x00\x00\x01" + u for u in units)
    assert h264.split_annexb(annexb) == units


def test_avcc_record_errors() -> None:
    config, _ = encode_h264(320, 240)
    for bad in (b"", b"\x02" + config[1:], config[:5], config[:8], config[:20]):
        with pytest.raises(CodecError):
            h264.parse_avcc_record(bad)


def test_parse_sps_errors() -> None:
    config, _ = encode_h264(320, 240)
    sps = h264.parse_avcc_record(config).sps[0]
    with pytest.raises(CodecError):
        h264.parse_sps(b"")
    with pytest.raises(CodecError):
        h264.parse_sps(b"\x68" + sps[1:])  # a PPS header
    with pytest.raises(CodecError):
        h264.parse_sps(sps[:6])


def _ue(value: int) -> str:
    code = format(value + 1, "b")
    return "0" * (len(code) - 1) + code


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes the way an encoder does."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def test_parse_sps_with_emulation_prevention() -> None:
    # A Baseline SPS whose huge picture size gives a 32-bit zero run, which must be escaped.
    fields = "01000010" + "00000000" + "00011110"  # profile 66, constraints, level 3.0
    fields += _ue(0) + _ue(0) + _ue(2) + _ue(1) + "0"  # sps id, frame num, poc type 2, refs, gaps
    fields += _ue(0xFFFF) + _ue(0xFFFF) + "1" + "1" + "0" + "1"  # sizes, frame_mbs_only, 8x8, no crop
    fields += "0" * (-len(fields) % 8)
    sps = b"\x67" + _escape(int(fields, 2).to_bytes(len(fields) // 8, "big"))
    assert b"\x00\x00\x03" in sps
    info = h264.parse_sps(sps)
    assert (info.width, info.height, info.profile_idc, info.level_idc) == (16 << 16, 16 << 16, 66, 30)


def test_unescape_rbsp() -> None:
    assert unescape_rbsp(b"\x00\x00\x03\x01") == b"\x00\x00\x01"
    assert unescape_rbsp(b"\x00\x00\x03\x00\x00\x03\x02") == b"\x00\x00\x00\x00\x02"
    assert unescape_rbsp(b"\x01\x02") == b"\x01\x02"


def test_bit_reader_exp_golomb() -> None:
    # ue: 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3; se of 00101 (k=4) -> -2
    r = BitReader(bytes([0b10100110, 0b01000010, 0b10000000]))
    assert [r.ue(), r.ue(), r.ue(), r.ue()] == [0, 1, 2, 3]
    assert r.se() == -2
    assert r.bits_left == 7
    with pytest.raises(CodecError):
        r.u(8)
    with pytest.raises(CodecError):
        BitReader(bytes(5)).ue()
