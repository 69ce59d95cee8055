"""The RTSP benchmark: RTSP readers per core, and server CPU per pulled RTSP camera.

a. **readers per core**: ``streamhive serve`` on CPU 0; ffmpeg on CPU 1 encodes testsrc2 1280x720
   25 fps H.264 2 Mbit/s (ultrafast, 1 s GOP) + AAC 128 kbit/s live (``-re``) and publishes it
   over RTSP (ANNOUNCE/RECORD, TCP interleaved). The server's CPU% (utime+stime from
   /proc/PID/stat) is measured idle, with the stream and no reader, and then with N RTSP readers
   (bench/rtspclient.py, TCP interleaved, on CPU 1) for N in ``--steps``, stopping at the first
   step where fewer than 98% of the readers kept up (real time by RTP timestamps, no gap over 1 s,
   and at least ``--min-pct`` of the bytes one lone reader gets). It reports CPU% per 100 readers
   above the published-idle server and a linear projection to one core.
   **Peer**: the same readers against GStreamer's gst-rtsp-server (the library behind
   tests/peers/gst_rtsp_server.py) re-serving the same live encode, which ffmpeg sends it as MPEG-TS
   over UDP (``udpsrc ! tsdemux ! h264parse/aacparse ! rtph264pay/rtpmp4gpay``, one shared media
   for all readers), also on CPU 0; its baseline is its CPU with one reader (its pipeline only runs
   while someone reads). MediaMTX, live555 and v4l2rtspserver are not packaged for this machine's
   Debian, and npm's rtsp-streaming-server serves readers over UDP only, so gst-rtsp-server is the
   peer. ``--no-peer`` skips it.
b. **CPU per pulled camera**: K = ``--cameras`` (1, 4, 8) paths, each with ``source:`` on its own
   tests/peers/gst_rtsp_server.py process (/h264aac: H.264 320x240 25 fps ~400 kbit/s + AAC; on
   CPU 1; independent encoders and clocks, as real cameras are), ``source_protocol: tcp``, always
   on; a fresh server per K, no readers; CPU% above the idle server, per camera.
   ``--shared-camera`` points all K at one mount of one process instead: its shared pipeline
   sends each packet to the K connections at once, so one wakeup of the server reads them all,
   which makes a camera look cheaper than an unsynchronized one is.
c. ``--profile N``: py-spy (``--format raw``, and a flame graph) of the server under N readers;
   prints the top functions by self time.

Results go to bench/results/rtsp-<date>.json and a Markdown table; :func:`run` returns the report.

    python bench/run_rtsp.py                 # about 5 minutes
    python bench/run_rtsp.py --quick         # about 1.5 minutes
    python bench/run_rtsp.py --profile 200   # and a py-spy profile under 200 readers
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare import _terminate, _track  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402
from bench.profile import py_spy, top_functions  # noqa: E402
from bench.run_hls import CpuWindow, StallProbe, stalls_line  # noqa: E402
from bench.run_spine import (  # noqa: E402
    api_paths,
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
    wait_for_stream,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULTS = ROOT / "bench" / "results"
GST_PEER = ROOT / "tests" / "peers" / "gst_rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
STREAM = "live/rtsp"
CAMERA_MOUNT = "h264aac"
KEEP_UP = 0.98
STREAM_DESC = "testsrc2 1280x720 25 fps H.264 2 Mbit/s (ultrafast, 1 s GOP) + AAC 128 kbit/s, -re"
INPUTS = [
    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
]  # fmt: skip
CODECS = [
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
    "-sc_threshold", "0", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "128k",
]  # fmt: skip

# gst-rtsp-server re-serving a live MPEG-TS/UDP feed to RTSP readers; argv: peers dir, port, UDP port, mount
PEER_SCRIPT = r"""
import signal, sys
sys.path.insert(0, sys.argv[1])
import gst_rtsp_server as g  # exits 2 when GStreamer's Python bindings are missing
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

