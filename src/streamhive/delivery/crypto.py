"""HLS AES-128 segment encryption (RFC 8216 §5.2, ``METHOD=AES-128``) and a path's keys.

A whole segment is encrypted with AES-128-CBC and PKCS#7 padding. Its IV is its media sequence
number as a 128-bit big-endian integer: the value a player would derive itself without an IV
attribute, which the playlist states explicitly anyway so no player has to get the rule right.

Keys are random, one per key period of ``rotation`` segments (0: one for the segmenter's
whole life, i.e. while the path is published). A period's id is the media sequence number of
its first segment: ids then never repeat while the numbering goes on, even when a new publisher
continues a path's playlist with a fresh key, so a player that caches keys by URI never pairs
a segment with the wrong key.

Sans-IO: no clock, no I/O; the random source can be passed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 16
BLOCK = 16


def segment_iv(msn: int) -> bytes:
    """The IV of segment ``msn``: its media sequence number, 128-bit big-endian (RFC 8216 §5.2)."""
    return msn.to_bytes(BLOCK, "big")


def encrypt_segment(data: bytes, key: bytes, msn: int) -> bytes:
    """``data`` as AES-128-CBC with PKCS#7 padding, the way HLS players decrypt whole segments.

    Done once per segment when it completes (a few hundred microseconds per megabyte with
    OpenSSL), never per request.
    """
    pad = BLOCK - len(data) % BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(segment_iv(msn))).encryptor()
    return encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()


def random_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


class SegmentKeys:
    """The AES-128 keys of one segmenter's key periods, by period id.

    Only keys of periods that listed segments use are kept (plus the period in force): a key
    that left the playlist window is forgotten, so its URL answers 404 like its segments.
    """

    def __init__(self, rotation: int, new_key: Callable[[], bytes] = random_key) -> None:
        self.rotation = rotation
        self.keys: dict[int, bytes] = {}
        self._new_key = new_key
        self._period: int | None = None

    def key_id(self, msn: int) -> int:
        """The period id for new segment ``msn``, starting a period with a fresh key when due."""
        period = self._period
        if period is None or (self.rotation and msn - period >= self.rotation):
            period = self._period = msn
            self.keys[period] = self._new_key()
        return period

    def keep(self, used: set[int | None]) -> None:
        """Forget the keys of periods no listed segment uses any more."""
        for period in [p for p in self.keys if p not in used and p != self._period]:
            del self.keys[period]

    def inherit(self, previous: SegmentKeys) -> None:
        """Keep serving the keys of a previous publisher's segments still in the window."""
        self.keys = {**previous.keys, **self.keys}
