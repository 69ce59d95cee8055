"""The SFU benchmark: subscribers and forwarded streams per core of streamhive's rooms, side by side
with Janus's videoroom.

Both servers forward the same media, without transcoding, from P publishers to S subscribers
(every subscriber receives every publisher's audio and video: S x P forwarded streams, each like
one WHEP viewer):

- the load: bench/roomclient.py on CPU 1 (publishers send bench/run_webrtc.py's pre-encoded 720p30
  H.264 1 Mbit/s + Opus 32 kbit/s clip, packetized once and paced live; subscribers do ICE, DTLS
  and SRTP without decoding), subscribers joining at ``--ramp`` per second;
- **streamhive** (``streamhive serve`` on CPU 0: rooms on, ``rooms.bridge`` off so the server
  only forwards, as Janus does; ICE-lite on one UDP port), signalling over ``/rooms/NAME/ws``
  (a fresh room per step);
- **Janus** (``janus`` 1.1.2 from Debian, on CPU 0), configured from a temporary folder with only
  the videoroom plugin and the HTTP transport (bench/run_webrtc.py's configuration with the
  streaming plugin swapped for the videoroom), ``event_loops = 1`` (one loop thread for its one
  core, ``--janus-event-loops``), full ICE, room 1234 (H.264 + Opus, no bitrate cap, no periodic
  FIR); the same participants over its HTTP API.

For each server: P publishers alone (the baseline), then steps of S subscribers (``--steps``,
default 50,100,200) for each P (``--publishers``, default 2) until a step where fewer than
``--keep-up`` (default all) subscribers kept up (no freeze over 500 ms, loss < 1%, >= 90% of what
the publishers sent). A failed step on a busy machine (the client's loop stalled over 250 ms,
others took 10% of CPU 0, or CPU 1 was 95% busy) runs again (``--retries``, default 1). Server
CPU is utime + stime of the server process (all threads) from /proc/PID/stat over the steady
window (``--seconds`` minus 3 s of settling). Per step: kept up, server CPU %, subscribers and
forwarded streams per core, packets/s, received kbit/s, loss, freezes, first packet and time to a
keyframe of every video.

``--workers-run S``: ONE ``streamhive serve`` with ``rooms.workers: 2``, unpinned (each worker
pins itself, worker i to CPU i), two rooms whose names map to different workers
(``crc32(name) % 2``), P publishers and S/2 subscribers in each, one load client per room
(unpinned); the server's CPU is the sum over the main process (the front: it only relays
signaling) and its worker children over the first client's window, each process's share shown
too. On this 2-core machine the clients share the workers' CPUs.

``--profile S``: one more streamhive step of S subscribers with py-spy on the server for the
steady window (bench/roomclient.py ``--profile``): how forwarding's time splits into SRTP
protect, ``Rewriter.rewrite``, sending (``UdpRoute.send``: ``sendto``) and the rest.

    python bench/run_room.py                                  # about 3 minutes
    python bench/run_room.py --servers "" --workers-run 100    # only the 2-worker run
    python bench/run_room.py --steps 50,100 --publishers 2,4 --workers-run 100 --profile 100

Results go to bench/results/room-<date>.json and a Markdown table with the streamhive/Janus ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import run_webrtc  # noqa: E402
from bench.compare import _terminate, _track  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402
from bench.roomclient import JANUS_ROOM, SETTLE_S  # noqa: E402
from bench.run_hls import StallProbe, stalls_line  # noqa: E402
from bench.run_rtsp import Window, cpu_busy  # noqa: E402
from bench.run_spine import (  # noqa: E402
    NO_RTSP,
    fmt,
    free_port,
    log_warnings,
    pinned,
    print_report,
    report_header,
    rss_mib,
    run_marked,
    start_server,
    stop,
    write_report,
)
from bench.run_webrtc import (  # noqa: E402
    STREAM_DESC,
    free_udp_port,
    janus_config,
    janus_lib,
    janus_version,
    noisy,
    start_janus,
)

ROOT = Path(__file__).resolve().parents[1]
#: Room workers of ``--workers-run``: one per core of this 2-core machine.
WORKERS = 2
#: A worker's columns in the ``--workers-run`` table, after its CPU and RSS (none for the front).
ROOM_COLUMNS = (
    "room_subscribers", "kept_up", "subscribers_per_core", "streams_per_core", "packets_per_s",
    "loss_pct", "freezes", "client_cpu_pct",
)  # fmt: skip


# -- the servers ----------------------------------------------------------------------------------
def streamhive_config(work: Path, name: str, workers: int = 1) -> tuple[Path, int]:
    """Rooms on free loopback ports (ICE on UDP only), the bridge to hub paths off, in ``workers``
    worker processes; returns the config and the HTTP port."""
    http_port, ice_port = free_port(), free_udp_run(1 + workers if workers > 1 else 1)
    config = work / f"{name}.yaml"
    config.write_text(
        f'rtmp:\n  listen: "127.0.0.1:{free_port()}"\n'
        f'http:\n  listen: "127.0.0.1:{http_port}"\n'
        f"{NO_RTSP}"
        f'webrtc:\n  listen: "127.0.0.1:{ice_port}"\n  tcp: false\n'
        "rooms:\n  max_participants: 1000\n  max_publishers: 64\n  bridge: false\n"
        + (f"  workers: {workers}\n" if workers > 1 else "")
    )
    return config, http_port


def free_udp_run(count: int) -> int:
    """A free loopback UDP port whose next ``count - 1`` ports are free too: room worker ``i``
    listens on ``webrtc.listen``'s port + 1 + ``i``, and a taken one would fail its start."""
    for _ in range(100):
        port = free_udp_port()
        if port + count <= 65536 and all(_udp_free(port + k) for k in range(1, count)):
            return port
    raise RuntimeError(f"no run of {count} free UDP ports")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def worker_room(index: int, workers: int) -> str:
    """The first room name ``w<index>-<k>`` that streamhive gives to worker ``index`` (the front's
    ``RoomWorkers.worker_for``: ``crc32(name) % workers``)."""
    names = (f"w{index}-{k}" for k in itertools.count())
    return next(name for name in names if zlib.crc32(name.encode()) % workers == index)


