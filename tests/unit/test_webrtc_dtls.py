"""DTLS-SRTP: two endpoints handshake through byte strings, derive matching keys, and protect media."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters, RTCDtlsTransport

from streamhive.formats.rtp.packet import RtpPacket
from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.dtls import (
    MAX_HANDSHAKE_BYTES,
    MTU,
    DtlsCertificate,
    DtlsEndpoint,
    DtlsError,
    parse_fingerprint,
)
from streamhive.protocols.webrtc.srtp import AES128_CM_SHA1_80, PROFILES, SrtpContext, SrtpKeys


@functools.cache
def certificate(name: str) -> DtlsCertificate:
    return DtlsCertificate.generate()


def pair(server_expects: str = "client", client_expects: str = "server") -> tuple[DtlsEndpoint, DtlsEndpoint]:
    server = DtlsEndpoint(certificate("server"), "server", certificate(server_expects).fingerprint)
    client = DtlsEndpoint(certificate("client"), "client", certificate(client_expects).fingerprint)
    return server, client


def deliver(to: DtlsEndpoint, datagrams: list[bytes], now: float = 0.0) -> list[bytes]:
    return [out for datagram in datagrams for out in to.receive(datagram, now)]


def handshake(server: DtlsEndpoint, client: DtlsEndpoint) -> None:
    flight = client.start(0.0)
    assert server.start(0.0) == []
    while flight:
        flight = deliver(client, deliver(server, flight))
    assert server.connected and client.connected


def rtp(seq: int, size: int = 1200) -> bytes:
    return RtpPacket(96, seq, seq * 3000, 0x11223344, False, bytes([seq & 0xFF]) * (size - 12)).serialize()


def contexts() -> tuple[SrtpContext, SrtpContext]:
    server, client = pair()
    handshake(server, client)
    return SrtpContext(server.srtp_keys), SrtpContext(client.srtp_keys)


def test_certificate_fingerprint_is_sdp_form() -> None:
    cert = certificate("server")
    algorithm, digest = cert.fingerprint.split(" ")
    assert algorithm == "sha-256"
    assert len(digest.split(":")) == 32 and digest == digest.upper()
    assert parse_fingerprint(cert.fingerprint.lower())[1] == bytes.fromhex(digest.replace(":", ""))
    assert cert.expires > cert.cert.not_valid_before_utc


@pytest.mark.parametrize("value", ["", "sha-256", "md5 AB:CD", "sha-256 XY:ZZ", "sha-256 :", "a b c"])
def test_malformed_fingerprint_is_refused(value: str) -> None:
    with pytest.raises(WebRtcError):
        parse_fingerprint(value)


def test_handshake_derives_mirrored_srtp_keys() -> None:
    server, client = pair()
    with pytest.raises(WebRtcError):
        server.srtp_keys  # noqa: B018 - the property raises before the handshake
    handshake(server, client)
    assert server.srtp_keys.profile == client.srtp_keys.profile == PROFILES[0]
    assert server.srtp_keys.local == client.srtp_keys.remote
    assert server.srtp_keys.remote == client.srtp_keys.local
    assert server.srtp_keys.local != server.srtp_keys.remote
    size = PROFILES[0].key_length + PROFILES[0].salt_length
    assert len(server.srtp_keys.local) == size
    assert "local" not in repr(server.srtp_keys)  # keys stay out of logs
    assert server.next_timeout() is None and client.next_timeout() is None


def test_flights_are_cut_at_record_boundaries_within_the_mtu() -> None:
    server, client = pair()
    flight = client.start(0.0)
    answer = deliver(server, flight)
    assert answer and all(len(d) <= MTU for d in answer)
    for datagram in answer:  # every datagram holds whole records
        pos = 0
        while pos < len(datagram):
            pos += 13 + int.from_bytes(datagram[pos + 11 : pos + 13], "big")
        assert pos == len(datagram)


def test_srtp_both_ways_rtp_and_rtcp() -> None:
    server, client = contexts()
    for seq in range(5):
        assert client.unprotect(server.protect(rtp(seq))) == rtp(seq)
        assert server.unprotect(client.protect(rtp(seq, 200))) == rtp(seq, 200)
    report = bytes.fromhex("81c9000700000055112233440000000000000004" + "00" * 12)  # an RR
    assert server.unprotect_rtcp(client.protect_rtcp(report)) == report
    assert client.unprotect_rtcp(server.protect_rtcp(report)) == report


def test_srtp_refuses_tampering_replay_and_junk() -> None:
    server, client = contexts()
    packet = server.protect(rtp(1))
    tampered = bytearray(packet)
    tampered[40] ^= 0x01
    with pytest.raises(WebRtcError):
        client.unprotect(bytes(tampered))
    client.unprotect(packet)
    with pytest.raises(WebRtcError, match="replay"):
        client.unprotect(packet)
    with pytest.raises(WebRtcError):
        client.unprotect_rtcp(b"\x80\xc9\x00\x01" + bytes(30))
    with pytest.raises(WebRtcError):
        client.unprotect(b"\x80")


def test_repeated_protect_serves_a_nack() -> None:
    """The server re-protects a cached packet after a NACK: same bytes, and the peer accepts it."""
    server, client = contexts()
    first = server.protect(rtp(7))
    for seq in range(8, 12):
        client.unprotect(server.protect(rtp(seq)))
    again = server.protect(rtp(7))  # libsrtp refuses this unless allow_repeat_tx is set
    assert again == first
    assert client.unprotect(again) == rtp(7)  # the first copy was lost on the way


def test_late_packets_inside_the_1024_window_are_accepted() -> None:
    server, client = contexts()
    protected = [server.protect(rtp(seq, 100)) for seq in range(1000)]
    client.unprotect(protected[999])
    assert client.unprotect(protected[10]) == rtp(10, 100)  # 989 behind: past libsrtp's default 128


def test_cm_sha1_80_profile_works() -> None:
    keys = SrtpKeys(AES128_CM_SHA1_80, local=bytes(range(30)), remote=bytes(range(30, 60)))
    mirrored = SrtpKeys(AES128_CM_SHA1_80, local=keys.remote, remote=keys.local)
    a, b = SrtpContext(keys), SrtpContext(mirrored)
    assert len(a.protect(rtp(1))) == len(rtp(1)) + 10
    assert b.unprotect(a.protect(rtp(2))) == rtp(2)
    with pytest.raises(WebRtcError):
        SrtpContext(SrtpKeys(AES128_CM_SHA1_80, local=b"short", remote=b"short"))


def test_fingerprint_mismatch_is_refused_by_the_server() -> None:
    server, client = pair(server_expects="server")  # the client's cert is not the one signalled
    flight = deliver(server, client.start(0.0))
    flight = deliver(client, flight)
    with pytest.raises(DtlsError, match="fingerprint") as failed:
        deliver(server, flight)
    assert failed.value.datagrams  # the fatal alert, for the client
    with pytest.raises(DtlsError):
        deliver(client, failed.value.datagrams)
    assert not server.connected
    with pytest.raises(DtlsError, match="fingerprint"):  # and it stays failed
        server.receive(flight[0], 1.0)


def test_fingerprint_mismatch_is_refused_by_the_client() -> None:
    server, client = pair(client_expects="client")
    with pytest.raises(DtlsError, match="fingerprint"):
        deliver(client, deliver(server, client.start(0.0)))
    assert not client.connected


def test_lost_flight_is_retransmitted_on_the_timer() -> None:
    server, client = pair()
    hello = client.start(100.0)  # dropped on the way
    deadline = client.next_timeout()
    assert deadline is not None and 100.0 < deadline <= 101.0
    assert client.handle_timer(100.1) == []  # too early on our clock
    time.sleep(deadline - 100.0 + 0.05)  # OpenSSL's own timer must have run out too
    again = client.handle_timer(deadline + 0.05)
    assert len(again) == len(hello) == 1
    assert client.next_timeout() > deadline + 0.05  # backed off
    flight = again
    while flight:
        flight = deliver(client, deliver(server, flight, 102.0), 102.0)
    assert server.connected and client.connected


def test_application_data_and_close_notify() -> None:
    server, client = pair()
    handshake(server, client)
    with pytest.raises(WebRtcError):
        DtlsEndpoint(certificate("server"), "server", None).send(b"x", 0.0)
    assert deliver(server, client.send(b"sctp chunk", 1.0)) == []
    assert server.app_data == [b"sctp chunk"]
    assert deliver(client, server.send(b"reply", 1.0)) == []
    assert client.app_data == [b"reply"]
    deliver(server, client.close())
    assert server.closed_by_peer
    assert client.close() == []  # closed once


def test_handshake_flood_is_bounded() -> None:
    server = DtlsEndpoint(certificate("server"), "server", certificate("client").fingerprint)
    junk = b"\x16\xfe\xfd" + bytes(1397)
    with pytest.raises(DtlsError, match="flood"):
        for _ in range(MAX_HANDSHAKE_BYTES // len(junk) + 2):
            server.receive(junk, 0.0)


def test_handshake_expiry() -> None:
    server = DtlsEndpoint(certificate("server"), "server", None)
    assert not server.handshake_expired(1000.0, 10.0)  # not started
    server.start(5.0)
    assert not server.handshake_expired(15.0, 10.0)
    assert server.handshake_expired(15.1, 10.0)


def test_bad_role_is_refused() -> None:
    with pytest.raises(WebRtcError):
        DtlsEndpoint(certificate("server"), "both", None)  # type: ignore[arg-type]


class _FakeIce:
    """The two coroutines aiortc's RTCDtlsTransport uses from its ICE transport."""

    role = "controlled"  # makes aiortc the DTLS client, as a browser is against our answer

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent: asyncio.Queue[bytes] = asyncio.Queue()

    async def _recv(self) -> bytes:
        return await self.inbox.get()

    async def _send(self, data: bytes) -> None:
        self.sent.put_nowait(data)


async def test_interop_with_aiortc_dtls_and_srtp() -> None:
    """aiortc's independent key split (RFC 5764 section 4.2) must agree with ours."""
    ice = _FakeIce()
    theirs = RTCCertificate.generateCertificate()
    peer = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    fingerprint = next(f for f in theirs.getFingerprints() if f.algorithm == "sha-256")
    server = DtlsEndpoint(certificate("server"), "server", f"sha-256 {fingerprint.value}")
    ours = certificate("server").fingerprint.split(" ")[1]
    started = asyncio.ensure_future(peer.start(RTCDtlsParameters([RTCDtlsFingerprint("sha-256", ours)])))
    while not started.done():
        try:
            datagram = await asyncio.wait_for(ice.sent.get(), 0.2)
        except TimeoutError:
            continue
        for out in server.receive(datagram, 0.0):
            ice.inbox.put_nowait(out)
    await started
    assert peer.state == "connected" and server.connected
    srtp = SrtpContext(server.srtp_keys)
    assert srtp.unprotect(peer._tx_srtp.protect(rtp(1))) == rtp(1)
    assert peer._rx_srtp.unprotect(srtp.protect(rtp(2))) == rtp(2)
    await peer.stop()
