"""What the RTMP and RTSP connection adapters share: one Session, closed once with a reason."""

from __future__ import annotations

import asyncio

from ..hub import Session


class ClientConnection(asyncio.Protocol):
    """Base of a TCP client adapter; subclasses release their state in ``_cleanup``."""

    session: Session | None = None
    transport: asyncio.Transport | None = None
    closed: bool = False

    def close(self, reason: str) -> None:
        """Close this one session with a logged reason; everything else carries on."""
        if self.session is not None and self.session.close_reason is None:
            self.session.close_reason = reason
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self._cleanup(reason)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cleanup(f"connection lost: {exc}" if exc else "client closed")

    def _cleanup(self, reason: str) -> None:
        raise NotImplementedError
