"""WebRTC offer/answer survives random, mutated and oversized offers with SdpNegotiationError only.

Whatever parses must also answer (or refuse with SdpNegotiationError), and every answer must be
SDP our own parser reads back with one m-section per offered one and only offered payload types.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.formats.sdp import parse_sdp
from streamhive.hub.frame import Track
from streamhive.protocols.webrtc.sdp import (
    Answer,
    Offer,
    SdpNegotiationError,
    SendTrack,
    answer_play,
    answer_publish,
    parse_offer,
)
from tests.fuzz.test_codecs_fuzz import mutated
from tests.unit.webrtc_sdp_fixtures import ALL, local_ice

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = sorted(ALL.values())
LOCAL = local_ice(("::1", 8189, "udp"))
ACCEPT = {"video": ["h264", "h265", "vp8", "vp9", "av1"], "audio": ["opus", "pcmu", "pcma"]}
SEND = [
    SendTrack(
        "video",
        ("h264",),
        1,
        Track("video", "h264", bytes.fromhex("0164001fffe100056764001fac01000468ce3880")),
    ),
    SendTrack(
        "audio", ("aac", "opus", "pcmu"), 2, Track("audio", "aac", bytes.fromhex("1210"), 44100, channels=2)
    ),
    SendTrack("video", ("h265",), 3, Track("video", "h265")),
]
# lines that steer mutations into the branches real offers rarely reach
VOCABULARY = [
    "a=group:BUNDLE 0 1 2",
    "a=group:BUNDLE",
    "a=mid:0",
    "a=mid:1",
    "a=bundle-only",
    "a=setup:passive",
    "a=setup:",
    "a=ice-lite",
    "a=ice-ufrag:",
    "a=fingerprint:sha-1 AB:CD",
    "a=rtcp-mux",
    "a=sendonly",
    "a=recvonly",
    "a=inactive",
    "a=rtpmap:96 H264/90000",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:97 VP8/90000/x",
    "a=fmtp:96 packetization-mode=1;profile-level-id=zz",
    "a=fmtp:96 packetization-mode",
    "a=fmtp:96 sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==",
    "a=fmtp:96 sprop-max-don-diff=-1",
    "a=rtcp-fb:* nack",
    "a=rtcp-fb:96",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:300/sendonly urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:x",
    "a=ssrc:4294967296 cname:x",
    "a=ssrc-group:FID",
    "a=ssrc-group:",
    "a=rtcp-fb:",
    "a=extmap:",
    "a=rid:",
    "a=simulcast:",
    "a=group:",
    "a=ssrc-group:SIM 1 2 3",
    "a=rid:h send pt=96",
    "a=rid:~x send",
    "a=simulcast:send h;~m,l recv x",
    "a=simulcast:send",
    "a=candidate:1 1 udp 1 1.2.3.4 5 typ host",
    "m=audio 9 UDP/TLS/RTP/SAVPF 96",
    "m=video 0 UDP/TLS/RTP/SAVPF 96 97",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=video 9 RTP/AVP 26",
    "c=IN IP4",
    "a=mid:\x00",
    "a=fmtp:96 x=\ry",
]


def exercise(text: str | bytes) -> None:
    try:
        offer = parse_offer(text)
    except SdpNegotiationError:
        return
    for build in (lambda o: answer_publish(o, ACCEPT, LOCAL), lambda o: answer_play(o, SEND, LOCAL)):
        try:
            answer = build(offer)
        except SdpNegotiationError:
            continue
        check(offer, answer)


def check(offer: Offer, answer: Answer) -> None:
    reparsed = parse_sdp(answer.sdp)
    assert len(reparsed.media) == len(offer.media)
    assert answer.media and len(answer.media) + len(answer.rejected) == len(offer.media)
    for media in answer.media:
        offered = offer.media[media.index]
        assert media.payload_type in offered.formats and offered.problem is None
        rtx = [] if media.rtx_payload_type is None else [str(media.rtx_payload_type)]
        assert reparsed.media[media.index].formats == [str(media.payload_type), *rtx]
        assert reparsed.media[media.index].attribute("mid") == media.mid


@st.composite
def line_edits(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(FIXTURES)).split("\r\n")
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines)))
        action = draw(st.sampled_from(("delete", "duplicate", "insert", "rewrite", "swap")))
        if action == "insert":
            lines.insert(at, draw(st.sampled_from(VOCABULARY) | st.text(max_size=40)))
        elif at < len(lines):
            if action == "delete":
                del lines[at]
            elif action == "duplicate":
                lines.insert(at, lines[at])
            elif action == "rewrite":
                head = lines[at].partition(":")[0] or lines[at][:2]
                lines[at] = head + ":" + draw(st.text(max_size=30))
            else:
                other = draw(st.integers(0, len(lines) - 1))
                lines[at], lines[other] = lines[other], lines[at]
    return "\r\n".join(lines)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_random_input(data: str | bytes) -> None:
    exercise(data)


@FUZZ
@given(st.sampled_from(FIXTURES).flatmap(lambda text: mutated(text.encode())))
def test_mutated_bytes(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(line_edits())
def test_mutated_lines(text: str) -> None:
    exercise(text)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(FIXTURES), st.sampled_from(VOCABULARY + ["a=rtcp-fb:96 nack pli", "a=ssrc:1 cname:x"]))
def test_huge_offers(text: str, filler: str) -> None:
    """Right under the size limit everything still answers; one byte over is refused."""
    room = 65536 - len(text.encode()) - 2
    padded = text + "\r\n".join([filler] * (room // (len(filler.encode()) + 2)))
    assert len(padded.encode()) <= 65536
    exercise(padded)
    try:
        parse_offer(padded + "x" * (65537 - len(padded.encode())))
    except SdpNegotiationError as exc:
        assert "exceeds" in str(exc)
    else:
        raise AssertionError("an offer over the size limit was accepted")


def test_too_many_sections() -> None:
    text = ALL["obs_whip"] + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n" * 15
    try:
        parse_offer(text)
    except SdpNegotiationError as exc:
        assert "media descriptions" in str(exc)
    else:
        raise AssertionError("17 media sections were accepted")
