"""Data channel sections (RFC 8841) in offers and answers: accepted when a room asks, else port 0."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.formats.sdp import parse_sdp
from streamhive.hub.frame import Track
from streamhive.protocols.webrtc.sdp import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Answer,
    SctpParameters,
    SdpNegotiationError,
    SendTrack,
    answer_play,
    answer_publish,
    parse_offer,
)
from tests.unit.webrtc_sdp_fixtures import CHROME_WHEP, CHROME_WHIP, crlf, local_ice

LOCAL = local_ice(("192.0.2.10", 8189, "udp"), ("192.0.2.10", 8189, "tcp"))
ACCEPT = {"video": ["h264"], "audio": ["opus"]}
OPUS = SendTrack("audio", ("opus",), 0x2222, Track("audio", "opus", sample_rate=48000, channels=2))

# Chrome 124's data channel section, as it follows its media sections.
CHROME_DATA = crlf(
    """m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:nWnq
a=ice-pwd:DTdCVj00s9nGkNgWra0P30A2
a=ice-options:trickle
a=fingerprint:sha-256 22:8C:D7:6B:C3:23:A1:04:9C:E5:2A:35:38:0B:96:A1:E9:68:C3:2D:E6:3F:7D:CA:18:AA:F1:D8:C9:CA:D9:65
a=setup:actpass
a=mid:2
a=sctp-port:5000
a=max-message-size:262144
"""
)

# aiortc 1.16 with only a data channel: candidates and ICE lines after the mid, several fingerprints.
AIORTC_DATA_ONLY = crlf(
    """v=0
o=- 4005056974 4005056974 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
m=application 48887 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 127.0.0.1
a=mid:0
a=sctp-port:5000
a=max-message-size:262144
a=candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 48887 typ host
a=end-of-candidates
a=ice-ufrag:LdMH
a=ice-pwd:ob9cP8GkQzth6sE6YQjmSY
a=fingerprint:sha-256 21:0C:39:BC:C6:3B:B2:E0:D1:27:AA:36:39:FF:BE:52:45:8A:D2:CF:E1:1E:5E:64:F2:1B:CE:05:91:30:A6:4F
a=setup:actpass
"""
)


def with_data(offer: str, data: str = CHROME_DATA, mids: str = "0 1 2") -> str:
    return offer.replace("a=group:BUNDLE 0 1", f"a=group:BUNDLE {mids}") + data


def lines(answer: Answer) -> list[str]:
    return answer.sdp.split("\r\n")


def section(answer: Answer, index: int) -> list[str]:
    """The answer's lines of its ``index``-th m-section, up to the next one."""
    text = answer.sdp.split("\r\nm=")[index + 1]
    return ("m=" + text).split("\r\n")


def test_chrome_publish_with_a_data_channel() -> None:
    answer = answer_publish(parse_offer(with_data(CHROME_WHIP)), ACCEPT, LOCAL, datachannel=True)
    assert answer.datachannel == SctpParameters(5000, 262144)
    assert [m.mid for m in answer.media] == ["0", "1"] and answer.rejected == []
    assert "a=group:BUNDLE 0 1 2" in lines(answer)
    assert section(answer, 2) == [
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:srvU",
        "a=ice-pwd:serverpassword0123456789",
        "a=fingerprint:" + LOCAL.fingerprint,
        "a=setup:passive",
        "a=mid:2",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "a=candidate:1 1 udp 2130706431 192.0.2.10 8189 typ host",
        "a=candidate:2 1 tcp 1671430143 192.0.2.10 8189 typ host tcptype passive",
        "a=end-of-candidates",
        "",
    ]


def test_an_offer_with_only_a_data_channel_is_answerable_when_asked() -> None:
    offer = parse_offer(AIORTC_DATA_ONLY)
    assert offer.ice.ufrag == "LdMH" and offer.media[0].problem is None
    answer = answer_publish(offer, ACCEPT, LOCAL, datachannel=True)
    assert answer.media == [] and answer.datachannel == SctpParameters(5000, 262144)
    assert answer.dtls_role == "server" and "a=group:BUNDLE 0" in lines(answer)
    with pytest.raises(SdpNegotiationError, match="nothing to publish"):
        answer_publish(offer, ACCEPT, LOCAL)
    with pytest.raises(SdpNegotiationError, match="nothing to play"):
        answer_play(offer, [OPUS], LOCAL)
    assert answer_play(offer, [OPUS], LOCAL, datachannel=True).datachannel is not None


