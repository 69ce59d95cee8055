"""Who may join a room, as whom, and what they may do there: room tokens turned into grants.

A participant joins ``/rooms/{room}/ws`` with a JWT (the ``join`` message's ``token`` or
``?token=``). The token is checked by ``auth/tokens.py`` (algorithm allow-list per key family, no
``none``, ``exp`` required, ``nbf``/``iat`` honoured, ``aud``/``iss`` when configured, all on the
injected clock), so rooms and paths share one verifier and its defences. Its claims, modelled
on LiveKit's video grant::

    {"sub": "alice",            # identity, required: 1-64 chars [A-Za-z0-9_.@-], not "." or ".."
     "name": "Alice Liddell",   # display name, optional (1-128 printable chars); default: sub
     "exp": 1767225600,         # required; nbf/iat honoured; aud/iss when configured
     "room": "standup",         # required: the room, or a pattern as in auth/patterns.py ("team-*")
     "grants": {"publish": true, "subscribe": true, "data": true,
                "sources": ["camera", "microphone", "screen", "screen_audio"],
                "admin": false}}

Everything in ``grants`` is optional: absent ``publish``/``subscribe``/``data`` mean true, absent
``sources`` means all four, ``admin`` (mute or remove others) defaults to false. A value of the
wrong type, or a source this server does not know, refuses the token: a typo in a grant should be
seen at once, not turn into a participant who silently cannot publish. Unknown keys are ignored.

``rooms.auth: jwt`` requires a token. ``open`` admits anyone without one, under the identity and
name the client asks for (else ``guest-xxxxxx``) with every grant but ``admin``; a token sent to an
open room must still be valid and its grants apply, so a bad token is refused rather than quietly
downgraded to a guest, and the token, not the client's hints, decides who the participant is.

Refusals are ``GrantError``s carrying the WebSocket close code (4001: no, malformed, forged,
expired or not yet valid token; 4003: a genuine token for another room; 4400: a bad room name,
identity or name) and a short reason fit for a close frame (under 123 bytes, never echoing
client input). Room names and identities become hub paths (``rooms/{room}/{identity}``), so
``.`` and ``..`` are refused like the path segments ``hub/paths.py`` refuses.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..auth.patterns import path_allowed
from ..auth.tokens import JwtVerifier, TokenRefused
from ..config import RoomsConfig

__all__ = [
    "CLOSE_BAD_REQUEST",
    "CLOSE_FORBIDDEN",
    "CLOSE_UNAUTHORIZED",
    "SOURCES",
    "GrantError",
    "RoomGrant",
    "RoomTokens",
    "valid_identity",
    "valid_name",
    "valid_room_name",
]

#: The kinds of track a participant may publish, and the ``sources`` grant's vocabulary.
SOURCES = ("camera", "microphone", "screen", "screen_audio")

CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_BAD_REQUEST = 4400

_ROOM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_IDENTITY = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_MAX_NAME = 128
_FLAGS = (("publish", True), ("subscribe", True), ("data", True), ("admin", False))


def valid_room_name(name: object) -> bool:
    """1-64 characters ``[A-Za-z0-9_.-]``, neither ``.`` nor ``..``."""
    return isinstance(name, str) and _ROOM.fullmatch(name) is not None and name not in (".", "..")


def valid_identity(identity: object) -> bool:
    """1-64 characters ``[A-Za-z0-9_.@-]``, neither ``.`` nor ``..``."""
    return (
        isinstance(identity, str)
        and _IDENTITY.fullmatch(identity) is not None
        and identity not in (".", "..")
    )


def valid_name(name: object) -> bool:
    """1-128 printable characters: shown to everyone, so no control or bidi-override characters."""
    return isinstance(name, str) and 0 < len(name) <= _MAX_NAME and name.isprintable()


@dataclass(frozen=True, slots=True)
class RoomGrant:
    """What one participant may do in one room; ``expires`` is the token's ``exp`` (None: no token)."""

    room: str
    identity: str
    name: str
    publish: bool
    subscribe: bool
    data: bool
    sources: frozenset[str]
    admin: bool
    expires: float | None

    def allows_source(self, source: str) -> bool:
        """Whether a track of ``source`` may be published (needs ``publish`` too)."""
        return self.publish and source in self.sources