def janus_room_config(work: Path, lib: Path, http_port: int, event_loops: int) -> Path:
    """bench/run_webrtc.py's Janus configuration with the videoroom plugin instead of the
    streaming one, and one room: H.264 + Opus, no bitrate cap (REMB), no periodic FIR."""
    cfg = janus_config(work, lib, http_port, free_udp_port(), free_udp_port(), False, event_loops)
    (work / "plugins" / "libjanus_streaming.so").unlink()
    (work / "plugins" / "libjanus_videoroom.so").symlink_to(lib / "plugins" / "libjanus_videoroom.so")
    (cfg / "janus.plugin.videoroom.jcfg").write_text(
        "general: {\n}\n"
        f"room-{JANUS_ROOM}: {{\n"
        '\tdescription = "bench"\n'
        "\tpublishers = 64\n"
        "\tbitrate = 0\n"
        "\tfir_freq = 0\n"
        '\taudiocodec = "opus"\n'
        '\tvideocodec = "h264"\n'
        "\tnotify_joining = false\n"
        "}\n"
    )
    return cfg


# -- steps ----------------------------------------------------------------------------------------
def client_cmd(
    url: str, publishers: int, subscribers: int, seconds: float, args: argparse.Namespace
) -> list[str]:
    return [
        sys.executable, "-m", "bench.roomclient", url, "--publishers", str(publishers),
        "--subscribers", str(subscribers), "--seconds", str(seconds), "--ramp", str(args.ramp),
        "--settle", str(min(SETTLE_S, seconds / 2)), "--marks",
    ]  # fmt: skip


