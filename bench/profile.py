"""Where streamhive spends its time under fan-out load: a py-spy flame graph and a self-time top 10.

Starts ``streamhive serve`` (CPU 0), publishes the benchmark clip (ffmpeg testsrc 640x360 25 fps,
~600 kbit/s, 1 s GOP; ``ffmpeg -re -stream_loop -1 -c copy``), starts ``--players`` RTMP and as
many HTTP-FLV players (``bench/loadclient.py``, CPU 1) and, once they are all playing, samples the
server with py-spy for ``--seconds``:

- ``py-spy record --format flamegraph`` -> ``bench/results/profile-<date>.svg``
- ``py-spy record --format raw`` (collapsed stacks, at the same time) -> ``profile-<date>.txt``,
  from which it prints the 10 functions with the most *self* time (the innermost frame of a
  sample) and the 10 with the most total time.

py-spy is ``pip install py-spy`` (in the ``bench`` extra); it needs ptrace rights over the server
(root, or ``kernel.yama.ptrace_scope=0``). Idle samples (the event loop waiting in epoll) are left
out, so percentages are of the time the server was busy.

    python bench/profile.py [--players 200] [--seconds 15] [--rate 100]
    streamhive bench profile [...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare import _terminate, _track, publish_ffmpeg, start_server, wait_playable  # noqa: E402
from bench.latency import make_clip  # noqa: E402
from bench.loadclient import raise_fd_limit  # noqa: E402
from bench.run_hls import CpuWindow  # noqa: E402
from bench.run_spine import pinned, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STREAM = "live/bench"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (streamhive/file.py)``: one entry per function."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def top_functions(raw: str, n: int = 10) -> dict[str, Any]:
    """Self and total samples per function from py-spy's collapsed stacks (``a;b;c COUNT``)."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        samples += k
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread (")]
        if not frames:
            continue
        self_c[frames[-1]] += k
        for f in set(frames):
            total_c[f] += k

    def table(c: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "samples": k, "pct": round(100 * k / samples, 1) if samples else 0.0}
            for f, k in c.most_common(n)
        ]

    return {"samples": samples, "self": table(self_c), "total": table(total_c)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/profile.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--players", type=int, default=200, help="RTMP players, and as many HTTP-FLV (default 200)"
    )
    ap.add_argument("--seconds", type=float, default=15.0, help="py-spy sampling time (default 15)")
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second (default 100)")
    ap.add_argument("--ramp", type=float, default=200.0)
    ap.add_argument("--out", type=Path, help="SVG output (default bench/results/profile-<date>.svg)")
    args = ap.parse_args(argv)
    spy = py_spy()
    if spy is None:
        print("py-spy is not installed: pip install py-spy (or pip install -e '.[bench]')", file=sys.stderr)
        return 2
    raise_fd_limit()
    signal.signal(signal.SIGTERM, _terminate)  # clean up the server and clients on kill
    stamp = dt.datetime.now()
    svg = args.out or RESULTS / f"profile-{stamp:%Y%m%d-%H%M%S}.svg"
    raw_path = svg.with_suffix(".txt")
    svg.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="profile-"))
    clip = work / "clip.flv"
    make_clip(clip, 10.0)
    server = pub = None
    loads: list[subprocess.Popen[str]] = []
    ramp_s = args.players / args.ramp
    play_s = args.seconds + 4
    try:
        server = start_server("streamhive", work)
        pub = publish_ffmpeg(f"{server.rtmp}/{STREAM}", clip, ramp_s + play_s + 60)
        wait_playable(f"{server.rtmp}/{STREAM}")
        for url in (f"{server.rtmp}/{STREAM}", f"{server.http}/{STREAM}.flv"):
            cmd = [
                *pinned(1), sys.executable, "-m", "bench.loadclient", url, "--clients", str(args.players),
                "--duration", str(play_s), "--ramp", str(args.ramp), "--json", str(work / f"load-{len(loads)}.json"),
            ]  # fmt: skip
            loads.append(_track(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, text=True)))
        time.sleep(ramp_s + 1.5)
        pid = server.proc.pid
        secs = str(int(args.seconds))
        common = ["record", "--pid", str(pid), "--duration", secs, "--rate", str(args.rate), "--nonblocking"]
        window = CpuWindow([pid])
        spies = [
            _track(subprocess.Popen([*pinned(1), spy, *common, "--format", "flamegraph", "-o", str(svg)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)),
            _track(subprocess.Popen([*pinned(1), spy, *common, "--format", "raw", "-o", str(raw_path)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)),
        ]  # fmt: skip
        errors = []
        for s in spies:
            _, err = s.communicate(timeout=args.seconds + 60)
            if s.returncode != 0:
                errors.append(err.strip()[-500:])
        cpu = window.read()
        for p in loads:
            p.wait(timeout=play_s + 60)
    finally:
        for p in loads:
            stop(p)  # type: ignore[arg-type]
        stop(pub)  # type: ignore[arg-type]
        if server is not None:
            stop(server.proc)  # type: ignore[arg-type]
    if errors or not raw_path.exists():
        print("py-spy failed:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    summaries = []
    for i in range(len(loads)):
        with_json = work / f"load-{i}.json"
        if with_json.exists():
            summaries.append(json.loads(with_json.read_text())["summary"])
    top = top_functions(raw_path.read_text())
    report = {
        "date": stamp.isoformat(timespec="seconds"),
        "players": {"rtmp": args.players, "http-flv": args.players},
        "seconds": args.seconds,
        "rate": args.rate,
        "server_cpu_pct": cpu["cpu_pct"],
        "loads": [
            {k: s[k] for k in ("url", "clients", "realtime", "mbit_s_in", "errors", "client_cpu_pct")}
            for s in summaries
        ],
        "flamegraph": svg.name,
        "raw": raw_path.name,
        **top,
    }
    svg.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(
        f"streamhive under {args.players} RTMP + {args.players} HTTP-FLV players, server CPU {cpu['cpu_pct']}%"
    )
    for s in report["loads"]:
        print(f"  {s['url']}: {s['realtime']}/{s['clients']} real time, {s['mbit_s_in']} Mbit/s, "
              f"client CPU {s['client_cpu_pct']}%, errors {s['errors'] or 'none'}")  # fmt: skip
    for kind in ("self", "total"):
        print(f"\ntop 10 by {kind} time ({top['samples']} busy samples at {args.rate} Hz):")
        print("| % | samples | function |\n|---:|---:|---|")
        for row in top[kind]:
            print(f"| {row['pct']:.1f} | {row['samples']} | `{row['function']}` |")
    print(f"\nflame graph: {svg}\ncollapsed stacks: {raw_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
