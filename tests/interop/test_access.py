"""Access control with real clients: ffmpeg publishes and plays over RTMP, HTTP-FLV and RTSP with
the credentials each protocol carries (stream keys, Basic, Digest, JWT, signed URLs); every
attack class of the access-control issue that reaches a protocol is refused the protocol's way."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from streamhive.auth.passwords import hash_password
from streamhive.auth.signed import sign_query
from tests.conftest import (
    FFMPEG,
    RunningServer,
    ffmpeg_publish_cmd,
    free_port,
    needs_ffmpeg,
    probe,
    publishing,
    record,
    run,
    terminate,
)
from tests.interop.test_rtsp import record_rtsp

pytestmark = [pytest.mark.interop, needs_ffmpeg]

JWT_SECRET = "jwt-secret-for-the-interop-tests-0123456789"
SIGN_SECRET = "sign-secret-for-tests-0123456789"


def token(actions: list[str], paths: list[str] | None = None, exp: float = 600, **extra: Any) -> str:
    claims: dict[str, Any] = {"exp": int(time.time() + exp), "actions": actions, **extra}
    if paths is not None:
        claims["paths"] = paths
    return jwt.encode(claims, JWT_SECRET, "HS256")


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """Status, the first bytes and the headers of a GET (a live FLV never ends: read a little)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read(9), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(200), dict(err.headers)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


POLICY = f"""
auth:
  users:
    - user: encoder
      password: pub-secret
      actions: [publish]
      paths: ["live/*"]
    - user: viewer
      password_hash: "{hash_password("view-secret")}"
      actions: [read]
    - user: admin
      password: admin-secret
      actions: [api]
  jwt:
    secret: {JWT_SECRET}
  signed_urls:
    secret: {SIGN_SECRET}
  api: [users]
  max_failures: 50
path_defaults:
  publish_auth: [users, jwt]
  read_auth: [users, jwt, signed_url]
"""


