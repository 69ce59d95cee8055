"""RTCP packets (RFC 3550 section 6), NTP time, and receiver statistics (appendix A)."""

from __future__ import annotations

import time

import pytest

from streamhive.formats.rtp import RtpError
from streamhive.formats.rtp.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    OtherRtcp,
    ReceiverReport,
    ReceiverStats,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_now,
    ntp_to_unix,
    parse_compound,
    serialize_compound,
    unix_to_ntp,
)

BLOCK = ReportBlock(0x0A0B0C0D, 25, -3, 0x0001FFFF, 120, 0x12345678, 65536)

# An RR with one report block, written out field by field.
RR_BYTES = bytes.fromhex(
    "81c90007"  # V=2, RC=1, PT=201, length 7 words
    "00000001"  # sender SSRC
    "0a0b0c0d"  # source SSRC
    "19fffffd"  # fraction lost 25, cumulative lost -3 (24-bit two's complement)
    "0001ffff"  # extended highest sequence number
    "00000078"  # jitter 120
    "12345678"  # LSR
    "00010000"  # DLSR: one second
)


def test_receiver_report_fixture() -> None:
    report = ReceiverReport(1, (BLOCK,))
    assert report.serialize() == RR_BYTES
    assert parse_compound(RR_BYTES) == [report]


def test_compound_round_trip() -> None:
    packets = [
        SenderReport(0x11223344, unix_to_ntp(1_700_000_000.25), 987654321, 1000, 1_200_000, (BLOCK,)),
        SourceDescription.with_cname(0x11223344, "streamhive@example"),
        OtherRtcp(206, 2, bytes.fromhex("1122334455667788")),  # an SLI, which is not modelled
        Bye((0x11223344, 5), "stream ended"),
        ReceiverReport(7),
        Bye(()),
    ]
    data = serialize_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets
    assert packets[1].chunks[0].cname == "streamhive@example"


def test_sdes_several_chunks_and_items() -> None:
    sdes = SourceDescription(
        (
            SdesChunk(1, ((1, b"a"), (2, b"name"), (6, b"tool"))),
            SdesChunk(2, ((1, b"abc"),)),  # exactly fills 8 bytes: needs a whole null word
            SdesChunk(3),
        )
    )
    data = sdes.serialize()
    assert parse_compound(data) == [sdes]
    assert [chunk.cname for chunk in sdes.chunks] == ["a", "abc", None]


