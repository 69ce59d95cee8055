# Results: 2-vCPU Firecracker VM (AMD EPYC), Linux 6.18, CPython 3.11.7, uvloop 0.23.0,
# SO_RCVBUF 8 MiB. Other jobs shared both cores during every run (load average 3 to 26), so the
# "received" column (wall clock) is noisy and losses happened at rates the receiver could take;
# CPU per packet (process_time of the receiver / packets) held steady across runs. Ranges below
# are over two full runs at 100k pps offered and more (at 50k pps the drain loops cost 3.7-13 us
# per packet: fewer packets per wakeup).
#
#   receiver                          us CPU/packet   packets/s per core
#   (a) DatagramProtocol, asyncio        25.5-38          26k-39k
#   (a) DatagramProtocol, uvloop          3.0-5.0        200k-330k
#   (b) add_reader+recvfrom_into, asyncio 3.0-4.7        210k-335k
#   (b) add_reader+recvfrom_into, uvloop  2.8-4.0        250k-365k
#   (c) add_reader+recvfrom, asyncio      2.4-3.9        260k-415k
#   (c) add_reader+recvfrom, uvloop       2.3-3.8        265k-435k
#
#   sender (d), packets/s per core: socket.sendto 156k-226k, connected socket.send 175k-250k,
#   asyncio transport.sendto 160k-175k, uvloop transport.sendto 151k-179k.
#
# - Stock asyncio's datagram transport reads one datagram per loop iteration, so every packet
#   pays a whole iteration (epoll_wait, ready queue, callback): ~8x the drain loops' cost. That
#   is the ~32k pps ceiling the issue saw.
# - uvloop's DatagramProtocol is nearly as cheap as a drain loop (libuv reads up to 32 datagrams
#   per wakeup); the add_reader drain is the portable way to the same cost on plain asyncio.
# - recvfrom was no dearer than recvfrom_into + one copy (if anything a little cheaper);
#   recvfrom_into only pays when the parser reads the buffer in place and copies just what it
#   keeps.
# - Sending is the dearer side: one syscall per packet, ~4-6 us, the transports adding 0-25%. A
#   WHEP/SFU fan-out of N viewers costs N sendto calls per packet, so the send side, not the
#   receive side, is where a per-core ceiling will show first (~200k pps ~= 1.9 Gbit/s at 1200 B).
#
# One run (load average 3.1 before, 6.6 after):
#
#   receiver                       loop       offered  received   lost  CPU%  us/pkt  pps/core
#   (a) DatagramProtocol           asyncio     49,975    13,224  73.5%    34   25.98    38,487
#   (a) DatagramProtocol           asyncio     93,223    15,200  83.7%    39   25.47    39,255
#   (a) DatagramProtocol           asyncio     55,768    12,316  77.9%    32   25.63    39,024
#   (a) DatagramProtocol           asyncio        max    15,628      -    40   25.62    39,024
#   (a) DatagramProtocol           uvloop      49,869    48,381   3.0%    21    4.30   232,518
#   (a) DatagramProtocol           uvloop      98,751    99,706   0.0%    31    3.10   322,181
#   (a) DatagramProtocol           uvloop     154,680   102,865  33.5%    31    2.99   333,944
#   (a) DatagramProtocol           uvloop         max    46,101      -    15    3.20   312,179
#   (b) add_reader+recvfrom_into   asyncio     49,999    49,626   0.7%    36    7.33   136,339
#   (b) add_reader+recvfrom_into   asyncio     99,145    96,210   3.0%    30    3.12   320,864
#   (b) add_reader+recvfrom_into   asyncio     46,851    23,877  49.0%     7    2.98   336,064
#   (b) add_reader+recvfrom_into   asyncio        max   149,985      -    51    3.40   294,466
#   (b) add_reader+recvfrom_into   uvloop      49,998    50,022   0.0%    32    6.42   155,860
#   (b) add_reader+recvfrom_into   uvloop      99,997    95,778   4.2%    33    3.48   287,123
#   (b) add_reader+recvfrom_into   uvloop      75,782    59,595  21.4%    16    2.75   364,107
#   (b) add_reader+recvfrom_into   uvloop         max    37,595      -    15    3.98   251,131
#   (c) add_reader+recvfrom        asyncio     49,988    49,780   0.4%    19    3.74   267,498
#   (c) add_reader+recvfrom        asyncio     99,621    89,361  10.3%    21    2.40   416,374
#   (c) add_reader+recvfrom        asyncio    102,990   110,050   0.0%    35    3.22   310,112
#   (c) add_reader+recvfrom        asyncio        max    72,742      -    28    3.86   258,891
#   (c) add_reader+recvfrom        uvloop      49,861    47,352   5.0%    17    3.67   272,497
#   (c) add_reader+recvfrom        uvloop      99,997    84,076  15.9%    23    2.69   371,468
#   (c) add_reader+recvfrom        uvloop     113,497   101,431  10.6%    23    2.31   433,837
#   (c) add_reader+recvfrom        uvloop         max    35,144      -    10    2.81   356,468
#   (the 200k rows: the paced sender could not reach 200k on its shared core; "offered" is what
#   it sent)
#
#   sender (d)                      pps (wall)  pps/core
#   socket.sendto(data, addr)          111,906   226,424
#   socket.send(data), connected       113,961   250,439
#   asyncio transport.sendto            54,686   174,494
#   uvloop transport.sendto             67,908   178,567

