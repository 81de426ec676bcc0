"""The console's layout (streamer_console/static/console.css) at the three screens hosts run
a show from: a 1366x768 laptop, a 1920x1080 monitor and a 1024x768 tablet. A full show is
on: two live sales, a product with a long title, coupons, comments and paid orders landing.
Nothing the host works with is clipped: every control is inside the screen and inside each
box that hides overflow (a panel that scrolls as a whole is fine), every product title is
shown in full, and the panels the show needs are all on screen. The screenshots are the ones
docs/console.md shows (`make screenshots` writes them to docs/screenshots/console-*.png)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, ViewportSize, expect

from clients import HostClient
from engine.server.app import Engine
from tests.conftest import ViewerFactory, needs_chromium
from tests.pages import LAPTOP, TABLET, OpenConsole
from tests.test_console import BOOTS, JACKET, SCARF
from tests.test_console_orders import order_for
from tests.test_images import png

MONITOR: ViewportSize = {"width": 1920, "height": 1080}
LONG_TITLE = "Trail runner sneakers, waterproof, with reflective laces (limited colourway)"
SNEAKERS: dict[str, Any] = {
    "title": LONG_TITLE,
    "currency": "USD",
    "skus": [{"sku": "TR-42", "list_price": 8900, "attrs": {"size": "42"}}],
}

# Every control the host can reach: what a panel hides by overflow must not be one of them.
CLIPPED = """() => {
    const out = [];
    const controls = document.querySelectorAll(
        "#console button, #console input, #console select, #console textarea, #console summary");
    for (const el of controls) {
        if (!el.checkVisibility()) continue;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;
        const name = el.id || el.getAttribute("aria-label") || el.textContent.trim().slice(0, 30);
        if (r.left < -1 || r.right > innerWidth + 1) out.push(`${name}: off screen`);
        for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
            const style = getComputedStyle(box);
            const scrolls = /(auto|scroll)/.test(style.overflowX + style.overflowY);
            if (scrolls) break; // the host scrolls that box to reach it
            if (!/(hidden|clip)/.test(style.overflowX + style.overflowY)) continue;
            const b = box.getBoundingClientRect();
            const outside = r.left < b.left - 1 || r.right > b.right + 1
                || r.top < b.top - 1 || r.bottom > b.bottom + 1;
            if (outside) {
                out.push(`${name}: cut by ${box.id || box.className}`);
                break;
            }
        }
    }
    return out;
}"""

# Titles drawn with an ellipsis (scrollWidth past the box) hide words from the host, unless
# the whole title shows on hover.
CUT_TITLES = """() => [...document.querySelectorAll("#console .title, #room-title")]
    .filter((el) => el.checkVisibility() && el.scrollWidth > el.clientWidth + 1)
    .filter((el) => el.title !== el.textContent)
    .map((el) => el.textContent)"""


def product_picture(colour: tuple[int, int, int], size: int = 96) -> bytes:
    """A product shot as a PNG: a pale backdrop, the product a `colour` disc with a shine."""

    def paint(x: int, y: int) -> tuple[int, int, int]:
        dx, dy = x - size / 2, y - size * 0.55
        if dx * dx + dy * dy < (size * 0.34) ** 2:
            glint = ((x - size * 0.38) ** 2 + (y - size * 0.4) ** 2) / (size * 0.2) ** 2
            lift = 0.6 * max(0.0, 1 - glint)
            red, green, blue = (min(255, int(c + (255 - c) * lift)) for c in colour)
            return (red, green, blue)
        fade = 236 - y // 6
        return (fade, fade - 4, fade - 10)

    return png(size, size, paint=paint)


# The header's controls share one row: every button overlaps every other vertically.
ONE_ROW_HEADER = """() => {
    const boxes = [...document.querySelectorAll("header.top button")]
        .filter((b) => b.checkVisibility()).map((b) => b.getBoundingClientRect());
    return Math.max(...boxes.map((r) => r.top)) < Math.min(...boxes.map((r) => r.bottom));
}"""


async def full_show(engine: Engine, host: HostClient, viewer_factory: ViewerFactory,
                    room: str) -> str:  # fmt: skip
    """Products (two with pictures, one with a long title), two live sales, a coupon drop,
    four orders (three paid), three comments: the id of the sale the orders came from."""
    for product in (JACKET, SNEAKERS, BOOTS, SCARF):
        await host.create_product(**product)
    for product, colour in (("p1", (52, 96, 160)), ("p2", (214, 92, 60))):
        url = await host.upload_image(product_picture(colour), "image/png")  # as the console does
        await host.update_product(product, images=[url])
    await host.pin_product("p2")
    first = (await host.launch_sale("TR-42", 40, price=6900, per_user_limit=2))["id"]
    await host.launch_sale("DJ-M", 25, price=3900)
    template = await host.create_coupon("amount_off", "$5 off sneakers", 100, "USD", amount=500)
    drop = (await host.drop_coupons(template["id"], 50))["id"]
    for buyer in ("ana", "ben", "cid"):
        await order_for(engine, viewer_factory, room, first, buyer)
    await order_for(engine, viewer_factory, room, first, "dan", paid=False)
    fans = [await viewer_factory(room, user=f"fan-{i}") for i in range(3)]
    for fan, text in zip(fans, ("what size is it?", "link please", "多少钱?"), strict=True):
        await fan.comment(text)
    await fans[0].claim(drop)
    return str(first)


async def judge_layout(page: Page, viewport: ViewportSize) -> None:
    assert await page.evaluate(CLIPPED) == []
    assert await page.evaluate(ONE_ROW_HEADER), "the header wrapped"
    assert await page.evaluate(CUT_TITLES) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # The sales column scrolls as a whole: the column fits, its panels take their height.
    for panel in ("#lineup-panel", "#orders-panel", "#stream-panel", "#comments-panel",
                  ".area-c"):  # fmt: skip
        box = await page.locator(panel).bounding_box()
        assert box is not None, panel
        assert box["x"] >= 0, panel
        assert box["x"] + box["width"] <= viewport["width"] + 1, panel
        assert box["y"] + box["height"] <= viewport["height"] + 1, panel


SCREENS = [("1366x768", LAPTOP), ("1920x1080", MONITOR), ("1024x768", TABLET)]
# The console's languages, each as a browser set to it would start it.
LANGUAGES = [("en", "en-US"), ("zh-Hans", "zh-CN"), ("zh-Hant", "zh-TW")]
HOSTS = {"en": "Mia", "zh-Hans": "小美", "zh-Hant": "小美"}


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(("name", "viewport"), SCREENS)
@pytest.mark.parametrize(("lang", "locale"), LANGUAGES)
async def test_a_full_show_fits_every_screen(  # noqa: PLR0917 (fixtures and parameters)
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine, name: str, viewport: ViewportSize, lang: str, locale: str,
) -> None:  # fmt: skip
    sale = await full_show(engine, host, viewer_factory, room)
    console = await open_console(room, viewport=viewport, locale=locale, name=HOSTS[lang])
    page = console.page
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    await expect(page.locator("#sales .sale")).to_have_count(2)
    await expect(page.locator("#order-list li")).to_have_count(4)
    await expect(page.locator("#feed li")).to_have_count(3)
    await expect(page.locator("#drops .n-claimed")).to_have_text("1")
    # An order paid while the host watches flashes in at the top.
    eve = await order_for(engine, viewer_factory, room, sale, "eve")
    landed = page.locator(f'#order-list li[data-id="{eve["id"]}"]')
    await expect(landed).to_have_class(re.compile(r"\bflash\b"))
    await expect(page.locator("#order-list li").first).to_have_attribute("data-id", eve["id"])
    await console.shot(f"{lang}-{name}")
    # What the host watches during the show is on screen without scrolling anything (on a
    # tablet the launch form and the coupons are a scroll of the sales column away).
    for live in ("#sales .sale >> nth=1", "#lineup li.pinned", "#order-list li >> nth=1",
                 "#feed li >> nth=2", "#stream-panel"):  # fmt: skip
        await expect(page.locator(live)).to_be_in_viewport()
    if viewport != TABLET:
        for live in ("#sale-form button[type=submit]", "#drops .drop-card .stockbar",
                     "#order-list li >> nth=2"):  # fmt: skip
            await expect(page.locator(live)).to_be_in_viewport()
    await judge_layout(page, viewport)
    # The two views over the whole screen, the dashboard and every order, clip nothing
    # either, and each has one way back to the show.
    await page.click("#dashboard-toggle")
    await expect(page.locator("#dash-paid")).to_have_text("4")
    await expect(page.locator("#dash-products tr")).to_have_count(4)
    assert await page.evaluate(CLIPPED) == []
    assert await page.evaluate(ONE_ROW_HEADER), "the header wrapped with Back to show"
    if lang == "en":  # the views in one language: the docs show them at each screen
        await console.shot(f"{lang}-{name}-dashboard")
    await page.click("#dashboard-toggle")
    await page.click("#orders-expand")
    await expect(page.locator("#lineup-panel")).to_be_hidden()
    await expect(page.locator("#order-list li .about").first).to_be_visible()
    assert await page.evaluate(CLIPPED) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    if lang == "en":
        await console.shot(f"{lang}-{name}-orders")
    await page.click("#orders-expand")
    await expect(page.locator("#lineup-panel")).to_be_visible()
