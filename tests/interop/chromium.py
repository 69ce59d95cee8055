"""Headless Chromium through Playwright, for the tests that play (or publish) in a browser.

Playwright is imported only when a browser starts, so that importing this module needs none: the
tests decide for themselves whether to skip when it or Chromium is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Every test's: no sandbox (CI runs as root), no GPU, nothing fetched in the background, and
#: media that starts without a click.
BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def _without_realtime(folder: str) -> str | None:
    """A launcher that runs Chromium without CAP_SYS_NICE, when we are root.

    As root, Chromium gives its audio threads real-time priority (SCHED_RR, and we saw a zygote
    at SCHED_FIFO 99); once one of them spun in the kernel, the test machine's other processes
    got no CPU for the rest of the run. Without the capability Chromium stays in normal time.
    """
    setpriv = shutil.which("setpriv")
    if CHROMIUM is None or setpriv is None or os.geteuid() != 0:
        return CHROMIUM
    launcher = Path(folder) / "chromium"
    launcher.write_text(f'#!/bin/sh\nexec {setpriv} --bounding-set=-sys_nice {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


@contextlib.asynccontextmanager
async def headless_chromium(flags: list[str]) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a fresh profile and ``flags``, torn down with it."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryDirectory() as bin_folder:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=_without_realtime(bin_folder), headless=True, args=flags
            )
            try:
                yield context
            finally:
                await context.close()
