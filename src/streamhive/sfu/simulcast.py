"""Simulcast: what each incoming layer costs, what a subscriber can take, and which layer it gets.

A publisher sends the same video as up to three layers (0 = lowest resolution). Per subscriber
the SFU forwards one of them: the largest that fits both the size the subscriber's view asked for
and the bandwidth its feedback reports. Going down is immediate (the subscriber is already
losing packets or showing a small tile); going up waits until the higher layer has fit for a
while, since a probe-less estimate that just crossed a threshold tends to cross back, and every
switch costs a keyframe. Switches happen only at a keyframe of the new layer.
"""

from __future__ import annotations

from collections import deque

#: The sliding window of a layer's bitrate, and the silence after which a layer is inactive.
WINDOW = 1.0
#: Feedback older than this says nothing about the subscriber's link any more.
FEEDBACK_TIMEOUT = 5.0
#: Loss-based control (GCC, draft-ietf-rmcat-gcc section 6): above HIGH_LOSS the estimate falls
#: by half the loss; below LOW_LOSS it may grow by GROWTH per report; in between it holds.
HIGH_LOSS = 0.10
LOW_LOSS = 0.02
GROWTH = 1.05
#: The share of the estimate a layer may use: headroom for audio, RTX and estimate noise.
HEADROOM = 0.85
#: How long a higher layer must fit, continuously, before a subscriber is moved up to it.
UP_DELAY = 2.0
#: The layer being forwarded stays while the estimate is at least this share of its bitrate.
#: Browsers' REMB tracks what they receive (at most ~1.5 times it) and we send no probes, so
#: an estimate just above the current rate says "fine", not "nearly full".
STAY = 0.75
#: An estimate this far above the current layer's rate says the link is not the limit: the next
#: layer up is tried even if its own rate is not known to fit (switching up is the probe).
PROBE = 1.3
#: After a try that had to come back down within BACKOFF_WINDOW, the next try waits twice as
#: long, up to MAX_UP_DELAY.
BACKOFF_WINDOW = 5.0
MAX_UP_DELAY = 32.0


class LayerMeter:
    """The bitrate of one incoming layer over the last WINDOW seconds, and whether it is live."""

    __slots__ = ("_packets", "_bytes", "_last")

    def __init__(self) -> None:
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._last: float | None = None

    def packet(self, size: int, now: float) -> None:
        """Count one packet of ``size`` bytes received at ``now``."""
        self._packets.append((now, size))
        self._bytes += size
        self._last = now
        self._expire(now)

    def bitrate(self, now: float) -> int:
        """Bits per second over the last WINDOW seconds."""
        self._expire(now)
        return round(self._bytes * 8 / WINDOW)

    def active(self, now: float) -> bool:
        """True when a packet arrived within the last WINDOW seconds."""
        return self._last is not None and now - self._last < WINDOW

    def _expire(self, now: float) -> None:
        packets = self._packets
        horizon = now - WINDOW
        while packets and packets[0][0] <= horizon:
            self._bytes -= packets.popleft()[1]


class BandwidthEstimate:
    """What one subscriber's link can take, from its REMB and the loss its receiver reports say.

    The result is the lower of the REMB (delay-based, the receiver's own estimate) and a
    loss-based cap that exists only while loss has recently been heavy: it starts from the
    current estimate at the first heavy-loss report and grows back until the REMB bounds it
    again. Without a REMB there is nothing to scale, so the estimate stays unknown.
    """

    __slots__ = ("_remb", "_cap", "_last")

    def __init__(self) -> None:
        self._remb: int | None = None
        self._cap: float | None = None
        self._last: float | None = None

    def remb(self, bitrate: int, now: float) -> None:
        """A REMB from the subscriber (for its whole connection: the caller shares it out)."""
        self._remb = bitrate
        self._last = now

    def loss(self, fraction: float, now: float) -> None:
        """The fraction lost (0..1) in one of the subscriber's receiver reports."""
        self._last = now
        if self._remb is None:
            return
        if fraction > HIGH_LOSS:
            base = self._remb if self._cap is None else min(self._cap, self._remb)
            self._cap = base * (1 - 0.5 * fraction)
        elif fraction < LOW_LOSS and self._cap is not None:
            self._cap *= GROWTH
            if self._cap >= self._remb:
                self._cap = None

    def value(self, now: float) -> int | None:
        """Bits per second the subscriber can take; None without feedback in FEEDBACK_TIMEOUT."""
        if self._remb is None or self._last is None or now - self._last > FEEDBACK_TIMEOUT:
            return None
        if self._cap is None:
            return self._remb
        return round(min(self._cap, self._remb))


