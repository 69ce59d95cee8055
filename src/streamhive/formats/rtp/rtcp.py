"""RTCP (RFC 3550 section 6): reports, SDES, BYE, receiver statistics, and WebRTC's feedback.

RTCP runs a few packets a second per stream, so clarity wins over speed here; what matters is
that a compound packet from anyone is either fully understood or refused with RtpError, and
that types we do not model (APP, XR, other feedback) come through intact for other layers.

The feedback messages WebRTC uses (RFC 4585 with RFC 5104 and REMB) are modelled: generic NACK,
PLI, FIR, REMB, and transport-wide congestion control, whose body stays opaque here (the
bandwidth estimator that reads it owns its format).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from streamhive.formats.rtp import RtpError

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_RTPFB = 205  # transport layer feedback (RFC 4585)
PT_PSFB = 206  # payload-specific feedback (RFC 4585)

FMT_NACK = 1  # RTPFB
FMT_TRANSPORT_CC = 15  # RTPFB, draft-holmer-rmcat-transport-wide-cc-extensions
FMT_PLI = 1  # PSFB
FMT_FIR = 4  # PSFB, RFC 5104
FMT_AFB = 15  # PSFB application layer feedback; REMB is one

SDES_CNAME = 1

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800

_HEADER = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_MAX_COUNT = 31


def unix_to_ntp(seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time."""
    return round((seconds + NTP_UNIX_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def ntp_now() -> int:
    """The wall clock as NTP, for the adapter that sends SRs (cores take time as an argument)."""
    return unix_to_ntp(time.time())


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR echoes back to the sender."""
    return (ntp >> 16) & 0xFFFFFFFF


def _header(count: int, packet_type: int, body_size: int) -> bytes:
    if count > _MAX_COUNT:
        raise RtpError(f"an RTCP packet holds at most {_MAX_COUNT} items, not {count}")
    return _HEADER.pack(0x80 | count, packet_type, body_size // 4)


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


@dataclass(slots=True, frozen=True)
class ReportBlock:
    """Reception quality for one source (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # lost fraction since the last report, times 256
    cumulative_lost: int  # signed 24-bit: duplicates can make it negative
    highest_sequence: int  # extended: wrap cycles in the high 16 bits
    jitter: int  # interarrival jitter, in RTP timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP time; 0 before any SR
    dlsr: int  # delay since that SR, in 1/65536 s

    def serialize(self) -> bytes:
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtpError(f"cumulative lost {self.cumulative_lost} does not fit 24 signed bits")
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    return b"".join(block.serialize() for block in reports)


def _parse_blocks(body: bytes, pos: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > len(body):
        raise RtpError(f"{what} with {count} report blocks overruns its {len(body) + 4}-byte packet")
    return tuple(ReportBlock.parse(body, pos + 24 * i) for i in range(count))


@dataclass(slots=True, frozen=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time of rtp_timestamp
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body = info + _blocks(self.reports)
        return _header(len(self.reports), PT_SR, len(body)) + body

    @classmethod
    def parse(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < _SENDER_INFO.size:
            raise RtpError(f"SR of {len(body) + 4} bytes is shorter than its sender info")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(body)
        return cls(ssrc, ntp, rtp, packets, octets, _parse_blocks(body, _SENDER_INFO.size, count, "SR"))


@dataclass(slots=True, frozen=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = _U32.pack(self.ssrc) + _blocks(self.reports)
        return _header(len(self.reports), PT_RR, len(body)) + body

    @classmethod
    def parse(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4:
            raise RtpError("RR without its sender SSRC")
        return cls(_U32.unpack_from(body)[0], _parse_blocks(body, 4, count, "RR"))


@dataclass(slots=True, frozen=True)
class SdesChunk:
    """The SDES items of one source, as (type, value) pairs in the order sent."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True, frozen=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        """The one SDES every compound report must carry (RFC 3550 section 6.1)."""
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode()),)),))

    def serialize(self) -> bytes:
        parts = []
        for chunk in self.chunks:
            items = [_U32.pack(chunk.ssrc)]
            for kind, value in chunk.items:
                if not 0 < kind < 256 or len(value) > 255:
                    raise RtpError(f"SDES item {kind} of {len(value)} bytes cannot be encoded")
                items.append(bytes((kind, len(value))) + value)
            items.append(b"\x00")  # the null item ends the list; _pad4 aligns the chunk
            parts.append(_pad4(b"".join(items)))
        body = b"".join(parts)
        return _header(len(self.chunks), PT_SDES, len(body)) + body

    @classmethod
    def parse(cls, count: int, body: bytes) -> SourceDescription:
        chunks = []
        pos = 0
        end = len(body)
        for _ in range(count):
            if pos + 4 > end:
                raise RtpError(f"SDES with {count} chunks overruns its packet")
            ssrc = _U32.unpack_from(body, pos)[0]
            pos += 4
            items = []
            while True:
                if pos >= end:
                    raise RtpError("SDES chunk lacks its terminating null item")
                kind = body[pos]
                if kind == 0:
                    pos = (pos + 4) & ~3  # the null item and the padding to 32 bits
                    break
                if pos + 2 > end or pos + 2 + body[pos + 1] > end:
                    raise RtpError("SDES item overruns its packet")
                stop = pos + 2 + body[pos + 1]
                items.append((kind, body[pos + 2 : stop]))
                pos = stop
            if pos > end:
                raise RtpError("SDES chunk padding overruns its packet")
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))


@dataclass(slots=True, frozen=True)
class Bye:
    sources: tuple[int, ...]
    reason: str = ""

    def serialize(self) -> bytes:
        body = b"".join(_U32.pack(ssrc) for ssrc in self.sources)
        if self.reason:
            text = self.reason.encode()
            if len(text) > 255:
                raise RtpError("BYE reason longer than 255 bytes")
            body += _pad4(bytes((len(text),)) + text)
        return _header(len(self.sources), PT_BYE, len(body)) + body

    @classmethod
    def parse(cls, count: int, body: bytes) -> Bye:
        pos = 4 * count
        if pos > len(body):
            raise RtpError(f"BYE with {count} sources overruns its packet")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = ""
        if pos < len(body):
            stop = pos + 1 + body[pos]
            if stop > len(body):
                raise RtpError("BYE reason overruns its packet")
            reason = body[pos + 1 : stop].decode("utf-8", "replace")
        return cls(sources, reason)


@dataclass(slots=True, frozen=True)
class OtherRtcp:
    """An RTCP packet this module does not model (APP, XR, feedback such as TMMBR or SLI ...).

    ``count`` is the header's 5-bit field (the FMT of feedback messages); ``body`` is what
    follows the 4-byte header, padding removed.
    """

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        if len(self.body) % 4:
            raise RtpError("RTCP packet body must be a multiple of 4 bytes")
        return _header(self.count, self.packet_type, len(self.body)) + self.body


_FEEDBACK = struct.Struct("!II")
_REMB_ID = b"REMB"
_REMB_MANTISSA_BITS = 18


def _feedback(packet_type: int, fmt: int, sender_ssrc: int, media_ssrc: int, fci: bytes) -> bytes:
    """A feedback packet (RFC 4585 6.1): the common header, both SSRCs, then its FCI."""
    body = _FEEDBACK.pack(sender_ssrc, media_ssrc) + fci
    return _header(fmt, packet_type, len(body)) + body


def _feedback_ssrcs(body: bytes, what: str) -> tuple[int, int]:
    if len(body) < _FEEDBACK.size:
        raise RtpError(f"{what} of {len(body) + 4} bytes is shorter than its two SSRCs")
    if len(body) % 4:
        raise RtpError(f"{what} body of {len(body)} bytes is not whole 32-bit words")
    sender, media = _FEEDBACK.unpack_from(body)
    return sender, media


def _circular_order(sequences: Iterable[int]) -> list[int]:
    """Distinct 16-bit sequence numbers oldest first, across the wrap.

    The oldest is the one after the widest gap between neighbours on the circle, which is right
    for any set spanning less than half the sequence space.
    """
    values = sorted({seq & 0xFFFF for seq in sequences})
    if len(values) < 2:
        return values
    widest, start = values[0] + 0x10000 - values[-1], 0
    for i in range(1, len(values)):
        if values[i] - values[i - 1] > widest:
            widest, start = values[i] - values[i - 1], i
    return values[start:] + values[:start]


@dataclass(slots=True, frozen=True)
class Nack:
    """Generic NACK (RFC 4585 6.2.1): the sequence numbers of ``media_ssrc`` to send again.

    ``lost`` may be built from any iterable (a list, say); it is kept as a tuple, oldest first
    across the wrap, and goes on the wire as PID/BLP pairs, each covering 17 numbers.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lost", tuple(_circular_order(self.lost)))

    def serialize(self) -> bytes:
        if not self.lost:
            raise RtpError("a NACK needs at least one sequence number")
        pairs = []
        pid = -1
        mask = 0
        for seq in self.lost:
            offset = (seq - pid) & 0xFFFF
            if pid >= 0 and 1 <= offset <= 16:
                mask |= 1 << (offset - 1)
                continue
            if pid >= 0:
                pairs.append(struct.pack("!HH", pid, mask))
            pid, mask = seq, 0
        pairs.append(struct.pack("!HH", pid, mask))
        return _feedback(PT_RTPFB, FMT_NACK, self.sender_ssrc, self.media_ssrc, b"".join(pairs))

    @classmethod
    def parse(cls, body: bytes) -> Nack:
        sender, media = _feedback_ssrcs(body, "NACK")
        lost = []
        for pos in range(_FEEDBACK.size, len(body), 4):
            pid, mask = struct.unpack_from("!HH", body, pos)
            lost.append(pid)
            lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if mask >> bit & 1)
        return cls(sender, media, tuple(lost))


@dataclass(slots=True, frozen=True)
class Pli:
    """Picture Loss Indication (RFC 4585 6.3.1): ``media_ssrc`` should send a keyframe."""

    sender_ssrc: int
    media_ssrc: int

    def serialize(self) -> bytes:
        return _feedback(PT_PSFB, FMT_PLI, self.sender_ssrc, self.media_ssrc, b"")

    @classmethod
    def parse(cls, body: bytes) -> Pli:
        return cls(*_feedback_ssrcs(body, "PLI"))


@dataclass(slots=True, frozen=True)
class Fir:
    """Full Intra Request (RFC 5104 4.3.1): (ssrc, command sequence number) per source asked.

    The sequence number grows by one per new request, so a sender can tell a repeat (of a
    request it already served) from a new one. The header's media SSRC is unused (zero).
    """

    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]

    def serialize(self) -> bytes:
        fci = b"".join(struct.pack("!IB3x", ssrc, seq & 0xFF) for ssrc, seq in self.entries)
        return _feedback(PT_PSFB, FMT_FIR, self.sender_ssrc, 0, fci)

    @classmethod
    def parse(cls, body: bytes) -> Fir:
        sender, _ = _feedback_ssrcs(body, "FIR")
        if (len(body) - _FEEDBACK.size) % 8:
            raise RtpError(f"FIR entries of {len(body) - _FEEDBACK.size} bytes are not whole 8-byte entries")
        entries = tuple((ssrc, seq) for ssrc, seq in struct.iter_unpack("!IB3x", body[_FEEDBACK.size :]))
        return cls(sender, entries)


@dataclass(slots=True, frozen=True)
class Remb:
    """Receiver Estimated Max Bitrate (draft-alvestrand-rmcat-remb): ``bitrate`` bits/s for
    the streams ``ssrcs``; on the wire an 18-bit mantissa and a 6-bit exponent, so large rates
    round down to 18 significant bits."""

    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ssrcs", tuple(self.ssrcs))

    def serialize(self) -> bytes:
        if len(self.ssrcs) > 255:
            raise RtpError(f"a REMB names at most 255 SSRCs, not {len(self.ssrcs)}")
        if self.bitrate < 0:
            raise RtpError(f"negative REMB bitrate {self.bitrate}")
        exponent = max(0, self.bitrate.bit_length() - _REMB_MANTISSA_BITS)
        if exponent > 63:
            raise RtpError(f"REMB bitrate {self.bitrate} does not fit 18 bits times 2^63")
        mantissa = self.bitrate >> exponent
        fci = _REMB_ID + struct.pack(
            "!BBH", len(self.ssrcs), exponent << 2 | mantissa >> 16, mantissa & 0xFFFF
        )
        fci += b"".join(_U32.pack(ssrc) for ssrc in self.ssrcs)
        return _feedback(PT_PSFB, FMT_AFB, self.sender_ssrc, 0, fci)

    @classmethod
    def parse(cls, body: bytes) -> Remb:
        sender, _ = _feedback_ssrcs(body, "REMB")
        if len(body) < 16:
            raise RtpError("REMB shorter than its bitrate field")
        count, exp_mantissa, low = struct.unpack_from("!BBH", body, 12)
        if 16 + 4 * count > len(body):
            raise RtpError(f"REMB with {count} SSRCs overruns its packet")
        bitrate = ((exp_mantissa & 0x03) << 16 | low) << (exp_mantissa >> 2)
        return cls(sender, bitrate, struct.unpack_from(f"!{count}I", body, 16))


@dataclass(slots=True, frozen=True)
class TransportCc:
    """Transport-wide congestion control feedback: who sent it, about which stream, and the
    feedback itself unparsed (its packet status chunks and deltas belong to the estimator)."""

    sender_ssrc: int
    media_ssrc: int
    fci: bytes

    def serialize(self) -> bytes:
        body = _FEEDBACK.pack(self.sender_ssrc, self.media_ssrc) + self.fci
        padding = -len(body) % 4
        if padding:  # libwebrtc pads this one with the P bit, which parse_compound strips
            body += bytes(padding - 1) + bytes((padding,))
        header = _header(FMT_TRANSPORT_CC, PT_RTPFB, len(body))
        return bytes((header[0] | 0x20,)) + header[1:] + body if padding else header + body

    @classmethod
    def parse(cls, body: bytes) -> TransportCc:
        if len(body) < _FEEDBACK.size:
            raise RtpError(f"transport-cc feedback of {len(body) + 4} bytes is shorter than its two SSRCs")
        sender, media = _FEEDBACK.unpack_from(body)
        return cls(sender, media, body[_FEEDBACK.size :])


Rtcp = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Bye
    | Nack
    | Pli
    | Fir
    | Remb
    | TransportCc
    | OtherRtcp
)


def _parse_rtpfb(count: int, body: bytes) -> Rtcp:
    if count == FMT_NACK:
        return Nack.parse(body)
    if count == FMT_TRANSPORT_CC:
        return TransportCc.parse(body)
    return OtherRtcp(PT_RTPFB, count, body)


def _parse_psfb(count: int, body: bytes) -> Rtcp:
    if count == FMT_PLI:
        return Pli.parse(body)
    if count == FMT_FIR:
        return Fir.parse(body)
    if count == FMT_AFB and body[8:12] == _REMB_ID:
        return Remb.parse(body)
    return OtherRtcp(PT_PSFB, count, body)


_PARSERS = {
    PT_SR: SenderReport.parse,
    PT_RR: ReceiverReport.parse,
    PT_SDES: SourceDescription.parse,
    PT_BYE: Bye.parse,
    PT_RTPFB: _parse_rtpfb,
    PT_PSFB: _parse_psfb,
}


def serialize_compound(packets: Iterable[Rtcp]) -> bytes:
    return b"".join(packet.serialize() for packet in packets)


def parse_compound(data: bytes) -> list[Rtcp]:
    """Parse every packet of a compound RTCP datagram; any inconsistency raises RtpError."""
    if not data:
        raise RtpError("empty RTCP datagram")
    out: list[Rtcp] = []
    pos = 0
    end = len(data)
    while pos < end:
        if pos + 4 > end:
            raise RtpError(f"{end - pos} trailing bytes after the last RTCP packet")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtpError(f"RTCP version {first >> 6}, expected 2")
        stop = pos + 4 + 4 * words
        if stop > end:
            raise RtpError(f"RTCP packet of {4 + 4 * words} bytes overruns the {end}-byte datagram")
        body_end = stop
        if first & 0x20:
            padding = data[stop - 1]
            if not 0 < padding <= 4 * words:
                raise RtpError(f"RTCP padding count {padding} does not fit its packet")
            body_end -= padding
        count = first & 0x1F
        body = data[pos + 4 : body_end]
        parser = _PARSERS.get(packet_type)
        out.append(OtherRtcp(packet_type, count, body) if parser is None else parser(count, body))
        pos = stop
    return out


class ReceiverStats:
    """What a receiver knows about one source, for its report blocks (RFC 3550 A.1, A.3, A.8).

    ``update`` runs once per received packet and is kept to integer arithmetic. Times come in
    from the caller: arrivals in RTP clock units (for jitter) and seconds on any monotonic clock
    (for DLSR), so the class stays free of clocks and testable.
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    __slots__ = (
        "received",
        "_base_seq",
        "_max_seq",
        "_cycles",
        "_bad_seq",
        "_expected_prior",
        "_received_prior",
        "_transit",
        "_jitter16",
        "_lsr",
        "_sr_arrival",
    )

    def __init__(self) -> None:
        self.received = 0
        self._max_seq = -1  # no packet yet
        self._base_seq = self._cycles = self._expected_prior = self._received_prior = 0
        self._bad_seq = -1
        self._transit: int | None = None
        self._jitter16 = 0  # jitter scaled by 16, as A.8 keeps it
        self._lsr = 0
        self._sr_arrival = 0.0

    def _restart(self, sequence: int) -> None:
        self._base_seq = self._max_seq = sequence
        self._cycles = self.received = self._expected_prior = self._received_prior = 0
        self._bad_seq = -1
        self._transit = None

    def update(self, sequence: int, timestamp: int, arrival_rtp_units: int) -> None:
        """Account one received packet (in arrival order, duplicates and all)."""
        if self._max_seq < 0:
            self._restart(sequence)
        else:
            delta = (sequence - self._max_seq) & 0xFFFF
            if delta < self.MAX_DROPOUT:
                if sequence < self._max_seq:
                    self._cycles += 0x10000
                self._max_seq = sequence
            elif delta <= 0x10000 - self.MAX_MISORDER:
                # A jump: believe it (the sender restarted) only when the next packet follows it.
                if sequence != self._bad_seq:
                    self._bad_seq = (sequence + 1) & 0xFFFF
                    return
                self._restart(sequence)
        self.received += 1
        transit = arrival_rtp_units - timestamp
        if self._transit is not None:
            d = (transit - self._transit) & 0xFFFFFFFF
            d = abs(d - 0x100000000 if d & 0x80000000 else d)
            self._jitter16 += d - ((self._jitter16 + 8) >> 4)
        self._transit = transit

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + max(self._max_seq, 0)

    def sender_report_received(self, ntp_middle32: int, arrival_time: float) -> None:
        """Remember the source's last SR so the next report block can echo it (LSR/DLSR)."""
        self._lsr = ntp_middle32 & 0xFFFFFFFF
        self._sr_arrival = arrival_time

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """The block for the next RR/SR about ``ssrc``; starts a new fraction-lost interval.

        ``now`` is on the clock that ``sender_report_received`` got its arrival times from.
        """
        extended = self.extended_highest_sequence
        expected = extended - self._base_seq + 1 if self._max_seq >= 0 else 0
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (self.received - self._received_prior)
        self._expected_prior = expected
        self._received_prior = self.received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._lsr:
            dlsr = max(0, min(0xFFFFFFFF, int((now - self._sr_arrival) * 65536)))
        return ReportBlock(ssrc, fraction, lost, extended & 0xFFFFFFFF, self._jitter16 >> 4, self._lsr, dlsr)
