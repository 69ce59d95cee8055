"""Password hashes for internal users: scrypt, so a leaked config does not leak passwords.

Stored as ``scrypt$N$r$p$salt_b64$hash_b64`` (standard base64), the parameters travel with the
hash so they can be raised later without invalidating old entries. Verification takes the same
time whatever the candidate, and a stored value that does not parse, or asks for absurd amounts
of memory, verifies nothing rather than raising: a typo in one user must not crash a login path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["PasswordChecker", "hash_password", "verify_password"]

_N = 2**15  # 32 MiB with r=8: a few tens of ms per check, much more per guess for an attacker
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_MEMORY = 256 * 1024 * 1024  # refuse stored parameters that would need more than this


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=length,
        maxmem=_MAX_MEMORY + 1024 * 1024,
    )


def hash_password(password: str) -> str:
    """A new hash of ``password`` with a random salt, for the ``password_hash`` config key."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _N, _R, _P, _HASH_BYTES)
    encode = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; never raises."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isascii() and x.isdigit() for x in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * (n + p) > _MAX_MEMORY:
        return False
    try:
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return False
    if not salt or not 16 <= len(expected) <= 64:
        return False
    try:
        candidate = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, expected)


class PasswordChecker:
    """``verify_password`` for request paths: off the event loop, bounded, and remembered.

    scrypt takes tens of milliseconds and 32 MiB by design, so it runs in worker threads, at most
    ``parallel`` at once (a burst of logins cannot eat memory), and a successful check is
    remembered for ``remember`` seconds: an HLS player sending Basic credentials with every
    segment costs one scrypt, not one per request. Remembered entries are keyed by an HMAC with a
    per-process random key, so they are useless to anyone without this process's memory.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        remember: float = 300.0,
        parallel: int = 4,
        max_entries: int = 10_000,
    ) -> None:
        self._clock = clock
        self._remember = remember
        self._max_entries = max_entries
        self._slots = asyncio.Semaphore(parallel)
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    async def check(self, password: str, stored: str) -> bool:
        material = f"{stored}\0{password}".encode("utf-8", "surrogatepass")
        key = hmac.new(self._key, material, hashlib.sha256).digest()
        until = self._verified.get(key)
        if until is not None and self._clock() < until:
            return True
        async with self._slots:
            ok = await asyncio.to_thread(verify_password, password, stored)
        if ok:
            self._verified[key] = self._clock() + self._remember
            self._verified.move_to_end(key)
            while len(self._verified) > self._max_entries:
                self._verified.popitem(last=False)
        return ok
