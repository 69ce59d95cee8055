"""WebRTC offer/answer: real browser, OBS, FFmpeg and aiortc offers in, answers that aiortc accepts."""

from __future__ import annotations

import pytest

from streamhive.formats.sdp import parse_sdp
from streamhive.hub.frame import Track
from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.sdp import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_REPAIRED_RID,
    URI_RID,
    Answer,
    LocalIce,
    Offer,
    SdpNegotiationError,
    SendTrack,
    answer_play,
    answer_publish,
    parse_offer,
)
from tests.unit.webrtc_sdp_fixtures import (
    ALL,
    CHROME_WHEP,
    CHROME_WHIP,
    CHROME_WHIP_SIMULCAST,
    CHROMIUM_WHEP,
    FFMPEG_WHIP,
    FINGERPRINT,
    FIREFOX_WHEP,
    FIREFOX_WHIP,
    OBS_WHIP,
    SAFARI_WHEP,
    crlf,
    local_ice,
)

LOCAL = local_ice(("192.0.2.10", 8189, "tcp"), ("192.0.2.10", 8189, "udp"))
ACCEPT = {"video": ["h264"], "audio": ["opus", "pcmu", "pcma"]}


def avcc(profile: int, constraints: int, level: int) -> bytes:
    """An avcC record whose SPS starts with the given profile_idc, constraint flags and level."""
    sps = bytes((0x67, profile, constraints, level, 0xAC))
    pps = bytes((0x68, 0xCE, 0x38, 0x80))
    return (
        bytes((1, profile, constraints, level, 0xFF, 0xE1))
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )


H264_HIGH = Track("video", "h264", avcc(0x64, 0x00, 0x1F))
H264_CONSTRAINED_BASELINE = Track("video", "h264", avcc(0x42, 0xE0, 0x1F))
H264_MAIN = Track("video", "h264", avcc(0x4D, 0x40, 0x1F))
OPUS_STEREO = Track("audio", "opus", b"", 48000, sample_rate=48000, channels=2)
AAC = Track("audio", "aac", bytes.fromhex("1210"), 44100, sample_rate=44100, channels=2)


def lines(answer: Answer) -> list[str]:
    return answer.sdp.split("\r\n")


def section(answer: Answer, mid: str) -> list[str]:
    """The answer's lines for the m-section with ``mid``."""
    out: list[list[str]] = []
    for line in lines(answer):
        if line.startswith("m="):
            out.append([])
        if out:
            out[-1].append(line)
    return next(s for s in out if f"a=mid:{mid}" in s)


def play(offer_text: str, *send: SendTrack) -> Answer:
    return answer_play(parse_offer(offer_text), list(send), LOCAL)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_client_dialect_parses(name: str) -> None:
    offer = parse_offer(ALL[name])
    assert offer.ice.ufrag and offer.ice.pwd
    assert offer.ice.fingerprint.startswith("sha-256 ")
    assert offer.ice.setup in ("actpass", "passive")
    assert all(m.problem is None for m in offer.media)
    assert offer.bundle == [m.mid for m in offer.media]


def test_chrome_offer_details() -> None:
    offer = parse_offer(CHROME_WHIP.encode())
    audio, video = offer.media
    assert (audio.kind, audio.mid, audio.direction, video.mid) == ("audio", "0", "sendonly", "1")
    assert offer.ice == offer.ice.__class__(
        "nWnq",
        "DTdCVj00s9nGkNgWra0P30A2",
        "sha-256 22:8C:D7:6B:C3:23:A1:04:9C:E5:2A:35:38:0B:96:A1:E9:68:C3:2D:E6:3F:7D:CA:18:AA:F1:D8:C9:CA:D9:65",
        "actpass",
        offer.ice.candidates,
    )
    assert len(offer.ice.candidates) == 4 and "typ host" in offer.ice.candidates[0]
    assert audio.ssrcs == [3262661846]
    assert video.ssrcs == [1862494604]  # the RTX SSRC of the FID group is not a media stream
    assert video.extmap[URI_MID] == 4 and video.extmap[URI_RID] == 10 and video.extmap[URI_ABS_SEND_TIME] == 2
    assert audio.extmap[URI_AUDIO_LEVEL] == 1
    assert video.rtcp_rsize and not audio.rtcp_rsize
    assert video.feedback[102] == {"goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"}
    assert video.formats[102].fmtp["profile-level-id"] == "42001f"
    assert list(video.formats)[:3] == [96, 97, 102]  # offer order is kept
    assert video.rids == [] and not video.simulcast


