"""The console's Orders panel (streamer_console/static/orders.js): every order of the show,
live, with filters, search, the host's refund/fulfil/approve and the orders CSV. Chromium
driven by Playwright against an engine started by the fixtures."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from clients import HostClient, ShopperClient
from engine.server.app import Engine
from tests.conftest import ADDRESS, ViewerFactory, needs_chromium, poll, token
from tests.pages import TABLET, OpenConsole
from tests.test_console import JACKET, WATCH

CONTACT = {"email": "buyer@example.com"}
ONE_JACKET = "Denim jacket (M) \N{MULTIPLICATION SIGN} 1"


async def order_for(engine: Engine, viewer_factory: ViewerFactory, room: str, sale: str,
                    buyer: str, *, paid: bool = True) -> dict[str, Any]:  # fmt: skip
    """`buyer` grabs one unit of `sale`, checks out and (if `paid`) pays at the simulated PSP."""
    viewer = await viewer_factory(room, user=buyer)
    grabbed = await viewer.grab(sale)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", buyer)) as me:
        order: dict[str, Any] = await me.checkout([grabbed["reservation"]], address=ADDRESS,
                                                  contact=CONTACT)  # fmt: skip
        if paid:
            payment = await me.start_payment(order["id"])
            assert (await me.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    return order


def row(page: Page, order: dict[str, Any]) -> Any:
    return page.locator(f'#order-list li[data-id="{order["id"]}"]')


@pytest.mark.browser
@needs_chromium
async def test_orders_panel_lists_every_order_live_and_refunds(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine,
) -> None:  # fmt: skip
    await host.create_product(**JACKET)
    sale = (await host.launch_sale("DJ-M", 10, price=5000))["id"]
    ana = await order_for(engine, viewer_factory, room, sale, "ana")
    ben = await order_for(engine, viewer_factory, room, sale, "ben")
    total = "USD %.2f" % (ana["pricing"]["total"] / 100)
    console = await open_console(room)
    page = console.page
    rows = page.locator("#order-list li")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("data-id", ben["id"])  # newest first
    for order in (ana, ben):
        await expect(row(page, order).locator(".total")).to_have_text(total)
        await expect(row(page, order).locator(".order-state")).to_have_text("paid")
        await expect(row(page, order).locator(".items")).to_have_text(ONE_JACKET)
    await expect(page.locator("#orders-empty")).to_have_text("No flagged orders.")
    await console.shot("orders-panel")

    # Live: a new paid order lands without a reload; an unpaid one shows as to pay.
    cid = await order_for(engine, viewer_factory, room, sale, "cid")
    await expect(row(page, cid)).to_have_class(re.compile(r"\bflash\b"))  # highlighted as it lands
    await expect(rows.first).to_have_attribute("data-id", cid["id"])
    dan = await order_for(engine, viewer_factory, room, sale, "dan", paid=False)
    await expect(row(page, dan).locator(".order-state")).to_have_text("pending payment")
    await expect(row(page, dan).locator("button.cancel")).to_be_visible()

    # Filters and search.
    await page.click('.order-filters [data-filter="to_pay"]')
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", dan["id"])
    await page.click('.order-filters [data-filter="paid"]')
    await expect(rows).to_have_count(3)
    await page.click('.order-filters [data-filter="cancelled"]')
    await expect(page.locator("#order-list-empty")).to_have_text("No orders match.")
    await page.click('.order-filters [data-filter="all"]')
    await page.fill("#order-search", "ben")
    await expect(rows).to_have_count(1)
    await page.fill("#order-search", ana["id"])
    await expect(rows).to_have_count(1)
    await page.fill("#order-search", "denim")
    await expect(rows).to_have_count(4)
    await page.fill("#order-search", "")

    # A partial refund, typed in major units.
    await row(page, ana).locator("button.refund").click()
    await row(page, ana).locator(".refund-amount").fill("10")
    await row(page, ana).locator("button.do-refund").click()
    await expect(page.locator("#confirm-text")).to_contain_text("Refund USD 10.00")
    await console.confirm()
    await console.feedback(f"Refund USD 10.00 of {ana['id']}")
    await expect(row(page, ana).locator(".order-state")).to_have_text("partially refunded")
    await expect(row(page, ana)).to_contain_text("refunded USD 10.00")
    await page.click('.order-filters [data-filter="refunded"]')
    await expect(rows).to_have_count(1)
    await console.shot("orders-refunded")
    await page.click('.order-filters [data-filter="all"]')
    by_id = {o["id"]: o for o in await host.orders()}
    assert (by_id[ana["id"]]["state"], by_id[ana["id"]]["refunded"]) == ("partially_refunded", 1000)
    audit = await host.call("GET", f"/api/rooms/{room}/audit")
    assert audit["ok"], audit
    net = 3 * ana["pricing"]["total"] - 1000
    await poll(lambda: host.call("GET", f"/api/rooms/{room}/dashboard"),
               lambda b: b["gmv"] == {"USD": net})  # fmt: skip

    # Mark fulfilled; cancel the unpaid one.
    await row(page, ben).locator("button.fulfill").click()
    await console.confirm()
    await expect(row(page, ben).locator(".order-state")).to_have_text("fulfilled")
    await expect(row(page, ben).locator("button.fulfill")).to_have_count(0)
    await row(page, dan).locator("button.cancel").click()
    await console.confirm()
    await expect(row(page, dan).locator(".order-state")).to_have_text("cancelled")
    by_id = {o["id"]: o for o in await host.orders()}
    assert (by_id[ben["id"]]["state"], by_id[dan["id"]]["state"]) == ("fulfilled", "cancelled")

    # The orders CSV.
    async with page.expect_download() as downloading:
        await page.click("#orders-export")
    download = await downloading.value
    assert download.suggested_filename == f"{room}-orders.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    assert all(o["id"] in text for o in (ana, ben, cid, dan))


@pytest.mark.browser
@needs_chromium
async def test_orders_panel_on_a_tablet_flagged_and_for_moderators(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine,
) -> None:  # fmt: skip
    await host.create_product(**WATCH)
    sale = (await host.launch_sale("GW-1", 5))["id"]
    rich = await order_for(engine, viewer_factory, room, sale, "rich")
    assert rich["review"] == "flagged"
    await host.create_product(**JACKET)
    jacket = (await host.launch_sale("DJ-M", 5, price=5000))["id"]
    ana = await order_for(engine, viewer_factory, room, jacket, "ana")

    moderator = await open_console(room, "moderator", viewport=TABLET)
    mod = moderator.page
    await expect(mod.locator("#order-list li")).to_have_count(2)
    await expect(mod.locator("#order-list button.refund")).to_have_count(0)
    await expect(mod.locator("#order-list button.fulfill")).to_have_count(0)
    await expect(mod.locator("#order-list button.approve")).to_have_count(0)
    await moderator.shot("orders-moderator-tablet")

    console = await open_console(room, viewport=TABLET)
    page = console.page
    rows = page.locator("#order-list li")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#orders li")).to_have_count(1)  # the review queue
    await expect(row(page, rich).locator(".order-flag")).to_have_text("flagged")
    await expect(row(page, rich).locator("button.fulfill")).to_have_count(0)  # approve first
    await page.click('.order-filters [data-filter="flagged"]')
    await expect(rows).to_have_count(1)
    await console.shot("orders-panel-tablet")
    await row(page, rich).locator("button.approve").click()
    await console.feedback(f"Approve {rich['id']}")
    await expect(rows).to_have_count(0)
    await expect(page.locator("#orders li")).to_have_count(0)
    await page.click('.order-filters [data-filter="all"]')
    await expect(row(page, rich).locator("button.fulfill")).to_be_visible()
    await expect(row(page, ana).locator("button.refund")).to_be_visible()
    by_id = {o["id"]: o for o in await host.orders()}
    assert by_id[rich["id"]]["review"] == "approved"


@pytest.mark.browser
@needs_chromium
async def test_a_refund_with_restock_shows_in_the_order_the_stock_dashboard_and_audit(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine,
) -> None:  # fmt: skip
    await host.create_product(**JACKET)
    sale = (await host.launch_sale("DJ-M", 10, price=5000))["id"]
    ana = await order_for(engine, viewer_factory, room, sale, "ana")
    total = ana["pricing"]["total"]
    console = await open_console(room)
    page = console.page
    card = page.locator(f'#sales .sale[data-id="{sale}"]')
    await expect(card.locator(".n-sold")).to_have_text("1")
    await expect(card.locator(".n-available")).to_have_text("9")

    await row(page, ana).locator("button.refund").click()
    await row(page, ana).locator(".refund-reason").fill("arrived damaged")
    await row(page, ana).locator(".refund-restock").check()
    await row(page, ana).locator("button.do-refund").click()
    await expect(page.locator("#confirm-text")).to_contain_text(
        "in full? 1 unit goes back on sale."
    )
    await console.confirm()
    await expect(row(page, ana).locator(".order-state")).to_have_text("refunded")
    # The unit is on sale again, live on the sale card.
    await expect(card.locator(".n-available")).to_have_text("10")
    await expect(card.locator(".n-sold")).to_have_text("0")
    (order,) = await host.orders()
    assert order["refunded"] == total
    assert [(r["reason"], r["restocked"]) for r in order["refunds"]] == [("arrived damaged", 1)]
    # The dashboard's net GMV drops by the refund; the audit still balances.
    await page.click("#dashboard-toggle")
    await expect(page.locator("#dash-gmv")).to_have_text("USD 0.00")
    await expect(page.locator("#dash-paid")).to_have_text("1")
    audit = await host.call("GET", f"/api/rooms/{room}/audit")
    assert audit["ok"], audit
    stock = await host.sale(sale)
    assert (stock["available"], stock["reserved"], stock["sold"]) == (10, 0, 0)
