"""Authorization: one hook asked for every publish, read and API call.

This release allows everything by default; access control (tokens, HTTP hooks, IP rules) is
added by registering checks, never by touching the protocols.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs

Action = Literal["publish", "read", "api"]


def ip_of(remote: str) -> str:
    """The client address without its port ("[::1]:5000" and "10.0.0.1:5000" alike)."""
    host = remote.rsplit(":", 1)[0] if remote.count(":") == 1 or "]:" in remote else remote
    return host.strip("[]")


#: Query parameters that carry credentials on any URL (HLS keeps them on every URI it lists;
#: LL-HLS's ``_HLS_*`` and anything else a client adds are not carried on).
CREDENTIAL_PARAMS = ("token", "key", "user", "pass", "expires", "sign")


@dataclass(slots=True, frozen=True)
class Credentials:
    """What a client presented, however its protocol carries it (see ``from_query``)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    #: RTSP Digest: whether a candidate password produces the client's answer.
    verifier: Callable[[str], bool] | None = field(default=None, compare=False)
    user_agent: str | None = None

    @classmethod
    def from_query(cls, query: str, base: Credentials | None = None) -> Credentials:
        """``?token=`` / ``?key=`` (RTMP stream keys) and ``?user=&pass=`` fill what ``base`` lacks."""
        params = parse_qs(query, keep_blank_values=False) if query else {}

        def first(name: str) -> str | None:
            values = params.get(name)
            return values[0] if values else None

        base = base or cls()
        token = base.token or first("token") or first("key")
        user, password = base.user, base.password
        if user is None and base.verifier is None and first("user") is not None:
            user, password = first("user"), first("pass")
        return cls(user, password, token, base.verifier, base.user_agent)


@dataclass(slots=True, frozen=True)
class AuthRequest:
    """Everything a check may need to decide; credentials come from the URL or the protocol."""

    path: str
    action: Action
    protocol: str
    remote: str
    query: str = ""
    user: str | None = None
    password: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: A bearer token: HTTP ``Authorization: Bearer``, ``?token=`` on any URL, RTMP ``?key=``.
    token: str | None = None
    user_agent: str | None = None
    #: For credentials whose password never travels in clear (RTSP Digest): tells whether a
    #: candidate password produces what the client sent.
    verifier: Callable[[str], bool] | None = field(default=None, compare=False)

    @property
    def ip(self) -> str:
        return ip_of(self.remote)

    def password_matches(self, expected: str) -> bool:
        """Whether the client proved it knows ``expected`` (Basic, query or Digest alike)."""
        if self.verifier is not None:
            return self.verifier(expected)
        if self.password is None:
            return False
        return hmac.compare_digest(self.password.encode(), expected.encode())


class Unauthorized(Exception):
    """A check said no; the message is safe to show the client."""


Check = Callable[[AuthRequest], "bool | None | Awaitable[bool | None]"]


class Authorizer:
    """Runs every registered check in order; any False (or Unauthorized) refuses the request."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, check: Check) -> None:
        self.checks.append(check)

    async def check(self, request: AuthRequest) -> None:
        for check in self.checks:
            result = check(request)
            if inspect.isawaitable(result):
                result = await result
            if result is False:
                raise Unauthorized(f"{request.action} of {request.path!r} not allowed")