def test_padding_is_removed() -> None:
    body = bytes.fromhex("1122334455667788")
    data = bytes.fromhex("a2ce0003") + body + bytes.fromhex("00000004")
    assert parse_compound(data) == [OtherRtcp(206, 2, body)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (RR_BYTES + b"\x80", "trailing bytes"),
        (b"\x41" + RR_BYTES[1:], "version 1"),
        (RR_BYTES[:-4], "overruns the 28-byte datagram"),
        (b"\x82" + RR_BYTES[1:], "2 report blocks overruns"),
        (b"\xa1" + RR_BYTES[1:-1] + b"\x00", "padding count 0"),
        (b"\xa1" + RR_BYTES[1:-1] + b"\x40", "padding count 64"),
        (bytes.fromhex("80c80001 00000001"), "shorter than its sender info"),
        (bytes.fromhex("81c90000"), "without its sender SSRC"),
        (bytes.fromhex("82ca0002 00000001 01000000"), "2 chunks overruns"),
        (bytes.fromhex("81ca0002 00000001 01096100"), "item overruns"),
        (bytes.fromhex("81ca0002 00000001 01026162"), "lacks its terminating null"),
        (bytes.fromhex("82cb0001 00000001"), "2 sources overruns"),
        (bytes.fromhex("81cb0002 00000001 09616263"), "reason overruns"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_compound(data)


def test_unknown_types_come_through() -> None:
    data = bytes.fromhex("83cd0002 00000001 00000002") + bytes.fromhex("80cf0001 deadbeef")
    assert parse_compound(data) == [
        OtherRtcp(205, 3, bytes.fromhex("00000001 00000002")),  # TMMBR
        OtherRtcp(207, 0, bytes.fromhex("deadbeef")),
    ]


def test_serialize_errors() -> None:
    with pytest.raises(RtpError, match="24 signed bits"):
        ReportBlock(1, 0, 1 << 23, 0, 0, 0, 0).serialize()
    with pytest.raises(RtpError, match="at most 31"):
        ReceiverReport(1, (BLOCK,) * 32).serialize()
    with pytest.raises(RtpError, match="cannot be encoded"):
        SourceDescription((SdesChunk(1, ((1, bytes(256)),)),)).serialize()
    with pytest.raises(RtpError, match="255 bytes"):
        Bye((1,), "x" * 256).serialize()
    with pytest.raises(RtpError, match="multiple of 4"):
        OtherRtcp(206, 1, b"abc").serialize()


def test_ntp_conversions() -> None:
    assert unix_to_ntp(0.0) == NTP_UNIX_OFFSET << 32
    assert unix_to_ntp(1.5) == ((NTP_UNIX_OFFSET + 1) << 32) | 0x80000000
    assert ntp_to_unix(unix_to_ntp(1_700_000_000.123456)) == pytest.approx(1_700_000_000.123456, abs=1e-6)
    assert ntp_middle32(0x1122334455667788) == 0x33445566
    assert abs(ntp_to_unix(ntp_now()) - time.time()) < 5


def feed(stats: ReceiverStats, sequences: list[int], transit: int = 1000) -> None:
    for seq in sequences:
        stats.update(seq & 0xFFFF, seq * 3000, seq * 3000 + transit)


def test_stats_no_loss() -> None:
    stats = ReceiverStats()
    feed(stats, list(range(100, 200)))
    block = stats.report_block(42, now=0.0)
    assert block == ReportBlock(42, 0, 0, 199, 0, 0, 0)


def test_stats_loss_and_fraction_per_interval() -> None:
    stats = ReceiverStats()
    feed(stats, [s for s in range(1, 100) if s % 4])  # 1..99 expected, every fourth lost
    block = stats.report_block(1, now=0.0)
    assert block.highest_sequence == 99
    assert block.cumulative_lost == 24
    assert block.fraction_lost == 24 * 256 // 99
    feed(stats, list(range(100, 200)))  # next interval: no loss
    block = stats.report_block(1, now=0.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 24)


def test_stats_wrap_counts_cycles() -> None:
    stats = ReceiverStats()
    feed(stats, list(range(0xFFF0, 0x10010)))
    block = stats.report_block(1, now=0.0)
    assert block.highest_sequence == 0x1000F
    assert block.cumulative_lost == 0


def test_stats_reordering_and_duplicates() -> None:
    stats = ReceiverStats()
    feed(stats, [1, 3, 2, 4, 4, 4, 5])  # two duplicates: more received than expected
    block = stats.report_block(1, now=0.0)
    assert block.highest_sequence == 5
    assert block.cumulative_lost == -2
    assert block.fraction_lost == 0


def test_stats_jitter() -> None:
    stats = ReceiverStats()
    for i in range(200):
        stats.update(i, i * 3000, i * 3000 + (0 if i % 2 else 160))  # transit alternates by 160
    # J converges to the mean |D| = 160 (A.8's estimator, with its integer rounding).
    assert 150 <= stats.report_block(1, now=0.0).jitter <= 160


def test_stats_restarted_sender() -> None:
    stats = ReceiverStats()
    feed(stats, list(range(10)))
    feed(stats, [30000])  # a lone jump is not believed...
    assert stats.extended_highest_sequence == 9
    feed(stats, [30001, 30002])  # ...until the next packet follows it
    block = stats.report_block(1, now=0.0)
    assert block.highest_sequence == 30002
    assert block.cumulative_lost == 0


def test_stats_lsr_dlsr() -> None:
    stats = ReceiverStats()
    feed(stats, [1, 2])
    ntp = unix_to_ntp(1_700_000_000.0)
    stats.sender_report_received(ntp_middle32(ntp), arrival_time=50.0)
    block = stats.report_block(1, now=52.5)
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == int(2.5 * 65536)