"""How fast can one asyncio process receive (and send) 1200-byte datagrams on one UDP socket?

The WebRTC server takes every peer's media on one UDP socket, so this socket's receive path is
the server's ceiling. Compared here, each under asyncio and uvloop:

(a) ``loop.create_datagram_endpoint`` + ``DatagramProtocol.datagram_received``;
(b) ``loop.add_reader(sock, drain)``, ``drain`` calling ``sock.recvfrom_into(buf)`` until
    BlockingIOError (at most 512 per wakeup, so a flooded socket cannot starve the loop's
    timers) and copying each packet out with ``bytes(view[:n])``;
(c) the same drain loop with ``sock.recvfrom(2048)``.

The sender is a separate process (no shared GIL) pinned to another core, sending as fast as it
can ("max") or paced at a fixed rate; the received rate and the receiver process's CPU time
(``time.process_time``: user + system) are measured over a window after a warm-up. The send side
(d) is measured on its own: packets per second of CPU for plain ``socket.sendto``, connected
``socket.send`` and ``transport.sendto`` (asyncio and uvloop), into a socket nobody reads.

    .venv/bin/python bench/udp_recv.py [--window 1.5] [--rates 50000,100000,200000,0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

try:
    import uvloop
except ImportError:  # the rows for uvloop are skipped
    uvloop = None

PACKET = bytes(1200)
HOST = "127.0.0.1"
BATCH = 512  # datagrams per readiness event at most in the drain loops
RCVBUF = 4 << 20  # asked for; the kernel caps it at net.core.rmem_max
RECEIVER_CORE, SENDER_CORE = 0, 1
WARMUP = 0.3

Stop = Callable[[], None]
Receiver = Callable[[asyncio.AbstractEventLoop, socket.socket, "Counter"], Coroutine[Any, Any, Stop]]


def pin(core: int) -> None:
    """Pin this process to one core so sender and receiver never share one."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


class Counter:
    __slots__ = ("n", "last")

    def __init__(self) -> None:
        self.n = 0
        self.last = b""  # every variant keeps the packet, as a real handler would


# --- receivers ---------------------------------------------------------------------------------


class CountingProtocol(asyncio.DatagramProtocol):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        counter = self.counter
        counter.n += 1
        counter.last = data


async def recv_protocol(loop: asyncio.AbstractEventLoop, sock: socket.socket, counter: Counter) -> Stop:
    transport, _ = await loop.create_datagram_endpoint(lambda: CountingProtocol(counter), sock=sock)
    return transport.close


async def recv_into(loop: asyncio.AbstractEventLoop, sock: socket.socket, counter: Counter) -> Stop:
    buf = bytearray(2048)
    view = memoryview(buf)
    receive = sock.recvfrom_into

    def drain() -> None:
        for _ in range(BATCH):
            try:
                n, _addr = receive(buf)
            except BlockingIOError:
                return
            counter.n += 1
            counter.last = bytes(view[:n])

    loop.add_reader(sock, drain)
    return lambda: loop.remove_reader(sock)


async def recv_from(loop: asyncio.AbstractEventLoop, sock: socket.socket, counter: Counter) -> Stop:
    receive = sock.recvfrom

    def drain() -> None:
        for _ in range(BATCH):
            try:
                data, _addr = receive(2048)
            except BlockingIOError:
                return
            counter.n += 1
            counter.last = data

    loop.add_reader(sock, drain)
    return lambda: loop.remove_reader(sock)


RECEIVERS: dict[str, Receiver] = {
    "(a) DatagramProtocol": recv_protocol,
    "(b) add_reader+recvfrom_into": recv_into,
    "(c) add_reader+recvfrom": recv_from,
}


# --- the sender process ------------------------------------------------------------------------


