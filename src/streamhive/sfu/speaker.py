"""Who is speaking: the dominant speaker from the audio levels publishers put in their packets.

Every audio packet carries the sender's level (RFC 6464, -dBov: 0 loudest, 127 silence), so no
audio is decoded. As in mediasoup's AudioLevelObserver, levels are averaged per participant over
an interval; at the end of each, the loudest average at or under the threshold (louder than it)
is the dominant speaker. The room keeps a recent-speakers list, dominant first, which drives the
UI's highlight and "last N" video forwarding. A quiet interval changes nothing: the last speaker
stays on screen instead of the view emptying at every pause for breath.
"""

from __future__ import annotations

#: Seconds early a decision may come: a timer firing a hair early, or float arithmetic on the
#: times, must not push the decision a whole interval later.
_SLACK = 0.001


class SpeakerDetector:
    """Averages levels per participant and decides the dominant speaker every ``interval`` s."""

    __slots__ = ("interval", "threshold", "_sums", "_speakers", "_reported", "_since")

    def __init__(self, interval: float, threshold: int = 70) -> None:
        self.interval = interval
        self.threshold = threshold
        self._sums: dict[str, list[int]] = {}  # who -> [sum of levels, count] this interval
        self._speakers: list[str] = []  # recent dominant speakers, the latest first
        self._reported: list[str] = []
        self._since: float | None = None  # when the current interval began

    def level(self, who: str, level: int, now: float) -> None:
        """One packet's audio level from ``who`` (-dBov, 0..127)."""
        if self._since is None:
            self._since = now
        acc = self._sums.get(who)
        if acc is None:
            self._sums[who] = [level, 1]
        else:
            acc[0] += level
            acc[1] += 1

    def remove(self, who: str) -> None:
        """``who`` left: forget their levels and drop them from the recent speakers."""
        self._sums.pop(who, None)
        if who in self._speakers:
            self._speakers.remove(who)

    def decide(self, now: float) -> list[str] | None:
        """The recent speakers (dominant first) when they changed since the last call, else None.

        Call it as often as convenient: the decision is made once per ``interval``; a removal
        shows at the next call.
        """
        if self._since is None:
            self._since = now
        elif now - self._since >= self.interval - _SLACK:
            self._since = now
            self._decide()
        if self._speakers == self._reported:
            return None
        self._reported = list(self._speakers)
        return list(self._speakers)

    def _decide(self) -> None:
        sums = self._sums
        self._sums = {}
        current = self._speakers[0] if self._speakers else None
        loudest: tuple[float, bool] | None = None
        dominant = None
        for who, (total, count) in sums.items():
            rank = (total / count, who != current)  # a tie keeps the current speaker
            if rank[0] <= self.threshold and (loudest is None or rank < loudest):
                loudest, dominant = rank, who
        if dominant is not None and dominant != current:
            if dominant in self._speakers:
                self._speakers.remove(dominant)
            self._speakers.insert(0, dominant)