port, udp_port, mount = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
Gst.init(None)
missing = [e for e in ("udpsrc", "tsdemux", "h264parse", "aacparse", "rtph264pay", "rtpmp4gpay")
           if Gst.ElementFactory.find(e) is None]
if missing:
    print("MISSING elements: " + ", ".join(missing), file=sys.stderr)
    sys.exit(2)
launch = (
    f"udpsrc port={udp_port} address=127.0.0.1 buffer-size=4194304 "
    'caps="video/mpegts,systemstream=(boolean)true,packetsize=(int)188" '
    "! tsdemux name=d latency=0 "
    "d. ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 mtu=1400 "
    "d. ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 mtu=1400 "
)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(port))
server.get_mount_points().add_factory(mount, g.make_factory(launch, None, GstRtsp.RTSPLowerTrans.TCP))
loop = GLib.MainLoop()
if server.attach(None) == 0:
    print(f"ERROR cannot listen on {port}", file=sys.stderr)
    sys.exit(1)
for sig in (signal.SIGTERM, signal.SIGINT):
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
print(f"READY {server.get_bound_port()} gst-rtsp-server {Gst.version_string()}", flush=True)
loop.run()
"""


# -- processes ------------------------------------------------------------------------------------
def gst_check() -> str | None:
    """None when the GStreamer peer can run, else why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    res = subprocess.run([SYSTEM_PYTHON, str(GST_PEER), "--check"], capture_output=True, text=True)
    return (
        None if res.returncode == 0 else (res.stderr.strip() or res.stdout.strip() or "check failed")[-300:]
    )


def start_ready(cmd: list[str], log: Path, timeout: float = 20) -> tuple[subprocess.Popen[str], str]:
    """Start a peer that prints ``READY ...`` on stdout; returns it and that line."""
    with open(log, "w") as err:
        proc = _track(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True))
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sel.select(max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if line.startswith("READY"):
                    return proc, line.strip()
                if not line:
                    break
    finally:
        sel.close()
    stop(proc)
    raise RuntimeError(f"{cmd[1]} did not start: {log.read_text()[-500:]}")


def publish(url: str, seconds: float) -> subprocess.Popen[bytes]:
    """The live encode on CPU 1, to ``rtsp://`` (RTSP RECORD over TCP) or ``udp://`` (MPEG-TS)."""
    out = (
        ["-f", "rtsp", "-rtsp_transport", "tcp", url]
        if url.startswith("rtsp://")
        else ["-f", "mpegts", f"{url}?pkt_size=1316"]
    )
    return _track(
        subprocess.Popen(
            [*pinned(1), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", *INPUTS,
             "-t", str(int(seconds)), *CODECS, *out],
            stdin=subprocess.DEVNULL,
        )
    )  # fmt: skip


def server_config(work: Path, name: str, cameras: list[str] | None = None) -> tuple[Path, int, int, str]:
    """A config on free loopback ports (RTSP over TCP only: no shared UDP ports); returns it, the
    HTTP and RTSP ports and the HTTP base URL."""
    rtmp_port, http_port, rtsp_port = free_port(), free_port(), free_port()
    lines = [
        f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"',
        f'http:\n  listen: "127.0.0.1:{http_port}"',
        f'rtsp:\n  listen: "127.0.0.1:{rtsp_port}"\n  udp: false',
    ]
    if cameras:
        lines.append("paths:")
        for i, url in enumerate(cameras):
            lines.append(f"  cam{i}:\n    source: {url}\n    source_protocol: tcp")
    config = work / f"{name}.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config, http_port, rtsp_port, f"http://127.0.0.1:{http_port}"


def window(pids: list[int], seconds: float) -> dict[str, float]:
    w = Window(pids)
    time.sleep(seconds)
    return w.read()


def cpu_busy(cpu: int) -> float:
    """Busy seconds of one CPU (every process), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # minus idle and iowait
    return 0.0


class Window(CpuWindow):
    """run_hls's CpuWindow (the server's CPU%, and others' on CPU 0), plus how busy CPU 1 was: near
    100% the publisher and the load client (both there) were starved and the step says little."""

    def __init__(self, pids: list[int]) -> None:
        self.cpu1 = cpu_busy(1)
        super().__init__(pids)

    def read(self) -> dict[str, float]:
        out = super().read()
        out["cpu1_busy_pct"] = (
            round(100 * (cpu_busy(1) - self.cpu1) / out["seconds"], 1) if out["seconds"] else 0.0
        )
        return out


# -- readers ------------------------------------------------------------------------------------
def run_readers(
    url: str,
    n: int,
    duration: float,
    ramp: float,
    pids: list[int],
    out: Path,
    expected: float | None,
    min_pct: float,
    settle: float | None = None,
) -> dict[str, Any]:
    """One rtspclient run on CPU 1; the server's CPU between its 'steady' and 'end' marks."""
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.rtspclient", url, "--readers", str(n),
        "--duration", str(duration), "--ramp", str(ramp), "--min-pct", str(min_pct),
        "--json", str(out), "--marks",
    ]  # fmt: skip
    if expected:
        cmd += ["--expected-kbps", f"{expected:.1f}"]
    if settle is not None:
        cmd += ["--settle", str(settle)]
    cpu, rss = run_marked(cmd, pids[0], n / max(ramp, 1) + duration + 60, lambda: Window(pids).read)
    summary = json.loads(out.read_text())["summary"]
    return {
        "readers": n,
        "summary": summary,
        "server_cpu_pct": cpu["cpu_pct"] if cpu else None,
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"] if cpu else None,
        "cpu1_busy_pct": cpu["cpu1_busy_pct"] if cpu else None,
        "server_rss_mib": rss,
    }


