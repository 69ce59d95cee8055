"""H.264 over RTP (RFC 6184, packetization-mode 1), and the NAL unit machinery H.265 shares.

H.264 and H.265 packetize alike: small NAL units share a packet (STAP-A / AP), big ones are cut
into fragments (FU-A / FU), and an access unit ends at the marker bit. They differ only in header
sizes and type numbers, so the two classes here hold all the logic and each codec fills in its
constants and headers. H.265 imports them from this module.

Robustness rules on the receiving side: an access unit is complete at the marker bit or when
the timestamp changes (some cameras never set the marker); any doubt about its integrity (a
fragment without its start, a loss the caller reports) drops it and everything after it until
the next keyframe, so a decoder behind the hub never sees a broken reference chain.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import replace

from streamhive.codecs import CodecError, h264
from streamhive.formats.rtp import Access, RtpError, SdpFormat, register
from streamhive.hub.frame import Kind, Track

_STAP_A = 24
_FU_A = 28
_MODE_2_TYPES = {25: "STAP-B", 26: "MTAP16", 27: "MTAP24", 29: "FU-B"}
_MIN_MTU = 16


#: Largest access unit accepted (a 4K intra frame is a few MB): beyond it the unit is dropped.
MAX_ACCESS_UNIT = 16 * 1024 * 1024


class NalPacketizer:
    """Splits an access unit's NAL units into RTP payloads of at most ``mtu`` bytes.

    Subclasses set the NAL header size and type field position and build the aggregation and
    fragment headers. Parameter sets from the track's config go in front of every keyframe that
    lacks them: a player joining mid-stream, or a stream from RTMP (whose frames carry none
    in-band), would otherwise never get them.
    """

    header_size = 1
    type_shift = 0
    type_mask = 0x1F
    aud_type = 9

    __slots__ = ("mtu", "_params", "_param_types")

    def __init__(self, params: list[bytes], mtu: int) -> None:
        if mtu < _MIN_MTU:
            raise RtpError(f"RTP payload size {mtu} is too small")
        self.mtu = mtu
        self._params = tuple(params)
        self._param_types = frozenset(map(self.nal_type, params))

    def nal_type(self, unit: bytes) -> int:
        return (unit[0] >> self.type_shift) & self.type_mask

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        if keyframe and self._params:
            units = self._with_params(units)
        out: list[tuple[bytes, bool]] = []
        mtu = self.mtu
        minimum = self.header_size
        overhead = minimum + 2  # an aggregate's header plus one unit's size field
        group: list[bytes] = []
        size = 0
        for unit in units:
            n = len(unit)
            if n < minimum:
                continue
            if group and size + 2 + n <= mtu:
                group.append(unit)
                size += 2 + n
                continue
            if group:
                out.append((group[0] if len(group) == 1 else self.aggregate(group), False))
            if overhead + n <= mtu:  # might share a packet with the units after it
                group = [unit]
                size = overhead + n
            else:
                group = []
                if n <= mtu:
                    out.append((unit, False))
                else:
                    self.fragment(unit, out)
        if group:
            out.append((group[0] if len(group) == 1 else self.aggregate(group), False))
        if out:
            out[-1] = (out[-1][0], True)
        return out

    def _with_params(self, units: tuple[bytes, ...]) -> tuple[bytes, ...]:
        present = {self.nal_type(unit) for unit in units if len(unit) >= self.header_size}
        if self._param_types <= present:
            return units
        missing = tuple(p for p in self._params if self.nal_type(p) not in present)
        at = 1 if units and units[0] and self.nal_type(units[0]) == self.aud_type else 0
        return units[:at] + missing + units[at:]

    def aggregate(self, units: list[bytes]) -> bytes:
        """A STAP-A: the F bit and the highest NRI of its units, then size-prefixed units."""
        forbidden = nri = 0
        for unit in units:
            forbidden |= unit[0] & 0x80
            nri = max(nri, unit[0] & 0x60)
        parts = [bytes((forbidden | nri | _STAP_A,))]
        for unit in units:
            parts.append(len(unit).to_bytes(2, "big"))
            parts.append(unit)
        return b"".join(parts)

    def fragment(self, unit: bytes, out: list[tuple[bytes, bool]]) -> None:
        """FU-A fragments: the NAL header moves into the FU indicator and FU header."""
        indicator = (unit[0] & 0xE0) | _FU_A
        kind = unit[0] & 0x1F
        headers = (bytes((indicator, 0x80 | kind)), bytes((indicator, kind)), bytes((indicator, 0x40 | kind)))
        self.cut(unit, 1, headers, out)

    def cut(
        self, unit: bytes, start: int, headers: tuple[bytes, bytes, bytes], out: list[tuple[bytes, bool]]
    ) -> None:
        """Fragment ``unit[start:]`` (longer than one packet) behind first/middle/last headers."""
        first, middle, last = headers
        view = memoryview(unit)
        step = self.mtu - len(middle)
        end = len(unit)
        out.append((first + view[start : start + step], False))
        pos = start + step
        while pos + step < end:
            out.append((middle + view[pos : pos + step], False))
            pos += step
        out.append((last + view[pos:end], False))


class NalDepacketizer:
    """Rebuilds access units from RTP payloads; subclasses parse their codec's payload types.

    ``params`` is the current parameter sets, one tuple per kind in ``param_types`` order;
    in-band sets that change them produce a new Track (``make_track``) on the next Access.
    """

    type_shift = 0
    type_mask = 0x1F
    fu_pos = 1  # index of the FU header in a fragment's payload
    keyframe_types: frozenset[int] = frozenset({h264.NAL_IDR})
    param_types: tuple[int, ...] = (h264.NAL_SPS, h264.NAL_PPS)

    __slots__ = (
        "_track",
        "_params",
        "_pending",
        "_ts",
        "_units",
        "_fu",
        "_fu_type",
        "_fu_body",
        "_dropping",
        "_need_keyframe",
        "_size",
    )

    def __init__(self, track: Track, params: tuple[tuple[bytes, ...], ...]) -> None:
        self._track = track
        self._params = params
        self._pending: Track | None = None
        self._ts: int | None = None  # timestamp of the access unit being built
        self._units: list[bytes] = []
        self._fu: list[bytes] | None = None  # pieces of the NAL unit being defragmented
        self._fu_type = 0
        self._fu_body = self.fu_pos + 1  # where a start fragment's data begins
        self._dropping = False  # the current access unit is broken: discard the rest of it
        self._need_keyframe = True  # nothing is decodable before the first keyframe
        self._size = 0  # bytes held for the access unit being built

    def parse(self, payload: bytes) -> tuple[bytes, ...] | None:
        """The complete NAL units in ``payload``, or None for a fragment; RtpError if malformed.

        Validates everything before push() changes any state, so a refused packet never
        costs the access unit it follows.
        """
        raise NotImplementedError

    def fu_header(self, payload: bytes, kind: int) -> bytes:
        """The NAL unit header a fragmented unit had, rebuilt from its start fragment."""
        raise NotImplementedError

    def make_track(self, params: tuple[tuple[bytes, ...], ...]) -> Track:
        """The Track for a new complete set of parameter sets; CodecError if unusable."""
        raise NotImplementedError

    def starts_picture(self, units: list[bytes]) -> bool:
        """Whether the first slice in ``units`` is the first of its picture.

        After a loss at an access unit boundary, the first packets of the next unit may be the
        ones missing; a keyframe only restarts decoding if its picture is there from the top.
        """
        raise NotImplementedError

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        units = self.parse(payload)
        out: list[Access] = []
        self._size += len(payload)
        if self._size > MAX_ACCESS_UNIT and not self._dropping:
            self._taint()  # a sender that never ends its access unit must not grow memory
            raise RtpError(f"access unit over {MAX_ACCESS_UNIT} bytes")
        if timestamp != self._ts:
            if self._ts is not None:
                self._finish(out, self._ts)
            self._ts = timestamp
            self._dropping = False
        if not self._dropping:
            if units is None:
                self._fragment(payload)
            elif self._fu is not None:
                self._taint()  # a new unit began before the fragmented one ended
            else:
                self._units.extend(units)
        if marker:
            self._finish(out, timestamp)
            self._ts = None
        return out

    def lost(self) -> None:
        self._taint()

    def _taint(self) -> None:
        self._size = 0
        self._units = []
        self._fu = None
        self._dropping = True
        self._need_keyframe = True

    def _fragment(self, payload: bytes) -> None:
        header = payload[self.fu_pos]
        kind = header & self.type_mask
        if header & 0x80:
            if self._fu is not None:
                self._taint()
                return
            self._fu = [self.fu_header(payload, kind), payload[self._fu_body :]]
            self._fu_type = kind
        elif self._fu is None or kind != self._fu_type:
            self._taint()  # its start, or the end of the previous unit, went missing
            return
        else:
            self._fu.append(payload[self.fu_pos + 1 :])
        if header & 0x40:
            self._units.append(b"".join(self._fu))
            self._fu = None

    def _finish(self, out: list[Access], timestamp: int) -> None:
        units = self._units
        self._units = []
        self._size = 0
        if self._fu is not None:  # the access unit ended inside a fragmented NAL unit
            self._fu = None
            self._need_keyframe = True
            return
        if self._dropping or not units:
            return
        keyframe = self._inspect(units)
        if self._need_keyframe:
            if not keyframe or not self.starts_picture(units):
                return
            self._need_keyframe = False
        track = self._pending
        self._pending = None
        out.append(Access(timestamp, tuple(units), keyframe, track))

    def _inspect(self, units: list[bytes]) -> bool:
        """Whether the unit is a keyframe; notes in-band parameter sets on the way."""
        shift = self.type_shift
        mask = self.type_mask
        keyframe = False
        found: list[list[bytes]] | None = None
        for unit in units:
            kind = (unit[0] >> shift) & mask
            if kind in self.keyframe_types:
                keyframe = True
            elif kind in self.param_types:
                if found is None:
                    found = [[] for _ in self.param_types]
                found[self.param_types.index(kind)].append(unit)
        if found is not None:
            self._update_params(found)
        return keyframe

    def _update_params(self, found: list[list[bytes]]) -> None:
        # Sets already known (all of them, or a subset such as one of two PPS) change nothing.
        params = tuple(
            tuple(new) if not set(new) <= set(old) else old
            for new, old in zip(found, self._params, strict=True)
        )
        if params == self._params:
            return
        self._params = params
        # Unparseable sets keep the last good Track: the decoder behind the hub will judge them.
        if all(params):
            with contextlib.suppress(CodecError):
                self._track = self._pending = self.make_track(params)


def split_aggregate(payload: bytes, pos: int, min_size: int, dond: int = 0) -> tuple[bytes, ...]:
    """The NAL units of a STAP-A / AP starting at ``pos``, skipping ``dond`` bytes between them."""
    units = []
    end = len(payload)
    while True:
        if pos + 2 > end:
            raise RtpError("aggregation packet truncated in a NAL unit size")
        size = (payload[pos] << 8) | payload[pos + 1]
        pos += 2
        if size < min_size or pos + size > end:
            raise RtpError(f"aggregated NAL unit of {size} bytes does not fit its packet")
        units.append(payload[pos : pos + size])
        pos += size
        if pos >= end:
            return tuple(units)
        pos += dond


def decode_sprop(value: str) -> list[bytes]:
    """Comma-separated base64 NAL units from an SDP fmtp (missing '=' padding tolerated)."""
    units = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            unit = base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RtpError(f"invalid base64 in sprop parameter sets: {part[:40]!r}") from exc
        if unit:
            units.append(unit)
    return units


def encode_sprop(units: list[bytes]) -> str:
    return ",".join(base64.b64encode(unit).decode("ascii") for unit in units)


def lower_keys(fmtp: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value.strip() for key, value in fmtp.items()}


def video_track(track: Track, config: bytes, width: int, height: int) -> Track:
    """``track`` with a new codec configuration (its ``extra`` copied, not shared)."""
    return replace(track, config=config, width=width, height=height, extra=dict(track.extra))


class H264Packetizer(NalPacketizer):
    __slots__ = ()


class H264Depacketizer(NalDepacketizer):
    __slots__ = ()

    def parse(self, payload: bytes) -> tuple[bytes, ...] | None:
        if not payload:
            raise RtpError("empty H.264 RTP payload")
        kind = payload[0] & 0x1F
        if 0 < kind < _STAP_A:
            return (payload,)
        if kind == _FU_A:
            if len(payload) < 2:
                raise RtpError("FU-A without its FU header")
            return None
        if kind == _STAP_A:
            return split_aggregate(payload, 1, 1)
        if kind in _MODE_2_TYPES:
            raise RtpError(f"{_MODE_2_TYPES[kind]} needs packetization-mode 2, which is not supported")
        raise RtpError(f"H.264 RTP payload with reserved NAL unit type {kind}")

    def fu_header(self, payload: bytes, kind: int) -> bytes:
        return bytes(((payload[0] & 0xE0) | kind,))

    def starts_picture(self, units: list[bytes]) -> bool:
        for unit in units:
            if 0 < unit[0] & 0x1F < 6:  # a slice: first_mb_in_slice == 0 codes as a leading 1
                return len(unit) > 1 and unit[1] & 0x80 != 0
        return False

    def make_track(self, params: tuple[tuple[bytes, ...], ...]) -> Track:
        sps, pps = params
        info = h264.parse_sps(sps[0])
        return video_track(self._track, h264.make_avcc_record(list(sps), list(pps)), info.width, info.height)


def _avcc_params(track: Track) -> tuple[list[bytes], list[bytes]]:
    if not track.config:
        return [], []
    try:
        record = h264.parse_avcc_record(track.config)
    except CodecError as exc:
        raise RtpError(f"unusable avcC in the H.264 track: {exc}") from exc
    return record.sps, record.pps


class H264Codec:
    name = "h264"
    encodings: tuple[str, ...] = ("H264",)
    kind: Kind = "video"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        fmtp = {"packetization-mode": "1"}
        sps, pps = _avcc_params(track)
        if sps and len(sps[0]) >= 4:
            fmtp["profile-level-id"] = sps[0][1:4].hex()
        if sps or pps:
            fmtp["sprop-parameter-sets"] = encode_sprop(sps + pps)
        return SdpFormat("H264", 90000, None, fmtp)

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        fmtp = lower_keys(fmt.fmtp)
        mode = fmtp.get("packetization-mode", "0")
        if mode not in ("0", "1"):
            raise RtpError(f"H.264 packetization-mode {mode} is not supported")
        track = Track("video", "h264")
        units = decode_sprop(fmtp.get("sprop-parameter-sets", ""))
        sps = [unit for unit in units if unit[0] & 0x1F == h264.NAL_SPS]
        pps = [unit for unit in units if unit[0] & 0x1F == h264.NAL_PPS]
        if not sps:
            return track
        try:
            info = h264.parse_sps(sps[0])
            config = h264.make_avcc_record(sps, pps) if pps else b""
        except CodecError as exc:
            raise RtpError(f"unusable H.264 sprop-parameter-sets: {exc}") from exc
        return video_track(track, config, info.width, info.height)

    def packetizer(self, track: Track, mtu: int = 1400) -> H264Packetizer:
        sps, pps = _avcc_params(track)
        return H264Packetizer(sps + pps, mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> H264Depacketizer:
        sps, pps = _avcc_params(track)
        return H264Depacketizer(track, (tuple(sps), tuple(pps)))


CODEC = register(H264Codec())
