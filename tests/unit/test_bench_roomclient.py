"""bench/roomclient.py: the clip packetized once, the offers the server must accept, per-SSRC
counting of a subscriber (loss, freezes, keyframes), kept-up judgement and the py-spy split."""

from __future__ import annotations

import asyncio

import pytest
from bench.roomclient import (
    MTU,
    OTHER,
    PublisherStats,
    RoomLoadResult,
    RoomSubscriber,
    StreamStats,
    SubscriberStats,
    packetize_clip,
    profile_shares,
    publish_offer,
    signalling_for,
    subscribe_offer,
)
from bench.webrtcclient import FREEZE_S, LocalIce
from hypothesis import given
from hypothesis import strategies as st

from streamhive.formats.rtp.packet import rtp_header
from streamhive.protocols.webrtc.dtls import DtlsCertificate
from streamhive.protocols.webrtc.sdp import LocalIce as ServerIce
from streamhive.protocols.webrtc.sdp import answer_publish, parse_offer
from streamhive.protocols.webrtc.srtp import PROFILES, SrtpContext, SrtpKeys
from streamhive.servers.whip import PUBLISH_CODECS

SPS = bytes.fromhex("6742c01fda014016ec0440000003004000000f23c60ca8")
PPS = bytes.fromhex("68ce3c80")
LOCAL = LocalIce("abcd", "p" * 24, "sha-256 " + ":".join(["AB"] * 32), "127.0.0.1", 40000)


def test_clip_is_packetized_once_and_loops_at_its_pace() -> None:
    idr = bytes([0x65]) + bytes(3000)  # three FU-A fragments at MTU 1200
    video = [(0.0 + i / 30, i == 0, [idr if i == 0 else bytes([0x41]) + bytes(500)]) for i in range(30)]
    audio = [(-0.007 + i * 0.02, bytes([0x78]) + bytes(80)) for i in range(50)]
    clip = packetize_clip(video, audio, [SPS, PPS], MTU)
    assert clip.frames[0].at == 0.0 and not clip.frames[0].video  # audio starts 7 ms earlier
    first_video = next(f for f in clip.frames if f.video)
    assert first_video.timestamp == round(0.007 * 90000)
    payloads = first_video.payloads
    assert payloads[0][0][0] & 0x1F == 24  # SPS and PPS in a STAP-A before the IDR
    assert [m for _, m in payloads] == [False] * (len(payloads) - 1) + [True]
    assert all(len(p) <= MTU for f in clip.frames for p, _ in f.payloads)
    assert [f.at for f in clip.frames] == sorted(f.at for f in clip.frames)
    assert clip.length == pytest.approx(1.0 + 0.007, abs=1e-6)  # video ends last: 30 frames + 1/30
    assert clip.loop_ticks(True) == round(clip.length * 90000)
    assert clip.loop_ticks(False) == round(clip.length * 48000)


def test_clip_without_media_is_refused() -> None:
    with pytest.raises(ValueError):
        packetize_clip([], [], [])


def test_offers_are_what_the_server_answers() -> None:
    server = ServerIce("srv1", "q" * 24, "sha-256 " + ":".join(["CD"] * 32), (("127.0.0.1", 8189, "udp"),))
    offer = parse_offer(publish_offer(LOCAL, 1111, 2222))
    assert [(m.kind, m.mid, m.direction, m.ssrcs) for m in offer.media] == [
        ("video", "0", "sendonly", [1111]),
        ("audio", "1", "sendonly", [2222]),
    ]
    answer = answer_publish(offer, PUBLISH_CODECS, server, simulcast=True)
    assert [(m.codec, m.payload_type) for m in answer.media] == [("h264", 96), ("opus", 111)]
    sub = parse_offer(subscribe_offer(LOCAL, ["audio", "video", "video"]))
    assert [(m.kind, m.mid, m.direction) for m in sub.media] == [
        ("audio", "0", "recvonly"),
        ("video", "1", "recvonly"),
        ("video", "2", "recvonly"),
    ]
    assert sub.bundle == ["0", "1", "2"] and sub.ice.setup == "active"


def test_signalling_by_url() -> None:
    assert signalling_for("ws://h:1/rooms/a/ws", 1, 5).kind == "streamhive"
    assert signalling_for("http://h:8088/janus", 1, 5).kind == "janus"
    with pytest.raises(ValueError):
        signalling_for("http://h:8080/live/x/whep", 1, 5)


def test_stream_freezes_and_trailing_gap() -> None:
    s = StreamStats(video=True, verify=0)
    for seq, t in ((1, 10.0), (2, 10.1), (4, 10.2), (5, 10.9), (6, 11.0)):
        s.add(seq, 100, t)
    assert s.freezes == 1 and s.max_gap == pytest.approx(0.7)
    assert s.seq.lost == 1 and s.seq.received == 5
    s.close(11.0 + FREEZE_S + 0.1)
    assert s.freezes == 2
    audio = StreamStats(video=False, verify=0)
    audio.add(1, 50, 1.0)
    audio.add(2, 50, 3.0)
    assert audio.freezes == 0  # silence suppression is not a freeze


def test_subscriber_needs_every_stream() -> None:
    st_ = SubscriberStats(0, expected_streams=4, signal_s=0.01)
    st_.streams[b"\x00\x00\x00\x01"] = StreamStats(video=True, verify=0)
    st_.finish(5.0)
    assert st_.error == "missing-streams" and not st_.realtime


def _srtp_pair() -> tuple[SrtpContext, SrtpContext]:
    profile = PROFILES[0]
    size = profile.key_length + profile.salt_length
    a, b = bytes(range(size)), bytes(range(1, size + 1))
    return SrtpContext(SrtpKeys(profile, a, b)), SrtpContext(SrtpKeys(profile, b, a))


