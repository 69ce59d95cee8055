"""AudioSpecificConfig parsing/building and ADTS headers, checked against FFmpeg's AAC codec."""

from __future__ import annotations

import functools
import io

import pytest

from streamhive.codecs import CodecError, aac

av = pytest.importorskip("av")


@functools.cache
def encode_aac(sample_rate: int, layout: str, frames: int = 6) -> tuple[bytes, list[bytes]]:
    """(AudioSpecificConfig, raw AAC frames) from FFmpeg's native encoder."""
    av.logging.set_level(av.logging.ERROR)
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = sample_rate, layout, "fltp"
    ctx.flags |= av.codec.context.Flags.global_header
    ctx.open()
    packets = []
    for i in range(frames):
        frame = av.AudioFrame(format="fltp", layout=layout, samples=1024)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts = sample_rate, i * 1024
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    return ctx.extradata, [bytes(p) for p in packets]


@pytest.mark.parametrize(
    ("rate", "layout", "channels"), [(48000, "stereo", 2), (44100, "mono", 1), (22050, "5.1", 6)]
)
def test_parse_real_config(rate: int, layout: str, channels: int) -> None:
    asc, _ = encode_aac(rate, layout)
    info = aac.parse_audio_specific_config(asc)
    assert info == aac.AacConfig(2, rate, channels)
    assert info.output_sample_rate == rate
    assert aac.make_audio_specific_config(2, rate, channels) == asc[:2]


@pytest.mark.parametrize(
    ("object_type", "rate", "channels"),
    [
        (2, 44100, 2),
        (1, 8000, 1),
        (4, 7350, 8),
        (2, 50000, 2),
        (42, 48000, 6),
        (32, 12345, 1),
        (95, 96000, 4),
    ],
)
def test_make_parse_round_trip(object_type: int, rate: int, channels: int) -> None:
    asc = aac.make_audio_specific_config(object_type, rate, channels)
    assert aac.parse_audio_specific_config(asc) == aac.AacConfig(object_type, rate, channels)


def test_escape_forms_have_the_right_length() -> None:
    assert len(aac.make_audio_specific_config(2, 48000, 2)) == 2
    assert len(aac.make_audio_specific_config(2, 50000, 2)) == 5  # 5 + 4 + 24 + 4 + 3 bits
    assert len(aac.make_audio_specific_config(40, 48000, 2)) == 3  # 11 + 4 + 4 + 3 bits


def test_explicit_he_aac() -> None:
    # AOT 5 (SBR), core 24 kHz stereo, extension 48 kHz, core AOT 2.
    bits = "00101" + "0110" + "0010" + "0011" + "00010" + "000"
    asc = int(bits + "0" * (-len(bits) % 8), 2).to_bytes((len(bits) + 7) // 8, "big")
    info = aac.parse_audio_specific_config(asc)
    assert info == aac.AacConfig(2, 24000, 2, 48000)
    assert info.output_sample_rate == 48000
    assert aac.adts_header(info, 100)[2] >> 6 == 1  # ADTS profile = core AOT - 1


@pytest.mark.parametrize(
    "asc",
    [
        b"",
        b"\x10",  # truncated
        bytes((0b00000_000, 0b0_0010_000)),  # object type 0
        bytes((0b00010_110, 0b1_0010_000)),  # frequency index 13 (reserved)
        bytes((0b00010_011, 0b0_1000_000)),  # channel configuration 8 (reserved)
        bytes((0b00010_111, 0b1_0000_000, 0, 0, 0)),  # explicit rate 0
    ],
)
def test_parse_errors(asc: bytes) -> None:
    with pytest.raises(CodecError):
        aac.parse_audio_specific_config(asc)


def test_make_errors() -> None:
    for args in (
        (0, 48000, 2),
        (31, 48000, 2),
        (5, 48000, 2),
        (29, 48000, 2),
        (2, 48000, 7),
        (2, 0, 2),
        (2, 1 << 24, 2),
        (96, 48000, 2),
    ):
        with pytest.raises(CodecError):
            aac.make_audio_specific_config(*args)


@pytest.mark.parametrize(("rate", "layout", "channels"), [(48000, "stereo", 2), (22050, "5.1", 6)])
def test_adts_stream_decodes(rate: int, layout: str, channels: int) -> None:
    asc, frames = encode_aac(rate, layout)
    info = aac.parse_audio_specific_config(asc)
    adts = b"".join(aac.adts_header(info, len(f)) + f for f in frames)
    with av.open(io.BytesIO(adts), format="aac") as inp:
        stream = inp.streams.audio[0]
        decoded = list(inp.decode(stream))
    assert stream.codec_context.sample_rate == rate
    assert stream.codec_context.channels == channels
    assert len(decoded) == len(frames)


def test_adts_header_fields() -> None:
    header = aac.adts_header(aac.AacConfig(2, 44100, 2), 300)
    assert header[:2] == b"\xff\xf1"
    assert ((header[3] & 0x03) << 11 | header[4] << 3 | header[5] >> 5) == 307


def test_adts_errors() -> None:
    for info, size in (
        (aac.AacConfig(5, 44100, 2), 10),
        (aac.AacConfig(2, 50000, 2), 10),
        (aac.AacConfig(2, 44100, 7), 10),
        (aac.AacConfig(2, 44100, 2), 8185),
    ):
        with pytest.raises(CodecError):
            aac.adts_header(info, size)
    assert len(aac.adts_header(aac.AacConfig(2, 44100, 2), 8184)) == 7
