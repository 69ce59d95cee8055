"""AAC over RTP: RFC 3640 mpeg4-generic (AAC-hbr, AAC-lbr) and RFC 6416 MP4A-LATM.

Cameras, ffmpeg and most RTSP servers send mpeg4-generic; some encoders and 3GPP devices send
LATM. Both end as the hub's canonical AAC (one raw frame per Frame, the AudioSpecificConfig in
the Track), so readers never see which one a publisher used. We send mpeg4-generic AAC-hbr only:
every RTSP player and WebRTC gateway that takes AAC reads it.

A packet may carry several AUs (access units, raw AAC frames); only the first has the packet's
timestamp, the others follow one frame duration apart, so the depacketizers need the frame
length (1024, 960 or 512/480 samples) from the config and the RTP clock to core rate ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...codecs import CodecError
from ...codecs import aac as aac_codec
from ...codecs.bits import BitReader
from ...hub.frame import Kind, Track
from . import Access, RtpError, SdpFormat, register

#: Bytes a fragmented AU or audioMuxElement may grow to before we call it garbage.
_MAX_BUFFER = 1 << 16
#: AU-size is 13 bits in AAC-hbr, the only mode we send.
_HBR_MAX_AU = (1 << 13) - 1
#: (sizelength, indexlength, indexdeltalength) implied by RFC 3640's AAC modes.
_MODE_LENGTHS = {"aac-hbr": (13, 3, 3), "aac-lbr": (6, 2, 2), "generic": (0, 0, 0)}
#: Object types whose payload is AAC (ISO 14496-3 table 1.1): main, LC, SSR, LTP, scalable, their
#: error-resilient forms, BSAC, LD and ELD; not TwinVQ, CELP, HVXC and the like.
_AAC_TYPES = frozenset((1, 2, 3, 4, 6, 17, 19, 20, 22, 23, 39))
#: Object types configured by GASpecificConfig (whose first bit is frameLengthFlag).
_GA_TYPES = frozenset((1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23))
_ER_TYPES = frozenset((*range(17, 28), 39))
_SYNC_SBR = 0x2B7  # syncExtensionType of backward-compatible SBR signalling
_SYNC_PS = 0x548


def _fmtp(fmt: SdpFormat) -> dict[str, str]:
    return {key.strip().lower(): value.strip() for key, value in fmt.fmtp.items()}


def _int_param(fmtp: dict[str, str], key: str, default: int) -> int:
    text = fmtp.get(key)
    if text is None:
        return default
    if not text.isdigit() or int(text) > 32:
        raise RtpError(f"fmtp {key}={text!r} is not a bit length from 0 to 32")
    return int(text)


def _hex_param(fmtp: dict[str, str], what: str) -> bytes:
    text = fmtp.get("config")
    if not text:
        raise RtpError(f"{what} without fmtp config")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RtpError(f"{what} fmtp config {text[:40]!r} is not hex") from None


# --- AudioSpecificConfig details the hub parser does not need -------------------------------


class _Bits(BitReader):
    """A BitReader that can look ahead and copy out what it read (an ASC embedded in LATM)."""

    __slots__ = ()

    @property
    def pos(self) -> int:
        return self._pos

    def peek(self, n: int) -> int:
        """The next ``n`` bits without consuming them (the caller checked bits_left)."""
        return (self._value >> (self._total - self._pos - n)) & ((1 << n) - 1)

    def copy_from(self, start: int) -> bytes:
        """Bits from ``start`` to the current position, as bytes padded with zero bits."""
        n = self._pos - start
        value = (self._value >> (self._total - self._pos)) & ((1 << n) - 1)
        pad = -n % 8
        return (value << pad).to_bytes((n + pad) // 8, "big")


def _object_type(r: BitReader) -> int:
    aot = r.u(5)
    return 32 + r.u(6) if aot == 31 else aot


def _skip_rate(r: BitReader) -> None:
    if r.u(4) == 15:
        r.skip(24)


def _asc_head(r: BitReader) -> tuple[int, int]:
    """Read up to the object-specific config: (core object type, channelConfiguration)."""
    aot = _object_type(r)
    _skip_rate(r)
    channel_config = r.u(4)
    if aot in (5, 29):  # explicit SBR/PS: extension rate, then the core object type
        _skip_rate(r)
        aot = _object_type(r)
        if aot == 22:
            r.skip(4)  # extensionChannelConfiguration
    return aot, channel_config


def _frame_length(aot: int, short_frames: int) -> int:
    """Core samples per AU: LD and ELD use 512 (480), every other AAC 1024 (960)."""
    if aot in (23, 39):
        return 480 if short_frames else 512
    return 960 if short_frames else 1024


def _frame_step(asc: bytes, clock_rate: int) -> int:
    """RTP ticks between consecutive AUs: the frame length, scaled when the RTP clock is not
    the core rate (HE-AAC is often clocked at its output rate, twice the core rate)."""
    try:
        r = BitReader(asc)
        aot, _ = _asc_head(r)
        length = _frame_length(aot, r.u(1) if aot in _GA_TYPES or aot == 39 else 0)
        core_rate = aac_codec.parse_audio_specific_config(asc).sample_rate
    except CodecError as exc:
        raise RtpError(f"bad AudioSpecificConfig: {exc}") from None
    return max(1, length * clock_rate // core_rate)


def _skip_asc_body(r: _Bits, aot: int, channel_config: int) -> None:
    """Skip GASpecificConfig, epConfig and a backward-compatible SBR/PS extension.

    LATM version 0 embeds the ASC without its length, so its end is only known by parsing it
    (ISO 14496-3 1.6.2.1, 4.4.1); configs with a program_config_element are not supported.
    """
    if aot not in _GA_TYPES:
        raise RtpError(f"LATM with audio object type {aot} is not supported")
    r.skip(1)  # frameLengthFlag
    if r.u(1):  # dependsOnCoreCoder
        r.skip(14)  # coreCoderDelay
    extension = r.u(1)
    if channel_config == 0:
        raise RtpError("LATM config with a program_config_element is not supported")
    if aot in (6, 20):
        r.skip(3)  # layerNr
    if extension:
        if aot == 22:
            r.skip(16)  # numOfSubFrame, layer_length
        if aot in (17, 19, 20, 23):
            r.skip(3)  # the three resilience flags
        r.skip(1)  # extensionFlag3
    if aot in _ER_TYPES and r.u(2) > 1:
        raise RtpError("AAC error protection (epConfig 2, 3) is not supported")
    if r.bits_left >= 16 and r.peek(11) == _SYNC_SBR:
        r.skip(11)
        extension_type = _object_type(r)
        if extension_type not in (5, 22):
            raise RtpError(f"unknown AAC sync extension object type {extension_type}")
        if extension_type == 22:
            if r.u(1):  # sbrPresentFlag
                _skip_rate(r)
            r.skip(4)  # extensionChannelConfiguration
        elif r.u(1):  # sbrPresentFlag
            _skip_rate(r)
            if r.bits_left >= 12 and r.peek(11) == _SYNC_PS:
                r.skip(12)  # syncExtensionType, psPresentFlag


def _track(asc: bytes, channels: int | None) -> Track:
    """The hub Track for an ASC; refuses configs that are not AAC (CELP, HVXC, ALS ...)."""
    try:
        info = aac_codec.parse_audio_specific_config(asc)
    except CodecError as exc:
        raise RtpError(f"bad AudioSpecificConfig: {exc}") from None
    if info.object_type not in _AAC_TYPES:
        raise RtpError(f"audio object type {info.object_type} is not AAC")
    return Track(
        "audio", "aac", asc, sample_rate=info.output_sample_rate, channels=info.channels or channels or 1
    )


# --- RFC 3640 mpeg4-generic -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AuHeaders:
    """The AU-header fields an SDP announces (RFC 3640 section 3.2.1), lengths in bits."""

    size: int
    index: int
    delta: int
    cts: int = 0
    dts: int = 0
    rap: int = 0
    state: int = 0
    aux: int = 0

    @classmethod
    def from_fmtp(cls, fmtp: dict[str, str]) -> _AuHeaders:
        mode = fmtp.get("mode", "").lower()
        size, index, delta = _MODE_LENGTHS.get(mode, (0, 0, 0))
        headers = cls(
            _int_param(fmtp, "sizelength", size),
            _int_param(fmtp, "indexlength", index),
            _int_param(fmtp, "indexdeltalength", delta),
            _int_param(fmtp, "ctsdeltalength", 0),
            _int_param(fmtp, "dtsdeltalength", 0),
            1 if fmtp.get("randomaccessindication") == "1" else 0,
            _int_param(fmtp, "streamstateindication", 0),
            _int_param(fmtp, "auxiliarydatasizelength", 0),
        )
        if not headers.size:
            raise RtpError("mpeg4-generic without sizelength (constant-size AUs) is not supported")
        return headers

    @property
    def plain(self) -> bool:
        """Every AU-header is AU-size + index of one width (AAC-hbr, AAC-lbr): no BitReader."""
        return self.index == self.delta and not (self.cts or self.dts or self.rap or self.state)


class _GenericDepacketizer:
    """mpeg4-generic: AU-header section, optional auxiliary section, then the AUs.

    An AU larger than a packet comes as fragments with one AU-header each, giving the whole
    AU's size, all with the same timestamp and the marker on the last.
    """

    __slots__ = ("headers", "step", "_plain", "_pending", "_pending_ts", "_pending_size")

    def __init__(self, headers: _AuHeaders, step: int) -> None:
        self.headers = headers
        self.step = step
        self._plain = headers.plain
        self._pending = bytearray()
        self._pending_ts = 0
        self._pending_size = 0

    def lost(self) -> None:
        self._pending.clear()

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        if len(payload) < 2:
            raise RtpError("mpeg4-generic payload shorter than its AU-headers-length")
        header_bits = (payload[0] << 8) | payload[1]
        start = 2 + ((header_bits + 7) >> 3)
        if not header_bits or start > len(payload):
            raise RtpError(f"mpeg4-generic AU-headers-length {header_bits} does not fit the packet")
        section = payload[2:start]
        try:
            sizes = (
                self._sizes_plain(section, header_bits) if self._plain else self._sizes(section, header_bits)
            )
        except CodecError:
            raise RtpError("mpeg4-generic AU-header section is truncated") from None
        if self.headers.aux:
            start = self._skip_auxiliary(payload, start)
        data = payload[start:]
        pending = self._pending
        if len(sizes) == 1 and (
            sizes[0] > len(data)
            or (pending and timestamp == self._pending_ts and sizes[0] == self._pending_size)
        ):
            return self._fragment(data, sizes[0], timestamp)
        pending.clear()  # a fragmented AU whose last fragment was lost
        if sum(sizes) > len(data):
            raise RtpError(f"mpeg4-generic AUs of {sum(sizes)} bytes in a {len(data)}-byte payload")
        out = []
        pos = 0
        step = self.step
        for i, size in enumerate(sizes):
            if size:
                out.append(Access((timestamp + i * step) & 0xFFFFFFFF, (data[pos : pos + size],), True))
            pos += size
        return out

    def _sizes_plain(self, section: bytes, header_bits: int) -> list[int]:
        size_bits, index_bits = self.headers.size, self.headers.index
        width = size_bits + index_bits
        value = int.from_bytes(section, "big") >> (len(section) * 8 - header_bits)
        if header_bits == width:  # one AU: the common case
            return [value >> index_bits]
        if header_bits % width:
            raise RtpError(f"mpeg4-generic AU-headers-length {header_bits} is not a multiple of {width}")
        index_mask = (1 << index_bits) - 1
        size_mask = (1 << size_bits) - 1
        sizes = [value >> (header_bits - size_bits)]
        for shift in range(header_bits - 2 * width, -1, -width):
            header = value >> shift
            if header & index_mask:
                raise RtpError("interleaved mpeg4-generic (AU-Index-delta > 0) is not supported")
            sizes.append((header >> index_bits) & size_mask)
        return sizes

    def _sizes(self, section: bytes, header_bits: int) -> list[int]:
        """AU sizes from headers with CTS/DTS deltas, RAP flags or stream states (skipped)."""
        h = self.headers
        r = BitReader(section)
        end = r.bits_left - header_bits  # what is left once the headers are read: padding
        sizes: list[int] = []
        while r.bits_left > end:
            size = r.u(h.size)
            if r.u(h.delta if sizes else h.index) and sizes:
                raise RtpError("interleaved mpeg4-generic (AU-Index-delta > 0) is not supported")
            for length in (h.cts, h.dts):
                if length and r.flag():
                    r.skip(length)
            r.skip(h.rap + h.state)
            sizes.append(size)
        if r.bits_left != end:
            raise RtpError("mpeg4-generic AU-headers-length does not end on an AU-header")
        return sizes

    def _skip_auxiliary(self, payload: bytes, start: int) -> int:
        try:
            r = BitReader(payload[start : start + 4])
            aux_bits = r.u(self.headers.aux)
        except CodecError:
            raise RtpError("mpeg4-generic auxiliary section is truncated") from None
        end = start + ((self.headers.aux + aux_bits + 7) >> 3)
        if end > len(payload):
            raise RtpError("mpeg4-generic auxiliary section overruns the packet")
        return end

    def _fragment(self, data: bytes, size: int, timestamp: int) -> list[Access]:
        if size > _MAX_BUFFER:
            raise RtpError(f"mpeg4-generic AU of {size} bytes exceeds the buffer limit")
        pending = self._pending
        if not pending or timestamp != self._pending_ts or size != self._pending_size:
            pending.clear()
            self._pending_ts, self._pending_size = timestamp, size
        pending += data
        if len(pending) < size:
            return []
        au = bytes(pending)
        pending.clear()
        if len(au) > size:
            raise RtpError(f"mpeg4-generic fragments add up to {len(au)} bytes, not {size}")
        return [Access(timestamp, (au,), True)]


class _HbrPacketizer:
    """One AU per packet (AU-headers-length 16, 13-bit size, index 0), fragmented past the MTU."""

    __slots__ = ("room",)

    def __init__(self, mtu: int) -> None:
        self.room = mtu - 4
        if self.room < 1:
            raise RtpError(f"MTU {mtu} leaves no room for AAC")

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        au = units[0] if len(units) == 1 else b"".join(units)
        size = len(au)
        if size > _HBR_MAX_AU:
            raise RtpError(f"AAC frame of {size} bytes exceeds AAC-hbr's 13-bit AU-size")
        head = bytes((0, 16, size >> 5, (size & 0x1F) << 3))
        room = self.room
        if size <= room:
            return [(head + au, True)]
        return [(head + au[i : i + room], i + room >= size) for i in range(0, size, room)]


# --- RFC 6416 MP4A-LATM ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MuxConfig:
    """What a StreamMuxConfig says about the audioMuxElements that follow it."""

    asc: bytes
    subframes: int  # numSubFrames + 1: AUs per audioMuxElement
    other_bits: int  # otherDataLenBits after the payloads


def _latm_value(r: BitReader) -> int:
    value = 0
    for _ in range(r.u(2) + 1):
        value = (value << 8) | r.u(8)
    return value


def _stream_mux_config(r: _Bits) -> _MuxConfig:
    """Parse a StreamMuxConfig (ISO 14496-3 1.7.3) with one program and one layer."""
    version = r.u(1)
    if version and r.u(1):
        raise RtpError("LATM audioMuxVersionA 1 is not supported")
    if version:
        _latm_value(r)  # taraBufferFullness
    r.skip(1)  # allStreamsSameTimeFraming: moot with one layer
    subframes = r.u(6) + 1
    if r.u(4) or r.u(3):
        raise RtpError("LATM with several programs or layers is not supported")
    if version:
        length = _latm_value(r)
        if length > r.bits_left:
            raise RtpError("LATM AudioSpecificConfig length overruns the config")
        start = r.pos
        r.skip(length)
        asc = r.copy_from(start)
    else:
        start = r.pos
        aot, channel_config = _asc_head(r)
        _skip_asc_body(r, aot, channel_config)
        asc = r.copy_from(start)
    frame_length_type = r.u(3)
    if frame_length_type:
        raise RtpError(f"LATM frameLengthType {frame_length_type} is not supported (AAC uses 0)")
    r.skip(8)  # latmBufferFullness
    other_bits = 0
    if r.u(1):  # otherDataPresent
        if version:
            other_bits = _latm_value(r)
        else:
            more = True
            while more:
                more = r.flag()
                other_bits = (other_bits << 8) | r.u(8)
    if r.u(1):  # crcCheckPresent
        r.skip(8)
    return _MuxConfig(asc, subframes, other_bits)


def _parse_mux_config(config: bytes) -> _MuxConfig:
    try:
        return _stream_mux_config(_Bits(config))
    except CodecError:
        raise RtpError("LATM StreamMuxConfig is truncated") from None


class _LatmDepacketizer:
    """MP4A-LATM: audioMuxElements, possibly several per packet or one over several packets.

    With cpresent=0 the StreamMuxConfig comes from SDP and every element is byte-aligned
    PayloadLengthInfo/PayloadMux pairs; with cpresent=1 elements may carry a new config in band
    and are bit-aligned, so they go through a bit reader.
    """

    __slots__ = (
        "clock_rate",
        "inband",
        "config",
        "step",
        "_asc",
        "_new_track",
        "_pending",
        "_pending_ts",
        "_broken",
    )

    def __init__(self, track: Track, fmt: SdpFormat, config: _MuxConfig | None, inband: bool) -> None:
        self.clock_rate = fmt.clock_rate
        self.inband = inband
        self.config: _MuxConfig | None = None
        self.step = 1024
        self._asc = track.config
        self._new_track: Track | None = None
        self._pending = bytearray()
        self._pending_ts = 0
        self._broken = False  # the element at _pending_ts lost a fragment: skip its rest
        if config is not None:
            self._use(config)

    def lost(self) -> None:
        """Drop a partial element, and its remaining fragments: LATM has no fragment headers,
        so a tail on its own would parse as a (garbage) element."""
        if self._pending:
            self._pending.clear()
            self._broken = True

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        pending = self._pending
        if timestamp != self._pending_ts:
            pending.clear()  # a new element; if one was pending, its last fragment was lost
            self._pending_ts = timestamp
            self._broken = False
        elif self._broken:
            return []
        if not marker:
            pending += payload
            if len(pending) > _MAX_BUFFER:
                self.lost()
                raise RtpError("LATM audioMuxElement fragments exceed the buffer limit")
            return []
        if pending:
            pending += payload
            payload = bytes(pending)
            pending.clear()
        try:
            units = self._inband(payload) if self.inband else self._aligned(payload)
        except CodecError:
            raise RtpError("LATM audioMuxElement is truncated") from None
        step = self.step
        out = [
            Access((timestamp + i * step) & 0xFFFFFFFF, (unit,), True) for i, unit in enumerate(units) if unit
        ]
        if out and self._new_track is not None:
            out[0].track, self._new_track = self._new_track, None
        return out

    def _use(self, config: _MuxConfig) -> None:
        if config == self.config:
            return
        self.config = config
        self.step = _frame_step(config.asc, self.clock_rate)
        if config.asc != self._asc:
            self._asc = config.asc
            self._new_track = _track(config.asc, None)

    def _aligned(self, data: bytes) -> list[bytes]:
        config = self.config
        if config is None:
            raise RtpError("LATM element before any StreamMuxConfig")
        other, odd = divmod(config.other_bits, 8)
        if odd:
            raise RtpError("LATM other data that is not whole bytes needs cpresent=1 parsing")
        units = []
        pos, end = 0, len(data)
        while pos < end:
            for _ in range(config.subframes):
                size = 0
                while True:
                    if pos >= end:
                        raise RtpError("LATM PayloadLengthInfo is truncated")
                    byte = data[pos]
                    pos += 1
                    size += byte
                    if byte != 255:
                        break
                if pos + size > end:
                    raise RtpError(f"LATM payload of {size} bytes overruns the packet")
                units.append(data[pos : pos + size])
                pos += size
            pos += other
        return units

    def _inband(self, data: bytes) -> list[bytes]:
        r = _Bits(data)
        units = []
        while r.bits_left >= 8:
            if not r.u(1):  # useSameStreamMux
                self._use(_stream_mux_config(r))
            config = self.config
            if config is None:
                raise RtpError("LATM element reuses a StreamMuxConfig it never received")
            for _ in range(config.subframes):
                size = 0
                while True:
                    byte = r.u(8)
                    size += byte
                    if byte != 255:
                        break
                units.append(r.u(8 * size).to_bytes(size, "big"))
            r.skip(config.other_bits + (-(r.pos + config.other_bits) % 8))
        return units


# --- the codec ------------------------------------------------------------------------------


class AacCodec:
    """AAC in mpeg4-generic (RFC 3640) or MP4A-LATM (RFC 6416); sends mpeg4-generic AAC-hbr."""

    name = "aac"
    encodings: tuple[str, ...] = ("MPEG4-GENERIC", "MP4A-LATM")
    kind: Kind = "audio"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        if not track.config:
            raise RtpError("AAC track has no AudioSpecificConfig to announce")
        try:
            info = aac_codec.parse_audio_specific_config(track.config)
        except CodecError as exc:
            raise RtpError(f"bad AudioSpecificConfig: {exc}") from None
        fmtp = {
            "streamtype": "5",
            "profile-level-id": "1",
            "mode": "AAC-hbr",
            "sizelength": "13",
            "indexlength": "3",
            "indexdeltalength": "3",
            "config": track.config.hex(),
        }
        rate = track.sample_rate or info.output_sample_rate
        return SdpFormat("mpeg4-generic", rate, track.channels or info.channels or 1, fmtp)

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        if fmt.clock_rate <= 0:
            raise RtpError(f"AAC clock rate {fmt.clock_rate} is not usable")
        fmtp = _fmtp(fmt)
        if fmt.encoding.upper() == "MP4A-LATM":
            config = self._latm_config(fmtp)
            if config is None:  # cpresent=1 without a config: it comes in band (Access.track)
                return Track("audio", "aac", sample_rate=fmt.clock_rate, channels=fmt.channels or 1)
            track = _track(config.asc, fmt.channels)
        else:
            _AuHeaders.from_fmtp(fmtp)
            track = _track(_hex_param(fmtp, "mpeg4-generic"), fmt.channels)
        _frame_step(track.config, fmt.clock_rate)
        return track

    def packetizer(self, track: Track, mtu: int = 1400) -> _HbrPacketizer:
        return _HbrPacketizer(mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> _GenericDepacketizer | _LatmDepacketizer:
        fmtp = _fmtp(fmt)
        if fmt.encoding.upper() == "MP4A-LATM":
            inband = fmtp.get("cpresent", "1") != "0"
            return _LatmDepacketizer(track, fmt, self._latm_config(fmtp), inband)
        return _GenericDepacketizer(_AuHeaders.from_fmtp(fmtp), _frame_step(track.config, fmt.clock_rate))

    @staticmethod
    def _latm_config(fmtp: dict[str, str]) -> _MuxConfig | None:
        """The StreamMuxConfig from fmtp ``config``; required when cpresent=0 (default 1)."""
        if "config" not in fmtp and fmtp.get("cpresent", "1") != "0":
            return None
        return _parse_mux_config(_hex_param(fmtp, "MP4A-LATM with cpresent=0"))


AAC = register(AacCodec())
