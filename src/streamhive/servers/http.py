"""The HTTP adapter (aiohttp): HTTP-FLV and WS-FLV players, plus the API and metrics routes.

After the response headers, media bytes bypass aiohttp's writer: the hub writes pre-framed
bytes (HTTP chunks or WebSocket frames, built once per frame for all readers) straight to the
transport, so a player costs one ``transport.write`` per frame like an RTMP player.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from ..api import routes as api_routes
from ..formats.flvmux import PLAYER_AUDIO, FlvMuxer
from ..hub import Reader, Refused, Session, Stream
from ..hub.stream import no_framing
from .hls import time_handler
from .http_auth import credentials_of, refusal, remote_of
from .pages import add_page_routes

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.http")

SERVER_KEY: web.AppKey[Server] = web.AppKey("server")


def http_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk; empty input stays empty (an empty chunk would end the response)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def ws_binary_frame(data: bytes) -> bytes:
    """One unmasked server-to-client WebSocket binary frame."""
    n = len(data)
    if not n:
        return b""
    if n < 126:
        return bytes((0x82, n)) + data
    if n < 65536:
        return struct.pack("!BBH", 0x82, 126, n) + data
    return struct.pack("!BBQ", 0x82, 127, n) + data


FLV_FORMAT = ("flv", FlvMuxer)


async def flv_handler(request: web.Request) -> web.StreamResponse:
    """``GET /{path}.flv``: a never-ending FLV; with ``Upgrade: websocket`` the same bytes as WS-FLV."""
    server = request.app[SERVER_KEY]
    hub = server.hub
    is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
    session = Session("ws-flv" if is_ws else "http-flv", remote_of(request), query=request.query_string)
    if not hub.add_session(session):
        return web.json_response({"error": "too many connections"}, status=503)
    try:
        stream = await hub.read(request.match_info["path"], session, credentials_of(request))
    except Refused as refused:
        session.close_reason = f"refused: {refused}"
        hub.remove_session(session)
        return refusal(refused)
    except BaseException:  # cancelled (client gone, shutdown) while a check was running
        session.close_reason = "closed before the stream started"
        hub.remove_session(session)
        raise
    log.info(
        "session start id=%s protocol=%s remote=%s path=%s",
        session.id,
        session.protocol,
        session.remote,
        stream.path,
    )
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_end(reason: str) -> None:
        if not ended.done():
            ended.set_result(reason)

    session.kick = on_end
    stream = stream.readable_with(PLAYER_AUDIO)
    serve = _serve_ws_flv if is_ws else _serve_http_flv
    try:
        return await serve(request, stream, session, on_end, ended)
    except (ConnectionError, asyncio.CancelledError) as exc:
        session.close_reason = session.close_reason or f"connection lost: {exc!r}"
        raise
    finally:
        hub.read_ended(session)
        hub.remove_session(session)


async def _serve_http_flv(
    request: web.Request,
    stream: Stream,
    session: Session,
    on_end: Callable[[str], None],
    ended: asyncio.Future[str],
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "video/x-flv",
            "Access-Control-Allow-Origin": request.app[SERVER_KEY].config.http.cors_origin,
            "Cache-Control": "no-cache, no-store",
        }
    )
    chunked = request.version >= (1, 1)
    if chunked:
        response.enable_chunked_encoding()
    response.force_close()
    await response.prepare(request)
    framing = ("chunked", http_chunk) if chunked else ("raw", no_framing)
    reader = Reader(session, request.transport, FLV_FORMAT, on_end, framing)  # type: ignore[arg-type]
    try:
        stream.attach(reader)
        reason = await ended
        reader.close(reason)
        if _still_open(request, reason):
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
    finally:
        reader.close(session.close_reason or "closed", notify=False)
    return response


async def _serve_ws_flv(
    request: web.Request,
    stream: Stream,
    session: Session,
    on_end: Callable[[str], None],
    ended: asyncio.Future[str],
) -> web.StreamResponse:
    ws = web.WebSocketResponse(compress=False, heartbeat=None, max_msg_size=4096)
    await ws.prepare(request)
    reader = Reader(session, request.transport, FLV_FORMAT, on_end, ("ws", ws_binary_frame))  # type: ignore[arg-type]
    receiving = asyncio.ensure_future(_drain_ws(ws, on_end))
    try:
        stream.attach(reader)
        reason = await ended
        reader.close(reason)
        if _still_open(request, reason) and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.close()
    finally:
        receiving.cancel()
        reader.close(session.close_reason or "closed", notify=False)
    return ws


def _still_open(request: web.Request, reason: str) -> bool:
    """Whether to end the response politely; a reader dropped for lagging is cut off at once."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    if reason.startswith("slow reader"):
        transport.abort()  # its unsent backlog is dropped, not flushed
        return False
    return True


async def _drain_ws(ws: web.WebSocketResponse, on_end: Callable[[str], None]) -> None:
    """Read (and discard) what a WS-FLV player sends, so pings are answered and close is seen."""
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break
    on_end("client closed")


async def index_handler(request: web.Request) -> web.Response:
    """A small page listing the live paths and their URLs (the full console comes later)."""
    server = request.app[SERVER_KEY]
    # Path names come from publishers: escaped, or a stream name becomes a script on this page.
    rows = "".join(
        f"<li><b>{html.escape(name)}</b> — <a href='/{html.escape(quote(name))}/'>play (WebRTC)</a>"
        f" · <a href='/{html.escape(quote(name))}.flv'>HTTP-FLV</a>"
        f" · rtmp://HOST:{server.rtmp_port}/{html.escape(name)}</li>"
        for name in sorted(server.hub.streams)
    )
    body = (
        "<!doctype html><title>streamhive</title><h1>streamhive</h1>"
        f"<p>{len(server.hub.streams)} live path(s)</p><ul>{rows}</ul>"
        "<p><a href='/api/v1/paths'>/api/v1/paths</a> · <a href='/metrics'>/metrics</a></p>"
    )
    return web.Response(
        text=body,
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs a malformed request (a 10 kB URL, binary junk) with a traceback; it is the
    client's error, already answered with 400, so one line without the traceback says enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args, record.exc_info = (
                "malformed HTTP request: %s",
                (str(exc).splitlines()[0][:200],),
                None,
            )
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_aiohttp_log = logging.getLogger("aiohttp.server")
if not any(isinstance(f, _MalformedRequestFilter) for f in _aiohttp_log.filters):
    _aiohttp_log.addFilter(_MalformedRequestFilter())


def build_app(server: Server) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[api_routes.guard(SERVER_KEY)])
    app[SERVER_KEY] = server
    app.router.add_get("/", index_handler)
    api_routes.add_routes(app, SERVER_KEY)
    app.router.add_get(r"/{path:.+}.flv", flv_handler)
    if server.config.webrtc.enabled:
        if server.config.rooms.enabled:
            (server.room_workers or server.rooms).add_routes(app)
        server.whip.add_routes(app)
    app.router.add_get("/api/v1/time", time_handler)
    add_page_routes(app)  # before the HLS catch-all, which would take /{path}/publish
    app.router.add_get(r"/{path:.+}/{name:[^/]+}", server.hls.handle)
    return app
