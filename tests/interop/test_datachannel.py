"""Data channels: our DataChannels (SCTP over our DTLS) against aiortc, and its bounds.

Rooms are not ready, so the server side is built here as a room would build it: a Peer on a
WebRtcService listening on loopback, answered with ``answer_publish(..., datachannel=True)``, and
DataChannels started when the peer's DTLS connects. The client is aiortc's RTCPeerConnection,
in this process (messages both ways, both DTLS roles) or in a child process (throughput, so the
server's CPU is measured alone).

The bounds are checked without sockets: DataChannels on a stand-in Peer wired to aiortc's own
RTCSctpTransport, plus forged SCTP packets a browser would never send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannelParameters
from aiortc.rtcsctptransport import RTCSctpCapabilities, RTCSctpTransport
from google_crc32c import value as crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.config import Config, WebRtcConfig
from streamhive.hub import Session
from streamhive.protocols.webrtc.sdp import MAX_MESSAGE_SIZE, LocalIce, answer_publish, parse_offer
from streamhive.servers.datachannel import (
    MAX_BUFFERED,
    MAX_HELD_CHUNKS,
    MAX_IN_FLIGHT,
    MAX_STREAMS,
    RECEIVE_WINDOW,
    WINDOW_SLACK,
    DataChannels,
)
from streamhive.servers.webrtc import Peer, WebRtcService
from tests.interop.webrtc_clients import use_loopback

pytestmark = pytest.mark.interop


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


class _Handler:
    """The peer's handler, as a room's would be for data: start and stop the association."""

    def __init__(self, channels: DataChannels) -> None:
        self.channels = channels

    def connected(self) -> None:
        self.channels.start()

    def rtp(self, packet: bytes, now: float) -> None:
        pass

    def rtcp(self, packet: bytes, now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        pass

    def closed(self, reason: str) -> None:
        self.channels.close()


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streamhive.webrtc")


@pytest.fixture
async def service() -> AsyncIterator[WebRtcService]:
    config = Config(webrtc=WebRtcConfig(listen="127.0.0.1:0", tcp=False))
    svc = WebRtcService(SimpleNamespace(config=config))  # type: ignore[arg-type]
    await svc.start()
    yield svc
    svc.stop()


def accept(service: WebRtcService, offer_sdp: str) -> tuple[Peer, DataChannels, str]:
    """What a room does with an offer: a Peer, the answer, DataChannels started on connect."""
    offer = parse_offer(offer_sdp)
    peer = Peer(service, Session("webrtc", "127.0.0.1"), offer.ice.ufrag, offer.ice.fingerprint)
    local = LocalIce(peer.ufrag, peer.pwd, service.cert.fingerprint, tuple(service.candidates()))
    answer = answer_publish(offer, {"audio": ["opus"]}, local, datachannel=True)
    assert answer.datachannel is not None
    channels = DataChannels(peer, answer.datachannel.port, answer.datachannel.max_message_size)
    peer.handler = _Handler(channels)
    peer.start_dtls(answer.dtls_role)
    service.add(peer)
    return peer, channels, answer.sdp


@dataclass
class Link:
    """One in-process client connection: aiortc's side (``pc``, ``client``) and ours (``server``)."""

    pc: RTCPeerConnection
    client: RTCDataChannel
    server: DataChannels
    peer: Peer
    answer: str
    at_server: list[tuple[str, str | bytes]] = field(default_factory=list)
    at_client: list[str | bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def connect(
    service: WebRtcService, munge: Callable[[str], str] = lambda sdp: sdp, audio: bool = False
) -> AsyncIterator[Link]:
    """An aiortc client with a "chat" channel, connected to a Peer with DataChannels, both open."""
    use_loopback()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client = pc.createDataChannel("chat")
    if audio:
        pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    peer, server, answer = accept(service, munge(pc.localDescription.sdp))
    link = Link(pc, client, server, peer, answer)
    server.on_message = lambda label, message: link.at_server.append((label, message))
    client.on("message", link.at_client.append)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    try:
        await until(lambda: client.readyState == "open" and server.labels == ["chat"])
        yield link
    finally:
        await pc.close()
        peer.close("test over")


# --- against aiortc over loopback: ICE, our DTLS, SCTP ------------------------------------------


async def test_text_and_binary_both_ways(service: WebRtcService) -> None:
    async with connect(service) as link:
        link.client.send("hello")
        link.client.send(b"\x00\x01binary")
        link.client.send("")
        link.server.send("chat", "hi there")
        link.server.send("chat", b"\xff\x00")
        link.server.send("chat", b"")
        link.server.send("no such label", "dropped")
        await until(lambda: len(link.at_server) == 3 and len(link.at_client) == 3)
        assert link.at_server == [("chat", "hello"), ("chat", b"\x00\x01binary"), ("chat", "")]
        assert link.at_client == ["hi there", b"\xff\x00", b""]


async def test_a_60_kb_message_and_1000_in_order_both_ways(service: WebRtcService) -> None:
    big = bytes(range(256)) * 240  # 61440 bytes: 53 SCTP fragments
    async with connect(service) as link:
        link.client.send(big)
        link.server.send("chat", big)
        for i in range(1000):
            link.client.send(f"up {i}")
            link.server.send("chat", f"down {i}")
        await until(lambda: len(link.at_server) == 1001 and len(link.at_client) == 1001, 30)
        assert link.at_server[0] == ("chat", big) and link.at_client[0] == big
        assert [m for _, m in link.at_server[1:]] == [f"up {i}" for i in range(1000)]
        assert link.at_client[1:] == [f"down {i}" for i in range(1000)]


async def test_we_are_the_dtls_client_when_the_offer_says_passive(service: WebRtcService) -> None:
    """The SCTP roles follow DTLS (RFC 8832): stream ids of our side would be even, aiortc's odd."""
    async with connect(service, munge=lambda sdp: sdp.replace("a=setup:actpass", "a=setup:passive")) as link:
        assert "a=setup:active" in link.answer and link.peer.dtls.role == "client"
        assert link.client.id is not None and link.client.id % 2 == 1  # aiortc is the DTLS server
        link.client.send("ping")
        link.server.send("chat", "pong")
        await until(lambda: link.at_server == [("chat", "ping")] and link.at_client == ["pong"])


async def test_beside_audio_in_one_bundle(service: WebRtcService) -> None:
    async with connect(service, audio=True) as link:
        assert "m=audio 9 " in link.answer and "a=sctp-port:5000" in link.answer
        link.client.send(b"with audio")
        await until(lambda: link.at_server == [("chat", b"with audio")])


async def test_client_close_closes_ours(service: WebRtcService) -> None:
    async with connect(service) as link:
        await link.pc.close()
        await until(lambda: link.peer.closed and link.server.labels == [])


# --- throughput: the client in a child process, so this one runs only the server ----------------


def bench_client() -> None:
    """The child: ``python -c 'from tests.interop.test_datachannel import bench_client; bench_client()'
    DIRECTION COUNT SIZE``; prints its offer (a JSON line), reads the answer (one too), then sends
    COUNT messages of SIZE bytes ("up", then waits for the server's "done") or receives them and
    prints the seconds it took ("down")."""
    direction, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    async def run() -> None:
        use_loopback()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        channel = pc.createDataChannel("bench")
        received: list[float] = []
        channel.on("message", lambda _m: received.append(time.perf_counter()))
        await pc.setLocalDescription(await pc.createOffer())
        print(json.dumps(pc.localDescription.sdp), flush=True)
        answer = json.loads(await asyncio.to_thread(sys.stdin.readline))
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await until(lambda: channel.readyState == "open")
        if direction == "up":
            message = b"x" * size
            for _ in range(count):
                while channel.bufferedAmount > 1 << 20:
                    await asyncio.sleep(0.001)
                channel.send(message)
        await until(lambda: len(received) == (count if direction == "down" else 1), 120)
        print(json.dumps(received[-1] - received[0]), flush=True)  # "up": the server's "done"
        await pc.close()

    asyncio.run(run())


@dataclass
class Rate:
    messages: float  # per second
    megabytes: float  # per second
    server_cpu: float  # share of one core, while it ran
    cpu_per_message: float  # server CPU seconds per message

    def __str__(self) -> str:
        return (
            f"{self.messages:,.0f} msg/s, {self.megabytes:.2f} MB/s, server CPU {self.server_cpu:.0%}"
            f" ({self.cpu_per_message * 1e6:,.0f} us per message)"
        )


async def transfer(service: WebRtcService, direction: str, count: int, size: int) -> Rate:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tests.interop.test_datachannel import bench_client; bench_client()",
        direction,
        str(count),
        str(size),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        peer, channels, answer = accept(service, json.loads(await child.stdout.readline()))
        stamps: list[tuple[float, float]] = []  # (wall, CPU) at the first and the last message
        received = 0

        def arrived(_label: str, _message: str | bytes) -> None:
            nonlocal received
            received += 1
            if received in (1, count):  # a clock read costs a syscall: not on every message
                stamps.append((time.perf_counter(), time.process_time()))

        channels.on_message = arrived
        child.stdin.write(json.dumps(answer).encode() + b"\n")
        await until(lambda: channels.labels == ["bench"])
        if direction == "up":
            await until(lambda: received == count, 120)
            channels.send("bench", "done")
            await child.stdout.readline()
            (start, cpu_start), (end, cpu_end) = stamps
            seconds = end - start
        else:
            start, cpu_start = time.perf_counter(), time.process_time()
            message = b"x" * size
            for _ in range(count):
                while channels.buffered("bench") > MAX_BUFFERED // 2:
                    await asyncio.sleep(0.001)
                channels.send("bench", message)
            seconds = json.loads(await child.stdout.readline())  # first to last, as it received them
            end, cpu_end = time.perf_counter(), time.process_time()
        await child.wait()
        peer.close("done")
        cpu = cpu_end - cpu_start
        return Rate(count / seconds, count * size / seconds / 1e6, cpu / (end - start), cpu / count)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize(("count", "size"), [(3000, 100), (600, 16384)])
async def test_throughput(service: WebRtcService, direction: str, count: int, size: int) -> None:
    """Printed with ``-s``; the floor only catches a broken path (2 shared cores in CI)."""
    rate = await transfer(service, direction, count, size)
    print(f"\ndata channel {direction} {size}-byte messages: {rate}")
    assert rate.messages > 50


# --- bounds: DataChannels on a stand-in Peer, wired to aiortc's SCTP in memory -------------------


class _Wire:
    """The client side's RTCDtlsTransport, as much of it as RTCSctpTransport uses."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self.state = "connected"
        self._role = "client"
        self.deliver = deliver
        self.blocked = False  # drop what the server sends: a client that stopped reading

    def _register_data_receiver(self, receiver: object) -> None:
        pass

    def _unregister_data_receiver(self, receiver: object) -> None:
        pass

    async def _send_data(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.deliver, data)


class _StandInPeer:
    """What DataChannels uses of a Peer, with no ICE or DTLS under it."""

    def __init__(self) -> None:
        self.id = "stand-in"
        self.closed = False
        self.dtls = SimpleNamespace(role="server")
        self.on_app_data: Callable[[bytes], None] | None = None
        self.to_client: Callable[[bytes], None] = lambda data: None

    def send_app_data(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.to_client, data)


@dataclass
class Pair:
    server: DataChannels
    client: RTCSctpTransport
    wire: _Wire
    channel: RTCDataChannel
    got: list[tuple[str, str | bytes]]  # at the server
    client_got: list[str | bytes]

    def inject(self, *chunks: bytes) -> None:
        """Hand the server one SCTP packet from the client, made up here."""
        self.server._receive(sctp_packet(self.server._sctp._local_verification_tag, b"".join(chunks)))

    @property
    def alive(self) -> bool:
        return self.server._sctp.state == "connected"


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[Pair]:
    peer = _StandInPeer()
    server = DataChannels(peer)  # type: ignore[arg-type]
    got: list[tuple[str, str | bytes]] = []
    server.on_message = lambda label, message: got.append((label, message))

    def to_server(data: bytes) -> None:
        if peer.on_app_data is not None:
            peer.on_app_data(data)

    wire = _Wire(to_server)
    client = RTCSctpTransport(wire)  # type: ignore[arg-type]

    async def to_client(data: bytes) -> None:
        if not wire.blocked:
            await client._handle_data(data)

    peer.to_client = lambda data: asyncio.ensure_future(to_client(data))
    server.start()
    await client.start(RTCSctpCapabilities(maxMessageSize=0), 5000)
    channel = RTCDataChannel(client, RTCDataChannelParameters(label="chat"))
    client_got: list[str | bytes] = []
    channel.on("message", client_got.append)
    try:
        await until(lambda: server.labels == ["chat"] and channel.readyState == "open")
        yield Pair(server, client, wire, channel, got, client_got)
    finally:
        await client.stop()
        server.close()


def sctp_packet(tag: int, chunks: bytes) -> bytes:
    header = struct.pack("!HHL", 5000, 5000, tag)
    return header + struct.pack("<L", crc32c(header + b"\0\0\0\0" + chunks)) + chunks


def chunk(kind: int, body: bytes, flags: int = 0) -> bytes:
    return struct.pack("!BBH", kind, flags, 4 + len(body)) + body + b"\0" * (-len(body) % 4)


def data_chunk(tsn: int, stream: int, payload: bytes, flags: int = 3, ppid: int = 53) -> bytes:
    """A DATA chunk (flags 3: a whole message; 2: a first fragment; 0: a middle one)."""
    return chunk(0, struct.pack("!LHHL", tsn, stream, 0, ppid) + payload, flags)


async def test_oversized_messages_are_dropped_each_way(caplog: pytest.LogCaptureFixture) -> None:
    async with pair() as link:
        link.server.max_message_size = 1000  # what the client's a=max-message-size said
        link.server.send("chat", b"x" * 1001)
        link.channel.send(b"y" * (MAX_MESSAGE_SIZE + 1))  # under the window: reassembled, then dropped
        link.channel.send("after")
        await until(lambda: link.got == [("chat", "after")])
        assert link.server.dropped == 2 and link.alive
        assert "not sending a 1001-byte message" in caplog.text
        assert f"dropped a {MAX_MESSAGE_SIZE + 1}-byte data channel message" in caplog.text


async def test_a_message_past_the_window_aborts(caplog: pytest.LogCaptureFixture) -> None:
    """aiortc sends without regard to our receive window: a 2 MB message is cut off at it."""
    async with pair() as link:
        link.channel.send(b"z" * 2_000_000)
        await until(lambda: not link.alive)
        assert "overran our 524288-byte receive window" in caplog.text
        assert link.server.labels == [] and link.server._sctp.held_chunks <= MAX_HELD_CHUNKS
        assert RECEIVE_WINDOW - link.server._sctp._advertised_rwnd <= RECEIVE_WINDOW + WINDOW_SLACK + 1200


async def test_a_client_that_stops_reading_gets_its_channel_closed(caplog: pytest.LogCaptureFixture) -> None:
    async with pair() as link:
        link.wire.blocked = True
        for _ in range(200):  # 3.2 MB
            link.server.send("chat", b"q" * 16000)
            await asyncio.sleep(0)
        sctp = link.server._sctp
        queued = sum(len(data) for _channel, _ppid, data in sctp._data_channel_queue)
        in_flight = sum(len(c.user_data) for c in [*sctp._sent_queue, *sctp._outbound_queue])
        assert queued <= MAX_BUFFERED and in_flight <= 64 * 1024
        assert link.server.labels == [] and "the client reads too slowly" in caplog.text


async def test_the_congestion_window_is_held() -> None:
    """aiortc grows it on every fully used window, whatever the peer's receive window says."""
    async with pair() as link:
        link.server._sctp._cwnd = 4 * MAX_IN_FLIGHT  # as a long fast transfer would leave it
        for i in range(50):
            link.server.send("chat", b"w" * 16000 + bytes([i]))
        await until(lambda: len(link.client_got) == 50)
        assert link.server._sctp._cwnd <= MAX_IN_FLIGHT


async def test_the_client_aborting_closes_ours(caplog: pytest.LogCaptureFixture) -> None:
    async with pair() as link:
        await link.client.stop()
        await until(lambda: link.server.labels == [] and link.server._closed)
        assert "the client closed the association" in caplog.text


async def test_forged_sack_gap_blocks_cost_nothing() -> None:
    """290 gap blocks of 65535 TSNs each: aiortc alone walks 19 million of them."""
    async with pair() as link:
        sctp = link.server._sctp
        gaps = struct.pack("!HH", 1, 65535) * 290
        body = struct.pack("!LLHH", sctp._last_sacked_tsn, 1 << 20, 290, 0) + gaps
        started = time.process_time()
        link.inject(chunk(3, body))
        assert time.process_time() - started < 0.05 and link.alive


async def test_tiny_out_of_order_chunks_abort(caplog: pytest.LogCaptureFixture) -> None:
    async with pair() as link:
        first = link.server._sctp._last_received_tsn + 2  # one TSN missing: nothing completes
        for i in range(MAX_HELD_CHUNKS + 10):
            link.inject(data_chunk(first + i, link.channel.id or 0, b"!", flags=2))
        assert not link.alive and "DATA chunks" in caplog.text


async def test_streams_past_the_announced_count_abort(caplog: pytest.LogCaptureFixture) -> None:
    async with pair() as link:
        link.inject(data_chunk(link.server._sctp._last_received_tsn + 1, MAX_STREAMS, b"hi"))
        assert not link.alive and f"stream {MAX_STREAMS} used" in caplog.text


async def test_a_second_open_on_a_stream_aborts_and_callbacks_failing_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with pair() as link:
        link.server.on_message = lambda label, message: 1 / 0  # type: ignore[func-returns-value]
        link.channel.send("boom")
        await until(lambda: "callback failed" in caplog.text)
        assert link.alive
        stream = link.channel.id or 0
        dcep_open = struct.pack("!BBHLHH", 3, 0, 0, 0, 4, 0) + b"chat"
        link.inject(data_chunk(link.server._sctp._last_received_tsn + 1, stream, dcep_open, ppid=50))
        assert not link.alive and "bad SCTP packet" in caplog.text


CHUNK_KINDS = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 14, 130, 192, 255])


@st.composite
def forged_packets(draw: st.DrawFn) -> list[bytes]:
    """Chunk sequences with valid framing and checksum, anything inside: the parser's inputs."""
    packets = []
    for _ in range(draw(st.integers(1, 8))):
        chunks = [
            chunk(draw(CHUNK_KINDS), draw(st.binary(max_size=64)), draw(st.integers(0, 255)))
            for _ in range(draw(st.integers(1, 4)))
        ]
        packets.append(b"".join(chunks))
    return packets


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=forged_packets(), raw=st.binary(max_size=64))
def test_forged_packets_never_escape(packets: list[bytes], raw: bytes) -> None:
    """Whatever the client sends, DataChannels answers or aborts: no exception reaches the Peer."""

    async def run() -> None:
        async with pair() as link:
            link.server._receive(raw)
            for body in packets:
                link.inject(body)
            await asyncio.sleep(0)
            assert link.server._sctp.held_chunks <= MAX_HELD_CHUNKS

    asyncio.run(run())
