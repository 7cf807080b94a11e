"""Browser tests: real Chromium (Debian's, at /usr/bin/chromium or $CHROMIUM)
driven by Playwright against the whole platform. Every journey saves
screenshots under artifacts/screenshots/.

Playwright's own browser download does not work on these machines; the
system Chromium does. Without it these tests fail loudly: `.ci/run` installs it.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

SCREENSHOTS = ARTIFACTS / "screenshots"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# As root, in a sandbox with no network but loopback: no sandbox, no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"browser tests need Chromium at {path}: `apt-get install chromium` (bash .ci/run does), "
                    "or set CHROMIUM to its path", pytrace=False)
    return path


# Package scope: Playwright's sync API keeps an event loop on this thread while
# it runs, which asyncio.run() in later tests would trip over.
@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Numbered screenshots of one journey: artifacts/screenshots/<test>-<n>-<step>.png."""

    def __init__(self, test_name: str):
        self.prefix = re.sub(r"[^\w-]+", "_", test_name)
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, page, step: str) -> Path:
        self.count += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def new_context(browser, platform):
    """Opens browser contexts (one per person) on the portal; closes them after the test."""
    contexts = []

    def open_context(viewport=PHONE, locale="zh-CN"):
        context = browser.new_context(base_url=platform.gateway_url, viewport=viewport, locale=locale,
                                      accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