def test_firefox_offer_details() -> None:
    offer = parse_offer(FIREFOX_WHIP)
    audio, video = offer.media
    assert offer.ice.ufrag == "6c0579ea" and offer.ice.fingerprint.startswith(
        "sha-256 5B:59"
    )  # session level
    assert audio.extmap == {
        URI_AUDIO_LEVEL: 1,
        "urn:ietf:params:rtp-hdrext:csrc-audio-level": 2,
        URI_MID: 3,
    }
    assert video.ssrcs == [7463831]
    assert video.formats[126].fmtp["packetization-mode"] == "1"
    whep = parse_offer(FIREFOX_WHEP)
    assert [m.direction for m in whep.media] == [
        "recvonly",
        "recvonly",
    ]  # media level beats session a=sendrecv


def test_obs_offer_carries_transport_at_session_level() -> None:
    offer = parse_offer(OBS_WHIP)
    assert (offer.ice.ufrag, offer.ice.pwd, offer.ice.setup) == ("v3f/", "4b+Ogzsq+Xx0AEkYvTvG/n", "actpass")
    assert offer.media[0].formats[111].encoding == "OPUS"
    assert len(offer.ice.candidates) == 2


def test_simulcast_rids_in_preference_order() -> None:
    (video,) = parse_offer(CHROME_WHIP_SIMULCAST).media
    assert video.rids == ["h", "m", "l"] and video.simulcast and video.ssrcs == []
    paused = CHROME_WHIP_SIMULCAST.replace("a=simulcast:send h;m;l", "a=simulcast:send ~h;m,l")
    assert parse_offer(paused).media[0].rids == ["m", "l"]
    legacy = CHROME_WHIP_SIMULCAST.replace("a=simulcast:send h;m;l", "a=simulcast: send rid=l;h")
    assert parse_offer(legacy).media[0].rids == ["l", "h"]


def test_sim_group_keeps_the_first_layer() -> None:
    munged = CHROME_WHIP.replace(
        "a=ssrc-group:FID 1862494604 1112104850\r\n",
        "a=ssrc-group:SIM 1862494604 55 66\r\na=ssrc-group:FID 1862494604 1112104850\r\n"
        "a=ssrc:55 cname:x\r\na=ssrc:66 cname:x\r\n",
    )
    assert parse_offer(munged).media[1].ssrcs == [1862494604]


def test_ice_and_dtls_fall_back_across_sections() -> None:
    """A bundle-only section (port 0) lacking ICE lines takes them from the tagged one."""
    text = FIREFOX_WHIP.replace("m=video 9 ", "m=video 0 ").replace(
        "a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n"
    )
    offer = parse_offer(text)
    assert offer.media[1].problem is None
    assert answer_publish(offer, ACCEPT, LOCAL).media[1].mid == "1"


def test_a_single_section_needs_no_bundle_group() -> None:
    text = OBS_WHIP.replace("a=group:BUNDLE 0 1\r\n", "").split("m=video")[0]
    answer = answer_publish(parse_offer(text), ACCEPT, LOCAL)
    assert not any(line.startswith("a=group:") for line in lines(answer))
    assert [m.codec for m in answer.media] == ["opus"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("a=ice-ufrag:nWnq\r\n", ""), "ice-ufrag"),
        (lambda t: t.replace("a=ice-pwd:", "a=ice-pwd:has space "), "ice-pwd"),
        (lambda t: t.replace("a=fingerprint:sha-256", "a=fingerprint:md5"), "fingerprint"),
        (lambda t: t.replace("a=fingerprint:sha-256 22:8C", "a=fingerprint:sha-256 ZZ:8C"), "fingerprint"),
        (lambda t: t.replace("a=setup:actpass", "a=setup:holdconn"), "setup"),
        (lambda t: t.replace("a=group:BUNDLE 0 1\r\n", ""), "BUNDLE"),
        (lambda t: t.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n"), "ICE-lite"),
        (lambda t: t.replace("m=audio 53124", "m=audio 0").replace("m=video 53124", "m=video 0"), "port 0"),
        (lambda t: t.replace("a=rtcp-mux\r\n", ""), "rtcp-mux"),
        (lambda t: t.replace("a=mid:", "a=x-mid:"), "mid"),
        (lambda t: t.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "DTLS-SRTP"),
        (lambda t: t.replace("m=audio 53124 UDP/TLS/RTP/SAVPF 111", "m=audio x RTP/AVP"), "malformed"),
        (lambda t: t.split("m=audio")[0], "no media"),
        (lambda t: "hello world", "no media"),
    ],
)
def test_unusable_offers_are_refused_with_a_reason(edit, message: str) -> None:  # noqa: ANN001
    with pytest.raises(SdpNegotiationError, match=message):
        parse_offer(edit(CHROME_WHIP))