def readers_series(
    name: str,
    url: str,
    pids: list[int],
    args: argparse.Namespace,
    work: Path,
    t_start: float,
    baseline: float | None,
) -> dict[str, Any]:
    """Calibration (one reader) then the steps, for one server already serving the stream.

    CPU per 100 readers is above ``baseline``, or above the CPU with the one calibration reader
    when it is None."""
    res: dict[str, Any] = {"server": name, "steps": []}
    expected = None
    if args.calibrate_seconds > 0:
        # the steady window starts 2 s in: after a peer's first-reader pipeline start-up (~1 s for
        # gst-rtsp-server) and after streamhive's GOP-cache burst, so it is the stream's own rate
        cal = run_readers(
            url, 1, args.calibrate_seconds + 2, 0, pids, work / f"{name}-cal.json", None, args.min_pct, 2.0
        )
        expected = cal["summary"]["reader_kbps"]["p50"]
        res["calibration"] = {
            "expected_kbps": expected,
            "server_cpu_pct": cal["server_cpu_pct"],
            "first_packet_ms": cal["summary"]["first_packet_ms"]["p50"],
            "errors": cal["summary"]["errors"],
        }
        print(
            f"[rtsp] {name}: one reader gets {expected} kbit/s, server CPU {fmt(cal['server_cpu_pct'])}%",
            flush=True,
        )
        if not expected:
            raise RuntimeError(f"{name}: a lone reader received nothing: {cal['summary']}")
    res["expected_kbps"] = expected
    if baseline is None:
        baseline = (res.get("calibration") or {}).get("server_cpu_pct") or 0.0
    res["baseline_cpu_pct"] = base = baseline
    res["max_kept_up"] = 0
    for n in args.steps:
        needed = n / args.ramp + args.duration + 5
        if time.monotonic() - t_start + needed > args.budget:
            print(f"[rtsp] skipping {name} x{n}: over the time budget", flush=True)
            res["budget_stop"] = n
            break
        row = run_readers(
            url, n, args.duration, args.ramp, pids, work / f"{name}-{n}.json", expected, args.min_pct
        )
        cpu, s = row["server_cpu_pct"], row["summary"]
        row["cpu_pct_per_100"] = round((cpu - base) / n * 100, 2) if cpu is not None else None
        res["steps"].append(row)
        print(
            f"[rtsp] {name} x{n}: kept up {s['kept_up']}/{n} (real time {s['realtime']}), server CPU "
            f"{fmt(cpu)}% ({fmt(row['cpu_pct_per_100'], 2)}%/100), reader kbit/s p50 {s['reader_kbps']['p50']}, "
            f"first packet p50 {s['first_packet_ms']['p50']} ms, client CPU {s['client_cpu_pct']}% "
            f"(CPU 1 busy {fmt(row['cpu1_busy_pct'], 0)}%), "
            f"errors {s['errors'] or 'none'}",
            flush=True,
        )
        if s["kept_up_ratio"] < KEEP_UP:
            break
        res["max_kept_up"] = n
    good = [r for r in res["steps"] if r["readers"] == res["max_kept_up"]]
    per100 = good[0]["cpu_pct_per_100"] if good else None
    res["cpu_pct_per_100"] = per100
    res["projected_per_core"] = int((100 - base) / per100 * 100) if per100 and per100 > 0 else None
    res["cpu_pct_per_100_fit"] = slope_per_100(
        base, [r for r in res["steps"] if r["readers"] <= res["max_kept_up"]]
    )
    return res


