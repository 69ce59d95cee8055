"""An HLS / LL-HLS viewer load client: many players in one asyncio process, no decoding.

Each viewer fetches the master playlist, then the media playlist it names, then the init section
(``#EXT-X-MAP``) and behaves like a player at the live edge:

- ``classic``: starts with the newest complete segment, reloads the media playlist every target
  duration (half of it when the last reload brought nothing new, as RFC 8216 asks) and fetches
  every new segment once, in order.
- ``ll``: starts with the newest part, then asks for the playlist with a blocking reload
  (``?_HLS_msn=M&_HLS_part=P`` naming the next part) and fetches every new part once, in order
  (falling back to whole segments if it fell so far behind that their parts are no longer listed).

All viewers share one aiohttp session and one connector (``--conn-limit``, default: one
connection per viewer up to 2000) and each sends its own User-Agent, so the server sees them as
distinct viewers. Per viewer it counts playlists, segments, parts, bytes, errors by kind, units
that fell out of the window before it fetched them (``missed``), and the media time it fetched
(the durations of the segments or parts) against the wall time between its first and its last
new media. A viewer is **real time** when that media time is at least 98% of the wall time and
no gap between two new media fetches (nor between the last one and the end of the run) exceeded
two target durations.

    python -m bench.hlsclient http://127.0.0.1:8080/live/cam1/index.m3u8 --viewers 200 --duration 20
    python -m bench.hlsclient http://127.0.0.1:8080/live/cam1/index.m3u8 --viewers 200 --duration 20 \
        --mode ll --json out.json
    python -m bench.hlsclient http://127.0.0.1:8080/live/cam1/seg5.m4s --hammer 50 --duration 10

``--hammer C`` is a plain request loop (C keep-alive connections GETting one URL as fast as they
can, printing requests/s): a stand-in for ``wrk`` where wrk is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp

from bench.loadclient import (
    cpu_pct_since,
    marker,
    percentiles,
    prepare,
    print_and_save,
    ramp_wait,
    rounded,
    steady_then_end,
)

REALTIME_RATIO = 0.98
GAP_TARGETS = 2.0  # a gap longer than this many target durations is a stall
MAX_CONN = 2000


# -- playlists ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Entry:
    """One media segment of a playlist: its parts (if listed) and, once complete, its URI."""

    msn: int
    parts: list[tuple[str, float]] = field(default_factory=list)
    uri: str | None = None  # set when the segment is complete (#EXTINF + URI)
    duration: float = 0.0


@dataclass(slots=True)
class Playlist:
    target: float = 0.0
    media_sequence: int = 0
    part_target: float | None = None
    can_block: bool = False
    ended: bool = False
    map_uri: str | None = None
    entries: list[Entry] = field(default_factory=list)

    def complete(self) -> list[Entry]:
        return [e for e in self.entries if e.uri is not None]

    def entry(self, msn: int) -> Entry | None:
        first = self.entries[0].msn if self.entries else 0
        i = msn - first
        return self.entries[i] if 0 <= i < len(self.entries) else None


class PlaylistError(ValueError):
    pass


def _attrs(text: str) -> dict[str, str]:
    """``KEY=VALUE,KEY="quoted, value"`` attribute lists."""
    out: dict[str, str] = {}
    pos, n = 0, len(text)
    while pos < n:
        eq = text.find("=", pos)
        if eq < 0:
            break
        key = text[pos:eq].strip()
        if eq + 1 < n and text[eq + 1] == '"':
            end = text.find('"', eq + 2)
            if end < 0:
                raise PlaylistError("unterminated quoted attribute")
            out[key] = text[eq + 2 : end]
            pos = text.find(",", end) + 1 or n
        else:
            end = text.find(",", eq)
            end = n if end < 0 else end
            out[key] = text[eq + 1 : end]
            pos = end + 1
    return out


def master_media_uri(text: str) -> str:
    """The first variant stream of a master playlist (or "" if ``text`` is a media playlist)."""
    if not text.startswith("#EXTM3U"):
        raise PlaylistError("not an m3u8 playlist")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF"):
            for uri in lines[i + 1 :]:
                if uri and not uri.startswith("#"):
                    return uri.strip()
        elif line.startswith(("#EXTINF", "#EXT-X-TARGETDURATION")):
            return ""
    raise PlaylistError("no variant stream in the master playlist")


def parse_media(text: str) -> Playlist:
    if not text.startswith("#EXTM3U"):
        raise PlaylistError("not an m3u8 playlist")
    pl = Playlist()
    msn: int | None = None
    current: Entry | None = None
    duration: float | None = None
    for line in text.splitlines():
        if not line:
            continue
        if line[0] != "#":
            if duration is None:
                raise PlaylistError("a segment URI without #EXTINF")
            if current is None:
                current = Entry(msn if msn is not None else pl.media_sequence)
            current.uri, current.duration = line.strip(), duration
            pl.entries.append(current)
            msn = current.msn + 1
            current, duration = None, None
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-PART":
            a = _attrs(value)
            if current is None:
                current = Entry(msn if msn is not None else pl.media_sequence)
            current.parts.append((a["URI"], float(a["DURATION"])))
        elif tag == "#EXTINF":
            duration = float(value.split(",")[0])
        elif tag == "#EXT-X-TARGETDURATION":
            pl.target = float(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            pl.media_sequence = int(value)
            msn = pl.media_sequence
        elif tag == "#EXT-X-SKIP":
            msn = (msn if msn is not None else pl.media_sequence) + int(_attrs(value)["SKIPPED-SEGMENTS"])
        elif tag == "#EXT-X-MAP":
            pl.map_uri = pl.map_uri or _attrs(value)["URI"]
        elif tag == "#EXT-X-PART-INF":
            pl.part_target = float(_attrs(value)["PART-TARGET"])
        elif tag == "#EXT-X-SERVER-CONTROL":
            pl.can_block = _attrs(value).get("CAN-BLOCK-RELOAD") == "YES"
        elif tag == "#EXT-X-ENDLIST":
            pl.ended = True
    if current is not None and current.parts:  # the segment being written (LL-HLS)
        pl.entries.append(current)
    if pl.target <= 0:
        raise PlaylistError("no #EXT-X-TARGETDURATION")
    return pl


# -- viewers --------------------------------------------------------------------------------------
@dataclass(slots=True)
class ViewerStats:
    index: int
    mode: str
    startup_s: float | None = None  # start -> first media unit fetched
    playlists: int = 0
    segments: int = 0
    parts: int = 0
    bytes: int = 0
    media_s: float = 0.0  # durations of the media fetched
    wall_s: float = 0.0  # first new media -> last new media
    max_gap_s: float = 0.0  # longest time without new media (the end of the run included)
    missed: int = 0  # segments/parts that left the window before this viewer fetched them
    errors: Counter[str] = field(default_factory=Counter)
    realtime: bool = False
    first_media: float | None = None
    last_media: float = 0.0

    def on_media(self, duration: float, now: float) -> None:
        if self.first_media is None:
            self.first_media = now
        else:
            self.max_gap_s = max(self.max_gap_s, now - self.last_media)
        self.last_media = now
        self.media_s += duration

    def finish(self, end: float, target: float) -> None:
        if self.first_media is None:
            self.errors["no-media"] += 1
            return
        self.max_gap_s = max(self.max_gap_s, end - self.last_media)
        self.wall_s = self.last_media - self.first_media
        self.realtime = (
            self.media_s >= REALTIME_RATIO * self.wall_s and self.max_gap_s <= GAP_TARGETS * target
        )

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("first_media")
        d.pop("last_media")
        d["errors"] = dict(self.errors)
        d["media_s"] = round(self.media_s, 3)
        d["wall_s"] = round(self.wall_s, 3)
        d["max_gap_s"] = round(self.max_gap_s, 3)
        return d


class _Timings:
    """Request times shared by all viewers (milliseconds), bounded."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self.media: list[float] = []
        self.playlist: list[float] = []

    def add(self, bucket: list[float], seconds: float) -> None:
        if len(bucket) < self.LIMIT:
            bucket.append(seconds * 1000)


