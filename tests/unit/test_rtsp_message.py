"""RTSP messages: encoding, the incremental parser in both directions, interleaved frames and limits."""

from __future__ import annotations

import struct

import pytest

from streamhive.protocols.rtsp.message import (
    Headers,
    Interleaved,
    Request,
    Response,
    RtspError,
    RtspParser,
    cseq,
    interleaved_frame,
    interleaved_frames,
)

# what ffmpeg sends to publish (ANNOUNCE with an SDP body), byte for byte in shape
FFMPEG_ANNOUNCE = (
    b"ANNOUNCE rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"CSeq: 2\r\n"
    b"User-Agent: Lavf60.16.100\r\n"
    b"Content-Length: 23\r\n"
    b"\r\n"
    b"v=0\r\no=- 0 0 IN IP4 x\r\n"
)
VLC_DESCRIBE = (
    b"DESCRIBE rtsp://cam.local/live RTSP/1.0\r\n"
    b"CSeq: 3\r\n"
    b"User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)\r\n"
    b"Accept: application/sdp\r\n"
    b"\r\n"
)
CAMERA_REPLY = (
    b"RTSP/1.0 401 Unauthorized\r\n"
    b"CSeq: 3\r\n"
    b'WWW-Authenticate: Digest realm="IP Camera", nonce="abc"\r\n'
    b'WWW-Authenticate: Basic realm="IP Camera"\r\n'
    b"\r\n"
)


def feed_bytewise(data: bytes, parser: RtspParser | None = None) -> list[object]:
    parser = parser or RtspParser()
    out: list[object] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out


def test_parse_request_with_body() -> None:
    [req] = RtspParser().feed(FFMPEG_ANNOUNCE)
    assert isinstance(req, Request)
    assert (req.method, req.uri, req.version) == ("ANNOUNCE", "rtsp://127.0.0.1:8554/live/cam", "RTSP/1.0")
    assert req.headers["content-type"] == "application/sdp"
    assert cseq(req.headers) == "2"
    assert req.body == b"v=0\r\no=- 0 0 IN IP4 x\r\n"


def test_response_with_repeated_headers() -> None:
    [resp] = RtspParser().feed(CAMERA_REPLY)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (401, "Unauthorized")
    assert resp.headers.get_all("www-authenticate") == [
        'Digest realm="IP Camera", nonce="abc"',
        'Basic realm="IP Camera"',
    ]


def test_any_split_gives_the_same_items() -> None:
    stream = (
        b"\r\n\r\n"
        + VLC_DESCRIBE
        + interleaved_frame(0, b"\x80" * 300)
        + CAMERA_REPLY
        + interleaved_frame(1, b"")
        + FFMPEG_ANNOUNCE
        + b"GET_PARAMETER rtsp://h/s RTSP/1.0\nCSeq: 9\nSession: 1\n\n"
    )
    whole = RtspParser().feed(stream)
    assert [type(x).__name__ for x in whole] == [
        "Request",
        "Interleaved",
        "Response",
        "Interleaved",
        "Request",
        "Request",
    ]
    assert feed_bytewise(stream) == whole
    for cut in range(0, len(stream), 7):
        p = RtspParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == whole


def test_client_side_receives_server_requests_between_responses() -> None:
    data = (
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678;timeout=60\r\n\r\n"
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"
        b"RTSP/1.0 200\r\nCSeq: 5\r\n\r\n"  # some cameras send no reason phrase
    )
    first, second, third = RtspParser().feed(data)
    assert isinstance(first, Response) and first.headers["Session"] == "12345678;timeout=60"
    assert isinstance(second, Request) and second.uri == "*"
    assert isinstance(third, Response) and (third.status, third.reason) == (200, "")


def test_bare_lf_mixed_endings_and_folded_headers() -> None:
    data = b"SETUP rtsp://h/s/trackID=0 RTSP/1.0\nCSeq: 3\r\nTransport: RTP/AVP;unicast;\r\n client_port=5000-5001\n\r\n"
    [req] = RtspParser().feed(data)
    assert isinstance(req, Request)
    assert req.headers["Transport"] == "RTP/AVP;unicast; client_port=5000-5001"


def test_interleaved_frames_back_to_back() -> None:
    frames = [(0, b"rtp"), (1, b"rtcp" * 100), (2, b""), (255, b"x" * 65535)]
    data = b"".join(interleaved_frame(c, d) for c, d in frames)
    assert RtspParser().feed(data) == [Interleaved(c, d) for c, d in frames]
    p = RtspParser()
    out: list[object] = []
    for i in range(0, len(data), 1000):
        out += p.feed(data[i : i + 1000])
    assert out == [Interleaved(c, d) for c, d in frames]


def test_interleaved_frame_layout_and_limits() -> None:
    assert interleaved_frame(3, b"abc") == b"$\x03\x00\x03abc"
    assert interleaved_frame(0, b"a" * 258)[:4] == b"$\x00" + struct.pack(">H", 258)
    with pytest.raises(ValueError):
        interleaved_frame(256, b"")
    with pytest.raises(ValueError):
        interleaved_frame(0, b"a" * 65536)


def test_encode_round_trip_and_content_length() -> None:
    req = Request("ANNOUNCE", "rtsp://h/s", Headers([("CSeq", "2"), ("Content-Length", "999")]), b"v=0\r\n")
    wire = req.encode()
    assert wire.startswith(b"ANNOUNCE rtsp://h/s RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\n")
    assert RtspParser().feed(wire) == [
        Request("ANNOUNCE", "rtsp://h/s", Headers([("CSeq", "2"), ("Content-Length", "5")]), b"v=0\r\n")
    ]
    resp = Response(461, headers=Headers({"CSeq": "7"}))
    assert resp.encode() == b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 7\r\n\r\n"
    assert b"Content-Length" not in Response(200, "OK", Headers({"CSeq": "1"})).encode()


