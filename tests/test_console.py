"""The streamer console (streamer_console/static, served at /console) end to end: Debian's
Chromium driven by Playwright against an engine started by the fixtures, with SDK viewers
playing the room. Any JavaScript console error or page error fails the test. Screenshots
of the main states go to tests/artifacts/console/ (gitignored)."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from clients import HostClient, LivecartClientError, ShopperClient
from engine.server.app import Engine
from tests.conftest import (
    ADDRESS,
    RoomFactory,
    ViewerFactory,
    eventually,
    jwt_token,
    needs_chromium,
    token,
)
from tests.pages import HTTP_ERROR_LOG, LAPTOP, OpenConsole

JACKET: dict[str, Any] = {
    "title": "Denim jacket",
    "currency": "USD",
    "skus": [
        {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S"}},
        {"sku": "DJ-M", "list_price": 5200, "attrs": {"size": "M"}},
    ],
}
BOOTS: dict[str, Any] = {
    "title": "Leather boots",
    "currency": "USD",
    "skus": [{"sku": "LB-42", "list_price": 12900, "attrs": {"size": "42"}}],
}
# Priced above the engine's review threshold (100000): its orders are flagged for review.
WATCH: dict[str, Any] = {"title": "Gold watch", "currency": "USD",
                         "skus": [{"sku": "GW-1", "list_price": 150_000}]}  # fmt: skip
SCARF: dict[str, Any] = {
    "title": "Wool scarf",
    "currency": "USD",
    "skus": [{"sku": "WS-1", "list_price": 2500}],
}


# ---- serving --------------------------------------------------------------------------------


async def test_console_is_served_at_console(engine: Engine) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        bare = await http.get("/console")
        assert bare.status_code in (307, 308)
        assert bare.headers["location"].endswith("/console/")
        index = await http.get("/console/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="console.js">' in index.text
        for name in ("console.js", "api.js", "features.js", "lineup.js", "sales.js",
                     "comments.js", "coupons.js", "dashboard.js", "util.js", "interactive.js",
                     "giveaways.js", "auctions.js", "comment_buy.js", "social.js"):  # fmt: skip
            script = await http.get(f"/console/{name}")
            assert script.status_code == 200, name
            assert "javascript" in script.headers["content-type"], name
        assert (await http.get("/console/console.css")).status_code == 200
        assert (await http.get("/console/nope.js")).status_code == 404
        # The realtime seat is the JavaScript SDK's, served at /sdk/; the console has no copy.
        sdk = await http.get("/sdk/index.js")
        assert sdk.status_code == 200
        assert "javascript" in sdk.headers["content-type"]
        assert "LivecartViewer" in sdk.text


@pytest.mark.browser
@needs_chromium
async def test_console_loads_the_sdk(open_console: OpenConsole, room: str) -> None:
    requested: list[str] = []

    async def watch(context: BrowserContext) -> None:
        context.on("request", lambda request: requested.append(urlsplit(request.url).path))

    await open_console(room, setup=watch)  # signed in: "connected"
    assert {"/console/console.js", "/sdk/index.js", "/sdk/viewer.js"} <= set(requested)
    assert not [path for path in requested if "realtime" in path]  # no copy of its own


# ---- sign-in and the show ---------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_sign_in_go_live_and_end(
    open_console: OpenConsole, room_factory: RoomFactory, engine: Engine
) -> None:
    room = await room_factory(live=False, title="Friday drop")
    console = await open_console(room, sign_in=False)
    page = console.page
    await page.fill("#token", token(room, "host", "host-1", name="Alice"))
    await expect(page.locator("#room-id")).to_have_value(room)  # read from the token
    await console.shot("01-sign-in")
    await page.click("#signin-button")
    await expect(page.locator("#room-title")).to_have_text("Friday drop")
    await expect(page.locator("#room-state")).to_have_text("scheduled")
    await expect(page.locator("#who")).to_have_text("Alice · host")

    await page.click("#go-live")
    await expect(page.locator("#confirm")).to_be_visible()
    await page.locator("#confirm-no").click()  # cancelled: nothing happens
    await expect(page.locator("#room-state")).to_have_text("scheduled")
    await page.click("#go-live")
    await console.shot("02-confirm-go-live")
    await console.confirm()
    await expect(page.locator("#room-state")).to_have_text("live")
    await console.feedback("Go live")
    await console.shot("03-live-empty-room")

    # The token is remembered for the tab: a reload signs in again.
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("connected")
    await expect(page.locator("#room-state")).to_have_text("live")

    await page.click("#end-show")
    await console.confirm()
    await expect(page.locator("#room-state")).to_have_text("ended")
    async with HostClient(engine.base_url, room, token(room, "host")) as host:
        assert (await host.get_room())["state"] == "ended"

    await page.click("#sign-out")
    await expect(page.locator("#signin")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


@pytest.mark.browser
@needs_chromium
async def test_a_host_signs_in_with_a_jwt_from_the_platform(
    open_console: OpenConsole, room: str
) -> None:
    """A platform that issues JWTs (docs/security.md) signs its hosts in with them too."""
    console = await open_console(room, sign_in=False)
    page = console.page
    await page.fill("#token", jwt_token(room, "host", "shop-host-9", name="Mina"))
    await expect(page.locator("#room-id")).to_have_value(room)  # read from the JWT's claims
    await page.click("#signin-button")
    await expect(page.locator("#conn")).to_have_text("connected")
    await expect(page.locator("#who")).to_have_text("Mina · host")
    await expect(page.locator("#room-state")).to_have_text("live")


@pytest.mark.browser
@needs_chromium
async def test_sign_in_refusals(open_console: OpenConsole, room: str) -> None:
    console = await open_console(room, sign_in=False)
    page = console.page
    await page.fill("#token", token(room, "viewer"))
    await page.click("#signin-button")
    await expect(page.locator("#signin-error")).to_contain_text("host or moderator")
    await page.fill("#token", token("other-room", "host"))
    await page.fill("#room-id", room)
    await page.click("#signin-button")
    await expect(page.locator("#signin-error")).to_contain_text("token_wrong_room")
    await expect(page.locator("#console")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_host_creates_a_missing_room(open_console: OpenConsole, engine: Engine) -> None:
    fresh = f"new-{secrets.token_hex(4)}"
    console = await open_console("", sign_in=False)
    page = console.page
    await page.fill("#token", token(fresh, "host", "host-1"))
    await page.click("#signin-button")
    await expect(page.locator("#create-room")).to_be_visible()
    await expect(page.locator("#signin-error")).to_contain_text("room_not_found")
    await page.fill("#new-room-title", "Brand new show")
    await page.click("#create-room button")
    await expect(page.locator("#room-title")).to_have_text("Brand new show")
    await expect(page.locator("#room-state")).to_have_text("scheduled")
    async with HostClient(engine.base_url, fresh, token(fresh, "host")) as host:
        assert (await host.get_room())["title"] == "Brand new show"


@pytest.mark.browser
@needs_chromium
async def test_moderator_sees_moderation_not_sales(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    await host.create_product(**JACKET)
    console = await open_console(room, "moderator", user="mia")
    page = console.page
    await expect(page.locator("#comments-panel")).to_be_visible()
    await expect(page.locator("#orders-panel")).to_be_visible()
    await expect(page.locator("#lineup li")).to_have_count(1)
    for hidden in ("#sales-panel", "#coupons-panel", "#interactive-panel", "#go-live", "#end-show",
                   "#product-editor"):  # fmt: skip
        await expect(page.locator(hidden)).to_be_hidden()
    await expect(page.locator("#lineup li button")).to_have_count(0)
    await console.shot("04-moderator")


# ---- run of show ----------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_reorder_and_present_products(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    for product in (JACKET, BOOTS, SCARF):
        await host.create_product(**product)
    console = await open_console(room)
    page = console.page
    titles = page.locator("#lineup li .title")
    await expect(titles).to_have_text(["Denim jacket", "Leather boots", "Wool scarf"])

    await page.locator("#lineup li", has_text="Denim jacket").locator("button.down").click()
    await expect(titles).to_have_text(["Leather boots", "Denim jacket", "Wool scarf"])
    await eventually(lambda: _lineup(host, ["p2", "p1", "p3"]))

    # Keyboard: Alt+Up moves the focused product; it keeps the focus.
    await page.locator("#lineup li", has_text="Wool scarf").focus()
    await page.keyboard.press("Alt+ArrowUp")
    await expect(titles).to_have_text(["Leather boots", "Wool scarf", "Denim jacket"])
    await eventually(lambda: _lineup(host, ["p2", "p3", "p1"]))

    # Drag and drop: the dragged product takes the place of the one it is dropped on.
    await page.locator("#lineup li", has_text="Denim jacket").drag_to(
        page.locator("#lineup li", has_text="Leather boots")
    )
    await expect(titles).to_have_text(["Denim jacket", "Leather boots", "Wool scarf"])
    await eventually(lambda: _lineup(host, ["p1", "p2", "p3"]))
    await page.locator("#lineup li", has_text="Denim jacket").drag_to(
        page.locator("#lineup li", has_text="Wool scarf")
    )
    await expect(titles).to_have_text(["Leather boots", "Wool scarf", "Denim jacket"])
    await eventually(lambda: _lineup(host, ["p2", "p3", "p1"]))

    await page.locator("#lineup li", has_text="Wool scarf").locator("button.present").click()
    pinned = page.locator("#lineup li.pinned .title")
    await expect(pinned).to_have_text("Wool scarf")
    assert (await host.get_room())["pinned_product"] == "p3"

    await page.locator("body").click(position={"x": 5, "y": 740})  # leave the row
    await page.keyboard.press("n")  # next product
    await expect(pinned).to_have_text("Denim jacket")
    await eventually(lambda: _pinned(host, "p1"))
    await page.keyboard.press("[")  # previous
    await page.keyboard.press("[")
    await expect(pinned).to_have_text("Leather boots")
    await eventually(lambda: _pinned(host, "p2"))
    await console.feedback("Present p2")

    # Changes made elsewhere (another host seat) show up live.
    await host.reorder(["p1", "p2", "p3"])
    await expect(titles).to_have_text(["Denim jacket", "Leather boots", "Wool scarf"])
    await host.update_room(title="Friday drop: last call")
    await expect(page.locator("#room-title")).to_have_text("Friday drop: last call")
    await expect(page.locator("#room-id-label")).to_have_text(room)

    # The product form.
    await page.locator("#product-editor summary").click()
    form = page.locator("#product-form")
    await form.locator("[name=title]").fill("Canvas tote")
    await form.locator("[name=sku]").fill("TOTE-1")
    await form.locator("[name=price]").fill("19.90")
    await form.locator("[name=attrs]").fill("colour=natural")
    await form.locator("button[type=submit]").click()
    await expect(titles).to_have_text(
        ["Denim jacket", "Leather boots", "Wool scarf", "Canvas tote"]
    )
    [*_, tote] = await host.products()
    assert tote["skus"] == [{"sku": "TOTE-1", "list_price": 1990, "attrs": {"colour": "natural"}}]
    await console.shot("05-run-of-show")


async def _lineup(host: HostClient, ids: list[str]) -> bool:
    return [p["id"] for p in await host.products()] == ids


async def _pinned(host: HostClient, product: str) -> bool:
    return bool((await host.get_room())["pinned_product"] == product)


# ---- flash sales ----------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_edit_a_product(open_console: OpenConsole, room: str, host: HostClient) -> None:
    await host.create_product(**JACKET)
    console = await open_console(room)
    page = console.page
    row = page.locator("#lineup li[data-id=p1]")
    await row.locator("button.edit").click()
    form = page.locator("#product-form")
    await expect(page.locator("#product-editor-title")).to_have_text("Edit p1: Denim jacket")
    await expect(form.locator("[name=title]")).to_have_value("Denim jacket")
    await expect(form.locator(".sku-row [name=price]").nth(1)).to_have_value("52.00")
    await expect(form.locator(".sku-row [name=attrs]").nth(1)).to_have_value("size=M")
    await form.locator("[name=title]").fill("Raw denim jacket")
    await form.locator("[name=description]").fill("Selvedge, runs small.")
    await form.locator(".sku-row [name=price]").nth(1).fill("55.50")
    await console.shot("05b-edit-product")
    await page.click("#product-save")
    await console.feedback("Save “Raw denim jacket”")
    await expect(row.locator(".title")).to_have_text("Raw denim jacket")
    await expect(row.locator(".meta")).to_contain_text("USD 55.50")  # the price range
    [product] = await host.products()
    assert (product["title"], product["description"]) == (
        "Raw denim jacket",
        "Selvedge, runs small.",
    )
    assert [(s["sku"], s["list_price"], s["attrs"]) for s in product["skus"]] == [
        ("DJ-S", 4900, {"size": "S"}), ("DJ-M", 5550, {"size": "M"}),
    ]  # fmt: skip
    # The form is back to creating a new product.
    await expect(page.locator("#product-save")).to_have_text("Create product")
    await expect(page.locator("#product-cancel")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_prices_are_typed_as_money(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    console = await open_console(room)
    console.allowed.append(HTTP_ERROR_LOG)  # the engine's refusal of a too-large price
    page = console.page
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    await page.locator("#product-editor summary").click()
    form = page.locator("#product-form")
    price = form.locator(".sku-row [name=price]").first

    async def create(title: str, typed: str, currency: str = "USD") -> None:
        await form.locator("[name=title]").fill(title)
        await form.locator("[name=currency]").fill(currency)
        await form.locator("[name=sku]").first.fill(f"{title}-1")
        await price.fill(typed)
        await page.click("#product-save")

    # A decimal comma and a decimal point are the same price.
    for n, typed in enumerate(("24,50", "24.50"), start=1):
        await create(f"T{n}", typed)
        await expect(page.locator("#lineup li")).to_have_count(n)
    assert [s["list_price"] for p in await host.products() for s in p["skus"]] == [2450, 2450]

    # More decimals than the currency has: refused next to the field, nothing sent.
    posts = len(sent)
    await create("T3", "24.555")
    await expect(price).to_have_attribute("aria-invalid", "true")
    note = form.locator(".sku-row .field-error")
    await expect(note).to_have_text("Enter a price like 24.50")
    assert await price.get_attribute("aria-describedby") == await note.get_attribute("id")
    await console.shot("05c-product-price-refused")
    assert len(sent) == posts
    await price.fill("24.5")  # typing again clears the mark
    await expect(price).not_to_have_attribute("aria-invalid", "true")
    await expect(note).to_have_count(0)

    # JPY has no decimals.
    await create("Y1", "1500.5", "JPY")
    await expect(note).to_have_text("JPY has no decimals: enter a whole amount like 1500")
    assert len(sent) == posts
    await price.fill("1500")
    await page.click("#product-save")
    await expect(page.locator("#lineup li")).to_have_count(3)
    yen = (await host.products())[-1]
    assert (yen["currency"], yen["skus"][0]["list_price"]) == ("JPY", 1500)

    # A refusal by the engine (over its largest price) shows next to the field it names.
    await form.locator("[name=title]").fill("T4")
    await form.locator("[name=sku]").first.fill("T4-1")
    await price.fill("10")
    await page.click("#add-sku")
    second = form.locator(".sku-row").nth(1)
    await second.locator("[name=sku]").fill("T4-2")
    await second.locator("[name=price]").fill("99999999999")
    await page.click("#product-save")
    await expect(second.locator("[name=price]")).to_have_attribute("aria-invalid", "true")
    await expect(second.locator(".field-error")).to_have_text(
        "Enter a price like 24.50, at most 10000000000.00"
    )
    await expect(price).not_to_have_attribute("aria-invalid", "true")
    assert len(await host.products()) == 3


@pytest.mark.browser
@needs_chromium
async def test_flash_sale_stock_bar_follows_grabs(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    await host.create_product(**JACKET)
    console = await open_console(room)
    page = console.page
    await page.select_option("#sale-sku", "DJ-M")
    await expect(page.locator("#sale-price")).to_have_attribute("placeholder", "52.00")
    await page.fill("#sale-allotment", "5")
    await page.fill("#sale-price", "39.50")
    await page.fill("#sale-limit", "1")
    await page.fill("#sale-duration", "300")
    await page.click("#sale-form button[type=submit]")
    card = page.locator("#sales .sale[data-id=s1]")
    await expect(card.locator(".n-available")).to_have_text("5")
    await expect(card.locator(".state")).to_have_text("live")
    await expect(card.locator(".terms")).to_contain_text("USD 39.50")
    [sale] = await host.sales()
    assert (sale["price"], sale["allotment"], sale["limit"]) == (3950, 5, 1)

    viewers = [await viewer_factory(room, user=f"buyer-{i}") for i in range(3)]
    answers = await asyncio.gather(*(v.grab("s1") for v in viewers))
    assert [a["status"] for a in answers] == ["reserved"] * 3
    await expect(card.locator(".n-reserved")).to_have_text("3")
    await expect(card.locator(".n-available")).to_have_text("2")
    width = await card.locator(".seg.reserved").evaluate("e => e.style.width")
    assert width == "60%"
    await console.shot("06-flash-sale-grabbed")

    await card.locator(".topup-units").fill("5")
    await card.locator("button.topup").click()
    await expect(card.locator(".n-units")).to_have_text("10")
    await expect(card.locator(".n-available")).to_have_text("7")
    before = (await host.sale("s1"))["ends_at"]
    await card.locator(".extend-s").fill("120")
    await card.locator("button.extend").click()
    await console.feedback("Extend s1 by 120 s")
    assert (await host.sale("s1"))["ends_at"] == before + 120_000

    await card.locator("button.stop").click()
    await console.confirm()
    await expect(card.locator(".state")).to_have_text("ended")
    await expect(card.locator("button.stop")).to_be_disabled()
    assert (await host.sale("s1"))["state"] == "ended"
    await page.reload()  # the ended sale is still listed, with its final counts
    await expect(card.locator(".state")).to_have_text("ended")
    await expect(card.locator(".n-reserved")).to_have_text("3")


@pytest.mark.browser
@needs_chromium
async def test_sale_card_shows_the_waitlist(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    await host.create_product(**JACKET)
    await host.launch_sale("DJ-M", 1)
    console = await open_console(room)
    card = console.page.locator("#sales .sale[data-id=s1]")
    await expect(card.locator(".waitlist")).to_have_text("")
    buyer, late = (
        await viewer_factory(room, user="buyer-1"),
        await viewer_factory(room, user="late-1"),
    )
    assert (await buyer.grab("s1"))["status"] == "reserved"
    assert (await late.grab("s1"))["status"] == "sold_out"
    assert await late.join_waitlist("s1") == 1
    await expect(card.locator(".state")).to_have_text("sold out")
    await expect(card.locator(".waitlist")).to_have_text(" · 1 on the waitlist")


@pytest.mark.browser
@needs_chromium
async def test_failed_action_shows_the_engine_message(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    await host.create_product(**JACKET)
    console = await open_console(room)
    console.allowed.append(HTTP_ERROR_LOG)  # Chromium logs every 4xx response
    page = console.page
    await page.select_option("#sale-sku", "DJ-S")
    await page.fill("#sale-price", "99.00")  # above the list price
    await page.click("#sale-form button[type=submit]")
    await console.feedback("price: an integer between 0 and 4900 (invalid_field)", "failed")
    await expect(page.locator("#sale-form button[type=submit]")).to_have_attribute(
        "data-state", "failed"
    )
    await expect(page.locator("#sales .sale")).to_have_count(0)


# ---- comments -------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_comment_feed_delete_mute_pin(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    console = await open_console(room)
    page = console.page
    bob = await viewer_factory(room, user="bob")
    carol = await viewer_factory(room, user="carol")
    spam = await bob.comment("buy followers at spam.example")
    question = await carol.comment("how much is the jacket?")
    await bob.comment("<img src=x onerror=alert(1)> <b>hi</b>")
    await carol.comment("love this show")
    feed = page.locator("#feed li")
    await expect(feed).to_have_count(4)
    await expect(feed.nth(1).locator(".text")).to_have_text(
        "<img src=x onerror=alert(1)> <b>hi</b>"
    )
    await expect(page.locator("#feed img, #feed b")).to_have_count(0)  # text, never markup
    await expect(feed.first.locator(".text")).to_have_text("love this show")  # newest first
    await expect(page.locator(f"#feed li[data-id='{question['id']}']")).to_have_class(
        re.compile(r"\bintent\b")
    )
    await expect(page.locator("#feed li.intent")).to_have_count(2)  # "buy" is intent too
    await console.shot("07-comments")

    await page.locator(f"#feed li[data-id='{spam['id']}'] button.delete").click()
    await expect(page.locator(f"#feed li[data-id='{spam['id']}']")).to_have_count(0)
    ids = [e["id"] for e in (await host.comments())["entries"]]
    assert spam["id"] not in ids

    await page.fill("#mute-minutes", "10")
    await page.locator(f"#feed li[data-id='{question['id']}'] button.mute").click()
    await console.feedback("Mute carol for 10 min")
    with pytest.raises(LivecartClientError) as refused:
        await carol.comment("still there?")
    assert refused.value.code == "muted"
    mute = page.locator(f"#feed li[data-id='{question['id']}'] button.mute")
    await expect(mute).to_have_text("Unmute")
    await mute.click()
    await expect(mute).to_have_text("Mute")
    assert (await carol.comment("thanks for unmuting"))["text"] == "thanks for unmuting"

    await page.locator(f"#feed li[data-id='{question['id']}'] button.pin").click()
    await expect(page.locator("#pinned-text")).to_have_text("carol: how much is the jacket?")
    assert (await host.get_room())["pinned"]["id"] == question["id"]

    await page.fill("#slow-seconds", "5")
    await page.click("#slow-form button")
    await expect(page.locator("#slow-current")).to_have_text("slow mode: 5 s")
    assert (await host.get_room())["settings"]["slow_mode_ms"] == 5000

    await page.locator("#feed li", has_text="love this show").locator("button.ban").click()
    await console.confirm()
    await console.feedback("Ban carol")
    await eventually(lambda: carol.close_code == 3501)
    assert "carol" in (await host.call("GET", f"/api/rooms/{room}/bans"))["users"]


@pytest.mark.browser
@needs_chromium
async def test_feed_holds_new_comments_under_the_mouse(
    open_console: OpenConsole, room: str, viewer_factory: ViewerFactory
) -> None:
    console = await open_console(room)
    page = console.page
    dana = await viewer_factory(room, user="dana")
    await dana.comment("first")
    await expect(page.locator("#feed li")).to_have_count(1)
    await page.locator("#feed li").first.hover()  # about to click a button on it
    await dana.comment("second")
    await expect(page.locator("#feed-held")).to_have_text(
        "1 new — paused while the pointer is on the feed"
    )
    await expect(page.locator("#feed li")).to_have_count(1)
    await page.mouse.move(5, 740)  # the pointer leaves: the held comments show
    await expect(page.locator("#feed li").first.locator(".text")).to_have_text("second")
    await expect(page.locator("#feed-held")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_feed_is_not_paused_right_after_sign_in(
    open_console: OpenConsole, room: str, viewer_factory: ViewerFactory
) -> None:
    # The pointer still rests where the sign-in button was, now over the feed; it has not
    # moved, so it is not reaching for a row: comments show at once.
    console = await open_console(room)
    page = console.page
    dana = await viewer_factory(room, user="dana")
    await dana.comment("hello")
    await dana.comment("again")
    await expect(page.locator("#feed li")).to_have_count(2)
    await expect(page.locator("#feed-held")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_busy_feed_keeps_at_most_200_rows(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    await host.update_room(settings={"display_rate": 1000, "comment_rate_max": 0})
    console = await open_console(room)
    page = console.page
    # Staff comments are never sampled out nor rate limited by the room; each connection
    # stays within its frame burst (40).
    chatters = [await viewer_factory(room, "moderator", user=f"chatty-{n}") for n in range(8)]
    await asyncio.gather(*(c.comment(f"msg {n}-{i}") for n, c in enumerate(chatters)
                           for i in range(30)))  # fmt: skip
    await chatters[0].comment("the last one")
    await expect(page.locator("#feed li").first.locator(".text")).to_have_text("the last one")
    assert await page.locator("#feed li").count() == 200


# ---- coupons --------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_coupon_template_drop_and_claims(
    open_console: OpenConsole,
    engine: Engine,
    room: str,
    host: HostClient,
    viewer_factory: ViewerFactory,
) -> None:
    console = await open_console(room)
    page = console.page
    await page.locator("#coupons-panel details summary").click()
    await page.fill("#template-title", "5 off")
    await page.fill("#template-amount", "5")
    await page.fill("#template-total", "20")
    await page.click("#template-form button[type=submit]")
    template = page.locator("#templates li", has_text="5 off")
    await expect(template).to_contain_text("USD 5.00 off")
    [created] = await host.coupon_templates()
    assert (created["kind"], created["amount"], created["total"]) == ("amount_off", 500, 20)

    await template.locator(".drop-quantity").fill("10")
    await template.locator("button.drop").click()
    card = page.locator("#drops .drop-card").first
    await expect(card.locator(".state")).to_have_text("live")
    await expect(card.locator(".n-remaining")).to_have_text("10")
    await expect(template).to_contain_text("10 of 20 left")
    [drop] = await host.drops()
    await expect(card.locator(".terms")).to_have_text(f"{drop['id']} · USD 5.00 off")

    viewers = [await viewer_factory(room, user=f"claimer-{i}") for i in range(3)]
    answers = await asyncio.gather(*(v.claim(drop["id"]) for v in viewers))
    assert [a["status"] for a in answers] == ["claimed"] * 3
    await expect(card.locator(".n-claimed")).to_have_text("3")
    await expect(card.locator(".n-remaining")).to_have_text("7")

    # claimer-0 spends its coupon on a paid order, claimer-1 on an unpaid one: the card's
    # used counts follow (from the dashboard's polls).
    await host.create_product(**BOOTS)
    await host.launch_sale("LB-42", 2)
    for buyer, viewer, answer, pays in (("claimer-0", viewers[0], answers[0], True),
                                        ("claimer-1", viewers[1], answers[1], False)):  # fmt: skip
        held = await viewer.grab("s1")
        async with ShopperClient(engine.base_url, room, token(room, "viewer", buyer)) as me:
            order = await me.checkout([held["reservation"]], address=ADDRESS,
                                      contact={"email": f"{buyer}@example.com"},
                                      coupons=[answer["coupon"]])  # fmt: skip
            if pays:
                payment = await me.start_payment(order["id"])
                assert (await me.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    board = await host.call("GET", f"/api/rooms/{room}/dashboard")
    assert board["coupon_drops"] == {drop["id"]: {"locked": 1, "used": 1}}
    await expect(card.locator(".used")).to_have_text(" · 1 used, 1 in unpaid orders")

    await template.locator(".drop-quantity").fill("5")
    await template.locator(".drop-countdown").fill("60")
    await template.locator("button.drop").click()
    later = page.locator("#drops .drop-card").first
    await expect(later.locator(".state")).to_have_text("scheduled")
    await expect(later.locator(".clock")).to_contain_text("opens in")
    await expect(later.locator(".terms")).to_contain_text("USD 5.00 off")
    await console.shot("08-coupons")


# ---- orders to review ------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_flagged_orders_are_approved_or_cancelled(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine,
) -> None:  # fmt: skip
    await host.create_product(**WATCH)
    await host.launch_sale("GW-1", 5)
    orders = []
    for buyer in ("rich-1", "rich-2"):
        viewer = await viewer_factory(room, user=buyer)
        grabbed = await viewer.grab("s1")
        async with ShopperClient(engine.base_url, room, token(room, "viewer", buyer)) as me:
            contact = {"email": f"{buyer}@example.com"}
            order = await me.checkout([grabbed["reservation"]], address=ADDRESS, contact=contact)
            assert order["review"] == "flagged"
            orders.append(order["id"])
    console = await open_console(room)
    page = console.page
    rows = page.locator("#orders li")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#orders-count")).to_have_text("2")
    await expect(rows.first).to_contain_text("USD 1506.00")  # with shipping
    await console.shot("09-orders-to-review")

    await page.locator(f"#orders li[data-id={orders[0]}] button.approve").click()
    await expect(rows).to_have_count(1)
    await page.locator(f"#orders li[data-id={orders[1]}] button.cancel").click()
    await console.confirm()
    await expect(rows).to_have_count(0)
    await expect(page.locator("#orders-empty")).to_be_visible()
    [approved, cancelled] = await host.orders()
    assert (approved["review"], cancelled["state"]) == ("approved", "cancelled")


# ---- dashboard ------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_dashboard_shows_the_live_numbers(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory,
    engine: Engine,
) -> None:  # fmt: skip
    for product in (JACKET, BOOTS):
        await host.create_product(**product)
    await host.launch_sale("DJ-M", 2, price=5000)
    console = await open_console(room)
    page = console.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/dashboard" in r.url else None)
    fans = [await viewer_factory(room, user=f"fan-{i}") for i in range(3)]
    bought = await fans[0].grab("s1")
    assert (await fans[1].grab("s1"))["status"] == "reserved"  # held, never checked out
    await fans[2].comment("love the jacket")
    for fan, clicked in ((fans[0], "p1"), (fans[1], "p1"), (fans[2], "p2")):
        await fan.click(clicked)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "fan-0")) as shopper:
        order = await shopper.checkout([bought["reservation"]], address=ADDRESS,
                                       contact={"email": "fan-0@example.com"})  # fmt: skip
        payment = await shopper.start_payment(order["id"])
        assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    total = order["pricing"]["total"]

    await page.click("#dashboard-toggle")
    await expect(page.locator("#dashboard-panel")).to_be_visible()
    await expect(page.locator("#lineup-panel")).to_be_hidden()
    # Three fans and the console's own seat; one paid order; polled every 3 s.
    await expect(page.locator("#dash-paid")).to_have_text("1", timeout=8000)
    figures = {"online": "4", "unique": "4", "orders": "1", "buyers": "1", "reservations": "2",
               "attempts": "2", "comments": "1", "conversion": "25.00%",
               "gmv": f"USD {total / 100:.2f}", "aov": f"USD {total / 100:.2f}"}  # fmt: skip
    for name, text in figures.items():
        await expect(page.locator(f"#dash-{name}")).to_have_text(text)
    jacket = page.locator("#dash-products tr[data-id=p1]")
    await expect(jacket.locator(".reservations")).to_have_text("2")
    await expect(jacket.locator(".sold")).to_have_text("1")
    await expect(jacket.locator(".through")).to_have_text(re.compile(r"^\d+\.\d s$"))
    await expect(page.locator("#dash-products tr[data-id=p2] .through")).to_have_text("—")

    # The funnel, the clicks column, the rates and the charts show the API's figures (the
    # per-minute counters are written about every second, so compare until both settle).
    shown: dict[str, Any] = {}
    served: dict[str, Any] = {}

    async def agrees() -> bool:
        nonlocal shown, served
        served = await host.call("GET", f"/api/rooms/{room}/dashboard")
        shown = await page.evaluate(_DASHBOARD_SHOWN)
        return shown == _dashboard_expected(served)

    try:
        await eventually(agrees, timeout_s=12)
    except TimeoutError:
        assert shown == _dashboard_expected(served)  # shows the difference
    funnel = served["funnel"]
    assert (funnel["grab_attempts"], funnel["reservations"]) == (2, 2)
    assert (funnel["orders"], funnel["paid"]) == (1, 1)
    assert funnel["product_clicks"] == 3
    assert shown["clicks"] == {"p1": "2", "p2": "1"}
    assert shown["figures"]["click_order"] == "33.33%"  # one order from three clicks
    assert served["minutes"], "a live show has at least the current minute"
    assert shown["gmv_last"] == str(total)  # cumulative net GMV of the minutes
    for chart in ("#dash-chart-online", "#dash-chart-gmv"):
        await expect(page.locator(f"{chart} svg path.line")).to_have_count(1)
    sale_markers = page.locator("#dash-chart-online g.marker[data-kind=flash_sale]")
    await expect(sale_markers).to_have_count(1)
    await expect(sale_markers.locator("title")).to_contain_text("flash sale")
    await expect(page.locator("#dash-chart-online .chart-now")).to_have_text("4")
    await expect(page.locator("#dash-chart-gmv .chart-now")).to_have_text(f"USD {total / 100:.2f}")
    box = await page.locator("#dashboard-panel").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= LAPTOP["height"] + 1
    assert await page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    await console.shot("11-dashboard")

    # The post-live report opens in a new tab (fetched with the token, shown from a Blob
    # URL); the exports download the same way.
    async with page.expect_popup() as opened:
        await page.click("#dash-report")
    report = await opened.value
    await report.wait_for_url(re.compile(r"^blob:"))
    await expect(report.locator("body")).to_contain_text("Test show")
    assert "report" in (await report.content()).lower()
    await console.feedback("Open post-live report")
    await report.close()
    async with page.expect_download() as downloading:
        await page.click("#dash-export-metrics")
    download = await downloading.value
    assert download.suggested_filename == f"{room}-metrics.csv"
    saved = await download.path()
    csv = await asyncio.to_thread(Path(saved).read_text, encoding="utf-8")
    assert csv.splitlines()[0].startswith("minute")
    await console.feedback("Download metrics.csv")

    # One way back to the show: the header's toggle (the panel has no second button).
    await expect(page.get_by_role("button", name="Back to show")).to_have_count(1)
    assert shown["figures"]["redemption"] == "—"  # no coupon claimed: nothing to divide by
    max_viewers = await page.locator("#dash-chart-online .chart-range").text_content()
    assert re.match(r"^max \d+ · over ", max_viewers or ""), max_viewers  # whole viewers
    await page.click("#dashboard-toggle")
    await expect(page.locator("#lineup-panel")).to_be_visible()
    await page.click("#sign-out")
    await expect(page.locator("#signin")).to_be_visible()
    polled = len(requests)
    # The point: no request over a window longer than one poll (every 3 s).
    await asyncio.sleep(3.5)
    assert len(requests) == polled, "the dashboard kept polling after sign-out"


_DASHBOARD_SHOWN = """() => {
    const text = (selector) => document.querySelector(selector).textContent;
    const online = document.querySelector('#dash-chart-online').dataset;
    const gmv = document.querySelector('#dash-chart-gmv').dataset;
    return {
        funnel: Object.fromEntries([...document.querySelectorAll('#dash-funnel li')]
            .map((li) => [li.dataset.step, li.querySelector('.count').textContent])),
        clicks: Object.fromEntries([...document.querySelectorAll('#dash-products tr')]
            .map((tr) => [tr.dataset.id, tr.querySelector('.clicks').textContent])),
        figures: {views: text('#dash-views'), shares: text('#dash-shares'),
                  clicks: text('#dash-clicks'), click_order: text('#dash-click-order'),
                  redemption: text('#dash-redemption')},
        points: [online.points, gmv.points],
        markers: online.markers,
        gmv_last: gmv.last,
    };
}"""


@pytest.mark.browser
@needs_chromium
async def test_dashboard_rates_with_nothing_to_divide_by(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    # No product click and no coupon claimed: those rates are "—", not "0.00%".
    await host.create_product(**JACKET)
    console = await open_console(room)
    page = console.page
    await page.click("#dashboard-toggle")
    await expect(page.locator("#dash-online")).to_have_text("1", timeout=8000)
    await expect(page.locator("#dash-clicks")).to_have_text("0")
    await expect(page.locator("#dash-click-order")).to_have_text("—")
    await expect(page.locator("#dash-redemption")).to_have_text("—")
    await expect(page.locator("#dash-conversion")).to_have_text("0.00%")  # one viewer: the console
    await expect(page.get_by_role("button", name="Back to show")).to_have_count(1)


def _rate(rate: float, denominator: int) -> str:
    """A rate as the dashboard shows it: "—" with nothing to divide by."""
    return f"{rate * 100:.2f}%" if denominator else "—"


def _dashboard_expected(data: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard view shows for one GET .../dashboard answer (see _DASHBOARD_SHOWN)."""
    minutes, net = data["minutes"], 0
    for row in minutes:
        net += row["gmv"] - row["refunded"]
    return {
        "funnel": {step: f"{n:,}" for step, n in data["funnel"].items()},
        "clicks": {p["id"]: f"{p['clicks']:,}" for p in data["products"]},
        "figures": {
            "views": f"{data['views']:,}",
            "shares": f"{data['shares']:,}",
            "clicks": f"{data['clicks']:,}",
            "click_order": _rate(data["click_to_order_rate"], data["clicks"]),
            "redemption": _rate(data["coupon_redemption_rate"], data["coupon_claims"]),
        },
        "points": [str(len(minutes))] * 2,
        "markers": str(len(data["markers"])),
        "gmv_last": str(net),
    }


