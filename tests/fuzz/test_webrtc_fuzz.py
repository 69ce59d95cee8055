"""ICE-lite, RFC 4571 deframing, DTLS, SRTP and demux survive random and mutated input with WebRtcError only."""

from __future__ import annotations

import contextlib
import functools

from aioice import stun
from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.demux import classify
from streamhive.protocols.webrtc.dtls import DtlsCertificate, DtlsEndpoint
from streamhive.protocols.webrtc.framing import StreamDeframer, frame
from streamhive.protocols.webrtc.ice import IceLite, stun_username
from streamhive.protocols.webrtc.srtp import AES128_CM_SHA1_80, PROFILES, SrtpContext, SrtpKeys
from tests.fuzz.test_codecs_fuzz import mutated

FUZZ = settings(max_examples=200, deadline=None)
UFRAG, PWD = "ourufrag", "ourpasswordourpassword12"
ADDR = ("192.0.2.1", 4000)


def browser_check(use_candidate: bool) -> bytes:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id=b"0123456789ab")
    message.attributes["USERNAME"] = f"{UFRAG}:theirs"
    message.attributes["ICE-CONTROLLING"] = 7
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    message.attributes["PRIORITY"] = 1853824767
    message.add_message_integrity(PWD.encode())
    return bytes(message)


CHECKS = [browser_check(False), browser_check(True)]


def handle(data: bytes) -> None:
    ice = IceLite(UFRAG, PWD, "theirs")
    with contextlib.suppress(WebRtcError):
        result = ice.handle(data, ADDR, 0.0)
        assert result.response is None or stun.parse_message(result.response)
    stun_username(data)
    classify(data)


@FUZZ
@given(st.binary(max_size=120))
def test_random_datagrams(data: bytes) -> None:
    handle(data)
    handle(b"\x00\x01" + len(data).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + bytes(12) + data)


@FUZZ
@given(st.data())
def test_mutated_checks(data: st.DataObject) -> None:
    handle(data.draw(mutated(data.draw(st.sampled_from(CHECKS)))))


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8), st.data())
def test_deframer_random_splits(packets: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(p) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    deframer = StreamDeframer(max_packet=300)
    out: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += deframer.feed(stream[start:end])
    assert out == [p for p in packets if p]
    assert deframer.buffered == 0


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_deframer_random_bytes(chunks: list[bytes]) -> None:
    deframer = StreamDeframer(max_packet=1500)
    with contextlib.suppress(WebRtcError):
        for chunk in chunks:
            deframer.feed(chunk)
            assert deframer.buffered <= 1501


@functools.cache
def certificate() -> DtlsCertificate:
    return DtlsCertificate.generate()


@functools.cache
def client_hello() -> bytes:
    return DtlsEndpoint(certificate(), "client", None).start(0.0)[0]


def only_webrtc_errors(endpoint: DtlsEndpoint, datagrams: list[bytes]) -> None:
    with contextlib.suppress(WebRtcError):
        for datagram in datagrams:
            endpoint.receive(datagram, 0.0)
        endpoint.handle_timer(10.0)


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=4))
def test_dtls_junk(datagrams: list[bytes]) -> None:
    only_webrtc_errors(DtlsEndpoint(certificate(), "server", certificate().fingerprint), datagrams)
    only_webrtc_errors(DtlsEndpoint(certificate(), "server", None), [b"\x16\xfe\xfd" + d for d in datagrams])


@functools.cache
def server_flight() -> list[bytes]:
    """Fixed once: its length varies by a byte or two (ECDSA signatures), which would change the draws."""
    return DtlsEndpoint(certificate(), "server", None).receive(client_hello(), 0.0)


@FUZZ
@given(st.data())
def test_dtls_mutated_client_hello(data: st.DataObject) -> None:
    server = DtlsEndpoint(certificate(), "server", certificate().fingerprint)
    only_webrtc_errors(server, [data.draw(mutated(client_hello())), client_hello()])
    client = DtlsEndpoint(certificate(), "client", certificate().fingerprint)
    client.start(0.0)
    only_webrtc_errors(client, [data.draw(mutated(d)) for d in server_flight()])


@functools.cache
def srtp_pair(profile_index: int) -> tuple[SrtpContext, list[bytes]]:
    profile = (*PROFILES, AES128_CM_SHA1_80)[profile_index]
    keys = SrtpKeys(profile, bytes(range(40))[: profile.key_length + profile.salt_length], bytes(40))
    sender = SrtpContext(keys)
    rtp = bytes.fromhex("80600001000000010000abcd") + bytes(100)
    rtcp = bytes.fromhex("80c90001000000ab")
    return SrtpContext(SrtpKeys(profile, keys.remote, keys.local)), [
        sender.protect(rtp),
        sender.protect_rtcp(rtcp),
    ]


@FUZZ
@given(st.data(), st.integers(0, len(PROFILES)))
def test_srtp_junk_and_mutations(data: st.DataObject, profile_index: int) -> None:
    receiver, protected = srtp_pair(profile_index)
    candidates = [data.draw(st.binary(max_size=80)), *(data.draw(mutated(p)) for p in protected)]
    for packet in candidates:
        for unprotect in (receiver.unprotect, receiver.unprotect_rtcp):
            with contextlib.suppress(WebRtcError):
                unprotect(packet)
