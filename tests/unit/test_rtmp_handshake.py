"""RTMP handshake: plain echo, the Flash digest handshake (both schemas), and bad versions.

The digest checks here are written out independently of the module (as a Flash client or
ffmpeg would compute them), so a mistake shared by both sides of the module cannot hide.
"""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from streamhive.protocols.rtmp.errors import RtmpError
from streamhive.protocols.rtmp.handshake import ClientHandshake, RandomSource, ServerHandshake

KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP_KEY = b"Genuine Adobe Flash Player 001" + KEY_TAIL
FMS_KEY = b"Genuine Adobe Flash Media Server 001" + KEY_TAIL


def _rand(seed: int) -> random.Random:
    return random.Random(seed)


def _seeded(seed: int) -> RandomSource:
    rng = _rand(seed)
    return lambda n: rng.randbytes(n)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _pos(block: bytes, schema: int) -> int:
    at, base = (772, 776) if schema == 0 else (8, 12)
    return sum(block[at : at + 4]) % 728 + base


def _flash_c1(schema: int, seed: int = 1) -> tuple[bytes, bytes]:
    block = bytearray(bytes(4) + bytes((10, 0, 32, 18)) + _rand(seed).randbytes(1528))
    pos = _pos(block, schema)
    digest = _hmac(FP_KEY[:30], bytes(block[:pos] + block[pos + 32 :]))
    block[pos : pos + 32] = digest
    return bytes(block), digest


def _digest_valid(block: bytes, schema: int, key: bytes) -> bool:
    pos = _pos(block, schema)
    return _hmac(key, block[:pos] + block[pos + 32 :]) == block[pos : pos + 32]


def test_plain_handshake_echoes_c1_and_keeps_leftover() -> None:
    server = ServerHandshake(_seeded(2))
    c1 = bytes(8) + _rand(3).randbytes(1528)
    reply = server.receive_data(b"\x03" + c1[:100])
    assert reply == b"" and not server.done
    reply = server.receive_data(c1[100:])
    assert reply[0] == 3 and len(reply) == 1 + 2 * 1536
    s1, s2 = reply[1:1537], reply[1537:]
    assert s1[4:8] == bytes(4)
    assert s2 == c1
    assert server.digest_schema is None
    server_leftover = server.receive_data(s1 + b"\x03chunk")
    assert server_leftover == b"" and server.done and server.leftover == b"\x03chunk"


@pytest.mark.parametrize("schema", [0, 1])
def test_digest_handshake_answers_in_kind(schema: int) -> None:
    c1, client_digest = _flash_c1(schema)
    server = ServerHandshake(_seeded(4))
    reply = server.receive_data(b"\x03" + c1)
    assert server.digest_schema is not None
    s1, s2 = reply[1:1537], reply[1537:]
    assert s1[4] >= 3  # a server version, so clients check the digests
    assert _digest_valid(s1, schema, FMS_KEY[:36])
    assert _hmac(_hmac(FMS_KEY, client_digest), s2[:1504]) == s2[1504:]


def test_c1_with_version_but_bad_digest_gets_plain_answer() -> None:
    c1 = bytearray(_flash_c1(1)[0])
    c1[_pos(bytes(c1), 1)] ^= 0xFF
    reply = ServerHandshake(_seeded(5)).receive_data(b"\x03" + bytes(c1))
    assert reply[1537:] == bytes(c1)


@pytest.mark.parametrize("digest", [False, True])
def test_client_against_server(digest: bool) -> None:
    client = ClientHandshake(digest=digest, random=_seeded(6))
    server = ServerHandshake(_seeded(7))
    s012 = server.receive_data(client.initial())
    c2 = client.receive_data(s012 + b"after")
    assert client.done and client.leftover == b"after"
    assert client.server_digest_ok is digest
    server.receive_data(c2)
    assert server.done and server.leftover == b""
    if digest:  # C2 is signed with a key derived from the server's S1 digest
        s1 = s012[1:1537]
        server_digest = s1[_pos(s1, 1) : _pos(s1, 1) + 32]
        assert _hmac(_hmac(FP_KEY, server_digest), c2[:1504]) == c2[1504:]


def test_digest_client_rejects_forged_server() -> None:
    client = ClientHandshake(digest=True, random=_seeded(8))
    client.initial()
    s1 = bytes(4) + b"\x0d\x0e\x0a\x0d" + bytes(1528)
    with pytest.raises(RtmpError, match="S1 digest"):
        client.receive_data(b"\x03" + s1 + bytes(1536))


def test_digest_client_rejects_bad_s2() -> None:
    client = ClientHandshake(digest=True, random=_seeded(9))
    reply = bytearray(ServerHandshake(_seeded(10)).receive_data(client.initial()))
    reply[-1] ^= 1
    with pytest.raises(RtmpError, match="S2"):
        client.receive_data(bytes(reply))


@pytest.mark.parametrize(("version", "match"), [(6, "encrypted"), (9, "version 9"), (0, "version 0")])
def test_bad_versions(version: int, match: str) -> None:
    with pytest.raises(RtmpError, match=match):
        ServerHandshake().receive_data(bytes((version,)))
    client = ClientHandshake()
    client.initial()
    with pytest.raises(RtmpError, match=match):
        client.receive_data(bytes((version,)) + bytes(3072))


def test_data_after_done_is_an_error() -> None:
    server = ServerHandshake()
    server.receive_data(b"\x03" + bytes(1536) + bytes(1536))
    assert server.done
    with pytest.raises(RtmpError):
        server.receive_data(b"x")
