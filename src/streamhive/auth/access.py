"""The access policy: IP rules, failed-login blocking, then the path's methods (any one suffices).

``check`` is the one place every protocol asks "may this client publish/read/use the API here?".
Its answer is either nothing (allowed) or ``AccessDenied`` with a code the protocol maps to its
own refusal: ``unauthorized`` (no or invalid credentials: 401, an RTSP challenge, RTMP
``Unauthorized``) or ``forbidden`` (credentials fine but not for this, or the address is denied or
blocked: 403). Reasons are short and never contain a secret. Failures are counted per client
(an IPv4 address or an IPv6 /64) only when credentials were presented, so players of an
open-to-some path that simply try without credentials first are never blocked.

The clock must be wall time (seconds since the epoch): token and signed-URL expiries are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import parse_qsl

from ..config import AuthConfig, UserConfig
from . import AuthRequest, Unauthorized
from .callback import HttpDecider
from .client import SessionFactory, SharedSession
from .limits import FailureLimiter
from .networks import Network, client_key, in_networks, parse_networks
from .passwords import PasswordChecker
from .patterns import path_allowed
from .signed import check_signed
from .tokens import WRONG_ACTION, WRONG_PATH, JwtVerifier, http_fetcher

__all__ = ["AccessControl", "AccessDenied"]

DenialCode = Literal["unauthorized", "forbidden"]


class AccessDenied(Unauthorized):
    """A refusal; ``code`` picks the protocol's answer, ``reason`` is safe to log and show."""

    def __init__(self, code: DenialCode, reason: str) -> None:
        super().__init__(reason)
        self.code: DenialCode = code
        self.reason = reason


#: (refusal reason or None when allowed, whether the credentials were good but not enough)
_Outcome = tuple[str | None, bool]


class AccessControl:
    """Everything ``AuthConfig`` describes, built once; ``check`` decides one request."""

    def __init__(
        self,
        config: AuthConfig,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._own_session = SharedSession() if session_factory is None else None
        factory: SessionFactory = session_factory or self._own_session  # type: ignore[assignment]
        self._clock = clock
        self._deny = parse_networks(config.ip_deny)
        self._allow = parse_networks(config.ip_allow)
        self._users: list[tuple[UserConfig, tuple[Network, ...]]] = [
            (user, parse_networks(user.ips)) for user in config.users
        ]
        self._passwords = PasswordChecker(clock)
        self._jwt = JwtVerifier(config.jwt, clock, http_fetcher(factory)) if config.jwt else None
        self._signed = config.signed_urls
        self._http = HttpDecider(config.http, factory, clock) if config.http else None
        self._failures = FailureLimiter(config.max_failures, block_seconds=config.block_seconds, clock=clock)

    async def check(self, request: AuthRequest, methods: list[str]) -> None:
        """Return if ``request`` is allowed by any of ``methods``; raise AccessDenied otherwise."""
        ip = request.ip
        if self._deny and in_networks(ip, self._deny):
            raise AccessDenied("forbidden", "address denied")
        if self._allow and not in_networks(ip, self._allow):
            raise AccessDenied("forbidden", "address not allowed")
        client = client_key(ip)
        if self._failures.blocked(client):
            raise AccessDenied("forbidden", "too many failed attempts, try later")
        if "open" in methods:
            return
        reasons: list[str] = []
        forbidden = invalid = False
        for method in dict.fromkeys(methods):
            reason, not_enough = await self._try(method, request)
            if reason is None:
                return
            reasons.append(f"{method}: {reason}")
            forbidden = forbidden or not_enough
            # Wrong credentials count even when another method's valid ones made this a 403:
            # otherwise any valid token would buy unlimited password guesses.
            invalid = invalid or (not not_enough and _attempted(method, request))
        summary = "; ".join(reasons) or "no access method configured"
        if invalid:
            self._failures.failed(client)
        raise AccessDenied("forbidden" if forbidden else "unauthorized", summary)

    async def close(self) -> None:
        if self._own_session is not None:
            await self._own_session.close()

    async def _try(self, method: str, request: AuthRequest) -> _Outcome:
        if method == "users":
            return await self._check_users(request)
        if method == "jwt":
            if self._jwt is None:
                return "not configured", False
            if not request.token:
                return "no token", False
            reason = await self._jwt.verify(request.token, request.action, request.path)
            return reason, reason in (WRONG_ACTION, WRONG_PATH)
        if method == "signed_url":
            if self._signed is None:
                return "not configured", False
            return check_signed(
                self._signed, request.query, request.action, request.path, self._clock()
            ), False
        if method == "http":
            if self._http is None:
                return "not configured", False
            return await self._http.decide(request), False
        return "unknown method", False

    async def _check_users(self, request: AuthRequest) -> _Outcome:
        """Any entry with this name and password that admits the request allows it.

        A name may appear more than once (say, with different networks or paths).
        """
        if request.user is None:
            return "no credentials", False
        authenticated = False
        for user, networks in self._users:
            if user.user != request.user or not await self._password_ok(request, user):
                continue
            authenticated = True
            if (
                request.action in user.actions
                and path_allowed(user.paths, request.path)
                and (not networks or in_networks(request.ip, networks))
            ):
                return None, False
        if authenticated:
            return f"user may not {request.action} this path from this address", True
        return "bad user or password", False

    async def _password_ok(self, request: AuthRequest, user: UserConfig) -> bool:
        if user.password is not None:
            return request.password_matches(user.password)
        # A hash can only check a password sent in clear (Basic, query): Digest needs the clear one.
        if request.password is None or user.password_hash is None:
            return False
        return await self._passwords.check(request.password, user.password_hash)


def _attempted(method: str, request: AuthRequest) -> bool:
    """Whether the request presented credentials that ``method`` judged (and refused)."""
    if method == "users":
        return request.user is not None
    if method == "jwt":
        return bool(request.token)
    if method == "signed_url":
        try:
            return any(name == "sign" for name, _ in parse_qsl(request.query, max_num_fields=64))
        except ValueError:
            return True
    return request.user is not None or bool(request.token)  # http: whatever the backend refused
