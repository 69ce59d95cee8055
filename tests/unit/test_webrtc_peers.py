"""What one WebRTC client can make the server hold or send: addresses, ICE-TCP sockets, NACK answers."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from aioice import stun

from streamhive.config import Config, WebRtcConfig
from streamhive.formats.rtp import SdpFormat
from streamhive.formats.rtp.rtcp import Nack, Pli, parse_compound, serialize_compound
from streamhive.hub import Session
from streamhive.protocols.webrtc.ice import MAX_ADDRESSES
from streamhive.protocols.webrtc.sdp import NegotiatedMedia
from streamhive.servers.webrtc import Peer, TcpRoute, UdpRoute, WebRtcService
from streamhive.servers.whip import Fanout, WhepPlayer, WhipPublisher

FINGERPRINT = "sha-256 " + ":".join(["AB"] * 32)


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def setsockopt(self, *args: object) -> None:
        pass


class FakeTransport:
    def __init__(self, route: TcpRoute) -> None:
        self.route = route
        self.aborted = False

    def get_extra_info(self, name: str) -> object:
        return {"peername": ("192.0.2.9", 40000), "socket": FakeSocket()}[name]

    def abort(self) -> None:
        self.aborted = True
        self.route.connection_lost(None)

    def close(self) -> None:
        self.abort()

    def is_closing(self) -> bool:
        return self.aborted


class _Stream:
    """What a player touches of a Stream before it attaches (hashable, as Streams are)."""

    publisher = None


def _service(**webrtc: object) -> WebRtcService:
    config = Config(webrtc=WebRtcConfig(**webrtc))  # type: ignore[arg-type]
    service = WebRtcService(SimpleNamespace(config=config))  # type: ignore[arg-type]
    service._loop = asyncio.get_running_loop()
    return service


def _peer(service: WebRtcService) -> Peer:
    peer = Peer(service, Session("webrtc", "192.0.2.9:40000"), "remote", FINGERPRINT)
    service.add(peer)
    return peer


def _check(peer: Peer) -> bytes:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["USERNAME"] = f"{peer.ufrag}:remote"
    message.attributes["ICE-CONTROLLING"] = 1
    message.attributes["PRIORITY"] = 1853824767
    message.add_message_integrity(peer.pwd.encode())
    return bytes(message)


async def test_checks_from_ever_new_ports_do_not_grow_the_address_map() -> None:
    service = _service()
    peer = _peer(service)
    sock = FakeSocket()
    now = service.now()
    for port in range(1000, 1300):
        peer.receive(_check(peer), UdpRoute(sock, ("192.0.2.9", port)), now)  # type: ignore[arg-type]
    assert len(sock.sent) == 300  # every check was valid and answered
    assert len(service._by_addr) <= MAX_ADDRESSES
    assert set(service._by_addr) == peer.ice.valid_addresses
    peer.close("done")
    assert not service._by_addr


async def test_ice_tcp_connections_that_never_check_or_whose_peer_left_are_closed() -> None:
    service = _service(handshake_timeout=2)
    silent, orphan = TcpRoute(service), TcpRoute(service)
    for conn in (silent, orphan):
        conn.connection_made(FakeTransport(conn))  # type: ignore[arg-type]
    peer = _peer(service)
    orphan.peer = peer  # a valid check came over it, but ICE selected another route
    now = service.now()
    service._sweep_tcp(now + 1)
    assert not silent.transport.aborted and not orphan.transport.aborted  # type: ignore[union-attr]
    peer.close("done")
    service._sweep_tcp(now + 1)
    assert orphan.transport.aborted  # type: ignore[union-attr]
    service._sweep_tcp(now + 3)
    assert silent.transport.aborted  # type: ignore[union-attr]
    assert service.counters["ice_tcp_timeout"] == 1 and service.counters["ice_tcp_orphaned"] == 1


async def test_nack_retransmissions_are_paced_per_player() -> None:
    """A NACK naming the whole history, sent again and again, gets at most the history's size
    of retransmissions per second, and only for tracks the player receives."""
    service = _service()
    peer = _peer(service)
    sent: list[bytes] = []
    peer.send_rtp = sent.append  # type: ignore[method-assign]
    stream = SimpleNamespace(publisher=None)
    fanout = Fanout(stream, 64, 1200)  # type: ignore[arg-type]
    video = SimpleNamespace(source=0, payload_type=102)
    player = WhepPlayer(peer, stream, [video], fanout, SimpleNamespace())  # type: ignore[arg-type]
    ssrc = fanout.ssrcs[0]
    for seq in range(64):
        fanout.record(ssrc, seq, b"\x80\x66" + seq.to_bytes(2, "big") + bytes(8) + b"payload")
        fanout.record(fanout.ssrcs[1], seq, b"\x80\x6f" + seq.to_bytes(2, "big") + bytes(8))
    everything = serialize_compound([Nack(1, ssrc, range(64))])
    now = 100.0
    for _ in range(20):
        player.rtcp(everything, now)
    assert len(sent) == 64  # the first NACK in full, then nothing more within the same instant
    assert service.counters["retransmissions_throttled"] == 19 * 64
    player.rtcp(everything, now + 0.5)
    assert len(sent) == 64 + 32  # half a second buys half the history
    player.rtcp(serialize_compound([Nack(1, fanout.ssrcs[1], range(64))]), now + 10)
    assert len(sent) == 96  # audio was not negotiated by this player: not sent


def test_a_track_that_joins_later_is_muxed_for_players() -> None:
    """Players that negotiated audio after the group's muxer was made (video first) get it."""
    from streamhive.hub.frame import Frame, Track

    fanout = Fanout(SimpleNamespace(), 64, 1200)  # type: ignore[arg-type]
    tracks = [Track("video", "vp8", b"", width=320, height=240)]
    muxer = fanout._muxer(tracks)
    tracks.append(Track("audio", "opus", b"", sample_rate=48000, channels=2))
    muxer.tracks_changed(tracks, {})
    assert muxer.frame(Frame(1, 0, 0, True, [b"\xfc\xff\xfe"]))


