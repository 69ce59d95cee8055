"""RTSP structured headers, URLs and control resolution, with values real clients and cameras send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamhive.protocols.rtsp.headers import (
    ClockRange,
    NptRange,
    RtpInfo,
    Transport,
    format_rtp_info,
    format_session,
    parse_public,
    parse_range,
    parse_rtp_info,
    parse_session,
    parse_transports,
)
from streamhive.protocols.rtsp.message import RtspError
from streamhive.protocols.rtsp.url import RtspUrl, path_of, resolve_control, split_control

# ---------------------------------------------------------------------------------------- Transport


def test_ffmpeg_tcp_publish() -> None:
    [t] = parse_transports("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
    assert (t.profile, t.lower, t.multicast, t.interleaved, t.mode) == (
        "RTP/AVP",
        "TCP",
        False,
        (0, 1),
        "record",
    )
    assert t.notes == []
    assert t.encode() == "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"


def test_vlc_udp_play_and_alternatives() -> None:
    ts = parse_transports(
        'RTP/AVP;unicast;client_port=50000-50001, RTP/AVP/TCP;unicast;interleaved=0-1;mode="PLAY"'
    )
    assert [t.lower for t in ts] == ["UDP", "TCP"]
    assert ts[0].client_port == (50000, 50001)
    assert ts[1].mode == "play"


def test_gstreamer_and_camera_spellings() -> None:
    [t] = parse_transports("rtp/avp/udp;UNICAST;client_port=5000-5001;ssrc=1a2B3c;MODE=Record;")
    assert (t.lower, t.ssrc, t.mode) == ("UDP", 0x1A2B3C, "record")
    [t] = parse_transports("RTP/AVP;multicast;destination=232.0.1.2;port=5000-5001;ttl=16")
    assert (t.multicast, t.destination, t.port, t.ttl) == (True, "232.0.1.2", (5000, 5001), 16)
    [t] = parse_transports("RTP/SAVP;unicast;client_port=4588-4589;source=10.0.0.1;server_port=6970-6971")
    assert (t.profile, t.source, t.server_port) == ("RTP/SAVP", "10.0.0.1", (6970, 6971))


def test_server_answer_encoding() -> None:
    t = Transport(client_port=(5000, 5001), server_port=(6000, 6001), ssrc=0xDEAD, mode="play")
    assert t.encode() == "RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;ssrc=0000DEAD;mode=play"
    assert parse_transports(t.encode()) == [t]


def test_unknown_parameters_survive() -> None:
    [t] = parse_transports("RTP/AVP;unicast;client_port=5000-5001;append;layers=2")
    assert t.extra == [("append", None), ("layers", "2")]
    assert t.encode().endswith(";append;layers=2")


def test_lenient_pairs_are_noted() -> None:
    [t] = parse_transports("RTP/AVP/TCP;interleaved=4")
    assert t.interleaved == (4, 5) and "single value" in t.notes[0]
    [t] = parse_transports("RTP/AVP;client_port=5000-5003")
    assert t.client_port == (5000, 5003) and "not a consecutive pair" in t.notes[0]
    [t] = parse_transports("RTP/AVP;client_port=5001-5002")
    assert t.client_port == (5001, 5002) and "odd" in t.notes[0]


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("", 461),
        (" , ", 461),
        ("RAW/RAW/UDP;unicast", 461),
        ("RTP/AVP/SCTP;unicast", 461),
        ("MP2T/H2221/UDP;unicast", 461),
        ("RTP/AVP/TCP;interleaved=256-257", 461),
        ("RTP/AVP/TCP;interleaved=255", 461),
        ("RTP/AVP/TCP;interleaved=3-2", 461),
        ("RTP/AVP;client_port=70000-70001", 461),
        ("RTP/AVP;client_port=-1-0", 400),
        ("RTP/AVP;client_port=a-b", 400),
        ("RTP/AVP;ttl=300", 461),
        ("RTP/AVP;ttl=x", 400),
        ("RTP/AVP;ssrc=xyz", 400),
        ("RTP/AVP;ssrc=123456789", 400),
        ("RTP/AVP;mode=teleport", 461),
    ],
)
def test_transport_errors(value: str, status: int) -> None:
    with pytest.raises(RtspError) as info:
        parse_transports(value)
    assert info.value.status == status


# ---------------------------------------------------------------------------------------- Session, Range, RTP-Info, Public


def test_session() -> None:
    assert parse_session("12345678;timeout=60") == ("12345678", 60)
    assert parse_session(" 6B8B4567 ") == ("6B8B4567", None)
    assert parse_session("abc; timeout = 30") == ("abc", 30)
    assert parse_session("abc;timeout=soon") == ("abc", None)
    assert format_session("abc", 60) == "abc;timeout=60" and format_session("abc") == "abc"
    with pytest.raises(RtspError):
        parse_session(";timeout=60")


def test_range() -> None:
    assert parse_range("npt=now-") == NptRange(None)
    assert parse_range("npt=0.000-") == NptRange(0.0)
    assert parse_range("npt = 0-") == NptRange(0.0)
    assert parse_range("npt=10-20.5") == NptRange(10.0, 20.5)
    assert parse_range("npt=1:02:03.5-") == NptRange(3723.5)
    assert parse_range("npt=0.000-;time=19970123T143720Z") == NptRange(0.0)
    assert parse_range("clock=19961108T142300Z-19961108T143520.25Z") == ClockRange(
        datetime(1996, 11, 8, 14, 23, tzinfo=UTC), datetime(1996, 11, 8, 14, 35, 20, 250000, tzinfo=UTC)
    )
    assert NptRange(None).encode() == "npt=now-" and NptRange(0.0).encode() == "npt=0.000-"
    assert NptRange(1.5, 2).encode() == "npt=1.500-2.000"
    clock = ClockRange(datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC))
    assert clock.encode() == "clock=20240102T030405.5Z-" and parse_range(clock.encode()) == clock


@pytest.mark.parametrize(
    "value",
    ["npt=abc-", "npt=5-1", "smpte=10:07:00-10:07:33:05.01", "npt=0", "npt=1:99:00-", "clock=2024-", "bogus"],
)
def test_bad_range(value: str) -> None:
    with pytest.raises(RtspError) as info:
        parse_range(value)
    assert info.value.status == 457


def test_rtp_info() -> None:
    text = format_rtp_info([("rtsp://h/s/trackID=0", 1234, 567890), ("rtsp://h/s/trackID=1", None, 5)])
    assert text == "url=rtsp://h/s/trackID=0;seq=1234;rtptime=567890,url=rtsp://h/s/trackID=1;rtptime=5"
    assert parse_rtp_info(text) == [
        RtpInfo("rtsp://h/s/trackID=0", 1234, 567890),
        RtpInfo("rtsp://h/s/trackID=1", None, 5),
    ]
    # a camera URL with commas and semicolons in its query, spaces, and a garbled rtptime
    camera = "url=rtsp://10.0.0.5/ch1?a=1,2;b=3/track1;seq=7;rtptime=-4, url=rtsp://10.0.0.5/ch1?a=1,2;b=3/track2; seq=70000"
    assert parse_rtp_info(camera) == [
        RtpInfo("rtsp://10.0.0.5/ch1?a=1,2;b=3/track1", 7, None),
        RtpInfo("rtsp://10.0.0.5/ch1?a=1,2;b=3/track2", None, None),
    ]
    assert parse_rtp_info("") == []


def test_public() -> None:
    assert parse_public("OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, set_parameter,") == [
        "OPTIONS",
        "DESCRIBE",
        "SETUP",
        "TEARDOWN",
        "PLAY",
        "PAUSE",
        "GET_PARAMETER",
        "SET_PARAMETER",
    ]


# ---------------------------------------------------------------------------------------- URLs


def test_url_with_credentials() -> None:
    u = RtspUrl.parse(
        "rtsp://admin:p%40ss%3Aw%2Frd@192.168.1.64:8554/Streaming/Channels/101?transportmode=unicast"
    )
    assert (u.scheme, u.host, u.port, u.user, u.password) == (
        "rtsp",
        "192.168.1.64",
        8554,
        "admin",
        "p@ss:w/rd",
    )
    assert (u.path, u.query) == ("/Streaming/Channels/101", "transportmode=unicast")
    assert u.without_credentials() == "rtsp://192.168.1.64:8554/Streaming/Channels/101?transportmode=unicast"
    assert "p@ss" not in str(u) and "p@ss" not in repr(u)


def test_url_defaults_and_ipv6() -> None:
    u = RtspUrl.parse("RTSP://cam.local")
    assert (u.scheme, u.host, u.port, u.path, u.user, u.password) == (
        "rtsp",
        "cam.local",
        554,
        "",
        None,
        None,
    )
    assert RtspUrl.parse("rtsps://h/x").port == 322
    assert RtspUrl.parse("rtsp://cam:554/x").without_credentials() == "rtsp://cam/x"
    v6 = RtspUrl.parse("rtsp://user@[fe80::1]:8554/live")
    assert (v6.host, v6.port, v6.user, v6.password) == ("fe80::1", 8554, "user", None)
    assert v6.without_credentials() == "rtsp://[fe80::1]:8554/live"
    assert RtspUrl.parse("rtsp://u:pa#ss@h/x").password == "pa#ss"
    assert RtspUrl.parse("rtsp://a:b@c@h/x").user == "a" and RtspUrl.parse("rtsp://a:b@c@h/x").host == "h"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://h/x", "scheme"),
        ("cam.local/live", "not a URL"),
        ("rtsp://:554/x", "host"),
        ("rtsp://h:0/x", "port"),
        ("rtsp://h:65536/x", "port"),
        ("rtsp://h:abc/x", "port"),
        ("rtsp://fe80::1/x", "brackets"),
        ("rtsp://[fe80::1/x", "IPv6"),
        ("rtsp://[::1]x/y", "IPv6"),
    ],
)
def test_bad_urls(url: str, words: str) -> None:
    with pytest.raises(RtspError, match=words) as info:
        RtspUrl.parse(url)
    assert isinstance(info.value, ValueError) and info.value.status == 400


@pytest.mark.parametrize(
    ("base", "control", "expected"),
    [
        ("rtsp://h/s", "trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h/s/", "trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h/s/", "/trackID=1", "rtsp://h/s/trackID=1"),
        ("rtsp://h/s", "*", "rtsp://h/s"),
        ("rtsp://h/s", "", "rtsp://h/s"),
        ("rtsp://h/s", "rtsp://other:554/s/track1", "rtsp://other:554/s/track1"),
        ("rtsp://h/s?token=a", "trackID=0", "rtsp://h/s?token=a/trackID=0"),
        ("rtsp://h/s", "?ctype=video", "rtsp://h/s?ctype=video"),
    ],
)
def test_resolve_control(base: str, control: str, expected: str) -> None:
    assert resolve_control(base, control) == expected


def test_path_of() -> None:
    assert path_of("rtsp://h:8554/live/cam1?token=x") == "live/cam1"
    assert path_of("/live/cam1/") == "live/cam1"
    assert path_of("rtsp://h:8554") == "" and path_of("*") == ""
    assert path_of("rtsp://h/live/my%20cam") == "live/my cam"
    assert path_of("rtsp://h:8554/live/cam/trackID=0") == "live/cam/trackID=0"  # no stripping unasked


def test_split_control() -> None:
    controls = ["trackID=0", "trackID=1", "trackID=10"]
    assert split_control("rtsp://h:8554/live/cam/trackID=1", controls) == ("live/cam", "trackID=1")
    assert split_control("rtsp://h:8554/live/cam/trackID=10", controls) == ("live/cam", "trackID=10")
    assert split_control("rtsp://h:8554/live/cam?tok=1/trackID=0", controls) == ("live/cam", "trackID=0")
    assert split_control("rtsp://h:8554/live/cam/trackID=0?tok=1", controls) == ("live/cam", "trackID=0")
    assert split_control("rtsp://h:8554/live/cam/", controls) == ("live/cam", None)
    assert split_control("rtsp://h/trackID=0", controls) == ("", "trackID=0")
    assert split_control("rtsp://h/live/xtrackID=0", controls) == ("live/xtrackID=0", None)
    assert split_control("/live/cam/streamid=1", ["rtsp://h/live/cam/streamid=1", "*"]) == (
        "live/cam",
        "rtsp://h/live/cam/streamid=1",
    )