class GrantError(Exception):
    """A refused join: ``code`` is the WebSocket close code, ``reason`` says why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RoomTokens:
    """Turns a join request (room, token, identity and name hints) into a ``RoomGrant``."""

    def __init__(self, config: RoomsConfig, clock: Callable[[], float] = time.time) -> None:
        self._open = config.auth == "open"
        self._verifier = JwtVerifier(config.jwt, clock) if config.jwt is not None else None

    def grant(
        self, room: str, token: str | None, identity: str | None = None, name: str | None = None
    ) -> RoomGrant:
        """The grant for joining ``room``, or GrantError; an empty token counts as none."""
        if not valid_room_name(room):
            raise GrantError(CLOSE_BAD_REQUEST, "invalid room name")
        if token:
            return self._token_grant(room, token)
        if not self._open:
            raise GrantError(CLOSE_UNAUTHORIZED, "a room token is required")
        return _guest_grant(room, identity, name)

    def _token_grant(self, room: str, token: str) -> RoomGrant:
        if self._verifier is None:
            raise GrantError(CLOSE_UNAUTHORIZED, "room tokens are not accepted here (no rooms.jwt)")
        if not isinstance(token, str):
            raise GrantError(CLOSE_UNAUTHORIZED, "invalid room token: malformed")
        try:
            claims = self._verifier.verified_claims(token)
        except TokenRefused as exc:
            raise GrantError(CLOSE_UNAUTHORIZED, f"invalid room token: {exc.reason}") from None
        pattern = claims.get("room")
        if not isinstance(pattern, str) or not pattern:
            raise _malformed("no room claim")
        if not path_allowed([pattern], room):
            raise GrantError(CLOSE_FORBIDDEN, "the room token is for another room")
        identity = claims.get("sub")
        if not valid_identity(identity):
            raise _malformed("invalid sub")
        name = claims.get("name", identity)
        if not valid_name(name):
            raise _malformed("invalid name")
        return _build(room, identity, name, claims.get("grants", {}), float(claims["exp"]))


def _guest_grant(room: str, identity: str | None, name: str | None) -> RoomGrant:
    """An open room's participant without a token: the hints, checked, and all but ``admin``."""
    if identity and not valid_identity(identity):
        raise GrantError(CLOSE_BAD_REQUEST, "invalid identity")
    if name and not valid_name(name):
        raise GrantError(CLOSE_BAD_REQUEST, "invalid name")
    identity = identity or f"guest-{secrets.token_hex(3)}"
    return _build(room, identity, name or identity, {}, None)


def _build(room: str, identity: str, name: str, grants: Any, expires: float | None) -> RoomGrant:
    """The grant from a ``grants`` claim (``{}`` for the defaults), type-checked."""
    if not isinstance(grants, dict):
        raise _malformed("grants is not an object")
    flags: dict[str, bool] = {}
    for key, default in _FLAGS:
        value = grants.get(key, default)
        if not isinstance(value, bool):
            raise _malformed(f"grants.{key} is not a boolean")
        flags[key] = value
    sources = grants.get("sources", list(SOURCES))
    if not isinstance(sources, list) or not all(source in SOURCES for source in sources):
        raise _malformed("grants.sources lists an unknown source")
    return RoomGrant(
        room=room,
        identity=identity,
        name=name,
        sources=frozenset(sources),
        expires=expires,
        **flags,
    )


def _malformed(why: str) -> GrantError:
    return GrantError(CLOSE_UNAUTHORIZED, f"invalid room token: {why}")
