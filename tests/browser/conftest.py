"""The browser suite: Playwright driving the system's Chromium against a live admin.

It runs on PostgreSQL only (``engine`` marker: deselected, and listed as
such, on the other engines); there a missing Chromium is a failure, never a
skip, so CI cannot pass without having looked at the pages. No browser is
ever downloaded: the one used is ``chromium`` (Debian's package) on PATH,
or ``DCR_CHROMIUM`` when set. Screenshots go to ``artifacts/screenshots/``
(or ``DCR_SCREENSHOTS``), which CI keeps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

#: The window the pages must fit without horizontal scrolling.
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str:
    found = os.environ.get("DCR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "the browser suite needs Chromium: apt-get install -y chromium (or set DCR_CHROMIUM); "
            "it never downloads a browser"
        )
    return found


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("DCR_SCREENSHOTS") or ROOT / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per module, closed with it."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django
    # refuses ORM calls from such a thread unless told it is intended (only
    # while the browser runs: the rest of the suite keeps the check).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # Root in a container has no user namespace for Chromium's sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page at 1280 px wide, in English."""
    context = chromium.new_context(
        viewport=VIEWPORT,
        locale="en-US",
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