def test_size_limit_and_error_type() -> None:
    padded = CHROME_WHIP + "a=x-pad:" + "y" * 70000 + "\r\n"
    with pytest.raises(SdpNegotiationError, match="exceeds"):
        parse_offer(padded)
    assert parse_offer(padded, max_bytes=100_000).media
    assert issubclass(SdpNegotiationError, WebRtcError) and issubclass(SdpNegotiationError, ValueError)


def test_local_ice_is_validated() -> None:
    with pytest.raises(ValueError, match="IP address"):
        LocalIce("u", "p" * 22, FINGERPRINT, (("example.com", 1, "udp"),))
    with pytest.raises(ValueError, match="candidate"):
        LocalIce("u", "p" * 22, FINGERPRINT, (("::1", 1, "sctp"),))
    with pytest.raises(ValueError, match="fingerprint"):
        LocalIce("u", "p" * 22, "sha-256 nope")
    with pytest.raises(ValueError, match="ufrag"):
        LocalIce("u:x", "p" * 22, FINGERPRINT)


# --- WHIP answers ------------------------------------------------------------------------------


def test_publish_answer_for_chrome() -> None:
    answer = answer_publish(parse_offer(CHROME_WHIP), ACCEPT, LOCAL)
    assert answer.sdp.endswith("\r\n") and "\n" not in answer.sdp.replace("\r\n", "")
    head = lines(answer)[:7]
    assert head[0] == "v=0" and head[1].startswith("o=- ") and head[1].endswith(" 2 IN IP4 127.0.0.1")
    assert head[2:] == ["s=-", "t=0 0", "a=group:BUNDLE 0 1", "a=ice-lite", "a=msid-semantic: WMS *"]
    audio, video = answer.media
    assert (audio.payload_type, audio.codec, audio.fmt.encoding, audio.fmt.clock_rate) == (
        111,
        "opus",
        "opus",
        48000,
    )
    assert (video.payload_type, video.codec, video.ssrcs, video.direction) == (
        102,
        "h264",
        [1862494604],
        "recvonly",
    )
    assert video.feedback == {"nack", "nack pli", "ccm fir", "goog-remb"}  # no transport-cc
    assert video.extmap == {URI_ABS_SEND_TIME: 2, URI_MID: 4, URI_RID: 10, URI_REPAIRED_RID: 11}
    assert answer.dtls_role == "server" and answer.rejected == [] and answer.unsent == []
    v = section(answer, "1")
    assert v[:10] == [
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:srvU",
        "a=ice-pwd:serverpassword0123456789",
        f"a=fingerprint:{FINGERPRINT}",
        "a=setup:passive",
        "a=mid:1",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    ]
    for line in (
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 nack",
        "a=rtcp-fb:102 nack pli",
        "a=rtcp-fb:102 ccm fir",
        "a=rtcp-fb:102 goog-remb",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:103 rtx/90000",  # its RTX: probes and retransmissions on a repair stream
        "a=fmtp:103 apt=102",
        "a=candidate:1 1 udp 2130706431 192.0.2.10 8189 typ host",
        "a=candidate:2 1 tcp 1671430143 192.0.2.10 8189 typ host tcptype passive",
        "a=end-of-candidates",
    ):
        assert line in v, line
    assert v.index("a=candidate:1 1 udp 2130706431 192.0.2.10 8189 typ host") < v.index("a=end-of-candidates")
    assert "a=rtcp-rsize" not in section(answer, "0") and "a=fmtp:111 minptime=10;useinbandfec=1" in section(
        answer, "0"
    )
    assert not any("transport-cc" in line or "toffset" in line for line in lines(answer))
    assert video.rtx_payload_type == 103 and answer.media[0].rtx_payload_type is None
    reparsed = parse_sdp(answer.sdp)
    assert [(m.kind, m.port, m.formats) for m in reparsed.media] == [
        ("audio", 9, ["111"]),
        ("video", 9, ["102", "103"]),
    ]


