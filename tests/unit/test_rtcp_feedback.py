"""RTCP feedback (RFC 4585, RFC 5104, REMB, transport-cc) and the NACK machinery around it."""

from __future__ import annotations

import pytest

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.nack import NackTracker, RtpHistory
from streamhive.formats.rtp.rtcp import (
    Fir,
    Nack,
    OtherRtcp,
    Pli,
    ReceiverReport,
    Remb,
    SourceDescription,
    TransportCc,
    parse_compound,
    serialize_compound,
)

# --- packets --------------------------------------------------------------------------------


def test_nack_fixture() -> None:
    data = bytes.fromhex(
        "81cd0003"  # V=2, FMT=1 (generic NACK), PT=205, 3 words
        "00000001"  # packet sender
        "0a0b0c0d"  # media source
        "00640005"  # PID 100, BLP 0b101: 101 and 103 lost too
    )
    nack = Nack(1, 0x0A0B0C0D, [100, 101, 103])
    assert nack.lost == (100, 101, 103)
    assert nack.serialize() == data
    assert parse_compound(data) == [nack]


@pytest.mark.parametrize(
    ("lost", "pairs"),
    [
        ([5], [(5, 0)]),
        ([5, 21], [(5, 0x8000)]),  # 17 numbers per pair
        ([5, 22], [(5, 0), (22, 0)]),
        ([65534, 65535, 0, 1], [(65534, 0b111)]),  # across the wrap
        ([1, 0, 65535, 65534, 1], [(65534, 0b111)]),  # any order, duplicates
        (range(40), [(0, 0xFFFF), (17, 0xFFFF), (34, 0b11111)]),
        ([65530, 10], [(65530, 0x8000)]),
        ([65530, 11], [(65530, 0), (11, 0)]),
    ],
)
def test_nack_pairs(lost: list[int], pairs: list[tuple[int, int]]) -> None:
    data = Nack(7, 8, lost).serialize()
    fci = data[12:]
    assert [
        (int.from_bytes(fci[i : i + 2], "big"), int.from_bytes(fci[i + 2 : i + 4], "big"))
        for i in range(0, len(fci), 4)
    ] == pairs
    (parsed,) = parse_compound(data)
    assert isinstance(parsed, Nack) and parsed == Nack(7, 8, lost)


def test_nack_parse_overlapping_pairs() -> None:
    data = bytes.fromhex("81cd0004 00000001 00000002 00640001 00650000")
    assert parse_compound(data) == [Nack(1, 2, (100, 101))]


def test_pli_fir_fixtures() -> None:
    pli = bytes.fromhex("81ce0002 00000001 00000002")
    assert Pli(1, 2).serialize() == pli and parse_compound(pli) == [Pli(1, 2)]
    fir = bytes.fromhex(
        "84ce0006"  # FMT=4, PT=206, 6 words
        "00000001"  # packet sender
        "00000000"  # media source: unused in FIR
        "0000000a 07000000"  # SSRC 10, command sequence number 7
        "0000000b ff000000"
    )
    made = Fir(1, ((10, 7), (11, 255)))
    assert made.serialize() == fir and parse_compound(fir) == [made]


def test_remb_fixture() -> None:
    # libwebrtc's REMB test vector: 0x3fb93 << 1 bits/s for three SSRCs.
    data = bytes.fromhex("8fce0007 12345678 00000000 52454d42 0307fb93 23456789 2345678a 2345678b")
    remb = Remb(0x12345678, 522022, [0x23456789, 0x2345678A, 0x2345678B])
    assert remb.serialize() == data
    assert parse_compound(data) == [remb]


@pytest.mark.parametrize("bitrate", [0, 1, 300_000, (1 << 18) - 1, 1 << 18, 2_500_000_000, 0x3FFFF << 63])
def test_remb_bitrates(bitrate: int) -> None:
    (parsed,) = parse_compound(Remb(1, bitrate, ()).serialize())
    assert isinstance(parsed, Remb)
    assert parsed.bitrate <= bitrate and parsed.bitrate >= bitrate - (bitrate >> 17)  # 18 bits kept


def test_transport_cc_stays_opaque() -> None:
    aligned = TransportCc(1, 2, bytes.fromhex("0001000220000102"))
    assert parse_compound(aligned.serialize()) == [aligned]
    odd = TransportCc(1, 2, bytes.fromhex("000100022000010240"))  # 9 bytes: padded with the P bit
    data = odd.serialize()
    assert data[0] == 0xAF and len(data) % 4 == 0 and data[-1] == 3
    assert parse_compound(data) == [odd]


def test_a_chrome_like_compound() -> None:
    packets = [
        ReceiverReport(1),
        Remb(1, 1_000_000, (5,)),
        Nack(1, 5, (10, 12)),
        Pli(1, 5),
        SourceDescription.with_cname(1, "x"),
    ]
    assert parse_compound(serialize_compound(packets)) == packets  # type: ignore[arg-type]