async def test_subscriber_counts_per_ssrc_and_verifies_until_keyframe() -> None:
    stats = SubscriberStats(0, expected_streams=4)
    sub = RoomSubscriber(stats, DtlsCertificate.generate(), 2, 5.0)
    server, sub.srtp = _srtp_pair()
    sub.video_pts, sub.audio_pts = frozenset({96}), frozenset({111})
    idr = bytes([0x65, 0x88])
    for ssrc in (1, 2):  # two publishers' video: a P-frame first, then a keyframe, then more
        for seq, payload in enumerate([b"\x41\x9a", idr, b"\x41\x9a", b"\x41\x9a", b"\x41\x9a"]):
            sub._rtp(server.protect(rtp_header(96, 100 + seq, seq * 3000, ssrc, True) + payload))
    for ssrc in (3, 4):
        for seq in (0, 1, 3):  # one audio packet lost per stream
            sub._rtp(server.protect(rtp_header(111, seq, seq * 960, ssrc, False) + b"\xfc\x00"))
    sub._rtp(server.protect(rtp_header(100, 1, 0, 9, False) + b"x"))  # not negotiated: no stream
    sub._rtp(b"\x80\x60" + bytes(30))  # does not authenticate
    assert len(stats.streams) == 4 and stats.other_packets == 1 and stats.srtp_errors == 1
    assert stats.first_keyframe_s is not None  # both videos had one
    videos = [s for s in stats.streams.values() if s.video]
    assert all(s.keyframe and s.verify == 0 and s.seq.received == 5 for s in videos)
    assert stats.verified == 2 * 4 + 2 * 2 + 1  # video: up to the keyframe and 2 more; audio: 2
    assert stats.lost() == (2, 18) and stats.loss_pct() == pytest.approx(100 * 2 / 18)
    sub.stop(asyncio.get_running_loop().time())


def _result(sub_kbps: list[float], loss: list[int]) -> RoomLoadResult:
    pubs = [PublisherStats(i, window_kbps=1000.0) for i in range(2)]
    subs = []
    for i, (kbps, lost) in enumerate(zip(sub_kbps, loss, strict=True)):
        s = SubscriberStats(i, expected_streams=4, window_kbps=kbps, realtime=True, first_packet_s=0.01)
        for n in range(4):
            stream = StreamStats(video=n < 2, verify=0)
            for seq in range(100):
                if n or not 10 <= seq < 10 + lost:
                    stream.add(seq, 1000, 1.0 + seq * 0.01)
            s.streams[bytes([0, 0, 0, n])] = stream
        subs.append(s)
    return RoomLoadResult("ws://x/rooms/a/ws", "streamhive", 2, len(subs), 10, 50, 12, 30, 20, 90, 1, pubs, subs,
                          steady_s=9.0, server={"cpu_pct": 50.0})  # fmt: skip


def test_kept_up_needs_rate_and_little_loss() -> None:
    r = _result([2000.0, 1700.0, 1990.0], [0, 0, 10])
    s = r.summary()
    assert s["expected_kbps"] == 2000.0
    assert [x.index for x in r.kept_up()] == [0]  # 1: 85% of the rate; 2: 10 of 400 packets lost (2.5%)
    assert s["kept_up"] == 1 and s["subscribers_with_loss"] == 1
    assert s["subscribers_per_core"] == 6 and s["streams_per_core"] == 12  # 3 and 6 at half a core


def test_profile_split() -> None:
    base = (
        "<module> (streamhive:6);WebRtcService._drain (streamhive/servers/webrtc.py:604);Publisher.rtp (x:1)"
    )
    fwd = (
        base
        + ";Subscription.forward (streamhive/sfu/room.py:364);Peer.send_rtp (streamhive/servers/webrtc.py:{})"
    )
    raw = "\n".join(
        [
            fwd.format(275) + ";SrtpContext.protect (streamhive/protocols/webrtc/srtp.py:83) 30",
            fwd.format(275) + " 10",  # the call's entry, charged to the calling line
            fwd.format(280) + ";UdpRoute.send (streamhive/servers/webrtc.py:83) 40",
            base
            + ";Subscription.forward (streamhive/sfu/room.py:356);Rewriter.rewrite (streamhive/sfu/rewrite.py:9) 15",
            base + ";Subscription.forward (streamhive/sfu/room.py:360);RtpHistory.add (nack.py:1) 5",
            base + ";Peer._media (streamhive/servers/webrtc.py:256) 20",
            "garbage",
        ]
    )
    lines = {"streamhive/servers/webrtc.py:275": "            data = srtp.protect(packet)\n"}
    out = profile_shares(raw, lambda where: lines.get(where, ""))
    assert out["samples"] == 120
    assert out["pct_of_busy"] == {
        "srtp protect": pytest.approx(100 * 40 / 120, abs=0.1),
        "Rewriter.rewrite": 12.5,
        "send": pytest.approx(100 * 40 / 120, abs=0.1),
        "forwarding, rest": pytest.approx(100 * 5 / 120, abs=0.1),
        OTHER: pytest.approx(100 * 20 / 120, abs=0.1),
    }
    assert out["pct_of_forwarding"]["srtp protect"] == 40.0


@given(st.text())
def test_profile_split_takes_any_text(raw: str) -> None:
    out = profile_shares(raw, lambda where: "")
    busy = out["pct_of_busy"]
    assert out["samples"] >= 0 and set(busy) >= {OTHER}
    if out["samples"]:
        assert sum(busy.values()) == pytest.approx(100, abs=0.5)
