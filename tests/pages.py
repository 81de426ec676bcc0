"""The two pages people see, opened in Debian's Chromium by Playwright: the streamer console
(`open_console`, a laptop by default) and the viewer's phone page (`open_viewer`, 390x844,
touch). A pytest plugin (tests/conftest.py loads it), so every browser test opens them the
same way. Any JavaScript console error or page error fails the test that opened the page,
unless it matches a pattern in `allowed` (given when opening, so a page that logs while
loading is judged by the same rule)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, ViewportSize, expect

from engine.server.app import Engine
from tests.conftest import capture, token

ARTIFACTS = Path(__file__).parent / "artifacts"
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
TABLET: ViewportSize = {"width": 1024, "height": 768}
PHONE: ViewportSize = {"width": 390, "height": 844}
SMALL_PHONE: ViewportSize = {"width": 360, "height": 740}
HTTP_ERROR_LOG = re.compile(r"^Failed to load resource: the server responded with a status of 4")
CDN = "https://cdn.example.com"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

Setup = Callable[[BrowserContext], Awaitable[None]]
PageT = TypeVar("PageT", bound="Opened")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@dataclass
class Opened:
    """One page; `errors` collects JS console errors and page errors not `allowed`."""

    page: Page
    folder: str
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def record(self, text: str) -> None:
        if not any(pattern.search(text) for pattern in self.allowed):
            self.errors.append(text)

    def watch(self) -> None:
        self.page.on("console", lambda m: self.record(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.record(f"page error: {e}"))

    async def shot(self, name: str) -> None:
        """A screenshot to tests/artifacts/<console|viewer>/<name>.png (gitignored); with
        LIVECART_SCREENSHOTS set to a folder, also to <folder>/<console|viewer>-<name>.png
        (`make screenshots` writes the docs' set to docs/screenshots/)."""
        folder = ARTIFACTS / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        png = await capture(self.page, folder / f"{name}.png")
        if docs := os.environ.get("LIVECART_SCREENSHOTS"):
            _write(Path(docs) / f"{self.folder}-{name}.png", png)


@dataclass
class Console(Opened):
    """One streamer console page."""

    folder: str = "console"

    async def confirm(self) -> None:
        await self.page.locator("#confirm-yes").click()

    async def feedback(self, text: str, state: str = "done") -> None:
        """The newest action in the feedback bar reads `text` and is in `state`."""
        row = self.page.locator(f"#feedback-log li.{state}", has_text=text).first
        await expect(row).to_be_visible()


@dataclass
class Viewer(Opened):
    """One viewer's phone page."""

    folder: str = "viewer"

    async def hook(self, expression: str) -> Any:
        return await self.page.evaluate(f"() => window.__livecart.{expression}")


OpenConsole = Callable[..., Awaitable[Console]]
OpenViewer = Callable[..., Awaitable[Viewer]]


async def cdn(route: Route) -> None:
    """Stands in for a CDN: a 1x1 cover image; the "stream" is an empty MP4."""
    if route.request.url.endswith(".png"):
        await route.fulfill(status=200, content_type="image/png", body=PNG)
    else:
        await route.fulfill(status=200, content_type="video/mp4", body=b"")


async def answer_cdn(context: BrowserContext, then: Setup | None = None) -> None:
    """Route the CDN's URLs (demo rooms name covers and streams there) to `cdn`, then run
    `then`: the viewer page's setup."""
    await context.route(f"{CDN}/**", cdn)
    if then:
        await then(context)


async def _new_page(browser: Browser, kind: type[PageT], pages: list[Opened], setup: Setup | None,
                    allowed: Iterable[re.Pattern[str]], **context: Any) -> PageT:  # fmt: skip
    """A page of `kind` in a new browser context (`context`: its options), watched."""
    browser_context = await browser.new_context(**context)
    if setup:
        await setup(browser_context)
    page = await browser_context.new_page()
    page.set_default_timeout(5000)
    opened = kind(page, allowed=list(allowed))
    opened.watch()
    pages.append(opened)
    return opened


async def _close_and_judge(pages: list[Opened]) -> None:
    for opened in pages:
        await opened.page.context.close()
    for opened in pages:
        assert opened.errors == [], f"JavaScript errors: {opened.errors}"


@pytest.fixture
async def open_console(browser: Browser, engine: Engine) -> AsyncIterator[OpenConsole]:
    """A console page in a browser whose language is `locale`, signed in as `role`/`user`
    (shown as `name`) unless `sign_in` is False; `setup` runs on its browser context first
    (e.g. to route /features)."""
    consoles: list[Opened] = []

    async def make(
        room: str,
        role: str = "host",
        *,
        user: str | None = None,
        viewport: ViewportSize | None = None,
        sign_in: bool = True,
        setup: Setup | None = None,
        allowed: Iterable[re.Pattern[str]] = (),
        locale: str = "en-US",
        name: str | None = None,
    ) -> Console:
        console = await _new_page(browser, Console, consoles, setup, allowed,
                                  viewport=viewport or LAPTOP, locale=locale)  # fmt: skip
        page = console.page
        await page.goto(f"{engine.base_url}/console/")
        if sign_in:
            named = {"name": name} if name else {}
            await page.fill("#token", token(room, role, user or f"{role}-1", **named))
            await page.click("#signin-button")
            await expect(page.locator("#conn")).to_have_attribute("data-status", "live")
        return console

    yield make
    await _close_and_judge(consoles)


@pytest.fixture
async def open_viewer(browser: Browser, engine: Engine) -> AsyncIterator[OpenViewer]:
    """A viewer's phone page for `room`, signed in as `user` (None: anonymous) and live; the
    CDN's cover and stream are answered locally; `setup` runs on the context first;
    `viewport` (default PHONE, 390x844) and `locale` (the browser's language, e.g. zh-CN)
    set up its browser context."""
    viewers: list[Opened] = []

    async def make(
        room: str,
        user: str | None = None,
        name: str | None = None,
        query: str = "",
        *,
        setup: Setup | None = None,
        allowed: Iterable[re.Pattern[str]] = (),
        viewport: ViewportSize | None = None,
        locale: str | None = None,
    ) -> Viewer:
        extra = {"locale": locale} if locale else {}
        viewer = await _new_page(browser, Viewer, viewers, partial(answer_cdn, then=setup), allowed,
                                 viewport=viewport or PHONE, has_touch=True, is_mobile=True,
                                 **extra)  # fmt: skip
        page = viewer.page
        fragment = ""
        if user is not None:
            fragment = "#token=" + token(room, "viewer", user, name=name or user)
        await page.goto(f"{engine.base_url}/live/{room}{query}{fragment}")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        return viewer

    yield make
    await _close_and_judge(viewers)
