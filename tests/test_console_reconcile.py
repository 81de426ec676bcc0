"""The console's Reconciliation (streamer_console/static/reconcile.js), at the foot of the
dashboard view: a day with one mismatch of each class (tests/test_reconcile.py's show) listed
with both sides' amounts and each remedy at the three screens hosts run a show from, nothing
clipped; then fixed from the panel, the why kept with the adjustment, a fixed charge gone
and an acknowledged one marked. Chromium driven by Playwright against an engine with books;
the screenshots are docs/console.md's (`LIVECART_SCREENSHOTS=docs/screenshots`)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from engine.server.app import Engine
from tests.conftest import EngineFactory, ViewerFactory, needs_chromium
from tests.pages import OpenConsole
from tests.test_console_layout import CLIPPED, SCREENS
from tests.test_reconcile import INJECTED, mismatched_show


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


@pytest.fixture
async def engine(ledger_url: str, engine_factory: EngineFactory) -> Engine:
    """This module's console engine keeps books (the other console tests' keeps none)."""
    return await engine_factory(ledger=True, database_url=ledger_url)


@pytest.mark.browser
@needs_chromium
async def test_the_days_exceptions_are_listed_and_fixed_from_the_dashboard(
    open_console: OpenConsole, engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    show = await mismatched_show(engine, room, viewer_factory)
    await show.caught_up()
    for name, viewport in SCREENS:
        console = await open_console(room, viewport=viewport, name="Mia")
        page = console.page
        await page.click("#dashboard-toggle")
        await expect(page.locator("#recon-date")).to_have_value(show.day.isoformat())
        await expect(page.locator("#recon-note")).to_have_text(
            "Compare a day's payments at the provider with the books."
        )
        await page.click("#recon-check")
        rows = page.locator("#recon-list li")
        await expect(rows).to_have_count(len(INJECTED))
        await expect(page.locator("#recon-summary")).to_have_text("7 open · 0 fixed")
        await page.locator("#recon-list").scroll_into_view_if_needed()
        assert await page.evaluate(CLIPPED) == []
        await console.shot(f"reconciliation-{name}")
    # The last console (a tablet) reads each row and fixes from the panel.
    shown = {cls: page.locator(f'#recon-list li[data-class="{cls}"]') for cls in INJECTED}
    assert {await shown[cls].get_attribute("data-id") for cls in INJECTED} == set(
        show.expected.values()
    )
    mismatch = shown["amount_mismatch"]
    await expect(mismatch.locator(".recon-class")).to_have_text("Amount differs")
    await expect(mismatch.locator(".recon-money")).to_have_text("provider USD 50.00books USD 56.00")
    await expect(mismatch.locator(".recon-remedy")).to_have_text(
        "Fix refunds the whole charge at the provider; the order stays as it is."
    )
    await expect(shown["order_without_charge"].locator("button.recon-open")).to_have_text(
        "Mark checked"
    )

    # A fix needs its why; then it asks, and the charge given back twice is gone.
    duplicate = shown["duplicate_charge"]
    await duplicate.locator("button.recon-open").click()
    await duplicate.locator("button.recon-do").click()
    await expect(duplicate.locator(".field-error")).to_have_text("Say why: it is kept with the fix")
    await duplicate.locator(".recon-why").fill("charged twice: give the second back")
    await console.shot("reconciliation-fix")
    await duplicate.locator("button.recon-do").click()
    await expect(page.locator("#confirm-text")).to_contain_text("Charged twice: Fix applies")
    await console.confirm()
    await console.feedback("Fix “Charged twice”")
    await expect(rows).to_have_count(len(INJECTED) - 1)
    assert await shown["duplicate_charge"].count() == 0

    # Report only: marked checked, and it stays listed as fixed, with who and why.
    unpaid = shown["order_without_charge"]
    await unpaid.locator("button.recon-open").click()
    await unpaid.locator(".recon-why").fill("the provider voided it; the buyer pays again")
    await unpaid.locator("button.recon-do").click()
    await console.confirm()
    await expect(unpaid).to_have_attribute("data-status", "resolved")
    await expect(unpaid.locator(".recon-done")).to_contain_text("fixed by host-1 at ")
    await expect(unpaid.locator(".recon-done")).to_contain_text(
        ": the provider voided it; the buyer pays again"
    )
    await expect(page.locator("#recon-summary")).to_have_text("5 open · 1 fixed")
    await unpaid.scroll_into_view_if_needed()
    await console.shot("reconciliation-fixed")
    async with show.pool.acquire() as connection:
        recorded = await connection.fetch(
            "SELECT class, who, why FROM adjustments WHERE room = $1 ORDER BY id", room
        )
    assert [tuple(r) for r in recorded] == [
        ("duplicate_charge", "host-1", "charged twice: give the second back"),
        ("order_without_charge", "host-1", "the provider voided it; the buyer pays again"),
    ]