class Viewer:
    def __init__(
        self, index: int, url: str, mode: str, session: aiohttp.ClientSession, timings: _Timings
    ) -> None:
        self.url = url
        self.mode = mode
        self.session = session
        self.timings = timings
        self.stats = ViewerStats(index, mode)
        self.headers = {"User-Agent": f"streamhive-hlsclient/{index}"}
        self.target = 1.0
        self.started = 0.0

    async def get(self, url: str, kind: str, timeout: float) -> bytes | None:
        """GET ``url``; None (and an error counted) on failure. ``kind``: playlist or media."""
        t0 = time.monotonic()
        try:
            async with self.session.get(
                url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    self.stats.errors[f"http-{resp.status}"] += 1
                    return None
        except TimeoutError:
            self.stats.errors[f"timeout-{kind}"] += 1
            return None
        except aiohttp.ClientError as exc:
            self.stats.errors[f"conn-{type(exc).__name__}"] += 1
            return None
        self.stats.bytes += len(body)
        self.timings.add(
            self.timings.media if kind == "media" else self.timings.playlist, time.monotonic() - t0
        )
        return body

    async def playlist(self, url: str, blocking: bool = False) -> Playlist | None:
        body = await self.get(url, "playlist", (4 if blocking else 2) * self.target + 5)
        if body is None:
            return None
        try:
            pl = parse_media(body.decode())
        except (PlaylistError, ValueError, KeyError, UnicodeDecodeError):
            self.stats.errors["bad-playlist"] += 1
            return None
        self.stats.playlists += 1
        self.target = pl.target
        return pl

    async def fetch(self, base: str, uri: str, duration: float, is_part: bool) -> bool:
        body = await self.get(urljoin(base, uri), "media", 2 * self.target + 5)
        if body is None:
            return False
        if is_part:
            self.stats.parts += 1
        else:
            self.stats.segments += 1
        now = time.monotonic()
        if self.stats.startup_s is None:
            self.stats.startup_s = now - self.started
        self.stats.on_media(duration, now)
        return True

    async def run(self) -> None:
        self.started = time.monotonic()
        media_url = ""
        while not media_url:  # a player retries its master playlist
            body = await self.get(self.url, "playlist", 10)
            if body is not None:
                try:
                    media_url = urljoin(self.url, master_media_uri(body.decode()) or self.url)
                except (PlaylistError, UnicodeDecodeError):
                    self.stats.errors["bad-playlist"] += 1
            if not media_url:
                await asyncio.sleep(1)
        pl = None
        while pl is None or not pl.entries:
            pl = await self.playlist(media_url)
            if pl is None or not pl.entries:
                await asyncio.sleep(self.target / 2)
        if pl.map_uri is not None:
            await self.get(urljoin(media_url, pl.map_uri), "media", 10)
        if self.mode == "ll":
            if not pl.can_block or pl.part_target is None:
                self.stats.errors["not-ll"] += 1
                self.mode = "classic"
            else:
                await self._run_ll(media_url, pl)
                return
        await self._run_classic(media_url, pl)

    async def _run_classic(self, url: str, pl: Playlist) -> None:
        complete = pl.complete()
        next_msn = complete[-1].msn if complete else pl.media_sequence
        loaded = time.monotonic()
        while True:
            complete = pl.complete()
            if complete and next_msn < complete[0].msn:
                self.stats.missed += complete[0].msn - next_msn
                next_msn = complete[0].msn
            new = [e for e in complete if e.msn >= next_msn]
            for e in new:
                assert e.uri is not None
                if not await self.fetch(url, e.uri, e.duration, False):
                    await asyncio.sleep(0.1)
                next_msn = e.msn + 1
            if pl.ended:
                return
            wait = pl.target if new else pl.target / 2
            await asyncio.sleep(max(0.0, loaded + wait - time.monotonic()))
            loaded = time.monotonic()
            reloaded = await self.playlist(url)
            if reloaded is not None:
                pl = reloaded

    async def _run_ll(self, url: str, pl: Playlist) -> None:
        # Start at the newest part; (msn, part) is what comes next.
        last = next(e for e in reversed(pl.entries) if e.parts or e.uri)
        if last.parts:
            uri, duration = last.parts[-1]
            msn, part = last.msn, len(last.parts) - 1
            await self.fetch(url, uri, duration, True)
            msn, part = (msn + 1, 0) if last.uri is not None else (msn, part + 1)
        else:
            assert last.uri is not None
            await self.fetch(url, last.uri, last.duration, False)
            msn, part = last.msn + 1, 0
        while not pl.ended:
            reloaded = await self.playlist(f"{url}?_HLS_msn={msn}&_HLS_part={part}", blocking=True)
            if reloaded is None:
                await asyncio.sleep(0.1)
                continue
            pl = reloaded
            if pl.entries and msn < pl.entries[0].msn:
                self.stats.missed += pl.entries[0].msn - msn
                msn, part = pl.entries[0].msn, 0
            while (e := pl.entry(msn)) is not None:
                if part < len(e.parts):
                    for i in range(part, len(e.parts)):
                        uri, duration = e.parts[i]
                        if not await self.fetch(url, uri, duration, True):
                            await asyncio.sleep(0.05)
                    part = len(e.parts)
                elif not e.parts and e.uri is not None and part == 0:  # parts no longer listed
                    await self.fetch(url, e.uri, e.duration, False)
                if e.uri is None:
                    break  # the segment being written: block for its next part
                if part and not e.parts:
                    self.stats.missed += 1  # behind mid-segment and its parts are gone
                msn, part = msn + 1, 0


# -- the run --------------------------------------------------------------------------------------
@dataclass
class HlsLoadResult:
    url: str
    mode: str
    viewers: int
    duration: float
    ramp: float
    wall_s: float
    client_cpu_pct: float
    conn_limit: int
    target: float
    stats: list[ViewerStats]
    timings: _Timings

    def summary(self) -> dict[str, Any]:
        vs = self.stats
        receiving = [v for v in vs if v.first_media is not None]
        realtime = [v for v in vs if v.realtime]
        errors: Counter[str] = Counter()
        for v in vs:
            errors.update(v.errors)
        total_bytes = sum(v.bytes for v in vs)
        requests = sum(v.playlists + v.segments + v.parts for v in vs)
        startup = [v.startup_s * 1000 for v in vs if v.startup_s is not None]
        ratios = [v.media_s / v.wall_s for v in receiving if v.wall_s > 0]
        return {
            "url": self.url,
            "mode": self.mode,
            "viewers": self.viewers,
            "duration_s": self.duration,
            "ramp_per_s": self.ramp,
            "wall_s": round(self.wall_s, 2),
            "conn_limit": self.conn_limit,
            "target_duration_s": self.target,
            "receiving": len(receiving),
            "realtime": len(realtime),
            "realtime_ratio": round(len(realtime) / self.viewers, 4) if self.viewers else 0.0,
            "playlists": sum(v.playlists for v in vs),
            "segments": sum(v.segments for v in vs),
            "parts": sum(v.parts for v in vs),
            "missed": sum(v.missed for v in vs),
            "bytes": total_bytes,
            "mbit_s_in": round(total_bytes * 8 / self.wall_s / 1e6, 2) if self.wall_s else 0.0,
            "req_s": round(requests / self.wall_s, 1) if self.wall_s else 0.0,
            "media_wall_ratio": {"min": rounded(min(ratios, default=None)), **percentiles(ratios, 50)},
            "max_gap_s": rounded(max((v.max_gap_s for v in vs), default=0.0)),
            "viewers_with_gap": sum(1 for v in receiving if v.max_gap_s > GAP_TARGETS * self.target),
            "startup_ms": percentiles(startup, 50, 95, 99),
            "media_fetch_ms": percentiles(self.timings.media, 50, 95, 99),
            "playlist_ms": percentiles(self.timings.playlist, 50, 95, 99),
            "errors": dict(errors),
            "client_cpu_pct": round(self.client_cpu_pct, 1),
        }

    def to_json(self, with_viewers: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary()}
        if with_viewers:
            out["viewers"] = [v.public() for v in self.stats]
        return out


async def run_hls_load(
    url: str,
    viewers: int,
    duration: float,
    mode: str = "classic",
    ramp: float = 0.0,
    *,
    conn_limit: int = 0,
    on_mark: Callable[[str], None] | None = None,
    stats_sink: list[ViewerStats] | None = None,
) -> HlsLoadResult:
    """Run ``viewers`` HLS viewers of ``url`` (a master or media playlist), started at ``ramp``
    per second (0: all at once), for ``duration`` seconds after the last one started; always
    stops by itself. ``stats_sink``, when given, gets each viewer's live :class:`ViewerStats` as it
    starts (for a progress display)."""
    if mode not in ("classic", "ll"):
        raise ValueError(f"mode must be classic or ll, not {mode!r}")
    limit = conn_limit or min(viewers, MAX_CONN)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, use_dns_cache=True)
    timings = _Timings()
    ramp_s = viewers / ramp if ramp > 0 else 0.0
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + ramp_s + duration
    players: list[Viewer] = []
    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        for i in range(viewers):
            await ramp_wait(t0, i, ramp)
            viewer = Viewer(i, url, mode, session, timings)
            players.append(viewer)
            if stats_sink is not None:
                stats_sink.append(viewer.stats)
            tasks.append(asyncio.create_task(viewer.run()))
        stop_at = await steady_then_end(t0, ramp_s, min(2.0, duration / 4), end, on_mark)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = Counter(
        type(r).__name__
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    )
    target = max((p.target for p in players), default=1.0)
    for p, res in zip(players, results, strict=True):
        if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
            p.stats.errors[f"crash-{type(res).__name__}"] += 1
        p.stats.finish(stop_at, p.target)
    if crashed:
        print(f"hlsclient: viewer tasks crashed: {dict(crashed)}", file=sys.stderr)
    wall = stop_at - t0
    return HlsLoadResult(
        url, mode, viewers, duration, ramp, wall, cpu_pct_since(cpu0, wall), limit, target,
        [p.stats for p in players], timings,
    )  # fmt: skip