def slope_per_100(base: float, rows: list[dict[str, Any]]) -> float | None:
    """Least-squares CPU% per 100 readers through (0, base) and the kept-up steps: less sensitive
    than the top step alone to a burst of other work on CPU 0."""
    points = [(0.0, base)] + [
        (r["readers"], r["server_cpu_pct"]) for r in rows if r["server_cpu_pct"] is not None
    ]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return round(100 * sum((x - mx) * (y - my) for x, y in points) / sxx, 2) if sxx else None


def profile_server(
    url: str, pid: int, n: int, seconds: float, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """py-spy (raw + flame graph) of the server while ``n`` readers play."""
    spy = args.py_spy or py_spy()
    if spy is None:
        return {"error": "py-spy not installed (pip install py-spy, or pass --py-spy PATH)"}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    svg = RESULTS / f"rtsp-profile-{stamp}.svg"
    raw = svg.with_suffix(".txt")
    svg.parent.mkdir(parents=True, exist_ok=True)
    out = work / f"profile-{n}.json"
    cmd = [
        *pinned(1), sys.executable, "-m", "bench.rtspclient", url, "--readers", str(n),
        "--duration", str(seconds + 5), "--ramp", str(args.ramp), "--json", str(out), "--marks",
    ]  # fmt: skip
    client = _track(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True))
    errors: list[str] = []
    cpu = None
    try:
        assert client.stdout is not None
        for line in client.stdout:
            if line.startswith("MARK steady"):
                break
        common = [
            "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(args.profile_rate),
            *(["--native"] if args.profile_native else ["--nonblocking"]),
        ]  # fmt: skip
        # --native stops the server while it samples (no --nonblocking), and two tracers cannot do that
        outputs = [("raw", raw)] if args.profile_native else [("raw", raw), ("flamegraph", svg)]
        w = Window([pid])
        spies = [
            _track(subprocess.Popen([*pinned(1), spy, *common, "--format", fmt_, "-o", str(path)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            for fmt_, path in outputs
        ]  # fmt: skip
        for s in spies:
            _, err = s.communicate(timeout=seconds + 60)
            if s.returncode != 0:
                errors.append(err.strip()[-500:])
        cpu = w.read()
        client.communicate(timeout=seconds + 60)
    finally:
        stop(client)  # type: ignore[arg-type]
    if errors or not raw.exists():
        return {"error": "py-spy failed: " + " / ".join(errors)}
    top = top_functions(raw.read_text(), 10)
    summary = json.loads(out.read_text())["summary"] if out.exists() else {}
    return {
        "readers": n,
        "seconds": seconds,
        "rate": args.profile_rate,
        "native": args.profile_native,
        "server_cpu_pct": cpu["cpu_pct"] if cpu else None,
        "kept_up": summary.get("kept_up"),
        "flamegraph": str(svg) if svg.exists() else None,
        "raw": str(raw),
        **top,
    }


# -- cameras ------------------------------------------------------------------------------------
def camera_series(ks: list[int], seconds: float, idle: float, work: Path, shared: bool) -> dict[str, Any]:
    """A fresh server per K with K always-on camera sources and no reader.

    By default every camera is its own gst_rtsp_server.py process (its own encoder and clock, as
    independent cameras are); ``shared`` points all K at one mount of one process, whose shared
    pipeline sends every packet to the K connections at the same instant, so that one wakeup of
    the server reads them all: cheaper per camera than real, unsynchronized cameras."""
    res: dict[str, Any] = {"idle_cpu_pct": idle, "steps": [], "shared": shared}
    why = gst_check()
    if why is not None:
        res["skipped"] = f"gst_rtsp_server.py --check failed: {why}"
        print(f"[rtsp] cameras skipped: {res['skipped']}", flush=True)
        return res
    cams: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    res["camera"] = (
        f"tests/peers/gst_rtsp_server.py /{CAMERA_MOUNT} (H.264 320x240 25 fps ~400 kbit/s + AAC), "
        + ("one process and mount for all" if shared else "one process per camera")
    )
    settle = min(2.0, seconds / 2)
    try:
        for i in range(1 if shared else max(ks)):
            cmd = [
                *pinned(1),
                SYSTEM_PYTHON,
                str(GST_PEER),
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--transports",
                "tcp",
            ]
            cam, ready = start_ready(cmd, work / f"camera-{i}.log")  # fmt: skip
            cams.append(cam)
            urls.append(f"rtsp://127.0.0.1:{int(ready.split()[1])}/{CAMERA_MOUNT}")
        for k in ks:
            sources = urls[:1] * k if shared else urls[:k]
            config, http_port, rtsp_port, http = server_config(work, f"cameras-{k}", sources)
            server = _track(start_server(config, work / f"cameras-{k}.log", http_port, rtsp_port))
            try:
                for i in range(k):
                    wait_for_stream(http, f"cam{i}", timeout=20)
                time.sleep(settle)
                before = {p["name"]: p for p in api_paths(http)}
                cpu = window([server.pid], seconds)
                after = {p["name"]: p for p in api_paths(http)}
                rss = rss_mib(server.pid)
            finally:
                stop(server)
            frames = sum(after[n]["frames_in"] - before[n]["frames_in"] for n in after if n in before)
            kbps = sum(p.get("bitrate", 0) for p in after.values()) / 1000
            row = {
                "cameras": k,
                "server_cpu_pct": cpu["cpu_pct"],
                "others_on_cpu0_pct": cpu["others_on_cpu0_pct"],
                "cpu_pct_per_camera": round((cpu["cpu_pct"] - idle) / k, 3),
                "frames_per_s_per_camera": round(frames / cpu["seconds"] / k, 1),
                "kbit_s_per_camera": round(kbps / k, 1),
                "server_rss_mib": round(rss, 1),
            }
            res["steps"].append(row)
            print(
                f"[rtsp] {k} camera(s): server CPU {cpu['cpu_pct']}% ({row['cpu_pct_per_camera']}% each), "
                f"{row['frames_per_s_per_camera']} frames/s and {row['kbit_s_per_camera']} kbit/s each",
                flush=True,
            )
    finally:
        for cam in cams:
            stop(cam)  # type: ignore[arg-type]
    return res


# -- report -------------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"streamhive RTSP, {report['date']} ({report['mode']}), {report['machine']}",
        f"stream: {report['stream']}",
        f"publisher: {report['publisher']}",
        stalls_line(report),
    ]
    series = report.get("readers", [])
    if series:
        lines += [
            "",
            "| server | readers | kept up | real time | server CPU % | others on CPU 0 % | CPU %/100 readers "
            "| RSS MiB | reader kbit/s p5 / p50 | first packet p50 / p95 ms | Mbit/s in | client CPU % "
            "| CPU 1 busy % | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for res in series:
            lines.append(
                f"| {res['server']} | 0 | – | – | {fmt(res['baseline_cpu_pct'], 2)} | – | – | – | – | – | – | – | – | "
                f"{res['baseline_note']} |"
            )
            for row in res["steps"]:
                s = row["summary"]
                kb, fp = s["reader_kbps"], s["first_packet_ms"]
                lines.append(
                    f"| {res['server']} | {row['readers']} | {s['kept_up']} ({100 * s['kept_up_ratio']:.0f}%) | "
                    f"{s['realtime']} | {fmt(row['server_cpu_pct'])} | {fmt(row['others_on_cpu0_pct'])} | "
                    f"{fmt(row['cpu_pct_per_100'], 2)} | {fmt(row['server_rss_mib'])} | "
                    f"{fmt(kb['p5'], 0)} / {fmt(kb['p50'], 0)} | {fmt(fp['p50'], 0)} / {fmt(fp['p95'], 0)} | "
                    f"{fmt(s['mbit_s_in'])} | {fmt(s['client_cpu_pct'], 0)} | {fmt(row.get('cpu1_busy_pct'), 0)} | "
                    f"{s['errors'] or ''} |"
                )
        lines += [
            "",
            "| server | version | max readers kept up | CPU %/100 readers (top step) | CPU %/100 readers (fit) "
            "| projected readers/core | CPU per reader vs streamhive |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        ref = series[0].get("cpu_pct_per_100")
        for res in series:
            per100 = res.get("cpu_pct_per_100")
            ratio = f"{per100 / ref:.2f}" if per100 and ref else "–"
            lines.append(
                f"| {res['server']} | {res.get('version', '')} | {res['max_kept_up']} | {fmt(per100, 2)} | "
                f"{fmt(res.get('cpu_pct_per_100_fit'), 2)} | {fmt(res.get('projected_per_core'))} | {ratio} |"
            )
    if report.get("peer_note"):
        lines += ["", f"peer: {report['peer_note']}"]
    prof = report.get("profile")
    if prof:
        lines.append("")
        if "error" in prof:
            lines.append(f"profile: {prof['error']}")
        else:
            lines += [
                f"py-spy, streamhive under {prof['readers']} RTSP readers ({prof['kept_up']} kept up), server CPU "
                f"{fmt(prof['server_cpu_pct'])}%, {prof['samples']} busy samples; top by self time:",
                "",
                "| % of busy | samples | function |",
                "|---:|---:|---|",
                *(f"| {r['pct']:.1f} | {r['samples']} | `{r['function']}` |" for r in prof["self"]),
                "",
                f"flame graph: {prof['flamegraph'] or 'none (--profile-native)'}; collapsed stacks: {prof['raw']}",
            ]
    cams = report.get("cameras")
    if cams:
        lines.append("")
        if cams.get("skipped"):
            lines.append(f"cameras: {cams['skipped']}")
        else:
            lines += [
                f"pulled cameras ({cams['camera']}, source_protocol tcp, always on, no readers); "
                f"idle server {fmt(cams['idle_cpu_pct'], 2)}%",
                "",
                "| cameras | server CPU % | CPU % per camera | frames/s per camera (video+audio) | kbit/s per camera "
                "| RSS MiB | others on CPU 0 % |",
                "|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for row in cams["steps"]:
                lines.append(
                    f"| {row['cameras']} | {fmt(row['server_cpu_pct'], 2)} | {fmt(row['cpu_pct_per_camera'], 3)} | "
                    f"{fmt(row['frames_per_s_per_camera'])} | {fmt(row['kbit_s_per_camera'])} | "
                    f"{fmt(row['server_rss_mib'])} | {fmt(row['others_on_cpu0_pct'])} |"
                )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python bench/run_rtsp.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~1.5 minute version (fewer, shorter steps)")
    ap.add_argument("--steps", help="comma-separated reader counts (default 50,100,200,400; quick 50,200)")
    ap.add_argument("--duration", type=float, help="seconds per step after ramp-up (default 12, quick 5)")
    ap.add_argument("--ramp", type=float, default=200.0, help="readers started per second (default 200)")
    ap.add_argument("--min-pct", type=float, default=90.0, help="%% of a lone reader's bytes to keep up")
    ap.add_argument(
        "--calibrate-seconds",
        type=float,
        help="lone-reader window in s (default 5, quick 3; 0: none, the median reader)",
    )
    ap.add_argument(
        "--baseline-seconds", type=float, help="idle / no-reader CPU windows (default 4, quick 2)"
    )
    ap.add_argument("--cameras", help="comma-separated camera counts (default 1,4,8; quick 1,4; 0: skip)")
    ap.add_argument("--camera-seconds", type=float, help="CPU window per camera count (default 12, quick 5)")
    ap.add_argument(
        "--shared-camera", action="store_true", help="all K sources on one camera process (synchronized)"
    )
    ap.add_argument("--no-peer", action="store_true", help="skip the gst-rtsp-server comparison")
    ap.add_argument("--no-readers", action="store_true", help="skip part a (readers per core)")
    ap.add_argument("--profile", type=int, default=0, help="py-spy the server under this many readers")
    ap.add_argument("--profile-seconds", type=float, default=10.0)
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (default 100)")
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy --native: C frames too (pauses the server to sample)",
    )
    ap.add_argument("--py-spy", help="py-spy executable (default: next to python, or on PATH)")
    ap.add_argument("--budget", type=float, help="stop starting reader steps after this many seconds")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/rtsp-<date>.json)")
    args = ap.parse_args(argv)
    args.steps = (
        [int(x) for x in args.steps.split(",")]
        if args.steps
        else ([50, 200] if args.quick else [50, 100, 200, 400])
    )
    cams = args.cameras if args.cameras is not None else ("1,4" if args.quick else "1,4,8")
    args.cameras = [int(x) for x in cams.split(",") if x.strip() and int(x) > 0]
    args.duration = args.duration or (5.0 if args.quick else 12.0)
    if args.calibrate_seconds is None:
        args.calibrate_seconds = 3.0 if args.quick else 5.0
    args.baseline_seconds = args.baseline_seconds or (2.0 if args.quick else 4.0)
    args.camera_seconds = args.camera_seconds or (5.0 if args.quick else 12.0)
    args.budget = args.budget or (150.0 if args.quick else 600.0)
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written as JSON, see ``report['json']``)."""
    args = parse_args(argv)
    t_start = time.monotonic()
    raise_fd_limit()
    with contextlib.suppress(ValueError):  # not in the main thread: the caller cleans up
        signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="rtspbench-"))
    probe = StallProbe()
    probe.start()
    from streamhive import __version__

    report: dict[str, Any] = {
        **report_header(args.quick, "server (and peer) on CPU 0, publisher, clients and camera on CPU 1"),
        "stream": STREAM_DESC,
        "publisher": "ffmpeg (libx264/aac, on CPU 1) -> streamhive over RTSP (ANNOUNCE/RECORD, TCP); "
        "-> gst-rtsp-server as MPEG-TS over UDP",
        "duration_s": args.duration,
        "ramp_per_s": args.ramp,
        "min_pct": args.min_pct,
        "readers": [],
        "work": str(work),
    }
    server = publisher = peer = None
    idle = None
    try:
        # a. streamhive: idle, published, then readers
        config, http_port, rtsp_port, http = server_config(work, "streamhive")
        server = _track(start_server(config, work / "streamhive.log", http_port, rtsp_port))
        pid = server.pid
        time.sleep(min(1.0, args.baseline_seconds))
        idle = window([pid], args.baseline_seconds)["cpu_pct"]
        report["idle_cpu_pct"] = idle
        if not args.no_readers:
            seconds = args.budget + 300
            url = f"rtsp://127.0.0.1:{rtsp_port}/{STREAM}"
            publisher = publish(url, seconds)
            wait_for_stream(http, STREAM, timeout=30)
            time.sleep(min(1.0, args.baseline_seconds))
            published = window([pid], args.baseline_seconds)
            res: dict[str, Any] = {
                "version": f"{__version__} (Python {sys.version.split()[0]})",
                "baseline_cpu_pct": published["cpu_pct"],
                "baseline_note": f"published, no reader (idle server {fmt(idle, 2)}%)",
            }
            print(
                f"[rtsp] streamhive: idle {idle}%, published with no reader {published['cpu_pct']}%",
                flush=True,
            )
            res.update(readers_series("streamhive", url, [pid], args, work, t_start, published["cpu_pct"]))
            report["readers"].append(res)
            if args.profile:
                report["profile"] = profile_server(url, pid, args.profile, args.profile_seconds, args, work)
                print(f"[rtsp] profile: {report['profile'].get('error') or 'done'}", flush=True)
            stop(publisher)
            publisher = None
        stop(server)
        server = None

        # a'. the peer: gst-rtsp-server re-serving the same encode
        if not args.no_readers and not args.no_peer:
            why = gst_check()
            if why is not None:
                report["peer_note"] = f"gst-rtsp-server not available ({why}); no side-by-side"
            else:
                try:
                    port, udp_port = free_port(), free_port()
                    script = work / "gst_reserve.py"
                    script.write_text(PEER_SCRIPT)
                    peer, ready = start_ready(
                        [*pinned(0), SYSTEM_PYTHON, str(script), str(GST_PEER.parent), str(port), str(udp_port),
                         f"/{STREAM}"],
                        work / "gst.log",
                    )  # fmt: skip
                    publisher = publish(f"udp://127.0.0.1:{udp_port}", args.budget + 300)
                    time.sleep(2.0)
                    res = {
                        "version": ready.split(" ", 2)[2] if ready.count(" ") >= 2 else "",
                        "baseline_note": "one reader (its pipeline runs only while someone reads)",
                    }
                    url = f"rtsp://127.0.0.1:{port}/{STREAM}"
                    res.update(readers_series("gst-rtsp-server", url, [peer.pid], args, work, t_start, None))
                    report["readers"].append(res)
                    report["peer_note"] = (
                        "gst-rtsp-server (GStreamer's RTSP server library, C) re-serving the same live encode "
                        "(MPEG-TS/UDP in, one shared media); MediaMTX/live555/v4l2rtspserver are not packaged "
                        "for this Debian, npm's rtsp-streaming-server serves readers over UDP only"
                    )
                except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
                    report["peer_note"] = f"gst-rtsp-server side failed: {exc}"
                    print(f"[rtsp] peer failed: {exc}", flush=True)
                finally:
                    stop(publisher)
                    publisher = None
                    stop(peer)
                    peer = None

        # b. pulled cameras
        if args.cameras:
            report["cameras"] = camera_series(
                args.cameras, args.camera_seconds, idle or 0.0, work, args.shared_camera
            )
    finally:
        stop(publisher)
        stop(peer)
        stop(server)
        probe.running = False
    report["machine_stalls"] = probe.result()
    report["server_log_warnings"] = log_warnings(work)
    out = write_report(report, t_start, args.out, "rtsp")
    report["json"] = str(out)
    return report


def main(argv: list[str] | None = None) -> int:
    print_report(run(argv), markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
