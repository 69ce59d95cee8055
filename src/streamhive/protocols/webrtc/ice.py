"""ICE-lite (RFC 8445 section 2.5), the controlled side: answer the browser's connectivity checks.

A lite agent never sends checks of its own. It answers Binding requests (RFC 5389) that carry our
ufrag and are signed with our password, and learns from them which of the peer's addresses is
valid and which one the peer nominated. Parsing and signing use aioice's STUN module.

Selection: the address of the latest valid check carrying USE-CANDIDATE is the selected one; a later
nomination on another address moves it (a peer switching pairs, e.g. Wi-Fi to cellular). Until a
nomination arrives, the first valid address is selected provisionally, so media can start on it;
this is what mediasoup does, and it covers peers that nominate late or never.

Consent freshness (RFC 7675): browsers keep checking the selected pair every few seconds; when the
checks stop for `timeout` seconds, consent has expired and the session should be torn down.
"""

from __future__ import annotations

import secrets
import string
import struct
from collections import Counter
from dataclasses import dataclass

from aioice import stun

from streamhive.protocols.webrtc import WebRtcError

Address = tuple[str, int]

_COOKIE = b"\x21\x12\xa4\x42"
_USERNAME = 0x0006

# A peer checks from each of its candidates (host v4/v6, server-reflexive, relayed): a handful.
# Only authenticated checks add an address, but a peer must not grow our state without bound.
MAX_ADDRESSES = 32

_ICE_CHARS = string.ascii_letters + string.digits  # RFC 8445 ice-char also allows + and /


def new_credentials() -> tuple[str, str]:
    """A fresh (ufrag, pwd): 8 and 24 ice-chars, over the 24 bits and 128 bits RFC 8445 asks for."""
    ufrag = "".join(secrets.choice(_ICE_CHARS) for _ in range(8))
    pwd = "".join(secrets.choice(_ICE_CHARS) for _ in range(24))
    return ufrag, pwd


def stun_username(data: bytes) -> str | None:
    """The local ufrag (before ':') of a Binding request's USERNAME, without checking anything else.

    The server uses it to find which peer a datagram from an unknown address is for; that peer's
    IceLite then authenticates it. None for anything that is not a Binding request with a USERNAME.
    """
    size = len(data)
    if size < 20 or data[0] != 0 or data[1] != 1 or data[4:8] != _COOKIE:
        return None
    if int.from_bytes(data[2:4], "big") != size - 20:
        return None
    pos = 20
    while pos + 4 <= size:
        kind = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos + 4 + length > size:
            return None
        if kind == _USERNAME:
            try:
                local, colon, _ = data[pos + 4 : pos + 4 + length].decode().partition(":")
            except UnicodeDecodeError:
                return None
            return local if colon and local else None
        pos += 4 + length + (-length % 4)
    return None


@dataclass(frozen=True, slots=True)
class IceResult:
    """What one datagram did: the bytes to send back to its address, and the selection after it.

    `valid` is an authenticated check; `selected` says the datagram's address is the selected one
    now, and `changed` that it became so with this datagram.
    """

    response: bytes | None = None
    valid: bool = False
    selected: bool = False
    changed: bool = False


_NOTHING = IceResult()