def test_play_with_a_data_channel() -> None:
    answer = answer_play(parse_offer(with_data(CHROME_WHEP)), [OPUS], LOCAL, datachannel=True)
    assert [m.kind for m in answer.media] == ["audio"] and answer.datachannel is not None
    assert "a=sctp-port:5000" in section(answer, 2) and "a=group:BUNDLE 0 1 2" in lines(answer)
    assert [(r.mid, r.reason) for r in answer.rejected] == [("0", "the stream has no video track for it")]


def test_whip_and_whep_still_refuse_data_channels() -> None:
    whip = answer_publish(parse_offer(with_data(CHROME_WHIP)), ACCEPT, LOCAL)
    whep = answer_play(parse_offer(with_data(CHROME_WHEP)), [OPUS], LOCAL)
    for answer in (whip, whep):
        assert answer.datachannel is None
        assert section(answer, 2) == [
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 0.0.0.0",
            "a=mid:2",
            "a=inactive",
            "",
        ]
        assert not any(line.startswith("a=group:BUNDLE") and line.endswith(" 2") for line in lines(answer))
        rejected = next(r for r in answer.rejected if r.mid == "2")
        assert rejected.reason.startswith("'application' sections")


def test_we_answer_active_when_the_client_is_passive() -> None:
    text = AIORTC_DATA_ONLY.replace("a=setup:actpass", "a=setup:passive")
    answer = answer_publish(parse_offer(text), {}, LOCAL, datachannel=True)
    assert answer.dtls_role == "client" and "a=setup:active" in section(answer, 0)


def test_the_legacy_form_is_answered_in_kind() -> None:
    legacy = (
        CHROME_DATA.replace("UDP/DTLS/SCTP webrtc-datachannel", "DTLS/SCTP 5001")
        .replace("a=sctp-port:5000\r\n", "a=sctpmap:5001 webrtc-datachannel 1024\r\n")
        .replace("a=max-message-size:262144\r\n", "")
    )
    answer = answer_publish(parse_offer(with_data(CHROME_WHIP, legacy)), ACCEPT, LOCAL, datachannel=True)
    assert answer.datachannel == SctpParameters(5001, DEFAULT_MAX_MESSAGE_SIZE, legacy=True)
    data = section(answer, 2)
    assert data[0] == "m=application 9 DTLS/SCTP 5000"
    assert "a=sctpmap:5000 webrtc-datachannel 1024" in data and not any("sctp-port" in x for x in data)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("a=sctp-port:5000\r\n", ""), SctpParameters(5000, 262144)),  # RFC 8841 default port
        (("a=max-message-size:262144", "a=max-message-size:1073741823"), SctpParameters(5000, 1073741823)),
        (("a=max-message-size:262144", "a=max-message-size:0"), SctpParameters(5000, 0)),  # any size
        (("a=max-message-size:262144\r\n", ""), SctpParameters(5000, 65536)),  # RFC 8841 6
        (("a=sctp-port:5000", "a=sctp-port:6000"), SctpParameters(6000, 262144)),
    ],
)
def test_client_parameters(edit: tuple[str, str], expected: SctpParameters) -> None:
    text = with_data(CHROME_WHIP, CHROME_DATA.replace(*edit))
    assert answer_publish(parse_offer(text), ACCEPT, LOCAL, datachannel=True).datachannel == expected


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("a=sctp-port:5000", "a=sctp-port:0"), "malformed SCTP port"),
        (("a=sctp-port:5000", "a=sctp-port:70000"), "malformed SCTP port"),
        (("a=max-message-size:262144", "a=max-message-size:-1"), "malformed a=max-message-size"),
        (("m=application 9 ", "m=application 0 "), "disabled by the offerer (port 0)"),
        (("a=mid:2", "a=mid:7"), "not in the BUNDLE group"),
        (("a=mid:2", "a=mid:0"), "duplicate mid '0'"),
        (("UDP/DTLS/SCTP webrtc-datachannel", "UDP/BFCP *"), "'application' sections other than WebRTC"),
        (("UDP/DTLS/SCTP webrtc-datachannel", "DTLS/SCTP 5000"), "no a=sctpmap:5000 webrtc-datachannel"),
    ],
)
def test_unusable_data_channel_sections_get_port_0(edit: tuple[str, str], reason: str) -> None:
    text = with_data(CHROME_WHIP, CHROME_DATA.replace(*edit))
    answer = answer_publish(parse_offer(text), ACCEPT, LOCAL, datachannel=True)
    assert answer.datachannel is None and [m.mid for m in answer.media] == ["0", "1"]
    assert answer.rejected[0].index == 2 and answer.rejected[0].reason.startswith(reason)
    assert section(answer, 2)[0].startswith("m=application 0 ")