def _fill_heights(heights: list[int | None]) -> list[int | None]:
    """Unknown layer heights from the nearest known one, each layer half the next one's height."""
    known = [(i, h) for i, h in enumerate(heights) if h is not None]
    if not known or len(known) == len(heights):
        return heights
    out: list[int | None] = []
    for i, height in enumerate(heights):
        if height is None:
            j, near = min(known, key=lambda item: abs(item[0] - i))
            height = round(near * 2.0 ** (i - j))
        out.append(height)
    return out


def _within(height: int | None, max_height: int | None) -> bool:
    return height is None or max_height is None or height <= max_height


class LayerSelector:
    """The simulcast layer one subscriber gets of one video track (layers 0 = lowest).

    ``target`` is where :meth:`choose` wants to be, ``current`` what is forwarded; they differ
    from a decision until the target's next keyframe (:attr:`wants_keyframe`).
    """

    __slots__ = ("target", "current", "_fit_since", "_up_delay", "_raised_at")

    def __init__(self) -> None:
        self.target: int | None = None
        self.current: int | None = None
        self._fit_since: dict[int, float] = {}  # layer -> since when it has fit, continuously
        self._up_delay = UP_DELAY
        self._raised_at = -BACKOFF_WINDOW  # when the target last went up

    def choose(
        self,
        heights: list[int | None],
        bitrates: list[int],
        active: list[bool],
        max_height: int | None,
        bandwidth: int | None,
        now: float,
    ) -> int:
        """Update and return ``target``: call it on every change of input and periodically.

        The highest active layer no taller than ``max_height`` whose bitrate fits in HEADROOM of
        ``bandwidth`` (each limit applies when known); the lowest active layer when none fits.
        The current target keeps fitting while the estimate is STAY of its rate, and the layer
        above it fits while the estimate is PROBE times the target's rate (see STAY, PROBE).
        Down at once; up only to a layer that has fit for the up delay (UP_DELAY, doubled after
        each try that failed within BACKOFF_WINDOW). With no layer active the target stays
        (layer 0 at first): there is nothing to switch to.
        """
        filled = _fill_heights(heights)
        target = self.target
        fits = [
            on and _within(filled[i], max_height) and self._affordable(i, bitrates, bandwidth)
            for i, on in enumerate(active)
        ]
        for i, fit in enumerate(fits):
            if not fit:
                self._fit_since.pop(i, None)
            elif i not in self._fit_since:
                self._fit_since[i] = now
        live = [i for i, on in enumerate(active) if on]
        if not live:
            if self.target is None:
                self.target = 0
            return self.target
        fitting = [i for i, fit in enumerate(fits) if fit]
        best = fitting[-1] if fitting else live[0]
        if target is None or target >= len(active) or not active[target] or best < target:
            if target is not None and best < target and now - self._raised_at < BACKOFF_WINDOW:
                self._up_delay = min(MAX_UP_DELAY, self._up_delay * 2)  # that try did not hold
            self.target = best
        elif best > target:
            ready = [i for i in fitting if i > target and now - self._fit_since[i] >= self._up_delay]
            if ready:
                self.target = ready[-1]
                self._raised_at = now
        elif now - self._raised_at > MAX_UP_DELAY:
            self._up_delay = UP_DELAY  # stable for a while: tries are cheap again
        return self.target

    def _affordable(self, layer: int, bitrates: list[int], bandwidth: int | None) -> bool:
        if bandwidth is None:
            return True
        if bitrates[layer] <= HEADROOM * bandwidth:
            return True
        target = self.target
        if target is None or target >= len(bitrates):
            return False
        if layer == target:
            return STAY * bitrates[layer] <= bandwidth
        return layer == target + 1 and bandwidth >= PROBE * bitrates[target]

    def accept(self, layer: int, keyframe: bool) -> bool:
        """Whether to forward a packet of ``layer``; a keyframe of the target makes it current.

        ``keyframe`` matters only for the target layer while it is not current, so the caller
        may pass False without looking otherwise (see keyframes.is_keyframe).
        """
        if keyframe and layer == self.target and layer != self.current:
            self.current = layer
            return True
        return layer == self.current

    @property
    def wants_keyframe(self) -> bool:
        """True while waiting for the target layer's keyframe (ask its publisher, throttled)."""
        return self.target is not None and self.target != self.current
