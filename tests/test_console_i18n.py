"""The streamer console in each of its languages (streamer_console/static/i18n.js, with the
viewer page's core clients/web/i18n_core.js): the catalogs (i18n/*.js) have the same keys and
the same placeholders in every language; a browser in zh-CN gets 简体中文 and one in zh-TW
繁體中文 (headings, buttons, state chips, money through Intl in the page's language), with
no English left over on a full show; the language select reloads into the language picked
and the choice is remembered. Laptops at 1366x768 in Debian's Chromium; any JavaScript
console error fails the test."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from clients import HostClient, ShopperClient
from engine.server.app import Engine
from tests.conftest import ADDRESS, RoomFactory, ViewerFactory, needs_chromium, token
from tests.pages import OpenConsole
from tests.test_console import BOOTS, JACKET, SCARF
from tests.test_viewer_i18n import (
    assert_every_language_has_every_key_once,
    assert_the_same_placeholders,
    catalog_keys,
)

STATIC = Path(__file__).resolve().parent.parent / "streamer_console" / "static"
CATALOGS = STATIC / "i18n"
HOST_NAME = "小美"
COMMENTS = ["what size is it?", "so nice", "link please", "多少钱?"]
COUPON = "10% off boots"
# Words a Chinese console may show as they are: codes, names and the data the test made.
ALLOWED = {"livecart", "csv", "gmv", "sku", "id", "alt", "usd", "json"}

# ---- the catalogs -----------------------------------------------------------------------------


def test_every_console_language_has_every_key_once() -> None:
    assert_every_language_has_every_key_once(CATALOGS)


def test_every_key_the_console_uses_is_in_the_catalog() -> None:
    """Every data-t* key of index.html and every literal t("…") key of the modules (the
    polls feature's console module's too) is in en.js: a missing one would show as its key."""
    english = set(catalog_keys("en", CATALOGS))
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-t(?:-placeholder|-aria-label|-title)?="([^"]+)"', html))
    polls = STATIC.parent.parent / "engine" / "features" / "polls" / "static" / "console.js"
    modules = [*STATIC.glob("*.js"), polls]
    for module in modules:
        used |= set(re.findall(r'\bt(?:r)?\("([a-z][\w.-]*)"', module.read_text(encoding="utf-8")))
    assert used - english == set()


@pytest.mark.browser
@needs_chromium
async def test_console_catalogs_placeholders_plurals_and_shared_core(
    open_console: OpenConsole, room_factory: RoomFactory
) -> None:
    """The catalogs as the console loads them (/console/i18n/*.js): every translation fills
    the same {placeholders} as the English; the language pick is the viewer page's own."""
    console = await open_console(await room_factory(), locale="en-US", sign_in=False)
    await assert_the_same_placeholders(console.page, "/console/i18n")

    result = await console.page.evaluate("""async () => {
        const mine = await import("/console/i18n.js");
        const core = await import("/live/static/i18n_core.js");
        const picks = [["zh-CN"], ["zh-TW"], ["zh-HK"], ["zh-MO"], ["zh"], ["fr"], []]
            .map((tags) => mine.pickLanguage(tags));
        const one = mine.t("gw.winnerCount", { count: 1, n: 1 });
        const many = mine.t("gw.winnerCount", { count: 3, n: 3 });
        await mine.setLanguage("zh-Hant", { remember: false });
        const hant = [document.documentElement.lang, mine.t("show.goLive"),
                      mine.t("gw.winnerCount", { count: 1, n: 1 }), mine.t("no.such.key")];
        await mine.setLanguage("en", { remember: false });
        return { picks, one, many, hant, shared: mine.pickLanguage === core.pickLanguage };
    }""")
    assert result["picks"] == ["zh-Hans", "zh-Hant", "zh-Hant", "zh-Hant", "zh-Hans", "en", "en"]
    assert (result["one"], result["many"]) == ("1 winner", "3 winners")
    assert result["hant"] == ["zh-Hant", "開播", "1 位得獎者", "no.such.key"]
    assert result["shared"], "the console's i18n is not the viewer page's core"


# ---- a full show in Chinese ---------------------------------------------------------------------


async def full_show(engine: Engine, room: str, viewer_factory: ViewerFactory) -> dict[str, Any]:
    """Products (the boots presented), a live flash sale with holds, a coupon drop with a
    claim, comments and one paid order: the paid order."""
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        for product in (JACKET, BOOTS, SCARF):
            await host.create_product(**product)
        await host.pin_product("p2")
        await host.launch_sale("LB-42", 20, price=9900, per_user_limit=2)
        template = await host.create_coupon("percent_off", COUPON, 100, "USD", percent=10)
        await host.drop_coupons(template["id"], 50)
    viewers = [await viewer_factory(room, user=f"fan-{i}") for i in range(4)]
    for i, viewer in enumerate(viewers):
        await viewer.grab("s1", 1 + i % 2)
        await viewer.comment(COMMENTS[i])
    await viewers[0].claim("d2")
    buyer = await viewer_factory(room, user="ana")
    grabbed = await buyer.grab("s1")
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as me:
        order: dict[str, Any] = await me.checkout([grabbed["reservation"]], address=ADDRESS,
                                                  contact={"email": "ana@example.com"})  # fmt: skip
        payment = await me.start_payment(order["id"])
        assert (await me.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    return order


def english_words() -> set[str]:
    """The words of the English catalog's texts (2 letters or more, lower case)."""
    text = (CATALOGS / "en.js").read_text(encoding="utf-8")
    values = [re.sub(r"\{\w+\}", "", v) for v in re.findall(r':\s*"((?:[^"\\]|\\.)*)"', text)]
    return {w.lower() for v in values for w in re.findall(r"[A-Za-z]{2,}", v)}


def data_words(order: dict[str, Any]) -> set[str]:
    """The words of what the test itself made: products, SKUs, comments, the coupon, users."""
    texts = [COUPON, *COMMENTS, *ADDRESS.values(), order["id"], "ana", "fan-0", "fan-1",
             "fan-2", "fan-3", "host-1"]  # fmt: skip
    for product in (JACKET, BOOTS, SCARF):
        texts.append(product["title"])
        for sku in product["skus"]:
            texts += [sku["sku"], *sku.get("attrs", {}).values()]
    return {w.lower() for t in texts for w in re.findall(r"[A-Za-z]{2,}", t)}


async def visible_texts(page: Page) -> list[str]:
    """The text of every text node on screen (its element rendered, not hidden)."""
    texts: list[str] = await page.evaluate("""() => {
        const out = [];
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent.trim();
            const parent = node.parentElement;
            if (!text || !parent || parent.closest("script, style, template")) continue;
            const shown = { visibilityProperty: true, opacityProperty: true };
            if (!parent.checkVisibility(shown)) continue;
            out.push(text);
        }
        return out;
    }""")
    return texts


CASES = [
    # (browser locale, language, room title, Go live, flash sales heading, orders heading,
    # paid chip, role)
    ("zh-CN", "zh-Hans", "周五上新专场", "开播", "秒杀", "订单", "已付款", "主播"),
    ("zh-TW", "zh-Hant", "週五新品直播", "開播", "限時搶購", "訂單", "已付款", "直播主"),
]


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
async def test_full_show_in_chinese_has_no_english_left(
    open_console: OpenConsole, room_factory: RoomFactory, engine: Engine,
    viewer_factory: ViewerFactory, case: tuple[str, ...],
) -> None:  # fmt: skip
    locale, lang, title, go_live, sales, orders, paid, role = case
    room = await room_factory(title=title)
    order = await full_show(engine, room, viewer_factory)
    console = await open_console(room, locale=locale, name=HOST_NAME)
    page = console.page
    assert await page.evaluate("document.documentElement.lang") == lang
    await expect(page.locator("#sales .sale .n-reserved")).to_have_text("6")
    await expect(page.locator("#drops .n-claimed")).to_have_text("1")
    await expect(page.locator("#feed li")).to_have_count(4)
    await expect(page.locator(f'#order-list li[data-id="{order["id"]}"]')).to_be_visible()

    await expect(page.locator("#go-live")).to_have_text(go_live)
    await expect(page.locator("#sales-panel h2")).to_have_text(sales)
    await expect(page.locator("#orders-panel h2 [data-t='orders.title']")).to_have_text(orders)
    await expect(page.locator("#who")).to_have_text(f"{HOST_NAME} · {role}")
    chip = page.locator(f'#order-list li[data-id="{order["id"]}"] .order-state')
    await expect(chip).to_have_text(paid)
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    # Money through Intl in the page's language: not the English console's "USD 99.00".
    usd = """([lang, major]) =>
        new Intl.NumberFormat(lang, { style: "currency", currency: "USD" }).format(major)"""
    price = await page.evaluate(usd, [lang, 99])
    assert price == "US$99.00"
    await expect(page.locator("#sales .sale .terms")).to_contain_text(price)
    total = await page.evaluate(usd, [lang, order["pricing"]["total"] / 100])
    row = page.locator(f'#order-list li[data-id="{order["id"]}"]')
    await expect(row.locator(".total")).to_have_text(total)
    # The polls feature's panel, through ctx.t.
    await expect(page.locator("#feature-polls h2")).to_contain_text("直播投票")

    room_words = {w.lower() for w in re.findall(r"[A-Za-z]{2,}", room)}  # r-<hex>
    english = english_words() - ALLOWED - data_words(order) - room_words
    leftovers = {}
    for text in await visible_texts(page):
        words = {w.lower() for w in re.findall(r"[A-Za-z]{2,}", text)} & english
        if words:
            leftovers[text] = sorted(words)
    assert leftovers == {}, f"English on the {lang} console: {leftovers}"
    await console.shot(f"lang-{lang}")


# ---- the switch -----------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_language_select_reloads_into_the_language_and_remembers_it(
    open_console: OpenConsole, room_factory: RoomFactory
) -> None:
    room = await room_factory(live=False)
    console = await open_console(room, locale="en-US", sign_in=False)
    page = console.page
    # On the sign-in card: the same names as the viewer page's, this one chosen.
    select = page.locator("#signin-language")
    await expect(select.locator("option")).to_have_text(["English", "简体中文", "繁體中文"])
    await expect(select).to_have_value("en")
    await expect(page.locator("#signin-button")).to_have_text("Sign in")
    async with page.expect_navigation():
        await select.select_option("zh-Hant")
    await expect(page.locator("#signin-button")).to_have_text("登入")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hant"
    assert await page.evaluate("localStorage.getItem('lc.lang')") == "zh-Hant"

    # Signed in, the header's select: the page reloads signed in, in the new language.
    await page.fill("#token", token(room, "host", "host-1", name=HOST_NAME))
    await page.click("#signin-button")
    await expect(page.locator("#conn")).to_have_text("已連線")
    await expect(page.locator("#go-live")).to_have_text("開播")
    header = page.locator("#language")
    await expect(header).to_have_value("zh-Hant")
    async with page.expect_navigation():
        await header.select_option("zh-Hans")
    await expect(page.locator("#conn")).to_have_text("已连接")
    await expect(page.locator("#go-live")).to_have_text("开播")
    await expect(page.locator("#room-state")).to_have_text("未开播")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hans"

    # Remembered: a new page of this browser (an English one) opens in it.
    again = await page.context.new_page()
    await again.goto(page.url)
    await expect(again.locator("#signin-button")).to_have_text("登录")
    assert await again.evaluate("document.documentElement.lang") == "zh-Hans"
    await again.close()

    # And back to English: today's words exactly.
    async with page.expect_navigation():
        await page.locator("#language").select_option("en")
    await expect(page.locator("#go-live")).to_have_text("Go live")
    await expect(page.locator("#conn")).to_have_text("connected")
    assert await page.evaluate("document.documentElement.lang") == "en"
