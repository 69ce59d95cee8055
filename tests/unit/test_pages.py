"""The built-in player and publish pages, and their static assets, as served by aiohttp."""

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


async def test_player_page(client: TestClient) -> None:
    response = await client.get("/live/cam1/?token=abc")
    assert response.status == 200
    assert response.content_type == "text/html"
    body = await response.text()
    assert '<script type="module" src="/_streamhive/player.js">' in body
    assert "live/cam1" not in body  # the page reads its path from location, never from us
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self' https://cdn.jsdelivr.net" in csp
    assert "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_publish_page_before_the_hls_route(client: TestClient) -> None:
    response = await client.get("/live/cam1/publish")
    assert response.status == 200
    body = await response.text()
    assert "/_streamhive/publish.js" in body
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "camera=(self)" in response.headers["Permissions-Policy"]
    assert await (await client.get("/live/cam1/index.m3u8")).text() == "hls index.m3u8"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("whip.js", "text/javascript"), ("player.js", "text/javascript"), ("streamhive.css", "text/css")],
)
async def test_assets(client: TestClient, name: str, content_type: str) -> None:
    response = await client.get(f"/_streamhive/{name}")
    assert response.status == 200
    assert response.content_type == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = await client.get(f"/_streamhive/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


async def test_whip_module_exports(client: TestClient) -> None:
    source = await (await client.get("/_streamhive/whip.js")).text()
    assert "export async function negotiate(pc, url, token)" in source
    assert "export async function hangup(location, token)" in source


@pytest.mark.parametrize(
    "url",
    ["/_streamhive/player.html", "/_streamhive/pages.py", "/_streamhive/..%2fpages.py", "/_streamhive/x"],
)
async def test_unknown_assets_404(client: TestClient, url: str) -> None:
    assert (await client.get(url)).status == 404


async def test_bad_paths_get_no_page(client: TestClient) -> None:
    assert (await client.get("/a/%2e%2e/")).status == 404
    assert (await client.get("/a/%01b/publish")).status == 404