def test_publish_prefers_our_codec_order_then_mode_1() -> None:
    offer = parse_offer(CHROME_WHIP)
    answer = answer_publish(offer, {"video": ["h265", "h264"], "audio": ["pcma", "opus"]}, LOCAL)
    assert [(m.codec, m.payload_type) for m in answer.media] == [("pcma", 8), ("h264", 102)]
    mode0_first = CHROME_WHIP.replace("96 97 102 103 104", "104 96 97 102 103")
    assert answer_publish(parse_offer(mode0_first), ACCEPT, LOCAL).media[1].payload_type == 102
    only_mode0 = CHROME_WHIP.replace("packetization-mode=1", "packetization-mode=0")
    video = answer_publish(parse_offer(only_mode0), ACCEPT, LOCAL).media[1]
    assert (video.payload_type, video.fmt.fmtp["packetization-mode"]) == (102, "0")  # still usable


def test_publish_reports_sections_without_a_common_codec() -> None:
    answer = answer_publish(parse_offer(FIREFOX_WHIP), {"video": ["h265"], "audio": ["opus"]}, LOCAL)
    assert [m.mid for m in answer.media] == ["0"]
    (rejection,) = answer.rejected
    assert (rejection.index, rejection.mid, rejection.kind) == (1, "1", "video")
    assert "no common codec" in rejection.reason and "VP8" in rejection.reason and "h265" in rejection.reason
    video = section(answer, "1")
    assert video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 120" and "a=inactive" in video
    assert "a=group:BUNDLE 0 1" in lines(answer)
    rtx_first = FIREFOX_WHIP.replace("SAVPF 120 124 121", "SAVPF 124 120 121")
    answer = answer_publish(parse_offer(rtx_first), {"audio": ["opus"]}, LOCAL)
    assert section(answer, "1")[0] == "m=video 9 UDP/TLS/RTP/SAVPF 120"  # never a lone rtx


def test_publish_with_nothing_usable_says_what_was_offered() -> None:
    with pytest.raises(SdpNegotiationError, match=r"nothing to publish.*VP8.*we take video h265") as info:
        answer_publish(parse_offer(CHROME_WHIP), {"video": ["h265"]}, LOCAL)
    assert "opus" in str(info.value)
    with pytest.raises(SdpNegotiationError, match="does not send"):
        answer_publish(parse_offer(CHROME_WHEP), ACCEPT, LOCAL)


def test_publish_simulcast_takes_the_first_layer() -> None:
    answer = answer_publish(parse_offer(CHROME_WHIP_SIMULCAST), ACCEPT, LOCAL)
    (video,) = answer.media
    assert video.rids == ["h"] and video.ssrcs == [] and video.extmap[URI_RID] == 10
    v = section(answer, "0")
    assert "a=rid:h recv" in v and "a=simulcast:recv h" in v and "a=rid:m recv" not in v


def test_ffmpeg_listens_so_we_answer_active() -> None:
    answer = answer_publish(parse_offer(FFMPEG_WHIP), ACCEPT, LOCAL)
    assert answer.dtls_role == "client"
    assert lines(answer).count("a=setup:active") == 2 and "a=setup:passive" not in lines(answer)
    assert [(m.codec, m.payload_type, m.ssrcs, m.feedback) for m in answer.media] == [
        ("opus", 111, [4002635789], set()),
        ("h264", 106, [4002635790], {"nack"}),  # not the RTX SSRC 4002635791
    ]
    # FFmpeg reads the first a=candidate with "udp" in it as the server address
    first = next(line for line in lines(answer) if line.startswith("a=candidate:"))
    assert " udp " in first and first.endswith("192.0.2.10 8189 typ host")


