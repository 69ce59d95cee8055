"""Codec parsers survive random and mutated input with CodecError, never another exception."""

from __future__ import annotations

import contextlib
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.codecs import CodecError, aac, h264, h265
from tests.media import encode_video

av = pytest.importorskip("av")

FUZZ = settings(max_examples=250, deadline=None)


@functools.cache
def records(encoder: str) -> bytes:
    """The avcC/hvcC record of a tiny real stream."""
    return encode_video(encoder, 66, 50)[0]


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(("flip", "set", "delete", "truncate")))
        if action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[pos] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[pos]
        else:
            del data[pos:]
    return bytes(data)


def h264_sps() -> bytes:
    return h264.parse_avcc_record(records("libx264")).sps[0]


def h265_sps() -> bytes:
    return h265.parse_hvcc_record(records("libx265")).sps[0]


def only_codec_errors(func, data: bytes) -> None:  # noqa: ANN001 - any one-argument parser
    with contextlib.suppress(CodecError):
        func(data)


@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    for func in (
        h264.parse_sps,
        h265.parse_sps,
        h264.parse_avcc_record,
        h265.parse_hvcc_record,
        aac.parse_audio_specific_config,
        h264.split_avcc,
    ):
        only_codec_errors(func, data)
    only_codec_errors(lambda d: h264.parse_sps(b"\x67" + d), data)
    only_codec_errors(lambda d: h265.parse_sps(b"\x42\x01" + d), data)
    h264.split_annexb(data)


@FUZZ
@given(st.data())
def test_mutated_h264(data: st.DataObject) -> None:
    only_codec_errors(h264.parse_sps, data.draw(mutated(h264_sps())))
    only_codec_errors(h264.parse_avcc_record, data.draw(mutated(records("libx264"))))


@FUZZ
@given(st.data())
def test_mutated_h265(data: st.DataObject) -> None:
    only_codec_errors(h265.parse_sps, data.draw(mutated(h265_sps())))
    only_codec_errors(h265.parse_hvcc_record, data.draw(mutated(records("libx265"))))


@FUZZ
@given(st.data())
def test_mutated_aac(data: st.DataObject) -> None:
    base = data.draw(
        st.sampled_from([b"\x11\x90", b"\x12\x10", b"\x2b\x11\x88\x00", b"\x17\x80\xc3\x50\x10"])
    )
    mutant = data.draw(mutated(base))
    try:
        info = aac.parse_audio_specific_config(mutant)
        aac.adts_header(info, 100)
    except CodecError:
        pass


@FUZZ
@given(st.integers(0, 100), st.integers(0, 1 << 25), st.integers(0, 10))
def test_make_audio_specific_config(object_type: int, rate: int, channels: int) -> None:
    try:
        asc = aac.make_audio_specific_config(object_type, rate, channels)
    except CodecError:
        return
    assert aac.parse_audio_specific_config(asc) == aac.AacConfig(object_type, rate, channels)
