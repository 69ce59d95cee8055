"""Event hooks: POST ``on_publish``, ``on_unpublish``, ``on_read``, ``on_read_end`` to HTTP URLs.

Media never waits for a hook: ``emit`` only appends to a bounded queue (beyond ``queue_size`` the
oldest event is dropped and counted) and one background task delivers in order, each attempt
with its own timeout, retrying failures (non-2xx, timeout, connection error) ``retries`` times
after 0.5 s, 1 s, 2 s... A receiver that is down loses events, never the server's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from ..config import HooksConfig
from .client import SessionFactory, SharedSession
from .limits import LogOnce

__all__ = ["EVENTS", "EventHooks"]

log = logging.getLogger("streamhive.auth")

EVENTS = ("on_publish", "on_unpublish", "on_read", "on_read_end")


class EventHooks:
    """Queues events and delivers them in the background; counters feed the metrics."""

    def __init__(
        self,
        config: HooksConfig,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.time,
        *,
        backoff: float = 0.5,
        stop_grace: float = 2.0,
    ) -> None:
        self._config = config
        self._own_session = SharedSession() if session_factory is None else None
        self._session_factory: SessionFactory = session_factory or self._own_session  # type: ignore[assignment]
        self._clock = clock
        self._backoff = backoff
        self._stop_grace = stop_grace
        self._urls = {event: getattr(config, event) for event in EVENTS}
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._log_once = LogOnce(60.0, clock)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Queue ``{"event": event, "time": clock(), **payload}`` for the event's URL, if any."""
        url = self._urls.get(event)
        if url is None:
            return
        if self._closing:
            self.dropped += 1
            return
        if len(self._queue) >= self._config.queue_size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((url, {"event": event, "time": self._clock(), **payload}))
        self._wake.set()

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hooks")

    async def stop(self) -> None:
        """Deliver what is queued for up to ``stop_grace`` seconds, then drop the rest."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self._stop_grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.dropped += len(self._queue)
        self._queue.clear()
        if self._own_session is not None:
            await self._own_session.close()

    async def _run(self) -> None:
        while True:
            while self._queue:
                url, body = self._queue.popleft()
                try:
                    await self._deliver(url, body)
                except asyncio.CancelledError:
                    self.dropped += 1
                    raise
            if self._closing:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str)
        timeout = self._config.timeout
        problem = ""
        for attempt in range(self._config.retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(timeout):
                    response = await self._session_factory().post(
                        url,
                        data=data,
                        headers={"Content-Type": "application/json"},
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=timeout),
                    )
                    response.release()
            except TimeoutError:
                problem = "timed out"
                continue
            except Exception as exc:  # a broken receiver costs this event, never the worker
                problem = type(exc).__name__
                continue
            if 200 <= response.status < 300:
                self.delivered += 1
                return
            problem = f"status {response.status}"
        self.failed += 1
        if self._log_once.should_log(url):
            log.warning("hook %s to %s not delivered (%s)", body["event"], url, problem)