def run_step(
    url: str,
    publishers: int,
    subscribers: int,
    seconds: float,
    args: argparse.Namespace,
    pids: list[int],
    out: Path,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """One roomclient run on CPU 1; the servers' CPU between its 'steady' and 'end' marks."""
    cmd = [*run_webrtc.NICE, *pinned(1), *client_cmd(url, publishers, subscribers, seconds, args),
           "--json", str(out), *(extra or [])]  # fmt: skip
    timeout = subscribers / max(args.ramp, 1) + seconds + 90
    cpu, rss = run_marked(cmd, pids[0], timeout, lambda: Window(pids).read)
    time.sleep(1.0)  # the hang-ups are done; let the server release the sessions
    return step_row(json.loads(out.read_text())["summary"], cpu, rss)


def step_row(summary: dict[str, Any], cpu: dict[str, Any] | None, rss: float | None) -> dict[str, Any]:
    """A step's client summary with the server's CPU window: per core figures and noise."""
    cpu_pct = cpu["cpu_pct"] if cpu else None
    subscribers, streams = summary["subscribers"], summary["forwarded_streams"]
    return {
        "publishers": summary["publishers"],
        "subscribers": subscribers,
        "summary": summary,
        "server_cpu_pct": cpu_pct,
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"] if cpu else None,
        "cpu1_busy_pct": cpu["cpu1_busy_pct"] if cpu else None,
        "server_rss_mib": round(rss, 1) if rss is not None else None,
        "subscribers_per_core": per_core(subscribers, cpu_pct),
        "streams_per_core": per_core(streams, cpu_pct),
    }


def per_core(count: int, cpu_pct: float | None) -> int | None:
    """``count`` (subscribers or forwarded streams) scaled to one full core of server CPU."""
    return round(count / (cpu_pct / 100)) if cpu_pct and count else None


def print_step(name: str, row: dict[str, Any]) -> None:
    s = row["summary"]
    kb, fp, fk = s["subscriber_kbps"], s["first_packet_ms"], s["all_keyframes_ms"]
    print(
        f"[room] {name} P={row['publishers']} S={row['subscribers']}: kept up {s['kept_up']}/{row['subscribers']}, "
        f"server CPU {fmt(row['server_cpu_pct'])}% ({fmt(row['subscribers_per_core'])} subscribers, "
        f"{fmt(row['streams_per_core'])} streams per core), {s['steady_packets_per_s']} packets/s, kbit/s p5/p50 "
        f"{kb['p5']}/{kb['p50']} of {s['expected_kbps']}, loss {s['loss_pct']}% (client drops {s['socket_drops']}), "
        f"freezes {s['freezes']}, first packet p50/p95 {fp['p50']}/{fp['p95']} ms, keyframes {fk['p50']}/{fk['p95']} "
        f"ms, client CPU {s['client_cpu_pct']}% (loop late by up to {s['loop_lag'].get('max_ms')} ms), CPU 1 busy "
        f"{fmt(row['cpu1_busy_pct'], 0)}%, others on CPU 0 {fmt(row['others_on_cpu0_pct'])}%, "
        f"errors {s['errors'] or 'none'}",
        flush=True,
    )


def series(
    name: str, url: str, pids: list[int], args: argparse.Namespace, work: Path, t_start: float
) -> dict[str, Any]:
    """The publishers alone, then the steps for each publisher count, for one server. ``url``
    may hold ``{room}``: each step then gets a room of its own."""
    res: dict[str, Any] = {"server": name, "url": url, "baseline": [], "steps": [], "max_kept_up": {}}
    for p in args.publishers:
        if args.baseline_seconds > 0:
            row = run_step(url.format(room=f"p{p}-base"), p, 0, args.baseline_seconds, args, pids,
                           work / f"{name}-p{p}-base.json")  # fmt: skip
            res["baseline"].append({"publishers": p, "server_cpu_pct": row["server_cpu_pct"]})
            print(
                f"[room] {name}: {p} publishers, no subscriber: server CPU {fmt(row['server_cpu_pct'])}%",
                flush=True,
            )
        for n in args.steps:
            if time.monotonic() - t_start > args.budget:
                res.setdefault("limited_by", {})[p] = "time budget"
                break
            for attempt in range(args.retries + 1):
                step = f"p{p}-{n}-{attempt}"
                row = run_step(
                    url.format(room=step), p, n, args.seconds, args, pids, work / f"{name}-{step}.json"
                )
                row["noise"] = noise = noisy(row)
                print_step(name, row)
                if row["summary"]["kept_up_ratio"] >= args.keep_up or noise is None:
                    break
            res["steps"].append(row)
            if row["summary"]["kept_up_ratio"] < args.keep_up:
                client = row["summary"]["client_cpu_pct"] >= 90
                why = f"busy machine ({noise})" if noise else "client" if client else "server"
                res.setdefault("limited_by", {})[p] = why
                break
            res["max_kept_up"][p] = n
    return res


def bench_streamhive(args: argparse.Namespace, work: Path, t_start: float) -> dict[str, Any]:
    from streamhive import __version__

    config, http_port = streamhive_config(work, "streamhive")
    server = _track(start_server(config, work / "streamhive.log", http_port))
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, server.pid, args.nice)
    try:
        url = f"ws://127.0.0.1:{http_port}/rooms/{{room}}/ws"
        res = {"version": f"{__version__} (Python {sys.version.split()[0]})", "ice": "ICE-lite, one UDP port"}
        res.update(series("streamhive", url, [server.pid], args, work, t_start))
        if args.profile:
            p = args.publishers[0]
            raw = work / "streamhive-profile.txt"
            row = run_step(url.format(room="profile"), p, args.profile, args.seconds, args, [server.pid],
                           work / "streamhive-profile.json", ["--server-pid", str(server.pid), "--profile", str(raw)])  # fmt: skip
            print_step("streamhive (py-spy)", row)
            res["profile"] = {
                "row": row,
                **(row["summary"].get("profile") or {"error": row["summary"].get("profile_error")}),
            }
        return res
    finally:
        stop(server)


