"""Retransmission requests (RFC 4585 generic NACK), both ends, sans-IO.

:class:`NackTracker` is the receiving end (our server ingesting from a WHIP publisher): it sees
sequence numbers arrive and says which missing ones to ask for, and when. :class:`RtpHistory`
is the sending end: the last packets sent, to answer a player's NACK. Both take time from the
caller and keep bounded memory whatever the sender does.
"""

from __future__ import annotations

#: A forward jump this large means the sender restarted its sequence, not that packets were lost.
MAX_DROPOUT = 3000


class _Missing:
    __slots__ = ("since", "last", "requests")

    def __init__(self, since: float) -> None:
        self.since = since  # when the gap was seen
        self.last: float | None = None  # when last requested
        self.requests = 0


class NackTracker:
    """Which missing packets of one SSRC to NACK now.

    A packet missing for ``reorder_delay`` is asked for; then again every ``interval`` (the
    larger of ``min_interval`` and ``rtt``, which the caller keeps current) up to
    ``max_requests`` times in all. It is given up ``give_up`` seconds after it went missing, or
    when it falls more than ``max_age`` packets behind the newest: by then the picture it
    belonged to is late, and a keyframe request serves better. Sequence numbers wrap; a jump
    beyond MAX_DROPOUT, confirmed by the packet after it, is a sender restart and clears the
    list.
    """

    __slots__ = (
        "rtt",
        "reorder_delay",
        "min_interval",
        "max_requests",
        "give_up",
        "max_age",
        "_highest",
        "_missing",
        "_jump",
    )

    def __init__(
        self,
        *,
        reorder_delay: float = 0.01,
        min_interval: float = 0.02,
        max_requests: int = 3,
        give_up: float = 1.0,
        max_age: int = 500,
    ) -> None:
        self.rtt = 0.0
        self.reorder_delay = reorder_delay
        self.min_interval = min_interval
        self.max_requests = max_requests
        self.give_up = give_up
        self.max_age = max_age
        self._highest = -1  # the newest sequence number, extended past 16 bits; -1: none yet
        self._missing: dict[int, _Missing] = {}  # by extended sequence, oldest first
        self._jump = -1  # a far-off sequence number waiting for its successor to confirm it

    @property
    def missing(self) -> int:
        """Packets currently waited for."""
        return len(self._missing)

    def packet(self, seq: int, now: float) -> None:
        """Note the arrival of sequence number ``seq`` (any order, duplicates and all)."""
        seq &= 0xFFFF
        highest = self._highest
        if highest < 0:
            self._highest = seq
            return
        ahead = (seq - highest) & 0xFFFF
        if ahead == 1:  # the common case: the next packet
            self._highest = highest + 1
            self._jump = -1
            return
        if ahead < 0x8000:
            if ahead > MAX_DROPOUT:
                self._far(seq)
                return
            self._jump = -1
            self._advance(highest + ahead, now)
            return
        behind = 0x10000 - ahead
        if behind > self.max_age:
            self._far(seq)
            return
        self._missing.pop(highest - behind, None)  # a late or retransmitted packet fills its gap

    def _advance(self, newest: int, now: float) -> None:
        """The gap before ``newest`` is missing, as far back as is still worth asking for."""
        missing = self._missing
        oldest = newest - self.max_age
        for seq in range(max(self._highest + 1, oldest), newest):
            missing[seq] = _Missing(now)
        self._highest = newest
        self._forget_before(oldest)

    def _forget_before(self, oldest: int) -> None:
        missing = self._missing
        if missing and next(iter(missing)) < oldest:  # oldest first: usually nothing to do
            for seq in [s for s in missing if s < oldest]:
                del missing[seq]

    def _far(self, seq: int) -> None:
        if self._jump >= 0 and seq == (self._jump + 1) & 0xFFFF:
            self._missing.clear()
            self._highest = seq
            self._jump = -1
        else:
            self._jump = seq

    def due(self, now: float) -> list[int]:
        """The sequence numbers to NACK now (16-bit, oldest first); counts them as requested."""
        out: list[int] = []
        if not self._missing:
            return out
        self._forget_before(self._highest - self.max_age)
        interval = max(self.min_interval, self.rtt)
        expired: list[int] = []
        for seq, entry in self._missing.items():
            if now - entry.since > self.give_up:
                expired.append(seq)
                continue
            if entry.last is None:
                if now - entry.since < self.reorder_delay:
                    continue
            elif now - entry.last < interval:
                continue
            out.append(seq & 0xFFFF)
            entry.last = now
            entry.requests += 1
            if entry.requests >= self.max_requests:
                expired.append(seq)  # asked often enough: an answer may still come, not a request
        for seq in expired:
            del self._missing[seq]
        return out


class RtpHistory:
    """The last ``size`` packets sent on one SSRC, by sequence number, for retransmission.

    A fixed ring indexed by ``seq % size``: adding and finding are O(1) and memory never grows.
    A size that divides 65536 (the default does) keeps every slot exact across the wrap.
    """

    __slots__ = ("size", "_seqs", "_packets")

    def __init__(self, size: int = 512) -> None:
        if size < 1:
            raise ValueError("RTP history size must be at least 1")
        self.size = size
        self._seqs = [-1] * size
        self._packets: list[bytes | None] = [None] * size

    def add(self, seq: int, packet: bytes) -> None:
        seq &= 0xFFFF
        slot = seq % self.size
        self._seqs[slot] = seq
        self._packets[slot] = packet

    def get(self, seq: int) -> bytes | None:
        """The packet sent with ``seq`` if it is still held (a newer one may have taken its slot)."""
        seq &= 0xFFFF
        slot = seq % self.size
        return self._packets[slot] if self._seqs[slot] == seq else None
