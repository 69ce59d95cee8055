"""The HLS benchmark: muxing cost, HLS / LL-HLS viewers per core, and cached-segment requests/s.

Starts ``streamhive serve`` (pinned to CPU 0 when ``taskset`` exists) and a live ffmpeg publisher
(testsrc2 1280x720 25 fps H.264 2 Mbit/s + AAC 128 kbit/s, 1 s GOP, ``-re``; on CPU 1 with the
load clients), then:

a. **muxing cost**: the server's CPU% (utime+stime from /proc/PID/stat) with the stream published
   on a path with ``hls_always: true`` and no viewer, minus the CPU% with the same stream on a
   path without it (no muxing), each over ``--mux-seconds``;
b. **viewers per core**: steps of HLS viewers (bench/hlsclient.py) in classic fMP4 mode and in
   LL-HLS mode until fewer than 98% of them stay real time, with the server's CPU% and RSS;
c. **requests/s for one cached segment**: ``wrk -t1 -c50`` against a segment of the live window
   (``hls_segment_count: 30`` keeps it there) and against nginx (bench/peers/nginx-hls.conf, one
   worker, also on CPU 0) serving the same bytes from disk; prints both and the ratio. Without
   wrk it falls back to ``python -m bench.hlsclient --hammer`` and says so.

A static nginx copy is not live, so viewers per core are reported for streamhive only.
Results go to bench/results/hls-<date>.json and a Markdown table.

    python bench/run_hls.py            # about 5 minutes
    python bench/run_hls.py --quick    # about 1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hlsclient import parse_media  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402
from bench.run_spine import (  # noqa: E402
    NO_RTSP,
    cpu_seconds,
    fmt,
    free_port,
    pinned,
    report_header,
    rss_mib,
    run_marked,
    server_ports,
    start_server,
    stop,
    wait_for_port,
    wait_for_stream,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = ROOT / "bench" / "peers" / "nginx-hls.conf"
STREAM_DESC = "testsrc2 1280x720 25 fps H.264 2 Mbit/s (ultrafast) + AAC 128 kbit/s, 1 s GOP, -re"
PATHS = {  # name -> per-path config
    "nomux": ("live/nomux", {}),
    "classic": ("live/cam1", {"hls_variant": "fmp4", "hls_always": True, "hls_segment_count": 30}),
    "ll": ("live/ll", {"hls_variant": "lowLatency", "hls_always": True}),
}


def cpu0_busy() -> float:
    """Busy seconds of CPU 0 (all processes), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu0 "):
            v = [int(x) for x in line.split()[1:]]
            return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    return 0.0


class CpuWindow:
    """The server's CPU% and what else ran on CPU 0 (other processes) over one window."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.t, self.c, self.busy = time.monotonic(), self._cpu(), cpu0_busy()

    def _cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def read(self) -> dict[str, float]:
        t, c, busy = time.monotonic(), self._cpu(), cpu0_busy()
        wall = t - self.t
        own = 100 * (c - self.c) / wall
        return {
            "cpu_pct": round(own, 2),
            "others_on_cpu0_pct": round(max(0.0, 100 * (busy - self.busy) / wall - own), 1),
            "seconds": round(wall, 1),
        }


class StallProbe(threading.Thread):
    """Sleeps 10 ms at a time and notes oversleeps: how often this machine stopped running us.

    On a shared or virtual machine other tenants can stop any process for a while; every number
    above is then pessimistic, and this says by how much time was lost."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.max_ms = 0.0
        self.over_50ms = 0
        self.over_200ms = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            t = time.monotonic()
            time.sleep(0.01)
            late = (time.monotonic() - t - 0.01) * 1000
            self.max_ms = max(self.max_ms, late)
            self.over_50ms += late > 50
            self.over_200ms += late > 200

    def result(self) -> dict[str, float]:
        return {"max_ms": round(self.max_ms, 1), "over_50ms": self.over_50ms, "over_200ms": self.over_200ms}


