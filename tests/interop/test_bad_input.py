"""Bad input closes one session with a logged reason; the server and every other session go on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import aiohttp
import pytest

from streamhive.protocols.rtmp.client import RtmpClientConnection, StreamCreated
from tests.conftest import (
    FFMPEG,
    RunningServer,
    ffmpeg_publish_cmd,
    needs_ffmpeg,
    run,
    terminate,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


async def rtmp_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, RtmpClientConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = RtmpClientConnection()
    writer.write(conn.initial_bytes())
    return reader, writer, conn


async def pump_until(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: RtmpClientConnection, kind: type
) -> object:
    while True:
        writer.write(conn.data_to_send())
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            raise ConnectionError("closed by server")
        for event in conn.receive_data(data):
            if isinstance(event, kind):
                return event


async def read_until_closed(reader: asyncio.StreamReader) -> None:
    while await asyncio.wait_for(reader.read(65536), 10):
        pass


@pytest.fixture
def strict_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(rtmp_options="  max_message_size: 65536\n")


async def test_garbage_and_oversize_messages_close_only_that_session(strict_server: RunningServer) -> None:
    server = strict_server
    publisher = await asyncio.create_subprocess_exec(*ffmpeg_publish_cmd(f"{server.rtmp}/live/ok", 10))
    try:
        await asyncio.to_thread(server.wait_for_path, "live/ok")
        # 1. Not RTMP at all.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.rtmp_port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n" + bytes(3000))
        await read_until_closed(reader)
        writer.close()
        # 2. A valid session that then announces a 1 MiB message (limit here: 64 KiB).
        reader, writer, conn = await rtmp_client(server.rtmp_port)
        conn.connect("live")
        conn.create_stream()
        await pump_until(reader, writer, conn, StreamCreated)
        header = bytes((0x06,)) + (0).to_bytes(3, "big") + (1 << 20).to_bytes(3, "big") + b"\x09" + bytes(4)
        writer.write(header + bytes(4096))
        await read_until_closed(reader)
        writer.close()
        # 3. A path that is too long and one with '..'.
        for name in ("x" * 300, "a/../../etc"):
            reader, writer, conn = await rtmp_client(server.rtmp_port)
            conn.connect("live")
            conn.create_stream()
            await pump_until(reader, writer, conn, StreamCreated)
            conn.publish(name)
            writer.write(conn.data_to_send())
            await read_until_closed(reader)
            writer.close()
        async with aiohttp.ClientSession() as http:
            for url in ("/live/..%2F..%2Fetc.flv", "/live/%00.flv", "/" + "y" * 300 + ".flv"):
                async with http.get(server.http + url) as resp:
                    assert resp.status in (400, 404), url
        # Everything else carried on: the publisher is still live and a player still plays.
        assert publisher.returncode is None
        assert FFMPEG is not None
        rc, _, err = await run(
            [FFMPEG, "-v", "error", "-i", f"{server.rtmp}/live/ok", "-t", "1", "-f", "null", "-"]
        )
        assert rc == 0, err
    finally:
        await terminate(publisher)
    log = server.log()
    assert "reason=protocol error" in log
    assert "larger than" in log or "exceeds" in log or "too large" in log, log
    assert "path longer than 255" in log and "'..' segment" in log


@pytest.fixture
def limited_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server("max_connections: 4\n")


async def test_connections_beyond_max_connections_are_refused(limited_server: RunningServer) -> None:
    server = limited_server
    held = [socket.create_connection(("127.0.0.1", server.rtmp_port)) for _ in range(4)]
    try:
        await asyncio.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", server.rtmp_port))
        extra.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # closed (EOF) or reset: both are refusals
            assert extra.recv(10) == b"", "the connection over the limit is closed at once"
        extra.close()
    finally:
        for sock in held:
            sock.close()
    await asyncio.sleep(0.3)
    # With room again, a publisher gets in.
    rc, _, err = await run(ffmpeg_publish_cmd(f"{server.rtmp}/live/after", 1), 30)
    assert rc == 0, err
    assert "max_connections=4 reached" in server.log()