def test_a_data_channel_needs_a_bundle_group() -> None:
    """Without one it would need a transport of its own; the audio section alone still answers."""
    text = CHROME_WHIP.replace("a=group:BUNDLE 0 1\r\n", "").split("m=video")[0] + CHROME_DATA
    answer = answer_publish(parse_offer(text), ACCEPT, LOCAL, datachannel=True)
    assert answer.datachannel is None and [m.kind for m in answer.media] == ["audio"]
    assert answer.rejected[0].reason == "not in the BUNDLE group"


def test_one_association_per_transport() -> None:
    second = CHROME_DATA.replace("a=mid:2", "a=mid:3")
    text = with_data(CHROME_WHIP, CHROME_DATA + second, "0 1 2 3")
    answer = answer_publish(parse_offer(text), ACCEPT, LOCAL, datachannel=True)
    assert answer.datachannel is not None and "a=group:BUNDLE 0 1 2" in lines(answer)
    assert [(r.mid, r.reason) for r in answer.rejected] == [("3", "a second data channel section")]
    assert section(answer, 3)[0] == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"


# --- property: any variation of a data channel offer answers sanely or raises the one error -------

VOCABULARY = [
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=application 9 DTLS/SCTP 5000",
    "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
    "m=application 9 TCP/DTLS/SCTP webrtc-datachannel",
    "a=sctpmap:5000 webrtc-datachannel 1024",
    "a=sctpmap:",
    "a=sctp-port:",
    "a=sctp-port:99999999999",
    "a=max-message-size:",
    "a=max-message-size:4294967296",
    "a=mid:2",
    "a=mid:0",
    "a=group:BUNDLE 0 1 2",
    "a=group:BUNDLE 2",
    "a=bundle-only",
    "a=setup:passive",
]
OFFERS = [with_data(CHROME_WHIP), AIORTC_DATA_ONLY, with_data(CHROME_WHEP)]


@st.composite
def edited_offers(draw: st.DrawFn) -> str:
    rows = draw(st.sampled_from(OFFERS)).split("\r\n")
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(rows)))
        action = draw(st.sampled_from(("delete", "insert", "rewrite")))
        if action == "insert":
            rows.insert(at, draw(st.sampled_from(VOCABULARY) | st.text(max_size=30)))
        elif at < len(rows) and action == "delete":
            del rows[at]
        elif at < len(rows):
            rows[at] = rows[at].partition(":")[0] + ":" + draw(st.text(max_size=20))
    return "\r\n".join(rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=edited_offers())
def test_edited_offers_answer_or_refuse(text: str) -> None:
    try:
        offer = parse_offer(text)
    except SdpNegotiationError:
        return
    for answer_it in (
        lambda: answer_publish(offer, ACCEPT, LOCAL, datachannel=True),
        lambda: answer_play(offer, [OPUS], LOCAL, datachannel=True),
    ):
        try:
            answer = answer_it()
        except SdpNegotiationError:
            continue
        reparsed = parse_sdp(answer.sdp)
        accepted = answer.datachannel is not None
        assert len(reparsed.media) == len(offer.media)
        assert len(answer.media) + len(answer.rejected) + accepted == len(offer.media)
        assert answer.media or accepted
        data = [m for m in reparsed.media if m.kind == "application" and m.port != 0]
        assert len(data) == accepted
        if answer.datachannel is not None:
            assert 0 < answer.datachannel.port < 65536 and 0 <= answer.datachannel.max_message_size < 1 << 32
            assert data[0].attribute("max-message-size") == "262144"