# ---- header, reconnecting, layouts ------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_header_stats_and_reconnect(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    console = await open_console(room)
    page = console.page
    viewers = [await viewer_factory(room, user=f"fan-{i}") for i in range(3)]
    await expect(page.locator("#stat-online")).to_have_text("4")  # three fans and the console
    await viewers[0].like(7, confirm=True)
    await expect(page.locator("#stat-likes")).to_have_text("7")
    await expect(page.locator("#stat-unique")).to_have_text("4")

    await page.evaluate("""() => {
        const conn = document.querySelector('#conn');
        window.statuses = [];
        new MutationObserver(() => window.statuses.push(conn.textContent))
            .observe(conn, {childList: true, characterData: true, subtree: true});
    }""")
    await page.click("#reconnect")
    await page.wait_for_function("window.statuses.includes('reconnecting…')")
    await expect(page.locator("#conn")).to_have_text("connected")
    await expect(page.locator("#banner")).to_be_hidden()
    # Resumed: a comment made after the reconnect arrives, nothing is shown twice, and sale
    # stock keeps moving.
    await viewers[1].comment("back online?")
    await expect(page.locator("#feed li", has_text="back online?")).to_have_count(1)
    await expect(page.locator("#feed li")).to_have_count(1)
    await host.create_product(**SCARF)
    await host.launch_sale("WS-1", 3)
    await expect(page.locator("#sales .sale .n-available")).to_have_text("3")
    assert (await viewers[2].grab("s1"))["status"] == "reserved"
    await expect(page.locator("#sales .sale .n-available")).to_have_text("2")


