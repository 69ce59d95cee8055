"""One subscriber's view of a forwarded track: a single continuous RTP stream of ours.

A subscriber's decoder sees one SSRC per track, while what feeds it changes: simulcast layers
(each its own SSRC, sequence and timestamp space) and, for a "last N" slot, different
publishers. Each stretch of packets from one input is a *run*; within a run, output = input +
constant offsets, so reordered and late packets land where they belong. A new run starts right
after the last sequence number sent (the decoder sees no loss, hence sends no NACK for the gap)
and its timestamps continue from the last one by the wall time between them (so jitter buffers
and A/V sync see time move at the real pace).

Sequence numbers are handled as unwrapped integers inside a run and wrapped to 16 bits, and
timestamps to 32, only on the wire.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from streamhive.sfu.rtp_ext import extension_span

_HEADER = struct.Struct("!BBHII")
_SEQ_MASK = 0xFFFF
_TS_MASK = 0xFFFFFFFF
_X = 0x10
_MARKER = 0x80
#: Runs remembered for NACK mapping: switches are seconds apart, NACKs come within a second.
_RUNS = 8
#: How long after a run ends its source's older packets are still taken for late ones.
_LATE = 2.0


#: ``_source`` after ``cut()``: no input is current, and the next packet continues the numbers.
_CUT = -1


class _Run(NamedTuple):
    source: int
    in_first: int  # input sequence number of the run's first packet, unwrapped
    out_first: int  # output sequence number given to it, unwrapped
    ts_offset: int  # output timestamp - input timestamp, mod 2**32


def _delta16(a: int, b: int) -> int:
    """a - b for 16-bit sequence numbers, in -32768..32767."""
    return ((a - b + 0x8000) & _SEQ_MASK) - 0x8000


class Rewriter:
    """Rewrites one input stream after another into one output stream (see the module docstring).

    The caller decides what to forward (layer selection, speaker slots); this follows ``source``.
    The first run keeps its input's numbers: a sans-IO core has no business drawing random ones,
    and the output SSRC is ours and new to the subscriber anyway.
    """

    __slots__ = (
        "ssrc",
        "payload_type",
        "clock_rate",
        "_runs",
        "_source",
        "_ended",
        "_in_first",
        "_in_high",
        "_out_delta",
        "_ts_offset",
        "_out_high",
        "_last_ts",
        "_last_time",
    )

    def __init__(self, ssrc: int, payload_type: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self._runs: deque[_Run] = deque(maxlen=_RUNS)
        self._source: int | None = None
        self._ended: dict[int, tuple[int, float]] = {}  # source -> (its last seq, when its run ended)
        self._in_first = 0
        self._in_high = 0
        self._out_delta = 0  # output = input + this, unwrapped
        self._ts_offset = 0
        self._out_high = -1  # the highest output sequence number sent, unwrapped
        self._last_ts = 0  # the output timestamp of that packet
        self._last_time = 0.0  # and when it was sent

    def rewrite(self, packet: bytes, source: int, now: float) -> bytes | None:
        """The packet as the subscriber gets it, or None when it belongs to no current run.

        A packet of another source starts a run of it, except a late one: no newer than the
        last packet forwarded from that source, in a run that ended under ``_LATE`` seconds ago
        (reordered or retransmitted around a switch: forwarding it would start a run of one
        stale packet). Such packets, and those of the current run older than its first packet
        (whose output numbers belong to the previous run), give None. RtpError for a malformed
        packet.
        """
        if len(packet) < 12 or packet[0] & 0xDF != 0x80:  # CSRCs, extensions, or not RTP v2
            start, end = extension_span(packet)  # validates the header before any state changes
        else:  # the common case: the SFU strips extensions once per publisher packet
            start = end = 12
        first = packet[0]
        seq = packet[2] << 8 | packet[3]
        ts = int.from_bytes(packet[4:8], "big")
        if source != self._source:
            if self._is_late(source, seq, now):
                return None
            self._start_run(source, seq, ts, now)
        high = self._in_high
        ext = high + ((seq - high + 0x8000) & _SEQ_MASK) - 0x8000  # unwrapped near the newest
        if ext < self._in_first:
            return None
        out_seq = ext + self._out_delta
        out_ts = (ts + self._ts_offset) & _TS_MASK
        if ext > high:
            self._in_high = ext
        if out_seq > self._out_high:
            self._out_high = out_seq
            self._last_ts = out_ts
            self._last_time = now
        header = _HEADER.pack(
            first & ~_X, (packet[1] & _MARKER) | self.payload_type, out_seq & _SEQ_MASK, out_ts, self.ssrc
        )
        if start == end:
            return header + packet[12:]
        return b"".join((header, packet[12:start], packet[end:]))

    def _is_late(self, source: int, seq: int, now: float) -> bool:
        ended = self._ended.get(source)
        return ended is not None and now - ended[1] < _LATE and _delta16(seq, ended[0]) <= 0

    def _start_run(self, source: int, seq: int, ts: int, now: float) -> None:
        """Switch to ``source``, its run starting at this packet."""
        if self._source is None:
            out_first = seq
        else:
            ended = {s: e for s, e in self._ended.items() if now - e[1] < _LATE and s != source}
            if self._source != _CUT:
                ended[self._source] = (self._in_high & _SEQ_MASK, now)
            self._ended = ended
            out_first = self._out_high + 1
            elapsed = max(1, round((now - self._last_time) * self.clock_rate))
            self._ts_offset = (self._last_ts + elapsed - ts) & _TS_MASK
        self._source = source
        self._in_first = self._in_high = seq
        self._out_delta = out_first - seq
        self._runs.append(_Run(source, seq, out_first, self._ts_offset))

    def cut(self, now: float) -> None:
        """End the current run: the next packet starts a new one even from the same source, right
        after the last number sent. For a pause or a mute, whose skipped packets would otherwise
        look lost to the subscriber (NACKs for packets it must not get, then delta frames)."""
        if self._source is not None and self._source != _CUT:
            self._ended[self._source] = (self._in_high & _SEQ_MASK, now)
            self._source = _CUT

    def _run_of(self, seq: int) -> tuple[_Run, int] | None:
        """The run output ``seq`` belongs to and its input sequence number, unwrapped."""
        if not self._runs:
            return None
        ext = self._out_high + _delta16(seq, self._out_high & _SEQ_MASK)
        if ext > self._out_high:
            return None
        for run in reversed(self._runs):
            if ext >= run.out_first:
                return run, run.in_first + ext - run.out_first
        return None

    def original(self, seq: int) -> tuple[int, int] | None:
        """(source, its sequence number) that output ``seq`` was made from, for a NACK.

        None for a number not sent yet, or older than the runs remembered.
        """
        found = self._run_of(seq)
        return (found[0].source, found[1] & _SEQ_MASK) if found is not None else None

    def resend(self, seq: int, lookup: Callable[[int, int], bytes | None]) -> bytes | None:
        """Output packet ``seq`` again, rebuilt from its input, for a NACK: ``lookup(source,
        sequence)`` finds the input packet (a history per publisher layer, shared by every
        subscriber, rather than a copy of what each was sent). None when it is gone."""
        found = self._run_of(seq)
        if found is None:
            return None
        run, ext = found
        packet = lookup(run.source, ext & _SEQ_MASK)
        if packet is None:
            return None
        start, end = extension_span(packet)
        header = _HEADER.pack(
            packet[0] & ~_X,
            (packet[1] & _MARKER) | self.payload_type,
            seq & _SEQ_MASK,
            (int.from_bytes(packet[4:8], "big") + run.ts_offset) & _TS_MASK,
            self.ssrc,
        )
        return b"".join((header, packet[12:start], packet[end:]))
