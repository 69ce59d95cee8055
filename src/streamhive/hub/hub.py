"""The Hub: the registry of live Streams and connected Sessions, and the publish/read gate."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..auth import Action, Authorizer, AuthRequest, Credentials, Unauthorized, ip_of
from ..auth.access import AccessControl, AccessDenied
from ..auth.limits import LogOnce
from ..auth.networks import client_key
from ..config import Config
from .paths import validate_path
from .session import Session
from .stream import Stream

log = logging.getLogger("streamhive.hub")

EventCallback = Callable[[str, Session], object]


class Refused(Exception):
    """A publish or read that the hub refuses. ``code`` says why in protocol-neutral words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "bad_path" | "unauthorized" | "busy" | "not_found" | "too_many"


@dataclass(slots=True)
class Stats:
    """Totals for metrics; live sessions add theirs at scrape time."""

    bytes_in_closed: int = 0
    bytes_out_closed: int = 0
    dropped_frames: int = 0
    slow_readers_disconnected: int = 0
    sessions_total: int = 0
    refused_connections: int = 0
    #: Refused publish/read/API requests by reason code ("unauthorized", "forbidden"...).
    refused_requests: dict[str, int] = field(default_factory=dict)

    def refused(self, reason: str) -> None:
        self.refused_requests[reason] = self.refused_requests.get(reason, 0) + 1


