"""AV1 over RTP (the AOM "RTP Payload Format For AV1", aomediacodec.github.io/av1-rtp-spec).

A packet is a one-byte aggregation header (Z: the first element continues an OBU from the
previous packet, Y: the last one continues in the next, W: the element count when 1-3, N: the
first packet of a coded video sequence) and OBU elements, each prefixed by its LEB128 length
except the last when W is set. OBUs travel without their size field and without temporal
delimiters; the hub's form (ISOBMFF samples) has the size fields back and no delimiter, so
each direction converts. A temporal unit ends at the marker bit.

Chrome decides that a frame is a keyframe from the N bit alone, so the packetizer puts the
track's sequence header in front of every keyframe that lacks one and sets N there; the
receiving side trusts the bitstream instead (a KEY_FRAME header), not the N bit.
"""

from __future__ import annotations

from streamhive.codecs import CodecError, av1
from streamhive.formats.rtp import Access, RtpError, SdpFormat, register
from streamhive.formats.rtp.h264 import MAX_ACCESS_UNIT, lower_keys, video_track
from streamhive.hub.frame import Kind, Track

_Z = 0x80
_Y = 0x40
_N = 0x08
_MIN_MTU = 16
#: OBUs the RTP spec says to leave out: the packet framing replaces temporal delimiters; tile
#: lists belong to large-scale tile decoding only; padding is wasted bandwidth.
_DROPPED = frozenset({av1.OBU_TEMPORAL_DELIMITER, av1.OBU_TILE_LIST, av1.OBU_PADDING})
_FRAME_TYPES = frozenset({av1.OBU_FRAME, av1.OBU_FRAME_HEADER})


def _leb128_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _sequence_header(track: Track) -> av1.Obu | None:
    if not track.config:
        return None
    try:
        return av1.av1c_sequence_header(track.config)
    except CodecError as exc:
        raise RtpError(f"unusable av1C in the AV1 track: {exc}") from exc


class Av1Packetizer:
    """Temporal units to packets; the track's sequence header goes in front of keyframes."""

    __slots__ = ("mtu", "_sequence_header")

    def __init__(self, sequence_header: av1.Obu | None, mtu: int) -> None:
        if mtu < _MIN_MTU:
            raise RtpError(f"RTP payload size {mtu} is too small")
        self.mtu = mtu
        self._sequence_header = sequence_header

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        try:
            obus = av1.split_obus(units[0] if len(units) == 1 else b"".join(units))
        except CodecError as exc:
            raise RtpError(f"malformed AV1 temporal unit: {exc}") from exc
        elements = [obu.without_size() for obu in obus if obu.type not in _DROPPED]
        new_sequence = keyframe and any(obu.type == av1.OBU_SEQUENCE_HEADER for obu in obus)
        if keyframe and not new_sequence and self._sequence_header is not None:
            elements.insert(0, self._sequence_header.without_size())
            new_sequence = True
        return self._pack(elements, new_sequence)

    def _pack(self, elements: list[bytes], new_sequence: bool) -> list[tuple[bytes, bool]]:
        """Fill packets greedily, cutting an OBU wherever a packet is full.

        Room is counted with every element length-prefixed; a packet of 1-3 elements then
        drops its last prefix (W), which only makes it smaller.
        """
        out: list[tuple[bytes, bool]] = []
        packet: list[bytes] = []
        used = 1  # the aggregation header
        continues = False  # the packet being filled starts with the rest of an OBU
        for element in elements:
            pos = 0
            size = len(element)
            while True:
                rest = size - pos
                room = self.mtu - used
                if _leb128_size(rest) + rest <= room:
                    packet.append(element[pos:] if pos else element)
                    used += _leb128_size(rest) + rest
                    break
                take = room - _leb128_size(room)
                cut = take > 0
                if cut:
                    packet.append(element[pos : pos + take])
                    pos += take
                out.append((self._packet(packet, continues, cut, new_sequence and not out), False))
                continues = cut
                packet = []
                used = 1
        if packet:
            out.append((self._packet(packet, continues, False, new_sequence and not out), False))
        if out:
            out[-1] = (out[-1][0], True)
        return out

    @staticmethod
    def _packet(elements: list[bytes], continues: bool, continued: bool, new_sequence: bool) -> bytes:
        count = len(elements) if len(elements) <= 3 else 0
        header = (
            (_Z if continues else 0) | (_Y if continued else 0) | count << 4 | (_N if new_sequence else 0)
        )
        parts = [bytes((header,))]
        for i, element in enumerate(elements):
            if i + 1 != count:  # with W set, the last element has no length
                parts.append(av1.leb128(len(element)))
            parts.append(element)
        return b"".join(parts)


def parse_payload(payload: bytes) -> tuple[list[bytes], bool, bool]:
    """(OBU elements, Z, Y) of one packet; RtpError when a length overruns it."""
    if not payload:
        raise RtpError("empty AV1 RTP payload")
    header = payload[0]
    count = (header >> 4) & 0x03
    elements = []
    pos = 1
    end = len(payload)
    while pos < end:
        if len(elements) + 1 == count:
            elements.append(payload[pos:])
            break
        try:
            size, pos = av1.read_leb128(payload, pos)
        except CodecError as exc:
            raise RtpError(f"AV1 OBU element length: {exc}") from exc
        if pos + size > end:
            raise RtpError(f"AV1 OBU element of {size} bytes overruns its packet")
        elements.append(payload[pos : pos + size])
        pos += size
    if count and len(elements) + 1 == count and pos >= end:
        elements.append(b"")  # an empty last element: legal, if useless, when W is set
    if count and len(elements) != count:
        raise RtpError(f"AV1 aggregation header says {count} OBU elements, the packet has {len(elements)}")
    return elements, header & _Z != 0, header & _Y != 0


