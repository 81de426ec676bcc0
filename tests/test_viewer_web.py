"""The viewer's mobile page (clients/web, served at /live/{room}) end to end: Debian's
Chromium driven by Playwright in a phone viewport (390x844, touch) against an engine started
by the fixtures, with the host SDK running the show. Any JavaScript console error or page
error fails the test. Screenshots of the main states go to tests/artifacts/viewer/
(gitignored)."""

from __future__ import annotations

import gzip
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from clients import HostClient, ShopperClient
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import (
    ADDRESS,
    RoomFactory,
    TwinEngines,
    ViewerFactory,
    eventually,
    needs_chromium,
    token,
)
from tests.pages import CDN, HTTP_ERROR_LOG, PHONE, SMALL_PHONE, OpenViewer, Viewer
from tests.test_console import BOOTS, SCARF

WEB = Path(__file__).resolve().parent.parent / "clients" / "web"
SDK = WEB.parent / "js" / "src"  # the JavaScript SDK the page runs on, served at /sdk/
BUDGET = 100 * 1024


@pytest.fixture
async def show(engine: Engine, room_factory: RoomFactory) -> AsyncIterator[HostClient]:
    """A live room presenting the boots, with the scarf next in the run of show."""
    room = await room_factory(title="Friday drop")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        boots = await host.create_product(**BOOTS)
        await host.create_product(**SCARF)
        await host.pin_product(boots["id"])
        yield host


def page_files() -> list[Path]:
    """The first load's files: clients/web's own and its message catalogs (i18n/: English
    and, for a Chinese reader, one more), not vendor/ (hls.js, loaded only where HLS is not
    native, and only once a stream plays)."""
    own = [p for p in WEB.iterdir() if p.is_file() and p.suffix in (".html", ".js", ".css")]
    return sorted(own + list((WEB / "i18n").glob("*.js")))


def test_page_weight_under_100_kb_compressed() -> None:
    files = page_files() + sorted(SDK.glob("*.js"))  # the page's own files and the SDK's
    raw = sum(len(p.read_bytes()) for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    print(f"viewer page: {len(files)} files, {raw} bytes raw, {packed} bytes gzip -9")
    assert packed < BUDGET


async def test_page_is_served_for_any_room(engine: Engine) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        page = await http.get("/live/some-room")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/live/static/app.js">' in page.text
        for file in page_files():
            if file.suffix != ".html":
                asset = await http.get(f"/live/static/{file.relative_to(WEB).as_posix()}")
                assert asset.status_code == 200, file.name
        assert (await http.get("/live/static/nope.js")).status_code == 404
        assert (await http.get("/console/")).status_code == 200  # untouched


# ---- browser tests --------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_join_product_and_comments_between_two_phones(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    ana = await open_viewer(show.room, "ana", "Ana")
    page = ana.page
    await expect(page.locator("#title")).to_have_text("Friday drop")
    await expect(page.locator("#product-title")).to_have_text("Leather boots")
    await expect(page.locator("#online")).not_to_have_text("0")
    await ana.page.wait_for_function("() => window.__livecart.firstTickMs !== null")
    timing = await page.evaluate(
        "() => [window.__livecart.scriptMs, window.__livecart.welcomeMs,"
        " window.__livecart.firstTickMs]"
    )
    print(f"from navigation: app.js running {timing[0]} ms, welcome {timing[1]} ms, "
          f"first tick {timing[2]} ms")  # fmt: skip
    await expect(page.locator("#limits")).to_contain_text("200 chars max")
    bo = await open_viewer(show.room, "bo", "Bo")

    await page.fill("#comment-input", "is it waterproof?")
    await page.locator("#send").tap()
    await expect(bo.page.locator("#comments li", has_text="is it waterproof?")).to_be_visible()
    await bo.page.fill("#comment-input", "love the colour")
    await bo.page.locator("#send").tap()
    await expect(page.locator("#comments li", has_text="love the colour")).to_have_count(1)
    await expect(page.locator("#comments li.mine", has_text="is it waterproof?")).to_have_count(1)
    await ana.shot("01-live-comments")
    await show.slow_mode(5)  # the room's limits are shown as they change
    await expect(page.locator("#limits")).to_contain_text("slow mode: 1 per 5 s")

    await page.locator("#open-products").tap()
    await expect(page.locator("#sheet .list li")).to_have_count(2)
    await expect(page.locator("#sheet .list li.live")).to_contain_text("Leather boots")
    await ana.shot("02-run-of-show")


@pytest.mark.browser
@needs_chromium
async def test_a_stream_that_cannot_play_leaves_the_cover(
    open_viewer: OpenViewer, room_factory: RoomFactory
) -> None:
    """The room's stream goes to the video (stream.js; playing a real HLS stream is
    tests/test_stream_web.py and tests/test_demo_media.py); this "stream" is an empty MP4,
    so the stage falls back to the cover, never a black or broken frame."""
    streamed = await room_factory(stream_url=f"{CDN}/show.mp4", cover_url=f"{CDN}/cover.png")
    viewer = await open_viewer(streamed)  # anonymous: the room allows it
    video = viewer.page.locator("#video")
    await expect(video).to_have_attribute("poster", f"{CDN}/cover.png")
    await expect(viewer.page.locator("#stage")).to_have_attribute("data-stream", "offline")
    await expect(viewer.page.locator("#cover")).to_be_visible()
    await expect(video).to_be_hidden()
    await expect(viewer.page.locator("#comment-input")).to_be_disabled()
    await expect(viewer.page.locator("#comment-input")).to_have_attribute(
        "placeholder", "Sign in to comment"
    )
    covered = await room_factory(cover_url=f"{CDN}/cover.png")
    other = await open_viewer(covered)
    await expect(other.page.locator("#cover")).to_be_visible()
    await expect(other.page.locator("#video")).to_be_hidden()


@pytest.mark.browser
@needs_chromium
async def test_grab_checkout_and_pay(open_viewer: OpenViewer, show: HostClient) -> None:
    """The first purchase: grab, the checkout sheet over the hold's clock (kept through a
    reconnect), the order, Pay, the confirmation; then the sale card says paid ✓ and the
    limit (1 per person) is used, after a reload too."""
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await show.launch_sale("LB-42", 3, price=9900, countdown_s=2)
    sale = page.locator("#sale")
    await expect(page.locator("#sale-clock")).to_contain_text("starts in")
    await expect(sale).to_have_attribute("data-state", "upcoming")
    await expect(page.locator("#sale-stock")).to_have_text("3 of 3 left")
    await expect(page.locator("#grab")).to_be_disabled()
    await viewer.shot("03-sale-countdown")
    await expect(page.locator("#grab")).to_have_text("Grab", timeout=6000)
    # the deal: the list price struck through beside the sale price, the percent off
    await expect(page.locator("#sale-title")).to_have_text("Leather boots (42) · $99.00")
    await expect(page.locator("#sale-deal s")).to_have_text("$129.00")
    await expect(page.locator("#sale-deal .off")).to_have_text("\u221223%")
    await page.locator("#grab").tap()
    await expect(page.locator("#grab-result")).to_have_attribute("data-status", "reserved")
    await expect(page.locator("#grab-result")).to_have_text("Reserved! 1 held for you")
    await expect(page.locator("#grab")).to_have_text(re.compile(r"^Check out · [45]:\d\d left$"))
    await expect(page.locator("#sale-stock")).to_have_text("2 of 3 left")
    await viewer.shot("04-reserved")

    await page.locator("#grab").tap()  # Check out
    await expect(page.locator("#sheet-title")).to_have_text("Checkout")
    await expect(page.locator("#checkout-form .item-title")).to_have_text("Leather boots (42)")
    await expect(page.locator("#checkout-clock")).to_contain_text("left")
    form = page.locator("#checkout-form")
    for name, value in ADDRESS.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("input[name=email]").fill("ana@example.com")
    await viewer.shot("05-checkout")
    # A reconnect keeps the open checkout form and the held reservation.
    await page.evaluate("() => window.__livecart.dropConnection(300)")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(form.locator("input[name=city]")).to_have_value(ADDRESS["city"])
    await expect(page.locator("#checkout-clock")).to_contain_text("left")
    await page.locator("#place").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "pending_payment")
    await expect(page.locator("#breakdown")).to_contain_text("$6.00")  # shipping
    await expect(page.locator("#checkout-clock")).to_contain_text("pay within")
    await expect(page.locator("#pay")).to_have_text(re.compile(r"Pay \$105\.00"))
    await page.locator("#pay").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    await expect(page.locator("#sheet-title")).to_have_text("Order confirmed")
    confirm = page.locator("#sheet .confirm")
    for text in ("Paid ✓", "o1", "Leather boots (42) \u00d7 1", "$105.00"):
        await expect(confirm).to_contain_text(text)
    await viewer.shot("06-paid")
    await page.locator("#done").tap()
    await expect(sale).to_have_attribute("data-state", "paid")
    await expect(page.locator("#grab-result")).to_have_text("Paid ✓ You bought 1")
    await expect(page.locator("#grab")).to_have_text("Limit reached (1 per person)")
    await expect(page.locator("#grab")).to_be_disabled()
    await page.locator("#menu-orders").tap()
    await expect(page.locator("#orders-list li[data-state=paid]")).to_have_count(1)
    await viewer.shot("07-my-orders")
    # The address is remembered on the device for this user (and the token too: no
    # fragment on reload); the sale's state comes back from the engine's orders.
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    stored = await page.evaluate("() => JSON.parse(localStorage.getItem('lc.checkout.ana'))")
    assert stored["city"] == ADDRESS["city"]
    assert stored["email"] == "ana@example.com"
    await expect(sale).to_have_attribute("data-state", "paid")
    await expect(page.locator("#grab")).to_have_text("Limit reached (1 per person)")