def bench_janus(args: argparse.Namespace, work: Path, t_start: float) -> dict[str, Any]:
    lib = janus_lib()
    if (
        shutil.which("janus") is None
        or lib is None
        or not (lib / "plugins" / "libjanus_videoroom.so").exists()
    ):
        return {
            "server": "janus",
            "skipped": "janus with the videoroom plugin is not installed (apt-get install janus)",
        }
    http_port = free_port()
    cfg = janus_room_config(work / "janus", lib, http_port, args.janus_event_loops)
    server = start_janus(cfg, work / "janus.log", http_port)
    try:
        res = {
            "version": janus_version(),
            "ice": f"full ICE, event_loops = {args.janus_event_loops}",
        }
        res.update(series("janus", f"http://127.0.0.1:{http_port}/janus", [server.pid], args, work, t_start))
        return res
    finally:
        stop(server)


def bench_workers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One streamhive with ``rooms.workers: 2``, a room on each worker with P publishers and
    half the subscribers, one unpinned client per room; the CPU of the main process and of each
    worker over the first client's window, and their sum per core as in the single-server steps."""
    p, n = args.publishers[0], args.workers_run
    config, http_port = streamhive_config(work, "workers", WORKERS)
    # Not pinned (niced like everything started): a room worker pins itself to CPU ``index % n``
    # of the ``n`` it inherits, so under a pinned main process every worker would share CPU 0.
    server = _track(start_server(config, work / "workers.log", http_port, prefix=run_webrtc.NICE))
    clients: list[subprocess.Popen[bytes]] = []
    try:
        workers = room_workers(server.pid)  # started before HTTP listens, so all there by now
        if len(workers) != WORKERS:
            raise RuntimeError(f"{len(workers)} room workers running, not {WORKERS}")
        rooms = [worker_room(i, WORKERS) for i in range(WORKERS)]
        cmds = [
            [*run_webrtc.NICE, *client_cmd(f"ws://127.0.0.1:{http_port}/rooms/{room}/ws", p,
             n // WORKERS + (i < n % WORKERS), args.seconds, args), "--json", str(work / f"workers-{i}.json")]
            for i, room in enumerate(rooms)
        ]  # fmt: skip
        clients = [_track(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)) for cmd in cmds[1:]]
        pids = [server.pid, *workers]
        window, _ = run_marked(
            cmds[0], server.pid, n / max(args.ramp, 1) + args.seconds + 90, lambda: _windows(pids)
        )
        for client in clients:
            client.wait(timeout=60)
        halves = [json.loads((work / f"workers-{i}.json").read_text())["summary"] for i in range(WORKERS)]
        return workers_result(p, halves, pids, window)
    finally:
        for client in clients:
            stop(client)
        stop(server)


def room_workers(pid: int) -> list[int]:
    """The room worker processes of the main process ``pid``, in index order: its children, each
    started as ``python -m <worker module> INDEX`` (the index is the last argument)."""
    by_index = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        by_index[int(argv[-1])] = int(child)
    return [by_index[i] for i in sorted(by_index)]


def cpus_allowed(pid: int) -> str:
    """The CPUs ``pid`` may run on (``Cpus_allowed_list``): a worker shows the one it pinned."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(
        line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list")
    )


def _windows(pids: list[int]) -> Callable[[], dict[str, Any]]:
    """A CPU window of all ``pids`` together with each one's CPU% and RSS, and how busy the
    whole machine was (to tell what other processes took)."""
    t, busy = time.monotonic(), _machine_busy()
    joint, each = Window(pids), [Window([pid]) for pid in pids]

    def read() -> dict[str, Any]:
        machine = 100 * (_machine_busy() - busy) / (time.monotonic() - t)
        return {
            "cpu_pct": joint.read()["cpu_pct"],
            "each": [w.read()["cpu_pct"] for w in each],
            "rss_mib": [round(rss_mib(pid), 1) for pid in pids],
            "cpus": [cpus_allowed(pid) for pid in pids],
            "machine_busy_pct": round(machine, 1),
        }

    return read


def _machine_busy() -> float:
    return sum(cpu_busy(cpu) for cpu in range(os.cpu_count() or 1))


def workers_result(
    publishers: int, halves: list[dict[str, Any]], pids: list[int], window: dict[str, Any] | None
) -> dict[str, Any]:
    """The 2-worker run's totals (subscribers and streams per core of the summed CPU, as
    ``step_row``) and one row per process: the front (room none) and each worker with its room."""
    subscribers = sum(h["subscribers"] for h in halves)
    streams = sum(h["forwarded_streams"] for h in halves)
    cpu = window["cpu_pct"] if window else None
    clients = sum(h["client_cpu_pct"] for h in halves)
    processes = [
        {
            "role": "front" if i == 0 else f"worker {i - 1}",
            "pid": pid,
            "cpus": window["cpus"][i] if window else None,
            "cpu_pct": window["each"][i] if window else None,
            "rss_mib": window["rss_mib"][i] if window else None,
            **(_room_row(halves[i - 1], window["each"][i] if window else None) if i else {}),
        }
        for i, pid in enumerate(pids)
    ]
    return {
        "workers": len(halves),
        "publishers_per_room": publishers,
        "subscribers": subscribers,
        "forwarded_streams": streams,
        "kept_up": sum(h["kept_up"] for h in halves),
        "server_cpu_pct": cpu,
        "subscribers_per_core": per_core(subscribers, cpu),
        "streams_per_core": per_core(streams, cpu),
        "clients_cpu_pct": round(clients, 1),
        "machine_busy_pct": window["machine_busy_pct"] if window else None,
        "others_pct": round(max(0.0, window["machine_busy_pct"] - cpu - clients), 1)
        if window and cpu
        else None,
        "processes": processes,
    }


def _room_row(s: dict[str, Any], cpu_pct: float | None) -> dict[str, Any]:
    """One worker's room (``s``: its client's summary) with per core figures of that worker's CPU."""
    return {
        "room_subscribers": s["subscribers"],
        "kept_up": s["kept_up"],
        "subscribers_per_core": per_core(s["subscribers"], cpu_pct),
        "streams_per_core": per_core(s["forwarded_streams"], cpu_pct),
        "packets_per_s": s["steady_packets_per_s"],
        "loss_pct": s["loss_pct"],
        "freezes": s["freezes"],
        "client_cpu_pct": s["client_cpu_pct"],
        "loop_lag_max_ms": s["loop_lag"].get("max_ms"),
        "errors": s["errors"],
    }