async def test_a_fanout_lives_while_it_has_players() -> None:
    """An ended Stream and its packet history are let go with the last player, not kept until
    the next WHEP offer."""
    service = _service()
    stream = _Stream()
    fanout = Fanout(stream, 64, 1200)  # type: ignore[arg-type]
    hub = SimpleNamespace(read_ended=lambda session: None, remove_session=lambda session: None)
    server = SimpleNamespace(hub=hub, whip=SimpleNamespace(fanouts={stream: fanout}))
    video = SimpleNamespace(source=0, payload_type=102)
    first, second = _peer(service), _peer(service)
    for peer in (first, second):
        peer.handler = WhepPlayer(peer, stream, [video], fanout, server)  # type: ignore[arg-type]
    first.close("left")
    assert server.whip.fanouts == {stream: fanout}
    second.close("left")
    assert server.whip.fanouts == {}


def test_keyframe_requests_repeat_until_a_keyframe_arrives() -> None:
    """Browsers send keyframes only when asked: one lost PLI must not leave players dark."""
    sent: list[bytes] = []
    peer = SimpleNamespace(
        session=Session("webrtc", "192.0.2.9:40000"),
        service=SimpleNamespace(counters=Counter()),
        send_rtcp=sent.append,
    )
    stream = SimpleNamespace(keyframes_in=0, set_track=lambda track: 0, path="cam")
    vp8 = SdpFormat("VP8", 90000)
    media = NegotiatedMedia("0", "video", 0, 96, vp8, "vp8", [], [], {}, {"nack pli"}, "recvonly")
    server = SimpleNamespace(config=Config())
    publisher = WhipPublisher(peer, stream, [media], server)  # type: ignore[arg-type]
    publisher.ssrcs[0] = 1234

    def plis_after(now: float) -> int:
        sent.clear()
        publisher.tick(now)
        return sum(isinstance(p, Pli) for data in sent for p in parse_compound(data))

    publisher.request_keyframe()
    assert plis_after(10.0) == 1
    assert plis_after(10.1) == 0  # paced
    assert plis_after(10.6) == 1  # the first one was lost: asked again
    stream.keyframes_in = 1
    assert plis_after(11.2) == 0
    publisher.request_keyframe()
    assert plis_after(11.8) == 1