def test_obs_publish() -> None:
    answer = answer_publish(parse_offer(OBS_WHIP), ACCEPT, LOCAL)
    assert [(m.codec, m.fmt.encoding, m.ssrcs) for m in answer.media] == [
        ("opus", "OPUS", [2168349679]),
        ("h264", "H264", [2168349680]),
    ]
    assert "a=rtpmap:111 OPUS/48000/2" in section(answer, "0")


def test_data_channel_section_is_rejected_with_port_0() -> None:
    text = CHROME_WHIP.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2") + crlf(
        """m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:nWnq
a=ice-pwd:DTdCVj00s9nGkNgWra0P30A2
a=setup:actpass
a=mid:2
a=sctp-port:5000
"""
    )
    answer = answer_publish(parse_offer(text), ACCEPT, LOCAL)
    assert section(answer, "2") == [
        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:2",
        "a=inactive",
        "",
    ]
    assert "a=group:BUNDLE 0 1" in lines(answer)
    assert answer.rejected[0].reason.startswith("'application' sections")


# --- WHEP answers ------------------------------------------------------------------------------


def test_play_chrome_picks_the_payload_type_of_the_track_profile() -> None:
    answer = play(
        CHROME_WHEP,
        SendTrack("video", ("h264",), 0x1111, H264_HIGH, "live-cam", "v"),
        SendTrack("audio", ("opus",), 0x2222, OPUS_STEREO, "live-cam", "a"),
    )
    video, audio = answer.media
    assert (video.mid, video.payload_type, video.ssrcs, video.direction, video.source) == (
        "0",
        112,
        [0x1111],
        "sendonly",
        0,
    )
    assert (audio.mid, audio.payload_type, audio.source) == ("1", 111, 1)
    assert audio.fmt.fmtp == {"minptime": "10", "useinbandfec": "1", "sprop-stereo": "1", "stereo": "1"}
    v = section(answer, "0")
    for line in (
        "a=sendonly",
        "a=msid:live-cam v",
        "a=ssrc:4369 cname:streamhive",
        "a=ssrc:4369 msid:live-cam v",
        "a=rtpmap:112 H264/90000",
        "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640034",
    ):
        assert line in v, line
    assert "a=fmtp:111 minptime=10;useinbandfec=1;sprop-stereo=1;stereo=1" in section(answer, "1")
    assert answer.rejected == [] and answer.unsent == []


@pytest.mark.parametrize(
    ("offer", "track", "pt"),
    [
        (CHROME_WHEP, H264_CONSTRAINED_BASELINE, 106),  # 42e01f, not the Baseline 42001f before it
        (CHROME_WHEP, H264_MAIN, 127),
        (FIREFOX_WHEP, H264_MAIN, 126),  # no Main offered: any mode-1 H.264
        (CHROMIUM_WHEP, H264_HIGH, 41),  # no High: High 4:4:4 contains it
        (CHROMIUM_WHEP, H264_MAIN, 116),
        (CHROMIUM_WHEP, Track("video", "h264", avcc(0x42, 0x00, 0x1F)), 102),  # Baseline
        (SAFARI_WHEP, H264_HIGH, 96),
        (SAFARI_WHEP, H264_CONSTRAINED_BASELINE, 98),
    ],
)
def test_play_h264_profile_matching(offer: str, track: Track, pt: int) -> None:
    (video,) = play(offer, SendTrack("video", ("h264",), 7, track)).media
    assert video.payload_type == pt and video.fmt.fmtp["packetization-mode"] == "1"


def test_play_h264_from_a_real_encoder() -> None:
    pytest.importorskip("av")
    from tests.media import encode_video

    config, _ = encode_video("libx264", 64, 48, profile="baseline")
    (video,) = play(CHROME_WHEP, SendTrack("video", ("h264",), 7, Track("video", "h264", config))).media
    assert video.payload_type == 106  # x264's baseline sets constraint_set1: constrained baseline
    config, _ = encode_video("libx265", 64, 48)
    (video,) = play(SAFARI_WHEP, SendTrack("video", ("h265",), 7, Track("video", "h265", config))).media
    assert video.payload_type == 100 and video.codec == "h265"
    (video,) = play(CHROME_WHEP, SendTrack("video", ("h265",), 7, Track("video", "h265", config))).media
    assert video.payload_type == 49  # profile-id=1 (Main), not 51 (Main 10)


