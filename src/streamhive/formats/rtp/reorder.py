"""A jitter-buffer-free reorderer: RTP packets in sequence order, with losses made explicit.

UDP reorders and drops packets; depacketizers need them in order and need to know where a
gap was, so that they discard the broken access unit instead of gluing across it. Packets that
arrive in order (nearly all of them) pass straight through; only a gap makes the reorderer hold
packets, for at most ``size`` of them, and no clock is involved: the caller may ``flush()``
from a timer when it prefers bounded latency to waiting for the buffer to fill.
"""

from __future__ import annotations

from streamhive.formats.rtp.packet import RtpPacket

#: Sequence jumps beyond this (either way) mean the sender restarted, not that packets were lost.
MAX_DROPOUT = 3000


class Reorderer:
    """Orders one SSRC's packets; ``None`` in a result marks a gap (call the depacketizer's lost()).

    Counters: ``duplicates`` (a packet already held, or the one just emitted again), ``late``
    (behind the point already emitted or declared lost, or a far-off stray), ``lost`` (packets
    declared missing), ``resyncs`` (sender restarts).
    """

    __slots__ = ("size", "duplicates", "late", "lost", "resyncs", "_next", "_held", "_jump")

    def __init__(self, size: int = 64) -> None:
        if size < 1:
            raise ValueError("reorder buffer size must be at least 1")
        self.size = size
        self.duplicates = self.late = self.lost = self.resyncs = 0
        self._next = -1  # sequence expected next; -1 before the first packet
        self._held: dict[int, RtpPacket] = {}
        self._jump: RtpPacket | None = None  # a far-off packet waiting for its successor

    def push(self, packet: RtpPacket) -> list[RtpPacket | None]:
        sequence = packet.sequence
        ahead = (sequence - self._next) & 0xFFFF
        if ahead == 0 and not self._held:
            self._next = (sequence + 1) & 0xFFFF
            return [packet]
        if self._next < 0:
            self._next = (sequence + 1) & 0xFFFF
            return [packet]
        if ahead == 0:
            return self._drain([packet], (sequence + 1) & 0xFFFF)
        if ahead >= 0x10000 - MAX_DROPOUT:  # behind what was emitted
            if ahead == 0xFFFF:
                self.duplicates += 1
            else:
                self.late += 1
            return []
        if ahead > MAX_DROPOUT:
            return self._resync(packet)
        if sequence in self._held:
            self.duplicates += 1
            return []
        self._held[sequence] = packet
        if len(self._held) < self.size:
            return []
        return self._skip_gap([])

    @property
    def held(self) -> int:
        """Packets waiting for a gap before them to fill."""
        return len(self._held)

    def flush(self) -> list[RtpPacket | None]:
        """Give up on every gap: emit all held packets, with ``None`` for each gap before them."""
        out: list[RtpPacket | None] = []
        while self._held:
            self._skip_gap(out)
        return out

    def _drain(self, out: list[RtpPacket | None], sequence: int) -> list[RtpPacket | None]:
        """Append the held packets that follow in order from ``sequence``."""
        held = self._held
        while sequence in held:
            out.append(held.pop(sequence))
            sequence = (sequence + 1) & 0xFFFF
        self._next = sequence
        return out

    def _skip_gap(self, out: list[RtpPacket | None]) -> list[RtpPacket | None]:
        """Declare the packets before the oldest held one lost, and emit what follows."""
        start = self._next
        first = min(self._held, key=lambda s: (s - start) & 0xFFFF)
        self.lost += (first - start) & 0xFFFF
        out.append(None)
        out.append(self._held.pop(first))
        return self._drain(out, (first + 1) & 0xFFFF)

    def _resync(self, packet: RtpPacket) -> list[RtpPacket | None]:
        """A far jump: a restarted sender if the next packet follows it, else a stray packet.

        Waiting for one confirming packet keeps a single corrupt sequence number from
        discarding the buffer, without dropping the first packet of a real restart.
        """
        jump = self._jump
        if jump is None or packet.sequence != (jump.sequence + 1) & 0xFFFF:
            if jump is not None:
                self.late += 1  # the previous candidate was a stray after all
            self._jump = packet
            return []
        self._jump = None
        self.resyncs += 1
        out = self.flush()
        out.append(None)
        out.append(jump)
        out.append(packet)
        self._next = (packet.sequence + 1) & 0xFFFF
        return out
