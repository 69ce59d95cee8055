"""The HTTP callback and the event hooks against real HTTP servers on 127.0.0.1.

The callback must send every documented field, allow only on 2xx, fail closed on garbage and
hangs, and never make one client wait for another's hung decision. Hooks must retry, stay bounded
and never block the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from streamhive.auth import AuthRequest
from streamhive.auth.access import AccessControl, AccessDenied
from streamhive.auth.callback import MAX_IN_FLIGHT, HttpDecider
from streamhive.auth.client import SharedSession
from streamhive.auth.hooks import EventHooks
from streamhive.config import AuthConfig, HooksConfig, HttpAuthConfig

FIELDS = {"action", "path", "protocol", "remote", "ip", "query", "user", "password", "token", "user_agent"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An HTTP server whose answer depends on the request's path field (or the URL for hooks)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.hook_failures_left = 0
        self.release = asyncio.Event()

    async def decide(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        path = body["path"]
        if path.startswith("hang/"):
            await self.release.wait()
        if path.startswith("slow/"):
            await asyncio.sleep(0.2)
        if path.startswith("deny/"):
            return web.Response(status=403)
        if path.startswith("redirect/"):
            raise web.HTTPFound("/ok")
        if path.startswith("error/"):
            return web.Response(status=500)
        return web.Response(status=200, text="{not json")  # any 2xx allows, whatever the body

    async def hook(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        if request.match_info["kind"] == "hang":
            await self.release.wait()
        if self.hook_failures_left > 0:
            self.hook_failures_left -= 1
            return web.Response(status=503)
        return web.Response(status=204)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/decide", recorder.decide)
    app.router.add_post("/hook/{kind}", recorder.hook)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield recorder, f"http://127.0.0.1:{port}"
    recorder.release.set()
    await runner.cleanup()


@pytest.fixture
async def garbage_url() -> AsyncIterator[str]:
    """A TCP server that answers anything with bytes that are not HTTP."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(4096)
            writer.write(b"\x00\xffthis is not http at all\r\n\r\n")
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/decide"
    srv.close()


@pytest.fixture
async def sessions() -> AsyncIterator[SharedSession]:
    shared = SharedSession()
    yield shared
    await shared.close()


def req(path: str = "live/cam1", **kwargs: Any) -> AuthRequest:
    return AuthRequest(path, "publish", "rtmp", "[2001:db8::7]:50000", "key=abc&x=1", **kwargs)


def decider(url: str, sessions: SharedSession, clock: Clock | None = None, **config: Any) -> HttpDecider:
    return HttpDecider(HttpAuthConfig(url=url, **config), sessions, clock or Clock())


