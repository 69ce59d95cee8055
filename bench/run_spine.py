"""The fan-out spine benchmark: one server, one ~600 kbps publisher, growing numbers of players.

Starts ``streamhive serve`` (pinned to CPU 0 when ``taskset`` exists), an ffmpeg publisher
(testsrc 640x360 25 fps H.264 + AAC, 1 s GOP, ``-re``) and the load client (both on CPU 1), then for
RTMP and for HTTP-FLV steps through player counts until fewer than 98% of the players stay real
time. For each step it records the server's CPU% (utime+stime from /proc/PID/stat over the
steady part of the step) and RSS (VmRSS), the real-time players, CPU% and RSS per 100 players
(above the idle server), first-frame times (GOP cache) and the load client's own CPU%.
Then it measures server-added latency (bench/latency.py) at light load and at half the largest
real-time RTMP load. Results go to bench/results/spine-<date>.json and a Markdown table.

    python bench/run_spine.py            # about 5 minutes
    python bench/run_spine.py --quick    # about 1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import make_clip  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STREAM = "live/spine"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Benchmarks of other protocols turn RTSP off: its fixed default ports (8554, UDP 8000/8001)
#: would keep two benchmark servers from running side by side.
NO_RTSP = "rtsp:\n  enabled: false\n"


def server_ports() -> tuple[int, int, str, str]:
    """Free loopback ports for a server's RTMP and HTTP listeners, and their base URLs."""
    rtmp_port, http_port = free_port(), free_port()
    return rtmp_port, http_port, f"rtmp://127.0.0.1:{rtmp_port}", f"http://127.0.0.1:{http_port}"


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > cpu else []


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_mib(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


class Sampler:
    """CPU% of a process between two points in time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t, self.c = time.monotonic(), cpu_seconds(pid)

    def pct(self) -> float:
        t, c = time.monotonic(), cpu_seconds(self.pid)
        return 100 * (c - self.c) / (t - self.t) if t > self.t else 0.0


def api_paths(http: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{http}/api/v1/paths", timeout=5) as resp:
        return json.loads(resp.read())["items"]  # type: ignore[no-any-return]


def wait_for_stream(http: str, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if any(i["name"] == name and len(i["tracks"]) >= 2 for i in api_paths(http)):
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not published within {timeout}s")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(
    config: Path, log_path: Path, *ports: int, prefix: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """``streamhive serve --config CONFIG`` (output to ``log_path``), listening on ``ports``; run
    under ``prefix``, by default pinned to CPU 0."""
    exe = Path(sys.executable).parent / "streamhive"
    serve = [str(exe)] if exe.exists() else [sys.executable, "-m", "streamhive"]
    launch = pinned(0) if prefix is None else prefix
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*launch, *serve, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        for port in ports:
            wait_for_port(port, server)
    except BaseException:
        stop(server)
        raise
    return server


def run_marked(
    cmd: list[str], pid: int, timeout: float, open_window: Callable[[], Callable[[], T]]
) -> tuple[T | None, float | None]:
    """Runs a bench client with ``--marks``: a CPU window of the server ``pid`` opened at its
    'steady' mark (``open_window()`` returns its reader) is read, with the RSS, at its 'end' mark."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    read: Callable[[], T] | None = None
    cpu: T | None = None
    rss = None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("MARK steady"):
                read = open_window()
            elif line.startswith("MARK end") and read is not None:
                cpu, rss = read(), rss_mib(pid)
        proc.wait(timeout)
    finally:
        stop(proc)
    return cpu, rss


def report_header(quick: bool, placement: str) -> dict[str, Any]:
    """The first fields of a benchmark report: date, mode, machine (CPU placement), python."""
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if quick else "default",
        "machine": f"{os.cpu_count()} CPUs, {placement}" if pinned(1) else f"{os.cpu_count()} CPUs, unpinned",
        "python": sys.version.split()[0],
    }


def write_report(report: dict[str, Any], t_start: float, out: Path | None, prefix: str) -> Path:
    """Adds the elapsed time and writes ``report`` to ``out`` (default bench/results/PREFIX-<date>.json)."""
    report["elapsed_s"] = round(time.monotonic() - t_start, 1)
    out = out or RESULTS / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return out


