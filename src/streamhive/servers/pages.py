"""The built-in browser pages: a WebRTC player at ``/{path}/``, a publish page at ``/{path}/publish``,
the room page at ``/rooms/{room}`` and the rooms JavaScript SDK at ``/sdk/streamhive.js``.

The pages are static files shipped in the package (``streamhive/web``); each reads its stream
path from ``location.pathname`` in JavaScript, so no publisher-chosen name is ever written into
HTML by the server. They are read once at startup through ``importlib.resources`` so they work
from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from ..hub.paths import BadPath, validate_path
from ..sfu.grants import valid_room_name

#: The static files under ``/_streamhive/``, with their types; nothing else is served from there.
ASSETS = {
    "whip.js": "text/javascript",
    "player.js": "text/javascript",
    "publish.js": "text/javascript",
    "room.js": "text/javascript",
    "streamhive.css": "text/css",
    "room.css": "text/css",
}

# The pages' own scripts and styles only (no inline code, so injected markup could not run);
# hls.js from its CDN for browsers without native HLS; media from this server and hls.js's blobs.
_CSP = (
    "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net; connect-src 'self'; "
    "media-src 'self' blob:; worker-src 'self' blob:; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)
# The token rides in the page URL: no Referer may carry it to the CDN. The player may be
# embedded in other sites; the publish page, which holds the camera, may not.
PLAYER_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=()",
}
PUBLISH_HEADERS = {
    "Content-Security-Policy": _CSP + "; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self)",
    "X-Frame-Options": "DENY",
}
# The room page holds the camera, the microphone and the screen; its only script is its own and
# the SDK, and it talks to this server alone (its signaling WebSocket: same host counts as 'self').
ROOM_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self' blob:; "
        "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
    "X-Frame-Options": "DENY",
}
# Applications on other sites import the SDK as a module, which browsers fetch with CORS.
SDK_HEADERS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}


class _File:
    """One file's bytes and validator; ``no-cache`` plus an ETag means a server upgrade is seen
    at the next load while unchanged files cost a 304."""

    def __init__(self, name: str, content_type: str, headers: dict[str, str]) -> None:
        self.body = (resources.files("streamhive") / "web" / name).read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        self.content_type = content_type
        self.headers = {
            **headers,
            "Cache-Control": "no-cache",
            "ETag": self.etag,
            "X-Content-Type-Options": "nosniff",
        }

    def response(self, request: web.Request) -> web.Response:
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=self.headers)
        return web.Response(
            body=self.body, content_type=self.content_type, charset="utf-8", headers=self.headers
        )


def add_page_routes(app: web.Application) -> None:
    """Register the pages and their assets. ``/{path}/publish`` and ``/rooms/{room}`` must come
    before the HLS catch-all ``/{path}/{name}``, which would otherwise take them."""
    player = _File("player.html", "text/html", PLAYER_HEADERS)
    publish = _File("publish.html", "text/html", PUBLISH_HEADERS)
    room_page = _File("room.html", "text/html", ROOM_HEADERS)
    sdk = _File("streamhive.js", "text/javascript", SDK_HEADERS)
    assets = {name: _File(name, kind, {}) for name, kind in ASSETS.items()}

    def page(file: _File) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                validate_path(request.match_info["path"])
            except BadPath as exc:
                raise web.HTTPNotFound(text=str(exc)) from None
            return file.response(request)

        return handler

    async def asset(request: web.Request) -> web.Response:
        file = assets.get(request.match_info["name"])
        if file is None:
            raise web.HTTPNotFound()
        return file.response(request)

    async def room(request: web.Request) -> web.Response:
        if not valid_room_name(request.match_info["room"]):
            raise web.HTTPNotFound(text="not a room name")
        return room_page.response(request)

    async def sdk_module(request: web.Request) -> web.Response:
        return sdk.response(request)

    app.router.add_get("/_streamhive/{name}", asset)
    app.router.add_get("/sdk/streamhive.js", sdk_module)
    app.router.add_get("/rooms/{room}", room)
    app.router.add_get(r"/{path:.+}/publish", page(publish))
    app.router.add_get(r"/{path:.+}/", page(player))
