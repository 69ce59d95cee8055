"""SDP: descriptions as ffmpeg, GStreamer, IP cameras and live555 really send them, and encoding."""

from __future__ import annotations

import pytest

from streamhive.formats.sdp import (
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    parse_sdp,
)


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# ffmpeg -f rtsp (ANNOUNCE body), H.264 + AAC
FFMPEG = crlf(
    """v=0
o=- 0 0 IN IP4 127.0.0.1
s=No Name
c=IN IP4 127.0.0.1
t=0 0
a=tool:libavformat 60.16.100
m=video 0 RTP/AVP 96
b=AS:1000
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA; profile-level-id=64001F
a=control:streamid=0
m=audio 0 RTP/AVP 97
b=AS:128
a=rtpmap:97 MPEG4-GENERIC/44100/2
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500
a=control:streamid=1
"""
)

# gst-rtsp-server DESCRIBE answer, H.264 + Opus, absolute controls
GSTREAMER = crlf(
    """v=0
o=- 1188340656180883 1 IN IP4 127.0.0.1
s=Session streamed with GStreamer
i=rtsp-server
t=0 0
a=tool:GStreamer
a=type:broadcast
a=range:npt=now-
a=control:rtsp://127.0.0.1:8554/test
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:2097
a=rtpmap:96 H264/90000
a=framerate:30
a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==;profile-level-id=42c01e
a=control:rtsp://127.0.0.1:8554/test/stream=0
a=ts-refclk:local
a=mediaclk:sender
m=audio 0 RTP/AVP 97
c=IN IP4 0.0.0.0
b=AS:64
a=rtpmap:97 OPUS/48000/2
a=fmtp:97 sprop-maxcapturerate=48000;sprop-stereo=1
a=control:rtsp://127.0.0.1:8554/test/stream=1
"""
)

# a Hikvision-style camera: e= line, vendor attributes, G.711 audio, controls with a query
HIKVISION = crlf(
    """v=0
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:5000
a=recvonly
a=x-dimensions:1920,1080
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKpY1QPAET8s3AQEBQAABwgAAV+QB,aO4xsg==
m=audio 0 RTP/AVP 0
c=IN IP4 0.0.0.0
b=AS:50
a=recvonly
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast
a=rtpmap:0 PCMU/8000
a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000000000000000000000;
a=appversion:1.0
"""
)

# an Axis-style camera: 20-digit session id, ONVIF metadata track, H.265
AXIS = crlf(
    """v=0
o=- 12345678901234567890 1 IN IP4 192.168.0.90
s=Session streamed with GStreamer
i=rtsp-server
e=NONE
t=0 0
a=tool:GStreamer
a=type:broadcast
a=range:npt=now-
a=control:rtsp://192.168.0.90:554/axis-media/media.amp?videocodec=h265
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:50000
a=rtpmap:96 H265/90000
a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwB4oAPAgBDlllmqSTK5gQ==;sprop-pps=RAHBcrRiQA==
a=control:rtsp://192.168.0.90:554/axis-media/media.amp/stream=0?videocodec=h265
a=framerate:25.000000
a=transform:1.000000,0.000000,0.000000;0.000000,1.000000,0.000000;0.000000,0.000000,1.000000
m=application 0 RTP/AVP 98
c=IN IP4 0.0.0.0
a=rtpmap:98 vnd.onvif.metadata/90000
a=control:rtsp://192.168.0.90:554/axis-media/media.amp/stream=1?videocodec=h265
"""
)

# live555 (testOnDemandRTSPServer / proxy server)
LIVE555 = crlf(
    """v=0
o=- 1700000000123456 1 IN IP4 192.168.1.10
s=H.264 Video, streamed by the LIVE555 Media Server
i=test.264
t=0 0
a=tool:LIVE555 Streaming Media v2023.01.19
a=type:broadcast
a=control:*
a=range:npt=0-
a=x-qt-text-nam:H.264 Video, streamed by the LIVE555 Media Server
a=x-qt-text-inf:test.264
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:500
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==
a=control:track1
"""
)

# a cheap camera: bare LF, no o=/s=/t=, stray spaces, static payload types without rtpmap, junk lines
CHEAP_CAMERA = """v=0
  c=IN IP4 0.0.0.0
garbage line without equals
a=control:*
m=video 0 RTP/AVP 26
a=control: track1
a=fmtp:26
m=audio 0 RTP/AVP 8 0
a=control:track2
a=rtpmap:0 PCMU/8000/1
xx=ignored
"""


