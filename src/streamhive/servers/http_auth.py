"""HTTP requests to hub terms: who is asking, with which credentials, and how a refusal reads.

Shared by the FLV, HLS/DASH and API handlers so every HTTP door checks the same way.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ..auth import Credentials
from ..hub import Refused
from ..hub.session import format_remote

REFUSED_STATUS = {
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "bad_path": 400,
    "too_many": 503,
    "busy": 409,
}


def remote_of(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return format_remote(peer[0], peer[1]) if peer else str(request.remote)


def credentials_of(request: web.Request) -> Credentials:
    """``Authorization: Basic`` or ``Bearer``; ``?token=`` and the like are read by the hub."""
    agent = request.headers.get("User-Agent")
    value = request.headers.get("Authorization", "")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return Credentials(token=rest.strip(), user_agent=agent)
    if scheme.lower() == "basic":
        try:
            user, sep, password = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            return Credentials(user_agent=agent)
        if sep:
            return Credentials(user, password, user_agent=agent)
    return Credentials(user_agent=agent)


def refusal(refused: Refused) -> web.Response:
    """A refused read as HTTP: 401 asks for credentials (Basic or a Bearer token), 403 does not."""
    status = REFUSED_STATUS.get(refused.code, 400)
    headers = {"WWW-Authenticate": 'Basic realm="streamhive", Bearer'} if status == 401 else None
    return web.json_response({"error": str(refused)}, status=status, headers=headers)
