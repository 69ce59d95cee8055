"""streamhive side by side with nginx-rtmp and Node-Media-Server: the same loads, one core each.

For each server (``streamhive serve``; nginx with the RTMP module, ``bench/peers/nginx-rtmp.conf``;
Node-Media-Server v4, ``bench/peers/nms.js``), all on loopback with an equivalent configuration:

1. start it pinned to CPU 0 (``taskset``); a ~600 kbit/s stream (ffmpeg testsrc 640x360 25 fps
   H.264 ~500 kbit/s + AAC 64 kbit/s, 1 s GOP, encoded once, then sent with ``ffmpeg -re
   -stream_loop -1 -c copy``) is published to ``live/bench`` from CPU 1, where every load
   client runs too (this script pins itself to CPU 1);
2. RTMP players, then HTTP-FLV players (streamhive, NMS; nginx-rtmp has no HTTP-FLV), step
   through client counts until fewer than 98% stay real time (the server is the limit) or the
   load client's CPU reaches 90% (the client is the limit: the server kept up with at least
   that many); with ``--refine`` one more step between the last good and the first bad count;
3. RTMP publishers (``bench/publishclient.py``, the same clip) step the same way;
4. time to first frame at light load (20 RTMP players joining over 2.5 s, i.e. at every phase
   of the 1 s GOP), with the server's GOP cache and without it (streamhive ``gop_cache: false``;
   nginx-rtmp has none; NMS v4 always caches);
5. server-added latency (``bench/latency.py``, 3 RTMP players at light load).

Server CPU% is utime+stime of the server's process tree (``/proc``) between the load client's
``steady`` and ``end`` marks; RSS is the tree's VmRSS. Results: ``bench/results/compare-<date>.json``,
a PNG chart (server CPU% against clients, per server and protocol; matplotlib, optional) and a
Markdown summary printed and written to ``docs/performance.md`` (with the spine and HLS tables of
the latest ``bench/results/spine-*.json`` / ``hls-*.json``).

    python bench/compare.py            # about 9 minutes
    python bench/compare.py --quick    # about 3 minutes
    streamhive bench compare [--quick] [--servers streamhive,nginx-rtmp,nms] [--steps 100,200,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import make_clip, measure_latency  # noqa: E402
from bench.loadclient import install_uvloop, raise_fd_limit, run_load  # noqa: E402
from bench.run_hls import CpuWindow, StallProbe, children  # noqa: E402
from bench.run_spine import NO_RTSP, fmt, free_port, pinned, stop, wait_for_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEERS = ROOT / "bench" / "peers"
DOCS = ROOT / "docs" / "performance.md"
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NMS_DIR = PEERS / "node_modules" / "node-media-server"
STREAM = "live/bench"
NOGOP = "live/nogop"
STREAM_DESC = "ffmpeg testsrc 640x360 25 fps H.264 ~500 kbit/s + AAC 64 kbit/s (~600 kbit/s), 1 s GOP"
REALTIME = 0.98
CLIENT_LIMIT_PCT = 90.0
COLORS = {"streamhive": "C0", "nginx-rtmp": "C1", "nms": "C2"}


# -- the servers ----------------------------------------------------------------------------------
@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    rtmp: str  # rtmp://127.0.0.1:PORT
    http: str | None  # http://127.0.0.1:PORT (HTTP-FLV), None when the server has none
    version: str
    gop_cache: str  # how the server treats a new player
    nogop_path: str | None = None  # a path served without GOP cache, when the server can do that
    extra: dict[str, Any] = field(default_factory=dict)

    def pids(self) -> list[int]:
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children(pid)
        return out

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
                total += int(m.group(1)) if m else 0
        return total / 1024


def _out(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (r.stdout + r.stderr).strip()


def available(name: str) -> str | None:
    """None when ``name`` can run here, else why not (and how to install it)."""
    if name == "streamhive":
        return None
    if name == "nginx-rtmp":
        if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
            return "nginx is not installed (apt-get install nginx libnginx-mod-rtmp)"
        if not NGINX_MODULE.exists():
            return f"{NGINX_MODULE} missing (apt-get install libnginx-mod-rtmp)"
        return None
    if name == "nms":
        if not shutil.which("node"):
            return "node is not installed"
        if not (NMS_DIR / "package.json").exists():
            return "node-media-server missing (npm install --prefix bench/peers node-media-server@4)"
        return None
    return f"unknown server {name!r}"


#: Text after this line in docs/performance.md is written by hand and kept when the page is redone.
KEPT = "<!-- written by hand below: kept by bench/compare.py -->"


def write_docs(report: dict[str, Any], table: str) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    old = DOCS.read_text() if DOCS.exists() else ""
    kept = old[old.index(KEPT) :] if KEPT in old else ""
    DOCS.write_text(performance_doc(report, table).rstrip("\n") + "\n\n" + kept)
    if report.get("chart"):  # bench/results/ is git-ignored: keep the chart next to the page
        shutil.copyfile(RESULTS / report["chart"], DOCS.with_suffix(".png"))
    print(f"\nwrote {DOCS.relative_to(ROOT)}")


def start_server(name: str, work: Path, write_coalesce: float = 0.0) -> Running:
    rtmp_port, http_port = free_port(), free_port()
    rtmp, http = f"rtmp://127.0.0.1:{rtmp_port}", f"http://127.0.0.1:{http_port}"
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the server)
    if name == "streamhive":
        from streamhive import __version__

        config = work / "streamhive.yaml"
        config.write_text(
            f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"\nhttp:\n  listen: "127.0.0.1:{http_port}"\n{NO_RTSP}'
            f"paths:\n  {NOGOP}:\n    gop_cache: false\n"
            + (f"path_defaults:\n  write_coalesce: {write_coalesce}\n" if write_coalesce else "")
        )
        exe = Path(sys.executable).parent / "streamhive"
        serve = [str(exe)] if exe.exists() else [sys.executable, "-m", "streamhive"]
        proc = subprocess.Popen(
            [*pinned(0), *serve, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        running = Running(
            name, proc, rtmp, http,
            f"{__version__} (Python {platform.python_version()})"
            + (f", write_coalesce {write_coalesce:g} s" if write_coalesce else ""),
            "GOP cache (default)", NOGOP,
        )  # fmt: skip
    elif name == "nginx-rtmp":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = work / "nginx"
        (prefix / "logs").mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            (PEERS / "nginx-rtmp.conf")
            .read_text()
            .replace("@RTMP_PORT@", str(rtmp_port))
            .replace("@MODULE@", str(NGINX_MODULE))
        )
        proc = subprocess.Popen(
            [*pinned(0), nginx, "-p", f"{prefix}/", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        ver = _out([nginx, "-v"]).replace("nginx version: ", "")
        mod = _out(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-rtmp"])
        running = Running(
            name, proc, rtmp, None, f"{ver}, rtmp module {mod or '?'}", "none (wait_key: next keyframe)"
        )
    elif name == "nms":
        version = json.loads((NMS_DIR / "package.json").read_text())["version"]
        proc = subprocess.Popen(
            [*pinned(0), "node", str(PEERS / "nms.js"), str(rtmp_port), str(http_port), str(work / "nms")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        running = Running(
            name, proc, rtmp, http, f"{version} (node {_out(['node', '--version'])})", "GOP cache (always)"
        )
    else:
        raise ValueError(name)
    _track(proc)
    wait_for_port(rtmp_port, proc)
    if running.http:
        wait_for_port(http_port, proc)
    return running


# -- loads ----------------------------------------------------------------------------------------
def publish_ffmpeg(url: str, clip: Path, seconds: float) -> subprocess.Popen[bytes]:
    return _track(subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
         "-t", str(int(seconds)), "-c", "copy", "-f", "flv", url],
        stdin=subprocess.DEVNULL,
    ))  # fmt: skip


def wait_playable(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = asyncio.run(run_load(url, 1, 1.0, connect_timeout=3))
        if res.summary()["receiving"]:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not play within {timeout}s")


def run_client(cmd: list[str], server: Running, out: Path, timeout: float) -> dict[str, Any]:
    """Runs a bench client with --marks/--json; server CPU between its marks."""
    rss_before = server.rss_mib()
    proc = _track(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True))
    window: CpuWindow | None = None
    cpu: dict[str, float] | None = None
    rss = None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("MARK steady"):
                window = CpuWindow(server.pids())
            elif line.startswith("MARK end") and window is not None:
                with contextlib.suppress(OSError):
                    cpu, rss = window.read(), server.rss_mib()
        proc.wait(timeout)
    finally:
        stop(proc)  # type: ignore[arg-type]
    summary = json.loads(out.read_text())["summary"] if out.exists() else {"error": "no client output"}
    return {
        "summary": summary,
        "server_cpu_pct": cpu["cpu_pct"] if cpu else None,
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"] if cpu else None,
        "server_rss_mib": round(rss, 1) if rss is not None else None,
        "rss_before_mib": round(rss_before, 1),
        "server_alive": server.proc.poll() is None,
    }


def play_step(
    server: Running, proto: str, n: int, duration: float, ramp: float, work: Path
) -> dict[str, Any]:
    url = f"{server.rtmp}/{STREAM}" if proto == "rtmp" else f"{server.http}/{STREAM}.flv"
    out = work / f"{server.name}-{proto}-{n}.json"
    cmd = [
        sys.executable, "-m", "bench.loadclient", url, "--clients", str(n), "--duration", str(duration),
        "--ramp", str(ramp), "--json", str(out), "--marks",
    ]  # fmt: skip
    row = run_client(cmd, server, out, n / ramp + duration + 60)
    row.update(protocol=proto, clients=n)
    return row


def publish_step(
    server: Running, n: int, duration: float, ramp: float, clip: Path, work: Path
) -> dict[str, Any]:
    out = work / f"{server.name}-publish-{n}.json"
    cmd = [
        sys.executable, "-m", "bench.publishclient", f"{server.rtmp}/live/pub{n}", "--publishers", str(n),
        "--duration", str(duration), "--ramp", str(ramp), "--file", str(clip), "--json", str(out), "--marks",
    ]  # fmt: skip
    row = run_client(cmd, server, out, n / ramp + duration + 60)
    row.update(protocol="publish", clients=n)
    return row


def verdict(row: dict[str, Any]) -> str:
    """ok | server (fewer than 98% real time, client not saturated) | client (client CPU >= 90%)."""
    s = row["summary"]
    if "realtime_ratio" not in s:
        return "error"
    client_busy = s.get("client_cpu_pct", 0) >= CLIENT_LIMIT_PCT
    if s["realtime_ratio"] >= REALTIME:
        return "client" if client_busy else "ok"
    if not row["server_alive"]:
        return "server"
    return "client" if client_busy else "server"


def step_series(
    run: Any, steps: list[int], refine: int, deadline: float, hard_deadline: float, cost: Any, label: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Runs ``run(n)`` over ``steps`` until a step fails (or the client saturates); ``refine``
    extra steps bisect between the last good and the first bad count. A step that would end after
    ``deadline`` is skipped, except the first two (which only ``hard_deadline`` stops)."""
    rows: list[dict[str, Any]] = []
    best, limit, bad = 0, "steps exhausted", None

    def one(n: int) -> str | None:
        end = time.monotonic() + cost(n)
        if end > hard_deadline or (len(rows) >= 2 and end > deadline):
            print(f"[compare] {label} x{n}: skipped (time budget)", flush=True)
            return None
        row = run(n)
        row["verdict"] = verdict(row)
        rows.append(row)
        s = row["summary"]
        print(
            f"[compare] {label} x{n}: real-time {s.get('realtime')}/{n}, server CPU "
            f"{fmt(row['server_cpu_pct'])}%, RSS {fmt(row['server_rss_mib'])} MiB, client CPU "
            f"{s.get('client_cpu_pct')}% -> {row['verdict']}",
            flush=True,
        )
        return str(row["verdict"])

    for n in steps:
        v = one(n)
        if v is None:
            limit = "time budget"
            break
        if v == "ok":
            best = n
            continue
        if v == "client" and row_ok(rows[-1]):
            best, limit = n, "client"
            break
        limit, bad = v, n
        break
    while refine > 0 and bad is not None and bad - best > max(20, best // 8):
        refine -= 1
        mid = (best + bad) // 2
        v = one(mid)
        if v is None:
            break
        if v == "ok":
            best = mid
        elif v == "client" and row_ok(rows[-1]):
            best, limit = mid, "client"
            break
        else:
            bad, limit = mid, v
    return rows, {"max": best, "limit": limit, "first_bad": bad}


def row_ok(row: dict[str, Any]) -> bool:
    return bool(row["summary"].get("realtime_ratio", 0) >= REALTIME)


def first_frame(url: str, players: int = 20, spread_s: float = 2.5, seconds: float = 3.0) -> dict[str, Any]:
    """Players join over ``spread_s`` (every phase of a 1 s GOP): time to the first video frame."""
    res = asyncio.run(run_load(url, players, seconds, players / spread_s))
    s = res.summary()
    return {"players": players, "receiving": s["receiving"], "first_frame_ms": s["first_frame_ms"],
            "errors": s["errors"]}  # fmt: skip


def latency(server: Running, clip: Path, seconds: float) -> dict[str, Any]:
    res = asyncio.run(
        measure_latency(
            server.rtmp, server.http or "http://127.0.0.1:9", clip, name="live/latency",
            rtmp_players=3, flv_players=3 if server.http else 0, seconds=seconds,
        )
    )  # fmt: skip
    return res


def bench_server(
    name: str, args: argparse.Namespace, clip: Path, work: Path, deadline: float
) -> dict[str, Any]:
    server = start_server(name, work, args.write_coalesce if name == "streamhive" else 0.0)
    pub = nogop = None
    out: dict[str, Any] = {"server": name, "version": server.version, "gop_cache": server.gop_cache,
                           "steps": [], "max": {}}  # fmt: skip
    try:
        pub = publish_ffmpeg(f"{server.rtmp}/{STREAM}", clip, args.budget + 120)
        wait_playable(f"{server.rtmp}/{STREAM}")
        time.sleep(1.0)
        w = CpuWindow(server.pids())
        time.sleep(3.0)
        out["baseline"] = {**w.read(), "rss_mib": round(server.rss_mib(), 1)}
        print(f"[compare] {name} {server.version}: idle with one publisher {out['baseline']}", flush=True)
        have = ["rtmp", "publish"] + (["http-flv"] if server.http else [])
        todo = [p for p in args.protocols.split(",") if p]
        reserve = 2 * (args.ff_seconds + 4) + args.latency_seconds + 6  # first frame and latency
        for j, proto in enumerate(todo):
            if proto not in have:
                out["max"][proto] = {"max": None, "limit": f"no {proto} in {name}"}
                continue
            # an even share of this server's remaining time for each remaining load
            server_deadline = time.monotonic() + (deadline - reserve - time.monotonic()) / (len(todo) - j)
            if proto == "publish":
                rows, best = step_series(
                    lambda n: publish_step(server, n, args.duration, args.ramp, clip, work),
                    args.publisher_steps, args.refine, server_deadline, args.hard_deadline,
                    lambda n: n / args.ramp + args.duration + 2, f"{name} publish",
                )  # fmt: skip
            else:
                rows, best = step_series(
                    lambda n, p=proto: play_step(server, p, n, args.duration, args.ramp, work),  # type: ignore[misc]
                    args.steps, args.refine, server_deadline, args.hard_deadline,
                    lambda n: n / args.ramp + args.duration + 2, f"{name} {proto}",
                )  # fmt: skip
            out["steps"] += rows
            out["max"][proto] = best
            if server.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({server.proc.returncode}) during {proto}")
        # time to first frame at light load, with and without the GOP cache
        ff: dict[str, Any] = {}
        ff["gop cache" if "cache" in server.gop_cache.lower() else "no gop cache"] = first_frame(
            f"{server.rtmp}/{STREAM}", seconds=args.ff_seconds
        )
        if server.nogop_path:
            nogop = publish_ffmpeg(f"{server.rtmp}/{server.nogop_path}", clip, 60)
            wait_playable(f"{server.rtmp}/{server.nogop_path}")
            ff["no gop cache"] = first_frame(f"{server.rtmp}/{server.nogop_path}", seconds=args.ff_seconds)
            stop(nogop)  # type: ignore[arg-type]
            nogop = None
        out["first_frame"] = ff
        print(f"[compare] {name} first frame: {json.dumps(ff)}", flush=True)
        out["latency"] = latency(server, clip, args.latency_seconds)
        print(f"[compare] {name} latency: {json.dumps(out['latency'])}", flush=True)
    finally:
        stop(nogop)  # type: ignore[arg-type]
        stop(pub)  # type: ignore[arg-type]
        stop(server.proc)  # type: ignore[arg-type]
        out["log_tail"] = (work / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
    return out


# -- report ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, AttributeError):
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem = int(m.group(1)) // 1024 if m else 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pinning": "server on CPU 0, publisher and load clients on CPU 1" if pinned(1) else "unpinned",
    }


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per server and protocol: the largest real-time step and what limited it."""
    rows = []
    ref: dict[str, dict[str, Any]] = {}
    for srv in report["servers"]:
        base = srv.get("baseline", {}).get("cpu_pct", 0.0)
        for proto, best in srv.get("max", {}).items():
            steps = [r for r in srv["steps"] if r["protocol"] == proto]
            at = next((r for r in steps if r["clients"] == best.get("max")), None)
            per100 = None
            good = [r for r in steps if row_ok(r) and r["server_cpu_pct"] is not None]
            if good:
                top = max(good, key=lambda r: r["clients"])
                per100 = round((top["server_cpu_pct"] - base) / top["clients"] * 100, 2)
            row = {
                "server": srv["server"], "version": srv["version"], "protocol": proto,
                "max": best.get("max"), "limit": best.get("limit"),
                "cpu_pct": at["server_cpu_pct"] if at else None,
                "rss_mib": at["server_rss_mib"] if at else None,
                "client_cpu_pct": at["summary"].get("client_cpu_pct") if at else None,
                "ff": at["summary"].get("first_frame_ms") if at and proto != "publish" else None,
                "cpu_per_100": per100,
                "projected_per_core": int((100 - base) / per100 * 100) if per100 and per100 > 0 else None,
            }  # fmt: skip
            rows.append(row)
            if srv["server"] == "streamhive":
                ref[proto] = row
    for row in rows:
        r = ref.get(row["protocol"])
        row["ratio"] = None  # of the max counts: exact when both were server-limited, else a bound
        if r and r.get("max") and row.get("max") is not None:
            ratio = row["max"] / r["max"]
            exact_peer, exact_ref = row["limit"] == "server", r["limit"] == "server"
            if exact_peer and exact_ref:
                row["ratio"] = f"{ratio:.2f}"
            elif exact_ref:
                row["ratio"] = f"≥ {ratio:.2f}"
            elif exact_peer:
                row["ratio"] = f"≤ {ratio:.2f}"
        row["cost_ratio"] = (
            round(row["cpu_per_100"] / r["cpu_per_100"], 2)
            if r and r.get("cpu_per_100") and row.get("cpu_per_100")
            else None
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Peer comparison, {report['date']} ({report['mode']}): {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['pinning']}.",
        f"Stream: {report['stream']}; {report['duration_s']:g} s per step after a ramp of "
        f"{report['ramp_per_s']:g} clients/s; real time = at least 98% of the clients keep up.",
        "",
        "| server | version | load | max real-time | limited by | server CPU % | RSS MiB | "
        "first frame p50/p95 ms | CPU %/100 clients | projected clients/core | ratio to streamhive "
        "(max / CPU cost) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["summary"]:
        ff = r["ff"]
        limit = r["limit"]
        maxv = (
            "–"
            if r["max"] is None
            else (f"≥ {r['max']}" if limit in ("client", "steps exhausted", "time budget") else str(r["max"]))
        )
        lines.append(
            f"| {r['server']} | {r['version']} | {r['protocol']} | {maxv} | {limit} | {fmt(r['cpu_pct'])} | "
            f"{fmt(r['rss_mib'])} | {fmt(ff['p50'], 0) if ff else '–'} / {fmt(ff['p95'], 0) if ff else '–'} | "
            f"{fmt(r['cpu_per_100'], 2)} | {fmt(r['projected_per_core'])} | "
            f"{r['ratio'] or '–'} / {fmt(r['cost_ratio'], 2)} |"
        )
    lines += [
        "",
        "`limited by`: *server* — fewer than 98% of the clients stayed real time while the load client "
        f"had CPU to spare; *client* — the load client (one Python process on CPU 1) reached "
        f"{CLIENT_LIMIT_PCT:.0f}% CPU, so the server kept up with at least that many (the true maximum is "
        "higher); *steps exhausted* / *time budget* — no failing step was reached. "
        "`CPU %/100 clients` is the server CPU above the idle publisher-only server per 100 clients at "
        "the largest real-time step; `projected clients/core` extrapolates it linearly to 100% of a core "
        "(a projection, not a measurement). The cost ratio is server CPU per client relative to streamhive "
        "(below 1: cheaper than streamhive); the max ratio is shown only where the server limited "
        "streamhive or the peer (a bound when only one of them was server-limited).",
        "",
        "| server | steps (clients: real-time %, server CPU %, client CPU %) |",
        "|---|---|",
    ]
    for srv in report["servers"]:
        for proto in srv.get("max", {}):
            cells = [
                f"{r['clients']}: {100 * r['summary'].get('realtime_ratio', 0):.0f}%, "
                f"{fmt(r['server_cpu_pct'])}, {fmt(r['summary'].get('client_cpu_pct'), 0)}"
                for r in srv["steps"]
                if r["protocol"] == proto
            ]
            if cells:
                lines.append(f"| {srv['server']} {proto} | {' · '.join(cells)} |")
    lines += [
        "",
        "| server | new player starts from | first frame p50 / p95 ms (GOP cache) | "
        "first frame p50 / p95 ms (no GOP cache) | server-added latency RTMP p50 / p99 ms | "
        "HTTP-FLV p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for srv in report["servers"]:
        ff = srv.get("first_frame", {})
        lat = srv.get("latency", {})

        def ffc(key: str, ff: dict[str, Any] = ff) -> str:
            v = ff.get(key)
            return (
                f"{fmt(v['first_frame_ms']['p50'], 0)} / {fmt(v['first_frame_ms']['p95'], 0)}" if v else "–"
            )

        def latc(key: str, lat: dict[str, Any] = lat) -> str:
            v = lat.get(key)
            return f"{fmt(v['p50_ms'], 1)} / {fmt(v['p99_ms'], 1)}" if v and v.get("samples") else "–"

        lines.append(
            f"| {srv['server']} | {srv['gop_cache']} | {ffc('gop cache')} | {ffc('no gop cache')} | "
            f"{latc('rtmp')} | {latc('http-flv')} |"
        )
    lines += [
        "",
        "First frame: 20 RTMP players joining over 2.5 s (all phases of the 1 s GOP), measured from the "
        "start of the TCP connection. Latency: `bench/latency.py`, 3 players per protocol at light load, "
        "receive time minus the time the publisher wrote the frame (both on CPU 1, so it includes one "
        "trip through the load client's event loop).",
    ]
    if report.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items())]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    protos = [p for p in ("rtmp", "http-flv", "publish") if any(
        r["protocol"] == p for s in report["servers"] for r in s["steps"])]  # fmt: skip
    if not protos:
        return "no steps"
    fig, axes = plt.subplots(1, len(protos), figsize=(5.5 * len(protos), 4.2), squeeze=False)
    for ax, proto in zip(axes[0], protos, strict=True):
        for srv in report["servers"]:
            rows = sorted((r for r in srv["steps"] if r["protocol"] == proto), key=lambda r: r["clients"])
            rows = [r for r in rows if r["server_cpu_pct"] is not None]
            if not rows:
                continue
            xs = [r["clients"] for r in rows]
            ys = [r["server_cpu_pct"] for r in rows]
            color = COLORS.get(srv["server"], "C3")
            base = srv.get("baseline", {}).get("cpu_pct")
            (line,) = ax.plot(
                [0, *xs] if base is not None else xs, [base, *ys] if base is not None else ys,
                marker="o", color=color, label=srv["server"],
            )  # fmt: skip
            bad = [(x, y) for x, y, r in zip(xs, ys, rows, strict=True) if not row_ok(r)]
            if bad:
                ax.scatter(*zip(*bad, strict=True), marker="x", s=80, color=line.get_color(), zorder=3)
        ax.set_title(f"{proto} ({'publishers' if proto == 'publish' else 'players'}, ~600 kbit/s each)")
        ax.set_xlabel("clients")
        ax.set_ylabel("server CPU % (one core = 100)")
        ax.axhline(100, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"server CPU vs clients, {report['date'][:10]} (x: fewer than 98% real time)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def latest(pattern: str) -> Path | None:
    files = sorted(RESULTS.glob(pattern))
    default = [f for f in files if _mode(f) == "default"]
    return (default or files or [None])[-1]


def _mode(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("mode")  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def hls_headline(hls: dict[str, Any]) -> str:
    """The HLS results in one paragraph."""
    out = []
    mux = hls.get("mux", {})
    if "cost_pct" in mux:
        out.append(f"muxing costs {mux['cost_pct']:.2f}% of a core per 2 Mbit/s stream")
    for mode, label in (("classic", "classic HLS"), ("ll", "LL-HLS")):
        n = hls.get("max_realtime", {}).get(mode)
        row = next(
            (r for r in hls.get("steps", []) if r["mode"] == mode and r["summary"]["viewers"] == n), None
        )
        if n and row:
            nxt = [r for r in hls["steps"] if r["mode"] == mode and r["summary"]["viewers"] > n]
            why = ""
            if nxt:
                c = nxt[0]["summary"]["client_cpu_pct"]
                why = (
                    f" (the next step, {nxt[0]['summary']['viewers']}, failed with the load client at {c:.0f}% "
                    "CPU, sharing CPU 1 with the live encoder)"
                )
            out.append(f"{label}: {n} viewers real time at {row['server_cpu_pct']:.0f}% server CPU{why}")
    req = hls.get("requests", {})
    if req.get("ratio") is not None:
        out.append(
            f"one cached segment: {req['streamhive']['req_s']:.0f} req/s vs nginx {req['nginx']['req_s']:.0f} "
            f"({req['ratio']:.2f})"
        )
    return "; ".join(out) + "." if out else ""


def performance_doc(report: dict[str, Any], table: str) -> str:
    from bench import run_hls, run_spine

    m = report["machine"]
    parts = [
        "# Performance",
        "",
        "Measured on loopback by the scripts in `bench/` (see `bench/README.md`); regenerated by "
        "`bench/compare.py`. Numbers are from one small machine and are best read as ratios between "
        "servers measured the same way on it, not as absolute capacities.",
        "",
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_mib']} MiB, Linux {m['kernel']}, "
        f"Python {m['python']}; {m['pinning']}",
        f"- date: {report['date']}",
        f"- reproduce: `{report['command']}` (full run: `python bench/compare.py`, about 9 minutes; "
        "peers: `apt-get install nginx libnginx-mod-rtmp`, `npm install --prefix bench/peers "
        "node-media-server@4`, `pip install -e '.[bench]'`)",
        "",
        "With two cores the load client (one Python process) shares CPU 1 with the publisher, so above a "
        "few hundred players the *client* is often the limit; the table says which side was. The CPU "
        "cost per client is the fairer comparison there.",
        "",
        "## streamhive vs nginx-rtmp vs Node-Media-Server",
        "",
        "![server CPU vs clients](performance.png)" if report.get("chart") else "",
        "",
        table,
    ]
    spine = latest("spine-*.json")
    if spine:
        parts += ["", "## Fan-out spine (`bench/run_spine.py`)", "", f"From `{spine.name}`:", "",
                  run_spine.markdown(json.loads(spine.read_text()))]  # fmt: skip
    hls = latest("hls-*.json")
    if hls:
        parts += ["", "## HLS / LL-HLS (`bench/run_hls.py`)", "", hls_headline(json.loads(hls.read_text())),
                  "", f"From `{hls.name}`:", "",
                  run_hls.markdown(json.loads(hls.read_text()))]  # fmt: skip
    return "\n".join(parts) + "\n"


def render(path: Path, docs: bool = True) -> int:
    report = json.loads(path.read_text())
    report["summary"] = summarise(report)
    png = path.with_suffix(".png")
    err = chart(report, png)
    report["chart"] = None if err else png.name
    path.write_text(json.dumps(report, indent=1))
    table = markdown(report)
    path.with_suffix(".md").write_text(table + "\n")
    print(table)
    if docs:
        write_docs(report, table)
    return 0


_CHILDREN: list[subprocess.Popen[Any]] = []  # every server, publisher and client started here


def _track(proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]
    _CHILDREN.append(proc)
    return proc


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM: stop what we started (by PID), then exit (an exception would be swallowed by
    asyncio callbacks)."""
    for proc in reversed(_CHILDREN):
        with contextlib.suppress(OSError):
            proc.terminate()
    for proc in reversed(_CHILDREN):
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    os._exit(128 + signum)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/compare.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 3 minutes: fewer, shorter steps")
    ap.add_argument("--servers", default="streamhive,nginx-rtmp,nms")
    ap.add_argument(
        "--write-coalesce",
        type=float,
        default=0.0,
        help="streamhive's write_coalesce (seconds of frames per write, like SRS mw_latency; default 0)",
    )
    ap.add_argument("--protocols", default="rtmp,http-flv,publish")
    ap.add_argument("--steps", help="player counts (default 200,400,800,1200,1600; quick 300,900)")
    ap.add_argument("--publisher-steps", help="publisher counts (default 25,50,100,200; quick 50)")
    ap.add_argument("--duration", type=float, help="seconds per step after the ramp (default 8, quick 4)")
    ap.add_argument("--ramp", type=float, default=200.0, help="clients started per second (default 200)")
    ap.add_argument("--refine", type=int, help="bisection steps after the first failure (default 1, quick 0)")
    ap.add_argument("--budget", type=float, help="overall time budget in seconds (default 540, quick 180)")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/compare-<date>.json)")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    ap.add_argument("--render", type=Path, help="only re-render the Markdown/chart/docs of a results JSON")
    args = ap.parse_args(argv)
    if args.render:
        return render(args.render, docs=not args.no_docs)
    q = args.quick
    args.steps = [int(x) for x in args.steps.split(",")] if args.steps else (
        [300, 900] if q else [200, 400, 800, 1200, 1600])  # fmt: skip
    args.publisher_steps = [int(x) for x in args.publisher_steps.split(",")] if args.publisher_steps else (
        [50] if q else [25, 50, 100, 200])  # fmt: skip
    args.duration = args.duration or (4.0 if q else 8.0)
    args.refine = args.refine if args.refine is not None else (0 if q else 1)
    args.budget = args.budget or (180.0 if q else 540.0)
    args.ff_seconds = 2.0 if q else 3.0
    args.latency_seconds = 4.0 if q else 8.0
    t_start = time.monotonic()
    args.hard_deadline = t_start + args.budget + 60
    signal.signal(signal.SIGTERM, _terminate)  # clean up servers and publishers on kill
    raise_fd_limit()
    install_uvloop()
    if pinned(1):
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {1})  # this process and every client on CPU 1
    work = Path(tempfile.mkdtemp(prefix="compare-"))
    clip = work / "clip.flv"
    make_clip(clip, 10.0)
    stamp = dt.datetime.now()
    command = "python bench/compare.py" + ("" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(
        argv if argv is not None else sys.argv[1:]))  # fmt: skip
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds"),
        "mode": "quick" if q else "default",
        "command": command.strip(),
        "machine": machine(),
        "stream": STREAM_DESC,
        "duration_s": args.duration,
        "ramp_per_s": args.ramp,
        "steps": args.steps,
        "publisher_steps": args.publisher_steps,
        "servers": [],
        "skipped": {},
    }
    probe = StallProbe()
    probe.start()
    names = [n for n in args.servers.split(",") if n]
    try:
        for i, name in enumerate(names):
            why = available(name)
            if why:
                report["skipped"][name] = why
                print(f"[compare] skipping {name}: {why}", flush=True)
                continue
            # an even share of what is left for each remaining server
            left = args.budget - (time.monotonic() - t_start)
            deadline = time.monotonic() + left / (len(names) - i)
            try:
                report["servers"].append(bench_server(name, args, clip, work, deadline))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                report["skipped"][name] = f"failed: {exc}"
                print(f"[compare] {name} failed: {exc}", flush=True)
    finally:
        probe.running = False
    report["machine_stalls"] = probe.result()
    report["summary"] = summarise(report)
    report["elapsed_s"] = round(time.monotonic() - t_start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"compare-{stamp:%Y%m%d-%H%M%S}.json"
    png = out.with_suffix(".png")
    err = chart(report, png)
    report["chart"] = None if err else png.name
    if err:
        print(f"[compare] no chart: {err}", flush=True)
    out.write_text(json.dumps(report, indent=1))
    table = markdown(report)
    out.with_suffix(".md").write_text(table + "\n")
    print()
    print(table)
    if not args.no_docs:
        write_docs(report, table)
    print(
        f"results: {out} (+ .md{', .png' if not err else ''}); elapsed {report['elapsed_s']} s; logs in {work}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