def print_workers(w: dict[str, Any]) -> None:
    print(
        f"[room] streamhive, {w['workers']} workers, P={w['publishers_per_room']} per room, S={w['subscribers']}: "
        f"kept up {w['kept_up']}/{w['subscribers']}, server CPU {fmt(w['server_cpu_pct'])}% "
        f"({fmt(w['subscribers_per_core'])} subscribers, {fmt(w['streams_per_core'])} streams per core), clients "
        f"{w['clients_cpu_pct']}%, machine busy {fmt(w['machine_busy_pct'])}%, others {fmt(w['others_pct'])}%",
        flush=True,
    )
    for proc in w["processes"]:
        room = ", ".join(f"{k} {fmt(proc.get(k))}" for k in ROOM_COLUMNS if k in proc)
        print(
            f"[room]   {proc['role']} (pid {proc['pid']}, CPUs {proc['cpus']}): CPU {fmt(proc['cpu_pct'])}%, "
            f"RSS {fmt(proc['rss_mib'])} MiB{', ' + room if room else ''}",
            flush=True,
        )


# -- report ---------------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Rooms (SFU), {report['date']}, {report['machine']}",
        f"stream per publisher: {report['stream']}",
        f"load: {report['client']}",
        stalls_line(report),
        "",
        "| server | P | S | kept up | server CPU % | subscribers/core | streams/core | packets/s out | "
        "kbit/s p5 / p50 (expected) | loss % (client drops) | freezes | first packet p50 / p95 ms | "
        "keyframes p50 / p95 ms | RSS MiB | client CPU % | CPU 1 busy % | others on CPU 0 % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    servers = [r for r in report["servers"] if "steps" in r]
    for res in servers:
        for base in res["baseline"]:
            lines.append(
                f"| {res['server']} | {base['publishers']} | 0 | – | {fmt(base['server_cpu_pct'], 2)} | – | – | – | – "
                "| – | – | – | – | – | – | – | – | publishers only |"
            )
        for row in res["steps"]:
            s = row["summary"]
            kb, fp, fk = s["subscriber_kbps"], s["first_packet_ms"], s["all_keyframes_ms"]
            lines.append(
                f"| {res['server']} | {row['publishers']} | {row['subscribers']} | {s['kept_up']} "
                f"({100 * s['kept_up_ratio']:.0f}%) | {fmt(row['server_cpu_pct'])} | {fmt(row['subscribers_per_core'])} | "
                f"{fmt(row['streams_per_core'])} | {s['steady_packets_per_s']} | {fmt(kb['p5'], 0)} / {fmt(kb['p50'], 0)} "
                f"({fmt(s['expected_kbps'], 0)}) | {s['loss_pct']} ({s['socket_drops']}) | {s['freezes']} | "
                f"{fmt(fp['p50'], 0)} / {fmt(fp['p95'], 0)} | {fmt(fk['p50'], 0)} / {fmt(fk['p95'], 0)} | "
                f"{fmt(row['server_rss_mib'])} | {fmt(s['client_cpu_pct'], 0)} | {fmt(row['cpu1_busy_pct'], 0)} | "
                f"{fmt(row['others_on_cpu0_pct'])} | {s['errors'] or ''} |"
            )
    lines += [
        "",
        "| server | version | ICE | P | most subscribers kept up | limited by | streams/core at that step | "
        "streamhive / this (streams per core) |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    ref = next((r for r in servers if r["server"] == "streamhive"), None)
    for res in servers:
        for p in report["publishers"]:
            top = _top(res, p)
            mine = _top(ref, p) if ref else None
            ratio = (
                f"{mine['streams_per_core'] / top['streams_per_core']:.2f}"
                if mine and top and mine.get("streams_per_core") and top.get("streams_per_core")
                else "–"
            )
            lines.append(
                f"| {res['server']} | {res.get('version', '')} | {res.get('ice', '')} | {p} | "
                f"{res['max_kept_up'].get(p, '–')} | {res.get('limited_by', {}).get(p, 'steps exhausted')} | "
                f"{fmt(top['streams_per_core']) if top else '–'} | {ratio} |"
            )
    w = report.get("workers")
    if w:
        lines += [
            "",
            f"One streamhive with `rooms.workers: {w['workers']}` (unpinned; each worker pins itself), a room per "
            f"worker with {w['publishers_per_room']} publishers and half the subscribers, one unpinned client per "
            f"room: {w['kept_up']}/{w['subscribers']} kept up, {fmt(w['server_cpu_pct'])}% CPU in total, "
            f"{fmt(w['subscribers_per_core'])} subscribers, {fmt(w['streams_per_core'])} streams per core (clients "
            f"{w['clients_cpu_pct']}%, machine busy {fmt(w['machine_busy_pct'])}%, others {fmt(w['others_pct'])}%).",
            "",
            "| process | CPUs | CPU % | RSS MiB | S | kept up | subscribers/core | streams/core | packets/s out | "
            "loss % | freezes | client CPU % | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for proc in w["processes"]:
            lines.append(
                f"| {proc['role']} | {proc['cpus']} | {fmt(proc['cpu_pct'], 2)} | {fmt(proc['rss_mib'])} | "
                + " | ".join(fmt(proc.get(k)) for k in ROOM_COLUMNS)
                + f" | {proc.get('errors') or ''} |"
            )
    profile = next((r.get("profile") for r in servers if r.get("profile")), None)
    if profile and "pct_of_busy" in profile:
        lines += [
            "",
            f"streamhive under py-spy ({profile['row']['subscribers']} subscribers, {profile['samples']} busy samples): "
            + ", ".join(f"{k} {v}%" for k, v in profile["pct_of_busy"].items())
            + "; of forwarding: "
            + ", ".join(f"{k} {v}%" for k, v in profile["pct_of_forwarding"].items()),
        ]
    for res in report["servers"]:
        if res.get("skipped"):
            lines += ["", f"{res['server']}: {res['skipped']}"]
        elif res.get("error"):
            lines += ["", f"{res['server']}: failed: {res['error']}"]
    return "\n".join(lines)


def _top(res: dict[str, Any] | None, p: int) -> dict[str, Any] | None:
    """The row of the largest step where everyone kept up, for ``p`` publishers."""
    if res is None or p not in res["max_kept_up"]:
        return None
    n = res["max_kept_up"][p]
    return next((r for r in res["steps"] if r["publishers"] == p and r["subscribers"] == n), None)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python bench/run_room.py", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument("--servers", default="streamhive,janus", help="comma-separated: streamhive, janus")
    ap.add_argument("--publishers", default="2", help="comma-separated publisher counts (default 2)")
    ap.add_argument(
        "--steps", default="50,100,200", help="comma-separated subscriber counts (default 50,100,200)"
    )
    ap.add_argument(
        "--seconds", type=float, default=12.0, help="seconds per step after the ramp (default 12)"
    )
    ap.add_argument("--ramp", type=float, default=50.0, help="subscribers started per second (default 50)")
    ap.add_argument("--baseline-seconds", type=float, default=6.0, help="publishers-only step (0: none)")
    ap.add_argument("--retries", type=int, default=1, help="runs again of a failed step on a busy machine")
    ap.add_argument("--keep-up", type=float, default=1.0, help="share of subscribers that must keep up")
    ap.add_argument(
        "--workers-run", type=int, default=0, help="subscribers of the rooms.workers: 2 run (0: none)"
    )
    ap.add_argument(
        "--profile", type=int, default=0, help="subscribers of a py-spy'd streamhive step (0: none)"
    )
    ap.add_argument("--janus-event-loops", type=int, default=1, help="Janus's event_loops (default 1)")
    ap.add_argument("--nice", type=int, default=0, help="nice value of everything started (e.g. -10 as root)")
    ap.add_argument("--budget", type=float, default=300.0, help="stop starting steps after this many seconds")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/room-<date>.json)")
    args = ap.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(args.servers) - {"streamhive", "janus"}:
        ap.error("--servers takes streamhive and janus")
    args.publishers = [int(x) for x in args.publishers.split(",")]
    args.steps = [int(x) for x in args.steps.split(",")]
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written as JSON, see ``report['json']``)."""
    args = parse_args(argv)
    run_webrtc.NICE[:] = ["nice", "-n", str(args.nice)] if args.nice else []
    t_start = time.monotonic()
    raise_fd_limit()
    with contextlib.suppress(ValueError):  # not in the main thread: the caller cleans up
        signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="roombench-"))
    probe = StallProbe()
    probe.start()
    run_webrtc.clip_path()  # made once, before any step times anything
    report: dict[str, Any] = {
        **report_header(False, "servers on CPU 0, publishers and subscribers (one process) on CPU 1"),
        "stream": STREAM_DESC + "; RTP packetized once (1200-byte packets), paced by its timestamps",
        "client": f"bench/roomclient.py, subscribers receive every publisher, no decoding; {args.ramp:g} "
        f"subscribers/s, CPU window {args.seconds - min(SETTLE_S, args.seconds / 2):g} s from "
        f"{min(SETTLE_S, args.seconds / 2):g} s after the ramp",
        "publishers": args.publishers,
        "seconds": args.seconds,
        "keep_up": args.keep_up,
        "servers": [],
        "work": str(work),
    }
    try:
        for name in args.servers:
            try:
                res = (
                    bench_streamhive(args, work, t_start)
                    if name == "streamhive"
                    else bench_janus(args, work, t_start)
                )
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
                print(f"[room] {name} failed: {exc}", flush=True)
                res = {"server": name, "error": str(exc)}
            report["servers"].append(res)
        if args.workers_run:
            report["workers"] = bench_workers(args, work)
            print_workers(report["workers"])
    finally:
        probe.running = False
    report["machine_stalls"] = probe.result()
    report["server_log_warnings"] = log_warnings(work, (" WARNING ", " ERROR ", "[ERR]"))
    out = write_report(report, t_start, args.out, "room")
    report["json"] = str(out)
    return report


def main(argv: list[str] | None = None) -> int:
    print_report(run(argv), markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