async def hammer(url: str, connections: int, duration: float) -> dict[str, Any]:
    """``connections`` keep-alive loops GETting ``url`` for ``duration`` s (a wrk stand-in)."""
    counts: Counter[str] = Counter()
    total_bytes = 0
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        end = time.monotonic() + duration

        async def loop() -> None:
            nonlocal total_bytes
            while time.monotonic() < end:
                try:
                    async with session.get(url) as resp:
                        total_bytes += len(await resp.read())
                        counts["ok" if resp.status == 200 else f"http-{resp.status}"] += 1
                except aiohttp.ClientError as exc:
                    counts[type(exc).__name__] += 1

        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        wall = time.monotonic() - t0
    return {
        "url": url,
        "connections": connections,
        "wall_s": round(wall, 2),
        "requests": sum(counts.values()),
        "req_s": round(sum(counts.values()) / wall, 1),
        "mbyte_s": round(total_bytes / wall / 1e6, 1),
        "results": dict(counts),
    }


def format_summary(s: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"url                 {s['url']} ({s['mode']}, target duration {s['target_duration_s']} s)",
            f"viewers             {s['viewers']} (receiving media {s['receiving']})",
            f"real-time viewers   {s['realtime']} ({100 * s['realtime_ratio']:.1f}%)",
            f"fetched             {s['playlists']} playlists, {s['segments']} segments, {s['parts']} parts "
            f"({s['req_s']} req/s), missed {s['missed']}",
            f"throughput in       {s['mbit_s_in']} Mbit/s over {s['wall_s']} s",
            f"media/wall          min {s['media_wall_ratio']['min']}  p50 {s['media_wall_ratio']['p50']}",
            f"gaps                max {s['max_gap_s']} s, {s['viewers_with_gap']} viewers over "
            f"{GAP_TARGETS:g} target durations",
            f"startup ms          {s['startup_ms']}",
            f"media fetch ms      {s['media_fetch_ms']}",
            f"playlist ms         {s['playlist_ms']}",
            f"errors              {s['errors'] or 'none'}",
            f"load client CPU     {s['client_cpu_pct']}% (connections <= {s['conn_limit']})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hlsclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="http://HOST:PORT/PATH/index.m3u8 (master or media playlist)")
    ap.add_argument("--viewers", type=int, default=10, help="number of viewers (default 10)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the last viewer started")
    ap.add_argument("--mode", choices=("classic", "ll"), default="classic")
    ap.add_argument("--ramp", type=float, default=0.0, help="viewers started per second (0: all at once)")
    ap.add_argument(
        "--conn-limit", type=int, default=0, help=f"connections (default: viewers, <= {MAX_CONN})"
    )
    ap.add_argument("--json", help="write the summary and per-viewer stats to this file")
    ap.add_argument("--marks", action="store_true", help="print 'MARK steady|end' lines (for run_hls)")
    ap.add_argument("--hammer", type=int, metavar="C", help="request loop: C connections GET the URL")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if args.viewers < 1 or args.duration <= 0:
        ap.error("--viewers must be >= 1 and --duration > 0")
    uv = prepare(args.no_uvloop)
    if args.hammer:
        res = asyncio.run(hammer(args.url, args.hammer, args.duration))
        res["uvloop"] = uv
        print(json.dumps(res), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        return 0
    result = asyncio.run(
        run_hls_load(
            args.url,
            args.viewers,
            args.duration,
            args.mode,
            args.ramp,
            conn_limit=args.conn_limit,
            on_mark=marker(args.marks),
        )
    )
    print_and_save(result, format_summary, args.json, uvloop=uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