def log_warnings(work: Path, markers: tuple[str, ...] = (" WARNING ", " ERROR ")) -> list[str]:
    """The first 50 warning and error lines of the logs in ``work``, and which logs hold a
    traceback: a step whose numbers look fine can still have had a server failing under it."""
    warnings = []
    for log in sorted(work.glob("*.log")):
        text = log.read_text(errors="replace")
        warnings += [f"{log.name}: {ln}" for ln in text.splitlines() if any(k in ln for k in markers)]
        if "Traceback" in text:
            warnings.append(f"{log.name}: contains a Traceback")
    return warnings[:50]


def print_report(report: dict[str, Any], markdown: Callable[[dict[str, Any]], str]) -> None:
    """The end of a run on the terminal: the tables, a few log warnings, where the results are."""
    print()
    print(markdown(report))
    if report["server_log_warnings"]:
        print(f"\nserver logs: {len(report['server_log_warnings'])} warnings/errors, e.g.")
        print("\n".join(report["server_log_warnings"][:8]))
    print(f"\nresults: {report['json']} (elapsed {report['elapsed_s']} s; logs in {report['work']})")


def run_step(
    url: str, clients: int, duration: float, ramp: float, server_pid: int, out: Path
) -> dict[str, Any]:
    """One load-client run; server CPU is sampled between its 'steady' and 'end' marks."""
    rss_before = rss_mib(server_pid)
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.loadclient", url, "--clients", str(clients),
        "--duration", str(duration), "--ramp", str(ramp), "--json", str(out), "--marks",
    ]  # fmt: skip
    cpu, rss = run_marked(
        cmd, server_pid, clients / max(ramp, 1) + duration + 60, lambda: Sampler(server_pid).pct
    )
    summary = json.loads(out.read_text())["summary"]
    return {"summary": summary, "server_cpu_pct": cpu, "server_rss_mib": rss, "rss_before_mib": rss_before}


