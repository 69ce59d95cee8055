"""The WebRTC viewer benchmark: WHEP viewers per core of streamhive, side by side with Janus.

Both servers forward the same H.264 + Opus to receive-only WebRTC viewers, without transcoding:

- the stream: a clip encoded once (ffmpeg testsrc2 1280x720 30 fps, libx264 veryfast zerolatency
  constrained baseline, 1 Mbit/s (maxrate 1M, bufsize 500k), 2 s GOP, SPS/PPS before every
  keyframe; Opus 32 kbit/s), replayed live by ``ffmpeg -re -stream_loop -1 -c copy`` on CPU 1, so
  no encoder competes with the load client for CPU 1 (a live 720p30 encode takes ~30% of a core);
- **streamhive** (``streamhive serve`` on CPU 0, ICE-lite on one UDP port) gets it over RTSP
  (ANNOUNCE/RECORD, TCP: RTSP carries H.264 + Opus; RTMP from ffmpeg 5.1 cannot carry Opus) and
  its viewers play it over WHEP;
- **Janus** (``janus`` 1.1.2 from Debian, on CPU 0: ``apt-get install janus``), configured from
  a temporary folder with only the streaming plugin and the HTTP transport, gets it as plain RTP
  (ffmpeg's RTP muxer, one output per media, 1200-byte packets like streamhive's) on an "rtp"
  mountpoint (H.264 pt 96 ``profile-level-id=42e01f;packetization-mode=1``, Opus pt 111); its
  viewers watch through the streaming plugin over Janus's HTTP API. Janus is full ICE by default
  (``--janus-ice-lite`` for ICE-lite). ``janus`` runs ``event_loops = 1`` (one shared loop
  thread for the handles: it has one core; ``--janus-event-loops N``), ``janus-threads`` runs
  Janus's default of one loop thread per viewer, which on one core costs about 2.5 times the CPU;
  ``janus-lite`` is ``janus`` in ICE-lite mode.
  Janus gathers no candidates on loopback interfaces, so its viewers use the machine's own
  address (still loopback traffic in the kernel).

For each server: its CPU% idle and published with no viewer, a lone viewer (is media flowing),
then steps of N viewers (``--steps``, default 50,100,200,400; bench/webrtcclient.py on CPU 1, ramp
``--ramp``/s) until a step where fewer than ``--keep-up`` (default all) viewers kept up: no
error, no freeze (500 ms without a video packet), real time by RTP timestamps, at most 1% of its
packets lost, and at least 90% of the median viewer's bitrate in the window. A failed step runs
again (``--retries``, default 2) when the machine was busy: the client's loop stalled over 250 ms,
other processes took 10% of CPU 0, or CPU 1 was 95% busy (on a shared machine ``--nice -10``
helps). Server CPU% is utime+stime of the server process
(all its threads) from /proc/PID/stat over the steady window (``--duration`` minus the settle
time: 10 s by default, from 3 s after the ramp). Per step: viewers kept up, server CPU%,
**viewers per core** (N / server CPU fraction), CPU% per 100 viewers above the published-idle
server and its projection to one core, RTP packets/s delivered, received kbit/s per viewer, loss
(and how much of it the client's own sockets dropped), time to first packet and to the first
keyframe p50/p95, the client's CPU% and how busy CPU 1 was, and what else ran on CPU 0.

    python bench/run_webrtc.py                       # about 5 minutes
    python bench/run_webrtc.py --quick               # about 2 minutes
    python bench/run_webrtc.py --servers streamhive,janus,janus-lite,janus-threads --steps 100,200

Results go to bench/results/webrtc-<date>.json and a Markdown table with the streamhive/Janus
ratios; :func:`run` returns the report.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare import _terminate, _track  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402
from bench.run_hls import StallProbe, stalls_line  # noqa: E402
from bench.run_rtsp import Window, slope_per_100, window  # noqa: E402
from bench.run_spine import (  # noqa: E402
    fmt,
    free_port,
    log_warnings,
    pinned,
    print_report,
    report_header,
    run_marked,
    start_server,
    stop,
    wait_for_port,
    wait_for_stream,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
STREAM = "live/webrtc"
MOUNTPOINT = 1
CLIP_SECONDS = 30
STREAM_DESC = (
    "testsrc2 1280x720 30 fps H.264 constrained baseline 1 Mbit/s (libx264 veryfast zerolatency, "
    "2 s GOP) + Opus 32 kbit/s, pre-encoded, replayed with -re -c copy"
)
CLIP_ENCODE = [
    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(CLIP_SECONDS),
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline",
    "-b:v", "1M", "-maxrate", "1M", "-bufsize", "500k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
    "-pix_fmt", "yuv420p", "-bsf:v", "dump_extra",  # SPS/PPS in band: Janus forwards RTP as it comes
    "-c:a", "libopus", "-b:a", "32k",
]  # fmt: skip
# A failed step is run again (up to --retries times) when the machine was this busy.
NOISY_LAG_MS = 250.0
NOISY_CPU0_PCT = 10.0
NOISY_CPU1_PCT = 95.0
NICE: list[str] = []  # ["nice", "-n", N] with --nice: every process this benchmark starts
RTP_PACKET = 1200  # ffmpeg's RTP packets for Janus; streamhive's WebRTC MTU is 1200 too
JANUS_LIB_DIRS = ["/usr/lib/*/janus", "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus"]


# -- the stream -----------------------------------------------------------------------------------
def clip_path() -> Path:
    """The pre-encoded clip, made once per machine (in the temp folder)."""
    path = Path(tempfile.gettempdir()) / "streamhive-bench-webrtc-v1.mkv"
    if not path.exists():
        part = path.with_suffix(f".{secrets.token_hex(4)}.part.mkv")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *CLIP_ENCODE, str(part)],
            check=True,
            timeout=300,
        )
        part.replace(path)
    return path


def feed(clip: Path, outputs: list[str]) -> subprocess.Popen[bytes]:
    """The clip replayed live (``-re``, looping, no re-encode) on CPU 1."""
    return _track(
        subprocess.Popen(
            [*NICE, *pinned(1), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(clip), *outputs],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the RTP muxer prints its SDP
        )
    )  # fmt: skip


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- streamhive -----------------------------------------------------------------------------------
def streamhive_config(work: Path) -> tuple[Path, int, int]:
    """A config on free loopback ports (ICE on UDP only); returns it and the HTTP and RTSP ports."""
    rtmp_port, http_port, rtsp_port, ice_port = free_port(), free_port(), free_port(), free_udp_port()
    config = work / "streamhive.yaml"
    config.write_text(
        f'rtmp:\n  listen: "127.0.0.1:{rtmp_port}"\n'
        f'http:\n  listen: "127.0.0.1:{http_port}"\n'
        f'rtsp:\n  listen: "127.0.0.1:{rtsp_port}"\n  udp: false\n'
        f'webrtc:\n  listen: "127.0.0.1:{ice_port}"\n  tcp: false\n'
    )
    return config, http_port, rtsp_port


# -- Janus ----------------------------------------------------------------------------------------
def janus_lib() -> Path | None:
    """Janus's module folder (with plugins/ and transports/), wherever the package put it."""
    for pattern in JANUS_LIB_DIRS:
        for d in sorted(glob.glob(pattern)):
            if Path(d, "plugins", "libjanus_streaming.so").exists():
                return Path(d)
    return None