class Av1Depacketizer:
    """Rebuilds temporal units; nothing reaches the hub before a keyframe with a known sequence
    header, nor after a loss until the next keyframe."""

    __slots__ = (
        "_track",
        "_sequence",
        "_reduced",
        "_pending",
        "_ts",
        "_obus",
        "_fragment",
        "_size",
        "_dropping",
        "_need_keyframe",
    )

    def __init__(self, track: Track) -> None:
        self._track = track
        header = _sequence_header(track)
        self._sequence = header.payload if header is not None else None
        self._reduced = False
        if header is not None:
            try:
                self._reduced = av1.parse_sequence_header(header.payload).reduced_still_picture_header
            except CodecError as exc:
                raise RtpError(f"unusable AV1 sequence header in the track: {exc}") from exc
        self._pending: Track | None = None
        self._ts: int | None = None
        self._obus: list[bytes] = []  # complete OBU elements of the temporal unit being built
        self._fragment: list[bytes] | None = None  # pieces of an OBU cut across packets
        self._size = 0
        self._dropping = False
        self._need_keyframe = True

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        elements, continues, continued = parse_payload(payload)
        out: list[Access] = []
        self._size += len(payload)
        if self._size > MAX_ACCESS_UNIT and not self._dropping:
            self.lost()
            raise RtpError(f"AV1 temporal unit over {MAX_ACCESS_UNIT} bytes")
        if timestamp != self._ts:
            if self._ts is not None:
                self._finish(out, self._ts)
            self._ts = timestamp
            self._dropping = False
        if not self._dropping:
            self._add(elements, continues, continued)
        if marker:
            self._finish(out, timestamp)
            self._ts = None
        return out

    def lost(self) -> None:
        self._obus = []
        self._fragment = None
        self._size = 0
        self._dropping = True
        self._need_keyframe = True

    def _add(self, elements: list[bytes], continues: bool, continued: bool) -> None:
        first = 0
        if continues != (self._fragment is not None):
            self.lost()  # the start or the end of a cut OBU went missing
            return
        fragment = self._fragment
        if fragment is not None and elements:
            fragment.append(elements[0])
            first = 1
            if len(elements) > 1 or not continued:
                self._obus.append(b"".join(fragment))
                self._fragment = None
        last = len(elements) - 1
        for i in range(first, len(elements)):
            if i == last and continued:
                self._fragment = [elements[i]]
            else:
                self._obus.append(elements[i])

    def _finish(self, out: list[Access], timestamp: int) -> None:
        elements = self._obus
        self._obus = []
        self._size = 0
        if self._fragment is not None:  # the temporal unit ended inside a cut OBU
            self._fragment = None
            self._need_keyframe = True
            return
        if self._dropping or not elements:
            return
        try:
            access = self._temporal_unit(elements, timestamp)
        except CodecError:
            self._need_keyframe = True  # corrupt: let the next keyframe restart the decoder
            return
        if access is not None:
            out.append(access)

    def _temporal_unit(self, elements: list[bytes], timestamp: int) -> Access | None:
        obus = [av1.parse_obu(element) for element in elements]
        obus = [obu for obu in obus if obu.type not in _DROPPED]
        if not obus:
            return None
        keyframe = False
        for obu in obus:
            if obu.type == av1.OBU_SEQUENCE_HEADER:
                self._new_sequence(obu)
            elif obu.type in _FRAME_TYPES:
                keyframe = av1.frame_type(obu.payload, self._reduced) == av1.KEY_FRAME
                break
        if self._need_keyframe:
            if not keyframe or self._sequence is None:
                return None
            self._need_keyframe = False
        track = self._pending
        self._pending = None
        return Access(timestamp, (b"".join(obu.with_size() for obu in obus),), keyframe, track)

    def _new_sequence(self, obu: av1.Obu) -> None:
        if obu.payload == self._sequence:
            return
        seq = av1.parse_sequence_header(obu.payload)
        self._sequence = obu.payload
        self._reduced = seq.reduced_still_picture_header
        self._track = self._pending = video_track(
            self._track, av1.make_av1c_record(obu.with_size()), seq.width, seq.height
        )


class Av1Codec:
    name = "av1"
    encodings: tuple[str, ...] = ("AV1",)
    kind: Kind = "video"
    static_payload_type: int | None = None

    def sdp_format(self, track: Track) -> SdpFormat:
        """The profile is the track's; level-idx 5 and tier 0 are what Chrome and aiortc offer.

        Chrome matches AV1 formats on the profile only and decodes any level, while an
        answer naming a level above the offer's could be refused, so the level stays fixed.
        """
        profile = track.config[1] >> 5 if len(track.config) >= 4 else 0
        return SdpFormat("AV1", 90000, None, {"profile": str(profile), "level-idx": "5", "tier": "0"})

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        """The sequence header is in-band only: the first keyframe reports it (Access.track)."""
        if fmt.clock_rate != 90000:
            raise RtpError(f"AV1 RTP clock must be 90000, not {fmt.clock_rate}")
        profile = lower_keys(fmt.fmtp).get("profile", "0")
        if profile not in ("0", "1", "2"):
            raise RtpError(f"AV1 profile {profile[:20]!r} is not supported")
        return Track("video", "av1")

    def packetizer(self, track: Track, mtu: int = 1400) -> Av1Packetizer:
        return Av1Packetizer(_sequence_header(track), mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> Av1Depacketizer:
        return Av1Depacketizer(track)


CODEC = register(Av1Codec())
