"""Headless Chromium through Playwright, for the tests that play (or publish) in a browser.

Playwright is imported only when a browser starts, so that importing this module needs none: the
tests decide for themselves whether to skip when it or Chromium is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def headless_chromium(flags: list[str]) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a fresh profile and ``flags``, torn down with it."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=flags
            )
            try:
                yield context
            finally:
                await context.close()