def janus_version() -> str:
    try:
        out = subprocess.run(["janus", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.splitlines():
        if line.startswith("Janus version:"):
            return line.split("(")[-1].rstrip(")") if "(" in line else line.split(":", 1)[1].strip()
    return ""


def janus_config(
    work: Path, lib: Path, http_port: int, video_port: int, audio_port: int, ice_lite: bool, event_loops: int
) -> Path:
    """A configs folder: only the streaming plugin and the HTTP transport are loaded (their
    modules are linked into folders of their own), one "rtp" mountpoint, no STUN, no IPv6."""
    root = work
    for sub in ("cfg", "plugins", "transports", "events", "loggers"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "plugins" / "libjanus_streaming.so").symlink_to(lib / "plugins" / "libjanus_streaming.so")
    (root / "transports" / "libjanus_http.so").symlink_to(lib / "transports" / "libjanus_http.so")
    cfg = root / "cfg"
    loops = f"\tevent_loops = {event_loops}\n" if event_loops > 0 else ""
    (cfg / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{cfg}"\n'
        f'\tplugins_folder = "{root / "plugins"}"\n'
        f'\ttransports_folder = "{root / "transports"}"\n'
        f'\tevents_folder = "{root / "events"}"\n'
        f'\tloggers_folder = "{root / "loggers"}"\n'
        "\tdebug_level = 4\n"
        "\tsession_timeout = 60\n"
        f"{loops}"
        "}\n"
        "media: {\n"
        "\tipv6 = false\n"
        '\trtp_port_range = "40000-49999"\n'
        "}\n"
        "nat: {\n"
        f"\tice_lite = {'true' if ice_lite else 'false'}\n"
        "\tnice_debug = false\n"
        "}\n"
    )
    (cfg / "janus.transport.http.jcfg").write_text(
        "general: {\n"
        '\tjson = "plain"\n'
        '\tbase_path = "/janus"\n'
        "\thttp = true\n"
        f"\tport = {http_port}\n"
        '\tinterface = "lo"\n'
        "\thttps = false\n"
        "}\n"
        "admin: {\n\tadmin_http = false\n}\n"
    )
    (cfg / "janus.plugin.streaming.jcfg").write_text(
        "general: {\n\tevents = false\n}\n"
        "bench: {\n"
        '\ttype = "rtp"\n'
        f"\tid = {MOUNTPOINT}\n"
        '\tdescription = "bench"\n'
        "\tmedia = (\n"
        f'\t\t{{ type = "video" mid = "v" port = {video_port} pt = 96 codec = "h264" '
        'fmtp = "profile-level-id=42e01f;packetization-mode=1" },\n'
        f'\t\t{{ type = "audio" mid = "a" port = {audio_port} pt = 111 codec = "opus" }}\n'
        "\t)\n"
        "}\n"
    )
    return cfg


def janus_api(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {**body, "transaction": secrets.token_hex(6)}
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def wait_janus_media(base: str, timeout: float = 20) -> None:
    """Until the mountpoint has received both media within the last second."""
    session = janus_api(base, "/janus", {"janus": "create"})["data"]["id"]
    try:
        handle = janus_api(base, f"/janus/{session}", {"janus": "attach", "plugin": "janus.plugin.streaming"})
        path = f"/janus/{session}/{handle['data']['id']}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = janus_api(base, path, {"janus": "message", "body": {"request": "info", "id": MOUNTPOINT}})
            media = reply.get("plugindata", {}).get("data", {}).get("info", {}).get("media", [])
            if len(media) >= 2 and all(m.get("age_ms", 10**9) < 1000 for m in media):
                return
            time.sleep(0.3)
    finally:
        with contextlib.suppress(OSError, ValueError):
            janus_api(base, f"/janus/{session}", {"janus": "destroy"})
    raise RuntimeError(f"the Janus mountpoint received no media within {timeout}s")


def start_janus(cfg: Path, log: Path, http_port: int) -> subprocess.Popen[bytes]:
    """``janus`` on CPU 0 (all its threads inherit the affinity), logging to ``log``."""
    with open(log, "wb") as out:
        proc = _track(
            subprocess.Popen(
                [*NICE, *pinned(0), "janus", "-C", str(cfg / "janus.jcfg"), "-F", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        wait_for_port(http_port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


# -- viewers --------------------------------------------------------------------------------------
def run_viewers(
    url: str,
    n: int,
    duration: float,
    args: argparse.Namespace,
    pid: int,
    out: Path,
    settle: float | None = None,
) -> dict[str, Any]:
    """One webrtcclient run on CPU 1; the server's CPU between its 'steady' and 'end' marks.

    A viewer's bitrate is judged against the median viewer of the same step, not against a lone
    viewer measured earlier: the clip's bitrate moves by ±20% from one 10 s window to the next,
    and a server too slow for every viewer alike shows in the real-time and freeze tests."""
    cmd = [
        *NICE, *pinned(1), sys.executable, "-m", "bench.webrtcclient", url, "--viewers", str(n),
        "--duration", str(duration), "--ramp", str(args.ramp), "--verify", str(args.verify),
        "--mountpoint", str(MOUNTPOINT), "--json", str(out), "--marks",
    ]  # fmt: skip
    if settle is not None:
        cmd += ["--settle", str(settle)]
    cpu, rss = run_marked(cmd, pid, n / max(args.ramp, 1) + duration + 90, lambda: Window([pid]).read)
    summary = json.loads(out.read_text())["summary"]
    time.sleep(1.0)  # the hang-ups are done; let the server release the sessions
    cpu_pct = cpu["cpu_pct"] if cpu else None
    return {
        "viewers": n,
        "summary": summary,
        "server_cpu_pct": cpu_pct,
        "others_on_cpu0_pct": cpu["others_on_cpu0_pct"] if cpu else None,
        "cpu1_busy_pct": cpu["cpu1_busy_pct"] if cpu else None,
        "server_rss_mib": round(rss, 1) if rss is not None else None,
        "viewers_per_core": round(n / (cpu_pct / 100)) if cpu_pct else None,
    }


def series(
    name: str, url: str, pid: int, args: argparse.Namespace, work: Path, t_start: float, baseline: float
) -> dict[str, Any]:
    """A lone viewer (is media flowing at all; its first packet), then the steps, for one server."""
    res: dict[str, Any] = {"server": name, "url": url, "steps": [], "baseline_cpu_pct": baseline}
    if args.calibrate_seconds > 0:
        cal = run_viewers(url, 1, args.calibrate_seconds + 2, args, pid, work / f"{name}-cal.json", 2.0)
        s = cal["summary"]
        kbps = s["viewer_kbps"]["p50"]
        res["lone_viewer"] = {
            "kbps": kbps,
            "server_cpu_pct": cal["server_cpu_pct"],
            "first_packet_ms": s["first_packet_ms"]["p50"],
            "first_keyframe_ms": s["first_keyframe_ms"]["p50"],
            "errors": s["errors"],
        }
        print(f"[webrtc] {name}: one viewer gets {kbps} kbit/s, errors {s['errors'] or 'none'}", flush=True)
        if not kbps:
            raise RuntimeError(f"{name}: a lone viewer received nothing: {s['errors']}")
    res["max_kept_up"] = 0
    res["limited_by"] = "steps exhausted"
    for n in args.steps:
        needed = n / args.ramp + args.duration + 10
        if time.monotonic() - t_start + needed > args.budget:
            print(f"[webrtc] skipping {name} x{n}: over the time budget", flush=True)
            res["limited_by"] = "time budget"
            break
        for attempt in range(args.retries + 1):
            row = run_viewers(url, n, args.duration, args, pid, work / f"{name}-{n}.json")
            cpu, s = row["server_cpu_pct"], row["summary"]
            row["cpu_pct_per_100"] = round((cpu - baseline) / n * 100, 2) if cpu is not None else None
            row["noise"] = noise = noisy(row)
            print_step(name, row)
            if s["kept_up_ratio"] >= args.keep_up or noise is None or attempt == args.retries:
                break
            print(f"[webrtc] {name} x{n}: again, the machine was busy ({noise})", flush=True)
            res.setdefault("discarded", []).append(row)
        res["steps"].append(row)
        if s["kept_up_ratio"] < args.keep_up:
            if noise is not None:
                res["limited_by"] = f"busy machine ({noise})"
            else:
                res["limited_by"] = "client" if s["client_cpu_pct"] >= 90 else "server"
            break
        res["max_kept_up"] = n
    good = [r for r in res["steps"] if r["viewers"] == res["max_kept_up"]]
    top = good[0] if good else None
    res["viewers_per_core"] = top["viewers_per_core"] if top else None
    res["cpu_pct_per_100"] = per100 = top["cpu_pct_per_100"] if top else None
    res["projected_per_core"] = int((100 - baseline) / per100 * 100) if per100 and per100 > 0 else None
    res["cpu_pct_per_100_fit"] = slope_per_100(
        baseline,
        [{"readers": r["viewers"], **r} for r in res["steps"] if r["viewers"] <= res["max_kept_up"]],
    )
    return res


def noisy(row: dict[str, Any]) -> str | None:
    """Why a step says little about the server, if it does: on a shared machine other processes
    take CPU 0 from the server or CPU 1 from the viewers, and a client loop that stalls for half a
    second freezes every viewer at once."""
    lag = row["summary"].get("loop_lag", {}).get("max_ms") or 0.0
    reasons = []
    if lag >= NOISY_LAG_MS:
        reasons.append(f"the client's loop stalled {lag:.0f} ms")
    if (row["others_on_cpu0_pct"] or 0.0) >= NOISY_CPU0_PCT:
        reasons.append(f"other processes took {row['others_on_cpu0_pct']:.0f}% of CPU 0")
    if (row["cpu1_busy_pct"] or 0.0) >= NOISY_CPU1_PCT:
        reasons.append(f"CPU 1 was {row['cpu1_busy_pct']:.0f}% busy")
    return "; ".join(reasons) or None


def print_step(name: str, row: dict[str, Any]) -> None:
    s = row["summary"]
    fp, fk = s["first_packet_ms"], s["first_keyframe_ms"]
    print(
        f"[webrtc] {name} x{row['viewers']}: kept up {s['kept_up']}/{row['viewers']}, server CPU "
        f"{fmt(row['server_cpu_pct'])}% ({fmt(row['viewers_per_core'])} viewers/core), {s['steady_packets_per_s']} "
        f"packets/s, viewer kbit/s p5/p50 {s['viewer_kbps']['p5']}/{s['viewer_kbps']['p50']}, loss {s['loss_pct']}% "
        f"(client drops {s['socket_drops']}), first packet p50/p95 {fp['p50']}/{fp['p95']} ms, keyframe "
        f"{fk['p50']}/{fk['p95']} ms, freezes {s['freezes']}, client CPU {s['client_cpu_pct']}% (loop late by up "
        f"to {s['loop_lag'].get('max_ms')} ms), CPU 1 busy {fmt(row['cpu1_busy_pct'], 0)}%, others on CPU 0 "
        f"{fmt(row['others_on_cpu0_pct'])}%, errors {s['errors'] or 'none'}",
        flush=True,
    )


def settled_cpu(pid: int, seconds: float) -> float:
    """The server's CPU % over ``seconds``, from a second after its last change (started, fed) so
    that the work of the change itself is not counted."""
    time.sleep(1.0)
    return window([pid], seconds)["cpu_pct"]


def bench_streamhive(args: argparse.Namespace, work: Path, clip: Path, t_start: float) -> dict[str, Any]:
    from streamhive import __version__

    config, http_port, rtsp_port = streamhive_config(work)
    server = _track(start_server(config, work / "streamhive.log", http_port, rtsp_port))
    if args.nice:  # start_server has no prefix; its threads are started later and inherit this
        os.setpriority(os.PRIO_PROCESS, server.pid, args.nice)
    publisher = None
    try:
        idle_cpu = settled_cpu(server.pid, args.baseline_seconds)
        publisher = feed(clip, ["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
                                f"rtsp://127.0.0.1:{rtsp_port}/{STREAM}"])  # fmt: skip
        wait_for_stream(f"http://127.0.0.1:{http_port}", STREAM, timeout=30)
        base = settled_cpu(server.pid, args.baseline_seconds)
        print(f"[webrtc] streamhive: idle {idle_cpu}%, published with no viewer {base}%", flush=True)
        res = {
            "version": f"{__version__} (Python {sys.version.split()[0]})",
            "ingest": "RTSP (TCP) from ffmpeg",
            "ice": "ICE-lite (one UDP port)",
            "idle_cpu_pct": idle_cpu,
        }
        res.update(series("streamhive", f"http://127.0.0.1:{http_port}/{STREAM}/whep", server.pid, args, work,
                          t_start, base))  # fmt: skip
        return res
    finally:
        stop(publisher)
        stop(server)


def bench_janus(
    args: argparse.Namespace,
    work: Path,
    clip: Path,
    t_start: float,
    name: str,
    event_loops: int,
    ice_lite: bool,
) -> dict[str, Any]:
    lib = janus_lib()
    if shutil.which("janus") is None or lib is None:
        return {"server": name, "skipped": "janus is not installed (apt-get install janus)"}
    http_port, video_port, audio_port = free_port(), free_udp_port(), free_udp_port()
    cfg = janus_config(work / name, lib, http_port, video_port, audio_port, ice_lite, event_loops)
    server = start_janus(cfg, work / f"{name}.log", http_port)
    base_url = f"http://127.0.0.1:{http_port}"
    publisher = None
    try:
        idle_cpu = settled_cpu(server.pid, args.baseline_seconds)
        publisher = feed(clip, [
            "-map", "0:v", "-c", "copy", "-f", "rtp", "-payload_type", "96",
            f"rtp://127.0.0.1:{video_port}?pkt_size={RTP_PACKET}",
            "-map", "0:a", "-c", "copy", "-f", "rtp", "-payload_type", "111",
            f"rtp://127.0.0.1:{audio_port}?pkt_size={RTP_PACKET}",
        ])  # fmt: skip
        wait_janus_media(base_url)
        base = settled_cpu(server.pid, args.baseline_seconds)
        print(f"[webrtc] {name}: idle {idle_cpu}%, published with no viewer {base}%", flush=True)
        loops = f"event_loops = {event_loops}" if event_loops else "a thread per viewer (event_loops = 0)"
        res = {
            "version": janus_version(),
            "ingest": "plain RTP from ffmpeg (streaming plugin, rtp mountpoint)",
            "ice": f"{'ICE-lite' if ice_lite else 'full ICE'}, {loops}",
            "idle_cpu_pct": idle_cpu,
        }
        res.update(series(name, f"{base_url}/janus", server.pid, args, work, t_start, base))
        return res
    finally:
        stop(publisher)
        stop(server)


# -- report ---------------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"WebRTC viewers, {report['date']} ({report['mode']}), {report['machine']}",
        f"stream: {report['stream']}",
        f"viewers: {report['client']}"
        + (f"; servers, publisher and viewers at nice {report['nice']}" if report.get("nice") else ""),
        stalls_line(report),
        "",
        "| server | viewers | kept up | server CPU % | viewers/core | CPU %/100 viewers | packets/s | "
        "viewer kbit/s p5 / p50 | loss % (client drops) | first packet p50 / p95 ms | first keyframe p50 / p95 ms "
        "| freezes | RSS MiB | client CPU % | CPU 1 busy % | others on CPU 0 % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    servers = [r for r in report["servers"] if "steps" in r]
    for res in servers:
        lines.append(
            f"| {res['server']} | 0 | – | {fmt(res['baseline_cpu_pct'], 2)} | – | – | – | – | – | – | – | – | – | – "
            f"| – | – | published, no viewer (idle {fmt(res['idle_cpu_pct'], 2)}%) |"
        )
        for row in res["steps"]:
            s = row["summary"]
            kb, fp, fk = s["viewer_kbps"], s["first_packet_ms"], s["first_keyframe_ms"]
            lines.append(
                f"| {res['server']} | {row['viewers']} | {s['kept_up']} ({100 * s['kept_up_ratio']:.0f}%) | "
                f"{fmt(row['server_cpu_pct'])} | {fmt(row['viewers_per_core'])} | {fmt(row['cpu_pct_per_100'], 2)} | "
                f"{s['steady_packets_per_s']} | {fmt(kb['p5'], 0)} / {fmt(kb['p50'], 0)} | "
                f"{s['loss_pct']} ({s['socket_drops']}) | {fmt(fp['p50'], 0)} / {fmt(fp['p95'], 0)} | "
                f"{fmt(fk['p50'], 0)} / {fmt(fk['p95'], 0)} | {s['freezes']} | {fmt(row['server_rss_mib'])} | "
                f"{fmt(s['client_cpu_pct'], 0)} | {fmt(row['cpu1_busy_pct'], 0)} | {fmt(row['others_on_cpu0_pct'])} | "
                f"{s['errors'] or ''} |"
            )
    lines += [
        "",
        "| server | version | ICE | max viewers kept up | limited by | viewers/core at that step | "
        "CPU %/100 viewers (step / fit) | projected viewers/core | streamhive / this (viewers per core) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    ref = next((r for r in servers if r["server"] == "streamhive"), None)
    for res in servers:
        ratio = (
            f"{ref['viewers_per_core'] / res['viewers_per_core']:.2f}"
            if ref and ref.get("viewers_per_core") and res.get("viewers_per_core")
            else "–"
        )
        lines.append(
            f"| {res['server']} | {res.get('version', '')} | {res.get('ice', '')} | {res['max_kept_up']} | "
            f"{res['limited_by']} | {fmt(res.get('viewers_per_core'))} | {fmt(res.get('cpu_pct_per_100'), 2)} / "
            f"{fmt(res.get('cpu_pct_per_100_fit'), 2)} | {fmt(res.get('projected_per_core'))} | {ratio} |"
        )
    for res in report["servers"]:
        if res.get("skipped"):
            lines += ["", f"{res['server']}: {res['skipped']}"]
        elif res.get("error"):
            lines += ["", f"{res['server']}: failed: {res['error']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python bench/run_webrtc.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 2 minutes (fewer, shorter steps)")
    ap.add_argument(
        "--servers",
        default="streamhive,janus",
        help="comma-separated: streamhive, janus (event_loops = --janus-event-loops), janus-lite (the same, "
        "ICE-lite), janus-threads (Janus's "
        "default: a thread per viewer)",
    )
    ap.add_argument("--steps", help="comma-separated viewer counts (default 50,100,200,400; quick 50,150)")
    ap.add_argument("--duration", type=float, help="seconds per step after the ramp (default 13, quick 7)")
    ap.add_argument("--ramp", type=float, default=50.0, help="viewers started per second (default 50)")
    ap.add_argument(
        "--retries", type=int, default=2, help="runs again of a failed step on a busy machine (default 2)"
    )
    ap.add_argument(
        "--keep-up", type=float, default=1.0, help="share of viewers that must keep up (default 1.0)"
    )
    ap.add_argument(
        "--verify", type=int, default=20, help="webrtcclient --verify (default 20; -1: decrypt all)"
    )
    ap.add_argument(
        "--calibrate-seconds", type=float, help="lone-viewer window in s (default 5, quick 3; 0: none)"
    )
    ap.add_argument(
        "--baseline-seconds", type=float, help="idle / no-viewer CPU windows (default 4, quick 2)"
    )
    ap.add_argument(
        "--janus-ice-lite", action="store_true", help="Janus in ICE-lite mode (default: full ICE)"
    )
    ap.add_argument(
        "--janus-event-loops",
        type=int,
        default=1,
        help="Janus's event_loops for 'janus' (default 1: one loop thread for the one core it runs on)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of the servers, publisher and viewers (e.g. -10, as root: on a shared machine, "
        "ahead of other processes on their CPUs; default 0)",
    )
    ap.add_argument("--budget", type=float, help="stop starting viewer steps after this many seconds")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/webrtc-<date>.json)")
    args = ap.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - {"streamhive", "janus", "janus-lite", "janus-threads"}
    if unknown:
        ap.error(f"unknown servers: {', '.join(sorted(unknown))}")
    args.steps = (
        [int(x) for x in args.steps.split(",")]
        if args.steps
        else ([50, 150] if args.quick else [50, 100, 200, 400])
    )
    args.duration = args.duration or (7.0 if args.quick else 13.0)
    if args.calibrate_seconds is None:
        args.calibrate_seconds = 3.0 if args.quick else 5.0
    args.baseline_seconds = args.baseline_seconds or (2.0 if args.quick else 4.0)
    args.budget = args.budget or (150.0 if args.quick else 900.0)
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written as JSON, see ``report['json']``)."""
    args = parse_args(argv)
    NICE[:] = ["nice", "-n", str(args.nice)] if args.nice else []
    t_start = time.monotonic()
    raise_fd_limit()
    with contextlib.suppress(ValueError):  # not in the main thread: the caller cleans up
        signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="webrtcbench-"))
    probe = StallProbe()
    probe.start()
    clip = clip_path()
    settle = min(3.0, args.duration / 4)
    report: dict[str, Any] = {
        **report_header(args.quick, "server on CPU 0, publisher (ffmpeg -c copy) and viewers on CPU 1"),
        "stream": STREAM_DESC,
        "client": f"bench/webrtcclient.py, receive-only, no decoding; {args.ramp:g} viewers/s, CPU window "
        f"{args.duration - settle:g} s from {settle:g} s after the ramp; SRTP verified for the first "
        f"{args.verify} packets per media after the first keyframe"
        if args.verify >= 0
        else "every packet SRTP-decrypted",
        "duration_s": args.duration,
        "ramp_per_s": args.ramp,
        "keep_up": args.keep_up,
        "nice": args.nice,
        "servers": [],
        "work": str(work),
    }
    try:
        for name in args.servers:
            try:
                if name == "streamhive":
                    res = bench_streamhive(args, work, clip, t_start)
                else:
                    loops = 0 if name == "janus-threads" else args.janus_event_loops
                    lite = args.janus_ice_lite or name == "janus-lite"
                    res = bench_janus(args, work, clip, t_start, name, loops, lite)
                report["servers"].append(res)
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
                print(f"[webrtc] {name} failed: {exc}", flush=True)
                report["servers"].append({"server": name, "error": str(exc)})
    finally:
        probe.running = False
    report["machine_stalls"] = probe.result()
    report["server_log_warnings"] = log_warnings(work, (" WARNING ", " ERROR ", "[ERR]"))
    out = write_report(report, t_start, args.out, "webrtc")
    report["json"] = str(out)
    return report


def main(argv: list[str] | None = None) -> int:
    print_report(run(argv), markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