def latency(
    rtmp: str, http: str, clip: Path, seconds: float, out: Path, name: str, players: int = 3
) -> dict[str, Any]:
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.latency", "--rtmp", rtmp, "--http", http,
        "--file", str(clip), "--name", name, "--players", str(players), "--seconds", str(seconds),
        "--json", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=seconds + 60, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"streamhive spine, {report['date']} ({report['mode']}), {report['machine']}",
        f"idle server (publisher only): CPU {fmt(report['baseline']['cpu_pct'])}%, "
        f"RSS {fmt(report['baseline']['rss_mib'])} MiB",
        "",
        "| protocol | players | real-time | server CPU % | server RSS MiB | CPU %/100 players | "
        "RSS MiB/100 players | first frame p50/p95 ms | Mbit/s in | client CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["steps"]:
        s = row["summary"]
        ff = s["first_frame_ms"]
        lines.append(
            f"| {row['protocol']} | {s['clients']} | {s['realtime']} ({100 * s['realtime_ratio']:.0f}%) | "
            f"{fmt(row['server_cpu_pct'])} | {fmt(row['server_rss_mib'])} | {fmt(row['cpu_pct_per_100'])} | "
            f"{fmt(row['rss_mib_per_100'], 2)} | {fmt(ff['p50'], 0)} / {fmt(ff['p95'], 0)} | "
            f"{fmt(s['mbit_s_in'])} | {fmt(s['client_cpu_pct'], 0)} | {s['errors'] or ''} |"
        )
    lines += [
        "",
        "| max real-time players | "
        + " | ".join(f"{k}: {v}" for k, v in report["max_realtime"].items())
        + " |",
    ]
    lines += [
        "",
        "| server-added latency | protocol | players | frames | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for load, res in report["latency"].items():
        for proto in ("rtmp", "http-flv"):
            r = res.get(proto)
            if r:
                lines.append(
                    f"| {load} | {proto} | {r['players']} | {r['samples']} | {fmt(r['p50_ms'], 2)} | "
                    f"{fmt(r['p99_ms'], 2)} | {fmt(r['max_ms'], 2)} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/run_spine.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~1 minute version (fewer, shorter steps)")
    ap.add_argument("--steps", help="comma-separated player counts (default 50,100,200,400,800)")
    ap.add_argument("--duration", type=float, help="seconds per step after ramp-up (default 12, quick 5)")
    ap.add_argument("--ramp", type=float, default=200.0, help="players started per second (default 200)")
    ap.add_argument("--budget", type=float, help="stop starting new steps after this many seconds")
    ap.add_argument("--protocols", default="rtmp,http-flv")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/spine-<date>.json)")
    args = ap.parse_args(argv)
    steps = (
        [int(x) for x in args.steps.split(",")]
        if args.steps
        else ([100, 400] if args.quick else [50, 100, 200, 400, 800])
    )
    duration = args.duration or (5.0 if args.quick else 12.0)
    lat_seconds = 4.0 if args.quick else 8.0
    budget = args.budget or (55.0 if args.quick else 280.0)
    t_start = time.monotonic()
    raise_fd_limit()

    work = Path(tempfile.mkdtemp(prefix="spine-"))
    rtmp_port, http_port, rtmp, http = server_ports()
    config = work / "streamhive.yaml"
    config.write_text(
        f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"\nhttp:\n  listen: "127.0.0.1:{http_port}"\n{NO_RTSP}'
    )
    clip = work / "clip.flv"
    make_clip(clip, 10.0)
    server = publisher = None
    report: dict[str, Any] = {
        **report_header(args.quick, "server on CPU 0, publisher and clients on CPU 1"),
        "stream": "testsrc 640x360 25 fps H.264 ~500 kbps + AAC 64 kbps, 1 s GOP",
        "duration_s": duration,
        "ramp_per_s": args.ramp,
        "steps": [],
        "latency": {},
    }
    try:
        server = start_server(config, work / "server.log", http_port, rtmp_port)
        publisher = subprocess.Popen(
            [*pinned(1), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(int(budget + 120)),
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
             "-b:v", "500k", "-maxrate", "500k", "-bufsize", "500k", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "64k", "-f", "flv", f"{rtmp}/{STREAM}"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_stream(http, STREAM)
        time.sleep(1.0)
        base = Sampler(server.pid)
        time.sleep(3.0)
        report["baseline"] = {"cpu_pct": round(base.pct(), 1), "rss_mib": round(rss_mib(server.pid), 1)}
        urls = {"rtmp": f"{rtmp}/{STREAM}", "http-flv": f"{http}/{STREAM}.flv"}
        max_rt: dict[str, int] = {}
        for proto in args.protocols.split(","):
            max_rt[proto] = 0
            for n in steps:
                needed = n / args.ramp + duration + 4
                if time.monotonic() - t_start + needed > budget:
                    print(f"[spine] skipping {proto} x{n}: over the time budget", flush=True)
                    break
                row = run_step(urls[proto], n, duration, args.ramp, server.pid, work / f"{proto}-{n}.json")
                s = row["summary"]
                row["protocol"] = proto
                cpu = row["server_cpu_pct"]
                row["cpu_pct_per_100"] = (
                    round((cpu - report["baseline"]["cpu_pct"]) / n * 100, 2) if cpu is not None else None
                )
                rss = row["server_rss_mib"]
                row["rss_mib_per_100"] = (
                    round((rss - row["rss_before_mib"]) / n * 100, 2) if rss is not None else None
                )
                report["steps"].append(row)
                print(
                    f"[spine] {proto} x{n}: real-time {s['realtime']}/{n}, server CPU {fmt(cpu)}%, "
                    f"RSS {fmt(rss)} MiB, first frame p50 {s['first_frame_ms']['p50']} ms, "
                    f"client CPU {s['client_cpu_pct']}%",
                    flush=True,
                )
                if s["realtime_ratio"] < 0.98:
                    break
                max_rt[proto] = n
        report["max_realtime"] = max_rt
        # server-added latency, light load and half the largest real-time RTMP load
        report["latency"]["light"] = latency(
            rtmp, http, clip, lat_seconds, work / "lat-light.json", "live/lat1"
        )
        half = max(max_rt.get("rtmp", 0), max_rt.get("http-flv", 0)) // 2
        if half:
            load = subprocess.Popen(
                [*pinned(1), sys.executable, "-m", "bench.loadclient", urls["rtmp"], "--clients", str(half),
                 "--duration", str(lat_seconds + 10), "--ramp", str(args.ramp), "--marks",
                 "--json", str(work / "lat-load.json")],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                assert load.stdout is not None
                for line in load.stdout:
                    if line.startswith("MARK steady"):
                        break
                sampler = Sampler(server.pid)
                lat = latency(rtmp, http, clip, lat_seconds, work / "lat-half.json", "live/lat2")
                lat["server_cpu_pct"] = round(sampler.pct(), 1)
                report["latency"][f"half ({half} RTMP players)"] = lat
                load.communicate(timeout=60)
                lat["load_summary"] = json.loads((work / "lat-load.json").read_text())["summary"]
            finally:
                stop(load)
    finally:
        stop(publisher)
        stop(server)
    out = write_report(report, t_start, args.out, "spine")
    print()
    print(markdown(report))
    print(f"\nresults: {out} (elapsed {report['elapsed_s']} s; server log in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
