"""Rooms in worker processes, one per core: how the SFU uses more than one CPU.

With ``rooms.workers: N`` (N > 1) the main process keeps every other protocol and becomes the
front for rooms: each room belongs to one worker (``crc32(room) % N``), and the front relays a
participant's signaling WebSocket to that worker, message for message, close code included.
Media never passes through the front: each worker is a streamhive server of its own (no RTMP or
RTSP, HTTP on loopback only) with its own ICE port, ``webrtc.listen``'s port + 1 + index (UDP
and TCP), which its answers announce. This is how mediasoup (a worker per core) and LiveKit
(rooms pinned to nodes) scale. A worker is pinned to one CPU and restarted if it dies; it exits
when the front does (it watches its stdin, a pipe the front holds).

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
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

from ..config import Config, parse_listen
from ..sfu.grants import valid_room_name

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.rooms")

#: Seconds a worker has to report its HTTP port.
START_TIMEOUT = 20.0
#: Seconds between restarts of a worker that keeps dying.
RESTART_DELAY = 1.0


def worker_config(config: Config, index: int) -> Config:
    """The configuration of worker ``index``: rooms and WebRTC only, HTTP on loopback."""
    data = config.model_dump()
    host, port = parse_listen(config.webrtc.listen)
    data["rtmp"]["enabled"] = False
    data["rtsp"]["enabled"] = False
    data["http"]["https"] = None
    data["http"]["listen"] = "127.0.0.1:0"
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
            except (OSError, ValueError, TimeoutError) as exc:
                log.error("room worker %d failed to start: %s", self.index, exc)
            await asyncio.sleep(RESTART_DELAY)

    async def _start(self) -> None:
        process = self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamhive.servers.room_workers",
            str(self.index),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self.config.model_dump_json().encode() + b"\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        self.port = int(json.loads(line)["http_port"])
        self.ready.set()
        log.info(
            "room worker %d (pid %d) ready, ICE on %s", self.index, process.pid, self.config.webrtc.listen
        )

    def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()


class RoomWorkers:
    """The front: starts the workers and relays signaling and the rooms API to them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.workers = [Worker(i, server.config) for i in range(server.config.rooms.workers)]
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._tasks = [asyncio.ensure_future(worker.run()) for worker in self.workers]
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), START_TIMEOUT)

    async def stop(self) -> None:
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
        room = request.match_info["room"]
        if not valid_room_name(room):
            raise web.HTTPNotFound(text="invalid room name")
        assert self._http is not None
        base = await self._base(room)
        url = f"ws://{base}/rooms/{room}/ws" + (f"?{request.query_string}" if request.query_string else "")
        max_size = self.server.config.rooms.max_message_bytes
        try:
            upstream = await self._http.ws_connect(url, max_msg_size=max_size, autoping=True)
        except aiohttp.ClientError as exc:
            raise web.HTTPServiceUnavailable(text=f"room worker unavailable: {exc}") from None
        client = web.WebSocketResponse(max_msg_size=max_size, heartbeat=20.0)
        await client.prepare(request)
        to_worker = asyncio.ensure_future(_pipe(client, upstream))
        to_client = asyncio.ensure_future(_pipe(upstream, client))
        reason = ""
        try:
            await asyncio.wait([to_worker, to_client], return_when=asyncio.FIRST_COMPLETED)
            if to_client.done() and not to_client.cancelled() and to_client.exception() is None:
                reason = to_client.result()
        finally:
            for task in (to_worker, to_client):
                task.cancel()
            code = upstream.close_code or 1000
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.close(code=code, message=reason.encode()[:120])
            with contextlib.suppress(ConnectionError, RuntimeError):
                await upstream.close(code=client.close_code or 1000)
        return client

    async def api_list(self, request: web.Request) -> web.Response:
        assert self._http is not None
        items: list[Any] = []
        for worker in self.workers:
            if not worker.ready.is_set():
                continue
            async with self._http.get(f"http://127.0.0.1:{worker.port}/api/v1/rooms") as response:
                items += (await response.json())["items"]
        items.sort(key=lambda room: room["name"])
        return web.json_response({"items": items, "count": len(items)})

    async def api_room(self, request: web.Request) -> web.Response:
        assert self._http is not None
        base = await self._base(request.match_info["room"])
        async with self._http.request(
            request.method, f"http://{base}{request.rel_url}", data=await request.read()
        ) as response:
            body = await response.read()
            return web.Response(status=response.status, body=body, content_type=response.content_type)


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


async def _serve_worker(index: int) -> int:
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


if __name__ == "__main__":
    from ..cli import _run

    sys.exit(_run(_serve_worker(int(sys.argv[1]))))
