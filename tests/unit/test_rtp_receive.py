"""ClockSync: one hub timeline for every track, DTS derived from PTS (B-frames included)."""

from __future__ import annotations

import pytest

from streamhive.formats.rtp import Access
from streamhive.formats.rtp.receive import HEADROOM, ClockSync


def frames(sync: ClockSync, index: int, stamps: list[int], arrival: float = 0.0) -> list[tuple[int, int]]:
    out = []
    for ts in stamps:
        frame = sync.frame(index, Access(ts, (b"x",), False), arrival, index)
        out.append((frame.pts - HEADROOM, frame.dts - HEADROOM))
    return out


def test_dts_follows_pts_without_b_frames() -> None:
    assert frames(ClockSync([90000]), 0, [0, 3600, 7200]) == [(0, 0), (3600, 3600), (7200, 7200)]


@pytest.mark.parametrize(
    "gop",
    [
        [0, 3, 1, 2, 6, 4, 5, 9, 7, 8],  # I P B B
        [0, 4, 2, 1, 3, 8, 6, 5, 7, 12, 10, 9, 11],  # B-pyramid (x264 -bf 3)
    ],
)
def test_dts_with_b_frames_stays_increasing_and_at_most_pts(gop: list[int]) -> None:
    order = gop + [p + 100 for p in gop]  # decode order, PTS in frames of 3600 ticks; a second GOP later
    out = frames(ClockSync([90000]), 0, [p * 3600 for p in order])
    dts = [d for _, d in out]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False))
    assert all(d <= p for p, d in out[len(gop) // 2 :]), out  # once B-frames showed the depth
    assert max(p - d for p, d in out) <= 5 * 3600  # and never drifts away from PTS


def test_sender_reports_align_tracks_and_rtp_timestamps_wrap() -> None:
    sync = ClockSync([90000, 48000])
    sync.sender_report(0, 1000.0, 4_000_000_000)
    sync.sender_report(1, 1000.0, 123)
    video = frames(sync, 0, [4_000_000_000, (4_000_000_000 + 3600 * 100) & 0xFFFFFFFF], arrival=5.0)
    audio = frames(sync, 1, [123 + 48000], arrival=9.0)  # 1 s later on the audio clock
    assert video == [(0, 0), (360000, 360000)]  # across the 32-bit wrap
    assert audio == [(90000, 90000)]  # SR-aligned, whatever the arrival times say
