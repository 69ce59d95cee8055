"""An asyncio RTSP client connection: requests with CSeq and authentication, interleaved data out.

Thin on purpose: message parsing is the sans-IO RtspParser, authentication the sans-IO helpers
in protocols/rtsp/auth.py; this only pairs answers with requests and hands interleaved RTP to a
callback as it arrives.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from ..protocols.rtsp.auth import authorization_header, parse_www_authenticate
from ..protocols.rtsp.message import Headers, Interleaved, Request, Response, RtspError, RtspParser

USER_AGENT = "streamhive"


class RtspClientError(Exception):
    """The server refused, answered nonsense, or went away; the message says which."""


class RtspClient(asyncio.Protocol):
    def __init__(
        self, on_interleaved: Callable[[int, bytes], None], user: str | None, password: str | None
    ) -> None:
        self.on_interleaved = on_interleaved
        self.user, self.password = user, password
        self.parser = RtspParser(max_body_bytes=1_000_000)
        self.transport: asyncio.Transport | None = None
        self.cseq = 0
        self.pending: dict[str, asyncio.Future[Response]] = {}
        self.session: str | None = None
        self.challenge: object | None = None
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.bytes_in = 0

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        tls: bool,
        on_interleaved: Callable[[int, bytes], None],
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> RtspClient:
        loop = asyncio.get_running_loop()
        context = None
        if tls:  # cameras use self-signed certificates: RTSPS here is for privacy, not identity
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: cls(on_interleaved, user, password), host, port, ssl=context),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise RtspClientError(f"cannot connect to {host}:{port}: {exc or 'timeout'}") from None
        return client

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        try:
            events = self.parser.feed(data)
        except RtspError as exc:
            self.close(f"bad data from server: {exc}")
            return
        for event in events:
            if isinstance(event, Interleaved):
                self.on_interleaved(event.channel, event.data)
            elif isinstance(event, Response):
                future = self.pending.pop(event.headers.get("CSeq") or "", None)
                if future is not None and not future.done():
                    future.set_result(event)
            elif isinstance(event, Request):  # a server's keep-alive or announce: acknowledge it
                headers = Headers([("CSeq", event.headers.get("CSeq") or "0")])
                self._write(Response(200, "OK", headers).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(f"connection lost: {exc}" if exc else "server closed the connection")

    # -- requests -------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        uri: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout: float = 10.0,
    ) -> Response:
        """Send a request and wait for its answer; a 401 is retried once with credentials."""
        response = await self._once(method, uri, headers or [], body, timeout)
        if response.status == 401 and self.user is not None:
            challenges = parse_www_authenticate(response.headers.get_all("WWW-Authenticate"))
            if challenges:
                self.challenge = challenges[0] if len(challenges) == 1 else _prefer_digest(challenges)
                response = await self._once(method, uri, headers or [], body, timeout)
        return response

    async def _once(
        self, method: str, uri: str, extra: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        if self.closed.done():
            raise RtspClientError(self.closed.result())
        self.cseq += 1
        cseq = str(self.cseq)
        headers = Headers([("CSeq", cseq), ("User-Agent", USER_AGENT), *extra])
        if self.session is not None:
            headers.add("Session", self.session)
        if self.challenge is not None and self.user is not None:
            headers.add(
                "Authorization",
                authorization_header(self.challenge, self.user, self.password or "", method, uri),  # type: ignore[arg-type]
            )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pending[cseq] = future
        self._write(Request(method, uri, headers, body).encode())
        done, _ = await asyncio.wait(
            {future, self.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if future in done:
            return future.result()
        self.pending.pop(cseq, None)
        if self.closed.done():
            raise RtspClientError(self.closed.result())
        raise RtspClientError(f"no answer to {method} within {timeout:g}s")

    def send_interleaved(self, channel: int, data: bytes) -> None:
        self._write(b"$" + bytes((channel,)) + len(data).to_bytes(2, "big") + data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, reason: str = "closed") -> None:
        if self.transport is not None:
            self.transport.close()
        self._closed(reason)

    def _closed(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)


def _prefer_digest(challenges: list[object]) -> object:
    for challenge in challenges:
        if getattr(challenge, "scheme", "").lower() == "digest":
            return challenge
    return challenges[0]
