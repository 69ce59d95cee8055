"""One lazily made aiohttp client session, shared by the callback, hooks and JWKS fetches.

Made on first use rather than at construction, because the objects that need it are built
before the event loop runs (a ClientSession belongs to the loop it was made in).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

__all__ = ["SessionFactory", "SharedSession"]

SessionFactory = Callable[[], aiohttp.ClientSession]


class SharedSession:
    """A ``SessionFactory`` that makes one session and hands it out until ``close()``."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
