"""Does this RTP payload start a keyframe? Per codec, from the first bytes of one packet.

A subscriber can switch to another simulcast layer (or publisher) only where a decoder can
start, so the forwarding path asks this of the target layer's packets while it waits. It looks
at payload headers only: no depacketizing, no reassembly, no bitstream parsing beyond a flag.
It never raises: a malformed payload is simply not a keyframe.
"""

from __future__ import annotations

from collections.abc import Callable

from streamhive.codecs import h264, h265
from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp import vp8 as rtp_vp8
from streamhive.formats.rtp import vp9 as rtp_vp9

_H264_KEY = frozenset({h264.NAL_IDR, h264.NAL_SPS})
_H264_STAP_A = 24
_H264_FU_A = 28
#: IRAP pictures (BLA, IDR, CRA and the reserved IRAP types, as the H.265 depacketizer counts
#: them) and the parameter sets sent in front of them.
_H265_KEY = frozenset((*range(16, 24), h265.NAL_VPS, h265.NAL_SPS))
_H265_AP = 48
_H265_FU = 49
_FU_START = 0x80
_VP8_INTER = 0x01  # the frame tag's P bit (show_frame etc. follow)
_VP9_I = 0x80
_VP9_P = 0x40
_VP9_L = 0x20
_VP9_B = 0x08
_AV1_N = 0x08


def _h264(payload: bytes) -> bool:
    """An IDR slice or an SPS: alone, inside a STAP-A, or in an FU-A's first fragment."""
    kind = payload[0] & 0x1F
    if kind == _H264_FU_A:
        return len(payload) > 1 and payload[1] & _FU_START != 0 and payload[1] & 0x1F in _H264_KEY
    if kind == _H264_STAP_A:
        return any(unit[0] & 0x1F in _H264_KEY for unit in _aggregated(payload, 1))
    return kind in _H264_KEY


def _h265(payload: bytes) -> bool:
    """An IRAP slice, a VPS or an SPS: alone, inside an AP, or in an FU's first fragment.

    Decoding order numbers (sprop-max-don-diff > 0) are not expected: browsers never send them.
    """
    if len(payload) < 3:
        return False
    kind = (payload[0] >> 1) & 0x3F
    if kind == _H265_FU:
        return payload[2] & _FU_START != 0 and payload[2] & 0x3F in _H265_KEY
    if kind == _H265_AP:
        return any((unit[0] >> 1) & 0x3F in _H265_KEY for unit in _aggregated(payload, 2))
    return kind in _H265_KEY


def _aggregated(payload: bytes, pos: int) -> list[bytes]:
    """The units of a STAP-A / AP as far as they fit; a truncated tail is left out, not refused."""
    units = []
    end = len(payload)
    while pos + 2 < end:
        size = payload[pos] << 8 | payload[pos + 1]
        pos += 2
        if not size or pos + size > end:
            break
        units.append(payload[pos : pos + size])
        pos += size
    return units


def _vp8(payload: bytes) -> bool:
    """The first packet of partition 0 of a frame whose tag says key frame (RFC 7741 4.3)."""
    try:
        start, pos = rtp_vp8.parse_descriptor(payload)
    except RtpError:
        return False
    return start and not payload[pos] & _VP8_INTER


def _vp9(payload: bytes) -> bool:
    """The first packet of a picture not predicted from earlier ones, on the base spatial layer.

    RFC 9628: B starts a layer frame, P clear means no inter-picture prediction; an upper
    spatial layer with P clear still depends on the layer below, so it is not a start.
    """
    try:
        rtp_vp9.parse_descriptor(payload)
    except RtpError:
        return False
    first = payload[0]
    if not first & _VP9_B or first & _VP9_P:
        return False
    if not first & _VP9_L:
        return True
    pos = 1
    if first & _VP9_I:
        pos += 2 if payload[1] & 0x80 else 1
    return (payload[pos] >> 1) & 0x07 == 0  # SID


def _av1(payload: bytes) -> bool:
    """The aggregation header's N bit: the first packet of a new coded video sequence."""
    return payload[0] & _AV1_N != 0


_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "h264": _h264,
    "h265": _h265,
    "vp8": _vp8,
    "vp9": _vp9,
    "av1": _av1,
}


def is_keyframe(codec: str, payload: bytes) -> bool:
    """True when this packet's payload starts (or carries) a keyframe of ``codec``.

    ``codec`` is a hub codec name; audio and unknown codecs give False, as does any payload
    too short or malformed to say.
    """
    detector = _DETECTORS.get(codec)
    return detector is not None and bool(payload) and detector(payload)
