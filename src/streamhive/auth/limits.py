"""Per-client limits with bounded memory: failed-login blocking, token buckets, log throttling.

Every table here is keyed by something a client chooses (its address), so each is an LRU with a
hard size: a flood of new addresses evicts the oldest entries instead of growing memory. Time
comes from the injected clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TypeVar

__all__ = ["FailureLimiter", "LogOnce", "RateLimiter"]

Clock = Callable[[], float]
K = TypeVar("K")
V = TypeVar("V")


def _touch(table: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


class FailureLimiter:
    """Blocks an address for ``block_seconds`` after ``max_failures`` failures within ``window``.

    Successes do not reset the count: otherwise one valid account would let its holder guess
    other users' passwords forever by interleaving a good login.
    """

    def __init__(
        self,
        max_failures: int,
        *,
        block_seconds: float,
        clock: Clock,
        window: float = 60.0,
        max_tracked: int = 100_000,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._block = block_seconds
        self._clock = clock
        self._limit = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: OrderedDict[str, float] = OrderedDict()

    def failed(self, key: str) -> None:
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            times = deque(maxlen=self._max)
        times.append(now)
        if len(times) == self._max and now - times[0] <= self._window:
            self._failures.pop(key, None)
            _touch(self._blocked, key, now + self._block, self._limit)
        else:
            _touch(self._failures, key, times, self._limit)

    def blocked(self, key: str) -> bool:
        until = self._blocked.get(key)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._blocked[key]
        return False


class RateLimiter:
    """A token bucket per key: ``rate`` per second, up to ``burst`` at once; rate 0 is no limit."""

    def __init__(self, rate: float, burst: float, clock: Clock, max_tracked: int = 100_000) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._clock = clock
        self._limit = max_tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        _touch(self._buckets, key, (tokens - 1.0 if allowed else tokens, now), self._limit)
        return allowed


class LogOnce:
    """Says yes once per key per ``interval``: one log line per offender, not one per attempt."""

    def __init__(self, interval: float, clock: Clock, max_tracked: int = 10_000) -> None:
        self._interval = interval
        self._clock = clock
        self._limit = max_tracked
        self._last: OrderedDict[str, float] = OrderedDict()

    def should_log(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        _touch(self._last, key, now, self._limit)
        return True
