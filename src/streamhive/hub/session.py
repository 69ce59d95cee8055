"""Sessions: one client connection's bookkeeping, shown by the API and counted by metrics."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger("streamhive.session")

Role = Literal["publisher", "reader", "idle"]


def format_remote(host: str, port: int) -> str:
    """The form AuthRequest.ip can always split: "10.0.0.1:5000" or "[::1]:5000"."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_ids = itertools.count(1)


@dataclass(slots=True, eq=False)
class Session:
    """A connected client. Adapters own it; the hub reads and counts it.

    ``kick`` is how the API (or a takeover) closes the session: the adapter that created the
    session sets it to a function that closes its socket with the given reason.
    ``request_keyframe`` is set by publishers that can be asked for one (WebRTC: PLI); readers
    that lost packets call it through ``Stream.request_keyframe``.
    """

    protocol: str
    remote: str
    id: str = field(default_factory=lambda: f"s{next(_ids)}")
    path: str | None = None
    role: Role = "idle"
    query: str = ""
    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    bytes_in: int = 0
    bytes_out: int = 0
    kick: Callable[[str], None] | None = None
    request_keyframe: Callable[[], None] | None = None
    close_reason: str | None = None

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "protocol": self.protocol,
            "remote": self.remote,
            "path": self.path,
            "role": self.role,
            "started": self.started,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    def log_end(self) -> None:
        """The one log line per session end that operators grep for."""
        log.info(
            "session end id=%s protocol=%s remote=%s path=%s role=%s bytes_in=%d bytes_out=%d "
            "duration=%.1fs reason=%s",
            self.id,
            self.protocol,
            self.remote,
            self.path or "-",
            self.role,
            self.bytes_in,
            self.bytes_out,
            time.monotonic() - self.started_mono,
            self.close_reason or "closed",
        )
