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

``--two-servers S``: a stand-in for two workers, which streamhive's rooms do not have yet: two
independent ``streamhive serve`` processes, on CPU 0 and CPU 1, each holding one room (P
publishers and S/2 subscribers), with the two load clients unpinned; the total over both. It is
*not* one server with two workers (no shared room, no cross-worker forwarding), and on this
2-core machine the clients share the servers' CPUs.

``--profile S``: one more streamhive step of S subscribers with py-spy on the server for the
steady window (bench/roomclient.py ``--profile``): how forwarding's time splits into SRTP
protect, ``Rewriter.rewrite``, sending (``UdpRoute.send``: ``sendto``) and the rest.

    python bench/run_room.py                                  # about 3 minutes
    python bench/run_room.py --steps 50,100 --publishers 2,4 --two-servers 100 --profile 100

Results go to bench/results/room-<date>.json and a Markdown table with the streamhive/Janus ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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
from bench.run_rtsp import Window  # noqa: E402
from bench.run_spine import (  # noqa: E402
    NO_RTSP,
    fmt,
    free_port,
    log_warnings,
    pinned,
    print_report,
    report_header,
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


# -- the servers ----------------------------------------------------------------------------------
def streamhive_config(work: Path, name: str) -> tuple[Path, int]:
    """Rooms on free loopback ports (ICE on UDP only), the bridge to hub paths off; returns the
    config and the HTTP port."""
    http_port, ice_port = free_port(), free_udp_port()
    config = work / f"{name}.yaml"
    config.write_text(
        f'rtmp:\n  listen: "127.0.0.1:{free_port()}"\n'
        f'http:\n  listen: "127.0.0.1:{http_port}"\n'
        f"{NO_RTSP}"
        f'webrtc:\n  listen: "127.0.0.1:{ice_port}"\n  tcp: false\n'
        "rooms:\n  max_participants: 1000\n  max_publishers: 64\n  bridge: false\n"
    )
    return config, http_port


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
        "subscribers_per_core": round(subscribers / (cpu_pct / 100)) if cpu_pct and subscribers else None,
        "streams_per_core": round(streams / (cpu_pct / 100)) if cpu_pct and streams else None,
    }


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


def bench_two_servers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Two streamhive processes (CPU 0 and CPU 1), one room each, P publishers and S/2
    subscribers per room; the clients unpinned. The CPU window is the first client's."""
    p, n = args.publishers[0], args.two_servers
    servers = []
    try:
        for cpu in (0, 1):
            config, http_port = streamhive_config(work, f"two-{cpu}")
            server = _track(start_server(config, work / f"two-{cpu}.log", http_port))
            subprocess.run(
                ["taskset", "-a", "-cp", str(cpu), str(server.pid)], check=False, capture_output=True
            )
            servers.append((server, f"ws://127.0.0.1:{http_port}/rooms/half-{cpu}/ws"))
        pids = [s.pid for s, _ in servers]
        other = _track(subprocess.Popen(
            [*client_cmd(servers[1][1], p, n - n // 2, args.seconds, args), "--json", str(work / "two-1.json")],
            cwd=ROOT, stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        first = [
            *client_cmd(servers[0][1], p, n // 2, args.seconds, args),
            "--json",
            str(work / "two-0.json"),
        ]
        cpu, rss = run_marked(
            first, pids[0], n / max(args.ramp, 1) + args.seconds + 90, lambda: _windows(pids)
        )
        other.wait(timeout=60)
        halves = [json.loads((work / f"two-{i}.json").read_text())["summary"] for i in (0, 1)]
        per_server = [
            step_row(h, {"cpu_pct": c, "others_on_cpu0_pct": None, "cpu1_busy_pct": None}, None)
            for h, c in zip(halves, cpu["each"] if cpu else [None, None], strict=True)
        ]
        total_cpu = cpu["cpu_pct"] if cpu else None
        streams = sum(h["forwarded_streams"] for h in halves)
        return {
            "publishers_per_room": p,
            "subscribers": n,
            "kept_up": sum(h["kept_up"] for h in halves),
            "server_cpu_pct": total_cpu,
            "subscribers_per_core": round(n / (total_cpu / 100)) if total_cpu else None,
            "streams_per_core": round(streams / (total_cpu / 100)) if total_cpu else None,
            "servers": per_server,
            "rss_mib_first": round(rss, 1) if rss is not None else None,
        }
    finally:
        for server, _ in servers:
            stop(server)


def _windows(pids: list[int]) -> Callable[[], dict[str, Any]]:
    """A CPU window of all ``pids`` together, with each one's CPU% under ``each``."""
    joint, each = Window(pids), [Window([pid]) for pid in pids]
    return lambda: {**joint.read(), "each": [w.read()["cpu_pct"] for w in each]}


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
    two = report.get("two_servers")
    if two:
        lines += [
            "",
            f"Two independent streamhive processes (CPU 0 and CPU 1, one room each, {two['publishers_per_room']} "
            f"publishers and half the subscribers per room, clients unpinned): {two['kept_up']}/{two['subscribers']} "
            f"kept up, {fmt(two['server_cpu_pct'])}% CPU in total, {fmt(two['subscribers_per_core'])} subscribers, "
            f"{fmt(two['streams_per_core'])} streams per core.",
        ]
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
    ap.add_argument("--two-servers", type=int, default=0, help="subscribers of the two-process run (0: none)")
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
        if args.two_servers:
            report["two_servers"] = bench_two_servers(args, work)
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
