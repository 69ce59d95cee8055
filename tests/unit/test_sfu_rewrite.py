"""The per-subscriber RTP rewriter (sfu/rewrite.py): one continuous stream out of many inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.sfu.rewrite import Rewriter

SSRC = 0x5EED0001
PT = 96
A, B, C = 1001, 1002, 1003  # sources (a publisher layer's SSRC, say)
MID = (0xBEDE, bytes((0x10, ord("v"), 0, 0)))


def rtp(
    seq: int,
    ts: int,
    *,
    payload: bytes = b"data",
    marker: bool = False,
    extension: tuple[int, bytes] | None = MID,
    csrc: tuple[int, ...] = (),
) -> bytes:
    return RtpPacket(100, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x0BAD, marker, payload, csrc, extension).serialize()


def out(rewriter: Rewriter, packet: bytes, source: int, now: float) -> RtpPacket:
    data = rewriter.rewrite(packet, source, now)
    assert data is not None
    return RtpPacket.parse(data)


def test_first_run_keeps_numbers_and_replaces_the_rest() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    data = rtp(1234, 5678, marker=True, csrc=(7, 8))
    data = bytes((data[0] | 0x20,)) + data[1:] + b"\x00\x00\x03"  # and three bytes of padding
    result = rewriter.rewrite(data, A, 0.0)
    assert result is not None
    assert result.endswith(b"data\x00\x00\x03")
    packet = RtpPacket.parse(result)
    assert packet == RtpPacket(PT, 1234, 5678, SSRC, True, b"data", (7, 8), None)
    assert result[0] & 0x30 == 0x20  # padding kept, extension gone


def test_sequence_and_timestamp_wrap_within_a_run() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    got = [out(rewriter, rtp(s, 0xFFFFFF00 + 3000 * (s - 65530)), A, 0.0) for s in range(65530, 65542)]
    assert [p.sequence for p in got] == [s & 0xFFFF for s in range(65530, 65542)]
    assert [p.timestamp for p in got] == [(0xFFFFFF00 + 3000 * i) & 0xFFFFFFFF for i in range(12)]


def test_reordered_packets_of_the_run_map_to_their_place() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    assert out(rewriter, rtp(100, 0), A, 0.0).sequence == 100
    assert rewriter.rewrite(rtp(100, 0), B, 1.0) is not None  # switch: B's 100 becomes 101
    for seq, want in ((103, 104), (101, 102), (102, 103), (101, 102)):  # late and duplicate too
        assert out(rewriter, rtp(seq, 9000), B, 1.0).sequence == want
    assert rewriter.rewrite(rtp(99, 0), B, 1.0) is None  # before the run began: not ours to send
    assert rewriter.rewrite(rtp(65535, 0), B, 1.0) is None


def test_a_switch_continues_sequence_and_timestamp() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    out(rewriter, rtp(500, 1_000_000), A, 10.0)
    out(rewriter, rtp(501, 1_003_000), A, 10.033)
    first = out(rewriter, rtp(40_000, 7_777_777), B, 10.1)  # another layer: its own numbers
    assert first.sequence == 502
    assert first.timestamp == 1_003_000 + round(0.067 * 90000)
    assert first.ssrc == SSRC
    second = out(rewriter, rtp(40_001, 7_780_777), B, 10.13)
    assert (second.sequence, second.timestamp) == (503, first.timestamp + 3000)


def test_a_switch_at_the_same_instant_still_moves_time_forward() -> None:
    rewriter = Rewriter(SSRC, PT, 48000)
    out(rewriter, rtp(65535, 0xFFFFFFFF), A, 5.0)
    switched = out(rewriter, rtp(7, 123), B, 5.0)
    assert (switched.sequence, switched.timestamp) == (0, 0)  # both wrapped, one tick later


def test_late_packets_of_the_previous_source_are_dropped() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    for seq in range(10, 20):
        out(rewriter, rtp(seq, seq * 3000), A, 0.0)
    out(rewriter, rtp(300, 0), B, 0.5)
    assert rewriter.rewrite(rtp(19, 0), A, 0.6) is None  # reordered across the switch
    assert rewriter.rewrite(rtp(15, 0), A, 0.6) is None
    assert out(rewriter, rtp(301, 3000), B, 0.6).sequence == 21  # B's run goes on undisturbed
    back = out(rewriter, rtp(40, 0), A, 1.0)  # newer than anything sent of A: a switch back
    assert back.sequence == 22
    assert out(rewriter, rtp(41, 3000), A, 1.0).sequence == 23


def test_a_long_gone_source_may_start_anywhere() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    out(rewriter, rtp(1000, 0), A, 0.0)
    out(rewriter, rtp(1, 0), B, 1.0)
    # Minutes later A's numbers may have wrapped past where we left it.
    assert out(rewriter, rtp(900, 0), A, 300.0).sequence == 1002


def test_original_maps_nacks_back_through_runs() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    sent = {}
    runs = [(A, 65530), (B, 10), (C, 30000), (A, 20)]  # A's first run crosses the wrap
    now = 0.0
    for source, start in runs:
        for seq in range(start, start + 10):
            now += 0.01
            sent[out(rewriter, rtp(seq, 0), source, now).sequence] = (source, seq & 0xFFFF)
    assert min(sent) == 0 and max(sent) == 65535  # the output crossed the wrap as well
    for seq, origin in sent.items():
        assert rewriter.original(seq) == origin
    last = out(rewriter, rtp(30, 0), A, now).sequence
    assert rewriter.original((last + 1) & 0xFFFF) is None  # not sent yet
    assert rewriter.original((65530 - 1) & 0xFFFF) is None  # before the first run


def test_original_remembers_a_bounded_number_of_runs() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    assert rewriter.original(0) is None
    for i in range(20):
        out(rewriter, rtp(i * 100, 0), A + i, i)
    assert rewriter.original(19) == (A + 19, 1900)
    assert rewriter.original(12) == (A + 12, 1200)
    assert rewriter.original(11) is None


def test_malformed_packets_raise_and_change_nothing() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    out(rewriter, rtp(5, 0), A, 0.0)
    broken = rtp(6, 0)[:14]  # the extension block cut short
    with pytest.raises(RtpError):
        rewriter.rewrite(broken, B, 1.0)
    assert out(rewriter, rtp(6, 0), A, 1.0).sequence == 6


@given(
    st.lists(st.tuples(st.integers(1, 2), st.integers(0, 0xFFFF), st.integers(1, 30)), max_size=12),
    st.integers(0, 0xFFFF),
)
def test_output_is_gapless_whatever_the_switches(runs: list[tuple[int, int, int]], first: int) -> None:
    """In-order runs from any sources at any numbers: the subscriber sees seq + 1 every time."""
    rewriter = Rewriter(SSRC, PT, 90000)
    sources = (A, B, C)
    index = 0
    expected = first
    now = 0.0
    sent = []
    for step, start, count in [(0, first, 5), *runs]:
        index = (index + step) % 3  # never the previous source: each run is a switch
        now += 10.0  # past the late-packet window, so any start number is a switch
        for seq in range(start, start + count):
            packet = out(rewriter, rtp(seq, seq * 10), sources[index], now)
            assert packet.sequence == expected & 0xFFFF
            sent.append((packet.sequence, sources[index], seq & 0xFFFF))
            expected += 1
    for seq, source, original in sent:
        if rewriter.original(seq) is not None:  # runs beyond the remembered ones are gone
            assert rewriter.original(seq) == (source, original)
    assert rewriter.original(sent[-1][0]) == sent[-1][1:]


def test_resend_rebuilds_what_was_sent_from_the_input() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    history: dict[tuple[int, int], bytes] = {}
    sent: dict[int, bytes] = {}
    for source, seqs, t in ((7, range(100, 110), 0.0), (9, range(5000, 5010), 1.0)):
        for seq in seqs:
            packet = rtp(seq, seq * 3000)
            history[(source, seq)] = packet
            out = rewriter.rewrite(packet, source, t)
            assert out is not None
            sent[int.from_bytes(out[2:4], "big")] = out
    for seq, out in sent.items():
        assert rewriter.resend(seq, lambda source, s: history.get((source, s))) == out
    assert rewriter.resend(max(sent) + 1, lambda source, s: history.get((source, s))) is None
    assert rewriter.resend(min(sent), lambda source, s: None) is None


def test_cut_continues_the_numbers_and_drops_older_packets() -> None:
    rewriter = Rewriter(SSRC, PT, 90000)
    for seq in range(10, 20):
        assert rewriter.rewrite(rtp(seq, seq * 100), 1, 0.0) is not None
    rewriter.cut(1.0)
    assert rewriter.rewrite(rtp(19, 1900), 1, 1.0) is None  # already sent before the cut
    out = rewriter.rewrite(rtp(60, 6000), 1, 1.5)  # 40 skipped while paused: no gap for the subscriber
    assert out is not None and int.from_bytes(out[2:4], "big") == 20