def test_ffmpeg() -> None:
    sdp = parse_sdp(FFMPEG)
    assert (sdp.version, sdp.session_name, sdp.timing) == (0, "No Name", (0, 0))
    assert sdp.origin == Origin("-", "0", "0", "IN", "IP4", "127.0.0.1")
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sdp.attribute("tool") == "libavformat 60.16.100"
    video, audio = sdp.media
    assert (video.kind, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ["96"])
    assert video.bandwidths == [("AS", 1000)]
    assert video.rtpmap() == {96: RtpMap("H264", 90000, None)}
    assert video.fmtp() == {
        96: {
            "packetization-mode": "1",
            "sprop-parameter-sets": "Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA",
            "profile-level-id": "64001F",
        }
    }
    assert video.control == "streamid=0"
    assert audio.rtpmap() == {97: RtpMap("MPEG4-GENERIC", 44100, 2)}
    assert audio.fmtp()[97]["config"] == "121056E500" and audio.fmtp()[97]["mode"] == "AAC-hbr"


def test_gstreamer() -> None:
    sdp = parse_sdp(GSTREAMER.encode())
    assert sdp.information == "rtsp-server" and sdp.control == "rtsp://127.0.0.1:8554/test"
    assert sdp.attribute("range") == "npt=now-"
    video, audio = sdp.media
    assert video.connection == Connection("IN", "IP4", "0.0.0.0")
    assert video.attribute("framerate") == "30"
    assert video.fmtp()[96]["sprop-parameter-sets"] == "Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg=="
    assert video.control == "rtsp://127.0.0.1:8554/test/stream=0"
    assert audio.rtpmap() == {97: RtpMap("OPUS", 48000, 2)}
    assert audio.fmtp() == {97: {"sprop-maxcapturerate": "48000", "sprop-stereo": "1"}}


def test_hikvision() -> None:
    sdp = parse_sdp(HIKVISION)
    assert sdp.bandwidths == [("AS", 5050)] and sdp.origin.session_version == "1109162014219192"
    video, audio = sdp.media
    assert video.attribute("recvonly") == "" and video.attribute("sendonly") is None
    assert video.fmtp()[96]["profile-level-id"] == "420029"
    assert video.fmtp()[96]["sprop-parameter-sets"] == "Z00AKpY1QPAET8s3AQEBQAABwgAAV+QB,aO4xsg=="
    assert audio.rtpmap() == {0: RtpMap("PCMU", 8000, None)}
    assert audio.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast"
    assert (audio.attribute("Media_header") or "").startswith("MEDIAINFO=") and audio.attribute(
        "appversion"
    ) == "1.0"


def test_axis() -> None:
    sdp = parse_sdp(AXIS)
    assert sdp.origin.session_id == "12345678901234567890"
    video, meta = sdp.media
    assert video.rtpmap() == {96: RtpMap("H265", 90000, None)}
    assert set(video.fmtp()[96]) == {"sprop-vps", "sprop-sps", "sprop-pps"}
    assert video.fmtp()[96]["sprop-pps"] == "RAHBcrRiQA=="
    assert (meta.kind, meta.rtpmap()) == ("application", {98: RtpMap("vnd.onvif.metadata", 90000, None)})


def test_live555() -> None:
    sdp = parse_sdp(LIVE555)
    assert sdp.session_name.startswith("H.264 Video") and sdp.control == "*"
    [video] = sdp.media
    assert video.control == "track1" and video.bandwidths == [("AS", 500)]
    assert video.fmtp()[96]["profile-level-id"] == "42C01E"


def test_cheap_camera_and_static_payload_types() -> None:
    sdp = parse_sdp(CHEAP_CAMERA)
    assert sdp.origin == Origin() and sdp.session_name == "-" and sdp.timing == (0, 0)
    assert sdp.connection == Connection("IN", "IP4", "0.0.0.0")
    video, audio = sdp.media
    assert video.control == "track1"
    assert video.rtpmap() == {26: RtpMap("JPEG", 90000)}
    assert video.fmtp() == {26: {}}
    assert audio.formats == ["8", "0"]
    assert audio.rtpmap() == {0: RtpMap("PCMU", 8000, 1), 8: RtpMap("PCMA", 8000)}


def test_static_table_covers_the_common_ones() -> None:
    sdp = parse_sdp("m=audio 0 RTP/AVP 14\nm=video 0 RTP/AVP 32\n")
    assert sdp.media[0].rtpmap() == {14: RtpMap("MPA", 90000)}
    assert sdp.media[1].rtpmap() == {32: RtpMap("MPV", 90000)}


