"""H.265 hvcC and SPS parsing, checked against real libx265 bitstreams."""

from __future__ import annotations

import pytest

from streamhive.codecs import CodecError, h264, h265
from streamhive.codecs.bits import BitReader
from tests.media import encode_video

av = pytest.importorskip("av")


def encode_h265(
    width: int, height: int, pix_fmt: str = "yuv420p", params: str = ""
) -> tuple[bytes, list[bytes]]:
    return encode_video("libx265", width, height, pix_fmt, params)


def _max_sub_layers_minus1(sps: bytes) -> int:
    return BitReader(sps[2:3]).u(8) >> 1 & 0x07


@pytest.mark.parametrize(
    ("width", "height", "pix_fmt", "params"),
    [
        (320, 240, "yuv420p", ""),
        (318, 238, "yuv420p", ""),
        (318, 237, "yuv422p", ""),  # conformance window with SubHeightC = 1
        (317, 237, "yuv444p", ""),  # SubWidthC = SubHeightC = 1
        (318, 238, "yuv420p", "temporal-layers=3"),  # profile_tier_level with sub-layers
    ],
)
def test_parse_sps_real_streams(width: int, height: int, pix_fmt: str, params: str) -> None:
    config, _ = encode_h265(width, height, pix_fmt, params)
    record = h265.parse_hvcc_record(config)
    assert record.length_size == 4
    assert (len(record.vps), len(record.sps), len(record.pps)) == (1, 1, 1)
    assert h265.nal_type(record.vps[0]) == h265.NAL_VPS
    assert h265.nal_type(record.pps[0]) == h265.NAL_PPS
    info = h265.parse_sps(record.sps[0])
    assert (info.width, info.height) == (width, height)
    if params:
        assert _max_sub_layers_minus1(record.sps[0]) > 0


def test_keyframes() -> None:
    _, samples = encode_h265(320, 240)
    units = [h265.split_avcc(s) for s in samples]
    assert h265.is_keyframe_nalus(units[0])
    assert not any(h265.is_keyframe_nalus(u) for u in units[1:])
    assert h265.join_avcc(units[0]) == samples[0]


def test_irap_range() -> None:
    def unit(nal_type: int) -> bytes:
        return bytes((nal_type << 1, 1)) + b"payload"

    assert all(h265.is_keyframe_nalus([unit(t)]) for t in range(16, 24))
    assert not any(h265.is_keyframe_nalus([unit(t)]) for t in (*range(16), *range(24, 64)))
    assert not h265.is_keyframe_nalus([b"", b"\x28"])


def test_framing_is_shared_with_h264() -> None:
    assert h265.split_avcc is h264.split_avcc
    assert h265.join_avcc is h264.join_avcc


def test_hvcc_record_errors() -> None:
    config, _ = encode_h265(320, 240)
    for bad in (b"", b"\x00" + config[1:], config[:22], config[:30], config[:-1]):
        with pytest.raises(CodecError):
            h265.parse_hvcc_record(bad)


def test_hvcc_skips_other_arrays() -> None:
    config, _ = encode_h265(320, 240)
    sei = bytes((39 << 1, 1, 5, 1, 0x80))
    extra = bytes((0x80 | 39,)) + b"\x00\x01" + len(sei).to_bytes(2, "big") + sei
    patched = config[:22] + bytes((config[22] + 1,)) + config[23:] + extra
    record = h265.parse_hvcc_record(patched)
    assert record == h265.parse_hvcc_record(config)


def test_parse_sps_errors() -> None:
    config, _ = encode_h265(320, 240)
    sps = h265.parse_hvcc_record(config).sps[0]
    for bad in (b"", b"\x42", bytes((34 << 1, 1)) + sps[2:], sps[:10]):
        with pytest.raises(CodecError):
            h265.parse_sps(bad)
