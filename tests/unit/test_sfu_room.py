"""The forwarding half of rooms with fake peers: hostile packets, layer order, bandwidth split."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from streamhive.config import RoomsConfig
from streamhive.formats.rtp import SdpFormat
from streamhive.formats.rtp.packet import RtpPacket
from streamhive.formats.rtp.rtcp import Pli, parse_compound
from streamhive.protocols.webrtc.sdp import URI_MID, URI_RID, NegotiatedMedia
from streamhive.sfu.grants import RoomGrant
from streamhive.sfu.room import (
    Participant,
    PublishedTrack,
    Publisher,
    Room,
    Subscriber,
    Subscription,
    layer_order,
)

GRANT = RoomGrant("r", "alice", "Alice", True, True, True, frozenset({"camera", "microphone"}), False, None)


class FakePeer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.service = SimpleNamespace(counters=Counter(), now=lambda: 0.0)

    def queue_rtp(self, packet: bytes) -> None:
        self.sent.append(packet)

    send_rtp = queue_rtp

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.append(packet)


def _room() -> Room:
    return Room("r", RoomsConfig(), 2_000_000)


def _participant(room: Room, identity: str) -> Participant:
    grant = RoomGrant("r", identity, identity, True, True, True, GRANT.sources, False, None)
    participant = Participant(room, grant, lambda event: None, lambda code, reason: None)
    room.add(participant)
    return participant


def _video(rids: list[str], rtx: int | None = 97) -> NegotiatedMedia:
    extmap = {URI_MID: 1, URI_RID: 2}
    return NegotiatedMedia(
        "0", "video", 0, 96, SdpFormat("VP8", 90000), "vp8", [], rids, extmap, {"nack pli"}, "recvonly",
        rtx_payload_type=rtx,
    )  # fmt: skip


def _setup(rids: list[str]) -> tuple[Publisher, PublishedTrack, Subscription, FakePeer]:
    room = _room()
    alice, bob = _participant(room, "alice"), _participant(room, "bob")
    publisher = Publisher(alice, FakePeer())  # type: ignore[arg-type]
    track = PublishedTrack(alice, "camera", _video(rids), {"height": 720}, 64)
    alice.tracks["camera"] = track
    publisher.set_tracks([track])
    peer = FakePeer()
    subscriber = Subscriber(bob, peer)  # type: ignore[arg-type]
    subscription = Subscription(subscriber, track, 0xABCDEF)
    track.subscriptions.append(subscription)
    subscriber.set_subscriptions([subscription])
    return publisher, track, subscription, peer


def _packet(
    pt: int, seq: int, ssrc: int, payload: bytes, ext: dict[int, bytes] | None = None, csrc: int = 0
) -> bytes:
    extension = None
    if ext:
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in ext.items())
        extension = (0xBEDE, body + b"\0" * (-len(body) % 4))
    return RtpPacket(pt, seq, seq * 3000, ssrc, False, payload, tuple(range(csrc)), extension).serialize()


VP8_KEY = bytes([0x10, 0x00, 0x00, 0x9D, 0x01, 0x2A]) + b"\0" * 20


def test_hostile_rtx_packets_are_dropped_not_raised() -> None:
    publisher, _track, _subscription, peer = _setup([])
    publisher.rtp(_packet(96, 1, 111, VP8_KEY, {1: b"0"}), 0.0)  # binds the media SSRC
    publisher.rtp(_packet(97, 7, 222, b"\x00\x01x", {1: b"0"}, csrc=15), 0.1)  # RTX, 15 CSRCs, tiny
    publisher.rtp(_packet(97, 8, 222, b"\x00\x02" + VP8_KEY, {1: b"0"}, csrc=3), 0.2)
    forwarded = [RtpPacket.parse(p) for p in peer.sent]
    assert [p.sequence for p in forwarded][-1] == 2  # the repaired packet, rebuilt without CSRCs
    assert forwarded[-1].payload == VP8_KEY and forwarded[-1].csrc == ()


def test_simulcast_layers_bind_by_rid_and_start_on_a_keyframe() -> None:
    publisher, track, subscription, peer = _setup(["f", "h", "q"])
    assert [layer.rid for layer in track.layers] == ["q", "h", "f"]
    for rid, ssrc in (("q", 10), ("h", 20), ("f", 30)):
        publisher.rtp(_packet(96, 5, ssrc, b"\x10\x00\x00\x01", {1: b"0", 2: rid.encode()}), 0.0)  # delta
    assert not peer.sent
    subscription.selector.choose([180, 360, 720], [1, 1, 1], [True] * 3, 180, None, 0.0)  # type: ignore[union-attr]
    publisher.rtp(_packet(96, 6, 20, VP8_KEY), 0.1)  # a keyframe of a layer nobody chose
    publisher.rtp(_packet(96, 6, 10, VP8_KEY), 0.1)  # the chosen one's
    assert [RtpPacket.parse(p).ssrc for p in peer.sent] == [0xABCDEF]


def test_layer_order_knows_both_namings() -> None:
    assert layer_order(["f", "h", "q"]) == ["q", "h", "f"]
    assert layer_order(["h", "m", "l"]) == ["l", "m", "h"]
    assert layer_order(["hi", "lo"]) == ["lo", "hi"]  # unknown: offer order is best first


def test_a_paused_simulcast_subscription_asks_for_no_keyframes() -> None:
    publisher, track, subscription, _peer = _setup(["q", "h", "f"])
    for index, layer in enumerate(track.layers):
        layer.ssrc = 10 + index
        layer.meter.packet(1000, 0.0)
    subscription.set_paused(True, 0.0)
    sent: list[Any] = []
    for step in range(20):
        now = step * 0.5
        subscription.subscriber.tick(now)
        publisher.tick(now)
    sent = [p for data in publisher.peer.rtcp for p in parse_compound(data) if isinstance(p, Pli)]
    assert sent == []


def test_the_estimate_is_shared_between_videos() -> None:
    _publisher, _track, subscription, _peer = _setup(["q", "h", "f"])
    subscriber = subscription.subscriber
    subscriber.bandwidth.remb(1_000_000, 0.0)
    assert subscriber._video_share(others=2, videos=2, now=0.0) == (1_000_000 - 2 * 64_000) // 2


def test_sender_report_counters_wrap() -> None:
    _publisher, _track, subscription, _peer = _setup([])
    subscription.packets, subscription.octets = 2**32 + 5, 2**33 + 7
    report = subscription.sender_report(1.0)
    assert report is not None and (report.packet_count, report.octet_count) == (5, 7)
    report.serialize()


def test_offers_are_rate_limited_per_connection() -> None:
    room = _room()
    alice = _participant(room, "alice")
    allowed = [alice.allow_offer("publish", 0.0) for _ in range(15)]
    assert allowed.count(True) == 10  # the burst
    assert alice.allow_offer("subscribe", 0.0)  # the other connection has its own bucket
    assert not alice.allow_offer("publish", 0.2)
    assert alice.allow_offer("publish", 0.6)  # two a second after that
