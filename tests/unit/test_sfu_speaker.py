"""Active speaker detection from RFC 6464 audio levels (sfu/speaker.py), on a fake clock."""

from __future__ import annotations

from streamhive.sfu.speaker import SpeakerDetector


def talk(detector: SpeakerDetector, start: float, levels: dict[str, list[int]]) -> None:
    """Feed each participant's levels, one packet every 20 ms from ``start``."""
    for who, values in levels.items():
        for i, level in enumerate(values):
            detector.level(who, level, start + i * 0.02)


def test_loudest_average_becomes_dominant() -> None:
    detector = SpeakerDetector(0.3)
    assert detector.decide(0.0) is None
    talk(detector, 0.0, {"alice": [30] * 15, "bob": [50] * 15, "carol": [127] * 15})
    assert detector.decide(0.1) is None  # mid-interval: nothing decided yet
    assert detector.decide(0.3) == ["alice"]
    assert detector.decide(0.35) is None  # no change since the last call
    talk(detector, 0.3, {"alice": [127] * 15, "bob": [45] * 15})
    assert detector.decide(0.6) == ["bob", "alice"]
    talk(detector, 0.6, {"alice": [20] * 15, "bob": [45] * 15})
    assert detector.decide(0.9) == ["alice", "bob"]
    talk(detector, 0.9, {"alice": [20] * 15})
    assert detector.decide(1.2) is None  # still alice


def test_average_over_the_interval_not_the_peak() -> None:
    detector = SpeakerDetector(0.3)
    detector.decide(0.0)
    # One loud click in silence averages far above the threshold; steady speech wins.
    talk(detector, 0.0, {"click": [0] + [127] * 14, "steady": [60] * 15})
    assert detector.decide(0.3) == ["steady"]


def test_quiet_rooms_keep_the_last_speaker() -> None:
    detector = SpeakerDetector(0.5, threshold=70)
    detector.decide(0.0)
    talk(detector, 0.0, {"alice": [40] * 25})
    assert detector.decide(0.5) == ["alice"]
    talk(detector, 0.5, {"alice": [127] * 25, "bob": [90] * 25})  # bob above the threshold
    assert detector.decide(1.0) is None
    assert detector.decide(1.5) is None  # no levels at all
    talk(detector, 1.5, {"bob": [70] * 25})  # at the threshold counts
    assert detector.decide(2.0) == ["bob", "alice"]


def test_ties_keep_the_current_speaker() -> None:
    detector = SpeakerDetector(0.3)
    detector.decide(0.0)
    talk(detector, 0.0, {"alice": [40] * 15})
    assert detector.decide(0.3) == ["alice"]
    talk(detector, 0.3, {"bob": [40] * 15, "alice": [40] * 15})
    assert detector.decide(0.6) is None


def test_removed_participants_leave_the_list() -> None:
    detector = SpeakerDetector(0.3)
    detector.decide(0.0)
    for t, who in enumerate(("carol", "bob", "alice")):
        talk(detector, t * 0.3, {who: [30] * 15})
        detector.decide((t + 1) * 0.3)
    assert detector.decide(0.95) is None
    detector.remove("bob")
    assert detector.decide(1.0) == ["alice", "carol"]  # reported at the next call
    detector.remove("alice")
    detector.remove("nobody")
    talk(detector, 1.0, {"alice": [10] * 5})  # nothing of alice counts before she was removed
    detector.remove("alice")
    assert detector.decide(1.2) == ["carol"]
    talk(detector, 1.2, {"dave": [127] * 15})
    assert detector.decide(1.5) is None