def test_encode_refuses_header_injection() -> None:
    with pytest.raises(ValueError):
        Response(200, headers=Headers({"Content-Base": "rtsp://h/x\r\nSession: forged"})).encode()
    with pytest.raises(ValueError):
        Request("DESCRIBE", "rtsp://h/a\nb").encode()


def test_headers_case_insensitive_and_ordered() -> None:
    h = Headers([("CSeq", "1"), ("X-A", "1"), ("x-a", "2")])
    assert "cseq" in h and "CSEQ" in h and "nope" not in h and 3 not in h
    assert h.get("X-a") == "1" and h.get_all("X-A") == ["1", "2"] and h.get("missing", "d") == "d"
    h.set("x-A", "3")
    assert list(h) == [("CSeq", "1"), ("x-A", "3")]
    h.add("Session", "s")
    h["cseq"] = "2"
    assert list(h) == [("cseq", "2"), ("x-A", "3"), ("Session", "s")]
    h.remove("X-A")
    assert len(h) == 2 and h == Headers({"CSEQ": "2", "session": "s"})
    with pytest.raises(KeyError):
        h["x-a"]
    assert cseq(Headers({"CSeq": "  "})) is None and cseq(Headers()) is None


def test_missing_cseq_is_returned_not_refused() -> None:
    [req] = RtspParser().feed(b"OPTIONS * RTSP/1.0\r\n\r\n")
    assert isinstance(req, Request) and cseq(req.headers) is None


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"OPTIONS *\r\n\r\n", 400, "request line"),
        (b"OPTIONS * RTSP/1.0 extra\r\n\r\n", 400, "request line"),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", 505, "version"),
        (b"OPTIONS * RTSP/2.0\r\n\r\n", 505, "version"),
        (b"RTSP/2.0 200 OK\r\n\r\n", 505, "version"),
        (b"OPTIONS * RTSPX\r\n\r\n", 400, "version"),
        (b"RTSP/1.0 2000 OK\r\n\r\n", 400, "status line"),
        (b"RTSP/1.0 OK\r\n\r\n", 400, "status line"),
        (b"OPT(ONS * RTSP/1.0\r\n\r\n", 400, "method"),
        (b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n", 400, "colon"),
        (b"OPTIONS * RTSP/1.0\r\nC Seq: 1\r\n\r\n", 400, "header name"),
        (b"OPTIONS * RTSP/1.0\r\n continued\r\n\r\n", 400, "continuation"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: -5\r\n\r\n", 400, "Content-Length"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 12a\r\n\r\n", 400, "Content-Length"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: \xd9\xa3\r\n\r\n", 400, "Content-Length"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "conflicting"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 1000001\r\n\r\n", 413, "exceeds"),
        (b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413, "exceeds"),
        (b"\x80\x60\x12\x34", 400, "binary junk"),
        (b"\r\n\x16\x03\x01\x02\x00", 400, "binary junk"),  # a TLS ClientHello on the plain port
        (b"OPTIONS * RTSP/1.0\r\nX: \x00\x01\r\n\r\n", 400, "control byte"),
    ],
)
def test_errors(data: bytes, status: int, words: str) -> None:
    for feed in (lambda d: RtspParser().feed(d), feed_bytewise):
        with pytest.raises(RtspError) as info:
            feed(data)
        assert info.value.status == status
        assert words in str(info.value)


def test_huge_head_is_refused_without_waiting_for_its_end() -> None:
    p = RtspParser(max_header_bytes=1024)
    p.feed(b"OPTIONS * RTSP/1.0\r\n")
    with pytest.raises(RtspError) as info:
        p.feed(b"X-Pad: " + b"a" * 2000)
    assert info.value.status == 413


def test_head_exactly_at_the_limit_is_accepted() -> None:
    head = b"OPTIONS * RTSP/1.0\r\nX: "
    head += b"a" * (100 - len(head) - 4) + b"\r\n\r\n"
    assert len(head) == 100
    assert len(RtspParser(max_header_bytes=100).feed(head)) == 1
    with pytest.raises(RtspError):
        RtspParser(max_header_bytes=99).feed(head)


def test_too_many_headers() -> None:
    head = b"OPTIONS * RTSP/1.0\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n"
    assert len(RtspParser(max_headers=5).feed(head)) == 1
    with pytest.raises(RtspError, match="more than 4 header lines") as info:
        RtspParser(max_headers=4).feed(head)
    assert info.value.status == 400


def test_partial_input_is_kept_until_complete() -> None:
    p = RtspParser()
    assert p.feed(FFMPEG_ANNOUNCE[:-5]) == []
    assert p.feed(b"") == []
    [req] = p.feed(FFMPEG_ANNOUNCE[-5:] + b"$\x00\x00")
    assert isinstance(req, Request)
    assert p.feed(b"\x02h") == []
    assert p.feed(b"i") == [Interleaved(0, b"hi")]


def test_latin1_header_value_is_tolerated() -> None:
    [resp] = RtspParser().feed(b"RTSP/1.0 200 OK\r\nServer: Cam\xe9ra\r\nCSeq: 1\r\n\r\n")
    assert isinstance(resp, Response) and resp.headers["Server"] == "Caméra"


def test_interleaved_frames_walks_what_interleaved_frame_writes() -> None:
    data = interleaved_frame(0, b"rtp") + interleaved_frame(1, b"") + interleaved_frame(2, b"x" * 300)
    assert list(interleaved_frames(data)) == [(0, b"rtp"), (1, b""), (2, b"x" * 300)]
    assert list(interleaved_frames(data[:-1]))[-1] == (2, b"x" * 299)  # cut short, no error
