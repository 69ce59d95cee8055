"""The sources configured under ``paths:``: always-on or on-demand pulls, retried with backoff.

Readers of a source path never see the reconnects: while a pull is down the Stream stays for
``source_grace`` seconds (the hub's publisher grace), and the next pull takes it over with
timestamps rebased, as when an RTMP publisher comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..config import PathConfig
from ..hub import Refused, Stream
from ..protocols.rtsp.message import RtspError
from .pull import Pull, RtmpPull, RtspPull, SourceError, SourceUrl, UdpBlocked
from .rtsp_client import RtspClientError

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("streamhive.source")

MAX_BACKOFF = 10.0
#: How often an on-demand source checks whether anyone still reads it.
IDLE_CHECK = 1.0


class Source:
    """One configured source: its pull task, retries and, on demand, its idle timer."""

    def __init__(self, server: Server, path: str, config: PathConfig) -> None:
        assert config.source is not None
        self.server = server
        self.path = path
        self.config = config
        self.url = SourceUrl.parse(config.source)
        self.task: asyncio.Task[None] | None = None
        self.live = asyncio.Event()
        self.last_error: str | None = None
        self.pull: Pull | None = None

    def start(self) -> None:
        if self.task is None or self.task.done():
            log.info("source %s: starting %s", self.path, self.url.public)
            self.task = asyncio.ensure_future(self._run())

    async def stop(self, reason: str) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            log.info("source %s: stopping (%s)", self.path, reason)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_live(self, timeout: float) -> Stream | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.live.wait(), timeout)
        stream = self.server.hub.streams.get(self.path)
        return stream if stream is not None and not stream.ended and stream.tracks else None

    def _make_pull(self, transport: str) -> Pull:
        hub = self.server.hub
        if self.url.scheme in ("rtmp", "rtmps"):
            return RtmpPull(hub, self.path, self.url, self._on_live)
        return RtspPull(hub, self.path, self.url, self._on_live, transport)

    def _on_live(self, _stream: Stream) -> None:
        self.live.set()

    async def _run(self) -> None:
        hub = self.server.hub
        transport = "tcp" if self.config.source_protocol == "tcp" else "udp"
        backoff = 1.0
        idle = asyncio.ensure_future(self._watch_idle()) if self.config.source_on_demand else None
        try:
            while True:
                pull = self.pull = self._make_pull(transport)
                hub.add_session(pull.session)
                reason = "source ended"
                try:
                    await pull.run()
                except UdpBlocked as exc:
                    reason = str(exc)
                    if self.config.source_protocol == "auto":
                        transport = "tcp"
                        backoff = 0.0
                except (SourceError, RtspClientError, OSError, RtspError, Refused) as exc:
                    reason = str(exc)
                except asyncio.CancelledError:
                    pull.session.close_reason = "source stopped"
                    pull.unpublish(0)
                    self.live.clear()  # the next start must wait for its own pull
                    raise
                except Exception as exc:  # a bug of ours: log it once, keep retrying the source
                    log.exception("source %s: pull failed", self.path)
                    reason = f"internal error: {exc!r}"
                finally:
                    hub.remove_session(pull.session)
                self.last_error = reason
                pull.session.close_reason = reason
                pull.unpublish(self.config.source_grace)
                self.live.clear()
                if pull.live:
                    backoff = 1.0 if backoff else 0.0
                log.warning("source %s: %s; retrying in %gs", self.path, reason, backoff)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF)
        finally:
            if idle is not None:
                idle.cancel()

    async def _watch_idle(self) -> None:
        """Stop the pull once nobody (RTMP/RTSP/FLV readers, HLS viewers) has read it for a while.

        The idle clock runs only while the source is live (a slow camera is not stopped while
        its first reader waits), and deciding and cancelling happen in one step, so a reader
        cannot slip in between.
        """
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while True:
            await asyncio.sleep(IDLE_CHECK)
            now = loop.time()
            stream = self.server.hub.streams.get(self.path)
            readers = stream.reader_count() if stream is not None else 0
            if readers or self.server.hls.viewers(self.path) or not self.live.is_set():
                idle_since = now
            elif now - idle_since >= self.config.source_on_demand_close_after:
                log.info("source %s: stopping (no readers)", self.path)
                task, self.task = self.task, None
                if task is not None:
                    task.cancel()  # _run cleans up: unpublish, and this watcher is cancelled too
                return


class SourceManager:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.sources: dict[str, Source] = {}
        for key in server.config.paths:
            config = server.config.path_config(key)
            if config.source is not None and not key.startswith("~"):
                self.sources[key] = Source(server, key, config)

    def start(self) -> None:
        self.server.hub.on_demand = self.demand
        for source in self.sources.values():
            if not source.config.source_on_demand:
                source.start()

    async def demand(self, path: str) -> Stream | None:
        """A reader wants ``path``: start its on-demand source and wait until it is live."""
        source = self.sources.get(path)
        if source is None:
            return None
        source.start()
        return await source.wait_live(source.config.source_on_demand_start_timeout)

    async def stop(self) -> None:
        for source in self.sources.values():
            await source.stop("server shutting down")
