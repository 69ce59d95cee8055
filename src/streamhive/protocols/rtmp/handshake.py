"""RTMP handshake, sans-IO: the plain (echo) handshake and the digest ("complex") handshake.

Flash players and encoders such as ffmpeg put an HMAC-SHA256 digest in C1 and, when the server's
S1 says it is version 3 or later, verify that S1 and S2 carry digests made with the Flash Media
Server key. A server that only echoes C1 works for publishers but is refused by some players, so
the server answers a valid digest C1 in kind and everything else with the plain handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from .errors import RtmpError

__all__ = [
    "ClientHandshake",
    "ServerHandshake",
    "HANDSHAKE_SIZE",
    "RTMP_VERSION",
    "FP_KEY",
    "FMS_KEY",
    "find_digest",
    "imprint_digest",
]

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
DIGEST_SIZE = 32

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL  # the client key; digests use its first 30 bytes
FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL  # the server key; digests use 36 bytes
FP_KEY_PUBLIC = FP_KEY[:30]
FMS_KEY_PUBLIC = FMS_KEY[:36]

# (offset of the 4 bytes that position the digest, base added to their sum % 728)
SCHEMA_0 = (772, 776)  # key block first, digest block second
SCHEMA_1 = (8, 12)  # digest block first (ffmpeg's client and most encoders)
_SCHEMAS = (SCHEMA_0, SCHEMA_1)

SERVER_VERSION = bytes((0x0D, 0x0E, 0x0A, 0x0D))  # any version >= 3.0 makes clients check digests
CLIENT_VERSION = bytes((0x09, 0x00, 0x7C, 0x02))

RandomSource = Callable[[int], bytes]


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _digest_pos(block: bytes, schema: tuple[int, int]) -> int:
    at, base = schema
    return sum(block[at : at + 4]) % 728 + base


def _block_digest(block: bytes, pos: int, key: bytes) -> bytes:
    return _hmac(key, block[:pos] + block[pos + DIGEST_SIZE :])


def find_digest(block: bytes, key: bytes) -> tuple[tuple[int, int], bytes] | None:
    """Return (schema, digest) if a 1536-byte C1/S1 block carries a valid digest for ``key``."""
    for schema in _SCHEMAS:
        pos = _digest_pos(block, schema)
        digest = block[pos : pos + DIGEST_SIZE]
        if hmac.compare_digest(_block_digest(block, pos, key), digest):
            return schema, digest
    return None


def imprint_digest(block: bytes, schema: tuple[int, int], key: bytes) -> tuple[bytes, bytes]:
    """Write a digest for ``key`` into a 1536-byte block at ``schema``; returns (block, digest)."""
    pos = _digest_pos(block, schema)
    digest = _block_digest(block, pos, key)
    return block[:pos] + digest + block[pos + DIGEST_SIZE :], digest


def _signed_response(random: RandomSource, key: bytes, peer_digest: bytes) -> bytes:
    """S2/C2 of the digest handshake: random bytes signed with a key derived from the peer's digest."""
    body = random(HANDSHAKE_SIZE - DIGEST_SIZE)
    return body + _hmac(_hmac(key, peer_digest), body)


def _check_version(version: int, who: str) -> None:
    if version == 6:
        raise RtmpError(f"{who} asked for encrypted RTMP (RTMPE, version 6), which is not supported")
    if version != RTMP_VERSION:
        raise RtmpError(f"{who} sent RTMP version {version}, expected {RTMP_VERSION}")


