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

Action = Literal["publish", "read", "api"]


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
    #: For credentials whose password never travels in clear (RTSP Digest): tells whether a
    #: candidate password produces what the client sent.
    verifier: Callable[[str], bool] | None = field(default=None, compare=False)

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