async def timed(coro: Awaitable[Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


async def test_callback_sends_every_documented_field(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    recorder, base = server
    http = decider(f"{base}/decide", sessions, cache=0)
    full = req(user="alice", password="pw", token="tok", user_agent="OBS/30")
    assert await http.decide(full) is None
    assert recorder.received[-1] == {
        "action": "publish",
        "path": "live/cam1",
        "protocol": "rtmp",
        "remote": "[2001:db8::7]:50000",
        "ip": "2001:db8::7",
        "query": "key=abc&x=1",
        "user": "alice",
        "password": "pw",
        "token": "tok",
        "user_agent": "OBS/30",
    }
    assert await http.decide(req()) is None
    assert set(recorder.received[-1]) == FIELDS and recorder.received[-1]["user"] is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("deny/x", "callback refused (403)"),
        ("error/x", "callback refused (500)"),
        ("redirect/x", "callback refused (302)"),
    ],
)
async def test_callback_refusals(
    server: tuple[Recorder, str], sessions: SharedSession, path: str, reason: str
) -> None:
    _, base = server
    assert await decider(f"{base}/decide", sessions).decide(req(path)) == reason


async def test_callback_garbage_and_unreachable_fail_closed(
    garbage_url: str, sessions: SharedSession
) -> None:
    assert await decider(garbage_url, sessions).decide(req()) == "callback unreachable or not HTTP"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    unreachable = decider(f"http://127.0.0.1:{closed_port}/", sessions)
    assert await unreachable.decide(req()) == "callback unreachable or not HTTP"


async def test_hung_callback_refuses_after_timeout_without_stalling_others(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    _, base = server
    http = decider(f"{base}/decide", sessions, timeout=0.5)
    hung = asyncio.ensure_future(timed(http.decide(req("hang/x"))))
    await asyncio.sleep(0.05)
    (answer, elapsed) = await timed(http.decide(req("live/other")))
    assert answer is None and elapsed < 0.3  # the other client did not wait for the hung one
    assert not hung.done()
    reason, waited = await hung
    assert reason == "callback timed out" and 0.4 < waited < 2.0


async def test_callback_in_flight_bound_refuses_at_once(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    recorder, base = server
    http = decider(f"{base}/decide", sessions, timeout=5)
    hung = [asyncio.ensure_future(http.decide(req(f"hang/{i}"))) for i in range(MAX_IN_FLIGHT)]
    await asyncio.sleep(0.05)
    reason, elapsed = await timed(http.decide(req("live/late")))
    assert reason == "callback busy" and elapsed < 0.1
    recorder.release.set()
    assert await asyncio.gather(*hung) == [None] * MAX_IN_FLIGHT
    assert await http.decide(req("live/late")) is None


async def test_callback_cache_and_shared_calls(server: tuple[Recorder, str], sessions: SharedSession) -> None:
    recorder, base = server
    clock = Clock()
    http = decider(f"{base}/decide", sessions, clock, cache=10)
    answers = await asyncio.gather(*(http.decide(req("slow/x")) for _ in range(5)))
    assert answers == [None] * 5 and len(recorder.received) == 1  # one call for five waiters
    assert await http.decide(req("slow/x")) is None and len(recorder.received) == 1  # cached
    assert await http.decide(req("deny/x")) == "callback refused (403)"
    assert await http.decide(req("deny/x")) == "callback refused (403)"
    assert len(recorder.received) == 2  # refusals are answers too, cached alike
    assert await http.decide(req("slow/x", token="other")) is None and len(recorder.received) == 3
    clock.now += 11
    assert await http.decide(req("slow/x")) is None and len(recorder.received) == 4


async def test_cancelled_waiter_does_not_cancel_the_shared_call(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    recorder, base = server
    http = decider(f"{base}/decide", sessions)
    first = asyncio.ensure_future(http.decide(req("slow/y")))
    second = asyncio.ensure_future(http.decide(req("slow/y")))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second is None and len(recorder.received) == 1


async def test_access_control_with_http_method(server: tuple[Recorder, str], sessions: SharedSession) -> None:
    _, base = server
    control = AccessControl(AuthConfig(http={"url": f"{base}/decide"}), session_factory=sessions)
    await control.check(req(), ["http"])
    with pytest.raises(AccessDenied) as info:
        await control.check(req("deny/x", password="secret-pw", user="u"), ["http"])
    assert info.value.code == "unauthorized" and "secret-pw" not in str(info.value)
    await control.close()


async def test_access_control_default_session_is_shared_and_closed(server: tuple[Recorder, str]) -> None:
    _, base = server
    control = AccessControl(AuthConfig(http={"url": f"{base}/decide", "cache": 0}))
    await control.check(req(), ["http"])
    await control.check(req(), ["http"])
    await control.close()


# -- hooks ----------------------------------------------------------------------------------


async def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_hooks_retry_until_delivered(server: tuple[Recorder, str], sessions: SharedSession) -> None:
    recorder, base = server
    recorder.hook_failures_left = 2
    hooks = EventHooks(HooksConfig(on_publish=f"{base}/hook/ok", retries=3), sessions, Clock(), backoff=0.01)
    hooks.start()
    hooks.emit("on_publish", {"path": "live/cam1", "remote": "192.0.2.1:5"})
    await wait_for(lambda: hooks.delivered == 1)
    assert len(recorder.received) == 3 and hooks.failed == 0
    assert recorder.received[-1] == {
        "event": "on_publish",
        "time": 1_700_000_000.0,
        "path": "live/cam1",
        "remote": "192.0.2.1:5",
    }
    await hooks.stop()


async def test_hooks_give_up_after_retries(server: tuple[Recorder, str], sessions: SharedSession) -> None:
    recorder, base = server
    recorder.hook_failures_left = 100
    hooks = EventHooks(HooksConfig(on_read=f"{base}/hook/ok", retries=2), sessions, Clock(), backoff=0.01)
    hooks.start()
    hooks.emit("on_read", {"path": "live/cam1"})
    await wait_for(lambda: hooks.failed == 1)
    assert len(recorder.received) == 3 and hooks.delivered == 0
    await hooks.stop()


async def test_hooks_queue_drops_oldest_and_keeps_order(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    recorder, base = server
    hooks = EventHooks(HooksConfig(on_read=f"{base}/hook/ok", queue_size=3), sessions, Clock())
    for i in range(5):
        hooks.emit("on_read", {"n": i})
    hooks.emit("on_unpublish", {"n": 99})  # no URL for it: ignored, not queued
    assert hooks.dropped == 2
    hooks.start()
    await wait_for(lambda: hooks.delivered == 3)
    assert [body["n"] for body in recorder.received] == [2, 3, 4]
    await hooks.stop()


async def test_hooks_never_block_and_stop_is_bounded(
    server: tuple[Recorder, str], sessions: SharedSession
) -> None:
    recorder, base = server
    hooks = EventHooks(
        HooksConfig(on_publish=f"{base}/hook/hang", timeout=30, queue_size=10),
        sessions,
        Clock(),
        stop_grace=0.3,
    )
    hooks.start()
    start = time.monotonic()
    for i in range(1000):
        hooks.emit("on_publish", {"n": i, "payload": object()})  # not JSON-able: sent as its str
    assert time.monotonic() - start < 0.5
    await wait_for(lambda: len(recorder.received) == 1)
    _, elapsed = await timed(hooks.stop())
    assert elapsed < 1.0
    assert hooks.delivered == 0 and hooks.dropped == 1000  # 990 by the bound, 10 at stop
    hooks.emit("on_publish", {"n": "late"})
    assert hooks.dropped == 1001


async def test_hooks_unreachable_receiver_counts_failures(sessions: SharedSession) -> None:
    hooks = EventHooks(
        HooksConfig(on_publish="http://127.0.0.1:1/", retries=1), sessions, Clock(), backoff=0.01
    )
    hooks.start()
    hooks.emit("on_publish", {"path": "x"})
    await wait_for(lambda: hooks.failed == 1)
    await hooks.stop()


async def test_hooks_own_session_when_none_given(server: tuple[Recorder, str]) -> None:
    recorder, base = server
    hooks = EventHooks(HooksConfig(on_read_end=f"{base}/hook/ok"))
    hooks.start()
    hooks.emit("on_read_end", {"path": "live/cam1"})
    await hooks.stop()  # delivers what is queued before returning
    assert hooks.delivered == 1 and recorder.received[0]["event"] == "on_read_end"
