"""AAC, LATM, Opus, G.711 and MJPEG RTP payloads: random and mutated input only raises RtpError."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.formats.rtp import Access, RtpCodec, RtpError, SdpFormat
from streamhive.formats.rtp.aac import AAC
from streamhive.formats.rtp.g711 import PCMA, PCMU
from streamhive.formats.rtp.mjpeg import MJPEG
from streamhive.formats.rtp.opus import OPUS
from streamhive.hub.frame import Track
from tests.fuzz.test_codecs_fuzz import mutated
from tests.unit.test_rtp_aac import (
    ASC_48K_STEREO,
    LATM_24K_STEREO,
    bits,
    encode_audio,
    hbr_packet,
    length_info,
)
from tests.unit.test_rtp_mjpeg import encode_jpeg, gray_scan, rtp_jpeg

pytest.importorskip("av")

CODECS: dict[str, RtpCodec] = {
    encoding.upper(): codec for codec in (AAC, OPUS, PCMA, PCMU, MJPEG) for encoding in codec.encodings
}

FUZZ = settings(max_examples=200, deadline=None)

#: (SDP format, real payloads of that format) for every depacketizer.
FORMATS: dict[str, SdpFormat] = {
    "hbr": SdpFormat(
        "mpeg4-generic",
        48000,
        2,
        {
            "mode": "AAC-hbr",
            "sizelength": "13",
            "indexlength": "3",
            "indexdeltalength": "3",
            "config": "1190",
        },
    ),
    "extras": SdpFormat(
        "mpeg4-generic",
        48000,
        2,
        {
            "mode": "AAC-hbr",
            "config": "1190",
            "ctsdeltalength": "4",
            "dtsdeltalength": "5",
            "randomaccessindication": "1",
            "streamstateindication": "2",
            "auxiliarydatasizelength": "8",
        },
    ),
    "latm": SdpFormat("MP4A-LATM", 24000, 2, {"cpresent": "0", "config": LATM_24K_STEREO}),
    "latm-inband": SdpFormat("MP4A-LATM", 48000, 2, {"cpresent": "1"}),
    "opus": SdpFormat("opus", 48000, 2, {"sprop-stereo": "1"}),
    "pcma": SdpFormat("PCMA", 8000, 2),
    "pcmu": SdpFormat("PCMU", 8000),
    "jpeg": SdpFormat("JPEG", 90000),
}


@functools.cache
def seeds(name: str) -> tuple[bytes, ...]:
    """Real payloads for a format: from real encoders where we have them, else by the RFC."""
    _, aac_frames = encode_audio("aac", 48000, "stereo")
    if name == "hbr":
        track = Track("audio", "aac", ASC_48K_STEREO)
        small = [p for f in aac_frames[:3] for p, _ in AAC.packetizer(track, 100).packetize((f,), True)]
        return (*small, hbr_packet(*aac_frames[:3]))
    if name == "extras":
        header = [(3, 13), (0, 3), (0, 1), (1, 1), (7, 5), (1, 1), (2, 2), (2, 13), (0, 3), (1, 1), (9, 4)]
        return (bits((48, 16), *header, (0, 4)) + bits((16, 8), (0xABCD, 16)) + b"xyzpq",)
    if name == "latm":
        return tuple(length_info(len(f)) + f for f in aac_frames[:4])
    if name == "latm-inband":
        config = bits((0, 1), (0, 1), (1, 1), (0, 6), (0, 4), (0, 3), (0x1190, 16), (0, 3), (0xFF, 8), (0, 2))
        return (config + length_info(3)[:1] + b"abc", bits((1, 1), (3, 8), (0x616263, 24)))
    if name == "opus":
        return encode_audio("libopus", 48000, "stereo")[1][:4]
    if name in ("pcma", "pcmu"):
        return (bytes(range(160)),)
    packets = MJPEG.packetizer(Track("video", "mjpeg"), 300).packetize((encode_jpeg(64, 48),), True)
    dynamic = rtp_jpeg(gray_scan(12, 4), 0, 64, 48, q=200, restart=3, tables=bytes(128), mtu=40)
    return tuple(p for p, _ in packets + dynamic)


def payloads(name: str) -> st.SearchStrategy[bytes]:
    base = st.sampled_from(seeds(name))
    return st.one_of(st.binary(max_size=300), base, base.flatmap(mutated))


@FUZZ
@given(st.sampled_from(sorted(FORMATS)), st.data())
def test_depacketizers_only_raise_rtp_errors(name: str, data: st.DataObject) -> None:
    fmt = FORMATS[name]
    codec = CODECS[fmt.encoding.upper()]
    depacketizer = codec.depacketizer(codec.track_from_sdp(fmt), fmt)
    steps = data.draw(
        st.lists(
            st.tuples(payloads(name), st.booleans(), st.sampled_from([0, 0, 1024, 0xFFFFFFFF]), st.booleans())
        )
    )
    for payload, marker, timestamp, lose in steps:
        if lose:
            depacketizer.lost()
        try:
            out = depacketizer.push(payload, timestamp, marker)
        except RtpError:
            continue
        for access in out:
            assert isinstance(access, Access) and 0 <= access.timestamp <= 0xFFFFFFFF
            assert access.units and all(isinstance(u, bytes) for u in access.units)
            assert access.track is None or access.track.codec == codec.name


FMTP_KEYS = (
    "config",
    "mode",
    "sizelength",
    "indexlength",
    "indexdeltalength",
    "ctsdeltalength",
    "auxiliarydatasizelength",
    "cpresent",
    "sprop-stereo",
    "stereo",
    "Config",
)
FMTP_VALUES = st.one_of(
    st.sampled_from(
        ["0", "1", "3", "13", "33", "AAC-hbr", "aac-lbr", "generic", "1190", "121056e500", LATM_24K_STEREO]
    ),
    st.text(max_size=12),
    st.binary(max_size=12).map(bytes.hex),
    st.sampled_from(["1190", LATM_24K_STEREO, "400024103fc0", "c0"]).flatmap(
        lambda h: mutated(bytes.fromhex(h)).map(bytes.hex)
    ),
)


@FUZZ
@given(
    st.sampled_from(["mpeg4-generic", "MP4A-LATM", "opus", "PCMA", "pcmu", "JPEG"]),
    st.sampled_from([0, 1, 8000, 24000, 44100, 48000, 90000, 1 << 31]),
    st.sampled_from([None, 0, 1, 2, 6, -1]),
    st.dictionaries(st.sampled_from(FMTP_KEYS), FMTP_VALUES, max_size=6),
)
def test_track_from_sdp_only_raises_rtp_errors(
    encoding: str, clock: int, channels: int | None, fmtp: dict[str, str]
) -> None:
    fmt = SdpFormat(encoding, clock, channels, fmtp)
    codec = CODECS[encoding.upper()]
    try:
        track = codec.track_from_sdp(fmt)
        codec.depacketizer(track, fmt)
        codec.sdp_format(track)
    except RtpError:
        return
    assert track.codec == codec.name and track.kind == codec.kind


@FUZZ
@given(st.data())
def test_packetizers_only_raise_rtp_errors(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["hbr", "opus", "pcma", "jpeg"]))
    fmt = FORMATS[name]
    codec = CODECS[fmt.encoding.upper()]
    mtu = data.draw(st.sampled_from([1, 20, 200, 1400]))
    jpeg = data.draw(mutated(encode_jpeg(64, 48))) if name == "jpeg" else data.draw(st.binary(max_size=3000))
    try:
        packets = codec.packetizer(codec.track_from_sdp(fmt), mtu).packetize((jpeg,), True)
    except RtpError:
        return
    # G.711 sends a frame as one packet whatever its size (see formats/rtp/g711.py)
    assert packets and (name == "pcma" or all(len(p) <= mtu for p, _ in packets))
