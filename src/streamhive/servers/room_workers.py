"""Rooms in worker processes, one per core: how the SFU uses more than one CPU.

With ``rooms.workers: N`` (N > 1) the main process keeps every other protocol and becomes the
front for rooms: each room belongs to one worker (``crc32(room) % N``), and the front relays a
participant's signaling WebSocket to that worker, message for message, close code included.
Media never passes through the front: each worker is a streamhive server of its own (no RTMP or
RTSP, HTTP on loopback only) with its own ICE port, ``webrtc.listen``'s port + 1 + index (UDP
and TCP), which its answers announce. This is how mediasoup (a worker per core) and LiveKit
(rooms pinned to nodes) scale. A worker is pinned to one CPU and restarted if it dies; it exits
when the front does (it watches its stdin, a pipe the front holds).

Every participant reaches a worker from the front's loopback address, so what depends on the
client's address is the front's job: it counts each relayed WebSocket as a hub session (the
connection limits, per IP included, and the session log line with the real address), and it
checks the admin API's credentials; the worker's API answers loopback only (the front).

The admin API is relayed too (``/api/v1/rooms`` merges every worker's list). Bridges of room
tracks to hub paths (``rooms.bridge``) need the main process's hub, so they are off in workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import zlib
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

from ..config import Config, parse_listen
from ..hub import Session
from ..sfu.grants import valid_room_name
from .http_auth import remote_of

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.rooms")

#: Seconds a worker has to report its HTTP port.
START_TIMEOUT = 20.0
#: Seconds between restarts of a worker that keeps dying.
RESTART_DELAY = 1.0
#: Seconds the front waits for a worker's answer to an admin API request.
API_TIMEOUT = 10.0
#: Seconds to let a worker's exit be noticed after its WebSocket broke (1012 rather than 1011).
EXIT_GRACE = 1.0
#: What the front runs as a worker (``python -m``; an entry module of its own, see there).
WORKER_MODULE = "streamhive.servers.room_worker_main"
#: Close codes that never go on the wire (RFC 6455 7.4.1): the connection broke, no code was sent.
NO_CODE = frozenset({1005, 1006, 1015})
#: Participants removed by the admin API (docs/rooms.md); also a kick through /api/v1/sessions.
KICKED = 4010


def worker_config(config: Config, index: int) -> Config:
    """The configuration of worker ``index``: rooms and WebRTC only, HTTP on loopback.

    The front has already checked what depends on the client (API credentials, connection
    limits per address, API rate), and the worker sees everyone as the front's loopback
    address, so those checks are off there: ``auth.api: []`` answers loopback only.
    """
    data = config.model_dump()
    host, port = parse_listen(config.webrtc.listen)
    data["rtmp"]["enabled"] = False
    data["rtsp"]["enabled"] = False
    data["http"]["https"] = None
    data["http"]["listen"] = "127.0.0.1:0"
    data["http"]["api_rate_limit"] = 0
    data["auth"]["api"] = []
    data["max_connections_per_ip"] = 0
    data["webrtc"]["listen"] = f"{host}:{port + 1 + index if port else 0}"
    data["rooms"]["workers"] = 1
    data["rooms"]["bridge"] = False
    data["paths"] = {}
    return Config.model_validate(data)


class Worker:
    """One worker process as the front sees it."""

    def __init__(self, index: int, config: Config) -> None:
        self.index = index
        self.config = worker_config(config, index)
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Start the worker and restart it whenever it dies, until cancelled."""
        while True:
            self.ready.clear()
            try:
                await self._start()
                assert self.process is not None
                code = await self.process.wait()
                log.warning("room worker %d exited with %s; restarting", self.index, code)
            except (OSError, ValueError, KeyError, TypeError, TimeoutError) as exc:
                log.error("room worker %d failed to start: %s", self.index, exc)
            await asyncio.sleep(RESTART_DELAY)

    async def _start(self) -> None:
        process = self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            str(self.index),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(self.config.model_dump_json().encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            self.port = int(json.loads(line)["http_port"])
        except BaseException:
            # A worker that did not report holds its ICE port: the next one could not bind it.
            await _kill(process)
            raise
        self.ready.set()
        log.info(
            "room worker %d (pid %d) ready, HTTP on 127.0.0.1:%d, ICE on %s",
            self.index,
            process.pid,
            self.port,
            self.config.webrtc.listen,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill a worker and reap it (its ports and our pipes are free when this returns)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()


class RoomWorkers:
    """The front: starts the workers and relays signaling and the rooms API to them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.workers = [Worker(i, server.config) for i in range(server.config.rooms.workers)]
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    async def start(self) -> None:
        # No connector limit (aiohttp's default, 100, would hold participant 101 on): the hub's
        # connection limits bound the relayed WebSockets, each holding one upstream connection.
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._tasks = [asyncio.ensure_future(worker.run()) for worker in self.workers]
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), START_TIMEOUT)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            if worker.process is not None:
                with contextlib.suppress(TimeoutError, ProcessLookupError):
                    await asyncio.wait_for(worker.process.wait(), 5)
        if self._http is not None:
            await self._http.close()

    def worker_for(self, room: str) -> Worker:
        return self.workers[zlib.crc32(room.encode()) % len(self.workers)]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/rooms/{room}/ws", self.websocket)
        app.router.add_get("/api/v1/rooms", self.api_list)
        app.router.add_route("*", "/api/v1/rooms/{room}{rest:(/.*)?}", self.api_room)

    async def _base(self, room: str) -> str:
        worker = self.worker_for(room)
        await asyncio.wait_for(worker.ready.wait(), START_TIMEOUT)
        return f"127.0.0.1:{worker.port}"

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Relay one participant's WebSocket, counted here as a session with its real address."""
        room = request.match_info["room"]
        if not valid_room_name(room):
            raise web.HTTPNotFound(text="invalid room name")
        hub = self.server.hub
        session = Session("room", remote_of(request), query=request.query_string)
        session.path = f"rooms/{room}"
        if not hub.add_session(session):
            raise web.HTTPServiceUnavailable(text="too many connections")
        client = web.WebSocketResponse(
            max_msg_size=self.server.config.rooms.max_message_bytes, heartbeat=20.0
        )
        try:
            await client.prepare(request)  # first: it refuses a request that is no WebSocket upgrade
            kicked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            session.kick = partial(_settle, kicked)
            session.close_reason = await self._relay(room, request.query_string, client, kicked)
        finally:
            hub.remove_session(session)
        return client

    async def _relay(
        self, room: str, query: str, client: web.WebSocketResponse, kicked: asyncio.Future[str]
    ) -> str:
        """Relay ``client`` to its room's worker until a side closes or it is kicked; why it ended."""
        assert self._http is not None
        worker = self.worker_for(room)
        path = f"/rooms/{room}/ws" + (f"?{query}" if query else "")
        try:
            await asyncio.wait_for(worker.ready.wait(), START_TIMEOUT)
            process = worker.process
            upstream = await self._http.ws_connect(
                f"ws://127.0.0.1:{worker.port}{path}",
                max_msg_size=self.server.config.rooms.max_message_bytes,
                autoping=True,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("room %s: worker %d unavailable: %s", room, worker.index, exc)
            await _close(client, 1013, "room worker unavailable, try again")
            return "room worker unavailable"
        try:
            reason = await _relay_both(client, upstream, kicked)
        finally:
            await _close(upstream, _on_wire(client.close_code, 1001), "")
        if client.closed:  # the participant left, and the worker was told with its code
            return reason or "left"
        if kicked.done():
            code, reason = KICKED, kicked.result()
        elif (code := _on_wire(upstream.close_code, 0)) == 0:
            code, reason = await self._broken(process)
        await _close(client, code, reason)
        return reason

    async def _broken(self, process: asyncio.subprocess.Process | None) -> tuple[int, str]:
        """The close for a worker connection that broke without a close code (the wire may not
        carry 1006): 1012 when the worker died (it is restarting: join again in a moment)."""
        if self._stopping:
            return 1001, "server shutting down"
        if process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), EXIT_GRACE)
            if process.returncode is not None:
                return 1012, "room worker restarted"
        return 1011, "room worker connection lost"

    async def api_list(self, request: web.Request) -> web.Response:
        """Every worker's rooms; a worker that does not answer is left out (and logged)."""
        items: list[Any] = []
        for worker in self.workers:
            if worker.ready.is_set():
                items += await self._worker_rooms(worker)
        items.sort(key=lambda room: room["name"])
        return web.json_response({"items": items, "count": len(items)})

    async def _worker_rooms(self, worker: Worker) -> list[Any]:
        assert self._http is not None
        url = f"http://127.0.0.1:{worker.port}/api/v1/rooms"
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=API_TIMEOUT)) as response:
                if response.status != 200:
                    log.warning(
                        "room worker %d answered its room list with %d", worker.index, response.status
                    )
                    return []
                return list((await response.json())["items"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("room worker %d did not list its rooms: %r", worker.index, exc)
            return []

    async def api_room(self, request: web.Request) -> web.Response:
        assert self._http is not None
        try:
            base = await self._base(request.match_info["room"])
            async with self._http.request(
                request.method,
                f"http://{base}{request.rel_url}",
                data=await request.read(),
                timeout=aiohttp.ClientTimeout(total=API_TIMEOUT),
            ) as response:
                body = await response.read()
                return web.Response(status=response.status, body=body, content_type=response.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response({"error": f"room worker unavailable: {exc!r}"}, status=503)


def _settle(future: asyncio.Future[str], why: str) -> None:
    if not future.done():
        future.set_result(why)


def _on_wire(code: int | None, fallback: int) -> int:
    """``code`` if a close frame may carry it, else ``fallback`` (None, 1005, 1006, 1015 say that
    no close frame came: sending them is a protocol error)."""
    return fallback if code is None or code in NO_CODE else code


async def _close(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=code, message=reason.encode()[:120])


async def _relay_both(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, kicked: asyncio.Future[str]
) -> str:
    """Relay both ways until a side closes or ``kicked``; the worker's close reason, if it closed."""
    to_worker = asyncio.ensure_future(_pipe(client, upstream))
    to_client = asyncio.ensure_future(_pipe(upstream, client))
    try:
        await asyncio.wait([to_worker, to_client, kicked], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_worker, to_client):
            task.cancel()
        # Awaited, so that a side that failed (a send on a socket that just broke) is retrieved.
        _, from_worker = await asyncio.gather(to_worker, to_client, return_exceptions=True)
    return from_worker if isinstance(from_worker, str) else ""


async def _pipe(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> str:
    """Relay messages until ``source`` closes; the reason it gave (a close frame's text)."""
    while True:
        message = await source.receive()
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)  # the worker refuses it with its own close code
        else:
            return str(message.extra or "") if message.type == WSMsgType.CLOSE else ""


async def serve_worker(index: int) -> int:
    """A worker's main: read the config, serve rooms, report the HTTP port, exit with stdin."""
    from ..server import Server  # here: the server module imports this one

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = Config.model_validate_json(await reader.readline())
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[worker {index}]: %(message)s",
    )
    cpus = sorted(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    server = Server(config)
    await server.start()
    sys.stdout.write(json.dumps({"http_port": server.addresses["http"][1]}) + "\n")
    sys.stdout.flush()
    await reader.read()  # EOF: the front is gone
    await server.stop()
    return 0