def test_vp8_vp9_av1_match_by_name_and_profile() -> None:
    for module in ("vp8", "vp9", "av1"):
        pytest.importorskip(f"streamhive.formats.rtp.{module}")
    publish = answer_publish(parse_offer(CHROME_WHIP), {"video": ["vp9", "h264"]}, LOCAL)
    assert [(m.codec, m.payload_type) for m in publish.media] == [("vp9", 98)]
    publish = answer_publish(parse_offer(FIREFOX_WHIP), {"video": ["vp8"]}, LOCAL)
    assert [(m.codec, m.payload_type) for m in publish.media] == [("vp8", 120)]
    vp9_profile2 = Track("video", "vp9", bytes((1, 0, 0, 0, 2, 10, 0xA0, 1, 1, 1, 0, 0)))  # vpcC, profile 2
    (video,) = play(CHROME_WHEP, SendTrack("video", ("vp9",), 5, vp9_profile2)).media
    assert (video.codec, video.payload_type) == ("vp9", 100)
    (video,) = play(CHROME_WHEP, SendTrack("video", ("vp9",), 5, Track("video", "vp9"))).media
    assert video.payload_type == 98
    (video,) = play(CHROME_WHEP, SendTrack("video", ("av1",), 5, Track("video", "av1"))).media
    assert (video.codec, video.payload_type) == ("av1", 45)


def test_play_aac_needs_a_transcoder() -> None:
    video = SendTrack("video", ("h264",), 1, H264_HIGH)
    answer = play(CHROME_WHEP, video, SendTrack("audio", ("aac",), 2, AAC))
    assert [m.codec for m in answer.media] == ["h264"]
    (unsent,) = answer.unsent
    assert (unsent.index, unsent.kind, unsent.mid) == (1, "audio", None)
    assert "aac" in unsent.reason and "opus" in unsent.reason
    (rejected,) = answer.rejected
    assert (rejected.mid, rejected.reason) == ("1", "no common audio codec")
    assert "a=inactive" in section(answer, "1")

    answer = play(CHROME_WHEP, video, SendTrack("audio", ("aac", "opus"), 2, AAC))
    audio = answer.media[1]
    assert (audio.codec, audio.payload_type, audio.source) == ("opus", 111, 1)
    assert audio.fmt.fmtp["sprop-stereo"] == "1"  # the transcoder keeps AAC's two channels


def test_play_with_nothing_in_common_raises_with_both_sides() -> None:
    with pytest.raises(SdpNegotiationError, match=r"nothing to play.*H264.*audio aac \(as aac\)"):
        play(CHROME_WHEP, SendTrack("audio", ("aac",), 2, AAC))
    with pytest.raises(SdpNegotiationError, match="no tracks"):
        play(CHROME_WHEP)
    with pytest.raises(SdpNegotiationError, match="does not receive"):
        play(CHROME_WHIP, SendTrack("video", ("h264",), 1, H264_HIGH))


def test_play_g711_and_missing_tracks() -> None:
    pcmu = Track("audio", "pcmu", sample_rate=8000, channels=1)
    answer = play(SAFARI_WHEP, SendTrack("audio", ("pcmu",), 3, pcmu))
    assert [(m.mid, m.payload_type) for m in answer.media] == [("0", 0)]
    assert answer.rejected[0].reason == "the stream has no video track for it"


def test_play_more_tracks_than_sections() -> None:
    first = SendTrack("video", ("h264",), 1, H264_HIGH)
    second = SendTrack("video", ("h264",), 2, H264_HIGH, track_id="second")
    answer = play(FIREFOX_WHEP, first, second)
    assert [m.source for m in answer.media] == [0]
    assert [u.index for u in answer.unsent] == [1]


def test_send_track_validation() -> None:
    with pytest.raises(ValueError, match="msid"):
        SendTrack("video", ("h264",), 1, H264_HIGH, stream_id="live/cam")
    with pytest.raises(ValueError, match="SSRC"):
        SendTrack("video", ("h264",), 1 << 32, H264_HIGH)
    with pytest.raises(ValueError, match="CNAME"):
        answer_play(parse_offer(CHROME_WHEP), [], LOCAL, cname="a b")


# --- interop: aiortc takes our answers ---------------------------------------------------------