def test_lenient_fmtp_and_rtpmap() -> None:
    m = MediaDescription(
        "video",
        0,
        "RTP/AVP",
        ["96", "97", "98"],
        attributes=[
            ("fmtp", "96  a=b ;;  C=d=e== ; flag ;"),
            ("fmtp", "x97 a=b"),
            ("rtpmap", "97 H264"),
            ("rtpmap", "98 VP8/90000/"),
            ("rtpmap", "abc VP8/90000"),
            ("rtpmap", "96 H264/90000"),
            ("rtpmap", "96 H265/90000"),  # a duplicate: the first one wins
        ],
    )
    assert m.fmtp() == {96: {"a": "b", "c": "d=e==", "flag": ""}}
    assert m.rtpmap() == {96: RtpMap("H264", 90000), 98: RtpMap("VP8", 90000)}


def test_webrtc_style_lines() -> None:
    text = crlf(
        """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
m=audio 9 UDP/TLS/RTP/SAVPF 111 63
c=IN IP4 0.0.0.0
a=mid:0
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host
a=candidate:2 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
a=sctp-port:5000
"""
    )
    sdp = parse_sdp(text)
    audio, data = sdp.media
    assert audio.attribute_values("candidate")[1].endswith("tcptype active")
    assert audio.attribute("rtcp-mux") == ""
    assert audio.fmtp()[111] == {"minptime": "10", "useinbandfec": "1"}
    assert data.formats == ["webrtc-datachannel"] and data.rtpmap() == {}
    assert parse_sdp(sdp.encode()) == sdp


@pytest.mark.parametrize("text", [FFMPEG, GSTREAMER, HIKVISION, AXIS, LIVE555, CHEAP_CAMERA])
def test_encode_round_trip(text: str) -> None:
    sdp = parse_sdp(text)
    encoded = sdp.encode()
    assert encoded.endswith("\r\n") and "\n" not in encoded.replace("\r\n", "")
    assert parse_sdp(encoded) == sdp
    assert encoded.startswith("v=0\r\no=") and "\r\ns=" in encoded and "\r\nt=" in encoded


def test_encode_order_and_values() -> None:
    sdp = SessionDescription(
        origin=Origin("-", "1", "1", "IN", "IP4", "10.0.0.1"),
        session_name="",
        connection=Connection(address="0.0.0.0"),
        attributes=[("control", "*"), ("recvonly", None)],
        media=[
            MediaDescription(
                "video",
                0,
                "RTP/AVP",
                ["96"],
                port_count=2,
                bandwidths=[("AS", 800)],
                attributes=[("rtpmap", "96 H264/90000"), ("control", "trackID=0")],
            )
        ],
    )
    assert sdp.encode() == (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=recvonly\r\n"
        "m=video 0/2 RTP/AVP 96\r\nb=AS:800\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
    )
    sdp.media[0].attributes.append(("control", "x\r\na=evil"))
    with pytest.raises(SdpError):
        sdp.encode()


def test_latin1_bytes() -> None:
    sdp = parse_sdp(b"v=0\r\ns=Cam\xe9ra\r\nm=video 0 RTP/AVP 96\r\n")
    assert sdp.session_name == "Caméra"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("m=video\n", "malformed m= line"),
        ("m=video 0\n", "malformed m= line"),
        ("m=video x RTP/AVP 96\n", "bad port"),
        ("m=video 70000 RTP/AVP 96\n", "bad port"),
        ("m=video 0/x RTP/AVP 96\n", "bad port"),
        ("m=video 0 RTP/AVP 128\n", "payload type"),
        ("m=video 0 RTP/AVP -1\n", "payload type"),
        ("m=video 0 RTP/AVP H264\n", "payload type"),
        ("m=video 0 RTP/AVP\n", "without payload types"),
    ],
)
def test_errors(text: str, words: str) -> None:
    with pytest.raises(SdpError, match=words):
        parse_sdp(text)


def test_limits() -> None:
    with pytest.raises(SdpError, match="exceeds"):
        parse_sdp("v=0\n" + "a=x\n" * 100, max_bytes=100)
    with pytest.raises(SdpError, match="exceeds"):
        parse_sdp(b"a" * 65537)
    many = "".join(f"m=video 0 RTP/AVP {96 + i}\n" for i in range(5))
    assert len(parse_sdp(many, max_media=5).media) == 5
    with pytest.raises(SdpError, match="more than 4 media"):
        parse_sdp(many, max_media=4)
    assert isinstance(SdpError("x"), ValueError)
