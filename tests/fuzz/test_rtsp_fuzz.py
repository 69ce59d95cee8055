"""Fuzz the RTSP and SDP cores: bad input may only raise the module's own error, and the message
parser must give the same items (or the same error) however the bytes are split.

The mutated inputs start from a real publish session (ANNOUNCE with SDP, SETUP, RECORD, RTP over
TCP, keep-alives and the server's answers), so mutations reach deep parser states.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.formats.sdp import SdpError, parse_sdp
from streamhive.protocols.rtsp.auth import (
    DigestAuthority,
    authorization_header,
    parse_authorization,
    parse_www_authenticate,
)
from streamhive.protocols.rtsp.headers import (
    parse_range,
    parse_rtp_info,
    parse_session,
    parse_transports,
)
from streamhive.protocols.rtsp.message import (
    Headers,
    Interleaved,
    Request,
    Response,
    RtspError,
    RtspParser,
    interleaved_frame,
)
from streamhive.protocols.rtsp.url import RtspUrl, path_of, split_control

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\n"
    b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    b"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==\r\na=control:streamid=0\r\n"
)
SESSION = b"".join(
    [
        b"OPTIONS rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf60\r\n\r\n",
        b"ANNOUNCE rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 2\r\n"
        b"Content-Length: %d\r\n\r\n" % len(SDP) + SDP,
        b'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm="r", nonce="n"\r\n\r\n',
        b"SETUP rtsp://127.0.0.1:8554/live/cam/streamid=0 RTSP/1.0\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;"
        b"mode=record\nCSeq: 3\n\n",
        b"\r\n",
        b"RECORD rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 4\r\nSession: 1a2b\r\n\r\n",
        interleaved_frame(0, b"\x80\x60" + bytes(range(200))),
        interleaved_frame(1, b"\x81\xc8\x00\x06" + b"\x00" * 24),
        b"GET_PARAMETER rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\nCSeq: 5\r\nSession: 1a2b\r\n\r\n",
        interleaved_frame(0, b""),
        b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 4\r\n\r\nok\r\n",
    ]
)

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete"]), st.integers(0, len(SESSION) - 1), st.integers(0, 255)
    ),
    min_size=1,
    max_size=6,
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value in ops:
        where %= max(1, len(out))
        if op == "flip":
            out[where] ^= value or 1
        elif op == "insert":
            out.insert(where, value)
        elif out:
            del out[where]
    return bytes(out)


def _parser() -> RtspParser:
    # small limits so the fuzzer reaches the limit checks too
    return RtspParser(max_header_bytes=300, max_body_bytes=400, max_headers=6)


def _run(data: bytes, cuts: list[int]) -> tuple[list[Request | Response | Interleaved], int | None]:
    """Items and the error status (None without error) from feeding ``data`` cut at ``cuts``."""
    parser = _parser()
    out: list[Request | Response | Interleaved] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    try:
        for a, b in zip(bounds, bounds[1:], strict=False):
            out += parser.feed(data[a:b])
    except RtspError as exc:
        return out, exc.status
    return out, None


def _split_independent(data: bytes, cuts: list[int]) -> None:
    # byte by byte is the finest split: it keeps every item completed before an error
    finest, finest_error = _run(data, list(range(len(data))))
    for split in ([], cuts):
        items, error = _run(data, split)
        assert error == finest_error
        assert items == (finest if error is None else finest[: len(items)])


def test_the_session_parses() -> None:
    items, error = _run(SESSION, [])
    assert error is None
    assert [type(x).__name__ for x in items] == [
        "Request",
        "Request",
        "Response",
        "Request",
        "Request",
        "Interleaved",
        "Interleaved",
        "Request",
        "Interleaved",
        "Response",
    ]


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_random_bytes(data: bytes, cuts: list[int]) -> None:
    _split_independent(data, cuts)


@FUZZ
@given(mutations, st.lists(st.integers(0, len(SESSION) + 8), max_size=8))
def test_mutated_session(ops: list[tuple[str, int, int]], cuts: list[int]) -> None:
    _split_independent(_mutate(SESSION, ops), cuts)


@FUZZ
@given(st.lists(st.integers(0, len(SESSION)), max_size=20))
def test_any_split_of_the_session(cuts: list[int]) -> None:
    assert _run(SESSION, cuts) == _run(SESSION, [])


_token = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=40
).map(str.strip)


@FUZZ
@given(
    _token.filter(lambda m: m[0].isalpha()),
    st.text("abc/:?=&%.-_", min_size=1, max_size=30),
    st.lists(st.tuples(_token, _value), max_size=6),
    st.binary(max_size=300),
)
def test_encode_then_parse(method: str, uri: str, fields: list[tuple[str, str]], body: bytes) -> None:
    fields = [(k, v) for k, v in fields if k.lower() != "content-length"]
    request = Request(method.upper(), uri, Headers(fields), body)
    [parsed] = RtspParser().feed(request.encode())
    expected = Headers(fields + ([("Content-Length", str(len(body)))] if body else []))
    assert parsed == Request(method.upper(), uri, expected, body)


_header_text = st.one_of(
    st.text(max_size=120),
    st.text(
        'RTPAVSUDCtcpunicastmultiinterleaved=client_port-server_portssrcmode"record;, 0123456789abcdef',
        max_size=120,
    ),
)


@FUZZ
@given(_header_text)
def test_header_grammars(value: str) -> None:
    for parse in (parse_transports, parse_session, parse_range, parse_rtp_info):
        with contextlib.suppress(RtspError):
            parse(value)


_auth_text = st.one_of(
    st.text(max_size=160),
    st.builds(
        lambda scheme, rest: scheme + " " + rest,
        st.sampled_from(["Digest", "digest", "Basic", "Bearer"]),
        st.text('usernamerealmnonceuriresponseqopauthnccnoncealgorithmMD5SHA-256=", \\', max_size=160),
    ),
)


@FUZZ
@given(_auth_text)
def test_authorization(value: str) -> None:
    try:
        creds = parse_authorization(value)
    except RtspError:
        return
    creds.verify("password", "DESCRIBE")
    DigestAuthority("r", b"0123456789abcdef").verify(creds, "password", "DESCRIBE", 1000.0)


@FUZZ
@given(st.lists(_auth_text, max_size=3))
def test_www_authenticate(values: list[str]) -> None:
    challenges = parse_www_authenticate(values)
    try:
        authorization_header(challenges, "user", "pass", "OPTIONS", "rtsp://h/", cnonce="c")
    except RtspError as exc:
        assert exc.status == 401


_sdp_text = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.tuples(
            st.sampled_from("vostcbmai"), st.text("0123456789 RTP/AVPvideo:rtpmapfmtp=;/-x", max_size=40)
        ),
        max_size=20,
    ).map(lambda lines: "".join(f"{k}={v}\r\n" for k, v in lines)),
)


@FUZZ
@given(_sdp_text)
def test_sdp(text: str) -> None:
    try:
        sdp = parse_sdp(text, max_bytes=2000, max_media=4)
    except SdpError:
        return
    for media in sdp.media:
        media.rtpmap()
        media.fmtp()
    assert parse_sdp(sdp.encode()) == sdp


@FUZZ
@given(st.binary(max_size=400))
def test_sdp_bytes(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(data)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80), st.text("rtsp:/@[]:0123456789abc?%#", max_size=40).map(lambda s: "rtsp://" + s)
    )
)
def test_urls(value: str) -> None:
    with contextlib.suppress(RtspError):
        RtspUrl.parse(value)
    path_of(value)
    split_control(value, ["trackID=0", "rtsp://h/x/streamid=1", "*", ""])
