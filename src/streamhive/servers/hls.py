"""HLS, LL-HLS and DASH over HTTP: on-demand segmenters, blocking reloads, viewer counts.

A path's Segmenter starts at its first HLS/DASH request (the request waits for the first
segment) and stops after ``hls_idle_timeout`` without requests, unless ``hls_always``. Every
blocked request waits on one asyncio.Event per path that the segmenter pulses when a part or
segment is added, bounded in count (``http.max_blocked_requests``) and in time.

Access: every request is authorized like any read (network rules, blocks, the path's
read_auth); a positive answer is reused for ``AUTH_CACHE_SECONDS`` for the same client address,
path and credentials, so a player's stream of segment requests costs one check every few
seconds. The credential query parameters of a playlist request are carried into every URI it
lists, so players that only know the playlist URL keep sending them.

AES-128 (``hls_encryption``) covers the fmp4 and mpegts variants. A ``lowLatency`` path with
encryption is served as fmp4 without parts (and says so in the log once): a part would have to
be encrypted on its own before its segment is complete, which players do not reliably support
and which would reuse the segment's IV under the same key. Such a path serves no DASH, whose
segments would carry the same media in the clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ..auth import ip_of
from ..delivery import playlists
from ..delivery.crypto import SegmentKeys
from ..delivery.segmenter import Segment, Segmenter
from ..hub import Refused, Session, Stream, validate_path
from .http_auth import REFUSED_STATUS, credentials_of, remote_of

if TYPE_CHECKING:
    from ..server import Server

#: Seconds an authorized HLS/DASH client (address, path, credentials) is not asked again.
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_SIZE = 100_000

log = logging.getLogger("streamhive.hls")

#: A viewer is a (client address, user agent) seen within this many seconds.
VIEWER_WINDOW = 30.0

# Numbers are bounded so that int() never meets a 5000-digit name (a ValueError, not a 404).
NAME = re.compile(
    r"^(?:(?P<master>index\.m3u8)|(?P<media>stream\.m3u8)|(?P<mpd>index\.mpd)"
    r"|init(?P<init>\d{1,15})\.mp4|seg(?P<seg>\d{1,15})\.(?:(?P<part>\d{1,15})\.)?(?P<ext>m4s|ts)"
    r"|key(?P<key>\d{1,15})\.key"
    r"|dash-t(?P<dtrack>\d{1,15})-(?:init(?P<dinit>\d{1,15})\.mp4|(?P<dseg>\d{1,15})\.m4s))$"
)
CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "mpd": "application/dash+xml",
    "mp4": "video/mp4",
    "m4s": "video/iso.segment",
    "ts": "video/mp2t",
    "key": "application/octet-stream",
}
#: Playlists change every part; media never changes once published; keys must not linger.
PLAYLIST_CACHE = "no-cache"
MEDIA_CACHE = "max-age=3600"
KEY_CACHE = "no-store"

#: Audio hls.js and Safari play in every HLS variant; Opus is transcoded (Stream.readable_with).
HLS_AUDIO = frozenset(("aac", "mp3"))
#: Where a viewer's credential query goes in a shared rendered playlist (never in its text).
QUERY_MARK = "\x1f"


class PathMuxing:
    """The segmenter of one live Stream, and who is watching it."""

    def __init__(
        self, stream: Stream, on_gone: Callable[[PathMuxing], None], previous: PathMuxing | None = None
    ) -> None:
        cfg = stream.config
        self.stream = stream
        self.config = cfg
        self.encrypted = cfg.hls_encryption == "aes-128"
        self.low_latency = cfg.hls_variant == "lowLatency" and not self.encrypted
        self.ts = cfg.hls_variant == "mpegts"
        self._changed = asyncio.Event()
        #: Per skip flag: the playlist split at QUERY_MARK, and joined without a query.
        self._rendered: dict[bool, tuple[list[bytes], bytes]] = {}
        self.segmenter = Segmenter(
            stream.tracks,
            segment_duration=cfg.hls_segment_duration,
            part_duration=cfg.hls_part_duration,
            window=cfg.hls_segment_count,
            with_ts=self.ts,
            clock=time.time,
            on_update=self._pulse,
            keys=SegmentKeys(cfg.hls_key_rotation) if self.encrypted else None,
        )
        if previous is not None:
            self.segmenter.continue_from(previous.segmenter)
        self.last_request = time.monotonic()
        self.viewers: dict[tuple[str, str], float] = previous.viewers if previous else {}
        self._on_gone = on_gone
        stream.add_sink(self)

    # FrameSink: the segmenter does the work; this adds the end-of-stream bookkeeping.
    def offer(self, frame: object, keyframe: bool) -> None:
        self.segmenter.offer(frame, keyframe)  # type: ignore[arg-type]

    def tracks_changed(self) -> None:
        self.segmenter.tracks_changed()

    def end(self) -> None:
        self.segmenter.end()
        # Players get the final playlist (ENDLIST) for a short while, then the path is gone.
        asyncio.get_running_loop().call_later(2 * VIEWER_WINDOW, self._on_gone, self)

    def stop(self) -> None:
        self.stream.remove_sink(self)
        self._pulse()

    def _pulse(self) -> None:
        self._rendered.clear()
        self._changed.set()
        self._changed = asyncio.Event()

    def playlist(self, skip: bool, credentials: str = "") -> bytes:
        """The media playlist, rendered once per segmenter update however many viewers ask.

        A thousand blocked LL-HLS reloads wake on the same part; they share one rendering, and
        a viewer's ``credentials`` query costs one join of its pieces, not a rendering.
        """
        rendered = self._rendered.get(skip)
        if rendered is None:
            text = playlists.media_playlist(
                self.segmenter, low_latency=self.low_latency, ts=self.ts, skip=skip, query=QUERY_MARK
            )
            pieces = text.encode().split(QUERY_MARK.encode())
            rendered = self._rendered[skip] = (pieces, b"".join(pieces))
        pieces, plain = rendered
        return credentials.encode().join(pieces) if credentials else plain

    async def wait_for(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` (re-checked at every segmenter update) or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            remaining = deadline - loop.time()
            if remaining <= 0 or self.segmenter.ended:
                return ready()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    def seen(self, request: web.Request) -> None:
        now = time.monotonic()
        self.last_request = now
        self.viewers[(str(request.remote), request.headers.get("User-Agent", ""))] = now
        if len(self.viewers) > 100000:  # bounded even under a flood of made-up user agents
            self.viewers.clear()

    def viewer_count(self) -> int:
        cutoff = time.monotonic() - VIEWER_WINDOW
        for key in [k for k, t in self.viewers.items() if t < cutoff]:
            del self.viewers[key]
        return len(self.viewers)


class HlsService:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.muxings: dict[str, PathMuxing] = {}
        self.blocked = 0
        self._reaper: asyncio.Task[None] | None = None
        #: (path, client address, credentials) -> until when a yes is reused
        self._allowed: dict[tuple[str, str, str, str], float] = {}
        #: Paths already told that LL-HLS with encryption is served as fmp4 (one warning each).
        self._ll_warned: set[str] = set()
        server.hub.on("publish", self._on_publish)

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for muxing in list(self.muxings.values()):
            muxing.stop()
        self.muxings.clear()

    def _on_publish(self, path: str, _session: Session) -> None:
        stream = self.server.hub.streams.get(path)
        if stream is not None and stream.config.hls_always:
            self.muxing(stream)

    def muxing(self, stream: Stream) -> PathMuxing:
        stream = stream.readable_with(HLS_AUDIO)
        muxing = self.muxings.get(stream.path)
        if muxing is None or muxing.stream is not stream:
            if muxing is not None:
                muxing.stop()
            muxing = self.muxings[stream.path] = PathMuxing(stream, self._gone, muxing)
            log.info("hls/dash muxing started for %s (%s)", stream.path, stream.config.hls_variant)
            ll_refused = stream.config.hls_variant == "lowLatency" and muxing.encrypted
            if ll_refused and stream.path not in self._ll_warned:
                self._ll_warned.add(stream.path)
                log.warning(
                    "%s: LL-HLS parts cannot be AES-128 encrypted; serving HLS as fmp4 segments "
                    "without parts (set hls_variant: fmp4 or mpegts to silence this)",
                    stream.path,
                )
        return muxing

    def _gone(self, muxing: PathMuxing) -> None:
        if self.muxings.get(muxing.stream.path) is muxing:
            del self.muxings[muxing.stream.path]
            muxing.stop()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            for muxing in list(self.muxings.values()):
                idle = now - muxing.last_request > muxing.config.hls_idle_timeout
                if idle and not (muxing.config.hls_always and not muxing.stream.ended):
                    log.info("hls/dash muxing stopped for %s (idle)", muxing.stream.path)
                    self._gone(muxing)

    def viewers(self, path: str) -> int:
        muxing = self.muxings.get(path)
        return muxing.viewer_count() if muxing is not None else 0

    # -- HTTP -------------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        match = NAME.match(request.match_info["name"])
        if match is None:
            raise web.HTTPNotFound()
        try:
            path = validate_path(request.match_info["path"])
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        muxing = self.muxings.get(path)
        dash = match["mpd"] is not None or match["dtrack"] is not None
        if dash and self._encrypted(path, muxing):
            raise web.HTTPForbidden(
                text=f"no DASH for {path}: its HLS is AES-128 encrypted and DASH segments would be clear"
            )
        muxing = await self._authorized_muxing(request, path)
        muxing.seen(request)
        seg = muxing.segmenter
        first_wait = muxing.config.hls_segment_duration * 3 + 5
        if not await self._wait(muxing, lambda: bool(seg.segments) or seg.ended, first_wait):
            raise web.HTTPServiceUnavailable(text="no segment yet: is the stream sending keyframes?")
        if not seg.segments:
            raise web.HTTPNotFound(text="stream ended")
        if match["key"] is not None:
            key = seg.keys.keys.get(int(match["key"])) if seg.keys is not None else None
            if key is None:
                raise web.HTTPNotFound(text="no such key (it left the playlist window)")
            return self._reply(request, key, "key", KEY_CACHE)
        if match["master"] or match["media"] or match["mpd"]:
            # What proved this viewer's right goes into every URI, so the player sends it on.
            credentials = playlists.credentials_query(request.query.items())
            if match["master"]:
                master = playlists.master_playlist(seg, f"stream.m3u8{credentials}", ts=muxing.ts)
                return self._reply(request, master, "m3u8")
            if match["media"]:
                return await self._media_playlist(request, muxing, credentials)
            utc = f"{request.scheme}://{request.host}/api/v1/time"
            return self._reply(request, playlists.mpd(seg, time.time(), utc, credentials), "mpd")
        if match["init"] is not None:
            init = seg.inits.get(int(match["init"]))
            if not init:
                raise web.HTTPNotFound()
            return self._reply(request, init, "mp4", MEDIA_CACHE)
        if match["dinit"] is not None:
            track = int(match["dtrack"])
            if int(match["dinit"]) != seg.init_version or track not in seg.track_inits:
                raise web.HTTPNotFound()
            return self._reply(request, seg.track_inits[track], "mp4", MEDIA_CACHE)
        if match["dseg"] is not None:
            segment = seg.segment(int(match["dseg"]))
            track = int(match["dtrack"])
            if segment is None or not segment.complete or track not in seg.track_inits:
                raise web.HTTPNotFound()
            return self._reply(request, segment.track_data(track), "m4s", MEDIA_CACHE)
        return await self._segment(request, muxing, int(match["seg"]), match["part"], match["ext"])

    def _encrypted(self, path: str, muxing: PathMuxing | None) -> bool:
        """Whether ``path``'s HLS is encrypted (from its config while nothing is muxing it yet)."""
        if muxing is not None:
            return muxing.encrypted
        return self.server.config.path_config(path).hls_encryption != "none"

    async def _authorized_muxing(self, request: web.Request, path: str) -> PathMuxing:
        """The path's muxing if this request may read it (a recent yes for the same client,
        path and credentials is reused; the check itself is the hub's, as for any reader)."""
        remote = remote_of(request)
        key = (
            path,
            ip_of(remote),
            playlists.credentials_query(request.query.items()),
            request.headers.get("Authorization", ""),
        )
        now = time.monotonic()
        muxing = self.muxings.get(path)
        if muxing is not None and self._allowed.get(key, 0.0) > now:
            return muxing
        session = Session("hls", remote, query=request.query_string)
        try:
            stream = await self.server.hub.find_readable(path, session, credentials_of(request))
        except Refused as refused:
            raise _refused(refused) from None
        if len(self._allowed) >= AUTH_CACHE_SIZE:
            self._allowed = {k: t for k, t in self._allowed.items() if t > now}
            if len(self._allowed) >= AUTH_CACHE_SIZE:
                self._allowed.clear()
        self._allowed[key] = now + AUTH_CACHE_SECONDS
        return self.muxing(stream)

    async def _wait(self, muxing: PathMuxing, ready: Callable[[], bool], timeout: float) -> bool:
        if ready():
            return True
        if self.blocked >= self.server.config.http.max_blocked_requests:
            raise web.HTTPServiceUnavailable(text="too many blocked requests")
        self.blocked += 1
        try:
            return await muxing.wait_for(ready, timeout)
        finally:
            self.blocked -= 1

    async def _media_playlist(
        self, request: web.Request, muxing: PathMuxing, credentials: str
    ) -> web.StreamResponse:
        seg = muxing.segmenter
        query = request.query
        msn_text, part_text = query.get("_HLS_msn"), query.get("_HLS_part")
        if msn_text is not None and muxing.low_latency:
            if not msn_text.isdigit() or (part_text is not None and not part_text.isdigit()):
                raise web.HTTPBadRequest(text="_HLS_msn and _HLS_part must be non-negative integers")
            msn, part = int(msn_text), int(part_text) if part_text is not None else None
            if msn > seg.next_msn + 1:
                raise web.HTTPBadRequest(text="_HLS_msn is too far in the future")

            def ready() -> bool:
                return _has(seg, msn, part)

            timeout = 3 * playlists.target_duration(seg)
            if not await self._wait(muxing, ready, timeout):
                raise web.HTTPServiceUnavailable(text="the requested part did not appear in time")
        elif part_text is not None:
            raise web.HTTPBadRequest(text="_HLS_part needs _HLS_msn")
        skip = query.get("_HLS_skip") in ("YES", "v2")
        return self._reply(request, muxing.playlist(skip, credentials), "m3u8")

    async def _segment(
        self, request: web.Request, muxing: PathMuxing, msn: int, part_text: str | None, ext: str
    ) -> web.StreamResponse:
        seg = muxing.segmenter
        if (ext == "ts") != muxing.ts:
            raise web.HTTPNotFound()
        if part_text is not None:
            if ext == "ts" or not muxing.low_latency:
                raise web.HTTPNotFound()  # parts are LL-HLS only (and never encrypted)
            part = int(part_text)
            # A preload hint names the next part before it exists: hold the request until it does.
            if msn <= seg.next_msn and not _has(seg, msn, part):
                await self._wait(muxing, lambda: _has(seg, msn, part), 3 * playlists.target_duration(seg))
            segment = seg.segment(msn)
            if segment is None or part >= len(segment.parts):
                raise web.HTTPNotFound()
            return self._reply(request, segment.parts[part].data, "m4s", MEDIA_CACHE)
        segment = seg.segment(msn)
        if segment is None or not segment.complete:
            raise web.HTTPNotFound()
        return self._reply(request, segment.ts if ext == "ts" else segment.data, ext, MEDIA_CACHE)

    def _reply(
        self, request: web.Request, body: str | bytes, ext: str, cache: str = PLAYLIST_CACHE
    ) -> web.Response:
        headers = {
            "Content-Type": CONTENT_TYPES[ext],
            "Access-Control-Allow-Origin": self.server.config.http.cors_origin,
            "Cache-Control": cache,
        }
        data = body.encode() if isinstance(body, str) else body
        return web.Response(body=data, headers=headers)


def _has(seg: Segmenter, msn: int, part: int | None) -> bool:
    """Whether segment ``msn`` (or its part ``part``) has been published."""
    if seg.ended or seg.next_msn > msn + 1:
        return True
    segment: Segment | None = seg.segment(msn)
    if segment is None:
        return False
    if part is None:
        return segment.complete
    return segment.complete or part < len(segment.parts)


def _refused(refused: Refused) -> web.HTTPException:
    """The hub's refusal as the HTTP error to raise (401 asks for credentials, 403 does not)."""
    status = REFUSED_STATUS.get(refused.code, 503)
    if status == 401:
        return web.HTTPUnauthorized(
            text=str(refused), headers={"WWW-Authenticate": 'Basic realm="streamhive", Bearer'}
        )
    errors: dict[int, type[web.HTTPException]] = {
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        400: web.HTTPBadRequest,
        409: web.HTTPConflict,
    }
    return errors.get(status, web.HTTPServiceUnavailable)(text=str(refused))


async def time_handler(request: web.Request) -> web.Response:
    """The clock DASH players sync to (UTCTiming http-iso)."""
    return web.Response(text=playlists.iso_time(time.time()), headers={"Access-Control-Allow-Origin": "*"})