class IceLite:
    """One peer's ICE-lite state: its valid addresses, the selected one, and when each last checked.

    Every datagram not taken as a valid check is counted in `rejected` by reason. Those failing
    authentication are dropped without an answer: RFC 5389 would send 401, but that only tells a
    prober the ufrag exists, and a browser retries its checks anyway.
    """

    def __init__(self, local_ufrag: str, local_pwd: str, remote_ufrag: str | None = None) -> None:
        self.local_ufrag = local_ufrag
        self.remote_ufrag = remote_ufrag
        self._key = local_pwd.encode()
        self._checks: dict[Address, float] = {}  # valid address -> time of its last valid check
        self.selected: Address | None = None
        self.nominated = False  # the selection came from USE-CANDIDATE, not the first-valid fallback
        self.rejected: Counter[str] = Counter()

    def handle(self, data: bytes, addr: Address, now: float) -> IceResult:
        """Answer one STUN datagram from `addr`; never raises for what the datagram contains."""
        if len(data) < 20 or data[0] > 3 or data[4:8] != _COOKIE:
            return self._drop("not STUN")
        try:
            message = stun.parse_message(data)
        except (ValueError, struct.error):  # includes a FINGERPRINT that does not match
            return self._drop("malformed")
        if message.message_method != stun.Method.BINDING:
            return self._drop("not Binding")
        if message.message_class == stun.Class.INDICATION:
            return _NOTHING  # a keepalive (RFC 8445 section 11): nothing to answer
        if message.message_class != stun.Class.REQUEST:
            return self._drop("not a request")  # a lite agent sends no requests, so expects no responses

        attributes = message.attributes
        username = attributes.get("USERNAME")
        if username is None or "MESSAGE-INTEGRITY" not in attributes or "FINGERPRINT" not in attributes:
            # RFC 5389 section 10.1.2 for the first two; RFC 8445 section 7.3 requires FINGERPRINT.
            self.rejected["bad request"] += 1
            return IceResult(self._error(message, addr, 400, "Bad Request", signed=False))
        local, _, remote = username.partition(":")
        if local != self.local_ufrag:
            return self._drop("unknown username")
        if not message.check_message_integrity(self._key):
            return self._drop("bad integrity")
        if self.remote_ufrag is not None and remote != self.remote_ufrag:
            # Signed with our password, so from the signalling peer, but for credentials that are
            # no longer current (a stale check across an ICE restart).
            self.rejected["stale username"] += 1
            return IceResult(self._error(message, addr, 401, "Unauthorized", signed=False))
        if "ICE-CONTROLLED" in attributes:
            # Both sides claim controlled; a lite agent cannot switch to controlling (RFC 8445
            # section 7.3.1.1), so the peer has to.
            self.rejected["role conflict"] += 1
            return IceResult(self._error(message, addr, 487, "Role Conflict", signed=True))

        response = self._success(message, addr)
        self._remember(addr, now)
        changed = False
        if "USE-CANDIDATE" in attributes:
            changed = self.selected != addr
            self.selected = addr
            self.nominated = True
        elif self.selected is None:
            changed = True
            self.selected = addr
        return IceResult(response, valid=True, selected=self.selected == addr, changed=changed)

    def is_valid(self, addr: Address) -> bool:
        """Whether `addr` has passed a check; DTLS and SRTP are accepted only from such addresses."""
        return addr in self._checks

    @property
    def valid_addresses(self) -> frozenset[Address]:
        return frozenset(self._checks)

    def last_check(self, addr: Address) -> float | None:
        """When `addr` last sent a valid check, or None if it never has."""
        return self._checks.get(addr)

    def consent_expired(self, now: float, timeout: float = 30.0) -> bool:
        """True when the selected address has sent no valid check for `timeout` seconds (RFC 7675).

        Before any address is selected there is no consent to lose; how long to wait for the first
        check is the session's own timeout.
        """
        if self.selected is None:
            return False
        return now - self._checks[self.selected] > timeout

    def _remember(self, addr: Address, now: float) -> None:
        checks = self._checks
        checks.pop(addr, None)  # re-insert, so the dict stays ordered by last check
        if len(checks) >= MAX_ADDRESSES:
            stalest = next(a for a in checks if a != self.selected)
            del checks[stalest]
        checks[addr] = now

    def _drop(self, reason: str) -> IceResult:
        self.rejected[reason] += 1
        return _NOTHING

    def _success(self, request: stun.Message, addr: Address) -> bytes:
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
            attributes={"XOR-MAPPED-ADDRESS": _mapped(addr)},
        )
        try:
            response.add_message_integrity(self._key)  # adds FINGERPRINT after it
            return bytes(response)
        except (ValueError, struct.error):
            raise WebRtcError(f"cannot put {addr!r} in XOR-MAPPED-ADDRESS") from None

    def _error(self, request: stun.Message, addr: Address, code: int, reason: str, signed: bool) -> bytes:
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.ERROR,
            transaction_id=request.transaction_id,
            attributes={"ERROR-CODE": (code, reason)},
        )
        if signed:
            response.add_message_integrity(self._key)
        else:
            response.add_fingerprint()
        return bytes(response)


def _mapped(addr: Address) -> Address:
    """The (host, port) for XOR-MAPPED-ADDRESS; an IPv6 socket address may carry more fields."""
    host = addr[0].partition("%")[0]  # a link-local scope id is ours, not part of the address
    return host, addr[1]