def stalls_line(report: dict[str, Any]) -> str:
    """The report's line for its StallProbe result, the first thing to read before trusting a table."""
    return (
        "machine stalls (a 10 ms sleep that overslept): max {max_ms} ms, {over_50ms} over 50 ms, "
        "{over_200ms} over 200 ms".format(
            **report.get("machine_stalls", {"max_ms": "?", "over_50ms": "?", "over_200ms": "?"})
        )
    )


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def publish(rtmp: str, path: str, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*pinned(1), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(int(seconds)),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
         "-sc_threshold", "0", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-f", "flv", f"{rtmp}/{path}"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()  # type: ignore[no-any-return]


def wait_for_segments(http: str, path: str, count: int = 2, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(parse_media(get(f"{http}/{path}/stream.m3u8").decode()).complete()) >= count:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{path}: fewer than {count} segments after {timeout}s")


def run_viewers(
    url: str, mode: str, viewers: int, duration: float, ramp: float, pid: int, out: Path
) -> dict[str, Any]:
    """One hlsclient run; server CPU is sampled between its 'steady' and 'end' marks.

    The client shares CPU 1 with the live encoder (~17% of a core): when the client saturates
    CPU 1 the encoder falls behind and every viewer looks late; check the client CPU% column."""
    rss_before = rss_mib(pid)
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.hlsclient", url, "--viewers", str(viewers), "--mode", mode,
        "--duration", str(duration), "--ramp", str(ramp), "--json", str(out), "--marks",
    ]  # fmt: skip
    cpu, rss = run_marked(cmd, pid, viewers / max(ramp, 1) + duration + 60, lambda: CpuWindow([pid]).read)
    summary = json.loads(out.read_text())["summary"]
    return {
        "mode": mode,
        "summary": summary,
        "server_cpu_pct": cpu["cpu_pct"] if cpu else None,
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"] if cpu else None,
        "server_rss_mib": rss,
        "rss_before_mib": rss_before,
    }


_WRK_NUM = r"([\d.]+)([kKMG]?)"


def _unit(value: str, suffix: str) -> float:
    return float(value) * {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}[suffix]


def load_requests(url: str, seconds: float, connections: int, pids: list[int], work: Path) -> dict[str, Any]:
    """wrk -t1 -cN -dS (or the hlsclient --hammer fallback) on CPU 1; the target's CPU% alongside."""
    window = CpuWindow(pids)
    if shutil.which("wrk"):
        cmd = [*pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
        cpu = window.read()
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        lat = re.search(r"Latency\s+" + _WRK_NUM + r"(us|ms|s)", text)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        sock = re.search(r"Socket errors:(.*)", text)
        total = re.search(r"(\d+) requests in", text)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
        return {
            "tool": "wrk",
            "req_s": float(m.group(1)) if m else None,
            "requests": int(total.group(1)) if total else None,
            "latency_avg_ms": round(_unit(lat.group(1), lat.group(2)) * scale[lat.group(3)], 2)
            if lat
            else None,
            "latency_p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sock.group(1).strip() if sock else "",
            "target_cpu_pct": cpu["cpu_pct"],
            "others_on_cpu0_pct": cpu["others_on_cpu0_pct"],
            "output": text,
        }
    out = work / f"hammer-{time.monotonic_ns()}.json"
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.hlsclient", url, "--hammer", str(connections),
        "--duration", str(seconds), "--json", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=seconds + 30, check=True)
    cpu = window.read()
    res = json.loads(out.read_text())
    ok = res["results"].get("ok", 0)
    return {
        "tool": "python -m bench.hlsclient --hammer (wrk not installed)",
        "req_s": res["req_s"],
        "requests": res["requests"],
        "non_2xx": res["requests"] - ok,
        "target_cpu_pct": cpu["cpu_pct"],
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"],
    }


def start_nginx(work: Path, name: str, body: bytes) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    prefix = work / "nginx"
    www = prefix / "www"
    (www / "live" / "cam1").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    (www / "live" / "cam1" / name).write_bytes(body)
    for p in [work, prefix, www, www / "live", www / "live" / "cam1", prefix / "tmp"]:
        p.chmod(0o755)  # workers run as nobody when started by root
    (www / "live" / "cam1" / name).chmod(0o644)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.read_text().replace("@PORT@", str(port)).replace("@ROOT@", str(www)))
    log = open(prefix / "stdout.log", "wb")  # noqa: SIM115 (lives as long as nginx)
    proc = subprocess.Popen(
        [*pinned(0), nginx, "-p", f"{prefix}/", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    wait_for_port(port, proc)
    return proc, port


def markdown(report: dict[str, Any]) -> str:
    mux = report.get("mux", {})
    lines = [
        f"streamhive HLS, {report['date']} ({report['mode']}), {report['machine']}",
        f"stream: {report['stream']}",
        stalls_line(report),
        "",
        "| muxing cost (no viewers) | server CPU % | others on CPU 0 % | seconds |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("idle", "idle server"),
        ("off", "published, HLS off"),
        ("on", "published, hls_always"),
    ):
        w = mux.get(key)
        if w:
            lines.append(
                f"| {label} | {fmt(w['cpu_pct'], 2)} | {fmt(w['others_on_cpu0_pct'])} | {w['seconds']} |"
            )
    if "cost_pct" in mux:
        lines.append(f"| **muxing cost per stream** | **{fmt(mux['cost_pct'], 2)}** | | target < 3 |")
    lines += [
        "",
        "| mode | viewers | real-time | server CPU % | server RSS MiB | CPU %/100 viewers | req/s | Mbit/s out "
        "| media fetch p50/p99 ms | startup p50/p95 ms | max gap s | missed | client CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["steps"]:
        s = row["summary"]
        mf, su = s["media_fetch_ms"], s["startup_ms"]
        lines.append(
            f"| {row['mode']} | {s['viewers']} | {s['realtime']} ({100 * s['realtime_ratio']:.0f}%) | "
            f"{fmt(row['server_cpu_pct'])} | {fmt(row['server_rss_mib'])} | {fmt(row['cpu_pct_per_100'])} | "
            f"{fmt(s['req_s'], 0)} | {fmt(s['mbit_s_in'], 0)} | {fmt(mf['p50'], 0)} / {fmt(mf['p99'], 0)} | "
            f"{fmt(su['p50'], 0)} / {fmt(su['p95'], 0)} | {fmt(s['max_gap_s'])} | {s['missed']} | "
            f"{fmt(s['client_cpu_pct'], 0)} | {s['errors'] or ''} |"
        )
    lines += [
        "",
        "| max real-time viewers (one core) | "
        + " | ".join(f"{k}: {fmt(v)}" for k, v in report.get("max_realtime", {}).items())
        + " |",
    ]
    req = report.get("requests")
    if req:
        lines += [
            "",
            f"| one cached segment ({req['segment']}, {req['segment_bytes']} bytes), "
            f"{req['tool_desc']} | req/s | avg / p99 ms | server CPU % | non-2xx | others on CPU 0 % |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in ("streamhive", "nginx"):
            r = req.get(name)
            if r:
                lines.append(
                    f"| {name} | {fmt(r['req_s'], 0)} | {fmt(r.get('latency_avg_ms'), 2)} / "
                    f"{fmt(r.get('latency_p99_ms'), 2)} | {fmt(r['target_cpu_pct'])} | {r['non_2xx']} | "
                    f"{fmt(r['others_on_cpu0_pct'])} |"
                )
        if req.get("ratio") is not None:
            lines.append(f"| **streamhive / nginx** | **{req['ratio']:.2f}** | | | | |")
        if req.get("nginx_error"):
            lines.append(f"\nnginx: {req['nginx_error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/run_hls.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~1 minute version (fewer, shorter steps)")
    ap.add_argument("--steps", help="comma-separated viewer counts (default 50,100,200,400,800)")
    ap.add_argument("--modes", default="classic,ll", help="viewer modes to step through")
    ap.add_argument("--duration", type=float, help="seconds per step after ramp-up (default 12, quick 6)")
    ap.add_argument("--ramp", type=float, default=200.0, help="viewers started per second (default 200)")
    ap.add_argument("--mux-seconds", type=float, help="CPU window per muxing case (default 25, quick 10)")
    ap.add_argument("--wrk-seconds", type=float, help="wrk duration per server (default 10, quick 5)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--budget", type=float, help="stop starting new steps after this many seconds")
    ap.add_argument("--no-nginx", action="store_true", help="skip the nginx side of the requests/s test")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/hls-<date>.json)")
    args = ap.parse_args(argv)
    steps = (
        [int(x) for x in args.steps.split(",")]
        if args.steps
        else ([150] if args.quick else [50, 100, 200, 400, 800, 1600])
    )
    duration = args.duration or (6.0 if args.quick else 12.0)
    mux_s = args.mux_seconds or (10.0 if args.quick else 25.0)
    wrk_s = args.wrk_seconds or (5.0 if args.quick else 10.0)
    budget = args.budget or (90.0 if args.quick else 290.0)
    t_start = time.monotonic()
    raise_fd_limit()

    work = Path(tempfile.mkdtemp(prefix="hlsbench-"))
    rtmp_port, http_port, rtmp, http = server_ports()
    config = work / "streamhive.yaml"
    lines = [
        f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"',
        f'http:\n  listen: "127.0.0.1:{http_port}"',
        NO_RTSP.rstrip(),
        "paths:",
    ]
    for path, overrides in PATHS.values():
        lines.append(f"  {path}:" + ("" if overrides else " {}"))
        lines += [f"    {k}: {json.dumps(v)}" for k, v in overrides.items()]
    config.write_text("\n".join(lines) + "\n")
    server = publisher = nginx = None
    probe = StallProbe()
    probe.start()
    report: dict[str, Any] = {
        **report_header(args.quick, "server (and nginx) on CPU 0, publisher and clients on CPU 1"),
        "stream": STREAM_DESC,
        "config": config.read_text(),
        "duration_s": duration,
        "ramp_per_s": args.ramp,
        "mux": {},
        "steps": [],
    }
    try:
        server = start_server(config, work / "server.log", http_port, rtmp_port)
        pid = server.pid
        time.sleep(1.0)
        w = CpuWindow([pid])
        time.sleep(3.0)
        report["mux"]["idle"] = w.read()
        report["mux"]["idle"]["rss_mib"] = round(rss_mib(pid), 1)

        # a. muxing cost: the same stream without and with hls_always, no viewers
        for key, which in (("off", "nomux"), ("on", "classic")):
            path = PATHS[which][0]
            stop(publisher)
            publisher = publish(rtmp, path, budget + 120)
            wait_for_stream(http, path)
            if key == "on":
                wait_for_segments(http, path)  # (the playlist request only reads; muxing was on already)
            time.sleep(2.0)
            w = CpuWindow([pid])
            time.sleep(mux_s)
            report["mux"][key] = w.read()
            report["mux"][key]["rss_mib"] = round(rss_mib(pid), 1)
            print(f"[hls] muxing {key}: server CPU {report['mux'][key]}", flush=True)
        report["mux"]["cost_pct"] = round(report["mux"]["on"]["cpu_pct"] - report["mux"]["off"]["cpu_pct"], 2)

        # c. requests/s for one cached segment, streamhive then nginx (same bytes)
        classic_path = PATHS["classic"][0]
        pl = parse_media(get(f"{http}/{classic_path}/stream.m3u8").decode())
        newest = pl.complete()[-1]
        assert newest.uri is not None
        seg_url = f"{http}/{classic_path}/{newest.uri}"
        body = get(seg_url)
        req: dict[str, Any] = {
            "segment": newest.uri,
            "segment_bytes": len(body),
            "connections": args.connections,
            "seconds": wrk_s,
        }
        req["streamhive"] = load_requests(seg_url, wrk_s, args.connections, [pid], work)
        req["tool_desc"] = (
            f"wrk -t1 -c{args.connections} -d{int(wrk_s)}s"
            if req["streamhive"]["tool"] == "wrk"
            else f"asyncio request loop, {args.connections} connections, {wrk_s:g} s (wrk not installed)"
        )
        print(f"[hls] streamhive {newest.uri}: {req['streamhive']['req_s']} req/s", flush=True)
        if not args.no_nginx:
            try:
                nginx, nginx_port = start_nginx(work, newest.uri, body)
                check = get(f"http://127.0.0.1:{nginx_port}/{classic_path}/{newest.uri}")
                if check != body:
                    raise RuntimeError("nginx served different bytes")
                req["nginx"] = load_requests(
                    f"http://127.0.0.1:{nginx_port}/{classic_path}/{newest.uri}",
                    wrk_s, args.connections, [nginx.pid, *children(nginx.pid)], work,
                )  # fmt: skip
                print(f"[hls] nginx: {req['nginx']['req_s']} req/s", flush=True)
                if req["streamhive"]["req_s"] and req["nginx"]["req_s"]:
                    req["ratio"] = round(req["streamhive"]["req_s"] / req["nginx"]["req_s"], 3)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                req["nginx_error"] = str(exc)
                print(f"[hls] nginx side skipped: {exc}", flush=True)
            finally:
                stop(nginx)
                nginx = None
        report["requests"] = req

        # b. viewers per core, classic fMP4 then LL-HLS
        max_rt: dict[str, int | None] = {}
        current = "classic"
        for mode in args.modes.split(","):
            which = "ll" if mode == "ll" else "classic"
            path = PATHS[which][0]
            if which != current:
                stop(publisher)
                publisher = publish(rtmp, path, budget + 120)
                wait_for_stream(http, path)
                wait_for_segments(http, path)
                current = which
            url = f"{http}/{path}/index.m3u8"
            max_rt[mode] = None  # None: no step ran (time budget)
            for n in steps:
                needed = n / args.ramp + duration + 5
                if time.monotonic() - t_start + needed > budget:
                    print(f"[hls] skipping {mode} x{n}: over the time budget", flush=True)
                    break
                rss_idle = rss_mib(pid)
                row = run_viewers(url, mode, n, duration, args.ramp, pid, work / f"{mode}-{n}.json")
                s = row["summary"]
                cpu = row["server_cpu_pct"]
                base = report["mux"]["on"]["cpu_pct"]
                row["cpu_pct_per_100"] = round((cpu - base) / n * 100, 2) if cpu is not None else None
                row["rss_mib_idle_before"] = rss_idle
                report["steps"].append(row)
                print(
                    f"[hls] {mode} x{n}: real-time {s['realtime']}/{n}, server CPU {fmt(cpu)}%, "
                    f"RSS {fmt(row['server_rss_mib'])} MiB, {s['req_s']} req/s, errors {s['errors']}, "
                    f"client CPU {s['client_cpu_pct']}%",
                    flush=True,
                )
                if s["realtime_ratio"] < 0.98:
                    break
                max_rt[mode] = n
            if max_rt[mode] is None and any(r["mode"] == mode for r in report["steps"]):
                max_rt[mode] = 0
        report["max_realtime"] = max_rt
    finally:
        stop(nginx)
        stop(publisher)
        stop(server)
        probe.running = False
    report["machine_stalls"] = probe.result()
    log_text = (work / "server.log").read_text(errors="replace")
    report["server_log_warnings"] = [
        ln for ln in log_text.splitlines() if " WARNING " in ln or " ERROR " in ln
    ][:50]
    out = write_report(report, t_start, args.out, "hls")
    print()
    print(markdown(report))
    if report["server_log_warnings"]:
        print(f"\nserver log: {len(report['server_log_warnings'])} warnings/errors, e.g.")
        print("\n".join(report["server_log_warnings"][:5]))
    print(f"\nresults: {out} (elapsed {report['elapsed_s']} s; server log in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