class Hub:
    def __init__(self, config: Config, authorizer: Authorizer | None = None) -> None:
        self.config = config
        self.auth = authorizer or Authorizer()
        self.streams: dict[str, Stream] = {}
        self.sessions: dict[str, Session] = {}
        self.stats = Stats()
        self.access = AccessControl(config.auth)
        self.log_once = LogOnce(60.0, time.monotonic)
        self._per_ip: dict[str, int] = {}
        self._listeners: dict[str, list[EventCallback]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Starts the pulled source of a path that has one and waits until it is live (or None).
        self.on_demand: Callable[[str], Awaitable[Stream | None]] | None = None

    def now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    # -- events for library users -----------------------------------------------------------
    def on(self, event: str, callback: EventCallback) -> None:
        """Call ``callback(path, session)`` on "publish", "unpublish", "read" or "read_end"."""
        if event not in ("publish", "unpublish", "read", "read_end"):
            raise ValueError(f"unknown event {event!r}")
        self._listeners.setdefault(event, []).append(callback)

    def off(self, event: str, callback: EventCallback) -> None:
        listeners = self._listeners.get(event, [])
        if callback in listeners:
            listeners.remove(callback)

    def emit(self, event: str, path: str, session: Session) -> None:
        for callback in self._listeners.get(event, ()):
            try:
                result = callback(path, session)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                log.exception("%s callback failed", event)

    # -- sessions ---------------------------------------------------------------------------
    def add_session(self, session: Session) -> bool:
        """Register a new connection; False when ``max_connections`` (overall or per IP) is reached."""
        ip = client_key(ip_of(session.remote))  # an IPv6 /64 is one client
        per_ip = self.config.max_connections_per_ip
        if len(self.sessions) >= self.config.max_connections:
            why = f"max_connections={self.config.max_connections} reached"
        elif per_ip and self._per_ip.get(ip, 0) >= per_ip:
            why = f"max_connections_per_ip={per_ip} reached"
        else:
            self.sessions[session.id] = session
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            self.stats.sessions_total += 1
            return True
        self.stats.refused_connections += 1
        if self.log_once.should_log(f"conn:{ip}"):
            log.warning("refused connection from %s (%s): %s", session.remote, session.protocol, why)
        return False

    def remove_session(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        ip = client_key(ip_of(session.remote))
        left = self._per_ip.get(ip, 1) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)
        self.stats.bytes_in_closed += session.bytes_in
        self.stats.bytes_out_closed += session.bytes_out
        session.log_end()

    # -- publish and read -------------------------------------------------------------------
    async def authorize(
        self,
        path: str,
        session: Session,
        action: Action,
        credentials: Credentials | None = None,
    ) -> str:
        """The validated path if ``session`` may do ``action`` on it, else raise Refused.

        Credentials come from the protocol and from the session's query (``?token=``...).
        """
        try:
            path = validate_path(path)
        except ValueError as exc:
            raise Refused("bad_path", str(exc)) from None
        creds = Credentials.from_query(session.query, credentials)
        request = AuthRequest(
            path,
            action,
            session.protocol,
            session.remote,
            session.query,
            creds.user,
            creds.password,
            token=creds.token,
            user_agent=creds.user_agent,
            verifier=creds.verifier,
        )
        await self.check(request)
        return path

    async def check(self, request: AuthRequest) -> None:
        """The configured policy for the request's path, then the library's checks; raise Refused."""
        if self.access is not None:
            if request.action == "api":
                methods = list(self.config.auth.api)
            else:
                config = self.config.path_config(request.path)
                methods = list(config.publish_auth if request.action == "publish" else config.read_auth)
            try:
                await self.access.check(request, methods)
            except AccessDenied as denied:
                # The client learns only the kind of refusal (the log has the details): saying
                # "expired" or "wrong path" would tell it which credentials were good.
                self._refusal(request, denied.code, denied.reason)
                public = "credentials required" if denied.code == "unauthorized" else "not allowed"
                raise Refused(
                    denied.code, f"{request.action} of {request.path!r} refused: {public}"
                ) from None
        try:
            await self.auth.check(request)
        except Unauthorized as exc:  # its message is meant for the client
            self._refusal(request, "unauthorized", str(exc))
            raise Refused("unauthorized", str(exc)) from None
        except Exception as exc:  # a failing check refuses, and says nothing of itself to the client
            self._refusal(request, "unauthorized", f"check failed: {exc!r}")
            raise Refused("unauthorized", f"{request.action} of {request.path!r} refused") from None

    def _refusal(self, request: AuthRequest, code: str, reason: str) -> None:
        """Count every refusal; log one line per client address and minute at most (no floods)."""
        self.stats.refused(code)
        if self.log_once.should_log(f"auth:{request.ip}"):
            log.warning(
                "refused %s of %s from %s (%s): %s",
                request.action,
                request.path,
                request.remote,
                request.protocol,
                reason,
            )

    async def publish(
        self,
        path: str,
        session: Session,
        credentials: Credentials | None = None,
        *,
        trusted: bool = False,
    ) -> Stream:
        """Make ``session`` the publisher of ``path`` or raise Refused.

        ``trusted`` skips authorization: the server's own pulled sources, configured by the operator.
        """
        if trusted:
            path = validate_path(path)
        else:
            path = await self.authorize(path, session, "publish", credentials)
            if self.config.path_config(path).source is not None:
                raise Refused("busy", f"{path!r} is fed by its configured source")
        stream = self.streams.get(path)
        if stream is not None and stream.publisher is not None:
            if not stream.config.takeover:
                raise Refused("busy", f"{path!r} already has a publisher")
            old = stream.publisher
            log.info("publisher %s takes over %s from %s", session.id, path, old.id)
            stream.publisher = None
            if old.kick is not None:
                old.kick("taken over by a new publisher")
        if stream is None or stream.ended:
            stream = Stream(self, path, self.config.path_config(path))
            self.streams[path] = stream
        stream.publisher_returned(session)
        session.path, session.role = path, "publisher"
        log.info(
            "publish path=%s session=%s protocol=%s remote=%s",
            path,
            session.id,
            session.protocol,
            session.remote,
        )
        self.emit("publish", path, session)
        return stream

    def unpublish(self, stream: Stream, session: Session, grace: float | None = None) -> None:
        """``session`` stopped publishing; readers wait ``grace`` (default: the path's) for a return."""
        if stream.publisher is session:
            stream.publisher_left(grace)
            self.emit("unpublish", stream.path, session)

    async def find_readable(
        self,
        path: str,
        session: Session,
        credentials: Credentials | None = None,
    ) -> Stream:
        """The live Stream at ``path`` if ``session`` may read it, else raise Refused.

        A path with an on-demand source is started here and waited for.
        """
        path = await self.authorize(path, session, "read", credentials)
        stream = self.streams.get(path)
        if (stream is None or stream.ended) and self.on_demand is not None:
            stream = await self.on_demand(path)
        if stream is None or stream.ended:
            raise Refused("not_found", f"stream {path!r} not found: nothing is published there")
        return stream

    async def read(
        self,
        path: str,
        session: Session,
        credentials: Credentials | None = None,
    ) -> Stream:
        """Attach ``session`` as a reader of ``path`` (checks auth, existence and max_readers)."""
        stream = await self.find_readable(path, session, credentials)
        path = stream.path
        limit = stream.config.max_readers
        if limit and stream.reader_count() >= limit:
            raise Refused("too_many", f"{path!r} has its maximum of {limit} readers")
        session.path, session.role = path, "reader"
        self.emit("read", path, session)
        return stream

    def read_ended(self, session: Session) -> None:
        if session.role == "reader" and session.path:
            self.emit("read_end", session.path, session)

    def remove_stream(self, stream: Stream) -> None:
        if self.streams.get(stream.path) is stream:
            del self.streams[stream.path]
