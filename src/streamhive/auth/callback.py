"""An external HTTP service decides (like nginx-rtmp's ``on_publish`` or SRS's ``http_hooks``).

Each decision POSTs JSON ``{"action", "path", "protocol", "remote", "ip", "query", "user",
"password", "token", "user_agent"}`` (absent credentials are null) to the configured URL. A 2xx
answer allows; any other status, a redirect, a timeout, a refused connection or a reply that is
not HTTP refuses: the callback fails closed. It must also fail *fast* for everyone else: each call
has its own timeout, at most ``MAX_IN_FLIGHT`` calls run at once (beyond that requests are refused
at once rather than queued behind a hung service), and identical concurrent requests share one
call. Answers the service gave (allow or refuse, not transport failures) are reused for
``cache`` seconds, keyed by a hash of every field, so a player fetching HLS segments does not cost
a callback per segment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp

from ..config import HttpAuthConfig
from . import AuthRequest
from .client import SessionFactory

__all__ = ["MAX_IN_FLIGHT", "HttpDecider", "callback_body"]

MAX_IN_FLIGHT = 64
_CACHE_ENTRIES = 10_000


def callback_body(request: AuthRequest) -> dict[str, str | None]:
    """The JSON object POSTed for ``request`` (documented in docs/security.md)."""
    return {
        "action": request.action,
        "path": request.path,
        "protocol": request.protocol,
        "remote": request.remote,
        "ip": request.ip,
        "query": request.query,
        "user": request.user,
        "password": request.password,
        "token": request.token,
        "user_agent": request.user_agent,
    }


class _Answer:
    """A decision the service actually made (a status code), as opposed to a transport failure."""

    __slots__ = ("reason",)

    def __init__(self, reason: str | None) -> None:
        self.reason = reason


class HttpDecider:
    """Asks ``config.url``; ``decide`` returns None to allow, else the refusal reason."""

    def __init__(
        self,
        config: HttpAuthConfig,
        session_factory: SessionFactory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._session_factory = session_factory
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, str | None]] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Task[_Answer | str]] = {}

    async def decide(self, request: AuthRequest) -> str | None:
        body = callback_body(request)
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(key)
        if cached is not None:
            if self._clock() < cached[0]:
                return cached[1]
            del self._cache[key]
        task = self._in_flight.get(key)
        if task is None:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                return "callback busy"
            task = asyncio.ensure_future(self._call(body))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # A waiter that goes away (client hung up) must not cancel the call others wait on.
        result = await asyncio.shield(task)
        return result.reason if isinstance(result, _Answer) else result

    def _settle(self, key: bytes, task: asyncio.Task[_Answer | str]) -> None:
        self._in_flight.pop(key, None)
        if task.cancelled() or self._config.cache <= 0:
            return
        result = task.result()
        if isinstance(result, _Answer):
            self._cache[key] = (self._clock() + self._config.cache, result.reason)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)

    async def _call(self, body: dict[str, str | None]) -> _Answer | str:
        """An ``_Answer`` when the service answered, else the transport failure (never cached)."""
        timeout = self._config.timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._session_factory().post(
                    self._config.url,
                    json=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                )
                response.release()
        except TimeoutError:
            return "callback timed out"
        except Exception:  # unreachable, not HTTP, anything: the callback fails closed
            return "callback unreachable or not HTTP"
        if 200 <= response.status < 300:
            return _Answer(None)
        return _Answer(f"callback refused ({response.status})")
