"""Server: builds the hub and starts the listeners from the config. Also the library entry point.

async with streamhive.Server(config) as server:
    async for frame in server.stream("live/cam1").frames():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from .api.metrics import make_registry
from .auth import Authorizer, Check
from .auth.hooks import EventHooks
from .config import Config, parse_listen
from .hub import Frame, Hub, Stream, validate_path
from .hub.hub import EventCallback
from .hub.session import Session
from .servers.hls import HlsService
from .servers.http import build_app
from .servers.room_workers import RoomWorkers
from .servers.rooms import RoomService
from .servers.rtmp import RtmpSession
from .servers.rtsp import RtspService
from .servers.webrtc import WebRtcService
from .servers.whip import WhipService
from .sources.manager import SourceManager
from .tls import server_context

log = logging.getLogger("streamhive")


class StreamView:
    """A path seen from library code: its frames, whenever (and each time) it is published."""

    def __init__(self, server: Server, path: str) -> None:
        self.server = server
        self.path = validate_path(path)

    @property
    def live(self) -> Stream | None:
        return self.server.hub.streams.get(self.path)

    async def wait_live(self) -> Stream:
        """Wait until a publisher is on this path."""
        published = asyncio.Event()

        def on_publish(path: str, _session: object) -> None:
            if path == self.path:
                published.set()

        self.server.hub.on("publish", on_publish)
        try:
            while (stream := self.live) is None or stream.ended:
                await published.wait()
                published.clear()
            return stream
        finally:
            self.server.hub.off("publish", on_publish)

    async def frames(self) -> AsyncIterator[Frame]:
        """Each Frame of the live stream (waiting for it to start), until the stream ends.

        The buffer is bounded (``frames_buffer``): a slow consumer skips to the next keyframe and
        never slows the stream or other readers. ``stream.tracks[frame.track]`` says what a frame is.
        """
        stream = await self.wait_live()
        async for frame in stream.frames():
            yield frame


class Server:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.auth = Authorizer()
        self.hub = Hub(self.config, self.auth)
        self.metrics_registry = make_registry(self)
        self.hls = HlsService(self)
        self.rtsp = RtspService(self)
        self.webrtc = WebRtcService(self)
        self.whip = WhipService(self, self.webrtc)
        self.rooms = RoomService(self, self.webrtc)
        self.room_workers = RoomWorkers(self) if self.config.rooms.workers > 1 else None
        self.hooks = EventHooks(self.config.auth.hooks)
        for event in ("publish", "unpublish", "read", "read_end"):
            if getattr(self.config.auth.hooks, f"on_{event}") is not None:
                self.hub.on(event, self._hook(event))
        self.sources = SourceManager(self)
        self._servers: list[asyncio.AbstractServer] = []
        self._runner: web.AppRunner | None = None
        #: Bound addresses by listener name ("rtmp", "rtmps", "http"), real ports when 0 was asked.
        self.addresses: dict[str, tuple[str, int]] = {}

    # -- library surface ----------------------------------------------------------------------
    def stream(self, path: str) -> StreamView:
        return StreamView(self, path)

    def on(self, event: str, callback: EventCallback) -> None:
        """Call ``callback(path, session)`` on "publish", "unpublish", "read" or "read_end"."""
        self.hub.on(event, callback)

    def authorize(self, check: Check) -> None:
        """Add an authorization check: called with an AuthRequest; returning False refuses."""
        self.auth.add(check)

    @property
    def rtmp_port(self) -> int:
        return self.addresses.get("rtmp", ("", parse_listen(self.config.rtmp.listen)[1]))[1]

    @property
    def rtsp_port(self) -> int:
        return self.addresses.get("rtsp", ("", parse_listen(self.config.rtsp.listen)[1]))[1]

    @property
    def http_port(self) -> int:
        return self.addresses.get("http", ("", parse_listen(self.config.http.listen)[1]))[1]

    def _hook(self, event: str) -> Callable[[str, Session], None]:
        """Hand a hub event to the HTTP hooks (queued: delivery never holds up media)."""

        def deliver(path: str, session: Session) -> None:
            self.hooks.emit(
                f"on_{event}",
                {
                    "path": path,
                    "session": session.id,
                    "protocol": session.protocol,
                    "remote": session.remote,
                    "query": session.query,
                    "bytes_in": session.bytes_in,
                    "bytes_out": session.bytes_out,
                    "duration": round(time.monotonic() - session.started_mono, 3),
                },
            )

        return deliver

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.hooks.start()
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            if cfg.rtmp.enabled:
                host, port = parse_listen(cfg.rtmp.listen)
                srv = await loop.create_server(lambda: RtmpSession(self), host, port, reuse_address=True)
                self._register("rtmp", srv)
                if cfg.rtmp.rtmps is not None:
                    context = server_context(cfg, cfg.rtmp.rtmps.cert, cfg.rtmp.rtmps.key)
                    host, port = parse_listen(cfg.rtmp.rtmps.listen)
                    srv = await loop.create_server(
                        lambda: RtmpSession(self, "rtmps"), host, port, ssl=context, reuse_address=True
                    )
                    self._register("rtmps", srv)
            if cfg.rtsp.enabled:
                servers = await self.rtsp.start()
                self._register("rtsp", servers[0])
                if len(servers) > 1:
                    self._register("rtsps", servers[1])
            if cfg.webrtc.enabled:  # before HTTP: WHIP/WHEP answers need the ICE candidates
                tcp = await self.webrtc.start()
                self._servers += tcp
                self.addresses["webrtc"] = (parse_listen(cfg.webrtc.listen)[0], self.webrtc.port)
                if self.room_workers is not None and cfg.rooms.enabled:
                    await self.room_workers.start()
            if cfg.http.enabled:
                self.hls.start()
                self._runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
                await self._runner.setup()
                host, port = parse_listen(cfg.http.listen)
                site = web.TCPSite(self._runner, host, port, reuse_address=True)
                await site.start()
                server = site._server
                assert server is not None
                self._register("http", server)  # type: ignore[arg-type]
                if cfg.http.https is not None:
                    context = server_context(cfg, cfg.http.https.cert, cfg.http.https.key)
                    host, port = parse_listen(cfg.http.https.listen)
                    site = web.TCPSite(self._runner, host, port, ssl_context=context, reuse_address=True)
                    await site.start()
                    assert site._server is not None
                    self._register("https", site._server)  # type: ignore[arg-type]
            self.sources.start()
        except BaseException:
            await self.stop()
            raise

    def _register(self, name: str, srv: asyncio.AbstractServer) -> None:
        self._servers.append(srv)
        sockets = srv.sockets  # type: ignore[attr-defined]
        address = sockets[0].getsockname()
        self.addresses[name] = (address[0], address[1])

    def urls(self, host: str = "HOST") -> list[str]:
        """What the server serves, for the startup banner."""
        out = []
        if "rtmp" in self.addresses:
            out.append(f"RTMP publish/play   rtmp://{host}:{self.rtmp_port}/live/STREAM")
        if "rtmps" in self.addresses:
            out.append(f"RTMPS publish/play  rtmps://{host}:{self.addresses['rtmps'][1]}/live/STREAM")
        if "rtsp" in self.addresses:
            out.append(f"RTSP publish/play   rtsp://{host}:{self.rtsp_port}/live/STREAM")
        if "rtsps" in self.addresses:
            out.append(f"RTSPS publish/play  rtsps://{host}:{self.addresses['rtsps'][1]}/live/STREAM")
        if "http" in self.addresses:
            base = f"http://{host}:{self.http_port}"
            out += [
                f"HTTP-FLV / WS-FLV   {base}/live/STREAM.flv",
                *(
                    [f"HTTPS / WSS        https://{host}:{self.addresses['https'][1]}/"]
                    if "https" in self.addresses
                    else []
                ),
                f"HLS / LL-HLS        {base}/live/STREAM/index.m3u8",
                f"DASH                {base}/live/STREAM/index.mpd",
                *(
                    [
                        f"WHIP publish        {base}/live/STREAM/whip",
                        f"WHEP play           {base}/live/STREAM/whep  (player page: {base}/live/STREAM/)",
                    ]
                    if "webrtc" in self.addresses
                    else []
                ),
                *(
                    [
                        f"Rooms (meetings)    {base}/rooms/ROOM  (signaling ws://{host}:{self.http_port}/rooms/ROOM/ws)"
                    ]
                    if "webrtc" in self.addresses and self.config.rooms.enabled
                    else []
                ),
                f"API                 {base}/api/v1/paths",
                f"Metrics             {base}/metrics",
            ]
        return out

    async def stop(self) -> None:
        """Close listeners, end every stream (readers are told), close sessions."""
        for srv in self._servers:
            srv.close()
        await self.sources.stop()
        await self.hooks.stop()
        await self.hub.access.close()
        self.rtsp.stop()
        self.rooms.stop()
        if self.room_workers is not None:
            await self.room_workers.stop()
        self.webrtc.stop()
        await self.hls.stop()
        for stream in list(self.hub.streams.values()):
            stream.end("server shutting down")
        for session in list(self.hub.sessions.values()):
            if session.kick is not None:
                session.kick("server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 2)
        self._servers.clear()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