def flood(port: int, rate: int, seconds: float, result: Connection) -> None:
    """Send to ``port`` for ``seconds``: as fast as possible (rate 0) or paced at ``rate``/s."""
    pin(SENDER_CORE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    send = sock.send
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    try:
        while (now := time.perf_counter()) < end:
            burst = 64 if rate == 0 else min(int((now - start) * rate) - sent, 64)
            for _ in range(burst):
                send(PACKET)
            sent += max(burst, 0)
    except ConnectionRefusedError:  # the receiver closed first
        pass
    result.send(sent / (time.perf_counter() - start))
    sock.close()


def receiver_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


async def measure_receive(receiver: Receiver, rate: int, window: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    sock = receiver_socket()
    counter = Counter()
    stop = await receiver(loop, sock, counter)
    results, child_end = multiprocessing.Pipe(duplex=False)
    sender = multiprocessing.get_context("fork").Process(
        target=flood, args=(sock.getsockname()[1], rate, WARMUP + window + 0.5, child_end)
    )
    sender.start()
    for _ in range(1000):
        if counter.n:
            break
        await asyncio.sleep(0.005)
    else:
        raise RuntimeError("no datagram arrived in 5 s")
    await asyncio.sleep(WARMUP)
    n0, cpu0, t0 = counter.n, time.process_time(), time.perf_counter()
    await asyncio.sleep(window)
    n1, cpu1, t1 = counter.n, time.process_time(), time.perf_counter()
    offered = await loop.run_in_executor(None, results.recv)
    stop()
    sock.close()
    sender.join()
    wall = t1 - t0
    return {
        "offered": offered,
        "received": (n1 - n0) / wall,
        "cpu": 100 * (cpu1 - cpu0) / wall,
        "us_per_packet": 1e6 * (cpu1 - cpu0) / max(n1 - n0, 1),
    }


# --- the send side -----------------------------------------------------------------------------


def send_plain(addr: tuple[str, int], seconds: float, connected: bool) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    end = time.perf_counter() + seconds
    if connected:
        sock.connect(addr)
        send = sock.send
        while time.perf_counter() < end:
            for _ in range(64):
                send(PACKET)
            sent += 64
    else:
        sendto = sock.sendto
        while time.perf_counter() < end:
            for _ in range(64):
                sendto(PACKET, addr)
            sent += 64
    sock.close()
    return sent


async def send_transport(addr: tuple[str, int], seconds: float) -> int:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(HOST, 0))
    sendto = transport.sendto
    sent = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(64):
            sendto(PACKET, addr)
        sent += 64
        if transport.get_write_buffer_size():  # let the loop flush what the kernel refused
            await asyncio.sleep(0)
    transport.close()
    return sent


def send_side(addr: tuple[str, int], seconds: float, result: Connection) -> None:
    pin(SENDER_CORE)
    rows: list[tuple[str, float, float]] = []

    def timed(name: str, run: Callable[[], int]) -> None:
        cpu0, t0 = time.process_time(), time.perf_counter()
        sent = run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        rows.append((name, sent / wall, sent / cpu))

    timed("socket.sendto(data, addr)", lambda: send_plain(addr, seconds, connected=False))
    timed("socket.send(data), connected", lambda: send_plain(addr, seconds, connected=True))
    timed("asyncio transport.sendto", lambda: asyncio.run(send_transport(addr, seconds)))
    if uvloop is not None:
        timed(
            "uvloop transport.sendto",
            lambda: asyncio.Runner(loop_factory=uvloop.new_event_loop).run(send_transport(addr, seconds)),
        )
    result.send(rows)


def measure_send(seconds: float) -> list[tuple[str, float, float]]:
    sink = receiver_socket()  # never read: the kernel drops what overflows, the sender never waits
    results, child_end = multiprocessing.Pipe(duplex=False)
    sender = multiprocessing.get_context("fork").Process(
        target=send_side, args=(sink.getsockname(), seconds, child_end)
    )
    sender.start()
    rows = results.recv()
    sender.join()
    sink.close()
    return rows


# --- main --------------------------------------------------------------------------------------


def loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=1.5, help="seconds measured per run")
    parser.add_argument(
        "--rates", default="50000,100000,200000,0", help="offered packets/s, comma-separated; 0: max"
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    pin(RECEIVER_CORE)
    probe = receiver_socket()
    rcvbuf = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    probe.close()
    print(f"1200-byte datagrams on {HOST}; {os.cpu_count()} cores; SO_RCVBUF {rcvbuf} bytes")
    # Other processes on these cores lower "received"; "us/pkt" (CPU per packet) holds up better.
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"\n{'receiver':30} {'loop':8} {'offered':>9} {'received':>9} {'lost':>6} {'CPU%':>5} "
        f"{'us/pkt':>7} {'pps/core':>9}"
    )
    for name, receiver in RECEIVERS.items():
        for loop_name, factory in loops().items():
            for rate in rates:
                with asyncio.Runner(loop_factory=factory) as runner:
                    r = runner.run(measure_receive(receiver, rate, args.window))
                lost = f"{max(0.0, 1 - r['received'] / r['offered']):6.1%}" if rate else f"{'-':>6}"
                offered = f"{r['offered']:9,.0f}" if rate else f"{'max':>9}"
                print(
                    f"{name:30} {loop_name:8} {offered} {r['received']:9,.0f} {lost} {r['cpu']:5.0f} "
                    f"{r['us_per_packet']:7.2f} {1e6 / r['us_per_packet']:9,.0f}",
                    flush=True,
                )
    print(f"\n{'sender (d)':30} {'pps (wall)':>11} {'pps/core':>9}")
    for name, wall_rate, core_rate in measure_send(args.window):
        print(f"{name:30} {wall_rate:11,.0f} {core_rate:9,.0f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