@pytest.mark.browser
@needs_chromium
async def test_grab_answers_limit_sold_out_and_waitlist(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    ana = await open_viewer(show.room, "ana", "Ana")
    bo = await open_viewer(show.room, "bo", "Bo")
    cleo = await open_viewer(show.room, "cleo", "Cleo")
    ana2 = await open_viewer(show.room, "ana", "Ana")  # open before the grab
    await show.launch_sale("LB-42", 2, price=9900, per_user_limit=1)
    await ana.page.locator("#grab").tap()
    await expect(ana.page.locator("#grab-result")).to_have_attribute("data-status", "reserved")
    # Ana's second phone taps too: the engine says limit_reached, and the page asks the
    # engine what Ana holds (GET /reservations/mine): the hold is hers to check out here.
    await ana2.page.locator("#grab").tap()
    await expect(ana2.page.locator("#sale")).to_have_attribute("data-state", "reserved")
    checkout = re.compile(r"^Check out · [45]:\d\d left$")
    await expect(ana2.page.locator("#grab")).to_have_text(checkout)
    await ana2.shot("13-held-on-another-phone")
    await ana2.page.locator("#grab").tap()  # and checks it out from there
    await expect(ana2.page.locator("#sheet-title")).to_have_text("Checkout")
    # A phone opened later shows the hold at once.
    ana3 = await open_viewer(show.room, "ana", "Ana")
    await expect(ana3.page.locator("#sale")).to_have_attribute("data-state", "reserved")
    await bo.page.locator("#grab").tap()
    await expect(bo.page.locator("#grab-result")).to_have_attribute("data-status", "reserved")
    await expect(cleo.page.locator("#grab")).to_have_text("Sold out: join waitlist")
    await expect(cleo.page.locator("#sale-stock")).to_have_text("0 of 2 left")
    await expect(cleo.page.locator("#sale-deal")).to_contain_text("Sold out")
    await cleo.page.locator("#grab").tap()
    await expect(cleo.page.locator("#grab-result")).to_have_text("On the waitlist: #1")
    await expect(cleo.page.locator("#sale")).to_have_attribute("data-state", "waitlisted")
    await cleo.shot("14-sold-out-waitlist")


@pytest.mark.browser
@needs_chromium
async def test_coupon_drop_is_claimed_and_applied(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    template = await show.create_coupon("amount_off", "5 off boots", 50, "USD", amount=500)
    await show.drop_coupons(template["id"], 10)
    await expect(page.locator("#drop")).to_be_visible()
    await expect(page.locator("#drop-title")).to_have_text("5 off boots")
    await viewer.shot("08-coupon-drop")
    await page.locator("#claim").tap()
    await expect(page.locator("#drop-state")).to_have_text("claimed ✓")
    await expect(page.locator("#drop")).to_be_hidden()  # it leaves the product in sight
    await page.locator("#menu-coupons").tap()
    await expect(page.locator("#coupons-list li")).to_contain_text("5 off boots · claimed")
    await page.locator("#sheet-close").tap()

    await show.launch_sale("LB-42", 3, price=9900)
    await page.locator("#grab").tap()
    await expect(page.locator("#grab-result")).to_have_attribute("data-status", "reserved")
    await page.locator("#grab").tap()  # Check out
    await expect(page.locator("#checkout-form")).to_be_visible()
    await expect(page.locator("#coupon-select option")).to_have_count(2)
    await expect(page.locator("#coupon-select")).not_to_have_value("")  # best preselected
    await expect(page.locator("#breakdown")).to_contain_text("\u2212$5.00")
    form = page.locator("#checkout-form")
    for name, value in ADDRESS.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("input[name=email]").fill("ana@example.com")
    await page.locator("#place").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "pending_payment")
    await expect(page.locator("#breakdown")).to_contain_text("\u2212$5.00")
    await expect(page.locator("#pay")).to_have_text(re.compile(r"Pay \$100\.00"))
    await viewer.shot("09-coupon-applied")


@pytest.mark.browser
@needs_chromium
async def test_reconnect_resumes_without_duplicates(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    bot = await viewer_factory(show.room, user="bot")
    await page.fill("#comment-input", "before the drop")
    await page.locator("#send").tap()
    await expect(page.locator("#comments li", has_text="before the drop")).to_have_count(1)
    await page.evaluate("() => window.__livecart.dropConnection(600)")
    await expect(page.locator("#conn")).to_have_text("reconnecting")
    await bot.comment("while you were away")
    await viewer.shot("10-reconnecting")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#comments li", has_text="while you were away")).to_have_count(1)
    await bot.comment("after the resume")
    await expect(page.locator("#comments li", has_text="after the resume")).to_have_count(1)
    await expect(page.locator("#comments li", has_text="before the drop")).to_have_count(1)
    assert "reconnecting" in await viewer.hook("statuses")
    assert await viewer.hook("welcomes") == 2
    assert await viewer.hook("duplicates") == 0
    await viewer.shot("11-resumed")


@pytest.mark.browser
@needs_chromium
async def test_the_page_runs_on_the_sdk_and_resends_what_a_1001_left_unanswered(
    browser: Browser, twin_engines: TwinEngines, redis: aioredis.Redis,
    room_factory: RoomFactory,
) -> None:  # fmt: skip
    """The page loads the SDK (/sdk/index.js; its old realtime.js is gone), so it does what the
    SDK does: two engines share a port (as two workers do) and the page's is restarted while
    a comment is on its way (held on the wire until the engine has gone away with 1001).
    The page resumes on the other engine and sends the comment again with its id: it shows
    once, with no "Not sent", and is stored once."""
    room = await room_factory(title="Friday drop")
    await twin_engines.start(0)
    base = f"http://127.0.0.1:{twin_engines.port}"
    held: list[dict[str, Any]] = []  # the comment kept from the first engine
    closes: list[int | None] = []  # the engines' close codes, as the page got them

    async def wire(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def upstream(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "comment" and not held:
                held.append(frame)
            else:
                server.send(message)

        async def closed(code: int | None, reason: str | None) -> None:
            closes.append(code)
            await ws.close(code=code, reason=reason)

        ws.on_message(upstream)
        server.on_close(closed)

    context = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        await context.route_web_socket(re.compile(r"/ws/"), wire)
        page = await context.new_page()
        page.set_default_timeout(5000)
        viewer = Viewer(page)
        viewer.watch()
        loaded: list[str] = []
        page.on("response", lambda r: loaded.append(r.url) if r.ok else None)
        await page.goto(f"{base}/live/{room}#token={token(room, 'viewer', 'ana', name='Ana')}")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        assert f"{base}/sdk/index.js" in loaded
        assert f"{base}/sdk/viewer.js" in loaded
        assert not any("realtime" in url for url in loaded)
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/live/static/realtime.js")).status_code == 404

        await twin_engines.start(1)
        await page.fill("#comment-input", "sent as the engine stops")
        await page.locator("#send").tap()
        await eventually(lambda: bool(held))
        await twin_engines.engines[0].stop()  # 1001 to the page, with the comment unanswered
        mine = page.locator("#comments li.mine", has_text="sent as the engine stops")
        await expect(mine).to_have_count(1)
        await expect(page.locator("#comment-input")).to_have_value("")  # sent: cleared
        await expect(page.locator("#limits")).not_to_contain_text("Not sent")
        assert closes == [1001]
        assert await viewer.hook("statuses") == ["connecting", "live", "reconnecting", "live"]
        assert await viewer.hook("viewer.reconnects") == 1
        await viewer.shot("11b-resent-after-1001")
    finally:
        await context.close()
    assert viewer.errors == [], f"JavaScript errors: {viewer.errors}"
    stored = [orjson.loads(fields[b"d"]) for _, fields in await redis.xrange(keys.room_stream(room))
              if fields[b"k"] == b"comment"]  # fmt: skip
    assert [(c["text"], c["user"]) for c in stored] == [("sent as the engine stops", "ana")]


@pytest.mark.browser
@needs_chromium
async def test_a_refusal_is_shown_with_the_engines_message(
    browser: Browser, engine: Engine, room_factory: RoomFactory
) -> None:
    """An anonymous phone in a room that takes only signed-in viewers: the SDK's refusal ends
    the connection, and the badge says why, in the engine's words (no retrying)."""
    room = await room_factory(settings={"allow_anonymous": False})
    context = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        page = await context.new_page()
        page.set_default_timeout(5000)
        viewer = Viewer(page)
        viewer.watch()
        await page.goto(f"{engine.base_url}/live/{room}")
        conn = page.locator("#conn")
        await expect(conn).to_have_attribute("data-state", "closed")
        await expect(conn).to_have_text("disconnected (this room needs a sign-in token)")
        assert await viewer.hook("statuses") == ["connecting", "closed"]
    finally:
        await context.close()
    assert viewer.errors == [], f"JavaScript errors: {viewer.errors}"


@pytest.mark.browser
@needs_chromium
async def test_likes_are_aggregated(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    for _ in range(3):
        await page.locator("#like").tap()
    # Nine more taps in one burst (faster than the test driver taps): one frame for them.
    await page.evaluate(
        "() => { for (let i = 0; i < 9; i++) document.querySelector('#like').click(); }"
    )
    await viewer.shot("12-hearts")
    await page.wait_for_function("() => window.__livecart.likesSent === 12")
    assert await viewer.hook("likeFrames") <= 4  # 12 taps: at most 3 frames + the burst's
    await expect(page.locator("#likes")).to_have_text("12")
    # The room's total, as another viewer sees it (once the likes reached the server's
    # next presence sync: the page counts its taps before they are sent).
    watcher = await viewer_factory(show.room, None)
    await eventually(lambda: watcher.stats.get("likes") == 12)


# ---- interactive selling: giveaways, auctions, comment-to-buy ---------------------------------


@pytest.mark.browser
@needs_chromium
async def test_giveaway_card_enter_and_win(open_viewer: OpenViewer, show: HostClient) -> None:
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await expect(page.locator("#giveaway")).to_be_hidden()  # nothing running: no card
    await show.open_giveaway("Lucky bag", "1 mystery bag", 1, duration_s=120)
    card = page.locator("#giveaway")
    await expect(card).to_be_visible()
    await expect(page.locator("#gw-title")).to_have_text("Giveaway: Lucky bag")
    await expect(page.locator("#gw-prize")).to_have_text("1 mystery bag")
    await expect(page.locator("#gw-clock")).to_have_text(re.compile(r"^draw in [12]:\d\d$"))
    await viewer.shot("15-giveaway-open")
    await page.locator("#gw-enter").tap()
    await expect(card).to_have_attribute("data-state", "entered")
    await expect(page.locator("#gw-status")).to_have_text("You're in ✓ Good luck!")
    await expect(page.locator("#gw-enter")).to_be_hidden()
    assert (await show.giveaway("g1"))["entrants_count"] == 1
    # A reload remembers the entry; the open giveaway comes from GET .../giveaways.
    await page.reload()
    await expect(card).to_have_attribute("data-state", "entered")
    await show.close_giveaway("g1")
    await expect(page.locator("#gw-status")).to_have_text("You won 1 mystery bag!")
    await expect(page.locator("#gw-clock")).to_have_text("drawn")
    await viewer.shot("16-giveaway-won")


@pytest.mark.browser
@needs_chromium
async def test_giveaway_card_for_others_and_anonymous(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    await show.open_giveaway("Lucky bag", "1 mystery bag", 1, duration_s=120)
    anonymous = await open_viewer(show.room)
    await expect(anonymous.page.locator("#gw-enter")).to_have_text("Sign in to enter")
    await expect(anonymous.page.locator("#gw-enter")).to_be_disabled()
    bo = await open_viewer(show.room, "bo", "Bo")
    await bo.page.locator("#gw-enter").tap()
    await expect(bo.page.locator("#giveaway")).to_have_attribute("data-state", "entered")
    await show.close_giveaway("g1")
    status = bo.page.locator("#gw-status")
    winners = (await show.giveaway("g1"))["winners"]
    await expect(status).to_have_text(
        "You won 1 mystery bag!" if winners == ["bo"] else "1 winner drawn"
    )


@pytest.mark.browser
@needs_chromium
async def test_watch_time_giveaway_refuses_a_newcomer(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    viewer = await open_viewer(show.room, "ana", "Ana")
    viewer.allowed.append(HTTP_ERROR_LOG)  # Chromium logs the refusal (a 4xx)
    page = viewer.page
    await show.open_giveaway("Loyal fans", "a tote", 1, rule="watch", min_watch_s=600)
    await expect(page.locator("#gw-status")).to_have_text("For viewers who watched 10 min")
    await page.locator("#gw-enter").tap()
    await expect(page.locator("#gw-status")).to_have_text("watch the show for 600 s to enter")
    await expect(page.locator("#giveaway")).to_have_attribute("data-state", "open")
    assert (await show.giveaway("g1"))["entrants_count"] == 0


@pytest.mark.browser
@needs_chromium
async def test_keyword_giveaway_is_entered_by_commenting(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    """Needs the engine's keyword-comment entry (GiveawayStore.on_comment)."""
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await show.open_giveaway("Say it", "a tote", 1, rule="keyword", keyword="I love boots")
    await expect(page.locator("#gw-status")).to_have_text("Comment “I love boots” to enter")
    await expect(page.locator("#gw-enter")).to_have_text("Comment “I love boots”")
    await page.locator("#gw-enter").tap()
    await expect(page.locator("#comments li.mine", has_text="I love boots")).to_have_count(1)
    await expect(page.locator("#giveaway")).to_have_attribute("data-state", "entered")

    async def entered() -> bool:
        return bool((await show.giveaway("g1"))["entrants_count"] == 1)

    await eventually(entered)


@pytest.mark.browser
@needs_chromium
async def test_product_prize_is_checked_out(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs prize_kind "product" and the private giveaway_won notice with a reservation."""
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await show.open_giveaway("Win the scarf", "Wool scarf", 1, prize_kind="product", sku="WS-1")
    await page.locator("#gw-enter").tap()
    await expect(page.locator("#giveaway")).to_have_attribute("data-state", "entered")
    await show.close_giveaway("g1")
    await expect(page.locator("#giveaway")).to_have_attribute("data-state", "won")
    await expect(page.locator("#gw-status")).to_contain_text("You won")
    await expect(page.locator("#held")).to_be_visible()
    await page.locator("#gw-checkout").tap()
    await expect(page.locator("#sheet-title")).to_have_text("Checkout")
    form = page.locator("#checkout-form")
    for name, value in ADDRESS.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("input[name=email]").fill("ana@example.com")
    await page.locator("#place").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "pending_payment")
    await viewer.shot("17-prize-checkout")


@pytest.mark.browser
@needs_chromium
async def test_auction_bid_outbid_and_won(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the auctions API and the `bid` frame."""
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await expect(page.locator("#auction")).to_be_hidden()
    await show.open_auction("LB-42", 5000, 120, mode="anti_snipe", extend_s=15)
    card = page.locator("#auction")
    await expect(card).to_be_visible()
    await expect(page.locator("#au-title")).to_have_text("Auction: Leather boots (42)")
    await expect(page.locator("#au-price")).to_have_text("$50.00")
    await expect(page.locator("#au-leader")).to_have_text("no bids yet")
    await expect(page.locator("#au-clock")).to_have_text(re.compile(r"^ends in [12]:\d\d$"))
    await expect(page.locator("#au-bid")).to_have_text("Bid $50.00")
    await page.locator("#au-bid").tap()
    await expect(card).to_have_attribute("data-state", "leading")
    await expect(page.locator("#au-status")).to_contain_text("You're")
    await expect(page.locator("#au-bid")).to_have_text("You're leading")
    await viewer.shot("18-auction-leading")

    rival = await viewer_factory(show.room, user="rival")
    [auction] = await show.auctions()
    answer = await rival.bid(auction["id"], auction["min_bid"] + 1000)
    assert answer["status"] == "leading"
    await expect(page.locator("#au-status")).to_have_text(re.compile("outbid", re.IGNORECASE))
    await expect(page.locator("#au-leader")).to_contain_text("rival")
    await expect(page.locator("#au-price")).to_have_text(money(answer["price"]))
    await viewer.shot("19-auction-outbid")

    await page.fill("#au-amount", f"{(answer['min_bid'] + 500) / 100:.2f}")
    await page.fill("#au-max", "200.00")
    await page.locator("#au-form button").tap()
    await expect(card).to_have_attribute("data-state", "leading")
    await show.close_auction(auction["id"])
    await expect(card).to_have_attribute("data-state", "won")
    await expect(page.locator("#au-status")).to_contain_text("You won")
    await expect(page.locator("#held")).to_be_visible()
    await viewer.shot("20-auction-won")
    await page.locator("#au-checkout").tap()
    await expect(page.locator("#sheet-title")).to_have_text("Checkout")
    form = page.locator("#checkout-form")
    for name, value in ADDRESS.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("input[name=email]").fill("ana@example.com")
    await page.locator("#place").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "pending_payment")


def money(minor: int) -> str:
    return f"${minor / 100:,.2f}"


@pytest.mark.browser
@needs_chromium
async def test_comment_to_buy_replies_are_toasts(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs the comment-to-buy settings API and the engine's comment_buy notices."""
    await show.set_comment_to_buy(enabled=True, keyword="SOLD")
    await show.launch_sale("LB-42", 1, price=9900)
    ana = await open_viewer(show.room, "ana", "Ana")
    bo = await open_viewer(show.room, "bo", "Bo")
    await ana.page.fill("#comment-input", "SOLD 1")
    await ana.page.locator("#send").tap()
    toast = ana.page.locator("#toasts .toast").last
    await expect(toast).to_be_visible()
    await expect(toast.locator("button", has_text="Check out")).to_be_visible()
    await expect(ana.page.locator("#sale")).to_have_attribute("data-state", "reserved")
    await ana.shot("21-comment-buy-reserved")
    await bo.page.fill("#comment-input", "SOLD 1")
    await bo.page.locator("#send").tap()
    late = bo.page.locator("#toasts .toast").last
    await expect(late).to_have_attribute("data-status", "sold_out")
    await late.locator("button.join").tap()
    await expect(late).to_contain_text("On the waitlist: #1")
    await bo.shot("22-comment-buy-sold-out")


# ---- social selling: group buys, share links, reminders ---------------------------------------


async def checkout(page: Page) -> None:
    form = page.locator("#checkout-form")
    for name, value in ADDRESS.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("input[name=email]").fill("ana@example.com")
    await page.locator("#place").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "pending_payment")


@pytest.mark.browser
@needs_chromium
async def test_group_buy_team_started_joined_and_checked_out(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    """Needs the group-buy API and its team_* entries."""
    deal = await show.open_group_buy("LB-42", 7900, 3, 600, 9)
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    card = page.locator("#groupbuy")
    await expect(card).to_be_visible()
    await expect(page.locator("#gb-terms")).to_contain_text("$79.00 each in teams of 3")
    await expect(page.locator("#gb-start")).to_have_text("Start a team at $79.00")
    await page.locator("#gb-start").tap()
    await expect(card).to_have_attribute("data-state", "forming")
    await expect(page.locator("#gb-status")).to_have_text(
        "Your team: 2 more needed — invite friends!"
    )
    await expect(page.locator("#gb-clock")).to_have_text(re.compile(r"^(9|10):\d\d left$"))
    await expect(page.locator("#held")).to_be_visible()
    await viewer.shot("23-group-buy-started")

    [team] = (await show.group_buy(deal["id"]))["teams"]
    async with ShopperClient(show.base_url, show.room, token(show.room, "viewer", "bo")) as bo:
        await bo.join_team(deal["id"], team["id"])
    await expect(page.locator("#gb-status")).to_have_text(
        "Your team: 1 more needed — invite friends!"
    )
    await viewer.shot("24-group-buy-joined")
    await page.locator("#gb-checkout").tap()
    await expect(page.locator("#sheet-title")).to_have_text("Checkout")
    await checkout(page)
    await expect(page.locator("#pay")).to_have_text(re.compile(r"Pay \$85\.00"))  # 79 + shipping


@pytest.mark.browser
@needs_chromium
async def test_team_link_opens_the_join_prompt(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs the group-buy API (share_path) and team joins."""
    deal = await show.open_group_buy("LB-42", 7900, 3, 600, 9)
    async with ShopperClient(
        show.base_url, show.room, token(show.room, "viewer", "bo", name="Bo")
    ) as bo:
        started = await bo.start_team(deal["id"])
    query = "?" + started["share_path"].split("?", 1)[1]
    viewer = await open_viewer(show.room, "ana", "Ana", query=query)
    page = viewer.page
    invited = page.locator("#gb-teams li.invited")
    await expect(invited).to_contain_text("Bo · 2 more needed")
    await expect(page.locator("#gb-status")).to_have_text("Bo invited you: 2 more needed — join!")
    assert "team=" in page.url  # the token left the address, the team link did not
    await viewer.shot("25-group-buy-invited")
    await invited.locator("button").tap()
    await expect(page.locator("#groupbuy")).to_have_attribute("data-state", "forming")
    await expect(page.locator("#gb-status")).to_have_text(
        "Your team: 1 more needed — invite friends!"
    )
    [team] = (await show.group_buy(deal["id"]))["teams"]
    assert team["needed"] == 1


@pytest.mark.browser
@needs_chromium
async def test_share_link_is_attributed(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs POST .../share, hello's `ref` and the referral reports."""
    ana = await open_viewer(show.room, "ana", "Ana")
    await ana.page.locator("#share").tap()
    await expect(ana.page.locator("#sheet-title")).to_have_text("Invite friends")
    link = ana.page.locator("#share-link")
    await expect(link).to_contain_text(f"/live/{show.room}?ref=")
    await expect(ana.page.locator("#invites li")).to_have_text(
        "Nobody has shared yet: be the first!"
    )
    await ana.shot("26-share-link")
    url = (await link.inner_text()).split(" ")[0]
    query = "?" + url.split("?", 1)[1]
    await open_viewer(show.room, "bo", "Bo", query=query)

    async def attributed() -> bool:
        sharers = (await show.referrals())["sharers"]
        return [(s["user"], s["invites"]) for s in sharers] == [("ana", 1)]

    await eventually(attributed)
    await ana.page.locator("#sheet-close").tap()
    await ana.page.locator("#share").tap()
    await expect(ana.page.locator("#invites li")).to_have_text(re.compile(r"Ana · 1 invite$"))


@pytest.mark.browser
@needs_chromium
async def test_remind_me_in_a_scheduled_room(
    open_viewer: OpenViewer, room_factory: RoomFactory, engine: Engine
) -> None:
    """Needs the reminders API."""
    room = await room_factory(live=False, title="Sunday drop")
    viewer = await open_viewer(room, "ana", "Ana")
    page = viewer.page
    remind = page.locator("#remind")
    await expect(page.locator("#remind-text")).to_have_text("The show hasn't started yet")
    await expect(remind).to_have_text("🔔 Remind me")
    await remind.tap()
    await expect(remind).to_have_attribute("aria-pressed", "true")
    await expect(remind).to_have_text("✓ Reminder set")
    await viewer.shot("27-remind-me")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        assert await host.reminder_count() == 1
        await page.reload()
        await expect(remind).to_have_text("✓ Reminder set")  # GET .../reminders/me
        await remind.tap()
        await expect(remind).to_have_attribute("aria-pressed", "false")
        assert await host.reminder_count() == 0
        await remind.tap()
        await expect(remind).to_have_attribute("aria-pressed", "true")
        await host.go_live()
    await expect(page.locator("#reminder")).to_be_hidden()
    # Needs the reminder sweep: the going_live notice reaches a subscriber who is watching.
    await expect(page.locator("#toasts .toast[data-status=reminder]")).to_have_text(
        re.compile("We're live now!")
    )
    await viewer.shot("28-reminder-going-live")


@pytest.mark.browser
@needs_chromium
async def test_remind_me_for_an_upcoming_sale(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs the reminders API and its sweep (a sale 1-5 minutes away is due at once)."""
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await expect(page.locator("#reminder")).to_be_hidden()  # live, nothing upcoming
    await show.launch_sale("LB-42", 3, price=9900, countdown_s=120)
    await expect(page.locator("#remind-text")).to_contain_text("goes on sale soon")
    await page.locator("#remind").tap()
    await expect(page.locator("#remind")).to_have_text("✓ Reminder set")
    assert await show.reminder_count() == 1
    # (A show that went live moments ago also sends its going_live to a new subscriber.)
    toast = page.locator("#toasts .toast[data-status=reminder]", has_text="Flash sale soon:")
    await expect(toast).to_contain_text("Leather boots (42) at $99.00")
    await viewer.shot("29-reminder-sale-soon")


@pytest.mark.browser
@needs_chromium
async def test_group_buy_team_completes_or_fails(open_viewer: OpenViewer, show: HostClient) -> None:
    """Needs the paid hook (team_completed) and the group-buy sweep (team_failed)."""
    pair = await show.open_group_buy("LB-42", 7900, 2, 600, 4)
    viewer = await open_viewer(show.room, "ana", "Ana")
    page = viewer.page
    await page.locator("#gb-start").tap()
    await expect(page.locator("#groupbuy")).to_have_attribute("data-state", "forming")
    [team] = (await show.group_buy(pair["id"]))["teams"]
    async with ShopperClient(show.base_url, show.room, token(show.room, "viewer", "bo")) as bo:
        joined = await bo.join_team(pair["id"], team["id"])
        order = await bo.checkout([joined["reservation"]], address=ADDRESS,
                                  contact={"email": "bo@example.com"})  # fmt: skip
        await bo.pay((await bo.start_payment(order["id"]))["payment"])
    await expect(page.locator("#gb-status")).to_have_text("Team full: waiting for everyone to pay")
    await page.locator("#gb-checkout").tap()
    await checkout(page)
    await page.locator("#pay").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    await page.locator("#sheet-close").tap()
    await expect(page.locator("#groupbuy")).to_have_attribute("data-state", "completed")
    await expect(page.locator("#gb-status")).to_have_text("Team complete ✓ You pay $79.00")
    await viewer.shot("30-group-buy-completed")

    quick = await show.open_group_buy("LB-42", 8900, 3, 5, 3)  # 5 s: nobody joins in time
    other = await open_viewer(show.room, "cleo", "Cleo")
    page = other.page
    await expect(page.locator("#gb-start")).to_have_text("Start a team at $89.00")
    await page.locator("#gb-start").tap()
    await expect(page.locator("#groupbuy")).to_have_attribute("data-state", "forming")
    await expect(page.locator("#groupbuy")).to_have_attribute(
        "data-state", "failed", timeout=10_000
    )
    await expect(page.locator("#gb-status")).to_have_text(
        "The team didn't make it in time: your unit was released"
    )
    [failed] = (await show.group_buy(quick["id"]))["teams"]
    assert failed["state"] == "failed"
    await other.shot("31-group-buy-failed")


# ---- untrusted text ---------------------------------------------------------------------------

MARKUP = '<img src=x onerror="window.__xss=1"><b>bold</b>'
SHORT_MARKUP = "<img src=x onerror=__xss=1><b>{}</b>"  # fits names and attrs (40 chars max)
# Elements that can only come from data parsed as HTML: the page builds none of these.
INJECTED = (
    "img[src='x'], #product-title *, #sale-title span *, #sale-title b *, #pinned *,"
    " #danmaku span *, #comments li b *, #sheet .list li b *"
)


@pytest.mark.browser
@needs_chromium
async def test_markup_in_comments_names_and_product_titles_shows_as_text(
    open_viewer: OpenViewer, show: HostClient
) -> None:
    """Host-supplied product titles and variant labels, a viewer's display name and comment
    text show literally on every phone: text nodes, never parsed as HTML."""
    name, label, title = SHORT_MARKUP.format("Eve"), SHORT_MARKUP.format("42"), f"Boots {MARKUP}"
    product = await show.create_product(
        title, "USD", [{"sku": "XSS-1", "list_price": 9900, "attrs": {"size": label}}],
        description=MARKUP,
    )  # fmt: skip
    eve = await open_viewer(show.room, "eve", name)
    bo = await open_viewer(show.room, "bo", "Bo")
    await show.pin_product(product["id"])
    await show.launch_sale("XSS-1", 3, price=9900)
    await eve.page.fill("#comment-input", f"look {MARKUP}")
    await eve.page.locator("#send").tap()
    for viewer in (eve, bo):
        comment = viewer.page.locator("#comments li", has_text=f"look {MARKUP}")
        await expect(comment).to_have_text(f"{name} look {MARKUP}")
    [entry] = [e for e in (await show.comments())["entries"] if e["user"] == "eve"]
    await show.pin(entry["id"])

    await bo.page.locator("#open-products").tap()
    for viewer in (eve, bo):
        page = viewer.page
        await expect(page.locator("#product-title")).to_have_text(title)
        await expect(page.locator("#sale-title")).to_contain_text(f"{title} ({label}) · ")
        await expect(page.locator("#pinned")).to_have_text(f"📌 {name}: look {MARKUP}")
        comment = page.locator("#comments li", has_text=f"look {MARKUP}")
        await expect(comment.locator("*")).to_have_count(1)  # the page's own name element
        await expect(comment.locator("b")).to_have_text(name)
        await expect(page.locator(INJECTED)).to_have_count(0)
        text = await page.evaluate("() => document.body.innerText")
        for shown in (f"look {MARKUP}", title, name):
            assert shown in text
    await expect(bo.page.locator("#sheet .list li.live b")).to_have_text(title)
    await bo.shot("32-markup-as-text")
    await expect(bo.page.locator(INJECTED)).to_have_count(0)  # still none once rendered
    for viewer in (eve, bo):
        assert await viewer.page.evaluate("() => typeof window.__xss") == "undefined"


# ---- the live room on a phone (issue 25): one sale's every state, checkout, money, languages ----

VIEWPORTS = {"390x844": PHONE, "360x740": SMALL_PHONE}


async def in_view(page: Page, *selectors: str) -> None:
    """Each element is visible and wholly inside the viewport: no scrolling needed."""
    size = page.viewport_size
    assert size is not None
    await page.wait_for_function(  # a sheet sliding up is measured where it stops
        "() => !document.getAnimations()"
        ".some(a => a.animationName === 'up' && a.playState === 'running')"
    )
    for selector in selectors:
        await expect(page.locator(selector)).to_be_visible()
        box = await page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["y"] >= 0, (selector, box)
        assert box["y"] + box["height"] <= size["height"] + 0.5, (selector, box)
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= size["width"] + 0.5, (selector, box)


async def apart(page: Page, upper: str, lower: str) -> None:
    """`upper` ends above where `lower` starts (nothing drawn over the other): both measured
    in one frame."""
    a, b = await page.evaluate(
        "([u, l]) => [u, l].map(s => document.querySelector(s).getBoundingClientRect().toJSON())",
        [upper, lower],
    )
    assert a["bottom"] <= b["top"] + 0.5, (upper, a, lower, b)


async def sale_is(viewer: Viewer, state: str, button: str | re.Pattern[str], shot: str) -> None:
    page = viewer.page
    await expect(page.locator("#sale")).to_have_attribute("data-state", state)
    await expect(page.locator("#grab")).to_have_text(button)
    await in_view(page, "#top .who", "#sale", "#grab", "#bar", "#comment-input")
    await apart(page, "#top", "#stage")
    await apart(page, "#stage", "#chat")
    await apart(page, "#chat", "#dock")
    await viewer.shot(shot)


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("size", VIEWPORTS)
async def test_every_sale_state_on_a_phone(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory, size: str
) -> None:
    """upcoming -> live -> reserved -> ordered -> paid ✓, the same on a second phone of the
    same user; limit reached (a hold on another phone), sold out, waitlisted, ended: each
    fits the screen with the header, chat and dock apart."""
    viewport = VIEWPORTS[size]
    ana = await open_viewer(show.room, "ana", "Ana", viewport=viewport)
    page = ana.page
    for text in ("how much?", "love these", "size 42 please"):
        await page.fill("#comment-input", text)
        await page.locator("#send").tap()
        await expect(page.locator("#comments li.mine", has_text=text)).to_have_count(1)
    sale = await show.launch_sale("LB-42", 4, price=9900, countdown_s=3, per_user_limit=1)
    await expect(page.locator("#sale-clock")).to_contain_text("starts in")
    await sale_is(ana, "upcoming", "Starts soon", f"{size}-1-upcoming")
    await expect(page.locator("#grab")).to_be_disabled()
    await sale_is(ana, "live", "Grab", f"{size}-2-live")
    await page.locator("#grab").tap()
    held = re.compile(r"^Check out · [45]:\d\d left$")
    await sale_is(ana, "reserved", held, f"{size}-3-reserved")
    await expect(page.locator("#sale-stock")).to_have_text("3 of 4 left")

    await page.locator("#grab").tap()
    await checkout(page)
    await page.locator("#sheet-close").tap()
    await sale_is(ana, "ordered", re.compile(r"^Pay now · [45]:\d\d left$"), f"{size}-4-ordered")
    await expect(page.locator("#grab-result")).to_have_text("Ordered (o1): pay to keep it")
    await page.locator("#grab").tap()  # Pay now: the sheet with the order
    await expect(page.locator("#pay")).to_have_text("Pay $105.00")
    await page.locator("#pay").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    await page.locator("#done").tap()
    await sale_is(ana, "paid", "Limit reached (1 per person)", f"{size}-5-paid")
    await expect(page.locator("#grab-result")).to_have_text("Paid ✓ You bought 1")
    # the same user on another phone: the same state, from the engine's orders
    other = await open_viewer(show.room, "ana", "Ana", viewport=viewport)
    await expect(other.page.locator("#sale")).to_have_attribute("data-state", "paid")
    await expect(other.page.locator("#grab")).to_have_text("Limit reached (1 per person)")

    bo = await open_viewer(show.room, "bo", "Bo", viewport=viewport)
    await bo.page.locator("#grab").tap()
    await expect(bo.page.locator("#sale")).to_have_attribute("data-state", "reserved")
    bo2 = await open_viewer(show.room, "bo", "Bo", viewport=viewport)
    # The hold made on Bo's other phone: reserved here too (GET /reservations/mine).
    await sale_is(bo2, "reserved", re.compile(r"^Check out · [45]:\d\d left$"),
                  f"{size}-6-held-on-another-phone")  # fmt: skip
    await expect(bo2.page.locator("#sale-deal")).not_to_contain_text("left")  # 2 of 4: plenty

    cleo = await open_viewer(show.room, "cleo", "Cleo", viewport=viewport)
    for user in ("dan", "eve"):
        rival = await viewer_factory(show.room, user=user)
        assert (await rival.grab(sale["id"]))["status"] == "reserved"
        if user == "dan":  # the last unit: urgency
            await expect(cleo.page.locator("#sale-deal")).to_contain_text("Only 1 left!")
    await sale_is(cleo, "sold_out", "Sold out: join waitlist", f"{size}-7-sold-out")
    await expect(cleo.page.locator("#sale-stock")).to_have_text("0 of 4 left")
    await cleo.page.locator("#grab").tap()
    await sale_is(cleo, "waitlisted", "On the waitlist · #1", f"{size}-8-waitlisted")
    await expect(cleo.page.locator("#grab-result")).to_have_text("On the waitlist: #1")

    await show.stop_sale(sale["id"])
    await sale_is(cleo, "ended", "This sale has ended", f"{size}-9-ended")
    await expect(page.locator("#sale")).to_have_attribute("data-state", "ended")
    await expect(page.locator("#grab-result")).to_have_text("Paid ✓ You bought 1")


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("size", VIEWPORTS)
async def test_a_returning_buyer_pays_in_one_tap(
    open_viewer: OpenViewer, show: HostClient, size: str
) -> None:
    """The address and contact are asked once: the second purchase shows them as one line,
    the best coupon applied, the hold's clock and **Pay** with the total, in reach without
    scrolling; one tap places the order and pays it; then the confirmation."""
    viewer = await open_viewer(show.room, "ana", "Ana", viewport=VIEWPORTS[size])
    page = viewer.page
    first = await show.launch_sale("LB-42", 3, price=9900)
    await page.locator("#grab").tap()
    await page.locator("#grab").tap()
    form = page.locator("#checkout-form")
    for name in ("name", "line1", "city", "postal_code", "country", "email", "phone"):
        assert await form.locator(f"input[name={name}]").get_attribute("autocomplete") == {
            "line1": "address-line1", "city": "address-level2", "postal_code": "postal-code",
            "phone": "tel"}.get(name, name)  # fmt: skip
    await page.wait_for_function(  # the sheet has slid up
        "() => document.getAnimations().every((a) => a.playState !== 'running')"
    )
    await viewer.shot(f"{size}-checkout-first-time")  # the form, with the total and the hold
    await checkout(page)
    await page.locator("#pay").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    await page.locator("#done").tap()
    await show.stop_sale(first["id"])

    template = await show.create_coupon("amount_off", "5 off", 50, "USD", amount=500)
    await show.drop_coupons(template["id"], 10)
    await page.locator("#claim").tap()
    await expect(page.locator("#drop")).to_be_hidden()
    # Ana's other phone is not offered the coupon she claimed here
    other = await open_viewer(show.room, "ana", "Ana", viewport=VIEWPORTS[size])
    await other.page.wait_for_function("() => window.__livecart.state.coupons.length === 1")
    await expect(other.page.locator("#drop")).to_be_hidden()
    await show.launch_sale("WS-1", 3, price=2000)
    await expect(page.locator("#sale-title")).to_contain_text("Wool scarf")
    await page.locator("#grab").tap()
    await page.locator("#grab").tap()
    await expect(page.locator("#sheet-title")).to_have_text("Checkout")
    await expect(page.locator("#checkout-form fieldset.address")).to_be_hidden()
    await expect(page.locator("#checkout-form .ship-summary")).to_contain_text(
        "Ana Buyer, 1 Main St, Lisbon 1000-001, PT · ana@example.com"
    )
    await expect(page.locator("#coupon-select option:checked")).to_have_text("5 off")
    await expect(page.locator("#breakdown")).to_contain_text("\u2212$5.00")
    await expect(page.locator("#breakdown")).to_contain_text("$6.00")
    await expect(page.locator("#place")).to_be_hidden()
    await expect(page.locator("#pay")).to_have_text("Pay $21.00")  # 20 - 5 + 6
    await in_view(page, "#pay", "#checkout-clock", "#checkout-form .item-title", "#breakdown")
    await viewer.shot(f"{size}-checkout-returning")
    await page.locator("#pay").tap()
    await expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    confirm = page.locator("#sheet .confirm")
    for text in ("o2", "Wool scarf \u00d7 1", "\u2212$5.00", "$21.00"):
        await expect(confirm).to_contain_text(text)
    await in_view(page, "#done")
    if size == "390x844":
        await viewer.shot("order-confirmed")
    # "Change" opens the remembered fields, filled in
    await page.locator("#done").tap()
    await page.locator("#menu-orders").tap()
    await expect(page.locator("#orders-list li[data-state=paid]")).to_have_count(2)


@pytest.mark.browser
@needs_chromium
async def test_money_in_the_currencys_own_digits(
    open_viewer: OpenViewer, room_factory: RoomFactory, engine: Engine
) -> None:
    """A yen room: ¥1,500 (JPY has no minor digits), never ¥15."""
    room = await room_factory(title="Tokyo drop")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        product = await host.create_product(
            "Tea bowl", "JPY", [{"sku": "TB-1", "list_price": 2000}], images=[f"{CDN}/gone.jpg"]
        )
        await host.pin_product(product["id"])
        viewer = await open_viewer(room, "ana", "Ana")
        page = viewer.page
        await expect(page.locator("#product-price")).to_have_text("¥2,000")
        # a product image that does not load leaves the placeholder, never a broken icon
        await expect(page.locator("#product-img")).to_be_hidden()
        await expect(page.locator("#product .thumb svg")).to_be_visible()
        await host.launch_sale("TB-1", 5, price=1500)
        await expect(page.locator("#sale-title")).to_have_text("Tea bowl · ¥1,500")
        await expect(page.locator("#sale-deal s")).to_have_text("¥2,000")
        await expect(page.locator("#sale-deal .off")).to_have_text("\u221225%")
        await viewer.shot("jpy-sale")
        await page.locator("#grab").tap()
        await page.locator("#grab").tap()
        await expect(page.locator("#checkout-form .item-price")).to_contain_text("¥1,500")
        await expect(page.locator("#breakdown")).to_contain_text("¥1,500")
        text = await page.evaluate("() => document.body.innerText")
        assert "¥15\n" not in text
        assert "¥15.00" not in text


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(
    ("locale", "lang", "words"),
    [
        ("zh-CN", "zh-Hans", {"grab": "马上抢", "say": "说点什么…", "stock": "剩余 3 / 3 件",
                              "host": "主播", "live": "直播中", "limits": "最多 200 字"}),
        ("zh-TW", "zh-Hant", {"grab": "馬上搶", "say": "說點什麼…", "stock": "剩餘 3 / 3 件",
                              "host": "主播", "live": "直播中", "limits": "最多 200 字"}),
    ],
)  # fmt: skip
async def test_the_room_in_chinese(
    open_viewer: OpenViewer, show: HostClient, locale: str, lang: str, words: dict[str, str]
) -> None:
    """The browser's language picks the catalog; index.html's static text, app.js's text
    and the engine's refusals read in it; Settings switches language (after a reload)."""
    viewer = await open_viewer(show.room, "ana", "Ana", locale=locale)
    page = viewer.page
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    await expect(page.locator("#comment-input")).to_have_attribute("placeholder", words["say"])
    await expect(page.locator("#host")).to_have_text(f"{words['host']}{words['live']}")
    await expect(page.locator("#limits")).to_contain_text(words["limits"])
    await show.launch_sale("LB-42", 3, price=9900)
    await expect(page.locator("#grab")).to_have_text(words["grab"])
    await expect(page.locator("#sale-stock")).to_have_text(words["stock"])
    await expect(page.locator("#sale-title")).to_contain_text("99.00")
    await expect(page.locator("#open-products")).to_have_attribute(
        "aria-label", "本场全部商品" if lang == "zh-Hans" else "本場全部商品"
    )
    await viewer.shot(f"{lang}-live")
    await page.locator("#grab").tap()
    await page.locator("#grab").tap()
    simplified = lang == "zh-Hans"
    await expect(page.locator("#sheet-title")).to_have_text("结算" if simplified else "結帳")
    await expect(page.locator("#place")).to_have_text("提交订单" if simplified else "送出訂單")
    await page.locator("#sheet-close").tap()
    await page.locator("#settings").tap()
    await page.locator("#language").select_option("en")
    await expect(page.locator("#grab")).to_have_text(re.compile(r"^Check out"))
    await expect(page.locator("html")).to_have_attribute("lang", "en")


@pytest.mark.browser
@needs_chromium
async def test_a_refusal_reads_in_the_viewers_language(
    browser: Browser, engine: Engine, room_factory: RoomFactory
) -> None:
    room = await room_factory(settings={"allow_anonymous": False})
    context = await browser.new_context(
        viewport=PHONE, has_touch=True, is_mobile=True, locale="zh-TW"
    )
    try:
        page = await context.new_page()
        await page.goto(f"{engine.base_url}/live/{room}")
        await expect(page.locator("#conn")).to_have_text(
            "已中斷\uff08這個直播間需要登入\uff09"  # fullwidth parentheses
        )
    finally:
        await context.close()


@pytest.mark.browser
@needs_chromium
async def test_the_sale_state_function(open_viewer: OpenViewer, room_factory: RoomFactory) -> None:
    """sale_state.js's saleView, run in the page: precedence and the deal's cues."""
    viewer = await open_viewer(await room_factory())
    cases = await viewer.page.evaluate(
        """() => {
        const v = window.__livecart.saleView;
        const sale = {id: "s1", price: 4900, limit: 1, units: 10, available: 2, starts_at: 1000,
                      ends_at: 9000, state: "live"};
        const hold = {sale: "s1", reservation: "s1.1", quantity: 1, expires_at: 5000};
        const order = (state) => ({id: "o1", state, expires_at: 8000,
                                   lines: [{sale: "s1", quantity: 1}]});
        const me = {signedIn: true, listPrice: 8900};
        const pick = (x) => [x.state, x.button.key, x.button.disabled];
        return {
          upcoming: pick(v(sale, me, 500)),
          live: pick(v(sale, me, 2000)),
          reserved: pick(v(sale, {...me, holds: [hold]}, 2000)),
          expired: pick(v(sale, {...me, holds: [hold]}, 6000)),
          ordered: pick(v(sale, {...me, orders: [order("pending_payment")]}, 2000)),
          paid: pick(v(sale, {...me, orders: [order("paid")]}, 2000)),
          limit: pick(v(sale, {...me, limitHit: {limit: 1, holding: 1}}, 2000)),
          soldOut: pick(v({...sale, available: 0}, me, 2000)),
          waitlisted: pick(v({...sale, available: 0}, {...me, waitlist: 3}, 2000)),
          ended: pick(v(sale, me, 9000)),
          anonymous: pick(v(sale, {}, 2000)),
          deal: v(sale, me, 2000).deal,
          plenty: v({...sale, available: 3}, me, 2000).deal.low,
        };
    }"""
    )
    assert cases["upcoming"] == ["upcoming", "sale.soon", True]
    assert cases["live"] == ["live", "sale.grab", False]
    assert cases["reserved"] == ["reserved", "sale.checkout", False]
    assert cases["expired"] == ["live", "sale.grab", False]
    assert cases["ordered"] == ["ordered", "sale.pay", False]
    assert cases["paid"] == ["paid", "sale.limitButton", True]
    assert cases["limit"] == ["limit", "sale.limitButton", True]
    assert cases["soldOut"] == ["sold_out", "sale.joinWaitlist", False]
    assert cases["waitlisted"] == ["waitlisted", "sale.waitlistedButton", True]
    assert cases["ended"] == ["ended", "sale.ended", True]
    assert cases["anonymous"] == ["live", "sale.signIn", True]
    assert cases["deal"] == {"price": 4900, "list": 8900, "percent": 45, "left": 2, "units": 10,
                             "low": True}  # fmt: skip
    assert cases["plenty"] is False


@pytest.mark.browser
@needs_chromium
async def test_the_header_shows_the_hosts_name(open_viewer: OpenViewer, engine: Engine) -> None:
    """The room keeps its host's display name (the creating token's `name`): viewers see
    "Mia", not the host's id."""
    room = f"r-{secrets.token_hex(5)}"
    async with HostClient(engine.base_url, room, token(room, "host", "host-77", name="Mia")) as h:
        created = await h.create_room("Mia's closet")
        await h.go_live()
    assert (created["host"], created["host_name"]) == ("host-77", "Mia")
    viewer = await open_viewer(room, "ana", "Ana")
    await expect(viewer.page.locator("#host")).to_contain_text("Mia")
    await expect(viewer.page.locator("#avatar")).to_have_text("M")