class ServerHandshake:
    """Server side: reads C0+C1, answers S0+S1+S2, then waits for C2.

    ``random`` supplies the random filler (``os.urandom`` by default; tests pass a seeded one).
    """

    __slots__ = ("_buf", "_random", "_sent", "done", "leftover", "digest_schema")

    def __init__(self, random: RandomSource = os.urandom) -> None:
        self._buf = bytearray()
        self._random = random
        self._sent = False
        self.done = False
        self.leftover = b""
        self.digest_schema: tuple[int, int] | None = None  # set when the client used the digest form

    def receive_data(self, data: bytes) -> bytes:
        """Consume handshake bytes; returns the bytes to send (S0+S1+S2 once C1 is complete)."""
        if self.done:
            raise RtmpError("handshake data after the handshake completed")
        self._buf += data
        out = b""
        if not self._sent:
            if self._buf:
                _check_version(self._buf[0], "client")
            if len(self._buf) < 1 + HANDSHAKE_SIZE:
                return b""
            c1 = bytes(self._buf[1 : 1 + HANDSHAKE_SIZE])
            del self._buf[: 1 + HANDSHAKE_SIZE]
            out = bytes((RTMP_VERSION,)) + self._respond(c1)
            self._sent = True
        if len(self._buf) >= HANDSHAKE_SIZE:  # C2 is not checked: clients fill it inconsistently
            self.leftover = bytes(self._buf[HANDSHAKE_SIZE:])
            self._buf.clear()
            self.done = True
        return out

    def _respond(self, c1: bytes) -> bytes:
        found = find_digest(c1, FP_KEY_PUBLIC) if c1[4:8] != b"\x00\x00\x00\x00" else None
        if found is None:
            s1 = bytes(8) + self._random(HANDSHAKE_SIZE - 8)
            return s1 + c1  # plain: S2 echoes C1
        schema, client_digest = found
        self.digest_schema = schema
        s1, _ = imprint_digest(
            bytes(4) + SERVER_VERSION + self._random(HANDSHAKE_SIZE - 8), schema, FMS_KEY_PUBLIC
        )
        return s1 + _signed_response(self._random, FMS_KEY, client_digest)


class ClientHandshake:
    """Client side for tests and the load tester: sends C0+C1, reads S0+S1+S2, answers C2.

    With ``digest=True`` it sends a Flash-style digest C1 and, like ffmpeg, verifies the server's
    S1 and S2 digests whenever S1 announces a server version.
    """

    __slots__ = ("_buf", "_random", "_digest", "_c1", "_c1_digest", "done", "leftover", "server_digest_ok")

    def __init__(self, digest: bool = False, random: RandomSource = os.urandom) -> None:
        self._buf = bytearray()
        self._random = random
        self._digest = digest
        self._c1 = b""
        self._c1_digest = b""
        self.done = False
        self.leftover = b""
        self.server_digest_ok = False  # True once the server's digests have been verified

    def initial(self) -> bytes:
        """C0+C1, the bytes a client sends first."""
        if self._digest:
            block = bytes(4) + CLIENT_VERSION + self._random(HANDSHAKE_SIZE - 8)
            self._c1, self._c1_digest = imprint_digest(block, SCHEMA_1, FP_KEY_PUBLIC)
        else:
            self._c1 = bytes(8) + self._random(HANDSHAKE_SIZE - 8)
        return bytes((RTMP_VERSION,)) + self._c1

    def receive_data(self, data: bytes) -> bytes:
        """Consume S0+S1+S2; returns C2 once they are complete, else ``b""``."""
        if self.done:
            raise RtmpError("handshake data after the handshake completed")
        self._buf += data
        if self._buf:
            _check_version(self._buf[0], "server")
        if len(self._buf) < 1 + 2 * HANDSHAKE_SIZE:
            return b""
        s1 = bytes(self._buf[1 : 1 + HANDSHAKE_SIZE])
        s2 = bytes(self._buf[1 + HANDSHAKE_SIZE : 1 + 2 * HANDSHAKE_SIZE])
        self.leftover = bytes(self._buf[1 + 2 * HANDSHAKE_SIZE :])
        self._buf.clear()
        self.done = True
        if not (self._digest and s1[4] >= 3):
            return s1  # plain: C2 echoes S1
        found = find_digest(s1, FMS_KEY_PUBLIC)
        if found is None:
            raise RtmpError("server S1 digest does not validate")
        expected = _hmac(_hmac(FMS_KEY, self._c1_digest), s2[: HANDSHAKE_SIZE - DIGEST_SIZE])
        if not hmac.compare_digest(expected, s2[HANDSHAKE_SIZE - DIGEST_SIZE :]):
            raise RtmpError("server S2 signature does not match our C1 digest")
        self.server_digest_ok = True
        return _signed_response(self._random, FP_KEY, found[1])
