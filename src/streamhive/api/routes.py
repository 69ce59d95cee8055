"""REST API (``/api/v1``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..auth import AuthRequest, Credentials, ip_of
from ..auth.limits import RateLimiter
from ..auth.networks import client_key
from ..hub import Refused
from ..servers.http_auth import credentials_of, refusal, remote_of
from .metrics import render_metrics

if TYPE_CHECKING:
    from ..server import Server


def describe(server: Server, stream: Any) -> dict[str, Any]:
    data: dict[str, Any] = stream.describe()
    data["hls_viewers"] = server.hls.viewers(stream.path)
    return data


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Public even when the API is protected: DASH players sync their clocks to it.
PUBLIC = ("/api/v1/time",)


def _is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def guard(key: web.AppKey[Server]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Rate limits and credentials for the API, metrics and console (like MediaMTX).

    With no ``auth.api`` methods configured only this machine may use them; with methods, every
    request must pass them (Basic user or Bearer token), wherever it comes from.
    """
    limiters: dict[int, RateLimiter] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not (path == "/" or path == "/metrics" or path.startswith("/api/")) or path in PUBLIC:
            return await handler(request)
        server = request.app[key]
        remote = remote_of(request)
        ip = ip_of(remote)
        rate = server.config.http.api_rate_limit
        if rate:
            limiter = limiters.setdefault(id(server), RateLimiter(rate, rate * 5, time.monotonic))
            if not limiter.allow(client_key(ip)):
                server.hub.stats.refused("rate_limited")
                return web.json_response(
                    {"error": "too many API requests"}, status=429, headers={"Retry-After": "1"}
                )
        if not server.config.auth.api:
            if _is_loopback(ip):
                return await handler(request)
            return web.json_response(
                {"error": "the API answers only this machine unless auth.api is configured"}, status=403
            )
        creds = Credentials.from_query(request.query_string, credentials_of(request))
        check = AuthRequest(
            "api", "api", "http", remote, request.query_string, creds.user, creds.password,
            token=creds.token, user_agent=creds.user_agent,
        )  # fmt: skip
        try:
            await server.hub.check(check)
        except Refused as refused:
            return refusal(refused)
        return await handler(request)

    return middleware


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
