"""The RTP reorderer: sequence order out, gaps marked with None, wrap and sender restarts."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.formats.rtp.packet import RtpPacket
from streamhive.formats.rtp.reorder import Reorderer


def pkt(seq: int) -> RtpPacket:
    return RtpPacket(96, seq & 0xFFFF, 0, 1, payload=b"%d" % seq)


def run(reorderer: Reorderer, sequences: list[int]) -> list[int | None]:
    out: list[int | None] = []
    for seq in sequences:
        out += [None if p is None else p.sequence for p in reorderer.push(pkt(seq))]
    return out


def test_in_order_passes_straight_through() -> None:
    r = Reorderer()
    packet = pkt(10)
    assert r.push(packet) == [packet]
    assert run(r, list(range(11, 20))) == list(range(11, 20))
    assert (r.duplicates, r.late, r.lost, r.resyncs) == (0, 0, 0, 0)


def test_swaps_are_put_back_in_order() -> None:
    r = Reorderer()
    assert run(r, [1, 3, 2, 4, 7, 6, 5, 8]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert r.lost == 0


def test_gap_declared_lost_when_the_buffer_fills() -> None:
    r = Reorderer(size=4)
    assert run(r, [1, 2, 5, 6, 7]) == [1, 2]
    assert run(r, [8]) == [None, 5, 6, 7, 8]  # 3 and 4 never came
    assert r.lost == 2
    assert run(r, [3, 4]) == []
    assert r.late == 2


def test_duplicates() -> None:
    r = Reorderer()
    assert run(r, [1, 2, 2, 4, 4, 3]) == [1, 2, 3, 4]
    assert r.duplicates == 2
    assert r.late == 0


def test_wraps_around() -> None:
    r = Reorderer()
    assert run(r, [0xFFFE, 0, 0xFFFF, 1, 2]) == [0xFFFE, 0xFFFF, 0, 1, 2]
    r = Reorderer(size=2)
    assert run(r, [0xFFFE, 1, 2]) == [0xFFFE, None, 1, 2]
    assert r.lost == 2


def test_restarted_sender_is_a_resync_not_a_loss() -> None:
    r = Reorderer()
    assert run(r, [100, 101, 103]) == [100, 101]
    assert run(r, [40000]) == []  # could be a corrupt stray packet: wait for the next
    assert run(r, [40001, 40002]) == [None, 103, None, 40000, 40001, 40002]
    assert (r.lost, r.resyncs) == (1, 1)
    r = Reorderer()
    assert run(r, [50000, 50001, 7, 8, 9]) == [50000, 50001, None, 7, 8, 9]  # restarted lower
    assert r.resyncs == 1


def test_stray_far_packet_is_ignored() -> None:
    r = Reorderer()
    assert run(r, [1, 2, 30000, 3, 4]) == [1, 2, 3, 4]
    assert r.resyncs == 0


def test_flush_gives_up_on_every_gap() -> None:
    r = Reorderer()
    assert run(r, [1, 3, 6, 7]) == [1]
    assert [None if p is None else p.sequence for p in r.flush()] == [None, 3, None, 6, 7]
    assert r.lost == 3
    assert r.flush() == []
    assert run(r, [8]) == [8]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 0xFFFF), st.lists(st.integers(0, 5), min_size=1, max_size=120), st.randoms())
def test_property_bounded_reordering(start: int, jitters: list[int], rnd: random.Random) -> None:
    """Packets displaced by at most a few places, some dropped: order kept, nothing invented."""
    sequences = list(range(start, start + len(jitters)))
    dropped = {s for s in sequences[1:] if rnd.random() < 0.1}
    arrival = sorted((s for s in sequences if s not in dropped), key=lambda s: s + jitters[s - start])
    r = Reorderer(size=8)
    out = run(r, arrival)
    out += [None if p is None else p.sequence for p in r.flush()]
    got = [s for s in out if s is not None]
    extended = [start + ((s - start) & 0xFFFF) for s in got]
    assert extended == sorted(extended)
    assert len(set(got)) == len(got)
    assert set(got) <= {s & 0xFFFF for s in sequences}
    assert len(got) + r.late == len(arrival)
    if not dropped and r.late == 0:
        assert None not in out
