"""H.265 over RTP (RFC 7798): single NAL unit packets, aggregation packets (AP) and FUs.

The logic is H.264's (see h264.py); this module supplies the 2-byte NAL headers and the type
numbers. Streams that signal sprop-max-don-diff > 0 carry decoding order numbers (DONL/DOND);
they are skipped, since senders transmit in decoding order in practice.
"""

from __future__ import annotations

from streamhive.codecs import CodecError, h265
from streamhive.formats.rtp import RtpError, SdpFormat, register
from streamhive.formats.rtp.h264 import (
    NalDepacketizer,
    NalPacketizer,
    decode_sprop,
    encode_sprop,
    lower_keys,
    split_aggregate,
    video_track,
)
from streamhive.hub.frame import Kind, Track

_AP = 48
_FU = 49
_PACI = 50
_AUD = 35
_PARAM_TYPES = (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS)
_SPROP_KEYS = ("sprop-vps", "sprop-sps", "sprop-pps")


class H265Packetizer(NalPacketizer):
    header_size = 2
    type_shift = 1
    type_mask = 0x3F
    aud_type = _AUD

    __slots__ = ()

    def aggregate(self, units: list[bytes]) -> bytes:
        """An AP: its header has the F bit of any unit and the lowest layer and temporal ids."""
        forbidden = 0
        layer = 63
        tid = 7
        for unit in units:
            forbidden |= unit[0] & 0x80
            layer = min(layer, ((unit[0] & 0x01) << 5) | (unit[1] >> 3))
            tid = min(tid, unit[1] & 0x07)
        parts = [bytes((forbidden | (_AP << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid))]
        for unit in units:
            parts.append(len(unit).to_bytes(2, "big"))
            parts.append(unit)
        return b"".join(parts)

    def fragment(self, unit: bytes, out: list[tuple[bytes, bool]]) -> None:
        """FUs: a payload header of type 49 with the unit's ids, then S/E bits and its type."""
        header = bytes(((unit[0] & 0x81) | (_FU << 1), unit[1]))
        kind = (unit[0] >> 1) & 0x3F
        headers = (header + bytes((0x80 | kind,)), header + bytes((kind,)), header + bytes((0x40 | kind,)))
        self.cut(unit, 2, headers, out)


class H265Depacketizer(NalDepacketizer):
    type_shift = 1
    type_mask = 0x3F
    fu_pos = 2
    keyframe_types = frozenset(range(16, 24))  # IRAP: BLA, IDR, CRA
    param_types = _PARAM_TYPES

    __slots__ = ("_don",)

    def __init__(self, track: Track, params: tuple[tuple[bytes, ...], ...], don: bool) -> None:
        super().__init__(track, params)
        self._don = don
        if don:
            self._fu_body += 2  # a start fragment's DONL

    def parse(self, payload: bytes) -> tuple[bytes, ...] | None:
        if len(payload) < 3:
            raise RtpError(f"H.265 RTP payload of {len(payload)} bytes is too short")
        kind = (payload[0] >> 1) & 0x3F
        if kind < _AP:
            return (payload,)
        if kind == _FU:
            if payload[2] & 0x80 and len(payload) < self._fu_body:
                raise RtpError("H.265 start fragment without its DONL")
            return None
        if kind == _AP:
            return split_aggregate(payload, 4 if self._don else 2, 2, 1 if self._don else 0)
        if kind == _PACI:
            raise RtpError("H.265 PACI packets are not supported")
        raise RtpError(f"H.265 RTP payload with reserved type {kind}")

    def fu_header(self, payload: bytes, kind: int) -> bytes:
        return bytes(((payload[0] & 0x81) | (kind << 1), payload[1]))

    def starts_picture(self, units: list[bytes]) -> bool:
        for unit in units:
            if unit[0] >> 1 < 32:  # a slice segment: first_slice_segment_in_pic_flag leads
                return len(unit) > 2 and unit[2] & 0x80 != 0
        return False

    def make_track(self, params: tuple[tuple[bytes, ...], ...]) -> Track:
        vps, sps, pps = params
        info = h265.parse_sps(sps[0])
        config = h265.make_hvcc_record(list(vps), list(sps), list(pps))
        return video_track(self._track, config, info.width, info.height)


def _hvcc_params(track: Track) -> tuple[list[bytes], list[bytes], list[bytes]]:
    if not track.config:
        return [], [], []
    try:
        record = h265.parse_hvcc_record(track.config)
    except CodecError as exc:
        raise RtpError(f"unusable hvcC in the H.265 track: {exc}") from exc
    return record.vps, record.sps, record.pps


class H265Codec:
    name = "h265"
    encodings: tuple[str, ...] = ("H265",)
    kind: Kind = "video"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        fmtp: dict[str, str] = {}
        params = _hvcc_params(track)
        if track.config:  # hvcC's general profile and level, which WebRTC matches codecs on
            fmtp["profile-id"] = str(track.config[1] & 0x1F)
            fmtp["tier-flag"] = str((track.config[1] >> 5) & 0x01)
            fmtp["level-id"] = str(track.config[12])
        for key, units in zip(_SPROP_KEYS, params, strict=True):
            if units:
                fmtp[key] = encode_sprop(units)
        return SdpFormat("H265", 90000, None, fmtp)

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        fmtp = lower_keys(fmt.fmtp)
        _don_present(fmtp)
        vps, sps, pps = (decode_sprop(fmtp.get(key, "")) for key in _SPROP_KEYS)
        track = Track("video", "h265")
        if not sps:
            return track
        try:
            info = h265.parse_sps(sps[0])
            config = h265.make_hvcc_record(vps, sps, pps) if vps and pps else b""
        except CodecError as exc:
            raise RtpError(f"unusable H.265 sprop parameter sets: {exc}") from exc
        return video_track(track, config, info.width, info.height)

    def packetizer(self, track: Track, mtu: int = 1400) -> H265Packetizer:
        vps, sps, pps = _hvcc_params(track)
        return H265Packetizer(vps + sps + pps, mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> H265Depacketizer:
        params = tuple(map(tuple, _hvcc_params(track)))
        return H265Depacketizer(track, params, _don_present(lower_keys(fmt.fmtp)))


def _don_present(fmtp: dict[str, str]) -> bool:
    """Whether payloads carry DONL/DOND fields: sprop-max-don-diff > 0 (RFC 7798 7.1)."""
    value = fmtp.get("sprop-max-don-diff", "0")
    try:
        diff = int(value)
    except ValueError:
        diff = -1
    if not 0 <= diff <= 32767:
        raise RtpError(f"invalid sprop-max-don-diff {value!r}")
    return diff > 0


CODEC = register(H265Codec())
