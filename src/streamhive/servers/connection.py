"""What the RTMP and RTSP connection adapters share: one Session, closed once with a reason."""

from __future__ import annotations

import asyncio
import logging

from ..hub import Hub, Session
from ..hub.session import format_remote

log = logging.getLogger("streamhive.session")


class ClientConnection(asyncio.Protocol):
    """Base of a TCP client adapter; subclasses release their state in ``_cleanup``."""

    session: Session | None = None
    transport: asyncio.Transport | None = None
    closed: bool = False
    host: str = "?"

    def open_session(self, transport: asyncio.BaseTransport, hub: Hub, protocol: str) -> bool:
        """Register the connection with the hub; False (and the socket aborted) when refused."""
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.host = peer[0] if peer else "?"
        self.session = Session(protocol, format_remote(peer[0], peer[1]) if peer else "?")
        self.session.kick = self.close
        if not hub.add_session(self.session):
            self.closed = True
            transport.abort()  # type: ignore[attr-defined]
            return False
        log.info("session start id=%s protocol=%s remote=%s", self.session.id, protocol, self.session.remote)
        return True

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
