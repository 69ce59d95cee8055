"""The room page, its assets and the rooms JavaScript SDK, as served by aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamhive.servers.pages import add_page_routes


async def hls_like(request: web.Request) -> web.Response:
    return web.Response(text=f"hls {request.match_info['name']}")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application()
    add_page_routes(app)
    app.router.add_get(r"/{path:.+}/{name:[^/]+}", hls_like)  # the HLS catch-all comes after
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_room_page(client: TestClient) -> None:
    response = await client.get("/rooms/standup?token=abc&autojoin=1")
    assert response.status == 200
    assert response.content_type == "text/html"
    body = await response.text()
    assert '<script type="module" src="/_streamhive/room.js">' in body
    assert '<link rel="stylesheet" href="/_streamhive/room.css">' in body
    assert "standup" not in body  # the page reads its room from location, never from us
    assert "<script>" not in body  # no inline script: the CSP would block it
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_room_page_security_headers(client: TestClient) -> None:
    response = await client.get("/rooms/team-1.daily_sync")
    assert response.status == 200
    csp = {d.split()[0]: d.split()[1:] for d in response.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no CDN, no inline code
    assert csp["connect-src"] == ["'self'"]  # the signaling WebSocket on this host
    assert csp["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    permissions = response.headers["Permissions-Policy"]
    assert permissions == "camera=(self), microphone=(self), display-capture=(self)"


@pytest.mark.parametrize(
    "url",
    [
        "/rooms/" + "a" * 65,
        "/rooms/bad%20name",
        "/rooms/caf%C3%A9",
        "/rooms/a%2Fb",
        "/rooms/a@b",
        "/rooms/%3Cscript%3E",
    ],
)
async def test_bad_room_names_404(client: TestClient, url: str) -> None:
    response = await client.get(url)
    assert response.status == 404
    assert "room.js" not in await response.text()


async def test_longest_room_name(client: TestClient) -> None:
    assert (await client.get("/rooms/" + "A" * 64)).status == 200


async def test_room_routes_leave_hls_and_players_alone(client: TestClient) -> None:
    """The room page takes one path segment only: deeper URLs still reach the routes after it."""
    assert await (await client.get("/rooms/standup/index.m3u8")).text() == "hls index.m3u8"
    player = await client.get("/rooms/standup/alice/")
    assert "/_streamhive/player.js" in await player.text()


async def test_sdk_module(client: TestClient) -> None:
    response = await client.get("/sdk/streamhive.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.charset == "utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # importable from other sites
    source = await response.text()
    assert "export class Room" in source
    for method in ("join()", "publish(stream,", "publishScreen(", "unpublish(source)", "leave()"):
        assert method in source
    again = await client.get("/sdk/streamhive.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize(("name", "content_type"), [("room.js", "text/javascript"), ("room.css", "text/css")])
async def test_room_assets(client: TestClient, name: str, content_type: str) -> None:
    response = await client.get(f"/_streamhive/{name}")
    assert response.status == 200
    assert response.content_type == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_room_script_imports_the_sdk(client: TestClient) -> None:
    source = await (await client.get("/_streamhive/room.js")).text()
    assert "from '/sdk/streamhive.js'" in source
    assert "innerHTML" not in source  # remote names and chat are text, never markup
    assert "window.streamhiveRoom = room" in source


@pytest.mark.parametrize("name", ["room.html", "streamhive.js"])
async def test_not_assets(client: TestClient, name: str) -> None:
    """The page is served at its room URL and the SDK at /sdk/ only."""
    assert (await client.get(f"/_streamhive/{name}")).status == 404