async def test_policies_over_rtmp_httpflv_rtsp(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = make_server(POLICY, rtsp_options="  auth_methods: [basic]\n")
    server.api_headers = basic("admin", "admin-secret")
    assert FFMPEG is not None
    # Publishing without the stream key is refused; with it (RTMP query), it works.
    rc, _, err = await run(ffmpeg_publish_cmd(f"{server.rtmp}/live/cam1", 3), 30)
    assert rc != 0
    # A user allowed to publish under live/* only cannot publish elsewhere.
    rc, _, _ = await run(ffmpeg_publish_cmd(f"{server.rtmp}/other/cam?user=encoder&pass=pub-secret", 3), 30)
    assert rc != 0
    url = f"{server.rtmp}/live/cam1?user=encoder&pass=pub-secret"
    async with publishing(server, "live/cam1", 40, url=url):
        flv = f"{server.http}/live/cam1.flv"
        status, _, headers = await asyncio.to_thread(http_status, flv)
        assert status == 401 and "Basic" in headers.get("WWW-Authenticate", "")
        read = token(["read"], ["live/*"])
        assert (await asyncio.to_thread(http_status, flv, {"Authorization": f"Bearer {read}"}))[:2] == (
            200,
            b"FLV\x01\x05\x00\x00\x00\t",
        )
        assert (await asyncio.to_thread(http_status, flv, basic("viewer", "view-secret")))[0] == 200
        refusals = {
            "no credentials": await asyncio.to_thread(http_status, flv),
            "wrong password": await asyncio.to_thread(http_status, flv, basic("viewer", "nope")),
            "publish-only user": await asyncio.to_thread(http_status, flv, basic("encoder", "pub-secret")),
            "expired": await asyncio.to_thread(http_status, f"{flv}?token={token(['read'], exp=-60)}"),
            "not yet valid": await asyncio.to_thread(
                http_status, f"{flv}?token={token(['read'], nbf=int(time.time()) + 600)}"
            ),
            "wrong action": await asyncio.to_thread(http_status, f"{flv}?token={token(['publish'])}"),
            "wrong path": await asyncio.to_thread(http_status, f"{flv}?token={token(['read'], ['other/*'])}"),
            "forged": await asyncio.to_thread(
                http_status,
                f"{flv}?token={jwt.encode({'exp': time.time() + 60, 'actions': ['read']}, 'x' * 32, 'HS256')}",
            ),
            "alg none": await asyncio.to_thread(
                http_status,
                f"{flv}?token={jwt.encode({'exp': int(time.time()) + 60, 'actions': ['read']}, None, 'none')}",
            ),
            "malformed": await asyncio.to_thread(http_status, f"{flv}?token=not.a.jwt"),
            "signed for publish": await asyncio.to_thread(
                http_status, f"{flv}?{sign_query(SIGN_SECRET, 'publish', 'live/cam1', int(time.time()) + 60)}"
            ),
            "signed, expired": await asyncio.to_thread(
                http_status, f"{flv}?{sign_query(SIGN_SECRET, 'read', 'live/cam1', int(time.time()) - 1)}"
            ),
            "signed for another path": await asyncio.to_thread(
                http_status, f"{flv}?{sign_query(SIGN_SECRET, 'read', 'live/cam2', int(time.time()) + 60)}"
            ),
        }
        for what, (status, _, _) in refusals.items():
            assert status in (401, 403), (what, status)
        assert refusals["publish-only user"][0] == 403 and refusals["wrong path"][0] == 403
        signed = sign_query(SIGN_SECRET, "read", "live/cam1", int(time.time()) + 60)
        files = {name: tmp_path / f"{name}.flv" for name in ("rtmp", "flv_signed", "rtsp")}
        await asyncio.gather(
            record(f"{server.rtmp}/live/cam1?token={read}", files["rtmp"], 2),
            record(f"{flv}?{signed}", files["flv_signed"], 2),
            record_rtsp(
                f"rtsp://viewer:view-secret@127.0.0.1:{server.rtsp_port}/live/cam1",
                files["rtsp"].with_suffix(".mkv"),
                2,
            ),
        )
        # Paths that try to escape a pattern or a directory, and absurd names.
        for bad in (
            "live%2F..%2Fcam1.flv",
            "live/..%2Fcam1.flv",
            "live/%2e%2e/cam1.flv",
            "a" * 10_000 + ".flv",
        ):
            status = (
                await asyncio.to_thread(http_status, f"{server.http}/{bad}", basic("viewer", "view-secret"))
            )[0]
            assert status in (400, 404, 414, 431), (bad[:40], status)
        # HLS: the playlist asks for credentials; Basic and Bearer open it like any HTTP read.
        hls = f"{server.http}/live/cam1/index.m3u8"
        assert (await asyncio.to_thread(http_status, hls))[0] == 401
        assert (await asyncio.to_thread(http_status, hls, {"Authorization": f"Bearer {read}"}))[:2] == (
            200,
            b"#EXTM3U\n#",
        )
        # The API wants an admin now, even from this machine.
        api = f"{server.http}/api/v1/paths"
        assert (await asyncio.to_thread(http_status, api))[0] == 401
        assert (await asyncio.to_thread(http_status, api, basic("viewer", "view-secret")))[0] == 403
        assert (await asyncio.to_thread(http_status, api, basic("admin", "admin-secret")))[0] == 200
    for name, path in files.items():
        info = await probe(path if name != "rtsp" else path.with_suffix(".mkv"))
        assert info["video"]["codec_name"] == "h264" and int(info["video"]["nb_read_frames"]) >= 30, (
            name,
            info,
        )  # type: ignore[arg-type]
    long_name = f"{server.rtmp}/live/{'x' * 10_000}?user=encoder&pass=pub-secret"
    rc, _, _ = await run(ffmpeg_publish_cmd(long_name, 2), 30)
    assert rc != 0
    log = server.log()
    assert "refused publish of live/cam1" in log and "Traceback" not in log
    assert "pub-secret" not in log and JWT_SECRET not in log


@contextlib.asynccontextmanager
async def recorder(
    decide: Callable[[dict[str, Any]], Any],
) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """A backend on loopback: records every JSON body POSTed to it and answers with decide(body)."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        body["_url"] = request.path
        seen.append(body)
        answer = decide(body)
        if asyncio.iscoroutine(answer):
            answer = await answer
        return web.Response(status=answer)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def test_http_callback_and_event_hooks(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    async def decide(body: dict[str, Any]) -> int:
        if body["_url"] != "/auth":
            return 200  # hooks
        if body.get("token") == "hang":
            await asyncio.sleep(10)
        return 200 if body.get("token") == "good" else 403

    async with recorder(decide) as (port, seen):
        base = f"http://127.0.0.1:{port}"
        server = make_server(
            f"auth:\n  http:\n    url: {base}/auth\n    timeout: 1\n    cache: 0\n"
            f"  hooks:\n    on_publish: {base}/hook\n    on_unpublish: {base}/hook\n"
            f"    on_read: {base}/hook\n    on_read_end: {base}/hook\n"
            "path_defaults:\n  read_auth: [http]\n"
        )
        async with publishing(server, "cb/x", 30):
            flv = f"{server.http}/cb/x.flv"
            hung = asyncio.ensure_future(asyncio.to_thread(http_status, f"{flv}?token=hang"))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            assert (await asyncio.to_thread(http_status, f"{flv}?token=bad"))[0] == 401
            out = tmp_path / "good.flv"
            await record(f"{flv}?token=good", out, 2)
            assert time.monotonic() - started < 8  # the hanging callback stalled nobody
            assert (await hung)[0] == 401  # and it failed closed after its timeout
        await asyncio.sleep(1.5)  # hooks are delivered asynchronously
    info = await probe(out)
    assert info["video"]["codec_name"] == "h264"
    auth_calls = [b for b in seen if b["_url"] == "/auth"]
    fields = {
        "action",
        "path",
        "protocol",
        "remote",
        "ip",
        "query",
        "user",
        "password",
        "token",
        "user_agent",
    }
    assert auth_calls and all(fields <= set(b) for b in auth_calls), auth_calls
    good = next(b for b in auth_calls if b["token"] == "good")
    assert (good["action"], good["path"], good["protocol"], good["ip"]) == (
        "read",
        "cb/x",
        "http-flv",
        "127.0.0.1",
    )
    events = [(b["event"], b["path"]) for b in seen if b["_url"] == "/hook"]
    for event in ("on_publish", "on_read", "on_read_end", "on_unpublish"):
        assert (event, "cb/x") in events, events
    hook = next(b for b in seen if b.get("event") == "on_read_end")
    assert {"session", "protocol", "remote", "bytes_out", "duration"} <= set(hook)
    assert json.dumps(seen)  # all plain JSON


async def test_brute_force_is_blocked(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(
        "auth:\n  users:\n    - user: viewer\n      password: right\n  max_failures: 3\n  block_seconds: 60\n"
        "path_defaults:\n  read_auth: [users]\n"
    )
    async with publishing(server, "live/bf", 20):
        flv = f"{server.http}/live/bf.flv"
        assert (await asyncio.to_thread(http_status, flv, basic("viewer", "right")))[0] == 200
        for attempt in ("a", "b", "c"):
            assert (await asyncio.to_thread(http_status, flv, basic("viewer", attempt)))[0] == 401
        # Blocked now: even the right password is refused from this address.
        assert (await asyncio.to_thread(http_status, flv, basic("viewer", "right")))[0] == 403


async def test_connection_and_bitrate_limits(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("max_connections_per_ip: 2\npaths:\n  live/fat:\n    max_publish_bitrate: 20000\n")
    held = [await asyncio.open_connection("127.0.0.1", server.rtmp_port) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.rtmp_port)
    assert await asyncio.wait_for(reader.read(10), 5) == b""  # closed at once
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.5)
    publisher = await asyncio.create_subprocess_exec(
        *ffmpeg_publish_cmd(f"{server.rtmp}/live/fat", 20, extra=("-b:v", "500k"))
    )
    try:
        assert await asyncio.wait_for(publisher.wait(), 20) is not None  # kicked long before 20 s
    finally:
        await terminate(publisher)
    log = server.log()
    assert "max_connections_per_ip=2 reached" in log and "over max_publish_bitrate" in log


async def test_https_wss_and_rtmps_from_one_tls_config(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """One self-signed certificate made at startup serves RTMPS, HTTPS and WSS."""
    import aiohttp

    https, rtmps = free_port(), free_port()
    server = make_server(
        f"  https:\n    listen: '127.0.0.1:{https}'\ntls:\n  self_signed: true\n",  # continues http:
        rtmp_options=f"  rtmps:\n    listen: '127.0.0.1:{rtmps}'\n",
    )
    publisher = await asyncio.create_subprocess_exec(
        *ffmpeg_publish_cmd(f"rtmps://127.0.0.1:{rtmps}/live/tls", 20)
    )
    try:
        await asyncio.to_thread(server.wait_for_path, "live/tls")
        out = tmp_path / "https.flv"
        await record(f"https://127.0.0.1:{https}/live/tls.flv", out, 2)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"wss://127.0.0.1:{https}/live/tls.flv", ssl=False) as ws,
        ):
            first = await asyncio.wait_for(ws.receive(), 5)
    finally:
        await terminate(publisher)
    assert first.type == aiohttp.WSMsgType.BINARY and first.data[:3] == b"FLV"
    info = await probe(out)
    assert info["video"]["codec_name"] == "h264" and int(info["video"]["nb_read_frames"]) >= 30  # type: ignore[arg-type]


async def test_rtsp_digest_with_a_foreign_nonce_is_refused(make_server: Callable[..., RunningServer]) -> None:
    """A Digest answer computed for a nonce we never issued (replayed from elsewhere) is a 401."""
    import hashlib

    server = make_server(
        "auth:\n  users:\n    - user: viewer\n      password: right\npath_defaults:\n  read_auth: [users]\n"
    )
    url = f"{server.rtsp}/live/x"
    nonce = "0123456789abcdef0123456789abcdef"
    ha1 = hashlib.md5(b"viewer:streamhive:right").hexdigest()
    ha2 = hashlib.md5(f"DESCRIBE:{url}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    header = (
        f'Digest username="viewer", realm="streamhive", nonce="{nonce}", uri="{url}", response="{response}"'
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.rtsp_port)
    writer.write(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {header}\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert answer.startswith(b"RTSP/1.0 401") and b"WWW-Authenticate: Digest" in answer, answer