def test_unmodelled_feedback_comes_through() -> None:
    data = bytes.fromhex(
        "83cd0002 00000001 00000002"  # RTPFB FMT 3 (TMMBR) without its FCI
        "8fce0003 00000001 00000000 41424344"  # AFB that is not REMB
        "8fce0002 00000001 00000000"  # AFB too short to say
    )
    assert parse_compound(data) == [
        OtherRtcp(205, 3, bytes.fromhex("00000001 00000002")),
        OtherRtcp(206, 15, bytes.fromhex("00000001 00000000 41424344")),
        OtherRtcp(206, 15, bytes.fromhex("00000001 00000000")),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("81cd0001 00000001", "shorter than its two SSRCs"),
        ("81ce0000", "shorter than its two SSRCs"),
        ("8fcd0001 00000001", "shorter than its two SSRCs"),
        ("a1cd0003 00000001 00000002 00640001", "not whole 32-bit words"),  # padding of 1
        ("84ce0003 00000001 00000000 0000000a", "whole 8-byte entries"),
        ("8fce0004 00000001 00000000 52454d42 0107fb93", "1 SSRCs overruns"),
        ("8fce0003 00000001 00000000 52454d42", "shorter than its bitrate"),
        ("81cd0004 00000001 00000002 00640001", "overruns the"),  # the header's length lies
    ],
)
def test_parse_errors(data: str, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_compound(bytes.fromhex(data))


def test_serialize_errors() -> None:
    with pytest.raises(RtpError, match="at least one"):
        Nack(1, 2, ()).serialize()
    with pytest.raises(RtpError, match="255 SSRCs"):
        Remb(1, 1, tuple(range(256))).serialize()
    with pytest.raises(RtpError, match="negative"):
        Remb(1, -1, ()).serialize()
    with pytest.raises(RtpError, match="does not fit"):
        Remb(1, 1 << 82, ()).serialize()
    assert len(Fir(1, ((1, 1),) * 32).serialize()) == 12 + 32 * 8  # FIR's count is its FMT


# --- NackTracker ----------------------------------------------------------------------------


def receive(tracker: NackTracker, sequences: list[int] | range, now: float = 0.0) -> None:
    for seq in sequences:
        tracker.packet(seq, now)


def test_no_loss_no_nack() -> None:
    tracker = NackTracker()
    receive(tracker, range(100))
    assert tracker.due(1.0) == [] and tracker.missing == 0


def test_retries_then_gives_up() -> None:
    tracker = NackTracker()
    receive(tracker, [1, 2, 5])
    assert tracker.missing == 2
    assert tracker.due(0.005) == []  # within the reorder delay
    assert tracker.due(0.011) == [3, 4]
    assert tracker.due(0.02) == []  # within the retry interval
    assert tracker.due(0.032) == [3, 4]
    assert tracker.due(0.053) == [3, 4]  # the third and last request
    assert tracker.due(0.1) == [] and tracker.missing == 0


def test_reordering_fills_the_gap_before_the_nack() -> None:
    tracker = NackTracker()
    receive(tracker, [1, 3])
    tracker.packet(2, 0.004)
    assert tracker.due(0.02) == [] and tracker.missing == 0


def test_retransmission_ends_the_requests() -> None:
    tracker = NackTracker()
    receive(tracker, [10, 13])
    assert tracker.due(0.02) == [11, 12]
    tracker.packet(12, 0.03)
    assert tracker.due(0.05) == [11]


def test_wrap_around() -> None:
    tracker = NackTracker()
    receive(tracker, [65533, 65534, 1, 2])
    assert tracker.due(0.02) == [65535, 0]
    tracker.packet(0, 0.021)
    assert tracker.due(0.05) == [65535]


def test_rtt_sets_the_retry_interval_and_time_gives_up() -> None:
    tracker = NackTracker()
    tracker.rtt = 0.6
    receive(tracker, [1, 3])
    assert tracker.due(0.02) == [2]
    assert tracker.due(0.5) == []
    assert tracker.due(0.62) == [2]
    assert tracker.due(1.01) == [] and tracker.missing == 0  # a second after it went missing


def test_too_old_packets_are_given_up() -> None:
    tracker = NackTracker(max_age=500)
    receive(tracker, [1, 3])
    receive(tracker, range(4, 503))
    assert tracker.missing == 1  # 2 is 500 behind the newest: still worth asking for
    tracker.packet(503, 0.0)  # now 501 behind: the fast path keeps it, due() drops it
    assert tracker.due(0.02) == [] and tracker.missing == 0


def test_a_huge_gap_keeps_only_the_newest() -> None:
    tracker = NackTracker(max_age=500)
    receive(tracker, [0, 2000])
    assert tracker.missing == 500
    assert tracker.due(0.02) == list(range(1500, 2000))


def test_a_sender_restart_resyncs() -> None:
    tracker = NackTracker()
    receive(tracker, [100, 102])
    receive(tracker, [40000, 40001, 40003])  # a jump confirmed by its successor: a restart
    assert tracker.due(0.02) == [40002]


def test_a_stray_sequence_number_is_ignored() -> None:
    tracker = NackTracker()
    receive(tracker, [100, 102, 40000, 103, 30000, 104])
    assert tracker.due(0.02) == [101]
    tracker.packet((101 - 600) & 0xFFFF, 0.0)  # far behind: ignored too
    assert tracker.missing == 1  # still waiting for 101


def test_duplicates_change_nothing() -> None:
    tracker = NackTracker()
    receive(tracker, [1, 1, 3, 3, 1])
    assert tracker.due(0.02) == [2]


# --- RtpHistory -----------------------------------------------------------------------------


def test_history_finds_and_forgets() -> None:
    history = RtpHistory(4)
    for seq in range(65533, 65536 + 3):
        history.add(seq, f"p{seq & 0xFFFF}".encode())
    assert [history.get(s) for s in (65535, 0, 1, 2)] == [b"p65535", b"p0", b"p1", b"p2"]
    assert history.get(65534) is None  # overwritten by 2
    assert history.get(3) is None  # never sent
    history.add(6, b"p6")
    assert history.get(2) is None and history.get(6) == b"p6"


def test_history_default_size() -> None:
    history = RtpHistory()
    for seq in range(1000):
        history.add(seq, bytes((seq & 0xFF,)))
    assert history.size == 512
    assert history.get(999) == bytes((999 & 0xFF,)) and history.get(488) == bytes((488 & 0xFF,))
    assert history.get(487) is None
    with pytest.raises(ValueError, match="at least 1"):
        RtpHistory(0)