async def aiortc_offer(direction: str, kinds: tuple[str, ...] = ("audio", "video")) -> tuple[object, Offer]:
    aiortc = pytest.importorskip("aiortc")
    pc = aiortc.RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, parse_offer(pc.localDescription.sdp)


async def apply(pc: object, answer: Answer) -> list[tuple[str, str | None, str | None]]:
    """Set the answer on the aiortc peer and return (kind, direction, codec) per transceiver."""
    from aiortc import RTCSessionDescription

    try:
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))  # type: ignore[attr-defined]
        return [
            (t.kind, t.currentDirection, t._codecs[0].mimeType if t._codecs else None)
            for t in pc.getTransceivers()  # type: ignore[attr-defined]
        ]
    finally:
        await pc.close()  # type: ignore[attr-defined]


async def test_aiortc_publishes_with_our_whip_answer() -> None:
    pc, offer = await aiortc_offer("sendonly")
    assert offer.ice.setup == "actpass" and offer.ice.fingerprint.startswith("sha-256 ")
    answer = answer_publish(offer, ACCEPT, LOCAL)
    assert [m.codec for m in answer.media] == ["opus", "h264"]
    assert all(len(m.ssrcs) == 1 for m in answer.media)
    assert await apply(pc, answer) == [
        ("audio", "sendonly", "audio/opus"),
        ("video", "sendonly", "video/H264"),
    ]


async def test_aiortc_accepts_an_inactive_section() -> None:
    pc, offer = await aiortc_offer("sendonly")
    answer = answer_publish(offer, {"video": ["h264"]}, LOCAL)
    assert [r.kind for r in answer.rejected] == ["audio"]
    assert await apply(pc, answer) == [
        ("audio", "inactive", "audio/opus"),
        ("video", "sendonly", "video/H264"),
    ]


async def test_aiortc_plays_with_our_whep_answer() -> None:
    pc, offer = await aiortc_offer("recvonly")
    answer = answer_play(
        offer,
        [
            SendTrack("video", ("h264",), 11, H264_CONSTRAINED_BASELINE),
            SendTrack("audio", ("opus",), 12, OPUS_STEREO),
        ],
        LOCAL,
    )
    assert [m.payload_type for m in answer.media] == [101, 96]  # aiortc's 42e01f, then opus
    assert await apply(pc, answer) == [
        ("audio", "recvonly", "audio/opus"),
        ("video", "recvonly", "video/H264"),
    ]


async def test_aiortc_plays_video_only() -> None:
    pc, offer = await aiortc_offer("recvonly")
    answer = answer_play(offer, [SendTrack("video", ("h264",), 11, H264_HIGH)], LOCAL)
    assert await apply(pc, answer) == [
        ("audio", "inactive", "audio/opus"),
        ("video", "recvonly", "video/H264"),
    ]


def test_room_publish_takes_every_simulcast_layer() -> None:
    answer = answer_publish(parse_offer(CHROME_WHIP_SIMULCAST), ACCEPT, LOCAL, simulcast=True)
    (video,) = answer.media
    assert video.rids == ["h", "m", "l"]
    v = section(answer, "0")
    assert {"a=rid:h recv", "a=rid:m recv", "a=rid:l recv", "a=simulcast:recv h;m;l"} <= set(v)


def test_room_subscribe_sends_each_track_on_the_mid_the_client_chose() -> None:
    video = SendTrack("video", ("h264",), 0x1111, H264_HIGH, "alice", "camera", mid="0")
    audio = SendTrack("audio", ("opus",), 0x2222, OPUS_STEREO, "alice", "microphone", mid="1")
    answer = answer_play(parse_offer(CHROME_WHEP), [audio, video], LOCAL, extensions=False)
    assert sorted((m.mid, m.ssrcs[0]) for m in answer.media) == [("0", 0x1111), ("1", 0x2222)]
    assert all(m.extmap == {} for m in answer.media)
    assert not any(line.startswith("a=extmap") for line in lines(answer))
    elsewhere = SendTrack("video", ("h264",), 0x1111, H264_HIGH, "alice", "camera", mid="7")
    with pytest.raises(SdpNegotiationError):
        answer_play(parse_offer(CHROME_WHEP), [elsewhere], LOCAL)
