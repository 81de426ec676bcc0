"""The console's Customers view (streamer_console/static/customers.js), in Chromium: a tab of
the dashboard view with the shop's tiers as chips, the list, one buyer's drill down and a
coupon dropped for one tier, on an engine that keeps books (a PostgreSQL of the test's own)
holding tests/test_customers.py's hand-built shop; at the console's three screens
(tests/test_console_layout.py) nothing is clipped and the header stays one row. The
screenshots are docs/console.md's (docs/screenshots/console-customers-*.png)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.async_api import Page, ViewportSize, expect

from clients import HostClient
from engine.core.clock import now_ms
from engine.server.app import Engine
from tests.conftest import EngineFactory, needs_chromium, token
from tests.pages import HTTP_ERROR_LOG, LAPTOP, TABLET, OpenConsole
from tests.test_console_layout import CLIPPED, MONITOR, ONE_ROW_HEADER
from tests.test_customers import new_room, seed


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


AMOUNT_OFF: dict[str, Any] = {
    "kind": "amount_off", "title": "$5 off for our best", "currency": "USD", "amount": 500,
    "total": 100,
}  # fmt: skip


@pytest.fixture
async def engine(ledger_url: str, engine_factory: EngineFactory, request: pytest.FixtureRequest
                 ) -> Engine:  # fmt: skip
    """The engine every page of these tests opens: with books, unless a test asks for an
    engine without (`@pytest.mark.parametrize("engine", [False], indirect=True)`)."""
    if getattr(request, "param", True):
        return await engine_factory(ledger=True, database_url=ledger_url)
    return await engine_factory()


async def shop_room(engine: Engine, ledger_url: str) -> tuple[str, str]:
    """A live room of a new shop whose books hold the hand-built customers: (room, shop)."""
    shop = f"mia-{secrets.token_hex(3)}"
    room = await new_room(engine, shop, "Friday drop #5")
    await seed(ledger_url, shop, now_ms(), prefix=f"{room}-")
    return room, shop


async def open_customers(page: Page) -> None:
    await page.click("#dashboard-toggle")
    await page.click("#customers-open")
    await expect(page.locator("#customers-view")).to_be_visible()
    await expect(page.locator("#cust-rows tr")).to_have_count(9)


async def judge(page: Page, viewport: ViewportSize) -> None:
    assert await page.evaluate(CLIPPED) == []
    assert await page.evaluate(ONE_ROW_HEADER), "the header wrapped"
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


SCREENS = [("1366x768", LAPTOP), ("1920x1080", MONITOR), ("1024x768", TABLET)]


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(("name", "viewport"), SCREENS)
async def test_the_host_reads_the_shop_s_customers(
    open_console: OpenConsole, engine: Engine, ledger_url: str, name: str,
    viewport: ViewportSize,
) -> None:  # fmt: skip
    room, shop = await shop_room(engine, ledger_url)
    console = await open_console(room, user=shop, viewport=viewport)
    page = console.page
    await open_customers(page)
    chips = page.locator("#cust-tiers .chip")
    await expect(chips).to_have_count(9)  # All and the eight tiers
    await expect(page.locator('#cust-tiers [data-tier="all"] b')).to_have_text("9")
    await expect(page.locator('#cust-tiers [data-tier="new"] b')).to_have_text("2")
    await expect(page.locator("#cust-meta")).to_have_text("9 people · scores in USD")
    first = page.locator("#cust-rows tr").first
    await expect(first).to_have_attribute("data-user", "ana")
    await expect(first.locator(".rfm")).to_have_text("5·5·5")
    await expect(first.locator(".ltv")).to_have_text("USD 200.00")
    await expect(page.locator(".dash-figures")).to_be_hidden()
    # Drill down: ana's profile and her orders across the shop's four shows.
    await first.click()
    detail = page.locator("#cust-detail")
    await expect(detail.locator("h3 .badge")).to_have_text("Champions")
    await expect(detail.locator(".cust-orders tbody tr")).to_have_count(5)
    await expect(detail).to_contain_text("EUR 8.00 · USD 200.00")
    await expect(detail).to_contain_text("bought in 4 · watched 4")
    await judge(page, viewport)
    await console.shot(f"customers-{name}")
    # A tier chip filters the list; its drill down follows.
    await page.click('#cust-tiers [data-tier="at_risk"]')
    await expect(page.locator("#cust-rows tr")).to_have_count(1)
    await expect(page.locator("#cust-rows tr").first).to_have_attribute("data-user", "eve")
    await page.click('#cust-tiers [data-tier="prospect"]')
    await expect(page.locator("#cust-rows tr")).to_have_count(1)
    await page.locator("#cust-rows tr").first.click()
    await expect(detail.locator("h3 .who")).to_have_text("zoe")
    await expect(detail).to_contain_text("No orders: watched, never bought.")
    await judge(page, viewport)
    if viewport == LAPTOP:
        await console.shot(f"customers-{name}-prospect")
    # Back to the figures, then back to the show: one way back each.
    await page.click("#customers-open")
    await expect(page.locator(".dash-figures")).to_be_visible()
    await expect(page.locator("#customers-view")).to_be_hidden()
    await page.click("#dashboard-toggle")
    await expect(page.locator("#lineup-panel")).to_be_visible()


@pytest.mark.browser
@needs_chromium
async def test_a_coupon_is_dropped_for_one_tier(
    open_console: OpenConsole, engine: Engine, ledger_url: str
) -> None:
    room, shop = await shop_room(engine, ledger_url)
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        made = await host.create_coupon(**AMOUNT_OFF)
        console = await open_console(room, user=shop)
        page = console.page
        await open_customers(page)
        form = page.locator("#cust-drop")
        await expect(form).to_be_hidden()  # everyone: the coupons panel drops for all
        await page.click('#cust-tiers [data-tier="champions"]')
        await expect(form).to_be_visible()
        await expect(page.locator("#cust-drop-for")).to_have_text("A coupon for Champions only:")
        await expect(page.locator("#cust-drop-template")).to_have_value(made["id"])
        await expect(page.locator("#cust-meta")).to_have_text("9 people · scores in USD")
        await page.fill("#cust-drop-quantity", "3")
        assert await page.evaluate(CLIPPED) == []
        await console.shot("customers-1366x768-drop")
        await page.click("#cust-drop button[type=submit]")
        await console.feedback("Drop coupons for Champions: done")
        [dropped] = await host.drops()
    assert (dropped["tiers"], dropped["quantity"]) == (["champions"], 3)
    # The coupons panel shows the drop as every drop (its card comes from the room log).
    await expect(page.locator("#drops .drop-card")).to_have_count(1)


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("engine", [False], indirect=True)
async def test_without_books_the_view_says_so(open_console: OpenConsole, engine: Engine) -> None:
    shop = f"mia-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    # The browser logs the 409 it was answered: expected here.
    console = await open_console(room, user=shop, allowed=[HTTP_ERROR_LOG])
    page = console.page
    await page.click("#dashboard-toggle")
    await page.click("#customers-open")
    await expect(page.locator("#cust-note")).to_have_text(
        "This engine keeps no books (its ledger is off): customers need them."
    )
    await expect(page.locator(".cust-body")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_a_moderator_has_no_customers_button(
    open_console: OpenConsole, engine: Engine, ledger_url: str
) -> None:
    room, _ = await shop_room(engine, ledger_url)
    console = await open_console(room, role="moderator", user="mod-1")
    await console.page.click("#dashboard-toggle")
    await expect(console.page.locator("#customers-open")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_the_view_in_chinese(
    open_console: OpenConsole, engine: Engine, ledger_url: str
) -> None:
    room, shop = await shop_room(engine, ledger_url)
    console = await open_console(room, user=shop, locale="zh-CN", name="小美")
    page = console.page
    await open_customers(page)
    await expect(page.locator('#cust-tiers [data-tier="champions"] span')).to_have_text("冠军客户")
    await page.locator("#cust-rows tr").first.click()
    await expect(page.locator("#cust-detail h4")).to_have_text("各场订单")
    await judge(page, LAPTOP)
    await console.shot("customers-zh-Hans-1366x768")
