"""REST API (``/api/v1``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .metrics import render_metrics

if TYPE_CHECKING:
    from ..server import Server


def describe(server: Server, stream: Any) -> dict[str, Any]:
    data: dict[str, Any] = stream.describe()
    data["hls_viewers"] = server.hls.viewers(stream.path)
    return data


def add_routes(app: web.Application, key: web.AppKey[Server]) -> None:
    def hub_of(request: web.Request) -> Any:
        return request.app[key].hub

    async def list_paths(request: web.Request) -> web.Response:
        server = request.app[key]
        items = [describe(server, stream) for _, stream in sorted(server.hub.streams.items())]
        return web.json_response({"items": items, "count": len(items)})

    async def get_path(request: web.Request) -> web.Response:
        stream = hub_of(request).streams.get(request.match_info["name"].strip("/"))
        if stream is None:
            return web.json_response({"error": "path not found"}, status=404)
        data = describe(request.app[key], stream)
        data["reader_sessions"] = [r.session.describe() for r in stream.readers]
        return web.json_response(data)

    async def list_sessions(request: web.Request) -> web.Response:
        items = [s.describe() for s in hub_of(request).sessions.values()]
        return web.json_response({"items": items, "count": len(items)})

    async def kick_session(request: web.Request) -> web.Response:
        session = hub_of(request).sessions.get(request.match_info["id"])
        if session is None:
            return web.json_response({"error": "session not found"}, status=404)
        if session.kick is not None:
            session.kick("kicked through the API")
        return web.json_response({"kicked": session.id})

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render_metrics(request.app[key])
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/api/v1/paths", list_paths)
    app.router.add_get("/api/v1/paths/{name:.+}", get_path)
    app.router.add_get("/api/v1/sessions", list_sessions)
    app.router.add_delete("/api/v1/sessions/{id}", kick_session)
    app.router.add_get("/metrics", metrics)