# The whole show's layout at each screen size: tests/test_console_layout.py.


# ---- interactive selling: giveaways, auctions, comment-to-buy ---------------------------------


@pytest.mark.browser
@needs_chromium
async def test_giveaway_opened_entered_drawn_and_verified(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    console = await open_console(room)
    page = console.page
    await page.locator("#giveaway-open summary").click()
    await page.fill("#gw-title", "Lucky bag")
    await page.fill("#gw-prize", "1 mystery bag")
    await page.fill("#gw-winners", "2")
    await page.fill("#gw-duration", "300")
    await page.click("#giveaway-form button[type=submit]")
    await console.feedback("Open giveaway “Lucky bag”")
    card = page.locator("#giveaways .giveaway[data-id=g1]")
    await expect(card.locator(".clock")).to_contain_text("left")
    await expect(card.locator(".terms")).to_contain_text("1 mystery bag · 2 winners")
    await expect(page.locator("#tab-count-giveaways")).to_have_text("1")
    [opened] = await host.giveaways()
    assert (opened["title"], opened["winners_count"], opened["rule"]) == ("Lucky bag", 2, "any")

    fans = [await viewer_factory(room, user=f"fan-{i}") for i in range(3)]
    for fan in fans:
        await fan.enter_giveaway("g1")
    await expect(card.locator(".n-entrants")).to_have_text("3")  # polled
    await console.shot("12-giveaway-open")

    await card.locator("button.close").click()
    await console.confirm()
    await expect(card.locator(".state")).to_have_text("closed")
    closed = await host.giveaway("g1")
    await expect(card.locator(".winners")).to_have_text(", ".join(closed["winners"]))
    await expect(card.locator(".seed")).to_have_text(closed["seed"])
    await expect(card.locator(".commitment")).to_have_text(closed["commitment"])
    await expect(card.locator(".verify")).to_have_attribute("data-ok", "true")
    await expect(card.locator("button.close")).to_be_hidden()
    await console.shot("13-giveaway-drawn")


@pytest.mark.browser
@needs_chromium
async def test_giveaway_form_sends_prize_and_rule_fields(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    """The prize kinds and entry rules reach the engine as its fields (checked on the request:
    the engine validates them, see tests/test_giveaways.py)."""
    await host.create_product(**JACKET)
    console = await open_console(room)
    console.allowed.append(HTTP_ERROR_LOG)  # the engine may refuse the terms: not tested here
    page = console.page
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/giveaways") else None)  # fmt: skip
    await page.locator("#giveaway-open summary").click()
    await page.fill("#gw-title", "Win the jacket")
    await page.fill("#gw-prize", "Denim jacket, size M")
    await page.select_option("#gw-prize-kind", "product")
    await page.select_option("#gw-sku", "DJ-M")
    await page.select_option("#gw-rule", "keyword")
    await expect(page.locator("#gw-watch-field")).to_be_hidden()
    await page.fill("#gw-keyword", "jacket please")
    await page.check("#gw-one-win")
    await page.fill("#gw-exclude", "2")
    await page.click("#giveaway-form button[type=submit]")
    await expect(page.locator("#feedback-log li").first).not_to_have_class("pending")
    assert bodies[0] == {
        "title": "Win the jacket", "prize": "Denim jacket, size M", "winners": 1,
        "duration_s": 120, "rule": "keyword", "keyword": "jacket please",
        "prize_kind": "product", "sku": "DJ-M", "one_win_per_show": True,
        "exclude_recent_winners": 2,
    }  # fmt: skip
    if not await page.locator("#gw-rule").is_visible():  # the form closes once opened
        await page.locator("#giveaway-open summary").click()
    await page.select_option("#gw-rule", "watch")
    await expect(page.locator("#gw-keyword")).to_be_hidden()
    await page.fill("#gw-watch", "3")
    await page.select_option("#gw-prize-kind", "label")
    await page.click("#giveaway-form button[type=submit]")
    await expect(page.locator("#feedback-log li").first).not_to_have_class("pending")
    assert bodies[1]["rule"] == "watch"
    assert bodies[1]["min_watch_s"] == 180
    assert "sku" not in bodies[1]


@pytest.mark.browser
@needs_chromium
async def test_auction_started_bid_on_and_closed(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the auctions API and `bid` frames."""
    await host.create_product(**BOOTS)
    console = await open_console(room)
    console.allowed.append(HTTP_ERROR_LOG)  # the second chance is refused while the winner holds
    page = console.page
    await page.locator("#interactive-panel [role=tab][data-tab=auctions]").click()
    await expect(page.locator("#tab-auctions")).to_be_visible()
    await expect(page.locator("#tab-giveaways")).to_be_hidden()
    await page.locator("#auction-start summary").click()
    await page.select_option("#au-sku", "LB-42")
    await page.fill("#au-start", "50.00")
    await page.fill("#au-duration", "120")
    await page.select_option("#au-mode", "anti_snipe")
    await page.fill("#au-extend", "20")
    await page.click("#auction-form button[type=submit]")
    await console.feedback("Start auction on LB-42")
    [auction] = await host.auctions()
    terms = (auction["start_price"], auction["mode"], auction["extend_s"])
    assert terms == (5000, "anti_snipe", 20)
    card = page.locator(f"#auctions .auction[data-id={auction['id']}]")
    await expect(card.locator(".price")).to_have_text("USD 50.00")
    await expect(card.locator(".leader")).to_have_text("no bids yet")
    await expect(card.locator(".clock")).to_contain_text("left")
    await expect(page.locator("#tab-count-auctions")).to_have_text("1")

    first, second = (await viewer_factory(room, user="bidder-1"),
                     await viewer_factory(room, user="bidder-2"))  # fmt: skip
    assert (await first.bid(auction["id"], 6000))["status"] == "leading"
    await expect(card.locator(".n-bids")).to_have_text("1")
    answer = await second.bid(auction["id"], 7000)
    assert answer["status"] == "leading"
    await expect(card.locator(".n-bids")).to_have_text("2")
    await expect(card.locator(".leader")).to_contain_text("by ")
    await expect(card.locator(".price")).to_have_text(f"USD {answer['price'] / 100:.2f}")
    await expect(card.locator(".min-bid")).to_have_text(f"USD {answer['min_bid'] / 100:.2f}")
    await console.shot("14-auction-live")

    await card.locator("button.close").click()
    await console.confirm()
    await expect(card.locator(".state")).to_have_text("closed")
    await expect(card.locator(".outcome")).to_contain_text("Won by")
    await card.locator("button.offer").click()
    await console.feedback("winner_holds", "failed")
    await console.shot("15-auction-closed")


@pytest.mark.browser
@needs_chromium
async def test_comment_to_buy_settings_and_buys(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the comment-to-buy settings API and its room-log entries."""
    boots = await host.create_product(**BOOTS)
    await host.launch_sale("LB-42", 5, price=9900)
    console = await open_console(room)
    page = console.page
    await page.locator("#interactive-panel [role=tab][data-tab=ctb]").click()
    await expect(page.locator("#ctb-state")).to_have_text("off")
    await page.check("#ctb-enabled")
    await page.fill("#ctb-keyword", "SOLD")
    await page.click("#ctb-add")
    row = page.locator("#ctb-rows .ctb-row").last
    await row.locator("[name=keyword]").fill("BOOTS")
    await row.locator("[name=product]").select_option(boots["id"])
    await page.click("#ctb-form button[type=submit]")
    await console.feedback("Save comment-to-buy")
    await expect(page.locator("#ctb-state")).to_contain_text("on")
    assert await host.comment_to_buy() == {
        "enabled": True, "keyword": "SOLD", "keywords": {"BOOTS": boots["id"]},
    }  # fmt: skip

    fan = await viewer_factory(room, user="fan-1")
    await fan.comment("SOLD BOOTS")
    reply = await fan.wait_for_notice("comment_buy")
    assert reply["status"] == "reserved"
    await expect(page.locator("#ctb-buys li")).to_have_count(1)
    await expect(page.locator("#ctb-buys li")).to_contain_text("bought 1 \u00d7 Leather boots")
    await console.shot("16-comment-to-buy")


# ---- social selling: group buys, referrals, reminders ------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_group_buy_opened_and_teams_form(
    open_console: OpenConsole, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the group-buy API, POST .../share, hello's `ref` and the referral report."""
    await host.create_product(**BOOTS)
    console = await open_console(room)
    page = console.page
    await page.locator("#interactive-panel [role=tab][data-tab=social]").click()
    await expect(page.locator("#tab-social")).to_be_visible()
    await page.locator("#groupbuy-open summary").click()
    await page.select_option("#gb-sku", "LB-42")
    await page.fill("#gb-price", "79.00")
    await page.fill("#gb-size", "3")
    await page.fill("#gb-window", "600")
    await page.fill("#gb-units", "9")
    await page.click("#groupbuy-form button[type=submit]")
    await console.feedback("Open group buy on LB-42")
    [deal] = await host.group_buys()
    terms = (deal["group_price"], deal["team_size"], deal["window_s"], deal["units"])
    assert terms == (7900, 3, 600, 9)
    card = page.locator(f"#groupbuys .groupbuy[data-id={deal['id']}]")
    await expect(card.locator(".terms")).to_contain_text("USD 79.00 in teams of 3")

    async with ShopperClient(host.base_url, room, token(room, "viewer", "ana", name="Ana")) as ana:
        started = await ana.start_team(deal["id"])
        link = await ana.share_link()
    team = card.locator(f".team[data-id='{started['id']}']")
    await expect(team.locator(".members")).to_have_text("Ana")
    await expect(team.locator(".needed")).to_have_text("2 more needed")
    await expect(team.locator(".clock")).to_contain_text("left")
    await expect(page.locator("#tab-count-social")).to_have_text("1")
    async with ShopperClient(host.base_url, room, token(room, "viewer", "bo", name="Bo")) as bo:
        await bo.join_team(deal["id"], started["id"])
    await expect(team.locator(".needed")).to_have_text("1 more needed")  # from team_joined
    await expect(team.locator(".members")).to_have_text("Ana, Bo")

    await viewer_factory(room, user="cleo", ref=link["ref"])
    sharer = page.locator("#sharers tr[data-user=ana]")
    await expect(sharer.locator(".invites")).to_have_text("1")  # polled
    await expect(page.locator("#sharers-empty")).to_be_hidden()
    await console.shot("17-group-buy-teams")


@pytest.mark.browser
@needs_chromium
async def test_reminder_subscribers_are_counted(
    open_console: OpenConsole, room_factory: RoomFactory, engine: Engine
) -> None:
    """Needs the reminders API."""
    room = await room_factory(live=False)
    console = await open_console(room)
    page = console.page
    await page.locator("#interactive-panel [role=tab][data-tab=social]").click()
    await expect(page.locator("#reminder-count")).to_have_text("0")
    for user in ("ana", "bo"):
        async with ShopperClient(engine.base_url, room, token(room, "viewer", user)) as fan:
            await fan.subscribe_reminders()
    await expect(page.locator("#reminder-count")).to_have_text("2")


# ---- untrusted text ---------------------------------------------------------------------------

MARKUP = '<img src=x onerror="window.__xss=1"><b>bold</b>'
SHORT_MARKUP = "<img src=x onerror=__xss=1><b>{}</b>"  # fits attrs values (40 chars max)


@pytest.mark.browser
@needs_chromium
async def test_product_titles_with_markup_show_as_text(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    """Product titles and variant labels (from the API and from the console's own form) show
    literally in the run of show, the editor, the SKU pickers and the sale cards. The
    console builds no <img> and no <b>: any here came from data parsed as HTML."""
    title, label = f"Boots {MARKUP}", SHORT_MARKUP.format("42")
    await host.create_product(
        title, "USD", [{"sku": "XSS-1", "list_price": 9900, "attrs": {"size": label}}],
        description=MARKUP,
    )  # fmt: skip
    console = await open_console(room)
    page = console.page
    titles = page.locator("#lineup li .title")
    await expect(titles).to_have_text([title])

    tote, colour = f"Tote {MARKUP}", SHORT_MARKUP.format("tan")
    await page.locator("#product-editor summary").click()
    form = page.locator("#product-form")
    await form.locator("[name=title]").fill(tote)
    await form.locator("[name=description]").fill(MARKUP)
    await form.locator("[name=sku]").fill("TOTE-1")
    await form.locator("[name=price]").fill("19.90")
    await form.locator("[name=attrs]").fill(f"colour={colour}")
    await form.locator("button[type=submit]").click()
    await console.feedback(f"Create “{tote}”")
    await expect(titles).to_have_text([title, tote])
    [_, created] = await host.products()
    assert (created["title"], created["skus"][0]["attrs"]) == (tote, {"colour": colour})

    await page.locator("#lineup li[data-id=p1] button.edit").click()
    await expect(page.locator("#product-editor-title")).to_have_text(f"Edit p1: {title}")
    await expect(form.locator("[name=title]")).to_have_value(title)
    await expect(form.locator("[name=description]")).to_have_value(MARKUP)
    await page.click("#product-cancel")

    await expect(page.locator("#sale-sku option[value='XSS-1']")).to_have_text(
        f"XSS-1 — {title} ({label}) · USD 99.00"
    )
    await host.launch_sale("XSS-1", 5, price=9900)
    await expect(page.locator("#sales .sale .title")).to_have_text(f"{title} ({label})")
    await page.locator("#lineup li[data-id=p2] button.present").click()
    await expect(page.locator("#lineup li.pinned .title")).to_have_text(tote)
    await console.shot("15-markup-as-text")
    await expect(page.locator("img, b, #lineup .title *, #sales .title *")).to_have_count(0)
    assert f"Boots {MARKUP}" in await page.evaluate("() => document.body.innerText")
    assert await page.evaluate("() => typeof window.__xss") == "undefined"
